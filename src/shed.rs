//! Load shedding: at most `grpc.max_in_flight_rpcs` identity RPCs are served at once; more are
//! refused at once with RESOURCE_EXHAUSTED and a RetryInfo, instead of queueing until they time
//! out. Health checks and reflection are never shed, so Kubernetes keeps seeing a live server.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tower::{Layer, Service};

use crate::status::overloaded;

/// Paths served whatever the load.
const NEVER_SHED: &[&str] = &["/grpc.health.v1.Health/", "/grpc.reflection."];
/// When a refused caller may try again.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// Applies [`Shed`] to every service.
#[derive(Clone, Debug)]
pub struct ShedLayer {
    slots: Arc<Semaphore>,
}

impl ShedLayer {
    /// Serves at most `max_in_flight` identity RPCs at once.
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_in_flight.max(1))),
        }
    }
}

impl<S> Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Shed {
            inner,
            slots: self.slots.clone(),
        }
    }
}

/// The load-shedding service; see the module docs.
#[derive(Clone, Debug)]
pub struct Shed<S> {
    inner: S,
    slots: Arc<Semaphore>,
}

impl<S, RequestBody> Service<http::Request<RequestBody>> for Shed<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let path = request.uri().path();
        if NEVER_SHED.iter().any(|prefix| path.starts_with(prefix)) {
            return Box::pin(self.inner.call(request));
        }
        match self.slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let response = self.inner.call(request);
                Box::pin(async move {
                    let result = response.await;
                    drop(slot);
                    result
                })
            }
            Err(_) => {
                tracing::warn!(rpc = path, "overloaded: refusing an RPC");
                Box::pin(async { Ok(overloaded(RETRY_AFTER).into_http()) })
            }
        }
    }
}
