//! Lists: a SCIM filter as an Okta `search`, SCIM's 1-based `startIndex` over Okta's cursors,
//! and `attributes`/`excludedAttributes`.
//!
//! **Filters.** The filter is parsed ([`super::filter`]) and as much of it as Okta's users
//! `search` can evaluate is sent as a search expression that matches every user the filter
//! matches (and possibly more): comparisons `eq sw gt ge lt le pr` of mapped attributes, `co`
//! of the four attributes Okta allows it on, `and` of any parts, `or` of parts Okta can search
//! both of. `ne`, `ew`, `not` and the rest are left out of the search. Every user Okta answers
//! is then checked against the whole filter in the gateway, so the answer is exactly SCIM's.
//! A filter naming an attribute that is not mapped is refused `invalidFilter`.
//!
//! **Paging.** Okta pages by cursor, SCIM by position. A list walks Okta's pages (200 users
//! each), counting matches, until it has `startIndex - 1 + count` of them or the list ends. It
//! starts from the first page, or from the furthest page start before its window that a
//! recent walk of the same list by the same caller passed ([`super::bookmarks`]), so a client
//! paging through a list in order pays about one Okta call per page it asks for, and a page
//! asked for out of the blue at position N about (N + count) / 200. The walk is bounded: at
//! most [`MAX_SCANNED`] users from the list's start are looked at for one answer, and a list
//! that needs more (a late `startIndex`, or a filter Okta cannot narrow in a large org) is
//! refused `tooMany`, bookmarks or not. `totalResults` is exact when the walk reached the end;
//! otherwise more may follow and it counts one more result than those up to this page, so a
//! client paging until it passes `totalResults` (or gets an empty page) reaches the end.

use std::collections::HashSet;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::bookmarks::{Bookmark, Bookmarks, Listing};
use super::error::{ScimError, ScimType};
use super::filter::{self, AttrPath, CompareOp, Filter};
use super::mapping::{self, ENTERPRISE_SCHEMA, USER_SCHEMA};
use super::server::{Caller, Scim};
use super::users;
use crate::proto::ListUsersRequest;

/// Okta's largest users and groups page.
pub const OKTA_PAGE_SIZE: i32 = 200;
/// Most users one list looks at.
pub const MAX_SCANNED: usize = 5_000;
/// The schema of list answers.
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// Okta statuses in which SCIM's `active` is true, and false.
const ACTIVE_STATUSES: &[&str] = &[
    "ACTIVE",
    "PROVISIONED",
    "RECOVERY",
    "PASSWORD_EXPIRED",
    "LOCKED_OUT",
];
const INACTIVE_STATUSES: &[&str] = &["STAGED", "SUSPENDED", "DEPROVISIONED"];

/// A list's query parameters, as text so each gets its own SCIM error.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParameters {
    filter: Option<String>,
    start_index: Option<String>,
    count: Option<String>,
    #[serde(flatten)]
    projection: Projection,
}

/// `attributes` and `excludedAttributes`: which attributes an answer shows.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Projection {
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

/// Query parameters, or the SCIM error saying why they are not.
pub fn parameters<T: Default>(query: Result<Query<T>, QueryRejection>) -> Result<T, ScimError> {
    query
        .map(|Query(parameters)| parameters)
        .map_err(|rejection| ScimError::bad_request(ScimType::InvalidValue, rejection.body_text()))
}

impl Projection {
    /// Whether the answer shows `name` of the core schema: named in `attributes` (or, without
    /// it, `returned_by_default`), and not in `excludedAttributes`.
    pub fn shows(&self, name: &str, returned_by_default: bool) -> bool {
        let names = |list: &Option<String>| {
            list.as_deref().is_some_and(|list| {
                list.split(',').any(|path| {
                    path.trim()
                        .split('.')
                        .next()
                        .is_some_and(|head| head.eq_ignore_ascii_case(name))
                })
            })
        };
        let asked = if self.attributes.is_some() {
            names(&self.attributes)
        } else {
            returned_by_default
        };
        asked && !names(&self.excluded_attributes)
    }

    /// Whether either parameter is given.
    pub fn is_set(&self) -> bool {
        self.attributes.is_some() || self.excluded_attributes.is_some()
    }

