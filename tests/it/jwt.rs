//! Bearer JWT authentication over real sockets, with RSA and EC keys made in the test and a
//! JWKS served over HTTP or from a file: valid tokens name their subject, every failed check is
//! UNAUTHENTICATED before any Okta call, rotations are followed, and tokens never reach the logs.

use crate::common;
use crate::credentials;

use common::callers::{BILLING_KEY, with_api_keys};
use common::{TestApp, capture_logs, get_user, lifecycle, reason, spawn_app_with};
use credentials::{JwksServer, TestKey, allow_every_caller, bearer, jwks, now, with_metadata};
use identity_gateway::config::{Settings, WordList};
use serde_json::{Value, json};
use tonic::Code;

const ISSUER: &str = "https://issuer.example.test";
const AUDIENCE: &str = "identity-gateway";

/// Accepts tokens of [`ISSUER`] for [`AUDIENCE`] with keys from `jwks_url`, and lets every
/// authenticated caller in (a policy written into `dir`).
fn with_jwt(settings: &mut Settings, jwks_url: &str, dir: &tempfile::TempDir) {
    settings.auth.insecure = false;
    allow_every_caller(settings, dir.path());
    settings.auth.jwt.issuer = Some(ISSUER.to_owned());
    settings.auth.jwt.audiences = Some(WordList::Text(format!("other-service {AUDIENCE}")));
    settings.auth.jwt.jwks_url = Some(jwks_url.to_owned());
}

/// Claims of a valid workload token for `subject`.
fn claims(subject: &str) -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "iat": now(),
        "nbf": now(),
        "exp": now() + 600,
    })
}

/// `claims` with `name` set to `value`, or removed when `value` is null.
fn changed(mut claims: Value, name: &str, value: Value) -> Value {
    let object = claims.as_object_mut().unwrap();
    if value.is_null() {
        object.remove(name);
    } else {
        object.insert(name.to_owned(), value);
    }
    claims
}

/// The caller identity of each audit record with outcome OK, oldest first.
fn allowed_callers(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter(|record| record["outcome"] == "OK" && record["auth"] == "jwt")
        .map(|record| record["caller"].as_str().unwrap().to_owned())
        .collect()
}

/// Suspends then unsuspends `user_id` with `token`: two audited changes.
async fn change_user_with(app: &mut TestApp, user_id: &str, token: &str) {
    app.users
        .suspend_user(bearer(lifecycle(user_id), token))
        .await
        .unwrap();
    app.users
        .unsuspend_user(bearer(lifecycle(user_id), token))
        .await
        .unwrap();
}

#[tokio::test]
async fn rs256_and_es256_tokens_are_accepted_and_name_their_subject() {
    let (logs, _capture) = capture_logs();
    let rsa = TestKey::rsa("rsa-1");
    let ec = TestKey::ec("ec-1");
    let issuer = JwksServer::start(jwks(&[&rsa, &ec])).await;
    let dir = tempfile::tempdir().unwrap();
    let mut app = spawn_app_with(|settings| with_jwt(settings, &issuer.url, &dir)).await;
    let user_id = app.seed_user("ada@example.com").await;

    let rsa_token = rsa.sign(&claims("workload-rsa"));
    let ec_token = ec.sign(&claims("workload-ec"));
    change_user_with(&mut app, &user_id, &rsa_token).await;
    change_user_with(&mut app, &user_id, &ec_token).await;

    assert_eq!(
        allowed_callers(&logs.audit_records()),
        ["workload-rsa", "workload-rsa", "workload-ec", "workload-ec"]
    );
    let logged = logs.text();
    for token in [&rsa_token, &ec_token] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!logged.contains(signature), "tokens never reach the logs");
    }
}

