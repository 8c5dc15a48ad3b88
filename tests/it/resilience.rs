//! Okta's rate limits under a burst: the gateway spends the budget but never overruns it, and
//! each caller's deadline decides whether it waits for the next window or is told when to retry.

use crate::common;

use std::time::Duration;

use common::spawn_app;
use identity_gateway::proto::{GetUserRequest, get_user_request};
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

const BUDGET: u64 = 10;

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_at_three_times_the_budget_draws_no_429_and_deadlines_decide_who_waits() {
    let app = spawn_app().await;
    let logins: Vec<String> = (0..3 * BUDGET)
        .map(|i| format!("burst{i}@example.com"))
        .collect();
    let ids = app.seed(json!({"users": logins.iter().map(|login| json!({"login": login})).collect::<Vec<_>>()})).await;
    let user_ids: Vec<String> = logins
        .iter()
        .map(|login| ids["users"][login].as_str().unwrap().to_owned())
        .collect();
    let response = app
        .http
        .put(format!("{}/__sim/rate-limits", app.sim.base_url()))
        .json(&json!({"buckets": [{"name": "user-reads", "method": "GET", "path_prefix": "/api/v1/users/", "limit": BUDGET}], "window_ms": 3000}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    app.clear_sim_requests().await;

    // Half the callers can wait for the next window, half cannot.
    let calls: Vec<_> = user_ids
        .iter()
        .enumerate()
        .map(|(index, user_id)| {
            let patient = index % 2 == 0;
            let mut users = app.users.clone();
            let mut request = tonic::Request::new(GetUserRequest {
                user: Some(get_user_request::User::Id(user_id.clone())),
            });
            request.set_timeout(if patient {
                Duration::from_secs(30)
            } else {
                Duration::from_millis(400)
            });
            tokio::spawn(async move { (patient, users.get_user(request).await) })
        })
        .collect();
    let mut told_to_retry = 0;
    for call in calls {
        let (patient, outcome) = call.await.unwrap();
        match outcome {
            Ok(_) => {}
            Err(status) => {
                assert!(
                    !patient,
                    "a caller whose deadline allows the wait succeeds: {status:?}"
                );
                assert_eq!(
                    status.code(),
                    Code::ResourceExhausted,
                    "told at once, not kept past its deadline: {status:?}"
                );
                assert!(
                    status
                        .get_details_retry_info()
                        .and_then(|info| info.retry_delay)
                        .is_some(),
                    "with RetryInfo"
                );
                told_to_retry += 1;
            }
        }
    }
    assert!(
        told_to_retry > 0,
        "the hurried callers could not all fit in one window"
    );
    let statuses: Vec<u64> = app
        .sim_requests()
        .await
        .iter()
        .map(|request| request["status"].as_u64().unwrap())
        .collect();
    assert!(!statuses.is_empty());
    assert!(
        statuses.iter().all(|status| *status != 429),
        "the simulator answered 429: {statuses:?}"
    );
}

fn new_user(login: &str) -> identity_gateway::proto::CreateUserRequest {
    identity_gateway::proto::CreateUserRequest {
        profile: Some(identity_gateway::proto::UserProfile {
            login: login.to_owned(),
            email: login.to_owned(),
            first_name: "Once".to_owned(),
            last_name: "Only".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn users_with_login(app: &common::TestApp, login: &str) -> usize {
    let search = format!("profile.login eq \"{login}\"");
    app.users
        .clone()
        .list_users(identity_gateway::proto::ListUsersRequest {
            search,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .users
        .len()
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_is_answered_truthfully_and_never_sent_twice() {
    let app = spawn_app().await;
    // One answer measures Okta's clock (its `Date`, to the second); then Okta takes 3 s to
    // carry the create out, so the user it stamps is provably newer than the request.
    let seeded = app.seed_user("clock@example.com").await;
    app.users
        .clone()
        .get_user(common::get_user(&seeded))
        .await
        .unwrap();
    app.set_latency(3_000).await;
    // The write happens, then the answer is lost.
    app.inject_fault(json!({"method": "POST", "path_prefix": "/api/v1/users", "status": 502, "commit_then_fail": true})).await;
    let created = app
        .users
        .clone()
        .create_user(new_user("lost@example.com"))
        .await
        .unwrap()
        .into_inner();
    app.set_latency(0).await;
    assert_eq!(created.profile.unwrap().login, "lost@example.com");
    assert_eq!(users_with_login(&app, "lost@example.com").await, 1);
    let creates = app
        .sim_requests()
        .await
        .into_iter()
        .filter(|r| r["method"] == "POST")
        .count();
    assert_eq!(creates, 1, "the create was sent once");

    // The write does not happen: the caller learns that nothing was created.
    app.inject_fault(json!({"method": "POST", "path_prefix": "/api/v1/users", "status": 503}))
        .await;
    let status = app
        .users
        .clone()
        .create_user(new_user("never@example.com"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("not carried out"),
        "{}",
        status.message()
    );
    assert_eq!(users_with_login(&app, "never@example.com").await, 0);
}

#[tokio::test]
async fn a_membership_change_whose_answer_is_lost_is_retried_into_exactly_one_membership() {
    let app = spawn_app().await;
    let ids = app
        .seed(json!({"users": [{"login": "m@example.com"}], "groups": [{"name": "Once"}]}))
        .await;
    let user_id = ids["users"]["m@example.com"].as_str().unwrap().to_owned();
    let group_id = ids["groups"]["Once"].as_str().unwrap().to_owned();
    app.inject_fault(json!({"method": "PUT", "path_prefix": "/api/v1/groups/", "status": 502, "commit_then_fail": true})).await;
    app.groups
        .clone()
        .add_group_member(identity_gateway::proto::GroupMemberRequest {
            group_id: group_id.clone(),
            user_id: user_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let members = app
        .groups
        .clone()
        .list_group_members(identity_gateway::proto::ListGroupMembersRequest {
            group_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(
        members.iter().filter(|member| member.id == user_id).count(),
        1
    );
    let puts = app
        .sim_requests()
        .await
        .into_iter()
        .filter(|r| r["method"] == "PUT")
        .count();
    assert_eq!(
        puts, 2,
        "the idempotent PUT was retried once after the lost answer"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_okta_requests_stay_under_the_bound_and_draw_no_concurrency_429() {
    let app = common::spawn_app_with(|settings| settings.okta.max_concurrent_requests = 3).await;
    let logins: Vec<String> = (0..20).map(|i| format!("c{i}@example.com")).collect();
    let ids = app.seed(json!({"users": logins.iter().map(|login| json!({"login": login})).collect::<Vec<_>>()})).await;
    // Okta's concurrency limit, scaled down to the gateway's bound, and a slow upstream so the
    // requests overlap.
    let admin = |path: &str, body: serde_json::Value| {
        app.http
            .put(format!("{}/__sim/{path}", app.sim.base_url()))
            .json(&body)
            .send()
    };
    assert!(
        admin("rate-limits", json!({"concurrency_limit": 3}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    assert!(
        admin("latency", json!({"delay_ms": 200}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    app.clear_sim_requests().await;
    let calls: Vec<_> = logins
        .iter()
        .map(|login| {
            let mut users = app.users.clone();
            let user_id = ids["users"][login].as_str().unwrap().to_owned();
            tokio::spawn(async move {
                users
                    .get_user(GetUserRequest {
                        user: Some(get_user_request::User::Id(user_id)),
                    })
                    .await
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let statuses: Vec<u64> = app
        .sim_requests()
        .await
        .iter()
        .map(|request| request["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses.len(), 20);
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overloaded_gateway_sheds_calls_at_once_and_keeps_answering_health_checks() {
    let app = common::spawn_app_with(|settings| settings.grpc.max_in_flight_rpcs = 2).await;
    let logins: Vec<String> = (0..6).map(|i| format!("o{i}@example.com")).collect();
    let ids = app.seed(json!({"users": logins.iter().map(|login| json!({"login": login})).collect::<Vec<_>>()})).await;
    let latency = app
        .http
        .put(format!("{}/__sim/latency", app.sim.base_url()))
        .json(&json!({"delay_ms": 1000}))
        .send();
    assert!(latency.await.unwrap().status().is_success());
    let calls: Vec<_> = logins
        .iter()
        .map(|login| {
            let mut users = app.users.clone();
            let user_id = ids["users"][login].as_str().unwrap().to_owned();
            tokio::spawn(async move {
                users
                    .get_user(GetUserRequest {
                        user: Some(get_user_request::User::Id(user_id)),
                    })
                    .await
            })
        })
        .collect();
    // Two calls hold the two slots (each held a second by the slow Okta); the other four are
    // shed at once.
    common::eventually(common::PATIENCE, "four calls are shed", async || {
        calls.iter().filter(|call| call.is_finished()).count() >= 4
    })
    .await;
    let health = app
        .health
        .clone()
        .check(tonic_health::pb::HealthCheckRequest {
            service: "identity.v1.UserService".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        health.status,
        tonic_health::ServingStatus::Serving as i32,
        "health is never shed"
    );
    let (mut served, mut shed) = (0, 0);
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => served += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert_eq!(common::reason(&status), "GATEWAY_OVERLOADED");
                assert!(status.get_details_retry_info().is_some());
                shed += 1;
            }
        }
    }
    assert_eq!((served, shed), (2, 4), "two slots, six callers");
}

#[tokio::test]
async fn a_spent_bucket_holds_no_okta_slot_so_another_bucket_is_still_answered() {
    let (logs, _capture) = common::capture_logs();
    let app = common::spawn_app_with(|settings| settings.okta.max_concurrent_requests = 1).await;
    let (user_id, group_id) = seed_user_and_group(&app).await;
    // One user read per long window: the first read spends the users bucket.
    let response = app
        .http
        .put(format!("{}/__sim/rate-limits", app.sim.base_url()))
        .json(&json!({"buckets": [{"name": "user-reads", "method": "GET", "path_prefix": "/api/v1/users/", "limit": 1}], "window_ms": 20_000}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    app.users
        .clone()
        .get_user(common::get_user(&user_id))
        .await
        .unwrap();
    // A patient caller now waits for the users bucket's reset.
    let waiting = spawn_user_read(&app, &user_id, Duration::from_secs(60));
    // The gateway's only Okta slot is not held by the wait.
    group_read_is_answered_once_logged(&app, &logs, "waiting for the reset", &group_id).await;
    assert!(
        !waiting.is_finished(),
        "the user read is still waiting for its bucket"
    );
    waiting.abort();
}

#[tokio::test]
async fn a_read_backing_off_after_a_connection_error_holds_no_okta_slot() {
    let (logs, _capture) = common::capture_logs();
    let app = common::spawn_app_with(|settings| {
        settings.okta.max_concurrent_requests = 1;
        // A backoff of up to ten minutes, within the read's deadline.
        settings.okta.retry_base_delay_ms = 600_000;
        settings.okta.retry_max_delay_ms = 600_000;
        settings.grpc.request_timeout_ms = 3_600_000;
    })
    .await;
    let (user_id, group_id) = seed_user_and_group(&app).await;
    app.set_fault_modes(
        json!({"connection_resets": {"method": "GET", "path_prefix": "/api/v1/users/", "times": 1}}),
    )
    .await;
    let backing_off = spawn_user_read(&app, &user_id, Duration::from_secs(3600));
    // The only Okta slot is free while the user read waits to retry.
    group_read_is_answered_once_logged(&app, &logs, "okta request failed", &group_id).await;
    backing_off.abort();
}

/// Waits until the gateway logs `line` (a user read now waits), then reads the group
/// `group_id` with a deadline far shorter than that wait, which must be answered: the waiting
/// read holds none of the gateway's Okta slots.
async fn group_read_is_answered_once_logged(
    app: &common::TestApp,
    logs: &common::LogBuffer,
    line: &str,
    group_id: &str,
) {
    logs.wait_for(line).await;
    let mut request = tonic::Request::new(identity_gateway::proto::GetGroupRequest {
        group_id: group_id.to_owned(),
    });
    request.set_timeout(Duration::from_secs(5));
    let group = app.groups.clone().get_group(request).await;
    assert_eq!(group.unwrap().into_inner().id, group_id);
}

/// Seeds a user and a group; returns their ids.
async fn seed_user_and_group(app: &common::TestApp) -> (String, String) {
    let ids = app
        .seed(json!({"users": [{"login": "u@example.com"}], "groups": [{"name": "Elsewhere"}]}))
        .await;
    let id = |kind: &str, name: &str| ids[kind][name].as_str().unwrap().to_owned();
    (id("users", "u@example.com"), id("groups", "Elsewhere"))
}

/// A GetUser of `user_id` with `deadline`, running on its own.
fn spawn_user_read(
    app: &common::TestApp,
    user_id: &str,
    deadline: Duration,
) -> tokio::task::JoinHandle<Result<tonic::Response<identity_gateway::proto::User>, tonic::Status>>
{
    let mut users = app.users.clone();
    let mut request = tonic::Request::new(common::get_user(user_id));
    request.set_timeout(deadline);
    tokio::spawn(async move { users.get_user(request).await })
}
