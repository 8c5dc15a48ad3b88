//! The error-mapping table end to end: the simulator is told to fail a call, the caller sees the
//! documented status with ErrorInfo carrying Okta's code, error id and request id.

use crate::common;

use std::time::Duration;

use common::{
    SIM_TOKEN, TestApp, error_metadata, reason, spawn_app, spawn_app_with, violated_fields,
};
use identity_gateway::proto::event_service_client::EventServiceClient;
use identity_gateway::proto::{
    CreateUserRequest, DeleteUserRequest, GetUserRequest, SearchEventsRequest, UserProfile,
    get_user_request,
};
use serde_json::json;
use tonic::Code;
use tonic::transport::Endpoint;
use tonic_types::StatusExt;

/// A refusal the gateway decided on an Okta answer names that answer's request id.
fn assert_okta_request_id(status: &tonic::Status) {
    assert!(
        !error_metadata(status, "okta_request_id").is_empty(),
        "{status:?}"
    );
}

/// The ErrorInfo every non-OK answer must carry: the gateway's domain and a reason.
fn assert_error_info(status: &tonic::Status) {
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, "identity-gateway", "{status:?}");
    assert!(!info.reason.is_empty(), "{status:?}");
}

fn get_by_id(user_id: &str) -> GetUserRequest {
    GetUserRequest {
        user: Some(get_user_request::User::Id(user_id.to_owned())),
    }
}

/// GetUser by id, expected to fail.
async fn refused_get(app: &TestApp, user_id: &str) -> tonic::Status {
    app.users
        .clone()
        .get_user(get_by_id(user_id))
        .await
        .unwrap_err()
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
        let status = refused_get(&app, &user_id).await;
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
    let status = refused_get(&app, "00uAAAAAAAAAAAAAAAAA").await;
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
    let slow = refused_get(&app, "00uAAAAAAAAAAAAAAAAA").await;
    assert_eq!(slow.code(), Code::DeadlineExceeded);
    assert_eq!(reason(&slow), "OKTA_TIMEOUT");

    let unreachable = spawn_app_with(|settings| {
        settings.okta.org_url = Some("http://127.0.0.1:1".to_owned());
        settings.okta.max_retries = 0;
    })
    .await;
    let status = refused_get(&unreachable, "00uAAAAAAAAAAAAAAAAA").await;
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "OKTA_UNREACHABLE");
}

/// A change made while no connection to Okta can be made was certainly not carried out: the
/// caller is told Okta could not be reached and nothing was sent, not that the outcome is
/// unknown, so it may simply call again (an idempotency table does not remember the answer).
#[tokio::test]
async fn a_change_that_could_not_connect_is_unavailable_and_known_not_sent() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let org_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = spawn_app_with(|settings| settings.okta.org_url = Some(org_url)).await;

    let created = app.users.clone().create_user(new_user()).await.unwrap_err();
    let suspended = app
        .users
        .clone()
        .suspend_user(common::lifecycle("00uAAAAAAAAAAAAAAAAA"))
        .await
        .unwrap_err();

    for status in [created, suspended] {
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(reason(&status), "OKTA_UNREACHABLE", "{status:?}");
        assert!(status.message().contains("nothing was sent"), "{status:?}");
        assert_error_info(&status);
    }
}

