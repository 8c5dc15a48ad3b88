//! System Log events for what the simulator's API does: one event per successful write,
//! with Okta's event types, written by the API token's admin from the caller's address, and
//! `debugContext.debugData.requestId` = the response's `X-Okta-Request-Id`. Reads write nothing.

use chrono::Utc;
use serde_json::{Map, Value};

use super::http::Ctx;
use super::inject::display_name;
use super::log_event::{self, Actor, EventInput, Target};
use super::state::Org;

/// Id of the admin user who owns the simulator's API token (the actor of API events).
pub const ADMIN_ID: &str = "00usimapiadmin000001";
/// Login of that admin.
pub const ADMIN_LOGIN: &str = "sim.admin@example.com";
/// Display name of that admin.
pub const ADMIN_NAME: &str = "Sim Admin";
/// Id of the simulator's API token (`transaction.detail.requestApiTokenId`).
pub const API_TOKEN_ID: &str = "00Tsimapitoken000001";

/// A write the simulator logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `POST /api/v1/users`.
    UserCreate,
    /// `lifecycle/activate`.
    UserActivate,
    /// `lifecycle/reactivate`.
    UserReactivate,
    /// `lifecycle/deactivate`, or the first `DELETE`.
    UserDeactivate,
    /// `lifecycle/suspend`.
    UserSuspend,
    /// `lifecycle/unsuspend`.
    UserUnsuspend,
    /// `lifecycle/unlock`.
    UserUnlock,
    /// `lifecycle/reset_password`.
    UserResetPassword,
    /// `lifecycle/expire_password` (also with a temporary password).
    UserExpirePassword,
    /// `lifecycle/reset_factors`.
    UserResetFactors,
    /// `POST`/`PUT /api/v1/users/{id}`.
    UserUpdateProfile,
    /// The second `DELETE` (permanent).
    UserDelete,
    /// `PUT /api/v1/groups/{gid}/users/{uid}`.
    MembershipAdd,
    /// `DELETE /api/v1/groups/{gid}/users/{uid}`.
    MembershipRemove,
    /// `POST /api/v1/groups`.
    GroupCreate,
    /// `PUT /api/v1/groups/{gid}`.
    GroupUpdate,
    /// `DELETE /api/v1/groups/{gid}`.
    GroupDelete,
    /// `POST /api/v1/devices/{id}/lifecycle/activate`.
    DeviceActivate,
    /// `POST /api/v1/devices/{id}/lifecycle/deactivate`.
    DeviceDeactivate,
    /// `POST /api/v1/devices/{id}/lifecycle/suspend`.
    DeviceSuspend,
    /// `POST /api/v1/devices/{id}/lifecycle/unsuspend`.
    DeviceUnsuspend,
    /// `DELETE /api/v1/devices/{id}`.
    DeviceDelete,
}

impl Action {
    /// `(eventType, displayMessage, legacyEventType)` as Okta writes them.
    pub fn describe(self) -> (&'static str, &'static str, Option<&'static str>) {
        use Action::*;
        match self {
            UserCreate => (
                "user.lifecycle.create",
                "Create Okta user",
                Some("core.user.config.user_creation.success"),
            ),
            UserActivate => (
                "user.lifecycle.activate",
                "Activate Okta user",
                Some("core.user.config.user_activated"),
            ),
            UserReactivate => ("user.lifecycle.reactivate", "Reactivate Okta user", None),
            UserDeactivate => (
                "user.lifecycle.deactivate",
                "Deactivate Okta user",
                Some("core.user.config.user_deactivated"),
            ),
            UserSuspend => (
                "user.lifecycle.suspend",
                "Suspend Okta user",
                Some("core.user.config.user_status.suspended"),
            ),
            UserUnsuspend => (
                "user.lifecycle.unsuspend",
                "Unsuspend Okta user",
                Some("core.user.config.user_status.unsuspended"),
            ),
            UserUnlock => ("user.account.unlock", "Unlock user account", None),
            UserResetPassword => (
                "user.account.reset_password",
                "Reset password for Okta user",
                None,
            ),
            UserExpirePassword => (
                "user.account.expire_password",
                "Expire password for Okta user",
                None,
            ),
            UserResetFactors => (
                "user.mfa.factor.reset_all",
                "Reset all factors for user",
                None,
            ),
            UserUpdateProfile => (
                "user.account.update_profile",
                "Update user profile for Okta",
                Some("core.user.config.profile_update.success"),
            ),
            UserDelete => ("user.lifecycle.delete.initiated", "Delete Okta user", None),
            MembershipAdd => (
                "group.user_membership.add",
                "Add user to group membership",
                Some("core.user_group_member.user_add"),
            ),
            MembershipRemove => (
                "group.user_membership.remove",
                "Remove user from group membership",
                Some("core.user_group_member.user_remove"),
            ),
            GroupCreate => ("group.lifecycle.create", "Create Okta group", None),
            GroupUpdate => ("group.profile.update", "Update group profile", None),
            GroupDelete => ("group.lifecycle.delete", "Delete Okta group", None),
            DeviceActivate => ("device.lifecycle.activate", "Activate device", None),
            DeviceDeactivate => ("device.lifecycle.deactivate", "Deactivate device", None),
            DeviceSuspend => ("device.lifecycle.suspend", "Suspend device", None),
            DeviceUnsuspend => ("device.lifecycle.unsuspend", "Unsuspend device", None),
            DeviceDelete => ("device.lifecycle.delete", "Delete device", None),
        }
    }
}

