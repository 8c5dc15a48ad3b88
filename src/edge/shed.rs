//! Load shedding: at most `grpc.max_in_flight_rpcs` identity RPCs are served at once; more are
//! refused at once with RESOURCE_EXHAUSTED and a RetryInfo, instead of queueing until they time
//! out. Health checks and reflection are never shed, so Kubernetes keeps seeing a live server.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::{Answer, Inner, Next, Request, Step};
use crate::status::overloaded;

/// Paths served whatever the load.
const NEVER_SHED: &[&str] = &["/grpc.health.v1.Health/", "/grpc.reflection."];
/// When a refused caller may try again.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// The load-shedding step; see the module docs.
#[derive(Clone, Debug)]
pub struct Shed {
    slots: Arc<Semaphore>,
}

impl Shed {
    /// Serves at most `max_in_flight` identity RPCs at once.
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_in_flight.max(1))),
        }
    }
}

impl Step for Shed {
    fn handle<S: Inner>(&self, request: Request, next: Next<'_, S>) -> Answer<S::Error> {
        let path = request.uri().path();
        if NEVER_SHED.iter().any(|prefix| path.starts_with(prefix)) {
            return Box::pin(next.call(request));
        }
        match self.slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let response = next.call(request);
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
