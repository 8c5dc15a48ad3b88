//! Load benchmark (a measurement, not a test): GetUser through the gateway over gRPC against the
//! same Okta call made directly over HTTP to the simulator, at the same concurrency, on this
//! machine. Reports throughput, p50/p99 latency, the latency the gateway adds, the gateway's
//! memory, and throughput with every span exported against tracing off.
//!
//! Run: `cargo bench --bench gateway` (`BENCH_SECONDS` sets each run's length, default 3).
//! The simulator and the gateway run as separate processes of the release binary; the load
//! generator is this process. Everything stays on 127.0.0.1.
#![allow(clippy::unwrap_used, missing_docs)] // a benchmark binary: a failure aborts the run

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use identity_gateway::proto::user_service_client::UserServiceClient;
use identity_gateway::proto::{GetUserRequest, get_user_request};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use serde_json::json;
use tonic::transport::{Channel, Endpoint};

const BINARY: &str = env!("CARGO_BIN_EXE_identity-gateway");
const TOKEN: &str = "bench-token-not-a-secret";
/// The load generator authenticates as a production caller would, with an API key.
const API_KEY: &str = "bench-api-key-0123456789abcdef0123456789abcdef";
/// A user of the simulator's demo org.
const USER_ID: &str = "00u55tN5556tr55wr2dL";
const CONCURRENCIES: &[usize] = &[1, 16, 64, 256];
const UPSTREAM_LATENCIES_MS: &[u64] = &[0, 50];
/// Callers per gRPC connection (HTTP/2 multiplexes them).
const CALLERS_PER_CHANNEL: usize = 32;

/// Spans received by the benchmark's own OTLP collector.
#[derive(Clone, Default)]
struct SpanCounter(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for SpanCounter {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|resource| resource.scope_spans.iter())
            .map(|scope| scope.spans.len())
            .sum();
        self.0.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A child process whose stdout is scanned for a line, then drained.
fn spawn_and_find(
    mut command: Command,
    find: impl Fn(&str) -> Option<String> + Send + 'static,
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
            if let Some(found) = find(&line) {
                let _ = sender.send(found);
            }
        }
    });
    let found = receiver
        .recv_timeout(Duration::from_secs(30))
        .expect("the process printed its address");
    (child, found)
}

fn spawn_simulator() -> (Child, String) {
    let mut command = Command::new(BINARY);
    command.args(["simulate", "--listen", "127.0.0.1:0", "--token", TOKEN]);
    spawn_and_find(command, |line| {
        line.strip_prefix("Okta org simulator on ")
            .map(str::to_owned)
    })
}

/// The keys file and policy the gateway authenticates and authorizes the load generator with.
struct Callers {
    _dir: tempfile::TempDir,
    keys: std::path::PathBuf,
    policy: std::path::PathBuf,
}

