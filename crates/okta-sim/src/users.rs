//! `/api/v1/users`: list (plain, `search`, `filter`, `q`), create, get, update, replace,
//! delete, and a user's groups.

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::audit::{self, Action};
use super::errors::OktaError;
use super::expr::{self, Op, Rules};
use super::http::{Ctx, Handled, Reply};
use super::paging::{self, Limits};
use super::state::{GroupType, Org, User, UserStatus, fmt_ts, now, validate_profile};
use super::views::{self, LinkDetail, USER_TYPE_ID};

/// Plain and expression listings: default 200, at most 200 per page.
const LIST_LIMITS: Limits = Limits {
    default: 200,
    max: 200,
};
/// `q` listings: default 10 (Okta's documented default for `q`), at most 200, never paged.
const Q_LIMITS: Limits = Limits {
    default: 10,
    max: 200,
};

/// `search` rules: any base or profile attribute, `eq sw gt ge lt le pr`, `co` on four
/// profile attributes only; values compare case-insensitively.
pub const SEARCH_RULES: Rules = Rules {
    case_sensitive: false,
    allow: search_allow,
};

/// `filter` rules: seven attributes, `eq` only (`lastUpdated` also `gt ge lt le`);
/// values compare case-sensitively.
pub const FILTER_RULES: Rules = Rules {
    case_sensitive: true,
    allow: filter_allow,
};

fn search_allow(attr: &str, op: Op) -> Result<(), String> {
    let known = matches!(
        attr,
        "id" | "status" | "created" | "activated" | "statusChanged" | "lastUpdated" | "type.id"
    ) || attr.strip_prefix("profile.").is_some_and(|k| !k.is_empty());
    if !known {
        return Err(format!("Unsupported attribute in search: {attr}"));
    }
    match op {
        Op::Eq | Op::Sw | Op::Gt | Op::Ge | Op::Lt | Op::Le | Op::Pr => Ok(()),
        Op::Co
            if matches!(
                attr,
                "profile.firstName" | "profile.lastName" | "profile.email" | "profile.login"
            ) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "Unsupported operator '{}' for attribute '{attr}' in search",
            op.as_str()
        )),
    }
}

fn filter_allow(attr: &str, op: Op) -> Result<(), String> {
    let known = matches!(
        attr,
        "status"
            | "lastUpdated"
            | "id"
            | "profile.login"
            | "profile.email"
            | "profile.firstName"
            | "profile.lastName"
    );
    if !known {
        return Err(format!("Unsupported attribute in filter: {attr}"));
    }
    if op == Op::Eq || (attr == "lastUpdated" && op.is_ordering()) {
        Ok(())
    } else {
        Err(format!(
            "Unsupported operator '{}' for attribute '{attr}' in filter",
            op.as_str()
        ))
    }
}

/// The value of a searchable attribute of `u`.
pub fn attr(u: &User, name: &str) -> Option<Value> {
    let ts = |t: &Option<chrono::DateTime<chrono::Utc>>| t.as_ref().map(|t| Value::from(fmt_ts(t)));
    match name {
        "id" => Some(Value::from(u.id.clone())),
        "status" => Some(Value::from(u.status.as_str())),
        "created" => Some(Value::from(fmt_ts(&u.created))),
        "activated" => ts(&u.activated),
        "statusChanged" => ts(&u.status_changed),
        "lastUpdated" => Some(Value::from(fmt_ts(&u.last_updated))),
        "type.id" => Some(Value::from(USER_TYPE_ID)),
        _ => name
            .strip_prefix("profile.")
            .and_then(|k| u.profile.get(k).cloned()),
    }
}

/// Parses and checks an expression against `rules`, as Okta's E0000031 on failure.
pub fn parse_expr(text: &str, rules: &Rules) -> Result<expr::Expr, OktaError> {
    let e = expr::parse(text).map_err(OktaError::bad_search)?;
    expr::check(&e, rules).map_err(OktaError::bad_search)?;
    Ok(e)
}

/// Rejects requests that combine `search`, `filter` and `q`.
pub fn at_most_one_query(ctx: &Ctx) -> Result<(), OktaError> {
    let n = ["search", "filter", "q"]
        .iter()
        .filter(|k| ctx.param(k).is_some())
        .count();
    if n > 1 {
        return Err(OktaError::bad_search(
            "Only one of search, filter and q may be used",
        ));
    }
    Ok(())
}

