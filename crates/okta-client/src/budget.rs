//! Spending Okta's rate limits without overrunning them, within the caller's deadline.
//!
//! Every answer's `X-Rate-Limit-Limit/Remaining/Reset` updates the budget of its bucket (Okta
//! groups endpoints by method and path; the gateway keys buckets by method and endpoint template).
//! Before a request is sent, one unit is taken from its bucket; when only the reserve is left the
//! request waits for the window to reset instead of drawing a 429. A caller's deadline (set for
//! the task by [`with_deadline`]) bounds every wait: a wait that would outlast it fails at once,
//! so the caller can be told when to retry rather than kept waiting past its deadline.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::rate_limit::RateLimitState;

tokio::task_local! {
    static DEADLINE: Instant;
    static SHARE: CallerShare;
}

/// The calling service's share of every bucket: fairness between the gateway's callers, so
/// one cannot spend the budget the others depend on.
#[derive(Clone, Debug)]
pub struct CallerShare {
    /// Who is spending (the authenticated caller identity).
    pub caller: std::sync::Arc<str>,
    /// Percent of each bucket's limit this caller may spend per window (1 to 100).
    pub percent: u32,
}

/// Runs `work` with every Okta request inside it counted against `share`.
pub async fn with_share<F: Future>(share: CallerShare, work: F) -> F::Output {
    SHARE.scope(share, work).await
}

/// Why [`Budgets::acquire`] sent nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The wait for budget would outlast the caller's deadline; retry after this long.
    Deadline(Duration),
    /// The caller has spent its share of the bucket for this window; retry after this long.
    CallerShareSpent(Duration),
}

