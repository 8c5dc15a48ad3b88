//! Caller-written Okta expressions (`search`, `okta_filter`) as raw text: the gateway's
//! validation never panics, and what it accepts means the same to the simulator's independent
//! parser before and after normalizing.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = std::str::from_utf8(data) {
        invariants::check_expression(raw);
    }
});
