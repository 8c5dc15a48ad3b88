//! Tracing and metrics for Okta HTTP requests: a client span per attempt (OpenTelemetry's HTTP
//! client conventions plus Okta's request id, the retry count and the rate-limit state), W3C
//! trace context on every request so Okta-side ids and the trace connect, and request metrics.
//!
//! The client span is an OpenTelemetry span, child of the current OpenTelemetry context (the
//! RPC's server span), made only while traces are exported ([`export_spans_with`]): an
//! OpenTelemetry span rather than a `tracing` span, since bridging cost more than the span.

use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use http::Method;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::metrics::{Counter, Histogram};
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer};
use opentelemetry::{KeyValue, StringValue, global};
use url::Url;

use crate::budget::Budgets;
use crate::error::ResponseMeta;
use crate::ids::OktaId;
use crate::trace_ids::traceparent;

/// W3C trace-context header names.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Instrumentation scope of the Okta client's metrics.
const METER_NAME: &str = env!("CARGO_PKG_NAME");

/// The tracer of client spans; unset while traces are not exported, which leaves requests
/// without spans at all rather than with spans that go nowhere.
static TRACER: OnceLock<opentelemetry_sdk::trace::SdkTracer> = OnceLock::new();

/// Makes the client span every Okta request from now on with `tracer` (the application's, so
/// client spans share its instrumentation scope). Only the first call in a process counts: the
/// application exports traces to one place for its whole life.
pub fn export_spans_with(tracer: opentelemetry_sdk::trace::SdkTracer) {
    let _ = TRACER.set(tracer);
}

struct OktaMetrics {
    duration: Histogram<f64>,
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
        retries: meter
            .u64_counter("identity_gateway.okta.retries")
            .with_description("Okta requests sent again after a failure")
            .build(),
    }
});

/// Reports, whenever metrics are collected, what remains of each Okta rate-limit bucket
/// `budgets` knows (read then rather than recorded on every response). Holds `budgets` weakly:
/// a dropped client reports nothing.
pub(crate) fn observe_rate_limits(budgets: &Arc<Budgets>) {
    let budgets = Arc::downgrade(budgets);
    // The meter keeps the callback for its whole life; the handle is not needed.
    let _gauge = global::meter(METER_NAME)
        .u64_observable_gauge("identity_gateway.okta.rate_limit.remaining")
        .with_description(
            "Requests left in each Okta rate-limit bucket this window: Okta's last \
             X-Rate-Limit-Remaining less the requests sent since",
        )
        .with_callback(move |observer| {
            if let Some(budgets) = budgets.upgrade() {
                for (bucket, remaining) in budgets.remaining() {
                    observer.observe(remaining, &[KeyValue::new("okta.bucket", bucket)]);
                }
            }
        })
        .build();
}

/// Appends the endpoint of `path` to `text`, ids replaced, for low-cardinality metric labels:
/// `/api/v1/users/00ub0oNGTSWTBKOLGLNR/lifecycle/suspend` -> `/api/v1/users/{id}/lifecycle/suspend`.
fn push_endpoint_template(text: &mut String, path: &str) {
    for (index, segment) in path.split('/').enumerate() {
        if index > 0 {
            text.push('/');
        }
        text.push_str(if OktaId::is_valid(segment) {
            "{id}"
        } else {
            segment
        });
    }
}

/// The names one logical request (all its attempts) is known by in spans, metrics and
/// rate-limit budgets, made once per request: metric labels share them rather than copy them.
pub(crate) struct RequestNames {
    /// `GET /api/v1/users/{id}`: the span name and the rate-limit bucket.
    pub(crate) operation: String,
    method: StringValue,
    endpoint: StringValue,
}

impl RequestNames {
    /// The names of `method` on `url`.
    pub(crate) fn new(method: &Method, url: &Url) -> Self {
        let path = url.path();
        let mut operation = String::with_capacity(method.as_str().len() + 1 + path.len());
        operation.push_str(method.as_str());
        operation.push(' ');
        let endpoint_start = operation.len();
        push_endpoint_template(&mut operation, path);
        let endpoint = Arc::<str>::from(&operation[endpoint_start..]);
        Self {
            operation,
            method: StringValue::from(Arc::<str>::from(method.as_str())),
            endpoint: StringValue::from(endpoint),
        }
    }

    fn endpoint_label(&self) -> KeyValue {
        KeyValue::new("okta.endpoint", self.endpoint.clone())
    }
}

/// Attributes a client span holds by its end: those it starts with, and those of the answer.
const CLIENT_SPAN_ATTRIBUTES: usize = 11;