    /// `resource` with only the attributes asked for (`id` and `schemas` always), or without
    /// those excluded.
    pub fn apply(&self, resource: Value) -> Result<Value, ScimError> {
        let Value::Object(mut resource) = resource else {
            return Ok(resource);
        };
        if let Some(attributes) = &self.attributes {
            let paths = attribute_list(attributes)?;
            let mut kept = Map::new();
            for always in ["id", "schemas"] {
                if let Some(value) = resource.remove(always) {
                    kept.insert(always.to_owned(), value);
                }
            }
            for path in &paths {
                copy_path(&resource, &mut kept, path);
            }
            resource = kept;
        }
        if let Some(excluded) = &self.excluded_attributes {
            for path in attribute_list(excluded)? {
                if path.name.eq_ignore_ascii_case("id") && path.sub.is_none() {
                    continue;
                }
                remove_path(&mut resource, &path);
            }
        }
        Ok(Value::Object(resource))
    }
}

/// A comma-separated attribute list, each an attribute path.
fn attribute_list(text: &str) -> Result<Vec<AttrPath>, ScimError> {
    text.split(',')
        .map(str::trim)
        .filter(|path| !path.is_empty())
        .map(|path| match filter::parse(&format!("{path} pr")) {
            Ok(Filter::Present(path)) => Ok(path),
            _ => Err(ScimError::bad_request(
                ScimType::InvalidValue,
                format!("`{}` is not an attribute path", users::truncated(path)),
            )),
        })
        .collect()
}

/// The object a path's attribute lives in: the resource, or its extension's object.
fn key_in(object: &Map<String, Value>, name: &str) -> Option<String> {
    object
        .keys()
        .find(|key| key.eq_ignore_ascii_case(name))
        .cloned()
}

fn copy_path(from: &Map<String, Value>, to: &mut Map<String, Value>, path: &AttrPath) {
    let (source, target) = match &path.schema {
        Some(schema) if !schema.eq_ignore_ascii_case(USER_SCHEMA) => {
            let Some(key) = key_in(from, schema) else {
                return;
            };
            let Some(Value::Object(source)) = from.get(&key) else {
                return;
            };
            let target = to.entry(key).or_insert_with(|| json!({}));
            let Value::Object(target) = target else {
                return;
            };
            copy_attribute(source, target, path);
            return;
        }
        _ => (from, to),
    };
    copy_attribute(source, target, path);
}

fn copy_attribute(source: &Map<String, Value>, target: &mut Map<String, Value>, path: &AttrPath) {
    let Some(key) = key_in(source, &path.name) else {
        return;
    };
    let Some(value) = source.get(&key) else {
        return;
    };
    match (&path.sub, value) {
        (Some(sub), Value::Object(object)) => {
            if let Some(sub_key) = key_in(object, sub) {
                let entry = target.entry(key).or_insert_with(|| json!({}));
                if let Value::Object(entry) = entry {
                    entry.insert(sub_key.clone(), object[&sub_key].clone());
                }
            }
        }
        _ => {
            target.insert(key, value.clone());
        }
    }
}

fn remove_path(resource: &mut Map<String, Value>, path: &AttrPath) {
    let container = match &path.schema {
        Some(schema) if !schema.eq_ignore_ascii_case(USER_SCHEMA) => {
            let Some(key) = key_in(resource, schema) else {
                return;
            };
            match resource.get_mut(&key) {
                Some(Value::Object(extension)) => extension,
                _ => return,
            }
        }
        _ => resource,
    };
    let Some(key) = key_in(container, &path.name) else {
        return;
    };
    match &path.sub {
        None => {
            container.remove(&key);
        }
        Some(sub) => {
            if let Some(Value::Object(object)) = container.get_mut(&key) {
                if let Some(sub_key) = key_in(object, sub) {
                    object.remove(&sub_key);
                }
            }
        }
    }
}

/// A number parameter: `default` when absent.
fn number(name: &str, text: Option<&str>, default: i64) -> Result<i64, ScimError> {
    match text {
        None => Ok(default),
        Some(text) => text.trim().parse::<i64>().map_err(|_| {
            ScimError::bad_request(
                ScimType::InvalidValue,
                format!("`{name}` must be an integer"),
            )
        }),
    }
}

