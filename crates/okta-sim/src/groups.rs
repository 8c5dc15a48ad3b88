//! `/api/v1/groups`: list (plain, `search`, `filter`, `q`), create, get, replace, delete,
//! members listing and membership changes.

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::audit::{self, Action};
use super::errors::OktaError;
use super::expr::{self, Op, Rules};
use super::http::{Ctx, Handled, Reply};
use super::paging::{self, Limits};
use super::state::{Group, GroupType, Org, fmt_ts, now};
use super::users::{at_most_one_query, membership_error, parse_expr};
use super::views::{self, LinkDetail};

/// Group listings: default 200 (Okta's real default is higher; 200 is the documented safe
/// page size and the simulator's maximum), larger values clamp to 200.
const LIST_LIMITS: Limits = Limits {
    default: 200,
    max: 200,
};
/// `q` listings: default 10, never paged.
const Q_LIMITS: Limits = Limits {
    default: 10,
    max: 200,
};
/// Member listings: default 1000, at most 1000.
const MEMBER_LIMITS: Limits = Limits {
    default: 1000,
    max: 1000,
};

/// `search` rules: base attributes and any profile attribute; `eq sw gt ge lt le pr`, `co`
/// only on `profile.name` and `profile.description`; case-insensitive.
pub const SEARCH_RULES: Rules = Rules {
    case_sensitive: false,
    allow: search_allow,
};

/// `filter` rules: `id`, `type`, `lastUpdated`, `lastMembershipUpdated` with `eq` (the two
/// dates also take `gt ge lt le`, as Okta's docs show); case-sensitive.
pub const FILTER_RULES: Rules = Rules {
    case_sensitive: true,
    allow: filter_allow,
};

fn search_allow(attr: &str, op: Op) -> Result<(), String> {
    let known = matches!(
        attr,
        "id" | "type" | "created" | "lastUpdated" | "lastMembershipUpdated"
    ) || attr.strip_prefix("profile.").is_some_and(|k| !k.is_empty());
    if !known {
        return Err(format!("Unsupported attribute in search: {attr}"));
    }
    match op {
        Op::Eq | Op::Sw | Op::Gt | Op::Ge | Op::Lt | Op::Le | Op::Pr => Ok(()),
        Op::Co if matches!(attr, "profile.name" | "profile.description") => Ok(()),
        _ => Err(format!(
            "Unsupported operator '{}' for attribute '{attr}' in search",
            op.as_str()
        )),
    }
}

fn filter_allow(attr: &str, op: Op) -> Result<(), String> {
    let dates = matches!(attr, "lastUpdated" | "lastMembershipUpdated");
    if !(dates || matches!(attr, "id" | "type")) {
        return Err(format!("Unsupported attribute in filter: {attr}"));
    }
    if op == Op::Eq || (dates && op.is_ordering()) {
        Ok(())
    } else {
        Err(format!(
            "Unsupported operator '{}' for attribute '{attr}' in filter",
            op.as_str()
        ))
    }
}

/// The value of a searchable attribute of `g`.
pub fn attr(g: &Group, name: &str) -> Option<Value> {
    match name {
        "id" => Some(Value::from(g.id.clone())),
        "type" => Some(Value::from(g.kind.as_str())),
        "created" => Some(Value::from(fmt_ts(&g.created))),
        "lastUpdated" => Some(Value::from(fmt_ts(&g.last_updated))),
        "lastMembershipUpdated" => Some(Value::from(fmt_ts(&g.last_membership_updated))),
        _ => name
            .strip_prefix("profile.")
            .and_then(|k| g.profile.get(k).cloned()),
    }
}

/// `GET /api/v1/groups`.
pub fn list(org: &mut Org, ctx: &Ctx) -> Handled {
    at_most_one_query(ctx)?;
    let path = "/api/v1/groups";
    if let Some(q) = ctx.param("q") {
        let limit = paging::limit(ctx, Q_LIMITS)?;
        let q = q.to_lowercase();
        let items: Vec<String> = org
            .groups
            .values()
            .filter(|g| g.name().to_lowercase().starts_with(&q))
            .take(limit)
            .map(|g| views::group_json(&ctx.base, g))
            .collect();
        return Ok(Reply::ok(views::array(&items)).with_links(paging::self_link(ctx, path, limit)));
    }
    let limit = paging::limit(ctx, LIST_LIMITS)?;
    let after = paging::after(ctx, "00g")?;
    let (e, cs) = if let Some(s) = ctx.param("search") {
        (Some(parse_expr(s, &SEARCH_RULES)?), false)
    } else if let Some(f) = ctx.param("filter") {
        (Some(parse_expr(f, &FILTER_RULES)?), true)
    } else {
        (None, false)
    };
    let selected = org.groups.values().filter(|g| match &e {
        Some(e) => expr::eval(e, cs, &|a| attr(g, a)),
        None => true,
    });
    let (page, next) = paging::page(selected.map(|g| g.id.as_str()), after.as_deref(), limit);
    let items: Vec<String> = page
        .iter()
        .filter_map(|id| org.groups.get(*id))
        .map(|g| views::group_json(&ctx.base, g))
        .collect();
    Ok(Reply::ok(views::array(&items)).with_links(paging::links(ctx, path, limit, next)))
}

