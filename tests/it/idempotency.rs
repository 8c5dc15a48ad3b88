//! Changes named by a `request_id` (AIP-155), judged against the simulated org: a retry with the
//! same id is answered as the first attempt was without a second write, also when the first
//! attempt's answer never reached its caller; a reused id with another request, and an id that
//! is not a UUID, are refused before Okta; one caller's ids never answer another.

use crate::common;

use std::time::Duration;

use common::callers::{keyed, with_api_keys};
use common::{TestApp, reason, spawn_app, spawn_app_with, violated_fields};
use identity_gateway::proto::{
    CreateUserRequest, User, UserLifecycleRequest, UserProfile, UserStatus,
};
use serde_json::json;
use tonic::Code;

const REQUEST_ID: &str = "6f1c1d9e-3b7a-4c55-9a41-2f0e8d7c6b5a";

pub(crate) fn new_user(login: &str, first_name: &str, request_id: &str) -> CreateUserRequest {
    CreateUserRequest {
        profile: Some(UserProfile {
            login: login.to_owned(),
            email: login.to_owned(),
            first_name: first_name.to_owned(),
            last_name: "Once".to_owned(),
            ..Default::default()
        }),
        request_id: request_id.to_owned(),
        ..Default::default()
    }
}

/// How many users the simulated org holds with `login`, read from its own API.
pub(crate) async fn users_with_login(app: &TestApp, login: &str) -> usize {
    let search =
        url::form_urlencoded::byte_serialize(format!("profile.login eq \"{login}\"").as_bytes())
            .collect::<String>();
    let answer: Vec<serde_json::Value> = app
        .okta_request(
            reqwest::Method::GET,
            &format!("/api/v1/users?search={search}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer.len()
}

pub(crate) async fn creates_sent(app: &TestApp) -> usize {
    app.sim_statuses("POST", "/api/v1/users").await.len()
}

pub(crate) async fn create(
    app: &TestApp,
    request: CreateUserRequest,
) -> Result<User, tonic::Status> {
    app.users
        .clone()
        .create_user(request)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_retry_with_the_same_id_gets_the_first_answer_without_a_second_write() {
    let app = spawn_app().await;
    let first = create(&app, new_user("once@example.com", "Once", REQUEST_ID))
        .await
        .unwrap();
    let again = create(&app, new_user("once@example.com", "Once", REQUEST_ID))
        .await
        .unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(again, first);
    assert_eq!(creates_sent(&app).await, 1);
    assert_eq!(users_with_login(&app, "once@example.com").await, 1);

    // Without an id the same request is a new change: Okta refuses the taken login.
    let status = create(&app, new_user("once@example.com", "Once", ""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert_eq!(creates_sent(&app).await, 2);
}

#[tokio::test]
async fn an_id_reused_for_another_request_or_not_a_uuid_is_refused_before_okta() {
    let app = spawn_app().await;
    create(&app, new_user("first@example.com", "First", REQUEST_ID))
        .await
        .unwrap();
    app.clear_sim_requests().await;

    let reused = create(&app, new_user("second@example.com", "Second", REQUEST_ID))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument, "{reused:?}");
    assert_eq!(violated_fields(&reused), ["request_id"]);

    for bad in [
        "not-a-uuid",
        "6f1c1d9e",
        "../users",
        "6f1c1d9e-3b7a-4c55-9a41-2f0e8d7c6b5a0",
    ] {
        let refused = create(&app, new_user("third@example.com", "Third", bad))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{bad}: {refused:?}");
        assert_eq!(violated_fields(&refused), ["request_id"], "{bad}");
    }
    assert!(app.sim_requests().await.is_empty());
    assert_eq!(users_with_login(&app, "second@example.com").await, 0);
}

#[tokio::test]
async fn a_change_whose_answer_the_caller_lost_is_found_by_its_retry() {
    let app = spawn_app().await;
    lost_answer_is_found_by_the_retry(&app, &app).await;
}

/// A CreateUser sent to `first` whose answer the caller loses (Okta answers after the caller
/// gave up) is found by its retry with the same id through `retry_on`: one user, returned.
pub(crate) async fn lost_answer_is_found_by_the_retry(first: &TestApp, retry_on: &TestApp) {
    // Okta answers after the caller has given up: the change happens, the answer is lost.
    first.set_latency(1_500).await;
    let mut lost = tonic::Request::new(new_user("slow@example.com", "Slow", REQUEST_ID));
    lost.set_timeout(Duration::from_millis(300));
    let status = first.users.clone().create_user(lost).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );

    // The retry, while the first attempt still runs, waits for it and gets its answer.
    let retried = create(retry_on, new_user("slow@example.com", "Slow", REQUEST_ID))
        .await
        .unwrap();
    first.set_latency(0).await;
    assert_eq!(retried.profile.unwrap().login, "slow@example.com");
    assert_eq!(creates_sent(first).await, 1);
    assert_eq!(users_with_login(first, "slow@example.com").await, 1);

    // And once more, from the table, on either.
    for app in [first, retry_on] {
        let again = create(app, new_user("slow@example.com", "Slow", REQUEST_ID))
            .await
            .unwrap();
        assert_eq!(again.id, retried.id);
    }
    assert_eq!(creates_sent(first).await, 1);
}

#[tokio::test]
async fn concurrent_attempts_with_one_id_make_one_change() {
    let app = spawn_app().await;
    app.set_latency(300).await;
    let attempts = (0..4).map(|_| create(&app, new_user("race@example.com", "Race", REQUEST_ID)));
    let answers = futures::future::join_all(attempts).await;
    let ids: Vec<String> = answers
        .into_iter()
        .map(|answer| answer.unwrap().id)
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(creates_sent(&app).await, 1);
    assert_eq!(users_with_login(&app, "race@example.com").await, 1);
}

#[tokio::test]
async fn an_answer_that_says_nothing_changed_is_not_kept_so_the_retry_runs() {
    let app = spawn_app().await;
    // Refused before it took effect, on every attempt the gateway makes.
    app.inject_fault(
        json!({"method": "POST", "path_prefix": "/api/v1/users", "status": 503, "times": 20}),
    )
    .await;
    let status = create(&app, new_user("later@example.com", "Later", REQUEST_ID))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_ne!(reason(&status), "OUTCOME_UNKNOWN", "{status:?}");
    assert_eq!(users_with_login(&app, "later@example.com").await, 0);
    app.clear_faults().await;

    let created = create(&app, new_user("later@example.com", "Later", REQUEST_ID))
        .await
        .unwrap();
    assert_eq!(created.profile.unwrap().login, "later@example.com");
    assert_eq!(users_with_login(&app, "later@example.com").await, 1);
}

#[tokio::test]
async fn one_callers_id_never_answers_another_caller() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|settings| with_api_keys(settings, &dir)).await;
    let ids = app
        .seed(json!({"users": [{"login": "a@example.com"}, {"login": "b@example.com"}]}))
        .await;
    let suspend = |login: &str, key: &str| {
        keyed(
            UserLifecycleRequest {
                user_id: ids["users"][login].as_str().unwrap().to_owned(),
                request_id: REQUEST_ID.to_owned(),
            },
            common::callers::key(key),
        )
    };
    let first = app
        .users
        .clone()
        .suspend_user(suspend("a@example.com", "billing"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.profile.unwrap().login, "a@example.com");
    // Another caller naming the same id makes its own change: neither the first caller's answer
    // nor a refusal of a "reused" id.
    let second = app
        .users
        .clone()
        .suspend_user(suspend("b@example.com", "ops"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.profile.unwrap().login, "b@example.com");
    assert_eq!(second.status, UserStatus::Suspended as i32);
}

/// A SuspendUser named by `request_id` whose answer Okta loses and whose settling read fails,
/// sent to `app`: answered `OUTCOME_UNKNOWN`. `committed` says whether Okta carried it out.
pub(crate) async fn suspend_with_unknown_outcome(
    app: &TestApp,
    user_id: &str,
    request_id: &str,
    committed: bool,
) {
    let write = if committed {
        json!({"status": 502, "commit_then_fail": true, "times": 10})
    } else {
        json!({"status": 503, "times": 10})
    };
    let mut write = write;
    write["method"] = json!("POST");
    write["path_prefix"] = json!(format!("/api/v1/users/{user_id}/lifecycle/suspend"));
    app.inject_fault(write).await;
    app.inject_fault(
        json!({"method": "GET", "path_prefix": format!("/api/v1/users/{user_id}"),
                            "status": 503, "times": 100}),
    )
    .await;
    let unknown = suspend(app, user_id, request_id).await.unwrap_err();
    assert_eq!(reason(&unknown), "OUTCOME_UNKNOWN", "{unknown:?}");
    app.clear_faults().await;
}

pub(crate) async fn suspend(
    app: &TestApp,
    user_id: &str,
    request_id: &str,
) -> Result<User, tonic::Status> {
    app.users
        .clone()
        .suspend_user(UserLifecycleRequest {
            user_id: user_id.to_owned(),
            request_id: request_id.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// How many suspends of `user_id` reached the simulated org.
pub(crate) async fn suspends_sent(app: &TestApp, user_id: &str) -> usize {
    app.sim_statuses(
        "POST",
        &format!("/api/v1/users/{user_id}/lifecycle/suspend"),
    )
    .await
    .len()
}

/// `user_id`'s status as the simulated org holds it.
pub(crate) async fn status_in_org(app: &TestApp, user_id: &str) -> String {
    let user: serde_json::Value = app
        .okta_request(reqwest::Method::GET, &format!("/api/v1/users/{user_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    user["status"].as_str().unwrap_or_default().to_owned()
}

/// The unknown outcome of a change made through `first` is settled by its retry through
/// `retry_on`: found carried out, the retry answers the change's success; found not carried
/// out, it says so and the retry after it makes the change. The change never reaches Okta
/// while its first attempt may have been carried out.
pub(crate) async fn unknown_outcomes_are_settled_by_the_retry(first: &TestApp, retry_on: &TestApp) {
    let carried_out = first.seed_user("carried-out@example.com").await;
    suspend_with_unknown_outcome(first, &carried_out, REQUEST_ID, true).await;
    let sent = suspends_sent(first, &carried_out).await;
    let settled = suspend(retry_on, &carried_out, REQUEST_ID).await.unwrap();
    assert_eq!(settled.status, UserStatus::Suspended as i32);
    let again = suspend(first, &carried_out, REQUEST_ID).await.unwrap();
    assert_eq!(again, settled, "the settled answer is remembered");
    assert_eq!(suspends_sent(first, &carried_out).await, sent);

    let not_carried_out = first.seed_user("not-carried-out@example.com").await;
    let id = "9b2f4c1e-6a3d-4e8b-8f10-3c5d7e9a1b2c";
    suspend_with_unknown_outcome(first, &not_carried_out, id, false).await;
    let sent = suspends_sent(first, &not_carried_out).await;
    let settled = suspend(retry_on, &not_carried_out, id).await.unwrap_err();
    assert_eq!(settled.code(), Code::Unavailable, "{settled:?}");
    assert_eq!(reason(&settled), "NOT_CARRIED_OUT");
    assert_eq!(suspends_sent(first, &not_carried_out).await, sent);
    assert_eq!(status_in_org(first, &not_carried_out).await, "ACTIVE");
    let made = suspend(retry_on, &not_carried_out, id).await.unwrap();
    assert_eq!(made.status, UserStatus::Suspended as i32);
    assert_eq!(suspends_sent(first, &not_carried_out).await, sent + 1);
}

#[tokio::test]
async fn an_unknown_outcome_is_settled_by_the_next_retry_with_a_read() {
    let app = spawn_app().await;
    unknown_outcomes_are_settled_by_the_retry(&app, &app).await;
}
