//! The System Log pollers: a loop follows Okta's polling query for one filter through its
//! `next` cursors, paced by the logs bucket's `X-Rate-Limit-Remaining`. Without a coordination
//! server, or while it cannot be reached, a replica polls for its own watchers
//! ([`poll_locally`]); with one, the replica holding the filter's lease polls for every replica
//! (`shared.rs`). Both poll through [`poll_once`].

use std::time::Duration;

use chrono::Utc;
use tokio::sync::broadcast;

use super::convert::{event_from_okta, uuid_of};
use super::cursor::Position;
use super::shared::SharedPolls;
use super::watch::{PolledPage, PollerMessage, PositionedEvent, WatchHub, WatchSettings};
use crate::api::status::{OktaCall, okta_error_status};
use okta_client::{
    CallContext, Expression, LogEvent, LogQuery, LogSortOrder, MAX_LOG_PAGE_SIZE, OktaClient,
    OktaError, Page, PageRequest, RateLimitState,
};

/// Pollers that call Okta on this replica: one per watched filter, none for a filter another
/// replica polls for all.
static POLLERS: std::sync::LazyLock<opentelemetry::metrics::UpDownCounter<i64>> =
    std::sync::LazyLock::new(|| {
        opentelemetry::global::meter(crate::telemetry::INSTRUMENTATION_NAME)
            .i64_up_down_counter("identity_gateway.watch.pollers")
            .with_description(
                "System Log pollers calling Okta on this replica, one per distinct watched filter \
                 this replica polls",
            )
            .build()
    });

/// Counts one poller calling Okta for as long as it lives, however its loop ends.
pub(super) struct Polling;

impl Polling {
    /// Counts a poller that starts calling Okta.
    pub(super) fn start() -> Self {
        POLLERS.add(1, &[]);
        Self
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        POLLERS.add(-1, &[]);
    }
}

/// What one poll found.
pub(super) struct Polled {
    /// The page, when it moved something: events, or a new position.
    pub(super) page: Option<PolledPage>,
    /// When to poll next.
    pub(super) pause: Duration,
    /// Why Okta could not be read, when it could not.
    pub(super) problem: Option<String>,
}

/// Polls Okta once at `position` for the watchers of `key`.
pub(super) async fn poll_once(
    hub: &WatchHub,
    key: &str,
    filter: &Option<Expression>,
    position: &Position,
) -> Polled {
    let settings = hub.settings();
    match fetch(hub.okta(), filter, position).await {
        Ok(page) => {
            let page_len = page.items.len();
            let events: Vec<PositionedEvent> = page
                .items
                .into_iter()
                .map(|event| PositionedEvent {
                    position: position.clone(),
                    uuid: uuid_of(&event).to_owned(),
                    event: event_from_okta(event),
                })
                .collect();
            let next = page.next.map_or_else(|| position.clone(), Position::After);
            let moved = !events.is_empty() || next != *position;
            Polled {
                page: moved.then_some(PolledPage { events, next }),
                pause: pause_after(page_len, page.meta.rate_limit.as_ref(), settings),
                problem: None,
            }
        }
        Err(error) => {
            tracing::warn!(watch.filter = %key, error = %error, "system log poll failed; retrying");
            Polled {
                page: None,
                pause: pause_after_error(&error, settings),
                problem: Some(describe(&error)),
            }
        }
    }
}

/// How polling on this replica alone ended.
pub(super) enum LocalEnd {
    /// Nobody watches the filter any more, or the server drains.
    Stopped,
    /// The coordination server answers again: the shared poller takes over.
    ServerBack,
}

/// Polls Okta for the watchers of `key` on this replica, from where their last page ended,
/// until nobody watches, the server drains, or `server` (when given) answers again.
pub(super) async fn poll_locally(
    hub: &WatchHub,
    key: &str,
    filter: &Option<Expression>,
    sender: &broadcast::Sender<PollerMessage>,
    server: Option<&SharedPolls>,
) -> LocalEnd {
    let Some(mut position) = hub.position(key) else {
        return LocalEnd::Stopped;
    };
    let _polling = Polling::start();
    let mut okta_problem: Option<String> = None;
    tracing::debug!(watch.filter = %key, "system log poller started");
    loop {
        if hub.retire_if_unwatched(key, sender) {
            tracing::debug!(watch.filter = %key, "system log poller stopped: no watchers");
            return LocalEnd::Stopped;
        }
        let polled = poll_once(hub, key, filter, &position).await;
        if let Some(page) = polled.page {
            let from = std::mem::replace(&mut position, page.next.clone());
            hub.publish(key, &from, page);
        }
        if polled.problem != okta_problem {
            okta_problem = polled.problem;
            let _ = sender.send(PollerMessage::Health(okta_problem.clone()));
        }
        // The server is asked during the pause, which a slow answer does not stretch, and
        // only after a poll, so one that answers yet cannot be followed is not asked in a
        // busy loop.
        let server_back = async {
            match server {
                Some(server) => server.reachable().await,
                None => false,
            }
        };
        let paused = async { tokio::join!(tokio::time::sleep(polled.pause), server_back).1 };
        tokio::select! {
            back = paused => if back {
                return LocalEnd::ServerBack;
            },
            () = hub.drained() => return LocalEnd::Stopped,
        }
    }
}

