//! Spending Okta's rate limits without overrunning them, within the caller's deadline.
//!
//! Every answer's `X-Rate-Limit-Limit/Remaining/Reset` updates the budget of its bucket (Okta
//! groups endpoints by method and path; the gateway keys buckets by method and endpoint template).
//! Before a request is sent, one unit is taken from its bucket; when only the reserve is left the
//! request waits for the window to reset instead of drawing a 429. A caller's deadline (in its
//! [`CallContext`]) bounds every wait: a wait that would outlast it fails at once, so the caller
//! can be told when to retry rather than kept waiting past its deadline.
//!
//! Okta counts org-wide, so replicas sharing one org spend one budget: with a
//! [`SharedBudget`] ledger, units are leased from it in small batches (the lease counts them
//! against the bucket and the caller's share for every replica; the next batch is asked for in
//! the background while a few units are left, so a steady stream of requests does not wait for
//! the ledger) and the budgets Okta answers
//! with are reported to it, the newest of a bucket at a time (`budget_reports`). While the ledger cannot be reached, each replica keeps to its share of what
//! Okta reports, `remaining / replicas`, the caller's share divided likewise, and asks the
//! ledger again after [`LEDGER_REST`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::budget_reports::ReportOutbox;
use crate::context::CallContext;
use crate::ledger::{Lease, LeaseRequest, Reported, SharedBudget, Unreachable};
use crate::rate_limit::RateLimitState;

/// Units asked of the ledger at once: few, so idle leases strand little of a bucket, but
/// enough that most requests take a unit without a round trip.
const LEASE_BATCH: u64 = 8;
/// When a lease is down to this many units, the next batch is asked for in the background, so
/// a steady stream of requests never waits for the ledger: at most two batches are stranded.
const REFILL_AT: u64 = LEASE_BATCH / 2;
/// How long the ledger is left alone after it could not be reached.
const LEDGER_REST: Duration = Duration::from_secs(1);
/// Pauses between asking while another replica's probe is out: short at first.
const FIRST_POLL: Duration = Duration::from_millis(5);
const LONGEST_POLL: Duration = Duration::from_millis(100);

/// The calling service's share of every bucket: fairness between the gateway's callers, so
/// one cannot spend the budget the others depend on.
#[derive(Clone, Debug)]
pub struct CallerShare {
    /// Who is spending (the authenticated caller identity).
    pub caller: Arc<str>,
    /// Percent of each bucket's limit this caller may spend per window (1 to 100).
    pub percent: u32,
}

/// Why [`Budgets::acquire`] sent nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The wait for budget would outlast the caller's deadline; retry after this long.
    Deadline(Duration),
    /// The caller has spent its share of the bucket for this window; retry after this long.
    CallerShareSpent(Duration),
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
    /// Okta's count, less what this replica sent since.
    remaining: u64,
    /// What this replica may spend on its own down to the reserve: Okta's count above the
    /// reserve divided among the replicas (all of it without a ledger), less what it sent.
    own: u64,
    reserve: u64,
    /// Units each caller with a share took in this window.
    spent_by: HashMap<Arc<str>, u64>,
    reset_epoch_seconds: i64,
    reset_at: Instant,
}

/// Leased units of one bucket for one caller (or for none), not sent yet.
#[derive(Debug)]
struct Leased {
    units: u64,
    /// Their window (Okta's `X-Rate-Limit-Reset`).
    window: i64,
    /// When their window ends, and they lapse.
    reset_at: Instant,
    /// The next batch is being asked for in the background.
    refilling: bool,
}

/// Leased units by bucket and caller.
type LeaseTable = Arc<Mutex<HashMap<LeaseKey, Leased>>>;

/// Leased units are kept by bucket and caller (`None`: calls without a share).
type LeaseKey = (String, Option<Arc<str>>);

