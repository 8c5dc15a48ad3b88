//! Authentication at the edge: who sent each request ([`crate::auth`] decides), recorded in
//! its extensions as an [`Authentication`] for the audit, authorization and fairness layers.
//! Nothing is refused here: the authorization layer refuses what was not authenticated.

use std::sync::Arc;

use super::{Answer, Inner, Next, Request, Step};
use crate::auth::{Authenticator, Presented};

/// Records each request's [`Authentication`](crate::auth::Authentication) in its extensions. It hands the request on only
/// after the checks, which may wait (the JWKS reload after an unknown `kid`).
#[derive(Clone, Debug)]
pub struct Authenticate {
    authenticator: Arc<Authenticator>,
}

impl Authenticate {
    /// Authenticates every request with `authenticator`.
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self { authenticator }
    }
}

impl Step for Authenticate {
    fn handle<S: Inner>(&self, mut request: Request, next: Next<'_, S>) -> Answer<S::Error> {
        let presented = Presented::from_request(&request);
        let authenticator = self.authenticator.clone();
        let mut inner = next.into_service();
        Box::pin(async move {
            let authentication = authenticator.authenticate(presented).await;
            request.extensions_mut().insert(authentication);
            inner.call(request).await
        })
    }
}
