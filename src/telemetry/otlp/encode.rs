//! The OTLP protobuf encoding of finished spans, written straight from the SDK's [`SpanData`]
//! into the bytes of an `ExportTraceServiceRequest`
//! (`opentelemetry/proto/collector/trace/v1/trace_service.proto`).
//!
//! The OTLP exporter crate first converts every span into generated protobuf structs (a new
//! `String` for every attribute key and value) and then encodes those; measured, that was about
//! 40% of what exporting every span cost per RPC. Writing the wire format from the spans skips
//! the copies. The tests decode the bytes with the generated OTLP types and compare them with
//! the OTLP crates' own conversion, for spans of every shape.

use opentelemetry::trace::{SpanContext, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, Key, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use std::time::{SystemTime, UNIX_EPOCH};

/// Protobuf wire types.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// `SpanFlags` bits: the span's parent is known to be local or remote, and it is remote.
const CONTEXT_HAS_IS_REMOTE: u32 = 0x100;
const CONTEXT_IS_REMOTE: u32 = 0x200;

/// The `ExportTraceServiceRequest` holding `spans`, which share `resource`: one
/// `ResourceSpans`, with a `ScopeSpans` per instrumentation scope in order of first appearance.
pub(crate) fn trace_request(resource: &Resource, spans: &[SpanData]) -> Vec<u8> {
    let mut scopes: Vec<(&InstrumentationScope, Vec<u8>)> = Vec::new();
    for span in spans {
        let position = scopes
            .iter()
            .position(|(scope, _)| *scope == &span.instrumentation_scope)
            .unwrap_or_else(|| {
                scopes.push((&span.instrumentation_scope, Vec::new()));
                scopes.len() - 1
            });
        if let Some((_, encoded)) = scopes.get_mut(position) {
            encoded.message(2, &SpanMessage(span));
        }
    }
    let size: usize = scopes.iter().map(|(_, encoded)| encoded.len()).sum();
    let mut request = Vec::with_capacity(size + 1024);
    request.message(1, &ResourceSpansMessage { resource, scopes });
    request
}

/// Protobuf encoding into a byte buffer.
trait Writer {
    fn varint(&mut self, value: u64);
    fn raw(&mut self, bytes: &[u8]);

    fn key(&mut self, field: u32, wire_type: u32) {
        self.varint(u64::from(field << 3 | wire_type));
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, LEN);
        self.varint(bytes.len() as u64);
        self.raw(bytes);
    }

    /// A proto3 string field: left out when empty, as the reader's default.
    fn text(&mut self, field: u32, text: &str) {
        if !text.is_empty() {
            self.bytes(field, text.as_bytes());
        }
    }

    /// A proto3 integer field: left out when zero.
    fn unsigned(&mut self, field: u32, value: u64) {
        if value != 0 {
            self.key(field, VARINT);
            self.varint(value);
        }
    }

    fn fixed64(&mut self, field: u32, value: u64) {
        if value != 0 {
            self.key(field, FIXED64);
            self.raw(&value.to_le_bytes());
        }
    }

    fn fixed32(&mut self, field: u32, value: u32) {
        if value != 0 {
            self.key(field, FIXED32);
            self.raw(&value.to_le_bytes());
        }
    }

    /// A message field, written even when empty (message fields have presence).
    fn message<M: Message>(&mut self, field: u32, message: &M);
}

/// The bytes `value` takes as a varint: 7 bits a byte, and zero takes one.
fn varint_width(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

impl Writer for Vec<u8> {
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.push((value & 0x7f) as u8 | 0x80);
            value >>= 7;
        }
        self.push(value as u8);
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    /// Writes the message after a one-byte length and widens the length afterwards if the
    /// message took 128 bytes or more: one pass over the message, however deeply nested,
    /// where computing every length first would visit the innermost fields once per level.
    fn message<M: Message>(&mut self, field: u32, message: &M) {
        self.key(field, LEN);
        let length_at = self.len();
        self.push(0);
        message.write(self);
        let end = self.len();
        let mut length = (end - length_at - 1) as u64;
        let width = varint_width(length);
        if width > 1 {
            self.resize(end + width - 1, 0);
            self.copy_within(length_at + 1..end, length_at + width);
        }
        for byte in &mut self[length_at..length_at + width] {
            *byte = (length & 0x7f) as u8 | 0x80;
            length >>= 7;
        }
        self[length_at + width - 1] &= 0x7f;
    }
}

