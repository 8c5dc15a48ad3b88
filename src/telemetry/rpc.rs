//! A server span per RPC, following OpenTelemetry's gRPC conventions (`rpc.system`,
//! `rpc.service`, `rpc.method`, `rpc.grpc.status_code`), parented on the caller's W3C
//! `traceparent`; plus the RPC duration histogram and the in-flight gauge.

use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use opentelemetry::metrics::{Histogram, UpDownCounter};
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{KeyValue, global};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::INSTRUMENTATION_NAME;

/// gRPC codes that make a server span an error (OpenTelemetry's gRPC conventions).
const SERVER_ERROR_CODES: &[i64] = &[2, 4, 12, 13, 14, 15];

struct RpcMetrics {
    duration: Histogram<f64>,
    in_flight: UpDownCounter<i64>,
}

/// Created on first use, after the meter provider is installed.
static METRICS: LazyLock<RpcMetrics> = LazyLock::new(|| {
    let meter = global::meter(INSTRUMENTATION_NAME);
    RpcMetrics {
        duration: meter
            .f64_histogram("rpc.server.duration")
            .with_unit("ms")
            .with_description("Duration of gRPC calls served, by method and status code")
            .build(),
        in_flight: meter
            .i64_up_down_counter("identity_gateway.rpc.in_flight")
            .with_description("gRPC calls being served")
            .build(),
    }
});

/// Applies [`RpcTelemetry`] to every service.
#[derive(Clone, Copy, Debug, Default)]
pub struct RpcTelemetryLayer;

impl<S> Layer<S> for RpcTelemetryLayer {
    type Service = RpcTelemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcTelemetry { inner }
    }
}

/// The span- and metric-recording service; see the module docs.
#[derive(Clone, Debug)]
pub struct RpcTelemetry<S> {
    inner: S,
}

/// Reads W3C trace context from request headers.
struct HeaderExtractor<'headers>(&'headers http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Splits `/identity.v1.UserService/GetUser` into service and method.
fn service_and_method(path: &str) -> (String, String) {
    let trimmed = path.trim_start_matches('/');
    match trimmed.split_once('/') {
        Some((service, method)) => (service.to_owned(), method.to_owned()),
        None => (trimmed.to_owned(), String::new()),
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

impl<S, RequestBody, ResponseBody> Service<http::Request<RequestBody>> for RpcTelemetry<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<ResponseBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let (service, method) = service_and_method(request.uri().path());
        let span = tracing::info_span!(
            "rpc",
            otel.name = format!("{service}/{method}"),
            otel.kind = "server",
            otel.status_code = Empty,
            rpc.system = "grpc",
            rpc.service = service.as_str(),
            rpc.method = method.as_str(),
            rpc.grpc.status_code = Empty,
            trace_id = Empty,
            span_id = Empty,
        );
        let parent = global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(request.headers()))
        });
        // Fails only when no OpenTelemetry layer is installed (exporting off): nothing to parent.
        let _ = span.set_parent(parent);
        let context = span.context();
        let span_context = context.span().span_context().clone();
        if span_context.is_valid() {
            span.record("trace_id", span_context.trace_id().to_string());
            span.record("span_id", span_context.span_id().to_string());
        }
        let metrics = &*METRICS;
        let method_attributes = [
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", service),
            KeyValue::new("rpc.method", method),
        ];
        metrics.in_flight.add(1, &method_attributes);
        let started = Instant::now();
        let response = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(
            async move {
                let result = response.await;
                let code = result
                    .as_ref()
                    .map_or(2, |response| grpc_status(response.headers()));
                let span = tracing::Span::current();
                span.record("rpc.grpc.status_code", code);
                if SERVER_ERROR_CODES.contains(&code) {
                    span.record("otel.status_code", "ERROR");
                }
                let mut attributes = method_attributes.to_vec();
                metrics.in_flight.add(-1, &attributes);
                attributes.push(KeyValue::new("rpc.grpc.status_code", code));
                metrics
                    .duration
                    .record(started.elapsed().as_secs_f64() * 1000.0, &attributes);
                result
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            service_and_method("/identity.v1.UserService/GetUser"),
            ("identity.v1.UserService".to_owned(), "GetUser".to_owned())
        );
        assert_eq!(
            service_and_method("/odd"),
            ("odd".to_owned(), String::new())
        );
    }

    #[test]
    fn the_status_comes_from_headers_when_trailers_only() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(grpc_status(&headers), 0);
        headers.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(grpc_status(&headers), 5);
    }
}
