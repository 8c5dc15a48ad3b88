//! Client-level tests of `okta_client` against wiremock: exact request shapes, Okta's real
//! response bodies (copied from recordings of Okta's own SDK tests), errors, retries,
//! timeouts and pagination.

// Helpers outside `#[test]` fns unwrap too: in test code a panic is a failed test.

use std::time::Duration;

use okta_client::{
    CallContext, CreateUserRequest, Cursor, Expression, GroupQuery, OAuthSettings, OktaClient,
    OktaClientSettings, OktaError, OktaId, Operator, PageRequest, SigningKey, UserQuery,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockBuilder, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "test-token-123";
const USER_ID: &str = "00uqrks9ig7XuWV7X5d7";
const GROUP_ID: &str = "00gsf7bj3rH2d9PvL4x6";
const USER_PATH: &str = "/api/v1/users/00uqrks9ig7XuWV7X5d7";

// === helpers ===

fn settings_for(base_url: &str) -> OktaClientSettings {
    OktaClientSettings {
        base_url: base_url.parse().unwrap(),
        api_token: SecretString::from(TOKEN),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        max_retries: 2,
        retry_base_delay: Duration::from_millis(1),
        retry_max_delay: Duration::from_millis(50),
        rate_limit_reserve_percent: 5,
        max_concurrent_requests: 20,
        user_agent: identity_gateway::USER_AGENT.to_owned(),
        shared_budget: None,
    }
}

async fn setup() -> (MockServer, OktaClient) {
    let server = MockServer::start().await;
    let client = OktaClient::new(settings_for(&server.uri())).unwrap();
    (server, client)
}

fn user_id() -> OktaId {
    OktaId::parse(USER_ID).unwrap()
}

fn group_id() -> OktaId {
    OktaId::parse(GROUP_ID).unwrap()
}

/// `GET /api/v1/users/00uqrks9ig7XuWV7X5d7` from test_comprehensive_user_lifecycle.
fn recorded_user() -> Value {
    json!({"id":"00uqrks9ig7XuWV7X5d7","status":"ACTIVE","created":"2025-09-29T03:49:50.000Z","activated":"2025-09-29T03:49:51.000Z","statusChanged":"2025-09-29T03:49:51.000Z","lastLogin":null,"lastUpdated":"2025-09-29T03:49:51.000Z","passwordChanged":"2025-09-29T03:49:50.000Z","type":{"id":"otynwlw0pkLLUgtNG5d7"},"profile":{"firstName":"John","lastName":"Doe-Comprehensive","mobilePhone":"+1-555-123-4567","displayName":"John Doe Comprehensive","nickName":"JohnnyC","secondEmail":null,"login":"John.Doe-Comprehensive@example.com","email":"John.Doe-Comprehensive@example.com"},"credentials":{"password":{},"emails":[{"value":"John.Doe-Comprehensive@example.com","status":"VERIFIED","type":"PRIMARY"}],"provider":{"type":"OKTA","name":"OKTA"}},"_links":{"self":{"href":"https://test.okta.com/api/v1/users/00uqrks9ig7XuWV7X5d7"}}})
}

/// A user from `GET /api/v1/users?limit=1` in test_user_pagination.
fn recorded_staged_user() -> Value {
    json!({"id":"00usfdsyqnIjEmHNm4x6","status":"STAGED","created":"2020-08-27T18:16:00.000Z","activated":null,"statusChanged":null,"lastLogin":null,"lastUpdated":"2020-08-27T18:16:00.000Z","passwordChanged":"2020-08-27T18:16:00.000Z","type":{"id":"otyc04qb2rUDcq2YA4x6"},"profile":{"firstName":"John","lastName":"Doe-Activate","mobilePhone":null,"secondEmail":null,"login":"John.Doe-Activate@example.com","email":"John.Doe-Activate@example.com"},"credentials":{"password":{},"emails":[{"value":"John.Doe-Activate@example.com","status":"VERIFIED","type":"PRIMARY"}],"provider":{"type":"OKTA","name":"OKTA"}},"_links":{"self":{"href":"https://test.okta.com/api/v1/users/00usfdsyqnIjEmHNm4x6"}}})
}

/// `GET /api/v1/users/{id}/groups` from test_comprehensive_user_lifecycle.
fn recorded_group() -> Value {
    json!({"id":"00gnwlw0pbm3qMcXs5d7","created":"2025-03-19T08:01:45.000Z","lastUpdated":"2025-03-19T08:01:45.000Z","lastMembershipUpdated":"2025-09-29T02:19:52.000Z","objectClass":["okta:user_group"],"type":"BUILT_IN","profile":{"name":"Everyone","description":"All users in your organization"},"_links":{"users":{"href":"https://test.okta.com/api/v1/groups/00gnwlw0pbm3qMcXs5d7/users"}}})
}

fn okta_error(code: &str, summary: &str, causes: &[&str]) -> Value {
    let causes: Vec<Value> = causes
        .iter()
        .map(|cause| json!({ "errorSummary": cause }))
        .collect();
    json!({"errorCode": code, "errorSummary": summary, "errorLink": code, "errorId": "oae9Wpz4YIiTcCdvkj0JTq0YA", "errorCauses": causes})
}

fn http_date(epoch_seconds: i64) -> String {
    chrono::DateTime::from_timestamp(epoch_seconds, 0)
        .unwrap()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

fn query_pairs(request: &Request) -> Vec<(String, String)> {
    request
        .url
        .query_pairs()
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

fn header_value<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request
        .headers
        .get(name)
        .map(|value| value.to_str().unwrap())
}

/// Every request carries the token, asks for JSON and names us.
async fn received_with_standard_headers(server: &MockServer) -> Vec<Request> {
    let requests = server.received_requests().await.unwrap();
    for request in &requests {
        assert_eq!(
            header_value(request, "authorization"),
            Some("SSWS test-token-123")
        );
        assert_eq!(header_value(request, "accept"), Some("application/json"));
        assert_eq!(
            header_value(request, "user-agent"),
            Some(concat!("identity-gateway/", env!("CARGO_PKG_VERSION")))
        );
    }
    requests
}

/// A create with nothing in it, for tests of how a create is sent rather than what it holds.
fn empty_create_request() -> CreateUserRequest {
    CreateUserRequest {
        profile: serde_json::Map::new(),
        password: None,
        group_ids: vec![],
        activate: false,
        expire_password_on_create: false,
    }
}

fn mock_empty_post(action: &str) -> MockBuilder {
    Mock::given(method("POST"))
        .and(path(format!("{USER_PATH}/lifecycle/{action}")))
        .and(header("content-length", "0"))
}

// === users: request shapes and success decoding ===

#[tokio::test]
async fn get_user_sends_ssws_accept_and_user_agent_and_decodes_the_recorded_user() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path(USER_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(recorded_user())
                .insert_header("x-okta-request-id", "0822d3c4997068c736ad4f9558cb46b4"),
        )
        .expect(1)
        .mount(&server)
        .await;
    // Act
    let user = client
        .get_user(&CallContext::background(), &user_id())
        .await
        .unwrap();
    // Assert
    assert_eq!(user.id, USER_ID);
    assert_eq!(user.status, "ACTIVE");
    assert_eq!(user.r#type.unwrap().id, "otynwlw0pkLLUgtNG5d7");
    assert_eq!(user.last_login, None);
    assert_eq!(
        user.activated.unwrap().to_rfc3339(),
        "2025-09-29T03:49:51+00:00"
    );
    assert_eq!(user.profile["login"], "John.Doe-Comprehensive@example.com");
    assert_eq!(user.profile["secondEmail"], Value::Null);
    let requests = received_with_standard_headers(&server).await;
    assert_eq!(requests[0].url.query(), None);
}

#[tokio::test]
async fn create_user_sends_the_documented_query_and_body_and_is_not_retried() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/users"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(recorded_user()))
        .expect(1)
        .mount(&server)
        .await;
    let mut profile = serde_json::Map::new();
    profile.insert("login".into(), json!("John.Doe-Comprehensive@example.com"));
    profile.insert("email".into(), json!("John.Doe-Comprehensive@example.com"));
    let request = CreateUserRequest {
        profile,
        password: Some(SecretString::from("Abcd1234!xyz")),
        group_ids: vec![group_id()],
        activate: true,
        expire_password_on_create: true,
    };
    // Act
    let user = client
        .create_user(&CallContext::background(), &request)
        .await
        .unwrap();
    // Assert
    assert_eq!(user.id, USER_ID);
    let requests = received_with_standard_headers(&server).await;
    assert_eq!(
        query_pairs(&requests[0]),
        pairs(&[("activate", "true"), ("nextLogin", "changePassword")])
    );
    assert_eq!(
        requests[0].body_json::<Value>().unwrap(),
        json!({"profile": {"login": "John.Doe-Comprehensive@example.com", "email": "John.Doe-Comprehensive@example.com"},
               "credentials": {"password": {"value": "Abcd1234!xyz"}}, "groupIds": [GROUP_ID]})
    );
}

#[tokio::test]
async fn create_user_without_password_or_groups_sends_only_the_profile() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/users"))
        .and(query_param("activate", "false"))
        .and(query_param_is_missing("nextLogin"))
        .and(body_json(json!({"profile": {"login": "a@example.com"}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(recorded_staged_user()))
        .expect(1)
        .mount(&server)
        .await;
    let mut profile = serde_json::Map::new();
    profile.insert("login".into(), json!("a@example.com"));
    let request = CreateUserRequest {
        profile,
        password: None,
        group_ids: vec![],
        activate: false,
        expire_password_on_create: false,
    };
    // Act
    let user = client
        .create_user(&CallContext::background(), &request)
        .await
        .unwrap();
    // Assert
    assert_eq!(user.status, "STAGED");
}

#[tokio::test]
async fn create_user_reports_e0000001_with_its_causes() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/users"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(okta_error(
                    "E0000001",
                    "Api validation failed: login",
                    &["login: An object with this field already exists in the current organization"],
                ))
                .insert_header("x-okta-request-id", "req-400"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let request = CreateUserRequest {
        profile: serde_json::Map::new(),
        password: None,
        group_ids: vec![],
        activate: true,
        expire_password_on_create: false,
    };
    // Act
    let error = client
        .create_user(&CallContext::background(), &request)
        .await
        .unwrap_err();
    // Assert
    assert_eq!(error.error_code(), Some("E0000001"));
    let OktaError::Api {
        status,
        body: Some(body),
        meta,
        www_authenticate,
    } = error
    else {
        panic!("{error:?}")
    };
    assert_eq!(status, 400);
    assert_eq!(meta.request_id.as_deref(), Some("req-400"));
    assert_eq!(www_authenticate, None);
    assert_eq!(body.error_id.as_deref(), Some("oae9Wpz4YIiTcCdvkj0JTq0YA"));
    assert_eq!(body.error_causes.len(), 1);
    assert!(body.error_causes[0].error_summary.starts_with("login: "));
}

#[tokio::test]
async fn find_user_by_login_filters_on_the_escaped_login_and_matches_case_insensitively() {
    // Arrange
    let (server, client) = setup().await;
    let mut other = recorded_user();
    other["profile"]["login"] = json!("john.doe-comprehensive@example.com.au");
    Mock::given(method("GET"))
        .and(path("/api/v1/users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([other, recorded_user()])))
        .expect(2)
        .mount(&server)
        .await;
    // Act
    let found = client
        .find_user_by_login(
            &CallContext::background(),
            "JOHN.Doe-Comprehensive@example.com",
        )
        .await
        .unwrap()
        .value;
    let not_found = client
        .find_user_by_login(&CallContext::background(), "a\"b@example.com")
        .await
        .unwrap()
        .value;
    // Assert
    assert_eq!(found.unwrap().id, USER_ID);
    assert_eq!(not_found, None);
    let requests = received_with_standard_headers(&server).await;
    assert_eq!(
        query_pairs(&requests[0]),
        pairs(&[
            (
                "filter",
                r#"profile.login eq "JOHN.Doe-Comprehensive@example.com""#
            ),
            ("limit", "2")
        ])
    );
    assert_eq!(
        query_pairs(&requests[1]),
        pairs(&[
            ("filter", r#"profile.login eq "a\"b@example.com""#),
            ("limit", "2")
        ])
    );
    assert_eq!(
        requests[1].url.query(),
        Some("filter=profile.login+eq+%22a%5C%22b%40example.com%22&limit=2")
    );
}

#[tokio::test]
async fn list_users_sends_search_filter_or_q_with_limit_and_after() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([recorded_staged_user()])))
        .mount(&server)
        .await;
    let status = Expression::compare("status", Operator::Eq, "STAGED");
    let cursor = Cursor::parse("000usfdsyqnIjEmHNm4x6").unwrap();
    // Act
    let page = client
        .list_users(
            &CallContext::background(),
            &UserQuery::Search(status.clone()),
            &PageRequest {
                limit: 10,
                after: Some(cursor.clone()),
            },
        )
        .await
        .unwrap();
    client
        .list_users(
            &CallContext::background(),
            &UserQuery::Filter(status),
            &PageRequest {
                limit: 0,
                after: None,
            },
        )
        .await
        .unwrap();
    client
        .list_users(
            &CallContext::background(),
            &UserQuery::Prefix("Jo hn&x=1".into()),
            &PageRequest {
                limit: 5,
                after: None,
            },
        )
        .await
        .unwrap();
    client
        .list_users(
            &CallContext::background(),
            &UserQuery::All,
            &PageRequest {
                limit: 200,
                after: None,
            },
        )
        .await
        .unwrap();
    // Assert
    assert_eq!(page.items[0].id, "00usfdsyqnIjEmHNm4x6");
    assert_eq!(page.next, None);
    let requests = received_with_standard_headers(&server).await;
    assert_eq!(
        query_pairs(&requests[0]),
        pairs(&[
            ("search", r#"status eq "STAGED""#),
            ("limit", "10"),
            ("after", "000usfdsyqnIjEmHNm4x6")
        ])
    );
    assert_eq!(
        requests[0].url.query(),
        Some("search=status+eq+%22STAGED%22&limit=10&after=000usfdsyqnIjEmHNm4x6")
    );
    assert_eq!(
        query_pairs(&requests[1]),
        pairs(&[("filter", r#"status eq "STAGED""#)])
    );
    assert_eq!(
        query_pairs(&requests[2]),
        pairs(&[("q", "Jo hn&x=1"), ("limit", "5")])
    );
    assert_eq!(requests[2].url.query(), Some("q=Jo+hn%26x%3D1&limit=5"));
    assert_eq!(query_pairs(&requests[3]), pairs(&[("limit", "200")]));
}

#[tokio::test]
async fn a_search_value_with_query_syntax_stays_inside_one_query_value() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(2)
        .mount(&server)
        .await;
    let injected = Expression::compare("profile.lastName", Operator::Eq, "x&limit=1&x=");
    let caller_written =
        Expression::parse(r#"profile.lastName eq "a\"&after=1#" or id pr"#).unwrap();
    // Act
    client
        .list_users(
            &CallContext::background(),
            &UserQuery::Search(injected),
            &PageRequest {
                limit: 5,
                after: None,
            },
        )
        .await
        .unwrap();
    client
        .list_users(
            &CallContext::background(),
            &UserQuery::Search(caller_written),
            &PageRequest {
                limit: 5,
                after: None,
            },
        )
        .await
        .unwrap();
    // Assert
    let requests = received_with_standard_headers(&server).await;
    assert_eq!(requests[0].url.path(), "/api/v1/users");
    assert_eq!(
        query_pairs(&requests[0]),
        pairs(&[
            ("search", r#"profile.lastName eq "x&limit=1&x=""#),
            ("limit", "5")
        ])
    );
    assert_eq!(
        requests[0].url.query(),
        Some("search=profile.lastName+eq+%22x%26limit%3D1%26x%3D%22&limit=5")
    );
    assert_eq!(
        query_pairs(&requests[1]),
        pairs(&[
            ("search", r#"profile.lastName eq "a\"&after=1#" or id pr"#),
            ("limit", "5")
        ])
    );
    assert_eq!(requests[1].url.fragment(), None);
}

#[tokio::test]
async fn update_user_profile_posts_a_partial_profile_with_nulls() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("POST"))
        .and(path(USER_PATH))
        .and(header("content-type", "application/json"))
        .and(body_json(
            json!({"profile": {"nickName": "JohnnyC", "mobilePhone": null}}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(recorded_user()))
        .expect(1)
        .mount(&server)
        .await;
    let mut profile = serde_json::Map::new();
    profile.insert("nickName".into(), json!("JohnnyC"));
    profile.insert("mobilePhone".into(), Value::Null);
    // Act
    let user = client
        .update_user_profile(&CallContext::background(), &user_id(), &profile)
        .await
        .unwrap();
    // Assert
    assert_eq!(user.profile["nickName"], "JohnnyC");
    received_with_standard_headers(&server).await;
}

#[tokio::test]
async fn activate_user_returns_the_token_without_email_and_none_with_email() {
    // Arrange
    let (server, client) = setup().await;
    mock_empty_post("activate")
        .and(query_param("sendEmail", "false"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "activationUrl": "https://test.okta.com/tokens/U_YIAd2GM4DJ8ZDkH7Qv/verify",
            "activationToken": "U_YIAd2GM4DJ8ZDkH7Qv"})))
        .expect(1)
        .mount(&server)
        .await;
    mock_empty_post("activate")
        .and(query_param("sendEmail", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    // Act
    let token = client
        .activate_user(&CallContext::background(), &user_id(), false)
        .await
        .unwrap()
        .unwrap();
    let emailed = client
        .activate_user(&CallContext::background(), &user_id(), true)
        .await
        .unwrap();
    // Assert
    assert_eq!(token.activation_token, "U_YIAd2GM4DJ8ZDkH7Qv");
    assert_eq!(
        token.activation_url,
        "https://test.okta.com/tokens/U_YIAd2GM4DJ8ZDkH7Qv/verify"
    );
    assert!(!format!("{token:?}").contains("U_YIAd2GM4DJ8ZDkH7Qv"));
    assert!(emailed.is_none());
    received_with_standard_headers(&server).await;
}

#[tokio::test]
async fn reactivate_user_accepts_a_token_or_an_empty_204() {
    // Arrange
    let (server, client) = setup().await;
    mock_empty_post("reactivate")
        .and(query_param("sendEmail", "false"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "activationUrl": "https://test.okta.com/welcome/U1uFQ4LZpbyyiMe7Tw_t",
            "activationToken": "U1uFQ4LZpbyyiMe7Tw_t"})))
        .mount(&server)
        .await;
    mock_empty_post("reactivate")
        .and(query_param("sendEmail", "true"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    // Act / Assert
    assert_eq!(
        client
            .reactivate_user(&CallContext::background(), &user_id(), false)
            .await
            .unwrap()
            .unwrap()
            .activation_token,
        "U1uFQ4LZpbyyiMe7Tw_t"
    );
    assert!(
        client
            .reactivate_user(&CallContext::background(), &user_id(), true)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn deactivate_user_accepts_200_with_an_empty_object_and_204() {
    // Arrange
    let (server, client) = setup().await;
    mock_empty_post("deactivate")
        .and(query_param("sendEmail", "false"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    mock_empty_post("deactivate")
        .and(query_param("sendEmail", "true"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    // Act / Assert
    client
        .deactivate_user(&CallContext::background(), &user_id(), false)
        .await
        .unwrap();
    client
        .deactivate_user(&CallContext::background(), &user_id(), true)
        .await
        .unwrap();
    received_with_standard_headers(&server).await;
}

#[tokio::test]
async fn suspend_unsuspend_and_unlock_post_with_content_length_zero() {
    // Arrange
    let (server, client) = setup().await;
    for action in ["suspend", "unsuspend", "unlock"] {
        mock_empty_post(action)
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .expect(1)
            .mount(&server)
            .await;
    }
    // Act
    client
        .suspend_user(&CallContext::background(), &user_id())
        .await
        .unwrap();
    client
        .unsuspend_user(&CallContext::background(), &user_id())
        .await
        .unwrap();
    client
        .unlock_user(&CallContext::background(), &user_id())
        .await
        .unwrap();
    // Assert
    for request in received_with_standard_headers(&server).await {
        assert_eq!(header_value(&request, "content-length"), Some("0"));
        assert_eq!(request.url.query(), None);
        assert!(request.body.is_empty());
    }
}

#[tokio::test]
async fn unlock_user_reports_e0000032_as_a_403_api_error() {
    // Arrange
    let (server, client) = setup().await;
    mock_empty_post("unlock")
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(okta_error(
                    "E0000032",
                    "Unlock is not allowed for this user.",
                    &["The user is not locked out."],
                ))
                .insert_header("x-okta-request-id", "3ab36365bd73dbdcaaa2f93109fecc8d"),
        )
        .expect(1)
        .mount(&server)
        .await;
    // Act
    let error = client
        .unlock_user(&CallContext::background(), &user_id())
        .await
        .unwrap_err();
    // Assert
    assert_eq!(error.error_code(), Some("E0000032"));
    assert_eq!(
        error.meta().unwrap().request_id.as_deref(),
        Some("3ab36365bd73dbdcaaa2f93109fecc8d")
    );
    let OktaError::Api {
        status: 403,
        body: Some(body),
        ..
    } = error
    else {
        panic!("{error:?}")
    };
    assert_eq!(
        body.error_causes[0].error_summary,
        "The user is not locked out."
    );
}

#[tokio::test]
async fn reset_password_sends_both_flags_and_returns_the_url_when_given() {
    // Arrange
    let (server, client) = setup().await;
    mock_empty_post("reset_password")
        .and(query_param("sendEmail", "false"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"resetPasswordUrl": "https://test.okta.com/reset_password/drpwf5himYrnOpIMbDfb"}),
        ))
        .mount(&server)
        .await;
    mock_empty_post("reset_password")
        .and(query_param("sendEmail", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    // Act
    let url = client
        .reset_password(&CallContext::background(), &user_id(), false, true)
        .await
        .unwrap();
    let emailed = client
        .reset_password(&CallContext::background(), &user_id(), true, false)
        .await
        .unwrap();
    // Assert
    assert_eq!(
        url.as_deref(),
        Some("https://test.okta.com/reset_password/drpwf5himYrnOpIMbDfb")
    );
    assert_eq!(emailed, None);
    let requests = received_with_standard_headers(&server).await;
    assert_eq!(
        query_pairs(&requests[0]),
        pairs(&[("sendEmail", "false"), ("revokeSessions", "true")])
    );
    assert_eq!(
        query_pairs(&requests[1]),
        pairs(&[("sendEmail", "true"), ("revokeSessions", "false")])
    );
}

#[tokio::test]
async fn expire_password_returns_the_user_and_the_temp_password_variant_a_secret() {
    // Arrange
    let (server, client) = setup().await;
    let mut expired = recorded_user();
    expired["status"] = json!("PASSWORD_EXPIRED");
    mock_empty_post("expire_password")
        .respond_with(ResponseTemplate::new(200).set_body_json(expired))
        .expect(1)
        .mount(&server)
        .await;
    mock_empty_post("expire_password_with_temp_password")
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"tempPassword": "C8Fg5dUq4zE8"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    // Act
    let user = client
        .expire_password(&CallContext::background(), &user_id())
        .await
        .unwrap();
    let temp_password = client
        .expire_password_with_temp_password(&CallContext::background(), &user_id())
        .await
        .unwrap();
    // Assert
    assert_eq!(user.status, "PASSWORD_EXPIRED");
    assert_eq!(temp_password.expose_secret(), "C8Fg5dUq4zE8");
    assert!(!format!("{temp_password:?}").contains("C8Fg5dUq4zE8"));
    received_with_standard_headers(&server).await;
}

#[tokio::test]
async fn delete_user_sends_delete_with_send_email_and_accepts_204() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("DELETE"))
        .and(path(USER_PATH))
        .and(query_param("sendEmail", "false"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    // Act / Assert
    client
        .delete_user(&CallContext::background(), &user_id(), false)
        .await
        .unwrap();
    received_with_standard_headers(&server).await;
}

#[tokio::test]
async fn delete_user_is_not_retried_on_503() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("DELETE"))
        .and(path(USER_PATH))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&server)
        .await;
    // Act
    let error = client
        .delete_user(&CallContext::background(), &user_id(), true)
        .await
        .unwrap_err();
    // Assert
    assert!(
        matches!(
            error,
            OktaError::Unavailable {
                status: 503,
                body: None,
                ..
            }
        ),
        "{error:?}"
    );
}

// === groups ===

#[tokio::test]
async fn get_group_and_list_groups_decode_recorded_groups() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/groups/00gnwlw0pbm3qMcXs5d7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(recorded_group()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/groups"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([recorded_group()])))
        .expect(2)
        .mount(&server)
        .await;
    let search = Expression::compare("profile.name", Operator::Sw, "Every");
    // Act
    let group = client
        .get_group(
            &CallContext::background(),
            &OktaId::parse("00gnwlw0pbm3qMcXs5d7").unwrap(),
        )
        .await
        .unwrap();
    let page = client
        .list_groups(
            &CallContext::background(),
            &GroupQuery::Search(search),
            &PageRequest {
                limit: 20,
                after: None,
            },
        )
        .await
        .unwrap();
    client
        .list_groups(
            &CallContext::background(),
            &GroupQuery::All,
            &PageRequest::default(),
        )
        .await
        .unwrap();
    // Assert
    assert_eq!(group.r#type, "BUILT_IN");
    assert_eq!(group.profile["name"], "Everyone");
    assert_eq!(
        group.last_membership_updated.unwrap().to_rfc3339(),
        "2025-09-29T02:19:52+00:00"
    );
    assert_eq!(page.items.len(), 1);
    let requests = received_with_standard_headers(&server).await;
    assert_eq!(
        query_pairs(&requests[1]),
        pairs(&[("search", r#"profile.name sw "Every""#), ("limit", "20")])
    );
    assert_eq!(requests[2].url.query(), None);
}

#[tokio::test]
async fn list_group_members_sends_limit_and_after() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/groups/{GROUP_ID}/users")))
        .and(query_param("limit", "200"))
        .and(query_param("after", "00usfbpcapvcITLwi4x6"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([recorded_staged_user()])))
        .expect(1)
        .mount(&server)
        .await;
    // Act
    let page = client
        .list_group_members(
            &CallContext::background(),
            &group_id(),
            &PageRequest {
                limit: 200,
                after: Some(Cursor::parse("00usfbpcapvcITLwi4x6").unwrap()),
            },
        )
        .await
        .unwrap();
    // Assert
    assert_eq!(page.items[0].status, "STAGED");
    received_with_standard_headers(&server).await;
}

#[tokio::test]
async fn group_membership_changes_send_put_and_delete_and_accept_204() {
    // Arrange
    let (server, client) = setup().await;
    let membership_path = format!("/api/v1/groups/{GROUP_ID}/users/{USER_ID}");
    Mock::given(method("PUT"))
        .and(path(membership_path.clone()))
        .and(header("content-length", "0"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(membership_path))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    // Act / Assert
    client
        .add_group_member(&CallContext::background(), &group_id(), &user_id())
        .await
        .unwrap();
    client
        .remove_group_member(&CallContext::background(), &group_id(), &user_id())
        .await
        .unwrap();
    received_with_standard_headers(&server).await;
}

#[tokio::test]
async fn add_group_member_is_retried_after_a_503() {
    // Arrange
    let (server, client) = setup().await;
    let membership_path = format!("/api/v1/groups/{GROUP_ID}/users/{USER_ID}");
    Mock::given(method("PUT"))
        .and(path(membership_path.clone()))
        .respond_with(ResponseTemplate::new(503).insert_header("x-okta-request-id", "req-503"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(membership_path))
        .and(header("x-okta-retry-for", "req-503"))
        .and(header("x-okta-retry-count", "1"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    // Act / Assert
    client
        .add_group_member(&CallContext::background(), &group_id(), &user_id())
        .await
        .unwrap();
}

// === errors ===

#[tokio::test]
async fn get_user_reports_e0000007_not_found() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/00usfgmn9xhwtA6f74x6"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(okta_error(
                    "E0000007",
                    "Not found: Resource not found: 00usfgmn9xhwtA6f74x6 (User)",
                    &[],
                ))
                .insert_header("x-okta-request-id", "X0f5RrZD9OSTRQFRMU-oqAAAB1Y")
                .insert_header("x-rate-limit-limit", "1000")
                .insert_header("x-rate-limit-remaining", "998")
                .insert_header("x-rate-limit-reset", "1598552424"),
        )
        .expect(1)
        .mount(&server)
        .await;
    // Act
    let error = client
        .get_user(
            &CallContext::background(),
            &OktaId::parse("00usfgmn9xhwtA6f74x6").unwrap(),
        )
        .await
        .unwrap_err();
    // Assert
    assert_eq!(error.error_code(), Some("E0000007"));
    let meta = error.meta().unwrap();
    assert_eq!(meta.status, 404);
    assert_eq!(
        meta.request_id.as_deref(),
        Some("X0f5RrZD9OSTRQFRMU-oqAAAB1Y")
    );
    let rate_limit = meta.rate_limit.unwrap();
    assert_eq!(
        (
            rate_limit.limit,
            rate_limit.remaining,
            rate_limit.reset_epoch_seconds
        ),
        (1000, 998, 1_598_552_424)
    );
    assert!(matches!(error, OktaError::Api { status: 404, .. }));
    assert!(!error.to_string().contains(TOKEN));
}

#[tokio::test]
async fn a_401_is_reported_as_an_api_error_with_e0000011() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(okta_error(
            "E0000011",
            "Invalid token provided",
            &[],
        )))
        .expect(1)
        .mount(&server)
        .await;
    // Act
    let error = client
        .get_user(&CallContext::background(), &user_id())
        .await
        .unwrap_err();
    // Assert
    assert_eq!(error.error_code(), Some("E0000011"));
    assert!(matches!(error, OktaError::Api { status: 401, .. }));
    assert!(!format!("{error:?}").contains(TOKEN));
}

#[tokio::test]
async fn a_403_with_an_empty_body_keeps_the_www_authenticate_header() {
    // Arrange
    let (server, client) = setup().await;
    let challenge = r#"Bearer authorization_uri="http://test.okta.com/oauth2/v1/authorize", realm="http://test.okta.com", scope="okta.groups.read", error="insufficient_scope", error_description="The access token provided does not contain the required scopes.", resource="/api/v1/groups""#;
    Mock::given(method("GET"))
        .and(path("/api/v1/groups"))
        .respond_with(ResponseTemplate::new(403).insert_header("www-authenticate", challenge))
        .expect(1)
        .mount(&server)
        .await;
    // Act
    let error = client
        .list_groups(
            &CallContext::background(),
            &GroupQuery::All,
            &PageRequest::default(),
        )
        .await
        .unwrap_err();
    // Assert
    assert_eq!(error.error_code(), None);
    let OktaError::Api {
        status,
        body,
        www_authenticate,
        ..
    } = error
    else {
        panic!("{error:?}")
    };
    assert_eq!(status, 403);
    assert!(body.is_none());
    assert_eq!(www_authenticate.as_deref(), Some(challenge));
}

#[tokio::test]
async fn a_2xx_body_that_does_not_decode_is_an_unexpected_response() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"))
        .mount(&server)
        .await;
    // Act
    let error = client
        .get_user(&CallContext::background(), &user_id())
        .await
        .unwrap_err();
    // Assert
    assert!(
        matches!(error, OktaError::UnexpectedResponse { status: 200, .. }),
        "{error:?}"
    );
}

// === rate limits and retries ===

#[tokio::test]
async fn a_429_is_retried_after_the_capped_reset_wait_with_retry_headers() {
    // Arrange
    let (server, client) = setup().await;
    let now = chrono::Utc::now().timestamp();
    Mock::given(method("GET"))
        .and(path(USER_PATH))
        .respond_with(
            ResponseTemplate::new(429)
                .set_body_json(okta_error(
                    "E0000047",
                    "API call exceeded rate limit due to too many requests.",
                    &[],
                ))
                .insert_header("x-okta-request-id", "req-429")
                .insert_header("date", http_date(now).as_str())
                .insert_header("x-rate-limit-limit", "50")
                // Budget left in the bucket: only the 429's own backoff is under test.
                .insert_header("x-rate-limit-remaining", "10")
                .append_header("x-rate-limit-reset", (now + 60).to_string().as_str())
                .append_header("x-rate-limit-reset", (now + 30).to_string().as_str()),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(USER_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(recorded_user()))
        .expect(1)
        .mount(&server)
        .await;
    // Act: within a 10 s deadline. Okta's own wait (the earliest reset, 30 s away, plus a
    // second) would outlast it, and the client refuses a wait that outlasts the deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let user = client
        .get_user(&CallContext::until(deadline), &user_id())
        .await;
    // Assert: answered, so the wait was capped at retry_max_delay (50 ms).
    assert_eq!(user.unwrap().id, USER_ID);
    let requests = received_with_standard_headers(&server).await;
    assert_eq!(requests.len(), 2);
    assert_eq!(header_value(&requests[0], "x-okta-retry-for"), None);
    assert_eq!(
        header_value(&requests[1], "x-okta-retry-for"),
        Some("req-429")
    );
    assert_eq!(header_value(&requests[1], "x-okta-retry-count"), Some("1"));
}

#[tokio::test]
async fn a_429_that_persists_becomes_rate_limited_with_retry_after() {
    // Arrange
    let (server, client) = setup().await;
    let now = chrono::Utc::now().timestamp();
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(429)
                .set_body_json(okta_error(
                    "E0000047",
                    "API call exceeded rate limit due to too many requests.",
                    &[],
                ))
                .insert_header("x-okta-request-id", "req-429")
                .insert_header("date", http_date(now).as_str())
                .insert_header("x-rate-limit-limit", "0")
                .insert_header("x-rate-limit-remaining", "0")
                .insert_header("x-rate-limit-reset", (now + 8).to_string().as_str()),
        )
        .expect(3)
        .mount(&server)
        .await;
    // Act
    let error = client
        .get_user(&CallContext::background(), &user_id())
        .await
        .unwrap_err();
    // Assert
    assert_eq!(error.error_code(), Some("E0000047"));
    let OktaError::RateLimited {
        retry_after, meta, ..
    } = error
    else {
        panic!("{error:?}")
    };
    assert_eq!(retry_after, Some(Duration::from_secs(9)));
    assert!(meta.rate_limit.unwrap().is_concurrency_limit());
    let requests = received_with_standard_headers(&server).await;
    assert_eq!(header_value(&requests[2], "x-okta-retry-count"), Some("2"));
}

#[tokio::test]
async fn a_429_without_reset_headers_is_retried_with_backoff() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(recorded_user()))
        .mount(&server)
        .await;
    // Act / Assert
    client
        .get_user(&CallContext::background(), &user_id())
        .await
        .unwrap();
    let requests = received_with_standard_headers(&server).await;
    assert_eq!(header_value(&requests[1], "x-okta-retry-count"), Some("1"));
}

#[tokio::test]
async fn a_429_on_a_create_is_not_retried() {
    // Arrange
    let (server, client) = setup().await;
    let now = chrono::Utc::now().timestamp();
    Mock::given(method("POST"))
        .and(path("/api/v1/users"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("date", http_date(now).as_str())
                .insert_header("x-rate-limit-reset", now.to_string().as_str()),
        )
        .expect(1)
        .mount(&server)
        .await;
    let request = empty_create_request();
    // Act
    let error = client
        .create_user(&CallContext::background(), &request)
        .await
        .unwrap_err();
    // Assert
    assert!(
        matches!(error, OktaError::RateLimited { retry_after: Some(wait), body: None, .. } if wait == Duration::from_secs(1))
    );
}

#[tokio::test]
async fn a_transition_is_retried_and_a_repeat_refused_as_already_done_is_a_success() {
    // Arrange: the first suspend is carried out but answered 502; Okta refuses the repeat.
    let (server, client) = setup().await;
    mock_empty_post("suspend")
        .respond_with(ResponseTemplate::new(502).insert_header("x-okta-request-id", "req-502"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    let cause = "Cannot suspend a user that is not active";
    mock_empty_post("suspend")
        .and(header("x-okta-retry-count", "1"))
        .respond_with(ResponseTemplate::new(400).set_body_json(okta_error(
            "E0000001",
            &format!("Api validation failed: {cause}"),
            &[cause],
        )))
        .expect(1)
        .mount(&server)
        .await;
    let mut suspended = recorded_user();
    suspended["status"] = json!("SUSPENDED");
    Mock::given(method("GET"))
        .and(path(USER_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(suspended))
        .expect(1)
        .mount(&server)
        .await;
    // Act
    let outcome = client
        .suspend_user(&CallContext::background(), &user_id())
        .await;
    // Assert
    assert!(outcome.is_ok(), "{outcome:?}");
}

#[tokio::test]
async fn a_transition_refused_on_its_first_attempt_stays_refused_without_a_read() {
    // Arrange
    let (server, client) = setup().await;
    mock_empty_post("unlock")
        .respond_with(ResponseTemplate::new(403).set_body_json(okta_error(
            "E0000032",
            "Unlock is not allowed for this user.",
            &["The user is not locked out."],
        )))
        .expect(1)
        .mount(&server)
        .await;
    // Act
    let error = client
        .unlock_user(&CallContext::background(), &user_id())
        .await
        .unwrap_err();
    // Assert
    assert_eq!(error.error_code(), Some("E0000032"));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_5xx_on_get_is_retried_and_then_succeeds() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(okta_error("E0000009", "Internal Server Error", &[]))
                .insert_header("x-okta-request-id", "req-500"),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(header("x-okta-retry-for", "req-500"))
        .and(header("x-okta-retry-count", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(recorded_user()))
        .expect(1)
        .mount(&server)
        .await;
    // Act / Assert
    assert_eq!(
        client
            .get_user(&CallContext::background(), &user_id())
            .await
            .unwrap()
            .id,
        USER_ID
    );
}

#[tokio::test]
async fn a_5xx_that_persists_becomes_unavailable_after_max_retries() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503).set_body_json(okta_error(
            "E0000010",
            "Service is in read only mode",
            &[],
        )))
        .expect(3)
        .mount(&server)
        .await;
    // Act
    let error = client
        .get_user(&CallContext::background(), &user_id())
        .await
        .unwrap_err();
    // Assert
    assert_eq!(error.error_code(), Some("E0000010"));
    assert!(
        matches!(error, OktaError::Unavailable { status: 503, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_5xx_on_a_post_is_not_retried() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .expect(1)
        .mount(&server)
        .await;
    let request = empty_create_request();
    // Act
    let create_error = client
        .create_user(&CallContext::background(), &request)
        .await
        .unwrap_err();
    // Assert
    assert!(
        matches!(create_error, OktaError::Unavailable { status: 502, .. }),
        "{create_error:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_slow_response_is_a_timeout() {
    // Arrange
    let server = MockServer::start().await;
    let mut settings = settings_for(&server.uri());
    settings.request_timeout = Duration::from_millis(200);
    settings.max_retries = 0;
    let client = OktaClient::new(settings).unwrap();
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(recorded_user())
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    // Act
    let error = client
        .get_user(&CallContext::background(), &user_id())
        .await
        .unwrap_err();
    // Assert
    assert!(matches!(error, OktaError::Timeout(_)), "{error:?}");
    assert!(error.meta().is_none());
}

#[tokio::test]
async fn a_refused_connection_is_not_connected_and_sent_nothing_after_retries() {
    // Arrange: a port that was just free, so nothing listens on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let client = OktaClient::new(settings_for(&format!("http://{address}"))).unwrap();
    // Act
    let error = client
        .get_user(&CallContext::background(), &user_id())
        .await
        .unwrap_err();
    // Assert
    assert!(matches!(error, OktaError::NotConnected(_)), "{error:?}");
    assert!(!error.may_have_reached_okta());
}

// === pagination ===

#[tokio::test]
async fn list_users_returns_the_cursor_from_separate_link_header_lines() {
    // Arrange
    let (server, client) = setup().await;
    let base = server.uri();
    Mock::given(method("GET"))
        .and(path("/api/v1/users"))
        .and(query_param_is_missing("after"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([recorded_staged_user()]))
                .append_header(
                    "link",
                    format!(r#"<{base}/api/v1/users?limit=1>; rel="self""#).as_str(),
                )
                .append_header(
                    "link",
                    format!(
                        r#"<{base}/api/v1/users?after=000usfdsyqnIjEmHNm4x6&limit=1>; rel="next""#
                    )
                    .as_str(),
                ),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users"))
        .and(query_param("after", "000usfdsyqnIjEmHNm4x6"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([recorded_user()]))
                .insert_header(
                    "link",
                    format!(
                        r#"<{base}/api/v1/users?after=000usfdsyqnIjEmHNm4x6&limit=1>; rel="self""#
                    )
                    .as_str(),
                ),
        )
        .expect(1)
        .mount(&server)
        .await;
    // Act
    let first = client
        .list_users(
            &CallContext::background(),
            &UserQuery::All,
            &PageRequest {
                limit: 1,
                after: None,
            },
        )
        .await
        .unwrap();
    let second = client
        .list_users(
            &CallContext::background(),
            &UserQuery::All,
            &PageRequest {
                limit: 1,
                after: first.next.clone(),
            },
        )
        .await
        .unwrap();
    // Assert
    assert_eq!(
        first.next.as_ref().map(Cursor::as_str),
        Some("000usfdsyqnIjEmHNm4x6")
    );
    assert_eq!(first.items[0].id, "00usfdsyqnIjEmHNm4x6");
    assert_eq!(second.items[0].id, USER_ID);
    assert_eq!(second.next, None);
}

#[tokio::test]
async fn list_user_groups_follows_next_links_in_one_comma_separated_header() {
    // Arrange
    let (server, client) = setup().await;
    let base = server.uri();
    let groups_path = format!("{USER_PATH}/groups");
    let mut second_group = recorded_group();
    second_group["id"] = json!("00gsf7bj3rH2d9PvL4x6");
    second_group["type"] = json!("OKTA_GROUP");
    Mock::given(method("GET"))
        .and(path(groups_path.clone()))
        .and(query_param_is_missing("after"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([recorded_group()])).insert_header(
            "link",
            format!(
                r#"<{base}{groups_path}?limit=1>; rel="self", <{base}{groups_path}?after=00gnwlw0pbm3qMcXs5d7&limit=1>; rel="next""#
            )
            .as_str(),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(groups_path.clone()))
        .and(query_param("after", "00gnwlw0pbm3qMcXs5d7"))
        .and(query_param("limit", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([second_group])))
        .expect(1)
        .mount(&server)
        .await;
    // Act
    let groups = client
        .list_user_groups(&CallContext::background(), &user_id())
        .await
        .unwrap();
    // Assert
    let ids: Vec<&str> = groups.iter().map(|group| group.id.as_str()).collect();
    assert_eq!(ids, ["00gnwlw0pbm3qMcXs5d7", "00gsf7bj3rH2d9PvL4x6"]);
    received_with_standard_headers(&server).await;
}

#[tokio::test]
async fn list_user_groups_does_not_follow_a_next_link_to_another_origin() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path(format!("{USER_PATH}/groups")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([recorded_group()])).insert_header(
            "link",
            format!(r#"<https://evil.example.com{USER_PATH}/groups?after=00gnwlw0pbm3qMcXs5d7>; rel="next""#).as_str(),
        ))
        .expect(1)
        .mount(&server)
        .await;
    // Act
    let error = client
        .list_user_groups(&CallContext::background(), &user_id())
        .await
        .unwrap_err();
    // Assert
    assert!(
        matches!(error, OktaError::UnexpectedResponse { status: 200, .. }),
        "{error:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_next_link_with_an_invalid_cursor_is_an_unexpected_response() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([]))
                .insert_header(
                    "link",
                    r#"<https://test.okta.com/api/v1/users?after=a%26limit%3D1>; rel="next""#,
                ),
        )
        .mount(&server)
        .await;
    // Act
    let error = client
        .list_users(
            &CallContext::background(),
            &UserQuery::All,
            &PageRequest::default(),
        )
        .await
        .unwrap_err();
    // Assert
    assert!(
        matches!(error, OktaError::UnexpectedResponse { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn transport_errors_do_not_carry_query_values_or_the_token() {
    // Arrange
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let client = OktaClient::new(settings_for(&format!("http://{address}"))).unwrap();
    // Act
    let error = client
        .find_user_by_login(&CallContext::background(), "private.person@example.com")
        .await
        .unwrap_err();
    // Assert
    let rendered = format!("{error:?} {error}");
    assert!(!rendered.contains("private.person"), "{rendered}");
    assert!(!rendered.contains(TOKEN), "{rendered}");
}

// === token refresh under the client's retry policy ===

/// A client authenticating as a service app at `server`'s token endpoint.
fn oauth_client(server: &MockServer) -> OktaClient {
    let pem = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let oauth = OAuthSettings {
        client_id: "0oaservice".to_owned(),
        key: SigningKey::parse(&pem, Some("kid-1")).unwrap(),
        scopes: vec!["okta.users.read".to_owned()],
        dpop: false,
    };
    OktaClient::with_oauth(settings_for(&server.uri()), oauth).unwrap()
}

fn token_request() -> MockBuilder {
    Mock::given(method("POST")).and(path("/oauth2/v1/token"))
}

#[tokio::test]
async fn a_token_request_okta_fails_with_a_503_is_sent_again_and_the_call_goes_through() {
    let server = MockServer::start().await;
    token_request()
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    token_request()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer", "access_token": "at-1", "expires_in": 3600,
            "scope": "okta.users.read"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(USER_PATH))
        .and(header("authorization", "Bearer at-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(recorded_user()))
        .expect(1)
        .mount(&server)
        .await;
    let client = oauth_client(&server);
    let user = client
        .get_user(&CallContext::background(), &user_id())
        .await
        .unwrap();
    assert_eq!(user.id, USER_ID);
}

#[tokio::test]
async fn a_token_request_okta_refuses_is_not_sent_again() {
    let server = MockServer::start().await;
    token_request()
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_client", "error_description": "The client_assertion is invalid."
        })))
        .expect(1)
        .mount(&server)
        .await;
    let client = oauth_client(&server);
    let error = client
        .get_user(&CallContext::background(), &user_id())
        .await
        .unwrap_err();
    assert!(matches!(error, OktaError::OAuthRejected(_)), "{error:?}");
}