/// `GET /api/v1/users`.
pub fn list(org: &mut Org, ctx: &Ctx) -> Handled {
    at_most_one_query(ctx)?;
    let path = "/api/v1/users";
    if let Some(q) = ctx.param("q") {
        let limit = paging::limit(ctx, Q_LIMITS)?;
        let q = q.to_lowercase();
        let hit = |u: &User| {
            ["firstName", "lastName", "email"].iter().any(|k| {
                u.profile
                    .get(*k)
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.to_lowercase().starts_with(&q))
            })
        };
        let items: Vec<String> = org
            .users
            .values()
            .filter(|u| u.status != UserStatus::Deprovisioned && hit(u))
            .take(limit)
            .map(|u| views::user_json(&ctx.base, u, LinkDetail::SelfOnly))
            .collect();
        return Ok(Reply::ok(views::array(&items)).with_links(paging::self_link(ctx, path, limit)));
    }
    let limit = paging::limit(ctx, LIST_LIMITS)?;
    let after = paging::after(ctx, "00u")?;
    let (expr, cs) = if let Some(s) = ctx.param("search") {
        (Some(parse_expr(s, &SEARCH_RULES)?), false)
    } else if let Some(f) = ctx.param("filter") {
        (Some(parse_expr(f, &FILTER_RULES)?), true)
    } else {
        (None, false)
    };
    let selected = org.users.values().filter(|u| match &expr {
        Some(e) => expr::eval(e, cs, &|a| attr(u, a)),
        None => u.status != UserStatus::Deprovisioned,
    });
    let (page, next) = paging::page(selected.map(|u| u.id.as_str()), after.as_deref(), limit);
    let items: Vec<String> = page
        .iter()
        .filter_map(|id| org.users.get(*id))
        .map(|u| views::user_json(&ctx.base, u, LinkDetail::SelfOnly))
        .collect();
    Ok(Reply::ok(views::array(&items)).with_links(paging::links(ctx, path, limit, next)))
}

/// `credentials.password.value`, if given; a non-string value is malformed.
fn password(body: &Map<String, Value>) -> Result<Option<String>, OktaError> {
    match body
        .get("credentials")
        .and_then(|c| c.get("password"))
        .and_then(|p| p.get("value"))
    {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(OktaError::new("E0000003", "")),
    }
}

/// The `profile` object of a body (absent = empty); a non-object is malformed.
fn profile_of(body: &Map<String, Value>) -> Result<Option<Map<String, Value>>, OktaError> {
    match body.get("profile") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(_) => Err(OktaError::new("E0000003", "")),
    }
}

/// Okta's "validation failed" error when `causes` is not empty.
fn ensure_valid(causes: Vec<(String, String)>) -> Result<(), OktaError> {
    if causes.is_empty() {
        Ok(())
    } else {
        Err(OktaError::validation(&causes))
    }
}

/// The error for membership changes on groups that are not `OKTA_GROUP`.
///
/// Okta's exact answer is not confirmed by any recording; the simulator uses
/// 400 E0000001 with this cause.
pub fn membership_error() -> OktaError {
    let text = "Group memberships can only be changed for OKTA_GROUP groups";
    OktaError::new("E0000001", text).cause(text)
}

/// `POST /api/v1/users?activate=&nextLogin=`.
pub fn create(org: &mut Org, ctx: &Ctx) -> Handled {
    let activate = ctx.bool_param("activate", true)?;
    let body = ctx.json_object()?;
    let profile = profile_of(&body)?.unwrap_or_default();
    let pw = password(&body)?;
    let group_ids: Vec<String> = match body.get("groupIds") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| OktaError::new("E0000003", ""))?,
        Some(_) => return Err(OktaError::new("E0000003", "")),
    };
    let expire = match ctx.param("nextLogin") {
        None => false,
        Some("changePassword") => true,
        Some(_) => {
            return Err(OktaError::validation(&[(
                "nextLogin".to_owned(),
                "must be changePassword".to_owned(),
            )]));
        }
    };
    if expire && pw.is_none() {
        return Err(OktaError::new("E0000124", ""));
    }
    if expire && !activate {
        return Err(OktaError::new("E0000125", ""));
    }
    ensure_valid(validate_profile(org, &profile, None))?;
    for gid in &group_ids {
        if org.group_or_404(gid)?.kind != GroupType::OktaGroup {
            return Err(membership_error());
        }
    }
    let t = now();
    let status = match (activate, pw.is_some(), expire) {
        (false, _, _) => UserStatus::Staged,
        (true, true, true) => UserStatus::PasswordExpired,
        (true, true, false) => UserStatus::Active,
        (true, false, _) => UserStatus::Provisioned,
    };
    let user = User {
        id: org.new_user_id(),
        status,
        created: t,
        activated: matches!(status, UserStatus::Active | UserStatus::PasswordExpired).then_some(t),
        status_changed: Some(t),
        last_login: None,
        last_updated: t,
        password_changed: pw.as_ref().map(|_| t),
        has_password: pw.is_some(),
        profile,
    };
    let id = user.id.clone();
    org.insert_user(user);
    audit::user_event(org, ctx, Action::UserCreate, &id);
    // Okta logs each membership the create made, as it does for a membership added later.
    for gid in &group_ids {
        if org.add_member(gid, &id, t) {
            audit::membership_event(org, ctx, Action::MembershipAdd, &id, gid);
        }
    }
    render_user(org, ctx, &id)
}

