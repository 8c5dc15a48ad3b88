//! PATCH (RFC 7644 §3.5.2): `add`, `replace` and `remove` operations, applied to the User as
//! SCIM shows it, then read back through the mapping table, so every path form (`active`,
//! `name.givenName`, `emails[type eq "work"].value`, an enterprise URN path, or no path and an
//! object of attributes) changes exactly what a PUT of the same User would.

use serde_json::{Map, Value};

use super::error::{ScimError, ScimType};
use super::filter::{self, AttrPath};
use super::mapping::{self, EXTERNAL_ID_ATTRIBUTE, USER_ATTRIBUTES, get_ignoring_case};
use super::users;
use crate::proto::{User, UserProfile};

/// The schema of a PATCH body.
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Most operations one PATCH may carry.
const MAX_OPERATIONS: usize = 100;
/// Attributes no PATCH may change.
const READ_ONLY: &[&str] = &["id", "meta", "groups", "schemas"];

/// What a PATCH asks of a user: the profile fields it changes, and its `active`.
#[derive(Debug)]
pub struct UserChange {
    /// The new values of the changed fields.
    pub profile: UserProfile,
    /// `UpdateUser`'s mask: the changed fields.
    pub paths: Vec<String>,
    /// The `active` asked for, when the PATCH set it.
    pub active: Option<bool>,
}

/// What `body`, a PATCH of `current`, changes.
pub fn user_change(body: &Map<String, Value>, current: &User) -> Result<UserChange, ScimError> {
    let operations = operations(body)?;
    let mut resource = match users::to_resource(current, "") {
        Value::Object(resource) => resource,
        _ => Map::new(),
    };
    resource.remove("meta");
    let before = resource.clone();
    for operation in operations {
        apply(&mut resource, operation)?;
    }
    if get_ignoring_case(&resource, "password").is_some() {
        return Err(ScimError::bad_request(
            ScimType::Mutability,
            "`password` cannot be changed over SCIM (changePassword is not supported)",
        ));
    }
    let mut profile = UserProfile::default();
    let mut paths = Vec::new();
    let current_profile = current.profile.clone().unwrap_or_default();
    for attribute in USER_ATTRIBUTES
        .iter()
        .filter(|attribute| !attribute.read_only)
    {
        let value = mapping::read_value(attribute, &resource)
            .map_err(|problem| ScimError::bad_request(ScimType::InvalidValue, problem))?
            .unwrap_or_default();
        if value != attribute.get(&current_profile) {
            paths.push(format!("profile.{}", attribute.field));
        }
        attribute.set(&mut profile, value);
    }
    let external_id =
        |resource: &Map<String, Value>| get_ignoring_case(resource, "externalId").cloned();
    if external_id(&resource) != external_id(&before) {
        let value = match external_id(&resource) {
            None | Some(Value::Null) => prost_types::value::Kind::NullValue(0),
            Some(Value::String(text)) => prost_types::value::Kind::StringValue(text),
            Some(_) => {
                return Err(ScimError::bad_request(
                    ScimType::InvalidValue,
                    "`externalId` must be a string",
                ));
            }
        };
        let mut custom = prost_types::Struct::default();
        custom.fields.insert(
            EXTERNAL_ID_ATTRIBUTE.to_owned(),
            prost_types::Value { kind: Some(value) },
        );
        profile.custom_attributes = Some(custom);
        paths.push(format!("profile.custom_attributes.{EXTERNAL_ID_ATTRIBUTE}"));
    }
    let active = match get_ignoring_case(&resource, "active") {
        Some(Value::Bool(active)) => Some(*active),
        None | Some(Value::Null) => None,
        Some(_) => {
            return Err(ScimError::bad_request(
                ScimType::InvalidValue,
                "`active` must be a boolean",
            ));
        }
    };
    Ok(UserChange {
        profile,
        paths,
        active,
    })
}

/// One operation of a PATCH.
#[derive(Debug)]
pub struct Operation {
    op: Op,
    path: Option<String>,
    value: Option<Value>,
}

impl Operation {
    /// Whether it adds (`Some(true)`: add or replace) or removes (`None`), its path and value.
    pub fn parts(&self) -> (Option<bool>, Option<&str>, Option<&Value>) {
        let add = match self.op {
            Op::Add | Op::Replace => Some(true),
            Op::Remove => None,
        };
        (add, self.path.as_deref(), self.value.as_ref())
    }
}

