//! The list format of `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS`:
//! `key=value` entries, comma-separated, values percent-encoded as in W3C baggage (`+` stays
//! `+`). One parser for both, so the two settings read alike.

use percent_encoding::percent_decode_str;

/// The entries of `text`, values decoded; empty entries are skipped. An error names the bad
/// entry by its position or key, never by its value (header values are often credentials).
pub(crate) fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut entries = Vec::new();
    for (index, entry) in text.split(',').map(str::trim).enumerate() {
        if entry.is_empty() {
            continue;
        }
        let Some((key, value)) = entry.split_once('=') else {
            return Err(format!("entry {} has no `=`", index + 1));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("entry {} has no key", index + 1));
        }
        let value = percent_decode(value.trim())
            .ok_or_else(|| format!("the value of `{key}` is not valid percent-encoded UTF-8"))?;
        entries.push((key.to_owned(), value));
    }
    Ok(entries)
}

/// `%XX` escapes decoded; a malformed escape or invalid UTF-8 gives `None` (the decoder keeps a
/// malformed escape as it is, which would hide a typo in a credential).
fn percent_decode(text: &str) -> Option<String> {
    let well_formed = text.match_indices('%').all(|(at, _)| {
        text.get(at + 1..at + 3)
            .is_some_and(|hex| hex.bytes().all(|byte| byte.is_ascii_hexdigit()))
    });
    well_formed.then_some(())?;
    percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|text| text.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_trimmed_and_values_decoded_with_plus_kept() {
        assert_eq!(
            parse(" deployment.environment = prod ,team=a%2Cb+c,,k=x=y").unwrap(),
            [
                ("deployment.environment".to_owned(), "prod".to_owned()),
                ("team".to_owned(), "a,b+c".to_owned()),
                ("k".to_owned(), "x=y".to_owned()),
            ]
        );
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn bad_entries_are_named_without_their_value() {
        for (text, expected) in [
            ("novalue", "entry 1 has no `=`"),
            ("a=1, =s3cret", "entry 2 has no key"),
            (
                "k=s3cret%zz",
                "the value of `k` is not valid percent-encoded UTF-8",
            ),
            (
                "k=s3cret%ff",
                "the value of `k` is not valid percent-encoded UTF-8",
            ),
        ] {
            let error = parse(text).unwrap_err();
            assert_eq!(error, expected, "{text}");
            assert!(!error.contains("s3cret"));
        }
    }
}
