//! Mutual TLS over real sockets with certificates made in the test: the verified client
//! certificate names the caller (URI SAN, else DNS SAN), untrusted or missing certificates get
//! no call through, a presented credential decides over the certificate, and kubelet probes use
//! the plaintext health port.

use crate::common;
use crate::credentials;

use std::net::SocketAddr;

use common::callers::{BILLING_KEY, keyed, with_api_keys};
use common::{capture_logs, get_user, lifecycle, spawn_app_with, user_service_health};
use credentials::{Credential, DNS_NAME, Pki, SPIFFE_ID, allow_every_caller, ia5};
use identity_gateway::proto::user_service_client::UserServiceClient;
use rcgen::SanType;
use serde_json::Value;
use tonic::Code;
use tonic::transport::Endpoint;
use tonic_health::pb::health_client::HealthClient;

/// (caller, mechanism) of each audit record with outcome OK, oldest first.
fn allowed_callers(records: &[Value]) -> Vec<(String, String)> {
    records
        .iter()
        .filter(|record| record["outcome"] == "OK")
        .map(|record| {
            (
                record["caller"].as_str().unwrap().to_owned(),
                record["auth"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair(caller: &str, mechanism: &str) -> (String, String) {
    (caller.to_owned(), mechanism.to_owned())
}

const LOOPBACK_ANY_PORT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

#[tokio::test]
async fn mutual_tls_names_the_caller_by_uri_san_then_dns_san_and_refuses_other_certificates() {
    let (logs, _capture) = capture_logs();
    let pki = Pki::new();
    let app = spawn_app_with(|settings| {
        pki.configure(settings, true);
        allow_every_caller(settings, pki.dir.path());
        settings.grpc.health_listen_addr = Some(LOOPBACK_ANY_PORT);
    })
    .await;
    let user_id = app.seed_user("ada@example.com").await;

    let billing_channel = pki
        .connect(app.address, Some(&pki.spiffe_client))
        .await
        .unwrap();
    let mut billing = UserServiceClient::new(billing_channel);
    billing.get_user(get_user(&user_id)).await.unwrap();
    billing.suspend_user(lifecycle(&user_id)).await.unwrap();
    let reports_channel = pki
        .connect(app.address, Some(&pki.dns_client))
        .await
        .unwrap();
    UserServiceClient::new(reports_channel)
        .unsuspend_user(lifecycle(&user_id))
        .await
        .unwrap();
    let records = logs.audit_records();
    assert_eq!(
        allowed_callers(&records),
        [pair(SPIFFE_ID, "mtls"), pair(DNS_NAME, "mtls")],
        "the URI SAN wins over the DNS SAN, then the DNS SAN names the caller"
    );
    assert!(
        records[0]["peer"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "the peer address is known over TLS too: {records:?}"
    );

    // Without a client certificate, or with one from another CA, no call gets through.
    app.clear_sim_requests().await;
    for client in [None, Some(&pki.untrusted_client)] {
        let outcome = match pki.connect(app.address, client).await {
            Err(error) => Err(error.to_string()),
            Ok(channel) => UserServiceClient::new(channel)
                .get_user(get_user(&user_id))
                .await
                .map(|_| ())
                .map_err(|status| status.to_string()),
        };
        assert!(outcome.is_err(), "the handshake is refused: {outcome:?}");
    }
    assert!(app.sim_requests().await.is_empty(), "nothing reached Okta");

    // The kubelet's gRPC probe cannot speak TLS: it uses the plaintext health port.
    let health_channel = Endpoint::from_shared(format!("http://{}", app.health_address.unwrap()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(health_channel);
    assert_eq!(user_service_health(&mut health).await, 1, "SERVING");
}

#[tokio::test]
async fn with_api_keys_too_a_client_certificate_is_optional_and_a_presented_key_decides() {
    let (logs, _capture) = capture_logs();
    let pki = Pki::new();
    let app = spawn_app_with(|settings| {
        with_api_keys(settings, &pki.dir);
        pki.configure(settings, true);
        allow_every_caller(settings, pki.dir.path());
    })
    .await;
    let user_id = app.seed_user("ada@example.com").await;

    let mut anonymous_tls = UserServiceClient::new(pki.connect(app.address, None).await.unwrap());
    anonymous_tls
        .suspend_user(keyed(lifecycle(&user_id), BILLING_KEY))
        .await
        .unwrap();
    let missing = anonymous_tls
        .get_user(get_user(&user_id))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated, "{missing:?}");
    assert!(
        missing.message().contains("API key") && missing.message().contains("client certificate"),
        "the refusal names what is accepted: {missing:?}"
    );

    let mut billing = UserServiceClient::new(
        pki.connect(app.address, Some(&pki.spiffe_client))
            .await
            .unwrap(),
    );
    billing.unsuspend_user(lifecycle(&user_id)).await.unwrap();
    let wrong_key = billing
        .get_user(keyed(
            get_user(&user_id),
            "not-a-key-of-this-gateway-000000000",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        wrong_key.code(),
        Code::Unauthenticated,
        "an invalid key never falls back to the certificate: {wrong_key:?}"
    );
    assert_eq!(
        allowed_callers(&logs.audit_records()),
        [pair("apikey:billing", "api_key"), pair(SPIFFE_ID, "mtls")]
    );

    let untrusted = match pki.connect(app.address, Some(&pki.untrusted_client)).await {
        Err(_) => true,
        Ok(channel) => UserServiceClient::new(channel)
            .get_user(keyed(get_user(&user_id), BILLING_KEY))
            .await
            .is_err(),
    };
    assert!(
        untrusted,
        "a presented certificate is verified even when optional"
    );
    assert!(
        !logs.text().contains(BILLING_KEY),
        "the API key never reaches the logs"
    );
}

/// How a GetUser presented with `client` ends: OK or the status code.
async fn outcome_with(pki: &Pki, address: SocketAddr, client: &Credential) -> Result<(), Code> {
    let channel = pki.connect(address, Some(client)).await.unwrap();
    UserServiceClient::new(channel)
        .get_user(get_user("00uAAAAAAAAAAAAAAAAA"))
        .await
        .map(|_| ())
        .or_else(|status| match status.code() {
            Code::NotFound => Ok(()),
            code => Err(code),
        })
}

#[tokio::test]
async fn a_common_name_names_the_caller_only_when_allowed_and_never_under_name_constraints() {
    let pki = Pki::new();
    let configure = |settings: &mut identity_gateway::config::Settings| {
        pki.configure(settings, true);
        allow_every_caller(settings, pki.dir.path());
    };
    let by_default = spawn_app_with(configure).await;
    let with_common_names = spawn_app_with(|settings| {
        configure(settings);
        settings.auth.tls.identity_from_common_name = true;
    })
    .await;
    let common_name_only = pki.client_via_intermediate("Billing Batch", None);
    // A trusted intermediate constrained to `payments.svc` issues a name outside it, as a CN.
    let outside_constraints = pki.client_via_intermediate("root.admin.svc", Some("payments.svc"));

    assert_eq!(
        outcome_with(&pki, by_default.address, &common_name_only).await,
        Err(Code::Unauthenticated),
        "the common name is no identity unless `auth.tls.identity_from_common_name` is set"
    );
    assert_eq!(
        outcome_with(&pki, with_common_names.address, &common_name_only).await,
        Ok(())
    );
    for app in [&by_default, &with_common_names] {
        assert_eq!(
            outcome_with(&pki, app.address, &outside_constraints).await,
            Err(Code::Unauthenticated),
            "a chain with name constraints never names its caller by common name"
        );
    }

    // Names of other mechanisms, near misses, and more than one URI SAN.
    let refused = [
        pki.client_via_intermediate(SPIFFE_ID, None),
        pki.client("system:serviceaccount:payments:billing", Vec::new()),
        pki.client("APIKEY:admin", Vec::new()),
        pki.client(" apikey:admin", Vec::new()),
        pki.client("Anonymous", Vec::new()),
        pki.client("admin\u{200B}", Vec::new()),
        pki.client("\u{202E}nimda", Vec::new()),
        pki.client(
            "billing",
            vec![
                SanType::URI(ia5(SPIFFE_ID)),
                SanType::URI(ia5("spiffe://cluster.local/ns/payments/sa/root")),
            ],
        ),
        pki.client("billing", vec![SanType::URI(ia5("apikey:admin"))]),
    ];
    for (index, client) in refused.iter().enumerate() {
        assert_eq!(
            outcome_with(&pki, with_common_names.address, client).await,
            Err(Code::Unauthenticated),
            "certificate {index}"
        );
    }
}

/// An HTTPS client trusting the test CA, presenting `client` if given.
fn https_client(pki: &Pki, client: Option<&Credential>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap()]);
    if let Some(client) = client {
        let pem = format!("{}{}", client.cert_pem, client.key_pem);
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn the_scim_server_serves_the_same_tls_and_names_callers_by_their_certificates() {
    let (logs, _capture) = capture_logs();
    let pki = Pki::new();
    let app = spawn_app_with(|settings| {
        pki.configure(settings, true);
        allow_every_caller(settings, pki.dir.path());
        settings.scim.listen_addr = Some(LOOPBACK_ANY_PORT);
    })
    .await;
    let user_id = app.seed_user("ada@example.com").await;
    let url = format!(
        "https://localhost:{}/scim/v2/Users/{user_id}",
        app.scim_address.unwrap().port()
    );

    // A change over SCIM, audited as the certificate's caller.
    let patch = serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "title", "value": "Analyst"}]
    });
    let answer = https_client(&pki, Some(&pki.spiffe_client))
        .patch(&url)
        .header("content-type", "application/scim+json")
        .body(patch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let records = logs.audit_records();
    assert_eq!(
        allowed_callers(&records),
        [pair(SPIFFE_ID, "mtls")],
        "the SCIM change ran as the certificate's caller: {records:?}"
    );

    // Without a client certificate, or with one from another CA, the handshake is refused.
    app.clear_sim_requests().await;
    for client in [None, Some(&pki.untrusted_client)] {
        let outcome = https_client(&pki, client).get(&url).send().await;
        assert!(outcome.is_err(), "refused: {outcome:?}");
    }
    assert!(app.sim_requests().await.is_empty(), "nothing reached Okta");
}
