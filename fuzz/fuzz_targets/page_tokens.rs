//! Page tokens and WatchEvents resume cursors handed back by callers: only what the gateway
//! issued decodes, bound to its own query; anything else is a field violation, never a panic.
#![no_main]

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

use arbitrary::Arbitrary;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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
    /// Well-formed base64 with a valid version and fingerprint, then anything: reaches the
    /// checks after decoding.
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
        let fingerprint = invariants::fingerprint_of(&parts);
        for (version, check) in [
            ("v1", invariants::check_page_token as fn(&str, &str)),
            ("w1", invariants::check_resume_cursor),
        ] {
            let mut text = format!("{version}.{fingerprint}.").into_bytes();
            text.extend_from_slice(&rest);
            check(&URL_SAFE_NO_PAD.encode(&text), &fingerprint);
        }
    }
});
