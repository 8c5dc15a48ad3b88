//! Group-scoped delegation: a role scoped to group-name patterns (`team-x-*`) may act only on
//! groups whose name matches and on users who are members of such groups.
//!
//! Deciding must not cost an Okta call per request, so that a refused request costs none: a
//! [`ScopeIndex`] keeps the scoped groups (id and name) and their members (id and login),
//! loaded at start and refreshed every `authz.scope_refresh_ms`; membership changes made
//! through the gateway update it at once. The authorization layer puts the call's scope in a
//! task-local ([`with_scope`]); the handlers' one validation step ([`crate::api::validate`])
//! hands every parsed target to [`check_targets`] before anything reaches Okta.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tonic::Status;

use super::pattern::Pattern;
use crate::api::status::permission_denied;
use crate::okta::{Expression, GroupQuery, OktaClient, OktaError, OktaId, Operator, PageRequest};

/// Largest page the index reads.
const PAGE_SIZE: u32 = 200;

/// What one call may touch: the group-name patterns of the roles that allow it.
#[derive(Clone, Debug)]
pub struct Scope {
    patterns: Vec<Pattern>,
    index: Arc<ScopeIndex>,
    rpc: String,
    /// Membership changes name a user that need not be a member yet: only the group counts.
    group_only: bool,
}

impl Scope {
    /// The scope of one call of `rpc` confined to `patterns`.
    pub fn new(patterns: Vec<Pattern>, index: Arc<ScopeIndex>, rpc: &str) -> Self {
        let group_only = rpc.ends_with("/AddGroupMember") || rpc.ends_with("/RemoveGroupMember");
        Self {
            patterns,
            index,
            rpc: rpc.to_owned(),
            group_only,
        }
    }

