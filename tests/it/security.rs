//! Caller security over real sockets: who may call (authentication), what they may do
//! (authorization, read-only mode), and that refused calls never reach Okta.

use crate::common;

use common::callers::{BILLING_KEY, POLICY, key, keyed, with_api_keys};
use common::{
    PATIENCE, TestApp, error_metadata, eventually, reason, spawn_app_with, user_service_health,
};
use identity_gateway::methods;
use identity_gateway::proto::event_service_client::EventServiceClient;
use identity_gateway::proto::{
    GetGroupRequest, GetUserRequest, GroupMemberRequest, ListUsersRequest, UserLifecycleRequest,
    UserStatus, WatchEventsRequest, get_user_request,
};
use std::io::Write;

use serde_json::json;
use tonic::{Code, Status};
use tonic_types::StatusExt;

fn get_user(id: &str) -> GetUserRequest {
    GetUserRequest {
        user: Some(get_user_request::User::Id(id.to_owned())),
    }
}

#[tokio::test]
async fn an_api_key_from_the_keys_file_is_accepted_and_anything_else_is_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = spawn_app_with(|settings| with_api_keys(settings, &dir)).await;
    let user_id = app.seed_user("ada@example.com").await;

    let user = app
        .users
        .get_user(keyed(get_user(&user_id), BILLING_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(user.id, user_id);

    app.clear_sim_requests().await;
    let missing = app.users.get_user(get_user(&user_id)).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated, "{missing:?}");
    assert_eq!(reason(&missing), "CALLER_UNAUTHENTICATED");
    let wrong = app
        .users
        .get_user(keyed(
            get_user(&user_id),
            "not-a-key-of-this-gateway-000000000",
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated, "{wrong:?}");
    assert!(!wrong.message().contains("not-a-key"), "{wrong:?}");
    assert!(
        app.sim_requests().await.is_empty(),
        "refused calls never reach Okta"
    );

    // Probes and grpcurl need no credentials.
    assert_eq!(user_service_health(&mut app.health).await, 1, "SERVING");
}

#[tokio::test]
async fn a_key_presented_in_insecure_mode_is_still_checked() {
    let mut app = spawn_app_with(|_| {}).await;
    let user_id = app.seed_user("ada@example.com").await;
    app.users.get_user(get_user(&user_id)).await.unwrap();
    let refused = app
        .users
        .get_user(keyed(get_user(&user_id), BILLING_KEY))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
}

#[tokio::test]
async fn read_only_mode_refuses_every_change_before_okta_and_serves_reads() {
    let mut app = spawn_app_with(|settings| settings.authz.read_only = true).await;
    let user_id = app.seed_user("ada@example.com").await;
    app.clear_sim_requests().await;
    let refused = app
        .users
        .suspend_user(UserLifecycleRequest {
            user_id: user_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(reason(&refused), "GATEWAY_READ_ONLY");
    assert!(app.sim_requests().await.is_empty(), "nothing reached Okta");
    let user = app
        .users
        .get_user(get_user(&user_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(user.status(), UserStatus::Active);
}

#[tokio::test]
async fn read_only_mode_refuses_every_rpc_its_proto_declares_a_change() {
    let app = spawn_app_with(|settings| settings.authz.read_only = true).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.address))
        .unwrap()
        .connect()
        .await
        .unwrap();
    app.clear_sim_requests().await;
    let mut changes = 0;
    for name in methods::names() {
        let path = format!("/{name}");
        let traits = methods::of(&path);
        if traits.server_streaming {
            continue;
        }
        // An empty message: read-only mode decides by the method alone, before decoding.
        let mut client = tonic::client::Grpc::new(channel.clone());
        client.ready().await.unwrap();
        let outcome = client
            .unary(
                tonic::Request::new(()),
                path.parse().unwrap(),
                tonic_prost::ProstCodec::<(), ()>::default(),
            )
            .await;
        let refused_read_only = outcome
            .as_ref()
            .is_err_and(|status| reason(status) == "GATEWAY_READ_ONLY");
        assert_eq!(
            refused_read_only,
            traits.changes_okta(),
            "{name}: {outcome:?}"
        );
        changes += usize::from(traits.changes_okta());
    }
    assert!(changes > 0);
    let writes: Vec<_> = app
        .sim_requests()
        .await
        .into_iter()
        .filter(|request| request["method"] != "GET")
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
}

/// The org of the policy tests: ada in team-x-eng, bob in finance only, cy in no group.
struct Org {
    ada: String,
    bob: String,
    cy: String,
    team_group: String,
    finance_group: String,
}

async fn seed_org(app: &TestApp) -> Org {
    org_from(&app.seed(org_document()).await)
}

fn org_document() -> serde_json::Value {
    json!({
        "users": [{"login": "ada@example.com"}, {"login": "bob@example.com"},
                  {"login": "cy@example.com"}],
        "groups": [{"name": "team-x-eng", "members": ["ada@example.com"]},
                   {"name": "finance", "members": ["bob@example.com"]}],
    })
}

fn org_from(ids: &serde_json::Value) -> Org {
    let id = |kind: &str, name: &str| ids[kind][name].as_str().unwrap().to_owned();
    Org {
        ada: id("users", "ada@example.com"),
        bob: id("users", "bob@example.com"),
        cy: id("users", "cy@example.com"),
        team_group: id("groups", "team-x-eng"),
        finance_group: id("groups", "finance"),
    }
}

/// Calls `rpc` as the caller holding `key`; the outcome's code.
async fn call(app: &TestApp, key: &str, rpc: &str, user: &str, group: &str) -> Result<(), Status> {
    let (mut users, mut groups) = (app.users.clone(), app.groups.clone());
    let lifecycle = || UserLifecycleRequest {
        user_id: user.to_owned(),
        ..Default::default()
    };
    let member = || GroupMemberRequest {
        group_id: group.to_owned(),
        user_id: user.to_owned(),
        ..Default::default()
    };
    match rpc {
        "GetUser" => users.get_user(keyed(get_user(user), key)).await.map(drop),
        "ListUsers" => users
            .list_users(keyed(ListUsersRequest::default(), key))
            .await
            .map(drop),
        "SuspendUser" => users.suspend_user(keyed(lifecycle(), key)).await.map(drop),
        "UnsuspendUser" => users
            .unsuspend_user(keyed(lifecycle(), key))
            .await
            .map(drop),
        "GetGroup" => groups
            .get_group(keyed(
                GetGroupRequest {
                    group_id: group.to_owned(),
                },
                key,
            ))
            .await
            .map(drop),
        "AddGroupMember" => groups
            .add_group_member(keyed(member(), key))
            .await
            .map(drop),
        "RemoveGroupMember" => groups
            .remove_group_member(keyed(member(), key))
            .await
            .map(drop),
        other => panic!("no such rpc in the matrix: {other}"),
    }
}

#[tokio::test]
async fn the_policy_matrix_allows_each_role_its_rpcs_and_nothing_else_reaches_okta() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|settings| with_api_keys(settings, &dir)).await;
    let org = seed_org(&app).await;
    let rpcs = [
        "GetUser",
        "ListUsers",
        "GetGroup",
        "SuspendUser",
        "UnsuspendUser",
        "AddGroupMember",
        "RemoveGroupMember",
    ];
    let allowed: &[(&str, &[&str])] = &[
        ("billing", &rpcs),
        ("reader", &["GetUser", "ListUsers", "GetGroup"]),
        (
            "ops",
            &[
                "GetUser",
                "ListUsers",
                "GetGroup",
                "SuspendUser",
                "UnsuspendUser",
            ],
        ),
        ("groups", &["AddGroupMember", "RemoveGroupMember"]),
        ("nobody", &[]),
    ];
    for (caller, granted) in allowed {
        for rpc in rpcs {
            app.clear_sim_requests().await;
            // bob in finance: no scope is involved for these roles.
            let outcome = call(&app, key(caller), rpc, &org.bob, &org.finance_group).await;
            if granted.contains(&rpc) {
                assert!(outcome.is_ok(), "{caller} may call {rpc}: {outcome:?}");
            } else {
                let status = outcome.unwrap_err();
                assert_eq!(
                    status.code(),
                    Code::PermissionDenied,
                    "{caller} {rpc}: {status:?}"
                );
                assert_eq!(reason(&status), "PERMISSION_MISSING");
                assert_eq!(
                    error_metadata(&status, "permission"),
                    format!("identity.v1.{}/{rpc}", service_of(rpc)),
                    "the refusal names the missing permission"
                );
                assert!(
                    app.sim_requests().await.is_empty(),
                    "{caller} {rpc}: a denied call costs no Okta request"
                );
            }
        }
    }
}

fn service_of(rpc: &str) -> &'static str {
    if rpc.contains("Group") {
        "GroupService"
    } else {
        "UserService"
    }
}

