//! Page tokens and WatchEvents resume cursors handed back by callers: only what the gateway
//! issued (sealed with its key) decodes, bound to its own query; anything else is a field
//! violation, never a panic.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input {
    PageToken {
        token: String,
        parts: Vec<String>,
    },
    ResumeCursor {
        value: String,
        parts: Vec<String>,
    },
    /// A valid version and fingerprint, then anything, sealed with the gateway's key: reaches
    /// the checks behind the seal.
    AfterHeader {
        parts: Vec<String>,
        rest: Vec<u8>,
    },
}

fuzz_target!(|input: Input| match input {
    Input::PageToken { token, parts } => {
        invariants::check_page_token(&token, &invariants::fingerprint_of(&parts));
    }
    Input::ResumeCursor { value, parts } => {
        invariants::check_resume_cursor(&value, &invariants::fingerprint_of(&parts));
    }
    Input::AfterHeader { parts, rest } => {
        invariants::check_sealed_payloads(&invariants::fingerprint_of(&parts), &rest);
    }
});
