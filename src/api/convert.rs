//! Conversions between the proto contract and the Okta client's models. The standard profile
//! attributes are declared once, in `standard_profile_fields!`, which drives both directions and
//! the field-mask paths of UpdateUser.

use chrono::{DateTime, Utc};
use prost_types::{FieldMask, Struct, Timestamp, value::Kind};
use serde_json::{Map, Value};

use super::validate::Violations;
use crate::proto::{Group, GroupType, User, UserProfile, UserStatus};
use okta_client::{OktaGroup, OktaUser};

/// Okta's attributes that a profile must always have.
const REQUIRED_OKTA_ATTRIBUTES: &[&str] = &["login", "email", "firstName", "lastName"];
/// Field-mask prefix of the custom attributes.
const CUSTOM_ATTRIBUTES_PATH: &str = "profile.custom_attributes";
/// Longest custom attribute name accepted (Okta's variable names are short identifiers).
const MAX_ATTRIBUTE_NAME_LENGTH: usize = 128;
/// Most custom attributes one request may set, so one call's work and Okta body stay bounded.
const MAX_CUSTOM_ATTRIBUTES: usize = 100;
/// Most values in one array attribute.
const MAX_ARRAY_VALUES: usize = 100;
/// Most update-mask paths: every standard field, the whole custom map and each custom
/// attribute once.
const MAX_UPDATE_MASK_PATHS: usize = STANDARD_PROFILE_FIELDS.len() + 1 + MAX_CUSTOM_ATTRIBUTES;

macro_rules! standard_profile_fields {
    ($($field:ident => $okta:literal),* $(,)?) => {
        /// (proto field name, Okta attribute name) of every standard profile attribute.
        pub const STANDARD_PROFILE_FIELDS: &[(&str, &str)] = &[$((stringify!($field), $okta)),*];

        fn standard_value<'a>(profile: &'a UserProfile, proto_field: &str) -> Option<&'a str> {
            match proto_field {
                $(stringify!($field) => Some(profile.$field.as_str()),)*
                _ => None,
            }
        }

        /// One pass over Okta's attributes, each moved to its field or to the custom ones (a
        /// removal per standard field would search the map twenty-odd times per user).
        fn profile_from_okta(attributes: Map<String, Value>) -> UserProfile {
            let mut profile = UserProfile::default();
            let mut custom = std::collections::BTreeMap::new();
            for (name, value) in attributes {
                match name.as_str() {
                    $($okta => profile.$field = string_from_json(value),)*
                    _ => {
                        custom.insert(name, value_from_json(value));
                    }
                }
            }
            profile.custom_attributes = (!custom.is_empty()).then_some(Struct { fields: custom });
            profile
        }
    };
}

standard_profile_fields! {
    login => "login",
    email => "email",
    second_email => "secondEmail",
    first_name => "firstName",
    last_name => "lastName",
    middle_name => "middleName",
    nick_name => "nickName",
    display_name => "displayName",
    title => "title",
    department => "department",
    organization => "organization",
    division => "division",
    employee_number => "employeeNumber",
    cost_center => "costCenter",
    manager => "manager",
    manager_id => "managerId",
    mobile_phone => "mobilePhone",
    primary_phone => "primaryPhone",
    locale => "locale",
    timezone => "timezone",
}

/// Names an Okta profile attribute (as it appears in Okta's errorCauses) by its proto field path.
pub fn proto_field_for_okta_attribute(attribute: &str) -> String {
    STANDARD_PROFILE_FIELDS
        .iter()
        .find(|(_, okta)| *okta == attribute)
        .map(|(proto, _)| format!("profile.{proto}"))
        .unwrap_or_else(|| format!("{CUSTOM_ATTRIBUTES_PATH}.{attribute}"))
}

/// An Okta user as the caller sees it.
pub fn user_from_okta(user: OktaUser) -> User {
    User {
        id: user.id,
        status: user_status_from_okta(&user.status) as i32,
        transitioning_to_status: user
            .transitioning_to_status
            .as_deref()
            .map_or(UserStatus::Unspecified, user_status_from_okta)
            as i32,
        profile: Some(profile_from_okta(user.profile)),
        created: timestamp(user.created),
        activated: timestamp(user.activated),
        status_changed: timestamp(user.status_changed),
        last_login: timestamp(user.last_login),
        last_updated: timestamp(user.last_updated),
        password_changed: timestamp(user.password_changed),
        type_id: user.r#type.map(|type_ref| type_ref.id).unwrap_or_default(),
    }
}

