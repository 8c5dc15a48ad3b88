//! `/Groups`: Okta groups, read, and their memberships changed by PATCH.
//!
//! | SCIM | gRPC |
//! |---|---|
//! | `GET /Groups/{id}` | `GetGroup`, and `ListGroupMembers` (at most [`MAX_MEMBERS`]) unless `members` is excluded |
//! | `GET /Groups?filter=displayName …` | `ListGroups` with an Okta `search` of `profile.name` |
//! | `PATCH /Groups/{id}` `add`/`remove` of `members` | `AddGroupMember`, `RemoveGroupMember`, one per user |
//!
//! The gateway does not create, replace, rename or delete groups: those answer 501, as
//! `ResourceTypes` says. Lists show `members` only when `attributes` asks for them, since each
//! group's members cost Okta calls of their own.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::{Map, Value, json};

use super::ScimJson;
use super::error::{ScimError, ScimType};
use super::filter::{AttrPath, CompareOp, Filter};
use super::mapping::{GROUP_SCHEMA, get_ignoring_case};
use super::patch;
use super::query::{self, ListParameters, OKTA_PAGE_SIZE, Projection};
use super::server::{Caller, Scim};
use super::users;
use crate::proto::{
    GetGroupRequest, Group, GroupMemberRequest, ListGroupMembersRequest, ListGroupsRequest,
};

/// Most members a Group shows; a larger group is read with `excludedAttributes=members`
/// (and its members through the gRPC API's `StreamGroupMembers`).
pub const MAX_MEMBERS: usize = 1000;

/// `meta` of `group`: its version is its profile's or its memberships' last change, the later.
fn meta(group: &Group, base_url: &str) -> Value {
    super::meta(
        "Group",
        group.created.as_ref(),
        [
            group.last_updated.as_ref(),
            group.last_membership_updated.as_ref(),
        ],
        format!("{base_url}/Groups/{}", group.id),
    )
}