/// Reads and checks a group profile from a body: `name` is required.
fn profile_from(
    org: &Org,
    ctx: &Ctx,
    except: Option<&str>,
) -> Result<Map<String, Value>, OktaError> {
    let body = ctx.json_object()?;
    let mut profile = match body.get("profile") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(OktaError::new("E0000003", "")),
    };
    let name = profile
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("");
    if name.is_empty() {
        return Err(OktaError::validation(&[(
            "name".to_owned(),
            "The field cannot be left blank".to_owned(),
        )]));
    }
    if org.groups.values().any(|g| {
        Some(g.id.as_str()) != except
            && g.kind != GroupType::AppGroup
            && g.name().eq_ignore_ascii_case(name)
    }) {
        return Err(OktaError::validation(&[(
            "name".to_owned(),
            "An object with this field already exists in the current organization".to_owned(),
        )]));
    }
    profile.entry("description").or_insert(Value::Null);
    Ok(profile)
}

/// `POST /api/v1/groups`: creates an `OKTA_GROUP`.
pub fn create(org: &mut Org, ctx: &Ctx) -> Handled {
    let profile = profile_from(org, ctx, None)?;
    let t = now();
    let g = Group {
        id: org.new_group_id(),
        created: t,
        last_updated: t,
        last_membership_updated: t,
        kind: GroupType::OktaGroup,
        profile,
    };
    let body = views::group_json(&ctx.base, &g);
    let gid = g.id.clone();
    org.insert_group(g);
    audit::group_event(org, ctx, Action::GroupCreate, &gid);
    Ok(Reply::ok(body))
}

/// `GET /api/v1/groups/{groupId}`.
pub fn get(org: &mut Org, ctx: &Ctx, gid: &str) -> Handled {
    let g = org.group_or_404(gid)?;
    Ok(Reply::ok(views::group_json(&ctx.base, g)))
}

/// `PUT /api/v1/groups/{groupId}`: replaces the profile of an `OKTA_GROUP`.
pub fn replace(org: &mut Org, ctx: &Ctx, gid: &str) -> Handled {
    if org.group_or_404(gid)?.kind != GroupType::OktaGroup {
        return Err(OktaError::new("E0000006", ""));
    }
    let profile = profile_from(org, ctx, Some(gid))?;
    let t = now();
    let Some(g) = org.groups.get_mut(gid) else {
        return Err(OktaError::not_found(gid, "UserGroup"));
    };
    g.profile = profile;
    g.last_updated = t;
    let body = views::group_json(&ctx.base, g);
    audit::group_event(org, ctx, Action::GroupUpdate, gid);
    Ok(Reply::ok(body))
}

/// `DELETE /api/v1/groups/{groupId}`: removes an `OKTA_GROUP` and its memberships.
pub fn delete(org: &mut Org, ctx: &Ctx, gid: &str) -> Handled {
    if org.group_or_404(gid)?.kind != GroupType::OktaGroup {
        return Err(OktaError::new("E0000006", ""));
    }
    let target = audit::group_target(org, gid);
    org.groups.remove(gid);
    org.members.remove(gid);
    audit::record(org, ctx, Action::GroupDelete, target.into_iter().collect());
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

/// `GET /api/v1/groups/{groupId}/users`: members of any status, ordered by id.
pub fn members(org: &mut Org, ctx: &Ctx, gid: &str) -> Handled {
    org.group_or_404(gid)?;
    let limit = paging::limit(ctx, MEMBER_LIMITS)?;
    let after = paging::after(ctx, "00u")?;
    let empty = Default::default();
    let ids = org.members.get(gid).unwrap_or(&empty);
    let (page, next) = paging::page(ids.iter().map(String::as_str), after.as_deref(), limit);
    let items: Vec<String> = page
        .iter()
        .filter_map(|id| org.users.get(*id))
        .map(|u| views::user_json(&ctx.base, u, LinkDetail::SelfOnly))
        .collect();
    let path = format!("/api/v1/groups/{gid}/users");
    Ok(Reply::ok(views::array(&items)).with_links(paging::links(ctx, &path, limit, next)))
}

/// Checks a membership change: group and user exist, group is an `OKTA_GROUP`.
fn membership_target(org: &Org, gid: &str, uid: &str) -> Result<String, OktaError> {
    let g = org.group_or_404(gid)?;
    let user = org
        .users
        .get(uid)
        .ok_or_else(|| OktaError::not_found(uid, "User"))?;
    if g.kind != GroupType::OktaGroup {
        return Err(membership_error());
    }
    Ok(user.id.clone())
}

/// `PUT /api/v1/groups/{groupId}/users/{userId}`: 204, idempotent (logged only when the
/// membership changes).
pub fn add_member(org: &mut Org, ctx: &Ctx, gid: &str, uid: &str) -> Handled {
    let uid = membership_target(org, gid, uid)?;
    if org.add_member(gid, &uid, now()) {
        audit::membership_event(org, ctx, Action::MembershipAdd, &uid, gid);
    }
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

/// `DELETE /api/v1/groups/{groupId}/users/{userId}`: 204, also for non-members (logged only
/// when the membership changes).
pub fn remove_member(org: &mut Org, ctx: &Ctx, gid: &str, uid: &str) -> Handled {
    let uid = membership_target(org, gid, uid)?;
    if org.remove_member(gid, &uid, now()) {
        audit::membership_event(org, ctx, Action::MembershipRemove, &uid, gid);
    }
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}