/// A protobuf message, written field by field.
trait Message {
    fn write(&self, buffer: &mut Vec<u8>);
}

fn nanos_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    })
}

struct ResourceSpansMessage<'spans> {
    resource: &'spans Resource,
    scopes: Vec<(&'spans InstrumentationScope, Vec<u8>)>,
}

impl Message for ResourceSpansMessage<'_> {
    fn write(&self, sink: &mut Vec<u8>) {
        sink.message(1, &ResourceMessage(self.resource));
        for (scope, spans) in &self.scopes {
            sink.message(2, &ScopeSpansMessage { scope, spans });
        }
        sink.text(3, self.resource.schema_url().unwrap_or_default());
    }
}

struct ResourceMessage<'resource>(&'resource Resource);

impl Message for ResourceMessage<'_> {
    fn write(&self, sink: &mut Vec<u8>) {
        for (key, value) in self.0.iter() {
            sink.message(1, &Attribute { key, value });
        }
    }
}

struct ScopeSpansMessage<'spans> {
    scope: &'spans InstrumentationScope,
    /// The `spans` fields, already encoded.
    spans: &'spans [u8],
}

impl Message for ScopeSpansMessage<'_> {
    fn write(&self, sink: &mut Vec<u8>) {
        sink.message(1, &ScopeMessage(self.scope));
        sink.raw(self.spans);
        sink.text(3, self.scope.schema_url().unwrap_or_default());
    }
}

struct ScopeMessage<'scope>(&'scope InstrumentationScope);

impl Message for ScopeMessage<'_> {
    fn write(&self, sink: &mut Vec<u8>) {
        sink.text(1, self.0.name());
        sink.text(2, self.0.version().unwrap_or_default());
        for attribute in self.0.attributes() {
            sink.message(3, &Attribute::of(attribute));
        }
    }
}

struct SpanMessage<'span>(&'span SpanData);

impl Message for SpanMessage<'_> {
    fn write(&self, sink: &mut Vec<u8>) {
        let span = self.0;
        let context = &span.span_context;
        write_ids(sink, context);
        if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
            sink.bytes(4, &span.parent_span_id.to_bytes());
        }
        sink.text(5, &span.name);
        sink.unsigned(6, span_kind(&span.span_kind));
        sink.fixed64(7, nanos_since_epoch(span.start_time));
        sink.fixed64(8, nanos_since_epoch(span.end_time));
        for attribute in &span.attributes {
            sink.message(9, &Attribute::of(attribute));
        }
        sink.unsigned(10, u64::from(span.dropped_attributes_count));
        write_events(sink, &span.events);
        write_links(sink, &span.links);
        sink.message(15, &StatusMessage(&span.status));
        sink.fixed32(16, flags(context, span.parent_span_is_remote));
    }
}

/// The trace id, span id and trace state: fields 1 to 3 of both a `Span` and a `Link`.
fn write_ids(sink: &mut Vec<u8>, context: &SpanContext) {
    sink.bytes(1, &context.trace_id().to_bytes());
    sink.bytes(2, &context.span_id().to_bytes());
    sink.text(3, &context.trace_state().header());
}

/// `SpanFlags`: the W3C trace flags, and whether the parent (of a span) or the linked span
/// is remote.
fn flags(context: &SpanContext, remote: bool) -> u32 {
    let remote = if remote { CONTEXT_IS_REMOTE } else { 0 };
    u32::from(context.trace_flags().to_u8()) | CONTEXT_HAS_IS_REMOTE | remote
}

/// `Span.Event`s (field 11) and the count of dropped ones (12).
fn write_events(sink: &mut Vec<u8>, events: &SpanEvents) {
    for event in events.iter() {
        sink.message(11, &EventMessage(event));
    }
    sink.unsigned(12, u64::from(events.dropped_count));
}

