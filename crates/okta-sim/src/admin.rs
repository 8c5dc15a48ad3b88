//! The simulator's own admin API under `/__sim/` (not Okta; no auth, not rate limited, not
//! logged): request log, fault injection, seeding, budgets and forced user statuses.
//!
//! | Method | Path | Body / answer |
//! |---|---|---|
//! | GET, DELETE | `/__sim/requests` | `[{"method","path","query","status"}]` (status 0: connection dropped unanswered) / 204 |
//! | GET, POST, DELETE | `/__sim/faults` | [`Fault`] (POST answers 201 with it) / 204 |
//! | GET, PUT, DELETE | `/__sim/fault-modes` | [`FaultModes`] (PUT replaces every mode; GET shows hits and time left and the seed) / 204 |
//! | POST | `/__sim/seed` | seed document (YAML or JSON) -> `{"users":{login:id},"groups":{name:id}}` |
//! | PUT | `/__sim/latency` | `{"delay_ms": n}`: every `/api` answer comes n ms later |
//! | GET, PUT | `/__sim/rate-limits` | `{"buckets":[BucketLimit],"concurrency_limit":n,"window_ms":n}` |
//! | POST | `/__sim/users/{idOrLogin}/status` | `{"status":"LOCKED_OUT"}` -> the user |
//! | POST | `/__sim/logs/events` | `{"events":[`[`EventSpec`](inject::EventSpec)`]}` -> `{"uuids":[…]}` (in order) |
//! | DELETE | `/__sim/logs/events` | forgets every System Log event -> 204 |
//! | GET | `/__sim/logs/stats` | `{"events":n}` |
//! | GET, POST | `/__sim/oauth/clients` | [`ClientSpec`] (POST registers or replaces one, 201) / the list |
//! | GET | `/__sim/oauth/stats` | [`OAuthStats`](super::oauth::OAuthStats): token requests, tokens, requests by auth scheme |
//! | DELETE | `/__sim/oauth/tokens` | revokes every issued access token -> 204 |

use std::time::Duration;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{any, get, post, put};
use serde::{Deserialize, Serialize};

use super::fault_modes::FaultModes;
use super::faults::Fault;
use super::inject::{self, InjectDoc};
use super::oauth::ClientSpec;
use super::pipeline::App;
use super::seed;
use super::state::{UserStatus, now};
use super::views::{self, LinkDetail};
use super::{BucketLimit, RateLimitSettings};

/// Largest admin body (seed documents can be big).
const MAX_ADMIN_BODY: usize = 16 * 1024 * 1024;

/// Body and answer of `/__sim/rate-limits`; absent fields keep their current value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsDoc {
    /// Buckets.
    #[serde(default)]
    pub buckets: Option<Vec<BucketLimit>>,
    /// Concurrency cap.
    #[serde(default)]
    pub concurrency_limit: Option<u32>,
    /// Window length in milliseconds.
    #[serde(default)]
    pub window_ms: Option<u64>,
}

/// Body of `POST /__sim/users/{id}/status`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusDoc {
    status: UserStatus,
}

fn json(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn ok<T: Serialize>(status: StatusCode, v: &T) -> Response {
    json(
        status,
        serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned()),
    )
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    ok(status, &serde_json::json!({ "error": msg.into() }))
}

fn no_content() -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// The admin routes; other methods on them are 405, other `/__sim` paths 404.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/__sim/requests", get(list_requests).delete(clear_requests))
        .route(
            "/__sim/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route(
            "/__sim/fault-modes",
            get(fault_modes)
                .put(replace_fault_modes)
                .delete(clear_fault_modes),
        )
        .route("/__sim/seed", post(apply_seed))
        .route("/__sim/latency", put(set_latency))
        .route(
            "/__sim/rate-limits",
            get(rate_limits).put(replace_rate_limits),
        )
        .route("/__sim/users/{id}/status", post(force_status))
        .route(
            "/__sim/logs/events",
            post(inject_events).delete(clear_events),
        )
        .route("/__sim/logs/stats", get(log_stats))
        .route(
            "/__sim/oauth/clients",
            get(list_clients).post(register_client),
        )
        .route("/__sim/oauth/stats", get(oauth_stats))
        .route("/__sim/oauth/tokens", axum::routing::delete(revoke_tokens))
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .route("/__sim", any(unknown_path))
        .route("/__sim/{*rest}", any(unknown_path))
}

async fn unknown_path() -> Response {
    error(StatusCode::NOT_FOUND, "unknown admin path")
}

/// An admin request body, up to [`MAX_ADMIN_BODY`]; a larger one is a 413 in the admin API's
/// error shape.
struct AdminBody(Bytes);

impl<S: Send + Sync> FromRequest<S> for AdminBody {
    type Rejection = Response;

    async fn from_request(req: Request, _: &S) -> Result<Self, Response> {
        axum::body::to_bytes(req.into_body(), MAX_ADMIN_BODY)
            .await
            .map(AdminBody)
            .map_err(|_| {
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body too large or unreadable",
                )
            })
    }
}

async fn list_requests(State(app): State<Arc<App>>) -> Response {
    ok(StatusCode::OK, &app.journal.list())
}

async fn clear_requests(State(app): State<Arc<App>>) -> Response {
    app.journal.clear();
    no_content()
}

async fn list_faults(State(app): State<Arc<App>>) -> Response {
    ok(StatusCode::OK, &app.faults.list())
}