    fn describe(&self) -> String {
        self.patterns
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A target a call names, as parsed by the handler.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// A group id.
    Group(&'a str),
    /// A user id.
    User(&'a str),
    /// A user's login.
    Login(&'a str),
    /// Anything else (a device): never inside a group scope.
    Other(&'a str),
}

tokio::task_local! {
    static SCOPE: Scope;
}

/// Runs `work` (one RPC) confined to `scope`.
pub async fn with_scope<F: Future>(scope: Scope, work: F) -> F::Output {
    SCOPE.scope(scope, work).await
}

/// PERMISSION_DENIED unless every target of the current call is inside its scope; `Ok` for
/// unscoped calls. A scoped call with no target at all is refused: it would act org-wide.
pub fn check_targets(targets: &[Target<'_>]) -> Result<(), Status> {
    let Ok(scope) = SCOPE.try_with(Clone::clone) else {
        return Ok(());
    };
    let deny = |what: String| {
        Err(permission_denied(
            &scope.rpc,
            &format!(
                "the caller's roles allow it only for groups named {} and their members; {what}",
                scope.describe()
            ),
        ))
    };
    if targets.is_empty() {
        return deny("this call names no group or user".to_owned());
    }
    let Some(snapshot) = scope.index.snapshot() else {
        return Err(Status::unavailable(
            "the group-scope index is still loading; retry shortly",
        ));
    };
    for target in targets {
        let inside = match *target {
            Target::Group(id) => snapshot.group_in(id, &scope.patterns),
            Target::User(_) if scope.group_only => true,
            Target::User(id) => snapshot.user_in(id, &scope.patterns),
            Target::Login(login) => snapshot
                .logins
                .get(&login.to_lowercase())
                .is_some_and(|id| snapshot.user_in(id, &scope.patterns)),
            Target::Other(_) => false,
        };
        if !inside {
            return deny(match *target {
                Target::Group(id) => format!("group {id} is not one of them"),
                Target::User(id) => format!("user {id} is not a member of one"),
                Target::Login(_) => "that login is not a member of one".to_owned(),
                Target::Other(id) => format!("{id} is outside any group"),
            });
        }
    }
    Ok(())
}

/// The scoped groups and their members at one moment.
#[derive(Debug, Default)]
struct Snapshot {
    /// Group id to name.
    groups: HashMap<String, String>,
    /// User id to the ids of the scoped groups it belongs to.
    members: HashMap<String, HashSet<String>>,
    /// Lowercased login to user id.
    logins: HashMap<String, String>,
}

impl Snapshot {
    fn group_in(&self, group_id: &str, patterns: &[Pattern]) -> bool {
        self.groups
            .get(group_id)
            .is_some_and(|name| patterns.iter().any(|pattern| pattern.matches(name)))
    }

    fn user_in(&self, user_id: &str, patterns: &[Pattern]) -> bool {
        self.members.get(user_id).is_some_and(|groups| {
            groups
                .iter()
                .any(|group_id| self.group_in(group_id, patterns))
        })
    }
}

/// The groups every scoped role may touch, and their members; see the module docs.
#[derive(Debug)]
pub struct ScopeIndex {
    okta: OktaClient,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
}

impl ScopeIndex {
    /// An empty index reading from `okta`; [`ScopeIndex::refresh`] fills it.
    pub fn new(okta: OktaClient) -> Self {
        Self {
            okta,
            snapshot: RwLock::new(None),
        }
    }

    fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reads every group matching `patterns`, and their members, from Okta, then swaps the
    /// index in whole. On failure the previous index stays.
    pub async fn refresh(&self, patterns: &[Pattern]) -> Result<(), OktaError> {
        let mut snapshot = Snapshot::default();
        for pattern in patterns {
            let prefix = pattern.literal_prefix();
            let query = if prefix.is_empty() {
                GroupQuery::All
            } else {
                GroupQuery::Search(Expression::compare("profile.name", Operator::Sw, prefix))
            };
            let mut after = None;
            loop {
                let page = self
                    .okta
                    .list_groups(
                        &query,
                        &PageRequest {
                            limit: PAGE_SIZE,
                            after,
                        },
                    )
                    .await?;
                for group in page.items {
                    let name = group.profile.get("name").and_then(|name| name.as_str());
                    if let Some(name) = name.filter(|name| pattern.matches(name)) {
                        snapshot.groups.insert(group.id, name.to_owned());
                    }
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        let group_ids: Vec<String> = snapshot.groups.keys().cloned().collect();
        for group_id in group_ids {
            let Ok(id) = OktaId::parse(&group_id) else {
                continue;
            };
            let mut after = None;
            loop {
                let page = self
                    .okta
                    .list_group_members(
                        &id,
                        &PageRequest {
                            limit: PAGE_SIZE,
                            after,
                        },
                    )
                    .await?;
                for user in page.items {
                    if let Some(login) = user.profile.get("login").and_then(|login| login.as_str())
                    {
                        snapshot
                            .logins
                            .insert(login.to_lowercase(), user.id.clone());
                    }
                    snapshot
                        .members
                        .entry(user.id)
                        .or_default()
                        .insert(group_id.clone());
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        tracing::info!(
            groups = snapshot.groups.len(),
            members = snapshot.members.len(),
            "group-scope index refreshed"
        );
        *self
            .snapshot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(snapshot));
        Ok(())
    }

    /// Records a membership change made through the gateway, so a delegated caller can act on
    /// a user it just added without waiting for the next refresh.
    pub fn membership_changed(&self, group_id: &str, user_id: &str, added: bool) {
        let mut guard = self
            .snapshot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(current) = guard.as_ref() else {
            return;
        };
        if !current.groups.contains_key(group_id) {
            return;
        }
        let mut members = current.members.clone();
        if added {
            members
                .entry(user_id.to_owned())
                .or_default()
                .insert(group_id.to_owned());
        } else if let Some(groups) = members.get_mut(user_id) {
            groups.remove(group_id);
        }
        *guard = Some(Arc::new(Snapshot {
            groups: current.groups.clone(),
            members,
            logins: current.logins.clone(),
        }));
    }

    /// Keeps the index fresh: a refresh now, then every `interval`, reading the patterns from
    /// `patterns` each time (the policy may have been reloaded). Ends when the index is dropped.
    pub fn spawn_refresher(
        self: &Arc<Self>,
        interval: Duration,
        patterns: impl Fn() -> Vec<Pattern> + Send + 'static,
    ) {
        let index = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(strong) = index.upgrade() else {
                    return;
                };
                let current = patterns();
                if !current.is_empty() {
                    if let Err(error) = strong.refresh(&current).await {
                        tracing::error!(%error, "group-scope index refresh failed; the previous index stays");
                    }
                }
                drop(strong);
                tokio::time::sleep(interval).await;
            }
        });
    }
}
