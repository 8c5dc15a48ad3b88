//! The org model: users, groups and memberships, plus the rules that keep them consistent,
//! and the org's System Log.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::errors::OktaError;
use super::event_log::EventLog;
use super::ids;

/// Okta's `UserStatus` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserStatus {
    /// Created but not activated.
    Staged,
    /// Activated without a password; waiting for the user to finish the welcome flow.
    Provisioned,
    /// Fully active.
    Active,
    /// Password reset in progress.
    Recovery,
    /// Password must be changed at next login.
    PasswordExpired,
    /// Locked after too many failed logins.
    LockedOut,
    /// Suspended by an admin.
    Suspended,
    /// Deactivated; a second delete removes the user.
    Deprovisioned,
}

impl UserStatus {
    /// The wire name, e.g. `PASSWORD_EXPIRED`.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Staged => "STAGED",
            UserStatus::Provisioned => "PROVISIONED",
            UserStatus::Active => "ACTIVE",
            UserStatus::Recovery => "RECOVERY",
            UserStatus::PasswordExpired => "PASSWORD_EXPIRED",
            UserStatus::LockedOut => "LOCKED_OUT",
            UserStatus::Suspended => "SUSPENDED",
            UserStatus::Deprovisioned => "DEPROVISIONED",
        }
    }
}

/// Okta's group types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GroupType {
    /// A group managed in Okta; the only type whose memberships may change through the API.
    OktaGroup,
    /// A group imported from an application.
    AppGroup,
    /// Okta's own groups, e.g. `Everyone`.
    BuiltIn,
}

impl GroupType {
    /// The wire name, e.g. `OKTA_GROUP`.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupType::OktaGroup => "OKTA_GROUP",
            GroupType::AppGroup => "APP_GROUP",
            GroupType::BuiltIn => "BUILT_IN",
        }
    }
}

/// One user of the org.
#[derive(Debug, Clone)]
pub struct User {
    /// `00u…` id.
    pub id: String,
    /// Current lifecycle status.
    pub status: UserStatus,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// First activation time, if ever activated.
    pub activated: Option<DateTime<Utc>>,
    /// Last status change.
    pub status_changed: Option<DateTime<Utc>>,
    /// Last login (the simulator never logs anyone in, seeds may set it).
    pub last_login: Option<DateTime<Utc>>,
    /// Last change of anything.
    pub last_updated: DateTime<Utc>,
    /// Last password change; `None` without a password.
    pub password_changed: Option<DateTime<Utc>>,
    /// Whether a password is set (the value itself is never kept).
    pub has_password: bool,
    /// Profile attributes, base and custom.
    pub profile: Map<String, Value>,
}

