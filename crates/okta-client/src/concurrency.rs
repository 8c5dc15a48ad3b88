//! Okta's concurrent-request ceiling, which, like its rate limits, counts the whole org.
//!
//! A replica never has more than `max_concurrent_requests` requests on the wire. With a
//! [`SharedBudget`] ledger that number holds for all replicas together: a replica holds slots
//! of the ceiling in the ledger, asking for a couple more than it needs when it needs one (so
//! requests starting together share a round trip), and gives back every slot it is not using
//! as each request ends, in the background, so no replica holds slots idle. While the ledger cannot be reached, the replica keeps to its part of the ceiling,
//! `max_concurrent_requests / replicas`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::context::CallContext;
use crate::ledger::SharedBudget;

/// Slots asked for beyond the one needed, for the requests starting next.
const SPARE: u32 = 2;
/// How long the ledger is left alone after it could not be reached.
const LEDGER_REST: Duration = Duration::from_secs(1);
/// Pauses between asking for a slot while the other replicas hold them all: short at first.
const FIRST_POLL: Duration = Duration::from_millis(5);
const LONGEST_POLL: Duration = Duration::from_millis(100);

/// The slots a request may be sent in; see the module docs.
pub(crate) struct Concurrency {
    local: Arc<Semaphore>,
    shared: Option<Arc<Shared>>,
}

/// This replica's part of the ceiling in the ledger.
struct Shared {
    ledger: Arc<dyn SharedBudget>,
    limit: u32,
    held: Mutex<Held>,
    /// Taken for every write to the ledger, so writes land in the order they were made.
    writing: tokio::sync::Mutex<()>,
    resting_until: Mutex<Option<Instant>>,
}

/// Slots in use and held in the ledger.
#[derive(Default)]
struct Held {
    in_use: u32,
    holding: u32,
}

/// One request's place on the wire; freed when dropped.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    shared: Option<Arc<Shared>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(shared) = &self.shared else {
            return;
        };
        let give_back = {
            let mut held = shared.held.lock().unwrap_or_else(PoisonError::into_inner);
            held.in_use = held.in_use.saturating_sub(1);
            // Nothing is held idle, so another replica waiting for a slot gets it.
            let idle = held.holding > held.in_use;
            held.holding = held.holding.min(held.in_use);
            idle
        };
        if give_back && !shared.resting() {
            let shared = shared.clone();
            tokio::spawn(async move {
                // Written in turn with the other writes, with what is held when it is written,
                // so a late write never lowers the ledger's count below what is held. A lost
                // write is set right by the next one, or by this replica's lease running out.
                let _turn = shared.writing.lock().await;
                let slots = shared.held().holding;
                let _ = shared.ledger.hold_slots(slots, shared.limit).await;
            });
        }
    }
}

impl Shared {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn resting(&self) -> bool {
        self.resting_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| Instant::now() < until)
    }

    /// Takes a slot if this replica holds one unused, or, without the ledger, if it uses
    /// less than its part of the ceiling.
    fn take(&self, alone: bool) -> bool {
        let mut held = self.held();
        let ledger = self.ledger.as_ref();
        let most = if alone {
            (self.limit / ledger.replicas().max(1)).max(1)
        } else {
            held.holding
        };
        if held.in_use < most {
            held.in_use += 1;
            return true;
        }
        false
    }
}

impl Concurrency {
    /// At most `limit` requests on the wire, counted with the other replicas through
    /// `ledger` when there is one.
    pub(crate) fn new(limit: u32, ledger: Option<Arc<dyn SharedBudget>>) -> Self {
        let limit = limit.max(1);
        Self {
            local: Arc::new(Semaphore::new(usize::try_from(limit).unwrap_or(1))),
            shared: ledger.map(|ledger| {
                Arc::new(Shared {
                    ledger,
                    limit,
                    held: Mutex::new(Held::default()),
                    writing: tokio::sync::Mutex::new(()),
                    resting_until: Mutex::new(None),
                })
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
                shared: None,
            });
        };
        let mut pause = FIRST_POLL;
        loop {
            let alone = shared.resting();
            if shared.take(alone) {
                return Some(Slot {
                    _permit: permit,
                    shared: Some(shared.clone()),
                });
            }
            if !alone {
                let turn = shared.writing.lock().await;
                let want = shared.held().in_use + 1 + SPARE;
                match shared.ledger.hold_slots(want, shared.limit).await {
                    Ok(granted) => {
                        shared.held().holding = granted;
                        drop(turn);
                        if shared.take(false) {
                            return Some(Slot {
                                _permit: permit,
                                shared: Some(shared.clone()),
                            });
                        }
                    }
                    Err(_) => {
                        *shared
                            .resting_until
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner) =
                            Some(Instant::now() + LEDGER_REST);
                        continue;
                    }
                }
            }
            // The other replicas hold every slot: one of them frees one eventually.
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
