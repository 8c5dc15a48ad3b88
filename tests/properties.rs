//! Property tests of everything that turns caller input into an Okta request: id validation,
//! expression building, page tokens and resume cursors, proto -> Okta profile conversion.
//! Arbitrary input never panics, nothing a caller sends escapes its quoting, refusals stay
//! small, and what must round-trip does. The invariants live in `invariants/`, shared with the
//! fuzz targets in `fuzz/`.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod invariants;

use identity_gateway::api::convert::STANDARD_PROFILE_FIELDS;
use identity_gateway::api::events::cursor::{self, Position, ResumePoint};
use identity_gateway::api::page_token::{self, PagePosition};
use identity_gateway::proto::EventFilter;
use invariants::{ATTRIBUTES, OPERATORS, fingerprint_of};
use okta_client::Cursor;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use prost_types::value::Kind;
use prost_types::{FieldMask, ListValue, Struct, Value};

/// Characters that have broken quoting, URLs or logs somewhere: quotes, escapes, controls
/// (C0, DEL, C1), separators, and non-ASCII.
const TRICKY_CHARACTERS: &[char] = &[
    '"', '\\', '\'', '\n', '\r', '\t', '\0', '\u{1}', '\u{1f}', '\u{7f}', '\u{80}', '\u{85}',
    '\u{9f}', '\u{2028}', '\u{feff}', ' ', '(', ')', '&', '=', '?', '#', '%', '/', '.', '+', 'é',
    '😀',
];

/// Milliseconds within chrono's range (about ±262,000 years).
const MAX_MILLIS: i64 = 8_000_000_000_000_000;

fn caller_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => proptest::char::range(' ', '~'),
        2 => select(TRICKY_CHARACTERS),
        1 => any::<char>(),
    ]
}

/// Any text a caller could send, biased towards the troublesome characters.
fn caller_text(max_chars: usize) -> impl Strategy<Value = String> {
    vec(caller_char(), 0..=max_chars).prop_map(String::from_iter)
}

fn id_candidate() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9]{20}",
        "[A-Za-z0-9]{18,22}",
        vec(caller_char(), 20).prop_map(String::from_iter),
        caller_text(24),
    ]
}

/// Expressions as a caller might type them: pieces of the grammar (and of attacks on it) in
/// any order, with any spacing.
fn expression_candidate() -> impl Strategy<Value = String> {
    let piece = select(vec![
        "(",
        ")",
        "and",
        "OR",
        "eq",
        "EQ",
        "ne",
        "pr",
        "Pr",
        "sw",
        "co",
        "gt",
        "le",
        "status",
        "profile.login",
        "a.b",
        "a..b",
        "_x",
        "1a",
        "true",
        "false",
        "TRUE",
        "1",
        "-1.5e3",
        "1e999",
        "0x1",
        r#""x""#,
        r#""a\"b""#,
        r#""\u0000""#,
        "\"\u{7f}\"",
        "\"\u{85}\"",
        r#""é\\""#,
        "\"",
        "\\",
        "&limit=1",
        ";",
    ]);
    let space = select(vec!["", " ", "  ", "\t", "\n"]);
    prop_oneof![
        vec((piece, space), 0..16).prop_map(|pieces| {
            pieces
                .into_iter()
                .map(|(piece, space)| format!("{piece}{space}"))
                .collect()
        }),
        well_formed_expression(),
        caller_text(48),
    ]
}

fn well_formed_expression() -> impl Strategy<Value = String> {
    let attribute = select(ATTRIBUTES.to_vec());
    let operator = select(vec![
        "eq", "EQ", "ne", "gt", "ge", "lt", "le", "sw", "ew", "co",
    ]);
    let value = prop_oneof![
        caller_text(12).prop_map(|text| serde_json::to_string(&text).unwrap()),
        any::<i32>().prop_map(|number| number.to_string()),
        Just("true".to_owned()),
        Just("-2.5E+3".to_owned()),
    ];
    let comparison = prop_oneof![
        (attribute.clone(), operator, value)
            .prop_map(|(attribute, operator, value)| format!("{attribute} {operator} {value}")),
        attribute.prop_map(|attribute| format!("{attribute} pr")),
    ];
    comparison.prop_recursive(4, 16, 2, |inner| {
        prop_oneof![
            (
                inner.clone(),
                select(vec![" and ", " OR ", ")and("]),
                inner.clone()
            )
                .prop_map(|(left, joiner, right)| format!("({left}){joiner}({right})")),
            inner.prop_map(|expression| format!("({expression})")),
        ]
    })
}

