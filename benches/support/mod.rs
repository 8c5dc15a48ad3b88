//! What both benchmarks share: the simulator and the gateway as processes of the release binary,
//! a minimal OTLP collector in a process of its own, and GetUser callers.
#![allow(dead_code)] // each benchmark uses a different part

pub mod load;

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use identity_gateway::proto::user_service_client::UserServiceClient;
use identity_gateway::proto::{GetUserRequest, get_user_request};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use serde_json::json;
use tonic::server::NamedService;
use tonic::transport::{Channel, Endpoint};

/// The release binary: both the simulator and the gateway.
pub const BINARY: &str = env!("CARGO_BIN_EXE_identity-gateway");
/// The SSWS token the benchmark simulator accepts.
pub const TOKEN: &str = "bench-token-not-a-secret";
/// The load generator authenticates as a production caller would, with an API key.
const API_KEY: &str = "bench-api-key-0123456789abcdef0123456789abcdef";
/// Set on the benchmark's own binary to make it the OTLP collector instead.
const COLLECTOR_ROLE: &str = "BENCH_ROLE_OTLP_COLLECTOR";
const COLLECTOR_LISTENING: &str = "otlp collector on ";
const COLLECTOR_SPANS: &str = "spans received: ";

/// A child process whose stdout lines go to `on_line` until one of them yields a value, which
/// is returned; later lines go to `on_line` too, and their values are dropped.
pub fn spawn_and_find(
    mut command: Command,
    startup: Duration,
    on_line: impl Fn(&str) -> Option<String> + Send + 'static,
) -> (Child, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(found) = on_line(&line) {
                let _ = sender.send(found);
            }
        }
    });
    let found = receiver
        .recv_timeout(startup)
        .expect("the process printed its address");
    (child, found)
}

/// The simulator's demo org, with its rate limits lifted: the benchmarks measure the gateway,
/// not Okta's budgets.
pub async fn spawn_simulator() -> (Child, String) {
    let mut command = Command::new(BINARY);
    command.args(["simulate", "--listen", "127.0.0.1:0", "--token", TOKEN]);
    let (child, okta_url) = spawn_and_find(command, Duration::from_secs(30), |line| {
        line.strip_prefix("Okta org simulator on ")
            .map(str::to_owned)
    });
    simulator_admin(
        reqwest::Method::PUT,
        &format!("{okta_url}/__sim/rate-limits"),
        json!({"buckets": [{"name": "all", "method": null, "path_prefix": "/api/", "limit": 1_000_000_000u64}], "concurrency_limit": 1_000_000}),
    )
    .await;
    (child, okta_url)
}

/// Sends `body` to one of the simulator's `/__sim/` admin endpoints; returns its JSON answer
/// (`null` when it has none).
async fn simulator_admin(
    method: reqwest::Method,
    url: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let answer = reqwest::Client::new()
        .request(method, url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    serde_json::from_slice(&answer).unwrap_or(serde_json::Value::Null)
}

/// Sets the simulator's added upstream latency.
pub async fn set_upstream_latency(okta_url: &str, latency_ms: u64) {
    simulator_admin(
        reqwest::Method::PUT,
        &format!("{okta_url}/__sim/latency"),
        json!({"delay_ms": latency_ms}),
    )
    .await;
}

/// Adds `count` users to the simulator's org and returns their ids, so that callers can each
/// read a user of their own: concurrent reads of one user share one Okta call (and its span).
pub async fn seed_users(okta_url: &str, count: usize) -> Vec<String> {
    let logins: Vec<String> = (0..count)
        .map(|index| format!("bench.user.{index}@example.com"))
        .collect();
    let users: Vec<serde_json::Value> =
        logins.iter().map(|login| json!({"login": login})).collect();
    let seeded = simulator_admin(
        reqwest::Method::POST,
        &format!("{okta_url}/__sim/seed"),
        json!({ "users": users }),
    )
    .await;
    logins
        .iter()
        .map(|login| seeded["users"][login].as_str().unwrap().to_owned())
        .collect()
}

/// The keys file and policy the gateway authenticates and authorizes the load generator with.
pub struct Callers {
    _dir: tempfile::TempDir,
    keys: std::path::PathBuf,
    policy: std::path::PathBuf,
}

impl Callers {
    /// Writes both files to a temporary directory, removed when dropped.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("api-keys.yaml");
        std::fs::write(
            &keys,
            format!(
                "- name: bench\n  sha256: {}\n",
                identity_gateway::auth::hash_api_key(API_KEY)
            ),
        )
        .unwrap();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(
            &policy,
            "roles:\n  reader:\n    rpcs: [\"identity.v1.UserService/GetUser\"]\n\
             callers:\n  - identity: \"apikey:bench\"\n    roles: [reader]\n",
        )
        .unwrap();
        Self {
            _dir: dir,
            keys,
            policy,
        }
    }
}

