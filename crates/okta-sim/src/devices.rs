//! `/api/v1/devices` and `/api/v1/users/{id}/devices`: Okta's device registry (Okta Identity
//! Engine), its lifecycle, and the links between devices and users.
//!
//! Facts from the spec (`Device`, `DeviceUser`, `UserDevice`, the lifecycle operation
//! descriptions) and the recorded `TestDeviceResource` traffic:
//! - ids are `guo` + 17 letters or digits; lists are ordered by id and the `after` cursor is the
//!   last id of the previous page, exactly as recorded (`after=guooooy45xtYQeCmC1d7`); a cursor
//!   that is not a device id is `400 E0000031` with the cause `Invalid cursor.`;
//! - `limit` is 1..=200, default 200; `search` is case-insensitive SCIM over `id`, `status`,
//!   `lastUpdated`, `created` and every `profile.*` attribute, `co` only on the attributes the
//!   spec names;
//! - 404 bodies are `Not found: Resource not found: {id} (Device)`, except `…/users`, which
//!   names `(GenericUDObject)` as recorded;
//! - lifecycle calls answer 204. `suspend` needs ACTIVE, `unsuspend` SUSPENDED (back to
//!   ACTIVE), `deactivate` ACTIVE or SUSPENDED and drops every device-user link, `activate`
//!   needs DEACTIVATED. The spec lists only 403/404/429 for these calls, so a transition from the
//!   wrong status is `403 E0000152 Illegal device status, cannot perform action.` (Okta's
//!   catalogue code for exactly this), and so is `DELETE` of a device that is not DEACTIVATED
//!   (the spec's deleteDevice lists 403, not 400, so E0000001 is not used).
//!
//! Nothing here uses the gateway's Okta client or API modules.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::audit::{self, Action};
use super::errors::OktaError;
use super::expr::{self, Op, Rules};
use super::http::{Ctx, Handled, Reply};
use super::ids;
use super::paging::{self, Limits};
use super::state::{Org, fmt_ts, now};
use super::users::parse_expr;
use super::views::{self, LinkDetail};

/// Id prefix of devices.
pub const DEVICE_ID_PREFIX: &str = "guo";
/// Id prefix of device-user links (`deviceUserId`, `lnk…` in the spec's example).
pub const LINK_ID_PREFIX: &str = "lnk";

/// `GET /api/v1/devices`: default 200, maximum 200 (spec); larger values clamp to 200.
const LIST_LIMITS: Limits = Limits {
    default: 200,
    max: 200,
};

/// The lifecycle operations of `POST /api/v1/devices/{id}/lifecycle/{op}`.
const OPS: &[&str] = &["activate", "deactivate", "suspend", "unsuspend"];

/// Whether `op` is a device lifecycle operation (others are unknown paths).
pub fn is_known(op: &str) -> bool {
    OPS.contains(&op)
}

/// Okta's `DeviceStatus` values a device can be in. (`UNSUSPENDED` is in the spec's enum too,
/// but `unsuspend` returns a device to `ACTIVE`, so no device is ever left in it.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeviceStatus {
    /// In use; may be suspended or deactivated.
    Active,
    /// Temporarily blocked; may only be unsuspended or deactivated.
    Suspended,
    /// Lost its user links; may be activated again or deleted.
    Deactivated,
}

impl DeviceStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Active => "ACTIVE",
            DeviceStatus::Suspended => "SUSPENDED",
            DeviceStatus::Deactivated => "DEACTIVATED",
        }
    }
}

/// Okta's `DeviceUser.managementStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ManagementStatus {
    /// Management software installed.
    Managed,
    /// No management software.
    #[default]
    NotManaged,
}

impl ManagementStatus {
    fn as_str(self) -> &'static str {
        match self {
            ManagementStatus::Managed => "MANAGED",
            ManagementStatus::NotManaged => "NOT_MANAGED",
        }
    }
}

/// Okta's `DeviceUser.screenLockType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScreenLockType {
    /// No screen lock.
    None,
    /// A passcode.
    Passcode,
    /// Biometrics.
    Biometric,
}

impl ScreenLockType {
    fn as_str(self) -> &'static str {
        match self {
            ScreenLockType::None => "NONE",
            ScreenLockType::Passcode => "PASSCODE",
            ScreenLockType::Biometric => "BIOMETRIC",
        }
    }
}

/// The link between a device and one of its users.
#[derive(Debug, Clone)]
pub struct DeviceUserLink {
    /// `deviceUserId` (`lnk…`).
    pub id: String,
    /// When the user enrolled the device.
    pub created: DateTime<Utc>,
    /// Whether the device is managed (MDM) for this user.
    pub management_status: ManagementStatus,
    /// The screen lock reported at enrollment, if any.
    pub screen_lock_type: Option<ScreenLockType>,
}

