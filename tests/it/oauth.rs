//! OAuth 2.0 service-app credentials end to end: the gateway configured with a private key file
//! (client credentials + private_key_jwt, DPoP) against the simulated org authorization server,
//! and the simulator's own checks (assertion and proof replay, `ath`, scopes). Keys are generated
//! here; no private key is committed.

use crate::common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use aws_lc_rs::encoding::{AsBigEndian, AsDer};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use identity_gateway::config::Settings;
use identity_gateway::proto::group_service_client::GroupServiceClient;
use identity_gateway::proto::user_service_client::UserServiceClient;
use identity_gateway::proto::{
    GetUserRequest, ListGroupsRequest, ListUsersRequest, UserLifecycleRequest, get_user_request,
};
use identity_gateway::startup::Application;
use okta_sim::Simulator;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use common::{error_metadata, reason, start_simulator, test_settings};

const CLIENT_ID: &str = "0oaservicegateway01";
const ALL_SCOPES: &[&str] = &[
    "okta.users.read",
    "okta.users.manage",
    "okta.groups.read",
    "okta.groups.manage",
    "okta.logs.read",
    "okta.devices.read",
    "okta.devices.manage",
];

/// A freshly generated key pair, its PEM (or JWK) private key text and its public JWK.
struct TestKey {
    private_text: String,
    public_jwk: Value,
    ec: Option<EcdsaKeyPair>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn ec_public(pair: &EcdsaKeyPair) -> (String, String) {
    let point = pair.public_key().as_ref();
    (b64(&point[1..33]), b64(&point[33..65]))
}

impl TestKey {
    fn ec_pem(kid: &str) -> Self {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let (x, y) = ec_public(&pair);
        Self {
            private_text: pem("PRIVATE KEY", pkcs8.as_ref()),
            public_jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": x, "y": y}),
            ec: Some(pair),
        }
    }

    /// An EC private key as a JWK carrying its own `kid`.
    fn ec_jwk(kid: &str) -> Self {
        let key = Self::ec_pem(kid);
        let pair = key.ec.as_ref().unwrap();
        let d = pair.private_key().as_be_bytes().unwrap();
        let mut private = key.public_jwk.clone();
        private["d"] = Value::from(b64(d.as_ref()));
        Self {
            private_text: private.to_string(),
            ..key
        }
    }

    fn rsa_pem(kid: &str) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = pair.public_key();
        let public_jwk = json!({
            "kty": "RSA",
            "kid": kid,
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()),
        });
        Self {
            private_text: pem("PRIVATE KEY", pair.as_der().unwrap().as_ref()),
            public_jwk,
            ec: None,
        }
    }

    /// A compact ES256 JWS, signed here (independently of the gateway's code).
    fn sign(&self, header: Value, claims: Value) -> String {
        let mut header = header;
        header["alg"] = Value::from("ES256");
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self
            .ec
            .as_ref()
            .unwrap()
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", b64(signature.as_ref()))
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn register_client(sim: &Simulator, client: Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/__sim/oauth/clients", sim.base_url()))
        .json(&client)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        201,
        "register: {}",
        response.text().await.unwrap()
    );
}

fn client_doc(keys: &[&Value], scopes: &[&str], dpop_bound: bool, lifetime: u64) -> Value {
    json!({
        "client_id": CLIENT_ID,
        "jwks": {"keys": keys},
        "scopes": scopes,
        "dpop_bound": dpop_bound,
        "token_lifetime_seconds": lifetime,
    })
}