impl Callers {
    fn new() -> Self {
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

fn spawn_gateway(
    okta_url: &str,
    otlp_endpoint: Option<&str>,
    callers: &Callers,
) -> (Child, SocketAddr) {
    let mut command = Command::new(BINARY);
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
        .env("IDGW_FAIRNESS__MAX_IN_FLIGHT_PER_CALLER", "4096");
    if let Some(endpoint) = otlp_endpoint {
        command
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .env("OTEL_TRACES_SAMPLER", "always_on");
    }
    let (child, address) = spawn_and_find(command, |line| {
        let record: serde_json::Value = serde_json::from_str(line).ok()?;
        (record["message"] == "grpc server listening")
            .then(|| record["address"].as_str().unwrap_or("").to_owned())
    });
    (child, address.parse().unwrap())
}

/// A `/proc/<pid>/status` memory field, in KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
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

struct Run {
    throughput: f64,
    p50: Duration,
    p99: Duration,
    errors: u64,
}

fn summarize(mut latencies: Vec<Duration>, errors: u64, elapsed: Duration) -> Run {
    latencies.sort();
    let at = |quantile: f64| {
        latencies
            .get(
                ((latencies.len() as f64 * quantile) as usize)
                    .min(latencies.len().saturating_sub(1)),
            )
            .copied()
            .unwrap_or_default()
    };
    Run {
        throughput: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        errors,
    }
}

async fn drive<F, Fut>(concurrency: usize, length: Duration, call: F) -> Run
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let started = Instant::now();
    let deadline = started + length;
    let tasks: Vec<_> = (0..concurrency)
        .map(|caller| {
            let call = call.clone();
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0u64);
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    if call(caller).await {
                        latencies.push(sent.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for task in tasks {
        let (task_latencies, task_errors) = task.await.unwrap();
        latencies.extend(task_latencies);
        errors += task_errors;
    }
    summarize(latencies, errors, started.elapsed())
}

async fn through_gateway(address: SocketAddr, concurrency: usize, length: Duration) -> Run {
    let channels: Vec<Channel> = futures::future::join_all(
        (0..concurrency.div_ceil(CALLERS_PER_CHANNEL)).map(|_| async {
            Endpoint::from_shared(format!("http://{address}"))
                .unwrap()
                .connect()
                .await
                .unwrap()
        }),
    )
    .await;
    let channels = Arc::new(channels);
    drive(concurrency, length, move |caller| {
        let mut client = UserServiceClient::new(channels[caller % channels.len()].clone());
        async move {
            let mut request = tonic::Request::new(GetUserRequest {
                user: Some(get_user_request::User::Id(USER_ID.to_owned())),
            });
            request
                .metadata_mut()
                .insert("x-api-key", API_KEY.parse().unwrap());
            client.get_user(request).await.is_ok()
        }
    })
    .await
}

async fn direct(okta_url: &str, concurrency: usize, length: Duration) -> Run {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let url = format!("{okta_url}/api/v1/users/{USER_ID}");
    drive(concurrency, length, move |_| {
        let request = http
            .get(&url)
            .header("Authorization", format!("SSWS {TOKEN}"))
            .header("Accept", "application/json");
        async move {
            match request.send().await {
                Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                Err(_) => false,
            }
        }
    })
    .await
}

fn millis(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let length = Duration::from_secs(
        std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    );
    let admin = reqwest::Client::new();
    let (mut simulator, okta_url) = spawn_simulator();
    // No rate limits in the way: the benchmark measures the gateway, not Okta's budgets.
    admin
        .put(format!("{okta_url}/__sim/rate-limits"))
        .json(&json!({"buckets": [{"name": "all", "method": null, "path_prefix": "/api/", "limit": 1_000_000_000u64}], "concurrency_limit": 1_000_000}))
        .send()
        .await
        .unwrap();
    let callers = Callers::new();
    let (mut gateway, address) = spawn_gateway(&okta_url, None, &callers);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_kib = memory_kib(gateway.id(), "VmRSS:");

    println!(
        "Each run: {} s of GetUser, callers looping with no pause.\n",
        length.as_secs()
    );
    println!(
        "| upstream latency | callers | direct req/s | gateway req/s | ratio | direct p50 / p99 ms | gateway p50 / p99 ms | added p99 ms | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for latency in UPSTREAM_LATENCIES_MS {
        admin
            .put(format!("{okta_url}/__sim/latency"))
            .json(&json!({"delay_ms": latency}))
            .send()
            .await
            .unwrap();
        for &concurrency in CONCURRENCIES {
            let straight = direct(&okta_url, concurrency, length).await;
            let gated = through_gateway(address, concurrency, length).await;
            println!(
                "| {latency} ms | {concurrency} | {:.0} | {:.0} | {:.2} | {} / {} | {} / {} | {} | {} |",
                straight.throughput,
                gated.throughput,
                gated.throughput / straight.throughput,
                millis(straight.p50),
                millis(straight.p99),
                millis(gated.p50),
                millis(gated.p99),
                millis(gated.p99.saturating_sub(straight.p99)),
                straight.errors + gated.errors,
            );
        }
    }
    admin
        .put(format!("{okta_url}/__sim/latency"))
        .json(&json!({"delay_ms": 0}))
        .send()
        .await
        .unwrap();

    // Tracing: a second gateway exporting every span to an in-process collector.
    let spans = SpanCounter::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(spans.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let (mut traced_gateway, traced_address) =
        spawn_gateway(&okta_url, Some(&format!("http://{collector}")), &callers);
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "\n| 64 callers | upstream | tracing off req/s (p50 / p99 ms) | every span exported req/s (p50 / p99 ms) | on / off |\n|---|---|---|---|---|"
    );
    for latency in UPSTREAM_LATENCIES_MS {
        admin
            .put(format!("{okta_url}/__sim/latency"))
            .json(&json!({"delay_ms": latency}))
            .send()
            .await
            .unwrap();
        let untraced = through_gateway(address, 64, length).await;
        let traced = through_gateway(traced_address, 64, length).await;
        println!(
            "| 64 | {latency} ms | {:.0} ({} / {}) | {:.0} ({} / {}) | {:.2} |",
            untraced.throughput,
            millis(untraced.p50),
            millis(untraced.p99),
            traced.throughput,
            millis(traced.p50),
            millis(traced.p99),
            traced.throughput / untraced.throughput
        );
    }
    tokio::time::sleep(Duration::from_secs(6)).await; // the batch exporter's schedule
    println!(
        "\n{} spans received by the collector.",
        spans.0.load(Ordering::Relaxed)
    );
    println!(
        "Gateway memory: {:.1} MiB idle (VmRSS), {:.1} MiB peak (VmHWM) over all runs",
        idle_kib as f64 / 1024.0,
        memory_kib(gateway.id(), "VmHWM:") as f64 / 1024.0
    );
    for child in [&mut gateway, &mut traced_gateway, &mut simulator] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
