//! Okta's rate limits under a burst: the gateway spends the budget but never overruns it, and
//! each caller's deadline decides whether it waits for the next window or is told when to retry.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

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
