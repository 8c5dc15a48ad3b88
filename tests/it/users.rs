//! UserService end to end: gateway and simulator over real sockets.

use crate::common;

use common::{error_metadata, reason, spawn_app, violated_fields};
use identity_gateway::proto::{
    ActivateUserRequest, CreateUserRequest, DeactivateUserRequest, DeleteUserRequest,
    ExpirePasswordRequest, GetUserRequest, ListUserGroupsRequest, ListUsersRequest,
    ReactivateUserRequest, ResetPasswordRequest, UpdateUserRequest, User, UserFilter,
    UserLifecycleRequest, UserProfile, UserStatus, get_user_request,
};
use prost_types::{FieldMask, Struct, Value as ProtoValue, value::Kind};
use serde_json::json;
use tonic::Code;

fn profile(login: &str) -> UserProfile {
    UserProfile {
        login: login.to_owned(),
        email: login.to_owned(),
        first_name: "Ada".to_owned(),
        last_name: "Lovelace".to_owned(),
        ..Default::default()
    }
}

fn status_of(user: &User) -> UserStatus {
    user.status()
}

#[tokio::test]
async fn a_user_goes_through_the_whole_lifecycle_with_the_state_checked_after_each_step() {
    let app = spawn_app().await;
    let mut users = app.users.clone();

    // Create, staged.
    let created = users
        .create_user(CreateUserRequest {
            profile: Some(profile("ada@example.com")),
            password: "Correct-Horse-42".to_owned(),
            activate: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status_of(&created), UserStatus::Staged);
    assert_eq!(created.id.len(), 20);
    assert_eq!(created.profile.as_ref().unwrap().login, "ada@example.com");

    // Activate without email: the link comes back.
    let activated = users
        .activate_user(ActivateUserRequest {
            user_id: created.id.clone(),
            send_email: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status_of(activated.user.as_ref().unwrap()),
        UserStatus::Active
    );
    assert!(!activated.activation_token.is_empty());
    assert!(
        activated
            .activation_url
            .contains(&activated.activation_token)
    );

    let lifecycle = |user_id: &str| UserLifecycleRequest {
        user_id: user_id.to_owned(),
        ..Default::default()
    };
    let suspended = users
        .suspend_user(lifecycle(&created.id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status_of(&suspended), UserStatus::Suspended);
    let unsuspended = users
        .unsuspend_user(lifecycle(&created.id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status_of(&unsuspended), UserStatus::Active);

    // Delete is refused while the user is not deprovisioned, and nothing is deleted.
    let refused = users
        .delete_user(DeleteUserRequest {
            user_id: created.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("DeactivateUser"),
        "{}",
        refused.message()
    );
    let still_there = users
        .get_user(GetUserRequest {
            user: Some(get_user_request::User::Id(created.id.clone())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status_of(&still_there), UserStatus::Active);

    let deactivated = users
        .deactivate_user(DeactivateUserRequest {
            user_id: created.id.clone(),
            send_email: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status_of(&deactivated), UserStatus::Deprovisioned);
    users
        .delete_user(DeleteUserRequest {
            user_id: created.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let gone = users
        .get_user(GetUserRequest {
            user: Some(get_user_request::User::Id(created.id.clone())),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert_eq!(error_metadata(&gone, "okta_error_code"), "E0000007");
    assert!(!error_metadata(&gone, "okta_request_id").is_empty());
}

#[tokio::test]
async fn delete_with_deactivate_first_removes_an_active_user_in_one_call() {
    let app = spawn_app().await;
    let user_id = app.seed_user("grace@example.com").await;
    let mut users = app.users.clone();
    users
        .delete_user(DeleteUserRequest {
            user_id: user_id.clone(),
            deactivate_first: true,
            send_email: false,
            ..Default::default()
        })
        .await
        .unwrap();
    let gone = users
        .get_user(GetUserRequest {
            user: Some(get_user_request::User::Id(user_id)),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test]
async fn wrong_state_transitions_are_failed_precondition_with_okta_codes() {
    let app = spawn_app().await;
    let user_id = app.seed_user("linus@example.com").await;
    let mut users = app.users.clone();
    let request = || UserLifecycleRequest {
        user_id: user_id.clone(),
        ..Default::default()
    };

    let unlock = users.unlock_user(request()).await.unwrap_err();
    assert_eq!(unlock.code(), Code::FailedPrecondition);
    assert_eq!(error_metadata(&unlock, "okta_error_code"), "E0000032");

    let unsuspend = users.unsuspend_user(request()).await.unwrap_err();
    assert_eq!(unsuspend.code(), Code::FailedPrecondition);
    assert_eq!(error_metadata(&unsuspend, "okta_error_code"), "E0000001");

    let activate = users
        .activate_user(ActivateUserRequest {
            user_id: user_id.clone(),
            send_email: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(activate.code(), Code::FailedPrecondition);
    assert_eq!(error_metadata(&activate, "okta_error_code"), "E0000016");
    assert_eq!(reason(&activate), "OKTA_WRONG_STATUS");
}

#[tokio::test]
async fn a_locked_out_user_is_unlocked() {
    let app = spawn_app().await;
    let user_id = app.seed_user("locked@example.com").await;
    app.force_status(&user_id, "LOCKED_OUT").await;
    let unlocked = app
        .users
        .clone()
        .unlock_user(UserLifecycleRequest {
            user_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status_of(&unlocked), UserStatus::Active);
}

#[tokio::test]
async fn password_reset_and_expiry_report_the_new_status_and_links() {
    let app = spawn_app().await;
    let user_id = app.seed_user("reset@example.com").await;
    let mut users = app.users.clone();

    let expired = users
        .expire_password(ExpirePasswordRequest {
            user_id: user_id.clone(),
            issue_temporary_password: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status_of(expired.user.as_ref().unwrap()),
        UserStatus::PasswordExpired
    );
    assert!(!expired.temporary_password.is_empty());

    let reset = users
        .reset_password(ResetPasswordRequest {
            user_id: user_id.clone(),
            send_email: false,
            revoke_sessions: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status_of(reset.user.as_ref().unwrap()),
        UserStatus::Recovery
    );
    assert!(
        reset.reset_password_url.contains("reset_password"),
        "{}",
        reset.reset_password_url
    );
}

#[tokio::test]
async fn a_user_activated_without_password_is_provisioned_and_can_be_reactivated() {
    let app = spawn_app().await;
    let mut users = app.users.clone();
    let created = users
        .create_user(CreateUserRequest {
            profile: Some(profile("new@example.com")),
            activate: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status_of(&created), UserStatus::Provisioned);
    let reactivated = users
        .reactivate_user(ReactivateUserRequest {
            user_id: created.id,
            send_email: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status_of(reactivated.user.as_ref().unwrap()),
        UserStatus::Provisioned
    );
    assert!(!reactivated.activation_url.is_empty());
}

#[tokio::test]
async fn create_reports_a_taken_login_and_okta_validation_failures_per_field() {
    let app = spawn_app().await;
    app.seed_user("taken@example.com").await;
    let mut users = app.users.clone();

    let taken = users
        .create_user(CreateUserRequest {
            profile: Some(profile("taken@example.com")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);
    assert_eq!(reason(&taken), "OKTA_LOGIN_TAKEN");

    let mut bad_email = profile("fine@example.com");
    bad_email.email = "not-an-email".to_owned();
    let invalid = users
        .create_user(CreateUserRequest {
            profile: Some(bad_email),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&invalid), vec!["profile.email".to_owned()]);
}

#[tokio::test]
async fn create_with_groups_and_custom_attributes_round_trips_through_okta() {
    let app = spawn_app().await;
    let ids = app.seed(json!({"groups": [{"name": "Engineering"}]})).await;
    let group_id = ids["groups"]["Engineering"].as_str().unwrap().to_owned();
    let mut users = app.users.clone();
    let mut new_profile = profile("custom@example.com");
    new_profile.department = "R&D \"Labs\"".to_owned();
    new_profile.custom_attributes = Some(Struct {
        fields: [(
            "badgeNumber".to_owned(),
            ProtoValue {
                kind: Some(Kind::NumberValue(42.0)),
            },
        )]
        .into(),
    });
    let created = users
        .create_user(CreateUserRequest {
            profile: Some(new_profile),
            password: "Correct-Horse-42".to_owned(),
            activate: true,
            group_ids: vec![group_id.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let stored = created.profile.unwrap();
    assert_eq!(stored.department, "R&D \"Labs\"");
    assert_eq!(
        stored.custom_attributes.unwrap().fields["badgeNumber"].kind,
        Some(Kind::NumberValue(42.0))
    );

    let groups = users
        .list_user_groups(ListUserGroupsRequest {
            user_id: created.id,
        })
        .await
        .unwrap()
        .into_inner()
        .groups;
    let names: Vec<&str> = groups.iter().map(|group| group.name.as_str()).collect();
    assert!(
        names.contains(&"Engineering") && names.contains(&"Everyone"),
        "{names:?}"
    );
}

#[tokio::test]
async fn get_user_by_login_matches_exactly_even_with_special_characters() {
    let app = spawn_app().await;
    let login = "o'neil+\"x\"@example.com";
    let ids = app.seed(json!({"users": [{"login": login, "email": "oneil@example.com"}, {"login": "other@example.com"}]})).await;
    let found = app
        .users
        .clone()
        .get_user(GetUserRequest {
            user: Some(get_user_request::User::Login(login.to_owned())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.id, ids["users"][login].as_str().unwrap());
    // Okta matches logins in any case.
    let found = app
        .users
        .clone()
        .get_user(GetUserRequest {
            user: Some(get_user_request::User::Login(login.to_uppercase())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.id, ids["users"][login].as_str().unwrap());

    let missing = app
        .users
        .clone()
        .get_user(GetUserRequest {
            user: Some(get_user_request::User::Login(
                "nobody@example.com".to_owned(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    // The gateway's own refusal, decided on Okta's empty search: ErrorInfo names that search.
    assert_eq!(reason(&missing), "LOGIN_NOT_FOUND");
    assert!(!error_metadata(&missing, "okta_request_id").is_empty());
}

#[tokio::test]
async fn update_changes_only_the_masked_fields_and_clears_empty_ones() {
    let app = spawn_app().await;
    let ids = app
        .seed(json!({"users": [{"login": "upd@example.com", "profile": {"title": "Engineer", "department": "Ops"}}]}))
        .await;
    let user_id = ids["users"]["upd@example.com"].as_str().unwrap().to_owned();
    let updated = app
        .users
        .clone()
        .update_user(UpdateUserRequest {
            user: Some(User {
                id: user_id,
                profile: Some(UserProfile {
                    first_name: "Renamed".to_owned(),
                    department: "ignored".to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["profile.first_name".to_owned(), "profile.title".to_owned()],
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let stored = updated.profile.unwrap();
    assert_eq!(stored.first_name, "Renamed");
    assert_eq!(stored.title, "");
    assert_eq!(stored.department, "Ops");
    assert_eq!(stored.login, "upd@example.com");
}

#[tokio::test]
async fn list_users_pages_through_every_user_once() {
    let app = spawn_app().await;
    let logins: Vec<String> = (0..7).map(|i| format!("page{i}@example.com")).collect();
    app.seed(
        json!({"users": logins.iter().map(|login| json!({"login": login})).collect::<Vec<_>>()}),
    )
    .await;
    let mut users = app.users.clone();
    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = users
            .list_users(ListUsersRequest {
                page_size: 3,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.users.len() <= 3);
        seen.extend(
            page.users
                .into_iter()
                .map(|user| user.profile.unwrap().login),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    seen.sort();
    assert_eq!(seen, logins);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn search_filter_and_prefix_follow_oktas_rules_for_deprovisioned_users() {
    let app = spawn_app().await;
    app.seed(json!({"users": [
        {"login": "alice@example.com", "firstName": "Alice", "status": "ACTIVE", "profile": {"department": "Eng"}},
        {"login": "albert@example.com", "firstName": "Albert", "status": "DEPROVISIONED", "profile": {"department": "Eng"}},
        {"login": "bob@example.com", "firstName": "Bob", "status": "STAGED", "profile": {"department": "Sales"}}
    ]}))
    .await;
    let mut users = app.users.clone();
    let logins = |response: identity_gateway::proto::ListUsersResponse| {
        let mut logins: Vec<String> = response
            .users
            .into_iter()
            .map(|u| u.profile.unwrap().login)
            .collect();
        logins.sort();
        logins
    };

    let searched = users
        .list_users(ListUsersRequest {
            search: "profile.department eq \"Eng\"".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        logins(searched),
        vec!["albert@example.com", "alice@example.com"]
    );

    let filtered = users
        .list_users(ListUsersRequest {
            filter: Some(UserFilter {
                statuses: vec![UserStatus::Staged as i32, UserStatus::Deprovisioned as i32],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        logins(filtered),
        vec!["albert@example.com", "bob@example.com"]
    );

    let prefixed = users
        .list_users(ListUsersRequest {
            prefix: "Al".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(logins(prefixed), vec!["alice@example.com"]);

    let plain = users
        .list_users(ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(logins(plain), vec!["alice@example.com", "bob@example.com"]);
}

#[tokio::test]
async fn identical_concurrent_reads_share_one_okta_call_and_writes_are_never_read_stale() {
    let app = spawn_app().await;
    let user_id = app.seed_user("popular@example.com").await;
    // A slow upstream holds the first read in flight while the others arrive.
    app.set_latency(1000).await;
    app.clear_sim_requests().await;
    let reads: Vec<_> = (0..50)
        .map(|_| {
            let mut users = app.users.clone();
            let user_id = user_id.clone();
            tokio::spawn(async move {
                users
                    .get_user(GetUserRequest {
                        user: Some(get_user_request::User::Id(user_id)),
                    })
                    .await
                    .map(|response| response.into_inner())
            })
        })
        .collect();
    for read in reads {
        assert_eq!(read.await.unwrap().unwrap().id, user_id);
    }
    let okta_reads = app
        .sim_requests()
        .await
        .into_iter()
        .filter(|r| r["method"] == "GET")
        .count();
    assert_eq!(
        okta_reads, 1,
        "50 identical concurrent GetUser calls made one Okta call"
    );

    // A caller that suspends and then reads sees its own write, even with a read in flight.
    let mut users = app.users.clone();
    let in_flight = {
        let mut users = app.users.clone();
        let user_id = user_id.clone();
        tokio::spawn(async move {
            users
                .get_user(GetUserRequest {
                    user: Some(get_user_request::User::Id(user_id)),
                })
                .await
        })
    };
    let suspended = users
        .suspend_user(UserLifecycleRequest {
            user_id: user_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status_of(&suspended), UserStatus::Suspended);
    let after = users
        .get_user(GetUserRequest {
            user: Some(get_user_request::User::Id(user_id)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status_of(&after), UserStatus::Suspended, "read-your-writes");
    in_flight.await.unwrap().unwrap();
    app.set_latency(0).await;
}
