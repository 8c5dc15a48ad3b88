//! Traces and metrics to an https OTLP collector that asks for client certificates: refused
//! while its certificate's CA is unknown (the system's roots do not know a test CA) and while
//! the gateway presents no client certificate, delivered once both are configured. A test
//! binary of its own: the exporters are process-wide.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod collector;
#[allow(dead_code)] // this binary uses part of the harness
#[path = "it/common/mod.rs"]
mod common;
#[allow(dead_code)] // this binary uses part of the credentials
#[path = "it/credentials/mod.rs"]
mod credentials;

use std::sync::atomic::Ordering;

use collector::Collected;
use common::{LogBuffer, spawn_gateway_for, start_simulator};
use credentials::Pki;
use identity_gateway::config::TelemetrySettings;
use identity_gateway::proto::{GetUserRequest, get_user_request};
use identity_gateway::telemetry::{init_telemetry, span_exporter};
use opentelemetry_sdk::trace::SpanExporter as _;
use tonic::transport::{Certificate, ServerTlsConfig};

/// An export by the span exporter `telemetry` describes fails (at the handshake) and reaches
/// nothing.
async fn assert_export_refused(telemetry: &TelemetrySettings, collected: &Collected) {
    let exporter = span_exporter(telemetry).unwrap().unwrap();
    let refused = exporter.export(Vec::new()).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(collected.trace_attempts.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_collector_is_reached_only_with_a_trusted_ca_and_a_client_certificate() {
    let pki = Pki::new();
    let collected = Collected::default();
    let port = collected
        .serve(Some(
            ServerTlsConfig::new()
                .identity(pki.server.identity())
                .client_ca_root(Certificate::from_pem(&pki.ca_pem)),
        ))
        .await
        .port();

    let mut settings = common::test_settings();
    settings.telemetry.otlp_endpoint = Some(format!("https://localhost:{port}"));
    settings.telemetry.metrics_interval_ms = 200;

    // The system's roots do not know the test CA: the handshake fails.
    assert_export_refused(&settings.telemetry, &collected).await;

    // The CA alone is not enough: the collector wants a client certificate.
    let write = |name: &str, contents: &str| {
        let path = pki.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    };
    settings.telemetry.otlp_certificate_file = Some(write("collector-ca.pem", &pki.ca_pem));
    assert_export_refused(&settings.telemetry, &collected).await;

    // With the CA and a client certificate, both exporters get through.
    let client = &pki.spiffe_client;
    settings.telemetry.otlp_client_certificate_file = Some(write("exporter.pem", &client.cert_pem));
    settings.telemetry.otlp_client_key_file = Some(write("exporter-key.pem", &client.key_pem));
    assert!(settings.validate(true).is_ok());
    let guard = init_telemetry(&settings, LogBuffer::default()).unwrap();
    let app = spawn_gateway_for(start_simulator().await, |gateway| {
        gateway.telemetry = settings.telemetry.clone();
    })
    .await;
    let user_id = app.seed_user("tls@example.com").await;
    app.users
        .clone()
        .get_user(GetUserRequest {
            user: Some(get_user_request::User::Id(user_id)),
        })
        .await
        .unwrap();
    // Metrics go out on their interval; spans at the latest when telemetry shuts down.
    common::eventually(common::PATIENCE, "metrics arrive over TLS", async || {
        !collected.metrics.lock().unwrap().is_empty()
    })
    .await;
    tokio::task::spawn_blocking(move || guard.shutdown())
        .await
        .unwrap();

    assert!(
        collected.span_count() >= 2,
        "the RPC's server span and its Okta client span arrived over TLS"
    );
}
