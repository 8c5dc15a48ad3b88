//! Invariants of the code that turns caller input into Okta requests, shared by the property
//! tests (`tests/properties.rs`) and the fuzz targets (`fuzz/`): each check runs one input
//! through the gateway's code and panics when an invariant does not hold. Expressions are read
//! back with the simulator's parser, an implementation independent of the gateway's.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed check
#![allow(dead_code)] // each fuzz target uses part of the checks

use std::future::Future;

use chrono::DateTime;
use identity_gateway::api::events::{cursor, query};
use identity_gateway::api::token_key::TokenKey;
use identity_gateway::api::validate::{MAX_EXPRESSION_LENGTH, Violations};
use identity_gateway::api::{convert, page_token};
use identity_gateway::proto::{EventFilter, UserProfile};
use okta_client::{Expression, OktaId, OktaUser, Operator};
use okta_sim::expr::{self, Expr, Literal, Op};
use prost_types::FieldMask;
use prost_types::value::Kind;
use serde_json::{Map, Value};
use tonic_types::StatusExt;

/// Every comparison operator, as the gateway and as the independent parser name it.
pub const OPERATORS: [(Operator, Op); 9] = [
    (Operator::Eq, Op::Eq),
    (Operator::Ne, Op::Ne),
    (Operator::Gt, Op::Gt),
    (Operator::Ge, Op::Ge),
    (Operator::Lt, Op::Lt),
    (Operator::Le, Op::Le),
    (Operator::Sw, Op::Sw),
    (Operator::Ew, Op::Ew),
    (Operator::Co, Op::Co),
];

/// Attributes the gateway compares caller values with.
pub const ATTRIBUTES: [&str; 8] = [
    "id",
    "status",
    "profile.login",
    "profile.name",
    "actor.id",
    "actor.alternateId",
    "target.id",
    "eventType",
];

/// Largest trailer block a status may need: hyper (under tonic clients) refuses header lists
/// over 16 KiB, so an INVALID_ARGUMENT must fit well inside.
const MAX_STATUS_HEADER_BYTES: usize = 12 * 1024;

/// The key the checks seal and open tokens with, as a gateway holds one.
pub fn token_key() -> &'static TokenKey {
    static KEY: std::sync::LazyLock<TokenKey> = std::sync::LazyLock::new(TokenKey::random);
    &KEY
}

/// Another gateway's key: nothing sealed with [`token_key`] opens under it.
fn other_key() -> &'static TokenKey {
    static KEY: std::sync::LazyLock<TokenKey> = std::sync::LazyLock::new(TokenKey::random);
    &KEY
}

/// The page-token fingerprint of a query made of these parts.
pub fn fingerprint_of(parts: &[String]) -> String {
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    page_token::query_fingerprint(&parts)
}

/// `OktaId::parse` accepts exactly 20 ASCII letters and digits, and an accepted id is one URL
/// path segment, unchanged.
pub fn check_id(raw: &str) {
    let parsed = OktaId::parse(raw);
    let is_id_shaped = raw.len() == 20 && raw.bytes().all(|byte| byte.is_ascii_alphanumeric());
    assert_eq!(parsed.is_ok(), is_id_shaped, "{raw:?}: {parsed:?}");
    if let Ok(id) = parsed {
        assert_eq!(id.as_str(), raw);
        let mut url = url::Url::parse("https://example.okta.com/api/v1/users/").unwrap();
        url.path_segments_mut()
            .unwrap()
            .pop_if_empty()
            .push(id.as_str());
        assert_eq!(url.path(), format!("/api/v1/users/{raw}"));
        assert_eq!(url.path_segments().unwrap().next_back(), Some(raw));
        assert_eq!(url.query(), None);
    }
}

/// `Expression::compare` puts any value into one string literal: nothing breaks out of the
/// quotes, no control character is sent raw, and the literal reads back as the value.
pub fn check_compare(attribute: &'static str, (operator, op): (Operator, Op), value: &str) {
    let built = Expression::compare(attribute, operator, value);
    let text = built.as_str();
    assert_no_control_characters(text);
    let literal = text
        .strip_prefix(&format!("{attribute} {} ", op.as_str()))
        .unwrap_or_else(|| panic!("{text:?} does not start with the attribute and operator"));
    assert_eq!(
        string_literal_length(literal),
        Some(literal.len()),
        "the literal must end at the end of {text:?}"
    );
    if text.len() <= expr::MAX_LEN {
        let expected = Expr::Cmp {
            attr: attribute.to_owned(),
            op,
            value: Some(Literal::Str(value.to_owned())),
        };
        assert_eq!(expr::parse(text), Ok(expected), "{text:?}");
    }
    if text.len() <= MAX_EXPRESSION_LENGTH {
        assert_eq!(Expression::parse(text).as_ref(), Ok(&built));
    }
}

