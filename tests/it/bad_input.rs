//! Hostile and malformed input: clear INVALID_ARGUMENT, and nothing reaches Okta in a form that
//! changes which URL or filter is used (checked at the simulator's request log).

use crate::common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{spawn_app, violated_fields};
use identity_gateway::api::page_token;
use identity_gateway::proto::device_service_client::DeviceServiceClient;
use identity_gateway::proto::event_service_client::EventServiceClient;
use identity_gateway::proto::{
    CreateUserRequest, DeviceFilter, EventFilter, GetGroupRequest, GetUserRequest,
    GroupMemberRequest, ListDevicesRequest, ListGroupMembersRequest, ListGroupsRequest,
    ListUsersRequest, SearchEventsRequest, UpdateUserRequest, User, UserFilter,
    UserLifecycleRequest, UserProfile, WatchEventsRequest, get_user_request,
};
use prost_types::value::Kind;
use prost_types::{FieldMask, ListValue, Struct, Timestamp};
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tonic_types::StatusExt;

fn hostile_ids() -> Vec<String> {
    vec![
        String::new(),
        "../../api/v1/groups".to_owned(),
        "00u?limit=1&x=000000".to_owned(),
        "00u#fragment00000000".to_owned(),
        "00u%2F00000000000000".to_owned(),
        "00u 0000000000000000".to_owned(),
        "00uAAAAAAAAAAAAAAAAé".to_owned(),
        "00uAAAAAAAAAAAAAAAA/".to_owned(),
        "00uAAAAAAAAAAAAAAAA".to_owned(),
        "0".repeat(5000),
    ]
}

/// The decoded query parameters of a logged simulator request.
fn query_params(request: &Value) -> Vec<(String, String)> {
    let raw = request["query"].as_str().unwrap_or("");
    url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect()
}

#[tokio::test]
async fn hostile_ids_are_invalid_argument_and_never_reach_okta() {
    let app = spawn_app().await;
    let valid = "00uAAAAAAAAAAAAAAAAA".to_owned();
    for id in hostile_ids() {
        let mut users = app.users.clone();
        let mut groups = app.groups.clone();
        let statuses = [
            users
                .get_user(GetUserRequest {
                    user: Some(get_user_request::User::Id(id.clone())),
                })
                .await
                .unwrap_err(),
            users
                .suspend_user(UserLifecycleRequest {
                    user_id: id.clone(),
                    ..Default::default()
                })
                .await
                .unwrap_err(),
            groups
                .get_group(GetGroupRequest {
                    group_id: id.clone(),
                })
                .await
                .unwrap_err(),
            groups
                .list_group_members(ListGroupMembersRequest {
                    group_id: id.clone(),
                    ..Default::default()
                })
                .await
                .unwrap_err(),
            groups
                .add_group_member(GroupMemberRequest {
                    group_id: valid.clone(),
                    user_id: id.clone(),
                    ..Default::default()
                })
                .await
                .unwrap_err(),
        ];
        for status in statuses {
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "id {id:?}: {status:?}"
            );
            assert_eq!(
                violated_fields(&status).len(),
                1,
                "one named field for {id:?}"
            );
        }
    }
    assert_eq!(app.sim_requests().await, Vec::<Value>::new());
}

