//! Authorization, before any Okta call: callers that are not authenticated are refused
//! UNAUTHENTICATED; the policy ([`policy`], reloaded by [`store`]) decides which RPCs each
//! caller may call (PERMISSION_DENIED naming the missing permission), roles scoped to groups
//! confine the call to them ([`scope`]); in read-only mode every mutating RPC is refused
//! FAILED_PRECONDITION.

pub mod pattern;
pub mod policy;
pub mod scope;
pub mod store;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use futures::future::BoxFuture;
use tower::{Layer, Service};

use crate::api::named_ids::note_named_ids;
use crate::api::status;
use crate::auth::Authentication;
use crate::config::{AuthSettings, AuthzSettings};
use crate::methods;
use okta_client::OktaClient;
use policy::{Decision, Policy};
use scope::{Scope, ScopeIndex};
use store::PolicyStore;

/// Decides whether a request may proceed.
#[derive(Debug)]
pub struct Authorizer {
    read_only: bool,
    policy: Arc<PolicyStore>,
    scopes: Arc<ScopeIndex>,
}

impl Authorizer {
    /// Loads the policy (refusing to start on an invalid one) and starts its reloader and the
    /// group-scope index; announces read-only mode and an open policy in the startup log.
    pub fn start(
        settings: &AuthzSettings,
        auth: &AuthSettings,
        okta: OktaClient,
    ) -> anyhow::Result<Self> {
        let policy = Arc::new(match &settings.policy_file {
            Some(path) => PolicyStore::load(path).with_context(|| {
                format!("`authz.policy_file` (`{}`) is not usable", path.display())
            })?,
            None => {
                anyhow::ensure!(
                    auth.insecure,
                    "`authz.policy_file` is not set: with caller authentication on, a policy \
                     must say who may do what"
                );
                tracing::warn!(
                    "INSECURE: no authorization policy; every caller may call every RPC"
                );
                PolicyStore::fixed(Policy::allow_all())
            }
        });
        policy.spawn_reloader(Duration::from_millis(settings.reload_interval_ms));
        let protected = settings
            .protected_group_patterns()
            .map_err(|problems| anyhow::anyhow!("{}", problems.join("; ")))?;
        let scopes = Arc::new(ScopeIndex::new(okta, protected));
        let patterns_from = Arc::downgrade(&policy);
        scopes.spawn_refresher(
            Duration::from_millis(settings.scope_refresh_ms),
            move || {
                patterns_from
                    .upgrade()
                    .map(|store| store.current().scoped_groups())
                    .unwrap_or_default()
            },
        );
        if settings.read_only {
            tracing::warn!("READ-ONLY: every RPC that changes Okta is refused (`authz.read_only`)");
        }
        Ok(Self {
            read_only: settings.read_only,
            policy,
            scopes,
        })
    }

    /// The policy in force (fairness reads the roles' shares from it).
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.current()
    }

    /// The group-scope index, told about membership changes made through the gateway.
    pub fn scopes(&self) -> Arc<ScopeIndex> {
        self.scopes.clone()
    }

    /// `Ok(scope)` when the request may go on (confined to `scope` when one is given); the
    /// refusal status otherwise.
    fn check<B>(&self, request: &http::Request<B>) -> Result<Option<Scope>, tonic::Status> {
        let path = request.uri().path();
        let caller = match request.extensions().get::<Authentication>() {
            Some(Authentication::NotRequired) => return Ok(None),
            Some(Authentication::Authenticated(caller)) => caller,
            Some(Authentication::Refused(why)) => return Err(status::unauthenticated(why)),
            None => return Err(status::unauthenticated("no authentication ran")),
        };
        let rpc = path.trim_start_matches('/');
        let scope = match self.policy.current().decide(&caller.identity, rpc) {
            Decision::Denied { roles } => {
                let held = if roles.is_empty() {
                    "it holds no role".to_owned()
                } else {
                    format!("none of its roles ({}) allows it", roles.join(", "))
                };
                return Err(status::permission_denied(
                    rpc,
                    &format!("caller `{}`: {held}", caller.identity),
                ));
            }
            Decision::Allowed { scope } if scope.is_empty() => None,
            Decision::Allowed { scope } => Some(Scope::new(scope, self.scopes.clone(), rpc)),
        };
        if self.read_only && methods::of(path).changes_okta() {
            return Err(status::read_only(rpc));
        }
        Ok(scope)
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

/// Refuses what [`Authorizer`] refuses, answering without calling the service; runs allowed
/// scoped calls inside their scope.
#[derive(Clone, Debug)]
pub struct Authorize<S> {
    inner: S,
    authorizer: Arc<Authorizer>,
}

impl<S, RequestBody> Service<http::Request<RequestBody>> for Authorize<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    RequestBody: http_body::Body + Send + 'static,
    RequestBody::Error: Into<tonic::codegen::StdError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        match self.authorizer.check(&request) {
            Ok(None) => Box::pin(self.inner.call(request)),
            Ok(Some(scope)) => Box::pin(scope::with_scope(scope, self.inner.call(request))),
            Err(refusal) => {
                tracing::warn!(rpc = request.uri().path(), code = ?refusal.code(),
                    message = refusal.message(), "refused before any Okta call");
                // An authenticated caller's refusal is audited with the ids it named.
                let identified = matches!(
                    request.extensions().get::<Authentication>(),
                    Some(Authentication::Authenticated(_))
                );
                let path = request.uri().path().to_owned();
                Box::pin(async move {
                    if identified {
                        note_named_ids(&path, request.into_body()).await;
                    }
                    Ok(refusal.into_http())
                })
            }
        }
    }
}
