//! Traces, metrics and logs end to end: in-process OTLP collectors receive what the gateway
//! exports, configured by the standard `OTEL_*` variables (traces to a collector of their own).
//! One test function, because the subscriber and the exporters are process-wide.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod collector;
#[allow(dead_code)] // this binary uses part of the harness
#[path = "it/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use collector::Collected;
use common::{LogBuffer, SIM_TOKEN, spawn_gateway_for, start_simulator};
use identity_gateway::config::Settings;
use identity_gateway::proto::{GetUserRequest, UserLifecycleRequest, get_user_request};
use identity_gateway::telemetry::{init_telemetry, span_exporter};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::json;
use tonic::Request;

/// The collectors' credentials, as configured (percent-encoded) and as sent: the shared one
/// (which metrics use) and the traces' own.
const COLLECTOR_KEY_SETTING: &str = "x-collector-key=collector%20canary";
const COLLECTOR_KEY: &str = "collector canary";
const TRACES_KEY_SETTING: &str = "x-collector-key=traces%20canary";
const TRACES_KEY: &str = "traces canary";

fn attribute(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|value| value.value)
}

fn text_attribute(span: &Span, key: &str) -> String {
    match attribute(span, key) {
        Some(AnyValue::StringValue(text)) => text,
        Some(AnyValue::IntValue(number)) => number.to_string(),
        other => panic!("span {:?} has no attribute {key}: {other:?}", span.name),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_rpc_is_one_trace_from_the_caller_through_the_gateway_to_okta() {
    // Two in-process OTLP collectors: one for traces, which refuses the first span export, and
    // the shared endpoint, for metrics. Exports are gzipped, except metrics.
    let traces_collected = Collected::default();
    traces_collected.refusals.store(1, Ordering::SeqCst);
    let traces_address = traces_collected.serve(None).await;
    let metrics_collected = Collected::default();
    let metrics_address = metrics_collected.serve(None).await;
    let variables: HashMap<String, String> = [
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{metrics_address}"),
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            COLLECTOR_KEY_SETTING.to_owned(),
        ),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".to_owned()),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("http://{traces_address}"),
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            TRACES_KEY_SETTING.to_owned(),
        ),
        ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "none".to_owned()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200".to_owned()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=test".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();

    let logs = LogBuffer::default();
    let mut settings = common::test_settings();
    settings.telemetry = Settings::load(None, &variables).unwrap().telemetry;
    settings.log.filter = "info".to_owned();
    settings.validate(true).unwrap();
    let guard = init_telemetry(&settings, logs.clone()).unwrap();

    let app = spawn_gateway_for(start_simulator().await, |gateway| {
        gateway.telemetry = settings.telemetry.clone();
        gateway.scim.listen_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let user_id = app.seed_user("traced@example.com").await;

    // A caller with its own trace.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let mut request = Request::new(GetUserRequest {
        user: Some(get_user_request::User::Id(user_id.clone())),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{caller_trace}-{caller_span}-01")
            .parse()
            .unwrap(),
    );
    app.users.clone().get_user(request).await.unwrap();

    // A failing Okta call in another trace, retried once first (a 503, then Okta's 404).
    let failing_trace = "0af7651916cd43dd8448eb211c80319c";
    app.inject_fault(
        json!({"method": "GET", "path_prefix": "/api/v1/users/", "status": 503, "times": 1}),
    )
    .await;
    app.inject_fault(json!({"method": "GET", "path_prefix": "/api/v1/users/", "status": 404, "error_code": "E0000007", "times": 1})).await;
    let mut request = Request::new(GetUserRequest {
        user: Some(get_user_request::User::Id(user_id.clone())),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{failing_trace}-b7ad6b7169203331-01")
            .parse()
            .unwrap(),
    );
    let status = app.users.clone().get_user(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);

    // A SCIM read in a trace of its own: the HTTP span, then the RPC it made.
    let scim_trace = "5cf92f3577b34da6a3ce929d0e0e4737";
    let scim_caller_span = "10f067aa0ba902b8";
    let scim_answer = app
        .http
        .get(format!(
            "http://{}/scim/v2/Users/{user_id}",
            app.scim_address.unwrap()
        ))
        .header(
            "traceparent",
            format!("00-{scim_trace}-{scim_caller_span}-01"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(scim_answer.status(), 200);

    // A mutating call, for the audit record.
    app.users
        .clone()
        .suspend_user(UserLifecycleRequest {
            user_id: user_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let sim_requests = app.sim_requests().await;

    tokio::task::spawn_blocking(move || guard.shutdown())
        .await
        .unwrap();

    // Each signal went to its own collector, with that collector's credential, gzipped or not
    // as configured; the refused span export was sent again.
    let received_only = |collected: &Collected, key: &str, encoding: &str| {
        let keys = collected.keys.lock().unwrap().clone();
        let encodings = collected.encodings.lock().unwrap().clone();
        assert!(
            !keys.is_empty() && keys.iter().all(|sent| sent == key),
            "{keys:?}"
        );
        assert!(
            encodings.iter().all(|sent| sent == encoding),
            "{encodings:?}"
        );
    };
    received_only(&traces_collected, TRACES_KEY, "gzip");
    received_only(&metrics_collected, COLLECTOR_KEY, "identity");
    assert!(
        traces_collected.metrics.lock().unwrap().is_empty(),
        "metrics went to the traces' collector"
    );
    assert_eq!(
        metrics_collected.span_count(),
        0,
        "spans went to the shared endpoint"
    );
    assert!(
        traces_collected.trace_attempts.load(Ordering::SeqCst)
            > traces_collected.traces.lock().unwrap().len(),
        "the refused export was retried"
    );

    // Traces.
    let spans: Vec<Span> = traces_collected
        .traces
        .lock()
        .unwrap()
        .iter()
        .flat_map(|export| export.resource_spans.iter())
        .flat_map(|resource| resource.scope_spans.iter())
        .flat_map(|scope| scope.spans.iter().cloned())
        .collect();
    let in_trace = |trace: &str| {
        spans
            .iter()
            .filter(|span| hex(&span.trace_id) == trace)
            .cloned()
            .collect::<Vec<_>>()
    };

    let traced = in_trace(caller_trace);
    let server = traced
        .iter()
        .find(|span| span.kind == SpanKind::Server as i32)
        .expect("an RPC server span");
    assert_eq!(server.name, "identity.v1.UserService/GetUser");
    assert_eq!(
        hex(&server.parent_span_id),
        caller_span,
        "parented on the caller's span"
    );
    assert_eq!(text_attribute(server, "rpc.system"), "grpc");
    assert_eq!(
        text_attribute(server, "rpc.service"),
        "identity.v1.UserService"
    );
    assert_eq!(text_attribute(server, "rpc.method"), "GetUser");
    assert_eq!(text_attribute(server, "rpc.grpc.status_code"), "0");
    let client = traced
        .iter()
        .find(|span| span.kind == SpanKind::Client as i32)
        .expect("an Okta client span");
    assert_eq!(
        client.parent_span_id, server.span_id,
        "the Okta request is a child of the RPC"
    );
    assert_eq!(text_attribute(client, "http.request.method"), "GET");
    assert_eq!(text_attribute(client, "server.address"), "127.0.0.1");
    assert_eq!(
        text_attribute(client, "url.path"),
        format!("/api/v1/users/{user_id}")
    );
    assert_eq!(text_attribute(client, "http.response.status_code"), "200");
    assert_eq!(text_attribute(client, "okta.retry_count"), "0");
    let okta_request_id = text_attribute(client, "okta.request_id");
    assert!(attribute(client, "okta.rate_limit.remaining").is_some());
    assert!(
        sim_requests
            .iter()
            .any(|request| request["request_id"] == okta_request_id.as_str()
                && request["traceparent"]
                    .as_str()
                    .is_some_and(|traceparent| traceparent.contains(caller_trace))),
        "the simulator saw the caller's trace id on the request Okta knows as {okta_request_id}"
    );

    let scim_spans = in_trace(scim_trace);
    let http_server = scim_spans
        .iter()
        .find(|span| span.name == "GET /scim/v2/Users/{id}")
        .expect("a SCIM server span");
    assert_eq!(http_server.kind, SpanKind::Server as i32);
    assert_eq!(hex(&http_server.parent_span_id), scim_caller_span);
    assert_eq!(
        text_attribute(http_server, "http.response.status_code"),
        "200"
    );
    let rpc_server = scim_spans
        .iter()
        .find(|span| span.name == "identity.v1.UserService/GetUser")
        .expect("the RPC the SCIM read made");
    assert_eq!(
        rpc_server.parent_span_id, http_server.span_id,
        "the RPC is a child of the SCIM request"
    );

    let failed = in_trace(failing_trace);
    let failed_server = failed
        .iter()
        .find(|span| span.kind == SpanKind::Server as i32)
        .unwrap();
    assert_eq!(text_attribute(failed_server, "rpc.grpc.status_code"), "5");
    let attempts: Vec<&Span> = failed
        .iter()
        .filter(|span| span.kind == SpanKind::Client as i32)
        .collect();
    assert_eq!(attempts.len(), 2, "one client span per HTTP attempt");
    let last = attempts
        .iter()
        .find(|span| text_attribute(span, "okta.retry_count") == "1")
        .unwrap();
    assert_eq!(text_attribute(last, "okta.error_code"), "E0000007");
    assert_eq!(last.status.as_ref().unwrap().code, StatusCode::Error as i32);

    // Metrics.
    let metrics = metrics_collected.metrics.lock().unwrap().clone();
    let mut metric_attributes: HashMap<String, Vec<String>> = HashMap::new();
    for metric in metrics
        .iter()
        .flat_map(|m| m.resource_metrics.iter())
        .flat_map(|r| r.scope_metrics.iter())
        .flat_map(|s| s.metrics.iter())
    {
        let keys = format!("{:?}", metric.data);
        metric_attributes
            .entry(metric.name.clone())
            .or_default()
            .push(keys);
    }
    for (name, label) in [
        ("rpc.server.duration", "rpc.grpc.status_code"),
        ("identity_gateway.rpc.in_flight", "rpc.method"),
        ("identity_gateway.okta.request.duration", "okta.endpoint"),
        ("identity_gateway.okta.rate_limit.remaining", "okta.bucket"),
        (
            "identity_gateway.okta.rate_limit.remaining",
            "GET /api/v1/users/{id}",
        ),
        ("identity_gateway.okta.retries", "okta.endpoint"),
        ("http.server.request.duration", "/scim/v2/Users/{id}"),
    ] {
        let data = metric_attributes
            .get(name)
            .unwrap_or_else(|| panic!("no metric {name}: {:?}", metric_attributes.keys()));
        assert!(
            data.iter().any(|text| text.contains(label)),
            "{name} lacks the {label} label"
        );
    }
    let resource = format!("{metrics:?}");
    assert!(
        resource.contains("deployment.environment"),
        "OTEL_RESOURCE_ATTRIBUTES-style attributes are exported"
    );

    // Logs: JSON with trace ids, an audit record, and never the Okta token.
    let logs = logs.text();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let audit = lines
        .iter()
        .find(|line| {
            line["target"] == "audit" && line["method"] == "identity.v1.UserService/SuspendUser"
        })
        .expect("an audit record for SuspendUser");
    assert_eq!(audit["outcome"], "OK");
    assert_eq!(audit["ids"], format!("user_id={user_id}"));
    assert_eq!(audit["caller"], "anonymous", "insecure mode: {audit}");
    assert_eq!(audit["auth"], "insecure");
    assert!(audit["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(!audit["okta_request_ids"].as_str().unwrap().is_empty());
    assert!(
        audit["span"]["trace_id"]
            .as_str()
            .is_some_and(|id| id.len() == 32),
        "logs carry the trace id: {audit}"
    );

    let everything = format!(
        "{logs}{:?}{:?}{settings:?}{:?}",
        traces_collected.traces.lock().unwrap(),
        metrics,
        span_exporter(&settings.telemetry).unwrap()
    );
    assert!(
        !everything.contains(SIM_TOKEN),
        "the Okta token leaked into telemetry"
    );
    for collector_key in [
        COLLECTOR_KEY,
        "collector%20canary",
        TRACES_KEY,
        "traces%20canary",
    ] {
        assert!(
            !everything.contains(collector_key),
            "the collector's credential leaked into telemetry or settings output"
        );
    }
}
