//! `OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs, comma-separated, values percent-encoded,
//! sent as gRPC metadata with every export (collector credentials, tenant ids).

use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};

/// The metadata `text` names. An error names the bad entry by its key only: values are often
/// credentials.
pub(crate) fn parse(text: &str) -> Result<MetadataMap, String> {
    let mut metadata = MetadataMap::new();
    for (index, entry) in text.split(',').map(str::trim).enumerate() {
        if entry.is_empty() {
            continue;
        }
        let Some((key, value)) = entry.split_once('=') else {
            return Err(format!("entry {} has no `=`", index + 1));
        };
        let key = key.trim();
        let parsed_key = key
            .parse::<AsciiMetadataKey>()
            .ok()
            .filter(|_| !key.ends_with("-bin"))
            .ok_or_else(|| format!("`{key}` is not a valid header name"))?;
        let decoded = percent_decode(value.trim())
            .ok_or_else(|| format!("the value of `{key}` is not valid percent-encoded UTF-8"))?;
        let parsed_value = decoded
            .parse::<AsciiMetadataValue>()
            .map_err(|_| format!("the value of `{key}` is not a valid header value"))?;
        metadata.append(parsed_key, parsed_value);
    }
    Ok(metadata)
}

/// `%XX` escapes decoded (`+` stays `+`, as in W3C baggage, which this format follows).
fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = tail.get(..2)?;
            let decoded = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            bytes.push(decoded);
            rest = tail.get(2..)?;
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_become_metadata_with_values_decoded() {
        let metadata = parse(" x-api-key = se%20cret%2Cpart ,tenant=a=b,,").unwrap();
        assert_eq!(metadata.get("x-api-key").unwrap(), "se cret,part");
        assert_eq!(metadata.get("tenant").unwrap(), "a=b");
        assert_eq!(metadata.len(), 2);
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn bad_entries_are_named_by_key_without_their_value() {
        for (text, expected) in [
            ("novalue", "entry 1 has no `=`"),
            ("a=1,bad key=s3cret", "`bad key` is not a valid header name"),
            ("k-bin=s3cret", "`k-bin` is not a valid header name"),
            (
                "k=s3cret%zz",
                "the value of `k` is not valid percent-encoded UTF-8",
            ),
            (
                "k=s3cret%0A",
                "the value of `k` is not a valid header value",
            ),
        ] {
            let error = parse(text).unwrap_err();
            assert_eq!(error, expected, "{text}");
            assert!(!error.contains("s3cret"));
        }
    }
}
