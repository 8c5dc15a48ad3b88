//! Tracing and metrics for Okta HTTP requests: a client span per attempt (OpenTelemetry's HTTP
//! client conventions plus Okta's request id, the retry count and the rate-limit state), W3C
//! trace context on every request so Okta-side ids and the trace connect, request metrics, and
//! collection of Okta request ids for audit records.

use std::cell::RefCell;
use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use opentelemetry::metrics::{Counter, Gauge, Histogram};
use opentelemetry::propagation::Injector;
use opentelemetry::{KeyValue, global};
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use url::Url;

use crate::okta::error::ResponseMeta;
use crate::okta::ids::OktaId;

/// Instrumentation scope of the Okta client's metrics.
const METER_NAME: &str = env!("CARGO_PKG_NAME");

struct OktaMetrics {
    duration: Histogram<f64>,
    rate_limit_remaining: Gauge<u64>,
    retries: Counter<u64>,
}

/// Created on first use, after the meter provider is installed.
static METRICS: LazyLock<OktaMetrics> = LazyLock::new(|| {
    let meter = global::meter(METER_NAME);
    OktaMetrics {
        duration: meter
            .f64_histogram("identity_gateway.okta.request.duration")
            .with_unit("ms")
            .with_description("Duration of Okta HTTP requests, by endpoint and status")
            .build(),
        rate_limit_remaining: meter
            .u64_gauge("identity_gateway.okta.rate_limit.remaining")
            .with_description("X-Rate-Limit-Remaining of the last Okta response, by endpoint")
            .build(),
        retries: meter
            .u64_counter("identity_gateway.okta.retries")
            .with_description("Okta requests sent again after a failure")
            .build(),
    }
});

tokio::task_local! {
    static REQUEST_IDS: RefCell<Vec<String>>;
}

/// Runs `work` and returns the Okta request ids of every response it received, for audit
/// records (the Okta request id is what Okta support and Okta's System Log know a call by).
pub async fn collecting_request_ids<F: Future>(work: F) -> (F::Output, Vec<String>) {
    REQUEST_IDS
        .scope(RefCell::new(Vec::new()), async {
            let output = work.await;
            let ids = REQUEST_IDS.with(|ids| ids.take());
            (output, ids)
        })
        .await
}

/// The endpoint of a path with ids replaced, for low-cardinality metric labels:
/// `/api/v1/users/00ub0oNGTSWTBKOLGLNR/lifecycle/suspend` -> `/api/v1/users/{id}/lifecycle/suspend`.
pub fn endpoint_template(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if OktaId::parse(segment).is_ok() {
                "{id}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Starts the client span of one HTTP attempt.
pub(crate) fn request_span(method: &Method, url: &Url, attempt: u32) -> Span {
    let endpoint = endpoint_template(url.path());
    if attempt > 0 {
        METRICS
            .retries
            .add(1, &[KeyValue::new("okta.endpoint", endpoint.clone())]);
    }
    tracing::info_span!(
        "okta request",
        otel.name = format!("{method} {endpoint}"),
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = method.as_str(),
        server.address = url.host_str().unwrap_or_default(),
        server.port = url.port_or_known_default(),
        url.path = url.path(),
        http.response.status_code = Empty,
        okta.request_id = Empty,
        okta.retry_count = attempt,
        okta.rate_limit.limit = Empty,
        okta.rate_limit.remaining = Empty,
        okta.error_code = Empty,
        error.type = Empty,
    )
}

/// Writes W3C trace-context headers into an outgoing request.
struct HeaderInjector<'headers>(&'headers mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(key), HeaderValue::try_from(value)) {
            self.0.insert(name, value);
        }
    }
}

/// The `traceparent` (and `tracestate`) headers that make Okta's side part of `span`'s trace.
pub(crate) fn trace_context_headers(span: &Span) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let context = span.context();
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(&mut headers));
    });
    headers
}

/// Records an answer on the span and in the metrics.
pub(crate) fn record_response(
    span: &Span,
    method: &Method,
    url: &Url,
    meta: &ResponseMeta,
    elapsed: Duration,
) {
    span.record("http.response.status_code", meta.status);
    if let Some(request_id) = &meta.request_id {
        span.record("okta.request_id", request_id.as_str());
        let _ = REQUEST_IDS.try_with(|ids| ids.borrow_mut().push(request_id.clone()));
    }
    let endpoint = endpoint_template(url.path());
    if let Some(rate_limit) = &meta.rate_limit {
        span.record("okta.rate_limit.limit", rate_limit.limit);
        span.record("okta.rate_limit.remaining", rate_limit.remaining);
        METRICS.rate_limit_remaining.record(
            rate_limit.remaining,
            &[KeyValue::new("okta.endpoint", endpoint.clone())],
        );
    }
    if meta.status >= 400 {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", meta.status.to_string());
    }
    METRICS.duration.record(
        elapsed.as_secs_f64() * 1000.0,
        &[
            KeyValue::new("http.request.method", method.to_string()),
            KeyValue::new("okta.endpoint", endpoint),
            KeyValue::new("http.response.status_code", i64::from(meta.status)),
        ],
    );
}

/// Records Okta's `errorCode` of a failed answer.
pub(crate) fn record_error_code(span: &Span, error_code: &str) {
    span.record("okta.error_code", error_code);
}

/// Records a request that got no answer.
pub(crate) fn record_transport_error(span: &Span, kind: &str) {
    span.record("otel.status_code", "ERROR");
    span.record("error.type", kind);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_templates_hide_ids_only() {
        assert_eq!(
            endpoint_template("/api/v1/groups/00g1emaKYZTWRYYRRTSK/users/00ub0oNGTSWTBKOLGLNR"),
            "/api/v1/groups/{id}/users/{id}"
        );
        assert_eq!(endpoint_template("/api/v1/logs"), "/api/v1/logs");
    }
}
