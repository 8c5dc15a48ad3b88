//! [`CallContext`]: what travels with the Okta requests of one caller's call, handed to every
//! client method explicitly. The caller sets the deadline and its share of the rate-limit
//! budgets; the client records into it the Okta request ids of the answers (for audit records)
//! and when a request left (to compare with what Okta stamps). Background work (the System Log
//! poller, index refreshes) uses [`CallContext::background`].

use std::future::Future;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::budget::CallerShare;

/// The deadline, budget share and records of one call's Okta requests; see the module docs.
#[derive(Debug, Default)]
pub struct CallContext {
    /// No wait for budget, a slot or a retry outlasts this.
    deadline: Option<Instant>,
    /// Set once by the caller's fairness limits: the share of every bucket this call may spend.
    share: OnceLock<CallerShare>,
    /// The Okta request ids of the answers, while someone collects them.
    request_ids: Notes,
    /// While [`CallContext::noting_departure`] runs: when its first request left, if one did.
    departure: Mutex<Option<Option<std::time::Instant>>>,
    /// Set by [`CallContext::withhold_changes`]: only reads are sent.
    changes_withheld: std::sync::atomic::AtomicBool,
}

impl CallContext {
    /// Work no caller waits for: no deadline, no share, nothing recorded.
    pub fn background() -> Self {
        Self::default()
    }

    /// A call whose every wait for Okta ends by `deadline`.
    pub fn until(deadline: Instant) -> Self {
        Self {
            deadline: Some(deadline),
            ..Self::default()
        }
    }

    /// Counts every later request of this call against `share`; a share set once stays.
    pub fn set_share(&self, share: CallerShare) {
        let _ = self.share.set(share);
    }

    /// The caller's share of the budgets, if it has one.
    pub(crate) fn share(&self) -> Option<&CallerShare> {
        self.share.get()
    }

    /// Time left before the deadline, if there is one.
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    /// True when waiting `wait` would outlast the deadline.
    pub(crate) fn outlasts_deadline(&self, wait: Duration) -> bool {
        self.time_left().is_some_and(|left| wait > left)
    }

    /// Sends no request that changes Okta from now on: each fails with
    /// [`crate::OktaError::Withheld`] unsent, so the caller settles it with a read. For a retry
    /// of a change whose earlier attempt ended without an answer: the read says whether that
    /// attempt was carried out, and the change is never made twice.
    pub fn withhold_changes(&self) {
        self.changes_withheld
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// True after [`CallContext::withhold_changes`].
    pub(crate) fn changes_withheld(&self) -> bool {
        self.changes_withheld
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Starts keeping the Okta request id of every answer from now on.
    pub fn collect_request_ids(&self) {
        self.request_ids.collect();
    }

    /// The request ids kept since [`CallContext::collect_request_ids`] (none if it was not
    /// called), leaving none behind.
    pub fn take_request_ids(&self) -> Vec<String> {
        self.request_ids.take()
    }

    /// Called by `send` for every answer with a request id.
    pub(crate) fn answered(&self, request_id: &str) {
        self.request_ids.note(|| request_id.to_owned());
    }

    /// Runs `work` and returns when its first request to Okta left (`None`: none left), so a
    /// write whose answer was lost can be compared with what Okta stamped afterwards.
    pub async fn noting_departure<F: Future>(
        &self,
        work: F,
    ) -> (F::Output, Option<std::time::Instant>) {
        *self
            .departure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(None);
        let output = work.await;
        let departure = self
            .departure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .flatten();
        (output, departure)
    }

    /// Called by `send` as each request leaves; the first one inside
    /// [`CallContext::noting_departure`] counts.
    pub(crate) fn departing(&self, at: std::time::Instant) {
        let mut departure = self
            .departure
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(first @ None) = departure.as_mut() {
            *first = Some(at);
        }
    }
}

/// Text noted while someone collects it (audit records' ids): nothing is kept, or allocated,
/// before [`Notes::collect`].
#[derive(Debug, Default)]
pub struct Notes(Mutex<Option<Vec<String>>>);

impl Notes {
    /// Starts keeping what is noted from now on.
    pub fn collect(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(Vec::new);
    }

    /// Keeps the text `note` makes, if collecting (`note` runs only then).
    pub fn note(&self, note: impl FnOnce() -> String) {
        if let Some(notes) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            notes.push(note());
        }
    }

    /// What was noted since [`Notes::collect`] (nothing if it was not called), leaving none.
    pub fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_departure_of_the_first_request_is_noted_only_while_noting() {
        let cx = CallContext::background();
        let before = std::time::Instant::now();
        cx.departing(before);
        let first = before + Duration::from_secs(1);
        let ((), departure) = cx
            .noting_departure(async {
                cx.departing(first);
                cx.departing(first + Duration::from_secs(1));
            })
            .await;
        assert_eq!(departure, Some(first));
        let ((), departure) = cx.noting_departure(async {}).await;
        assert_eq!(departure, None, "nothing left this time");
    }

    #[test]
    fn request_ids_are_kept_only_once_collected() {
        let cx = CallContext::background();
        cx.answered("before");
        cx.collect_request_ids();
        cx.answered("one");
        cx.answered("two");
        assert_eq!(cx.take_request_ids(), ["one", "two"]);
        assert!(cx.take_request_ids().is_empty());
    }

    #[tokio::test]
    async fn the_deadline_bounds_waits_and_a_background_call_has_none() {
        let cx = CallContext::until(Instant::now() + Duration::from_secs(60));
        assert!(cx.outlasts_deadline(Duration::from_secs(61)));
        assert!(!cx.outlasts_deadline(Duration::from_secs(1)));
        assert_eq!(CallContext::background().time_left(), None);
        assert!(!CallContext::background().outlasts_deadline(Duration::MAX));
    }
}
