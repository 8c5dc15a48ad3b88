//! Black-box tests of the Okta org simulator over real HTTP.

// Test helpers outside `#[test]` functions are not covered by `allow-unwrap-in-tests`; a
// failed unwrap here is a failed test, which is what we want.

use std::time::Duration;

use okta_sim::{BucketLimit, RateLimitSettings, SeedSource, Simulator, SimulatorSettings};
use serde_json::{Value, json};

use crate::sim_harness;

use sim_harness::{Resp, Sim, TOKEN, into_resp, start, start_with};

impl Resp {
    fn ids(&self) -> Vec<String> {
        self.body
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Sim {
    async fn post(&self, path: &str, body: Value) -> Resp {
        self.send("POST", path, Some(body)).await
    }

    async fn post_empty(&self, path: &str) -> Resp {
        self.send("POST", path, None).await
    }

    async fn seed(&self, doc: Value) -> Value {
        let r = self
            .admin("POST", "/__sim/seed", Some(doc.to_string()))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    }

    async fn create(&self, login: &str, query: &str, password: bool) -> Value {
        let mut body = json!({"profile": {"login": login, "email": login, "firstName": "Test", "lastName": "User"}});
        if password {
            body["credentials"] = json!({"password": {"value": "Sup3r-secret-pw"}});
        }
        let r = self.post(&format!("/api/v1/users{query}"), body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    }

    async fn status_of(&self, id: &str) -> String {
        let r = self.get(&format!("/api/v1/users/{id}")).await;
        r.body["status"].as_str().unwrap().to_owned()
    }

    async fn follow_all(&self, first: &str) -> (Vec<String>, Vec<Resp>) {
        let mut ids = Vec::new();
        let mut pages = Vec::new();
        let mut url = format!("{}{}", self.base, first);
        loop {
            let r = into_resp(
                self.c
                    .get(&url)
                    .header("Authorization", format!("SSWS {TOKEN}"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text);
            ids.extend(r.ids());
            let next = r.next();
            pages.push(r);
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        (ids, pages)
    }
}

#[tokio::test]
async fn auth_failures_have_okta_shape_and_common_headers() {
    let s = start(SeedSource::Empty).await;
    for auth in [
        None,
        Some("SSWS wrong"),
        Some("Bearer test-token"),
        Some("ssws test-token"),
        Some("SSWS  test-token"),
    ] {
        let mut rb = s.c.get(format!("{}/api/v1/users", s.base));
        if let Some(a) = auth {
            rb = rb.header("Authorization", a);
        }
        let r = into_resp(rb.send().await.unwrap()).await;
        r.assert_error(401, "E0000011");
        assert_eq!(r.body["errorSummary"], "Invalid token provided");
        assert_eq!(r.body["errorCauses"], json!([]));
        assert_eq!(r.header("content-type"), "application/json");
    }
    let a = s.get("/api/v1/users").await;
    let b = s.get("/api/v1/users").await;
    assert_eq!(a.status, 200);
    for r in [&a, &b] {
        let id = r.header("x-okta-request-id");
        assert_eq!(id.len(), 32);
        assert!(
            id.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert!(!r.header("date").is_empty());
        assert!(r.header("x-rate-limit-limit").parse::<u64>().is_ok());
        assert!(r.header("x-rate-limit-remaining").parse::<u64>().is_ok());
        assert!(r.header("x-rate-limit-reset").parse::<u64>().is_ok());
    }
    assert_ne!(a.header("x-okta-request-id"), b.header("x-okta-request-id"));
    assert!(s.base.starts_with("http://127.0.0.1:") && !s.base.ends_with('/'));
    s.sim.stop().await;
}

#[tokio::test]
async fn unknown_path_and_wrong_method() {
    let s = start(SeedSource::Empty).await;
    s.get("/api/v1/nope").await.assert_error(404, "E0000008");
    let r = s.get("/api/v1/users/00uabc/lifecycle/explode").await;
    r.assert_error(404, "E0000008");
    assert_eq!(r.body["errorSummary"], "The requested path was not found");
    s.send("PATCH", "/api/v1/users", None)
        .await
        .assert_error(405, "E0000022");
    s.get("/api/v1/users/00uabc/lifecycle/activate")
        .await
        .assert_error(405, "E0000022");
}

#[tokio::test]
async fn create_shapes_and_validation() {
    let s = start(SeedSource::Empty).await;
    let body = json!({
        "profile": {"login": "John.Doe@example.com", "email": "John.Doe@example.com",
                    "firstName": "John", "lastName": "Doe", "nickName": "JD"},
        "credentials": {"password": {"value": "Password150kta"}}
    });
    let r = s.post("/api/v1/users?activate=false", body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.text.contains("Password150kta"));
    let u = &r.body;
    let id = u["id"].as_str().unwrap();
    assert!(id.starts_with("00u") && id.len() == 20);
    assert_eq!(u["status"], "STAGED");
    assert_eq!(u["activated"], Value::Null);
    assert_eq!(u["lastLogin"], Value::Null);
    assert!(u["passwordChanged"].as_str().unwrap().ends_with(".000Z"));
    assert_eq!(u["created"].as_str().unwrap().len(), 24);
    assert!(u["type"]["id"].is_string());
    assert_eq!(u["profile"]["nickName"], "JD");
    assert_eq!(u["profile"]["secondEmail"], Value::Null);
    assert_eq!(u["credentials"]["password"], json!({}));
    assert_eq!(
        u["credentials"]["emails"][0],
        json!({"value": "John.Doe@example.com", "status": "VERIFIED", "type": "PRIMARY"})
    );
    assert_eq!(
        u["credentials"]["provider"],
        json!({"type": "OKTA", "name": "OKTA"})
    );
    assert!(u.get("transitioningToStatus").is_none());
    assert_eq!(
        u["_links"]["self"]["href"],
        format!("{}/api/v1/users/{id}", s.base)
    );
    assert_eq!(u["_links"]["activate"]["method"], "POST");
    // Field order follows Okta's recordings.
    assert!(r.text.starts_with(r#"{"id":""#));
    assert!(r.text.find("\"status\"") < r.text.find("\"created\""));

    // get by id and by login, case-insensitively
    assert_eq!(s.get(&format!("/api/v1/users/{id}")).await.body["id"], id);
    assert_eq!(
        s.get("/api/v1/users/john.doe@EXAMPLE.com").await.body["id"],
        id
    );
    let r = s.get("/api/v1/users/00uNOPE0000000000000").await;
    r.assert_error(404, "E0000007");
    assert_eq!(
        r.body["errorSummary"],
        "Not found: Resource not found: 00uNOPE0000000000000 (User)"
    );

    // duplicate login, case-insensitive
    let mut dup = body.clone();
    dup["profile"]["login"] = json!("JOHN.DOE@example.com");
    let r = s.post("/api/v1/users", dup).await;
    r.assert_error(400, "E0000001");
    assert_eq!(r.body["errorSummary"], "Api validation failed: login");
    assert_eq!(
        r.body["errorCauses"],
        json!([{"errorSummary": "login: An object with this field already exists in the current organization"}])
    );

    // missing and malformed fields: one cause each
    let r = s
        .post(
            "/api/v1/users",
            json!({"profile": {"login": "not-an-email", "email": "x@y", "firstName": " "}}),
        )
        .await;
    r.assert_error(400, "E0000001");
    let causes: Vec<&str> = r.body["errorCauses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["errorSummary"].as_str().unwrap())
        .collect();
    assert_eq!(
        causes,
        vec![
            "login: Username must be in the form of an email address",
            "email: Does not match required pattern",
            "firstName: The field cannot be left blank",
            "lastName: The field cannot be left blank",
        ]
    );

    // malformed JSON
    let r = into_resp(
        s.c.post(format!("{}/api/v1/users", s.base))
            .header("Authorization", format!("SSWS {TOKEN}"))
            .header("content-type", "application/json")
            .body("{\"profile\": ")
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(400, "E0000003");

    // unknown group id
    let mut g = body.clone();
    g["profile"]["login"] = json!("g@example.com");
    g["groupIds"] = json!(["00gNOPE0000000000000"]);
    let r = s.post("/api/v1/users", g).await;
    r.assert_error(404, "E0000007");
    assert_eq!(
        r.body["errorSummary"],
        "Not found: Resource not found: 00gNOPE0000000000000 (UserGroup)"
    );

    // nextLogin=changePassword rules
    let np = json!({"profile": {"login": "np@example.com", "email": "np@example.com", "firstName": "N", "lastName": "P"}});
    s.post("/api/v1/users?nextLogin=changePassword", np.clone())
        .await
        .assert_error(400, "E0000124");
    let mut wp = np.clone();
    wp["credentials"] = json!({"password": {"value": "abcDEF123!"}});
    s.post(
        "/api/v1/users?activate=false&nextLogin=changePassword",
        wp.clone(),
    )
    .await
    .assert_error(400, "E0000125");
    let r = s
        .post("/api/v1/users?activate=true&nextLogin=changePassword", wp)
        .await;
    assert_eq!(r.body["status"], "PASSWORD_EXPIRED");

    // activate=true: with password ACTIVE, without PROVISIONED
    let a = s.create("a@example.com", "", true).await;
    assert_eq!(a["status"], "ACTIVE");
    assert!(a["activated"].is_string());
    let p = s.create("p@example.com", "?activate=true", false).await;
    assert_eq!(p["status"], "PROVISIONED");
    assert_eq!(p["passwordChanged"], Value::Null);
    assert!(p["credentials"].get("password").is_none());

    // everyone belongs to Everyone
    let groups = s
        .get(&format!(
            "/api/v1/users/{}/groups",
            a["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(groups.body[0]["profile"]["name"], "Everyone");
    assert_eq!(groups.body[0]["type"], "BUILT_IN");
    assert_eq!(groups.links().len(), 1);
}

#[tokio::test]
async fn lifecycle_transitions_and_error_codes() {
    let s = start(SeedSource::Empty).await;
    let u = s.create("life@example.com", "?activate=false", true).await;
    let id = u["id"].as_str().unwrap().to_owned();
    let lc = |op: &str| format!("/api/v1/users/{id}/lifecycle/{op}");

    let r = s.post_empty(&lc("activate?sendEmail=false")).await;
    assert_eq!(r.status, 200);
    let token = r.body["activationToken"].as_str().unwrap();
    assert_eq!(token.len(), 20);
    assert_eq!(
        r.body["activationUrl"],
        format!("{}/tokens/{token}/verify", s.base)
    );
    let got = s.get(&format!("/api/v1/users/{id}")).await.body;
    assert_eq!(got["status"], "ACTIVE");
    assert!(got["activated"].is_string());
    assert_eq!(got["_links"]["suspend"]["method"], "POST");

    let r = s.post_empty(&lc("activate")).await;
    r.assert_error(403, "E0000016");

    let r = s.post_empty(&lc("suspend")).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({})));
    assert_eq!(s.status_of(&id).await, "SUSPENDED");
    let r = s.post_empty(&lc("suspend")).await;
    r.assert_error(400, "E0000001");
    assert_eq!(
        r.body["errorSummary"],
        "Api validation failed: Cannot suspend a user that is not active"
    );
    assert_eq!(
        r.body["errorCauses"],
        json!([{"errorSummary": "Cannot suspend a user that is not active"}])
    );
    s.post_empty(&lc("activate"))
        .await
        .assert_error(403, "E0000038");
    s.post_empty(&lc("reset_password?sendEmail=true"))
        .await
        .assert_error(403, "E0000017");

    assert_eq!(s.post_empty(&lc("unsuspend")).await.body, json!({}));
    assert_eq!(s.status_of(&id).await, "ACTIVE");
    let r = s.post_empty(&lc("unsuspend")).await;
    r.assert_error(400, "E0000001");
    assert_eq!(
        r.body["errorCauses"][0]["errorSummary"],
        "Cannot unsuspend a user that is not suspended"
    );

    let r = s.post_empty(&lc("unlock")).await;
    r.assert_error(403, "E0000032");
    assert_eq!(
        r.body["errorCauses"],
        json!([{"errorSummary": "The user is not locked out."}])
    );
    let f = s
        .admin(
            "POST",
            &format!("/__sim/users/{id}/status"),
            Some(r#"{"status":"LOCKED_OUT"}"#.into()),
        )
        .await;
    assert_eq!(f.body["status"], "LOCKED_OUT");
    assert_eq!(s.post_empty(&lc("unlock")).await.body, json!({}));
    assert_eq!(s.status_of(&id).await, "ACTIVE");

    let r = s.post_empty(&lc("reset_password")).await;
    r.assert_error(400, "E0000028");
    let r = s.post_empty(&lc("reset_password?sendEmail=false")).await;
    let url = r.body["resetPasswordUrl"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/reset_password/", s.base)));
    assert_eq!(s.status_of(&id).await, "RECOVERY");
    assert_eq!(
        s.post_empty(&lc("reset_password?sendEmail=true"))
            .await
            .body,
        json!({})
    );

    let r = s.post_empty(&lc("expire_password")).await;
    assert_eq!(r.body["status"], "PASSWORD_EXPIRED");
    assert_eq!(r.body["id"], id.as_str());
    let r = s
        .post_empty(&lc("expire_password_with_temp_password"))
        .await;
    assert_eq!(r.body["tempPassword"].as_str().unwrap().len(), 12);

    s.post_empty(&lc("reactivate"))
        .await
        .assert_error(403, "E0000038");
    assert_eq!(s.post_empty(&lc("deactivate")).await.body, json!({}));
    assert_eq!(s.status_of(&id).await, "DEPROVISIONED");
    s.post_empty(&lc("deactivate"))
        .await
        .assert_error(403, "E0000038");
    s.post_empty(&lc("expire_password"))
        .await
        .assert_error(403, "E0000038");
    assert_eq!(s.post_empty(&lc("activate")).await.body, json!({}));
    assert_eq!(s.status_of(&id).await, "ACTIVE");

    // a user without a password: PROVISIONED, reactivate keeps it there
    let p = s.create("nopw@example.com", "?activate=false", false).await;
    let pid = p["id"].as_str().unwrap();
    s.post_empty(&format!(
        "/api/v1/users/{pid}/lifecycle/activate?sendEmail=true"
    ))
    .await;
    assert_eq!(s.status_of(pid).await, "PROVISIONED");
    let r = s
        .post_empty(&format!("/api/v1/users/{pid}/lifecycle/reactivate"))
        .await;
    assert!(r.body["activationToken"].is_string());
    assert_eq!(s.status_of(pid).await, "PROVISIONED");
    s.post_empty(&format!(
        "/api/v1/users/{pid}/lifecycle/reset_password?sendEmail=false"
    ))
    .await
    .assert_error(403, "E0000017");

    let r = s
        .post_empty("/api/v1/users/00uNOPE0000000000000/lifecycle/suspend")
        .await;
    r.assert_error(404, "E0000007");
}

#[tokio::test]
async fn update_and_replace() {
    let s = start(SeedSource::Empty).await;
    let u = s.create("up@example.com", "", true).await;
    let id = u["id"].as_str().unwrap();
    s.create("taken@example.com", "", true).await;
    let path = format!("/api/v1/users/{id}");
    let r = s
        .post(
            &path,
            json!({"profile": {"department": "Eng", "nickName": "Up"}}),
        )
        .await;
    assert_eq!(r.body["profile"]["department"], "Eng");
    assert_eq!(r.body["profile"]["firstName"], "Test");
    let r = s
        .post(&path, json!({"profile": {"department": null}}))
        .await;
    assert!(r.body["profile"].get("department").is_none());
    assert_eq!(r.body["profile"]["nickName"], "Up");
    let r = s.post(&path, json!({"profile": {"lastName": null}})).await;
    r.assert_error(400, "E0000001");
    assert_eq!(
        r.body["errorCauses"][0]["errorSummary"],
        "lastName: The field cannot be left blank"
    );
    let r = s
        .post(&path, json!({"profile": {"login": "Taken@example.com"}}))
        .await;
    r.assert_error(400, "E0000001");
    let r = s
        .send(
            "PUT",
            &path,
            Some(json!({"profile": {"login": "up2@example.com", "email": "up2@example.com", "firstName": "U", "lastName": "P"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["profile"]["login"], "up2@example.com");
    assert!(r.body["profile"].get("nickName").is_none());
    s.send(
        "PUT",
        &path,
        Some(json!({"profile": {"login": "x@example.com"}})),
    )
    .await
    .assert_error(400, "E0000001");
}

#[tokio::test]
async fn delete_takes_two_steps() {
    let s = start(SeedSource::Empty).await;
    let u = s.create("del@example.com", "", true).await;
    let id = u["id"].as_str().unwrap();
    let r = s.send("DELETE", &format!("/api/v1/users/{id}"), None).await;
    assert_eq!(r.status, 204);
    assert!(r.text.is_empty());
    assert!(r.headers.get("content-type").is_none());
    assert_eq!(s.status_of(id).await, "DEPROVISIONED");
    let r = s
        .send(
            "DELETE",
            &format!("/api/v1/users/{id}?sendEmail=false"),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    s.get(&format!("/api/v1/users/{id}"))
        .await
        .assert_error(404, "E0000007");
    s.send("DELETE", &format!("/api/v1/users/{id}"), None)
        .await
        .assert_error(404, "E0000007");
    let everyone = s.get("/api/v1/groups?q=Everyone").await.body[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let members = s.get(&format!("/api/v1/groups/{everyone}/users")).await;
    assert!(!members.ids().contains(&id.to_owned()));
}

#[tokio::test]
async fn user_list_paging_with_cursor_and_separate_links() {
    let s = start(SeedSource::Empty).await;
    let users: Vec<Value> = (0..5)
        .map(|i| json!({"login": format!("page{i}@example.com")}))
        .chain([json!({"login": "gone@example.com", "status": "DEPROVISIONED"})])
        .collect();
    s.seed(json!({ "users": users })).await;
    let first = s.get("/api/v1/users?limit=2").await;
    let links = first.links();
    assert_eq!(links.len(), 2, "{links:?}");
    assert_eq!(
        links[0],
        format!("<{}/api/v1/users?limit=2>; rel=\"self\"", s.base)
    );
    let last_id = first.ids()[1].clone();
    assert_eq!(
        links[1],
        format!(
            "<{}/api/v1/users?after=0{last_id}&limit=2>; rel=\"next\"",
            s.base
        )
    );
    let (ids, pages) = s.follow_all("/api/v1/users?limit=2").await;
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[2].ids().len(), 1);
    assert_eq!(pages[2].links().len(), 1);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert_eq!(ids.len(), 5);
    // no limit: default 200, one page; huge limits clamp
    assert_eq!(s.get("/api/v1/users").await.ids().len(), 5);
    let r = s
        .get("/api/v1/users?limit=99999999999999999999999999")
        .await;
    assert_eq!(r.status, 200);
    assert!(r.links()[0].contains("limit=200"));
    s.get("/api/v1/users?limit=0")
        .await
        .assert_error(400, "E0000001");
    s.get("/api/v1/users?limit=abc")
        .await
        .assert_error(400, "E0000001");
    s.get("/api/v1/users?after=garbage")
        .await
        .assert_error(400, "E0000031");
    s.get("/api/v1/users?after=00uX")
        .await
        .assert_error(400, "E0000031");
}

#[tokio::test]
async fn search_filter_and_q_differ() {
    let s = start(SeedSource::Demo).await;
    let n = |r: &Resp| r.body.as_array().map(Vec::len).unwrap_or(usize::MAX);
    // plain list omits DEPROVISIONED, search and filter include it
    let all = s.get("/api/v1/users").await;
    assert_eq!(n(&all), 8);
    let r = s
        .get("/api/v1/users?search=status+eq+%22deprovisioned%22")
        .await;
    assert_eq!(n(&r), 1, "{}", r.text);
    assert_eq!(r.body[0]["profile"]["login"], "dennis.ritchie@example.com");
    let r = s
        .get("/api/v1/users?filter=status+eq+%22DEPROVISIONED%22")
        .await;
    assert_eq!(n(&r), 1);
    let r = s
        .get("/api/v1/users?filter=status+eq+%22deprovisioned%22")
        .await;
    assert_eq!(n(&r), 0, "filter is case-sensitive");
    // ...except on logins, which Okta matches in any case
    let r = s
        .get("/api/v1/users?filter=profile.login+eq+%22ADA.Lovelace%40EXAMPLE.com%22")
        .await;
    assert_eq!(n(&r), 1, "{}", r.text);
    assert_eq!(r.body[0]["profile"]["login"], "ada.lovelace@example.com");
    // search co only on the four profile attributes
    let r = s
        .get("/api/v1/users?search=profile.lastName+co+%22OPP%22")
        .await;
    assert_eq!(n(&r), 1);
    let r = s
        .get("/api/v1/users?search=profile.department+co+%22eng%22")
        .await;
    r.assert_error(400, "E0000031");
    assert_eq!(r.body["errorSummary"], "Invalid search criteria.");
    assert!(!r.body["errorCauses"].as_array().unwrap().is_empty());
    s.get("/api/v1/users?filter=profile.login+co+%22a%22")
        .await
        .assert_error(400, "E0000031");
    s.get("/api/v1/users?filter=profile.department+eq+%22Sales%22")
        .await
        .assert_error(400, "E0000031");
    // combination, precedence, custom attributes
    let r = s.get("/api/v1/users?search=profile.department+eq+%22engineering%22+and+(status+eq+%22ACTIVE%22+or+status+eq+%22LOCKED_OUT%22)").await;
    assert_eq!(n(&r), 3, "{}", r.text);
    let r = s
        .get("/api/v1/users?filter=lastUpdated+gt+%222000-01-01T00:00:00.000Z%22")
        .await;
    assert_eq!(n(&r), 9);
    // q: prefix on first/last/email, omits DEPROVISIONED, no next link
    let r = s.get("/api/v1/users?q=den").await;
    assert_eq!(n(&r), 0);
    let r = s.get("/api/v1/users?q=GRA").await;
    assert_eq!(n(&r), 1);
    let r = s.get("/api/v1/users?q=&limit=2").await;
    assert_eq!(n(&r), 2);
    assert_eq!(r.links().len(), 1);
    // links keep the query, re-encoded like Okta's
    let r = s
        .get("/api/v1/users?search=status%20eq%20%22ACTIVE%22&limit=1")
        .await;
    assert_eq!(
        r.links()[0],
        format!(
            "<{}/api/v1/users?search=status+eq+%22ACTIVE%22&limit=1>; rel=\"self\"",
            s.base
        )
    );
    assert!(
        r.next()
            .unwrap()
            .contains("search=status+eq+%22ACTIVE%22&after=0")
    );
    // invalid expressions
    for bad in [
        "status",
        "status+eq",
        "status+eq+ACTIVE",
        "(status+eq+%22A%22",
        "status+ne+%22ACTIVE%22",
        "status+eq+%22A%22+and",
        "foo.bar+eq+%22x%22",
        "status+eq+%22unterminated",
    ] {
        s.get(&format!("/api/v1/users?search={bad}"))
            .await
            .assert_error(400, "E0000031");
    }
    s.get("/api/v1/users?search=status+eq+%22A%22&q=a")
        .await
        .assert_error(400, "E0000031");
}

#[tokio::test]
async fn groups_listing_and_queries() {
    let s = start(SeedSource::Demo).await;
    let names = |r: &Resp| -> Vec<String> {
        r.body
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["profile"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = s.get("/api/v1/groups").await;
    assert_eq!(all.body.as_array().unwrap().len(), 6);
    let g = &all.body[0];
    assert_eq!(g["objectClass"], json!(["okta:user_group"]));
    assert!(g["lastMembershipUpdated"].is_string());
    assert!(
        g["_links"]["users"]["href"]
            .as_str()
            .unwrap()
            .ends_with("/users")
    );
    let r = s.get("/api/v1/groups?q=eng").await;
    assert_eq!(names(&r), vec!["Engineering"]);
    let mut r = names(&s.get("/api/v1/groups?search=profile.name+sw+%22s%22").await);
    r.sort();
    assert_eq!(r, vec!["Sales", "Support"]);
    let r = s.get("/api/v1/groups?filter=type+eq+%22APP_GROUP%22").await;
    assert_eq!(names(&r), vec!["GitHub Users"]);
    let r = s.get("/api/v1/groups?filter=type+eq+%22app_group%22").await;
    assert!(names(&r).is_empty());
    let r = s
        .get("/api/v1/groups?search=profile.description+co+%22customers%22")
        .await;
    assert_eq!(names(&r), vec!["Support"]);
    s.get("/api/v1/groups?search=type+co+%22APP%22")
        .await
        .assert_error(400, "E0000031");
    s.get("/api/v1/groups?filter=profile.name+eq+%22Sales%22")
        .await
        .assert_error(400, "E0000031");
    let (ids, pages) = s.follow_all("/api/v1/groups?limit=4").await;
    assert_eq!((ids.len(), pages.len()), (6, 2));
    let r = s.get("/api/v1/groups/00gNOPE0000000000000").await;
    r.assert_error(404, "E0000007");
    assert_eq!(
        r.body["errorSummary"],
        "Not found: Resource not found: 00gNOPE0000000000000 (UserGroup)"
    );
    let r = s
        .post("/api/v1/groups", json!({"profile": {"name": "New Team"}}))
        .await;
    assert_eq!(r.body["type"], "OKTA_GROUP");
    assert_eq!(r.body["profile"]["description"], Value::Null);
    s.post("/api/v1/groups", json!({"profile": {"description": "x"}}))
        .await
        .assert_error(400, "E0000001");
}

#[tokio::test]
async fn group_members_paging_and_membership_idempotence() {
    let s = start(SeedSource::Empty).await;
    let users: Vec<Value> = (0..450)
        .map(|i| json!({"login": format!("m{i:03}@example.com")}))
        .collect();
    let logins: Vec<String> = (0..450).map(|i| format!("m{i:03}@example.com")).collect();
    let res = s
        .seed(
            json!({"users": users, "groups": [{"name": "Big", "members": logins},
                                                 {"name": "App", "type": "APP_GROUP"}]}),
        )
        .await;
    let gid = res["groups"]["Big"].as_str().unwrap().to_owned();
    let (ids, pages) = s
        .follow_all(&format!("/api/v1/groups/{gid}/users?limit=200"))
        .await;
    let sizes: Vec<usize> = pages.iter().map(|p| p.ids().len()).collect();
    assert_eq!(sizes, vec![200, 200, 50]);
    assert_eq!(ids.len(), 450);
    let r = s.get(&format!("/api/v1/groups/{gid}/users")).await;
    assert_eq!(r.ids().len(), 450);
    assert_eq!(
        r.links(),
        vec![format!(
            "<{}/api/v1/groups/{gid}/users?limit=1000>; rel=\"self\"",
            s.base
        )]
    );
    let r = s
        .get(&format!("/api/v1/groups/{gid}/users?limit=5000"))
        .await;
    assert!(r.links()[0].contains("limit=1000"));

    // membership changes
    let g2 = s
        .post("/api/v1/groups", json!({"profile": {"name": "Small"}}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let uid = res["users"]["m000@example.com"].as_str().unwrap();
    let path = format!("/api/v1/groups/{g2}/users/{uid}");
    for _ in 0..2 {
        let r = s.send("PUT", &path, None).await;
        assert_eq!(r.status, 204);
    }
    assert_eq!(
        s.get(&format!("/api/v1/groups/{g2}/users")).await.ids(),
        vec![uid.to_owned()]
    );
    for _ in 0..2 {
        assert_eq!(s.send("DELETE", &path, None).await.status, 204);
    }
    assert!(
        s.get(&format!("/api/v1/groups/{g2}/users"))
            .await
            .ids()
            .is_empty()
    );
    s.send(
        "PUT",
        &format!("/api/v1/groups/00gNOPE0000000000000/users/{uid}"),
        None,
    )
    .await
    .assert_error(404, "E0000007");
    let r = s
        .send(
            "PUT",
            &format!("/api/v1/groups/{g2}/users/00uNOPE0000000000000"),
            None,
        )
        .await;
    r.assert_error(404, "E0000007");
    assert!(r.body["errorSummary"].as_str().unwrap().ends_with("(User)"));
    let app = res["groups"]["App"].as_str().unwrap();
    s.send("PUT", &format!("/api/v1/groups/{app}/users/{uid}"), None)
        .await
        .assert_error(400, "E0000001");
    s.get(&format!("/api/v1/groups/{gid}/users?after=bad"))
        .await
        .assert_error(400, "E0000031");
}

#[tokio::test]
async fn rate_limit_exhaustion_returns_429_with_headers() {
    let rl = RateLimitSettings {
        window: Duration::from_secs(60),
        concurrency_limit: 10,
        buckets: vec![
            BucketLimit {
                name: "users".into(),
                method: None,
                path_prefix: "/api/v1/users".into(),
                limit: 3,
            },
            BucketLimit {
                name: "rest".into(),
                method: None,
                path_prefix: "/api/".into(),
                limit: 100,
            },
        ],
    };
    let s = start_with(SeedSource::Empty, rl).await;
    for expected in [2, 1, 0] {
        let r = s.get("/api/v1/users").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-rate-limit-limit"), "3");
        assert_eq!(r.header("x-rate-limit-remaining"), expected.to_string());
    }
    let r = s.get("/api/v1/users").await;
    r.assert_error(429, "E0000047");
    assert_eq!(
        r.body["errorSummary"],
        "API call exceeded rate limit due to too many requests."
    );
    assert_eq!(r.header("x-rate-limit-limit"), "3");
    assert_eq!(r.header("x-rate-limit-remaining"), "0");
    let reset: u64 = r.header("x-rate-limit-reset").parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(reset > now && reset <= now + 61);
    assert!(r.headers.get("retry-after").is_none());
    // another bucket is unaffected
    let r = s.get("/api/v1/groups").await;
    assert_eq!(
        (r.status, r.header("x-rate-limit-limit").as_str()),
        (200, "100")
    );
    // budgets can be replaced at runtime; counters reset
    let r = s
        .admin(
            "PUT",
            "/__sim/rate-limits",
            Some(
                r#"{"buckets":[{"name":"all","path_prefix":"/api/","limit":1}],"window_ms":60000}"#
                    .into(),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.get("/api/v1/users").await.status, 200);
    s.get("/api/v1/groups").await.assert_error(429, "E0000047");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_429_has_zero_limit() {
    let s = start(SeedSource::Empty).await;
    let r = s
        .admin(
            "PUT",
            "/__sim/rate-limits",
            Some(r#"{"concurrency_limit":2}"#.into()),
        )
        .await;
    assert_eq!(r.status, 200);
    s.admin(
        "POST",
        "/__sim/faults",
        Some(r#"{"path_prefix":"/api/v1/groups","status":200,"times":2,"delay_ms":2000}"#.into()),
    )
    .await;
    let slow = |c: reqwest::Client, url: String| async move {
        c.get(url)
            .header("Authorization", format!("SSWS {TOKEN}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let a = tokio::spawn(slow(s.c.clone(), format!("{}/api/v1/groups", s.base)));
    let b = tokio::spawn(slow(s.c.clone(), format!("{}/api/v1/groups", s.base)));
    // Both hold a slot once they have used the fault up (it delays them two seconds).
    crate::common::eventually(
        crate::common::PATIENCE,
        "both slow calls arrive",
        async || s.admin("GET", "/__sim/faults", None).await.body == json!([]),
    )
    .await;
    let r = s.get("/api/v1/users").await;
    r.assert_error(429, "E0000047");
    assert_eq!(r.header("x-rate-limit-limit"), "0");
    assert_eq!(r.header("x-rate-limit-remaining"), "0");
    assert!(!r.header("x-rate-limit-reset").is_empty());
    assert_eq!(a.await.unwrap(), 200);
    assert_eq!(b.await.unwrap(), 200);
    assert_eq!(s.get("/api/v1/users").await.status, 200);
}

#[tokio::test]
async fn fault_modes_answer_as_okta_does_and_are_managed_at_runtime() {
    let s = start_with(SeedSource::Empty, RateLimitSettings::default()).await;
    let modes = |body: Value| s.admin("PUT", "/__sim/fault-modes", Some(body.to_string()));
    // Nothing is on at first; the seed shows so a run can be replayed.
    let r = s.admin("GET", "/__sim/fault-modes", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["seed"].is_u64());
    assert_eq!(r.body.as_object().unwrap().len(), 1, "{}", r.text);
    assert_eq!(
        modes(json!({"rate_limit_storm": {"rate": 0.5}}))
            .await
            .status,
        400
    );
    assert_eq!(modes(json!({"concurrency_limit": {}})).await.status, 400);

    // Server errors: Okta's catalogued 500 and 503 bodies; a 502 from the edge has none.
    for (status, code) in [
        (500, Some("E0000009")),
        (503, Some("E0000010")),
        (502, None),
    ] {
        let r = modes(json!({"seed": 1, "server_errors": {"path_prefix": "/api/v1/groups", "statuses": [status], "times": 1}})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["server_errors"]["times"], 1);
        let r = s.get("/api/v1/groups").await;
        match code {
            Some(code) => r.assert_error(status, code),
            None => assert_eq!((r.status, r.text.as_str()), (status, "")),
        }
        assert_eq!(r.header("x-okta-request-id").len(), 32);
        assert_eq!(s.get("/api/v1/groups").await.status, 200, "one time only");
    }

    // A storm: every matching request is a rate-limit 429 with the bucket's headers.
    modes(json!({"rate_limit_storm": {"path_prefix": "/api/v1/users", "duration_ms": 60_000}}))
        .await;
    for _ in 0..2 {
        let r = s.get("/api/v1/users").await;
        r.assert_error(429, "E0000047");
        assert_eq!(r.header("x-rate-limit-limit"), "600");
        assert_eq!(r.header("x-rate-limit-remaining"), "0");
        let reset: i64 = r.header("x-rate-limit-reset").parse().unwrap();
        assert!(
            reset > chrono::Utc::now().timestamp() + 30,
            "the storm's end"
        );
    }
    assert_eq!(s.get("/api/v1/groups").await.status, 200);
    let shown = s.admin("GET", "/__sim/fault-modes", None).await.body;
    assert!(shown["rate_limit_storm"]["duration_ms"].as_u64().unwrap() <= 60_000);
    assert_eq!(
        s.admin("DELETE", "/__sim/fault-modes", None).await.status,
        204
    );
    assert_eq!(s.get("/api/v1/users").await.status, 200);

    // The concurrency limit answers as Okta's does: limit and remaining both 0.
    modes(json!({"concurrency_limit": {"max_in_flight": 0, "times": 1}})).await;
    let r = s.get("/api/v1/users").await;
    r.assert_error(429, "E0000047");
    assert_eq!(r.header("x-rate-limit-limit"), "0");
    assert_eq!(r.header("x-rate-limit-remaining"), "0");
    assert_eq!(s.get("/api/v1/users").await.status, 200);

    // A connection reset: no HTTP answer at all; the request log shows status 0.
    modes(json!({"connection_resets": {"method": "GET", "rate": 1.0, "times": 1}})).await;
    s.admin("DELETE", "/__sim/requests", None).await;
    let dropped =
        s.c.get(format!("{}/api/v1/users", s.base))
            .header("Authorization", format!("SSWS {TOKEN}"))
            .send()
            .await;
    assert!(dropped.is_err(), "{dropped:?}");
    assert_eq!(s.get("/api/v1/users").await.status, 200);
    let log = s.admin("GET", "/__sim/requests", None).await.body;
    let statuses: Vec<u64> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [0, 200]);
}

#[tokio::test]
async fn fault_injection() {
    let s = start(SeedSource::Empty).await;
    let r = s
        .admin(
            "POST",
            "/__sim/faults",
            Some(
                json!({"method": "GET", "path_prefix": "/api/v1/users", "status": 503,
                       "error_code": "E0000010", "times": 2, "headers": {"retry-after": "1"}})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // unauthenticated requests are rejected before faults apply and do not consume them
    let r = into_resp(
        s.c.get(format!("{}/api/v1/users", s.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);
    // other methods/paths unaffected
    assert_eq!(s.get("/api/v1/groups").await.status, 200);
    for _ in 0..2 {
        let r = s.get("/api/v1/users").await;
        r.assert_error(503, "E0000010");
        assert_eq!(r.body["errorSummary"], "Service is in read only mode");
        assert_eq!(r.header("retry-after"), "1");
        assert_eq!(r.header("x-okta-request-id").len(), 32);
    }
    assert_eq!(s.get("/api/v1/users").await.status, 200);
    // empty-body fault, and state stays unchanged
    s.admin(
        "POST",
        "/__sim/faults",
        Some(r#"{"method":"POST","path_prefix":"/api/v1/users","status":500}"#.into()),
    )
    .await;
    let r = s
        .post(
            "/api/v1/users",
            json!({"profile": {"login": "f@example.com", "email": "f@example.com", "firstName": "F", "lastName": "F"}}),
        )
        .await;
    assert_eq!(r.status, 500);
    assert!(r.text.is_empty());
    s.get("/api/v1/users/f@example.com")
        .await
        .assert_error(404, "E0000007");
    // clearing
    s.admin(
        "POST",
        "/__sim/faults",
        Some(r#"{"status":500,"times":5}"#.into()),
    )
    .await;
    assert_eq!(s.admin("DELETE", "/__sim/faults", None).await.status, 204);
    assert_eq!(s.get("/api/v1/users").await.status, 200);
    let r = s
        .admin("POST", "/__sim/faults", Some(r#"{"status":42}"#.into()))
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn request_log_records_raw_paths() {
    let s = start(SeedSource::Demo).await;
    assert_eq!(s.admin("DELETE", "/__sim/requests", None).await.status, 204);
    s.get("/api/v1/users/ada.lovelace%40example.com").await;
    s.get("/api/v1/users?search=profile.login%20eq%20%22x%22&limit=5")
        .await;
    into_resp(
        s.c.get(format!("{}/api/v1/groups", s.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let mut log = s.admin("GET", "/__sim/requests", None).await.body;
    for record in log.as_array_mut().unwrap() {
        let record = record.as_object_mut().unwrap();
        let request_id = record.remove("request_id").unwrap();
        assert_eq!(
            request_id.as_str().unwrap().len(),
            32,
            "each answer's X-Okta-Request-Id"
        );
        assert_eq!(
            record.remove("traceparent"),
            Some(serde_json::Value::Null),
            "no trace context was sent"
        );
    }
    assert_eq!(
        log,
        json!([
            {"method": "GET", "path": "/api/v1/users/ada.lovelace%40example.com", "query": null, "status": 200},
            {"method": "GET", "path": "/api/v1/users", "query": "search=profile.login%20eq%20%22x%22&limit=5", "status": 200},
            {"method": "GET", "path": "/api/v1/groups", "query": null, "status": 401},
        ])
    );
}

#[tokio::test]
async fn seed_endpoint_yaml_and_json() {
    let s = start(SeedSource::Empty).await;
    let yaml = "users:\n  - login: ada@example.com\n    profile: {department: Engineering}\n  - login: bob.smith@example.com\n    status: STAGED\n    password: false\ngroups:\n  - name: Engineering\n    members: [ada@example.com]\n";
    let r = s.admin("POST", "/__sim/seed", Some(yaml.into())).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ada = r.body["users"]["ada@example.com"].as_str().unwrap();
    let eng = r.body["groups"]["Engineering"].as_str().unwrap();
    let u = s.get(&format!("/api/v1/users/{ada}")).await.body;
    assert_eq!(u["profile"]["department"], "Engineering");
    assert_eq!(u["profile"]["firstName"], "Ada");
    assert_eq!(u["profile"]["email"], "ada@example.com");
    let bob = s.get("/api/v1/users/bob.smith@example.com").await.body;
    assert_eq!(bob["status"], "STAGED");
    assert_eq!(bob["profile"]["lastName"], "Smith");
    assert!(bob["credentials"].get("password").is_none());
    assert_eq!(
        s.get(&format!("/api/v1/groups/{eng}/users")).await.ids(),
        vec![ada.to_owned()]
    );
    // JSON works too and merges by login/name
    let r = s
        .seed(json!({"groups": [{"name": "Engineering", "members": ["bob.smith@example.com"]}]}))
        .await;
    assert_eq!(r["groups"]["Engineering"], eng);
    assert_eq!(
        s.get(&format!("/api/v1/groups/{eng}/users"))
            .await
            .ids()
            .len(),
        2
    );
    for bad in [
        "users: [{login: notanemail}]",
        "groups: [{name: X, members: [nobody@example.com]}]",
        "users: [{login: a@example.com, bogus: 1}]",
        "{{{{",
    ] {
        let r = s.admin("POST", "/__sim/seed", Some(bad.into())).await;
        assert_eq!(r.status, 400, "{bad}");
    }
}

#[tokio::test]
async fn seed_file_fixture_and_stable_demo_ids() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sim/small-org.yaml");
    let s = start(SeedSource::File(path.clone())).await;
    let r = s.get("/api/v1/users/ada@example.com").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let again = start(SeedSource::File(path)).await;
    assert_eq!(
        again.get("/api/v1/users/ada@example.com").await.body["id"],
        r.body["id"]
    );
    let missing = Simulator::start(
        "127.0.0.1:0".parse().unwrap(),
        SimulatorSettings {
            seed: SeedSource::File("/nonexistent/seed.yaml".into()),
            ..SimulatorSettings::default()
        },
    )
    .await;
    assert!(missing.is_err());

    let a = start(SeedSource::Demo).await;
    let b = start(SeedSource::Demo).await;
    let q = "/api/v1/users?search=id+pr";
    let ua = a.get(q).await;
    let ub = b.get(q).await;
    assert_eq!(ua.ids().len(), 9);
    assert_eq!(ua.ids(), ub.ids());
    let statuses: std::collections::BTreeSet<String> = ua
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["status"].as_str().unwrap().to_owned())
        .collect();
    for st in [
        "ACTIVE",
        "STAGED",
        "PROVISIONED",
        "SUSPENDED",
        "LOCKED_OUT",
        "DEPROVISIONED",
        "PASSWORD_EXPIRED",
    ] {
        assert!(statuses.contains(st), "{st}");
    }
    assert_eq!(
        a.get("/api/v1/groups").await.text.replace(&a.base, "BASE"),
        b.get("/api/v1/groups").await.text.replace(&b.base, "BASE")
    );
    let d = SimulatorSettings::default();
    assert_eq!(d.api_token, "sim-demo-token");
    assert!(!format!("{d:?}").contains("sim-demo-token"));
}

#[tokio::test]
async fn garbage_never_crashes_the_server() {
    let s = start(SeedSource::Demo).await;
    let auth = format!("SSWS {TOKEN}");
    let raw = |method: &str, path: &str| {
        s.c.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{}", s.base, path),
        )
        .header("Authorization", auth.clone())
    };
    let cases = vec![
        raw("POST", "/api/v1/users").body("not json"),
        raw("POST", "/api/v1/users").body("[1,2,3]"),
        raw("POST", "/api/v1/users").body(vec![0xff, 0xfe, 0x00]),
        raw("POST", "/api/v1/users")
            .body(r#"{"profile": 5, "credentials": {"password": {"value": 7}}}"#),
        raw("POST", "/api/v1/users").body(r#"{"profile": {"login": 5}, "groupIds": [1]}"#),
        raw("POST", "/api/v1/groups").body(r#"{"profile": []}"#),
        raw("GET", "/api/v1/users/%ZZ"),
        raw("GET", "/api/v1/users/%FF%FE"),
        raw("GET", "/api/v1/users?limit=%FF&after=%00"),
        raw("GET", "/api/v1/users?search=%FF%FE"),
        raw("GET", "/api/v1/users?search=%22%5C"),
        raw("GET", &format!("/api/v1/users?search={}", "(".repeat(3000))),
        raw(
            "GET",
            &format!("/api/v1/users?filter={}", "a".repeat(10_000)),
        ),
        raw("GET", "/api/v1/users?limit=-99999999999999999999999"),
        raw(
            "POST",
            "/api/v1/users/%ZZ/lifecycle/activate?sendEmail=maybe",
        ),
        raw("POST", "/__sim/users/%ZZ/status").body("{"),
        raw("PUT", "/__sim/rate-limits").body("{\"window_ms\": -1}"),
        raw("POST", "/api/v1/users").body(vec![b'{'; 10 * 1024 * 1024]),
    ];
    for rb in cases {
        // Either an answer or a dropped connection (oversized body); never a dead server.
        if let Ok(r) = rb.send().await {
            let r = into_resp(r).await;
            assert!(r.status < 500, "{} {}", r.status, r.text);
        }
        assert_eq!(s.get("/api/v1/users?limit=1").await.status, 200);
    }
}
