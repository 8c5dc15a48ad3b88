//! Span fields for the JSON log layer, written straight to JSON text.
//!
//! The layer formats a span's fields when the span starts, whether or not anything is ever
//! logged in it, and that happens on every RPC. `tracing-subscriber`'s `JsonFields` builds a
//! `serde_json` map of the fields and serializes it, and re-parses and rewrites the whole object
//! on every later `record`; this writes each field once, and appends later ones.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, FormattedFields};

/// Formats span fields as one JSON object, the form the JSON event format expects.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct JsonSpanFields;

impl<'writer> FormatFields<'writer> for JsonSpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut members = JsonMembers {
            writer: writer.by_ref(),
            first: true,
            result: Ok(()),
        };
        members.result = members.writer.write_char('{');
        fields.record(&mut members);
        members.result?;
        writer.write_char('}')
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        // Reopen the object: drop its closing brace, append, close it again. A field recorded
        // twice appears twice; readers keep the last, as `serde_json` does.
        let first = current.fields.is_empty() || current.fields == "{}";
        if first {
            current.fields.clear();
            current.fields.push('{');
        } else {
            current.fields.pop();
        }
        let mut members = JsonMembers {
            writer: current.as_writer(),
            first,
            result: Ok(()),
        };
        fields.record(&mut members);
        members.result?;
        current.fields.push('}');
        Ok(())
    }
}

/// Writes visited fields as `"name":value` members of a JSON object.
struct JsonMembers<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl JsonMembers<'_> {
    /// Writes a member: its name, then its value with `value`. After an error, writes nothing.
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.write_member(field, value);
        }
    }

    fn write_member(
        &mut self,
        field: &Field,
        value: impl FnOnce(&mut Writer<'_>) -> fmt::Result,
    ) -> fmt::Result {
        if !self.first {
            self.writer.write_char(',')?;
        }
        self.first = false;
        write_json_string(&mut self.writer, field.name())?;
        self.writer.write_char(':')?;
        value(&mut self.writer)
    }
}

impl Visit for JsonMembers<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |writer| write_json_string(writer, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |writer| write!(writer, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |writer| write!(writer, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |writer| write!(writer, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: those become null, as `serde_json` writes them.
        if value.is_finite() {
            self.member(field, |writer| write!(writer, "{value}"));
        } else {
            self.member(field, |writer| writer.write_str("null"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |writer| {
            write_json_string(writer, &format!("{value:?}"))
        });
    }
}

/// `text` as a JSON string literal, quoted and escaped.
fn write_json_string(writer: &mut impl fmt::Write, text: &str) -> fmt::Result {
    writer.write_char('"')?;
    let mut unescaped_from = 0;
    for (index, character) in text.char_indices() {
        let escape = match character {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            control if control < ' ' => "",
            _ => continue,
        };
        writer.write_str(&text[unescaped_from..index])?;
        if escape.is_empty() {
            write!(writer, "\\u{:04x}", u32::from(character))?;
        } else {
            writer.write_str(escape)?;
        }
        unescaped_from = index + character.len_utf8();
    }
    writer.write_str(&text[unescaped_from..])?;
    writer.write_char('"')
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
