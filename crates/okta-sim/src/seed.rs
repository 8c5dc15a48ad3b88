//! Seed documents (YAML or JSON) and the initial org for each [`SeedSource`].
//!
//! ```yaml
//! users:
//!   - login: ada@example.com        # required; email/firstName/lastName default from it
//!     email: ada@example.com
//!     firstName: Ada
//!     lastName: Lovelace
//!     status: ACTIVE                 # any UserStatus, default ACTIVE
//!     password: true                 # whether the user has a password, default true
//!     profile: {department: Engineering}
//!     id: 00u...                     # optional; default derived from the login (stable)
//!     created: "2025-01-06T09:00:00Z"   # optional, a new user only; default now
//! groups:
//!   - name: Engineering
//!     description: Builds things
//!     type: OKTA_GROUP               # default OKTA_GROUP
//!     members: [ada@example.com]     # logins (from this document or already in the org)
//!     id: 00g...                     # optional; default derived from the name (stable)
//! devices:                           # Okta Identity Engine devices
//!   - displayName: ADA-MBP           # required
//!     platform: MACOS                # required: ANDROID, IOS, MACOS or WINDOWS
//!     status: ACTIVE                 # ACTIVE (default), SUSPENDED or DEACTIVATED
//!     manufacturer: APPLE
//!     model: Mac15,9
//!     osVersion: 15.6.1
//!     serialNumber: C02XK1ADA
//!     udid: 5D8E...                  # also sid, imei, meid
//!     registered: true               # default true
//!     secureHardwarePresent: true
//!     profile: {diskEncryptionType: ALL_INTERNAL_VOLUMES}   # other profile attributes
//!     users: [ada@example.com]       # logins; a DEACTIVATED device keeps no users (as in Okta)
//!     managementStatus: MANAGED      # of every user link; default NOT_MANAGED
//!     screenLockType: BIOMETRIC      # optional: NONE, PASSCODE or BIOMETRIC
//!     id: guo...                     # optional; default derived from the serial number or name
//! events:                            # System Log events, same shape as POST /__sim/logs/events
//!   - eventType: user.session.start
//!     login: ada@example.com
//!     ip: 203.0.113.7
//!     outcome: FAILURE               # default SUCCESS
//!     reason: INVALID_CREDENTIALS
//!     published: "2025-01-06T09:00:00.000Z"   # default now
//! clients:                           # OAuth service apps, see `sim::oauth` for the fields
//!   - client_id: 0oaservice
//!     jwks: {keys: [{kty: EC, crv: P-256, kid: key-1, x: "…", y: "…"}]}
//!     scopes: [okta.users.read]
//! ```

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::SeedSource;
use super::demo;
use super::devices::{
    DEVICE_ID_PREFIX, Device, DeviceStatus, DeviceUserLink, LINK_ID_PREFIX, ManagementStatus,
    ScreenLockType,
};
use super::ids;
use super::inject::{self, EventSpec};
use super::oauth::ClientSpec;
use super::state::{EVERYONE, Group, GroupType, Org, User, UserStatus, now};

/// A whole seed document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedDocument {
    /// Users to create or update (matched by login).
    #[serde(default)]
    pub users: Vec<SeedUser>,
    /// Groups to create or update (matched by name).
    #[serde(default)]
    pub groups: Vec<SeedGroup>,
    /// Devices to create or update (matched by id), after the users and groups.
    #[serde(default)]
    pub devices: Vec<SeedDevice>,
    /// System Log events to append, in order (after the users, groups and devices).
    #[serde(default)]
    pub events: Vec<EventSpec>,
    /// OAuth service apps to register (replacing any with the same client id).
    #[serde(default)]
    pub clients: Vec<ClientSpec>,
}

