//! GroupService end to end: gateway and simulator over real sockets.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::collections::HashSet;

use common::spawn_app;
use identity_gateway::proto::{
    GetGroupRequest, GroupMemberRequest, GroupType, ListGroupMembersRequest, ListGroupsRequest,
    ListUserGroupsRequest, StreamGroupMembersRequest,
};
use serde_json::json;
use tokio_stream::StreamExt;
use tonic::Code;

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
    };
    let mut groups = app.groups.clone();
    let user_groups = |app: &common::TestApp, user_id: String| {
        let mut users = app.users.clone();
        async move {
            users
                .list_user_groups(ListUserGroupsRequest { user_id })
                .await
                .unwrap()
                .into_inner()
                .groups
                .into_iter()
                .map(|group| group.name)
                .collect::<Vec<_>>()
        }
    };

    groups.add_group_member(membership.clone()).await.unwrap();
    groups.add_group_member(membership.clone()).await.unwrap();
    assert!(
        user_groups(&app, user_id.clone())
            .await
            .contains(&"Ops".to_owned())
    );

    groups
        .remove_group_member(membership.clone())
        .await
        .unwrap();
    groups.remove_group_member(membership).await.unwrap();
    assert!(
        !user_groups(&app, user_id.clone())
            .await
            .contains(&"Ops".to_owned())
    );

    let unknown_user = groups
        .add_group_member(GroupMemberRequest {
            group_id,
            user_id: "00u00000000000000000".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown_user.code(), Code::NotFound);
}
