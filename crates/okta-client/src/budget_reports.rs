//! The budgets Okta reports, passed on to the shared ledger without a round trip per answer.
//!
//! Every answer carries its bucket's budget, but the ledger needs only the newest: within a
//! window it keeps the smaller of its count and Okta's, and its count already went down by
//! every unit it leased, so a report corrects it only for what was spent outside the ledger
//! (other clients of the token). So a bucket's reports go one at a time, at most one every
//! [`REPORT_EVERY`], each the newest budget reported meanwhile (the later window, or in one
//! window the lower count). A report that starts a new window, or ends this replica's probe of
//! the bucket, goes at once: other replicas wait for it. The reserve (`rate_limit_reserve_percent`)
//! covers what other clients spend in the meantime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use crate::ledger::{Reported, SharedBudget};

/// The shortest time between two reports of one bucket that neither starts a window nor ends
/// a probe.
const REPORT_EVERY: Duration = Duration::from_millis(20);

/// Reports on their way to the ledger, by bucket; see the module docs. Clones share the reports.
#[derive(Clone)]
pub(crate) struct ReportOutbox {
    ledger: Arc<dyn SharedBudget>,
    buckets: Arc<Mutex<HashMap<String, Pending>>>,
}

/// One bucket's report not sent yet.
#[derive(Default)]
struct Pending {
    /// The newest budget Okta reported since the last report went.
    newest: Option<Reported>,
    /// This replica's probe of the bucket ended, and the ledger has not been told.
    probe_ended: bool,
    /// A task is sending this bucket's reports; it takes what is posted meanwhile.
    sending: bool,
    /// The window (`X-Rate-Limit-Reset`) of the last report sent.
    window_sent: i64,
    /// Wakes the sending task from its pause when a report must go at once.
    urgent: Arc<Notify>,
}

impl Pending {
    /// Whether something is waiting to go.
    fn has_news(&self) -> bool {
        self.newest.is_some() || self.probe_ended
    }

    /// Whether what waits must go at once.
    fn is_urgent(&self) -> bool {
        self.probe_ended
            || self
                .newest
                .is_some_and(|newest| newest.state.reset_epoch_seconds > self.window_sent)
    }
}

/// The newer of two reports of one bucket: the later window, or in one window the lower count.
fn newer(known: Option<Reported>, reported: Reported) -> Reported {
    match known {
        Some(known)
            if known.state.reset_epoch_seconds > reported.state.reset_epoch_seconds
                || (known.state.reset_epoch_seconds == reported.state.reset_epoch_seconds
                    && known.state.remaining <= reported.state.remaining) =>
        {
            known
        }
        _ => reported,
    }
}

impl ReportOutbox {
    /// An outbox to `ledger`.
    pub(crate) fn new(ledger: Arc<dyn SharedBudget>) -> Self {
        Self {
            ledger,
            buckets: Arc::default(),
        }
    }

    /// Passes on what Okta answered for `bucket`: its budget, if the answer carried one, and
    /// whether the answer ends this replica's probe of the bucket. Sent in the background.
    pub(crate) fn post(&self, bucket: &str, reported: Option<Reported>, probe_ended: bool) {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let pending = match buckets.get_mut(bucket) {
            Some(pending) => pending,
            None => buckets.entry(bucket.to_owned()).or_default(),
        };
        if let Some(reported) = reported {
            pending.newest = Some(newer(pending.newest, reported));
        }
        pending.probe_ended |= probe_ended;
        if !pending.has_news() {
            return;
        }
        let urgent = pending.is_urgent();
        if pending.sending {
            if urgent {
                pending.urgent.notify_one();
            }
            return;
        }
        pending.sending = true;
        tokio::spawn(send(
            self.ledger.clone(),
            self.buckets.clone(),
            bucket.to_owned(),
            pending.urgent.clone(),
            urgent,
        ));
    }
}

/// Sends `bucket`'s reports until none is left, pausing between them unless one is urgent.
async fn send(
    ledger: Arc<dyn SharedBudget>,
    buckets: Arc<Mutex<HashMap<String, Pending>>>,
    bucket: String,
    wake: Arc<Notify>,
    mut urgent: bool,
) {
    loop {
        if !urgent {
            tokio::select! {
                () = tokio::time::sleep(REPORT_EVERY) => {}
                () = wake.notified() => {}
            }
        }
        let newest = {
            let mut buckets = buckets.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(pending) = buckets.get_mut(&bucket) else {
                return;
            };
            if !pending.has_news() {
                pending.sending = false;
                return;
            }
            pending.probe_ended = false;
            let newest = pending.newest.take();
            if let Some(newest) = newest {
                pending.window_sent = pending.window_sent.max(newest.state.reset_epoch_seconds);
            }
            newest
        };
        // A lost report leaves the shared count higher than Okta's until the next one.
        let _ = ledger.report(&bucket, newest).await;
        urgent = buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&bucket)
            .is_some_and(Pending::is_urgent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::testing::FakeLedger;
    use crate::rate_limit::RateLimitState;

    fn reported(remaining: u64, reset_epoch_seconds: i64) -> Reported {
        Reported {
            state: RateLimitState {
                limit: 100,
                remaining,
                reset_epoch_seconds,
            },
            reserve: 5,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_s_reports_go_at_once_then_the_lowest_count_once_per_pause() {
        let ledger = FakeLedger::new(1, true);
        let outbox = ReportOutbox::new(ledger.clone());
        outbox.post("GET /api/v1/users/{id}", Some(reported(90, 1000)), false);
        tokio::task::yield_now().await;
        assert_eq!(
            ledger.reports(),
            vec![Some(reported(90, 1000))],
            "a new window"
        );
        for remaining in [80, 70, 85] {
            outbox.post(
                "GET /api/v1/users/{id}",
                Some(reported(remaining, 1000)),
                false,
            );
        }
        tokio::task::yield_now().await;
        assert_eq!(ledger.reports().len(), 1, "the window's next reports wait");
        tokio::time::sleep(REPORT_EVERY * 3).await;
        assert_eq!(
            ledger.reports(),
            vec![Some(reported(90, 1000)), Some(reported(70, 1000))],
            "one report, the lowest count"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_window_or_a_probe_s_end_cuts_the_pause_short() {
        let ledger = FakeLedger::new(1, true);
        let outbox = ReportOutbox::new(ledger.clone());
        outbox.post("GET /api/v1/groups", Some(reported(90, 1000)), false);
        tokio::task::yield_now().await;
        outbox.post("GET /api/v1/groups", Some(reported(80, 1000)), false);
        outbox.post("GET /api/v1/groups", Some(reported(99, 1060)), false);
        tokio::time::sleep(REPORT_EVERY / 4).await;
        assert_eq!(
            ledger.reports(),
            vec![Some(reported(90, 1000)), Some(reported(99, 1060))],
            "the later window replaced the earlier one's count and went at once"
        );
        outbox.post("GET /api/v1/logs", None, true);
        tokio::task::yield_now().await;
        assert_eq!(ledger.reports().last(), Some(&None), "the probe ended");
        outbox.post("GET /api/v1/logs", None, false);
        tokio::time::sleep(REPORT_EVERY * 3).await;
        assert_eq!(
            ledger.reports().len(),
            3,
            "an answer with no budget, no probe: nothing"
        );
    }
}
