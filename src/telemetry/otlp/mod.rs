//! OTLP/gRPC export of spans: [`encode`] writes a batch of finished spans straight into the
//! protobuf bytes of an export request, [`exporter`] sends them to the collector with the
//! standard headers, timeout and retries. Metrics still go through the `opentelemetry-otlp`
//! exporter (a batch a minute, not two spans an RPC); both take the same [`headers`].

mod encode;
mod exporter;
pub(crate) mod headers;

pub(crate) use exporter::OtlpSpanExporter;
