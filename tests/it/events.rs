//! EventService end to end against the simulator's System Log.

use crate::common;

use std::time::Duration;

use common::{
    TestApp, spawn_app, spawn_app_with, spawn_gateway_for, start_simulator, violated_fields,
};
use identity_gateway::proto::event_service_client::EventServiceClient;
use identity_gateway::proto::watch_events_response::Message;
use identity_gateway::proto::{
    Event, EventFilter, EventOutcome, EventSeverity, ListEventsResponse, ListLogonEventsRequest,
    SearchEventsRequest, SortOrder, UserLifecycleRequest, WatchEventsRequest, WatchEventsResponse,
    list_logon_events_request::Subject,
};
use serde_json::{Value, json};
use tonic::transport::Channel;
use tonic::{Code, Streaming};

/// Guards against a hang: the point is the event, not the time it took.
const PATIENCE: Duration = Duration::from_secs(15);

pub(crate) fn events_client(app: &TestApp) -> EventServiceClient<Channel> {
    EventServiceClient::new(
        tonic::transport::Endpoint::from_shared(format!("http://{}", app.address))
            .unwrap()
            .connect_lazy(),
    )
}

pub(crate) fn login(login: &str, ip: &str, outcome: &str) -> Value {
    json!({"eventType": "user.session.start", "login": login, "ip": ip, "outcome": outcome})
}

/// Every page of a listing, for a request built from a page token.
async fn all_pages<F, Fut>(mut page: F) -> (Vec<Event>, usize)
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<ListEventsResponse>, tonic::Status>>,
{
    let (mut events, mut pages, mut token) = (Vec::new(), 0, String::new());
    loop {
        let response = page(token).await.unwrap().into_inner();
        pages += 1;
        events.extend(response.events);
        if response.next_page_token.is_empty() {
            return (events, pages);
        }
        token = response.next_page_token;
    }
}

/// The next message that is an event (keep-alives skipped), with its resume cursor.
pub(crate) async fn next_event(stream: &mut Streaming<WatchEventsResponse>) -> (Event, String) {
    loop {
        let message = tokio::time::timeout(PATIENCE, stream.message())
            .await
            .expect("an event arrives")
            .unwrap()
            .unwrap();
        if let Some(Message::Event(event)) = message.message {
            return (event, message.resume_cursor);
        }
    }
}

/// Waits for a keep-alive: proof that the watcher follows its poller.
pub(crate) async fn next_keepalive(
    stream: &mut Streaming<WatchEventsResponse>,
) -> identity_gateway::proto::KeepAlive {
    next_keepalive_with_cursor(stream).await.0
}

/// The next keep-alive, with its resume cursor.
async fn next_keepalive_with_cursor(
    stream: &mut Streaming<WatchEventsResponse>,
) -> (identity_gateway::proto::KeepAlive, String) {
    loop {
        let message = tokio::time::timeout(PATIENCE, stream.message())
            .await
            .expect("a keep-alive arrives")
            .unwrap()
            .unwrap();
        if let Some(Message::KeepAlive(keep_alive)) = message.message {
            return (keep_alive, message.resume_cursor);
        }
    }
}

/// A cursor issued for a filtered watch is refused for a watch of everything.
async fn assert_bound_to_its_filter(app: &TestApp, cursor: String) {
    let foreign = events_client(app)
        .watch_events(WatchEventsRequest {
            resume_cursor: cursor,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&foreign), ["resume_cursor"]);
}

/// A token key file, so gateway processes started with it accept each other's cursors.
pub(crate) fn shared_token_key_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("token.key");
    std::fs::write(
        &key_file,
        "a-token-key-shared-by-every-replica-0123456789\n",
    )
    .unwrap();
    (key_dir, key_file)
}

pub(crate) async fn watch(
    client: &mut EventServiceClient<Channel>,
    request: WatchEventsRequest,
) -> Streaming<WatchEventsResponse> {
    client.watch_events(request).await.unwrap().into_inner()
}