/// The client span of one HTTP attempt; ends when dropped. Holds nothing while traces are not
/// exported.
pub(crate) struct AttemptSpan {
    span_opt: Option<opentelemetry_sdk::trace::Span>,
}

impl AttemptSpan {
    /// Starts the span of attempt `attempt` (0 for the first) of a request, as a child of the
    /// current OpenTelemetry context, and counts the retry.
    pub(crate) fn start(names: &RequestNames, url: &Url, attempt: u32) -> Self {
        if attempt > 0 {
            METRICS.retries.add(1, &[names.endpoint_label()]);
        }
        let span_opt = TRACER.get().map(|tracer| {
            // Room for the answer's attributes too, so recording them does not reallocate.
            let mut attributes = Vec::with_capacity(CLIENT_SPAN_ATTRIBUTES);
            attributes.extend([
                KeyValue::new("http.request.method", names.method.clone()),
                KeyValue::new(
                    "server.address",
                    url.host_str().unwrap_or_default().to_owned(),
                ),
                KeyValue::new("url.path", url.path().to_owned()),
                KeyValue::new("okta.retry_count", i64::from(attempt)),
            ]);
            if let Some(port) = url.port_or_known_default() {
                attributes.push(KeyValue::new("server.port", i64::from(port)));
            }
            tracer
                .span_builder(names.operation.clone())
                .with_kind(SpanKind::Client)
                .with_attributes(attributes)
                .start(tracer)
        });
        Self { span_opt }
    }

    /// Adds to a request's `headers` the `traceparent` (and `tracestate`) that make Okta's side
    /// part of this span's trace; adds nothing while traces are not exported.
    pub(crate) fn add_trace_context(&self, headers: &mut HeaderMap) {
        let Some(span) = &self.span_opt else {
            return;
        };
        let span_context = span.span_context();
        if let Ok(value) = HeaderValue::try_from(traceparent(span_context)) {
            headers.insert(TRACEPARENT, value);
        }
        let trace_state = span_context.trace_state().header();
        if let Ok(value) = HeaderValue::try_from(trace_state)
            && !value.is_empty()
        {
            headers.insert(TRACESTATE, value);
        }
    }

    /// Records an answer on the span and in the metrics.
    pub(crate) fn record_response(
        &mut self,
        names: &RequestNames,
        meta: &ResponseMeta,
        elapsed: Duration,
    ) {
        METRICS.duration.record(
            elapsed.as_secs_f64() * 1000.0,
            &[
                KeyValue::new("http.request.method", names.method.clone()),
                names.endpoint_label(),
                KeyValue::new("http.response.status_code", i64::from(meta.status)),
            ],
        );
        let Some(span) = &mut self.span_opt else {
            return;
        };
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(meta.status),
        ));
        if let Some(request_id) = &meta.request_id {
            span.set_attribute(KeyValue::new("okta.request_id", request_id.clone()));
        }
        if let Some(rate_limit) = &meta.rate_limit {
            span.set_attribute(KeyValue::new(
                "okta.rate_limit.limit",
                i64::try_from(rate_limit.limit).unwrap_or(i64::MAX),
            ));
            span.set_attribute(KeyValue::new(
                "okta.rate_limit.remaining",
                i64::try_from(rate_limit.remaining).unwrap_or(i64::MAX),
            ));
        }
        if meta.status >= 400 {
            span.set_attribute(KeyValue::new("error.type", meta.status.to_string()));
            span.set_status(Status::error(""));
        }
    }

    /// Records Okta's `errorCode` of a failed answer.
    pub(crate) fn record_error_code(&mut self, error_code: &str) {
        if let Some(span) = &mut self.span_opt {
            span.set_attribute(KeyValue::new("okta.error_code", error_code.to_owned()));
        }
    }

    /// Records a request that got no answer.
    pub(crate) fn record_transport_error(&mut self, kind: &'static str) {
        if let Some(span) = &mut self.span_opt {
            span.set_status(Status::error(""));
            span.set_attribute(KeyValue::new("error.type", kind));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint_template(path: &str) -> String {
        let mut template = String::new();
        push_endpoint_template(&mut template, path);
        template
    }

    #[test]
    fn endpoint_templates_hide_ids_only() {
        assert_eq!(
            endpoint_template("/api/v1/groups/00g1emaKYZTWRYYRRTSK/users/00ub0oNGTSWTBKOLGLNR"),
            "/api/v1/groups/{id}/users/{id}"
        );
        assert_eq!(endpoint_template("/api/v1/logs"), "/api/v1/logs");
    }
}