#[tokio::test]
async fn a_group_scoped_role_acts_inside_its_groups_only_and_refusals_cost_no_okta_call() {
    let dir = tempfile::tempdir().unwrap();
    // The org exists before the gateway starts, so the scope index's first load sees it.
    let sim = common::start_simulator().await;
    let org = org_from(&common::seed_simulator(&sim, &org_document()).await);
    let app = common::spawn_gateway_for(sim, |settings| with_api_keys(settings, &dir)).await;
    let team = key("team-x");
    // The scope index loads in the background at start; wait until a call inside it passes.
    eventually(PATIENCE, "the scope index loads", async || {
        match call(&app, team, "GetGroup", &org.ada, &org.team_group).await {
            Ok(()) => true,
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                false
            }
        }
    })
    .await;

    // Inside: ada is a member of team-x-eng.
    call(&app, team, "GetUser", &org.ada, &org.team_group)
        .await
        .unwrap();
    call(&app, team, "SuspendUser", &org.ada, &org.team_group)
        .await
        .unwrap();
    // cy, a new hire in no group, may join the team's group; then cy is in scope.
    call(&app, team, "AddGroupMember", &org.cy, &org.team_group)
        .await
        .unwrap();
    call(&app, team, "SuspendUser", &org.cy, &org.team_group)
        .await
        .unwrap();
    call(&app, team, "RemoveGroupMember", &org.cy, &org.team_group)
        .await
        .unwrap();

    // Outside, each refused before Okta.
    let outside = [
        ("GetGroup", org.ada.clone(), org.finance_group.clone()),
        ("AddGroupMember", org.ada.clone(), org.finance_group.clone()),
        ("UnsuspendUser", org.ada.clone(), org.team_group.clone()),
        ("GetUser", org.bob.clone(), org.team_group.clone()),
        ("SuspendUser", org.bob.clone(), org.team_group.clone()),
        ("ListUsers", org.ada.clone(), org.team_group.clone()),
    ];
    for (rpc, user, group) in outside {
        app.clear_sim_requests().await;
        let status = call(&app, team, rpc, &user, &group).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{rpc}: {status:?}");
        assert!(
            app.sim_requests().await.is_empty(),
            "{rpc}: refused with 0 Okta calls"
        );
    }
    // bob (in finance) may not be brought into the team's group: deciding that reads bob's
    // groups, and writes nothing.
    app.clear_sim_requests().await;
    let status = call(&app, team, "AddGroupMember", &org.bob, &org.team_group)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        app.sim_requests()
            .await
            .iter()
            .all(|request| request["method"] == "GET"),
        "refused with no write"
    );
    let by_login = app
        .users
        .clone()
        .get_user(keyed(
            GetUserRequest {
                user: Some(get_user_request::User::Login("bob@example.com".to_owned())),
            },
            team,
        ))
        .await
        .unwrap_err();
    assert_eq!(by_login.code(), Code::PermissionDenied, "{by_login:?}");
}