/// The ledger every replica shares, and this replica's dealings with it.
struct Shared {
    ledger: Arc<dyn SharedBudget>,
    leases: LeaseTable,
    /// Buckets whose probe this replica has out.
    probing: Mutex<HashSet<String>>,
    /// The ledger is not asked before this, after it could not be reached.
    resting_until: Mutex<Option<Instant>>,
    /// Okta's answers on their way to the ledger.
    reports: ReportOutbox,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Shared")
            .field("leases", &self.leases)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Takes one leased unit of `key`'s, if one is left in a window still open, and asks for
    /// the next batch in the background when few are left.
    fn take_leased(&self, key: &LeaseKey, share: Option<&CallerShare>) -> bool {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(leased) = leases.get_mut(key) else {
            return false;
        };
        if Instant::now() >= leased.reset_at {
            leases.remove(key);
            return false;
        }
        if leased.units == 0 {
            return false;
        }
        leased.units -= 1;
        if leased.units <= REFILL_AT && !leased.refilling && !self.resting() {
            leased.refilling = true;
            tokio::spawn(refill(
                self.ledger.clone(),
                self.leases.clone(),
                self.reports.clone(),
                key.clone(),
                share.map(|share| share.percent),
            ));
        }
        true
    }

    /// Keeps `units` leased for `key` in the window that resets at `window`.
    fn keep(&self, key: LeaseKey, units: u64, window: i64) {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        keep_in(&mut leases, key, units, window);
    }

    fn resting(&self) -> bool {
        self.resting_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| Instant::now() < until)
    }

    /// Leaves the ledger alone for [`LEDGER_REST`].
    fn rest(&self) {
        *self
            .resting_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + LEDGER_REST);
    }

    /// Tells the ledger, in the background, what Okta answered for `bucket`; a report without
    /// a budget is sent only to end this replica's probe.
    fn report(&self, bucket: &str, reported: Option<Reported>) {
        let probed = self
            .probing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(bucket);
        if self.resting() {
            return;
        }
        self.reports.post(bucket, reported, probed);
    }
}

/// Adds `units` leased for `key` in the window that resets at `window` to `leases`; units of
/// another window lapse.
fn keep_in(leases: &mut HashMap<LeaseKey, Leased>, key: LeaseKey, units: u64, window: i64) {
    let leased = leases.entry(key).or_insert(Leased {
        units: 0,
        window,
        reset_at: Instant::now(),
        refilling: false,
    });
    if window < leased.window && leased.units > 0 {
        // A late answer for a window already over.
        return;
    }
    if leased.window != window || leased.units == 0 {
        leased.units = 0;
        leased.window = window;
        leased.reset_at = Instant::now() + seconds_until(window);
    }
    leased.units += units;
}

/// Leases the next batch of `key`'s units ahead of need (see [`REFILL_AT`]), for a caller with
/// `percent` of each bucket when the key names one.
async fn refill(
    ledger: Arc<dyn SharedBudget>,
    leases: LeaseTable,
    reports: ReportOutbox,
    key: LeaseKey,
    percent: Option<u32>,
) {
    let (bucket, caller) = &key;
    let request = LeaseRequest {
        bucket,
        want: LEASE_BATCH,
        caller: caller.as_deref().zip(percent),
    };
    let answer = ledger.lease(request).await;
    let mut leases = leases.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(leased) = leases.get_mut(&key) {
        leased.refilling = false;
    }
    match answer {
        Ok(Lease::Granted {
            units,
            reset_epoch_seconds,
        }) => {
            keep_in(&mut leases, key, units, reset_epoch_seconds);
        }
        // The ledger lost the window and made this replica its prober, but nothing was sent:
        // another replica may probe.
        Ok(Lease::Probe) => reports.post(bucket, None, true),
        // Nothing more this window, or not now: the next request that finds no unit asks.
        Ok(Lease::Probing | Lease::Spent(_) | Lease::ShareSpent(_)) | Err(_) => {}
    }
}

/// The budgets of every bucket seen so far.
#[derive(Debug)]
pub(crate) struct Budgets {
    buckets: Mutex<HashMap<String, BucketState>>,
    reserve_percent: u32,
    settled: tokio::sync::Notify,
    shared: Option<Shared>,
    /// How many replicas share the org while each counts alone (1 without a ledger).
    replicas: u64,
}

impl Budgets {
    /// `reserve_percent` of each bucket is left unused, for other clients of the same Okta
    /// token; `ledger`, when there is one, is shared with the other replicas.
    pub(crate) fn new(reserve_percent: u32, ledger: Option<Arc<dyn SharedBudget>>) -> Self {
        let replicas = ledger
            .as_ref()
            .map_or(1, |ledger| u64::from(ledger.replicas().max(1)));
        Self {
            buckets: Mutex::new(HashMap::new()),
            reserve_percent,
            settled: tokio::sync::Notify::new(),
            shared: ledger.map(|ledger| Shared {
                reports: ReportOutbox::new(ledger.clone()),
                ledger,
                leases: LeaseTable::default(),
                probing: Mutex::new(HashSet::new()),
                resting_until: Mutex::new(None),
            }),
            replicas,
        }
    }