/// The paging a list asks for: where it starts, how many it shows, and which attributes.
pub struct Window {
    /// Matches to pass over (`startIndex - 1`).
    skip: usize,
    /// Matches to show (`count`).
    take: usize,
    /// `startIndex`, as given (at least 1).
    start_index: i64,
    /// Which attributes each resource shows.
    projection: Projection,
}

impl ListParameters {
    /// The filter as sent, when one is given.
    pub fn filter_text(&self) -> Option<&str> {
        self.filter.as_deref()
    }

    /// The parsed filter, when one is given.
    pub fn filter(&self) -> Result<Option<Filter>, ScimError> {
        match self.filter.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => filter::parse(text).map(Some).map_err(|error| {
                ScimError::bad_request(ScimType::InvalidFilter, error.to_string())
            }),
        }
    }

    /// The window, checked against `max_results` and [`MAX_SCANNED`].
    pub fn window(self, max_results: u32) -> Result<Window, ScimError> {
        let max_results = i64::from(max_results);
        let start_index = number("startIndex", self.start_index.as_deref(), 1)?.max(1);
        let count = number("count", self.count.as_deref(), max_results)?.max(0);
        if count > max_results {
            return Err(ScimError::bad_request(
                ScimType::TooMany,
                format!("`count` may be at most {max_results}"),
            ));
        }
        let skip = usize::try_from(start_index - 1).unwrap_or(usize::MAX);
        let take = usize::try_from(count).unwrap_or(0);
        if skip.saturating_add(take) > MAX_SCANNED {
            return Err(ScimError::bad_request(
                ScimType::TooMany,
                format!("`startIndex` + `count` may reach at most {MAX_SCANNED}"),
            ));
        }
        Ok(Window {
            skip,
            take,
            start_index,
            projection: self.projection,
        })
    }
}

impl Window {
    /// Whether the answer shows `name` (of the core schema), by `attributes` and
    /// `excludedAttributes`.
    pub fn shows(&self, name: &str, returned_by_default: bool) -> bool {
        self.projection.shows(name, returned_by_default)
    }
}

/// One page of resources from the gateway's API, and the token of the next (empty at the end).
pub type Page = (Vec<Value>, String);

/// Which list a walk is of, and where its page starts are kept (see [`super::bookmarks`]).
pub struct Resume<'a> {
    /// The bookmarks of every list.
    pub bookmarks: &'a Bookmarks,
    /// This list's.
    pub listing: Listing,
}

impl<'a> Resume<'a> {
    /// The list of `resource_type` that `caller` asks for with `filter` (as sent) and Okta's
    /// `search`.
    pub fn of(
        scim: &'a Scim,
        caller: &Caller,
        resource_type: &str,
        filter: Option<&str>,
        search: &str,
    ) -> Self {
        let listing = Listing::of(
            &caller.sender.credentials_fingerprint(),
            &[resource_type, filter.unwrap_or_default(), search],
        );
        Self {
            bookmarks: &scim.bookmarks,
            listing,
        }
    }
}