/// `Span.Link`s (field 13) and the count of dropped ones (14).
fn write_links(sink: &mut Vec<u8>, links: &SpanLinks) {
    for link in links.iter() {
        sink.message(13, &LinkMessage(link));
    }
    sink.unsigned(14, u64::from(links.dropped_count));
}

/// OTLP's `Span.SpanKind` numbers.
fn span_kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

struct EventMessage<'event>(&'event opentelemetry::trace::Event);

impl Message for EventMessage<'_> {
    fn write(&self, sink: &mut Vec<u8>) {
        let event = self.0;
        sink.fixed64(1, nanos_since_epoch(event.timestamp));
        sink.text(2, &event.name);
        for attribute in &event.attributes {
            sink.message(3, &Attribute::of(attribute));
        }
        sink.unsigned(4, u64::from(event.dropped_attributes_count));
    }
}

struct LinkMessage<'link>(&'link opentelemetry::trace::Link);

impl Message for LinkMessage<'_> {
    fn write(&self, sink: &mut Vec<u8>) {
        let link = self.0;
        let context = &link.span_context;
        write_ids(sink, context);
        for attribute in &link.attributes {
            sink.message(4, &Attribute::of(attribute));
        }
        sink.unsigned(5, u64::from(link.dropped_attributes_count));
        sink.fixed32(6, flags(context, context.is_remote()));
    }
}

struct StatusMessage<'status>(&'status Status);

impl Message for StatusMessage<'_> {
    fn write(&self, sink: &mut Vec<u8>) {
        match self.0 {
            Status::Unset => {}
            Status::Ok => sink.unsigned(3, 1),
            Status::Error { description } => {
                sink.text(2, description);
                sink.unsigned(3, 2);
            }
        }
    }
}

/// A `KeyValue`.
struct Attribute<'attribute> {
    key: &'attribute Key,
    value: &'attribute Value,
}

impl<'attribute> Attribute<'attribute> {
    fn of(attribute: &'attribute KeyValue) -> Self {
        Self {
            key: &attribute.key,
            value: &attribute.value,
        }
    }
}

impl Message for Attribute<'_> {
    fn write(&self, sink: &mut Vec<u8>) {
        sink.text(1, self.key.as_str());
        sink.message(2, &AnyValue(self.value));
    }
}

/// An `AnyValue`.
struct AnyValue<'value>(&'value Value);

impl Message for AnyValue<'_> {
    fn write(&self, sink: &mut Vec<u8>) {
        match self.0 {
            Value::Bool(value) => Scalar::Bool(*value).write(sink),
            Value::I64(value) => Scalar::Int(*value).write(sink),
            Value::F64(value) => Scalar::Double(*value).write(sink),
            Value::String(value) => Scalar::Text(value.as_str()).write(sink),
            Value::Array(array) => sink.message(5, &ArrayValue(array)),
            // A kind of value newer than this encoder: its text.
            other => Scalar::Text(&other.as_str()).write(sink),
        }
    }
}

/// An `AnyValue` holding one scalar. Its `value` is a oneof, so the field is written even when
/// it holds the default (`false`, `0`, `""`).
enum Scalar<'text> {
    Bool(bool),
    Int(i64),
    Double(f64),
    Text(&'text str),
}

impl Message for Scalar<'_> {
    fn write(&self, sink: &mut Vec<u8>) {
        match self {
            Self::Text(text) => sink.bytes(1, text.as_bytes()),
            Self::Bool(value) => {
                sink.key(2, VARINT);
                sink.varint(u64::from(*value));
            }
            Self::Int(value) => {
                sink.key(3, VARINT);
                // int64: two's complement, so a negative number takes ten bytes.
                sink.varint(u64::from_ne_bytes(value.to_ne_bytes()));
            }
            Self::Double(value) => {
                sink.key(4, FIXED64);
                sink.raw(&value.to_le_bytes());
            }
        }
    }
}

