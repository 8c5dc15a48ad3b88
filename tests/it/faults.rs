//! Each simulated Okta fault mode against the real gateway: the caller, whose deadline is set,
//! gets the gateway's documented answer (not DEADLINE_EXCEEDED), and the simulator's request log
//! shows what the gateway sent. Modes are scoped and counted (`times`) or at rate 1.0, so every
//! outcome is decided by the order of requests, never by timing.

use crate::common;

use common::{RPC_DEADLINE, TestApp, reason, spawn_app};
use identity_gateway::proto::{
    ActivateUserRequest, DeactivateUserRequest, GetUserRequest, User, UserLifecycleRequest,
    UserStatus, get_user_request,
};
use serde_json::{Value, json};
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// Retries the test gateway makes after the first attempt (`okta.max_retries` default).
const MAX_RETRIES: usize = 2;

fn with_deadline<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(RPC_DEADLINE);
    request
}

async fn get_user(app: &TestApp, user_id: &str) -> Result<User, Status> {
    let request = GetUserRequest {
        user: Some(get_user_request::User::Id(user_id.to_owned())),
    };
    let response = app.users.clone().get_user(with_deadline(request)).await?;
    Ok(response.into_inner())
}

async fn suspend(app: &TestApp, user_id: &str) -> Result<User, Status> {
    let request = UserLifecycleRequest {
        user_id: user_id.to_owned(),
        ..Default::default()
    };
    let response = app
        .users
        .clone()
        .suspend_user(with_deadline(request))
        .await?;
    Ok(response.into_inner())
}

/// Seeds one user in `status` and returns its id and the path prefix of its user resource.
async fn seed_user_in(app: &TestApp, login: &str, status: &str) -> (String, String) {
    let ids = app
        .seed(json!({"users": [{"login": login, "status": status}]}))
        .await;
    let user_id = ids["users"][login].as_str().unwrap().to_owned();
    let path = format!("/api/v1/users/{user_id}");
    (user_id, path)
}

#[track_caller]
fn assert_rate_limited(status: &Status) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(status), "OKTA_RATE_LIMITED");
    assert!(
        status
            .get_details_retry_info()
            .and_then(|info| info.retry_delay)
            .is_some(),
        "RetryInfo tells the caller when to retry: {status:?}"
    );
}

/// Reads the user while `modes` are in effect; returns the outcome and the simulator's answers
/// to the reads of that user, oldest first.
async fn read_under(
    app: &TestApp,
    user_id: &str,
    path: &str,
    modes: Value,
) -> (Result<User, Status>, Vec<u64>) {
    app.set_fault_modes(modes).await;
    app.clear_sim_requests().await;
    let outcome = get_user(app, user_id).await;
    (outcome, app.sim_statuses("GET", path).await)
}

#[tokio::test]
async fn server_errors_on_a_read_are_retried_and_a_lasting_outage_is_unavailable() {
    let app = spawn_app().await;
    let (user_id, path) = seed_user_in(&app, "read5xx@example.com", "ACTIVE").await;

    let (outcome, statuses) = read_under(
        &app,
        &user_id,
        &path,
        json!({"seed": 7, "server_errors": {"method": "GET", "path_prefix": path, "times": 2}}),
    )
    .await;
    assert_eq!(outcome.unwrap().id, user_id);
    assert_eq!(
        statuses.len(),
        3,
        "two failures, then the answer: {statuses:?}"
    );
    assert!(
        statuses[..2].iter().all(|s| [500, 502, 503].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(statuses[2], 200);

    let (outcome, statuses) = read_under(
        &app,
        &user_id,
        &path,
        json!({"server_errors": {"method": "GET", "path_prefix": path, "rate": 1.0}}),
    )
    .await;
    let status = outcome.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "OKTA_UNAVAILABLE");
    assert_eq!(statuses.len(), 1 + MAX_RETRIES, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s >= 500), "{statuses:?}");
}

#[tokio::test]
async fn a_rate_limit_storm_is_resource_exhausted_with_retry_info_within_the_deadline() {
    let app = spawn_app().await;
    let (user_id, path) = seed_user_in(&app, "storm@example.com", "ACTIVE").await;

    let (outcome, statuses) = read_under(
        &app,
        &user_id,
        &path,
        json!({"rate_limit_storm": {"path_prefix": path, "duration_ms": 60_000}}),
    )
    .await;

    assert_rate_limited(&outcome.unwrap_err());
    assert!(!statuses.is_empty());
    assert!(statuses.iter().all(|s| *s == 429), "{statuses:?}");
    assert!(
        statuses.len() <= 1 + MAX_RETRIES,
        "no retry beyond the budget: {statuses:?}"
    );
}

#[tokio::test]
async fn concurrency_limit_429s_are_retried_and_a_lasting_limit_is_resource_exhausted() {
    let app = spawn_app().await;
    let (user_id, path) = seed_user_in(&app, "busy@example.com", "ACTIVE").await;

    // Okta's concurrency limit refuses the first attempt only: the retry gets through.
    let (outcome, statuses) = read_under(
        &app,
        &user_id,
        &path,
        json!({"concurrency_limit": {"path_prefix": path, "max_in_flight": 0, "times": 1}}),
    )
    .await;
    assert_eq!(outcome.unwrap().id, user_id);
    assert_eq!(statuses, [429, 200]);

    // No slot at all: every attempt is refused, and the caller is told when to retry.
    let (outcome, statuses) = read_under(
        &app,
        &user_id,
        &path,
        json!({"concurrency_limit": {"path_prefix": path, "max_in_flight": 0}}),
    )
    .await;
    assert_rate_limited(&outcome.unwrap_err());
    assert_eq!(statuses, vec![429; 1 + MAX_RETRIES]);
}