/// An Okta group as the caller sees it.
pub fn group_from_okta(group: OktaGroup) -> Group {
    let mut attributes = group.profile;
    let group_type = match group.r#type.as_str() {
        "OKTA_GROUP" => GroupType::OktaGroup,
        "APP_GROUP" => GroupType::AppGroup,
        "BUILT_IN" => GroupType::BuiltIn,
        _ => GroupType::Unspecified,
    };
    Group {
        id: group.id,
        r#type: group_type as i32,
        name: take_string(&mut attributes, "name"),
        description: take_string(&mut attributes, "description"),
        custom_attributes: struct_from_json(attributes),
        created: timestamp(group.created),
        last_updated: timestamp(group.last_updated),
        last_membership_updated: timestamp(group.last_membership_updated),
    }
}

/// Okta's status name for a user status (for filters); the proto names are Okta's, prefixed.
pub fn okta_user_status(status: UserStatus) -> Option<&'static str> {
    match status {
        UserStatus::Unspecified => None,
        known => known.as_str_name().strip_prefix("USER_STATUS_"),
    }
}

fn user_status_from_okta(status: &str) -> UserStatus {
    UserStatus::from_str_name(&format!("USER_STATUS_{status}")).unwrap_or(UserStatus::Unspecified)
}

/// A new user's profile as Okta attributes; records violations for missing or bad fields.
pub fn profile_for_create(
    profile: &UserProfile,
    violations: &mut Violations,
) -> Map<String, Value> {
    let mut attributes = Map::new();
    for (proto_field, okta_attribute) in STANDARD_PROFILE_FIELDS {
        let value = standard_value(profile, proto_field).unwrap_or_default();
        let path = format!("profile.{proto_field}");
        if REQUIRED_OKTA_ATTRIBUTES.contains(okta_attribute) {
            violations.required_text(&path, value);
        } else {
            violations.text(&path, value);
        }
        if !value.is_empty() {
            attributes.insert(
                (*okta_attribute).to_owned(),
                Value::String(value.to_owned()),
            );
        }
    }
    if let Some(custom) = &profile.custom_attributes {
        attributes.extend(custom_attributes(custom, violations));
    }
    attributes
}

/// The partial profile update that `update_mask` asks for: named fields given empty are cleared
/// (JSON null), which Okta's partial update understands.
pub fn profile_for_update(
    profile: &UserProfile,
    update_mask: Option<&FieldMask>,
    violations: &mut Violations,
) -> Map<String, Value> {
    let mut attributes = Map::new();
    let paths = update_mask
        .map(|mask| mask.paths.as_slice())
        .unwrap_or_default();
    if paths.is_empty() {
        violations.add("update_mask", "required: name the profile fields to change");
    }
    if !violations.count("update_mask.paths", paths.len(), MAX_UPDATE_MASK_PATHS) {
        return attributes;
    }
    let custom = profile.custom_attributes.as_ref();
    for path in paths {
        if path == CUSTOM_ATTRIBUTES_PATH {
            if let Some(custom) = custom {
                attributes.extend(custom_attributes(custom, violations));
            }
        } else if let Some(name) = path.strip_prefix("profile.custom_attributes.") {
            let value = custom.and_then(|c| c.fields.get(name));
            let json = match value {
                Some(value) => custom_attribute(name, value, violations),
                None if valid_attribute_name(name, violations) => Some(Value::Null),
                None => None,
            };
            if let Some(json) = json {
                attributes.insert(name.to_owned(), json);
            }
        } else if let Some((proto_field, okta_attribute)) =
            path.strip_prefix("profile.").and_then(|field| {
                STANDARD_PROFILE_FIELDS
                    .iter()
                    .find(|(proto, _)| *proto == field)
            })
        {
            let value = standard_value(profile, proto_field).unwrap_or_default();
            violations.text(path, value);
            if value.is_empty() {
                if REQUIRED_OKTA_ATTRIBUTES.contains(okta_attribute) {
                    violations.add(path, "required: cannot be cleared");
                }
                attributes.insert((*okta_attribute).to_owned(), Value::Null);
            } else {
                attributes.insert(
                    (*okta_attribute).to_owned(),
                    Value::String(value.to_owned()),
                );
            }
        } else {
            violations.add(
                "update_mask",
                format!("unknown path `{path}`: use `profile.<field>` or `{CUSTOM_ATTRIBUTES_PATH}[.<name>]`"),
            );
        }
    }
    attributes
}

