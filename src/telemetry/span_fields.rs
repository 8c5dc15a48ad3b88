//! Span fields for the JSON log layer, written straight to JSON text.
//!
//! The layer formats a span's fields when the span starts, whether or not anything is ever
//! logged in it, and that happens on every RPC. `tracing-subscriber`'s `JsonFields` builds a
//! `serde_json` map of the fields and serializes it, and re-parses and rewrites the whole object
//! on every later `record`; this writes each field once, and appends later ones.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, FormattedFields};

/// Formats span fields as one JSON object, the form the JSON event format expects.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct JsonSpanFields;

/// Room for the `rpc` span's fields (two names and two ids), so writing them grows nothing.
const FIELDS_CAPACITY: usize = 160;

impl<'writer> FormatFields<'writer> for JsonSpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut text = String::with_capacity(FIELDS_CAPACITY);
        text.push('{');
        fields.record(&mut JsonMembers {
            text: &mut text,
            first: true,
        });
        text.push('}');
        writer.write_str(&text)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        // Reopen the object: drop its closing brace, append, close it again. A field recorded
        // twice appears twice; readers keep the last, as `serde_json` does.
        let text = &mut current.fields;
        let first = text.is_empty() || text == "{}";
        if first {
            text.clear();
            text.push('{');
        } else {
            text.pop();
        }
        fields.record(&mut JsonMembers { text, first });
        text.push('}');
        Ok(())
    }
}

/// Writes visited fields as `"name":value` members of a JSON object.
struct JsonMembers<'text> {
    text: &'text mut String,
    first: bool,
}

impl JsonMembers<'_> {
    /// Starts a member: the separator, its name and the colon; its value comes next.
    fn name(&mut self, field: &Field) -> &mut String {
        if !self.first {
            self.text.push(',');
        }
        self.first = false;
        write_json_string(self.text, field.name());
        self.text.push(':');
        self.text
    }

    /// A member whose value is written with `Display` (numbers and booleans); writing to a
    /// `String` cannot fail.
    fn display(&mut self, field: &Field, value: impl fmt::Display) {
        let _ = write!(self.name(field), "{value}");
    }
}

impl Visit for JsonMembers<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        write_json_string(self.name(field), value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.display(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.display(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.display(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: those become null, as `serde_json` writes them.
        if value.is_finite() {
            self.display(field, value);
        } else {
            self.name(field).push_str("null");
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        write_json_string(self.name(field), &format!("{value:?}"));
    }
}

/// `text` as a JSON string literal, quoted and escaped, at the end of `json`.
fn write_json_string(json: &mut String, text: &str) {
    json.push('"');
    let mut rest = text;
    // Everything up to the next character JSON escapes is copied as it is.
    while let Some(index) = rest
        .bytes()
        .position(|byte| byte == b'"' || byte == b'\\' || byte < b' ')
    {
        json.push_str(&rest[..index]);
        match rest.as_bytes()[index] {
            b'"' => json.push_str("\\\""),
            b'\\' => json.push_str("\\\\"),
            b'\n' => json.push_str("\\n"),
            b'\r' => json.push_str("\\r"),
            b'\t' => json.push_str("\\t"),
            control => {
                let _ = write!(json, "\\u{control:04x}");
            }
        }
        rest = &rest[index + 1..];
    }
    json.push_str(rest);
    json.push('"');
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Log output captured in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The `span` object of the one line logged by `log` under a JSON layer using
    /// [`JsonSpanFields`].
    fn logged_span(log: impl FnOnce()) -> Value {
        let captured = Captured::default();
        let writer = captured.clone();
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(JsonSpanFields)
            .with_writer(move || writer.clone());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), log);
        let output = captured
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let line: Value = serde_json::from_slice(&output).expect("one JSON line");
        line["span"].clone()
    }

    #[test]
    fn fields_of_every_kind_become_one_json_object() {
        let span = logged_span(|| {
            let span = tracing::info_span!(
                "rpc",
                text = "say \"hi\"\\\n\u{1}é",
                signed = -3i64,
                unsigned = 7u64,
                flag = true,
                ratio = 0.5f64,
                nothing = f64::NAN,
                shown = ?vec![1, 2],
                later = tracing::field::Empty,
            );
            let _entered = span.enter();
            tracing::info!("inside");
        });
        assert_eq!(
            span,
            json!({"name": "rpc", "text": "say \"hi\"\\\n\u{1}é", "signed": -3, "unsigned": 7,
                "flag": true, "ratio": 0.5, "nothing": null, "shown": "[1, 2]"})
        );
    }

    #[test]
    fn fields_recorded_later_are_added_and_the_last_value_wins() {
        let span = logged_span(|| {
            let span = tracing::info_span!("rpc", code = tracing::field::Empty, method = "Get");
            span.record("code", 5);
            span.record("code", 0);
            let _entered = span.enter();
            tracing::info!("inside");
        });
        assert_eq!(span, json!({"name": "rpc", "method": "Get", "code": 0}));
        let span = logged_span(|| {
            let span = tracing::info_span!("empty", code = tracing::field::Empty);
            span.record("code", 5);
            let _entered = span.enter();
            tracing::info!("inside");
        });
        assert_eq!(span, json!({"name": "empty", "code": 5}));
    }
}
