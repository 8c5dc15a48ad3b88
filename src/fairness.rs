//! Per-caller fairness: one noisy caller must not take the gateway's concurrency or the Okta
//! rate-limit budget every other service depends on. Each authenticated caller may have at
//! most its share of RPCs in flight, of open streams, and of each Okta bucket per window
//! (defaults in `fairness.*`, raised or lowered per role in the policy). Over its share it gets
//! RESOURCE_EXHAUSTED with RetryInfo at once, while other callers keep being served.
//!
//! In insecure mode every caller is the same `anonymous`, so fairness has nobody to be fair
//! between and does not apply.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use crate::api::status;
use crate::auth::{Authentication, Mechanism};
use crate::authz::Authorizer;
use crate::config::FairnessSettings;
use crate::methods;
use okta_client::budget::{CallerShare, with_share};

/// When a caller over its concurrency share may try again.
const RETRY_AFTER: Duration = Duration::from_millis(250);
/// Callers remembered before idle ones are forgotten.
const MAX_TRACKED_CALLERS: usize = 10_000;

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

/// Applies [`Fairness`] to every service.
#[derive(Clone, Debug)]
pub struct FairnessLayer {
    settings: FairnessSettings,
    authorizer: Arc<Authorizer>,
    slots: Arc<Slots>,
}

impl FairnessLayer {
    /// Shares from `settings`, overridden per role by `authorizer`'s policy.
    pub fn new(settings: FairnessSettings, authorizer: Arc<Authorizer>) -> Self {
        Self {
            settings,
            authorizer,
            slots: Arc::new(Slots::default()),
        }
    }
}

impl<S> Layer<S> for FairnessLayer {
    type Service = Fairness<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Fairness {
            inner,
            layer: self.clone(),
        }
    }
}

/// Enforces each caller's shares; see the module docs.
#[derive(Clone, Debug)]
pub struct Fairness<S> {
    inner: S,
    layer: FairnessLayer,
}

impl<S, RequestBody> Service<http::Request<RequestBody>> for Fairness<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let caller = match request.extensions().get::<Authentication>() {
            Some(Authentication::Authenticated(caller))
                if caller.mechanism != Mechanism::Insecure =>
            {
                caller.identity.clone()
            }
            _ => return Box::pin(self.inner.call(request)),
        };
        let settings = &self.layer.settings;
        let roles = self.layer.authorizer.policy().shares(&caller);
        let stream = methods::of(request.uri().path()).server_streaming;
        let limit = if stream {
            settings.max_streams_per_caller
        } else {
            roles
                .max_in_flight
                .unwrap_or(settings.max_in_flight_per_caller)
        };
        let Some(slot) = self.layer.slots.try_take(&caller, stream, limit) else {
            tracing::warn!(caller = %caller, rpc = request.uri().path(), limit, stream,
                "caller over its concurrency share; refused");
            let refusal = status::caller_over_share(
                if stream {
                    "open streams"
                } else {
                    "RPCs in flight"
                },
                limit,
                RETRY_AFTER,
            );
            return Box::pin(async move { Ok(refusal.into_http()) });
        };
        let share = CallerShare {
            caller,
            percent: roles
                .okta_budget_percent
                .unwrap_or(settings.okta_budget_percent_per_caller),
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = with_share(share, response).await?;
            if !stream {
                // A unary call is done once its answer is ready: its slot is free now.
                drop(slot);
                return Ok(response);
            }
            // A stream's slot is held until its body ends.
            Ok(response.map(|body| tonic::body::Body::new(HoldingSlot { body, _slot: slot })))
        })
    }
}

/// A response body that holds its caller's slot until the body is dropped.
struct HoldingSlot {
    body: tonic::body::Body,
    _slot: OwnedSemaphorePermit,
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
