//! Caller values that end up in Okta requests: ids, compared values, System Log filters and
//! timestamps. A broken invariant panics, which libFuzzer reports as a crash.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

use arbitrary::Arbitrary;
use invariants::{ATTRIBUTES, OPERATORS};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input {
    Id(String),
    Compare {
        attribute: u8,
        operator: u8,
        value: String,
    },
    AnyOf {
        attribute: u8,
        values: Vec<String>,
    },
    EventFilter {
        event_types: Vec<String>,
        /// Actor id, actor login, target id.
        texts: [String; 3],
        ip_address: String,
        outcome: i32,
        severity: i32,
    },
    Timestamp {
        seconds: i64,
        nanos: i32,
    },
}

fn attribute(index: u8) -> &'static str {
    ATTRIBUTES[usize::from(index) % ATTRIBUTES.len()]
}

fuzz_target!(|input: Input| match input {
    Input::Id(raw) => invariants::check_id(&raw),
    Input::Compare {
        attribute: attribute_index,
        operator,
        value,
    } => invariants::check_compare(
        attribute(attribute_index),
        OPERATORS[usize::from(operator) % OPERATORS.len()],
        &value,
    ),
    Input::AnyOf {
        attribute: attribute_index,
        values,
    } => invariants::check_any_of(attribute(attribute_index), &values),
    Input::EventFilter {
        event_types,
        texts,
        ip_address,
        outcome,
        severity,
    } => invariants::check_event_filter(&invariants::event_filter(
        event_types,
        texts,
        ip_address,
        outcome,
        severity,
    )),
    Input::Timestamp { seconds, nanos } => invariants::check_timestamp(seconds, nanos),
});
