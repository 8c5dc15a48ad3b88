//! `POST /api/v1/users/{id}/lifecycle/{op}`: Okta's user state machine.

use serde::Serialize;

use super::audit;
use super::errors::OktaError;
use super::http::{Ctx, Handled, Reply};
use super::ids;
use super::state::{Org, UserStatus, now};
use super::views::{self, LinkDetail};

/// The lifecycle operations the simulator implements.
const OPS: &[&str] = &[
    "activate",
    "reactivate",
    "deactivate",
    "suspend",
    "unsuspend",
    "unlock",
    "reset_password",
    "expire_password",
    "expire_password_with_temp_password",
    "reset_factors",
];

/// Whether `op` is a lifecycle operation (others are unknown paths).
pub fn is_known(op: &str) -> bool {
    OPS.contains(&op)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ActivationToken {
    activation_url: String,
    activation_token: String,
}

fn activation_reply(ctx: &Ctx, send_email: bool) -> Reply {
    if send_email {
        return Reply::empty_object();
    }
    let token = ids::url_safe(20);
    let body = ActivationToken {
        activation_url: format!("{}/tokens/{token}/verify", ctx.base),
        activation_token: token,
    };
    Reply::ok(serde_json::to_string(&body).unwrap_or_else(|_| "{}".to_owned()))
}

fn not_allowed() -> OktaError {
    OktaError::new("E0000038", "")
}

/// Runs lifecycle operation `op` on the user `id`, logging it when it succeeds.
pub fn run(org: &mut Org, ctx: &Ctx, id: &str, op: &str) -> Handled {
    let reply = transition(org, ctx, id, op)?;
    let uid = org.find_user(id).map(|u| u.id.clone());
    if let (Some(action), Some(uid)) = (audit::lifecycle_action(op), uid) {
        audit::user_event(org, ctx, action, &uid);
    }
    Ok(reply)
}

/// The state machine itself.
fn transition(org: &mut Org, ctx: &Ctx, id: &str, op: &str) -> Handled {
    use UserStatus::*;
    // Spring-style: a missing required parameter is reported before the user is looked up.
    let reset_send_email = if op == "reset_password" {
        if ctx.param("sendEmail").is_none() {
            return Err(OktaError::new("E0000028", "").cause("sendEmail is required"));
        }
        ctx.bool_param("sendEmail", false)?
    } else {
        false
    };
    let uid = org.user_id_or_404(id)?;
    let Some(user) = org.user_mut(&uid) else {
        return Err(OktaError::not_found(id, "User"));
    };
    let t = now();
    let status = user.status;
    match op {
        "activate" => {
            let send_email = ctx.bool_param("sendEmail", true)?;
            match status {
                Staged | Deprovisioned => {
                    let to = if user.has_password {
                        Active
                    } else {
                        Provisioned
                    };
                    user.set_status(to, t);
                    if to == Active {
                        user.activated = Some(t);
                    }
                    Ok(activation_reply(ctx, send_email))
                }
                Active => Err(OktaError::new("E0000016", "")),
                _ => Err(not_allowed()),
            }
        }
        "reactivate" => {
            let send_email = ctx.bool_param("sendEmail", false)?;
            if status == Provisioned || (status == Recovery && !user.has_password) {
                user.set_status(Provisioned, t);
                Ok(activation_reply(ctx, send_email))
            } else {
                Err(not_allowed())
            }
        }
        "deactivate" => {
            ctx.bool_param("sendEmail", false)?;
            if status == Deprovisioned {
                return Err(not_allowed());
            }
            user.set_status(Deprovisioned, t);
            Ok(Reply::empty_object())
        }
        "suspend" => {
            if status != Active {
                let text = "Cannot suspend a user that is not active";
                return Err(OktaError::new("E0000001", text).cause(text));
            }
            user.set_status(Suspended, t);
            Ok(Reply::empty_object())
        }
        "unsuspend" => {
            if status != Suspended {
                let text = "Cannot unsuspend a user that is not suspended";
                return Err(OktaError::new("E0000001", text).cause(text));
            }
            user.set_status(Active, t);
            Ok(Reply::empty_object())
        }
        "unlock" => {
            if status != LockedOut {
                return Err(OktaError::new("E0000032", "").cause("The user is not locked out."));
            }
            user.set_status(Active, t);
            Ok(Reply::empty_object())
        }
        "reset_password" => {
            ctx.bool_param("revokeSessions", false)?;
            match status {
                Active | PasswordExpired | LockedOut | Recovery => {
                    user.set_status(Recovery, t);
                    if reset_send_email {
                        Ok(Reply::empty_object())
                    } else {
                        let url = format!("{}/reset_password/{}", ctx.base, ids::url_safe(20));
                        let body = serde_json::json!({ "resetPasswordUrl": url });
                        Ok(Reply::ok(body.to_string()))
                    }
                }
                _ => Err(OktaError::new("E0000017", "")),
            }
        }
        "expire_password" | "expire_password_with_temp_password" => {
            ctx.bool_param("revokeSessions", false)?;
            if !matches!(status, Active | Recovery | PasswordExpired | LockedOut) {
                return Err(not_allowed());
            }
            user.set_status(PasswordExpired, t);
            if op == "expire_password" {
                let body = views::user_json(&ctx.base, user, LinkDetail::Full);
                Ok(Reply::ok(body))
            } else {
                user.has_password = true;
                user.password_changed = Some(t);
                let body = serde_json::json!({ "tempPassword": ids::alnum(12) });
                Ok(Reply::ok(body.to_string()))
            }
        }
        "reset_factors" => {
            if status == Deprovisioned {
                return Err(not_allowed());
            }
            Ok(Reply::empty_object())
        }
        _ => Err(OktaError::new("E0000008", "")),
    }
}
