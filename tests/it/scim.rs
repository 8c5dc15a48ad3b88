//! The SCIM 2.0 facade end to end, over real sockets to the gateway and the simulator: Okta's
//! own provisioning request shapes, a real SCIM client library (scim2-client), one policy for
//! both APIs, and bad input answered with SCIM errors that reach no Okta.

use std::net::SocketAddr;

use identity_gateway::config::Settings;
use identity_gateway::proto::UserStatus;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::callers::{BILLING_KEY, key, keyed, with_api_keys};
use crate::common::{TestApp, get_user, spawn_app_with};

const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A gateway with SCIM on a free port, API keys and the test policy.
async fn spawn_scim_app(dir: &tempfile::TempDir) -> TestApp {
    spawn_app_with(|settings: &mut Settings| {
        with_api_keys(settings, dir);
        settings.scim.listen_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await
}

fn base_url(app: &TestApp) -> String {
    format!("http://{}/scim/v2", app.scim_address.expect("scim is on"))
}

/// `method path` with `body`, as the caller with API key `api_key`: (status, JSON answer).
async fn scim(
    app: &TestApp,
    api_key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app
        .http
        .request(method, format!("{}{path}", base_url(app)))
        .bearer_auth(api_key);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/scim+json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    if status != StatusCode::NO_CONTENT {
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(content_type, "application/scim+json", "{path}");
    }
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn okta_status(app: &TestApp, id: &str) -> UserStatus {
    let user = app
        .users
        .clone()
        .get_user(keyed(get_user(id), BILLING_KEY))
        .await
        .unwrap()
        .into_inner();
    UserStatus::try_from(user.status).unwrap()
}

#[tokio::test]
async fn okta_provisioning_s_request_shapes_create_find_replace_deactivate_and_reactivate() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_scim_app(&dir).await;
    let login = "new.hire@example.com";
    let lookup =
        "/Users?filter=userName%20eq%20%22new.hire%40example.com%22&startIndex=1&count=100";

    let (status, empty) = scim(&app, BILLING_KEY, Method::GET, lookup, None).await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert_eq!(empty["totalResults"], 0);
    assert_eq!(empty["startIndex"], 1);

    // Okta's create: both schemas, the profile, `active` and a password.
    let create = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": login,
        "name": {"givenName": "New", "familyName": "Hire"},
        "emails": [{"primary": true, "value": login, "type": "work"}],
        "displayName": "New Hire",
        "locale": "en-US",
        "externalId": "00u-hr-4711",
        "groups": [],
        "password": "Corr3ct-Horse-Battery",
        "active": true,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Finance"}
    });
    let (status, created) = scim(
        &app,
        BILLING_KEY,
        Method::POST,
        "/Users",
        Some(create.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["active"], true);
    assert_eq!(created["externalId"], "00u-hr-4711");
    assert_eq!(okta_status(&app, &id).await, UserStatus::Active);
    assert_eq!(
        created["meta"]["location"],
        format!("{}/Users/{id}", base_url(&app))
    );

    let (_, found) = scim(&app, BILLING_KEY, Method::GET, lookup, None).await;
    assert_eq!(found["totalResults"], 1, "{found}");
    assert_eq!(found["Resources"][0]["id"], id.as_str());
    let searches: Vec<String> = app
        .sim_requests()
        .await
        .iter()
        .filter_map(|request| request["query"].as_str().map(str::to_owned))
        .filter(|query| query.contains("search="))
        .collect();
    assert!(
        searches
            .iter()
            .any(|query| query.contains("profile.login+eq+%22new.hire%40example.com%22")),
        "the filter went to Okta as a search: {searches:?}"
    );

    // Okta's replace: the whole user again, `id` included, a changed title.
    let mut replace = create.clone();
    replace["id"] = json!(id);
    replace["title"] = json!("Controller");
    replace.as_object_mut().unwrap().remove("password");
    let (status, replaced) = scim(
        &app,
        BILLING_KEY,
        Method::PUT,
        &format!("/Users/{id}"),
        Some(replace),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["title"], "Controller");

    // Okta's deprovisioning: a PATCH replacing `active` with false, then true to bring it back.
    for (active, expected) in [
        (false, UserStatus::Deprovisioned),
        (true, UserStatus::Active),
    ] {
        let patch = json!({
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "value": {"active": active}}]
        });
        let (status, patched) = scim(
            &app,
            BILLING_KEY,
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{patched}");
        assert_eq!(patched["active"], active);
        assert_eq!(okta_status(&app, &id).await, expected);
    }

    // A stale version is refused before anything changes.
    let (status, refused) = app
        .http
        .put(format!("{}/Users/{id}", base_url(&app)))
        .bearer_auth(BILLING_KEY)
        .header("if-match", "W/\"1\"")
        .body(create.to_string())
        .send()
        .await
        .map(|response| (response.status(), ()))
        .unwrap();
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{refused:?}");

    let (status, _) = scim(
        &app,
        BILLING_KEY,
        Method::DELETE,
        &format!("/Users/{id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, gone) = scim(
        &app,
        BILLING_KEY,
        Method::GET,
        &format!("/Users/{id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{gone}");
}

#[tokio::test]
async fn a_real_scim_client_provisions_through_the_facade() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import scim2_client, scim2_models, httpx2"])
        .status();
    if !probe.is_ok_and(|status| status.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "scim2-client is required in CI: see .ci/run"
        );
        eprintln!(
            "scim2-client not installed: skipping (pip install scim2-client scim2-models httpx2)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_scim_app(&dir).await;
    app.seed(json!({"groups": [{"name": "Engineering"}]})).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scim/scim2_session.py");
    let output = tokio::process::Command::new("python3")
        .args([script, &base_url(&app), BILLING_KEY])
        .output()
        .await
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("scim2 session: ok"), "{printed}");
}

#[tokio::test]
async fn each_scim_operation_is_authorized_as_the_rpc_it_performs() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_scim_app(&dir).await;
    let id = app.seed_user("ada@example.com").await;
    let user = format!("/Users/{id}");
    let deactivate = json!({
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "replace", "path": "active", "value": false}]
    });

    // No credentials: 401.
    let response = app
        .http
        .get(format!("{}{user}", base_url(&app)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // `reader` may GetUser and ListUsers, nothing else.
    let reader = key("reader");
    assert_eq!(
        scim(&app, reader, Method::GET, &user, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        scim(&app, reader, Method::GET, "/Users", None).await.0,
        StatusCode::OK
    );
    let (status, refused) =
        scim(&app, reader, Method::PATCH, &user, Some(deactivate.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("DeactivateUser"),
        "{refused}"
    );
    let (status, _) = scim(&app, reader, Method::DELETE, &user, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // `ops` may suspend, which is not what `active: false` is: still refused.
    let (status, _) = scim(
        &app,
        key("ops"),
        Method::PATCH,
        &user,
        Some(deactivate.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        okta_status(&app, &id).await,
        UserStatus::Active,
        "nothing changed"
    );

    // `editor` may change the profile but not deactivate: the answer says the profile changed.
    let both = json!({
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "replace", "path": "title", "value": "Countess"},
                       {"op": "replace", "path": "active", "value": false}]
    });
    let (status, partly) = scim(&app, key("editor"), Method::PATCH, &user, Some(both)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{partly}");
    assert!(
        partly["detail"]
            .as_str()
            .unwrap()
            .starts_with("the profile change was made"),
        "{partly}"
    );
    let (_, now) = scim(&app, BILLING_KEY, Method::GET, &user, None).await;
    assert_eq!(now["title"], "Countess");
    assert_eq!(okta_status(&app, &id).await, UserStatus::Active);

    // A group-scoped role reaches no user outside its groups.
    let (status, outside) = scim(&app, key("team-x"), Method::GET, &user, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{outside}");

    // `billing` holds every RPC.
    let (status, patched) = scim(&app, BILLING_KEY, Method::PATCH, &user, Some(deactivate)).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(okta_status(&app, &id).await, UserStatus::Deprovisioned);
}

/// One bad request: method, path, body, and the status, `scimType` and detail it must get.
type BadRequestCase = (
    Method,
    String,
    Option<String>,
    StatusCode,
    &'static str,
    &'static str,
);

#[tokio::test]
async fn bad_input_gets_a_scim_error_naming_the_problem_and_reaches_no_okta() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_scim_app(&dir).await;
    let id = app.seed_user("grace@example.com").await;
    app.clear_sim_requests().await;

    let raw = |body: &str| body.to_owned();
    let cases: Vec<BadRequestCase> = vec![
        (Method::POST, "/Users".into(), Some(raw("{not json")), StatusCode::BAD_REQUEST, "invalidSyntax", "not valid JSON"),
        (Method::POST, "/Users".into(), Some(raw(r#"{"userName":"x@example.com","shoeSize":43}"#)), StatusCode::BAD_REQUEST, "invalidValue", "shoeSize"),
        (Method::POST, "/Users".into(), Some(raw(r#"{"userName":7}"#)), StatusCode::BAD_REQUEST, "invalidValue", "userName"),
        (Method::POST, "/Users".into(), Some("x".repeat(300 * 1024)), StatusCode::PAYLOAD_TOO_LARGE, "tooMany", "too large"),
        (Method::GET, "/Users?count=100000".into(), None, StatusCode::BAD_REQUEST, "tooMany", "count"),
        (Method::GET, "/Users?startIndex=abc".into(), None, StatusCode::BAD_REQUEST, "invalidValue", "startIndex"),
        (Method::GET, "/Users?filter=userName%20eq".into(), None, StatusCode::BAD_REQUEST, "invalidFilter", "missing value"),
        (Method::GET, "/Users?filter=(userName%20eq%20%22a%22".into(), None, StatusCode::BAD_REQUEST, "invalidFilter", ""),
        (Method::GET, "/Users?filter=shoeSize%20gt%2040".into(), None, StatusCode::BAD_REQUEST, "invalidFilter", "shoeSize"),
        (Method::GET, "/Groups?filter=description%20pr".into(), None, StatusCode::BAD_REQUEST, "invalidFilter", "displayName"),
        (
            Method::PATCH,
            format!("/Users/{id}"),
            Some(json!({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "path": "id", "value": "00u0"}]}).to_string()),
            StatusCode::BAD_REQUEST,
            "mutability",
            "read-only",
        ),
        (
            Method::PATCH,
            format!("/Users/{id}"),
            Some(json!({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "remove", "path": "emails[type eq \"home\"]"}]}).to_string()),
            StatusCode::BAD_REQUEST,
            "noTarget",
            "",
        ),
        (Method::GET, "/Users/not%2F..%2Fan-id".into(), None, StatusCode::BAD_REQUEST, "invalidValue", "id"),
    ];
    let mut reached_okta = Vec::new();
    for (method, path, body, status, scim_type, detail) in cases {
        let mut request = app
            .http
            .request(method.clone(), format!("{}{path}", base_url(&app)))
            .bearer_auth(BILLING_KEY);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/scim+json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(
            error["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "{path}"
        );
        assert_eq!(error["status"], status.as_str(), "{path}");
        assert_eq!(error["scimType"], scim_type, "{method} {path}: {error}");
        assert!(
            error["detail"].as_str().unwrap().contains(detail),
            "{path}: {error}"
        );
        let sent: Vec<Value> = app
            .sim_requests()
            .await
            .into_iter()
            .filter(|request| {
                request["method"] != "GET" || request["path"] != format!("/api/v1/users/{id}")
            })
            .collect();
        if !sent.is_empty() {
            reached_okta.push((path, sent));
        }
        app.clear_sim_requests().await;
    }
    assert!(
        reached_okta.is_empty(),
        "only the target's read reached Okta: {reached_okta:?}"
    );

    // A quote inside a filter value stays inside the value Okta searches for.
    let injected = "/Users?filter=userName%20eq%20%22x%5C%22%20or%20userName%20pr%20%5C%22%22";
    let (status, answer) = scim(&app, BILLING_KEY, Method::GET, injected, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["totalResults"], 0, "no user matched: {answer}");
}

/// Pages through `/Users?filter=…` `count` at a time, as a SCIM client does, until a page
/// shows nothing more: the userNames in order, and how many pages were asked for.
async fn page_through(
    app: &TestApp,
    api_key: &str,
    filter: &str,
    count: usize,
) -> (Vec<String>, usize) {
    let mut logins = Vec::new();
    let mut pages = 0;
    loop {
        let start_index = logins.len() + 1;
        let path = format!(
            "/Users?filter={filter}&startIndex={start_index}&count={count}&attributes=userName"
        );
        let (status, page) = scim(app, api_key, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        let resources = page["Resources"].as_array().unwrap();
        logins.extend(
            resources
                .iter()
                .map(|user| user["userName"].as_str().unwrap().to_owned()),
        );
        if resources.is_empty() || logins.len() >= page["totalResults"].as_u64().unwrap() as usize {
            return (logins, pages);
        }
    }
}

/// A client paging through a list resumes each walk at the Okta page where the last one
/// stopped: every match once, for one Okta call a page, where walking from the start for each
/// page would cost about as many calls as the pages before it.
#[tokio::test]
async fn paging_through_a_list_in_order_resumes_at_okta_s_page_instead_of_starting_over() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_scim_app(&dir).await;
    let users: Vec<Value> = (0..700)
        .map(|n| {
            let parity = if n % 2 == 0 { "even" } else { "odd" };
            json!({"login": format!("user-{n:03}@{parity}.example")})
        })
        .collect();
    app.seed(json!({"users": users})).await;
    let okta_lists = async || {
        app.sim_requests()
            .await
            .iter()
            .filter(|request| request["method"] == "GET" && request["path"] == "/api/v1/users")
            .count()
    };

    // Every user matches: 700 users on 4 Okta pages, 14 pages of 50.
    app.clear_sim_requests().await;
    let (logins, pages) = page_through(&app, BILLING_KEY, "userName%20pr", 50).await;
    assert_eq!(logins.len(), 700);
    let okta_calls = okta_lists().await;
    // Resuming: one call a page; starting over: 32.
    assert!(
        okta_calls <= pages,
        "{okta_calls} Okta calls for {pages} pages"
    );

    // `ew` is not an Okta search operator: every user is listed and the gateway picks, so the
    // positions a bookmark remembers are of matches, not of users.
    let (evens, _) = page_through(
        &app,
        BILLING_KEY,
        "userName%20ew%20%22%40even.example%22",
        50,
    )
    .await;
    let mut listed = evens.clone();
    listed.sort();
    let expected: Vec<String> = logins
        .iter()
        .filter(|login| login.ends_with("@even.example"))
        .cloned()
        .collect();
    assert_eq!(evens, expected, "each match once, in Okta's order");
    listed.dedup();
    assert_eq!(listed.len(), 350);

    // Another caller's walk of the same list starts from the first page: bookmarks are per
    // caller, since a scoped caller's list is another list.
    app.clear_sim_requests().await;
    let late_page = "/Users?filter=userName%20pr&startIndex=301&count=50&attributes=userName";
    let (status, page) = scim(&app, key("reader"), Method::GET, late_page, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        okta_lists().await,
        2,
        "the reader walked two Okta pages to reach 350"
    );
    assert_eq!(page["Resources"][0]["userName"], logins[300]);
}