/// `policy` with the reader's GetUser taken away (it keeps ListUsers).
fn without_reader_get_user(policy: &str) -> String {
    policy.replace(
        "rpcs: [\"identity.v1.UserService/GetUser\", \"identity.v1.UserService/ListUsers\",",
        "rpcs: [\"identity.v1.UserService/ListUsers\",",
    )
}

/// Waits until the policy in force allows the reader's GetUser (`allowed`) or refuses it.
async fn reader_get_user_becomes(app: &TestApp, org: &Org, allowed: bool, what: &str) {
    eventually(PATIENCE, what, async || {
        match call(app, key("reader"), "GetUser", &org.bob, "").await {
            Ok(()) => allowed,
            Err(status) if status.code() == Code::PermissionDenied => !allowed,
            Err(status) => panic!("{status:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn a_changed_policy_applies_without_restart_and_an_invalid_one_is_refused() {
    let (logs, _guard) = common::capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|settings| with_api_keys(settings, &dir)).await;
    let org = seed_org(&app).await;
    let policy = dir.path().join("policy.yaml");
    let reader = key("reader");
    call(&app, reader, "GetUser", &org.bob, "").await.unwrap();

    // A valid change takes the reader's GetUser away, without a restart.
    std::fs::write(&policy, without_reader_get_user(POLICY)).unwrap();
    reader_get_user_becomes(&app, &org, false, "the changed policy applies").await;

    // An invalid policy (a typo in an RPC name) that would give it back is refused once read:
    // the changed policy stays in force.
    std::fs::write(
        &policy,
        POLICY.replace("UserService/UnsuspendUser\"", "UserService/UnsuspendUsr\""),
    )
    .unwrap();
    logs.wait_for("`identity.v1.UserService/UnsuspendUsr` names no RPC")
        .await;
    let refused = call(&app, reader, "GetUser", &org.bob, "")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    call(&app, reader, "ListUsers", "", "").await.unwrap();

    // The corrected file applies: the reader has GetUser again.
    std::fs::write(&policy, POLICY).unwrap();
    reader_get_user_becomes(&app, &org, true, "the corrected policy applies").await;
}

/// Why the gateway refuses to start with `settings` (`{:#}` of the error).
async fn start_refusal(settings: &identity_gateway::config::Settings) -> String {
    let sim = common::start_simulator().await;
    let okta = okta_client::OktaClient::new(identity_gateway::okta::client_settings(
        &settings.okta,
        identity_gateway::okta::OktaTarget {
            org_url: sim.base_url().parse().unwrap(),
            api_token: common::SIM_TOKEN.to_owned().into(),
            oauth: None,
        },
        None,
    ))
    .unwrap();
    let error = identity_gateway::startup::Application::build(settings, okta, None, async {})
        .await
        .err()
        .expect("the gateway refuses to start");
    format!("{error:#}")
}

#[tokio::test]
async fn a_policy_file_read_empty_or_half_written_never_applies() {
    let (logs, _guard) = common::capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|settings| {
        with_api_keys(settings, &dir);
        settings.authz.reload_interval_ms = 20;
    })
    .await;
    let org = seed_org(&app).await;
    let policy = dir.path().join("policy.yaml");
    let (team, reader) = (key("team-x"), key("reader"));
    let outside_scope = call(&app, team, "GetUser", &org.bob, "").await.unwrap_err();
    assert_eq!(outside_scope.code(), Code::PermissionDenied);

    // A valid change applies first (the reader loses GetUser): the reloader is at work.
    std::fs::write(&policy, without_reader_get_user(POLICY)).unwrap();
    reader_get_user_becomes(&app, &org, false, "the changed policy applies").await;

    // An empty file would deny everyone: it is refused once read, and the changed policy stays
    // (the reader still lists users, and still may not get one).
    std::fs::write(&policy, "").unwrap();
    logs.wait_for("gives no caller a role").await;
    call(&app, reader, "ListUsers", "", "").await.unwrap();
    let refused = call(&app, reader, "GetUser", &org.bob, "")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // A writer that puts the callers first pauses just before the scoped role's `groups` line:
    // the half written so far is a valid policy that makes team-x org-wide (and gives the
    // reader GetUser back).
    let (roles, callers) = POLICY.split_at(POLICY.find("callers:").unwrap());
    let rewritten = format!("{callers}{roles}");
    let (head, tail) = rewritten.split_at(rewritten.find("    groups: [\"team-x-*\"]").unwrap());
    let mut writer = std::fs::File::create(&policy).unwrap();
    writer.write_all(head.as_bytes()).unwrap();
    writer.flush().unwrap();
    // The pause is the scenario: many reload intervals, well within the settle time. The
    // scoped caller stays scoped meanwhile.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let during_pause = call(&app, team, "GetUser", &org.bob, "").await.unwrap_err();
    assert_eq!(
        during_pause.code(),
        Code::PermissionDenied,
        "{during_pause:?}"
    );
    writer.write_all(tail.as_bytes()).unwrap();
    drop(writer);
    // The gateway did read the half file during the pause: reading it again after the settle
    // time, it found the file changed.
    logs.wait_for("still being written").await;

    // The finished file applies (the reader has GetUser again), with team-x still scoped.
    reader_get_user_becomes(&app, &org, true, "the finished policy applies").await;
    let after = call(&app, team, "GetUser", &org.bob, "").await.unwrap_err();
    assert_eq!(after.code(), Code::PermissionDenied, "{after:?}");
    assert!(after.message().contains("team-x-*"), "{after:?}");
}

#[tokio::test]
async fn a_gateway_with_an_invalid_policy_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::test_settings();
    with_api_keys(&mut settings, &dir);
    std::fs::write(
        settings.authz.policy_file.as_ref().unwrap(),
        "roles:\n  r:\n    rpcs: [\"identity.v1.UserService/Nope\"]\n",
    )
    .unwrap();
    let message = start_refusal(&settings).await;
    assert!(message.contains("authz.policy_file"), "{message}");
    assert!(message.contains("names no RPC"), "{message}");
}

#[tokio::test]
async fn a_keys_file_listing_one_key_under_two_names_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::test_settings();
    with_api_keys(&mut settings, &dir);
    let digest = identity_gateway::auth::hash_api_key(BILLING_KEY);
    std::fs::write(
        settings.auth.api_keys_file.as_ref().unwrap(),
        format!("- name: billing\n  sha256: {digest}\n- name: admin\n  sha256: {digest}\n"),
    )
    .unwrap();
    let message = start_refusal(&settings).await;
    assert!(message.contains("auth.api_keys_file"), "{message}");
    assert!(
        message.contains("`admin`") && message.contains("`billing`"),
        "{message}"
    );
}

