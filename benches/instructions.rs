//! CPU cost of tracing, counted rather than timed: the instructions the gateway executes per
//! GetUser RPC with tracing off and with every span exported, as counted by valgrind's
//! callgrind. Unlike throughput on a shared machine, the counts barely move between runs.
//!
//! Run: `cargo bench --bench instructions` (needs `valgrind` on the PATH). The gateway runs
//! under callgrind twice per mode, serving a few and then many RPCs; the difference divided by
//! the difference in RPCs is the cost per RPC, startup and shutdown cancelled out. Each caller
//! asks for a user of its own, so no reads are coalesced: every RPC is one server span and one
//! Okta client span. The callgrind profiles stay in the printed directory for
//! `callgrind_annotate --inclusive=yes`.
#![allow(clippy::unwrap_used, missing_docs)] // a benchmark binary: a failure aborts the run

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{Callers, Collector, channels, gateway_environment, get_user, spawn_gateway};

/// Concurrent callers, each asking for a different user.
const CALLERS: usize = 8;
/// RPCs per caller in the short and the long run.
const FEW_PER_CALLER: usize = 50;
const MANY_PER_CALLER: usize = 300;
/// Startup under valgrind is about fifty times slower than without.
const STARTUP_UNDER_VALGRIND: Duration = Duration::from_secs(300);

/// Runs the gateway under callgrind for `rpcs_per_caller` GetUser RPCs per caller, stops it with
/// SIGTERM (so telemetry is flushed and the profile written) and returns its instruction count.
async fn counted_run(
    okta_url: &str,
    otlp_endpoint: Option<&str>,
    callers: &Callers,
    users: &[String],
    rpcs_per_caller: usize,
    profile: &Path,
) -> u64 {
    let mut command = Command::new("valgrind");
    command.args([
        "--tool=callgrind",
        "--quiet",
        &format!("--callgrind-out-file={}", profile.display()),
        support::BINARY,
    ]);
    gateway_environment(&mut command, okta_url, otlp_endpoint, callers);
    command.env("PATH", std::env::var_os("PATH").unwrap_or_default());
    let (mut gateway, address) = spawn_gateway(command, STARTUP_UNDER_VALGRIND);
    let channels = channels(address, 1).await;
    let callers = users.iter().map(|user_id| {
        let channel = channels[0].clone();
        async move {
            for _ in 0..rpcs_per_caller {
                assert!(get_user(channel.clone(), user_id).await, "GetUser failed");
            }
        }
    });
    futures::future::join_all(callers).await;
    drop(channels);
    let stopped = Command::new("kill")
        .args(["-TERM", &gateway.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    gateway.wait().unwrap();
    instructions(profile)
}

/// The total of a callgrind profile (its `summary:` or `totals:` line).
fn instructions(profile: &Path) -> u64 {
    let text = std::fs::read_to_string(profile).unwrap();
    text.lines()
        .find_map(|line| {
            line.strip_prefix("summary:")
                .or_else(|| line.strip_prefix("totals:"))
        })
        .and_then(|total| total.split_whitespace().next()?.parse().ok())
        .expect("callgrind wrote a total")
}

#[tokio::main]
async fn main() {
    support::serve_collector_if_asked().await;
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("valgrind is not on the PATH; nothing measured");
        return;
    }
    let profiles = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("callgrind");
    std::fs::create_dir_all(&profiles).unwrap();
    let (mut simulator, okta_url) = support::spawn_simulator().await;
    let users = support::user_ids(&okta_url, CALLERS).await;
    let mut collector = Collector::spawn();
    let callers = Callers::new();

    println!(
        "GetUser, {CALLERS} callers with a user each; per RPC: the difference between \
         {MANY_PER_CALLER} and {FEW_PER_CALLER} RPCs per caller.\n"
    );
    println!("| tracing | instructions per RPC |\n|---|---|");
    let mut per_rpc = Vec::new();
    for (mode, endpoint) in [
        ("off", None),
        ("every span exported", Some(collector.endpoint.as_str())),
    ] {
        let file = |rpcs: usize| profiles.join(format!("{}-{rpcs}.out", mode.replace(' ', "-")));
        let few = counted_run(
            &okta_url,
            endpoint,
            &callers,
            &users,
            FEW_PER_CALLER,
            &file(FEW_PER_CALLER),
        )
        .await;
        let many = counted_run(
            &okta_url,
            endpoint,
            &callers,
            &users,
            MANY_PER_CALLER,
            &file(MANY_PER_CALLER),
        )
        .await;
        let rpcs = ((MANY_PER_CALLER - FEW_PER_CALLER) * CALLERS) as u64;
        let cost = many.saturating_sub(few) / rpcs;
        per_rpc.push(cost);
        println!("| {mode} | {cost} |");
    }
    println!(
        "\non / off: {:.2} of the instructions. {} spans received by the collector.",
        per_rpc[1] as f64 / per_rpc[0] as f64,
        collector.spans()
    );
    println!("Profiles: {}", profiles.display());
    support::kill(&mut collector.child);
    support::kill(&mut simulator);
}
