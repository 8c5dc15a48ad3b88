//! WatchEvents resume cursors. Okta's System Log cursor (`after`) marks a page boundary, not an
//! event, so an event's cursor names the page request that returned the event plus the event's
//! uuid: resuming re-reads that page and skips through the uuid. A keep-alive's cursor names a
//! page boundary the watcher has been offered everything before, with no uuid: resuming reads
//! from that boundary and skips nothing. Everything needed is inside the
//! cursor, so it survives gateway restarts (given a `grpc.token_key_file`); a fingerprint binds
//! it to its filter, and the gateway's [`TokenKey`] seals it, so a cursor a caller made up or
//! edited is refused before Okta sees it.

use chrono::{DateTime, Utc};
use tonic_types::FieldViolation;

use crate::api::page_token::parse_instant;
use crate::api::token_key::TokenKey;
use okta_client::Cursor;

const CURSOR_VERSION: &str = "w2";
/// Longest cursor accepted before decoding.
const MAX_CURSOR_LENGTH: usize = 1024;
/// Longest event uuid accepted (Okta's are 36 characters).
const MAX_UUID_LENGTH: usize = 64;

/// Where a page of a polling query starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Position {
    /// Okta's `after` cursor from a `next` link.
    After(Cursor),
    /// A `since` time (the start of a watch).
    Since(DateTime<Utc>),
}

impl Position {
    /// The position as text (`a` and Okta's cursor, or `s` and epoch milliseconds), as resume
    /// cursors and the pages replicas share carry it.
    pub fn to_text(&self) -> String {
        match self {
            Self::After(cursor) => format!("a{}", cursor.as_str()),
            Self::Since(time) => format!("s{}", time.timestamp_millis()),
        }
    }

    /// Reads [`Position::to_text`]'s text back; `None` for anything else.
    pub fn from_text(text: &str) -> Option<Self> {
        if let Some(cursor) = text.strip_prefix('a') {
            Cursor::parse(cursor).ok().map(Self::After)
        } else if let Some(millis) = text.strip_prefix('s') {
            parse_instant(millis).map(Self::Since)
        } else {
            None
        }
    }
}

/// A decoded resume cursor: re-read the page at `position`, skip through `uuid` when set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumePoint {
    /// The page request that returned the last delivered event, or (without `uuid`) a page
    /// boundary everything before which was offered.
    pub position: Position,
    /// The last delivered event; `None` when every event from `position` on is still to come.
    pub uuid: Option<String>,
}

/// Encodes the resume cursor of an event or a keep-alive (an empty uuid field means none).
pub fn encode(key: &TokenKey, filter_fingerprint: &str, point: &ResumePoint) -> String {
    let position = point.position.to_text();
    let uuid = point.uuid.as_deref().unwrap_or_default();
    key.seal(&format!(
        "{CURSOR_VERSION}.{filter_fingerprint}.{uuid}.{position}"
    ))
}

/// Decodes a caller's resume cursor for the filter `filter_fingerprint`.
pub fn decode(
    key: &TokenKey,
    value: &str,
    filter_fingerprint: &str,
) -> Result<ResumePoint, FieldViolation> {
    let malformed = || {
        FieldViolation::new(
            "resume_cursor",
            "not a cursor this gateway issued, or changed since; pass the `resume_cursor` of a \
             received message unchanged",
        )
    };
    if value.len() > MAX_CURSOR_LENGTH {
        return Err(malformed());
    }
    let text = key.open(value).ok_or_else(malformed)?;
    let mut parts = text.splitn(4, '.');
    let (Some(CURSOR_VERSION), Some(fingerprint), Some(uuid), Some(position)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    if fingerprint != filter_fingerprint {
        return Err(FieldViolation::new(
            "resume_cursor",
            "this cursor belongs to a watch with a different filter",
        ));
    }
    let uuid_ok = uuid.len() <= MAX_UUID_LENGTH
        && uuid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !uuid_ok {
        return Err(malformed());
    }
    let position = Position::from_text(position).ok_or_else(malformed)?;
    Ok(ResumePoint {
        position,
        uuid: (!uuid.is_empty()).then(|| uuid.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    #[test]
    fn cursors_round_trip_and_stay_bound_to_their_filter() {
        let key = TokenKey::random();
        let uuid = Some("f0e1d2c3-0000-4000-8000-000000000001".to_owned());
        for position in [
            Position::After(Cursor::parse("1732300000123_17").unwrap()),
            Position::Since(DateTime::from_timestamp_millis(1_732_300_000_123).unwrap()),
        ] {
            for uuid in [uuid.clone(), None] {
                let point = ResumePoint {
                    position: position.clone(),
                    uuid,
                };
                let cursor = encode(&key, "abc123", &point);
                assert_eq!(decode(&key, &cursor, "abc123").unwrap(), point);
                assert!(
                    decode(&key, &cursor, "other")
                        .unwrap_err()
                        .description
                        .contains("different filter")
                );
                assert!(decode(&TokenKey::random(), &cursor, "abc123").is_err());
            }
        }
    }

    #[test]
    fn tampered_cursors_are_refused() {
        let key = TokenKey::random();
        for value in [
            "",
            "%%",
            &URL_SAFE_NO_PAD.encode("w2.abc123.u-1.a1732300000123_17"),
            &key.seal("w2.abc123.bad uuid.s1"),
            &key.seal("w2.abc123.u-1.a../x"),
            &key.seal("w2.abc123.u-1.s-0"),
            &key.seal("w2.abc123.u-1.s+1"),
            &key.seal("w2.abc123.u-1.s9223372036854775807"),
        ] {
            let refused = decode(&key, value, "abc123").unwrap_err();
            assert_eq!(refused.field, "resume_cursor", "{value}");
        }
    }
}
