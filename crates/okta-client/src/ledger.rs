//! [`SharedBudget`]: Okta's rate limits are org-wide, so replicas of one deployment must spend
//! one budget per bucket, not one each. The client asks a ledger shared by every replica for
//! units before sending and tells it the budgets Okta reports (the newest of each bucket, not
//! one report per answer: see `budget_reports`); how the ledger is kept (a
//! Valkey/Redis server, in the gateway) is none of the client's business, so this crate names
//! only the questions it asks.
//!
//! A ledger that cannot be reached is no outage: the client falls back to its own count of
//! each bucket, keeping to its share of what Okta reports (remaining divided by
//! [`SharedBudget::replicas`]), and asks the ledger again shortly.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::rate_limit::RateLimitState;

/// A future the ledger answers with; boxed so the trait can be used as `dyn SharedBudget`.
pub type LedgerFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Unreachable>> + Send + 'a>>;

/// The ledger could not be asked; the client counts on its own meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the shared rate-limit ledger cannot be reached")]
pub struct Unreachable;

/// What a replica asks for: units of one bucket, on behalf of a caller with a share or of no
/// caller in particular.
#[derive(Debug, Clone, Copy)]
pub struct LeaseRequest<'a> {
    /// The bucket (method and endpoint template).
    pub bucket: &'a str,
    /// Units wanted; the ledger may grant fewer.
    pub want: u64,
    /// The caller whose share the units count against, and its percent of the bucket's limit
    /// per window; `None` counts against the bucket alone.
    pub caller: Option<(&'a str, u32)>,
}

/// The ledger's answer to a [`LeaseRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// `units` (at least one) are this replica's to send in the window that resets at
    /// `reset_epoch_seconds` (Okta's `X-Rate-Limit-Reset`), and no other replica's.
    Granted {
        /// How many.
        units: u64,
        /// The window they belong to; unused units lapse with it.
        reset_epoch_seconds: i64,
    },
    /// Nobody knows the bucket's current window: this replica sends one request to learn it
    /// and reports what Okta answers (or that nothing was answered).
    Probe,
    /// Another replica's probe is out; ask again shortly.
    Probing,
    /// Only the reserve is left; the window resets in this long.
    Spent(Duration),
    /// The caller has spent its share of the window, which resets in this long.
    ShareSpent(Duration),
}

/// A bucket's budget as Okta reported it on one answer, with the reserve kept of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    /// Okta's `X-Rate-Limit-*`.
    pub state: RateLimitState,
    /// Units left unused org-wide, for other clients of the same Okta token.
    pub reserve: u64,
}

/// One of the org's concurrent-request slots, held for a request on the wire; dropping it
/// gives the slot back. What it holds is the ledger's business, hence the box.
pub struct HeldSlot {
    _guard: Box<dyn Send + Sync>,
}

impl HeldSlot {
    /// A slot that lasts as long as `guard`: the ledger gives the slot back when it drops.
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        Self {
            _guard: Box::new(guard),
        }
    }
}

impl std::fmt::Debug for HeldSlot {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("HeldSlot")
    }
}

/// The ledger's answer to [`SharedBudget::take_slot`].
#[derive(Debug)]
pub enum SlotAnswer {
    /// The slot is this replica's while the value lives.
    Taken(HeldSlot),
    /// The replicas together have the whole ceiling on the wire; one frees a slot eventually.
    Full,
}

/// A rate-limit ledger shared by every replica of the deployment; see the module docs.
pub trait SharedBudget: Send + Sync + 'static {
    /// Takes up to `request.want` units of a bucket for this replica: the units granted in
    /// total never exceed what remains above the bucket's reserve, nor a caller's share.
    fn lease<'a>(&'a self, request: LeaseRequest<'a>) -> LedgerFuture<'a, Lease>;

    /// Records what Okta answered to requests sent on a [`Lease::Probe`] or granted units (the
    /// client sends the newest of a bucket's budgets, not every one): a new window starts from
    /// Okta's count, and within a window the smaller of the shared
    /// count and Okta's wins (units granted but not sent yet are not in Okta's count). `None`
    /// after a probe that got no budget back, so another replica may probe.
    fn report<'a>(&'a self, bucket: &'a str, reported: Option<Reported>) -> LedgerFuture<'a, ()>;

    /// Takes one of the org's `limit` concurrent-request slots for a request this replica is
    /// about to send, or answers [`SlotAnswer::Full`] while the replicas together hold them all.
    /// The slot is the replica's until the [`HeldSlot`] is dropped; a replica's slots stop
    /// counting when it stops (the ledger's leases on them expire).
    fn take_slot(&self, limit: u32) -> LedgerFuture<'_, SlotAnswer>;

    /// How many replicas share the org's budget while the ledger cannot be reached: each then
    /// keeps to this fraction of what Okta reports.
    fn replicas(&self) -> u32;
}

/// A ledger in memory for the client's own tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use super::{
        HeldSlot, Lease, LeaseRequest, LedgerFuture, Reported, SharedBudget, SlotAnswer,
        Unreachable,
    };

    fn in_a_minute() -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        i64::try_from(now).unwrap() + 60
    }

    /// A ledger that grants `grant` units a lease, and every slot asked for, while
    /// `reachable`; it counts the leases and keeps the reports.
    pub(crate) struct FakeLedger {
        grant: u64,
        reachable: std::sync::atomic::AtomicBool,
        leases: std::sync::atomic::AtomicU32,
        reports: std::sync::Mutex<Vec<Option<Reported>>>,
    }

    impl FakeLedger {
        pub(crate) fn new(grant: u64, reachable: bool) -> Arc<Self> {
            Arc::new(Self {
                grant,
                reachable: reachable.into(),
                leases: 0.into(),
                reports: std::sync::Mutex::default(),
            })
        }

        pub(crate) fn reports(&self) -> Vec<Option<Reported>> {
            self.reports.lock().unwrap().clone()
        }

        pub(crate) fn leases(&self) -> u32 {
            self.leases.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    impl SharedBudget for FakeLedger {
        fn lease<'a>(&'a self, _: LeaseRequest<'a>) -> LedgerFuture<'a, Lease> {
            self.leases
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let answer = if self.reachable.load(std::sync::atomic::Ordering::SeqCst) {
                Ok(Lease::Granted {
                    units: self.grant,
                    reset_epoch_seconds: in_a_minute(),
                })
            } else {
                Err(Unreachable)
            };
            Box::pin(async move { answer })
        }

        fn report<'a>(&'a self, _: &'a str, reported: Option<Reported>) -> LedgerFuture<'a, ()> {
            self.reports.lock().unwrap().push(reported);
            Box::pin(async { Ok(()) })
        }

        fn take_slot(&self, _: u32) -> LedgerFuture<'_, SlotAnswer> {
            let answer = if self.reachable.load(std::sync::atomic::Ordering::SeqCst) {
                Ok(SlotAnswer::Taken(HeldSlot::new(())))
            } else {
                Err(Unreachable)
            };
            Box::pin(async move { answer })
        }

        fn replicas(&self) -> u32 {
            3
        }
    }
}
