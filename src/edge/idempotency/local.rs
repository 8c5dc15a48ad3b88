//! The table of changes in this process: without a coordination server, or when it is
//! unreachable and `coordination.idempotency_when_unavailable` is `proceed`.

use std::sync::Arc;
use std::time::Duration;

use prost_reflect::DynamicMessage;
use tokio::sync::watch;

use super::recorded::RecordedAnswer;
use super::{Attempt, ChangeKey, Run};
use crate::edge::Response;
use crate::status;

/// Most changes remembered at once; the oldest make room. An answer is a few KiB at most (one
/// user), so this bounds the table to tens of MiB.
const MAX_REMEMBERED: u64 = 20_000;

/// Changes by key, each with the request that named it and, once known, its answer.
#[derive(Clone)]
pub(super) struct LocalTable {
    changes: moka::future::Cache<ChangeKey, Arc<Change>>,
}

/// One change: the request that named it (without its id) and, once known, its answer.
struct Change {
    request: DynamicMessage,
    answer: watch::Receiver<Option<Arc<RecordedAnswer>>>,
}

impl LocalTable {
    /// A table remembering outcomes for `ttl`.
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            changes: moka::future::Cache::builder()
                .max_capacity(MAX_REMEMBERED)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// How many changes are remembered.
    pub(super) fn len(&self) -> u64 {
        self.changes.entry_count()
    }

    /// The answer to `request` named by `key`: the first attempt's, which `attempt` makes when
    /// this is the first.
    pub(super) async fn answer(
        &self,
        key: ChangeKey,
        request: DynamicMessage,
        attempt: Attempt,
    ) -> Response {
        let (sender, receiver) = watch::channel(None);
        let entry = self
            .changes
            .entry(key.clone())
            .or_insert_with(async {
                Arc::new(Change {
                    request: request.clone(),
                    answer: receiver,
                })
            })
            .await;
        let fresh = entry.is_fresh();
        let change = entry.into_value();
        let attempt = if fresh {
            // The first attempt: it runs to its end even if this caller goes away.
            let changes = self.changes.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let answer = Arc::new(attempt.run(Run::First).await);
                if !answer.remembered() {
                    changes.invalidate(&key).await;
                }
                let _ = sender.send(Some(answer));
            });
            None
        } else {
            Some(attempt)
        };
        if change.request != request {
            return status::request_id_reused().into_http();
        }
        let mut answer = change.answer.clone();
        let recorded = match answer.wait_for(Option::is_some).await {
            Ok(recorded) => recorded.clone(),
            Err(_) => None,
        };
        match (recorded, attempt) {
            (Some(recorded), Some(attempt)) if recorded.outcome_unknown() => {
                self.settle(key, request, attempt).await
            }
            (Some(recorded), _) => recorded.replay(),
            // The first attempt's task ended without an answer (the server is stopping).
            (None, Some(attempt)) => self.settle(key, request, attempt).await,
            (None, None) => status::outcome_lost().into_http(),
        }
    }

    /// Settles an earlier attempt whose outcome is unknown with `attempt`, its changes withheld,
    /// and keeps what it found in place of the unknown (see the module docs of `idempotency`).
    async fn settle(&self, key: ChangeKey, request: DynamicMessage, attempt: Attempt) -> Response {
        let settled = Arc::new(attempt.run(Run::Settling).await);
        if settled.remembered() {
            let (_, answer) = watch::channel(Some(settled.clone()));
            self.changes
                .insert(key, Arc::new(Change { request, answer }))
                .await;
        } else {
            self.changes.invalidate(&key).await;
        }
        settled.replay()
    }
}
