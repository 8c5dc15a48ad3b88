//! Replicas sharing a real Valkey server watch the System Log through one poller per filter:
//! Okta is polled as by one replica, every watcher on every replica receives every event once
//! and in order, through a change of leader, a resume on another replica and the server's
//! absence.

use crate::common;
use crate::events::{
    events_client, login, next_event, next_keepalive, shared_token_key_file, watch,
};

use std::path::Path;

use common::valkey::Valkey;
use common::{PATIENCE, TestApp, eventually, spawn_app_with, spawn_replica};
use identity_gateway::config::Settings;
use identity_gateway::proto::{EventFilter, WatchEventsRequest, WatchEventsResponse};
use secrecy::SecretString;
use serde_json::Value;
use tokio::time::Instant;
use tonic::Streaming;

/// The replicas' poll interval: long enough for a lease of two intervals to outlast a loaded
/// test machine's pauses.
const POLL_INTERVAL_MS: u64 = 100;

/// Settings of a replica sharing `valkey` and the cursor key in `key_file`.
fn shared_through(valkey: &Valkey, key_file: &Path) -> impl Fn(&mut Settings) + Clone {
    let url = valkey.url();
    let key_file = key_file.to_owned();
    move |settings: &mut Settings| {
        settings.coordination.redis_url = Some(SecretString::from(url.clone()));
        settings.grpc.token_key_file = Some(key_file.clone());
        settings.events.poll_interval_ms = POLL_INTERVAL_MS;
    }
}

/// `count` replicas sharing `valkey` in front of one simulator.
async fn replicas(valkey: &Valkey, key_file: &Path, count: usize) -> Vec<TestApp> {
    let configure = shared_through(valkey, key_file);
    let first = spawn_app_with(configure.clone()).await;
    let mut replicas = vec![first];
    for _ in 1..count {
        replicas.push(spawn_replica(&replicas[0], configure.clone()).await);
    }
    replicas
}

