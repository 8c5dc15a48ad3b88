//! Command line: run the gateway (against an Okta org, or `--simulate`), or run the Okta org
//! simulator alone (`simulate`) for other teams' tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::SecretString;

use crate::config::{LogFormat, Settings};
use crate::coordination::Coordination;
use crate::coordination::ledger::RateLimitLedger;
use crate::okta::OktaTarget;
use crate::startup::{Application, termination_signal};
use okta_sim::{Simulator, SimulatorSettings};

/// Settings reference shown by `--help`.
const CONFIGURATION_HELP: &str = "\
Configuration, lowest precedence first: built-in defaults, the --config file (TOML or YAML),
the Okta SDK variables OKTA_CLIENT_ORGURL / OKTA_CLIENT_TOKEN, then IDGW_* variables
(levels joined by `__`, e.g. IDGW_OKTA__ORG_URL). Every bad setting is reported at once.

  setting                    environment variable           default
  grpc.listen_addr           IDGW_GRPC__LISTEN_ADDR         127.0.0.1:50051
  grpc.request_timeout_ms    IDGW_GRPC__REQUEST_TIMEOUT_MS  30000  (per RPC, when the caller sets no deadline)
  grpc.drain_delay_ms        IDGW_GRPC__DRAIN_DELAY_MS      2000   (NOT_SERVING before the listener closes)
  grpc.shutdown_grace_ms     IDGW_GRPC__SHUTDOWN_GRACE_MS   20000  (in-flight RPCs after the listener closes)
  grpc.max_request_bytes     IDGW_GRPC__MAX_REQUEST_BYTES   1048576
  grpc.max_in_flight_rpcs    IDGW_GRPC__MAX_IN_FLIGHT_RPCS  1024   (more are refused at once; health always served)
  grpc.health_listen_addr    IDGW_GRPC__HEALTH_LISTEN_ADDR  (none)  (plaintext port serving only grpc.health.v1, for probes with TLS)
  grpc.token_key_file        IDGW_GRPC__TOKEN_KEY_FILE      (random per process)  (32+ byte key sealing page tokens; share it between replicas)
  okta.org_url               IDGW_OKTA__ORG_URL             (required unless --simulate)
  okta.api_token             IDGW_OKTA__API_TOKEN           (one of api_token / api_token_file)
  okta.api_token_file        IDGW_OKTA__API_TOKEN_FILE
  okta.connect_timeout_ms    IDGW_OKTA__CONNECT_TIMEOUT_MS  5000
  okta.request_timeout_ms    IDGW_OKTA__REQUEST_TIMEOUT_MS  15000
  okta.max_retries           IDGW_OKTA__MAX_RETRIES         2      (reads, memberships, lifecycle transitions)
  okta.retry_base_delay_ms   IDGW_OKTA__RETRY_BASE_DELAY_MS 200
  okta.retry_max_delay_ms    IDGW_OKTA__RETRY_MAX_DELAY_MS  10000
  okta.rate_limit_reserve_percent  IDGW_OKTA__RATE_LIMIT_RESERVE_PERCENT  5  (budget left for others)
  okta.max_concurrent_requests     IDGW_OKTA__MAX_CONCURRENT_REQUESTS     20  (Okta allows 75 per org; all
                                                             replicas together with coordination.redis_url)
  okta.allow_insecure_http   IDGW_OKTA__ALLOW_INSECURE_HTTP false  (plain-http org off loopback: a simulated org only)
  OAuth 2.0 service app, instead of an API token (used when okta.oauth.client_id is set):
  okta.oauth.client_id       IDGW_OKTA__OAUTH__CLIENT_ID    (the service app's client id)
  okta.oauth.private_key_file  IDGW_OKTA__OAUTH__PRIVATE_KEY_FILE  (PEM or JWK; RSA or EC P-256)
  okta.oauth.key_id          IDGW_OKTA__OAUTH__KEY_ID       (the registered public key's kid; optional for a JWK with kid)
  okta.oauth.dpop            IDGW_OKTA__OAUTH__DPOP         false  (DPoP from the start; also used when Okta demands it)
  okta.oauth.read_only_scopes  IDGW_OKTA__OAUTH__READ_ONLY_SCOPES  false  (request only the *.read scopes)
  okta.oauth.scopes          IDGW_OKTA__OAUTH__SCOPES       (override; default: okta.{users,groups,devices}.{read,manage} okta.logs.read)
  events.poll_interval_ms    IDGW_EVENTS__POLL_INTERVAL_MS  5000   (System Log polls of one watched filter)
  events.keepalive_interval_ms  IDGW_EVENTS__KEEPALIVE_INTERVAL_MS  15000
  events.rate_limit_reserve_percent  IDGW_EVENTS__RATE_LIMIT_RESERVE_PERCENT  20
  auth.insecure              IDGW_AUTH__INSECURE            false  (no caller authentication: local runs only; --simulate sets it)
  auth.api_keys_file         IDGW_AUTH__API_KEYS_FILE       (YAML list of name + sha256; see hash-api-key)
  auth.protect_health_and_reflection  IDGW_AUTH__PROTECT_HEALTH_AND_REFLECTION  false
  auth.tls.cert_file         IDGW_AUTH__TLS__CERT_FILE      (with key_file: serve TLS; PEM chain, leaf first)
  auth.tls.key_file          IDGW_AUTH__TLS__KEY_FILE       (PEM private key: PKCS#8, PKCS#1 or SEC1)
  auth.tls.client_ca_file    IDGW_AUTH__TLS__CLIENT_CA_FILE (mutual TLS: CA bundle for client certificates;
                                                             required unless API keys or JWTs are configured)
  auth.tls.identity_from_common_name  IDGW_AUTH__TLS__IDENTITY_FROM_COMMON_NAME  false
                             (a certificate without URI or DNS SAN is named by its CN; never under name constraints)
  auth.jwt.issuer            IDGW_AUTH__JWT__ISSUER         (exact `iss`; issuer, audiences or a JWKS turn JWTs on)
  auth.jwt.audiences         IDGW_AUTH__JWT__AUDIENCES      (accepted `aud` values, space/comma separated)
  auth.jwt.jwks_file         IDGW_AUTH__JWT__JWKS_FILE      (one of jwks_file / jwks_url)
  auth.jwt.jwks_url          IDGW_AUTH__JWT__JWKS_URL       (https; fetched at start, must succeed)
  auth.jwt.algorithms        IDGW_AUTH__JWT__ALGORITHMS     RS256 ES256  (also RS384 RS512 PS256 PS384 PS512 ES384)
  auth.jwt.leeway_s          IDGW_AUTH__JWT__LEEWAY_S       30     (clock skew on exp, nbf, iat)
  auth.jwt.jwks_refresh_s    IDGW_AUTH__JWT__JWKS_REFRESH_S 300    (also reloaded on an unknown kid, at most every 10 s)
  authz.policy_file          IDGW_AUTHZ__POLICY_FILE        (roles and who holds them; required unless auth.insecure)
  authz.read_only            IDGW_AUTHZ__READ_ONLY          false  (refuse every RPC that changes Okta)
  authz.reload_interval_ms   IDGW_AUTHZ__RELOAD_INTERVAL_MS 2000   (policy file checked for changes)
  authz.scope_refresh_ms     IDGW_AUTHZ__SCOPE_REFRESH_MS   60000  (groups of scoped roles reread from Okta)
  authz.protected_groups     IDGW_AUTHZ__PROTECTED_GROUPS   (group-name patterns, comma separated; no group-scoped
                                                             role may act on or add their members)
  fairness.max_in_flight_per_caller  IDGW_FAIRNESS__MAX_IN_FLIGHT_PER_CALLER  256
  fairness.max_streams_per_caller    IDGW_FAIRNESS__MAX_STREAMS_PER_CALLER    16
  fairness.okta_budget_percent_per_caller  IDGW_FAIRNESS__OKTA_BUDGET_PERCENT_PER_CALLER  50
  Group-discovery cache of GetGroup, ListGroups, ListUserGroups and member pages; the TTL is
  the staleness bound for changes made outside the gateway, whose own writes invalidate:
  cache.group_discovery_ttl_ms  IDGW_CACHE__GROUP_DISCOVERY_TTL_MS  0  (off; at most 60000)
  cache.group_discovery_max_objects  IDGW_CACHE__GROUP_DISCOVERY_MAX_OBJECTS  10000
  Replicas sharing one Valkey/Redis server (off: every guarantee holds within one process):
  coordination.redis_url     IDGW_COORDINATION__REDIS_URL   (redis:// or rediss://; a secret)
  coordination.redis_password_file  IDGW_COORDINATION__REDIS_PASSWORD_FILE  (for a URL without one)
  coordination.idempotency_ttl_s  IDGW_COORDINATION__IDEMPOTENCY_TTL_S  3600  (request_id outcomes kept)
  coordination.idempotency_when_unavailable  IDGW_COORDINATION__IDEMPOTENCY_WHEN_UNAVAILABLE  refuse
                                                             (refuse | proceed: a request_id change without the server)
  coordination.expected_replicas  IDGW_COORDINATION__EXPECTED_REPLICAS  3  (without the server each replica
                                                             spends this fraction of Okta's remaining budget)
  scim.listen_addr           IDGW_SCIM__LISTEN_ADDR         (the SCIM 2.0 server; off unless set)
  scim.max_body_bytes        IDGW_SCIM__MAX_BODY_BYTES      262144
  scim.max_results           IDGW_SCIM__MAX_RESULTS         200  (most resources one list answers)
  telemetry.otlp_endpoint    OTEL_EXPORTER_OTLP_ENDPOINT   (traces and metrics; http:// or https://)
  telemetry.otlp_certificate_file  OTEL_EXPORTER_OTLP_CERTIFICATE  (PEM CA for https; default: system roots)
  telemetry.otlp_client_certificate_file  OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE  (mutual TLS to the collector)
  telemetry.otlp_client_key_file  OTEL_EXPORTER_OTLP_CLIENT_KEY  (its PEM private key)
  telemetry.otlp_headers     OTEL_EXPORTER_OTLP_HEADERS     (key=value,... percent-encoded; a secret)
  telemetry.otlp_timeout_ms  OTEL_EXPORTER_OTLP_TIMEOUT     10000  (one export, retries included)
  telemetry.otlp_compression  OTEL_EXPORTER_OTLP_COMPRESSION  none  (none | gzip)
  Per signal, each replacing the shared otlp_* setting for that signal only (metrics
  likewise: telemetry.metrics.*, OTEL_EXPORTER_OTLP_METRICS_*):
  telemetry.traces.endpoint  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
  telemetry.traces.certificate_file  OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE
  telemetry.traces.client_certificate_file  OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE
  telemetry.traces.client_key_file  OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY
  telemetry.traces.headers   OTEL_EXPORTER_OTLP_TRACES_HEADERS
  telemetry.traces.timeout_ms  OTEL_EXPORTER_OTLP_TRACES_TIMEOUT
  telemetry.traces.compression  OTEL_EXPORTER_OTLP_TRACES_COMPRESSION
  telemetry.service_name     OTEL_SERVICE_NAME              identity-gateway
  telemetry.resource_attributes  OTEL_RESOURCE_ATTRIBUTES
  telemetry.traces_sampler   OTEL_TRACES_SAMPLER            parentbased_always_on
  telemetry.traces_sampler_arg   OTEL_TRACES_SAMPLER_ARG    1.0
  telemetry.metrics_interval_ms  OTEL_METRIC_EXPORT_INTERVAL  60000
  (each telemetry.* also as IDGW_TELEMETRY__*, as IDGW_TELEMETRY__TRACES__ENDPOINT; a signal
  with no endpoint of its own or shared is not exported; OTLP over gRPC only)
  log.format                 IDGW_LOG__FORMAT               json   (json | pretty)
  log.filter                 IDGW_LOG__FILTER               info";

/// The gateway's command line.
#[derive(Debug, Parser)]
#[command(version, about, after_long_help = CONFIGURATION_HELP)]
pub struct Cli {
    /// Settings file (TOML or YAML).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run against a built-in simulated Okta org with demo users and groups, instead of a real
    /// org. Never implied: without it, a missing org is an error.
    #[arg(long)]
    pub simulate: bool,
    /// Listen address, overriding `grpc.listen_addr`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// With `--simulate`: where the simulated org listens (its Okta API and `/__sim/` admin API),
    /// fixed by default so the README's recipes can reach it.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8089")]
    pub simulator_listen: SocketAddr,
    /// With `--simulate` and no `scim.listen_addr`: where the SCIM 2.0 server listens, fixed by
    /// default so docs/scim.md's curl session can reach it.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8090")]
    pub scim_listen: SocketAddr,
    /// Run something other than the gateway.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run only the Okta org simulator, an HTTP server speaking Okta's Management API.
    Simulate(okta_sim::standalone::Args),
    /// Print the public JWK of an OAuth service app's private key (PEM or JWK), to register on
    /// the Okta app or with the simulator (`POST /__sim/oauth/clients`, seed `clients:`).
    PublicJwk {
        /// The private key file (`okta.oauth.private_key_file`).
        #[arg(long, value_name = "FILE")]
        key_file: PathBuf,
        /// The key id to put in the JWK (`okta.oauth.key_id`); optional for a JWK with a kid.
        #[arg(long)]
        key_id: Option<String>,
    },
    /// Read an API key from standard input and print its entry for `auth.api_keys_file`
    /// (the SHA-256 of the key; the key itself is never stored).
    HashApiKey {
        /// The key's name, the caller identity `apikey:NAME` in policies.
        #[arg(long)]
        name: String,
    },
}

/// Runs what the command line asks for until stopped.
pub async fn run(cli: Cli, env: &HashMap<String, String>) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref(), env)?;
    let telemetry = crate::telemetry::init_telemetry(&settings, std::io::stdout)?;
    let outcome = match cli.command {
        Some(Command::Simulate(args)) => {
            okta_sim::standalone::run(args, termination_signal()).await
        }
        Some(Command::PublicJwk { key_file, key_id }) => {
            public_jwk(&key_file, key_id.as_deref()).map(|jwk| print_banner(&jwk))
        }
        Some(Command::HashApiKey { name }) => {
            api_key_entry(&name).map(|entry| print_banner(&entry))
        }
        None => {
            let simulate = cli
                .simulate
                .then_some((cli.simulator_listen, cli.scim_listen));
            run_gateway(settings, simulate, cli.listen).await
        }
    };
    // Flush the last spans and metrics; the exporters block, so off the runtime's threads.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    outcome
}

/// The public JWK (with `kid`) of the private key in `path`.
pub fn public_jwk(path: &std::path::Path, key_id: Option<&str>) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key file `{}`", path.display()))?;
    let key = okta_client::SigningKey::parse(&text, key_id)
        .map_err(|error| anyhow::anyhow!("`{}`: {error}", path.display()))?;
    let mut jwk = key.public_jwk();
    jwk["kid"] = serde_json::Value::from(key.key_id());
    Ok(jwk.to_string())
}

/// The keys-file entry for the key on standard input (one line; surrounding whitespace trimmed),
/// under `name`, checked as the keys file checks it.
fn api_key_entry(name: &str) -> anyhow::Result<String> {
    crate::auth::check_key_name(name).map_err(anyhow::Error::msg)?;
    let mut key = String::new();
    std::io::stdin()
        .read_line(&mut key)
        .context("cannot read the API key from standard input")?;
    let key = key.trim();
    anyhow::ensure!(
        key.len() >= 32,
        "an API key must be at least 32 characters of randomness (`openssl rand -hex 32`)"
    );
    Ok(format!(
        "- name: {name}\n  sha256: {}",
        crate::auth::hash_api_key(key)
    ))
}

/// Runs the gateway; `simulate` is where the simulated org and, unless set, the SCIM server
/// listen when the org is simulated.
async fn run_gateway(
    mut settings: Settings,
    simulate: Option<(SocketAddr, SocketAddr)>,
    listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    if let Some(listen) = listen {
        settings.grpc.listen_addr = listen;
    }
    let simulate = simulate.map(|(simulator_listen, scim_listen)| {
        // The quick start serves SCIM too, where the docs' curl session reaches it.
        settings.scim.listen_addr.get_or_insert(scim_listen);
        simulator_listen
    });
    if simulate.is_some() && !settings.auth.has_mechanism() {
        // The one-command quick start: a simulated org and no caller credentials, said loudly.
        settings.auth.insecure = true;
    }
    let target = settings.validate(simulate.is_some()).map_err(|problems| {
        anyhow::anyhow!("invalid configuration:\n  - {}", problems.join("\n  - "))
    })?;
    let (target, simulator) = match (target, simulate) {
        (Some(target), _) => (target, None),
        (None, None) => anyhow::bail!("no Okta org is configured and --simulate is not set"),
        (None, Some(simulator_listen)) => {
            let api_token = okta_sim::standalone::random_token();
            let simulator_settings = SimulatorSettings {
                api_token: api_token.clone(),
                ..SimulatorSettings::default()
            };
            let simulator = Simulator::start(simulator_listen, simulator_settings)
                .await
                .with_context(|| {
                    format!(
                        "failed to bind the simulator on {simulator_listen} \
                         (choose another with --simulator-listen)"
                    )
                })?;
            tracing::warn!(simulator = %simulator.base_url(),
                "SIMULATED OKTA ORG: no real Okta org is used; data is demo data and is lost at exit");
            let target = OktaTarget {
                org_url: simulator.base_url().parse()?,
                api_token: SecretString::from(api_token.clone()),
                oauth: None,
            };
            (target, Some((simulator, api_token)))
        }
    };
    let coordination = Coordination::from_settings(&settings.coordination)?;
    let ledger = RateLimitLedger::shared_budget(coordination.as_ref(), &settings.coordination);
    let okta = crate::okta::client(&settings.okta, target, ledger)?;
    let application =
        Application::build(&settings, okta, coordination, termination_signal()).await?;
    let address = application.local_addr();
    tracing::info!(%address, "grpc server listening");
    if let Some((simulator, api_token)) = &simulator {
        let quick_start = QuickStart {
            address,
            scim_url: application
                .scim_addr()
                .map(|scim| format!("http://{scim}{}", crate::scim::BASE_PATH)),
            simulator_url: simulator.base_url(),
            simulator_token: api_token,
        };
        quick_start.announce(settings.log.format);
    }
    application.run_until_stopped().await?;
    if let Some((simulator, _)) = simulator {
        simulator.stop().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Writes a banner for the person at the terminal; a closed stdout must not stop the server.
fn print_banner(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// What a person starting `--simulate` needs to begin: where everything is, how to make the
/// simulated org do something, and a first call.
struct QuickStart<'a> {
    address: SocketAddr,
    scim_url: Option<String>,
    simulator_url: String,
    simulator_token: &'a str,
}

impl QuickStart<'_> {
    /// A banner on stderr for a person (a terminal, or `log.format = pretty`); otherwise the
    /// same facts as one structured log line, so JSON logs stay one object per line.
    fn announce(&self, format: LogFormat) {
        use std::io::IsTerminal;
        if format == LogFormat::Pretty || std::io::stderr().is_terminal() {
            use std::io::Write;
            // A closed stderr must not stop the server.
            let _ = writeln!(std::io::stderr().lock(), "{}", self.banner());
        } else {
            tracing::info!(
                grpc_address = %self.address,
                scim_url = self.scim_url.as_deref().unwrap_or("off"),
                simulator_url = %self.simulator_url,
                simulator_token = %self.simulator_token,
                simulator_admin = %format!("{}/__sim/", self.simulator_url),
                inject_event = %self.inject_event_command(),
                try_command = %self.try_command(),
                "quick start: identity-gateway against a SIMULATED Okta org"
            );
        }
    }

    fn banner(&self) -> String {
        let Self {
            address,
            scim_url,
            simulator_url,
            simulator_token,
        } = self;
        let scim = scim_url.as_deref().map_or_else(String::new, |url| {
            format!("\n  SCIM 2.0:           {url}   (curl {url}/Users?count=2)")
        });
        format!(
            "\nidentity-gateway is serving on {address} against a SIMULATED Okta org \
             (demo data, lost at exit).\n{scim}\
             \n  simulated Okta org: {simulator_url}   token: {simulator_token}\
             \n  simulator admin:    {simulator_url}/__sim/  (requests, faults, fault-modes, \
             seed, latency, rate-limits, logs/events)\
             \n\n  Make a System Log event happen (WatchEvents and SearchEvents show it):\
             \n    {}\
             \n\n  Try:\
             \n    {}\
             \n    grpcurl -plaintext {address} list\n",
            self.inject_event_command(),
            self.try_command(),
        )
    }

    fn inject_event_command(&self) -> String {
        format!(
            "curl -s -X POST {}/__sim/logs/events -H 'Content-Type: application/json' \
             -d '{{\"events\":[{{\"eventType\":\"user.session.start\",\
             \"login\":\"ada.lovelace@example.com\",\"outcome\":\"FAILURE\"}}]}}'",
            self.simulator_url
        )
    }

    fn try_command(&self) -> String {
        format!(
            "grpcurl -plaintext -d '{{\"pageSize\":5}}' {} identity.v1.UserService/ListUsers",
            self.address
        )
    }
}
