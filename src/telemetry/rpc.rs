//! A server span per RPC, following OpenTelemetry's gRPC conventions (`rpc.system`,
//! `rpc.service`, `rpc.method`, `rpc.grpc.status_code`), parented on the caller's W3C
//! `traceparent`; plus the RPC duration histogram and the in-flight gauge.
//!
//! The server span is an OpenTelemetry span, current (as the OpenTelemetry context) while the
//! RPC runs, so the Okta client's spans become its children. Alongside it, a `tracing` span
//! named `rpc` puts the method and the trace and span ids into every log line of the RPC; its
//! fields are all set when it starts, since each later `record` makes the JSON log layer parse
//! and rewrite the span's fields.
//!
//! [`RpcTelemetry`] is a [`Step`] on the edge's skeleton, stacked outermost, so the span and
//! the duration cover everything the gateway does for a call, refusals at the edge included.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Instant;

use opentelemetry::context::FutureExt as _;
use opentelemetry::metrics::Histogram;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{KeyValue, global};
use opentelemetry_sdk::trace::SdkTracer;
use prost::Message;
use tracing::Instrument;

use super::INSTRUMENTATION_NAME;
use crate::edge::{Answer, Inner, Next, Request, Step};
use okta_client::trace_ids::HexId;

/// gRPC codes that make a server span an error (OpenTelemetry's gRPC conventions).
const SERVER_ERROR_CODES: &[i64] = &[2, 4, 12, 13, 14, 15];

/// The RPC duration histogram. The in-flight gauge is read from [`ServedRpc::in_flight`] when
/// metrics are collected (an atomic add per RPC instead of two attribute-set lookups); its
/// callback is registered with the histogram and lives as long as the meter.
struct RpcMetrics {
    duration: Histogram<f64>,
}

/// Created on first use, after the meter provider is installed.
static METRICS: LazyLock<RpcMetrics> = LazyLock::new(|| {
    let meter = global::meter(INSTRUMENTATION_NAME);
    let _in_flight = meter
        .i64_observable_up_down_counter("identity_gateway.rpc.in_flight")
        .with_description("gRPC calls being served, by method")
        .with_callback(|observer| {
            for served in SERVED_RPCS.values() {
                if served.called.load(Ordering::Relaxed) {
                    observer.observe(
                        served.in_flight.load(Ordering::Relaxed),
                        &served.name().attributes(),
                    );
                }
            }
        })
        .build();
    RpcMetrics {
        duration: meter
            .f64_histogram("rpc.server.duration")
            .with_unit("ms")
            .with_description("Duration of gRPC calls served, by method and status code")
            .build(),
    }
});

/// The names of an RPC, as its span and its metric labels spell them.
struct RpcName {
    /// `identity.v1.UserService/GetUser`: the span name.
    full: Cow<'static, str>,
    /// `identity.v1.UserService`.
    service: Cow<'static, str>,
    /// `GetUser`.
    method: Cow<'static, str>,
    /// The RPC's in-flight count, when it is one the gateway serves.
    served: Option<&'static ServedRpc>,
}

/// An RPC the gateway serves: its names, made once (spans and metric labels borrow them
/// instead of copying them on every request), and its calls being served.
struct ServedRpc {
    full: String,
    service: String,
    method: String,
    in_flight: AtomicI64,
    /// Whether it was ever called: the gauge reports only those.
    called: AtomicBool,
}

impl ServedRpc {
    fn name(&'static self) -> RpcName {
        RpcName {
            full: Cow::Borrowed(&self.full),
            service: Cow::Borrowed(&self.service),
            method: Cow::Borrowed(&self.method),
            served: Some(self),
        }
    }
}

/// The RPCs the gateway serves (its own, health and reflection), by path.
static SERVED_RPCS: LazyLock<HashMap<String, ServedRpc>> = LazyLock::new(|| {
    [
        crate::proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ]
    .into_iter()
    .filter_map(|encoded| prost_types::FileDescriptorSet::decode(encoded).ok())
    .flat_map(|set| set.file)
    .flat_map(|file| {
        let package = file.package().to_owned();
        file.service.into_iter().flat_map(move |service| {
            let service_name = format!("{package}.{}", service.name());
            service.method.into_iter().map(move |method| {
                let full = format!("{service_name}/{}", method.name());
                (
                    format!("/{full}"),
                    ServedRpc {
                        full,
                        service: service_name.clone(),
                        method: method.name().to_owned(),
                        in_flight: AtomicI64::new(0),
                        called: AtomicBool::new(false),
                    },
                )
            })
        })
    })
    .collect()
});

impl RpcName {
    /// The names in a request path such as `/identity.v1.UserService/GetUser`.
    fn of(path: &str) -> Self {
        if let Some(served) = SERVED_RPCS.get(path) {
            return served.name();
        }
        // A path no service serves (answered UNIMPLEMENTED): named as asked.
        let full = path.trim_start_matches('/');
        let (service, method) = full.split_once('/').unwrap_or((full, ""));
        Self {
            full: Cow::Owned(full.to_owned()),
            service: Cow::Owned(service.to_owned()),
            method: Cow::Owned(method.to_owned()),
            served: None,
        }
    }

    /// `rpc.system`, `rpc.service` and `rpc.method`.
    fn attributes(&self) -> [KeyValue; 3] {
        [
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", self.service.clone()),
            KeyValue::new("rpc.method", self.method.clone()),
        ]
    }
}