    /// Takes one unit of `bucket`, waiting for its reset when only the reserve is left, or for
    /// the probe of an unknown bucket. Refused, with nothing sent, when a wait would outlast
    /// the deadline of `cx` or its share of the window is spent. Every `Ok` must be followed by
    /// [`Budgets::settle`].
    pub(crate) async fn acquire(&self, cx: &CallContext, bucket: &str) -> Result<(), Refusal> {
        if let Some(shared) = &self.shared {
            if let Ok(taken) = self.acquire_shared(shared, cx, bucket).await {
                return taken;
            }
        }
        self.acquire_alone(cx, bucket).await
    }

    /// [`Budgets::acquire`] through the ledger; `Err` when it cannot be reached.
    async fn acquire_shared(
        &self,
        shared: &Shared,
        cx: &CallContext,
        bucket: &str,
    ) -> Result<Result<(), Refusal>, Unreachable> {
        let share = cx.share();
        let key = (bucket.to_owned(), share.map(|share| share.caller.clone()));
        let mut pause = FIRST_POLL;
        loop {
            if shared.take_leased(&key, share) {
                self.count_sent(bucket, share);
                return Ok(Ok(()));
            }
            if shared.resting() {
                return Err(Unreachable);
            }
            let request = LeaseRequest {
                bucket,
                want: LEASE_BATCH,
                caller: share.map(|share| (&*share.caller, share.percent)),
            };
            let lease = shared.ledger.lease(request).await.inspect_err(|_| {
                shared.rest();
            })?;
            let wait = match lease {
                Lease::Granted {
                    units,
                    reset_epoch_seconds,
                } => {
                    shared.keep(key, units.saturating_sub(1), reset_epoch_seconds);
                    self.count_sent(bucket, share);
                    return Ok(Ok(()));
                }
                Lease::Probe => {
                    shared
                        .probing
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(bucket.to_owned());
                    return Ok(Ok(()));
                }
                Lease::ShareSpent(until_reset) => {
                    return Ok(Err(Refusal::CallerShareSpent(
                        until_reset + Duration::from_secs(1),
                    )));
                }
                Lease::Probing => {
                    let wait = pause;
                    pause = (pause * 2).min(LONGEST_POLL);
                    if cx.outlasts_deadline(wait) {
                        return Ok(Err(Refusal::Deadline(Duration::from_secs(1))));
                    }
                    wait
                }
                // Okta's own formula: wait until the reset, plus a second.
                Lease::Spent(until_reset) => {
                    // Units another request of this replica leased meanwhile are spent first.
                    if shared.take_leased(&key, share) {
                        self.count_sent(bucket, share);
                        return Ok(Ok(()));
                    }
                    let wait = until_reset + Duration::from_secs(1);
                    if cx.outlasts_deadline(wait) {
                        return Ok(Err(Refusal::Deadline(wait)));
                    }
                    log_wait(bucket, wait);
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Notes a unit taken from the ledger in this replica's own count, so a replica that loses
    /// the ledger goes on from what it spent.
    fn count_sent(&self, bucket: &str, share: Option<&CallerShare>) {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(BucketState::Known(state)) = buckets.get_mut(bucket) {
            state.remaining = state.remaining.saturating_sub(1);
            state.own = state.own.saturating_sub(1);
            if let Some(share) = share {
                *state.spent_by.entry(share.caller.clone()).or_insert(0) += 1;
            }
        }
    }

    /// [`Budgets::acquire`] by this replica's own count.
    async fn acquire_alone(&self, cx: &CallContext, bucket: &str) -> Result<(), Refusal> {
        let share = cx.share();
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
                        if let Some(share) = share {
                            let allowed =
                                (state.limit * u64::from(share.percent) / 100 / self.replicas)
                                    .max(1);
                            let spent = state.spent_by.entry(share.caller.clone()).or_insert(0);
                            if *spent >= allowed {
                                return Err(Refusal::CallerShareSpent(
                                    state.reset_at - now + Duration::from_secs(1),
                                ));
                            }
                            if state.own > state.reserve {
                                *spent += 1;
                            }
                        }
                        if state.own > state.reserve {
                            state.own -= 1;
                            state.remaining = state.remaining.saturating_sub(1);
                            return Ok(());
                        }
                        // Okta's own formula: wait until the reset, plus a second.
                        Some(state.reset_at - now + Duration::from_secs(1))
                    }
                }
            };
            match wait {
                None => match cx.time_left() {
                    Some(left) => {
                        if tokio::time::timeout(left, settled).await.is_err() {
                            return Err(Refusal::Deadline(Duration::from_secs(1)));
                        }
                    }
                    None => settled.await,
                },
                Some(wait) => {
                    if cx.outlasts_deadline(wait) {
                        return Err(Refusal::Deadline(wait));
                    }
                    log_wait(bucket, wait);
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

    /// Ends a request taken with [`Budgets::acquire`]: records the budget Okta reported, here
    /// and in the ledger, or, without one, lets the next request probe the bucket.
    pub(crate) fn settle(&self, bucket: &str, reported: Option<&RateLimitState>) {
        let usable = reported.filter(|state| !state.is_concurrency_limit() && state.limit > 0);
        match usable {
            Some(state) => self.observe(bucket, state),
            None => {
                let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
                if matches!(buckets.get(bucket), Some(BucketState::Probing)) {
                    buckets.remove(bucket);
                }
            }
        }
        if let Some(shared) = &self.shared {
            shared.report(
                bucket,
                usable.map(|state| Reported {
                    state: *state,
                    reserve: self.reserve_of(state.limit),
                }),
            );
        }
        self.settled.notify_waiters();
    }

    /// The units of a bucket of `limit` left unused.
    fn reserve_of(&self, limit: u64) -> u64 {
        (limit * u64::from(self.reserve_percent) / 100).max(1)
    }

    /// Records what Okta reported for `bucket`. Within one window the smaller of Okta's count and
    /// the local one wins, since requests sent since may not be counted in the answer yet.
    fn observe(&self, bucket: &str, reported: &RateLimitState) {
        let reserve = self.reserve_of(reported.limit);
        let own = reserve + reported.remaining.saturating_sub(reserve) / self.replicas;
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let (remaining, own, spent_by) = match buckets.remove(bucket) {
            Some(BucketState::Known(known))
                if known.reset_epoch_seconds == reported.reset_epoch_seconds =>
            {
                (
                    known.remaining.min(reported.remaining),
                    known.own.min(own),
                    known.spent_by,
                )
            }
            _ => (reported.remaining, own, HashMap::new()),
        };
        buckets.insert(
            bucket.to_owned(),
            BucketState::Known(Bucket {
                limit: reported.limit,
                spent_by,
                remaining,
                own,
                reserve,
                reset_epoch_seconds: reported.reset_epoch_seconds,
                reset_at: Instant::now() + seconds_until(reported.reset_epoch_seconds),
            }),
        );
    }
}

/// How long until the epoch second `reset_epoch_seconds`, by this machine's clock.
fn seconds_until(reset_epoch_seconds: i64) -> Duration {
    let now_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        });
    Duration::from_secs(u64::try_from(reset_epoch_seconds - now_epoch).unwrap_or(0))
}

fn log_wait(bucket: &str, wait: Duration) {
    tracing::info!(
        okta.bucket = bucket,
        wait_ms = wait.as_millis() as u64,
        "okta rate-limit budget spent down to its reserve; waiting for the reset"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::testing::FakeLedger;

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

    /// A call bounded by a deadline `after` from now.
    fn until(after: Duration) -> CallContext {
        CallContext::until(Instant::now() + after)
    }

    #[tokio::test]
    async fn the_budget_is_spent_down_to_the_reserve_then_waits_fail_past_the_deadline() {
        let budgets = Budgets::new(10, None);
        let unbounded = CallContext::background();
        assert_eq!(
            budgets.acquire(&unbounded, "GET /api/v1/users/{id}").await,
            Ok(()),
            "the first request probes"
        );
        budgets.settle("GET /api/v1/users/{id}", Some(&state(20, 5, 60)));
        let cx = until(Duration::from_secs(2));
        let mut sent = 0;
        while budgets.acquire(&cx, "GET /api/v1/users/{id}").await.is_ok() {
            sent += 1;
        }
        assert_eq!(sent, 3, "5 left, 2 kept in reserve");
        let Err(Refusal::Deadline(wait)) = budgets.acquire(&cx, "GET /api/v1/users/{id}").await
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
        let budgets = std::sync::Arc::new(Budgets::new(0, None));
        budgets
            .acquire(&CallContext::background(), "b")
            .await
            .unwrap();
        assert!(
            budgets
                .acquire(&until(Duration::from_millis(20)), "b")
                .await
                .is_err(),
            "the probe is still out"
        );
        let waiter = {
            let budgets = budgets.clone();
            tokio::spawn(async move { budgets.acquire(&CallContext::background(), "b").await })
        };
        tokio::task::yield_now().await;
        budgets.settle("b", Some(&state(10, 9, 60)));
        assert_eq!(waiter.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_caller_over_its_share_is_refused_while_others_still_spend() {
        let budgets = Budgets::new(0, None);
        budgets.settle("b", Some(&state(10, 10, 60)));
        let sharing = |caller: &str| {
            let cx = CallContext::background();
            cx.set_share(CallerShare {
                caller: caller.into(),
                percent: 30,
            });
            cx
        };
        let flood = sharing("flood");
        let mut taken = 0;
        while budgets.acquire(&flood, "b").await.is_ok() {
            taken += 1;
        }
        assert_eq!(taken, 3, "30% of a limit of 10");
        let refusal = budgets.acquire(&sharing("flood"), "b").await;
        assert!(
            matches!(refusal, Err(Refusal::CallerShareSpent(wait)) if wait > Duration::from_secs(50)),
            "{refusal:?}"
        );
        assert_eq!(budgets.acquire(&sharing("quiet"), "b").await, Ok(()));
        assert_eq!(
            budgets.acquire(&CallContext::background(), "b").await,
            Ok(()),
            "no share: only the bucket counts"
        );
    }

    #[test]
    fn the_remaining_budget_is_reported_for_known_buckets_only() {
        let budgets = Budgets::new(5, None);
        budgets.settle("GET /api/v1/users/{id}", Some(&state(600, 42, 60)));
        budgets.settle("GET /api/v1/groups", None);
        assert_eq!(
            budgets.remaining(),
            [("GET /api/v1/users/{id}".to_owned(), 42)]
        );
    }

    #[tokio::test]
    async fn a_new_window_starts_from_what_okta_reports() {
        let budgets = Budgets::new(0, None);
        budgets.settle("b", Some(&state(10, 1, 60)));
        budgets.settle("b", Some(&state(10, 9, 120)));
        let cx = until(Duration::from_millis(10));
        let mut sent = 0;
        while budgets.acquire(&cx, "b").await.is_ok() {
            sent += 1;
        }
        assert_eq!(sent, 8, "9 left, a reserve of at least 1");
    }

    #[tokio::test]
    async fn leased_units_are_spent_locally_and_the_next_batch_is_asked_for_ahead_of_need() {
        let ledger = FakeLedger::new(LEASE_BATCH, true);
        let budgets = Budgets::new(10, Some(ledger.clone()));
        for _ in 0..3 {
            assert_eq!(
                budgets.acquire(&CallContext::background(), "b").await,
                Ok(())
            );
            tokio::task::yield_now().await;
        }
        assert_eq!(ledger.leases(), 1, "one lease of 8 units, 5 left");
        for _ in 0..9 {
            assert_eq!(
                budgets.acquire(&CallContext::background(), "b").await,
                Ok(())
            );
            tokio::task::yield_now().await;
        }
        assert_eq!(
            ledger.leases(),
            3,
            "at 4 units left the next batch was leased in the background, twice"
        );
    }

    #[tokio::test]
    async fn without_the_ledger_a_replica_keeps_to_its_part_of_what_okta_reports() {
        let ledger = FakeLedger::new(4, false);
        let budgets = Budgets::new(10, Some(ledger.clone()));
        budgets.settle("b", Some(&state(30, 30, 60)));
        let cx = until(Duration::from_secs(2));
        let mut sent = 0;
        while budgets.acquire(&cx, "b").await.is_ok() {
            sent += 1;
        }
        assert_eq!(sent, 9, "a third of the 27 units above a reserve of 3");
        assert_eq!(ledger.leases(), 1, "the ledger is left alone for a while");

        let sharing = CallContext::background();
        sharing.set_share(CallerShare {
            caller: "flood".into(),
            percent: 30,
        });
        budgets.settle("c", Some(&state(30, 30, 60)));
        let mut taken = 0;
        while budgets.acquire(&sharing, "c").await.is_ok() {
            taken += 1;
        }
        assert_eq!(taken, 3, "a third of 30% of 30");
    }
}