/// `meta.version` of `group`.
fn version(group: &Group) -> String {
    meta(group, "")["version"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// `group` as a SCIM Group, with `members` when given.
fn to_resource(group: &Group, members: Option<Vec<Value>>, base_url: &str) -> Value {
    let mut resource = Map::new();
    resource.insert("schemas".to_owned(), json!([GROUP_SCHEMA]));
    resource.insert("id".to_owned(), json!(group.id));
    resource.insert("displayName".to_owned(), json!(group.name));
    if let Some(members) = members {
        resource.insert("members".to_owned(), Value::Array(members));
    }
    resource.insert("meta".to_owned(), meta(group, base_url));
    Value::Object(resource)
}

/// The members of group `id`, at most [`MAX_MEMBERS`].
async fn members(scim: &Scim, caller: &Caller, id: &str) -> Result<Vec<Value>, ScimError> {
    let mut members = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListGroupMembersRequest {
            group_id: id.to_owned(),
            page_size: OKTA_PAGE_SIZE,
            page_token,
        };
        let page = scim
            .grpc
            .groups()
            .list_group_members(caller.sender.call(request, scim.request_timeout))
            .await?
            .into_inner();
        for user in &page.users {
            members.push(json!({
                "value": user.id,
                "display": user.profile.as_ref().map(|profile| profile.login.clone()),
                "type": "User",
                "$ref": format!("{}/Users/{}", caller.base_url, user.id),
            }));
        }
        if members.len() > MAX_MEMBERS {
            return Err(ScimError::bad_request(
                ScimType::TooMany,
                format!(
                    "the group has more than {MAX_MEMBERS} members: read it with \
                     `excludedAttributes=members`"
                ),
            ));
        }
        if page.next_page_token.is_empty() {
            return Ok(members);
        }
        page_token = page.next_page_token;
    }
}

/// The group `id`, through `GetGroup`.
async fn fetch(scim: &Scim, caller: &Caller, id: &str) -> Result<Group, ScimError> {
    let request = GetGroupRequest {
        group_id: id.to_owned(),
    };
    Ok(scim
        .grpc
        .groups()
        .get_group(caller.sender.call(request, scim.request_timeout))
        .await?
        .into_inner())
}

/// `group` as an answer with its `ETag`, with members unless `projection` excludes them.
async fn group_response(
    scim: &Scim,
    caller: &Caller,
    group: &Group,
    projection: &Projection,
) -> Result<Response, ScimError> {
    let members = if projection.shows("members", true) {
        Some(members(scim, caller, &group.id).await?)
    } else {
        None
    };
    let resource = projection.apply(to_resource(group, members, &caller.base_url))?;
    let mut response = ScimJson(resource).into_response();
    if let Ok(etag) = HeaderValue::from_str(&version(group)) {
        response.headers_mut().insert(http::header::ETAG, etag);
    }
    Ok(response)
}

/// `GET /Groups/{id}`.
pub async fn get(
    State(scim): State<Scim>,
    caller: Caller,
    Path(id): Path<String>,
    projection: Result<Query<Projection>, QueryRejection>,
) -> Result<Response, ScimError> {
    let projection = query::parameters(projection)?;
    let group = fetch(&scim, &caller, &id).await?;
    group_response(&scim, &caller, &group, &projection).await
}

/// `GET /Groups`.
pub async fn list(
    State(scim): State<Scim>,
    caller: Caller,
    parameters: Result<Query<ListParameters>, QueryRejection>,
) -> Result<ScimJson, ScimError> {
    let parameters = query::parameters(parameters)?;
    let filter = parameters.filter()?;
    let search = match &filter {
        None => String::new(),
        Some(filter) => okta_search(filter)?,
    };
    let resume = query::Resume::of(&scim, &caller, "Group", parameters.filter_text(), &search);
    let window = parameters.window(scim.settings.max_results)?;
    let with_members = window.shows("members", false);
    let listed = query::walk(filter.as_ref(), window, resume, |page_token| {
        let request = ListGroupsRequest {
            page_size: OKTA_PAGE_SIZE,
            page_token,
            search: search.clone(),
            ..ListGroupsRequest::default()
        };
        let call = caller.sender.call(request, scim.request_timeout);
        let mut groups_api = scim.grpc.groups();
        let (scim, caller) = (&scim, &caller);
        Box::pin(async move {
            let page = groups_api.list_groups(call).await?.into_inner();
            let mut resources = Vec::with_capacity(page.groups.len());
            for group in &page.groups {
                let members = if with_members {
                    Some(members(scim, caller, &group.id).await?)
                } else {
                    None
                };
                resources.push(to_resource(group, members, &caller.base_url));
            }
            Ok((resources, page.next_page_token))
        })
    })
    .await?;
    Ok(ScimJson(listed))
}

/// A Group filter as an Okta groups `search`: `displayName` (`eq`, `sw`, `co`) and `id`
/// (`eq`), joined by `and`/`or`; anything else is `invalidFilter`.
fn okta_search(filter: &Filter) -> Result<String, ScimError> {
    let refuse = |what: &str| {
        ScimError::bad_request(
            ScimType::InvalidFilter,
            format!(
                "Groups can be filtered by `displayName` (eq, sw, co) and `id` (eq) only: {what}"
            ),
        )
    };
    match filter {
        Filter::Compare {
            path,
            op,
            value: super::filter::Value::String(text),
        } => {
            let attribute = group_attribute(path).ok_or_else(|| refuse("an unknown attribute"))?;
            let op = match (attribute, op) {
                (_, CompareOp::Eq) => "eq",
                ("profile.name", CompareOp::Sw) => "sw",
                ("profile.name", CompareOp::Co) => "co",
                _ => return Err(refuse("an unsupported operator")),
            };
            let literal = serde_json::to_string(text).map_err(|_| refuse("an unusable value"))?;
            Ok(format!("{attribute} {op} {literal}"))
        }
        Filter::And(left, right) => Ok(format!(
            "({}) and ({})",
            okta_search(left)?,
            okta_search(right)?
        )),
        Filter::Or(left, right) => Ok(format!(
            "({}) or ({})",
            okta_search(left)?,
            okta_search(right)?
        )),
        _ => Err(refuse("not, pr, value paths and non-string values are not")),
    }
}

fn group_attribute(path: &AttrPath) -> Option<&'static str> {
    let core = path
        .schema
        .as_deref()
        .is_none_or(|schema| schema.eq_ignore_ascii_case(GROUP_SCHEMA));
    if !core || path.sub.is_some() {
        return None;
    }
    if path.name.eq_ignore_ascii_case("displayName") {
        Some("profile.name")
    } else if path.name.eq_ignore_ascii_case("id") {
        Some("id")
    } else {
        None
    }
}