/// Walks pages from `next_page` (given the previous page's token) as the module docs say,
/// keeping the resources `filter` matches, and answers the ListResponse of `window`. The walk
/// starts at the furthest page start `resume` knows before the window, and keeps the page
/// starts it passes there.
pub async fn walk<'a>(
    filter: Option<&Filter>,
    window: Window,
    resume: Resume<'_>,
    mut next_page: impl FnMut(String) -> BoxFuture<'a, Result<Page, ScimError>>,
) -> Result<Value, ScimError> {
    let case_exact = |path: &AttrPath| {
        path.sub.is_none()
            && (path.name.eq_ignore_ascii_case("id")
                || path.name.eq_ignore_ascii_case("externalId"))
    };
    let start = resume.bookmarks.nearest(&resume.listing, window.skip).await;
    let (mut page_token, mut scanned, matched_before) = start
        .map_or((String::new(), 0, 0), |start| {
            (start.page_token, start.scanned_before, start.matched_before)
        });
    // Matches to pass over from the walk's start, then the window's.
    let skip = window.skip - matched_before;
    let wanted = skip.saturating_add(window.take);
    let mut matched: Vec<Value> = Vec::new();
    let mut passed: Vec<Bookmark> = Vec::new();
    let mut reached_end = false;
    // Until the window is full (with nothing to show, until one match says whether any
    // follow) or the list ends; a full window before the list's end says more may follow.
    loop {
        if scanned >= MAX_SCANNED {
            return Err(ScimError::bad_request(
                ScimType::TooMany,
                format!(
                    "answering needs more than {MAX_SCANNED} resources looked at: narrow the \
                     filter with an attribute Okta can search (eq or sw of a mapped attribute)"
                ),
            ));
        }
        let (resources, next_token) = next_page(std::mem::take(&mut page_token)).await?;
        scanned += resources.len();
        matched.extend(
            resources.into_iter().filter(|resource| {
                filter.is_none_or(|filter| filter.matches(resource, &case_exact))
            }),
        );
        if next_token.is_empty() {
            reached_end = true;
            break;
        }
        passed.push(Bookmark {
            page_token: next_token.clone(),
            scanned_before: scanned,
            matched_before: matched_before + matched.len(),
        });
        page_token = next_token;
        if matched.len() >= wanted.max(1) {
            break;
        }
    }
    resume.bookmarks.remember(resume.listing, passed).await;
    let total = if reached_end {
        matched_before + matched.len()
    } else {
        window.skip + window.take + 1
    };
    let resources: Vec<Value> = matched
        .into_iter()
        .skip(skip)
        .take(window.take)
        .map(|resource| window.projection.apply(resource))
        .collect::<Result<_, _>>()?;
    Ok(json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "itemsPerPage": resources.len(),
        "startIndex": window.start_index,
        "Resources": resources,
    }))
}

/// `GET /Users` as a ListResponse.
pub async fn list_users(
    scim: &Scim,
    caller: &Caller,
    parameters: ListParameters,
) -> Result<Value, ScimError> {
    let filter = parameters.filter()?;
    let search = match &filter {
        None => String::new(),
        Some(filter) => {
            check_known(filter)?;
            okta_search(filter).unwrap_or_default()
        }
    };
    let resume = Resume::of(scim, caller, "User", parameters.filter_text(), &search);
    let window = parameters.window(scim.settings.max_results)?;
    walk(filter.as_ref(), window, resume, |page_token| {
        let request = ListUsersRequest {
            page_size: OKTA_PAGE_SIZE,
            page_token,
            search: search.clone(),
            ..ListUsersRequest::default()
        };
        let call = caller.sender.call(request, scim.request_timeout);
        let mut users_api = scim.grpc.users();
        let base_url = caller.base_url.clone();
        Box::pin(async move {
            let page = users_api.list_users(call).await?.into_inner();
            let resources = page
                .users
                .iter()
                .map(|user| users::to_resource(user, &base_url))
                .collect();
            Ok((resources, page.next_page_token))
        })
    })
    .await
}

/// `invalidFilter` unless every attribute `filter` names is one a User has.
fn check_known(filter: &Filter) -> Result<(), ScimError> {
    let mut unknown = None;
    visit_paths(filter, None, &mut |path| {
        if unknown.is_none() && !is_known(path) {
            unknown = Some(path.clone());
        }
    });
    match unknown {
        None => Ok(()),
        Some(path) => Err(ScimError::bad_request(
            ScimType::InvalidFilter,
            format!(
                "the filter names `{}`, which is not a User attribute here (see /Schemas)",
                users::truncated(&display_path(&path))
            ),
        )),
    }
}

fn display_path(path: &AttrPath) -> String {
    let mut text = String::new();
    if let Some(schema) = &path.schema {
        text.push_str(schema);
        text.push(':');
    }
    text.push_str(&path.name);
    if let Some(sub) = &path.sub {
        text.push('.');
        text.push_str(sub);
    }
    text
}

/// Calls `visit` with every attribute path of `filter`, those in a value path as
/// `parent.sub`.
fn visit_paths(filter: &Filter, parent: Option<&AttrPath>, visit: &mut dyn FnMut(&AttrPath)) {
    match filter {
        Filter::Compare { path, .. } | Filter::Present(path) => visit(&within(parent, path)),
        Filter::And(left, right) | Filter::Or(left, right) => {
            visit_paths(left, parent, visit);
            visit_paths(right, parent, visit);
        }
        Filter::Not(inner) => visit_paths(inner, parent, visit),
        Filter::ValuePath { path, filter } => visit_paths(filter, Some(path), visit),
    }
}

