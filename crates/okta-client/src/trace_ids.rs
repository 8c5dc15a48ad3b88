//! Trace and span ids as text, written without the `fmt` machinery: they go into the
//! `traceparent` of every Okta request, and an application's log lines may carry them too,
//! where `{:032x}` formatting cost more than the rest of the span.

use opentelemetry::trace::{SpanContext, TraceFlags};

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// An id of up to 16 bytes as lowercase hex, on the stack.
pub struct HexId {
    text: [u8; 32],
    len: usize,
}

impl HexId {
    /// The hex text of `bytes` (a trace id's 16 or a span id's 8; longer input is cut to 16).
    pub fn of(bytes: &[u8]) -> Self {
        let mut text = [0u8; 32];
        let bytes = &bytes[..bytes.len().min(16)];
        for (pair, byte) in text.chunks_exact_mut(2).zip(bytes) {
            pair[0] = HEX_DIGITS[usize::from(byte >> 4)];
            pair[1] = HEX_DIGITS[usize::from(byte & 0x0f)];
        }
        Self {
            text,
            len: bytes.len() * 2,
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.text[..self.len]).unwrap_or_default()
    }
}

/// The W3C `traceparent` of a span, `00-<trace id>-<span id>-<flags>`: what
/// `TraceContextPropagator` (the propagator the gateway installs) writes, without its `format!`.
pub fn traceparent(span_context: &SpanContext) -> String {
    let flags = (span_context.trace_flags() & TraceFlags::SAMPLED).to_u8();
    let mut header = String::with_capacity(55);
    header.push_str("00-");
    header.push_str(HexId::of(&span_context.trace_id().to_bytes()).as_str());
    header.push('-');
    header.push_str(HexId::of(&span_context.span_id().to_bytes()).as_str());
    header.push('-');
    header.push_str(HexId::of(&[flags]).as_str());
    header
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::{SpanId, TraceContextExt, TraceId, TraceState};
    use opentelemetry_sdk::propagation::TraceContextPropagator;

    use super::*;

    #[test]
    fn ids_are_lowercase_hex_of_every_byte() {
        assert_eq!(HexId::of(&[0x00, 0x0a, 0xf0, 0xff]).as_str(), "000af0ff");
        let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(
            HexId::of(&trace_id.to_bytes()).as_str(),
            trace_id.to_string()
        );
        assert_eq!(HexId::of(&[]).as_str(), "");
    }

    #[test]
    fn the_traceparent_is_the_one_the_w3c_propagator_writes() {
        for flags in [TraceFlags::SAMPLED, TraceFlags::NOT_SAMPLED] {
            let span_context = SpanContext::new(
                TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
                SpanId::from_hex("00f067aa0ba902b7").unwrap(),
                flags,
                false,
                TraceState::default(),
            );
            let mut headers = HashMap::new();
            TraceContextPropagator::new().inject_context(
                &opentelemetry::Context::new().with_remote_span_context(span_context.clone()),
                &mut headers,
            );
            assert_eq!(traceparent(&span_context), headers["traceparent"]);
        }
    }
}
