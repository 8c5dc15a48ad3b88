//! GroupService end to end: gateway and simulator over real sockets.

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;

use common::spawn_app;
use identity_gateway::proto::{
    GetGroupRequest, GroupMemberRequest, GroupType, ListGroupMembersRequest, ListGroupsRequest,
    ListUserGroupsRequest, StreamGroupMembersRequest,
};
use serde_json::json;
use tokio::sync::Notify;
use tokio_stream::StreamExt;
use tonic::Code;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const MEMBER_COUNT: usize = 450;

async fn seed_big_group(app: &common::TestApp) -> (String, Vec<String>) {
    let logins: Vec<String> = (0..MEMBER_COUNT)
        .map(|i| format!("member{i:03}@example.com"))
        .collect();
    let ids = app
        .seed(json!({
            "users": logins.iter().map(|login| json!({"login": login})).collect::<Vec<_>>(),
            "groups": [{"name": "Big", "members": logins}],
        }))
        .await;
    let user_ids = logins
        .iter()
        .map(|login| ids["users"][login].as_str().unwrap().to_owned())
        .collect();
    (ids["groups"]["Big"].as_str().unwrap().to_owned(), user_ids)
}

#[tokio::test]
async fn members_are_listed_across_pages_of_200_without_loss_or_repeat() {
    let app = spawn_app().await;
    let (group_id, user_ids) = seed_big_group(&app).await;
    let mut groups = app.groups.clone();
    let mut seen = Vec::new();
    let mut page_sizes = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = groups
            .list_group_members(ListGroupMembersRequest {
                group_id: group_id.clone(),
                page_size: 200,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        page_sizes.push(page.users.len());
        seen.extend(page.users.into_iter().map(|user| user.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(page_sizes, vec![200, 200, 50]);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), MEMBER_COUNT);
    assert_eq!(
        seen.iter().collect::<HashSet<_>>(),
        user_ids.iter().collect::<HashSet<_>>()
    );
}

#[tokio::test]
async fn the_member_stream_delivers_every_member_once_in_oktas_order() {
    let app = spawn_app().await;
    let (group_id, user_ids) = seed_big_group(&app).await;
    app.clear_sim_requests().await;
    let mut stream = app
        .groups
        .clone()
        .stream_group_members(StreamGroupMembersRequest { group_id })
        .await
        .unwrap()
        .into_inner();
    let mut streamed = Vec::new();
    while let Some(user) = stream.next().await {
        streamed.push(user.unwrap().id);
    }
    let mut sorted = user_ids.clone();
    sorted.sort();
    assert_eq!(streamed, sorted, "the simulator orders members by id");
    let okta_calls = app.sim_requests().await;
    assert_eq!(
        okta_calls.len(),
        3,
        "one Okta call per page of 200: {okta_calls:?}"
    );
}

#[tokio::test]
async fn streaming_an_unknown_group_is_not_found_before_any_message() {
    let app = spawn_app().await;
    let status = app
        .groups
        .clone()
        .stream_group_members(StreamGroupMembersRequest {
            group_id: "00g00000000000000000".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn groups_are_found_by_id_by_name_prefix_and_by_search() {
    let app = spawn_app().await;
    let ids = app
        .seed(json!({"groups": [
            {"name": "Engineering", "description": "Builds"},
            {"name": "Engagement", "description": "Talks"},
            {"name": "Sales"},
            {"name": "Imported", "type": "APP_GROUP"}
        ]}))
        .await;
    let mut groups = app.groups.clone();
    let engineering_id = ids["groups"]["Engineering"].as_str().unwrap().to_owned();
    let group = groups
        .get_group(GetGroupRequest {
            group_id: engineering_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(group.name, "Engineering");
    assert_eq!(group.description, "Builds");
    assert_eq!(group.r#type(), GroupType::OktaGroup);

    let mut by_prefix: Vec<String> = groups
        .list_groups(ListGroupsRequest {
            name_prefix: "eng".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .groups
        .into_iter()
        .map(|group| group.name)
        .collect();
    by_prefix.sort();
    assert_eq!(by_prefix, vec!["Engagement", "Engineering"]);

    let app_groups: Vec<String> = groups
        .list_groups(ListGroupsRequest {
            search: "type eq \"APP_GROUP\"".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .groups
        .into_iter()
        .map(|group| group.name)
        .collect();
    assert_eq!(app_groups, vec!["Imported"]);

    let missing = groups
        .get_group(GetGroupRequest {
            group_id: "00g00000000000000000".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn list_groups_pages_with_tokens_bound_to_the_query() {
    let app = spawn_app().await;
    let names: Vec<String> = (0..5).map(|i| format!("Team {i}")).collect();
    app.seed(json!({"groups": names.iter().map(|name| json!({"name": name})).collect::<Vec<_>>()}))
        .await;
    let mut groups = app.groups.clone();
    let first = groups
        .list_groups(ListGroupsRequest {
            name_prefix: "Team".to_owned(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.groups.len(), 2);
    assert!(!first.next_page_token.is_empty());

    let reused = groups
        .list_groups(ListGroupsRequest {
            name_prefix: "Sales".to_owned(),
            page_size: 2,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert!(
        reused.message().contains("different query"),
        "{}",
        reused.message()
    );

    let second = groups
        .list_groups(ListGroupsRequest {
            name_prefix: "Team".to_owned(),
            page_size: 2,
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.groups.len(), 2);
    assert!(
        first
            .groups
            .iter()
            .all(|group| !second.groups.contains(group))
    );
}

#[tokio::test]
async fn membership_changes_are_idempotent_and_visible_in_the_users_groups() {
    let app = spawn_app().await;
    let ids = app
        .seed(json!({"users": [{"login": "m@example.com"}], "groups": [{"name": "Ops"}]}))
        .await;
    let user_id = ids["users"]["m@example.com"].as_str().unwrap().to_owned();
    let group_id = ids["groups"]["Ops"].as_str().unwrap().to_owned();
    let membership = GroupMemberRequest {
        group_id: group_id.clone(),
        user_id: user_id.clone(),
        ..Default::default()
    };
    let mut groups = app.groups.clone();

    groups.add_group_member(membership.clone()).await.unwrap();
    groups.add_group_member(membership.clone()).await.unwrap();
    assert!(group_ids_of(&app, &user_id).await.contains(&group_id));

    groups
        .remove_group_member(membership.clone())
        .await
        .unwrap();
    groups.remove_group_member(membership).await.unwrap();
    assert!(!group_ids_of(&app, &user_id).await.contains(&group_id));

    let unknown_user = groups
        .add_group_member(GroupMemberRequest {
            group_id,
            user_id: "00u00000000000000000".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown_user.code(), Code::NotFound);
}

// === shared reads: coalescing and the group-discovery cache ===

/// Okta GET requests the simulator received since the log was last cleared.
async fn okta_reads(app: &common::TestApp) -> usize {
    app.sim_requests()
        .await
        .into_iter()
        .filter(|request| request["method"] == "GET")
        .count()
}

/// The ids of the members on the first page of `group_id`.
async fn member_ids(app: &common::TestApp, group_id: &str) -> Vec<String> {
    app.groups
        .clone()
        .list_group_members(ListGroupMembersRequest {
            group_id: group_id.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .users
        .into_iter()
        .map(|user| user.id)
        .collect()
}

/// The ids of `user_id`'s groups.
pub(crate) async fn group_ids_of(app: &common::TestApp, user_id: &str) -> Vec<String> {
    app.users
        .clone()
        .list_user_groups(ListUserGroupsRequest {
            user_id: user_id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .groups
        .into_iter()
        .map(|group| group.id)
        .collect()
}

/// Each group-discovery read once: GetGroup, ListGroups by name, ListUserGroups, a member page.
async fn discover(app: &common::TestApp, group_id: &str, user_id: &str) {
    app.groups
        .clone()
        .get_group(GetGroupRequest {
            group_id: group_id.to_owned(),
        })
        .await
        .unwrap();
    app.groups
        .clone()
        .list_groups(ListGroupsRequest {
            name_prefix: "Cach".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    group_ids_of(app, user_id).await;
    member_ids(app, group_id).await;
}

/// Adds a member at the simulator's Okta API directly, as another Okta client would.
async fn add_member_at_okta(app: &common::TestApp, group_id: &str, user_id: &str) {
    let path = format!("/api/v1/groups/{group_id}/users/{user_id}");
    let response = app
        .okta_request(reqwest::Method::PUT, &path)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

/// A gateway with the group-discovery cache on, and the ids of [`seed_user_and_group`].
async fn cached_app_with_user_and_group(ttl_ms: u64) -> (common::TestApp, String, String) {
    let app = common::spawn_app_with(|settings| {
        settings.cache.group_discovery_ttl_ms = ttl_ms;
    })
    .await;
    let (user_id, group_id) = seed_user_and_group(&app).await;
    (app, user_id, group_id)
}

/// Seeds one user and one group named `Cached`, without the membership; returns their ids.
async fn seed_user_and_group(app: &common::TestApp) -> (String, String) {
    let ids = app
        .seed(json!({"users": [{"login": "reader@example.com"}], "groups": [{"name": "Cached"}]}))
        .await;
    (
        ids["users"]["reader@example.com"]
            .as_str()
            .unwrap()
            .to_owned(),
        ids["groups"]["Cached"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn identical_concurrent_member_page_reads_share_one_okta_call() {
    let app = spawn_app().await;
    let (group_id, _) = seed_big_group(&app).await;
    // A slow upstream holds the first read in flight while the others arrive.
    app.set_latency(1000).await;
    app.clear_sim_requests().await;
    let pages: Vec<_> = (0..20)
        .map(|_| {
            let mut groups = app.groups.clone();
            let group_id = group_id.clone();
            tokio::spawn(async move {
                groups
                    .list_group_members(ListGroupMembersRequest {
                        group_id,
                        page_size: 200,
                        page_token: String::new(),
                    })
                    .await
                    .map(|response| response.into_inner().users.len())
            })
        })
        .collect();
    // The member stream reads the same first page (200 members, no cursor), so it shares it too.
    let mut stream = app
        .groups
        .clone()
        .stream_group_members(StreamGroupMembersRequest {
            group_id: group_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    for page in pages {
        assert_eq!(page.await.unwrap().unwrap(), 200);
    }
    // Only first-page calls: the stream goes on to read the later pages by itself.
    let first_page_calls: Vec<_> = app
        .sim_requests()
        .await
        .into_iter()
        .filter(|request| {
            !request["query"]
                .as_str()
                .unwrap_or_default()
                .contains("after=")
        })
        .collect();
    assert_eq!(
        first_page_calls.len(),
        1,
        "20 identical page reads and a stream's first page made one Okta call: {first_page_calls:?}"
    );
    app.set_latency(0).await;
    let mut streamed = 0;
    while let Some(user) = stream.next().await {
        user.unwrap();
        streamed += 1;
    }
    assert_eq!(streamed, MEMBER_COUNT);

    // Nothing is kept without the cache: sequential reads each ask Okta.
    app.clear_sim_requests().await;
    member_ids(&app, &group_id).await;
    member_ids(&app, &group_id).await;
    assert_eq!(okta_reads(&app).await, 2);
}

#[tokio::test]
async fn without_the_cache_every_group_discovery_read_reaches_okta() {
    let app = spawn_app().await;
    let (user_id, group_id) = seed_user_and_group(&app).await;
    app.clear_sim_requests().await;
    discover(&app, &group_id, &user_id).await;
    discover(&app, &group_id, &user_id).await;
    assert_eq!(okta_reads(&app).await, 8, "four reads, twice each");
}

#[tokio::test]
async fn with_the_cache_repeated_reads_stay_off_okta_and_the_gateways_writes_show_at_once() {
    let (app, user_id, group_id) = cached_app_with_user_and_group(60_000).await;
    app.clear_sim_requests().await;
    discover(&app, &group_id, &user_id).await;
    assert_eq!(okta_reads(&app).await, 4);
    discover(&app, &group_id, &user_id).await;
    assert_eq!(
        okta_reads(&app).await,
        4,
        "the repeats were answered from the cache"
    );

    let membership = GroupMemberRequest {
        group_id: group_id.clone(),
        user_id: user_id.clone(),
        ..Default::default()
    };
    app.groups
        .clone()
        .add_group_member(membership.clone())
        .await
        .unwrap();
    assert!(group_ids_of(&app, &user_id).await.contains(&group_id));
    assert_eq!(member_ids(&app, &group_id).await, vec![user_id.clone()]);

    app.groups
        .clone()
        .remove_group_member(membership)
        .await
        .unwrap();
    assert!(!group_ids_of(&app, &user_id).await.contains(&group_id));
    assert!(member_ids(&app, &group_id).await.is_empty());

    app.clear_sim_requests().await;
    discover(&app, &group_id, &user_id).await;
    let after_writes = okta_reads(&app).await;
    discover(&app, &group_id, &user_id).await;
    assert_eq!(
        okta_reads(&app).await,
        after_writes,
        "cached again after the writes"
    );
}

#[tokio::test]
async fn with_the_cache_a_change_made_outside_the_gateway_shows_once_the_ttl_has_passed() {
    let (app, user_id, group_id) = cached_app_with_user_and_group(200).await;
    assert!(!group_ids_of(&app, &user_id).await.contains(&group_id));
    assert!(member_ids(&app, &group_id).await.is_empty());
    // Another Okta client adds the membership, unknown to the gateway.
    add_member_at_okta(&app, &group_id, &user_id).await;
    common::eventually(
        std::time::Duration::from_secs(30),
        "the outside change shows once the TTL has passed",
        async || {
            group_ids_of(&app, &user_id).await.contains(&group_id)
                && member_ids(&app, &group_id).await == vec![user_id.clone()]
        },
    )
    .await;
}

/// A 200 from Okta with `body` and a known rate-limit budget, so the gateway's requests to the
/// bucket need not wait for a first one to reveal it.
fn okta_page(body: serde_json::Value) -> ResponseTemplate {
    let reset = chrono::Utc::now().timestamp() + 60;
    ResponseTemplate::new(200)
        .set_body_json(body)
        .insert_header("X-Rate-Limit-Limit", "600")
        .insert_header("X-Rate-Limit-Remaining", "599")
        .insert_header("X-Rate-Limit-Reset", reset.to_string().as_str())
}

/// An empty member page, answered seconds late; says when the request arrived.
struct SlowOldPage(Arc<Notify>);

impl wiremock::Respond for SlowOldPage {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        self.0.notify_one();
        okta_page(json!([])).set_delay(std::time::Duration::from_secs(3))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_page_read_begun_before_a_membership_change_is_never_its_answer() {
    // The gateway calls a scripted Okta; the simulator only provides realistic answers.
    let okta = MockServer::start().await;
    let app = common::spawn_gateway_for(common::start_simulator().await, |settings| {
        settings.okta.org_url = Some(okta.uri());
        settings.cache.group_discovery_ttl_ms = 60_000;
    })
    .await;
    let (user_id, group_id) = seed_user_and_group(&app).await;
    add_member_at_okta(&app, &group_id, &user_id).await;
    let members_path = format!("/api/v1/groups/{group_id}/users");
    // The page with the member, as the simulator gives it, is what the scripted Okta answers.
    let members = app.okta_request(reqwest::Method::GET, &members_path);
    let response = members.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let page_after: serde_json::Value = response.json().await.unwrap();
    // Okta answers the first page read late, with the page as it was before the change.
    let first_read_arrived = Arc::new(Notify::new());
    Mock::given(method("GET"))
        .and(path(members_path.clone()))
        .respond_with(SlowOldPage(first_read_arrived.clone()))
        .up_to_n_times(1)
        .mount(&okta)
        .await;
    Mock::given(method("GET"))
        .and(path(members_path))
        .respond_with(okta_page(page_after))
        .mount(&okta)
        .await;
    // Another group's page first, so the gateway knows the endpoint's budget.
    let other_group_id = "00gOTHER00000000000a";
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/groups/{other_group_id}/users")))
        .respond_with(okta_page(json!([])))
        .mount(&okta)
        .await;
    assert!(member_ids(&app, other_group_id).await.is_empty());
    Mock::given(method("PUT"))
        .and(path(format!("/api/v1/groups/{group_id}/users/{user_id}")))
        .respond_with(ResponseTemplate::new(204))
        .mount(&okta)
        .await;

    let read_before_change = member_ids(&app, &group_id);
    let change_then_read = async {
        first_read_arrived.notified().await;
        app.groups
            .clone()
            .add_group_member(GroupMemberRequest {
                group_id: group_id.clone(),
                user_id: user_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        member_ids(&app, &group_id).await
    };
    let (before_change, after_change) = tokio::join!(read_before_change, change_then_read);
    assert_eq!(
        after_change,
        vec![user_id.clone()],
        "a read after the change does not join the read begun before it"
    );
    assert!(before_change.is_empty(), "that read had the old page");
    assert_eq!(
        member_ids(&app, &group_id).await,
        vec![user_id],
        "and its old page was not cached"
    );
}