/// `path` as seen from the resource, when it names a sub-attribute of `parent`'s elements.
fn within(parent: Option<&AttrPath>, path: &AttrPath) -> AttrPath {
    match parent {
        None => path.clone(),
        Some(parent) => AttrPath {
            schema: parent.schema.clone(),
            name: parent.name.clone(),
            sub: Some(path.name.clone()),
        },
    }
}

/// Whether `path` names an attribute a User shows.
fn is_known(path: &AttrPath) -> bool {
    let schema = path.schema.as_deref();
    let core = schema.is_none_or(|schema| schema.eq_ignore_ascii_case(USER_SCHEMA));
    let name = path.name.as_str();
    let sub = path.sub.as_deref();
    let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    if !mapping::by_path(schema, name, sub).is_empty() {
        return true;
    }
    if schema.is_some_and(|schema| schema.eq_ignore_ascii_case(ENTERPRISE_SCHEMA)) {
        return false;
    }
    core && match sub {
        None => ["id", "externalId", "active", "userName", "displayName"]
            .iter()
            .any(|known| is(known, name)),
        Some(sub) => {
            (is(name, "meta")
                && [
                    "created",
                    "lastModified",
                    "resourceType",
                    "version",
                    "location",
                ]
                .iter()
                .any(|known| is(known, sub)))
                || (is(name, "name") && is(sub, "formatted"))
                || ((is(name, "emails") || is(name, "phoneNumbers"))
                    && ["type", "primary", "value"]
                        .iter()
                        .any(|known| is(known, sub)))
        }
    }
}

/// An Okta search expression matching every user `filter` matches, or `None` when Okta can
/// narrow nothing.
fn okta_search(filter: &Filter) -> Option<String> {
    superset(filter, None)
}

fn superset(filter: &Filter, parent: Option<&AttrPath>) -> Option<String> {
    match filter {
        Filter::Compare { path, op, value } => compare(&within(parent, path), *op, value),
        Filter::Present(path) => {
            let attributes = okta_attributes(&within(parent, path))?;
            any_of(
                attributes
                    .into_iter()
                    .map(|attribute| format!("{attribute} pr"))
                    .collect(),
            )
        }
        Filter::And(left, right) => match (superset(left, parent), superset(right, parent)) {
            (Some(left), Some(right)) => Some(format!("({left}) and ({right})")),
            (one, other) => one.or(other),
        },
        Filter::Or(left, right) => {
            let left = superset(left, parent)?;
            let right = superset(right, parent)?;
            Some(format!("({left}) or ({right})"))
        }
        Filter::Not(_) => None,
        Filter::ValuePath { path, filter } => superset(filter, Some(path)),
    }
}

/// `(a) or (b) …`: `None` for none.
fn any_of(parts: Vec<String>) -> Option<String> {
    match parts.len() {
        0 => None,
        1 => parts.into_iter().next(),
        _ => Some(
            parts
                .iter()
                .map(|part| format!("({part})"))
                .collect::<Vec<_>>()
                .join(" or "),
        ),
    }
}

/// The Okta attributes `path` compares: one, or one per type of a multi-valued attribute.
fn okta_attributes(path: &AttrPath) -> Option<Vec<String>> {
    let rows = mapping::by_path(path.schema.as_deref(), &path.name, path.sub.as_deref());
    if !rows.is_empty() {
        return Some(
            rows.iter()
                .map(|row| format!("profile.{}", row.okta))
                .collect(),
        );
    }
    let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let attribute = match (path.name.as_str(), path.sub.as_deref()) {
        (name, None) if is(name, "id") => "id",
        (name, None) if is(name, "externalId") => "profile.externalId",
        (name, Some(sub)) if is(name, "meta") && is(sub, "created") => "created",
        (name, Some(sub)) if is(name, "meta") && is(sub, "lastModified") => "lastUpdated",
        _ => return None,
    };
    Some(vec![attribute.to_owned()])
}

