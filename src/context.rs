//! [`RequestContext`]: everything that travels with one RPC, in one value. The outermost edge
//! layer (`deadline.rs`) creates it into the request's extensions with the caller's deadline;
//! later layers fill in the rest (fairness the caller's Okta budget share, authorization the
//! group scope, audit what it collects); handlers take it from the request
//! ([`RequestContext::of`]) and hand its Okta part to every Okta call explicitly.

use std::sync::{Arc, OnceLock};

use tokio::time::Instant;

use crate::authz::scope::Scope;
use okta_client::{CallContext, Notes};

/// One RPC's deadline, Okta budget share, group scope, audit targets and Okta request ids.
#[derive(Debug, Default)]
pub struct RequestContext {
    /// What the Okta client reads (deadline, share) and records (request ids, departure).
    okta: CallContext,
    /// Set by the authorization layer when the caller's roles confine the call to groups.
    scope: OnceLock<Scope>,
    /// The ids the call acts on (`user_id=00u…`), while the audit layer collects them.
    targets: Notes,
}

impl RequestContext {
    /// The context of an RPC that must be answered by `deadline`.
    pub fn until(deadline: Instant) -> Self {
        Self {
            okta: CallContext::until(deadline),
            ..Self::default()
        }
    }

    /// The context the edge layers put in `request`'s extensions; an unbounded one when none
    /// did (a service called without the edge layers).
    pub fn of<T>(request: &tonic::Request<T>) -> Arc<Self> {
        request
            .extensions()
            .get::<Arc<Self>>()
            .cloned()
            .unwrap_or_default()
    }

    /// The context an outer layer put in `request`'s extensions, for the layers after it; put
    /// there now, unbounded, when none did (a layer used without the outermost one).
    pub fn of_http<B>(request: &mut http::Request<B>) -> Arc<Self> {
        request
            .extensions_mut()
            .get_or_insert_default::<Arc<Self>>()
            .clone()
    }

    /// What the Okta calls of this RPC run under.
    pub fn okta(&self) -> &CallContext {
        &self.okta
    }

    /// Confines the RPC to `scope`; a scope set once stays.
    pub fn set_scope(&self, scope: Scope) {
        let _ = self.scope.set(scope);
    }

    /// The group scope the RPC is confined to, if any.
    pub fn scope(&self) -> Option<&Scope> {
        self.scope.get()
    }

    /// Starts keeping the ids the RPC notes ([`RequestContext::note_target`]), for its audit
    /// record.
    pub fn collect_targets(&self) {
        self.targets.collect();
    }

    /// Notes an id the RPC acts on (`user_id=00u…`), for its audit record. Ids are validated
    /// before they are noted, so nothing a caller writes freely reaches the audit log.
    pub fn note_target(&self, field: &str, id: &str) {
        self.targets.note(|| format!("{field}={id}"));
    }

    /// The ids noted since [`RequestContext::collect_targets`], leaving none behind.
    pub fn take_targets(&self) -> Vec<String> {
        self.targets.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_kept_only_while_collected() {
        let cx = RequestContext::default();
        cx.note_target("user_id", "00u1");
        cx.collect_targets();
        cx.note_target("group_id", "00g1");
        assert_eq!(cx.take_targets(), ["group_id=00g1"]);
        assert!(cx.take_targets().is_empty());
    }

    #[test]
    fn a_request_without_edge_layers_gets_an_unbounded_context() {
        let request = tonic::Request::new(());
        assert_eq!(RequestContext::of(&request).okta().time_left(), None);
        let mut request = tonic::Request::new(());
        let cx = Arc::new(RequestContext::default());
        request.extensions_mut().insert(cx.clone());
        assert!(Arc::ptr_eq(&RequestContext::of(&request), &cx));
    }
}