#[tokio::test]
async fn quotes_backslashes_and_url_syntax_in_values_stay_inside_one_escaped_parameter() {
    let app = spawn_app().await;
    let hostile = "a\" or profile.name pr or \"\\x&limit=1#?/../";
    app.groups
        .clone()
        .list_groups(ListGroupsRequest {
            name_prefix: hostile.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    app.users
        .clone()
        .list_users(ListUsersRequest {
            filter: Some(UserFilter {
                last_name: hostile.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let escaped = serde_json::to_string(hostile).unwrap();
    let requests = app.sim_requests().await;
    assert_eq!(requests.len(), 2, "{requests:?}");

    assert_eq!(requests[0]["path"], "/api/v1/groups");
    let group_params = query_params(&requests[0]);
    let search: Vec<&str> = group_params
        .iter()
        .filter(|(k, _)| k == "search")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(search, vec![format!("profile.name sw {escaped}")]);
    assert!(
        group_params
            .iter()
            .all(|(key, _)| key == "search" || key == "limit"),
        "{group_params:?}"
    );

    assert_eq!(requests[1]["path"], "/api/v1/users");
    let user_params = query_params(&requests[1]);
    let filter: Vec<&str> = user_params
        .iter()
        .filter(|(k, _)| k == "filter")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(filter, vec![format!("profile.lastName eq {escaped}")]);
    assert!(
        user_params
            .iter()
            .all(|(key, _)| key == "filter" || key == "limit"),
        "{user_params:?}"
    );
}

#[tokio::test]
async fn malformed_search_expressions_are_refused_before_okta() {
    let app = spawn_app().await;
    for search in [
        "status eq \"ACTIVE\") or (id pr",
        "status eq \"unterminated",
        "status ~ \"ACTIVE\"",
        "status eq \"A\"; drop",
        "status eq \"A\" &limit=1",
        "((((((((((((((((((((status pr))))))))))))))))))))",
        "and or",
        "status eq \"A\u{7f}\"",
        "eq eq \"A\"",
    ] {
        let users_status = app
            .users
            .clone()
            .list_users(ListUsersRequest {
                search: search.to_owned(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(users_status.code(), Code::InvalidArgument, "{search}");
        assert_eq!(
            violated_fields(&users_status),
            vec!["search".to_owned()],
            "{search}"
        );
        let groups_status = app
            .groups
            .clone()
            .list_groups(ListGroupsRequest {
                search: search.to_owned(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(groups_status.code(), Code::InvalidArgument, "{search}");
    }
    assert_eq!(app.sim_requests().await, Vec::<Value>::new());
}

#[tokio::test]
async fn malformed_and_foreign_page_tokens_are_invalid_argument() {
    let app = spawn_app().await;
    let ids = app
        .seed(json!({
            "users": (0..3).map(|i| json!({"login": format!("u{i}@example.com")})).collect::<Vec<_>>(),
            "groups": [{"name": "A", "members": ["u0@example.com", "u1@example.com", "u2@example.com"]}, {"name": "B"}]
        }))
        .await;
    let group_a = ids["groups"]["A"].as_str().unwrap().to_owned();
    let group_b = ids["groups"]["B"].as_str().unwrap().to_owned();
    let mut groups = app.groups.clone();
    let first = groups
        .list_group_members(ListGroupMembersRequest {
            group_id: group_a,
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    app.clear_sim_requests().await;

    let foreign = groups
        .list_group_members(ListGroupMembersRequest {
            group_id: group_b.clone(),
            page_size: 1,
            page_token: first.next_page_token.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&foreign), vec!["page_token".to_owned()]);

    let mut users = app.users.clone();
    let reused_across_resources = users
        .list_users(ListUsersRequest {
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reused_across_resources.code(), Code::InvalidArgument);

    for token in [
        "not-base64!",
        "djEueHh4LjA",
        "AAAA",
        "%2F..%2F",
        &"x".repeat(4000),
    ] {
        let status = groups
            .list_group_members(ListGroupMembersRequest {
                group_id: group_b.clone(),
                page_size: 1,
                page_token: token.to_owned(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{token}");
    }
    assert_eq!(app.sim_requests().await, Vec::<Value>::new());
}

#[tokio::test]
async fn forged_or_edited_page_tokens_and_resume_cursors_never_reach_okta() {
    let app = spawn_app().await;
    let ids = app
        .seed(json!({
            "users": (0..3).map(|i| json!({"login": format!("u{i}@example.com")})).collect::<Vec<_>>(),
            "groups": [{"name": "A", "members": ["u0@example.com", "u1@example.com", "u2@example.com"]}]
        }))
        .await;
    let group = ids["groups"]["A"].as_str().unwrap().to_owned();
    let list_members = |page_token: &str| ListGroupMembersRequest {
        group_id: group.clone(),
        page_size: 1,
        page_token: page_token.to_owned(),
    };
    let mut groups = app.groups.clone();
    let issued = groups
        .list_group_members(list_members(""))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    // A token rebuilt by the caller: the query's fingerprint (no secret) and any cursor.
    let fingerprint = page_token::query_fingerprint(&["group-members", &group]);
    let forged = |version: &str| {
        URL_SAFE_NO_PAD.encode(format!("{version}.{fingerprint}.-.00u0000000000000000X"))
    };
    let mut edited: Vec<char> = issued.chars().collect();
    let middle = edited.len() / 2;
    edited[middle] = if edited[middle] == 'A' { 'B' } else { 'A' };
    let edited: String = edited.into_iter().collect();
    // Another gateway process on the same org, without a shared `grpc.token_key_file`.
    let replica = common::spawn_gateway_for(common::start_simulator().await, |settings| {
        settings.okta.org_url = Some(app.sim.base_url());
    })
    .await;
    let from_replica = replica
        .groups
        .clone()
        .list_group_members(list_members(""))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    app.clear_sim_requests().await;

    for token in [forged("v1"), forged("v2"), edited, from_replica] {
        let refused = groups
            .list_group_members(list_members(&token))
            .await
            .unwrap_err();
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "{token}: {refused:?}"
        );
        assert_eq!(violated_fields(&refused), vec!["page_token".to_owned()]);
    }
    let watch_fingerprint = page_token::query_fingerprint(&["watch", ""]);
    for version in ["w1", "w2"] {
        let cursor = URL_SAFE_NO_PAD.encode(format!(
            "{version}.{watch_fingerprint}.f0e1d2c3-0000-4000-8000-000000000001.a1732300000123_17"
        ));
        let refused = EventServiceClient::new(channel(&app))
            .watch_events(WatchEventsRequest {
                resume_cursor: cursor,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert_eq!(violated_fields(&refused), vec!["resume_cursor".to_owned()]);
    }
    assert_eq!(app.sim_requests().await, Vec::<Value>::new());

    // The token the gateway issued still reads the next page.
    let next = groups
        .list_group_members(list_members(&issued))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.users.len(), 1);
}

#[tokio::test]
async fn empty_oversized_and_control_character_fields_name_every_bad_field() {
    let app = spawn_app().await;
    let status = app
        .users
        .clone()
        .create_user(CreateUserRequest {
            profile: Some(UserProfile {
                login: "x".repeat(5000),
                email: String::new(),
                first_name: "line\nbreak".to_owned(),
                last_name: "   ".to_owned(),
                ..Default::default()
            }),
            group_ids: vec!["../".to_owned()],
            require_password_change: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "group_ids[0]",
            "profile.email",
            "profile.first_name",
            "profile.last_name",
            "profile.login",
            "require_password_change"
        ]
    );
    let negative = app
        .users
        .clone()
        .list_users(ListUsersRequest {
            page_size: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&negative), vec!["page_size".to_owned()]);
    let both = app
        .users
        .clone()
        .list_users(ListUsersRequest {
            search: "status pr".to_owned(),
            prefix: "a".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(both.code(), Code::InvalidArgument);
    assert_eq!(app.sim_requests().await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused_and_the_server_keeps_serving() {
    let app = spawn_app().await;
    let huge = UserProfile {
        login: "x".repeat(2 * 1024 * 1024),
        ..Default::default()
    };
    let status = app
        .users
        .clone()
        .create_user(CreateUserRequest {
            profile: Some(huge),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(common::reason(&status), "REQUEST_TOO_LARGE");
    assert_eq!(
        common::error_metadata(&status, "max_request_bytes"),
        (1024 * 1024).to_string()
    );
    let still_serving = app
        .users
        .clone()
        .list_users(ListUsersRequest::default())
        .await;
    assert!(still_serving.is_ok());
}

/// A channel to the gateway for the services the harness has no client for.
fn channel(app: &common::TestApp) -> Channel {
    Endpoint::from_shared(format!("http://{}", app.address))
        .unwrap()
        .connect_lazy()
}

fn text_value(text: &str) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::StringValue(text.to_owned())),
    }
}

#[tokio::test]
async fn repeated_fields_over_their_maximum_are_one_violation_each() {
    let app = spawn_app().await;
    let create = app
        .users
        .clone()
        .create_user(CreateUserRequest {
            profile: Some(UserProfile {
                login: "a@example.com".to_owned(),
                email: "a@example.com".to_owned(),
                first_name: "A".to_owned(),
                last_name: "B".to_owned(),
                ..Default::default()
            }),
            group_ids: vec![String::new(); 5000],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&create), vec!["group_ids".to_owned()]);
    let users = app
        .users
        .clone()
        .list_users(ListUsersRequest {
            filter: Some(UserFilter {
                statuses: vec![99; 5000],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&users), vec!["filter.statuses".to_owned()]);
    let devices = DeviceServiceClient::new(channel(&app))
        .list_devices(ListDevicesRequest {
            filter: Some(DeviceFilter {
                statuses: vec![1; 17],
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&devices),
        vec!["filter.statuses".to_owned()]
    );
    let events = EventServiceClient::new(channel(&app))
        .search_events(SearchEventsRequest {
            filter: Some(EventFilter {
                event_types: vec!["user.session.start".to_owned(); 33],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&events),
        vec!["filter.event_types".to_owned()]
    );
    for status in [&create, &users, &devices, &events] {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    assert_eq!(app.sim_requests().await, Vec::<Value>::new());
}

#[tokio::test]
async fn custom_attributes_are_limited_in_count_kind_and_size() {
    let app = spawn_app().await;
    let profile = |fields: Vec<(String, prost_types::Value)>| UserProfile {
        login: "a@example.com".to_owned(),
        email: "a@example.com".to_owned(),
        first_name: "A".to_owned(),
        last_name: "B".to_owned(),
        custom_attributes: Some(Struct {
            fields: fields.into_iter().collect(),
        }),
        ..Default::default()
    };
    let too_many = (0..101)
        .map(|index| (format!("attribute{index}"), text_value("x")))
        .collect();
    let object = prost_types::Value {
        kind: Some(Kind::StructValue(Struct::default())),
    };
    let long_array = prost_types::Value {
        kind: Some(Kind::ListValue(ListValue {
            values: vec![text_value("x"); 101],
        })),
    };
    for (fields, expected) in [
        (too_many, vec!["profile.custom_attributes"]),
        (
            vec![
                ("badge".to_owned(), object),
                ("nickNames".to_owned(), long_array),
                ("note".to_owned(), text_value(&"x".repeat(1025))),
                ("x".repeat(5000), text_value("x")),
            ],
            vec![
                "profile.custom_attributes",
                "profile.custom_attributes.badge",
                "profile.custom_attributes.nickNames",
                "profile.custom_attributes.note",
            ],
        ),
    ] {
        let status = app
            .users
            .clone()
            .create_user(CreateUserRequest {
                profile: Some(profile(fields)),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let mut fields = violated_fields(&status);
        fields.sort();
        assert_eq!(fields, expected);
        assert!(status.message().len() < 2048, "{}", status.message());
    }
    assert_eq!(app.sim_requests().await, Vec::<Value>::new());
}

#[tokio::test]
async fn thousands_of_bad_values_still_get_a_small_readable_invalid_argument() {
    let app = spawn_app().await;
    // Each unknown path is a violation quoting it: listed in full they would overflow the
    // 16 KiB of trailers a tonic client accepts.
    let paths = (0..120)
        .map(|index| format!("profile.unknown{index}.{}", "x".repeat(1000)))
        .collect();
    let status = app
        .users
        .clone()
        .update_user(UpdateUserRequest {
            user: Some(User {
                id: "00uAAAAAAAAAAAAAAAAA".to_owned(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask { paths }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let violations = status.get_details_bad_request().unwrap().field_violations;
    assert_eq!(violations.len(), 11);
    assert_eq!(violations[10].field, "request");
    assert_eq!(violations[10].description, "110 more problems not listed");
    assert!(violations[0].description.len() < 200, "{violations:?}");
    assert_eq!(app.sim_requests().await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_leap_second_timestamp_is_not_a_valid_instant() {
    let app = spawn_app().await;
    let status = app
        .users
        .clone()
        .list_users(ListUsersRequest {
            filter: Some(UserFilter {
                last_updated_after: Some(Timestamp {
                    seconds: 1_483_228_799,
                    nanos: 1_500_000_000,
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        vec!["filter.last_updated_after".to_owned()]
    );
    assert_eq!(app.sim_requests().await, Vec::<Value>::new());
}