#[tokio::test]
async fn every_failed_check_is_unauthenticated_names_the_check_and_never_reaches_okta() {
    let (logs, _capture) = capture_logs();
    let rsa = TestKey::rsa("rsa-1");
    let impostor = TestKey::rsa("rsa-1");
    let stranger = TestKey::ec("ec-404");
    let issuer = JwksServer::start(jwks(&[&rsa])).await;
    let dir = tempfile::tempdir().unwrap();
    let mut app = spawn_app_with(|settings| {
        with_api_keys(settings, &dir);
        with_jwt(settings, &issuer.url, &dir);
    })
    .await;
    let user_id = app.seed_user("ada@example.com").await;
    let valid = rsa.sign(&claims("workload"));
    let parts: Vec<&str> = valid.split('.').collect();
    let (header, payload, signature) = (parts[0], parts[1], parts[2]);
    let unsigned = format!(
        "{}.{payload}.",
        base64_url(&json!({"alg": "none", "kid": "rsa-1"}))
    );
    let tampered = format!("{header}.{}.{signature}", base64_url(&claims("admin")));
    let cases = [
        (
            rsa.sign(&changed(claims("w"), "exp", json!(now() - 3600))),
            "expired",
        ),
        (
            rsa.sign(&changed(claims("w"), "exp", Value::Null)),
            "no expiry",
        ),
        (
            rsa.sign(&changed(claims("w"), "nbf", json!(now() + 3600))),
            "not valid yet",
        ),
        (
            rsa.sign(&changed(claims("w"), "aud", json!(["someone-else"]))),
            "audience",
        ),
        (
            rsa.sign(&changed(claims("w"), "iss", json!("https://evil.example"))),
            "issuer",
        ),
        (impostor.sign(&claims("w")), "signature does not verify"),
        (tampered, "signature does not verify"),
        (unsigned, "unsigned"),
        (
            rsa.sign_with_header(&json!({"alg": "HS256", "kid": "rsa-1"}), &claims("w")),
            "algorithm is not accepted",
        ),
        (
            rsa.sign_with_header(&json!({"alg": "RS256"}), &claims("w")),
            "no key id",
        ),
        (stranger.sign(&claims("w")), "key id (`kid`) is not in"),
        (
            rsa.sign(&changed(claims("w"), "sub", json!("apikey:billing"))),
            "subject",
        ),
        ("not-a-jwt".to_owned(), "not a JWT"),
    ];
    app.clear_sim_requests().await;
    for (token, check) in &cases {
        let refused = app
            .users
            .get_user(bearer(get_user(&user_id), token))
            .await
            .unwrap_err();
        assert_eq!(
            refused.code(),
            Code::Unauthenticated,
            "{check}: {refused:?}"
        );
        assert_eq!(reason(&refused), "CALLER_UNAUTHENTICATED");
        assert!(refused.message().contains(check), "{check}: {refused:?}");
        assert!(!refused.message().contains(token.as_str()), "{refused:?}");
    }
    let basic = app
        .users
        .get_user(with_metadata(
            get_user(&user_id),
            "authorization",
            "Basic dXNlcjpwYXNz",
        ))
        .await
        .unwrap_err();
    assert!(basic.message().contains("Bearer <JWT>"), "{basic:?}");
    let mut ambiguous = bearer(get_user(&user_id), &valid);
    ambiguous
        .metadata_mut()
        .insert("x-api-key", BILLING_KEY.parse().unwrap());
    let ambiguous = app.users.get_user(ambiguous).await.unwrap_err();
    assert!(ambiguous.message().contains("not both"), "{ambiguous:?}");

    assert!(
        app.sim_requests().await.is_empty(),
        "refused calls never reach Okta"
    );
    let logged = logs.text();
    for (token, _) in &cases {
        if let Some(signature) = token.rsplit('.').next().filter(|part| part.len() > 16) {
            assert!(!logged.contains(signature), "tokens never reach the logs");
        }
    }
    assert!(!logged.contains(payload), "claims never reach the logs");
}

