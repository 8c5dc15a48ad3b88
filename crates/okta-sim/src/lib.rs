//! The Okta org simulator: an independent implementation of Okta's side of the REST API.
//!
//! It serves the users, lifecycle, groups and System Log endpoints of Okta's Management API with Okta's
//! JSON shapes, error bodies, cursor paging, rate-limit headers and 429s, so the gateway can
//! be developed, demonstrated and tested without a real org. Under `/__sim/` it also offers
//! an unauthenticated admin API (request log, fault injection and fault modes, seeding, budgets)
//! for tests.
//!
//! Modules: [`state`] holds the org, [`users`], [`lifecycle`] and [`groups`] implement the
//! endpoints, [`expr`] parses `search`/`filter`, [`paging`] does cursors and `link` headers,
//! [`rate_limit`] the budgets, [`pipeline`] the per-request flow, [`faults`] and
//! [`fault_modes`] the injected failures, [`connection`] the connections a request can drop
//! unanswered, [`admin`] the `/__sim/` API,
//! [`seed`] and [`demo`] the initial contents, [`devices`] the device registry. The System Log lives in [`event_log`] (store and
//! cursors), [`log_event`] (the `LogEvent` shape), [`logs`] (`GET /api/v1/logs`) and [`inject`]
//! (events described by tests, demos and seeds). [`oauth`] is the org authorization server
//! (`/oauth2/v1/token`, private_key_jwt, DPoP) and the scope checks on access tokens, with
//! [`jose`] for JWS verification. Nothing here uses the gateway's Okta client or API modules.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use connection::{Peer, ResettableListener};
use fault_modes::FaultModes;

pub mod admin;
pub mod audit;
pub mod connection;
pub mod demo;
pub mod devices;
pub mod errors;
pub mod event_log;
pub mod expr;
pub mod fault_modes;
pub mod faults;
pub mod groups;
pub mod http;
pub mod ids;
pub mod inject;
pub mod jose;
pub mod journal;
pub mod lifecycle;
pub mod log_event;
pub mod logs;
pub mod oauth;
pub mod paging;
pub mod pipeline;
pub mod rate_limit;
pub mod seed;
pub mod standalone;
pub mod state;
pub mod users;
pub mod views;

/// Everything needed to start a simulator.
#[derive(Clone)]
pub struct SimulatorSettings {
    /// The SSWS token the simulator accepts (`Authorization: SSWS <api_token>`).
    pub api_token: String,
    /// Initial org contents.
    pub seed: SeedSource,
    /// Per-bucket budgets and the concurrency cap.
    pub rate_limits: RateLimitSettings,
    /// Fault modes in effect from the start (see [`fault_modes`]).
    pub fault_modes: FaultModes,
}

impl fmt::Debug for SimulatorSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatorSettings")
            .field("api_token", &"<redacted>")
            .field("seed", &self.seed)
            .field("rate_limits", &self.rate_limits)
            .field("fault_modes", &self.fault_modes)
            .finish()
    }
}

impl Default for SimulatorSettings {
    /// Token `sim-demo-token`, the demo org, Okta's Enterprise budgets and no fault modes.
    fn default() -> Self {
        SimulatorSettings {
            api_token: "sim-demo-token".to_owned(),
            seed: SeedSource::Demo,
            rate_limits: RateLimitSettings::default(),
            fault_modes: FaultModes::default(),
        }
    }
}

/// Where the initial org contents come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedSource {
    /// The built-in demo org (see [`demo`]): stable ids, mixed statuses, a few groups.
    Demo,
    /// Only the built-in `Everyone` group.
    Empty,
    /// A seed document in YAML or JSON (format in [`seed`]).
    File(PathBuf),
}

/// Rate-limit budgets: a window, a concurrency cap and per-bucket limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Length of each bucket's window (Okta: 60 s, starting at the bucket's first request).
    pub window: Duration,
    /// Maximum simultaneous in-flight `/api` requests (Okta: 75).
    pub concurrency_limit: u32,
    /// Buckets; see [`rate_limit::find_bucket`] for how a request picks one.
    pub buckets: Vec<BucketLimit>,
}

impl Default for RateLimitSettings {
    /// Okta's historical Enterprise table, 60 s windows, 75 concurrent requests.
    fn default() -> Self {
        RateLimitSettings {
            window: Duration::from_secs(60),
            concurrency_limit: 75,
            buckets: rate_limit::enterprise_buckets(),
        }
    }
}

impl RateLimitSettings {
    /// Budgets so large that tests never hit them.
    pub fn unlimited() -> Self {
        RateLimitSettings {
            window: Duration::from_secs(60),
            concurrency_limit: 1_000_000,
            buckets: vec![BucketLimit {
                name: "unlimited".to_owned(),
                method: None,
                path_prefix: "/".to_owned(),
                limit: 1_000_000_000,
            }],
        }
    }
}

/// One rate-limit bucket entry. Entries with the same `name` share one counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketLimit {
    /// Bucket name; entries sharing a name share a counter (e.g. users create + list).
    pub name: String,
    /// HTTP method this entry applies to; `None` = any method.
    #[serde(default)]
    pub method: Option<String>,
    /// A path ending in `/` matches every longer path; otherwise only that exact path.
    pub path_prefix: String,
    /// Requests allowed per window.
    pub limit: u32,
}

/// A running simulator serving in a background task.
pub struct Simulator {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Simulator {
    /// Binds `listen_addr` (port 0 allowed) and serves in a background task.
    pub async fn start(
        listen_addr: SocketAddr,
        settings: SimulatorSettings,
    ) -> anyhow::Result<Simulator> {
        let listener = TcpListener::bind(listen_addr).await?;
        let addr = listener.local_addr()?;
        let router = pipeline::router(settings, &base_url_for(addr))?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_router(listener, router, async move {
            let _ = rx.await;
        }));
        Ok(Simulator {
            addr,
            shutdown: Some(tx),
            task,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, no trailing slash (loopback when bound to a wildcard address).
    pub fn base_url(&self) -> String {
        base_url_for(self.addr)
    }

    /// Stops accepting connections and waits (up to 5 s) for in-flight requests to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let abort = self.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

/// For the standalone subcommand: serve until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    settings: SimulatorSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let router = pipeline::router(settings, &base_url_for(addr))?;
    serve_router(listener, router, shutdown).await
}

/// Serves `router` on `listener`, each connection resettable by its requests.
async fn serve_router(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(
        ResettableListener::new(listener),
        router.into_make_service_with_connect_info::<Peer>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}

/// The base URL clients should use for `addr`.
fn base_url_for(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}
