//! The error-mapping table end to end: the simulator is told to fail a call, the caller sees the
//! documented status with ErrorInfo carrying Okta's code, error id and request id.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{SIM_TOKEN, error_metadata, reason, spawn_app, spawn_app_with};
use identity_gateway::proto::{CreateUserRequest, GetUserRequest, UserProfile, get_user_request};
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

fn get_by_id(user_id: &str) -> GetUserRequest {
    GetUserRequest {
        user: Some(get_user_request::User::Id(user_id.to_owned())),
    }
}

fn new_user() -> CreateUserRequest {
    CreateUserRequest {
        profile: Some(UserProfile {
            login: "e@example.com".to_owned(),
            email: "e@example.com".to_owned(),
            first_name: "E".to_owned(),
            last_name: "Rror".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn okta_faults_map_to_the_documented_statuses() {
    let app = spawn_app_with(|settings| settings.okta.max_retries = 0).await;
    let user_id = app.seed_user("t@example.com").await;
    let cases = [
        (503, Some("E0000010"), Code::Unavailable, "OKTA_UNAVAILABLE"),
        (500, Some("E0000009"), Code::Unavailable, "OKTA_UNAVAILABLE"),
        (
            429,
            Some("E0000047"),
            Code::ResourceExhausted,
            "OKTA_RATE_LIMITED",
        ),
        (
            401,
            Some("E0000011"),
            Code::Internal,
            "OKTA_CREDENTIALS_REJECTED",
        ),
        (
            403,
            Some("E0000006"),
            Code::Internal,
            "OKTA_PERMISSION_DENIED",
        ),
        (404, Some("E0000007"), Code::NotFound, "OKTA_NOT_FOUND"),
        (
            400,
            Some("E0000001"),
            Code::InvalidArgument,
            "OKTA_VALIDATION_FAILED",
        ),
        (
            403,
            Some("E0000038"),
            Code::FailedPrecondition,
            "OKTA_WRONG_STATUS",
        ),
    ];
    for (http_status, error_code, expected_code, expected_reason) in cases {
        app.inject_fault(json!({
            "method": "GET", "path_prefix": "/api/v1/users/", "status": http_status,
            "error_code": error_code, "times": 1
        }))
        .await;
        let status = app
            .users
            .clone()
            .get_user(get_by_id(&user_id))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            expected_code,
            "HTTP {http_status} {error_code:?}: {status:?}"
        );
        assert_eq!(reason(&status), expected_reason, "HTTP {http_status}");
        assert_eq!(
            error_metadata(&status, "okta_error_code"),
            error_code.unwrap_or("")
        );
        assert!(
            error_metadata(&status, "okta_error_id").starts_with("oae"),
            "{status:?}"
        );
        assert!(!error_metadata(&status, "okta_request_id").is_empty());
        if expected_code == Code::ResourceExhausted {
            assert!(
                status.get_details_retry_info().is_some(),
                "429 carries RetryInfo"
            );
        }
    }
}

#[tokio::test]
async fn reads_are_retried_on_server_errors_within_the_retry_budget() {
    let app = spawn_app_with(|settings| settings.okta.max_retries = 2).await;
    let user_id = app.seed_user("retry@example.com").await;
    app.clear_sim_requests().await;
    app.inject_fault(
        json!({"method": "GET", "path_prefix": "/api/v1/users/", "status": 503, "times": 2}),
    )
    .await;
    let user = app
        .users
        .clone()
        .get_user(get_by_id(&user_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(user.id, user_id);
    assert_eq!(
        app.sim_requests().await.len(),
        3,
        "two failures, then success"
    );
}

#[tokio::test]
async fn a_create_that_failed_upstream_is_never_sent_twice() {
    let app = spawn_app_with(|settings| settings.okta.max_retries = 3).await;
    app.inject_fault(
        json!({"method": "POST", "path_prefix": "/api/v1/users", "status": 503, "times": 1}),
    )
    .await;
    let status = app.users.clone().create_user(new_user()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    let posts = app
        .sim_requests()
        .await
        .into_iter()
        .filter(|request| request["method"] == "POST")
        .count();
    assert_eq!(posts, 1);
}

#[tokio::test]
async fn a_wrong_gateway_token_reads_as_an_operator_problem_and_is_never_echoed() {
    let app = spawn_app_with(|settings| {
        settings.okta.api_token = Some("wrong-token-canary-7d1e".to_owned().into());
    })
    .await;
    let status = app
        .users
        .clone()
        .get_user(get_by_id("00uAAAAAAAAAAAAAAAAA"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(reason(&status), "OKTA_CREDENTIALS_REJECTED");
    assert_eq!(error_metadata(&status, "okta_error_code"), "E0000011");
    let shown = format!("{status:?}");
    assert!(
        !shown.contains("wrong-token-canary-7d1e") && !shown.contains(SIM_TOKEN),
        "{shown}"
    );
}

#[tokio::test]
async fn a_slow_okta_is_deadline_exceeded_and_an_unreachable_one_unavailable() {
    let app = spawn_app_with(|settings| {
        settings.okta.request_timeout_ms = 200;
        settings.okta.max_retries = 0;
    })
    .await;
    app.inject_fault(json!({"method": "GET", "path_prefix": "/api/v1/users/", "status": 200, "delay_ms": 1500, "times": 1})).await;
    let slow = app
        .users
        .clone()
        .get_user(get_by_id("00uAAAAAAAAAAAAAAAAA"))
        .await
        .unwrap_err();
    assert_eq!(slow.code(), Code::DeadlineExceeded);
    assert_eq!(reason(&slow), "OKTA_TIMEOUT");

    let unreachable = spawn_app_with(|settings| {
        settings.okta.org_url = Some("http://127.0.0.1:1".to_owned());
        settings.okta.max_retries = 0;
    })
    .await;
    let status = unreachable
        .users
        .clone()
        .get_user(get_by_id("00uAAAAAAAAAAAAAAAAA"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "OKTA_UNREACHABLE");
}

#[tokio::test]
async fn the_gateways_own_timeout_answers_deadline_exceeded_before_a_slow_okta() {
    let app = spawn_app_with(|settings| settings.grpc.request_timeout_ms = 300).await;
    app.inject_fault(json!({"method": "GET", "path_prefix": "/api/v1/users/", "status": 200, "delay_ms": 3000, "times": 1})).await;
    let status = app
        .users
        .clone()
        .get_user(get_by_id("00uAAAAAAAAAAAAAAAAA"))
        .await
        .unwrap_err();
    // Had the gateway waited for Okta, the delayed empty 200 would have been OKTA_UNEXPECTED_RESPONSE.
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert_eq!(reason(&status), "DEADLINE_EXPIRED");
}

#[tokio::test]
async fn the_callers_deadline_bounds_a_slow_okta_call() {
    let app = spawn_app().await;
    app.inject_fault(json!({"method": "GET", "path_prefix": "/api/v1/users/", "status": 200, "delay_ms": 3000, "times": 1})).await;
    let mut request = tonic::Request::new(get_by_id("00uAAAAAAAAAAAAAAAAA"));
    request.set_timeout(Duration::from_millis(300));
    let status = app.users.clone().get_user(request).await.unwrap_err();
    // The gateway answers DEADLINE_EXCEEDED just before the deadline; a tonic client also runs
    // its own timer and reports its expiry as CANCELLED, so either may arrive first. What must
    // not arrive is the late Okta answer.
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    assert_ne!(reason(&status), "OKTA_UNEXPECTED_RESPONSE");
}
