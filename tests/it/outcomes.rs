//! Writes whose answer from Okta is lost, or refused before they took effect: the caller's answer
//! is judged against the simulated org's own state (read through its API, not the gateway's), so
//! a write that happened is never described as safe to repeat, and a create never claims a user
//! someone else created.

use crate::common;

use std::fmt::Write as _;

use common::{TestApp, error_metadata, reason, spawn_app};
use identity_gateway::proto::device_service_client::DeviceServiceClient;
use identity_gateway::proto::{
    ActivateUserRequest, CreateUserRequest, DeactivateUserRequest, DeleteDeviceRequest,
    DeleteUserRequest, DeviceLifecycleRequest, ExpirePasswordRequest, GroupMemberRequest,
    ReactivateUserRequest, ResetPasswordRequest, UpdateUserRequest, User, UserLifecycleRequest,
    UserProfile,
};
use serde_json::{Value, json};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Every RPC that changes Okta, with the variants that differ in how they may be repeated.
#[derive(Clone, Copy, Debug)]
enum Rpc {
    CreateUser,
    UpdateUser,
    DeleteUser,
    ActivateUser { send_email: bool },
    ReactivateUser,
    DeactivateUser { send_email: bool },
    SuspendUser,
    UnsuspendUser,
    UnlockUser,
    ResetPassword { send_email: bool },
    ExpirePassword { temporary: bool },
    AddGroupMember,
    RemoveGroupMember,
    ActivateDevice,
    DeactivateDevice,
    SuspendDevice,
    UnsuspendDevice,
    DeleteDevice,
}

const RPCS: [Rpc; 22] = [
    Rpc::CreateUser,
    Rpc::UpdateUser,
    Rpc::DeleteUser,
    Rpc::ActivateUser { send_email: true },
    Rpc::ActivateUser { send_email: false },
    Rpc::ReactivateUser,
    Rpc::DeactivateUser { send_email: true },
    Rpc::DeactivateUser { send_email: false },
    Rpc::SuspendUser,
    Rpc::UnsuspendUser,
    Rpc::UnlockUser,
    Rpc::ResetPassword { send_email: true },
    Rpc::ResetPassword { send_email: false },
    Rpc::ExpirePassword { temporary: false },
    Rpc::ExpirePassword { temporary: true },
    Rpc::AddGroupMember,
    Rpc::RemoveGroupMember,
    Rpc::ActivateDevice,
    Rpc::DeactivateDevice,
    Rpc::SuspendDevice,
    Rpc::UnsuspendDevice,
    Rpc::DeleteDevice,
];

/// What happens to the write request at the simulator.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Carried out, then answered 502 once (a repeat is answered normally).
    LostOnce,
    /// Carried out, then answered 502, on every attempt.
    LostEveryTime,
    /// Answered 503 without being carried out, on every attempt.
    RefusedBeforeCommit,
}

/// The answer the caller must get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// The write's success.
    Done,
    /// UNAVAILABLE, `OUTCOME_UNKNOWN`, naming what to check.
    Unknown,
    /// Either: a create's own user is claimed only when Okta's clock, measured to the second,
    /// proves it was created after the request left.
    DoneOrUnknown,
    /// UNAVAILABLE saying a read found it not carried out.
    NotCarriedOut,
}

fn expected(rpc: Rpc, fault: Fault) -> Expect {
    match (fault, rpc) {
        (_, Rpc::CreateUser) if !matches!(fault, Fault::RefusedBeforeCommit) => {
            Expect::DoneOrUnknown
        }
        // Already PROVISIONED before, where reactivation leads: the status cannot tell.
        (Fault::RefusedBeforeCommit, Rpc::ReactivateUser) => Expect::Unknown,
        (Fault::RefusedBeforeCommit, _) => Expect::NotCarriedOut,
        // Sent once, as it emails; RECOVERY may have been the status before.
        (Fault::LostOnce, Rpc::ResetPassword { send_email: true }) => Expect::Unknown,
        (Fault::LostOnce, _) => Expect::Done,
        // Allowed again from where they lead: the status cannot tell.
        (
            Fault::LostEveryTime,
            Rpc::ReactivateUser | Rpc::ResetPassword { .. } | Rpc::ExpirePassword { .. },
        ) => Expect::Unknown,
        (Fault::LostEveryTime, _) => Expect::Done,
    }
}