/// One comparison as Okta search, when Okta can evaluate it.
fn compare(path: &AttrPath, op: CompareOp, value: &filter::Value) -> Option<String> {
    if path.sub.is_none() && path.name.eq_ignore_ascii_case("active") {
        return active_search(op, value);
    }
    let okta_op = match op {
        CompareOp::Eq => "eq",
        CompareOp::Sw => "sw",
        CompareOp::Gt => "gt",
        CompareOp::Ge => "ge",
        CompareOp::Lt => "lt",
        CompareOp::Le => "le",
        CompareOp::Co => "co",
        CompareOp::Ne | CompareOp::Ew => return None,
    };
    let literal = match value {
        filter::Value::String(text) => serde_json::to_string(text).ok()?,
        filter::Value::Number(number) => number.to_string(),
        filter::Value::Bool(flag) => flag.to_string(),
        filter::Value::Null => return None,
    };
    let attributes = okta_attributes(path)?;
    let contains_allowed = [
        "profile.login",
        "profile.firstName",
        "profile.lastName",
        "profile.email",
    ];
    if op == CompareOp::Co
        && !attributes
            .iter()
            .all(|attribute| contains_allowed.contains(&attribute.as_str()))
    {
        return None;
    }
    let unique: HashSet<&String> = attributes.iter().collect();
    any_of(
        unique
            .into_iter()
            .map(|attribute| format!("{attribute} {okta_op} {literal}"))
            .collect(),
    )
}

/// `active eq true` (or false) as the Okta statuses it means.
fn active_search(op: CompareOp, value: &filter::Value) -> Option<String> {
    let filter::Value::Bool(active) = value else {
        return None;
    };
    let active = match op {
        CompareOp::Eq => *active,
        CompareOp::Ne => !*active,
        _ => return None,
    };
    let statuses = if active {
        ACTIVE_STATUSES
    } else {
        INACTIVE_STATUSES
    };
    any_of(
        statuses
            .iter()
            .map(|status| format!("status eq \"{status}\""))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(text: &str) -> Option<String> {
        okta_search(&filter::parse(text).unwrap())
    }

    #[test]
    fn what_okta_can_search_is_sent_and_the_rest_is_left_to_the_gateway() {
        assert_eq!(
            search(r#"userName eq "ada@example.com""#).as_deref(),
            Some(r#"profile.login eq "ada@example.com""#)
        );
        assert_eq!(
            search(r#"name.familyName sw "Lo" and title ew "er""#).as_deref(),
            Some(r#"profile.lastName sw "Lo""#),
            "ew is checked by the gateway alone"
        );
        assert_eq!(search(r#"userName eq "a" or title ne "b""#), None);
        assert_eq!(search(r#"not (userName eq "a")"#), None);
        assert_eq!(
            search(r#"title co "eng""#),
            None,
            "Okta allows co on four attributes"
        );
        assert_eq!(
            search(r#"emails[type eq "work" and value co "@example.com"]"#).as_deref(),
            Some(r#"(profile.email co "@example.com") or (profile.secondEmail co "@example.com")"#)
                .filter(|_| false),
            "secondEmail takes no co: Okta narrows nothing"
        );
        assert_eq!(
            search(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "00u1""#).as_deref(),
            Some(r#"profile.managerId eq "00u1""#)
        );
        assert_eq!(
            search("active eq false").as_deref(),
            Some(
                r#"(status eq "STAGED") or (status eq "SUSPENDED") or (status eq "DEPROVISIONED")"#
            )
        );
    }

    #[test]
    fn a_value_cannot_change_the_search_it_is_put_in() {
        let sent = search(r#"userName eq "x\" or status eq \"ACTIVE""#).unwrap();
        let parsed = okta_client::Expression::parse(&sent).unwrap();
        assert_eq!(
            parsed.as_str(),
            r#"profile.login eq "x\" or status eq \"ACTIVE""#
        );
    }

    #[test]
    fn unknown_attributes_are_refused_and_known_ones_pass() {
        for known in [
            "userName pr",
            r#"emails.type eq "work""#,
            r#"meta.lastModified gt "2024-01-01T00:00:00Z""#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "x""#,
        ] {
            assert!(
                check_known(&filter::parse(known).unwrap()).is_ok(),
                "{known}"
            );
        }
        for unknown in ["password pr", r#"groups.value eq "x""#, "nickname.x pr"] {
            assert!(
                check_known(&filter::parse(unknown).unwrap()).is_err(),
                "{unknown}"
            );
        }
    }
}