/// One seeded device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedDevice {
    /// `profile.displayName`, required.
    pub display_name: String,
    /// `profile.platform`: `ANDROID`, `IOS`, `MACOS` or `WINDOWS`.
    pub platform: String,
    /// Status; default `ACTIVE`.
    #[serde(default)]
    pub status: Option<DeviceStatus>,
    /// `profile.manufacturer`.
    #[serde(default)]
    pub manufacturer: Option<String>,
    /// `profile.model`.
    #[serde(default)]
    pub model: Option<String>,
    /// `profile.osVersion`.
    #[serde(default)]
    pub os_version: Option<String>,
    /// `profile.serialNumber`.
    #[serde(default)]
    pub serial_number: Option<String>,
    /// `profile.udid`.
    #[serde(default)]
    pub udid: Option<String>,
    /// `profile.sid` (Windows).
    #[serde(default)]
    pub sid: Option<String>,
    /// `profile.imei`.
    #[serde(default)]
    pub imei: Option<String>,
    /// `profile.meid`.
    #[serde(default)]
    pub meid: Option<String>,
    /// `profile.registered`; default true.
    #[serde(default)]
    pub registered: Option<bool>,
    /// `profile.secureHardwarePresent`.
    #[serde(default)]
    pub secure_hardware_present: Option<bool>,
    /// Other profile attributes.
    #[serde(default)]
    pub profile: Map<String, Value>,
    /// Logins of the users who enrolled the device.
    #[serde(default)]
    pub users: Vec<String>,
    /// Management status of every user link; default `NOT_MANAGED`.
    #[serde(default)]
    pub management_status: Option<ManagementStatus>,
    /// Screen lock type of every user link.
    #[serde(default)]
    pub screen_lock_type: Option<ScreenLockType>,
    /// Explicit id (`guo` + 17 alphanumerics); default derived from the serial number (or the
    /// display name without one).
    #[serde(default)]
    pub id: Option<String>,
}

/// The platforms of Okta's `DevicePlatform` enum.
const PLATFORMS: &[&str] = &["ANDROID", "IOS", "MACOS", "WINDOWS"];

/// One seeded user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedUser {
    /// Login (email-shaped), required.
    pub login: String,
    /// Email; defaults to the login.
    #[serde(default)]
    pub email: Option<String>,
    /// First name; defaults from the login's local part.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name; defaults from the login's local part.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Status; default `ACTIVE`.
    #[serde(default)]
    pub status: Option<UserStatus>,
    /// Whether the user has a password; default true.
    #[serde(default)]
    pub password: Option<bool>,
    /// Extra (custom) profile attributes.
    #[serde(default)]
    pub profile: Map<String, Value>,
    /// Explicit id (`00u` + 17 alphanumerics); default derived from the login.
    #[serde(default)]
    pub id: Option<String>,
    /// When the user was created (and last updated), for a user that existed before now;
    /// default the seeding time. Ignored for a user already in the org.
    #[serde(default)]
    pub created: Option<DateTime<Utc>>,
}

/// One seeded group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedGroup {
    /// Group name, required.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Type; default `OKTA_GROUP`.
    #[serde(rename = "type", default)]
    pub kind: Option<GroupType>,
    /// Member logins.
    #[serde(default)]
    pub members: Vec<String>,
    /// Explicit id (`00g` + 17 alphanumerics); default derived from the name.
    #[serde(default)]
    pub id: Option<String>,
}

/// What a seed created or updated: ids by login and by group name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedResult {
    /// User ids by login.
    pub users: BTreeMap<String, String>,
    /// Group ids by name.
    pub groups: BTreeMap<String, String>,
    /// Device ids by display name (omitted when none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub devices: BTreeMap<String, String>,
    /// Uuids of the appended System Log events (omitted when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
}

/// Parses a seed document; YAML is a superset of JSON, so both work.
pub fn parse(text: &str) -> Result<SeedDocument, String> {
    serde_yaml::from_str::<Option<SeedDocument>>(text)
        .map(Option::unwrap_or_default)
        .map_err(|e| format!("invalid seed document: {e}"))
}

