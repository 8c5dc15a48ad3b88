//! The audit trail with caller identities, read from the gateway's real log output: every
//! mutating RPC (allowed or refused) and every refused read is recorded with who called, and no
//! credential (API key, Okta token) appears in any log line. One test function, because the
//! log subscriber is process-wide.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[allow(dead_code)] // this binary uses part of the harness
#[path = "it/common/mod.rs"]
mod common;

use common::callers::{KEYS, key, keyed, with_api_keys};
use common::{LogBuffer, SIM_TOKEN, spawn_app_with, test_settings};
use identity_gateway::proto::{
    GetUserRequest, GroupMemberRequest, UpdateUserRequest, User, UserLifecycleRequest,
    get_user_request,
};
use identity_gateway::telemetry::init_telemetry;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn each_change_and_each_refusal_is_audited_with_the_caller_and_no_credential_is_logged() {
    let logs = LogBuffer::default();
    let telemetry = init_telemetry(&test_settings(), logs.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|settings| with_api_keys(settings, &dir)).await;
    let bob = app.seed_user("bob@example.com").await;
    let mut users = app.users.clone();
    let lifecycle = || UserLifecycleRequest {
        user_id: bob.clone(),
        ..Default::default()
    };
    let get_bob = |key: &str| {
        keyed(
            GetUserRequest {
                user: Some(get_user_request::User::Id(bob.clone())),
            },
            key,
        )
    };

    users
        .suspend_user(keyed(lifecycle(), key("ops")))
        .await
        .unwrap();
    users
        .unsuspend_user(keyed(lifecycle(), key("reader")))
        .await
        .unwrap_err();
    users.get_user(get_bob(key("groups"))).await.unwrap_err();
    users
        .get_user(get_bob("a-key-nobody-issued-0123456789abcdef"))
        .await
        .unwrap_err();
    // A refusal by the policy names every id of the request, nested ones too.
    let group = "00gAbCdEfGhIjKlMnOp1";
    app.groups
        .clone()
        .add_group_member(keyed(
            GroupMemberRequest {
                group_id: group.to_owned(),
                user_id: bob.clone(),
                ..Default::default()
            },
            key("reader"),
        ))
        .await
        .unwrap_err();
    users
        .update_user(keyed(
            UpdateUserRequest {
                user: Some(User {
                    id: bob.clone(),
                    ..User::default()
                }),
                update_mask: None,
                ..Default::default()
            },
            key("reader"),
        ))
        .await
        .unwrap_err();
    // An allowed read is not audited.
    users.get_user(get_bob(key("reader"))).await.unwrap();
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;

    let text = logs.text();
    let audit: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line["target"] == "audit")
        .collect();
    let record = |caller: &str, method: &str| {
        audit
            .iter()
            .find(|line| line["caller"] == caller && line["method"] == method)
            .unwrap_or_else(|| panic!("no audit record of {caller} {method}: {audit:#?}"))
    };
    let allowed = record("apikey:ops", "identity.v1.UserService/SuspendUser");
    assert_eq!(allowed["outcome"], "OK");
    assert_eq!(allowed["auth"], "api_key");
    assert_eq!(allowed["ids"], format!("user_id={bob}"));
    assert!(!allowed["okta_request_ids"].as_str().unwrap().is_empty());
    let refused_change = record("apikey:reader", "identity.v1.UserService/UnsuspendUser");
    assert_eq!(refused_change["outcome"], "PERMISSION_DENIED");
    assert_eq!(refused_change["okta_request_ids"], "");
    assert_eq!(
        refused_change["ids"],
        format!("user_id={bob}"),
        "a call the policy refuses is recorded with the ids it named"
    );
    let refused_membership = record("apikey:reader", "identity.v1.GroupService/AddGroupMember");
    assert_eq!(
        refused_membership["ids"],
        format!("group_id={group} user_id={bob}")
    );
    let refused_update = record("apikey:reader", "identity.v1.UserService/UpdateUser");
    assert_eq!(refused_update["ids"], format!("user.id={bob}"));
    let refused_read = record("apikey:groups", "identity.v1.UserService/GetUser");
    assert_eq!(refused_read["outcome"], "PERMISSION_DENIED");
    assert_eq!(refused_read["ids"], format!("id={bob}"));
    let unauthenticated = record("unauthenticated", "identity.v1.UserService/GetUser");
    assert_eq!(unauthenticated["outcome"], "UNAUTHENTICATED");
    assert!(
        !audit.iter().any(|line| line["caller"] == "apikey:reader"
            && line["method"] == "identity.v1.UserService/GetUser"),
        "an allowed read is not audited"
    );
    for (_, secret) in KEYS {
        assert!(!text.contains(secret), "an API key reached the logs");
    }
    assert!(
        !text.contains("a-key-nobody-issued"),
        "a presented key reached the logs"
    );
    assert!(!text.contains(SIM_TOKEN), "the Okta token reached the logs");
}
