//! Replicas of one deployment in front of one simulated org, sharing a real Valkey server: a
//! change named by a `request_id` is made once across them, whichever replica each attempt
//! reaches, and a replica that cannot reach the server refuses such changes (or, when told to,
//! falls back to its own table) while everything else goes on; a write through one replica
//! makes the others forget their cached answers at once; a caller's open streams are counted
//! across the replicas.

use crate::common;
use crate::groups::group_ids_of;
use crate::idempotency::{
    create, creates_sent, lost_answer_is_found_by_the_retry, new_user,
    unknown_outcomes_are_settled_by_the_retry, users_with_login,
};

use std::time::Duration;

use common::callers::{key, keyed, with_api_keys};
use common::valkey::Valkey;
use common::{TestApp, eventually, reason, spawn_app_with, spawn_replica, violated_fields};
use identity_gateway::config::{Settings, WhenUnavailable};
use identity_gateway::proto::event_service_client::EventServiceClient;
use identity_gateway::proto::{GroupMemberRequest, WatchEventsRequest, WatchEventsResponse};
use secrecy::SecretString;
use serde_json::json;
use tonic::Code;

const REQUEST_ID: &str = "0f5b8a4e-7d3c-4b1a-9e62-5c8d7f1a2b3c";

fn shared_through(valkey: &Valkey) -> impl Fn(&mut Settings) + Clone {
    let url = valkey.url();
    move |settings: &mut Settings| {
        settings.coordination.redis_url = Some(SecretString::from(url.clone()));
    }
}

/// Two replicas sharing `valkey`, in front of one simulator.
async fn two_replicas(valkey: &Valkey) -> (TestApp, TestApp) {
    let configure = shared_through(valkey);
    let first = spawn_app_with(configure.clone()).await;
    let second = spawn_replica(&first, configure).await;
    (first, second)
}

#[tokio::test]
async fn a_retry_on_another_replica_gets_the_first_answer_without_a_second_write() {
    let Some(valkey) = Valkey::start().await else {
        return;
    };
    let (first, second) = two_replicas(&valkey).await;
    let made = create(&first, new_user("shared@example.com", "Shared", REQUEST_ID))
        .await
        .unwrap();
    let again = create(
        &second,
        new_user("shared@example.com", "Shared", REQUEST_ID),
    )
    .await
    .unwrap();
    assert_eq!(again, made);
    assert_eq!(creates_sent(&first).await, 1);
    assert_eq!(users_with_login(&first, "shared@example.com").await, 1);

    // The same id with another request is refused on any replica, before Okta.
    let reused = create(&second, new_user("other@example.com", "Other", REQUEST_ID))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument, "{reused:?}");
    assert_eq!(violated_fields(&reused), ["request_id"]);
    assert_eq!(creates_sent(&first).await, 1);
}

#[tokio::test]
async fn a_retry_on_another_replica_waits_for_the_attempt_still_running() {
    let Some(valkey) = Valkey::start().await else {
        return;
    };
    let (first, second) = two_replicas(&valkey).await;
    first.set_latency(800).await;
    let users = first.users.clone();
    let attempt = tokio::spawn(async move {
        users
            .clone()
            .create_user(new_user("slow@example.com", "Slow", REQUEST_ID))
            .await
    });
    eventually(
        Duration::from_secs(5),
        "the first attempt reaches Okta",
        async || creates_sent(&first).await == 1,
    )
    .await;
    let retried = create(&second, new_user("slow@example.com", "Slow", REQUEST_ID))
        .await
        .unwrap();
    let made = attempt.await.unwrap().unwrap().into_inner();
    assert_eq!(retried, made);
    assert_eq!(creates_sent(&first).await, 1);
    assert_eq!(users_with_login(&first, "slow@example.com").await, 1);
}

