//! Black-box tests of the simulator's System Log (`GET /api/v1/logs`, `/__sim/logs/*`) over HTTP.

// Test helpers outside `#[test]` functions are not covered by `allow-unwrap-in-tests`; a
// failed unwrap here is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

use chrono::{Duration, SecondsFormat, Utc};
use okta_sim::SeedSource;
use serde_json::{Value, json};

mod sim_harness;

use sim_harness::{Resp, Sim, into_resp, start};

impl Resp {
    #[track_caller]
    fn events(&self) -> Vec<Value> {
        assert_eq!(self.status, 200, "{}", self.text);
        self.body.as_array().unwrap().clone()
    }

    /// The `displayMessage` of every event (tests put a marker there).
    #[track_caller]
    fn marks(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e["displayMessage"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

impl Sim {
    /// `GET /api/v1/logs` with the given (unencoded) parameters.
    async fn logs(&self, params: &[(&str, &str)]) -> Resp {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            ser.append_pair(k, v);
        }
        self.get(&format!("/api/v1/logs?{}", ser.finish())).await
    }

    async fn admin_json(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.admin(method, path, body.map(|b| b.to_string())).await
    }

    async fn inject(&self, events: Value) -> Vec<String> {
        let r = self
            .admin_json(
                "POST",
                "/__sim/logs/events",
                Some(json!({ "events": events })),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["uuids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_owned())
            .collect()
    }

    async fn seed_users(&self) -> Value {
        let doc = json!({
            "users": [
                {"login": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace"},
                {"login": "bob@example.com", "firstName": "Bob", "lastName": "Builder"}
            ],
            "groups": [{"name": "Eng", "members": []}]
        });
        let r = self.admin_json("POST", "/__sim/seed", Some(doc)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    }
}

fn ago(minutes: i64) -> String {
    (Utc::now() - Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn mark(m: &str, published: &str) -> Value {
    json!({"eventType": "test.event", "displayMessage": m, "published": published})
}

#[tokio::test]
async fn polling_always_links_next_and_yields_each_event_once() {
    let s = start(SeedSource::Empty).await;
    let since = ago(60);
    let r = s.logs(&[("limit", "2"), ("since", &since)]).await;
    assert!(r.events().is_empty());
    let next = r.next().expect("polling query always has next");
    assert!(r.link("self").is_some());
    assert!(!next.contains("since="), "{next}");
    assert!(
        next.contains("limit=2") && next.contains("after="),
        "{next}"
    );
    // Empty page again: the cursor stays where it was.
    let r = s.get(&next).await;
    assert!(r.events().is_empty());
    assert_eq!(r.next().as_deref(), Some(next.as_str()));

    s.inject(json!([
        mark("a", &ago(5)),
        mark("b", &ago(50)),
        mark("c", &ago(1))
    ]))
    .await;
    let r = s.get(&next).await;
    // Persistence order, not published order.
    assert_eq!(r.marks(), ["a", "b"]);
    let r = s.get(&r.next().unwrap()).await;
    assert_eq!(r.marks(), ["c"]);
    let tail = r.next().unwrap();
    let r = s.get(&tail).await;
    assert!(r.events().is_empty());
    assert_eq!(r.next().unwrap(), tail);
    s.inject(json!([mark("d", &ago(0))])).await;
    let r = s.get(&tail).await;
    assert_eq!(r.marks(), ["d"]);
    let r = s.get(&r.next().unwrap()).await;
    assert!(r.events().is_empty());

    // Cursor text looks like Okta's `{publishedMillis}_{sequence}`.
    let after = tail.split("after=").nth(1).unwrap();
    let (ms, seq) = after.split_once('_').unwrap();
    assert!(ms.parse::<i64>().unwrap() > 0 && seq.parse::<u64>().unwrap() == 3);

    // Without since, the window is the last 7 days.
    s.inject(json!([mark("old", &ago(8 * 24 * 60))])).await;
    let r = s.logs(&[]).await;
    assert_eq!(r.marks(), ["a", "b", "c", "d"]);
    assert!(r.next().is_some());
    s.sim.stop().await;
}

#[tokio::test]
async fn bounded_queries_order_by_published_and_end_without_next() {
    let s = start(SeedSource::Empty).await;
    s.inject(json!([
        mark("m30", &ago(30)),
        mark("m10", &ago(10)),
        mark("m50", &ago(50)),
        mark("m20", &ago(20)),
        mark("m40", &ago(40)),
        mark("m90", &ago(90)),
    ]))
    .await;
    let since = ago(60);
    let until = ago(0);
    let mut seen = Vec::new();
    let mut r = s
        .logs(&[("since", &since), ("until", &until), ("limit", "2")])
        .await;
    let mut pages = 1;
    loop {
        seen.extend(r.marks());
        match r.next() {
            Some(n) => {
                assert!(!n.contains("since=") && n.contains("until="), "{n}");
                r = s.get(&n).await;
                pages += 1;
            }
            None => break,
        }
    }
    assert_eq!(seen, ["m50", "m40", "m30", "m20", "m10"]);
    assert_eq!(pages, 3);

    // DESCENDING without until: newest first, paged, still bounded by since.
    let mut seen = Vec::new();
    let mut r = s
        .logs(&[
            ("since", &since),
            ("sortOrder", "DESCENDING"),
            ("limit", "2"),
        ])
        .await;
    loop {
        seen.extend(r.marks());
        match r.next() {
            Some(n) => r = s.get(&n).await,
            None => break,
        }
    }
    assert_eq!(seen, ["m10", "m20", "m30", "m40", "m50"]);

    // Windows: since <= published < until.
    let r = s.logs(&[("since", &ago(35)), ("until", &ago(15))]).await;
    assert_eq!(r.marks(), ["m30", "m20"]);
    assert!(r.next().is_none());
    let r = s
        .logs(&[
            ("since", &ago(100)),
            ("until", &ago(25)),
            ("sortOrder", "DESCENDING"),
        ])
        .await;
    assert_eq!(r.marks(), ["m30", "m40", "m50", "m90"]);
    let r = s.logs(&[("since", &ago(45))]).await;
    assert_eq!(r.marks(), ["m30", "m10", "m20", "m40"]);

    // Long windows page completely in both directions, although next links drop since.
    let day = 24 * 60;
    s.inject(json!([
        mark("d20", &ago(20 * day)),
        mark("d10", &ago(10 * day))
    ]))
    .await;
    for (order, want) in [
        ("ASCENDING", ["d20", "d10", "m90"]),
        ("DESCENDING", ["m10", "m20", "m30"]),
    ] {
        let mut seen = Vec::new();
        let mut r = s
            .logs(&[
                ("since", &ago(30 * day)),
                ("until", &ago(0)),
                ("sortOrder", order),
                ("limit", "1"),
            ])
            .await;
        loop {
            seen.extend(r.marks());
            match r.next() {
                Some(n) => r = s.get(&n).await,
                None => break,
            }
        }
        assert_eq!(seen.len(), 8, "{order}: {seen:?}");
        assert_eq!(&seen[..3], want, "{order}");
    }
    // A descending walk keeps its since although next links drop it.
    let mut seen = Vec::new();
    let mut r = s
        .logs(&[
            ("since", &ago(15 * day)),
            ("sortOrder", "DESCENDING"),
            ("limit", "3"),
        ])
        .await;
    loop {
        seen.extend(r.marks());
        match r.next() {
            Some(n) => r = s.get(&n).await,
            None => break,
        }
    }
    assert_eq!(seen.last().map(String::as_str), Some("d10"));
    assert_eq!(seen.len(), 7);
    // Far-away timestamps are answered, not crashed on.
    for t in [
        "-262143-01-01T00:00:00",
        "+262142-12-31T00:00:00Z",
        "0001-01-01",
    ] {
        let r = s.logs(&[("until", t)]).await;
        assert!(r.status == 200 || r.status == 400, "{t}: {}", r.text);
    }
    s.sim.stop().await;
}

#[tokio::test]
async fn filters_and_keywords() {
    let s = start(SeedSource::Empty).await;
    let seeded = s.seed_users().await;
    let ada = seeded["users"]["ada@example.com"]
        .as_str()
        .unwrap()
        .to_owned();
    s.inject(json!([
        {"eventType": "user.session.start", "login": "ada@example.com", "ip": "203.0.113.7",
         "outcome": "SUCCESS", "country": "United States", "city": "New York"},
        {"eventType": "user.session.start", "login": "bob@example.com", "ip": "198.51.100.23",
         "outcome": "FAILURE", "reason": "INVALID_CREDENTIALS"},
        {"eventType": "user.session.end", "login": "ada@example.com", "ip": "198.51.100.23"},
        {"eventType": "app.oauth2.token.grant", "actorId": "0oaclient0000000001",
         "targets": [{"id": "tgt1", "type": "AppInstance", "displayName": "Portal"},
                     {"id": "tgt2", "type": "User", "alternateId": "ada@example.com"}]},
    ]))
    .await;
    let f = |expr: &str| {
        let expr = expr.to_owned();
        let s = &s;
        async move {
            let r = s.logs(&[("filter", &expr)]).await;
            r.events()
                .iter()
                .map(|e| e["eventType"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        f(r#"eventType eq "user.session.start""#).await,
        ["user.session.start", "user.session.start"]
    );
    // String comparisons ignore case.
    assert_eq!(
        f(r#"eventType eq "USER.SESSION.END""#).await,
        ["user.session.end"]
    );
    assert_eq!(
        f(&format!(r#"actor.id eq "{ada}""#)).await,
        ["user.session.start", "user.session.end"]
    );
    assert_eq!(
        f(r#"client.ipAddress eq "198.51.100.23""#).await,
        ["user.session.start", "user.session.end"]
    );
    assert_eq!(
        f(r#"eventType eq "user.session.start" and outcome.result eq "FAILURE""#).await,
        ["user.session.start"]
    );
    assert_eq!(
        f(r#"target.id eq "tgt2""#).await,
        ["app.oauth2.token.grant"]
    );
    assert_eq!(
        f(r#"target.type eq "AppInstance""#).await,
        ["app.oauth2.token.grant"]
    );
    assert_eq!(
        f(r#"eventType sw "app.""#).await,
        ["app.oauth2.token.grant"]
    );
    assert_eq!(f(r#"eventType ew ".end""#).await, ["user.session.end"]);
    assert_eq!(
        f(r#"actor.alternateId co "BOB""#).await,
        ["user.session.start"]
    );
    assert_eq!(
        f(r#"client.geographicalContext.country eq "United States""#).await,
        ["user.session.start"]
    );
    assert_eq!(
        f(r#"outcome.reason pr and severity eq "WARN""#).await,
        ["user.session.start"]
    );
    assert_eq!(
        f(r#"(eventType eq "user.session.end" or target.id eq "tgt1") and client.ipAddress ne "203.0.113.7""#)
            .await,
        ["user.session.end"]
    );
    assert_eq!(
        f(r#"eventType eq "user.session.end" or (target.id eq "tgt1" and actor.id eq "0oaclient0000000001")"#)
            .await,
        ["user.session.end", "app.oauth2.token.grant"]
    );
    assert!(f(r#"eventType eq "nothing""#).await.is_empty());

    // q: every keyword, case-insensitive, over message, type, actor, targets and ip.
    let q = |words: &str| {
        let words = words.to_owned();
        let s = &s;
        async move { s.logs(&[("q", &words)]).await.events().len() }
    };
    assert_eq!(q("ADA login").await, 1);
    assert_eq!(q("ada").await, 3);
    assert_eq!(q("portal ada").await, 1);
    assert_eq!(q("198.51.100.23 session").await, 2);
    assert_eq!(q("ada nobody").await, 0);

    // Error cases.
    s.logs(&[("filter", r#"published gt "2025-01-01T00:00:00.000Z""#)])
        .await
        .assert_error(400, "E0000031");
    let r = s.logs(&[("filter", r#"eventType eq"#)]).await;
    r.assert_error(400, "E0000053");
    assert_eq!(r.body["errorSummary"], "Invalid SCIM filter.");
    s.logs(&[("filter", r#"eventType eq "a" and ("#)])
        .await
        .assert_error(400, "E0000053");
    let eleven = ["k"; 11].join(" ");
    s.logs(&[("q", &eleven)])
        .await
        .assert_error(400, "E0000001");
    s.logs(&[("q", &"x".repeat(41))])
        .await
        .assert_error(400, "E0000001");
    assert_eq!(s.logs(&[("q", &["a"; 10].join(" "))]).await.status, 200);
    s.sim.stop().await;
}

#[tokio::test]
async fn parameter_validation() {
    let s = start(SeedSource::Empty).await;
    s.inject(json!([mark("a", &ago(1)), mark("b", &ago(1))]))
        .await;
    for bad in ["-1", "1001", "x", "", "1.5"] {
        s.logs(&[("limit", bad)])
            .await
            .assert_error(400, "E0000001");
    }
    assert!(s.logs(&[("limit", "0")]).await.events().is_empty());
    assert_eq!(s.logs(&[("limit", "1000")]).await.events().len(), 2);
    assert_eq!(s.logs(&[("limit", "1")]).await.events().len(), 1);
    s.logs(&[("sortOrder", "SIDEWAYS")])
        .await
        .assert_error(400, "E0000001");
    let r = s.logs(&[("since", "yesterday")]).await;
    r.assert_error(400, "E0000001");
    assert!(r.text.contains("since"), "{}", r.text);
    let r = s.logs(&[("until", "2025-02-30T00:00:00Z")]).await;
    r.assert_error(400, "E0000001");
    assert!(r.text.contains("until"), "{}", r.text);
    s.logs(&[("since", &ago(181 * 24 * 60))])
        .await
        .assert_error(400, "E0000053");
    let next = s.logs(&[("limit", "1")]).await.next().unwrap();
    let after = next.split("after=").nth(1).unwrap().to_owned();
    s.logs(&[("since", &ago(10)), ("after", &after)])
        .await
        .assert_error(400, "E0000001");
    s.logs(&[("after", "not-a-cursor")])
        .await
        .assert_error(400, "E0000031");
    assert_eq!(s.logs(&[("after", &after)]).await.marks(), ["b"]);
    s.sim.stop().await;
}

#[tokio::test]
async fn event_shape_and_injected_logins() {
    let s = start(SeedSource::Empty).await;
    let seeded = s.seed_users().await;
    let ada = seeded["users"]["ada@example.com"]
        .as_str()
        .unwrap()
        .to_owned();
    let uuids = s
        .inject(json!([
            {"eventType": "user.session.start", "login": "ada@example.com", "ip": "203.0.113.7",
             "country": "United States", "city": "New York", "published": ago(3)},
            {"eventType": "user.session.start", "login": "ghost@example.com", "ip": "192.0.2.44",
             "outcome": "FAILURE", "reason": "INVALID_CREDENTIALS"},
        ]))
        .await;
    assert_eq!(uuids.len(), 2);
    let stats = s.admin_json("GET", "/__sim/logs/stats", None).await;
    assert!(stats.body["events"].as_u64().unwrap() >= 2);
    let r = s
        .logs(&[("filter", r#"eventType eq "user.session.start""#)])
        .await;
    let ev = r.events();
    assert_eq!(ev.len(), 2);
    let (ok, bad) = (&ev[0], &ev[1]);
    assert_eq!(ok["uuid"], uuids[0].as_str());
    for key in [
        "uuid",
        "published",
        "eventType",
        "version",
        "severity",
        "legacyEventType",
        "displayMessage",
        "actor",
        "client",
        "device",
        "authenticationContext",
        "outcome",
        "target",
        "transaction",
        "debugContext",
        "request",
        "securityContext",
    ] {
        assert!(ok.get(key).is_some(), "missing {key}");
    }
    assert_eq!(ok["version"], "0");
    assert_eq!(ok["severity"], "INFO");
    assert_eq!(ok["displayMessage"], "User login to Okta");
    assert_eq!(ok["legacyEventType"], "core.user_auth.login_success");
    assert_eq!(ok["actor"]["id"], ada.as_str());
    assert_eq!(ok["actor"]["type"], "User");
    assert_eq!(ok["actor"]["alternateId"], "ada@example.com");
    assert_eq!(ok["actor"]["displayName"], "Ada Lovelace");
    assert_eq!(ok["client"]["ipAddress"], "203.0.113.7");
    assert_eq!(ok["client"]["zone"], "null");
    assert_eq!(
        ok["client"]["geographicalContext"]["country"],
        "United States"
    );
    assert!(ok["client"]["geographicalContext"]["geolocation"]["lat"].is_f64());
    assert_eq!(ok["request"]["ipChain"][0]["ip"], "203.0.113.7");
    assert_eq!(ok["request"]["ipChain"][0]["version"], "V4");
    assert_eq!(ok["outcome"]["result"], "SUCCESS");
    assert_eq!(ok["transaction"]["type"], "WEB");
    assert_eq!(
        ok["target"],
        serde_json::json!([]),
        "the spec example's shape: a list"
    );
    assert_eq!(ok["authenticationContext"]["authenticationStep"], 0);
    let published = ok["published"].as_str().unwrap();
    assert!(
        published.ends_with('Z') && published.len() == 24,
        "{published}"
    );
    let uuid = ok["uuid"].as_str().unwrap();
    assert_eq!((uuid.len(), &uuid[14..15]), (36, "4"));

    assert_eq!(bad["outcome"]["result"], "FAILURE");
    assert_eq!(bad["outcome"]["reason"], "INVALID_CREDENTIALS");
    assert_eq!(bad["severity"], "WARN");
    assert_eq!(bad["legacyEventType"], "core.user_auth.login_failed");
    assert_eq!(bad["actor"]["alternateId"], "ghost@example.com");
    assert!(bad["actor"]["id"].as_str().unwrap().starts_with("00u"));
    assert_eq!(bad["client"]["ipAddress"], "192.0.2.44");

    // Bad admin input is rejected as a whole.
    for bad in [
        json!({"events": [{"eventType": "x", "outcome": "MAYBE"}]}),
        json!({"events": [{"eventType": "x", "published": "soon"}]}),
        json!({"events": [{"eventType": ""}]}),
        json!({"events": [{"eventType": "x", "bogus": 1}]}),
        json!({"nope": []}),
    ] {
        let r = s.admin_json("POST", "/__sim/logs/events", Some(bad)).await;
        assert_eq!(r.status, 400, "{}", r.text);
    }
    let clear = s.admin_json("DELETE", "/__sim/logs/events", None).await;
    assert_eq!(clear.status, 204);
    let stats = s.admin_json("GET", "/__sim/logs/stats", None).await;
    assert_eq!(stats.body["events"], 0);
    s.sim.stop().await;
}

#[tokio::test]
async fn logs_bucket_is_rate_limited() {
    let s = start(SeedSource::Empty).await;
    let put = s
        .admin_json(
            "PUT",
            "/__sim/rate-limits",
            Some(json!({"buckets": [
                {"name": "logs", "path_prefix": "/api/v1/logs", "limit": 2},
                {"name": "default", "path_prefix": "/api/v1/", "limit": 100}
            ]})),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    for left in ["1", "0"] {
        let r = s.logs(&[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-rate-limit-limit"), "2");
        assert_eq!(r.header("x-rate-limit-remaining"), left);
    }
    let r = s.logs(&[]).await;
    r.assert_error(429, "E0000047");
    assert_eq!(r.header("x-rate-limit-limit"), "2");
    assert_eq!(r.header("x-rate-limit-remaining"), "0");
    assert!(r.header("x-rate-limit-reset").parse::<u64>().unwrap() > 0);
    assert!(!r.header("x-okta-request-id").is_empty());
    // Other buckets are unaffected.
    assert_eq!(s.get("/api/v1/users").await.status, 200);
    s.sim.stop().await;
}

/// The API token admin's events, oldest first, as `(eventType, requestId)`.
async fn admin_events(s: &Sim) -> Vec<Value> {
    let r = s
        .logs(&[
            ("filter", r#"actor.alternateId eq "sim.admin@example.com""#),
            ("limit", "1000"),
        ])
        .await;
    r.events()
}

#[tokio::test]
async fn actions_write_events_with_their_request_ids() {
    let s = start(SeedSource::Empty).await;
    let seeded = s.seed_users().await;
    let eng = seeded["groups"]["Eng"].as_str().unwrap().to_owned();
    let mut expected: Vec<(String, String)> = Vec::new();
    let mut expect = |r: &Resp, event_type: &str| {
        assert!(r.status < 300, "{event_type}: {}", r.text);
        expected.push((event_type.to_owned(), r.header("x-okta-request-id")));
    };
    let created = s
        .send(
            "POST",
            "/api/v1/users?activate=false",
            Some(
                json!({"profile": {"login": "cy@example.com", "email": "cy@example.com",
                                    "firstName": "Cy", "lastName": "Young"},
                        "credentials": {"password": {"value": "Sup3r-secret!"}}}),
            ),
        )
        .await;
    expect(&created, "user.lifecycle.create");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let life = |op: &str| format!("/api/v1/users/{id}/lifecycle/{op}");
    expect(
        &s.send("POST", &(life("activate") + "?sendEmail=false"), None)
            .await,
        "user.lifecycle.activate",
    );
    expect(
        &s.send("POST", &life("suspend"), None).await,
        "user.lifecycle.suspend",
    );
    // A failed action writes nothing.
    assert_eq!(s.send("POST", &life("suspend"), None).await.status, 400);
    expect(
        &s.send("POST", &life("unsuspend"), None).await,
        "user.lifecycle.unsuspend",
    );
    expect(
        &s.send(
            "POST",
            &format!("/api/v1/users/{id}"),
            Some(json!({"profile": {"title": "Pitcher"}})),
        )
        .await,
        "user.account.update_profile",
    );
    let r = s
        .admin_json(
            "POST",
            &format!("/__sim/users/{id}/status"),
            Some(json!({"status": "LOCKED_OUT"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    expect(
        &s.send("POST", &life("unlock"), None).await,
        "user.account.unlock",
    );
    expect(
        &s.send("POST", &(life("reset_password") + "?sendEmail=false"), None)
            .await,
        "user.account.reset_password",
    );
    expect(
        &s.send("POST", &life("expire_password"), None).await,
        "user.account.expire_password",
    );
    let membership = format!("/api/v1/groups/{eng}/users/{id}");
    expect(
        &s.send("PUT", &membership, None).await,
        "group.user_membership.add",
    );
    expect(
        &s.send("DELETE", &membership, None).await,
        "group.user_membership.remove",
    );
    expect(
        &s.send("POST", &life("deactivate"), None).await,
        "user.lifecycle.deactivate",
    );
    expect(
        &s.send("POST", &(life("activate") + "?sendEmail=false"), None)
            .await,
        "user.lifecycle.activate",
    );
    expect(
        &s.send("DELETE", &format!("/api/v1/users/{id}"), None).await,
        "user.lifecycle.deactivate",
    );
    // Reads write nothing.
    assert_eq!(s.get(&format!("/api/v1/users/{id}")).await.status, 200);
    assert_eq!(s.get("/api/v1/users").await.status, 200);
    expect(
        &s.send("DELETE", &format!("/api/v1/users/{id}"), None).await,
        "user.lifecycle.delete.initiated",
    );

    let events = admin_events(&s).await;
    let got: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["eventType"].as_str().unwrap().to_owned(),
                e["debugContext"]["debugData"]["requestId"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    for e in &events {
        assert_eq!(e["actor"]["type"], "User");
        assert_eq!(e["actor"]["displayName"], "Sim Admin");
        assert_eq!(e["client"]["ipAddress"], "127.0.0.1");
        assert_eq!(
            e["client"]["userAgent"]["rawUserAgent"],
            "simulator-test/1.0"
        );
        assert_eq!(e["outcome"]["result"], "SUCCESS");
        assert_eq!(
            e["transaction"]["id"],
            e["debugContext"]["debugData"]["requestId"]
        );
        let user = &e["target"][0];
        assert_eq!(user["id"], id.as_str());
        assert_eq!(user["type"], "User");
        assert_eq!(user["alternateId"], "cy@example.com");
        assert_eq!(user["displayName"], "Cy Young");
    }
    assert_eq!(events[0]["displayMessage"], "Create Okta user");
    assert_eq!(
        events[0]["debugContext"]["debugData"]["requestUri"],
        "/api/v1/users"
    );
    let add = &events[8];
    assert_eq!(add["displayMessage"], "Add user to group membership");
    assert_eq!(add["target"][1]["id"], eng.as_str());
    assert_eq!(add["target"][1]["type"], "UserGroup");
    assert_eq!(add["target"][1]["displayName"], "Eng");

    // The request id of a response finds its event.
    let (_, rid) = &expected[2];
    let r = s
        .logs(&[(
            "filter",
            &format!(r#"debugContext.debugData.requestId eq "{rid}""#),
        )])
        .await;
    assert_eq!(r.events().len(), 1);
    assert_eq!(r.events()[0]["eventType"], "user.lifecycle.suspend");
    // Targets match when any of them does.
    let r = s
        .logs(&[("filter", &format!(r#"target.id eq "{eng}""#))])
        .await;
    assert_eq!(r.events().len(), 2);
    s.sim.stop().await;
}

/// A create with `groupIds` logs the user's creation, then one membership event per group,
/// with the create's request id, as a membership added later would be.
#[tokio::test]
async fn a_create_with_group_ids_logs_each_membership_it_made() {
    let s = start(SeedSource::Empty).await;
    let seeded = s.seed_users().await;
    let eng = seeded["groups"]["Eng"].as_str().unwrap().to_owned();
    let created = s
        .send(
            "POST",
            "/api/v1/users?activate=false",
            Some(
                json!({"profile": {"login": "dee@example.com", "email": "dee@example.com",
                                    "firstName": "Dee", "lastName": "Lee"},
                        "groupIds": [eng]}),
            ),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let request_id = created.header("x-okta-request-id");
    let events = admin_events(&s).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["user.lifecycle.create", "group.user_membership.add"]
    );
    let add = &events[1];
    assert_eq!(add["target"][0]["id"], id.as_str());
    assert_eq!(add["target"][1]["id"], eng.as_str());
    assert_eq!(
        add["debugContext"]["debugData"]["requestId"],
        request_id.as_str()
    );
    s.sim.stop().await;
}

#[tokio::test]
async fn demo_org_has_recent_logins_and_seeds_take_events() {
    let s = start(SeedSource::Demo).await;
    let r = s
        .logs(&[
            ("filter", r#"eventType eq "user.session.start""#),
            ("since", &ago(25 * 60)),
        ])
        .await;
    let logins = r.events();
    assert!((10..=14).contains(&logins.len()), "{}", logins.len());
    let failures = logins
        .iter()
        .filter(|e| e["outcome"]["result"] == "FAILURE")
        .count();
    assert!(failures >= 3 && failures < logins.len());
    let mut ips: Vec<&str> = logins
        .iter()
        .map(|e| e["client"]["ipAddress"].as_str().unwrap())
        .collect();
    ips.sort_unstable();
    ips.dedup();
    assert!(ips.len() >= 3, "{ips:?}");
    for e in &logins {
        let published = chrono::DateTime::parse_from_rfc3339(e["published"].as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc);
        assert!(published > Utc::now() - Duration::hours(24));
        assert!(e["client"]["geographicalContext"]["country"].is_string());
    }
    let ada = s.get("/api/v1/users/ada.lovelace@example.com").await;
    let r = s
        .logs(&[(
            "filter",
            &format!(
                r#"actor.id eq "{}" and eventType eq "user.session.start""#,
                ada.body["id"].as_str().unwrap()
            ),
        )])
        .await;
    assert!(!r.events().is_empty());
    assert!(
        r.events()
            .iter()
            .all(|e| e["actor"]["displayName"] == "Ada Lovelace")
    );

    // Seed documents may carry events (YAML).
    let yaml = "users:\n  - login: zed@example.com\nevents:\n  - eventType: user.session.start\n    login: zed@example.com\n    ip: 192.0.2.99\n    outcome: FAILURE\n";
    let r = into_resp(
        s.c.post(format!("{}/__sim/seed", s.base))
            .body(yaml)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["events"].as_array().unwrap().len(), 1);
    let r = s
        .logs(&[("filter", r#"client.ipAddress eq "192.0.2.99""#)])
        .await;
    let ev = r.events();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["actor"]["alternateId"], "zed@example.com");
    assert_eq!(ev[0]["severity"], "WARN");
    s.sim.stop().await;
}