fn render_user(org: &Org, ctx: &Ctx, id: &str) -> Handled {
    let u = org.user_or_404(id)?;
    Ok(Reply::ok(views::user_json(&ctx.base, u, LinkDetail::Full)))
}

/// `GET /api/v1/users/{idOrLogin}`.
pub fn get(org: &mut Org, ctx: &Ctx, id: &str) -> Handled {
    render_user(org, ctx, id)
}

/// `POST /api/v1/users/{id}` (partial: `null` removes an attribute) and
/// `PUT /api/v1/users/{id}` (`replace`: the profile is replaced as a whole).
pub fn update(org: &mut Org, ctx: &Ctx, id: &str, replace: bool) -> Handled {
    let uid = org.user_id_or_404(id)?;
    let body = ctx.json_object()?;
    let given = profile_of(&body)?;
    let pw = password(&body)?;
    let current = org
        .users
        .get(&uid)
        .map(|u| u.profile.clone())
        .unwrap_or_default();
    let mut profile = if replace { Map::new() } else { current.clone() };
    match given {
        Some(p) => {
            for (k, v) in p {
                if v.is_null() {
                    profile.remove(&k);
                } else {
                    profile.insert(k, v);
                }
            }
        }
        None if replace => profile = current,
        None => {}
    }
    ensure_valid(validate_profile(org, &profile, Some(&uid)))?;
    let t = now();
    if let Some(u) = org.user_mut(&uid) {
        u.profile = profile;
        u.last_updated = t;
        if pw.is_some() {
            u.has_password = true;
            u.password_changed = Some(t);
        }
    }
    audit::user_event(org, ctx, Action::UserUpdateProfile, &uid);
    render_user(org, ctx, &uid)
}

/// `DELETE /api/v1/users/{id}`: deactivates first, deletes when already deprovisioned.
pub fn delete(org: &mut Org, ctx: &Ctx, id: &str) -> Handled {
    let uid = org.user_id_or_404(id)?;
    ctx.bool_param("sendEmail", false)?;
    let deprovisioned = org
        .users
        .get(&uid)
        .is_some_and(|u| u.status == UserStatus::Deprovisioned);
    if deprovisioned {
        let target = audit::user_target(org, &uid);
        org.delete_user(&uid);
        audit::record(org, ctx, Action::UserDelete, target.into_iter().collect());
    } else if let Some(u) = org.user_mut(&uid) {
        u.set_status(UserStatus::Deprovisioned, now());
        audit::user_event(org, ctx, Action::UserDeactivate, &uid);
    }
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

/// `GET /api/v1/users/{id}/groups`, paged like the other lists.
pub fn groups_of(org: &mut Org, ctx: &Ctx, id: &str) -> Handled {
    let uid = org.user_id_or_404(id)?;
    let limit = paging::limit(ctx, LIST_LIMITS)?;
    let after = paging::after(ctx, "00g")?;
    let gids = org.groups_of(&uid);
    let (page, next) = paging::page(gids.iter().map(String::as_str), after.as_deref(), limit);
    let items: Vec<String> = page
        .iter()
        .filter_map(|g| org.groups.get(*g))
        .map(|g| views::group_json(&ctx.base, g))
        .collect();
    let path = format!("/api/v1/users/{uid}/groups");
    Ok(Reply::ok(views::array(&items)).with_links(paging::links(ctx, &path, limit, next)))
}