/// One device of the org.
#[derive(Debug, Clone)]
pub struct Device {
    /// `guo…` id.
    pub id: String,
    /// Lifecycle status.
    pub status: DeviceStatus,
    /// Creation (enrollment) time.
    pub created: DateTime<Utc>,
    /// Last change of anything, status included.
    pub last_updated: DateTime<Utc>,
    /// `displayName`, `platform`, `registered`, … and any other attribute.
    pub profile: Map<String, Value>,
    /// Links by user id.
    pub users: BTreeMap<String, DeviceUserLink>,
}

impl Device {
    /// The profile's display name, or `""`.
    pub fn display_name(&self) -> &str {
        self.profile
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// A device by id, or Okta's 404 naming `kind` (`Device`, or `GenericUDObject` for `…/users`).
fn device_or_404<'a>(org: &'a Org, id: &str, kind: &str) -> Result<&'a Device, OktaError> {
    org.devices
        .get(id)
        .ok_or_else(|| OktaError::not_found(id, kind))
}

/// `search` rules: `id`, `status`, `created`, `lastUpdated` and any `profile.*`; `eq sw pr` and
/// the orderings everywhere, `co` only on the attributes the spec lists.
pub const SEARCH_RULES: Rules = Rules {
    case_sensitive: false,
    allow: search_allow,
};

/// The profile attributes the spec allows `co` on.
const CONTAINS_ATTRIBUTES: &[&str] = &[
    "profile.displayName",
    "profile.serialNumber",
    "profile.imei",
    "profile.meid",
    "profile.udid",
    "profile.sid",
];

fn search_allow(attr: &str, op: Op) -> Result<(), String> {
    let known = matches!(attr, "id" | "status" | "created" | "lastUpdated")
        || attr.strip_prefix("profile.").is_some_and(|k| !k.is_empty());
    if !known {
        return Err(format!("Unsupported attribute in search: {attr}"));
    }
    match op {
        Op::Co if !CONTAINS_ATTRIBUTES.contains(&attr) => Err(format!(
            "Unsupported operator '{}' for attribute '{attr}' in search",
            op.as_str()
        )),
        _ => Ok(()),
    }
}

/// The value of a searchable attribute of `d`.
pub fn attr(d: &Device, name: &str) -> Option<Value> {
    match name {
        "id" => Some(Value::from(d.id.clone())),
        "status" => Some(Value::from(d.status.as_str())),
        "created" => Some(Value::from(fmt_ts(&d.created))),
        "lastUpdated" => Some(Value::from(fmt_ts(&d.last_updated))),
        _ => name
            .strip_prefix("profile.")
            .and_then(|k| d.profile.get(k).cloned()),
    }
}

/// The profile attributes in the order Okta's recorded devices show them; others follow.
const PROFILE_ORDER: &[&str] = &[
    "displayName",
    "platform",
    "manufacturer",
    "model",
    "osVersion",
    "serialNumber",
    "udid",
    "sid",
    "imei",
    "meid",
    "registered",
    "secureHardwarePresent",
    "diskEncryptionType",
];

struct OrderedProfile<'a>(&'a Map<String, Value>);

impl Serialize for OrderedProfile<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for key in PROFILE_ORDER {
            if let Some(value) = self.0.get(*key) {
                map.serialize_entry(key, value)?;
            }
        }
        for (key, value) in self.0 {
            if !PROFILE_ORDER.contains(&key.as_str()) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

#[derive(Serialize)]
struct DisplayName<'a> {
    value: &'a str,
    sensitive: bool,
}

#[derive(Serialize)]
struct Hints {
    allow: &'static [&'static str],
}

#[derive(Serialize)]
struct Link {
    href: String,
    hints: Hints,
}

/// `_links` in the recorded order (`suspend`, `self`, `users`, `deactivate` for an ACTIVE
/// device); the operations offered follow the status.
struct Links<'a> {
    base: &'a str,
    device: &'a Device,
}