/// `PATCH /Groups/{id}`: `add` and `remove` of `members`, each user one membership call,
/// answered 204 (RFC 7644 §3.5.2 allows it) rather than reading the group and all its members
/// back for every change.
pub async fn patch(
    State(scim): State<Scim>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ScimError> {
    let body = users::json_object(body)?;
    let changes = member_changes(&body)?;
    for (add, user_id) in changes {
        let request = GroupMemberRequest {
            group_id: id.clone(),
            user_id,
            request_id: String::new(),
        };
        let call = caller.sender.call(request, scim.request_timeout);
        let mut groups_api = scim.grpc.groups();
        if add {
            groups_api.add_group_member(call).await?;
        } else {
            groups_api.remove_group_member(call).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The memberships a Group PATCH changes: (whether added, user id), in order.
fn member_changes(body: &Map<String, Value>) -> Result<Vec<(bool, String)>, ScimError> {
    let mut changes = Vec::new();
    for operation in patch::operations(body)? {
        let (add, path, value) = operation.parts();
        let members_path = path.is_some_and(|path| {
            let path = path.trim();
            path.eq_ignore_ascii_case("members")
                || path.to_ascii_lowercase().starts_with("members[")
        });
        let mutability = || {
            ScimError::bad_request(
                ScimType::Mutability,
                "only `members` of a Group can be changed here (add or remove)",
            )
        };
        match (add, path, value) {
            // `remove` with `members[value eq "…"]`: the users the filter names.
            (None, Some(path), _) if members_path => {
                let filter = path
                    .trim()
                    .get("members".len()..)
                    .and_then(|rest| rest.strip_prefix('['))
                    .and_then(|rest| rest.strip_suffix(']'))
                    .ok_or_else(|| {
                        ScimError::bad_request(
                            ScimType::NoTarget,
                            "removing members needs `members[value eq \"<user id>\"]` or a value",
                        )
                    })?;
                for user_id in member_ids_of_filter(filter)? {
                    changes.push((false, user_id));
                }
            }
            (Some(add), path, Some(value)) if path.is_none() || members_path => {
                let members = match (path, value) {
                    (None, Value::Object(object)) => get_ignoring_case(object, "members")
                        .cloned()
                        .ok_or_else(mutability)?,
                    (None, _) => return Err(mutability()),
                    (Some(_), value) => value.clone(),
                };
                for user_id in member_ids(&members)? {
                    changes.push((add, user_id));
                }
            }
            _ => return Err(mutability()),
        }
    }
    Ok(changes)
}

/// The user ids of a `members` value: `[{"value": "<id>"}, …]`.
fn member_ids(members: &Value) -> Result<Vec<String>, ScimError> {
    let invalid = || {
        ScimError::bad_request(
            ScimType::InvalidValue,
            "`members` must be an array of objects with a string `value`",
        )
    };
    let elements = members.as_array().ok_or_else(invalid)?;
    elements
        .iter()
        .map(|element| {
            element
                .as_object()
                .and_then(|object| get_ignoring_case(object, "value"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(invalid)
        })
        .collect()
}

/// The user ids `value eq "<id>"` (joined by `or`) names.
fn member_ids_of_filter(text: &str) -> Result<Vec<String>, ScimError> {
    let filter = super::filter::parse(text)
        .map_err(|error| ScimError::bad_request(ScimType::InvalidFilter, error.to_string()))?;
    let mut ids = Vec::new();
    collect_value_ids(&filter, &mut ids)?;
    Ok(ids)
}

fn collect_value_ids(filter: &Filter, ids: &mut Vec<String>) -> Result<(), ScimError> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: super::filter::Value::String(id),
        } if path.name.eq_ignore_ascii_case("value") && path.sub.is_none() => {
            ids.push(id.clone());
            Ok(())
        }
        Filter::Or(left, right) => {
            collect_value_ids(left, ids)?;
            collect_value_ids(right, ids)
        }
        _ => Err(ScimError::bad_request(
            ScimType::InvalidFilter,
            "a members filter names users as `value eq \"<user id>\"`, joined by `or`",
        )),
    }
}

/// `POST`, `PUT` and `DELETE` of Groups: the gateway does not manage groups.
pub async fn not_managed() -> ScimError {
    ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "the gateway does not create, replace, rename or delete groups; only their members \
         change (PATCH add/remove of `members`)",
    )
}