/// Runs `work` with `deadline` as the limit for every Okta wait inside it.
pub async fn with_deadline<F: Future>(deadline: Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// Time left before the current task's deadline, if it has one.
pub fn time_left() -> Option<Duration> {
    DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// True when waiting `wait` would outlast the current deadline.
pub(crate) fn outlasts_deadline(wait: Duration) -> bool {
    time_left().is_some_and(|left| wait > left)
}

/// One bucket's budget as last reported, less what was sent since; or a probe in flight.
#[derive(Debug)]
enum BucketState {
    /// The first request to an unknown bucket is out; the rest wait for the budget it reveals.
    Probing,
    /// The budget.
    Known(Bucket),
}

/// A known bucket's budget.
#[derive(Debug)]
struct Bucket {
    limit: u64,
    remaining: u64,
    reserve: u64,
    /// Units each caller with a share took in this window.
    spent_by: HashMap<std::sync::Arc<str>, u64>,
    reset_epoch_seconds: i64,
    reset_at: Instant,
}

/// The budgets of every bucket seen so far.
#[derive(Debug)]
pub(crate) struct Budgets {
    buckets: Mutex<HashMap<String, BucketState>>,
    reserve_percent: u32,
    settled: tokio::sync::Notify,
}

impl Budgets {
    /// `reserve_percent` of each bucket is left unused, for other clients of the same Okta token.
    pub(crate) fn new(reserve_percent: u32) -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
            reserve_percent,
            settled: tokio::sync::Notify::new(),
        }
    }

    /// Takes one unit of `bucket`, waiting for its reset when only the reserve is left, or for
    /// the probe of an unknown bucket. Refused, with nothing sent, when a wait would outlast
    /// the caller's deadline or the caller's share of the window is spent. Every `Ok` must be
    /// followed by [`Budgets::settle`].
    pub(crate) async fn acquire(&self, bucket: &str) -> Result<(), Refusal> {
        let share = SHARE.try_with(Clone::clone).ok();
        loop {
            let settled = self.settled.notified();
            let wait = {
                let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
                match buckets.get_mut(bucket) {
                    None => {
                        buckets.insert(bucket.to_owned(), BucketState::Probing);
                        return Ok(());
                    }
                    Some(BucketState::Probing) => None,
                    Some(BucketState::Known(state)) => {
                        let now = Instant::now();
                        if now >= state.reset_at {
                            buckets.insert(bucket.to_owned(), BucketState::Probing);
                            return Ok(());
                        }
                        if let Some(share) = &share {
                            let allowed = (state.limit * u64::from(share.percent) / 100).max(1);
                            let spent = state.spent_by.entry(share.caller.clone()).or_insert(0);
                            if *spent >= allowed {
                                return Err(Refusal::CallerShareSpent(
                                    state.reset_at - now + Duration::from_secs(1),
                                ));
                            }
                            if state.remaining > state.reserve {
                                *spent += 1;
                            }
                        }
                        if state.remaining > state.reserve {
                            state.remaining -= 1;
                            return Ok(());
                        }
                        // Okta's own formula: wait until the reset, plus a second.
                        Some(state.reset_at - now + Duration::from_secs(1))
                    }
                }
            };
            match wait {
                None => match time_left() {
                    Some(left) => {
                        if tokio::time::timeout(left, settled).await.is_err() {
                            return Err(Refusal::Deadline(Duration::from_secs(1)));
                        }
                    }
                    None => settled.await,
                },
                Some(wait) => {
                    if outlasts_deadline(wait) {
                        return Err(Refusal::Deadline(wait));
                    }
                    tracing::info!(
                        okta.bucket = bucket,
                        wait_ms = wait.as_millis() as u64,
                        "okta rate-limit budget spent down to its reserve; waiting for the reset"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Each known bucket with what remains of it in this window, as far as the gateway knows
    /// (Okta's last count, less the requests sent since): the rate-limit gauge reads this when
    /// metrics are collected.
    pub(crate) fn remaining(&self) -> Vec<(String, u64)> {
        let buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        buckets
            .iter()
            .filter_map(|(name, state)| match state {
                BucketState::Known(bucket) => Some((name.clone(), bucket.remaining)),
                BucketState::Probing => None,
            })
            .collect()
    }

    /// Ends a request taken with [`Budgets::acquire`]: records the budget Okta reported, or,
    /// without one, lets the next request probe the bucket.
    pub(crate) fn settle(&self, bucket: &str, reported: Option<&RateLimitState>) {
        match reported {
            Some(state) if !state.is_concurrency_limit() && state.limit > 0 => {
                self.observe(bucket, state)
            }
            _ => {
                let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
                if matches!(buckets.get(bucket), Some(BucketState::Probing)) {
                    buckets.remove(bucket);
                }
            }
        }
        self.settled.notify_waiters();
    }

    /// Records what Okta reported for `bucket`. Within one window the smaller of Okta's count and
    /// the local one wins, since requests sent since may not be counted in the answer yet.
    fn observe(&self, bucket: &str, reported: &RateLimitState) {
        let now_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
            });
        let seconds_to_reset = u64::try_from(reported.reset_epoch_seconds - now_epoch).unwrap_or(0);
        let reserve = (reported.limit * u64::from(self.reserve_percent) / 100).max(1);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let (remaining, spent_by) = match buckets.remove(bucket) {
            Some(BucketState::Known(known))
                if known.reset_epoch_seconds == reported.reset_epoch_seconds =>
            {
                (known.remaining.min(reported.remaining), known.spent_by)
            }
            _ => (reported.remaining, HashMap::new()),
        };
        buckets.insert(
            bucket.to_owned(),
            BucketState::Known(Bucket {
                limit: reported.limit,
                spent_by,
                remaining,
                reserve,
                reset_epoch_seconds: reported.reset_epoch_seconds,
                reset_at: Instant::now() + Duration::from_secs(seconds_to_reset),
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(limit: u64, remaining: u64, seconds: i64) -> RateLimitState {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        RateLimitState {
            limit,
            remaining,
            reset_epoch_seconds: now + seconds,
        }
    }

    #[tokio::test]
    async fn the_budget_is_spent_down_to_the_reserve_then_waits_fail_past_the_deadline() {
        let budgets = Budgets::new(10);
        assert_eq!(
            budgets.acquire("GET /api/v1/users/{id}").await,
            Ok(()),
            "the first request probes"
        );
        budgets.settle("GET /api/v1/users/{id}", Some(&state(20, 5, 60)));
        let deadline = Instant::now() + Duration::from_secs(2);
        let outcome = with_deadline(deadline, async {
            let mut sent = 0;
            while budgets.acquire("GET /api/v1/users/{id}").await.is_ok() {
                sent += 1;
            }
            sent
        })
        .await;
        assert_eq!(outcome, 3, "5 left, 2 kept in reserve");
        let Err(Refusal::Deadline(wait)) =
            with_deadline(deadline, budgets.acquire("GET /api/v1/users/{id}")).await
        else {
            panic!("refused for the deadline")
        };
        assert!(
            wait > Duration::from_secs(50),
            "told to retry after the reset: {wait:?}"
        );
    }

    #[tokio::test]
    async fn while_a_probe_is_out_others_wait_for_it_within_their_deadline() {
        let budgets = std::sync::Arc::new(Budgets::new(0));
        budgets.acquire("b").await.unwrap();
        let short = Instant::now() + Duration::from_millis(20);
        assert!(
            with_deadline(short, budgets.acquire("b")).await.is_err(),
            "the probe is still out"
        );
        let waiter = {
            let budgets = budgets.clone();
            tokio::spawn(async move { budgets.acquire("b").await })
        };
        tokio::task::yield_now().await;
        budgets.settle("b", Some(&state(10, 9, 60)));
        assert_eq!(waiter.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_caller_over_its_share_is_refused_while_others_still_spend() {
        let budgets = Budgets::new(0);
        budgets.settle("b", Some(&state(10, 10, 60)));
        let share = |caller: &str| CallerShare {
            caller: caller.into(),
            percent: 30,
        };
        let taken = with_share(share("flood"), async {
            let mut taken = 0;
            while budgets.acquire("b").await.is_ok() {
                taken += 1;
            }
            taken
        })
        .await;
        assert_eq!(taken, 3, "30% of a limit of 10");
        let refusal = with_share(share("flood"), budgets.acquire("b")).await;
        assert!(
            matches!(refusal, Err(Refusal::CallerShareSpent(wait)) if wait > Duration::from_secs(50)),
            "{refusal:?}"
        );
        assert_eq!(
            with_share(share("quiet"), budgets.acquire("b")).await,
            Ok(())
        );
        assert_eq!(
            budgets.acquire("b").await,
            Ok(()),
            "no share: only the bucket counts"
        );
    }

    #[test]
    fn the_remaining_budget_is_reported_for_known_buckets_only() {
        let budgets = Budgets::new(5);
        budgets.settle("GET /api/v1/users/{id}", Some(&state(600, 42, 60)));
        budgets.settle("GET /api/v1/groups", None);
        assert_eq!(
            budgets.remaining(),
            [("GET /api/v1/users/{id}".to_owned(), 42)]
        );
    }

    #[tokio::test]
    async fn a_new_window_starts_from_what_okta_reports() {
        let budgets = Budgets::new(0);
        budgets.settle("b", Some(&state(10, 1, 60)));
        budgets.settle("b", Some(&state(10, 9, 120)));
        let deadline = Instant::now() + Duration::from_millis(10);
        let sent = with_deadline(deadline, async {
            let mut sent = 0;
            while budgets.acquire("b").await.is_ok() {
                sent += 1;
            }
            sent
        })
        .await;
        assert_eq!(sent, 8, "9 left, a reserve of at least 1");
    }
}
