//! Every request the gateway sends must be valid against Okta's OpenAPI spec. Prism runs as a
//! validating proxy between the gateway and the simulator while every RPC is exercised; any
//! request violation it reports fails the test, and so does any simulator answer outside the spec
//! except where recorded real traffic shows Okta itself departs from it.

use crate::common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use identity_gateway::proto::device_service_client::DeviceServiceClient;
use identity_gateway::proto::{
    ActivateUserRequest, CreateUserRequest, DeactivateUserRequest, DeleteUserRequest, EventFilter,
    EventOutcome, EventSeverity, ExpirePasswordRequest, GetGroupRequest, GetUserRequest,
    GroupMemberRequest, ListGroupMembersRequest, ListGroupsRequest, ListLogonEventsRequest,
    ListUserGroupsRequest, ListUsersRequest, ReactivateUserRequest, ResetPasswordRequest,
    SearchEventsRequest, SortOrder, StreamGroupMembersRequest, UpdateUserRequest, User, UserFilter,
    UserLifecycleRequest, UserProfile, UserStatus, WatchEventsRequest, get_user_request,
};
use identity_gateway::proto::{
    DeleteDeviceRequest, DeviceFilter, DeviceLifecycleRequest, DeviceStatus, GetDeviceRequest,
    ListDeviceUsersRequest, ListDevicesRequest, ListUserDevicesRequest,
};
use prost_types::{FieldMask, Struct, Value as ProtoValue, value::Kind};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_stream::StreamExt;

/// Where Okta's schema and Okta's real answers disagree, the simulator follows the real answers:
/// - real groups without a description carry `"description": null` (TestGroupsResource
///   recordings), which the schema types as a plain string (Prism also reports the `anyOf`);
/// - System Log events carry `null` in exactly these places in the spec's own `ListLogs`
///   example, which its `LogEvent` schema types as strings or objects;
/// - real devices carry `"resourceAlternateId": null` and `_links.self.hints.allow` of
///   `["GET","PATCH","PUT"]` (TestDeviceResource recordings), which the schema types as a string
///   and as a list without PATCH.
const RECORDED_TRAFFIC_WINS: &[&str] = &[
    "resourceAlternateId must be string",
    "_links.self.hints.allow.",
    "profile.description must be string",
    "profile must match a schema in anyOf",
    "detailEntry must be object",
    "authenticationContext.authenticationProvider must",
    "authenticationContext.credentialProvider must",
    "authenticationContext.credentialType must",
    "authenticationContext.issuer must be object",
    "authenticationContext.interface must be string",
    "client.id must be string",
    "client.zone must be string",
    "outcome.reason must be string",
    ".source must be string",
    "transaction.detail must be object",
    "securityContext.domain must be string",
];

/// Prism from `$PRISM_BIN`, else where `.ci/run` installs it; required in CI.
fn find_prism() -> Option<PathBuf> {
    let candidate = std::env::var_os("PRISM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/prism/node_modules/.bin/prism")
        });
    if candidate.is_file() {
        return Some(candidate);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "Prism is required in CI: see .ci/run"
    );
    eprintln!("Prism not installed: skipping (see .ci/run for the install command)");
    None
}

/// The path of the request [`Prism::stop`] sends last (a user that does not exist).
const LAST_REQUEST_PATH: &str = "/api/v1/users/00uPRISMLASTREQUEST0";

/// A running `prism proxy` and every line it has printed.
struct Prism {
    child: Child,
    url: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Prism {
    async fn start(binary: &PathBuf, upstream: &str) -> Self {
        let spec = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/okta/gateway-subset.yaml");
        let mut child = Command::new(binary)
            .args(["proxy", "-h", "127.0.0.1", "-p", "0"])
            .arg(spec)
            .arg(upstream)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("prism starts");
        let mut reader = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = reader
                .next_line()
                .await
                .unwrap()
                .expect("prism printed its address");
            if let Some(rest) = line.split("Prism is listening on ").nth(1) {
                break rest.trim().to_owned();
            }
        };
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                collected.lock().unwrap().push(line);
            }
        });
        Self { child, url, lines }
    }

    /// Stops Prism once it has printed everything about the requests sent through it, and
    /// returns what it printed. Prism prints through a log pipeline of its own, so its lines
    /// about a request may follow its answer; one more request of the test's own, sent last,
    /// is printed after all of them.
    async fn stop(mut self) -> Vec<String> {
        reqwest::Client::new()
            .get(format!("{}{LAST_REQUEST_PATH}", self.url))
            .header("Authorization", format!("SSWS {}", common::SIM_TOKEN))
            .send()
            .await
            .unwrap();
        common::eventually(
            common::PATIENCE,
            "Prism prints the last request",
            async || {
                let lines = self.lines.lock().unwrap();
                lines.iter().any(|line| line.contains(LAST_REQUEST_PATH))
            },
        )
        .await;
        let _ = self.child.kill().await;
        self.lines.lock().unwrap().clone()
    }
}