impl Serialize for Links<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let me = format!("{}/api/v1/devices/{}", self.base, self.device.id);
        let post = |op: &str| Link {
            href: format!("{me}/lifecycle/{op}"),
            hints: Hints { allow: &["POST"] },
        };
        let mut map = serializer.serialize_map(None)?;
        match self.device.status {
            DeviceStatus::Active => map.serialize_entry("suspend", &post("suspend"))?,
            DeviceStatus::Suspended => map.serialize_entry("unsuspend", &post("unsuspend"))?,
            DeviceStatus::Deactivated => map.serialize_entry("activate", &post("activate"))?,
        }
        let self_allow: &'static [&'static str] = match self.device.status {
            DeviceStatus::Deactivated => &["DELETE", "GET", "PATCH", "PUT"],
            _ => &["GET", "PATCH", "PUT"],
        };
        map.serialize_entry(
            "self",
            &Link {
                href: me.clone(),
                hints: Hints { allow: self_allow },
            },
        )?;
        map.serialize_entry(
            "users",
            &Link {
                href: format!("{me}/users"),
                hints: Hints { allow: &["GET"] },
            },
        )?;
        if self.device.status != DeviceStatus::Deactivated {
            map.serialize_entry("deactivate", &post("deactivate"))?;
        }
        map.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceView<'a> {
    id: &'a str,
    status: &'static str,
    created: String,
    last_updated: String,
    profile: OrderedProfile<'a>,
    resource_type: &'static str,
    resource_display_name: DisplayName<'a>,
    resource_id: &'a str,
    resource_alternate_id: Option<&'a str>,
    #[serde(rename = "_links")]
    links: Links<'a>,
}

/// Renders a device as Okta does (field order of the recording).
pub fn device_json(base: &str, d: &Device) -> String {
    let view = DeviceView {
        id: &d.id,
        status: d.status.as_str(),
        created: fmt_ts(&d.created),
        last_updated: fmt_ts(&d.last_updated),
        profile: OrderedProfile(&d.profile),
        resource_type: "UDDevice",
        resource_display_name: DisplayName {
            value: d.display_name(),
            sensitive: false,
        },
        resource_id: &d.id,
        resource_alternate_id: None,
        links: Links { base, device: d },
    };
    serde_json::to_string(&view).unwrap_or_else(|_| "{}".to_owned())
}

/// The `link` header values of a device listing: Okta orders the query parameters by name
/// (`after`, `limit`, `search`, as recorded), spaces as `+`.
fn links(ctx: &Ctx, limit: usize, next_after: Option<&str>) -> Vec<String> {
    let build = |after: Option<&str>| {
        let mut pairs: Vec<(String, String)> = ctx
            .query
            .iter()
            .filter(|(k, _)| k != "after" && k != "limit")
            .cloned()
            .collect();
        if let Some(a) = after {
            pairs.push(("after".to_owned(), a.to_owned()));
        }
        pairs.push(("limit".to_owned(), limit.to_string()));
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            ser.append_pair(k, v);
        }
        format!("{}/api/v1/devices?{}", ctx.base, ser.finish())
    };
    let mut out = vec![format!("<{}>; rel=\"self\"", build(ctx.param("after")))];
    if let Some(id) = next_after {
        out.push(format!("<{}>; rel=\"next\"", build(Some(id))));
    }
    out
}

/// `GET /api/v1/devices`.
pub fn list(org: &mut Org, ctx: &Ctx) -> Handled {
    let limit = paging::limit(ctx, LIST_LIMITS)?;
    let after = match ctx.param("after") {
        None => None,
        Some(c) if ids::is_id_shaped(DEVICE_ID_PREFIX, c) => Some(c.to_owned()),
        Some(_) => return Err(OktaError::bad_search("Invalid cursor.")),
    };
    let search = ctx
        .param("search")
        .map(|s| parse_expr(s, &SEARCH_RULES))
        .transpose()?;
    let selected = org.devices.values().filter(|d| match &search {
        Some(e) => expr::eval(e, SEARCH_RULES.case_sensitive, &|a| attr(d, a)),
        None => true,
    });
    let (page, next) = paging::page(selected.map(|d| d.id.as_str()), after.as_deref(), limit);
    let items: Vec<String> = page
        .iter()
        .filter_map(|id| org.devices.get(*id))
        .map(|d| device_json(&ctx.base, d))
        .collect();
    Ok(Reply::ok(views::array(&items)).with_links(links(ctx, limit, next)))
}

/// `GET /api/v1/devices/{deviceId}`.
pub fn get(org: &mut Org, ctx: &Ctx, id: &str) -> Handled {
    let d = device_or_404(org, id, "Device")?;
    Ok(Reply::ok(device_json(&ctx.base, d)))
}

fn illegal_status() -> OktaError {
    OktaError::new("E0000152", "")
}

