//! `/Users`: SCIM Users onto Okta users, each operation as the gRPC calls it amounts to.
//!
//! | SCIM | gRPC |
//! |---|---|
//! | `GET /Users/{id}` | `GetUser` |
//! | `GET /Users?filter=…` | `ListUsers` (an Okta `search`), pages walked as [`super::query`] says |
//! | `POST /Users` | `CreateUser` (`active: true` activates) |
//! | `PUT /Users/{id}` | `GetUser`, `UpdateUser` of every mapped attribute, then `ActivateUser` or `DeactivateUser` when `active` changes |
//! | `PATCH /Users/{id}` | `GetUser`, then `UpdateUser` of the attributes changed and the lifecycle call `active` asks for |
//! | `DELETE /Users/{id}` | `DeleteUser` with `deactivate_first` |
//!
//! `If-Match` compares `meta.version` (Okta's `lastUpdated`) with the user's before any change.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use prost_types::FieldMask;
use serde_json::{Map, Value, json};

use super::ScimJson;
use super::error::{ScimError, ScimType};
use super::mapping::{
    self, ENTERPRISE_SCHEMA, EXTERNAL_ID_ATTRIBUTE, USER_ATTRIBUTES, USER_SCHEMA, get_ignoring_case,
};
use super::query::{self, ListParameters};
use super::server::{Caller, Scim};
use crate::proto::{
    ActivateUserRequest, CreateUserRequest, DeactivateUserRequest, DeleteUserRequest,
    GetUserRequest, UpdateUserRequest, User, UserProfile, UserStatus, get_user_request,
};

/// The attributes of a User body that are not profile attributes of the table.
const OTHER_USER_ATTRIBUTES: &[&str] = &[
    "schemas",
    "id",
    "externalId",
    "meta",
    "active",
    "password",
    "groups",
    "name",
    "emails",
    "phoneNumbers",
];

/// Whether a user of `status` is `active` in SCIM: it may sign in, or is on its way to.
pub fn is_active(status: UserStatus) -> bool {
    !matches!(
        status,
        UserStatus::Staged | UserStatus::Suspended | UserStatus::Deprovisioned
    )
}

/// `meta` of `user`.
fn meta(user: &User, base_url: &str) -> Value {
    super::meta(
        "User",
        user.created.as_ref(),
        [user.last_updated.as_ref(), None],
        format!("{base_url}/Users/{}", user.id),
    )
}

/// `meta.version` of `user`: a weak ETag of Okta's `lastUpdated`.
pub fn version(user: &User) -> String {
    meta(user, "")["version"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// `user` as a SCIM User.
pub fn to_resource(user: &User, base_url: &str) -> Value {
    let mut resource = Map::new();
    resource.insert("id".to_owned(), json!(user.id));
    if let Some(profile) = &user.profile {
        mapping::write_profile(profile, &mut resource);
    }
    let mut schemas = vec![USER_SCHEMA];
    if resource.contains_key(ENTERPRISE_SCHEMA) {
        schemas.push(ENTERPRISE_SCHEMA);
    }
    resource.insert("schemas".to_owned(), json!(schemas));
    let status = UserStatus::try_from(user.status).unwrap_or(UserStatus::Unspecified);
    resource.insert("active".to_owned(), json!(is_active(status)));
    resource.insert("meta".to_owned(), meta(user, base_url));
    Value::Object(resource)
}

/// A User answer with its `ETag` (and `Location` when `created`).
fn user_response(user: &User, base_url: &str, created: bool) -> Response {
    let resource = to_resource(user, base_url);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = (status, ScimJson(resource)).into_response();
    if let Ok(etag) = HeaderValue::from_str(&version(user)) {
        response.headers_mut().insert(http::header::ETAG, etag);
    }
    if created {
        if let Ok(location) = HeaderValue::from_str(&format!("{base_url}/Users/{}", user.id)) {
            response
                .headers_mut()
                .insert(http::header::LOCATION, location);
        }
    }
    response
}

/// The user `id`, read through `GetUser`.
pub async fn fetch(scim: &Scim, caller: &Caller, id: &str) -> Result<User, ScimError> {
    let request = GetUserRequest {
        user: Some(get_user_request::User::Id(id.to_owned())),
    };
    Ok(scim
        .grpc
        .users()
        .get_user(caller.sender.call(request, scim.request_timeout))
        .await?
        .into_inner())
}

/// 412 unless `If-Match` is absent, `*`, or names `user`'s version.
pub fn check_if_match(headers: &HeaderMap, user: &User) -> Result<(), ScimError> {
    let current = version(user);
    let strip_weak = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    for value in headers.get_all(http::header::IF_MATCH) {
        let text = value.to_str().unwrap_or_default();
        let matches = text
            .split(',')
            .any(|tag| tag.trim() == "*" || strip_weak(tag) == strip_weak(&current));
        if !matches {
            return Err(ScimError::new(
                StatusCode::PRECONDITION_FAILED,
                None,
                format!("If-Match does not name the user's current version, {current}"),
            ));
        }
    }
    Ok(())
}

/// `GET /Users/{id}`.
pub async fn get(
    State(scim): State<Scim>,
    caller: Caller,
    Path(id): Path<String>,
    projection: Result<Query<query::Projection>, QueryRejection>,
) -> Result<Response, ScimError> {
    let projection = query::parameters(projection)?;
    let user = fetch(&scim, &caller, &id).await?;
    let mut response = user_response(&user, &caller.base_url, false);
    if projection.is_set() {
        let resource = projection.apply(to_resource(&user, &caller.base_url))?;
        *response.body_mut() = ScimJson(resource).into_response().into_body();
    }
    Ok(response)
}

/// `GET /Users`.
pub async fn list(
    State(scim): State<Scim>,
    caller: Caller,
    parameters: Result<Query<ListParameters>, QueryRejection>,
) -> Result<ScimJson, ScimError> {
    let parameters = query::parameters(parameters)?;
    query::list_users(&scim, &caller, parameters)
        .await
        .map(ScimJson)
}

/// A request body as a JSON object, or the SCIM error saying why it is not one.
pub fn json_object(
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Map<String, Value>, ScimError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ScimError::new(
                status,
                Some(ScimType::TooMany),
                "the request body is too large",
            )
        } else {
            ScimError::bad_request(ScimType::InvalidSyntax, rejection.body_text())
        }
    })?;
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ScimError::bad_request(
            ScimType::InvalidSyntax,
            "the request body must be a JSON object",
        )),
        Err(error) => Err(ScimError::bad_request(
            ScimType::InvalidSyntax,
            format!("the request body is not valid JSON: {error}"),
        )),
    }
}