impl User {
    /// The profile's login, or `""`.
    pub fn login(&self) -> &str {
        self.profile
            .get("login")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Moves the user to `status`, stamping `statusChanged` and `lastUpdated`.
    pub fn set_status(&mut self, status: UserStatus, now: DateTime<Utc>) {
        self.status = status;
        self.status_changed = Some(now);
        self.last_updated = now;
        if status == UserStatus::Active && self.activated.is_none() {
            self.activated = Some(now);
        }
    }
}

/// One group of the org.
#[derive(Debug, Clone)]
pub struct Group {
    /// `00g…` id.
    pub id: String,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Last profile change.
    pub last_updated: DateTime<Utc>,
    /// Last membership change.
    pub last_membership_updated: DateTime<Utc>,
    /// Group type.
    pub kind: GroupType,
    /// Profile (`name`, `description`, custom attributes).
    pub profile: Map<String, Value>,
}

impl Group {
    /// The profile's name, or `""`.
    pub fn name(&self) -> &str {
        self.profile
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// The whole org: every object ordered by id, which is also the paging order.
#[derive(Debug, Default)]
pub struct Org {
    /// Users by id.
    pub users: BTreeMap<String, User>,
    /// Groups by id.
    pub groups: BTreeMap<String, Group>,
    /// Member user ids by group id.
    pub members: BTreeMap<String, BTreeSet<String>>,
    /// Devices by id (see [`super::devices`]).
    pub devices: BTreeMap<String, super::devices::Device>,
    /// The System Log.
    pub events: EventLog,
    /// The org authorization server: service apps, issued access tokens.
    pub oauth: super::oauth::OAuthServer,
}

/// "Now", truncated to whole seconds as Okta reports timestamps (`….000Z`).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// Okta's timestamp format: `2025-09-29T03:49:50.000Z`.
pub fn fmt_ts(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The profile attributes every user must have.
pub const REQUIRED_USER_ATTRS: [&str; 4] = ["login", "email", "firstName", "lastName"];

/// The name of the built-in group every user belongs to.
pub const EVERYONE: &str = "Everyone";

impl Org {
    /// Finds a user by id, or by login (case-insensitive).
    pub fn find_user(&self, id_or_login: &str) -> Option<&User> {
        if let Some(u) = self.users.get(id_or_login) {
            return Some(u);
        }
        self.users
            .values()
            .find(|u| u.login().eq_ignore_ascii_case(id_or_login))
    }

    /// The id of the user with this login (case-insensitive), if any.
    pub fn user_id_by_login(&self, login: &str) -> Option<String> {
        self.users
            .values()
            .find(|u| u.login().eq_ignore_ascii_case(login))
            .map(|u| u.id.clone())
    }

    /// A user by id or login, or Okta's 404.
    pub fn user_or_404(&self, id_or_login: &str) -> Result<&User, OktaError> {
        self.find_user(id_or_login)
            .ok_or_else(|| OktaError::not_found(id_or_login, "User"))
    }

    /// The id of a user by id or login, or Okta's 404.
    pub fn user_id_or_404(&self, id_or_login: &str) -> Result<String, OktaError> {
        self.user_or_404(id_or_login).map(|u| u.id.clone())
    }

    /// A mutable user by exact id.
    pub fn user_mut(&mut self, id: &str) -> Option<&mut User> {
        self.users.get_mut(id)
    }

    /// A group by id, or Okta's 404 `(UserGroup)`.
    pub fn group_or_404(&self, id: &str) -> Result<&Group, OktaError> {
        self.groups
            .get(id)
            .ok_or_else(|| OktaError::not_found(id, "UserGroup"))
    }

    /// The built-in `Everyone` group's id, creating the group if missing.
    pub fn everyone_id(&mut self) -> String {
        if let Some(g) = self
            .groups
            .values()
            .find(|g| g.kind == GroupType::BuiltIn && g.name() == EVERYONE)
        {
            return g.id.clone();
        }
        let t = now();
        let mut profile = Map::new();
        profile.insert("name".into(), Value::from(EVERYONE));
        profile.insert(
            "description".into(),
            Value::from("All users in your organization"),
        );
        let g = Group {
            id: ids::stable_id("00g", "group:everyone"),
            created: t,
            last_updated: t,
            last_membership_updated: t,
            kind: GroupType::BuiltIn,
            profile,
        };
        let id = g.id.clone();
        self.insert_group(g);
        id
    }

    /// Adds a group (replacing one with the same id).
    pub fn insert_group(&mut self, g: Group) {
        self.members.entry(g.id.clone()).or_default();
        self.groups.insert(g.id.clone(), g);
    }

    /// Adds a user and makes them a member of `Everyone`.
    pub fn insert_user(&mut self, u: User) {
        let id = u.id.clone();
        let t = u.last_updated;
        self.users.insert(id.clone(), u);
        let everyone = self.everyone_id();
        self.add_member(&everyone, &id, t);
    }

    /// Adds a membership; returns whether it changed anything.
    pub fn add_member(&mut self, group_id: &str, user_id: &str, t: DateTime<Utc>) -> bool {
        let added = self
            .members
            .entry(group_id.to_owned())
            .or_default()
            .insert(user_id.to_owned());
        if added {
            if let Some(g) = self.groups.get_mut(group_id) {
                g.last_membership_updated = t;
            }
        }
        added
    }

    /// Removes a membership; returns whether it changed anything.
    pub fn remove_member(&mut self, group_id: &str, user_id: &str, t: DateTime<Utc>) -> bool {
        let removed = self
            .members
            .get_mut(group_id)
            .is_some_and(|m| m.remove(user_id));
        if removed {
            if let Some(g) = self.groups.get_mut(group_id) {
                g.last_membership_updated = t;
            }
        }
        removed
    }

    /// Deletes a user permanently, with all memberships.
    pub fn delete_user(&mut self, user_id: &str) {
        let t = now();
        let gids: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.contains(user_id))
            .map(|(g, _)| g.clone())
            .collect();
        for g in gids {
            self.remove_member(&g, user_id, t);
        }
        for d in self.devices.values_mut() {
            d.users.remove(user_id);
        }
        self.users.remove(user_id);
    }

    /// The ids of the groups `user_id` belongs to, in id order.
    pub fn groups_of(&self, user_id: &str) -> Vec<String> {
        self.members
            .iter()
            .filter(|(g, m)| m.contains(user_id) && self.groups.contains_key(*g))
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// Whether another user (not `except_id`) already has this login (case-insensitive).
    pub fn login_taken(&self, login: &str, except_id: Option<&str>) -> bool {
        self.users
            .values()
            .any(|u| Some(u.id.as_str()) != except_id && u.login().eq_ignore_ascii_case(login))
    }

    /// A fresh user id that is not in use.
    pub fn new_user_id(&self) -> String {
        loop {
            let id = ids::random_id("00u");
            if !self.users.contains_key(&id) {
                return id;
            }
        }
    }

    /// A fresh group id that is not in use.
    pub fn new_group_id(&self) -> String {
        loop {
            let id = ids::random_id("00g");
            if !self.groups.contains_key(&id) {
                return id;
            }
        }
    }
}

/// Checks a user profile's base attributes; returns `(field, message)` causes.
pub fn validate_profile(
    org: &Org,
    profile: &Map<String, Value>,
    except_id: Option<&str>,
) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    for field in REQUIRED_USER_ATTRS {
        let v = profile.get(field).and_then(Value::as_str).map(str::trim);
        match v {
            None | Some("") => {
                causes.push((
                    field.to_owned(),
                    "The field cannot be left blank".to_owned(),
                ));
            }
            Some(s) => match field {
                "login" => {
                    if !looks_like_login(s) {
                        causes.push((
                            "login".to_owned(),
                            "Username must be in the form of an email address".to_owned(),
                        ));
                    } else if org.login_taken(s, except_id) {
                        causes.push((
                            "login".to_owned(),
                            "An object with this field already exists in the current organization"
                                .to_owned(),
                        ));
                    }
                }
                "email" if !looks_like_email(s) => {
                    causes.push((
                        "email".to_owned(),
                        "Does not match required pattern".to_owned(),
                    ));
                }
                _ => {}
            },
        }
    }
    causes
}

/// Okta logins must be email-shaped: `local@domain`, no spaces.
fn looks_like_login(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// Emails must be `local@domain.tld`.
fn looks_like_email(s: &str) -> bool {
    looks_like_login(s)
        && s.split_once('@').is_some_and(|(_, d)| {
            d.contains('.') && !d.starts_with('.') && !d.ends_with('.') && !d.contains("..")
        })
}
