//! Group-scoped delegation: a role scoped to group-name patterns (`team-x-*`) may act only on
//! groups whose name matches and on users who are members of such groups, never on a member
//! of a protected group (`authz.protected_groups`), and never reaches a user it could not reach
//! before its own change: AddGroupMember takes only a user already in scope or a new hire (in
//! no group but Okta's built-in `Everyone`).
//!
//! A refusal must not cost an Okta call, so a [`ScopeIndex`] keeps the scoped groups (id and
//! name) and their members (id and login), loaded at start and refreshed every
//! `authz.scope_refresh_ms`; membership changes made through the gateway update it at once.
//! The index may be stale, so it only ever refuses: a call the index lets through is then
//! confirmed against Okta (each group's name, each user's groups), so a membership or a name
//! changed elsewhere since the last refresh (into a protected group, out of the scope) counts
//! at once. The authorization layer puts the call's scope in a task-local ([`with_scope`]); the
//! handlers' one validation step ([`crate::api::validate`]) hands every parsed target to
//! [`check_targets`] before anything reaches Okta.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tonic::Status;

use super::pattern::Pattern;
use crate::api::status::{
    OktaCall, internal, mapped, outside_scope, scope_loading, target_protected,
};
use okta_client::{
    Expression, GroupQuery, OktaClient, OktaError, OktaGroup, OktaId, Operator, PageRequest,
};

/// Largest page the index reads.
const PAGE_SIZE: u32 = 200;
/// Okta's type of its own groups (`Everyone`), which every user belongs to.
const BUILT_IN_GROUP: &str = "BUILT_IN";

/// What one call may touch: the group-name patterns of the roles that allow it.
#[derive(Clone, Debug)]
pub struct Scope {
    patterns: Vec<Pattern>,
    index: Arc<ScopeIndex>,
    rpc: String,
    /// AddGroupMember names a user who need not be in scope yet: a new hire may join.
    adds_member: bool,
}

impl Scope {
    /// The scope of one call of `rpc` confined to `patterns`.
    pub fn new(patterns: Vec<Pattern>, index: Arc<ScopeIndex>, rpc: &str) -> Self {
        Self {
            patterns,
            index,
            rpc: rpc.to_owned(),
            adds_member: rpc.ends_with("/AddGroupMember"),
        }
    }