/// The gateway's environment, in front of `okta_url`, exporting every span to `otlp_endpoint`
/// when there is one, and tracing off otherwise.
pub fn gateway_environment(
    command: &mut Command,
    okta_url: &str,
    otlp_endpoint: Option<&str>,
    callers: &Callers,
) {
    command
        .env_clear()
        .env("IDGW_OKTA__ORG_URL", okta_url)
        .env("IDGW_OKTA__API_TOKEN", TOKEN)
        .env("IDGW_GRPC__LISTEN_ADDR", "127.0.0.1:0")
        .env("IDGW_GRPC__DRAIN_DELAY_MS", "0")
        .env("IDGW_LOG__FORMAT", "json")
        .env("IDGW_AUTH__API_KEYS_FILE", &callers.keys)
        .env("IDGW_AUTHZ__POLICY_FILE", &callers.policy)
        // One caller identity drives every concurrency level here: fairness must not cap it.
        .env("IDGW_FAIRNESS__MAX_IN_FLIGHT_PER_CALLER", "4096")
        // Okta's own ceiling rather than the default share of it, as rate limits are lifted:
        // with a user per caller, 64 callers keep 64 Okta requests in flight.
        .env("IDGW_OKTA__MAX_CONCURRENT_REQUESTS", "75");
    // Replicas' coordination (the shared rate-limit ledger, callers' and Okta's in-flight
    // counts) costs round trips to its server: `BENCH_REDIS_URL` measures them.
    if let Some(url) = std::env::var_os("BENCH_REDIS_URL") {
        command.env("IDGW_COORDINATION__REDIS_URL", url);
    }
    if let Some(endpoint) = otlp_endpoint {
        command
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .env("OTEL_TRACES_SAMPLER", "always_on");
    }
}

/// Starts the gateway `command` (see [`gateway_environment`]) and waits until it listens.
pub fn spawn_gateway(command: Command, startup: Duration) -> (Child, SocketAddr) {
    let (child, address) = spawn_and_find(command, startup, |line| {
        let record: serde_json::Value = serde_json::from_str(line).ok()?;
        (record["message"] == "grpc server listening")
            .then(|| record["address"].as_str().unwrap_or("").to_owned())
    });
    (child, address.parse().unwrap())
}

/// `count` connections to the gateway, for callers to share (HTTP/2 multiplexes them).
pub async fn channels(address: SocketAddr, count: usize) -> Vec<Channel> {
    futures::future::join_all((0..count).map(|_| async {
        Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }))
    .await
}

/// One GetUser RPC, with the API key of [`Callers`]; whether it succeeded.
pub async fn get_user(channel: Channel, user_id: &str) -> bool {
    let mut request = tonic::Request::new(GetUserRequest {
        user: Some(get_user_request::User::Id(user_id.to_owned())),
    });
    request.metadata_mut().insert(
        "x-api-key",
        tonic::metadata::MetadataValue::from_static(API_KEY),
    );
    UserServiceClient::new(channel)
        .get_user(request)
        .await
        .is_ok()
}

