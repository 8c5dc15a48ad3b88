//! The one table of how a SCIM User (RFC 7643 §4.1, and the enterprise extension of §4.3)
//! maps onto an Okta user, as the gateway's `UserProfile` carries it. Reading, writing,
//! filtering and the published `Schemas` all come from [`USER_ATTRIBUTES`];
//! `docs/scim.md` shows the same table.

use serde_json::{Map, Value, json};

use crate::proto::UserProfile;

/// The core User schema.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The enterprise User extension.
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The core Group schema.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The Okta custom profile attribute that holds SCIM's `externalId` (the org's user schema
/// needs it, as a string, for `externalId` to be written).
pub const EXTERNAL_ID_ATTRIBUTE: &str = "externalId";

/// Where a mapped attribute sits in a SCIM User.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A top-level attribute of the core schema: `title`.
    Top(&'static str),
    /// A sub-attribute of a complex one: `name.givenName`.
    Sub(&'static str, &'static str),
    /// The `value` of the element of a multi-valued attribute with this `type`:
    /// `emails[type eq "work"].value`; the first `primary` one for the first row of its kind.
    Typed(&'static str, &'static str),
    /// A top-level attribute of the enterprise extension: `department`.
    Enterprise(&'static str),
    /// A sub-attribute of the enterprise extension: `manager.value`.
    EnterpriseSub(&'static str, &'static str),
}

/// One row of the table.
#[derive(Debug)]
pub struct Attribute {
    /// Where it sits in SCIM.
    pub place: Place,
    /// Okta's profile attribute (`profile.<okta>` in search expressions).
    pub okta: &'static str,
    /// The `UserProfile` field, as `UpdateUser`'s mask names it (`profile.<field>`).
    pub field: &'static str,
    /// Okta's users `search` compares it with `co` (only four attributes).
    pub searchable_contains: bool,
    /// Read-only in SCIM (RFC 7643 makes `manager.displayName` read-only).
    pub read_only: bool,
    get: fn(&UserProfile) -> &str,
    set: fn(&mut UserProfile, String),
}

impl Attribute {
    /// The attribute's value in `profile`.
    pub fn get<'a>(&self, profile: &'a UserProfile) -> &'a str {
        (self.get)(profile)
    }

    /// Sets the attribute's value in `profile`.
    pub fn set(&self, profile: &mut UserProfile, value: String) {
        (self.set)(profile, value);
    }

    /// The SCIM path, as a filter or PATCH names it.
    pub fn path(&self) -> String {
        match self.place {
            Place::Top(name) => name.to_owned(),
            Place::Sub(name, sub) => format!("{name}.{sub}"),
            Place::Typed(name, kind) => format!("{name}[type eq \"{kind}\"].value"),
            Place::Enterprise(name) => format!("{ENTERPRISE_SCHEMA}:{name}"),
            Place::EnterpriseSub(name, sub) => format!("{ENTERPRISE_SCHEMA}:{name}.{sub}"),
        }
    }
}

macro_rules! row {
    ($place:expr, $okta:literal, $field:ident, $contains:literal, $read_only:literal) => {
        Attribute {
            place: $place,
            okta: $okta,
            field: stringify!($field),
            searchable_contains: $contains,
            read_only: $read_only,
            get: |profile| profile.$field.as_str(),
            set: |profile, value| profile.$field = value,
        }
    };
}