fn logins() -> WatchEventsRequest {
    WatchEventsRequest {
        filter: Some(EventFilter {
            event_types: vec!["user.session.start".into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn watch_logins(replica: &TestApp) -> Streaming<WatchEventsResponse> {
    let mut stream = watch(&mut events_client(replica), logins()).await;
    next_keepalive(&mut stream).await;
    stream
}

/// Records `count` logins named after `batch`; returns their uuids.
async fn inject(app: &TestApp, batch: &str, count: usize) -> Vec<String> {
    let events: Vec<Value> = (0..count)
        .map(|index| {
            login(
                &format!("{batch}{index}@example.com"),
                "192.0.2.7",
                "SUCCESS",
            )
        })
        .collect();
    app.inject_events(events).await
}

/// Asserts that the next events of `stream` are `expected`, in order.
async fn receives(stream: &mut Streaming<WatchEventsResponse>, expected: &[String]) {
    let mut received = Vec::new();
    while received.len() < expected.len() {
        received.push(next_event(stream).await.0.uuid);
    }
    assert_eq!(received, expected);
}

/// The key of the lease on the watched filter, while a replica holds it.
async fn lease_key(valkey: &Valkey) -> Option<String> {
    let leases: Vec<String> = valkey
        .query(redis::cmd("KEYS").arg("idgw:watch:*:lease"))
        .await;
    leases.into_iter().next()
}

/// The token of the lease on the watched filter (`epoch:nonce`), while a replica holds it.
async fn lease_holder(valkey: &Valkey) -> Option<String> {
    let lease = lease_key(valkey).await?;
    valkey.query(redis::cmd("GET").arg(lease)).await
}

/// How many connections read a stream on the server.
async fn stream_readers(valkey: &Valkey) -> usize {
    let clients: String = valkey
        .query(redis::cmd("CLIENT").arg("LIST").arg("TYPE").arg("normal"))
        .await;
    clients.matches("cmd=xread").count()
}

/// Asserts that Okta's System Log is polled as by one poller: over a window of at least ten
/// polls, no more than one poll per poll interval, give or take one in flight at either end.
/// Each further poller would add as many again.
async fn assert_polled_as_by_one_poller(app: &TestApp) {
    app.clear_sim_requests().await;
    let since = Instant::now();
    let polls = eventually(PATIENCE, "okta is polled ten times", async || {
        let polls = app.sim_statuses("GET", "/api/v1/logs").await.len();
        (polls >= 10).then_some(polls)
    })
    .await;
    let intervals = since.elapsed().as_millis() / u128::from(POLL_INTERVAL_MS);
    assert!(
        polls as u128 <= intervals + 2,
        "{polls} polls in {intervals} poll intervals"
    );
}

#[tokio::test]
async fn replicas_poll_okta_as_one_and_every_watcher_receives_every_event_once_in_order() {
    let Some(valkey) = Valkey::start().await else {
        return;
    };
    let (_key_dir, key_file) = shared_token_key_file();
    let replicas = replicas(&valkey, &key_file, 3).await;
    let mut streams = Vec::new();
    for replica in &replicas {
        streams.push(watch_logins(replica).await);
    }
    // Once every watcher has an event, every replica follows the shared poller.
    let first = inject(&replicas[0], "warm", 1).await;
    for stream in streams.iter_mut() {
        receives(stream, &first).await;
    }
    let mut expected = Vec::new();
    for batch in ["a", "b", "c"] {
        expected.extend(inject(&replicas[0], batch, 5).await);
    }
    for stream in streams.iter_mut() {
        receives(stream, &expected).await;
    }
    assert_polled_as_by_one_poller(&replicas[0]).await;
    for stream in streams.iter_mut() {
        next_keepalive(stream).await;
    }
}

#[tokio::test]
async fn when_the_leading_replica_stops_another_takes_over_and_watchers_miss_nothing() {
    let Some(valkey) = Valkey::start().await else {
        return;
    };
    let (_key_dir, key_file) = shared_token_key_file();
    let mut replicas = replicas(&valkey, &key_file, 3).await;
    // The first replica to watch leads.
    let _leader_stream = watch_logins(&replicas[0]).await;
    let leader = eventually(PATIENCE, "a replica takes the lease", async || {
        lease_holder(&valkey).await
    })
    .await;
    let mut followers = [
        watch_logins(&replicas[1]).await,
        watch_logins(&replicas[2]).await,
    ];
    let before = inject(&replicas[0], "before", 3).await;
    for stream in followers.iter_mut() {
        receives(stream, &before).await;
    }

    replicas[0].begin_shutdown();
    let during = inject(&replicas[1], "during", 3).await;
    let successor = eventually(PATIENCE, "another replica takes the lease", async || {
        lease_holder(&valkey)
            .await
            .filter(|holder| *holder != leader)
    })
    .await;
    let epoch = |token: &str| token.split(':').next().unwrap().parse::<u64>().unwrap();
    assert!(
        epoch(&successor) > epoch(&leader),
        "{leader} then {successor}"
    );
    let after = inject(&replicas[1], "after", 3).await;
    let expected: Vec<String> = during.into_iter().chain(after).collect();
    for stream in followers.iter_mut() {
        receives(stream, &expected).await;
        next_keepalive(stream).await;
    }
}

#[tokio::test]
async fn when_the_lease_passes_to_a_replica_that_dies_another_takes_it_once_it_expires() {
    let Some(valkey) = Valkey::start().await else {
        return;
    };
    let (_key_dir, key_file) = shared_token_key_file();
    let replicas = replicas(&valkey, &key_file, 2).await;
    let mut streams = [
        watch_logins(&replicas[0]).await,
        watch_logins(&replicas[1]).await,
    ];
    let before = inject(&replicas[0], "before", 2).await;
    for stream in streams.iter_mut() {
        receives(stream, &before).await;
    }
    let leader = lease_holder(&valkey).await.unwrap();

    // The lease goes to a holder that never renews nor gives it up, as a replica that died
    // just after taking it: the leader loses it and may write no more.
    let lease = lease_key(&valkey).await.unwrap();
    let expiry = (4 * POLL_INTERVAL_MS).to_string();
    let vanished = "0:vanished";
    let _: () = valkey
        .query(
            redis::cmd("SET")
                .arg(&lease)
                .arg(vanished)
                .arg("PX")
                .arg(expiry),
        )
        .await;
    let meanwhile = inject(&replicas[0], "meanwhile", 3).await;
    eventually(PATIENCE, "a replica takes the expired lease", async || {
        lease_holder(&valkey)
            .await
            .is_some_and(|holder| holder != vanished && holder != leader)
    })
    .await;
    let after = inject(&replicas[1], "after", 2).await;
    let expected: Vec<String> = meanwhile.into_iter().chain(after).collect();
    for stream in streams.iter_mut() {
        receives(stream, &expected).await;
        next_keepalive(stream).await;
    }
}

#[tokio::test]
async fn a_cursor_from_one_replica_resumes_on_another_without_gap_or_repeat() {
    let Some(valkey) = Valkey::start().await else {
        return;
    };
    let (_key_dir, key_file) = shared_token_key_file();
    let replicas = replicas(&valkey, &key_file, 2).await;
    let mut first = watch_logins(&replicas[0]).await;
    let uuids = inject(&replicas[0], "r", 6).await;
    let mut cursor = String::new();
    for expected in &uuids[..3] {
        let (event, resume_cursor) = next_event(&mut first).await;
        assert_eq!(&event.uuid, expected);
        cursor = resume_cursor;
    }
    drop(first);
    let more = inject(&replicas[0], "s", 3).await;

    let mut resumed = watch(
        &mut events_client(&replicas[1]),
        WatchEventsRequest {
            resume_cursor: cursor,
            ..logins()
        },
    )
    .await;
    let rest: Vec<String> = uuids[3..].iter().chain(&more).cloned().collect();
    receives(&mut resumed, &rest).await;
    let live = inject(&replicas[0], "t", 2).await;
    receives(&mut resumed, &live).await;
    next_keepalive(&mut resumed).await;
}

#[tokio::test]
async fn without_the_server_each_replica_polls_for_its_watchers_and_shares_again_when_it_returns() {
    let Some(mut valkey) = Valkey::start().await else {
        return;
    };
    let (_key_dir, key_file) = shared_token_key_file();
    let replicas = replicas(&valkey, &key_file, 2).await;
    let mut streams = [
        watch_logins(&replicas[0]).await,
        watch_logins(&replicas[1]).await,
    ];
    let shared = inject(&replicas[0], "shared", 2).await;
    for stream in streams.iter_mut() {
        receives(stream, &shared).await;
    }

    valkey.stop();
    let alone = inject(&replicas[0], "alone", 4).await;
    for stream in streams.iter_mut() {
        receives(stream, &alone).await;
    }
    for replica in &replicas {
        let mut health = replica.health.clone();
        assert_eq!(common::user_service_health(&mut health).await, 1);
    }

    valkey.restart().await;
    eventually(
        PATIENCE,
        "a replica leads the shared poller again",
        async || lease_holder(&valkey).await.is_some(),
    )
    .await;
    let again = inject(&replicas[0], "again", 4).await;
    for stream in streams.iter_mut() {
        receives(stream, &again).await;
        next_keepalive(stream).await;
    }
    // Both replicas follow the stream again, and Okta sees one poller.
    eventually(PATIENCE, "both replicas read the stream", async || {
        stream_readers(&valkey).await == 2
    })
    .await;
    assert_polled_as_by_one_poller(&replicas[0]).await;
}
