//! `OTEL_EXPORTER_OTLP_HEADERS` (a [`crate::telemetry::key_values`] list) as the gRPC metadata
//! sent with every export (collector credentials, tenant ids).

use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};

/// The metadata `text` names. An error names the bad entry by its key only: values are often
/// credentials.
pub(crate) fn parse(text: &str) -> Result<MetadataMap, String> {
    let mut metadata = MetadataMap::new();
    for (key, value) in crate::telemetry::key_values::parse(text)? {
        let parsed_key = key
            .parse::<AsciiMetadataKey>()
            .ok()
            .filter(|_| !key.ends_with("-bin"))
            .ok_or_else(|| format!("`{key}` is not a valid header name"))?;
        let parsed_value = value
            .parse::<AsciiMetadataValue>()
            .map_err(|_| format!("the value of `{key}` is not a valid header value"))?;
        metadata.append(parsed_key, parsed_value);
    }
    Ok(metadata)
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
