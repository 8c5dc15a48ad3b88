//! The device endpoints: list and search, get, lifecycle, delete, and the links between
//! devices and users.

use axum::http::StatusCode;
use serde_json::Value;

use super::model::{DEVICE_ID_PREFIX, Device, DeviceStatus};
use super::views;
use crate::audit::{self, Action};
use crate::errors::OktaError;
use crate::expr::{self, Op, Rules};
use crate::http::{Ctx, Handled, Reply};
use crate::ids;
use crate::paging::{self, Limits};
use crate::state::{Org, fmt_ts, now};
use crate::users::parse_expr;

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
        .map(|d| views::device_json(&ctx.base, d))
        .collect();
    Ok(Reply::ok(crate::views::array(&items)).with_links(links(ctx, limit, next)))
}

/// `GET /api/v1/devices/{deviceId}`.
pub fn get(org: &mut Org, ctx: &Ctx, id: &str) -> Handled {
    let d = device_or_404(org, id, "Device")?;
    Ok(Reply::ok(views::device_json(&ctx.base, d)))
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

/// `GET /api/v1/devices/{deviceId}/users`: the linked users with their management status
/// (not paged: the spec gives this operation no parameters).
pub fn users(org: &mut Org, ctx: &Ctx, id: &str) -> Handled {
    let d = device_or_404(org, id, "GenericUDObject")?;
    let items: Vec<String> = d
        .users
        .iter()
        .filter_map(|(uid, link)| {
            let user = org.users.get(uid)?;
            Some(views::device_user_json(&ctx.base, link, user))
        })
        .collect();
    Ok(Reply::ok(crate::views::array(&items)))
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
            Some(views::user_device_json(&ctx.base, link, d))
        })
        .collect();
    Ok(Reply::ok(crate::views::array(&items)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;

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
