//! Authorization at the edge: refuses what the [`Authorizer`] refuses, answering without
//! calling the services (an authenticated caller's refusal is audited with the ids its request
//! named), and runs an allowed group-scoped call inside its scope.

use std::sync::Arc;

use super::named_ids::note_named_ids;
use super::{Answer, Inner, Next, Request, Step};
use crate::auth::Authentication;
use crate::authz::Authorizer;
use crate::context::RequestContext;

/// Applies the [`Authorizer`]'s decision to every request; see the module docs.
#[derive(Clone, Debug)]
pub struct Authorize {
    authorizer: Arc<Authorizer>,
}

impl Authorize {
    /// Checks every request with `authorizer`.
    pub fn new(authorizer: Arc<Authorizer>) -> Self {
        Self { authorizer }
    }
}

impl Step for Authorize {
    fn handle<S: Inner>(&self, mut request: Request, next: Next<'_, S>) -> Answer<S::Error> {
        match self.authorizer.check(&request) {
            Ok(None) => Box::pin(next.call(request)),
            Ok(Some(scope)) => {
                RequestContext::of_http(&mut request).set_scope(scope);
                Box::pin(next.call(request))
            }
            Err(refusal) => {
                tracing::warn!(rpc = request.uri().path(), code = ?refusal.code(),
                    message = refusal.message(), "refused before any Okta call");
                // An authenticated caller's refusal is audited with the ids it named.
                let identified = matches!(
                    request.extensions().get::<Authentication>(),
                    Some(Authentication::Authenticated(_))
                );
                let path = request.uri().path().to_owned();
                let cx = RequestContext::of_http(&mut request);
                Box::pin(async move {
                    if identified {
                        note_named_ids(&cx, &path, request.into_body()).await;
                    }
                    Ok(refusal.into_http())
                })
            }
        }
    }
}
