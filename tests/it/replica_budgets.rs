//! Replicas in front of one simulated org with a rate-limited bucket, sharing a real Valkey
//! server: together they spend one budget, keep its reserve, and hold each caller to its share
//! of the budget and of RPCs in flight org-wide; when the server goes away mid-burst each keeps
//! to its part of what Okta reports, together they still stay within Okta's limit, and they
//! share again once it returns.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::callers::{key, keyed, with_api_keys};
use common::valkey::Valkey;
use common::{TestApp, capture_logs, eventually, reason, spawn_app_with, spawn_replica};
use futures::StreamExt;
use identity_gateway::config::Settings;
use secrecy::SecretString;
use serde_json::json;
use tonic::Code;

/// The bucket under test: Okta's answers to GetUser.
const BUCKET_PATH: &str = "/api/v1/users/";
/// Its limit per window.
const LIMIT: u64 = 30;
/// `okta.rate_limit_reserve_percent` of the replicas: a reserve of 3 units.
const RESERVE_PERCENT: u32 = 10;
const RESERVE: u64 = 3;

/// `count` replicas in front of one simulator, each configured by `configure` and sharing
/// `valkey`.
async fn replicas(
    valkey: &Valkey,
    count: usize,
    configure: impl Fn(&mut Settings) + Clone,
) -> Vec<TestApp> {
    let url = valkey.url();
    let shared = move |settings: &mut Settings| {
        settings.coordination.redis_url = Some(SecretString::from(url.clone()));
        settings.okta.rate_limit_reserve_percent = RESERVE_PERCENT;
        configure(settings);
    };
    let first = spawn_app_with(shared.clone()).await;
    let mut replicas = Vec::with_capacity(count);
    for _ in 1..count {
        replicas.push(spawn_replica(&first, shared.clone()).await);
    }
    replicas.insert(0, first);
    replicas
}

/// Three replicas, as [`replicas`].
async fn three_replicas(
    valkey: &Valkey,
    configure: impl Fn(&mut Settings) + Clone,
) -> Vec<TestApp> {
    replicas(valkey, 3, configure).await
}

/// Seeds `count` users; their ids.
async fn seed_users(app: &TestApp, count: usize) -> Vec<String> {
    let logins: Vec<String> = (0..count)
        .map(|index| format!("burst{index}@example.com"))
        .collect();
    let users: Vec<_> = logins.iter().map(|login| json!({"login": login})).collect();
    let ids = app.seed(json!({ "users": users })).await;
    logins
        .iter()
        .map(|login| ids["users"][login].as_str().unwrap().to_owned())
        .collect()
}