fn base64_url(value: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn a_rotated_jwks_is_followed_after_one_refetch_and_unknown_kids_force_no_more() {
    let old_key = TestKey::ec("2024-01");
    let new_key = TestKey::ec("2024-02");
    let issuer = JwksServer::start(jwks(&[&old_key])).await;
    let dir = tempfile::tempdir().unwrap();
    let mut app = spawn_app_with(|settings| with_jwt(settings, &issuer.url, &dir)).await;
    let user_id = app.seed_user("ada@example.com").await;
    app.users
        .get_user(bearer(get_user(&user_id), &old_key.sign(&claims("w"))))
        .await
        .unwrap();
    assert_eq!(issuer.fetches(), 1, "fetched once at start");

    issuer.publish(jwks(&[&old_key, &new_key]));
    app.users
        .get_user(bearer(get_user(&user_id), &new_key.sign(&claims("w"))))
        .await
        .unwrap();
    assert_eq!(issuer.fetches(), 2, "the unknown kid caused one fetch");

    let unknown = TestKey::ec("2024-03");
    for _ in 0..3 {
        let refused = app
            .users
            .get_user(bearer(get_user(&user_id), &unknown.sign(&claims("w"))))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    }
    assert_eq!(
        issuer.fetches(),
        2,
        "made-up key ids cannot make the gateway fetch again at once"
    );
}

#[tokio::test]
async fn a_kubernetes_projected_service_account_token_names_the_service_account() {
    let (logs, _capture) = capture_logs();
    let cluster_key = TestKey::rsa("k8s-2025");
    let dir = tempfile::tempdir().unwrap();
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks(&[&cluster_key]).to_string()).unwrap();
    let cluster_issuer = "https://kubernetes.default.svc.cluster.local";
    let mut app = spawn_app_with(|settings| {
        settings.auth.insecure = false;
        settings.auth.jwt.issuer = Some(cluster_issuer.to_owned());
        settings.auth.jwt.audiences = Some(WordList::List(vec![AUDIENCE.to_owned()]));
        settings.auth.jwt.jwks_file = Some(jwks_file.clone());
        allow_every_caller(settings, dir.path());
    })
    .await;
    let user_id = app.seed_user("ada@example.com").await;
    // The shape of a projected token (Kubernetes 1.30), audience set in the volume source.
    let projected = |namespace: &str, account: &str| {
        json!({
            "aud": [AUDIENCE],
            "exp": now() + 3600,
            "iat": now(),
            "nbf": now(),
            "iss": cluster_issuer,
            "jti": "0d9c3f2b-1a77-4f63-9b7e-3f9a2f630f8c",
            "kubernetes.io": {
                "namespace": namespace,
                "node": {"name": "node-a", "uid": "5a8d6c1e-6f0c-4f8e-9d3c-1b2a3c4d5e6f"},
                "pod": {"name": "billing-7c9f8d-x2x4q", "uid": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"},
                "serviceaccount": {"name": account, "uid": "9d8e7f60-5a4b-3c2d-1e0f-a9b8c7d6e5f4"}
            },
            "sub": format!("system:serviceaccount:{namespace}:{account}"),
        })
    };
    change_user_with(
        &mut app,
        &user_id,
        &cluster_key.sign(&projected("payments", "billing")),
    )
    .await;

    // The cluster rotates its signing key: the file is updated and the new kid is followed.
    let next_key = TestKey::rsa("k8s-2026");
    std::fs::write(&jwks_file, jwks(&[&cluster_key, &next_key]).to_string()).unwrap();
    app.users
        .suspend_user(bearer(
            lifecycle(&user_id),
            &next_key.sign(&projected("reports", "exporter")),
        ))
        .await
        .unwrap();
    assert_eq!(
        allowed_callers(&logs.audit_records()),
        [
            "system:serviceaccount:payments:billing",
            "system:serviceaccount:payments:billing",
            "system:serviceaccount:reports:exporter",
        ]
    );
}

#[tokio::test]
async fn a_bearer_token_is_checked_even_in_insecure_mode() {
    let key = TestKey::ec("ec-1");
    let issuer = JwksServer::start(jwks(&[&key])).await;
    let dir = tempfile::tempdir().unwrap();
    let mut app = spawn_app_with(|settings| {
        with_jwt(settings, &issuer.url, &dir);
        settings.auth.insecure = true;
    })
    .await;
    let user_id = app.seed_user("ada@example.com").await;
    app.users.get_user(get_user(&user_id)).await.unwrap();
    let expired = key.sign(&changed(claims("w"), "exp", json!(now() - 3600)));
    let refused = app
        .users
        .get_user(bearer(get_user(&user_id), &expired))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::Unauthenticated,
        "an invalid token never falls back to anonymous: {refused:?}"
    );
}