#[tokio::test]
async fn more_than_one_api_key_header_is_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|settings| with_api_keys(settings, &dir)).await;
    let user_id = app.seed_user("ada@example.com").await;
    app.clear_sim_requests().await;
    for second in ["not-a-key-of-this-gateway-000000000", BILLING_KEY] {
        let mut request = keyed(get_user(&user_id), BILLING_KEY);
        request
            .metadata_mut()
            .append("x-api-key", second.parse().unwrap());
        let refused = app.users.clone().get_user(request).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
        assert!(refused.message().contains("x-api-key"), "{refused:?}");
        assert!(!refused.message().contains(BILLING_KEY), "{refused:?}");
    }
    assert!(
        app.sim_requests().await.is_empty(),
        "refused calls never reach Okta"
    );
}

#[tokio::test]
async fn a_flooding_caller_is_throttled_while_another_caller_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|settings| {
        with_api_keys(settings, &dir);
        settings.fairness.max_in_flight_per_caller = 4;
    })
    .await;
    let org = seed_org(&app).await;
    app.set_latency(200).await;
    let flood: Vec<_> = (0..24)
        .map(|_| call(&app, key("billing"), "GetUser", &org.bob, ""))
        .collect();
    let quiet = async {
        let mut outcomes = Vec::new();
        for _ in 0..3 {
            outcomes.push(call(&app, key("reader"), "GetUser", &org.ada, "").await);
        }
        outcomes
    };
    let (flood, quiet) = tokio::join!(futures::future::join_all(flood), quiet);
    let refused: Vec<&Status> = flood
        .iter()
        .filter_map(|outcome| outcome.as_ref().err())
        .collect();
    assert!(
        refused.len() >= 24 - 4 * 2,
        "the flood is throttled to its share: {} of 24 refused",
        refused.len()
    );
    for status in &refused {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert_eq!(reason(status), "CALLER_OVER_SHARE");
        assert!(
            status.get_details_retry_info().is_some(),
            "RetryInfo tells when"
        );
    }
    for outcome in quiet {
        outcome.expect("the other caller is served throughout");
    }
}

