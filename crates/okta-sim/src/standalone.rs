//! The simulator as a program of its own (`okta-sim`, and the gateway's `simulate` subcommand):
//! its command line, the settings it reads from files, and the start banner.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::distr::{Alphanumeric, SampleString};

use crate::fault_modes::FaultModes;
use crate::{SeedSource, SimulatorSettings};

/// The standalone simulator's command line.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// Seed file (YAML or JSON) instead of the demo org.
    #[arg(long, value_name = "FILE", conflicts_with = "empty")]
    pub seed: Option<PathBuf>,
    /// Start with an empty org instead of the demo org.
    #[arg(long)]
    pub empty: bool,
    /// The SSWS token the simulator accepts (default: a random token, printed at start).
    /// Outside the `IDGW_` namespace, which holds only gateway settings.
    #[arg(
        long,
        env = "OKTA_SIM_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// A file holding the token (a mounted Secret); keeps it off the command line.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Fault modes in effect from the start (YAML or JSON, the document of
    /// `PUT /__sim/fault-modes`): server errors, rate-limit storms, a concurrency limit,
    /// connection resets.
    #[arg(long, value_name = "FILE")]
    pub fault_modes: Option<PathBuf>,
}

impl Args {
    /// The settings these arguments describe: the token (from its file, the flag, or a random
    /// one) and the fault modes file, read and checked before anything is bound.
    pub fn settings(&self) -> anyhow::Result<SimulatorSettings> {
        let seed = match (&self.seed, self.empty) {
            (Some(path), _) => SeedSource::File(path.clone()),
            (None, true) => SeedSource::Empty,
            (None, false) => SeedSource::Demo,
        };
        let file_token = self
            .token_file
            .as_deref()
            .map(read_token_file)
            .transpose()?;
        let fault_modes = match &self.fault_modes {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the fault modes file `{}`", path.display())
                })?;
                FaultModes::parse(&text)
                    .map_err(|error| anyhow::anyhow!("`{}`: {error}", path.display()))?
            }
            None => FaultModes::default(),
        };
        Ok(SimulatorSettings {
            api_token: file_token
                .or_else(|| self.token.clone())
                .unwrap_or_else(random_token),
            seed,
            fault_modes,
            ..SimulatorSettings::default()
        })
    }
}

/// A token nobody can guess, for a simulator whose token nobody chose.
pub fn random_token() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 40)
}

fn read_token_file(path: &Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the simulator token file `{}`", path.display()))?;
    let token = token.trim();
    anyhow::ensure!(
        !token.is_empty(),
        "the simulator token file `{}` is empty",
        path.display()
    );
    Ok(token.to_owned())
}

/// Serves the simulator `args` describe until `shutdown` resolves, after printing where it
/// listens and a first call on stdout. A token from a file stays secret: it is never printed.
pub async fn run(
    args: Args,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to bind the simulator on {}", args.listen))?;
    let address = listener.local_addr()?;
    let api_token = &settings.api_token;
    let (shown_token, header) = if args.token_file.is_some() {
        (
            "(from --token-file, not shown)",
            "SSWS $(cat TOKEN_FILE)".to_owned(),
        )
    } else {
        (api_token.as_str(), format!("SSWS {api_token}"))
    };
    // A closed stdout must not stop the simulator.
    let _ = writeln!(
        std::io::stdout().lock(),
        "Okta org simulator on http://{address}\n  token: {shown_token}\n  \
         try:   curl -H \"Authorization: {header}\" http://{address}/api/v1/users"
    );
    crate::serve(listener, settings, shutdown).await
}
