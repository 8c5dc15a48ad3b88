//! Okta's concurrent-request ceiling, which, like its rate limits, counts the whole org.
//!
//! A replica never has more than `max_concurrent_requests` requests on the wire. With a
//! [`SharedBudget`] ledger that number holds for all replicas together: each request takes a
//! slot of the ceiling from the ledger, which keeps a few spare for this replica so most
//! requests take one without a round trip (how is the ledger's business). While the ledger
//! cannot be reached, the replica keeps to its part of the ceiling,
//! `max_concurrent_requests / replicas`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::context::CallContext;
use crate::ledger::{HeldSlot, SharedBudget, SlotAnswer};

/// Pauses between asking for a slot while the other replicas hold them all: short at first.
const FIRST_POLL: Duration = Duration::from_millis(5);
const LONGEST_POLL: Duration = Duration::from_millis(100);

/// The slots a request may be sent in; see the module docs.
pub(crate) struct Concurrency {
    local: Arc<Semaphore>,
    shared: Option<Shared>,
}

/// The ceiling shared through the ledger.
struct Shared {
    ledger: Arc<dyn SharedBudget>,
    limit: u32,
    /// This replica's requests on the wire, with slots from the ledger or taken alone.
    on_the_wire: Arc<AtomicU32>,
}

/// One request's place on the wire; freed when dropped.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    _shared: Option<SharedSlot>,
}

/// A request's place in the ceiling shared with the other replicas.
struct SharedSlot {
    on_the_wire: Arc<AtomicU32>,
    /// `None` for a slot taken while the ledger could not be reached.
    _held: Option<HeldSlot>,
}

impl Drop for SharedSlot {
    fn drop(&mut self) {
        self.on_the_wire.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shared {
    /// A slot the ledger granted.
    fn held(&self, held: HeldSlot) -> SharedSlot {
        self.on_the_wire.fetch_add(1, Ordering::Relaxed);
        SharedSlot {
            on_the_wire: self.on_the_wire.clone(),
            _held: Some(held),
        }
    }

    /// A slot without the ledger, if this replica has less than its part of the ceiling on
    /// the wire.
    fn alone(&self) -> Option<SharedSlot> {
        let most = (self.limit / self.ledger.replicas().max(1)).max(1);
        self.on_the_wire
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| {
                (count < most).then_some(count + 1)
            })
            .ok()?;
        Some(SharedSlot {
            on_the_wire: self.on_the_wire.clone(),
            _held: None,
        })
    }
}

impl Concurrency {
    /// At most `limit` requests on the wire, counted with the other replicas through
    /// `ledger` when there is one.
    pub(crate) fn new(limit: u32, ledger: Option<Arc<dyn SharedBudget>>) -> Self {
        let limit = limit.max(1);
        Self {
            local: Arc::new(Semaphore::new(usize::try_from(limit).unwrap_or(1))),
            shared: ledger.map(|ledger| Shared {
                ledger,
                limit,
                on_the_wire: Arc::default(),
            }),
        }
    }

    /// A slot, waited for no longer than the deadline of `cx`; `None` when none came.
    pub(crate) async fn acquire(&self, cx: &CallContext) -> Option<Slot> {
        let acquire = self.local.clone().acquire_owned();
        let permit = match cx.time_left() {
            Some(left) => tokio::time::timeout(left, acquire).await.ok()?.ok()?,
            None => acquire.await.ok()?,
        };
        let Some(shared) = &self.shared else {
            return Some(Slot {
                _permit: permit,
                _shared: None,
            });
        };
        let mut pause = FIRST_POLL;
        loop {
            let taken = match shared.ledger.take_slot(shared.limit).await {
                Ok(SlotAnswer::Taken(held)) => Some(shared.held(held)),
                Ok(SlotAnswer::Full) => None,
                Err(_) => shared.alone(),
            };
            if let Some(taken) = taken {
                return Some(Slot {
                    _permit: permit,
                    _shared: Some(taken),
                });
            }
            // The other replicas hold every slot, or this one its part while alone: one of
            // them frees one eventually.
            if cx.outlasts_deadline(pause) {
                return None;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;
    use crate::ledger::testing::FakeLedger;

    /// Takes slots until one does not come within a short deadline; how many came.
    async fn slots_at_once(concurrency: &Concurrency) -> Vec<Slot> {
        let cx = CallContext::until(Instant::now() + Duration::from_millis(50));
        let mut slots = Vec::new();
        while let Some(slot) = concurrency.acquire(&cx).await {
            slots.push(slot);
        }
        slots
    }

    #[tokio::test]
    async fn the_ceiling_is_the_replicas_together_or_without_the_ledger_a_part_of_it() {
        let shared = Concurrency::new(6, Some(FakeLedger::new(1, true)));
        assert_eq!(slots_at_once(&shared).await.len(), 6);
        let alone = Concurrency::new(6, Some(FakeLedger::new(1, false)));
        let held = slots_at_once(&alone).await;
        assert_eq!(held.len(), 2, "a third of 6, for each of 3 replicas");
        drop(held);
        assert_eq!(
            slots_at_once(&alone).await.len(),
            2,
            "ended requests free theirs"
        );
        assert_eq!(slots_at_once(&Concurrency::new(6, None)).await.len(), 6);
    }
}
