//! The per-request flow of `/api` calls: a dropped connection (connection-reset fault mode),
//! concurrency slots, rate-limit bucket (or a rate-limit storm), auth (SSWS, or `Bearer`/`DPoP`
//! access tokens with their scopes, see [`super::oauth`]), injected faults and server-error
//! fault modes, routing to a handler, then the common headers and the request log. `/oauth2/v1/token` goes to
//! the simulated authorization server.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::Response;

use super::connection::Peer;
use super::errors::OktaError;
use super::fault_modes::FaultModeState;
use super::faults::Faults;
use super::http::{Ctx, Handled, Reply, RequestMeta, segments};
use super::journal::{Journal, RequestRecord};
use super::rate_limit::{RateLimiter, Verdict};
use super::state::Org;
use super::{SimulatorSettings, admin, devices, groups, lifecycle, logs, oauth, seed, users};

/// Largest request body read; larger bodies are rejected as malformed.
pub const MAX_BODY: usize = 1024 * 1024;

/// The status the request log shows for a request whose connection was dropped unanswered.
pub const CONNECTION_RESET_STATUS: u16 = 0;

/// Shared state of one simulator.
pub struct App {
    /// The accepted SSWS token.
    pub token: String,
    /// The org.
    pub org: Mutex<Org>,
    /// Budgets and counters.
    pub limiter: RateLimiter,
    /// Pending injected faults.
    pub faults: Faults,
    /// Fault modes in effect.
    pub fault_modes: FaultModeState,
    /// Request log.
    pub journal: Journal,
    /// Base URL used in links when a request has no usable `Host` header.
    pub fallback_base: String,
    /// Added to every `/api` answer, in milliseconds: an upstream as far away as a real org.
    pub latency_ms: std::sync::atomic::AtomicU64,
}

impl App {
    /// Locks the org (a poisoned lock is recovered: the org has no multi-step invariants
    /// that a panic could have left half-done, and handlers do not panic).
    pub fn org(&self) -> MutexGuard<'_, Org> {
        self.org.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The base URL for links in responses to this request.
    fn base(&self, headers: &HeaderMap) -> String {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.len() <= 255
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
            })
            .map(|h| format!("http://{h}"))
            .unwrap_or_else(|| self.fallback_base.clone())
    }
}

/// Builds the router serving the Okta API and the admin API.
pub fn router(settings: SimulatorSettings, base: &str) -> anyhow::Result<Router> {
    let org = seed::initial_org(&settings.seed)?;
    settings
        .fault_modes
        .validate()
        .map_err(anyhow::Error::msg)?;
    let app = App {
        token: settings.api_token,
        org: Mutex::new(org),
        limiter: RateLimiter::new(settings.rate_limits),
        faults: Faults::default(),
        fault_modes: FaultModeState::new(&settings.fault_modes),
        journal: Journal::default(),
        fallback_base: base.to_owned(),
        latency_ms: std::sync::atomic::AtomicU64::new(0),
    };
    Ok(Router::new().fallback(handle).with_state(Arc::new(app)))
}

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    if path == "/__sim" || path.starts_with("/__sim/") {
        return admin::handle(&app, req).await;
    }
    if path == "/api" || path.starts_with("/api/") {
        return api(&app, req, path).await;
    }
    if path == oauth::TOKEN_PATH {
        return token_endpoint(&app, req).await;
    }
    let mut resp = render(OktaError::new("E0000008", "").into());
    common_headers(resp.headers_mut(), &super::ids::request_id(), None);
    resp
}

async fn api(app: &App, req: Request, path: String) -> Response {
    let method = req.method().clone();
    let raw_query = req.uri().query().map(str::to_owned);
    let traceparent = req
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let request_id = super::ids::request_id();
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0.clone());
    let meta = RequestMeta {
        request_id: request_id.clone(),
        ip: peer
            .as_ref()
            .map(|p| p.addr.ip().to_string())
            .unwrap_or_else(|| "127.0.0.1".to_owned()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned),
        path: path.clone(),
        url: match &raw_query {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        },
    };
    // A dropped connection is decided first: such a request never reaches the org.
    let dropped = peer
        .as_ref()
        .filter(|_| app.fault_modes.connection_reset(method.as_str(), &path));
    let answer = match dropped {
        Some(peer) => {
            peer.reset();
            None
        }
        None => Some(answer(app, req, &method, &path, raw_query.as_deref(), meta).await),
    };
    app.journal.push(RequestRecord {
        method: method.as_str().to_owned(),
        path,
        query: raw_query,
        status: answer
            .as_ref()
            .map_or(CONNECTION_RESET_STATUS, |(reply, _)| reply.status.as_u16()),
        traceparent,
        request_id: request_id.clone(),
    });
    let Some((reply, verdict)) = answer else {
        // Never written: the connection is cut.
        return Response::default();
    };
    let mut resp = render(reply);
    common_headers(resp.headers_mut(), &request_id, Some(verdict));
    resp
}

