//! Authorization, before any Okta call: callers that are not authenticated are refused
//! UNAUTHENTICATED; the policy ([`policy`], reloaded by [`store`]) decides which RPCs each
//! caller may call (PERMISSION_DENIED naming the missing permission), roles scoped to groups
//! confine the call to them ([`scope`]); in read-only mode every mutating RPC is refused
//! FAILED_PRECONDITION. The layer that applies these decisions is [`crate::edge::authorize`].

pub mod pattern;
pub mod policy;
pub mod scope;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::auth::Authentication;
use crate::config::{AuthSettings, AuthzSettings, Checking, Section, WordList, checked};
use crate::methods;
use crate::status;
use okta_client::OktaClient;
use pattern::Pattern;
use policy::{Decision, Policy};
use scope::{Scope, ScopeIndex};
use store::PolicyStore;

/// Why the gateway will not start without `authz.policy_file` unless `auth.insecure`: an
/// authenticated caller must be allowed something by name.
const POLICY_REQUIRED: &str = "`authz.policy_file` is not set: with caller authentication on, a \
                               policy must say who may do what";

impl Section for AuthzSettings {
    type Valid = ();

    fn validate(&self, checking: &Checking<'_>) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !checking.settings.auth.insecure && self.policy_file.is_none() {
            problems.push(POLICY_REQUIRED.to_owned());
        }
        if self.reload_interval_ms == 0 || self.scope_refresh_ms == 0 {
            problems.push(
                "`authz.reload_interval_ms` and `authz.scope_refresh_ms` must be greater than zero"
                    .to_owned(),
            );
        }
        if let Err(bad) = self.protected_group_patterns() {
            problems.extend(bad);
        }
        checked(problems, ())
    }
}

impl AuthzSettings {
    /// The protected group-name patterns, each checked (an invalid one is a problem).
    fn protected_group_patterns(&self) -> Result<Vec<Pattern>, Vec<String>> {
        let texts = self
            .protected_groups
            .as_ref()
            .map(WordList::comma_separated)
            .unwrap_or_default();
        let (mut patterns, mut problems) = (Vec::new(), Vec::new());
        for text in texts {
            match Pattern::new(&text) {
                Ok(pattern) => patterns.push(pattern),
                Err(problem) => problems.push(format!("`authz.protected_groups`: {problem}")),
            }
        }
        checked(problems, patterns)
    }
}

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
                anyhow::ensure!(auth.insecure, POLICY_REQUIRED);
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
    pub fn check<B>(&self, request: &http::Request<B>) -> Result<Option<Scope>, tonic::Status> {
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

#[cfg(test)]
mod tests {
    use crate::config::WordList;
    use crate::config::testing::{assert_reported, load};

    #[test]
    fn protected_groups_are_comma_separated_patterns_and_bad_ones_are_reported() {
        let settings = load(&[(
            "IDGW_AUTHZ__PROTECTED_GROUPS",
            "Super Admins, okta-admins-*",
        )]);
        let patterns = settings.authz.protected_group_patterns().unwrap();
        assert!(patterns[0].matches("Super Admins"), "{patterns:?}");
        assert!(patterns[1].matches("okta-admins-eu"), "{patterns:?}");
        let mut bad = settings;
        bad.authz.protected_groups = Some(WordList::List(vec!["Admins\u{7}".to_owned()]));
        assert_reported(&bad, &["`authz.protected_groups`: pattern `Admins\\u{7}`"]);
    }

    #[test]
    fn a_policy_is_required_unless_callers_are_not_authenticated() {
        let settings = load(&[("IDGW_AUTHZ__SCOPE_REFRESH_MS", "0")]);
        assert_reported(
            &settings,
            &[
                "`authz.policy_file` is not set: with caller authentication on, a policy must \
                 say who may do what",
                "`authz.scope_refresh_ms` must be greater than zero",
            ],
        );
        let insecure = load(&[("IDGW_AUTH__INSECURE", "true")]);
        assert!(insecure.validate(true).is_ok());
    }
}