/// `Expression::any_of` of comparisons reads back as an `or` of exactly those comparisons.
pub fn check_any_of(attribute: &'static str, values: &[String]) {
    let comparisons: Vec<Expression> = values
        .iter()
        .map(|value| Expression::compare(attribute, Operator::Eq, value))
        .collect();
    let Some(combined) = Expression::any_of(comparisons) else {
        assert!(values.is_empty());
        return;
    };
    assert_no_control_characters(combined.as_str());
    if combined.as_str().len() > expr::MAX_LEN {
        return;
    }
    let literals = comparisons_in(&expr::parse(combined.as_str()).unwrap());
    let expected: Vec<(String, Literal)> = values
        .iter()
        .map(|value| (attribute.to_owned(), Literal::Str(value.clone())))
        .collect();
    assert_eq!(literals, expected);
}

/// A caller-written expression the gateway accepts means to the independent parser exactly
/// what the gateway's normalized form means, carries no raw control character, and
/// normalizing it again changes nothing.
pub fn check_expression(raw: &str) {
    let Ok(expression) = Expression::parse(raw) else {
        return;
    };
    let normalized = expression.as_str();
    assert_no_control_characters(normalized);
    let meaning = expr::parse(raw)
        .unwrap_or_else(|error| panic!("accepted {raw:?}, the simulator refuses it: {error}"));
    assert_eq!(
        expr::parse(normalized),
        Ok(meaning),
        "{raw:?} -> {normalized:?}"
    );
    if normalized.len() <= MAX_EXPRESSION_LENGTH {
        assert_eq!(Expression::parse(normalized).as_ref(), Ok(&expression));
    }
}

/// A System Log filter: event types, [actor id, actor login, target id], IP address, outcome
/// and severity (as the raw enum numbers a caller sends).
pub fn event_filter(
    event_types: Vec<String>,
    [actor_id, actor_login, target_id]: [String; 3],
    ip_address: String,
    outcome: i32,
    severity: i32,
) -> EventFilter {
    EventFilter {
        event_types,
        actor_id,
        actor_login,
        target_id,
        ip_address,
        outcome,
        severity,
    }
}

/// The outcome of [`Violations::finish`] outside any RPC: no group scope applies, so it is
/// ready at the first poll (the fuzz targets run no async runtime).
fn finished(violations: Violations) -> Result<(), tonic::Status> {
    let mut finish = std::pin::pin!(violations.finish());
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match finish.as_mut().poll(&mut context) {
        std::task::Poll::Ready(outcome) => outcome,
        std::task::Poll::Pending => panic!("no scope applies, so nothing is awaited"),
    }
}

/// The System Log filter built from a valid structured filter compares each caller value, as
/// one string literal, with its own attribute, and with nothing else.
pub fn check_event_filter(filter: &EventFilter) {
    let mut violations = Violations::default();
    let built = query::event_filter_expression(filter, "filter", &mut violations);
    let status = finished(violations);
    assert_small_invalid_argument(&status);
    let (Ok(()), Some(expression)) = (status, built) else {
        return;
    };
    let text = expression.as_str();
    assert_no_control_characters(text);
    if text.len() > expr::MAX_LEN {
        return;
    }
    let comparisons = comparisons_in(&expr::parse(text).unwrap());
    let mut expected: Vec<(String, Literal)> = filter
        .event_types
        .iter()
        .map(|event_type| ("eventType".to_owned(), Literal::Str(event_type.clone())))
        .collect();
    for (attribute, value) in [
        ("actor.id", &filter.actor_id),
        ("actor.alternateId", &filter.actor_login),
        ("target.id", &filter.target_id),
    ] {
        if !value.is_empty() {
            expected.push((attribute.to_owned(), Literal::Str(value.clone())));
        }
    }
    let from_caller: Vec<(String, Literal)> = comparisons
        .into_iter()
        .filter(|(attribute, _)| {
            !matches!(
                attribute.as_str(),
                "client.ipAddress" | "outcome.result" | "severity"
            )
        })
        .collect();
    assert_eq!(from_caller, expected, "{text:?}");
}

