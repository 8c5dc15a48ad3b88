//! `okta-sim`: the Okta org simulator alone, for other teams' tests and local runs.

use clap::Parser;

/// The Okta org simulator: an HTTP server speaking Okta's Management API, with a `/__sim/`
/// admin API for tests.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    args: okta_sim::standalone::Args,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    okta_sim::standalone::run(cli.args, stop_requested()).await
}

/// Resolves at SIGINT, or at SIGTERM where there is one (how Kubernetes stops a pod).
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
