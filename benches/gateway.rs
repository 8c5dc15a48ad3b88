//! Load benchmark (a measurement, not a test): GetUser through the gateway over gRPC against the
//! same Okta call made directly over HTTP to the simulator, at the same concurrency, on this
//! machine. Reports throughput, p50/p99 latency, the latency the gateway adds, the gateway's
//! memory, and throughput with every span exported against tracing off.
//!
//! Run: `cargo bench --bench gateway` (`BENCH_SECONDS` sets each run's length, default 3).
//! The simulator and the gateway run as separate processes of the release binary; the load
//! generator is this process, and the OTLP collector another process of this binary, which
//! counts spans without decoding them. Everything stays on 127.0.0.1.
#![allow(clippy::unwrap_used, missing_docs)] // a benchmark binary: a failure aborts the run

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{Callers, Collector, TOKEN, channels, gateway_environment, get_user, memory_kib};

/// A user of the simulator's demo org.
const USER_ID: &str = "00u55tN5556tr55wr2dL";
const CONCURRENCIES: &[usize] = &[1, 16, 64, 256];
const UPSTREAM_LATENCIES_MS: &[u64] = &[0, 50];
/// Callers per gRPC connection (HTTP/2 multiplexes them).
const CALLERS_PER_CHANNEL: usize = 32;
const STARTUP: Duration = Duration::from_secs(30);

fn spawn_gateway(
    okta_url: &str,
    otlp_endpoint: Option<&str>,
    callers: &Callers,
) -> (std::process::Child, SocketAddr) {
    let mut command = Command::new(support::BINARY);
    gateway_environment(&mut command, okta_url, otlp_endpoint, callers);
    support::spawn_gateway(command, STARTUP)
}

struct Run {
    completed: usize,
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
        completed: latencies.len(),
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
    let channels = Arc::new(channels(address, concurrency.div_ceil(CALLERS_PER_CHANNEL)).await);
    drive(concurrency, length, move |caller| {
        get_user(channels[caller % channels.len()].clone(), USER_ID)
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
    support::serve_collector_if_asked().await;
    let length = Duration::from_secs(
        std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    );
    let (mut simulator, okta_url) = support::spawn_simulator().await;
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
        support::set_upstream_latency(&okta_url, *latency).await;
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
    support::set_upstream_latency(&okta_url, 0).await;

    // Tracing: a second gateway exporting every span to a collector in a process of its own.
    let mut collector = Collector::spawn();
    let (mut traced_gateway, traced_address) =
        spawn_gateway(&okta_url, Some(&collector.endpoint), &callers);
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "\n| 64 callers | upstream | tracing off req/s (p50 / p99 ms) | every span exported req/s (p50 / p99 ms) | on / off |\n|---|---|---|---|---|"
    );
    let (mut traced_rpcs, mut collector_seconds) = (0, 0.0);
    for latency in UPSTREAM_LATENCIES_MS {
        support::set_upstream_latency(&okta_url, *latency).await;
        let untraced = through_gateway(address, 64, length).await;
        let collector_cpu = support::cpu_time(collector.child.id());
        let traced = through_gateway(traced_address, 64, length).await;
        traced_rpcs += traced.completed;
        collector_seconds +=
            (support::cpu_time(collector.child.id()) - collector_cpu).as_secs_f64();
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
        "\n{} spans received by the collector for {traced_rpcs} traced RPCs (two spans per RPC, \
         fewer when concurrent reads of the same user share one Okta call); the collector used \
         {collector_seconds:.1} s of CPU during the traced runs.",
        collector.spans()
    );
    println!(
        "Gateway memory: {:.1} MiB idle (VmRSS), {:.1} MiB peak (VmHWM) over all runs",
        idle_kib as f64 / 1024.0,
        memory_kib(gateway.id(), "VmHWM:") as f64 / 1024.0
    );
    for child in [
        &mut gateway,
        &mut traced_gateway,
        &mut collector.child,
        &mut simulator,
    ] {
        support::kill(child);
    }
}
