//! `identity.v1.EventService`: System Log reads (bounded queries) and watches (polling queries
//! through [`watch::WatchHub`]).

pub mod convert;
pub mod cursor;
mod poller;
pub mod query;
mod shared;
pub mod watch;

use chrono::{DateTime, Duration, Utc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use self::convert::event_from_okta;
use self::watch::{WatchHub, WatchStart};
use super::page_token;
use super::status::{CauseFields, OktaCall, mapped_naming};
use super::token_key::TokenKey;
use super::validate::Violations;
use crate::context::RequestContext;
use crate::proto::event_service_server::EventService;
use crate::proto::{
    ListEventsResponse, ListLogonEventsRequest, SearchEventsRequest, SortOrder, WatchEventsRequest,
    WatchEventsResponse, list_logon_events_request,
};
use okta_client::{
    Expression, LogQuery, LogSortOrder, MAX_LOG_PAGE_SIZE, OktaClient, Operator, PageRequest,
};

/// Events per page when the caller sets no page size (Okta's default).
const DEFAULT_PAGE_SIZE: u32 = 100;
/// How far back a new watch may start (Okta's default polling window).
const MAX_WATCH_BACKLOG: Duration = Duration::days(7);

/// Serves EventService over the shared Okta client and the shared watch pollers.
#[derive(Clone)]
pub struct EventsApi {
    okta: OktaClient,
    hub: WatchHub,
    token_key: TokenKey,
}

/// The System Log query parameters that come from one field of SearchEvents and
/// ListLogonEvents alike, so Okta's refusal of one (a `since` too far back) names it; a filter
/// is built from several fields, and its causes name the request as a whole.
const QUERY_FIELDS: CauseFields = CauseFields::Parameters(&[
    ("since", "since"),
    ("until", "until"),
    ("q", "keywords"),
    ("limit", "page_size"),
    ("after", "page_token"),
]);

impl EventsApi {
    /// Wraps the shared Okta client, the watch pollers and the page-token key.
    pub fn new(okta: OktaClient, hub: WatchHub, token_key: TokenKey) -> Self {
        Self {
            okta,
            hub,
            token_key,
        }
    }

    /// Runs a bounded query page; the page token remembers the window end chosen on page one.
    async fn read_page(
        &self,
        cx: &RequestContext,
        mut query: LogQuery,
        page_size: u32,
        page_token: &str,
        fingerprint: &str,
        mut violations: Violations<'_>,
    ) -> Result<Response<ListEventsResponse>, Status> {
        let position = violations.page_position(&self.token_key, page_token, fingerprint);
        violations.finish().await?;
        if let Some(until) = position.as_ref().and_then(|position| position.until_millis) {
            query.until = DateTime::from_timestamp_millis(until);
        }
        let until_millis = query.until.map(|until| until.timestamp_millis());
        let after = position.map(|position| position.cursor);
        let page = self
            .okta
            .list_log_events(
                cx.okta(),
                &query,
                &PageRequest {
                    limit: page_size,
                    after,
                },
            )
            .await
            .map_err(mapped_naming(OktaCall::Read, QUERY_FIELDS))?;
        Ok(Response::new(ListEventsResponse {
            next_page_token: page_token::encode_position(
                &self.token_key,
                page.next.as_ref(),
                fingerprint,
                until_millis,
            ),
            events: page.items.into_iter().map(event_from_okta).collect(),
        }))
    }
}

fn page_size(violations: &mut Violations, value: i32) -> u32 {
    match value {
        0 => DEFAULT_PAGE_SIZE,
        _ => violations.page_size("page_size", value, MAX_LOG_PAGE_SIZE),
    }
}

/// Fingerprint parts for a caller's window, as the caller gave it (defaults resolve per page one).
fn window_parts(
    since: Option<&prost_types::Timestamp>,
    until: Option<&prost_types::Timestamp>,
) -> [String; 2] {
    let text = |timestamp: Option<&prost_types::Timestamp>| {
        timestamp.map_or_else(String::new, |t| format!("{}.{}", t.seconds, t.nanos))
    };
    [text(since), text(until)]
}

#[tonic::async_trait]
impl EventService for EventsApi {
    async fn list_logon_events(
        &self,
        request: Request<ListLogonEventsRequest>,
    ) -> Result<Response<ListEventsResponse>, Status> {
        let cx = RequestContext::of(&request);
        let request = request.into_inner();
        let mut violations = Violations::new(&cx);
        let limit = page_size(&mut violations, request.page_size);
        let logons = Expression::compare("eventType", Operator::Eq, query::LOGON_EVENT_TYPE);
        let (subject_kind, subject_value, subject) = match &request.subject {
            Some(list_logon_events_request::Subject::UserId(id)) => {
                violations.id("user_id", id);
                (
                    "user_id",
                    id.as_str(),
                    Some(Expression::compare("actor.id", Operator::Eq, id)),
                )
            }
            Some(list_logon_events_request::Subject::UserLogin(login)) => {
                violations.required_text("user_login", login);
                (
                    "user_login",
                    login.as_str(),
                    Some(Expression::compare(
                        "actor.alternateId",
                        Operator::Eq,
                        login,
                    )),
                )
            }
            Some(list_logon_events_request::Subject::IpAddress(ip)) => (
                "ip_address",
                ip.as_str(),
                query::ip_expression("ip_address", ip, &mut violations),
            ),
            None => {
                violations.add("subject", "set `user_id`, `user_login` or `ip_address`");
                ("", "", None)
            }
        };
        let outcome = query::outcome_expression(
            request.outcome(),
            request.outcome,
            "outcome",
            &mut violations,
        );
        let filter = [Some(logons), subject, outcome]
            .into_iter()
            .flatten()
            .reduce(Expression::and);
        let (since, until) = query::window(
            request.since.as_ref(),
            request.until.as_ref(),
            Some(query::DEFAULT_LOGON_WINDOW),
            &mut violations,
        );
        let [since_part, until_part] = window_parts(request.since.as_ref(), request.until.as_ref());
        let fingerprint = page_token::query_fingerprint(&[
            "logons",
            subject_kind,
            subject_value,
            &request.outcome.to_string(),
            &since_part,
            &until_part,
        ]);
        let log_query = LogQuery {
            since,
            until: Some(until),
            filter,
            keywords: None,
            sort_order: LogSortOrder::Ascending,
        };
        self.read_page(
            &cx,
            log_query,
            limit,
            &request.page_token,
            &fingerprint,
            violations,
        )
        .await
    }

    async fn search_events(
        &self,
        request: Request<SearchEventsRequest>,
    ) -> Result<Response<ListEventsResponse>, Status> {
        let cx = RequestContext::of(&request);
        let request = request.into_inner();
        let mut violations = Violations::new(&cx);
        let limit = page_size(&mut violations, request.page_size);
        let structured = request
            .filter
            .as_ref()
            .and_then(|filter| query::event_filter_expression(filter, "filter", &mut violations));
        let raw = violations.expression("okta_filter", &request.okta_filter);
        let filter = [structured, raw]
            .into_iter()
            .flatten()
            .reduce(Expression::and);
        let keywords = query::keywords("keywords", &request.keywords, &mut violations);
        let sort_order = match SortOrder::try_from(request.sort_order) {
            Ok(SortOrder::Descending) => LogSortOrder::Descending,
            Ok(_) => LogSortOrder::Ascending,
            Err(_) => {
                violations.add("sort_order", "unknown sort order");
                LogSortOrder::Ascending
            }
        };
        let (since, until) = query::window(
            request.since.as_ref(),
            request.until.as_ref(),
            None,
            &mut violations,
        );
        let [since_part, until_part] = window_parts(request.since.as_ref(), request.until.as_ref());
        let fingerprint = page_token::query_fingerprint(&[
            "search",
            filter.as_ref().map_or("", Expression::as_str),
            keywords.as_deref().unwrap_or(""),
            &request.sort_order.to_string(),
            &since_part,
            &until_part,
        ]);
        let log_query = LogQuery {
            since,
            until: Some(until),
            filter,
            keywords,
            sort_order,
        };
        self.read_page(
            &cx,
            log_query,
            limit,
            &request.page_token,
            &fingerprint,
            violations,
        )
        .await
    }

    type WatchEventsStream = ReceiverStream<Result<WatchEventsResponse, Status>>;

    async fn watch_events(
        &self,
        request: Request<WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let cx = RequestContext::of(&request);
        let request = request.into_inner();
        let mut violations = Violations::new(&cx);
        let filter = request
            .filter
            .as_ref()
            .and_then(|filter| query::event_filter_expression(filter, "filter", &mut violations));
        let key = page_token::query_fingerprint(&[
            "watch",
            filter.as_ref().map_or("", Expression::as_str),
        ]);
        let start = match (request.resume_cursor.is_empty(), &request.since) {
            (false, Some(_)) => {
                violations.add("since", "set either `since` or `resume_cursor`");
                None
            }
            (false, None) => cursor::decode(&self.token_key, &request.resume_cursor, &key)
                .map(WatchStart::Resume)
                .map_err(|violation| violations.add(&violation.field, violation.description))
                .ok(),
            (true, Some(since)) => match convert_since(since) {
                Some(time) if time >= Utc::now() - MAX_WATCH_BACKLOG => {
                    Some(WatchStart::Since(time))
                }
                _ => {
                    violations.add("since", "a valid time within the last 7 days");
                    None
                }
            },
            (true, None) => Some(WatchStart::Live),
        };
        violations.finish().await?;
        let start = super::validate::checked(start)?;
        Ok(Response::new(self.hub.watch(key, filter, start)))
    }
}

fn convert_since(since: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    super::convert::datetime(since)
}