/// Only page tokens the gateway issued decode: a decoded token encodes back to itself, names
/// a valid instant and is refused for any other query and under any other key; anything else
/// is a `page_token` violation.
pub fn check_page_token(token: &str, fingerprint: &str) {
    let key = token_key();
    match page_token::decode_position(key, token, fingerprint) {
        Ok(None) => assert!(token.is_empty()),
        Ok(Some(position)) => {
            let reencoded = page_token::encode_position(
                key,
                Some(&position.cursor),
                fingerprint,
                position.until_millis,
            );
            assert_eq!(reencoded, token);
            if let Some(until) = position.until_millis {
                assert!(DateTime::from_timestamp_millis(until).is_some(), "{until}");
            }
            let other_query = page_token::query_fingerprint(&["other", fingerprint]);
            assert!(page_token::decode_position(key, token, &other_query).is_err());
            assert!(page_token::decode_position(other_key(), token, fingerprint).is_err());
        }
        Err(violation) => assert_eq!(violation.field, "page_token"),
    }
}

/// Only resume cursors the gateway issued decode (as for page tokens).
pub fn check_resume_cursor(value: &str, fingerprint: &str) {
    let key = token_key();
    match cursor::decode(key, value, fingerprint) {
        Ok(resume) => {
            let reencoded = cursor::encode(key, fingerprint, &resume);
            assert_eq!(reencoded, value);
            let other_filter = page_token::query_fingerprint(&["other", fingerprint]);
            assert!(cursor::decode(key, value, &other_filter).is_err());
            assert!(cursor::decode(other_key(), value, fingerprint).is_err());
        }
        Err(violation) => assert_eq!(violation.field, "resume_cursor"),
    }
}

/// Payloads sealed with the gateway's key after a valid version and fingerprint: reaches the
/// parsing behind the seal, which must still decode only what the gateway could have issued.
pub fn check_sealed_payloads(fingerprint: &str, rest: &[u8]) {
    let rest = String::from_utf8_lossy(rest);
    check_page_token(
        &token_key().seal(&format!("v2.{fingerprint}.{rest}")),
        fingerprint,
    );
    check_resume_cursor(
        &token_key().seal(&format!("w2.{fingerprint}.{rest}")),
        fingerprint,
    );
}

/// A token or cursor the gateway issued, with one character changed, decodes as neither: the
/// caller cannot edit the cursor Okta will be sent.
pub fn check_edited_token_is_refused(issued: &str, fingerprint: &str, at: usize, to: char) {
    let mut edited: Vec<char> = issued.chars().collect();
    let Some(original) = edited.get_mut(at) else {
        return;
    };
    if *original == to {
        return;
    }
    *original = to;
    let edited: String = edited.into_iter().collect();
    let key = token_key();
    let refused = page_token::decode_position(key, &edited, fingerprint).unwrap_err();
    assert_eq!(refused.field, "page_token");
    let refused = cursor::decode(key, &edited, fingerprint).unwrap_err();
    assert_eq!(refused.field, "resume_cursor");
}

/// The caller's profile: standard attributes (by Okta name, as text) and custom attributes.
pub fn profile_with(
    standard: &[(&str, String)],
    custom: Option<prost_types::Struct>,
) -> UserProfile {
    let attributes = standard
        .iter()
        .map(|(name, value)| ((*name).to_owned(), Value::String(value.clone())))
        .collect();
    UserProfile {
        custom_attributes: custom,
        ..profile_from_okta(attributes)
    }
}

/// A profile CreateUser accepts comes back unchanged from the Okta user it creates; one it
/// refuses gets a small INVALID_ARGUMENT.
pub fn check_profile_for_create(profile: &UserProfile) {
    let mut violations = Violations::default();
    let attributes = convert::profile_for_create(profile, &mut violations);
    let status = finished(violations);
    assert_small_invalid_argument(&status);
    if status.is_ok() {
        assert_eq!(profile_from_okta(attributes), with_canonical_nulls(profile));
    }
}