/// Checks a custom attribute name. A malformed name is reported on the custom map, quoted in
/// the description, as it is no field path (and may be of any length).
fn valid_attribute_name(name: &str, violations: &mut Violations) -> bool {
    let well_formed = !name.is_empty()
        && name.len() <= MAX_ATTRIBUTE_NAME_LENGTH
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !well_formed {
        violations.add(
            CUSTOM_ATTRIBUTES_PATH,
            format!(
                "{name:?}: attribute names are at most {MAX_ATTRIBUTE_NAME_LENGTH} ASCII \
                 letters, digits and `_`, starting with a letter"
            ),
        );
        return false;
    }
    if STANDARD_PROFILE_FIELDS
        .iter()
        .any(|(_, okta)| *okta == name)
    {
        violations.add(
            &format!("{CUSTOM_ATTRIBUTES_PATH}.{name}"),
            "a standard attribute: set it through its own profile field",
        );
        return false;
    }
    true
}

/// The custom attributes as Okta attributes, at most [`MAX_CUSTOM_ATTRIBUTES`] of them.
fn custom_attributes(custom: &Struct, violations: &mut Violations) -> Map<String, Value> {
    if !violations.count(
        CUSTOM_ATTRIBUTES_PATH,
        custom.fields.len(),
        MAX_CUSTOM_ATTRIBUTES,
    ) {
        return Map::new();
    }
    custom
        .fields
        .iter()
        .filter_map(|(name, value)| {
            let json = custom_attribute(name, value, violations)?;
            Some((name.clone(), json))
        })
        .collect()
}

fn custom_attribute(
    name: &str,
    value: &prost_types::Value,
    violations: &mut Violations,
) -> Option<Value> {
    if !valid_attribute_name(name, violations) {
        return None;
    }
    attribute_json(
        &format!("{CUSTOM_ATTRIBUTES_PATH}.{name}"),
        value,
        false,
        violations,
    )
}

/// JSON for a custom attribute value (`in_array`: for an item of an array attribute). Okta's
/// attributes hold a string, number, integer, boolean or an array of those: objects and
/// nested arrays are violations, as are non-finite numbers (JSON cannot hold them) and strings
/// that are not acceptable text. Whole numbers become JSON integers (Okta's integer
/// attributes reject `5.0`).
fn attribute_json(
    field: &str,
    value: &prost_types::Value,
    in_array: bool,
    violations: &mut Violations,
) -> Option<Value> {
    match &value.kind {
        Some(Kind::BoolValue(flag)) => Some(Value::Bool(*flag)),
        Some(Kind::NumberValue(number)) if !number.is_finite() => {
            violations.add(field, "numbers must be finite");
            None
        }
        Some(Kind::NumberValue(number)) if number.fract() == 0.0 && number.abs() < 9.0e15 => {
            Some(Value::from(*number as i64))
        }
        Some(Kind::NumberValue(number)) => Some(Value::from(*number)),
        Some(Kind::StringValue(text)) => {
            violations.text(field, text);
            Some(Value::String(text.clone()))
        }
        _ if in_array => {
            violations.add(field, "array items are strings, numbers or booleans");
            None
        }
        None | Some(Kind::NullValue(_)) => Some(Value::Null),
        Some(Kind::ListValue(list)) => {
            if !violations.count(field, list.values.len(), MAX_ARRAY_VALUES) {
                return None;
            }
            list.values
                .iter()
                .map(|item| attribute_json(field, item, true, violations))
                .collect::<Option<_>>()
                .map(Value::Array)
        }
        Some(Kind::StructValue(_)) => {
            violations.add(
                field,
                "Okta attributes hold a string, number, boolean or an array of those, not an object",
            );
            None
        }
    }
}

/// Removes `name` from Okta's attributes as proto text: absent or null is empty, a non-string
/// value its JSON text, so whatever is left over can go to the catch-all attributes.
pub fn take_string(attributes: &mut Map<String, Value>, name: &str) -> String {
    attributes
        .remove(name)
        .map(string_from_json)
        .unwrap_or_default()
}

