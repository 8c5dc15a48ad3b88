//! Authorization: before any Okta call, refuse callers that are not authenticated
//! (UNAUTHENTICATED) and, in read-only mode, every mutating RPC (FAILED_PRECONDITION).

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use tower::{Layer, Service};

use crate::api::audit::MUTATING_METHODS;
use crate::api::status;
use crate::auth::Authentication;
use crate::config::AuthzSettings;

/// Decides whether a request may proceed.
#[derive(Debug)]
pub struct Authorizer {
    read_only: bool,
}

impl Authorizer {
    /// Builds the authorizer; announces read-only mode in the startup log.
    pub fn from_settings(settings: &AuthzSettings) -> Self {
        if settings.read_only {
            tracing::warn!("READ-ONLY: every RPC that changes Okta is refused (`authz.read_only`)");
        }
        Self {
            read_only: settings.read_only,
        }
    }

    /// `Ok` when the request may go on; the refusal status otherwise.
    fn check<B>(&self, request: &http::Request<B>) -> Result<(), tonic::Status> {
        let path = request.uri().path();
        match request.extensions().get::<Authentication>() {
            Some(Authentication::NotRequired) => return Ok(()),
            Some(Authentication::Authenticated(_)) => {}
            Some(Authentication::Refused(why)) => return Err(status::unauthenticated(why)),
            None => return Err(status::unauthenticated("no authentication ran")),
        }
        if self.read_only && MUTATING_METHODS.contains(&path) {
            return Err(status::read_only(path.trim_start_matches('/')));
        }
        Ok(())
    }
}

/// Applies [`Authorize`] to every service.
#[derive(Clone, Debug)]
pub struct AuthorizationLayer {
    authorizer: Arc<Authorizer>,
}

impl AuthorizationLayer {
    /// Checks every request with `authorizer`.
    pub fn new(authorizer: Arc<Authorizer>) -> Self {
        Self { authorizer }
    }
}

impl<S> Layer<S> for AuthorizationLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorize {
            inner,
            authorizer: self.authorizer.clone(),
        }
    }
}

/// Refuses what [`Authorizer`] refuses, answering without calling the service.
#[derive(Clone, Debug)]
pub struct Authorize<S> {
    inner: S,
    authorizer: Arc<Authorizer>,
}

impl<S, RequestBody> Service<http::Request<RequestBody>> for Authorize<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Self::Response, Self::Error>>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        match self.authorizer.check(&request) {
            Ok(()) => Either::Left(self.inner.call(request)),
            Err(refusal) => {
                tracing::warn!(rpc = request.uri().path(), code = ?refusal.code(),
                    message = refusal.message(), "refused before any Okta call");
                Either::Right(ready(Ok(refusal.into_http())))
            }
        }
    }
}