/// An `ArrayValue`: its elements (field 1), each an `AnyValue`. An array of a kind newer than
/// this encoder is written empty.
struct ArrayValue<'array>(&'array Array);

impl Message for ArrayValue<'_> {
    fn write(&self, sink: &mut Vec<u8>) {
        match self.0 {
            Array::Bool(values) => {
                for value in values {
                    sink.message(1, &Scalar::Bool(*value));
                }
            }
            Array::I64(values) => {
                for value in values {
                    sink.message(1, &Scalar::Int(*value));
                }
            }
            Array::F64(values) => {
                for value in values {
                    sink.message(1, &Scalar::Double(*value));
                }
            }
            Array::String(values) => {
                for value in values {
                    sink.message(1, &Scalar::Text(value.as_str()));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use opentelemetry::StringValue;
    use opentelemetry::trace::{Event, Link, SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use proptest::prelude::*;
    use prost::Message as _;

    use super::*;

    /// What the OTLP crates send for `spans`: their conversion, then prost's encoding.
    fn official(resource: &Resource, spans: Vec<SpanData>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans,
                &ResourceAttributesWithSchema::from(resource),
            ),
        }
    }

    /// What a collector reads from this module's bytes.
    fn decoded(resource: &Resource, spans: &[SpanData]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest::decode(trace_request(resource, spans).as_slice()).unwrap()
    }

    fn finite() -> impl Strategy<Value = f64> {
        any::<f64>().prop_filter("NaN never equals itself", |value| !value.is_nan())
    }

    fn value() -> impl Strategy<Value = Value> {
        let text = || ".{0,12}";
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::I64),
            finite().prop_map(Value::F64),
            text().prop_map(Value::from),
            prop::collection::vec(any::<bool>(), 0..3).prop_map(|v| Value::Array(Array::Bool(v))),
            prop::collection::vec(any::<i64>(), 0..3).prop_map(|v| Value::Array(Array::I64(v))),
            prop::collection::vec(finite(), 0..3).prop_map(|v| Value::Array(Array::F64(v))),
            prop::collection::vec(text(), 0..3).prop_map(|v| {
                Value::Array(Array::String(
                    v.into_iter().map(StringValue::from).collect(),
                ))
            }),
        ]
    }

    fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
        prop::collection::vec(
            ("[a-z.]{0,10}", value()).prop_map(|(key, value)| KeyValue::new(key, value)),
            0..5,
        )
    }

    /// Times after 1970 and, now and then, before it (sent as 0).
    fn time() -> impl Strategy<Value = SystemTime> {
        prop_oneof![
            9 => (0u64..4_000_000_000, 0u32..1_000_000_000)
                .prop_map(|(seconds, nanos)| UNIX_EPOCH + Duration::new(seconds, nanos)),
            1 => (1u64..1_000).prop_map(|seconds| UNIX_EPOCH - Duration::from_secs(seconds)),
        ]
    }

    fn trace_state() -> impl Strategy<Value = TraceState> {
        prop_oneof![
            Just(TraceState::NONE),
            ("[a-z]{1,5}", "[a-z0-9]{1,5}")
                .prop_map(|(key, value)| { TraceState::from_key_value([(key, value)]).unwrap() }),
        ]
    }

    fn span_context() -> impl Strategy<Value = SpanContext> {
        (1u128.., 1u64.., any::<u8>(), any::<bool>(), trace_state()).prop_map(
            |(trace_id, span_id, flags, remote, state)| {
                SpanContext::new(
                    TraceId::from(trace_id),
                    SpanId::from(span_id),
                    TraceFlags::new(flags),
                    remote,
                    state,
                )
            },
        )
    }

    fn scope() -> impl Strategy<Value = InstrumentationScope> {
        prop_oneof![
            Just(InstrumentationScope::builder("identity-gateway").build()),
            Just(
                InstrumentationScope::builder("other")
                    .with_version("1.2.3")
                    .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
                    .with_attributes([KeyValue::new("scope.attribute", 7)])
                    .build()
            ),
        ]
    }

    fn status() -> impl Strategy<Value = Status> {
        prop_oneof![
            Just(Status::Unset),
            Just(Status::Ok),
            ".{0,12}".prop_map(Status::error),
        ]
    }

    fn span_kind() -> impl Strategy<Value = SpanKind> {
        prop_oneof![
            Just(SpanKind::Internal),
            Just(SpanKind::Server),
            Just(SpanKind::Client),
            Just(SpanKind::Producer),
            Just(SpanKind::Consumer),
        ]
    }

    prop_compose! {
        fn events()(
            events in prop::collection::vec((".{0,8}", time(), attributes(), 0u32..3), 0..3),
            dropped in 0u32..3,
        ) -> SpanEvents {
            let mut span_events = SpanEvents::default();
            span_events.events = events
                .into_iter()
                .map(|(name, at, attributes, dropped)| Event::new(name, at, attributes, dropped))
                .collect();
            span_events.dropped_count = dropped;
            span_events
        }
    }

    prop_compose! {
        fn links()(
            links in prop::collection::vec((span_context(), attributes(), 0u32..3), 0..3),
            dropped in 0u32..3,
        ) -> SpanLinks {
            let mut span_links = SpanLinks::default();
            span_links.links = links
                .into_iter()
                .map(|(context, attributes, dropped)| Link::new(context, attributes, dropped))
                .collect();
            span_links.dropped_count = dropped;
            span_links
        }
    }

    prop_compose! {
        fn span()(
            span_context in span_context(),
            parent in any::<u64>(),
            parent_span_is_remote in any::<bool>(),
            span_kind in span_kind(),
            name in ".{0,16}",
            start_time in time(),
            end_time in time(),
            attributes in attributes(),
            dropped_attributes_count in 0u32..3,
            events in events(),
            links in links(),
            status in status(),
            instrumentation_scope in scope(),
        ) -> SpanData {
            SpanData {
                span_context,
                parent_span_id: SpanId::from(parent),
                parent_span_is_remote,
                span_kind,
                name: name.into(),
                start_time,
                end_time,
                attributes,
                dropped_attributes_count,
                events,
                links,
                status,
                instrumentation_scope,
            }
        }
    }

    fn resource() -> impl Strategy<Value = Resource> {
        (attributes(), prop::option::of("https://[a-z]{1,8}")).prop_map(|(attributes, schema)| {
            let builder = Resource::builder_empty().with_service_name("identity-gateway");
            match schema {
                Some(url) => builder.with_schema_url(attributes, url),
                None => builder.with_attributes(attributes),
            }
            .build()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn a_collector_reads_what_the_otlp_crates_would_have_sent(
            resource in resource(),
            spans in prop::collection::vec(span(), 0..6),
        ) {
            prop_assert_eq!(decoded(&resource, &spans), official(&resource, spans));
        }
    }

    #[test]
    fn defaults_extreme_numbers_and_long_values_survive() {
        let resource = Resource::builder_empty().build();
        let mut span = SpanData {
            span_context: SpanContext::new(
                TraceId::from(u128::MAX),
                SpanId::from(u64::MAX),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: "".into(),
            start_time: UNIX_EPOCH,
            end_time: UNIX_EPOCH + Duration::from_nanos(u64::MAX),
            attributes: vec![
                KeyValue::new("", ""),
                KeyValue::new("false", false),
                KeyValue::new("zero", 0),
                KeyValue::new("min", i64::MIN),
                KeyValue::new("negative zero", -0.0),
                KeyValue::new("empty", Value::Array(Array::I64(Vec::new()))),
                // Lengths of two and three varint bytes, at every level above them.
                KeyValue::new("long", "x".repeat(200)),
                KeyValue::new("longer", "y".repeat(20_000)),
            ],
            dropped_attributes_count: u32::MAX,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::error(""),
            instrumentation_scope: InstrumentationScope::builder("").build(),
        };
        span.events.dropped_count = u32::MAX;
        let spans = vec![span];
        assert_eq!(decoded(&resource, &spans), official(&resource, spans));
        assert_eq!(decoded(&resource, &[]), official(&resource, Vec::new()));
    }
}
