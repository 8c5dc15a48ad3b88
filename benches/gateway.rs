//! Load benchmark (a measurement, not a test): GetUser through the gateway over gRPC against the
//! same Okta call made directly over HTTP to the simulator, at the same concurrency, on this
//! machine. Reports throughput, p50/p99 latency, the latency the gateway adds, the gateway's
//! memory, and throughput and gateway CPU per RPC with every span exported against tracing off
//! (there each caller reads a user of its own, so every RPC exports its server span and its Okta
//! client span).
//!
//! Run: `cargo bench --bench gateway` (`BENCH_SECONDS` sets each run's length, default 3).
//! The simulator and the gateway run as separate processes of the release binary; the load
//! generator is this process, and the OTLP collector another process of this binary, which
//! counts spans without decoding them. Everything stays on 127.0.0.1.
#![allow(clippy::unwrap_used, missing_docs)] // a benchmark binary: a failure aborts the run

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use support::load::{Run, drive, millis, through_gateway};
use support::{Callers, Collector, TOKEN, gateway_environment, memory_kib};

/// A user of the simulator's demo org.
const USER_ID: &str = "00u55tN5556tr55wr2dL";
const CONCURRENCIES: &[usize] = &[1, 16, 64, 256];
const UPSTREAM_LATENCIES_MS: &[u64] = &[0, 50];
/// Callers of the tracing comparison.
const TRACED_CALLERS: usize = 64;
/// Tracing off and on are measured in turns (which goes first alternates), this many times at
/// each upstream latency; the table reports the median round (single runs on a shared 2-core
/// machine move by 0.1 and more).
const TRACING_ROUNDS: usize = 5;
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

/// A gateway run with the CPU time the gateway used for it.
async fn measured(
    gateway: &std::process::Child,
    address: SocketAddr,
    users: &[String],
    length: Duration,
) -> (Run, Duration) {
    let cpu_before = support::cpu_time(gateway.id());
    let run = through_gateway(address, users, TRACED_CALLERS, length).await;
    (run, support::cpu_time(gateway.id()) - cpu_before)
}

/// CPU microseconds per completed RPC.
fn micros_per_rpc(cpu: Duration, run: &Run) -> f64 {
    cpu.as_secs_f64() * 1e6 / run.completed.max(1) as f64
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
    let one_user = [USER_ID.to_owned()];
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
            let gated = through_gateway(address, &one_user, concurrency, length).await;
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
    // Each caller reads a user of its own, so no read is coalesced and every RPC exports both
    // of its spans.
    let users = support::seed_users(&okta_url, TRACED_CALLERS).await;
    let mut collector = Collector::spawn();
    let (mut traced_gateway, traced_address) =
        spawn_gateway(&okta_url, Some(&collector.endpoint), &callers);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Warm the traced gateway (its connections to Okta, its allocator) as the table above
    // warmed the other one, so the first comparison does not measure a cold start.
    let warm_up = through_gateway(traced_address, &users, TRACED_CALLERS, length).await;
    println!(
        "\n{TRACED_CALLERS} callers, a user each; off and on measured in turns, {TRACING_ROUNDS} \
         times each, alternating which goes first; the median round.\n\n\
         | upstream | tracing off req/s (p50 / p99 ms) | every span exported req/s (p50 / p99 ms) | on / off | on / off, each round | gateway CPU µs per RPC, off / on |\n\
         |---|---|---|---|---|---|"
    );
    let (mut traced_rpcs, mut collector_cpu) = (warm_up.completed, Duration::ZERO);
    for latency in UPSTREAM_LATENCIES_MS {
        support::set_upstream_latency(&okta_url, *latency).await;
        let mut rounds = Vec::new();
        for round in 0..TRACING_ROUNDS {
            let mut untraced_run = None;
            if round % 2 == 0 {
                untraced_run = Some(measured(&gateway, address, &users, length).await);
            }
            let collector_before = support::cpu_time(collector.child.id());
            let (traced, traced_cpu) =
                measured(&traced_gateway, traced_address, &users, length).await;
            collector_cpu += support::cpu_time(collector.child.id()) - collector_before;
            traced_rpcs += traced.completed;
            let (untraced, untraced_cpu) = match untraced_run {
                Some(run) => run,
                None => measured(&gateway, address, &users, length).await,
            };
            let ratio = traced.throughput / untraced.throughput;
            rounds.push((ratio, untraced, untraced_cpu, traced, traced_cpu));
        }
        let ratios: Vec<String> = rounds
            .iter()
            .map(|(ratio, ..)| format!("{ratio:.2}"))
            .collect();
        rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (ratio, untraced, untraced_cpu, traced, traced_cpu) = &rounds[rounds.len() / 2];
        println!(
            "| {latency} ms | {:.0} ({} / {}) | {:.0} ({} / {}) | {ratio:.2} | {} | {:.0} / {:.0} |",
            untraced.throughput,
            millis(untraced.p50),
            millis(untraced.p99),
            traced.throughput,
            millis(traced.p50),
            millis(traced.p99),
            ratios.join(", "),
            micros_per_rpc(*untraced_cpu, untraced),
            micros_per_rpc(*traced_cpu, traced),
        );
    }
    // The last batch leaves on the batch processor's 5 s schedule; a dropped span never comes.
    let waiting_since = std::time::Instant::now();
    while collector.spans() < 2 * traced_rpcs as u64
        && waiting_since.elapsed() < Duration::from_secs(15)
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "\n{} spans received by the collector for {traced_rpcs} traced RPCs (two each); the \
         collector used {:.2} s of CPU during the traced runs.",
        collector.spans(),
        collector_cpu.as_secs_f64()
    );
    println!(
        "Gateway memory: {:.1} MiB idle (VmRSS), {:.1} MiB peak (VmHWM) over all runs; the \
         gateway exporting every span: {:.1} MiB peak",
        idle_kib as f64 / 1024.0,
        memory_kib(gateway.id(), "VmHWM:") as f64 / 1024.0,
        memory_kib(traced_gateway.id(), "VmHWM:") as f64 / 1024.0
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
