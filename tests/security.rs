//! Caller security over real sockets: who may call (authentication), what they may do
//! (authorization, read-only mode), and that refused calls never reach Okta.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use common::{reason, spawn_app_with};
use identity_gateway::auth::hash_api_key;
use identity_gateway::config::Settings;
use identity_gateway::proto::{GetUserRequest, UserLifecycleRequest, UserStatus, get_user_request};
use tonic::{Code, Request};
use tonic_health::pb::HealthCheckRequest;

const BILLING_KEY: &str = "billing-key-5d1c0a3e9b7f4c2a8e6d0b1f3a5c7e9d";
const REPORTS_KEY: &str = "reports-key-0f2e4d6c8b0a1f3e5d7c9b1a3f5e7d9c";

/// Writes a keys file for `billing` and `reports` and points `settings` at it, with
/// insecure mode off.
fn with_api_keys(settings: &mut Settings, dir: &tempfile::TempDir) {
    let path = dir.path().join("api-keys.yaml");
    std::fs::write(
        &path,
        format!(
            "- name: billing\n  sha256: {}\n- name: reports\n  sha256: {}\n",
            hash_api_key(BILLING_KEY),
            hash_api_key(REPORTS_KEY)
        ),
    )
    .unwrap();
    settings.auth.insecure = false;
    settings.auth.api_keys_file = Some(path);
}

/// `message` with the API key `key` attached.
fn keyed<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-api-key", key.parse().unwrap());
    request
}

fn get_user(id: &str) -> GetUserRequest {
    GetUserRequest {
        user: Some(get_user_request::User::Id(id.to_owned())),
    }
}

#[tokio::test]
async fn an_api_key_from_the_keys_file_is_accepted_and_anything_else_is_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = spawn_app_with(|settings| with_api_keys(settings, &dir)).await;
    let user_id = app.seed_user("ada@example.com").await;

    let user = app
        .users
        .get_user(keyed(get_user(&user_id), BILLING_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(user.id, user_id);

    app.clear_sim_requests().await;
    let missing = app.users.get_user(get_user(&user_id)).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated, "{missing:?}");
    assert_eq!(reason(&missing), "CALLER_UNAUTHENTICATED");
    let wrong = app
        .users
        .get_user(keyed(
            get_user(&user_id),
            "not-a-key-of-this-gateway-000000000",
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated, "{wrong:?}");
    assert!(!wrong.message().contains("not-a-key"), "{wrong:?}");
    assert!(
        app.sim_requests().await.is_empty(),
        "refused calls never reach Okta"
    );

    // Probes and grpcurl need no credentials.
    let health = app
        .health
        .check(HealthCheckRequest {
            service: "identity.v1.UserService".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, 1, "SERVING");
}

#[tokio::test]
async fn a_key_presented_in_insecure_mode_is_still_checked() {
    let mut app = spawn_app_with(|_| {}).await;
    let user_id = app.seed_user("ada@example.com").await;
    app.users.get_user(get_user(&user_id)).await.unwrap();
    let refused = app
        .users
        .get_user(keyed(get_user(&user_id), BILLING_KEY))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
}

#[tokio::test]
async fn read_only_mode_refuses_every_change_before_okta_and_serves_reads() {
    let mut app = spawn_app_with(|settings| settings.authz.read_only = true).await;
    let user_id = app.seed_user("ada@example.com").await;
    app.clear_sim_requests().await;
    let refused = app
        .users
        .suspend_user(UserLifecycleRequest {
            user_id: user_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(reason(&refused), "GATEWAY_READ_ONLY");
    assert!(app.sim_requests().await.is_empty(), "nothing reached Okta");
    let user = app
        .users
        .get_user(get_user(&user_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(user.status(), UserStatus::Active);
}
