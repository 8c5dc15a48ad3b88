//! Devices and device-user links as Okta renders them, in the field order of the recordings.

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Map, Value};

use super::model::{Device, DeviceStatus, DeviceUserLink};
use crate::state::{User, fmt_ts};
use crate::views::{self, LinkDetail};

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

/// A JSON string literal.
fn quoted(text: &str) -> String {
    Value::from(text).to_string()
}

/// One entry of `GET /api/v1/devices/{deviceId}/users`: the link and the user.
pub fn device_user_json(base: &str, link: &DeviceUserLink, user: &User) -> String {
    let screen_lock = link
        .screen_lock_type
        .map(|s| format!(",\"screenLockType\":{}", quoted(s.as_str())))
        .unwrap_or_default();
    format!(
        "{{\"created\":{},\"managementStatus\":{}{screen_lock},\"user\":{}}}",
        quoted(&fmt_ts(&link.created)),
        quoted(link.management_status.as_str()),
        views::user_json(base, user, LinkDetail::Full)
    )
}

/// One entry of `GET /api/v1/users/{userId}/devices`: the link and the device.
pub fn user_device_json(base: &str, link: &DeviceUserLink, device: &Device) -> String {
    format!(
        "{{\"created\":{},\"deviceUserId\":{},\"device\":{}}}",
        quoted(&fmt_ts(&link.created)),
        quoted(&link.id),
        device_json(base, device)
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::state::now;

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
}