/// The profile a POST or PUT body describes (absent attributes empty), refusing attributes the
/// table does not map.
fn profile_of(body: &Map<String, Value>) -> Result<UserProfile, ScimError> {
    for name in body.keys() {
        let known = OTHER_USER_ATTRIBUTES
            .iter()
            .any(|other| other.eq_ignore_ascii_case(name))
            || name.eq_ignore_ascii_case(ENTERPRISE_SCHEMA)
            || USER_ATTRIBUTES
                .iter()
                .any(|attribute| match attribute.place {
                    mapping::Place::Top(top) => top.eq_ignore_ascii_case(name),
                    _ => false,
                });
        if !known {
            return Err(ScimError::bad_request(
                ScimType::InvalidValue,
                format!(
                    "attribute `{}` is not supported (see /Schemas)",
                    truncated(name)
                ),
            ));
        }
    }
    let mut profile = UserProfile::default();
    for attribute in USER_ATTRIBUTES
        .iter()
        .filter(|attribute| !attribute.read_only)
    {
        let value = mapping::read_value(attribute, body)
            .map_err(|problem| ScimError::bad_request(ScimType::InvalidValue, problem))?;
        attribute.set(&mut profile, value.unwrap_or_default());
    }
    match get_ignoring_case(body, "externalId") {
        None | Some(Value::Null) => {}
        Some(Value::String(external_id)) => {
            let mut custom = prost_types::Struct::default();
            custom.fields.insert(
                EXTERNAL_ID_ATTRIBUTE.to_owned(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue(external_id.clone())),
                },
            );
            profile.custom_attributes = Some(custom);
        }
        Some(_) => {
            return Err(ScimError::bad_request(
                ScimType::InvalidValue,
                "`externalId` must be a string",
            ));
        }
    }
    Ok(profile)
}

/// At most 64 characters of `text`, for echoing a caller's input in an error.
pub fn truncated(text: &str) -> String {
    text.chars().take(64).collect()
}

/// `active` of a body: `None` when absent.
fn active_of(body: &Map<String, Value>) -> Result<Option<bool>, ScimError> {
    match get_ignoring_case(body, "active") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(active)) => Ok(Some(*active)),
        Some(_) => Err(ScimError::bad_request(
            ScimType::InvalidValue,
            "`active` must be a boolean",
        )),
    }
}

/// `POST /Users`.
pub async fn create(
    State(scim): State<Scim>,
    caller: Caller,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ScimError> {
    let body = json_object(body)?;
    let profile = profile_of(&body)?;
    let password = match get_ignoring_case(&body, "password") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(password)) => password.clone(),
        Some(_) => {
            return Err(ScimError::bad_request(
                ScimType::InvalidValue,
                "`password` must be a string",
            ));
        }
    };
    let request = CreateUserRequest {
        profile: Some(profile),
        password,
        activate: active_of(&body)?.unwrap_or(false),
        ..CreateUserRequest::default()
    };
    let user = scim
        .grpc
        .users()
        .create_user(caller.sender.call(request, scim.request_timeout))
        .await?
        .into_inner();
    Ok(user_response(&user, &caller.base_url, true))
}

