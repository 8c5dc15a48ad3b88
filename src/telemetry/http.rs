//! A server span per SCIM request, following OpenTelemetry's HTTP conventions
//! (`http.request.method`, `http.route`, `http.response.status_code`), parented on the
//! caller's W3C `traceparent`, and the `http.server.request.duration` histogram.
//!
//! The request's `traceparent` is then replaced by the span's own, so the gRPC calls the
//! facade makes for it (which carry the request's trace context on) are its children: one
//! trace from the SCIM client through each RPC to Okta.

use std::sync::LazyLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::metrics::Histogram;
use opentelemetry::propagation::Injector;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{KeyValue, global};

use super::INSTRUMENTATION_NAME;
use super::rpc::HeaderExtractor;

/// Created on first use, after the meter provider is installed.
static DURATION: LazyLock<Histogram<f64>> = LazyLock::new(|| {
    global::meter(INSTRUMENTATION_NAME)
        .f64_histogram("http.server.request.duration")
        .with_unit("s")
        .with_description("Duration of SCIM requests served, by method, route and status")
        .build()
});

/// Writes W3C trace context into request headers.
struct HeaderInjector<'headers>(&'headers mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The axum middleware: the span and the duration of one SCIM request.
pub async fn traced(mut request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let started = Instant::now();
    let otel_context = super::tracer().map(|tracer| {
        let parent = global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(request.headers()))
        });
        let span = tracer
            .span_builder(format!("{method} {route}"))
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", method.clone()),
                KeyValue::new("http.route", route.clone()),
                KeyValue::new("url.scheme", "http"),
            ])
            .start_with_context(tracer, &parent);
        let context = parent.with_span(span);
        request.headers_mut().remove("tracestate");
        global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut HeaderInjector(request.headers_mut()));
        });
        context
    });
    let response = next.run(request).await;
    let status = response.status().as_u16();
    if let Some(context) = otel_context {
        let span = context.span();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if status >= 500 {
            span.set_status(Status::error(""));
        }
        span.end();
    }
    DURATION.record(
        started.elapsed().as_secs_f64(),
        &[
            KeyValue::new("http.request.method", method),
            KeyValue::new("http.route", route),
            KeyValue::new("http.response.status_code", i64::from(status)),
        ],
    );
    response
}