/// The objects one case works on, fresh for each case.
struct Target {
    login: String,
    user: String,
    group: String,
    device: String,
}

impl Rpc {
    fn user_status(self) -> &'static str {
        match self {
            Rpc::ActivateUser { .. } => "STAGED",
            Rpc::ReactivateUser => "PROVISIONED",
            Rpc::UnsuspendUser => "SUSPENDED",
            Rpc::UnlockUser => "LOCKED_OUT",
            Rpc::DeleteUser => "DEPROVISIONED",
            _ => "ACTIVE",
        }
    }

    fn device_status(self) -> &'static str {
        match self {
            Rpc::ActivateDevice | Rpc::DeleteDevice => "DEACTIVATED",
            Rpc::UnsuspendDevice => "SUSPENDED",
            _ => "ACTIVE",
        }
    }

    fn sends_email(self) -> bool {
        matches!(
            self,
            Rpc::ActivateUser { send_email: true }
                | Rpc::DeactivateUser { send_email: true }
                | Rpc::ResetPassword { send_email: true }
        )
    }

    /// The Okta request that carries the write out.
    fn write(self, target: &Target) -> (&'static str, String) {
        let user = |op: &str| format!("/api/v1/users/{}/lifecycle/{op}", target.user);
        let device = |op: &str| format!("/api/v1/devices/{}/lifecycle/{op}", target.device);
        let member = format!("/api/v1/groups/{}/users/{}", target.group, target.user);
        match self {
            Rpc::CreateUser => ("POST", "/api/v1/users".to_owned()),
            Rpc::UpdateUser => ("POST", format!("/api/v1/users/{}", target.user)),
            Rpc::DeleteUser => ("DELETE", format!("/api/v1/users/{}", target.user)),
            Rpc::ActivateUser { .. } => ("POST", user("activate")),
            Rpc::ReactivateUser => ("POST", user("reactivate")),
            Rpc::DeactivateUser { .. } => ("POST", user("deactivate")),
            Rpc::SuspendUser => ("POST", user("suspend")),
            Rpc::UnsuspendUser => ("POST", user("unsuspend")),
            Rpc::UnlockUser => ("POST", user("unlock")),
            Rpc::ResetPassword { .. } => ("POST", user("reset_password")),
            Rpc::ExpirePassword { temporary: false } => ("POST", user("expire_password")),
            Rpc::ExpirePassword { temporary: true } => {
                ("POST", user("expire_password_with_temp_password"))
            }
            Rpc::AddGroupMember => ("PUT", member),
            Rpc::RemoveGroupMember => ("DELETE", member),
            Rpc::ActivateDevice => ("POST", device("activate")),
            Rpc::DeactivateDevice => ("POST", device("deactivate")),
            Rpc::SuspendDevice => ("POST", device("suspend")),
            Rpc::UnsuspendDevice => ("POST", device("unsuspend")),
            Rpc::DeleteDevice => ("DELETE", format!("/api/v1/devices/{}", target.device)),
        }
    }

    async fn call(
        self,
        app: &TestApp,
        devices: &mut DeviceServiceClient<Channel>,
        target: &Target,
    ) -> Result<(), Status> {
        let mut users = app.users.clone();
        let mut groups = app.groups.clone();
        let user_id = target.user.clone();
        let lifecycle = || UserLifecycleRequest {
            user_id: user_id.clone(),
            ..Default::default()
        };
        let device = || DeviceLifecycleRequest {
            device_id: target.device.clone(),
            ..Default::default()
        };
        let member = || GroupMemberRequest {
            group_id: target.group.clone(),
            user_id: user_id.clone(),
            ..Default::default()
        };
        match self {
            Rpc::CreateUser => users
                .create_user(new_user(&format!("new-{}", target.login), "Once"))
                .await
                .map(drop),
            Rpc::UpdateUser => users
                .update_user(UpdateUserRequest {
                    user: Some(User {
                        id: user_id.clone(),
                        profile: Some(UserProfile {
                            first_name: "Updated".to_owned(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["profile.first_name".to_owned()],
                    }),
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::DeleteUser => users
                .delete_user(DeleteUserRequest {
                    user_id: user_id.clone(),
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::ActivateUser { send_email } => users
                .activate_user(ActivateUserRequest {
                    user_id: user_id.clone(),
                    send_email,
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::ReactivateUser => users
                .reactivate_user(ReactivateUserRequest {
                    user_id: user_id.clone(),
                    send_email: false,
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::DeactivateUser { send_email } => users
                .deactivate_user(DeactivateUserRequest {
                    user_id: user_id.clone(),
                    send_email,
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::SuspendUser => users.suspend_user(lifecycle()).await.map(drop),
            Rpc::UnsuspendUser => users.unsuspend_user(lifecycle()).await.map(drop),
            Rpc::UnlockUser => users.unlock_user(lifecycle()).await.map(drop),
            Rpc::ResetPassword { send_email } => users
                .reset_password(ResetPasswordRequest {
                    user_id: user_id.clone(),
                    send_email,
                    revoke_sessions: false,
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::ExpirePassword { temporary } => users
                .expire_password(ExpirePasswordRequest {
                    user_id: user_id.clone(),
                    issue_temporary_password: temporary,
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::AddGroupMember => groups.add_group_member(member()).await.map(drop),
            Rpc::RemoveGroupMember => groups.remove_group_member(member()).await.map(drop),
            Rpc::ActivateDevice => devices.activate_device(device()).await.map(drop),
            Rpc::DeactivateDevice => devices.deactivate_device(device()).await.map(drop),
            Rpc::SuspendDevice => devices.suspend_device(device()).await.map(drop),
            Rpc::UnsuspendDevice => devices.unsuspend_device(device()).await.map(drop),
            Rpc::DeleteDevice => devices
                .delete_device(DeleteDeviceRequest {
                    device_id: target.device.clone(),
                    ..Default::default()
                })
                .await
                .map(drop),
        }
    }

    /// Whether the simulated org shows the write's effect, read through its own API.
    async fn took_effect(self, app: &TestApp, target: &Target) -> bool {
        let user = || okta_get(app, format!("/api/v1/users/{}", target.user));
        let device = || okta_get(app, format!("/api/v1/devices/{}", target.device));
        let status_is = |found: Option<Value>, status: &str| {
            found.is_some_and(|object| object["status"] == status)
        };
        match self {
            Rpc::CreateUser => {
                let login = format!("new-{}", target.login);
                let filter = format!("profile.login eq \"{login}\"");
                let path = format!("/api/v1/users?filter={}", urlencode(&filter));
                let found = okta_get(app, path).await.unwrap();
                !found.as_array().unwrap().is_empty()
            }
            Rpc::UpdateUser => user().await.unwrap()["profile"]["firstName"] == "Updated",
            Rpc::DeleteUser => user().await.is_none(),
            Rpc::ActivateUser { .. } | Rpc::UnsuspendUser | Rpc::UnlockUser => {
                status_is(user().await, "ACTIVE")
            }
            Rpc::ReactivateUser => {
                app.transitions_logged("user.lifecycle.reactivate", &target.user)
                    .await
                    > 0
            }
            Rpc::DeactivateUser { .. } => status_is(user().await, "DEPROVISIONED"),
            Rpc::SuspendUser => status_is(user().await, "SUSPENDED"),
            Rpc::ResetPassword { .. } => status_is(user().await, "RECOVERY"),
            Rpc::ExpirePassword { .. } => status_is(user().await, "PASSWORD_EXPIRED"),
            Rpc::AddGroupMember | Rpc::RemoveGroupMember => {
                let path = format!("/api/v1/groups/{}/users", target.group);
                let members = okta_get(app, path).await.unwrap();
                let member = members
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|member| member["id"] == target.user.as_str());
                member == matches!(self, Rpc::AddGroupMember)
            }
            Rpc::ActivateDevice | Rpc::UnsuspendDevice => status_is(device().await, "ACTIVE"),
            Rpc::DeactivateDevice => status_is(device().await, "DEACTIVATED"),
            Rpc::SuspendDevice => status_is(device().await, "SUSPENDED"),
            Rpc::DeleteDevice => device().await.is_none(),
        }
    }
}

fn new_user(login: &str, first_name: &str) -> CreateUserRequest {
    CreateUserRequest {
        profile: Some(UserProfile {
            login: login.to_owned(),
            email: login.to_owned(),
            first_name: first_name.to_owned(),
            last_name: "Only".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `GET path` on the simulator's Okta API; `None` for 404.
async fn okta_get(app: &TestApp, path: String) -> Option<Value> {
    let response = app
        .okta_request(reqwest::Method::GET, &path)
        .send()
        .await
        .unwrap();
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return None;
    }
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    Some(response.json().await.unwrap())
}

async fn connect_devices(app: &TestApp) -> DeviceServiceClient<Channel> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", app.address));
    DeviceServiceClient::new(endpoint.unwrap().connect().await.unwrap())
}

/// The message of the `google.rpc.Status` in `grpc-status-details-bin`.
fn details_message(status: &Status) -> String {
    let details: tonic_types::pb::Status = prost::Message::decode(status.details()).unwrap();
    details.message
}

/// What is wrong with `answer` to `rpc` under `fault`, given whether the org shows the effect.
fn judge(
    expect: Expect,
    answer: &Result<(), Status>,
    took_effect: bool,
    writes_sent: usize,
    rpc: Rpc,
) -> Option<String> {
    let unknown = |status: &Status| {
        status.code() == Code::Unavailable
            && reason(status) == "OUTCOME_UNKNOWN"
            && !error_metadata(status, "check").is_empty()
    };
    if let Err(status) = answer {
        if details_message(status) != status.message() {
            return Some(format!("message and details differ: {status:?}"));
        }
        if took_effect && status.message().contains("safe") {
            return Some(format!("carried out, yet said safe: {}", status.message()));
        }
    }
    if rpc.sends_email() && writes_sent != 1 {
        return Some(format!("an emailing write was sent {writes_sent} times"));
    }
    let right = match (expect, answer) {
        (Expect::Done | Expect::DoneOrUnknown, Ok(())) => took_effect,
        (Expect::Unknown | Expect::DoneOrUnknown, Err(status)) => unknown(status),
        (Expect::NotCarriedOut, Err(status)) => {
            !took_effect
                && status.code() == Code::Unavailable
                && status.message().contains("not carried out")
        }
        _ => false,
    };
    (!right).then(|| format!("expected {expect:?}, got {answer:?} (took effect: {took_effect})"))
}

#[tokio::test]
async fn every_write_whose_outcome_a_fault_left_open_is_answered_as_the_org_shows_it() {
    let app = spawn_app().await;
    let mut devices = connect_devices(&app).await;
    let mut failures = String::new();
    let faults = [
        Fault::LostOnce,
        Fault::LostEveryTime,
        Fault::RefusedBeforeCommit,
    ];
    for (index, (rpc, fault)) in RPCS
        .iter()
        .flat_map(|rpc| faults.iter().map(move |fault| (*rpc, *fault)))
        .enumerate()
    {
        let login = format!("case{index}@example.com");
        let group = format!("Group{index}");
        let device = format!("DEVICE-{index}");
        let members: Vec<&str> = match rpc {
            Rpc::RemoveGroupMember => vec![login.as_str()],
            _ => Vec::new(),
        };
        let seeded = app
            .seed(json!({
                "users": [{"login": login, "status": rpc.user_status(),
                           "password": !matches!(rpc, Rpc::ReactivateUser)}],
                "groups": [{"name": group, "members": members}],
                "devices": [{"displayName": device, "platform": "MACOS",
                             "serialNumber": format!("SN-{index}"), "status": rpc.device_status()}]
            }))
            .await;
        let target = Target {
            user: seeded["users"][&login].as_str().unwrap().to_owned(),
            group: seeded["groups"][&group].as_str().unwrap().to_owned(),
            device: seeded["devices"][&device].as_str().unwrap().to_owned(),
            login,
        };
        let (method, path) = rpc.write(&target);
        let injected = match fault {
            Fault::LostOnce => json!({"status": 502, "commit_then_fail": true}),
            Fault::LostEveryTime => json!({"status": 502, "commit_then_fail": true, "times": 10}),
            Fault::RefusedBeforeCommit => json!({"status": 503, "times": 10}),
        };
        let mut injected = injected;
        injected["method"] = json!(method);
        injected["path_prefix"] = json!(path);
        app.clear_sim_requests().await;
        app.inject_fault(injected).await;
        let answer = rpc.call(&app, &mut devices, &target).await;
        app.clear_faults().await;
        let writes_sent = app
            .sim_requests()
            .await
            .iter()
            .filter(|request| request["method"] == method && request["path"] == path.as_str())
            .count();
        let took_effect = rpc.took_effect(&app, &target).await;
        let expect = expected(rpc, fault);
        if let Some(wrong) = judge(expect, &answer, took_effect, writes_sent, rpc) {
            writeln!(failures, "{rpc:?} with {fault:?}: {wrong}").unwrap();
        }
    }
    assert!(failures.is_empty(), "\n{failures}");
}

/// Seeds a user with the profile [`new_user`] sends, created `seconds_ago` by the org's clock.
async fn seed_user_created(app: &TestApp, login: &str, seconds_ago: i64) -> String {
    let created = chrono::Utc::now() - chrono::TimeDelta::seconds(seconds_ago);
    let ids = app
        .seed(
            json!({"users": [{"login": login, "email": login, "firstName": "Once",
                                 "lastName": "Only", "status": "STAGED", "created": created}]}),
        )
        .await;
    ids["users"][login].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_create_refused_without_an_answer_never_claims_a_user_created_before_it() {
    let app = spawn_app().await;
    for seconds_ago in [59, 10] {
        let login = format!("earlier{seconds_ago}@example.com");
        let existing = seed_user_created(&app, &login, seconds_ago).await;
        // A transient 503 that created nothing.
        app.inject_fault(json!({"method": "POST", "path_prefix": "/api/v1/users", "status": 503}))
            .await;
        let status = app
            .users
            .clone()
            .create_user(new_user(&login, "Once"))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::AlreadyExists,
            "{seconds_ago} s: {status:?}"
        );
        assert_eq!(reason(&status), "OKTA_LOGIN_TAKEN");
        let user = okta_get(&app, format!("/api/v1/users/{existing}")).await;
        assert_eq!(user.unwrap()["profile"]["login"], login.as_str());
    }
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_never_claims_another_party_s_user() {
    let app = spawn_app().await;
    // Another Okta client creates the login, with other values, just before the call.
    let response = app
        .okta_request(reqwest::Method::POST, "/api/v1/users?activate=false")
        .json(
            &json!({"profile": {"login": "race@example.com", "email": "race@example.com",
                                   "firstName": "Other", "lastName": "Party"}}),
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    app.inject_fault(json!({"method": "POST", "path_prefix": "/api/v1/users", "status": 503}))
        .await;
    let status = app
        .users
        .clone()
        .create_user(new_user("race@example.com", "Once"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert_eq!(reason(&status), "OKTA_LOGIN_TAKEN");
    // Decided on the read that found the other party's user: its request id says which.
    assert!(!error_metadata(&status, "okta_request_id").is_empty());
}

#[tokio::test]
async fn a_refusal_after_a_429_is_not_taken_for_a_lost_answer() {
    let app = spawn_app().await;
    // Okta never carries out a request it answers 429: the user was suspended before the call.
    let user_id = app
        .seed(json!({"users": [{"login": "was@example.com", "status": "SUSPENDED"}]}))
        .await["users"]["was@example.com"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/users/{user_id}/lifecycle/suspend");
    app.inject_fault(json!({"method": "POST", "path_prefix": path, "status": 429,
                            "error_code": "E0000047", "headers": {"x-rate-limit-reset": "0"}}))
        .await;
    let status = app
        .users
        .clone()
        .suspend_user(UserLifecycleRequest {
            user_id,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(app.sim_statuses("POST", &path).await, [429, 400]);
}

#[tokio::test]
async fn an_emailing_reset_is_repeated_after_a_429_only() {
    let app = spawn_app().await;
    for (fault, sent) in [(429, 2), (500, 1)] {
        let login = format!("reset{fault}@example.com");
        let user_id = app.seed_user(&login).await;
        let path = format!("/api/v1/users/{user_id}/lifecycle/reset_password");
        app.inject_fault(
            json!({"method": "POST", "path_prefix": path, "status": fault,
                                "headers": {"x-rate-limit-reset": "0"}}),
        )
        .await;
        let _ = app
            .users
            .clone()
            .reset_password(ResetPasswordRequest {
                user_id,
                send_email: true,
                revoke_sessions: false,
                ..Default::default()
            })
            .await;
        assert_eq!(
            app.sim_statuses("POST", &path).await.len(),
            sent,
            "after {fault}"
        );
    }
}