/// An org holding only the built-in `Everyone` group, created at `t`.
pub fn empty_org(t: DateTime<Utc>) -> Org {
    let mut org = Org::default();
    let mut profile = Map::new();
    profile.insert("name".into(), Value::from(EVERYONE));
    profile.insert(
        "description".into(),
        Value::from("All users in your organization"),
    );
    org.insert_group(Group {
        id: ids::stable_id("00g", "group:everyone"),
        created: t,
        last_updated: t,
        last_membership_updated: t,
        kind: GroupType::BuiltIn,
        profile,
    });
    org
}

/// The org a simulator starts with.
pub fn initial_org(src: &SeedSource) -> anyhow::Result<Org> {
    match src {
        SeedSource::Empty => Ok(empty_org(now())),
        SeedSource::Demo => demo::org(),
        SeedSource::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read seed file {}: {e}", path.display()))?;
            let doc = parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let mut org = empty_org(now());
            apply(&mut org, &doc, None).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Ok(org)
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Default first/last names from a login: `ada.lovelace@x` -> `Ada`, `Lovelace`.
fn names_from_login(login: &str) -> (String, String) {
    let local = login.split('@').next().unwrap_or(login);
    let parts: Vec<&str> = local
        .split(['.', '_', '-', '+'])
        .filter(|p| !p.is_empty())
        .collect();
    match parts.as_slice() {
        [] => ("User".to_owned(), "User".to_owned()),
        [one] => (capitalize(one), "User".to_owned()),
        [first, rest @ ..] => (
            capitalize(first),
            rest.iter()
                .map(|p| capitalize(p))
                .collect::<Vec<_>>()
                .join(" "),
        ),
    }
}

/// Checks a document against itself and the org before anything changes.
fn validate(org: &Org, doc: &SeedDocument) -> Result<(), String> {
    let mut logins = BTreeSet::new();
    for u in &doc.users {
        let login = u.login.trim();
        match login.split_once('@') {
            Some((l, d)) if !l.is_empty() && !d.is_empty() => {}
            _ => return Err(format!("user login {:?} is not email-shaped", u.login)),
        }
        if !logins.insert(login.to_lowercase()) {
            return Err(format!("user login {login} appears twice"));
        }
        if let Some(id) = &u.id {
            if !ids::is_id_shaped("00u", id) {
                return Err(format!("user id {id} must be 00u + 17 letters or digits"));
            }
            if org
                .users
                .get(id)
                .is_some_and(|x| !x.login().eq_ignore_ascii_case(login))
            {
                return Err(format!("user id {id} already belongs to another login"));
            }
        }
    }
    let mut names = BTreeSet::new();
    for g in &doc.groups {
        let name = g.name.trim();
        if name.is_empty() {
            return Err("group name must not be empty".to_owned());
        }
        if !names.insert(name.to_lowercase()) {
            return Err(format!("group name {name} appears twice"));
        }
        if let Some(id) = &g.id {
            if !ids::is_id_shaped("00g", id) {
                return Err(format!("group id {id} must be 00g + 17 letters or digits"));
            }
        }
        for m in &g.members {
            if !logins.contains(&m.trim().to_lowercase())
                && org.user_id_by_login(m.trim()).is_none()
            {
                return Err(format!("group {name}: unknown member login {m}"));
            }
        }
    }
    for d in &doc.devices {
        let name = d.display_name.trim();
        if name.is_empty() {
            return Err("device displayName must not be empty".to_owned());
        }
        if !PLATFORMS.contains(&d.platform.as_str()) {
            return Err(format!(
                "device {name}: platform must be one of {}",
                PLATFORMS.join(", ")
            ));
        }
        if let Some(id) = &d.id {
            if !ids::is_id_shaped(DEVICE_ID_PREFIX, id) {
                return Err(format!(
                    "device id {id} must be {DEVICE_ID_PREFIX} + 17 letters or digits"
                ));
            }
        }
        for m in &d.users {
            if !logins.contains(&m.trim().to_lowercase())
                && org.user_id_by_login(m.trim()).is_none()
            {
                return Err(format!("device {name}: unknown user login {m}"));
            }
        }
    }
    let t = now();
    for (i, e) in doc.events.iter().enumerate() {
        inject::resolve(org, e, t).map_err(|e| format!("events[{i}]: {e}"))?;
    }
    Ok(())
}

/// Merges a document into the org (users by login, groups by name).
///
/// With `at`, object `i` is stamped `at + i minutes` (stable demo data); otherwise "now".
pub fn apply(
    org: &mut Org,
    doc: &SeedDocument,
    at: Option<DateTime<Utc>>,
) -> Result<SeedResult, String> {
    validate(org, doc)?;
    for client in &doc.clients {
        client.validate()?;
    }
    let stamp = |i: usize| {
        at.map(|t| t + Duration::minutes(i64::try_from(i).unwrap_or(0)))
            .unwrap_or_else(now)
    };
    let mut result = SeedResult::default();
    for (i, su) in doc.users.iter().enumerate() {
        let t = stamp(i);
        let login = su.login.trim().to_owned();
        let (first, last) = names_from_login(&login);
        let mut profile = su.profile.clone();
        profile.insert("login".into(), Value::from(login.clone()));
        profile.insert(
            "email".into(),
            Value::from(su.email.clone().unwrap_or_else(|| login.clone())),
        );
        profile.insert(
            "firstName".into(),
            Value::from(su.first_name.clone().unwrap_or(first)),
        );
        profile.insert(
            "lastName".into(),
            Value::from(su.last_name.clone().unwrap_or(last)),
        );
        let status = su.status.unwrap_or(UserStatus::Active);
        let has_password = su.password.unwrap_or(true);
        let activated = !matches!(status, UserStatus::Staged | UserStatus::Provisioned);
        let id = match (org.user_id_by_login(&login), &su.id) {
            (Some(existing), _) => existing,
            (None, Some(id)) => id.clone(),
            (None, None) => {
                let id = ids::stable_id("00u", &format!("user:{}", login.to_lowercase()));
                if org.users.contains_key(&id) {
                    org.new_user_id()
                } else {
                    id
                }
            }
        };
        if let Some(u) = org.user_mut(&id) {
            for (k, v) in profile {
                u.profile.insert(k, v);
            }
            if u.status != status {
                u.set_status(status, t);
            }
            u.has_password = has_password;
            u.password_changed = has_password.then_some(u.password_changed.unwrap_or(t));
            u.last_updated = t;
        } else {
            let t = su.created.map_or(t, |created| created.trunc_subsecs(0));
            org.insert_user(User {
                id: id.clone(),
                status,
                created: t,
                activated: activated.then_some(t),
                status_changed: Some(t),
                last_login: None,
                last_updated: t,
                password_changed: has_password.then_some(t),
                has_password,
                profile,
            });
        }
        result.users.insert(login, id);
    }
    for (i, sg) in doc.groups.iter().enumerate() {
        let t = stamp(doc.users.len() + i);
        let name = sg.name.trim().to_owned();
        let existing = org
            .groups
            .values()
            .find(|g| g.name().eq_ignore_ascii_case(&name))
            .map(|g| g.id.clone());
        let gid = match existing {
            Some(gid) => {
                if let Some(g) = org.groups.get_mut(&gid) {
                    if let Some(d) = &sg.description {
                        g.profile
                            .insert("description".into(), Value::from(d.clone()));
                    }
                    if let Some(k) = sg.kind {
                        g.kind = k;
                    }
                    g.last_updated = t;
                }
                gid
            }
            None => {
                let mut id = sg.id.clone().unwrap_or_else(|| {
                    ids::stable_id("00g", &format!("group:{}", name.to_lowercase()))
                });
                if org.groups.contains_key(&id) {
                    id = org.new_group_id();
                }
                let mut profile = Map::new();
                profile.insert("name".into(), Value::from(name.clone()));
                profile.insert(
                    "description".into(),
                    sg.description
                        .clone()
                        .map(Value::from)
                        .unwrap_or(Value::Null),
                );
                org.insert_group(Group {
                    id: id.clone(),
                    created: t,
                    last_updated: t,
                    last_membership_updated: t,
                    kind: sg.kind.unwrap_or(GroupType::OktaGroup),
                    profile,
                });
                id
            }
        };
        for m in &sg.members {
            if let Some(uid) = org.user_id_by_login(m.trim()) {
                org.add_member(&gid, &uid, t);
            }
        }
        result.groups.insert(name, gid);
    }
    for (i, sd) in doc.devices.iter().enumerate() {
        let t = stamp(doc.users.len() + doc.groups.len() + i);
        let (name, id) = apply_device(org, sd, t);
        result.devices.insert(name, id);
    }
    result.events = inject::inject(org, &doc.events)?;
    for client in &doc.clients {
        org.oauth.register(client.clone())?;
    }
    Ok(result)
}

/// Creates or updates one device (validated); returns its display name and id.
fn apply_device(org: &mut Org, sd: &SeedDevice, t: DateTime<Utc>) -> (String, String) {
    let name = sd.display_name.trim().to_owned();
    let mut profile = sd.profile.clone();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            profile.insert(key.to_owned(), value);
        }
    };
    put("displayName", Some(Value::from(name.clone())));
    put("platform", Some(Value::from(sd.platform.clone())));
    put("manufacturer", sd.manufacturer.clone().map(Value::from));
    put("model", sd.model.clone().map(Value::from));
    put("osVersion", sd.os_version.clone().map(Value::from));
    put("serialNumber", sd.serial_number.clone().map(Value::from));
    put("udid", sd.udid.clone().map(Value::from));
    put("sid", sd.sid.clone().map(Value::from));
    put("imei", sd.imei.clone().map(Value::from));
    put("meid", sd.meid.clone().map(Value::from));
    put(
        "registered",
        Some(Value::from(sd.registered.unwrap_or(true))),
    );
    put(
        "secureHardwarePresent",
        sd.secure_hardware_present.map(Value::from),
    );
    let key = sd.serial_number.as_deref().unwrap_or(&name).to_lowercase();
    let id = sd
        .id
        .clone()
        .unwrap_or_else(|| ids::stable_id(DEVICE_ID_PREFIX, &format!("device:{key}")));
    let status = sd.status.unwrap_or(DeviceStatus::Active);
    let mut users = BTreeMap::new();
    if status != DeviceStatus::Deactivated {
        for login in &sd.users {
            if let Some(uid) = org.user_id_by_login(login.trim()) {
                let link = DeviceUserLink {
                    id: ids::stable_id(LINK_ID_PREFIX, &format!("link:{id}:{uid}")),
                    created: t,
                    management_status: sd.management_status.unwrap_or_default(),
                    screen_lock_type: sd.screen_lock_type,
                };
                users.insert(uid, link);
            }
        }
    }
    let created = org.devices.get(&id).map_or(t, |d| d.created);
    org.devices.insert(
        id.clone(),
        Device {
            id: id.clone(),
            status,
            created,
            last_updated: t,
            profile,
            users,
        },
    );
    (name, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_default_from_login() {
        assert_eq!(
            names_from_login("ada.lovelace@example.com"),
            ("Ada".to_owned(), "Lovelace".to_owned())
        );
        assert_eq!(
            names_from_login("bob@x.io"),
            ("Bob".to_owned(), "User".to_owned())
        );
    }

    #[test]
    fn rejects_unknown_member() {
        let doc = parse("groups:\n  - name: G\n    members: [nobody@example.com]\n").unwrap();
        let mut org = empty_org(now());
        assert!(apply(&mut org, &doc, None).is_err());
    }
}