/// The three PATCH operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// The operations of a PATCH body, checked for shape.
pub fn operations(body: &Map<String, Value>) -> Result<Vec<Operation>, ScimError> {
    let schemas_ok = get_ignoring_case(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|schemas| schemas.iter().any(|schema| schema == PATCH_SCHEMA));
    if !schemas_ok {
        return Err(ScimError::bad_request(
            ScimType::InvalidSyntax,
            format!("`schemas` must contain `{PATCH_SCHEMA}`"),
        ));
    }
    let Some(Value::Array(list)) = get_ignoring_case(body, "Operations") else {
        return Err(ScimError::bad_request(
            ScimType::InvalidSyntax,
            "`Operations` must be an array",
        ));
    };
    if list.len() > MAX_OPERATIONS {
        return Err(ScimError::bad_request(
            ScimType::TooMany,
            format!("a PATCH may carry at most {MAX_OPERATIONS} operations"),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(index, operation)| {
            let invalid = |what: &str| {
                ScimError::bad_request(
                    ScimType::InvalidSyntax,
                    format!("Operations[{index}]: {what}"),
                )
            };
            let object = operation
                .as_object()
                .ok_or_else(|| invalid("must be an object"))?;
            let op = match get_ignoring_case(object, "op").and_then(Value::as_str) {
                Some(op) if op.eq_ignore_ascii_case("add") => Op::Add,
                Some(op) if op.eq_ignore_ascii_case("replace") => Op::Replace,
                Some(op) if op.eq_ignore_ascii_case("remove") => Op::Remove,
                _ => return Err(invalid("`op` must be `add`, `replace` or `remove`")),
            };
            let path = match get_ignoring_case(object, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(path)) if !path.trim().is_empty() => {
                    Some(path.trim().to_owned())
                }
                Some(_) => return Err(invalid("`path` must be a non-empty string")),
            };
            let value = get_ignoring_case(object, "value").cloned();
            if op == Op::Remove && path.is_none() {
                return Err(ScimError::bad_request(
                    ScimType::NoTarget,
                    format!("Operations[{index}]: `remove` needs a `path`"),
                ));
            }
            if op != Op::Remove && value.is_none() {
                return Err(invalid("`add` and `replace` need a `value`"));
            }
            Ok(Operation { op, path, value })
        })
        .collect()
}

/// A PATCH path: an attribute (with its schema), a sub-attribute, and a value filter.
#[derive(Debug)]
struct Target {
    attribute: AttrPath,
    filter: Option<filter::Filter>,
    /// The sub-attribute after a value filter: `emails[type eq "work"].value`.
    sub_after_filter: Option<String>,
}

/// Reads `path` (RFC 7644's `PATH` rule).
fn target(path: &str) -> Result<Target, ScimError> {
    let invalid = |why: &str| {
        ScimError::bad_request(
            ScimType::InvalidPath,
            format!("path `{}`: {why}", users::truncated(path)),
        )
    };
    let (head, filter, tail) = match path.find('[') {
        None => (path, None, None),
        Some(open) => {
            let close = path
                .rfind(']')
                .ok_or_else(|| invalid("`[` is not closed"))?;
            if close < open {
                return Err(invalid("`]` before `[`"));
            }
            let inner = filter::parse(&path[open + 1..close]).map_err(|error| {
                ScimError::bad_request(ScimType::InvalidFilter, error.to_string())
            })?;
            let rest = &path[close + 1..];
            let tail = match rest.strip_prefix('.') {
                Some(sub) if !sub.is_empty() => Some(sub.to_owned()),
                None if rest.is_empty() => None,
                _ => return Err(invalid("only `.subAttribute` may follow `]`")),
            };
            (&path[..open], Some(inner), tail)
        }
    };
    let (schema, attribute) = match head.rfind(':') {
        Some(colon) if head.to_ascii_lowercase().starts_with("urn:") => {
            (Some(head[..colon].to_owned()), &head[colon + 1..])
        }
        _ => (None, head),
    };
    let (name, sub) = match attribute.split_once('.') {
        Some((name, sub)) => (name, Some(sub.to_owned())),
        None => (attribute, None),
    };
    let valid_name = |text: &str| {
        !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
    };
    if !valid_name(name) || sub.as_deref().is_some_and(|sub| !valid_name(sub)) {
        return Err(invalid("not an attribute path"));
    }
    if filter.is_some() && sub.is_some() {
        return Err(invalid(
            "a value filter follows the attribute, not its sub-attribute",
        ));
    }
    Ok(Target {
        attribute: AttrPath {
            schema,
            name: name.to_owned(),
            sub,
        },
        filter,
        sub_after_filter: tail,
    })
}

/// Applies one operation to `resource`.
fn apply(resource: &mut Map<String, Value>, operation: Operation) -> Result<(), ScimError> {
    let Some(path) = operation.path else {
        let Some(Value::Object(values)) = operation.value else {
            return Err(ScimError::bad_request(
                ScimType::InvalidValue,
                "an operation without `path` needs an object `value`",
            ));
        };
        for (name, value) in values {
            refuse_read_only(&name)?;
            let container = resource_key(resource, &name);
            match (operation.op, resource.get_mut(&container), value) {
                (Op::Add, Some(Value::Array(existing)), Value::Array(added)) => {
                    existing.extend(added)
                }
                (_, Some(Value::Object(existing)), Value::Object(merged))
                    if container.starts_with("urn:") =>
                {
                    existing.extend(merged)
                }
                (_, _, value) => {
                    resource.insert(container, value);
                }
            }
        }
        return Ok(());
    };
    let target = target(&path)?;
    refuse_read_only(&target.attribute.name)?;
    let container = match &target.attribute.schema {
        Some(schema) if !schema.eq_ignore_ascii_case(mapping::USER_SCHEMA) => {
            let key = resource_key(resource, schema);
            let entry = resource
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            match entry {
                Value::Object(extension) => extension,
                _ => {
                    return Err(ScimError::bad_request(
                        ScimType::InvalidPath,
                        "not an extension",
                    ));
                }
            }
        }
        _ => resource,
    };
    let name = resource_key(container, &target.attribute.name);
    match (&target.filter, &target.attribute.sub) {
        (None, None) => {
            set_or_remove(container, name, operation.op, operation.value);
            Ok(())
        }
        (None, Some(sub)) => {
            let entry = container
                .entry(name)
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(object) = entry else {
                return Err(ScimError::bad_request(
                    ScimType::InvalidPath,
                    "not a complex attribute",
                ));
            };
            let sub = resource_key(object, sub);
            set_or_remove(object, sub, operation.op, operation.value);
            Ok(())
        }
        (Some(value_filter), _) => apply_filtered(
            container,
            &name,
            value_filter,
            target.sub_after_filter.as_deref(),
            operation.op,
            operation.value,
        ),
    }
}

/// The key `name` has in `object` (SCIM names are case-insensitive), or `name` when absent.
fn resource_key(object: &Map<String, Value>, name: &str) -> String {
    object
        .keys()
        .find(|key| key.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_owned())
}

/// `mutability` for an attribute no PATCH may change.
fn refuse_read_only(name: &str) -> Result<(), ScimError> {
    if READ_ONLY
        .iter()
        .any(|read_only| read_only.eq_ignore_ascii_case(name))
    {
        return Err(ScimError::bad_request(
            ScimType::Mutability,
            format!("`{}` is read-only", users::truncated(name)),
        ));
    }
    Ok(())
}

/// `add`/`replace` sets `name` of `object` to `value` (`add` appends to an array); `remove`
/// takes it away.
fn set_or_remove(object: &mut Map<String, Value>, name: String, op: Op, value: Option<Value>) {
    match (op, value) {
        (Op::Remove, _) => {
            object.remove(&name);
        }
        (Op::Add, Some(Value::Array(added))) => match object.get_mut(&name) {
            Some(Value::Array(existing)) => existing.extend(added),
            _ => {
                object.insert(name, Value::Array(added));
            }
        },
        (_, Some(value)) => {
            object.insert(name, value);
        }
        (_, None) => {}
    }
}

/// An operation on the elements of multi-valued `name` that `value_filter` selects.
fn apply_filtered(
    container: &mut Map<String, Value>,
    name: &str,
    value_filter: &filter::Filter,
    sub: Option<&str>,
    op: Op,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let no_case = |_: &AttrPath| false;
    let elements = match container.get_mut(name) {
        Some(Value::Array(elements)) => elements,
        _ if op == Op::Remove => {
            return Err(ScimError::bad_request(
                ScimType::NoTarget,
                format!("`{name}` has no values"),
            ));
        }
        _ => {
            container.insert(name.to_owned(), Value::Array(Vec::new()));
            match container.get_mut(name) {
                Some(Value::Array(elements)) => elements,
                _ => return Ok(()),
            }
        }
    };
    let selected = elements
        .iter()
        .filter(|element| value_filter.matches(element, &no_case))
        .count();
    match (op, sub) {
        (Op::Remove, None) => {
            if selected == 0 {
                return Err(ScimError::bad_request(
                    ScimType::NoTarget,
                    "the filter selects no value",
                ));
            }
            elements.retain(|element| !value_filter.matches(element, &no_case));
        }
        (_, Some(sub)) if selected == 0 && op != Op::Remove => {
            // `emails[type eq "work"].value` on a user without one: make the element the filter
            // describes, when it is a plain `attr eq "value"`.
            let mut element = Map::new();
            if let filter::Filter::Compare {
                path,
                op: filter::CompareOp::Eq,
                value: filter::Value::String(text),
            } = value_filter
            {
                element.insert(path.name.clone(), Value::String(text.clone()));
            } else {
                return Err(ScimError::bad_request(
                    ScimType::NoTarget,
                    "the filter selects no value",
                ));
            }
            if let Some(value) = value {
                element.insert(sub.to_owned(), value);
            }
            elements.push(Value::Object(element));
        }
        (_, Some(sub)) => {
            for element in elements
                .iter_mut()
                .filter(|element| value_filter.matches(element, &no_case))
            {
                if let Value::Object(object) = element {
                    let key = resource_key(object, sub);
                    set_or_remove(object, key, op, value.clone());
                }
            }
        }
        (_, None) => {
            if selected == 0 {
                return Err(ScimError::bad_request(
                    ScimType::NoTarget,
                    "the filter selects no value",
                ));
            }
            for element in elements
                .iter_mut()
                .filter(|element| value_filter.matches(element, &no_case))
            {
                if let (Value::Object(object), Some(Value::Object(merged))) =
                    (&mut *element, &value)
                {
                    object.extend(merged.clone());
                }
            }
        }
    }
    Ok(())
}
