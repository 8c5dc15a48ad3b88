//! The caller edge: what every RPC passes through before its handler, as tower layers,
//! outermost first (`startup.rs` stacks them in this order, inside the RPC's telemetry):
//! [`deadline`] (DEADLINE_EXCEEDED at the caller's deadline, so everything below is bounded by
//! it), [`shed`] (load shedding), [`authenticate`] (who is calling), [`audit`] (the audit record
//! of changes and refusals), [`authorize`] (the policy, read-only mode, group scope),
//! [`idempotency`] (a change named by a `request_id` is made once) and [`fairness`] (each
//! caller's share), then [`request_size`] directly around the services.
//!
//! Each layer is a [`Step`]: what it does with one request, given the rest of the stack as
//! [`Next`]; [`EdgeLayer`] is the tower plumbing they share, with the RPC's telemetry
//! ([`crate::telemetry::rpc`]) outside them all. tower has no asynchronous
//! middleware made from a function. axum's `middleware::from_fn` is one, but it works on
//! axum's body types, clones and boxes the inner service for every request, and runs nothing
//! until its future is first polled, while the deadline is fixed when the call arrives (as
//! tonic's own timer is). A step runs in tower's `call` and returns the answer's future.
//!
//! The edge depends on the policy ([`crate::authz`]), the credentials ([`crate::auth`]), the
//! statuses ([`crate::status`]) and the Okta client's per-request values, never on the
//! handlers in [`crate::api`]; the handlers use only what the edge leaves with the request
//! (the scope, the audit targets).

pub mod audit;
pub mod authenticate;
pub mod authorize;
pub mod deadline;
pub mod fairness;
pub mod idempotency;
pub mod named_ids;
pub mod request_size;
pub mod shed;

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Layer, Service};

/// A request as tonic's server hands it to its layers.
pub type Request = http::Request<tonic::body::Body>;
/// An answer as the services below the edge give it.
pub type Response = http::Response<tonic::body::Body>;
/// The future of a step's answer.
pub type Answer<E> = BoxFuture<'static, Result<Response, E>>;

/// The services below an edge layer: tonic's router and the edge layers inside this one.
pub trait Inner:
    Service<Request, Response = Response, Future: Send + 'static, Error: Send + 'static>
    + Clone
    + Send
    + 'static
{
}

impl<S> Inner for S
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
}

/// What one edge layer does with a request: answer it itself, or hand it to `next` and do what
/// it must around the answer. Called when the request arrives, before its future is polled.
pub trait Step: Clone + Send + Sync + 'static {
    /// Handles `request`; `next` is the rest of the stack, ready for it.
    fn handle<S: Inner>(&self, request: Request, next: Next<'_, S>) -> Answer<S::Error>;
}

/// The rest of the stack below a step, made ready for one request.
pub struct Next<'a, S> {
    inner: &'a mut S,
}

impl<S: Inner> Next<'_, S> {
    /// Hands `request` on now; the step awaits the returned answer.
    pub fn call(self, request: Request) -> S::Future {
        self.inner.call(request)
    }

    /// The ready service itself, for a step that must wait before it hands the request on
    /// (authentication may fetch keys): the stack keeps a clone, which tower makes ready for
    /// the next request.
    pub fn into_service(self) -> S {
        let clone = self.inner.clone();
        std::mem::replace(self.inner, clone)
    }
}

/// Applies a [`Step`] to the services below it: the one Layer and Service every edge layer is.
#[derive(Clone, Debug)]
pub struct EdgeLayer<T> {
    step: T,
}

impl<T> EdgeLayer<T> {
    /// The layer running `step` for every request.
    pub fn new(step: T) -> Self {
        Self { step }
    }
}

impl<T: Clone, S> Layer<S> for EdgeLayer<T> {
    type Service = Edge<T, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Edge {
            step: self.step.clone(),
            inner,
        }
    }
}

/// A service running its [`Step`] in front of the services below it.
#[derive(Clone, Debug)]
pub struct Edge<T, S> {
    step: T,
    inner: S,
}

impl<T: Step, S: Inner> Service<Request> for Edge<T, S> {
    type Response = Response;
    type Error = S::Error;
    type Future = Answer<S::Error>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.step.handle(
            request,
            Next {
                inner: &mut self.inner,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tower::ServiceExt;

    use super::*;

    /// Answers itself with 403 when the request asks for it, else hands the request on, now or
    /// after a wait.
    #[derive(Clone)]
    struct Gate;

    impl Step for Gate {
        fn handle<S: Inner>(&self, request: Request, next: Next<'_, S>) -> Answer<S::Error> {
            match request.uri().path() {
                "/refuse" => Box::pin(async {
                    let mut answer = Response::new(tonic::body::Body::empty());
                    *answer.status_mut() = http::StatusCode::FORBIDDEN;
                    Ok(answer)
                }),
                "/wait" => {
                    let mut inner = next.into_service();
                    Box::pin(async move {
                        tokio::task::yield_now().await;
                        inner.call(request).await
                    })
                }
                _ => Box::pin(next.call(request)),
            }
        }
    }

    fn request(path: &str) -> Request {
        http::Request::builder()
            .uri(path)
            .body(tonic::body::Body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn a_step_answers_itself_or_hands_on_now_or_after_waiting() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let inner = tower::service_fn(move |_: Request| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(tonic::body::Body::empty())) }
        });
        let mut service = EdgeLayer::new(Gate).layer(inner);

        let refused = service.ready().await.unwrap().call(request("/refuse"));
        assert_eq!(refused.await.unwrap().status(), http::StatusCode::FORBIDDEN);
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        for path in ["/wait", "/now", "/wait"] {
            let answer = service.ready().await.unwrap().call(request(path)).await;
            assert_eq!(answer.unwrap().status(), http::StatusCode::OK, "{path}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