/// Reads one page of the polling query at `position`.
pub(super) async fn fetch(
    okta: &OktaClient,
    filter: &Option<Expression>,
    position: &Position,
) -> Result<Page<LogEvent>, OktaError> {
    let (since, after) = match position {
        Position::Since(time) => (Some(*time), None),
        Position::After(cursor) => (None, Some(cursor.clone())),
    };
    let query = LogQuery {
        since,
        until: None,
        filter: filter.clone(),
        keywords: None,
        sort_order: LogSortOrder::Ascending,
    };
    // The poller and a watcher's catch-up run on after the RPC that started them answered:
    // background work, which no caller's deadline bounds.
    okta.list_log_events(
        &CallContext::background(),
        &query,
        &PageRequest {
            limit: MAX_LOG_PAGE_SIZE,
            after,
        },
    )
    .await
}

/// A full page means Okta has more waiting.
pub(super) fn is_full(page_len: usize) -> bool {
    page_len >= MAX_LOG_PAGE_SIZE as usize
}

/// The pause before the next poll: at least the poll interval, stretched so the remaining budget
/// (less the reserve) lasts until the window resets, and a full stop until the reset when only
/// the reserve is left. A full page means more is waiting: no pause.
fn pause_after(
    page_len: usize,
    rate_limit: Option<&RateLimitState>,
    settings: &WatchSettings,
) -> Duration {
    if is_full(page_len) {
        return Duration::ZERO;
    }
    let Some(rate_limit) = rate_limit else {
        return settings.poll_interval;
    };
    if rate_limit.is_concurrency_limit() {
        return settings.poll_interval.max(Duration::from_secs(1));
    }
    let seconds_to_reset = (rate_limit.reset_epoch_seconds - Utc::now().timestamp()).max(1);
    let until_reset = Duration::from_secs(u64::try_from(seconds_to_reset).unwrap_or(1));
    let reserve = (rate_limit.limit * u64::from(settings.rate_limit_reserve_percent) / 100).max(1);
    if rate_limit.remaining <= reserve {
        return until_reset + Duration::from_secs(1);
    }
    let spread = until_reset / u32::try_from(rate_limit.remaining - reserve).unwrap_or(u32::MAX);
    settings.poll_interval.max(spread)
}

/// The pause after a failed poll: Okta's reset time for a 429, else the poll interval.
pub(super) fn pause_after_error(error: &OktaError, settings: &WatchSettings) -> Duration {
    match error {
        OktaError::RateLimited { retry_after, .. } => retry_after
            .unwrap_or(settings.poll_interval)
            .max(settings.poll_interval),
        _ => settings.poll_interval,
    }
}

/// What a failed poll tells watchers in their keep-alives.
pub(super) fn describe(error: &OktaError) -> String {
    let status = okta_error_status(error, OktaCall::Read);
    format!("{:?}: {}", status.code(), status.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> WatchSettings {
        WatchSettings {
            poll_interval: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(15),
            rate_limit_reserve_percent: 20,
        }
    }

    fn budget(limit: u64, remaining: u64, seconds_to_reset: i64) -> RateLimitState {
        RateLimitState {
            limit,
            remaining,
            reset_epoch_seconds: Utc::now().timestamp() + seconds_to_reset,
        }
    }

    #[test]
    fn polling_spreads_the_remaining_budget_over_the_window_and_keeps_the_reserve() {
        let settings = settings();
        assert_eq!(pause_after(3, None, &settings), Duration::from_secs(5));
        assert_eq!(
            pause_after(1000, Some(&budget(60, 1, 60)), &settings),
            Duration::ZERO
        );
        // Plenty left: the poll interval.
        assert_eq!(
            pause_after(0, Some(&budget(600, 590, 60)), &settings),
            Duration::from_secs(5)
        );
        // 60 s to reset, 12 + 4 reserved left: spread over the 4 usable calls.
        let spread = pause_after(0, Some(&budget(60, 16, 60)), &settings);
        assert!(spread >= Duration::from_secs(14), "{spread:?}");
        // Only the reserve left: wait for the reset.
        assert!(pause_after(0, Some(&budget(60, 12, 30)), &settings) >= Duration::from_secs(30));
    }
}