#[tokio::test]
async fn the_gateways_own_timeout_answers_deadline_exceeded_before_a_slow_okta() {
    let app = spawn_app_with(|settings| settings.grpc.request_timeout_ms = 300).await;
    app.inject_fault(json!({"method": "GET", "path_prefix": "/api/v1/users/", "status": 200, "delay_ms": 3000, "times": 1})).await;
    let status = refused_get(&app, "00uAAAAAAAAAAAAAAAAA").await;
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

#[tokio::test]
async fn deleting_an_active_user_is_refused_with_the_request_id_of_the_read_that_decided_it() {
    let app = spawn_app().await;
    let user_id = app.seed_user("still-active@example.com").await;
    let status = app
        .users
        .clone()
        .delete_user(DeleteUserRequest {
            user_id,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(reason(&status), "PRECONDITION_FAILED");
    assert_okta_request_id(&status);
}

#[tokio::test]
async fn okta_refusing_a_since_too_far_back_names_the_since_field_of_search_events() {
    let app = spawn_app().await;
    let mut events = EventServiceClient::new(app_channel(&app));
    let too_far_back = std::time::SystemTime::now() - Duration::from_secs(200 * 24 * 3600);
    let status = events
        .search_events(SearchEventsRequest {
            since: Some(too_far_back.into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(&status), "OKTA_VALIDATION_FAILED");
    assert_eq!(violated_fields(&status), ["since"], "{status:?}");
}

fn app_channel(app: &TestApp) -> tonic::transport::Channel {
    Endpoint::from_shared(format!("http://{}", app.address))
        .unwrap()
        .connect_lazy()
}

/// A message with field 1 as a number, where GetUserRequest has a string: undecodable as one.
#[derive(Clone, PartialEq, prost::Message)]
struct WrongWireType {
    #[prost(uint64, tag = "1")]
    number: u64,
}

/// Calls `path` with `message` as its request, over the raw gRPC client.
async fn call_raw(app: &TestApp, path: &'static str, message: WrongWireType) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(app_channel(app));
    grpc.ready().await.unwrap();
    grpc.unary::<_, WrongWireType, _>(
        tonic::Request::new(message),
        http::uri::PathAndQuery::from_static(path),
        tonic_prost::ProstCodec::default(),
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn the_frameworks_own_refusals_carry_error_info() {
    let app = spawn_app().await;
    let raw_calls = [
        ("/identity.v1.UserService/NoSuchMethod", "NOT_SERVED"),
        ("/identity.v1.UserService/GetUser", "REQUEST_REFUSED"),
    ];
    for (path, expected_reason) in raw_calls {
        let refused = call_raw(&app, path, WrongWireType { number: 7 }).await;
        assert_ne!(refused.code(), Code::Ok, "{path}");
        assert_error_info(&refused);
        assert_eq!(reason(&refused), expected_reason, "{path}: {refused:?}");
    }

    let unknown_service = app
        .health
        .clone()
        .check(tonic_health::pb::HealthCheckRequest {
            service: "no.such.Service".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown_service.code(), Code::NotFound);
    assert_error_info(&unknown_service);
}

#[tokio::test]
async fn a_caller_without_credentials_is_unauthenticated_with_error_info() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|settings| common::callers::with_api_keys(settings, &dir)).await;
    let status = refused_get(&app, "00uAAAAAAAAAAAAAAAAA").await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_error_info(&status);
}

/// Every status the gateway builds goes through `src/status.rs`, which adds ErrorInfo with a
/// reason: a tonic constructor anywhere else in `src/` would answer without it.
#[test]
fn no_status_is_built_outside_the_one_mapping() {
    const CONSTRUCTORS: &[&str] = &[
        "new",
        "with_details",
        "with_metadata",
        "with_details_and_metadata",
        "with_error_details",
        "with_error_details_vec",
        "with_error_details_and_metadata",
        "cancelled",
        "unknown",
        "invalid_argument",
        "deadline_exceeded",
        "not_found",
        "already_exists",
        "permission_denied",
        "resource_exhausted",
        "failed_precondition",
        "aborted",
        "out_of_range",
        "unimplemented",
        "internal",
        "unavailable",
        "data_loss",
        "unauthenticated",
        "from_error",
    ];
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut pending = vec![src.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") || path == src.join("status.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // A module's unit tests may make statuses up, standing in for answers.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (number, line) in code.lines().enumerate() {
                let bare = CONSTRUCTORS
                    .iter()
                    .any(|name| line.contains(&format!("Status::{name}(")));
                if bare {
                    offenders.push(format!(
                        "{}:{}: {}",
                        path.display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "build statuses with src/status.rs:\n{}",
        offenders.join("\n")
    );
}