fn event_filter() -> impl Strategy<Value = EventFilter> {
    let event_type = prop_oneof!["[a-z][a-z0-9._]{0,30}", caller_text(12)];
    let text = prop_oneof![Just(String::new()), caller_text(24)];
    let ip = prop_oneof![
        Just(String::new()),
        Just("10.0.0.1".to_owned()),
        Just("2001:db8:0::1".to_owned()),
        caller_text(16),
    ];
    (
        prop_oneof![8 => vec(event_type.clone(), 0..4), 1 => vec(event_type, 30..36)],
        [text.clone(), text.clone(), text],
        ip,
        -1..9i32,
        -1..6i32,
    )
        .prop_map(|(event_types, texts, ip, outcome, severity)| {
            invariants::event_filter(event_types, texts, ip, outcome, severity)
        })
}

fn okta_cursor() -> impl Strategy<Value = Cursor> {
    "[A-Za-z0-9._~-]{1,512}".prop_map(|text| Cursor::parse(&text).unwrap())
}

fn query_parts() -> impl Strategy<Value = Vec<String>> {
    vec(caller_text(12), 0..4)
}

/// Standard profile attributes by Okta name: mostly acceptable text, sometimes empty or
/// hostile.
fn standard_attributes() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let value = prop_oneof![
        6 => "[ -~]*[!-~][ -~]*",
        2 => caller_text(24),
        1 => Just(String::new()),
    ];
    vec(value, STANDARD_PROFILE_FIELDS.len()).prop_map(|values| {
        STANDARD_PROFILE_FIELDS
            .iter()
            .map(|(_, okta)| *okta)
            .zip(values)
            .collect()
    })
}

fn attribute_name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z][A-Za-z0-9_]{0,12}",
        1 => select(STANDARD_PROFILE_FIELDS.iter().map(|(_, okta)| (*okta).to_owned()).collect::<Vec<_>>()),
        1 => caller_text(8),
    ]
}

fn proto_value() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(None),
        Just(Some(Kind::NullValue(0))),
        any::<i32>().prop_map(|kind| Some(Kind::NullValue(kind))),
        any::<bool>().prop_map(|flag| Some(Kind::BoolValue(flag))),
        any::<f64>().prop_map(|number| Some(Kind::NumberValue(number))),
        (-1e16..1e16f64).prop_map(|number| Some(Kind::NumberValue(number.trunc()))),
        caller_text(16).prop_map(|text| Some(Kind::StringValue(text))),
    ]
    .prop_map(|kind| Value { kind });
    scalar.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|values| Value {
                kind: Some(Kind::ListValue(ListValue { values })),
            }),
            btree_map("[a-z]{1,4}", inner, 0..3).prop_map(|fields| Value {
                kind: Some(Kind::StructValue(Struct { fields })),
            }),
        ]
    })
}

fn custom_attributes() -> impl Strategy<Value = Option<Struct>> {
    proptest::option::of(
        btree_map(attribute_name(), proto_value(), 0..5).prop_map(|fields| Struct { fields }),
    )
}

fn mask_path() -> impl Strategy<Value = String> {
    let standard: Vec<String> = STANDARD_PROFILE_FIELDS
        .iter()
        .map(|(proto, _)| format!("profile.{proto}"))
        .collect();
    prop_oneof![
        4 => select(standard),
        1 => Just("profile.custom_attributes".to_owned()),
        2 => attribute_name().prop_map(|name| format!("profile.custom_attributes.{name}")),
        1 => caller_text(16),
    ]
}

