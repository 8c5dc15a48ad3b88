//! Per-caller fairness: one noisy caller must not take the gateway's concurrency or the Okta
//! rate-limit budget every other service depends on. Each authenticated caller may have at
//! most its share of RPCs in flight, of open streams, and of each Okta bucket per window
//! (defaults in `fairness.*`, raised or lowered per role in the policy). Over its share it gets
//! RESOURCE_EXHAUSTED with RetryInfo at once, while other callers keep being served.
//!
//! With replicas sharing a coordination server, RPCs in flight and open streams are counted
//! across them (`coordination::in_flight`, which claims a caller's places a few at a time so
//! most calls enter without a round trip), as the Okta budget shares are (the client's shared
//! ledger), so each share holds for the deployment rather than once per replica.
//!
//! In insecure mode every caller is the same `anonymous`, so fairness has nobody to be fair
//! between and does not apply.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Answer, Inner, Next, Request, Response, Step};
use crate::auth::{Authentication, Mechanism};
use crate::authz::Authorizer;
use crate::config::{Checking, FairnessSettings, Section, checked};
use crate::context::RequestContext;
use crate::coordination::Coordination;
use crate::coordination::in_flight::{Place, SharedInFlight, SharedPlace};
use crate::methods;
use crate::status;
use okta_client::budget::CallerShare;

/// When a caller over its concurrency share may try again.
const RETRY_AFTER: Duration = Duration::from_millis(250);
/// Callers remembered before idle ones are forgotten.
const MAX_TRACKED_CALLERS: usize = 10_000;

impl Section for FairnessSettings {
    type Valid = ();

    fn validate(&self, _checking: &Checking<'_>) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.max_in_flight_per_caller == 0 || self.max_streams_per_caller == 0 {
            problems.push(
                "`fairness.max_in_flight_per_caller` and `fairness.max_streams_per_caller` must be \
                 at least 1"
                    .to_owned(),
            );
        }
        if !(1..=100).contains(&self.okta_budget_percent_per_caller) {
            problems.push(
                "`fairness.okta_budget_percent_per_caller` must be between 1 and 100".to_owned(),
            );
        }
        checked(problems, ())
    }
}

/// A caller, and whether the slots are for streams.
type SlotKey = (Arc<str>, bool);

/// Each caller's slots: (limit, semaphore) for RPCs and for streams.
#[derive(Debug, Default)]
struct Slots {
    callers: Mutex<HashMap<SlotKey, (u32, Arc<Semaphore>)>>,
}

impl Slots {
    /// A slot of `caller`'s, or `None` when all `limit` are taken. A changed limit (a policy
    /// reload) starts a new semaphore; slots held under the old one end with their calls.
    fn try_take(
        &self,
        caller: &Arc<str>,
        stream: bool,
        limit: u32,
    ) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut callers = self.callers.lock().unwrap_or_else(PoisonError::into_inner);
            if callers.len() >= MAX_TRACKED_CALLERS {
                callers.retain(|_, (limit, semaphore)| {
                    semaphore.available_permits() < *limit as usize
                });
            }
            let entry = callers
                .entry((caller.clone(), stream))
                .or_insert_with(|| (limit, Arc::new(Semaphore::new(limit as usize))));
            if entry.0 != limit {
                *entry = (limit, Arc::new(Semaphore::new(limit as usize)));
            }
            entry.1.clone()
        };
        semaphore.try_acquire_owned().ok()
    }
}

/// One of a caller's slots, held while its call runs; with replicas sharing a server, the
/// place it took in their count too. Both are given back when it is dropped.
struct Slot {
    _permit: OwnedSemaphorePermit,
    _place: Option<SharedPlace>,
}

/// Enforces each caller's shares; see the module docs.
#[derive(Clone)]
pub struct Fairness {
    settings: FairnessSettings,
    authorizer: Arc<Authorizer>,
    slots: Arc<Slots>,
    /// The count of every replica's slots, when replicas share a server.
    shared: Option<SharedInFlight>,
}