/// Limits GetUser to `limit` per window, a window longer than any test, and forgets the
/// requests seen so far.
async fn limit_user_reads(app: &TestApp, limit: u64) {
    let response = app
        .http
        .put(format!("{}/__sim/rate-limits", app.sim.base_url()))
        .json(&json!({"buckets": [{"name": "user-reads", "method": "GET",
            "path_prefix": BUCKET_PATH, "limit": limit}], "window_ms": 600_000}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    app.clear_sim_requests().await;
}

/// What reading a set of users got.
struct Reads {
    /// How many reads were served.
    served: usize,
    /// The reasons the others were refused for, each with RESOURCE_EXHAUSTED.
    refused_for: BTreeSet<String>,
}

/// Reads every user of `user_ids`, `at_once` at a time, spread over `replicas`, as the caller
/// holding `api_key` (none: insecure mode). Every read not served is refused as over a budget
/// or share, at once rather than at its deadline.
async fn read_users(
    replicas: &[TestApp],
    user_ids: &[String],
    api_key: Option<&str>,
    at_once: usize,
) -> Reads {
    let calls = user_ids.iter().enumerate().map(|(index, user_id)| {
        let mut users = replicas[index % replicas.len()].users.clone();
        let mut request = match api_key {
            Some(api_key) => keyed(common::get_user(user_id), api_key),
            None => tonic::Request::new(common::get_user(user_id)),
        };
        request.set_timeout(common::RPC_DEADLINE);
        async move { users.get_user(request).await }
    });
    let mut answers = futures::stream::iter(calls).buffer_unordered(at_once);
    let mut reads = Reads {
        served: 0,
        refused_for: BTreeSet::new(),
    };
    while let Some(answer) = answers.next().await {
        match answer {
            Ok(_) => reads.served += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                reads.refused_for.insert(reason(&status));
            }
        }
    }
    reads
}

/// Reads every user of `user_ids` at once, as [`read_users`]; how many were served.
async fn burst(replicas: &[TestApp], user_ids: &[String], api_key: Option<&str>) -> usize {
    read_users(replicas, user_ids, api_key, user_ids.len())
        .await
        .served
}

/// The statuses the simulator answered GetUser with.
async fn user_read_statuses(app: &TestApp) -> Vec<u64> {
    app.sim_statuses("GET", BUCKET_PATH).await
}

/// What the org has left of the bucket, read by one more request of another Okta client
/// (which it spends).
async fn left_in_bucket(app: &TestApp, user_id: &str) -> u64 {
    let response = app
        .okta_request(reqwest::Method::GET, &format!("{BUCKET_PATH}{user_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "the reserve is there for other clients"
    );
    let remaining: u64 = response.headers()["x-rate-limit-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    remaining + 1
}

#[tokio::test]
async fn a_burst_through_four_replicas_at_three_times_the_limit_draws_no_429_and_keeps_the_reserve()
{
    let Some(valkey) = Valkey::start().await else {
        return;
    };
    let replicas = replicas(&valkey, 4, |_| {}).await;
    let user_ids = seed_users(&replicas[0], 3 * LIMIT as usize).await;
    limit_user_reads(&replicas[0], LIMIT).await;
    // Okta's latency as measured in a real org, so the burst's calls overlap on the wire.
    replicas[0].set_latency(150).await;

    let served = burst(&replicas, &user_ids, None).await;

    let statuses = user_read_statuses(&replicas[0]).await;
    assert!(
        !statuses.contains(&429),
        "Okta never answered 429: {statuses:?}"
    );
    assert_eq!(statuses.len(), served, "every request sent was served");
    assert!(served > 0, "the burst was served up to the budget");
    assert!(
        served as u64 <= LIMIT - RESERVE,
        "{served} sent: at most the limit less the reserve"
    );
    assert!(left_in_bucket(&replicas[0], &user_ids[0]).await >= RESERVE);
}

#[tokio::test]
async fn a_caller_spends_its_share_of_a_bucket_once_across_replicas() {
    let Some(valkey) = Valkey::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let replicas = three_replicas(&valkey, |settings| {
        with_api_keys(settings, &dir);
        settings.fairness.okta_budget_percent_per_caller = 20;
    })
    .await;
    let user_ids = seed_users(&replicas[0], 1).await;
    limit_user_reads(&replicas[0], LIMIT).await;

    // One call at a time, through each replica in turn, well past the share.
    let mut served = 0;
    for turn in 0..LIMIT as usize {
        let mut users = replicas[turn % replicas.len()].users.clone();
        match users
            .get_user(keyed(common::get_user(&user_ids[0]), key("billing")))
            .await
        {
            Ok(_) => served += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert_eq!(reason(&status), "CALLER_SHARE_SPENT");
            }
        }
    }
    let share = LIMIT * 20 / 100;
    assert!(served > 0, "the caller was served");
    assert!(
        served as u64 <= share,
        "{served} served: at most 20% of {LIMIT} across the replicas"
    );
    for replica in &replicas {
        replica
            .users
            .clone()
            .get_user(keyed(common::get_user(&user_ids[0]), key("ops")))
            .await
            .expect("another caller still has its share on every replica");
    }
    assert!(!user_read_statuses(&replicas[0]).await.contains(&429));
}

#[tokio::test]
async fn the_server_killed_mid_burst_costs_no_read_beyond_the_fallback_budget_and_sharing_resumes_once_it_returns()
 {
    let Some(mut valkey) = Valkey::start().await else {
        return;
    };
    let (logs, _guard) = capture_logs();
    let replicas = three_replicas(&valkey, |_| {}).await;
    let user_ids = seed_users(&replicas[0], 3 * LIMIT as usize).await;
    limit_user_reads(&replicas[0], LIMIT).await;
    // Okta's latency, and two reads at a time per replica, so the burst outlasts the server.
    replicas[0].set_latency(150).await;
    let at_once = 2 * replicas.len();

    let stop_once_reads_are_served = async {
        eventually(
            Duration::from_secs(10),
            "the burst's first reads are served through the shared ledger",
            async || !user_read_statuses(&replicas[0]).await.is_empty(),
        )
        .await;
        valkey.stop();
    };
    let (reads, ()) = tokio::join!(
        read_users(&replicas, &user_ids, None, at_once),
        stop_once_reads_are_served
    );

    logs.wait_for("the coordination server is unavailable")
        .await;
    let statuses = user_read_statuses(&replicas[0]).await;
    assert!(
        !statuses.contains(&429),
        "Okta never answered 429: {statuses:?}"
    );
    assert_eq!(
        statuses.len(),
        reads.served,
        "every request sent was served"
    );
    assert!(reads.served > 0, "the replicas still serve");
    assert!(
        reads.served as u64 <= LIMIT,
        "{} sent: within Okta's limit",
        reads.served
    );
    // Refused only by the replicas' own budgets, never as unavailable or an internal error.
    assert!(
        reads
            .refused_for
            .iter()
            .all(|refused_for| refused_for == "OKTA_RATE_LIMITED"),
        "{:?}",
        reads.refused_for
    );

    // The server returns: the replicas spend through the shared ledger again.
    valkey.restart().await;
    limit_user_reads(&replicas[0], LIMIT).await;
    eventually(
        Duration::from_secs(10),
        "a replica leases from the shared ledger again",
        async || {
            let _ = replicas[1]
                .users
                .clone()
                .get_user(common::get_user(&user_ids[0]))
                .await;
            valkey.keys("idgw:budget:*").await > 0
        },
    )
    .await;
}

#[tokio::test]
async fn a_caller_s_places_claimed_in_batches_keep_it_to_its_in_flight_share_across_replicas() {
    let Some(valkey) = Valkey::start().await else {
        return;
    };
    const MAX_IN_FLIGHT: u32 = 8;
    let dir = tempfile::tempdir().unwrap();
    let replicas = three_replicas(&valkey, |settings| {
        with_api_keys(settings, &dir);
        settings.fairness.max_in_flight_per_caller = MAX_IN_FLIGHT;
    })
    .await;
    let user_ids = seed_users(&replicas[0], 3 * MAX_IN_FLIGHT as usize).await;
    // Okta answers a read beyond the caller's share in flight with 429, and slowly, so the
    // burst's reads are all there at once: each replica alone would let 8 through.
    replicas[0]
        .set_fault_modes(json!({"concurrency_limit": {"method": "GET",
            "path_prefix": BUCKET_PATH, "max_in_flight": MAX_IN_FLIGHT}}))
        .await;
    replicas[0].clear_sim_requests().await;
    replicas[0].set_latency(300).await;

    let reads = read_users(&replicas, &user_ids, Some(key("billing")), user_ids.len()).await;

    let statuses = user_read_statuses(&replicas[0]).await;
    assert!(
        !statuses.contains(&429),
        "never more than {MAX_IN_FLIGHT} of the caller's reads in flight: {statuses:?}"
    );
    assert!(reads.served > 0, "the caller was served");
    assert!(
        reads
            .refused_for
            .iter()
            .all(|refused_for| refused_for == "CALLER_OVER_SHARE"),
        "{:?}",
        reads.refused_for
    );
}

#[tokio::test]
async fn replicas_together_keep_to_okta_s_concurrent_request_ceiling() {
    let Some(valkey) = Valkey::start().await else {
        return;
    };
    const CEILING: u32 = 4;
    let replicas = three_replicas(&valkey, |settings| {
        settings.okta.max_concurrent_requests = CEILING;
    })
    .await;
    let user_ids = seed_users(&replicas[0], 6 * CEILING as usize).await;
    let response = replicas[0]
        .http
        .put(format!("{}/__sim/rate-limits", replicas[0].sim.base_url()))
        .json(&json!({ "concurrency_limit": CEILING }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    replicas[0].clear_sim_requests().await;
    // Answers slow enough that the burst's requests would overlap.
    replicas[0].set_latency(100).await;

    let served = burst(&replicas, &user_ids, None).await;

    let statuses = user_read_statuses(&replicas[0]).await;
    assert!(
        !statuses.contains(&429),
        "Okta's ceiling was never exceeded: {statuses:?}"
    );
    assert_eq!(served, user_ids.len(), "every call was served");
}