proptest! {
    #[test]
    fn okta_ids_are_exactly_twenty_ascii_letters_or_digits_and_one_path_segment(
        raw in id_candidate(),
    ) {
        invariants::check_id(&raw);
    }

    #[test]
    fn compared_values_stay_one_escaped_string_literal(
        attribute in select(ATTRIBUTES.to_vec()),
        operators in select(OPERATORS.to_vec()),
        value in caller_text(64),
    ) {
        invariants::check_compare(attribute, operators, &value);
    }

    #[test]
    fn any_of_reads_back_as_exactly_its_comparisons(
        attribute in select(ATTRIBUTES.to_vec()),
        values in vec(caller_text(16), 0..6),
    ) {
        invariants::check_any_of(attribute, &values);
    }

    #[test]
    fn accepted_expressions_keep_their_meaning_when_normalized(raw in expression_candidate()) {
        invariants::check_expression(&raw);
    }

    #[test]
    fn event_filters_compare_each_caller_value_as_one_literal(filter in event_filter()) {
        invariants::check_event_filter(&filter);
    }

    #[test]
    fn arbitrary_page_tokens_and_resume_cursors_are_violations_not_positions(
        token in prop_oneof![caller_text(64), "[A-Za-z0-9_-]{0,200}"],
        parts in query_parts(),
    ) {
        let fingerprint = fingerprint_of(&parts);
        invariants::check_page_token(&token, &fingerprint);
        invariants::check_resume_cursor(&token, &fingerprint);
        let key = invariants::token_key();
        let decoded = page_token::decode_position(key, &token, &fingerprint);
        prop_assert!(token.is_empty() || decoded.is_err(), "{decoded:?}");
        prop_assert!(cursor::decode(key, &token, &fingerprint).is_err());
    }

    #[test]
    fn unsealed_tokens_with_a_valid_header_are_refused(
        parts in query_parts(),
        cursor in okta_cursor(),
    ) {
        // What a token was before tokens were sealed: anyone could rebuild it with any cursor.
        let fingerprint = fingerprint_of(&parts);
        let token = base64_url(format!("v2.{fingerprint}.-.{}", cursor.as_str()).as_bytes());
        invariants::check_page_token(&token, &fingerprint);
        let key = invariants::token_key();
        prop_assert!(page_token::decode_position(key, &token, &fingerprint).is_err());
        let value = base64_url(format!("w2.{fingerprint}.u-1.a{}", cursor.as_str()).as_bytes());
        prop_assert!(cursor::decode(key, &value, &fingerprint).is_err());
    }

    #[test]
    fn sealed_payloads_decode_only_when_the_gateway_could_have_issued_them(
        parts in query_parts(),
        rest in vec(prop_oneof![any::<u8>(), select(b"-.+0123456789a_~".to_vec())], 0..40),
    ) {
        invariants::check_sealed_payloads(&fingerprint_of(&parts), &rest);
    }

    #[test]
    fn page_tokens_round_trip_for_their_own_query_only_and_resist_edits(
        cursor in okta_cursor(),
        parts in query_parts(),
        other_parts in query_parts(),
        until_millis in proptest::option::of(-MAX_MILLIS..MAX_MILLIS),
        edit_at in any::<proptest::sample::Index>(),
        edit_to in select(b"AZaz09-_".to_vec()),
    ) {
        let key = invariants::token_key();
        let fingerprint = fingerprint_of(&parts);
        let token = page_token::encode_position(key, Some(&cursor), &fingerprint, until_millis);
        prop_assert_eq!(
            page_token::decode_position(key, &token, &fingerprint).unwrap(),
            Some(PagePosition { cursor, until_millis })
        );
        if other_parts != parts {
            let refused = page_token::decode_position(key, &token, &fingerprint_of(&other_parts));
            prop_assert!(refused.unwrap_err().description.contains("different query"));
        }
        invariants::check_page_token(&token, &fingerprint);
        invariants::check_edited_token_is_refused(
            &token,
            &fingerprint,
            edit_at.index(token.len()),
            char::from(edit_to),
        );
    }

    #[test]
    fn resume_cursors_round_trip_for_their_own_filter_only_and_resist_edits(
        after in proptest::option::of(okta_cursor()),
        since_millis in -MAX_MILLIS..MAX_MILLIS,
        uuid in proptest::option::of("[A-Za-z0-9-]{1,64}"),
        parts in query_parts(),
        other_parts in query_parts(),
        edit_at in any::<proptest::sample::Index>(),
        edit_to in select(b"AZaz09-_".to_vec()),
    ) {
        let key = invariants::token_key();
        let fingerprint = fingerprint_of(&parts);
        let position = after.map_or_else(
            || Position::Since(chrono::DateTime::from_timestamp_millis(since_millis).unwrap()),
            Position::After,
        );
        let point = ResumePoint { position, uuid };
        let value = cursor::encode(key, &fingerprint, &point);
        prop_assert_eq!(cursor::decode(key, &value, &fingerprint).unwrap(), point);
        if other_parts != parts {
            prop_assert!(cursor::decode(key, &value, &fingerprint_of(&other_parts)).is_err());
        }
        invariants::check_resume_cursor(&value, &fingerprint);
        invariants::check_edited_token_is_refused(
            &value,
            &fingerprint,
            edit_at.index(value.len()),
            char::from(edit_to),
        );
    }

    #[test]
    fn accepted_create_profiles_round_trip_through_okta_attributes(
        standard in standard_attributes(),
        custom in custom_attributes(),
    ) {
        invariants::check_profile_for_create(&invariants::profile_with(&standard, custom));
    }

    #[test]
    fn update_masks_send_exactly_the_attributes_they_name(
        standard in standard_attributes(),
        custom in custom_attributes(),
        paths in vec(mask_path(), 0..6),
    ) {
        invariants::check_profile_for_update(&standard, custom, &FieldMask { paths });
    }

    #[test]
    fn accepted_timestamps_are_valid_and_round_trip(
        seconds in prop_oneof![any::<i64>(), -62_135_596_800..253_402_300_800i64],
        nanos in prop_oneof![any::<i32>(), 0..1_000_000_000i32, 999_999_990..1_100_000_000i32],
    ) {
        invariants::check_timestamp(seconds, nanos);
    }
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
