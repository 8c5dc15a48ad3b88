//! CreateUser profiles and UpdateUser masks, proto -> Okta: never a panic, refusals stay
//! small, accepted profiles round-trip and masks send exactly what they name.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

use arbitrary::Arbitrary;
use identity_gateway::api::convert::STANDARD_PROFILE_FIELDS;
use libfuzzer_sys::fuzz_target;
use prost_types::value::Kind;
use prost_types::{FieldMask, ListValue, Struct, Value};

/// Deepest custom value built; the wire format bounds nesting too.
const MAX_DEPTH: usize = 4;

#[derive(Arbitrary, Debug)]
enum FuzzValue {
    Unset,
    Null(i32),
    Bool(bool),
    Number(f64),
    Text(String),
    List(Vec<FuzzValue>),
    Object(Vec<(String, FuzzValue)>),
}

impl FuzzValue {
    fn into_proto(self, depth: usize) -> Value {
        let kind = match self {
            _ if depth >= MAX_DEPTH => None,
            Self::Unset => None,
            Self::Null(kind) => Some(Kind::NullValue(kind)),
            Self::Bool(flag) => Some(Kind::BoolValue(flag)),
            Self::Number(number) => Some(Kind::NumberValue(number)),
            Self::Text(text) => Some(Kind::StringValue(text)),
            Self::List(items) => Some(Kind::ListValue(ListValue {
                values: items
                    .into_iter()
                    .map(|item| item.into_proto(depth + 1))
                    .collect(),
            })),
            Self::Object(fields) => Some(Kind::StructValue(Struct {
                fields: fields
                    .into_iter()
                    .map(|(name, value)| (name, value.into_proto(depth + 1)))
                    .collect(),
            })),
        };
        Value { kind }
    }
}

#[derive(Arbitrary, Debug)]
enum Path {
    Standard(u8),
    WholeCustomMap,
    Custom(String),
    Other(String),
}

impl Path {
    fn into_text(self) -> String {
        match self {
            Self::Standard(index) => {
                let (proto, _) =
                    STANDARD_PROFILE_FIELDS[usize::from(index) % STANDARD_PROFILE_FIELDS.len()];
                format!("profile.{proto}")
            }
            Self::WholeCustomMap => "profile.custom_attributes".to_owned(),
            Self::Custom(name) => format!("profile.custom_attributes.{name}"),
            Self::Other(path) => path,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    standard: Vec<String>,
    custom: Option<Vec<(String, FuzzValue)>>,
    /// `None`: CreateUser; `Some`: UpdateUser with this mask.
    paths: Option<Vec<Path>>,
}

fuzz_target!(|input: Input| {
    let standard: Vec<(&str, String)> = STANDARD_PROFILE_FIELDS
        .iter()
        .map(|(_, okta)| *okta)
        .zip(input.standard)
        .collect();
    let custom = input.custom.map(|fields| Struct {
        fields: fields
            .into_iter()
            .map(|(name, value)| (name, value.into_proto(0)))
            .collect(),
    });
    match input.paths {
        None => invariants::check_profile_for_create(&invariants::profile_with(&standard, custom)),
        Some(paths) => {
            let mask = FieldMask {
                paths: paths.into_iter().map(Path::into_text).collect(),
            };
            invariants::check_profile_for_update(&standard, custom, &mask);
        }
    }
});