/// `POST /api/v1/devices/{deviceId}/lifecycle/{op}`: 204, logged when it succeeds.
pub fn lifecycle(org: &mut Org, ctx: &Ctx, id: &str, op: &str) -> Handled {
    use DeviceStatus::*;
    let status = device_or_404(org, id, "Device")?.status;
    let (next, action) = match (op, status) {
        ("activate", Deactivated) => (Active, Action::DeviceActivate),
        ("deactivate", Active | Suspended) => (Deactivated, Action::DeviceDeactivate),
        ("suspend", Active) => (Suspended, Action::DeviceSuspend),
        ("unsuspend", Suspended) => (Active, Action::DeviceUnsuspend),
        _ => return Err(illegal_status()),
    };
    if let Some(d) = org.devices.get_mut(id) {
        d.status = next;
        d.last_updated = now();
        if next == Deactivated {
            // "Deactivation causes a device to lose all device user links."
            d.users.clear();
        }
    }
    audit::device_event(org, ctx, action, id);
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

/// `DELETE /api/v1/devices/{deviceId}`: only a DEACTIVATED device (else 403 E0000152).
pub fn delete(org: &mut Org, ctx: &Ctx, id: &str) -> Handled {
    if device_or_404(org, id, "Device")?.status != DeviceStatus::Deactivated {
        return Err(illegal_status());
    }
    let target = audit::device_target(org, id);
    org.devices.remove(id);
    audit::record(org, ctx, Action::DeviceDelete, target.into_iter().collect());
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

/// A JSON string literal.
fn quoted(text: &str) -> String {
    Value::from(text).to_string()
}

/// `GET /api/v1/devices/{deviceId}/users`: the linked users with their management status
/// (not paged: the spec gives this operation no parameters).
pub fn users(org: &mut Org, ctx: &Ctx, id: &str) -> Handled {
    let d = device_or_404(org, id, "GenericUDObject")?;
    let items: Vec<String> = d
        .users
        .iter()
        .filter_map(|(uid, link)| {
            let u = org.users.get(uid)?;
            let screen_lock = link
                .screen_lock_type
                .map(|s| format!(",\"screenLockType\":{}", quoted(s.as_str())))
                .unwrap_or_default();
            Some(format!(
                "{{\"created\":{},\"managementStatus\":{}{screen_lock},\"user\":{}}}",
                quoted(&fmt_ts(&link.created)),
                quoted(link.management_status.as_str()),
                views::user_json(&ctx.base, u, LinkDetail::Full)
            ))
        })
        .collect();
    Ok(Reply::ok(views::array(&items)))
}

/// `GET /api/v1/users/{userId}/devices`: the devices the user enrolled (by id or login, like
/// every `/users/{id}` path); an unknown user is `404 E0000007 (User)`.
pub fn of_user(org: &mut Org, ctx: &Ctx, id: &str) -> Handled {
    let uid = org.user_id_or_404(id)?;
    let items: Vec<String> = org
        .devices
        .values()
        .filter_map(|d| {
            let link = d.users.get(&uid)?;
            Some(format!(
                "{{\"created\":{},\"deviceUserId\":{},\"device\":{}}}",
                quoted(&fmt_ts(&link.created)),
                quoted(&link.id),
                device_json(&ctx.base, d)
            ))
        })
        .collect();
    Ok(Reply::ok(views::array(&items)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;

    fn device(id: &str, status: DeviceStatus) -> Device {
        let mut profile = Map::new();
        profile.insert("registered".into(), Value::from(true));
        profile.insert("platform".into(), Value::from("MACOS"));
        profile.insert("displayName".into(), Value::from("Mac-1"));
        Device {
            id: id.to_owned(),
            status,
            created: now(),
            last_updated: now(),
            profile,
            users: BTreeMap::new(),
        }
    }

    #[test]
    fn devices_render_in_the_recorded_field_order() {
        let text = device_json(
            "http://h",
            &device("guonli06qyirBuaHF1d7", DeviceStatus::Active),
        );
        let order = [
            "\"id\"",
            "\"status\"",
            "\"created\"",
            "\"lastUpdated\"",
            "\"displayName\"",
            "\"platform\"",
            "\"registered\"",
            "\"resourceType\":\"UDDevice\"",
            "\"resourceDisplayName\":{\"value\":\"Mac-1\",\"sensitive\":false}",
            "\"resourceId\"",
            "\"resourceAlternateId\":null",
            "\"suspend\"",
            "\"self\"",
            "\"users\"",
            "\"deactivate\"",
        ];
        let positions: Vec<usize> = order.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn links_order_query_parameters_by_name() {
        let ctx = Ctx::new(
            "http://h".into(),
            Some("search=status%20eq%20%22ACTIVE%22&limit=5"),
            Bytes::new(),
        );
        let l = links(&ctx, 5, Some("guooooy45xtYQeCmC1d7"));
        assert_eq!(
            l[1],
            "<http://h/api/v1/devices?after=guooooy45xtYQeCmC1d7&limit=5&search=status+eq+%22ACTIVE%22>; rel=\"next\""
        );
    }

    #[test]
    fn contains_is_limited_to_the_listed_attributes() {
        assert!(search_allow("profile.displayName", Op::Co).is_ok());
        assert!(search_allow("profile.platform", Op::Co).is_err());
        assert!(search_allow("status", Op::Eq).is_ok());
        assert!(search_allow("nonsense", Op::Eq).is_err());
    }
}
