//! The System Log (`GET /api/v1/logs`): bounded queries for search, polling queries for
//! following new events (Okta's `next` link is always present on a polling query).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::client::OktaClient;
use crate::error::OktaError;
use crate::expression::Expression;
use crate::pagination::{Page, PageRequest};
use crate::users::with_page;

/// Okta's largest System Log page.
pub const MAX_LOG_PAGE_SIZE: u32 = 1000;

/// One System Log event exactly as Okta sent it (Okta adds fields over time; none is dropped).
pub type LogEvent = Map<String, Value>;

/// Okta's `sortOrder` for the System Log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogSortOrder {
    /// Oldest first; with no `until` this is Okta's polling query.
    #[default]
    Ascending,
    /// Newest first.
    Descending,
}

/// What to read from the System Log. With `page.after` set, `since` is not sent: Okta treats
/// them as mutually exclusive and the cursor already encodes the position.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Events published at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Events published before this time; `None` with ascending order makes a polling query.
    pub until: Option<DateTime<Utc>>,
    /// A SCIM filter expression.
    pub filter: Option<Expression>,
    /// Keywords (Okta `q`).
    pub keywords: Option<String>,
    /// Result order.
    pub sort_order: LogSortOrder,
}

fn okta_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl OktaClient {
    /// Reads one page of System Log events. Retried like every read.
    pub async fn list_log_events(
        &self,
        query: &LogQuery,
        page: &PageRequest,
    ) -> Result<Page<LogEvent>, OktaError> {
        let since = query.since.as_ref().map(okta_time);
        let until = query.until.as_ref().map(okta_time);
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if let (Some(since), None) = (&since, &page.after) {
            pairs.push(("since", since));
        }
        if let Some(until) = &until {
            pairs.push(("until", until));
        }
        if let Some(filter) = &query.filter {
            pairs.push(("filter", filter.as_str()));
        }
        if let Some(keywords) = &query.keywords {
            pairs.push(("q", keywords));
        }
        pairs.push((
            "sortOrder",
            match query.sort_order {
                LogSortOrder::Ascending => "ASCENDING",
                LogSortOrder::Descending => "DESCENDING",
            },
        ));
        let url = with_page(self.endpoint(&["api", "v1", "logs"])?, &pairs, page);
        self.get_page(url).await
    }
}