/// The update mask of every attribute a PUT replaces.
fn replaced_fields(profile: &UserProfile) -> Vec<String> {
    let mut paths: Vec<String> = USER_ATTRIBUTES
        .iter()
        .filter(|attribute| !attribute.read_only)
        .map(|attribute| format!("profile.{}", attribute.field))
        .collect();
    if profile.custom_attributes.is_some() {
        paths.push(format!("profile.custom_attributes.{EXTERNAL_ID_ATTRIBUTE}"));
    }
    paths
}

/// `PUT /Users/{id}`.
pub async fn replace(
    State(scim): State<Scim>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ScimError> {
    let body = json_object(body)?;
    let profile = profile_of(&body)?;
    let active = active_of(&body)?;
    let current = fetch(&scim, &caller, &id).await?;
    check_if_match(&headers, &current)?;
    let paths = replaced_fields(&profile);
    let user = change(&scim, &caller, &current, profile, paths, active).await?;
    Ok(user_response(&user, &caller.base_url, false))
}

/// The profile change, then the lifecycle change `active` asks for. When the second fails
/// after the first was made, the error says the profile was changed, so no caller reads a
/// made change as not made.
async fn change(
    scim: &Scim,
    caller: &Caller,
    current: &User,
    profile: UserProfile,
    paths: Vec<String>,
    active: Option<bool>,
) -> Result<User, ScimError> {
    let profile_changed = !paths.is_empty();
    let updated = update(scim, caller, current, profile, paths).await?;
    set_active(scim, caller, updated, active)
        .await
        .map_err(|error| {
            if profile_changed {
                error.noting("the profile change was made; changing `active` was not")
            } else {
                error
            }
        })
}

/// `UpdateUser` of the `paths` of `current` to `profile`'s values.
pub async fn update(
    scim: &Scim,
    caller: &Caller,
    current: &User,
    profile: UserProfile,
    paths: Vec<String>,
) -> Result<User, ScimError> {
    if paths.is_empty() {
        return Ok(current.clone());
    }
    let request = UpdateUserRequest {
        user: Some(User {
            id: current.id.clone(),
            profile: Some(profile),
            ..User::default()
        }),
        update_mask: Some(FieldMask { paths }),
        request_id: String::new(),
    };
    Ok(scim
        .grpc
        .users()
        .update_user(caller.sender.call(request, scim.request_timeout))
        .await?
        .into_inner())
}

/// `user` made active or not, as `active` asks: `ActivateUser` for a STAGED or DEPROVISIONED
/// user, `DeactivateUser` for an active one. Suspension stays on the gRPC API: a SUSPENDED user
/// asked to be active is refused.
pub async fn set_active(
    scim: &Scim,
    caller: &Caller,
    user: User,
    active: Option<bool>,
) -> Result<User, ScimError> {
    let status = UserStatus::try_from(user.status).unwrap_or(UserStatus::Unspecified);
    match active {
        None => Ok(user),
        Some(active) if active == is_active(status) => Ok(user),
        Some(true) if status == UserStatus::Suspended => Err(ScimError::new(
            StatusCode::CONFLICT,
            Some(ScimType::Mutability),
            "the user is SUSPENDED: unsuspend it through the gRPC API (UnsuspendUser)",
        )),
        Some(true) => {
            let request = ActivateUserRequest {
                user_id: user.id.clone(),
                send_email: false,
                request_id: String::new(),
            };
            let activated = scim
                .grpc
                .users()
                .activate_user(caller.sender.call(request, scim.request_timeout))
                .await?
                .into_inner();
            activated
                .user
                .ok_or_else(|| ScimError::new(StatusCode::BAD_GATEWAY, None, "no user answered"))
        }
        Some(false) => {
            let request = DeactivateUserRequest {
                user_id: user.id.clone(),
                send_email: false,
                request_id: String::new(),
            };
            Ok(scim
                .grpc
                .users()
                .deactivate_user(caller.sender.call(request, scim.request_timeout))
                .await?
                .into_inner())
        }
    }
}

/// `DELETE /Users/{id}`: deactivates, then deletes.
pub async fn delete(
    State(scim): State<Scim>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ScimError> {
    if headers.contains_key(http::header::IF_MATCH) {
        let current = fetch(&scim, &caller, &id).await?;
        check_if_match(&headers, &current)?;
    }
    let request = DeleteUserRequest {
        user_id: id,
        deactivate_first: true,
        send_email: false,
        request_id: String::new(),
    };
    scim.grpc
        .users()
        .delete_user(caller.sender.call(request, scim.request_timeout))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PATCH /Users/{id}`.
pub async fn patch(
    State(scim): State<Scim>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ScimError> {
    let body = json_object(body)?;
    let current = fetch(&scim, &caller, &id).await?;
    check_if_match(&headers, &current)?;
    let change = super::patch::user_change(&body, &current)?;
    let user = self::change(
        &scim,
        &caller,
        &current,
        change.profile,
        change.paths,
        change.active,
    )
    .await?;
    Ok(user_response(&user, &caller.base_url, false))
}