#[tokio::test]
async fn without_the_server_a_named_change_is_refused_before_okta_and_all_else_goes_on() {
    let Some(mut valkey) = Valkey::start().await else {
        return;
    };
    let (first, _second) = two_replicas(&valkey).await;
    valkey.stop();

    let refused = create(&first, new_user("down@example.com", "Down", REQUEST_ID))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!(reason(&refused), "COORDINATION_UNAVAILABLE");
    assert_eq!(creates_sent(&first).await, 0);

    // A change without an id, and reads, need no shared record; health stays SERVING.
    let made = create(&first, new_user("plain@example.com", "Plain", ""))
        .await
        .unwrap();
    let read = first
        .users
        .clone()
        .get_user(common::get_user(&made.id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.id, made.id);
    let mut health = first.health.clone();
    assert_eq!(common::user_service_health(&mut health).await, 1);

    // The server returns: named changes are made once again.
    valkey.restart().await;
    let made = eventually(
        Duration::from_secs(10),
        "the replica reaches the server again",
        async || {
            create(&first, new_user("down@example.com", "Down", REQUEST_ID))
                .await
                .ok()
        },
    )
    .await;
    let again = create(&first, new_user("down@example.com", "Down", REQUEST_ID))
        .await
        .unwrap();
    assert_eq!(again, made);
    assert_eq!(users_with_login(&first, "down@example.com").await, 1);
}

#[tokio::test]
async fn told_to_proceed_without_the_server_a_replica_keeps_its_own_record() {
    let Some(mut valkey) = Valkey::start().await else {
        return;
    };
    let url = valkey.url();
    let app = spawn_app_with(move |settings| {
        settings.coordination.redis_url = Some(SecretString::from(url));
        settings.coordination.idempotency_when_unavailable = WhenUnavailable::Proceed;
    })
    .await;
    valkey.stop();
    let made = create(&app, new_user("alone@example.com", "Alone", REQUEST_ID))
        .await
        .unwrap();
    let again = create(&app, new_user("alone@example.com", "Alone", REQUEST_ID))
        .await
        .unwrap();
    assert_eq!(again, made);
    assert_eq!(creates_sent(&app).await, 1);
}

#[tokio::test]
async fn a_write_through_one_replica_is_read_through_the_others_cached_answers() {
    let Some(valkey) = Valkey::start().await else {
        return;
    };
    let shared = shared_through(&valkey);
    let cached = |settings: &mut Settings| settings.cache.group_discovery_ttl_ms = 60_000;
    let first = spawn_app_with(|settings| {
        shared(settings);
        cached(settings);
    })
    .await;
    let second = spawn_replica(&first, |settings| {
        shared(settings);
        cached(settings);
    })
    .await;
    // A replica on its own, for comparison: its cache keeps what it read.
    let alone = spawn_replica(&first, cached).await;
    let ids = first
        .seed(json!({
            "users": [{"login": "joiner@example.com"}],
            "groups": [{"name": "Platform"}],
        }))
        .await;
    eventually(
        Duration::from_secs(5),
        "both replicas listen for invalidations",
        async || valkey.subscribers("idgw:invalidations").await == 2,
    )
    .await;
    let user_id = ids["users"]["joiner@example.com"]
        .as_str()
        .unwrap()
        .to_owned();
    let group_id = ids["groups"]["Platform"].as_str().unwrap().to_owned();
    for replica in [&second, &alone] {
        assert!(!group_ids_of(replica, &user_id).await.contains(&group_id));
    }

    first
        .groups
        .clone()
        .add_group_member(GroupMemberRequest {
            group_id: group_id.clone(),
            user_id: user_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    eventually(
        Duration::from_secs(5),
        "the other replica forgets its cached groups of the user",
        async || group_ids_of(&second, &user_id).await.contains(&group_id),
    )
    .await;
    assert!(
        !group_ids_of(&alone, &user_id).await.contains(&group_id),
        "the replica without the server still serves its cached answer"
    );
}

#[tokio::test]
async fn an_unknown_outcome_on_one_replica_is_settled_by_the_retry_on_another() {
    let Some(valkey) = Valkey::start().await else {
        return;
    };
    let (first, second) = two_replicas(&valkey).await;
    unknown_outcomes_are_settled_by_the_retry(&first, &second).await;
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_made_once_and_returned_by_the_retry_on_another_replica()
{
    let Some(valkey) = Valkey::start().await else {
        return;
    };
    let (first, second) = two_replicas(&valkey).await;
    lost_answer_is_found_by_the_retry(&first, &second).await;
}

/// Opens a WatchEvents stream on `app` as the caller holding `api_key`.
async fn watch(
    app: &TestApp,
    api_key: &str,
) -> Result<tonic::Streaming<WatchEventsResponse>, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.address))
        .unwrap()
        .connect()
        .await
        .unwrap();
    EventServiceClient::new(channel)
        .watch_events(keyed(WatchEventsRequest::default(), api_key))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_caller_holds_its_share_of_open_streams_once_across_replicas() {
    let Some(valkey) = Valkey::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let shared = shared_through(&valkey);
    let configure = |settings: &mut Settings| {
        shared(settings);
        with_api_keys(settings, &dir);
        settings.fairness.max_streams_per_caller = 2;
    };
    let first = spawn_app_with(configure).await;
    let second = spawn_replica(&first, configure).await;
    let third = spawn_replica(&first, configure).await;

    let open = watch(&first, key("billing")).await.unwrap();
    let _also_open = watch(&second, key("billing")).await.unwrap();
    let refused = watch(&third, key("billing")).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(reason(&refused), "CALLER_OVER_SHARE");
    let _other = watch(&third, key("siem"))
        .await
        .expect("another caller has its own share");

    drop(open);
    let _reopened = eventually(
        Duration::from_secs(5),
        "a closed stream frees its place on every replica",
        async || watch(&third, key("billing")).await.ok(),
    )
    .await;
}

/// Streams a caller opened while the server was away count on every replica once it is back:
/// the replica writes them as soon as a renewal reaches the restarted (empty) server, so another
/// replica refuses the caller past its share instead of granting it a second one.
#[tokio::test]
async fn streams_opened_while_the_server_was_away_count_on_every_replica_once_it_is_back() {
    let Some(mut valkey) = Valkey::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = valkey.url();
    let configure = |settings: &mut Settings| {
        settings.coordination.redis_url = Some(SecretString::from(url.clone()));
        with_api_keys(settings, &dir);
        settings.fairness.max_streams_per_caller = 2;
    };
    let first = spawn_app_with(configure).await;
    let second = spawn_replica(&first, configure).await;

    valkey.stop();
    let _open = watch(&first, key("billing")).await.unwrap();
    let _also_open = watch(&first, key("billing")).await.unwrap();
    valkey.restart().await;

    eventually(
        Duration::from_secs(10),
        "the replica writes the streams opened while the server was away",
        async || streams_held(&valkey).await == 2,
    )
    .await;
    let refused = watch(&second, key("billing")).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(reason(&refused), "CALLER_OVER_SHARE");
}

/// Open streams the server counts, of every caller and replica.
async fn streams_held(valkey: &Valkey) -> u32 {
    let keys: Vec<String> = valkey
        .query(redis::cmd("KEYS").arg("*in-flight:streams:*"))
        .await;
    let mut held = 0;
    for key in keys {
        let counts: std::collections::HashMap<String, u32> =
            valkey.query(redis::cmd("HGETALL").arg(&key)).await;
        held += counts.values().sum::<u32>();
    }
    held
}