async fn oauth_stats(sim: &Simulator) -> Value {
    reqwest::get(format!("{}/__sim/oauth/stats", sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn seed_user(sim: &Simulator, login: &str) -> String {
    let response = common::seed_simulator(sim, &json!({"users": [{"login": login}]})).await;
    response["users"][login].as_str().unwrap().to_owned()
}

/// A simulated org with one user, `login`, and the gateway's service app registered with every
/// scope: the org, the app's key and the user's id.
async fn org_with_service_app(login: &str) -> (Simulator, TestKey, String) {
    let sim = start_simulator().await;
    let key = TestKey::ec_pem("key-1");
    register_client(
        &sim,
        client_doc(&[&key.public_jwk], ALL_SCOPES, false, 3600),
    )
    .await;
    let user_id = seed_user(&sim, login).await;
    (sim, key, user_id)
}

/// The gateway, configured through the real settings path with a private key file.
struct OAuthGateway {
    users: UserServiceClient<Channel>,
    groups: GroupServiceClient<Channel>,
    settings: Settings,
    debug: String,
    _dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for OAuthGateway {
    fn drop(&mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
    }
}

async fn spawn_oauth_gateway(
    sim: &Simulator,
    key: &TestKey,
    configure: impl FnOnce(&mut Settings),
) -> OAuthGateway {
    let dir = tempfile::tempdir().unwrap();
    let key_path: PathBuf = dir.path().join("okta-private-key");
    std::fs::write(&key_path, &key.private_text).unwrap();
    let mut settings = test_settings();
    settings.okta.org_url = Some(sim.base_url());
    settings.okta.oauth.client_id = Some(CLIENT_ID.to_owned());
    settings.okta.oauth.private_key_file = Some(key_path);
    settings.okta.oauth.key_id = Some("key-1".to_owned());
    configure(&mut settings);
    let target = settings
        .validate(false)
        .unwrap_or_else(|problems| panic!("{problems:?}"))
        .unwrap();
    let okta = identity_gateway::okta::client(&settings.okta, target, None).unwrap();
    let debug = format!("{settings:?} {okta:?}");
    let (shutdown, stopped) = oneshot::channel::<()>();
    let application = Application::build(&settings, okta, None, async {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    let address: SocketAddr = application.local_addr();
    tokio::spawn(application.run_until_stopped());
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    OAuthGateway {
        users: UserServiceClient::new(channel.clone()),
        groups: GroupServiceClient::new(channel),
        settings,
        debug,
        _dir: dir,
        shutdown: Some(shutdown),
    }
}

fn list_users() -> ListUsersRequest {
    ListUsersRequest {
        page_size: 10,
        ..Default::default()
    }
}

fn suspend(user_id: &str) -> UserLifecycleRequest {
    UserLifecycleRequest {
        user_id: user_id.to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_gateway_authenticates_with_a_private_key_and_okta_sees_only_bearer_tokens() {
    let (sim, key, user_id) = org_with_service_app("ada@example.com").await;
    let mut gateway = spawn_oauth_gateway(&sim, &key, |_| {}).await;

    let listed = gateway.users.list_users(list_users()).await.unwrap();
    assert_eq!(listed.get_ref().users.len(), 1);
    let fetched = gateway
        .users
        .get_user(GetUserRequest {
            user: Some(get_user_request::User::Id(user_id.clone())),
        })
        .await
        .unwrap();
    assert_eq!(fetched.get_ref().id, user_id);
    gateway.users.suspend_user(suspend(&user_id)).await.unwrap();
    gateway
        .groups
        .list_groups(ListGroupsRequest::default())
        .await
        .unwrap();

    let stats = oauth_stats(&sim).await;
    assert_eq!(stats["token_requests"], 1, "{stats}");
    // SuspendUser is two Okta calls (the transition, then the user).
    assert_eq!(stats["requests_by_scheme"]["Bearer"], 5, "{stats}");
    assert!(stats["requests_by_scheme"].get("SSWS").is_none(), "{stats}");
    assert!(stats["requests_by_scheme"].get("DPoP").is_none(), "{stats}");
}

/// A relay in front of `sim` that resets every connection whose first request is for the
/// token endpoint and passes every other through: Okta's token endpoint unreachable, its
/// Management API not. Answers the relay's URL.
async fn token_endpoint_unreachable(sim: &Simulator) -> String {
    let upstream: SocketAddr = sim
        .base_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut start = [0u8; 32];
                let Ok(read) = client.peek(&mut start).await else {
                    return;
                };
                if start[..read].starts_with(b"POST /oauth2/") {
                    // Closed with unread data: the peer gets a reset, no answer.
                    drop(client);
                    return;
                }
                let mut okta = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut okta).await;
            });
        }
    });
    format!("http://{address}")
}

/// A change whose access token could not be fetched never left: the caller is told Okta could
/// not be reached and nothing was sent, not that the change's outcome is unknown.
#[tokio::test]
async fn a_change_without_an_access_token_is_known_not_sent() {
    let (sim, key, user_id) = org_with_service_app("token.less@example.com").await;
    let org_url = token_endpoint_unreachable(&sim).await;
    let mut gateway = spawn_oauth_gateway(&sim, &key, |settings| {
        settings.okta.org_url = Some(org_url);
    })
    .await;

    let status = gateway
        .users
        .suspend_user(suspend(&user_id))
        .await
        .unwrap_err();

    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "OKTA_UNREACHABLE", "{status:?}");
    assert!(status.message().contains("nothing was sent"), "{status:?}");
    let stats = oauth_stats(&sim).await;
    assert!(
        stats["requests_by_scheme"].get("Bearer").is_none(),
        "a change went out: {stats}"
    );
}

#[tokio::test]
async fn rsa_pem_and_ec_jwk_keys_work_too() {
    for (key, key_id) in [
        (TestKey::rsa_pem("key-1"), Some("key-1")),
        // A JWK carries its own kid: `okta.oauth.key_id` may stay unset.
        (TestKey::ec_jwk("key-1"), None),
    ] {
        let sim = start_simulator().await;
        register_client(
            &sim,
            client_doc(&[&key.public_jwk], ALL_SCOPES, false, 3600),
        )
        .await;
        let mut gateway = spawn_oauth_gateway(&sim, &key, |settings| {
            settings.okta.oauth.key_id = key_id.map(str::to_owned);
        })
        .await;
        gateway.users.list_users(list_users()).await.unwrap();
        assert_eq!(oauth_stats(&sim).await["requests_by_scheme"]["Bearer"], 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_expiry_many_concurrent_rpcs_share_one_token_request() {
    let sim = start_simulator().await;
    let key = TestKey::ec_pem("key-1");
    register_client(&sim, client_doc(&[&key.public_jwk], ALL_SCOPES, false, 2)).await;
    let gateway = spawn_oauth_gateway(&sim, &key, |_| {}).await;
    gateway
        .users
        .clone()
        .list_users(list_users())
        .await
        .unwrap();
    assert_eq!(oauth_stats(&sim).await["token_requests"], 1);

    // Past the token's lifetime (time passing is the scenario): every RPC needs the new token
    // at the same moment. The second token request below shows the first token had expired.
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let calls = (0..32).map(|_| {
        let mut users = gateway.users.clone();
        async move { users.list_users(list_users()).await }
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    let stats = oauth_stats(&sim).await;
    assert_eq!(stats["token_requests"], 2, "{stats}");
    assert_eq!(stats["requests_by_scheme"]["Bearer"], 33, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_token_is_replaced_once_and_the_request_retried() {
    let (sim, key, user_id) = org_with_service_app("grace@example.com").await;
    let gateway = spawn_oauth_gateway(&sim, &key, |_| {}).await;
    gateway
        .users
        .clone()
        .list_users(list_users())
        .await
        .unwrap();
    reqwest::Client::new()
        .delete(format!("{}/__sim/oauth/tokens", sim.base_url()))
        .send()
        .await
        .unwrap();

    // Concurrent 401s still lead to one new token; a non-idempotent call is retried too.
    let calls = (0..8).map(|_| {
        let mut users = gateway.users.clone();
        async move { users.list_users(list_users()).await.map(|_| ()) }
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    reqwest::Client::new()
        .delete(format!("{}/__sim/oauth/tokens", sim.base_url()))
        .send()
        .await
        .unwrap();
    gateway
        .users
        .clone()
        .suspend_user(suspend(&user_id))
        .await
        .unwrap();
    assert_eq!(oauth_stats(&sim).await["token_requests"], 3);
}

#[tokio::test]
async fn dpop_demanded_by_okta_goes_through_the_nonce_challenge() {
    let sim = start_simulator().await;
    let key = TestKey::ec_pem("key-1");
    register_client(&sim, client_doc(&[&key.public_jwk], ALL_SCOPES, true, 3600)).await;
    // Not configured: the gateway learns it from `invalid_dpop_proof`, then `use_dpop_nonce`.
    let mut gateway = spawn_oauth_gateway(&sim, &key, |_| {}).await;
    let user_id = seed_user(&sim, "lin@example.com").await;
    gateway.users.list_users(list_users()).await.unwrap();
    gateway.users.suspend_user(suspend(&user_id)).await.unwrap();
    let stats = oauth_stats(&sim).await;
    assert_eq!(stats["token_requests"], 3, "{stats}");
    assert_eq!(stats["tokens_issued"], 1, "{stats}");
    assert_eq!(stats["requests_by_scheme"]["DPoP"], 3, "{stats}");
    assert!(
        stats["requests_by_scheme"].get("Bearer").is_none(),
        "{stats}"
    );
}

#[tokio::test]
async fn configured_dpop_with_an_rsa_key_needs_only_the_nonce_round_trip() {
    let sim = start_simulator().await;
    let key = TestKey::rsa_pem("key-1");
    register_client(&sim, client_doc(&[&key.public_jwk], ALL_SCOPES, true, 3600)).await;
    let mut gateway = spawn_oauth_gateway(&sim, &key, |settings| {
        settings.okta.oauth.dpop = true;
    })
    .await;
    for _ in 0..3 {
        gateway.users.list_users(list_users()).await.unwrap();
    }
    let stats = oauth_stats(&sim).await;
    assert_eq!(stats["token_requests"], 2, "{stats}");
    assert_eq!(stats["requests_by_scheme"]["DPoP"], 3, "{stats}");
}

async fn failed_call(
    sim: &Simulator,
    key: &TestKey,
    configure: impl FnOnce(&mut Settings),
) -> tonic::Status {
    let mut gateway = spawn_oauth_gateway(sim, key, configure).await;
    let status = gateway.users.list_users(list_users()).await.unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_ne!(status.code(), Code::Unauthenticated);
    status
}

#[tokio::test]
async fn credential_problems_name_the_setting_to_fix() {
    let sim = start_simulator().await;
    let registered = TestKey::ec_pem("key-1");
    register_client(
        &sim,
        client_doc(&[&registered.public_jwk], ALL_SCOPES, false, 3600),
    )
    .await;

    // Another key under the registered kid: the signature does not verify.
    let status = failed_call(&sim, &TestKey::ec_pem("key-1"), |_| {}).await;
    assert_eq!(reason(&status), "OKTA_OAUTH_REJECTED");
    assert_eq!(
        error_metadata(&status, "okta_oauth_error"),
        "invalid_client"
    );
    assert!(
        status.message().contains("okta.oauth.private_key_file"),
        "{}",
        status.message()
    );

    // A kid Okta does not know.
    let status = failed_call(&sim, &registered, |settings| {
        settings.okta.oauth.key_id = Some("rotated-away".to_owned());
    })
    .await;
    assert_eq!(reason(&status), "OKTA_OAUTH_REJECTED");
    assert!(
        status.message().contains("okta.oauth.key_id"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("rotated-away"),
        "{}",
        status.message()
    );

    // A client id Okta does not know; concurrent calls share the one refused token request
    // (a refusal is answered from memory for 2 s).
    let before = oauth_stats(&sim).await["token_requests"].as_u64().unwrap();
    let gateway = spawn_oauth_gateway(&sim, &registered, |settings| {
        settings.okta.oauth.client_id = Some("0oaunknownclient0001".to_owned());
    })
    .await;
    let calls = (0..8).map(|_| {
        let mut users = gateway.users.clone();
        async move { users.list_users(list_users()).await.unwrap_err() }
    });
    for status in futures::future::join_all(calls).await {
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(reason(&status), "OKTA_OAUTH_REJECTED");
        assert!(
            status.message().contains("okta.oauth.client_id"),
            "{}",
            status.message()
        );
    }
    let after = oauth_stats(&sim).await["token_requests"].as_u64().unwrap();
    assert_eq!(after - before, 1);
}

#[tokio::test]
async fn missing_scopes_are_named() {
    let sim = start_simulator().await;
    let key = TestKey::ec_pem("key-1");
    let read_scopes: Vec<&str> = ALL_SCOPES
        .iter()
        .copied()
        .filter(|scope| scope.ends_with(".read"))
        .collect();
    register_client(
        &sim,
        client_doc(&[&key.public_jwk], &read_scopes, false, 3600),
    )
    .await;
    let user_id = seed_user(&sim, "ken@example.com").await;

    // Requesting ungranted scopes: the token endpoint refuses them all (invalid_scope).
    let status = failed_call(&sim, &key, |_| {}).await;
    assert_eq!(reason(&status), "OKTA_OAUTH_REJECTED");
    assert_eq!(error_metadata(&status, "okta_oauth_error"), "invalid_scope");
    assert!(
        status.message().contains("okta.oauth.read_only_scopes"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("okta.users.manage"),
        "{}",
        status.message()
    );

    // Read-only scopes: reads work, a change is refused for its scope (403, empty body).
    let mut gateway = spawn_oauth_gateway(&sim, &key, |settings| {
        settings.okta.oauth.read_only_scopes = true;
    })
    .await;
    gateway.users.list_users(list_users()).await.unwrap();
    let status = gateway
        .users
        .suspend_user(suspend(&user_id))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(reason(&status), "OKTA_SCOPE_MISSING");
    assert_eq!(
        error_metadata(&status, "okta_missing_scope"),
        "okta.users.manage"
    );
    assert!(
        status.message().contains("`okta.users.manage`"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn secrets_never_reach_debug_output_or_errors() {
    let sim = start_simulator().await;
    let key = TestKey::ec_pem("key-1");
    register_client(
        &sim,
        client_doc(&[&key.public_jwk], &["okta.users.read"], false, 3600),
    )
    .await;
    let mut gateway = spawn_oauth_gateway(&sim, &key, |settings| {
        settings.okta.oauth.scopes = Some(identity_gateway::config::WordList::Text(
            "okta.users.read".to_owned(),
        ));
    })
    .await;
    gateway.users.list_users(list_users()).await.unwrap();
    let status = gateway
        .groups
        .list_groups(ListGroupsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "OKTA_SCOPE_MISSING");
    let key_body: String = key.private_text.lines().skip(1).take(1).collect();
    let everything = format!(
        "{} {:?} {status:?} {}",
        gateway.debug,
        gateway.settings,
        status.message()
    );
    assert!(!everything.contains(&key_body[..24]), "private key leaked");
    assert!(
        !everything.contains("sim."),
        "an access token leaked: {everything}"
    );
    assert!(!everything.contains("eyJ"), "a JWT leaked: {everything}");
}

#[test]
fn oauth_settings_are_validated_with_every_problem_listed() {
    let env = [
        ("IDGW_OKTA__ORG_URL", "https://acme.okta.com"),
        ("IDGW_OKTA__API_TOKEN", "00token"),
        ("IDGW_OKTA__OAUTH__PRIVATE_KEY_FILE", "/nonexistent/key.pem"),
        ("IDGW_OKTA__OAUTH__SCOPES", "okta.users.read openid"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let settings = Settings::load(None, &env).unwrap();
    let problems = settings.validate(false).unwrap_err().join("\n");
    for expected in [
        "not both",
        "`okta.oauth.client_id` is not set",
        "`okta.oauth.private_key_file` could not be read",
        "openid",
    ] {
        assert!(problems.contains(expected), "{expected}: {problems}");
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("public.pem");
    std::fs::write(
        &path,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let mut settings = Settings::default();
    settings.okta.org_url = Some("https://acme.okta.com".to_owned());
    settings.okta.oauth.client_id = Some("0oa1".to_owned());
    settings.okta.oauth.private_key_file = Some(path);
    let problems = settings.validate(false).unwrap_err().join("\n");
    assert!(problems.contains("not the private key"), "{problems}");
}

// ---- the simulated authorization server, driven directly ----

fn token_form(assertion: &str, scope: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("scope", scope)
        .append_pair(
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        )
        .append_pair("client_assertion", assertion)
        .finish()
}

fn assertion(key: &TestKey, token_url: &str, jti: &str) -> String {
    key.sign(
        json!({"kid": "key-1"}),
        json!({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": token_url, "iat": now(),
               "exp": now() + 300, "jti": jti}),
    )
}

fn proof(key: &TestKey, method: &str, htu: &str, extra: Value) -> String {
    let mut claims = json!({"htm": method, "htu": htu, "iat": now(),
                            "jti": format!("p-{}", rand::random::<u64>())});
    if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        claims.extend(extra.clone());
    }
    key.sign(json!({"typ": "dpop+jwt", "jwk": key.public_jwk}), claims)
}

async fn post_token(
    token_url: &str,
    form: String,
    dpop: Option<String>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new()
        .post(token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form);
    if let Some(dpop) = dpop {
        request = request.header("dpop", dpop);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test]
async fn the_simulator_refuses_replays_wrong_ath_and_missing_scopes() {
    let sim = start_simulator().await;
    let key = TestKey::ec_pem("key-1");
    register_client(
        &sim,
        client_doc(&[&key.public_jwk], &["okta.users.read"], true, 3600),
    )
    .await;
    let token_url = format!("{}/oauth2/v1/token", sim.base_url());
    let users_url = format!("{}/api/v1/users", sim.base_url());

    // Nonce challenge, then a token bound to the key.
    let form = token_form(&assertion(&key, &token_url, "a-1"), "okta.users.read");
    let (status, headers, body) = post_token(
        &token_url,
        form.clone(),
        Some(proof(&key, "POST", &token_url, json!({}))),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("use_dpop_nonce"))
    );
    let nonce = headers["dpop-nonce"].to_str().unwrap().to_owned();
    let (status, _, body) = post_token(
        &token_url,
        form.clone(),
        Some(proof(&key, "POST", &token_url, json!({"nonce": nonce}))),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap().to_owned();

    // The same assertion again: its jti was used.
    let (status, _, body) = post_token(
        &token_url,
        form,
        Some(proof(&key, "POST", &token_url, json!({"nonce": nonce}))),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    // Ungranted scope.
    let form = token_form(&assertion(&key, &token_url, "a-2"), "okta.users.manage");
    let (status, _, body) = post_token(
        &token_url,
        form,
        Some(proof(&key, "POST", &token_url, json!({"nonce": nonce}))),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("okta.users.manage")
    );
    // Assertion for another audience.
    let form = token_form(
        &assertion(&key, "https://elsewhere.example/oauth2/v1/token", "a-3"),
        "okta.users.read",
    );
    let (status, _, body) = post_token(
        &token_url,
        form,
        Some(proof(&key, "POST", &token_url, json!({"nonce": nonce}))),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );

    // A skewed clock: the assertion already expired, or lives longer than an hour.
    for (iat, exp, words) in [
        (now() - 900, now() - 600, "expired"),
        (now(), now() + 7200, "expiration"),
    ] {
        let skewed = key.sign(
            json!({"kid": "key-1"}),
            json!({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": token_url, "iat": iat,
                   "exp": exp, "jti": format!("skew-{exp}")}),
        );
        let (status, _, body) = post_token(
            &token_url,
            token_form(&skewed, "okta.users.read"),
            Some(proof(&key, "POST", &token_url, json!({"nonce": nonce}))),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{body}"
        );
        assert!(
            body["error_description"].as_str().unwrap().contains(words),
            "{body}"
        );
    }

    let http = reqwest::Client::new();
    let ath = b64(&Sha256::digest(token.as_bytes()));
    let call = |proof: Option<String>, scheme: &str| {
        let mut request = http
            .get(format!("{users_url}?limit=1"))
            .header("authorization", format!("{scheme} {token}"));
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        request.send()
    };
    let good = proof(&key, "GET", &users_url, json!({"ath": ath}));
    assert_eq!(
        call(Some(good.clone()), "DPoP").await.unwrap().status(),
        200
    );
    // Replayed proof, wrong ath, wrong htm, no proof, Bearer for a DPoP-bound token.
    for (proof, scheme, what) in [
        (Some(good), "DPoP", "replayed jti"),
        (
            Some(proof(
                &key,
                "GET",
                &users_url,
                json!({"ath": b64(&Sha256::digest(b"other"))}),
            )),
            "DPoP",
            "wrong ath",
        ),
        (
            Some(proof(&key, "POST", &users_url, json!({"ath": ath}))),
            "DPoP",
            "wrong htm",
        ),
        (None, "DPoP", "no proof"),
        (None, "Bearer", "bearer scheme"),
    ] {
        let response = call(proof, scheme).await.unwrap();
        assert_eq!(response.status(), 401, "{what}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.contains("error="), "{what}: {challenge}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errorCode"], "E0000011", "{what}");
    }
    // A valid proof but an operation needing another scope: 403, empty body.
    let response = http
        .post(format!(
            "{users_url}/00u0000000000000000x/lifecycle/suspend"
        ))
        .header("authorization", format!("DPoP {token}"))
        .header(
            "dpop",
            proof(
                &key,
                "POST",
                &format!("{users_url}/00u0000000000000000x/lifecycle/suspend"),
                json!({"ath": ath}),
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("DPoP algs="), "{challenge}");
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"okta.users.manage\""),
        "{challenge}"
    );
    assert!(response.bytes().await.unwrap().is_empty());
    // SSWS keeps working beside OAuth.
    let response = http
        .get(&users_url)
        .header("authorization", format!("SSWS {}", common::SIM_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn clients_can_come_from_a_seed_document_and_tokens_expire() {
    let sim = start_simulator().await;
    let key = TestKey::ec_pem("key-1");
    let response = reqwest::Client::new()
        .post(format!("{}/__sim/seed", sim.base_url()))
        .json(&json!({"clients": [client_doc(&[&key.public_jwk], &["okta.users.read"], false, 1)]}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let token_url = format!("{}/oauth2/v1/token", sim.base_url());
    let (status, _, body) = post_token(
        &token_url,
        token_form(&assertion(&key, &token_url, "s-1"), "okta.users.read"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let users = format!("{}/api/v1/users", sim.base_url());
    let http = reqwest::Client::new();
    let get = || http.get(&users).bearer_auth(&token).send();
    assert_eq!(get().await.unwrap().status(), 200);
    // Time passing is the scenario: past the token's one-second lifetime, it is refused.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let response = get().await.unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}
