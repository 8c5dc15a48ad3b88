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

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::fault_modes::FaultModes;
use super::faults::Fault;
use super::http::segments;
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

/// Serves one admin request.
pub async fn handle(app: &App, req: Request) -> Response {
    let method = req.method().clone();
    let segs = segments(req.uri().path());
    let headers = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), MAX_ADMIN_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body too large or unreadable",
            );
        }
    };
    let text = String::from_utf8_lossy(&body);
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (s.as_slice(), method) {
        (["__sim", "requests"], Method::GET) => ok(StatusCode::OK, &app.journal.list()),
        (["__sim", "requests"], Method::DELETE) => {
            app.journal.clear();
            no_content()
        }
        (["__sim", "faults"], Method::GET) => ok(StatusCode::OK, &app.faults.list()),
        (["__sim", "faults"], Method::POST) => match serde_json::from_slice::<Fault>(&body) {
            Ok(f) => match f.validate() {
                Ok(()) => {
                    app.faults.push(f.clone());
                    ok(StatusCode::CREATED, &f)
                }
                Err(e) => error(StatusCode::BAD_REQUEST, e),
            },
            Err(e) => error(StatusCode::BAD_REQUEST, format!("invalid fault: {e}")),
        },
        (["__sim", "faults"], Method::DELETE) => {
            app.faults.clear();
            no_content()
        }
        (["__sim", "fault-modes"], Method::GET) => ok(StatusCode::OK, &app.fault_modes.current()),
        (["__sim", "fault-modes"], Method::PUT) => match FaultModes::parse(&text) {
            Ok(modes) => {
                app.fault_modes.replace(&modes);
                ok(StatusCode::OK, &app.fault_modes.current())
            }
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        },
        (["__sim", "fault-modes"], Method::DELETE) => {
            app.fault_modes.replace(&FaultModes::default());
            no_content()
        }
        (["__sim", "seed"], Method::POST) => match seed::parse(&text) {
            Ok(doc) => match seed::apply(&mut app.org(), &doc, None) {
                Ok(result) => ok(StatusCode::OK, &result),
                Err(e) => error(StatusCode::BAD_REQUEST, e),
            },
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        },
        (["__sim", "latency"], Method::PUT) => {
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
        (["__sim", "rate-limits"], Method::GET) => {
            ok(StatusCode::OK, &doc_of(&app.limiter.settings()))
        }
        (["__sim", "rate-limits"], Method::PUT) => {
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
        (["__sim", "users", id, "status"], Method::POST) => {
            let doc = match serde_json::from_slice::<StatusDoc>(&body) {
                Ok(d) => d,
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid status: {e}")),
            };
            let mut org = app.org();
            let Some(uid) = org.find_user(id).map(|u| u.id.clone()) else {
                return error(StatusCode::NOT_FOUND, format!("no user {id}"));
            };
            let base = base_of(&headers, &app.fallback_base);
            match org.user_mut(&uid) {
                Some(u) => {
                    u.set_status(doc.status, now());
                    json(StatusCode::OK, views::user_json(&base, u, LinkDetail::Full))
                }
                None => error(StatusCode::NOT_FOUND, format!("no user {id}")),
            }
        }
        (["__sim", "logs", "events"], Method::POST) => {
            match serde_json::from_slice::<InjectDoc>(&body) {
                Ok(doc) => match inject::inject(&mut app.org(), &doc.events) {
                    Ok(uuids) => ok(StatusCode::OK, &serde_json::json!({ "uuids": uuids })),
                    Err(e) => error(StatusCode::BAD_REQUEST, e),
                },
                Err(e) => error(StatusCode::BAD_REQUEST, format!("invalid events: {e}")),
            }
        }
        (["__sim", "logs", "events"], Method::DELETE) => {
            app.org().events.clear();
            no_content()
        }
        (["__sim", "logs", "stats"], Method::GET) => {
            let n = app.org().events.len();
            ok(StatusCode::OK, &serde_json::json!({ "events": n }))
        }
        (["__sim", "oauth", "clients"], Method::GET) => {
            ok(StatusCode::OK, &app.org().oauth.clients())
        }
        (["__sim", "oauth", "clients"], Method::POST) => {
            match serde_json::from_slice::<ClientSpec>(&body) {
                Ok(client) => match app.org().oauth.register(client.clone()) {
                    Ok(()) => ok(StatusCode::CREATED, &client),
                    Err(e) => error(StatusCode::BAD_REQUEST, e),
                },
                Err(e) => error(StatusCode::BAD_REQUEST, format!("invalid client: {e}")),
            }
        }
        (["__sim", "oauth", "stats"], Method::GET) => ok(StatusCode::OK, &app.org().oauth.stats()),
        (["__sim", "oauth", "tokens"], Method::DELETE) => {
            app.org().oauth.revoke_all();
            no_content()
        }
        (
            [
                "__sim",
                "requests" | "faults" | "fault-modes" | "seed" | "rate-limits",
            ]
            | ["__sim", "oauth", "clients" | "stats" | "tokens"]
            | ["__sim", "users", _, "status"]
            | ["__sim", "logs", "events" | "stats"],
            _,
        ) => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        _ => error(StatusCode::NOT_FOUND, "unknown admin path"),
    }
}

fn base_of(headers: &axum::http::HeaderMap, fallback: &str) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        })
        .filter(|h| !h.is_empty())
        .map(|h| format!("http://{h}"))
        .unwrap_or_else(|| fallback.to_owned())
}

fn doc_of(s: &RateLimitSettings) -> RateLimitsDoc {
    RateLimitsDoc {
        buckets: Some(s.buckets.clone()),
        concurrency_limit: Some(s.concurrency_limit),
        window_ms: Some(u64::try_from(s.window.as_millis()).unwrap_or(u64::MAX)),
    }
}