fn chrono_now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn profile(login: &str) -> UserProfile {
    UserProfile {
        login: login.to_owned(),
        email: login.to_owned(),
        first_name: "Spec".to_owned(),
        last_name: "Check".to_owned(),
        ..Default::default()
    }
}

fn by_id(user: &User) -> UserLifecycleRequest {
    UserLifecycleRequest {
        user_id: user.id.clone(),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_request_the_gateway_sends_is_valid_against_oktas_spec() {
    let Some(prism_binary) = find_prism() else {
        return;
    };
    let (logs, _guard) = common::capture_logs();
    let sim = common::start_simulator().await;
    let prism = Prism::start(&prism_binary, &sim.base_url()).await;
    let proxy_url = prism.url.clone();
    let app =
        common::spawn_gateway_for(sim, |settings| settings.okta.org_url = Some(proxy_url)).await;
    let ids = app
        .seed(json!({
            "users": (0..5).map(|i| json!({"login": format!("member{i}@example.com")})).collect::<Vec<_>>(),
            "groups": [{"name": "Spec Team", "members": (0..5).map(|i| format!("member{i}@example.com")).collect::<Vec<_>>()}]
        }))
        .await;
    let group_id = ids["groups"]["Spec Team"].as_str().unwrap().to_owned();
    let mut users = app.users.clone();
    let mut groups = app.groups.clone();

    // Users: create (staged, and active with a forced password change), read, list, update.
    let staged = users
        .create_user(CreateUserRequest {
            profile: Some(UserProfile {
                custom_attributes: Some(Struct {
                    fields: [(
                        "badge".to_owned(),
                        ProtoValue {
                            kind: Some(Kind::StringValue("B-7".into())),
                        },
                    )]
                    .into(),
                }),
                ..profile("spec@example.com")
            }),
            password: "Correct-Horse-42".to_owned(),
            group_ids: vec![group_id.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    users
        .create_user(CreateUserRequest {
            profile: Some(profile("expired@example.com")),
            password: "Correct-Horse-42".to_owned(),
            activate: true,
            require_password_change: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let provisioned = users
        .create_user(CreateUserRequest {
            profile: Some(profile("prov@example.com")),
            activate: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    users
        .get_user(GetUserRequest {
            user: Some(get_user_request::User::Id(staged.id.clone())),
        })
        .await
        .unwrap();
    users
        .get_user(GetUserRequest {
            user: Some(get_user_request::User::Login("spec@example.com".into())),
        })
        .await
        .unwrap();
    let first_page = users
        .list_users(ListUsersRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    users
        .list_users(ListUsersRequest {
            page_size: 2,
            page_token: first_page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap();
    users
        .list_users(ListUsersRequest {
            search: "profile.lastName sw \"Che\" and status eq \"STAGED\"".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    users
        .list_users(ListUsersRequest {
            filter: Some(UserFilter {
                statuses: vec![UserStatus::Active as i32, UserStatus::Staged as i32],
                last_name: "Check".into(),
                last_updated_after: Some(prost_types::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    users
        .list_users(ListUsersRequest {
            prefix: "spe".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    users
        .update_user(UpdateUserRequest {
            user: Some(User {
                id: staged.id.clone(),
                profile: Some(UserProfile {
                    title: "Auditor".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec![
                    "profile.title".into(),
                    "profile.custom_attributes.badge".into(),
                ],
            }),
            ..Default::default()
        })
        .await
        .unwrap();

    // Every lifecycle transition, including refused ones.
    users
        .activate_user(ActivateUserRequest {
            user_id: staged.id.clone(),
            send_email: false,
            ..Default::default()
        })
        .await
        .unwrap();
    users
        .reactivate_user(ReactivateUserRequest {
            user_id: provisioned.id.clone(),
            send_email: false,
            ..Default::default()
        })
        .await
        .unwrap();
    users.suspend_user(by_id(&staged)).await.unwrap();
    users.unsuspend_user(by_id(&staged)).await.unwrap();
    users.unlock_user(by_id(&staged)).await.unwrap_err();
    users
        .expire_password(ExpirePasswordRequest {
            user_id: staged.id.clone(),
            issue_temporary_password: false,
            ..Default::default()
        })
        .await
        .unwrap();
    users
        .expire_password(ExpirePasswordRequest {
            user_id: staged.id.clone(),
            issue_temporary_password: true,
            ..Default::default()
        })
        .await
        .unwrap();
    users
        .reset_password(ResetPasswordRequest {
            user_id: staged.id.clone(),
            send_email: false,
            revoke_sessions: true,
            ..Default::default()
        })
        .await
        .unwrap();
    users
        .list_user_groups(ListUserGroupsRequest {
            user_id: staged.id.clone(),
        })
        .await
        .unwrap();

    // Groups and memberships.
    groups
        .get_group(GetGroupRequest {
            group_id: group_id.clone(),
        })
        .await
        .unwrap();
    let group_page = groups
        .list_groups(ListGroupsRequest {
            name_prefix: "Spec".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    groups
        .list_groups(ListGroupsRequest {
            name_prefix: "Spec".into(),
            page_size: 1,
            page_token: group_page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap();
    groups
        .list_groups(ListGroupsRequest {
            search: "type eq \"OKTA_GROUP\"".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let member_page = groups
        .list_group_members(ListGroupMembersRequest {
            group_id: group_id.clone(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    groups
        .list_group_members(ListGroupMembersRequest {
            group_id: group_id.clone(),
            page_size: 2,
            page_token: member_page.next_page_token,
        })
        .await
        .unwrap();
    let streamed: Vec<_> = groups
        .stream_group_members(StreamGroupMembersRequest {
            group_id: group_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    assert_eq!(streamed.len(), 6);
    let membership = GroupMemberRequest {
        group_id: group_id.clone(),
        user_id: provisioned.id.clone(),
        ..Default::default()
    };
    groups.add_group_member(membership.clone()).await.unwrap();
    groups.remove_group_member(membership).await.unwrap();

    // System Log: bounded queries of every shape, and a watch's polling queries.
    let mut events = identity_gateway::proto::event_service_client::EventServiceClient::connect(
        format!("http://{}", app.address),
    )
    .await
    .unwrap();
    app.inject_events(vec![json!({"eventType": "user.session.start", "login": "spec@example.com", "ip": "203.0.113.7", "outcome": "FAILURE"})]).await;
    use identity_gateway::proto::list_logon_events_request::Subject;
    for subject in [
        Subject::UserId(staged.id.clone()),
        Subject::UserLogin("spec@example.com".into()),
        Subject::IpAddress("203.0.113.7".into()),
    ] {
        let page = events
            .list_logon_events(ListLogonEventsRequest {
                subject: Some(subject.clone()),
                outcome: EventOutcome::Failure as i32,
                page_size: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if !page.next_page_token.is_empty() {
            events
                .list_logon_events(ListLogonEventsRequest {
                    subject: Some(subject),
                    outcome: EventOutcome::Failure as i32,
                    page_size: 1,
                    page_token: page.next_page_token,
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    }
    events
        .search_events(SearchEventsRequest {
            filter: Some(EventFilter {
                event_types: vec!["user.lifecycle.suspend".into(), "user.session.start".into()],
                severity: EventSeverity::Info as i32,
                ..Default::default()
            }),
            okta_filter: "client.ipAddress sw \"203.\"".into(),
            keywords: "login okta".into(),
            since: Some(prost_types::Timestamp {
                seconds: chrono_now_seconds() - 3600,
                nanos: 0,
            }),
            sort_order: SortOrder::Descending as i32,
            page_size: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut watch = events
        .watch_events(WatchEventsRequest {
            since: Some(prost_types::Timestamp {
                seconds: chrono_now_seconds() - 60,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(message) = watch.message().await.unwrap() {
        if matches!(
            message.message,
            Some(identity_gateway::proto::watch_events_response::Message::KeepAlive(_))
        ) {
            break;
        }
    }
    drop(watch);
    // The watch's poller has stopped: none of its polls comes after the test's last request.
    logs.wait_for("system log poller stopped").await;

    // Devices: list (plain, paged, searched), get, the whole lifecycle, refusals, delete, links.
    let device_ids = app
        .seed(json!({"devices": [
            {"displayName": "SPEC-MAC", "platform": "MACOS", "serialNumber": "SPEC0001",
             "users": ["member0@example.com", "member1@example.com"], "managementStatus": "MANAGED",
             "screenLockType": "BIOMETRIC", "secureHardwarePresent": true},
            {"displayName": "SPEC-PHONE", "platform": "IOS", "serialNumber": "SPEC0002",
             "status": "SUSPENDED", "users": ["member0@example.com"]},
            {"displayName": "SPEC-OLD", "platform": "WINDOWS", "serialNumber": "SPEC0003",
             "status": "DEACTIVATED"}
        ]}))
        .await;
    let device_id = |name: &str| device_ids["devices"][name].as_str().unwrap().to_owned();
    let mut devices = DeviceServiceClient::new(
        tonic::transport::Endpoint::from_shared(format!("http://{}", app.address))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let first_devices = devices
        .list_devices(ListDevicesRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    devices
        .list_devices(ListDevicesRequest {
            page_size: 2,
            page_token: first_devices.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap();
    devices
        .list_devices(ListDevicesRequest {
            search: r#"status eq "ACTIVE" and profile.displayName co "spec""#.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    devices
        .list_devices(ListDevicesRequest {
            filter: Some(DeviceFilter {
                statuses: vec![DeviceStatus::Suspended as i32],
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let mac = DeviceLifecycleRequest {
        device_id: device_id("SPEC-MAC"),
        ..Default::default()
    };
    devices
        .get_device(GetDeviceRequest {
            device_id: mac.device_id.clone(),
        })
        .await
        .unwrap();
    devices
        .list_device_users(ListDeviceUsersRequest {
            device_id: mac.device_id.clone(),
        })
        .await
        .unwrap();
    devices
        .list_user_devices(ListUserDevicesRequest {
            user_id: ids["users"]["member0@example.com"]
                .as_str()
                .unwrap()
                .to_owned(),
        })
        .await
        .unwrap();
    devices.suspend_device(mac.clone()).await.unwrap();
    devices.unsuspend_device(mac.clone()).await.unwrap();
    devices.deactivate_device(mac.clone()).await.unwrap();
    devices.activate_device(mac.clone()).await.unwrap();
    devices.activate_device(mac.clone()).await.unwrap_err(); // 403 E0000152
    devices
        .delete_device(DeleteDeviceRequest {
            device_id: device_id("SPEC-PHONE"),
            ..Default::default()
        })
        .await
        .unwrap_err(); // refused by the gateway before Okta's delete
    devices
        .delete_device(DeleteDeviceRequest {
            device_id: device_id("SPEC-OLD"),
            ..Default::default()
        })
        .await
        .unwrap();
    devices
        .get_device(GetDeviceRequest {
            device_id: device_id("SPEC-OLD"),
        })
        .await
        .unwrap_err(); // 404 E0000007 (Device)

    // Deactivate and delete (both paths).
    users
        .deactivate_user(DeactivateUserRequest {
            user_id: staged.id.clone(),
            send_email: false,
            ..Default::default()
        })
        .await
        .unwrap();
    users
        .delete_user(DeleteUserRequest {
            user_id: staged.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    users
        .delete_user(DeleteUserRequest {
            user_id: provisioned.id.clone(),
            deactivate_first: true,
            send_email: false,
            ..Default::default()
        })
        .await
        .unwrap();

    let output = prism.stop().await;
    let okta_requests = app.sim_requests().await.len();
    let forwarded = output
        .iter()
        .filter(|line| line.contains("Request received"))
        .count();
    assert_eq!(
        forwarded, okta_requests,
        "every Okta request went through Prism"
    );
    let request_violations: Vec<&String> = output
        .iter()
        .filter(|line| line.contains("Violation: request"))
        .collect();
    assert!(
        request_violations.is_empty(),
        "requests that break Okta's spec:\n{request_violations:#?}"
    );
    let unexplained_response_violations: Vec<&String> = output
        .iter()
        .filter(|line| line.contains("Violation: response"))
        .filter(|line| {
            !RECORDED_TRAFFIC_WINS
                .iter()
                .any(|known| line.contains(known))
        })
        .collect();
    assert!(
        unexplained_response_violations.is_empty(),
        "simulator answers that break Okta's spec:\n{unexplained_response_violations:#?}"
    );
}