/// The answer to an `/api` request and its rate-limit verdict: concurrency slots, latency,
/// bucket (or rate-limit storm), auth, injected faults and fault modes, then the handler.
async fn answer(
    app: &App,
    req: Request,
    method: &Method,
    path: &str,
    raw_query: Option<&str>,
    meta: RequestMeta,
) -> (Reply, Verdict) {
    let m = method.as_str();
    let slots = app
        .limiter
        .enter()
        .and_then(|org_slot| Ok((org_slot, app.fault_modes.enter(m, path)?)));
    let _slots = match slots {
        Ok(slots) => slots,
        Err(v) => return (OktaError::new("E0000047", "").into(), v),
    };
    // Upstream latency counts as time in flight, as it does for Okta's concurrency limit.
    let latency_ms = app.latency_ms.load(std::sync::atomic::Ordering::Relaxed);
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    let v = match app.fault_modes.rate_limit_storm(m, path) {
        Some(storm_end) => app.limiter.spent(m, path, storm_end),
        None => app.limiter.check(m, path),
    };
    let reply = if !v.allowed {
        OktaError::new("E0000047", "").into()
    } else if let Err(reply) = authenticate(app, method, path, req.headers()) {
        reply
    } else if let Some(f) = app.faults.take(m, path) {
        if f.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(f.delay_ms.min(600_000))).await;
        }
        f.reply()
    } else if let Some(reply) = app.fault_modes.server_error(m, path) {
        reply
    } else {
        let lost_answer = app.faults.take_commit_then_fail(m, path);
        let base = app.base(req.headers());
        let body = if method == Method::POST || method == Method::PUT {
            axum::body::to_bytes(req.into_body(), MAX_BODY).await.ok()
        } else {
            Some(Bytes::new())
        };
        let handled = match body {
            None => OktaError::new("E0000003", "").into(),
            Some(body) => {
                let mut ctx = Ctx::new(base, raw_query, body);
                ctx.meta = meta;
                dispatch(app, method, path, &ctx).unwrap_or_else(Reply::from)
            }
        };
        match lost_answer {
            Some(f) => {
                if f.delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(f.delay_ms.min(600_000))).await;
                }
                f.reply()
            }
            None => handled,
        }
    };
    (reply, v)
}

/// `Authorization: SSWS <token>` (exactly the configured token), or `Bearer`/`DPoP <access
/// token>` issued by the simulated authorization server and granting the operation's scope.
fn authenticate(app: &App, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), Reply> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let (scheme, credential) = value.split_once(' ').unwrap_or((value, ""));
    let mut org = app.org();
    org.oauth.count_scheme(scheme);
    if scheme == "SSWS" && credential == app.token {
        return Ok(());
    }
    if scheme.eq_ignore_ascii_case("Bearer") || scheme.eq_ignore_ascii_case("DPoP") {
        let segs = segments(path);
        let s: Vec<&str> = segs.iter().map(String::as_str).collect();
        let base = app.base(headers);
        let proof = headers.get("dpop").and_then(|h| h.to_str().ok());
        return org.oauth.authorize(&oauth::ResourceRequest {
            scheme,
            token: credential.trim(),
            proof,
            method: method.as_str(),
            htu: &format!("{base}{path}"),
            required_scope: oauth::required_scope(method.as_str(), &s),
            base: &base,
        });
    }
    Err(OktaError::new("E0000011", "").into())
}

/// `POST /oauth2/v1/token` (form-encoded; OAuth error bodies).
async fn token_endpoint(app: &App, req: Request) -> Response {
    let method = req.method().clone();
    let headers = req.headers().clone();
    let reply = if method != Method::POST {
        Reply::json(
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            r#"{"error":"invalid_request","error_description":"Use POST."}"#.to_owned(),
        )
    } else {
        match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
            Ok(body) => {
                let token_url = format!("{}{}", app.base(&headers), oauth::TOKEN_PATH);
                app.org().oauth.token(&token_url, &headers, &body)
            }
            Err(_) => Reply::json(
                axum::http::StatusCode::BAD_REQUEST,
                r#"{"error":"invalid_request","error_description":"Body too large."}"#.to_owned(),
            ),
        }
    };
    let request_id = super::ids::request_id();
    app.journal.push(RequestRecord {
        method: method.as_str().to_owned(),
        path: oauth::TOKEN_PATH.to_owned(),
        query: None,
        status: reply.status.as_u16(),
        traceparent: headers
            .get("traceparent")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        request_id: request_id.clone(),
    });
    let mut resp = render(reply);
    common_headers(resp.headers_mut(), &request_id, None);
    resp
}