/// CPU time a process has used so far (user plus system), from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |index: usize| -> u64 {
        fields
            .get(index)
            .and_then(|field| field.parse().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; Linux counts
    // them in USER_HZ, 100 per second on every architecture it supports.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// A `/proc/<pid>/status` memory field, in KiB.
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Stops a child and waits for it.
pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

// === the OTLP collector ===

/// An OTLP collector running as a process of its own, as a real one runs on its own machine.
/// It counts spans without decoding them, so on the benchmark's shared cores it takes as little
/// from the gateway as a collector can.
pub struct Collector {
    /// The process, for its CPU time.
    pub child: Child,
    /// `http://127.0.0.1:PORT`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    spans: Arc<AtomicU64>,
}

impl Collector {
    /// Starts this benchmark's own binary in the collector role.
    pub fn spawn() -> Self {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.env(COLLECTOR_ROLE, "1");
        let spans = Arc::new(AtomicU64::new(0));
        let counted = spans.clone();
        let (child, endpoint) = spawn_and_find(command, Duration::from_secs(30), move |line| {
            if let Some(total) = line.strip_prefix(COLLECTOR_SPANS) {
                counted.store(total.parse().unwrap_or(0), Ordering::Relaxed);
            }
            line.strip_prefix(COLLECTOR_LISTENING).map(str::to_owned)
        });
        Self {
            child,
            endpoint,
            spans,
        }
    }

    /// Spans received so far.
    pub fn spans(&self) -> u64 {
        self.spans.load(Ordering::Relaxed)
    }
}

/// In the collector role (see [`Collector::spawn`]), serves OTLP traces until killed and never
/// returns; otherwise returns at once. Call first thing in `main`.
pub async fn serve_collector_if_asked() {
    if std::env::var_os(COLLECTOR_ROLE).is_none() {
        return;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!(
        "{COLLECTOR_LISTENING}http://{}",
        listener.local_addr().unwrap()
    );
    tonic::transport::Server::builder()
        .add_service(SpanSink::default())
        .add_service(MetricsServiceServer::new(MetricsSink))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
        .await
        .unwrap();
    std::process::exit(0);
}

/// The metrics service of the collector role: accepts the gateway's metrics and drops them.
struct MetricsSink;

#[tonic::async_trait]
impl MetricsService for MetricsSink {
    async fn export(
        &self,
        _: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// `ExportTraceServiceRequest` read only as deep as needed to count its spans.
#[derive(Clone, PartialEq, prost::Message)]
struct SpanBatches {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<ResourceSpanBatch>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ResourceSpanBatch {
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<ScopeSpanBatch>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ScopeSpanBatch {
    /// Each span, left encoded.
    #[prost(bytes = "vec", repeated, tag = "2")]
    spans: Vec<Vec<u8>>,
}

/// The trace service of the collector role: counts spans and prints the running total.
#[derive(Clone, Default)]
struct SpanSink {
    received: Arc<AtomicU64>,
}

impl NamedService for SpanSink {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl tonic::server::UnaryService<SpanBatches> for SpanSink {
    type Response = ExportTraceServiceResponse;
    type Future = std::future::Ready<Result<tonic::Response<Self::Response>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<SpanBatches>) -> Self::Future {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|resource| resource.scope_spans.iter())
            .map(|scope| scope.spans.len())
            .sum();
        let total = self.received.fetch_add(spans as u64, Ordering::Relaxed) + spans as u64;
        println!("{COLLECTOR_SPANS}{total}");
        std::future::ready(Ok(tonic::Response::new(
            ExportTraceServiceResponse::default(),
        )))
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for SpanSink {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let sink = self.clone();
        Box::pin(async move {
            let codec =
                tonic_prost::ProstCodec::<ExportTraceServiceResponse, SpanBatches>::default();
            Ok(tonic::server::Grpc::new(codec).unary(sink, request).await)
        })
    }
}