/// An accepted UpdateUser mask yields exactly the Okta attributes it names: the caller's
/// value, or null to clear an empty one; a refused one gets a small INVALID_ARGUMENT.
pub fn check_profile_for_update(
    standard: &[(&str, String)],
    custom: Option<prost_types::Struct>,
    mask: &FieldMask,
) {
    let profile = profile_with(standard, custom);
    let mut violations = Violations::default();
    let attributes = convert::profile_for_update(&profile, Some(mask), &mut violations);
    let status = finished(violations);
    assert_small_invalid_argument(&status);
    if status.is_err() {
        return;
    }
    let custom = with_canonical_nulls(&profile).custom_attributes;
    let mut asked_for = Vec::new();
    for path in &mask.paths {
        if let Some(name) = path.strip_prefix("profile.custom_attributes.") {
            asked_for.push(name.to_owned());
        } else if path == "profile.custom_attributes" {
            asked_for.extend(
                custom
                    .iter()
                    .flat_map(|custom| custom.fields.keys().cloned()),
            );
        } else {
            let proto_field = path.strip_prefix("profile.").unwrap();
            let (_, okta) = convert::STANDARD_PROFILE_FIELDS
                .iter()
                .find(|(proto, _)| *proto == proto_field)
                .unwrap();
            let expected = standard
                .iter()
                .rev()
                .find(|(name, _)| name == okta)
                .filter(|(_, value)| !value.is_empty())
                .map_or(Value::Null, |(_, value)| Value::String(value.clone()));
            assert_eq!(attributes[*okta], expected, "{path}");
            asked_for.push((*okta).to_owned());
        }
    }
    let mut sent: Vec<&String> = attributes.keys().collect();
    sent.sort();
    asked_for.sort();
    asked_for.dedup();
    assert_eq!(sent, asked_for.iter().collect::<Vec<_>>());
    let returned = profile_from_okta(attributes.clone()).custom_attributes;
    for (name, value) in returned.iter().flat_map(|returned| returned.fields.iter()) {
        let given = custom.as_ref().and_then(|custom| custom.fields.get(name));
        match given {
            Some(given) => assert_eq!(value, given, "{name}"),
            None => assert_eq!(value.kind, Some(Kind::NullValue(0)), "{name} is cleared"),
        }
    }
}

/// Protobuf timestamps the gateway accepts are valid protobuf instants and convert back
/// unchanged.
pub fn check_timestamp(seconds: i64, nanos: i32) {
    let timestamp = prost_types::Timestamp { seconds, nanos };
    if let Some(time) = convert::datetime(&timestamp) {
        assert!((0..1_000_000_000).contains(&nanos), "{timestamp:?}");
        assert_eq!(convert::timestamp(Some(time)), Some(timestamp));
    }
}

/// No character that `char::is_control` names (C0, DEL, C1) appears raw.
fn assert_no_control_characters(text: &str) {
    assert!(
        !text.chars().any(char::is_control),
        "raw control character in {text:?}"
    );
}

/// A refusal is INVALID_ARGUMENT with a bounded list of violations, small enough for any
/// client to receive in its trailers.
fn assert_small_invalid_argument(status: &Result<(), tonic::Status>) {
    let Err(status) = status else {
        return;
    };
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let violations = status.get_details_bad_request().unwrap().field_violations;
    assert!(
        !violations.is_empty() && violations.len() <= 11,
        "{violations:?}"
    );
    let response = status.clone().into_http::<()>();
    let header_bytes: usize = response
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum();
    assert!(
        header_bytes <= MAX_STATUS_HEADER_BYTES,
        "{header_bytes} bytes of trailers"
    );
}

/// Byte length of the JSON string literal that opens `text`, quotes included; `None` when
/// `text` does not open with a complete one. Reads escapes on its own, without a JSON library.
fn string_literal_length(text: &str) -> Option<usize> {
    let mut characters = text.char_indices();
    if characters.next()?.1 != '"' {
        return None;
    }
    while let Some((index, character)) = characters.next() {
        match character {
            '\\' => {
                characters.next()?;
            }
            '"' => return Some(index + 1),
            _ => {}
        }
    }
    None
}

/// Every comparison in a parsed expression, left to right, as (attribute, value).
fn comparisons_in(expression: &Expr) -> Vec<(String, Literal)> {
    match expression {
        Expr::And(operands) | Expr::Or(operands) => {
            operands.iter().flat_map(comparisons_in).collect()
        }
        Expr::Cmp { attr, value, .. } => value
            .iter()
            .map(|literal| (attr.clone(), literal.clone()))
            .collect(),
    }
}

/// The proto profile of an Okta user with these attributes.
fn profile_from_okta(attributes: Map<String, Value>) -> UserProfile {
    let user: OktaUser = serde_json::from_value(serde_json::json!({
        "id": "00uAAAAAAAAAAAAAAAAA",
        "status": "STAGED",
        "profile": attributes,
    }))
    .unwrap();
    convert::user_from_okta(user).profile.unwrap()
}

/// The profile with every unset or null custom value spelled as JSON null comes back.
fn with_canonical_nulls(profile: &UserProfile) -> UserProfile {
    let mut canonical = profile.clone();
    for value in canonical
        .custom_attributes
        .iter_mut()
        .flat_map(|custom| custom.fields.values_mut())
    {
        if matches!(value.kind, None | Some(Kind::NullValue(_))) {
            value.kind = Some(Kind::NullValue(0));
        }
    }
    if canonical
        .custom_attributes
        .as_ref()
        .is_some_and(|custom| custom.fields.is_empty())
    {
        canonical.custom_attributes = None;
    }
    canonical
}