/// The mapped User attributes, in the order the docs list them. `id`, `externalId`, `active`,
/// `meta` and `groups` are not profile attributes; the modules using them say how they map.
pub const USER_ATTRIBUTES: &[Attribute] = &[
    row!(Place::Top("userName"), "login", login, true, false),
    row!(
        Place::Sub("name", "givenName"),
        "firstName",
        first_name,
        true,
        false
    ),
    row!(
        Place::Sub("name", "familyName"),
        "lastName",
        last_name,
        true,
        false
    ),
    row!(
        Place::Sub("name", "middleName"),
        "middleName",
        middle_name,
        false,
        false
    ),
    row!(
        Place::Top("displayName"),
        "displayName",
        display_name,
        false,
        false
    ),
    row!(Place::Top("nickName"), "nickName", nick_name, false, false),
    row!(Place::Top("title"), "title", title, false, false),
    row!(Place::Top("locale"), "locale", locale, false, false),
    row!(Place::Top("timezone"), "timezone", timezone, false, false),
    row!(Place::Typed("emails", "work"), "email", email, true, false),
    row!(
        Place::Typed("emails", "other"),
        "secondEmail",
        second_email,
        false,
        false
    ),
    row!(
        Place::Typed("phoneNumbers", "mobile"),
        "mobilePhone",
        mobile_phone,
        false,
        false
    ),
    row!(
        Place::Typed("phoneNumbers", "work"),
        "primaryPhone",
        primary_phone,
        false,
        false
    ),
    row!(
        Place::Enterprise("employeeNumber"),
        "employeeNumber",
        employee_number,
        false,
        false
    ),
    row!(
        Place::Enterprise("department"),
        "department",
        department,
        false,
        false
    ),
    row!(
        Place::Enterprise("organization"),
        "organization",
        organization,
        false,
        false
    ),
    row!(
        Place::Enterprise("division"),
        "division",
        division,
        false,
        false
    ),
    row!(
        Place::Enterprise("costCenter"),
        "costCenter",
        cost_center,
        false,
        false
    ),
    row!(
        Place::EnterpriseSub("manager", "value"),
        "managerId",
        manager_id,
        false,
        false
    ),
    row!(
        Place::EnterpriseSub("manager", "displayName"),
        "manager",
        manager,
        false,
        true
    ),
];

/// `profile`'s mapped attributes as SCIM User attributes, into `resource`.
pub fn write_profile(profile: &UserProfile, resource: &mut Map<String, Value>) {
    let mut enterprise = Map::new();
    for attribute in USER_ATTRIBUTES {
        let value = attribute.get(profile);
        if value.is_empty() {
            continue;
        }
        match attribute.place {
            Place::Top(name) => {
                resource.insert(name.to_owned(), json!(value));
            }
            Place::Sub(name, sub) => {
                object(resource, name).insert(sub.to_owned(), json!(value));
            }
            Place::Typed(name, kind) => {
                let values = resource
                    .entry(name)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(values) = values {
                    let primary = values.is_empty();
                    values.push(json!({"value": value, "type": kind, "primary": primary}));
                }
            }
            Place::Enterprise(name) => {
                enterprise.insert(name.to_owned(), json!(value));
            }
            Place::EnterpriseSub(name, sub) => {
                object(&mut enterprise, name).insert(sub.to_owned(), json!(value));
            }
        }
    }
    if let Some(Value::Object(name)) = resource.get_mut("name") {
        let formatted: Vec<&str> = ["givenName", "middleName", "familyName"]
            .iter()
            .filter_map(|part| name.get(*part).and_then(Value::as_str))
            .collect();
        name.insert("formatted".to_owned(), json!(formatted.join(" ")));
    }
    if let Some(external_id) = profile
        .custom_attributes
        .as_ref()
        .and_then(|custom| custom.fields.get(EXTERNAL_ID_ATTRIBUTE))
        .and_then(|value| match &value.kind {
            Some(prost_types::value::Kind::StringValue(text)) => Some(text.clone()),
            _ => None,
        })
    {
        resource.insert("externalId".to_owned(), json!(external_id));
    }
    if !enterprise.is_empty() {
        resource.insert(ENTERPRISE_SCHEMA.to_owned(), Value::Object(enterprise));
    }
}

/// The object at `name` in `map`, made when missing (or not an object).
fn object<'a>(map: &'a mut Map<String, Value>, name: &str) -> &'a mut Map<String, Value> {
    let entry = map.entry(name).or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    match entry {
        Value::Object(object) => object,
        _ => unreachable!("made an object just above"),
    }
}