#[tokio::test]
async fn logon_events_are_listed_by_user_and_by_ip_across_pages() {
    let app = spawn_app().await;
    let ids = app
        .seed(json!({"users": [{"login": "ada@example.com"}, {"login": "bob@example.com"}]}))
        .await;
    let ada_id = ids["users"]["ada@example.com"].as_str().unwrap().to_owned();
    let mut injected = Vec::new();
    for index in 0..25 {
        injected.push(login(
            "ada@example.com",
            "203.0.113.7",
            if index % 2 == 0 { "SUCCESS" } else { "FAILURE" },
        ));
    }
    injected.extend((0..5).map(|_| login("bob@example.com", "198.51.100.23", "SUCCESS")));
    app.inject_events(injected).await;
    let client = events_client(&app);

    for subject in [
        Subject::UserLogin("ada@example.com".into()),
        Subject::UserId(ada_id.clone()),
        Subject::IpAddress("203.0.113.7".into()),
    ] {
        let (events, pages) = all_pages(|page_token| {
            let mut client = client.clone();
            let subject = subject.clone();
            async move {
                client
                    .list_logon_events(ListLogonEventsRequest {
                        subject: Some(subject),
                        page_size: 10,
                        page_token,
                        ..Default::default()
                    })
                    .await
            }
        })
        .await;
        assert_eq!(events.len(), 25, "{subject:?}");
        assert_eq!(pages, 3, "{subject:?}");
        assert!(
            events
                .iter()
                .all(|event| event.actor.as_ref().unwrap().id == ada_id)
        );
        let times: Vec<(i64, i32)> = events
            .iter()
            .map(|e| e.published.map(|t| (t.seconds, t.nanos)).unwrap())
            .collect();
        assert!(
            times.windows(2).all(|pair| pair[0] <= pair[1]),
            "oldest first"
        );
    }

    let failures = client
        .clone()
        .list_logon_events(ListLogonEventsRequest {
            subject: Some(Subject::UserLogin("ada@example.com".into())),
            outcome: EventOutcome::Failure as i32,
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(failures.len(), 12);
    assert!(
        failures
            .iter()
            .all(|event| event.outcome_result == "FAILURE")
    );
}

#[tokio::test]
async fn search_applies_each_structured_filter_keywords_and_order() {
    let app = spawn_app().await;
    let ids = app.seed(json!({"users": [{"login": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace"}]})).await;
    let ada_id = ids["users"]["ada@example.com"].as_str().unwrap().to_owned();
    app.inject_events(vec![
        login("ada@example.com", "203.0.113.7", "SUCCESS"),
        login("ada@example.com", "198.51.100.23", "FAILURE"),
    ])
    .await;
    // A real action: the simulator records `user.lifecycle.suspend` targeting the user.
    app.users
        .clone()
        .suspend_user(UserLifecycleRequest {
            user_id: ada_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let client = events_client(&app);
    let search = |request: SearchEventsRequest| {
        let mut client = client.clone();
        async move {
            client
                .search_events(request)
                .await
                .unwrap()
                .into_inner()
                .events
        }
    };
    let with_filter = |filter: EventFilter| SearchEventsRequest {
        filter: Some(filter),
        ..Default::default()
    };

    let suspends = search(with_filter(EventFilter {
        event_types: vec!["user.lifecycle.suspend".into()],
        ..Default::default()
    }))
    .await;
    assert_eq!(suspends.len(), 1);
    assert_eq!(suspends[0].targets[0].id, ada_id);
    assert!(
        !suspends[0].okta_request_id.is_empty(),
        "the event names the Okta request that caused it"
    );

    let targeted = search(with_filter(EventFilter {
        target_id: ada_id.clone(),
        ..Default::default()
    }))
    .await;
    assert_eq!(targeted.len(), 1);
    let by_actor_id = search(with_filter(EventFilter {
        actor_id: ada_id.clone(),
        ..Default::default()
    }))
    .await;
    assert_eq!(by_actor_id.len(), 2);
    let by_actor_login = search(with_filter(EventFilter {
        actor_login: "ada@example.com".into(),
        ..Default::default()
    }))
    .await;
    assert_eq!(by_actor_login.len(), 2);
    let by_ip = search(with_filter(EventFilter {
        ip_address: "198.51.100.23".into(),
        ..Default::default()
    }))
    .await;
    assert_eq!(by_ip.len(), 1);
    assert_eq!(by_ip[0].outcome_result, "FAILURE");
    let by_outcome = search(with_filter(EventFilter {
        outcome: EventOutcome::Success as i32,
        event_types: vec!["user.session.start".into()],
        ..Default::default()
    }))
    .await;
    assert_eq!(by_outcome.len(), 1);
    let warnings = search(with_filter(EventFilter {
        severity: EventSeverity::Warn as i32,
        ..Default::default()
    }))
    .await;
    assert!(
        warnings
            .iter()
            .all(|event| event.severity() == EventSeverity::Warn)
            && !warnings.is_empty()
    );

    let raw = search(SearchEventsRequest {
        okta_filter: "client.ipAddress sw \"203.0\"".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(raw.len(), 1);
    let keywords = search(SearchEventsRequest {
        keywords: "suspend lovelace".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(keywords.len(), 1);

    let ascending = search(SearchEventsRequest::default()).await;
    let descending = search(SearchEventsRequest {
        sort_order: SortOrder::Descending as i32,
        ..Default::default()
    })
    .await;
    assert_eq!(ascending.len(), descending.len());
    assert_eq!(
        ascending.first().unwrap().uuid,
        descending.last().unwrap().uuid
    );
    assert!(ascending.iter().all(|event| {
        event
            .original
            .as_ref()
            .is_some_and(|original| original.fields.contains_key("uuid"))
    }));
}

#[tokio::test]
async fn a_watcher_receives_every_injected_event_once_in_order() {
    let app = spawn_app().await;
    let mut stream = watch(&mut events_client(&app), WatchEventsRequest::default()).await;
    next_keepalive(&mut stream).await;
    let mut expected = Vec::new();
    for round in 0..4 {
        let batch: Vec<Value> = (0..10)
            .map(|index| {
                login(
                    &format!("u{round}-{index}@example.com"),
                    "192.0.2.44",
                    "SUCCESS",
                )
            })
            .collect();
        expected.extend(app.inject_events(batch).await);
    }
    let mut received = Vec::new();
    while received.len() < expected.len() {
        received.push(next_event(&mut stream).await.0.uuid);
    }
    assert_eq!(received, expected);
    // Nothing more arrives: the next message is a keep-alive, not a repeated event.
    next_keepalive(&mut stream).await;
}

#[tokio::test]
async fn resuming_from_a_cursor_loses_nothing_and_repeats_nothing_even_after_a_restart() {
    let (_key_dir, key_file) = shared_token_key_file();
    let app =
        spawn_app_with(|settings| settings.grpc.token_key_file = Some(key_file.clone())).await;
    let filter = EventFilter {
        event_types: vec!["user.session.start".into()],
        ..Default::default()
    };
    let mut first = watch(
        &mut events_client(&app),
        WatchEventsRequest {
            filter: Some(filter.clone()),
            ..Default::default()
        },
    )
    .await;
    next_keepalive(&mut first).await;
    let batch: Vec<Value> = (0..6)
        .map(|index| login(&format!("r{index}@example.com"), "192.0.2.44", "SUCCESS"))
        .collect();
    let uuids = app.inject_events(batch).await;
    let mut cursor = String::new();
    for expected in &uuids[..3] {
        let (event, resume_cursor) = next_event(&mut first).await;
        assert_eq!(&event.uuid, expected);
        cursor = resume_cursor;
    }
    drop(first);
    let more = app
        .inject_events(
            (0..3)
                .map(|index| login(&format!("s{index}@example.com"), "192.0.2.44", "SUCCESS"))
                .collect(),
        )
        .await;
    let expected_rest: Vec<String> = uuids[3..].iter().chain(more.iter()).cloned().collect();

    let mut resumed = watch(
        &mut events_client(&app),
        WatchEventsRequest {
            filter: Some(filter.clone()),
            resume_cursor: cursor.clone(),
            ..Default::default()
        },
    )
    .await;
    let mut received = Vec::new();
    let mut last_cursor = String::new();
    while received.len() < expected_rest.len() {
        let (event, resume_cursor) = next_event(&mut resumed).await;
        received.push(event.uuid);
        last_cursor = resume_cursor;
    }
    assert_eq!(received, expected_rest);
    next_keepalive(&mut resumed).await;

    // A different gateway process (same org) continues from the same cursor.
    let restarted = spawn_gateway_for(start_simulator().await, |settings| {
        settings.okta.org_url = Some(app.sim.base_url());
        settings.grpc.token_key_file = Some(key_file.clone());
    })
    .await;
    let after_restart = app
        .inject_events(vec![login("late@example.com", "192.0.2.44", "SUCCESS")])
        .await;
    let mut continued = watch(
        &mut events_client(&restarted),
        WatchEventsRequest {
            filter: Some(filter),
            resume_cursor: last_cursor,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(next_event(&mut continued).await.0.uuid, after_restart[0]);
    next_keepalive(&mut continued).await;

    assert_bound_to_its_filter(&app, cursor).await;
}

#[tokio::test]
async fn a_watcher_that_received_only_keepalives_resumes_after_a_drain_without_a_gap() {
    let (_key_dir, key_file) = shared_token_key_file();
    let mut app =
        spawn_app_with(|settings| settings.grpc.token_key_file = Some(key_file.clone())).await;
    let filter = EventFilter {
        event_types: vec!["user.session.start".into()],
        ..Default::default()
    };
    let request = || WatchEventsRequest {
        filter: Some(filter.clone()),
        ..Default::default()
    };
    // A first watcher sees an event, so the shared poller has moved past it before the idle
    // watcher joins.
    let mut first = watch(&mut events_client(&app), request()).await;
    next_keepalive(&mut first).await;
    let before = app
        .inject_events(vec![login("before@example.com", "192.0.2.44", "SUCCESS")])
        .await;
    assert_eq!(next_event(&mut first).await.0.uuid, before[0]);
    let mut idle = watch(&mut events_client(&app), request()).await;
    let (_, cursor) = next_keepalive_with_cursor(&mut idle).await;
    assert!(!cursor.is_empty(), "a keep-alive carries a resume cursor");

    app.begin_shutdown();
    loop {
        match tokio::time::timeout(PATIENCE, idle.message())
            .await
            .expect("the stream ends")
        {
            Ok(Some(WatchEventsResponse {
                message: Some(Message::KeepAlive(_)),
                ..
            })) => continue,
            Ok(Some(other)) => panic!("the idle watcher received an event: {other:?}"),
            Ok(None) => break,
            Err(status) => panic!("the stream ended with an error: {status:?}"),
        }
    }
    drop((first, idle));
    tokio::time::timeout(PATIENCE, &mut app.server)
        .await
        .expect("the gateway stops")
        .unwrap()
        .unwrap();

    // Recorded while no gateway runs: only a resume cursor can bring these to the watcher.
    let missed = app
        .inject_events(
            (0..3)
                .map(|index| login(&format!("m{index}@example.com"), "192.0.2.44", "SUCCESS"))
                .collect(),
        )
        .await;
    let restarted = spawn_gateway_for(start_simulator().await, |settings| {
        settings.okta.org_url = Some(app.sim.base_url());
        settings.grpc.token_key_file = Some(key_file.clone());
    })
    .await;
    let mut resumed = watch(
        &mut events_client(&restarted),
        WatchEventsRequest {
            resume_cursor: cursor.clone(),
            ..request()
        },
    )
    .await;
    let mut received = Vec::new();
    while received.len() < missed.len() {
        received.push(next_event(&mut resumed).await.0.uuid);
    }
    assert_eq!(received, missed, "the missed events, not the earlier one");
    // Nothing more arrives: the next message is a keep-alive, not a repeated event.
    next_keepalive(&mut resumed).await;

    assert_bound_to_its_filter(&restarted, cursor).await;
}

#[tokio::test]
async fn watchers_of_one_filter_share_one_upstream_poller() {
    let app = spawn_app().await;
    app.clear_sim_requests().await;
    let failures = EventFilter {
        outcome: EventOutcome::Failure as i32,
        ..Default::default()
    };
    let mut client = events_client(&app);
    let mut streams = Vec::new();
    for _ in 0..5 {
        streams.push(
            watch(
                &mut client,
                WatchEventsRequest {
                    filter: Some(failures.clone()),
                    ..Default::default()
                },
            )
            .await,
        );
    }
    let mut other = watch(&mut client, WatchEventsRequest::default()).await;
    for stream in streams.iter_mut() {
        next_keepalive(stream).await;
    }
    next_keepalive(&mut other).await;
    let uuids = app
        .inject_events(vec![
            login("x@example.com", "192.0.2.1", "FAILURE"),
            login("y@example.com", "192.0.2.1", "SUCCESS"),
        ])
        .await;
    for stream in streams.iter_mut() {
        assert_eq!(next_event(stream).await.0.uuid, uuids[0]);
    }
    assert_eq!(next_event(&mut other).await.0.uuid, uuids[0]);
    assert_eq!(next_event(&mut other).await.0.uuid, uuids[1]);

    // Each poller starts once with `since` and then only follows `after` cursors: six watchers on
    // two filters made exactly two starts.
    let log_requests: Vec<Value> = app
        .sim_requests()
        .await
        .into_iter()
        .filter(|r| r["path"] == "/api/v1/logs")
        .collect();
    let starts = log_requests
        .iter()
        .filter(|r| r["query"].as_str().unwrap_or("").contains("since="))
        .count();
    assert_eq!(starts, 2, "{log_requests:#?}");
}

#[tokio::test]
async fn filter_injection_attempts_are_refused_or_escaped() {
    let app = spawn_app().await;
    let mut client = events_client(&app);
    let refused = [
        SearchEventsRequest {
            filter: Some(EventFilter {
                event_types: vec!["user.session.start\" or eventType pr or \"".into()],
                ..Default::default()
            }),
            ..Default::default()
        },
        SearchEventsRequest {
            filter: Some(EventFilter {
                ip_address: "1.2.3.4\" or \"x".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        SearchEventsRequest {
            okta_filter: "eventType eq \"a\") or (actor.id pr".into(),
            ..Default::default()
        },
        SearchEventsRequest {
            keywords: (0..11)
                .map(|i| format!("k{i}"))
                .collect::<Vec<_>>()
                .join(" "),
            ..Default::default()
        },
        SearchEventsRequest {
            page_size: -5,
            ..Default::default()
        },
        SearchEventsRequest {
            page_token: "bogus".into(),
            ..Default::default()
        },
    ];
    for request in refused {
        let status = client.search_events(request.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{request:?}");
        assert_eq!(violated_fields(&status).len(), 1, "{request:?}");
    }
    let bad_ip = client
        .list_logon_events(ListLogonEventsRequest {
            subject: Some(Subject::IpAddress("../1".into())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_ip.code(), Code::InvalidArgument);
    assert!(
        app.sim_requests().await.is_empty(),
        "nothing invalid reached Okta"
    );

    let hostile_login = "x\" or actor.id pr or \"@example.com";
    client
        .list_logon_events(ListLogonEventsRequest {
            subject: Some(Subject::UserLogin(hostile_login.into())),
            ..Default::default()
        })
        .await
        .unwrap();
    let request = app.sim_requests().await.pop().unwrap();
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(request["query"].as_str().unwrap().as_bytes())
            .into_owned()
            .collect();
    let filter = &params.iter().find(|(key, _)| key == "filter").unwrap().1;
    let escaped = serde_json::to_string(hostile_login).unwrap();
    assert_eq!(
        filter,
        &format!("(eventType eq \"user.session.start\") and (actor.alternateId eq {escaped})")
    );
}

#[tokio::test]
async fn okta_outages_surface_as_statuses_and_a_watch_resumes_after_them() {
    let app = spawn_app_with(|settings| settings.okta.max_retries = 0).await;
    let mut client = events_client(&app);
    app.inject_fault(json!({"method": "GET", "path_prefix": "/api/v1/logs", "status": 429, "error_code": "E0000047", "times": 1})).await;
    let limited = client
        .search_events(SearchEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted);
    app.inject_fault(
        json!({"method": "GET", "path_prefix": "/api/v1/logs", "status": 503, "times": 1}),
    )
    .await;
    let unavailable = client
        .search_events(SearchEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(unavailable.code(), Code::Unavailable);

    let mut stream = watch(&mut client, WatchEventsRequest::default()).await;
    next_keepalive(&mut stream).await;
    app.inject_fault(
        json!({"method": "GET", "path_prefix": "/api/v1/logs", "status": 503, "times": 5}),
    )
    .await;
    loop {
        if !next_keepalive(&mut stream).await.okta_reachable {
            break;
        }
    }
    let uuids = app
        .inject_events(vec![login("after@example.com", "192.0.2.9", "SUCCESS")])
        .await;
    assert_eq!(
        next_event(&mut stream).await.0.uuid,
        uuids[0],
        "delivery resumes when Okta recovers"
    );
    assert!(next_keepalive(&mut stream).await.okta_reachable);
}

#[tokio::test]
async fn a_draining_server_ends_watch_streams_cleanly() {
    let mut app = spawn_app().await;
    let mut stream = watch(&mut events_client(&app), WatchEventsRequest::default()).await;
    next_keepalive(&mut stream).await;
    app.begin_shutdown();
    loop {
        match tokio::time::timeout(PATIENCE, stream.message())
            .await
            .expect("the stream ends")
        {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(status) => panic!("the stream ended with an error: {status:?}"),
        }
    }
}

#[tokio::test]
async fn a_watch_paces_itself_and_never_drives_the_logs_bucket_into_429() {
    // 25 ms between polls would spend a 10-call budget in a quarter of a second; the poller must
    // slow down by X-Rate-Limit-Remaining instead and keep its reserve.
    let app = spawn_app().await;
    let response = app
        .http
        .put(format!("{}/__sim/rate-limits", app.sim.base_url()))
        .json(&json!({"buckets": [{"name": "logs", "method": null, "path_prefix": "/api/v1/logs", "limit": 10}], "window_ms": 60_000}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    app.clear_sim_requests().await;
    let mut stream = watch(&mut events_client(&app), WatchEventsRequest::default()).await;
    for _ in 0..10 {
        assert!(
            next_keepalive(&mut stream).await.okta_reachable,
            "no 429 ever reached the poller"
        );
    }
    let statuses: Vec<u64> = app
        .sim_requests()
        .await
        .iter()
        .filter(|request| request["path"] == "/api/v1/logs")
        .map(|request| request["status"].as_u64().unwrap())
        .collect();
    assert!(!statuses.is_empty());
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    assert!(
        statuses.len() <= 8,
        "the 20% reserve of the 10-call budget stayed unused: {statuses:?}"
    );
}