#[tokio::test]
async fn a_caller_over_its_share_of_an_okta_bucket_is_refused_while_others_spend_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|settings| {
        with_api_keys(settings, &dir);
        settings.fairness.okta_budget_percent_per_caller = 30;
    })
    .await;
    let org = seed_org(&app).await;
    let response = app
        .http
        .put(format!("{}/__sim/rate-limits", app.sim.base_url()))
        .json(&json!({"buckets": [{"name": "user-reads", "method": "GET",
            "path_prefix": "/api/v1/users/", "limit": 10}], "window_ms": 60000}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let mut served = 0;
    let refusal = loop {
        match call(&app, key("billing"), "GetUser", &org.bob, "").await {
            Ok(()) => served += 1,
            Err(status) => break status,
        }
        assert!(served < 10, "the flooding caller was never limited");
    };
    assert_eq!(refusal.code(), Code::ResourceExhausted, "{refusal:?}");
    assert_eq!(reason(&refusal), "CALLER_SHARE_SPENT");
    assert!(refusal.get_details_retry_info().is_some());
    call(&app, key("ops"), "GetUser", &org.ada, "")
        .await
        .expect("another caller still has its share");
    let rate_limited = app
        .sim_requests()
        .await
        .iter()
        .filter(|request| request["status"] == 429)
        .count();
    assert_eq!(rate_limited, 0, "Okta never answered 429");
}

#[tokio::test]
async fn a_caller_may_hold_only_its_share_of_open_streams() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|settings| {
        with_api_keys(settings, &dir);
        settings.fairness.max_streams_per_caller = 2;
    })
    .await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.address))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let events = EventServiceClient::new(channel);
    let watch = |key: &'static str| {
        let mut events = events.clone();
        async move {
            events
                .watch_events(keyed(WatchEventsRequest::default(), key))
                .await
        }
    };
    let first = watch(BILLING_KEY).await.unwrap();
    let second = watch(BILLING_KEY).await.unwrap();
    let refused = watch(BILLING_KEY).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(reason(&refused), "CALLER_OVER_SHARE");
    assert!(refused.get_details_retry_info().is_some());
    let _other = watch(key("siem"))
        .await
        .expect("another caller has its own share");

    // A closed stream gives its slot back.
    drop(first);
    let _third = eventually(
        PATIENCE,
        "the closed stream's slot comes back",
        async || match watch(BILLING_KEY).await {
            Ok(stream) => Some(stream),
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                None
            }
        },
    )
    .await;
    drop(second);
}

