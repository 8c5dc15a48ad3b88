//! The identity-gateway binary: parses the command line and runs until stopped.

use std::process::ExitCode;

use clap::Parser;
use identity_gateway::cli::{Cli, run};

/// Exit status for bad configuration or usage (BSD `EX_USAGE`).
const EXIT_USAGE: u8 = 64;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = std::env::vars().collect();
    match run(cli, &env).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("identity-gateway: {error:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