/// An attribute's value as text: a string as it is, `null` as empty, anything else as JSON.
fn string_from_json(value: Value) -> String {
    match value {
        Value::String(text) => text,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A protobuf timestamp for an optional instant.
pub fn timestamp(time: Option<DateTime<Utc>>) -> Option<Timestamp> {
    time.map(|time| Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    })
}

/// Converts a protobuf timestamp to UTC, if it is a valid instant. Protobuf's `nanos` run from
/// 0 to 999,999,999; chrono would read more as a leap second, and Okta would get `:60`.
pub fn datetime(timestamp: &Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(timestamp.nanos)
        .ok()
        .filter(|nanos| *nanos < 1_000_000_000)?;
    DateTime::from_timestamp(timestamp.seconds, nanos)
}

/// A protobuf struct for a JSON object; `None` when empty.
pub fn struct_from_json(attributes: Map<String, Value>) -> Option<Struct> {
    let fields: std::collections::BTreeMap<String, prost_types::Value> = attributes
        .into_iter()
        .map(|(name, value)| (name, value_from_json(value)))
        .collect();
    (!fields.is_empty()).then_some(Struct { fields })
}

fn value_from_json(value: Value) -> prost_types::Value {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(flag) => Kind::BoolValue(flag),
        Value::Number(number) => Kind::NumberValue(number.as_f64().unwrap_or_default()),
        Value::String(text) => Kind::StringValue(text),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.into_iter().map(value_from_json).collect(),
        }),
        Value::Object(fields) => Kind::StructValue(struct_from_json(fields).unwrap_or_default()),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::RequestContext;
    use futures::executor::block_on;

    fn string_value(text: &str) -> prost_types::Value {
        prost_types::Value {
            kind: Some(Kind::StringValue(text.to_owned())),
        }
    }

    #[test]
    fn okta_profiles_split_into_standard_fields_and_custom_attributes() {
        let okta: Map<String, Value> = serde_json::from_str(
            r#"{"login":"a@example.com","firstName":"Ada","secondEmail":null,"costCenter":"42","badge":7}"#,
        )
        .unwrap();
        let profile = profile_from_okta(okta);
        assert_eq!(profile.login, "a@example.com");
        assert_eq!(profile.first_name, "Ada");
        assert_eq!(profile.second_email, "");
        assert_eq!(profile.cost_center, "42");
        let custom = profile.custom_attributes.unwrap();
        assert_eq!(custom.fields.len(), 1);
        assert_eq!(custom.fields["badge"].kind, Some(Kind::NumberValue(7.0)));
    }

    #[test]
    fn create_requires_the_four_okta_attributes_and_names_each_missing_one() {
        let cx = RequestContext::default();
        let mut violations = Violations::new(&cx);
        profile_for_create(
            &UserProfile {
                login: "x@example.com".into(),
                ..Default::default()
            },
            &mut violations,
        );
        let status = block_on(violations.finish()).unwrap_err();
        for field in ["profile.email", "profile.first_name", "profile.last_name"] {
            assert!(status.message().contains(field), "{}", status.message());
        }
    }

    #[test]
    fn update_masks_pick_fields_clear_empty_ones_and_refuse_unknown_paths() {
        let profile = UserProfile {
            first_name: "Grace".into(),
            custom_attributes: Some(Struct {
                fields: [("badge".to_owned(), string_value("B-1"))].into(),
            }),
            ..Default::default()
        };
        let mask = FieldMask {
            paths: vec![
                "profile.first_name".into(),
                "profile.title".into(),
                "profile.custom_attributes.badge".into(),
                "profile.custom_attributes.gone".into(),
            ],
        };
        let cx = RequestContext::default();
        let mut violations = Violations::new(&cx);
        let update = profile_for_update(&profile, Some(&mask), &mut violations);
        block_on(violations.finish()).unwrap();
        assert_eq!(update["firstName"], "Grace");
        assert_eq!(update["title"], Value::Null);
        assert_eq!(update["badge"], "B-1");
        assert_eq!(update["gone"], Value::Null);
        assert!(!update.contains_key("lastName"));

        let cx = RequestContext::default();
        let mut violations = Violations::new(&cx);
        let bad = FieldMask {
            paths: vec![
                "profile.last_name".into(),
                "status".into(),
                "profile.custom_attributes.a/b".into(),
            ],
        };
        profile_for_update(&profile, Some(&bad), &mut violations);
        let message = block_on(violations.finish())
            .unwrap_err()
            .message()
            .to_owned();
        assert!(
            message.contains("cannot be cleared")
                && message.contains("unknown path")
                && message.contains("a/b"),
            "{message}"
        );
    }

    #[test]
    fn timestamps_with_nanos_outside_protobufs_range_are_not_instants() {
        let leap = Timestamp {
            seconds: 52_748_275_379,
            nanos: 1_000_000_000,
        };
        assert_eq!(datetime(&leap), None);
        assert_eq!(datetime(&Timestamp { nanos: -1, ..leap }), None);
        let last_nano = Timestamp {
            nanos: 999_999_999,
            ..leap
        };
        assert_eq!(timestamp(datetime(&last_nano)), Some(last_nano));
    }

    fn attribute(kind: Kind) -> (Option<Value>, Result<(), tonic::Status>) {
        let cx = RequestContext::default();
        let mut violations = Violations::new(&cx);
        let value = prost_types::Value { kind: Some(kind) };
        let json = custom_attribute("badge", &value, &mut violations);
        (json, block_on(violations.finish()))
    }

    #[test]
    fn whole_numbers_stay_integers_and_non_finite_numbers_are_refused() {
        assert_eq!(attribute(Kind::NumberValue(5.0)).0, Some(Value::from(5)));
        assert_eq!(attribute(Kind::NumberValue(5.5)).0, Some(Value::from(5.5)));
        let (json, status) = attribute(Kind::NumberValue(f64::NAN));
        assert_eq!(json, None);
        assert!(status.unwrap_err().message().contains("finite"));
    }

    #[test]
    fn custom_attributes_hold_scalars_or_arrays_of_scalars_within_limits() {
        let list =
            |values: Vec<prost_types::Value>| Kind::ListValue(prost_types::ListValue { values });
        assert_eq!(
            attribute(list(vec![string_value("a"), string_value("b")])).0,
            Some(serde_json::json!(["a", "b"]))
        );
        assert_eq!(attribute(Kind::NullValue(0)).0, Some(Value::Null));
        for refused in [
            Kind::StructValue(Struct::default()),
            list(vec![prost_types::Value {
                kind: Some(list(vec![])),
            }]),
            list(vec![prost_types::Value {
                kind: Some(Kind::NullValue(0)),
            }]),
            list(vec![string_value("x"); MAX_ARRAY_VALUES + 1]),
            Kind::StringValue("x".repeat(1025)),
            Kind::StringValue("line\nbreak".to_owned()),
        ] {
            let message = attribute(refused).1.unwrap_err().message().to_owned();
            assert!(
                message.contains("profile.custom_attributes.badge"),
                "{message}"
            );
        }
    }

    #[test]
    fn too_many_custom_attributes_or_mask_paths_are_one_violation_each() {
        let fields = (0..=MAX_CUSTOM_ATTRIBUTES)
            .map(|index| (format!("a{index}"), string_value("x")))
            .collect();
        let profile = UserProfile {
            custom_attributes: Some(Struct { fields }),
            ..Default::default()
        };
        let cx = RequestContext::default();
        let mut violations = Violations::new(&cx);
        let attributes = profile_for_create(&profile, &mut violations);
        assert!(!attributes.keys().any(|name| name.starts_with('a')));
        let message = block_on(violations.finish())
            .unwrap_err()
            .message()
            .to_owned();
        assert!(
            message.contains("profile.custom_attributes: at most 100"),
            "{message}"
        );

        let mask = FieldMask {
            paths: vec!["profile.title".to_owned(); MAX_UPDATE_MASK_PATHS + 1],
        };
        let cx = RequestContext::default();
        let mut violations = Violations::new(&cx);
        assert!(profile_for_update(&profile, Some(&mask), &mut violations).is_empty());
        let message = block_on(violations.finish())
            .unwrap_err()
            .message()
            .to_owned();
        let expected = format!("update_mask.paths: at most {MAX_UPDATE_MASK_PATHS} values");
        assert!(message.contains(&expected), "{message}");
    }

    #[test]
    fn malformed_attribute_names_are_quoted_on_the_custom_map() {
        let cx = RequestContext::default();
        let mut violations = Violations::new(&cx);
        assert!(!valid_attribute_name(&"n".repeat(5000), &mut violations));
        assert!(!valid_attribute_name("a/b", &mut violations));
        let status = block_on(violations.finish()).unwrap_err();
        assert!(
            status.message().contains(r#""a/b""#),
            "{}",
            status.message()
        );
        assert!(status.message().len() < 1000, "{}", status.message());
    }
}