/// The lifecycle action of a `lifecycle/{op}` call, if it is logged.
pub fn lifecycle_action(op: &str) -> Option<Action> {
    Some(match op {
        "activate" => Action::UserActivate,
        "reactivate" => Action::UserReactivate,
        "deactivate" => Action::UserDeactivate,
        "suspend" => Action::UserSuspend,
        "unsuspend" => Action::UserUnsuspend,
        "unlock" => Action::UserUnlock,
        "reset_password" => Action::UserResetPassword,
        "expire_password" | "expire_password_with_temp_password" => Action::UserExpirePassword,
        "reset_factors" => Action::UserResetFactors,
        _ => return None,
    })
}

/// The admin who owns the API token.
pub fn admin_actor() -> Actor {
    Actor {
        id: ADMIN_ID.to_owned(),
        kind: "User".to_owned(),
        alternate_id: Some(ADMIN_LOGIN.to_owned()),
        display_name: Some(ADMIN_NAME.to_owned()),
        detail_entry: None,
    }
}

/// A `User` target for the user with this id (`None` if there is no such user).
pub fn user_target(org: &Org, user_id: &str) -> Option<Target> {
    let u = org.users.get(user_id)?;
    Some(Actor {
        id: u.id.clone(),
        kind: "User".to_owned(),
        alternate_id: Some(u.login().to_owned()),
        display_name: display_name(org, user_id),
        detail_entry: None,
    })
}

/// A `UserGroup` target for the group with this id (`None` if there is no such group).
pub fn group_target(org: &Org, group_id: &str) -> Option<Target> {
    let g = org.groups.get(group_id)?;
    Some(Actor {
        id: g.id.clone(),
        kind: "UserGroup".to_owned(),
        alternate_id: Some(g.name().to_owned()),
        display_name: Some(g.name().to_owned()),
        detail_entry: None,
    })
}

/// Appends the event for `action` on `targets`, caused by the request in `ctx`.
pub fn record(org: &mut Org, ctx: &Ctx, action: Action, targets: Vec<Target>) {
    let (event_type, message, legacy) = action.describe();
    let meta = &ctx.meta;
    let mut detail = Map::new();
    detail.insert("requestApiTokenId".into(), Value::from(API_TOKEN_ID));
    let published = Utc::now();
    let event = log_event::build(EventInput {
        published,
        event_type: event_type.to_owned(),
        severity: "INFO".to_owned(),
        legacy_event_type: legacy.map(str::to_owned),
        display_message: Some(message.to_owned()),
        actor: admin_actor(),
        ip: Some(meta.ip.clone()),
        user_agent: meta.user_agent.clone(),
        device: Some("Unknown".to_owned()),
        geo: None,
        result: "SUCCESS".to_owned(),
        reason: None,
        targets,
        request_id: Some(meta.request_id.clone()),
        request_uri: Some(meta.path.clone()),
        url: Some(meta.url.clone()),
        session_id: None,
        transaction_detail: detail,
    });
    org.events.push(published, &event);
}

/// Appends the event for `action` on one user.
pub fn user_event(org: &mut Org, ctx: &Ctx, action: Action, user_id: &str) {
    let targets = user_target(org, user_id).into_iter().collect();
    record(org, ctx, action, targets);
}

/// Appends the event for `action` on a user's membership of a group (targets: user, group).
pub fn membership_event(org: &mut Org, ctx: &Ctx, action: Action, user_id: &str, group_id: &str) {
    let targets = user_target(org, user_id)
        .into_iter()
        .chain(group_target(org, group_id))
        .collect();
    record(org, ctx, action, targets);
}

/// Appends the event for `action` on one group.
pub fn group_event(org: &mut Org, ctx: &Ctx, action: Action, group_id: &str) {
    let targets = group_target(org, group_id).into_iter().collect();
    record(org, ctx, action, targets);
}

/// A `Device` target for the device with this id (`None` if there is no such device).
pub fn device_target(org: &Org, device_id: &str) -> Option<Target> {
    let d = org.devices.get(device_id)?;
    Some(Actor {
        id: d.id.clone(),
        kind: "Device".to_owned(),
        alternate_id: Some(d.display_name().to_owned()),
        display_name: Some(d.display_name().to_owned()),
        detail_entry: None,
    })
}

/// Appends the event for `action` on one device.
pub fn device_event(org: &mut Org, ctx: &Ctx, action: Action, device_id: &str) {
    let targets = device_target(org, device_id).into_iter().collect();
    record(org, ctx, action, targets);
}