/// Turns a reply into an HTTP response (without the common headers).
pub fn render(reply: Reply) -> Response {
    let has_body = reply.body.is_some();
    let mut resp = Response::new(reply.body.map(Body::from).unwrap_or_else(Body::empty));
    *resp.status_mut() = reply.status;
    let h = resp.headers_mut();
    if has_body {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    for l in reply.links {
        if let Ok(v) = HeaderValue::from_str(&l) {
            h.append(header::LINK, v);
        }
    }
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            h.insert(k, v);
        }
    }
    resp
}

fn set(h: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.entry(HeaderName::from_static(name)).or_insert(v);
    }
}

/// Adds `x-okta-request-id`, `date`, `cache-control` and the `x-rate-limit-*` headers
/// (headers already set, e.g. by an injected fault, win).
fn common_headers(h: &mut HeaderMap, request_id: &str, verdict: Option<Verdict>) {
    set(h, "x-okta-request-id", request_id.to_owned());
    set(
        h,
        "date",
        chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string(),
    );
    set(h, "cache-control", "no-cache, no-store".to_owned());
    if let Some(v) = verdict {
        set(h, "x-rate-limit-limit", v.limit.to_string());
        set(h, "x-rate-limit-remaining", v.remaining.to_string());
        set(h, "x-rate-limit-reset", v.reset.to_string());
    }
}

/// Routes a request to its handler: unknown paths are E0000008, wrong methods E0000022.
fn dispatch(app: &App, method: &Method, raw_path: &str, ctx: &Ctx) -> Handled {
    let segs = segments(raw_path);
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = method.as_str();
    let not_allowed = || Err(OktaError::new("E0000022", ""));
    let mut org = app.org();
    let org = &mut *org;
    match s.as_slice() {
        ["api", "v1", "users"] => match m {
            "GET" => users::list(org, ctx),
            "POST" => users::create(org, ctx),
            _ => not_allowed(),
        },
        ["api", "v1", "users", id] => match m {
            "GET" => users::get(org, ctx, id),
            "POST" => users::update(org, ctx, id, false),
            "PUT" => users::update(org, ctx, id, true),
            "DELETE" => users::delete(org, ctx, id),
            _ => not_allowed(),
        },
        ["api", "v1", "users", id, "groups"] => match m {
            "GET" => users::groups_of(org, ctx, id),
            _ => not_allowed(),
        },
        ["api", "v1", "users", id, "devices"] => match m {
            "GET" => devices::of_user(org, ctx, id),
            _ => not_allowed(),
        },
        ["api", "v1", "users", id, "lifecycle", op] if lifecycle::is_known(op) => match m {
            "POST" => lifecycle::run(org, ctx, id, op),
            _ => not_allowed(),
        },
        ["api", "v1", "groups"] => match m {
            "GET" => groups::list(org, ctx),
            "POST" => groups::create(org, ctx),
            _ => not_allowed(),
        },
        ["api", "v1", "groups", gid] => match m {
            "GET" => groups::get(org, ctx, gid),
            "PUT" => groups::replace(org, ctx, gid),
            "DELETE" => groups::delete(org, ctx, gid),
            _ => not_allowed(),
        },
        ["api", "v1", "groups", gid, "users"] => match m {
            "GET" => groups::members(org, ctx, gid),
            _ => not_allowed(),
        },
        ["api", "v1", "groups", gid, "users", uid] => match m {
            "PUT" => groups::add_member(org, ctx, gid, uid),
            "DELETE" => groups::remove_member(org, ctx, gid, uid),
            _ => not_allowed(),
        },
        ["api", "v1", "devices"] => match m {
            "GET" => devices::list(org, ctx),
            _ => not_allowed(),
        },
        ["api", "v1", "devices", id] => match m {
            "GET" => devices::get(org, ctx, id),
            "DELETE" => devices::delete(org, ctx, id),
            _ => not_allowed(),
        },
        ["api", "v1", "devices", id, "users"] => match m {
            "GET" => devices::users(org, ctx, id),
            _ => not_allowed(),
        },
        ["api", "v1", "devices", id, "lifecycle", op] if devices::is_known(op) => match m {
            "POST" => devices::lifecycle(org, ctx, id, op),
            _ => not_allowed(),
        },
        ["api", "v1", "logs"] => match m {
            "GET" => logs::list(&org.events, ctx),
            _ => not_allowed(),
        },
        _ => Err(OktaError::new("E0000008", "")),
    }
}
