//! Opaque page tokens: Okta's cursor plus a fingerprint of the query it belongs to, so a token
//! reused with a different query (or group) is refused instead of silently mixing results. A
//! token can also carry the end of a time window the gateway chose on the first page (System Log
//! queries default to "until now"), so later pages read the same window. Tokens are sealed with
//! the gateway's [`TokenKey`]: one a caller made up or edited is refused before Okta sees its
//! cursor.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tonic_types::FieldViolation;

use super::token_key::TokenKey;
use okta_client::Cursor;

/// Version tag inside every token, so the format can change without misreading old tokens.
const TOKEN_VERSION: &str = "v2";
/// Longest token accepted before decoding.
const MAX_TOKEN_LENGTH: usize = 1024;

/// Describes a query for binding: every part that selects *which* items are listed
/// (not the page size, which a caller may change between pages).
pub fn query_fingerprint(parts: &[&str]) -> String {
    fingerprint(parts.iter().map(|part| part.as_bytes()))
}

/// A short digest (96 bits, hex) of `parts`, each prefixed with its length so that where one
/// ends and the next begins counts: for telling queries, lists or callers apart without
/// keeping what they are made of.
pub fn fingerprint<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    digest[..12]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Where a later page starts, as decoded from a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PagePosition {
    /// Okta's cursor.
    pub cursor: Cursor,
    /// The window end chosen on the first page, in Unix milliseconds, if any.
    pub until_millis: Option<i64>,
}

/// Encodes the next page's cursor for the caller; empty when there is no next page.
pub fn encode(key: &TokenKey, next: Option<&Cursor>, fingerprint: &str) -> String {
    encode_position(key, next, fingerprint, None)
}

/// Like [`encode`], also remembering the window end chosen on the first page.
pub fn encode_position(
    key: &TokenKey,
    next: Option<&Cursor>,
    fingerprint: &str,
    until_millis: Option<i64>,
) -> String {
    next.map(|cursor| {
        let until = until_millis.map_or_else(|| "-".to_owned(), |millis| millis.to_string());
        key.seal(&format!(
            "{TOKEN_VERSION}.{fingerprint}.{until}.{}",
            cursor.as_str()
        ))
    })
    .unwrap_or_default()
}

/// Decodes a caller's page token for the query `fingerprint` (`Ok(None)` for the first page),
/// with the window end it remembers.
pub fn decode_position(
    key: &TokenKey,
    token: &str,
    fingerprint: &str,
) -> Result<Option<PagePosition>, FieldViolation> {
    if token.is_empty() {
        return Ok(None);
    }
    let malformed = || {
        FieldViolation::new(
            "page_token",
            "not a page token this gateway issued, or changed since; pass the `next_page_token` \
             of a previous response unchanged",
        )
    };
    if token.len() > MAX_TOKEN_LENGTH {
        return Err(malformed());
    }
    let text = key.open(token).ok_or_else(malformed)?;
    let mut parts = text.splitn(4, '.');
    let (Some(TOKEN_VERSION), Some(token_fingerprint), Some(until), Some(cursor)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    if token_fingerprint != fingerprint {
        return Err(FieldViolation::new(
            "page_token",
            "this page token belongs to a different query; repeat the query it came from or start without a token",
        ));
    }
    let until_millis = match until {
        "-" => None,
        millis => Some(
            parse_instant(millis)
                .ok_or_else(malformed)?
                .timestamp_millis(),
        ),
    };
    let cursor = Cursor::parse(cursor).map_err(|_| malformed())?;
    Ok(Some(PagePosition {
        cursor,
        until_millis,
    }))
}

/// An instant written as Unix milliseconds the way the gateway writes them into tokens and
/// cursors: canonical decimal, within chrono's range. Any other spelling (`+5`, `007`, `-0`)
/// was not issued by the gateway, so only tokens it issued decode.
pub(crate) fn parse_instant(millis: &str) -> Option<DateTime<Utc>> {
    let value: i64 = millis.parse().ok()?;
    if value.to_string() != millis {
        return None;
    }
    DateTime::from_timestamp_millis(value)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    #[test]
    fn a_token_round_trips_for_its_own_query_only() {
        let key = TokenKey::random();
        let cursor = Cursor::parse("000usfdsyqnIjEmHNm4x6").unwrap();
        let users = query_fingerprint(&["users", "search", "status eq \"ACTIVE\""]);
        let other = query_fingerprint(&["users", "search", "status eq \"STAGED\""]);
        let token = encode(&key, Some(&cursor), &users);
        assert_eq!(
            decode_position(&key, &token, &users)
                .unwrap()
                .map(|p| p.cursor),
            Some(cursor)
        );
        assert!(
            decode_position(&key, &token, &other)
                .unwrap_err()
                .description
                .contains("different query")
        );
    }

    #[test]
    fn fingerprints_do_not_collide_by_concatenation() {
        assert_ne!(
            query_fingerprint(&["ab", "c"]),
            query_fingerprint(&["a", "bc"])
        );
    }

    #[test]
    fn malformed_forged_and_foreign_tokens_are_refused() {
        let key = TokenKey::random();
        let fingerprint = query_fingerprint(&["groups"]);
        let cursor = Cursor::parse("1732300000123_17").unwrap();
        // What a token was before it was sealed: rebuilt by a caller with any cursor.
        let unsealed = URL_SAFE_NO_PAD.encode(format!("v2.{fingerprint}.-.{}", cursor.as_str()));
        let foreign = encode(&TokenKey::random(), Some(&cursor), &fingerprint);
        for token in [
            "%%%",
            "bm90IGEgdG9rZW4",
            &unsealed,
            &foreign,
            &"A".repeat(5000),
        ] {
            let refused = decode_position(&key, token, &fingerprint).unwrap_err();
            assert_eq!(refused.field, "page_token", "{token}");
        }
        assert_eq!(encode(&key, None, &fingerprint), "");
        let token = encode_position(&key, Some(&cursor), &fingerprint, Some(1_732_300_000_000));
        let position = decode_position(&key, &token, &fingerprint)
            .unwrap()
            .unwrap();
        assert_eq!(
            position,
            PagePosition {
                cursor,
                until_millis: Some(1_732_300_000_000)
            }
        );
        assert_eq!(decode_position(&key, "", &fingerprint).unwrap(), None);
    }

    #[test]
    fn only_the_canonical_spelling_of_a_valid_window_end_decodes() {
        let key = TokenKey::random();
        let fingerprint = query_fingerprint(&[]);
        let token = |until: &str| key.seal(&format!("v2.{fingerprint}.{until}.-"));
        assert!(decode_position(&key, &token("0"), &fingerprint).is_ok());
        // Found by fuzzing: `-0` decoded as 0, a token the gateway never issues.
        for until in ["-0", "+5", "007", "", "9223372036854775807"] {
            assert!(
                decode_position(&key, &token(until), &fingerprint).is_err(),
                "{until}"
            );
        }
        assert_eq!(
            parse_instant("-1").map(|time| time.timestamp_millis()),
            Some(-1)
        );
    }
}