impl std::fmt::Debug for Fairness {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Fairness")
            .field("settings", &self.settings)
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl Fairness {
    /// Shares from `settings`, overridden per role by `authorizer`'s policy, counted across
    /// the replicas sharing `coordination`'s server when there is one.
    pub fn new(
        settings: FairnessSettings,
        authorizer: Arc<Authorizer>,
        coordination: Option<Coordination>,
    ) -> Self {
        Self {
            settings,
            authorizer,
            slots: Arc::new(Slots::default()),
            shared: coordination.map(SharedInFlight::start),
        }
    }
}

/// The refusal of a caller holding `limit` slots already.
fn over_share(caller: &str, rpc: &str, stream: bool, limit: u32) -> Response {
    tracing::warn!(caller = %caller, rpc, limit, stream,
        "caller over its concurrency share; refused");
    status::caller_over_share(
        if stream {
            "open streams"
        } else {
            "RPCs in flight"
        },
        limit,
        RETRY_AFTER,
    )
    .into_http()
}

impl Step for Fairness {
    fn handle<S: Inner>(&self, mut request: Request, next: Next<'_, S>) -> Answer<S::Error> {
        let caller = match request.extensions().get::<Authentication>() {
            Some(Authentication::Authenticated(caller))
                if caller.mechanism != Mechanism::Insecure =>
            {
                caller.identity.clone()
            }
            _ => return Box::pin(next.call(request)),
        };
        let settings = &self.settings;
        let roles = self.authorizer.policy().shares(&caller);
        let stream = methods::of(request.uri().path()).server_streaming;
        let limit = if stream {
            settings.max_streams_per_caller
        } else {
            roles
                .max_in_flight
                .unwrap_or(settings.max_in_flight_per_caller)
        };
        let Some(permit) = self.slots.try_take(&caller, stream, limit) else {
            let refusal = over_share(&caller, request.uri().path(), stream, limit);
            return Box::pin(async move { Ok(refusal) });
        };
        RequestContext::of_http(&mut request)
            .okta()
            .set_share(CallerShare {
                caller: caller.clone(),
                percent: roles
                    .okta_budget_percent
                    .unwrap_or(settings.okta_budget_percent_per_caller),
            });
        let Some(shared) = self.shared.clone() else {
            let slot = Slot {
                _permit: permit,
                _place: None,
            };
            let response = next.call(request);
            return Box::pin(async move { Ok(holding(response.await?, slot, stream)) });
        };
        let mut service = next.into_service();
        Box::pin(async move {
            let place = match shared.enter(&caller, stream, limit).await {
                Place::Taken(place) | Place::Alone(place) => Some(place),
                Place::Full => return Ok(over_share(&caller, request.uri().path(), stream, limit)),
            };
            let slot = Slot {
                _permit: permit,
                _place: place,
            };
            Ok(holding(service.call(request).await?, slot, stream))
        })
    }
}

/// `response`, holding `slot` as long as the call runs.
fn holding(response: Response, slot: Slot, stream: bool) -> Response {
    if !stream {
        // A unary call is done once its answer is ready: its slot is free now.
        drop(slot);
        return response;
    }
    // A stream's slot is held until its body ends.
    response.map(|body| tonic::body::Body::new(HoldingSlot { body, _slot: slot }))
}

/// A response body that holds its caller's slot until the body is dropped.
struct HoldingSlot {
    body: tonic::body::Body,
    _slot: Slot,
}

impl http_body::Body for HoldingSlot {
    type Data = <tonic::body::Body as http_body::Body>::Data;
    type Error = <tonic::body::Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{assert_reported, load};

    #[test]
    fn every_caller_gets_at_least_one_slot_and_part_of_the_budget() {
        let settings = load(&[
            ("IDGW_FAIRNESS__MAX_STREAMS_PER_CALLER", "0"),
            ("IDGW_FAIRNESS__OKTA_BUDGET_PERCENT_PER_CALLER", "101"),
        ]);
        assert_reported(
            &settings,
            &[
                "`fairness.max_streams_per_caller` must be at least 1",
                "`fairness.okta_budget_percent_per_caller` must be between 1 and 100",
            ],
        );
    }
}