/// `key` of `object`, its name compared case-insensitively as SCIM's attribute names are.
pub fn get_ignoring_case<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(key))
        .map(|(_, value)| value)
}

/// The value at `attribute`'s place in a SCIM User `resource`: `Some("")` when it is given as
/// null, `None` when it is not given at all, or an error naming it when it is not a string.
pub fn read_value(
    attribute: &Attribute,
    resource: &Map<String, Value>,
) -> Result<Option<String>, String> {
    let found = match attribute.place {
        Place::Top(name) => get_ignoring_case(resource, name),
        Place::Sub(name, sub) => get_ignoring_case(resource, name)
            .and_then(Value::as_object)
            .and_then(|object| get_ignoring_case(object, sub)),
        Place::Typed(name, kind) => typed_value(resource, name, kind),
        Place::Enterprise(name) => {
            enterprise(resource).and_then(|ext| get_ignoring_case(ext, name))
        }
        Place::EnterpriseSub(name, sub) => enterprise(resource)
            .and_then(|ext| get_ignoring_case(ext, name))
            .and_then(Value::as_object)
            .and_then(|object| get_ignoring_case(object, sub)),
    };
    match found {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(String::new())),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(format!("`{}` must be a string", attribute.path())),
    }
}

/// The enterprise extension's object in `resource`.
fn enterprise(resource: &Map<String, Value>) -> Option<&Map<String, Value>> {
    get_ignoring_case(resource, ENTERPRISE_SCHEMA).and_then(Value::as_object)
}

/// The `value` of the element of multi-valued `name` whose `type` is `kind`. An element
/// without a type counts as the first kind of its attribute (`work` email, `mobile` phone)
/// when it is primary or the only one.
fn typed_value<'a>(resource: &'a Map<String, Value>, name: &str, kind: &str) -> Option<&'a Value> {
    let elements = get_ignoring_case(resource, name)?.as_array()?;
    let first_kind = USER_ATTRIBUTES
        .iter()
        .find_map(|attribute| match attribute.place {
            Place::Typed(attribute_name, first) if attribute_name == name => Some(first),
            _ => None,
        });
    let of_kind = |element: &&Value| {
        let element_kind = element
            .as_object()
            .and_then(|object| get_ignoring_case(object, "type"))
            .and_then(Value::as_str);
        match element_kind {
            Some(element_kind) => element_kind.eq_ignore_ascii_case(kind),
            None => first_kind == Some(kind),
        }
    };
    let element = elements.iter().find(of_kind)?;
    element
        .as_object()
        .and_then(|object| get_ignoring_case(object, "value"))
}

/// The Okta attribute a SCIM filter path (core or enterprise) compares, with the row it
/// comes from: `None` for paths that are not profile attributes.
pub fn by_path(schema: Option<&str>, name: &str, sub: Option<&str>) -> Vec<&'static Attribute> {
    let enterprise = schema.is_some_and(|schema| schema.eq_ignore_ascii_case(ENTERPRISE_SCHEMA));
    let core = schema.is_none_or(|schema| schema.eq_ignore_ascii_case(USER_SCHEMA));
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    USER_ATTRIBUTES
        .iter()
        .filter(|attribute| match attribute.place {
            Place::Top(top) => core && same(top, name) && sub.is_none(),
            Place::Sub(top, inner) => {
                core && same(top, name) && sub.is_some_and(|sub| same(sub, inner))
            }
            Place::Typed(top, _) => {
                core && same(top, name) && sub.is_none_or(|sub| same(sub, "value"))
            }
            Place::Enterprise(top) => {
                (enterprise || schema.is_none()) && same(top, name) && sub.is_none()
            }
            Place::EnterpriseSub(top, inner) => {
                (enterprise || schema.is_none())
                    && same(top, name)
                    && sub.is_some_and(|sub| same(sub, inner))
            }
        })
        .collect()
}