    fn describe(&self) -> String {
        self.patterns
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether a group of this name is inside the scope.
    fn covers(&self, name: &str) -> bool {
        self.patterns.iter().any(|pattern| pattern.matches(name))
    }

    /// PERMISSION_DENIED: `what` is outside the scope.
    fn outside(&self, target: &str, what: &str) -> Status {
        outside_scope(
            &self.rpc,
            target,
            &format!(
                "the caller's roles allow it only for groups named {} and their members; {what}",
                self.describe()
            ),
        )
    }

    /// PERMISSION_DENIED: `target` is, or is a member of, the protected group `group`.
    fn protected(&self, target: &str, group: &str) -> Status {
        target_protected(
            &self.rpc,
            target,
            &format!(
                "{target} is {} the protected group `{group}` (`authz.protected_groups`), which \
                 no group-scoped role may reach",
                if target.starts_with("group") {
                    "named like"
                } else {
                    "a member of"
                }
            ),
        )
    }

    /// Checks `targets` against the index, then each group and user against Okta.
    async fn check(&self, targets: &[Target<'_>]) -> Result<(), Status> {
        if targets.is_empty() {
            return Err(self.outside("the org", "this call names no group or user"));
        }
        let Some(snapshot) = self.index.snapshot() else {
            return Err(scope_loading());
        };
        let (mut groups, mut users) = (Vec::new(), Vec::new());
        for target in targets {
            match *target {
                Target::Group(id) => {
                    // A group the index does not know has no name there: outside.
                    let name = snapshot.groups.get(id).map_or("", String::as_str);
                    self.check_group(id, name)?;
                    groups.push(id);
                }
                Target::User(id) if self.adds_member || snapshot.user_in(id, &self.patterns) => {
                    users.push(id.to_owned());
                }
                Target::User(id) => {
                    let target = format!("user {id}");
                    return Err(self.outside(&target, &format!("{target} is not a member of one")));
                }
                Target::Login(login) => match snapshot.logins.get(&login.to_lowercase()) {
                    Some(id) if snapshot.user_in(id, &self.patterns) => users.push(id.clone()),
                    _ => {
                        let target = "the user of that login";
                        return Err(
                            self.outside(target, &format!("{target} is not a member of one"))
                        );
                    }
                },
                Target::Other(id) => {
                    return Err(self.outside(id, &format!("{id} is outside any group")));
                }
            }
        }
        for group in groups {
            self.confirm_group(group).await?;
        }
        for user in users {
            self.confirm_user(&user).await?;
        }
        Ok(())
    }

    /// Refuses a group outside the scope or protected, by its `name`.
    fn check_group(&self, id: &str, name: &str) -> Result<(), Status> {
        let target = format!("group {id}");
        if self.index.protected_name(name) {
            Err(self.protected(&target, name))
        } else if self.covers(name) {
            Ok(())
        } else {
            Err(self.outside(&target, &format!("{target} is not one of them")))
        }
    }

    /// Checks the group's name as Okta has it now: a group renamed since the index was read
    /// (into a protected name, out of the scope) counts at once.
    async fn confirm_group(&self, group_id: &str) -> Result<(), Status> {
        let id = OktaId::parse(group_id).map_err(|_| internal("unchecked group id"))?;
        let group = self
            .index
            .okta
            .get_group(&id)
            .await
            .map_err(mapped(OktaCall::Read))?;
        self.check_group(group_id, group_name(&group))
    }

    /// Reads the user's groups from Okta (never from the index or a cache, which may be stale)
    /// and refuses a member of a protected group, and a user in none of the scope's groups
    /// unless this call adds a new hire.
    async fn confirm_user(&self, user_id: &str) -> Result<(), Status> {
        let target = format!("user {user_id}");
        let id = OktaId::parse(user_id).map_err(|_| internal("unchecked user id"))?;
        let groups = self
            .index
            .okta
            .list_user_groups(&id)
            .await
            .map_err(mapped(OktaCall::Read))?;
        let names: Vec<&str> = groups.iter().map(group_name).collect();
        if let Some(name) = names.iter().find(|name| self.index.protected_name(name)) {
            return Err(self.protected(&target, name));
        }
        if names.iter().any(|name| self.covers(name)) {
            return Ok(());
        }
        let new_hire = groups.iter().all(|group| group.r#type == BUILT_IN_GROUP);
        match (self.adds_member, new_hire) {
            (true, true) => Ok(()),
            (true, false) => Err(self.outside(
                &target,
                &format!(
                    "{target} belongs to other groups; only a user already in one of them, or a \
                     new hire in no group but Everyone, may be added"
                ),
            )),
            (false, _) => Err(self.outside(&target, &format!("{target} is not a member of one"))),
        }
    }
}

/// A group's name (`""` when Okta sent none).
fn group_name(group: &OktaGroup) -> &str {
    group
        .profile
        .get("name")
        .and_then(|name| name.as_str())
        .unwrap_or_default()
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
pub async fn check_targets(targets: &[Target<'_>]) -> Result<(), Status> {
    match SCOPE.try_with(Clone::clone) {
        Ok(scope) => scope.check(targets).await,
        Err(_) => Ok(()),
    }
}

/// The items whose group name (`name`) the current call's scope covers: all of them for an
/// unscoped call. A scoped caller listing a user's groups sees only its own.
pub fn visible_groups<T>(mut groups: Vec<T>, name: impl Fn(&T) -> &str) -> Vec<T> {
    if let Ok(scope) = SCOPE.try_with(Clone::clone) {
        groups.retain(|group| scope.covers(name(group)));
    }
    groups
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
    /// Names of the groups whose members no scoped role may reach (`authz.protected_groups`).
    protected: Vec<Pattern>,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
}

impl ScopeIndex {
    /// An empty index reading from `okta`, guarding the members of the groups named like
    /// `protected`; [`ScopeIndex::refresh`] fills it.
    pub fn new(okta: OktaClient, protected: Vec<Pattern>) -> Self {
        Self {
            okta,
            protected,
            snapshot: RwLock::new(None),
        }
    }

    fn protected_name(&self, name: &str) -> bool {
        self.protected.iter().any(|pattern| pattern.matches(name))
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
                    let name = group_name(&group);
                    if pattern.matches(name) {
                        snapshot.groups.insert(group.id.clone(), name.to_owned());
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