async fn add_fault(State(app): State<Arc<App>>, AdminBody(body): AdminBody) -> Response {
    match serde_json::from_slice::<Fault>(&body) {
        Ok(f) => match f.validate() {
            Ok(()) => {
                app.faults.push(f.clone());
                ok(StatusCode::CREATED, &f)
            }
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        },
        Err(e) => error(StatusCode::BAD_REQUEST, format!("invalid fault: {e}")),
    }
}

async fn clear_faults(State(app): State<Arc<App>>) -> Response {
    app.faults.clear();
    no_content()
}

async fn fault_modes(State(app): State<Arc<App>>) -> Response {
    ok(StatusCode::OK, &app.fault_modes.current())
}

async fn replace_fault_modes(State(app): State<Arc<App>>, AdminBody(body): AdminBody) -> Response {
    match FaultModes::parse(&String::from_utf8_lossy(&body)) {
        Ok(modes) => {
            app.fault_modes.replace(&modes);
            ok(StatusCode::OK, &app.fault_modes.current())
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn clear_fault_modes(State(app): State<Arc<App>>) -> Response {
    app.fault_modes.replace(&FaultModes::default());
    no_content()
}

async fn apply_seed(State(app): State<Arc<App>>, AdminBody(body): AdminBody) -> Response {
    match seed::parse(&String::from_utf8_lossy(&body)) {
        Ok(doc) => match seed::apply(&mut app.org(), &doc, None) {
            Ok(result) => ok(StatusCode::OK, &result),
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        },
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn set_latency(State(app): State<Arc<App>>, AdminBody(body): AdminBody) -> Response {
    match serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|doc| doc.get("delay_ms").and_then(serde_json::Value::as_u64))
    {
        Some(delay_ms) => {
            app.latency_ms
                .store(delay_ms, std::sync::atomic::Ordering::Relaxed);
            ok(StatusCode::OK, &serde_json::json!({ "delay_ms": delay_ms }))
        }
        None => error(
            StatusCode::BAD_REQUEST,
            "expected {\"delay_ms\": <milliseconds>}".to_owned(),
        ),
    }
}

async fn rate_limits(State(app): State<Arc<App>>) -> Response {
    ok(StatusCode::OK, &doc_of(&app.limiter.settings()))
}

async fn replace_rate_limits(State(app): State<Arc<App>>, AdminBody(body): AdminBody) -> Response {
    match serde_json::from_slice::<RateLimitsDoc>(&body) {
        Ok(d) => {
            let mut s = app.limiter.settings();
            if let Some(b) = d.buckets {
                s.buckets = b;
            }
            if let Some(c) = d.concurrency_limit {
                s.concurrency_limit = c;
            }
            if let Some(w) = d.window_ms {
                s.window = Duration::from_millis(w.max(1));
            }
            app.limiter.replace(s.clone());
            ok(StatusCode::OK, &doc_of(&s))
        }
        Err(e) => error(StatusCode::BAD_REQUEST, format!("invalid rate limits: {e}")),
    }
}

async fn force_status(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    AdminBody(body): AdminBody,
) -> Response {
    let doc = match serde_json::from_slice::<StatusDoc>(&body) {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid status: {e}")),
    };
    let base = app.base(&headers);
    let mut org = app.org();
    let Some(uid) = org.find_user(&id).map(|u| u.id.clone()) else {
        return error(StatusCode::NOT_FOUND, format!("no user {id}"));
    };
    match org.user_mut(&uid) {
        Some(u) => {
            u.set_status(doc.status, now());
            json(StatusCode::OK, views::user_json(&base, u, LinkDetail::Full))
        }
        None => error(StatusCode::NOT_FOUND, format!("no user {id}")),
    }
}

async fn inject_events(State(app): State<Arc<App>>, AdminBody(body): AdminBody) -> Response {
    match serde_json::from_slice::<InjectDoc>(&body) {
        Ok(doc) => match inject::inject(&mut app.org(), &doc.events) {
            Ok(uuids) => ok(StatusCode::OK, &serde_json::json!({ "uuids": uuids })),
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        },
        Err(e) => error(StatusCode::BAD_REQUEST, format!("invalid events: {e}")),
    }
}

async fn clear_events(State(app): State<Arc<App>>) -> Response {
    app.org().events.clear();
    no_content()
}

async fn log_stats(State(app): State<Arc<App>>) -> Response {
    let n = app.org().events.len();
    ok(StatusCode::OK, &serde_json::json!({ "events": n }))
}

async fn list_clients(State(app): State<Arc<App>>) -> Response {
    ok(StatusCode::OK, &app.org().oauth.clients())
}

async fn register_client(State(app): State<Arc<App>>, AdminBody(body): AdminBody) -> Response {
    match serde_json::from_slice::<ClientSpec>(&body) {
        Ok(client) => match app.org().oauth.register(client.clone()) {
            Ok(()) => ok(StatusCode::CREATED, &client),
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        },
        Err(e) => error(StatusCode::BAD_REQUEST, format!("invalid client: {e}")),
    }
}

async fn oauth_stats(State(app): State<Arc<App>>) -> Response {
    ok(StatusCode::OK, &app.org().oauth.stats())
}

async fn revoke_tokens(State(app): State<Arc<App>>) -> Response {
    app.org().oauth.revoke_all();
    no_content()
}

fn doc_of(s: &RateLimitSettings) -> RateLimitsDoc {
    RateLimitsDoc {
        buckets: Some(s.buckets.clone()),
        concurrency_limit: Some(s.concurrency_limit),
        window_ms: Some(u64::try_from(s.window.as_millis()).unwrap_or(u64::MAX)),
    }
}
