//! The Okta Management API routes the simulator serves, one line each, and the handlers that
//! call the org. Every request reaches them through [`super::pipeline`] (dropped connections,
//! budgets, auth, faults), which prepares the [`Ctx`] they read: an unknown path is
//! `E0000008`, a known path with another method `E0000022`, both after the pipeline, as Okta
//! answers.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::Method;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{any, get};

use super::errors::OktaError;
use super::http::{Ctx, Handled, Reply};
use super::pipeline::{App, render};
use super::state::Org;
use super::{devices, groups, lifecycle, logs, users};

/// The Okta API routes, with Okta's answers to unknown paths and methods.
pub fn okta() -> Router<Arc<App>> {
    Router::new()
        .route("/api/v1/users", get(list_users).post(create_user))
        .route(
            "/api/v1/users/{id}",
            get(get_user)
                .post(update_user)
                .put(replace_user)
                .delete(delete_user),
        )
        .route("/api/v1/users/{id}/groups", get(groups_of_user))
        .route("/api/v1/users/{id}/devices", get(devices_of_user))
        // Any method: an unknown operation is not found, a known one takes only POST.
        .route("/api/v1/users/{id}/lifecycle/{op}", any(user_lifecycle))
        .route("/api/v1/groups", get(list_groups).post(create_group))
        .route(
            "/api/v1/groups/{gid}",
            get(get_group).put(replace_group).delete(delete_group),
        )
        .route("/api/v1/groups/{gid}/users", get(group_members))
        .route(
            "/api/v1/groups/{gid}/users/{uid}",
            axum::routing::put(add_member).delete(remove_member),
        )
        .route("/api/v1/devices", get(list_devices))
        .route(
            "/api/v1/devices/{id}",
            get(get_device).delete(delete_device),
        )
        .route("/api/v1/devices/{id}/users", get(device_users))
        .route("/api/v1/devices/{id}/lifecycle/{op}", any(device_lifecycle))
        .route("/api/v1/logs", get(list_logs))
        .method_not_allowed_fallback(|| async { render(not_allowed().into()) })
        .fallback(|| async { render(not_found()) })
}

fn not_found() -> Reply {
    OktaError::new("E0000008", "").into()
}

fn not_allowed() -> OktaError {
    OktaError::new("E0000022", "")
}

/// One Okta call as the pipeline prepared it: the simulator, the request context and the
/// path's parameters, in order.
pub struct Call {
    app: Arc<App>,
    ctx: Ctx,
    params: Vec<String>,
}

impl FromRequestParts<Arc<App>> for Call {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        let params = RawPathParams::from_request_parts(parts, app)
            .await
            .map_err(|_| render(not_found()))?
            .iter()
            .map(|(_, value)| value.to_owned())
            .collect();
        let ctx = parts
            .extensions
            .remove::<Ctx>()
            .unwrap_or_else(|| Ctx::new(app.fallback_base.clone(), None, Default::default()));
        Ok(Call {
            app: Arc::clone(app),
            ctx,
            params,
        })
    }
}

impl Call {
    /// Runs `operation` on the org with the path's `N` parameters.
    fn answer<const N: usize>(
        self,
        operation: impl FnOnce(&mut Org, &Ctx, [&str; N]) -> Handled,
    ) -> Response {
        let params: Vec<&str> = self.params.iter().map(String::as_str).collect();
        let reply = match <[&str; N]>::try_from(params) {
            Ok(params) => operation(&mut self.app.org(), &self.ctx, params),
            Err(_) => Ok(not_found()),
        };
        render(reply.unwrap_or_else(Reply::from))
    }
}

async fn list_users(call: Call) -> Response {
    call.answer(|org, ctx, []| users::list(org, ctx))
}

async fn create_user(call: Call) -> Response {
    call.answer(|org, ctx, []| users::create(org, ctx))
}

async fn get_user(call: Call) -> Response {
    call.answer(|org, ctx, [id]| users::get(org, ctx, id))
}

async fn update_user(call: Call) -> Response {
    call.answer(|org, ctx, [id]| users::update(org, ctx, id, false))
}

async fn replace_user(call: Call) -> Response {
    call.answer(|org, ctx, [id]| users::update(org, ctx, id, true))
}

async fn delete_user(call: Call) -> Response {
    call.answer(|org, ctx, [id]| users::delete(org, ctx, id))
}

async fn groups_of_user(call: Call) -> Response {
    call.answer(|org, ctx, [id]| users::groups_of(org, ctx, id))
}

async fn devices_of_user(call: Call) -> Response {
    call.answer(|org, ctx, [id]| devices::of_user(org, ctx, id))
}

async fn user_lifecycle(method: Method, call: Call) -> Response {
    call.answer(
        |org, ctx, [id, op]| match (lifecycle::is_known(op), method == Method::POST) {
            (false, _) => Ok(not_found()),
            (true, false) => Err(not_allowed()),
            (true, true) => lifecycle::run(org, ctx, id, op),
        },
    )
}

async fn list_groups(call: Call) -> Response {
    call.answer(|org, ctx, []| groups::list(org, ctx))
}

async fn create_group(call: Call) -> Response {
    call.answer(|org, ctx, []| groups::create(org, ctx))
}

async fn get_group(call: Call) -> Response {
    call.answer(|org, ctx, [gid]| groups::get(org, ctx, gid))
}

async fn replace_group(call: Call) -> Response {
    call.answer(|org, ctx, [gid]| groups::replace(org, ctx, gid))
}

async fn delete_group(call: Call) -> Response {
    call.answer(|org, ctx, [gid]| groups::delete(org, ctx, gid))
}

async fn group_members(call: Call) -> Response {
    call.answer(|org, ctx, [gid]| groups::members(org, ctx, gid))
}

async fn add_member(call: Call) -> Response {
    call.answer(|org, ctx, [gid, uid]| groups::add_member(org, ctx, gid, uid))
}

async fn remove_member(call: Call) -> Response {
    call.answer(|org, ctx, [gid, uid]| groups::remove_member(org, ctx, gid, uid))
}

async fn list_devices(call: Call) -> Response {
    call.answer(|org, ctx, []| devices::list(org, ctx))
}

async fn get_device(call: Call) -> Response {
    call.answer(|org, ctx, [id]| devices::get(org, ctx, id))
}

async fn delete_device(call: Call) -> Response {
    call.answer(|org, ctx, [id]| devices::delete(org, ctx, id))
}

async fn device_users(call: Call) -> Response {
    call.answer(|org, ctx, [id]| devices::users(org, ctx, id))
}

async fn device_lifecycle(method: Method, call: Call) -> Response {
    call.answer(
        |org, ctx, [id, op]| match (devices::is_known(op), method == Method::POST) {
            (false, _) => Ok(not_found()),
            (true, false) => Err(not_allowed()),
            (true, true) => devices::lifecycle(org, ctx, id, op),
        },
    )
}

async fn list_logs(call: Call) -> Response {
    call.answer(|org, ctx, []| logs::list(&org.events, ctx))
}