#[tokio::test]
async fn a_connection_reset_on_a_read_is_retried_and_a_lasting_one_is_unavailable() {
    let app = spawn_app().await;
    let (user_id, path) = seed_user_in(&app, "reset@example.com", "ACTIVE").await;

    let (outcome, statuses) = read_under(
        &app,
        &user_id,
        &path,
        json!({"connection_resets": {"method": "GET", "path_prefix": path, "times": 1}}),
    )
    .await;
    assert_eq!(outcome.unwrap().id, user_id);
    assert_eq!(statuses, [0, 200]);

    let (outcome, statuses) = read_under(
        &app,
        &user_id,
        &path,
        json!({"connection_resets": {"method": "GET", "path_prefix": path, "rate": 1.0}}),
    )
    .await;
    let status = outcome.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "OKTA_UNREACHABLE");
    assert_eq!(statuses, vec![0; 1 + MAX_RETRIES]);
}

#[tokio::test]
async fn a_connection_reset_on_a_transition_is_retried_into_exactly_one_transition() {
    let app = spawn_app().await;
    let (user_id, path) = seed_user_in(&app, "cut@example.com", "ACTIVE").await;
    let suspend_path = format!("{path}/lifecycle/suspend");
    app.set_fault_modes(
        json!({"connection_resets": {"method": "POST", "path_prefix": suspend_path, "times": 1}}),
    )
    .await;
    app.clear_sim_requests().await;

    let user = suspend(&app, &user_id).await.unwrap();

    assert_eq!(user.status(), UserStatus::Suspended);
    assert_eq!(app.sim_statuses("POST", &suspend_path).await, [0, 200]);
    assert_eq!(
        app.transitions_logged("user.lifecycle.suspend", &user_id)
            .await,
        1
    );
}

#[tokio::test]
async fn every_transition_whose_answer_is_lost_is_retried_and_found_carried_out() {
    let app = spawn_app().await;
    for (action, from, to, event) in [
        (
            "suspend",
            "ACTIVE",
            UserStatus::Suspended,
            "user.lifecycle.suspend",
        ),
        (
            "unsuspend",
            "SUSPENDED",
            UserStatus::Active,
            "user.lifecycle.unsuspend",
        ),
        (
            "unlock",
            "LOCKED_OUT",
            UserStatus::Active,
            "user.account.unlock",
        ),
        (
            "activate",
            "STAGED",
            UserStatus::Active,
            "user.lifecycle.activate",
        ),
        (
            "deactivate",
            "ACTIVE",
            UserStatus::Deprovisioned,
            "user.lifecycle.deactivate",
        ),
    ] {
        let (user_id, path) = seed_user_in(&app, &format!("{action}@example.com"), from).await;
        let action_path = format!("{path}/lifecycle/{action}");
        // The transition is carried out, then its answer is lost.
        app.inject_fault(json!({"method": "POST", "path_prefix": action_path, "status": 502, "commit_then_fail": true}))
            .await;
        let user_id_field = user_id.clone();
        let mut users = app.users.clone();
        let user = match action {
            "suspend" => {
                users
                    .suspend_user(with_deadline(UserLifecycleRequest {
                        user_id: user_id_field,
                        ..Default::default()
                    }))
                    .await
            }
            "unsuspend" => {
                users
                    .unsuspend_user(with_deadline(UserLifecycleRequest {
                        user_id: user_id_field,
                        ..Default::default()
                    }))
                    .await
            }
            "unlock" => {
                users
                    .unlock_user(with_deadline(UserLifecycleRequest {
                        user_id: user_id_field,
                        ..Default::default()
                    }))
                    .await
            }
            "activate" => users
                .activate_user(with_deadline(ActivateUserRequest {
                    user_id: user_id_field,
                    send_email: false,
                    ..Default::default()
                }))
                .await
                .map(|response| response.map(|activated| activated.user.unwrap())),
            _ => {
                users
                    .deactivate_user(with_deadline(DeactivateUserRequest {
                        user_id: user_id_field,
                        send_email: false,
                        ..Default::default()
                    }))
                    .await
            }
        }
        .unwrap_or_else(|status| panic!("{action}: {status:?}"))
        .into_inner();

        assert_eq!(user.status(), to, "{action}");
        let statuses = app.sim_statuses("POST", &action_path).await;
        assert_eq!(
            statuses.len(),
            2,
            "{action}: the retry is in the log: {statuses:?}"
        );
        assert_eq!(statuses[0], 502, "{action}");
        assert!(
            (400..500).contains(&statuses[1]),
            "{action}: Okta refuses the repeat: {statuses:?}"
        );
        assert_eq!(app.transitions_logged(event, &user_id).await, 1, "{action}");
    }
}

#[tokio::test]
async fn a_refusal_is_a_success_only_after_a_retry_and_only_in_the_target_status() {
    let app = spawn_app().await;

    // A first attempt that finds the user suspended already keeps its mapping.
    let (suspended_id, _) = seed_user_in(&app, "already@example.com", "SUSPENDED").await;
    let status = suspend(&app, &suspended_id).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(reason(&status), "OKTA_WRONG_STATUS");

    // A retry refused because the user is in another status than the target stays refused.
    let (staged_id, path) = seed_user_in(&app, "staged@example.com", "STAGED").await;
    let suspend_path = format!("{path}/lifecycle/suspend");
    app.inject_fault(json!({"method": "POST", "path_prefix": suspend_path, "status": 503, "error_code": "E0000010"}))
        .await;
    let status = suspend(&app, &staged_id).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(app.sim_statuses("POST", &suspend_path).await, [503, 400]);
    assert_eq!(
        get_user(&app, &staged_id).await.unwrap().status(),
        UserStatus::Staged
    );
}