#[tokio::test]
async fn health_and_reflection_need_credentials_when_protected() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = spawn_app_with(|settings| {
        with_api_keys(settings, &dir);
        settings.auth.protect_health_and_reflection = true;
    })
    .await;
    let check = || tonic_health::pb::HealthCheckRequest {
        service: "identity.v1.UserService".to_owned(),
    };
    let refused = app.health.check(check()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let health = app
        .health
        .check(keyed(check(), BILLING_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, 1, "SERVING with credentials");
}

#[tokio::test]
async fn a_change_cut_short_by_the_deadline_is_still_audited() {
    let (logs, _capture) = common::capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|settings| {
        with_api_keys(settings, &dir);
        settings.grpc.request_timeout_ms = 500;
    })
    .await;
    let user_id = app.seed_user("ada@example.com").await;
    app.inject_fault(
        json!({"method": "POST", "path_prefix": "/api/v1/users/", "status": 200, "delay_ms": 5000}),
    )
    .await;
    let request = keyed(
        UserLifecycleRequest {
            user_id: user_id.clone(),
            ..Default::default()
        },
        key("ops"),
    );
    let status = app.users.clone().suspend_user(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    let records = logs.audit_records();
    let record = records
        .iter()
        .find(|record| record["method"] == "identity.v1.UserService/SuspendUser")
        .unwrap_or_else(|| panic!("the change is audited: {records:#?}"));
    assert_eq!(record["caller"], "apikey:ops");
    assert_eq!(record["outcome"], "DEADLINE_EXCEEDED");
    assert_eq!(record["ids"], format!("user_id={user_id}"));
}