/// Counts an RPC in flight from its start until it is answered or dropped (a caller that
/// goes away must not leave it counted).
struct InFlight(Option<&'static ServedRpc>);

impl InFlight {
    fn start(served: Option<&'static ServedRpc>) -> Self {
        if let Some(served) = served {
            // Read first: a write on every call would move the line between cores for nothing.
            if !served.called.load(Ordering::Relaxed) {
                served.called.store(true, Ordering::Relaxed);
            }
            served.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        Self(served)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(served) = self.0 {
            served.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Reads W3C trace context from request headers.
pub(super) struct HeaderExtractor<'headers>(pub(super) &'headers http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The status of a response whose `grpc-status` is in its headers (errors, trailers-only);
/// otherwise the status travels in trailers after a successful start: OK.
fn grpc_status(headers: &http::HeaderMap) -> i64 {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// The OpenTelemetry context of an RPC: its server span, child of the caller's span.
fn server_context(
    tracer: &SdkTracer,
    rpc: &RpcName,
    headers: &http::HeaderMap,
) -> opentelemetry::Context {
    let parent =
        global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    // Room for the status code too, so recording it does not reallocate.
    let mut attributes = Vec::with_capacity(4);
    attributes.extend(rpc.attributes());
    let span = tracer
        .span_builder(rpc.full.clone())
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .start_with_context(tracer, &parent);
    parent.with_span(span)
}

/// The RPC's server span, its log span and its metrics, as the outermost step of the stack;
/// see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct RpcTelemetry;

impl Step for RpcTelemetry {
    fn handle<S: Inner>(&self, request: Request, next: Next<'_, S>) -> Answer<S::Error> {
        let rpc = RpcName::of(request.uri().path());
        let otel_context_opt =
            super::tracer().map(|tracer| server_context(tracer, &rpc, request.headers()));
        let ids_opt = otel_context_opt
            .as_ref()
            .map(|otel_context| otel_context.span().span_context().clone())
            .filter(opentelemetry::trace::SpanContext::is_valid)
            .map(|span_context| {
                (
                    HexId::of(&span_context.trace_id().to_bytes()),
                    HexId::of(&span_context.span_id().to_bytes()),
                )
            });
        let log_span = tracing::info_span!(
            "rpc",
            rpc.service = &*rpc.service,
            rpc.method = &*rpc.method,
            trace_id = ids_opt.as_ref().map(|(trace_id, _)| trace_id.as_str()),
            span_id = ids_opt.as_ref().map(|(_, span_id)| span_id.as_str()),
        );
        let metrics = &*METRICS;
        let in_flight = InFlight::start(rpc.served);
        let method_attributes = rpc.attributes();
        let started = Instant::now();
        let response = {
            let _entered = log_span.enter();
            let _attached = otel_context_opt.clone().map(opentelemetry::Context::attach);
            next.call(request)
        };
        let recorded = async move {
            let result = response.await;
            let code = result
                .as_ref()
                .map_or(2, |response| grpc_status(response.headers()));
            let otel_context = opentelemetry::Context::current();
            let server_span = otel_context.span();
            server_span.set_attribute(KeyValue::new("rpc.grpc.status_code", code));
            if SERVER_ERROR_CODES.contains(&code) {
                server_span.set_status(Status::error(""));
            }
            server_span.end();
            drop(in_flight);
            let [system, service, method] = method_attributes;
            metrics.duration.record(
                started.elapsed().as_secs_f64() * 1000.0,
                &[
                    system,
                    service,
                    method,
                    KeyValue::new("rpc.grpc.status_code", code),
                ],
            );
            result
        }
        .instrument(log_span);
        match otel_context_opt {
            Some(otel_context) => Box::pin(recorded.with_context(otel_context)),
            None => Box::pin(recorded),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_paths_are_named_without_copies_and_others_as_asked() {
        let served = RpcName::of("/identity.v1.UserService/GetUser");
        assert!(matches!(served.full, Cow::Borrowed(_)));
        assert_eq!(served.full, "identity.v1.UserService/GetUser");
        assert_eq!(served.service, "identity.v1.UserService");
        assert_eq!(served.method, "GetUser");
        let health = RpcName::of("/grpc.health.v1.Health/Check");
        assert!(matches!(
            health.service,
            Cow::Borrowed("grpc.health.v1.Health")
        ));
        let unknown = RpcName::of("/odd");
        assert_eq!(
            (unknown.full, unknown.service, unknown.method),
            (Cow::from("odd"), Cow::from("odd"), Cow::from(""))
        );
    }

    #[test]
    fn an_rpc_counts_in_flight_until_answered_or_dropped() {
        let served = RpcName::of("/identity.v1.GroupService/GetGroup").served;
        let count = || served.map(|rpc| rpc.in_flight.load(Ordering::Relaxed));
        assert_eq!(count(), Some(0));
        let first = InFlight::start(served);
        let second = InFlight::start(served);
        assert_eq!(count(), Some(2));
        assert!(served.is_some_and(|rpc| rpc.called.load(Ordering::Relaxed)));
        drop(first);
        drop(second);
        assert_eq!(count(), Some(0));
        assert!(RpcName::of("/odd/Path").served.is_none());
    }

    #[test]
    fn the_status_comes_from_headers_when_trailers_only() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(grpc_status(&headers), 0);
        headers.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(grpc_status(&headers), 5);
    }
}