/// The `grpc-status` of a GetUser sent as plain HTTP/2 with `grpc-timeout: {timeout_ms}m` and a
/// bearer token: a client without a timer of its own, so the status is the gateway's.
async fn grpc_status_within(app: &TestApp, token: &str, user_id: &str, timeout_ms: u64) -> String {
    use prost::Message as _;
    let message = get_user(user_id).encode_to_vec();
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&message);
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client
        .post(format!(
            "http://{}/identity.v1.UserService/GetUser",
            app.address
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", format!("{timeout_ms}m"))
        .header("authorization", format!("Bearer {token}"))
        .body(frame)
        .send()
        .await
        .unwrap();
    let status = response.headers().get("grpc-status").cloned();
    status.unwrap().to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_slow_jwks_refetch_ends_at_the_deadline_with_deadline_exceeded() {
    let known = TestKey::ec("2024-01");
    let rotated = TestKey::ec("2024-02");
    let issuer = JwksServer::start(jwks(&[&known])).await;
    let dir = tempfile::tempdir().unwrap();
    let by_caller = spawn_app_with(|settings| with_jwt(settings, &issuer.url, &dir)).await;
    let by_default = spawn_app_with(|settings| {
        with_jwt(settings, &issuer.url, &dir);
        settings.grpc.request_timeout_ms = 500;
    })
    .await;
    // A token of a key the gateways have not seen: each refetches the JWKS, which is slow now.
    issuer.publish(jwks(&[&known, &rotated]));
    issuer.set_delay(std::time::Duration::from_secs(3));
    let token = rotated.sign(&claims("w"));
    let user_id = "00uAAAAAAAAAAAAAAAAA";

    // The caller's deadline: DEADLINE_EXCEEDED (4), not tonic's CANCELLED (1).
    assert_eq!(
        grpc_status_within(&by_caller, &token, user_id, 500).await,
        "4"
    );
    // No caller deadline: the gateway's own timeout bounds authentication too.
    let status = by_default
        .users
        .clone()
        .get_user(bearer(get_user(user_id), &token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(reason(&status), "DEADLINE_EXPIRED");

    // The refetch outlives the call it was made for: the rotated key is in hand once it ends,
    // without another fetch (those wait 10 s after an unknown key id).
    let outcome = common::eventually(
        std::time::Duration::from_secs(9),
        "the rotated key is accepted once the refetch ends",
        async || {
            let call = by_caller
                .users
                .clone()
                .get_user(bearer(get_user(user_id), &token))
                .await;
            match call {
                Err(status) if status.code() == Code::Unauthenticated => None,
                outcome => Some(outcome),
            }
        },
    )
    .await;
    assert_eq!(outcome.unwrap_err().code(), Code::NotFound, "authenticated");
}

#[tokio::test]
async fn subjects_of_other_mechanisms_near_misses_and_string_times_are_refused() {
    let key = TestKey::ec("ec-1");
    let issuer = JwksServer::start(jwks(&[&key])).await;
    let dir = tempfile::tempdir().unwrap();
    let mut app = spawn_app_with(|settings| with_jwt(settings, &issuer.url, &dir)).await;
    let user_id = app.seed_user("ada@example.com").await;
    let service_account = "system:serviceaccount:payments:billing";
    let legacy = |namespace: &str, account: &str| {
        let flat = changed(
            claims(service_account),
            "kubernetes.io/serviceaccount/namespace",
            json!(namespace),
        );
        changed(
            flat,
            "kubernetes.io/serviceaccount/service-account.name",
            json!(account),
        )
    };
    let far_future = now() + 10 * 365 * 24 * 3600;
    let refused = [
        claims("spiffe://cluster.local/ns/payments/sa/root"),
        claims("SPIFFE://cluster.local/ns/payments/sa/root"),
        claims(service_account),
        claims("system:serviceaccount:a:b:c"),
        claims("System:ServiceAccount:payments:billing"),
        legacy("payments", "root"),
        claims("APIKEY:admin"),
        claims(" apikey:admin"),
        claims("Anonymous"),
        claims("admin\u{200B}"),
        claims("\u{202E}nimda"),
        changed(claims("w"), "nbf", json!(far_future.to_string())),
        changed(claims("w"), "iat", json!(far_future.to_string())),
        changed(claims("w"), "exp", json!(far_future.to_string())),
    ];
    for (index, claims) in refused.iter().enumerate() {
        let outcome = app
            .users
            .get_user(bearer(get_user(&user_id), &key.sign(claims)))
            .await;
        assert_eq!(
            outcome.map(|_| ()).map_err(|status| status.code()),
            Err(Code::Unauthenticated),
            "case {index}: {claims}"
        );
    }
    // Legacy service-account tokens carry the flat claims; agreeing ones name the account.
    app.users
        .get_user(bearer(
            get_user(&user_id),
            &key.sign(&legacy("payments", "billing")),
        ))
        .await
        .unwrap();

    // Two `authorization` values: refused even when the first is valid.
    let valid = key.sign(&claims("w"));
    for second in ["Bearer not-a-jwt".to_owned(), format!("Bearer {valid}")] {
        let mut request = bearer(get_user(&user_id), &valid);
        request
            .metadata_mut()
            .append("authorization", second.parse().unwrap());
        let refused = app.users.get_user(request).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
        assert!(refused.message().contains("authorization"), "{refused:?}");
    }
}

#[tokio::test]
async fn a_scim_bearer_jwt_names_its_subject_and_a_bad_one_is_refused() {
    let (logs, _capture) = capture_logs();
    let rsa = TestKey::rsa("rsa-1");
    let issuer = JwksServer::start(jwks(&[&rsa])).await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|settings| {
        with_jwt(settings, &issuer.url, &dir);
        settings.scim.listen_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let user_id = app.seed_user("ada@example.com").await;
    let url = format!(
        "http://{}/scim/v2/Users/{user_id}",
        app.scim_address.unwrap()
    );
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "title", "value": "Analyst"}]
    })
    .to_string();
    let send = async |token: &str| {
        app.http
            .patch(&url)
            .bearer_auth(token)
            .header("content-type", "application/scim+json")
            .body(patch.clone())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };

    assert_eq!(send(&rsa.sign(&claims("scim-sync"))).await, 200);
    let expired = changed(claims("scim-sync"), "exp", json!(now() - 3600));
    assert_eq!(send(&rsa.sign(&expired)).await, 401);
    assert_eq!(allowed_callers(&logs.audit_records()), ["scim-sync"]);
}
