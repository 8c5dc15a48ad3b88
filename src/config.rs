//! Layered settings: built-in defaults, then an optional file, then environment variables.
//!
//! Environment variables use the prefix `IDGW_` and `__` between levels
//! (`IDGW_OKTA__ORG_URL`, `IDGW_GRPC__LISTEN_ADDR`). The Okta SDKs' own `OKTA_CLIENT_ORGURL` and
//! `OKTA_CLIENT_TOKEN` are read too, below the `IDGW_` names, so an environment already set up for
//! an Okta SDK works unchanged.
//!
//! This module is a leaf: the sections here are plain data. Each section's rules live with the
//! module that uses it, as its [`Section`] implementation (`auth` in `auth/`, `okta` in
//! `okta.rs`, ...), and [`Settings::validate`] runs them all, so every bad setting is reported
//! at once, by name.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// Prefix of the gateway's own environment variables.
pub const ENV_PREFIX: &str = "IDGW";
/// The Okta SDKs' variable for the org URL, honoured for compatibility.
pub const OKTA_SDK_ORG_URL_VAR: &str = "OKTA_CLIENT_ORGURL";
/// The Okta SDKs' variable for the API token, honoured for compatibility.
pub const OKTA_SDK_TOKEN_VAR: &str = "OKTA_CLIENT_TOKEN";

/// Everything the gateway can be configured with.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The gRPC server.
    pub grpc: GrpcSettings,
    /// The Okta org the gateway calls.
    pub okta: OktaSettings,
    /// System Log reading and watching.
    pub events: EventsSettings,
    /// Log output.
    pub log: LogSettings,
    /// OpenTelemetry traces and metrics.
    pub telemetry: TelemetrySettings,
    /// How callers prove who they are.
    pub auth: AuthSettings,
    /// What each caller may do.
    pub authz: AuthzSettings,
    /// Each caller's share of the gateway and of Okta's budget.
    pub fairness: FairnessSettings,
    /// The optional group-discovery cache.
    pub cache: CacheSettings,
    /// The optional Valkey/Redis server through which replicas share what must hold
    /// cluster-wide.
    pub coordination: CoordinationSettings,
    /// The SCIM 2.0 facade: off unless it has an address.
    pub scim: ScimSettings,
}

/// `fairness`: how much of the gateway and of Okta's rate limits one authenticated caller may
/// take, so a noisy one cannot starve the rest. Roles in the policy may set their own.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FairnessSettings {
    /// RPCs one caller may have in flight (role override: `max_in_flight`).
    pub max_in_flight_per_caller: u32,
    /// Streams (WatchEvents, StreamGroupMembers) one caller may have open.
    pub max_streams_per_caller: u32,
    /// Percent of each Okta rate-limit bucket one caller may spend per window (role override:
    /// `okta_budget_percent`).
    pub okta_budget_percent_per_caller: u32,
}

impl Default for FairnessSettings {
    fn default() -> Self {
        Self {
            max_in_flight_per_caller: 256,
            max_streams_per_caller: 16,
            okta_budget_percent_per_caller: 50,
        }
    }
}

/// `auth`: caller authentication, deny by default. With no mechanism configured every identity
/// RPC is refused, unless `insecure` is set explicitly.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Accept callers without credentials, as `anonymous`: only for local runs and the simulated
    /// quick start (which sets it), and announced loudly at start.
    pub insecure: bool,
    /// A YAML file of API keys, each a `name` and the key's `sha256` (never the key itself).
    pub api_keys_file: Option<PathBuf>,
    /// Require credentials for health checks and reflection too (default: open, for probes
    /// and grpcurl).
    pub protect_health_and_reflection: bool,
    /// Serving TLS, and verifying client certificates (mutual TLS).
    pub tls: TlsSettings,
    /// Bearer JWTs (Kubernetes service-account tokens, OIDC workload tokens).
    pub jwt: JwtSettings,
}

/// `auth.tls`: the gRPC port serves TLS when `cert_file` and `key_file` are set; with
/// `client_ca_file` it also verifies client certificates, which then identify callers.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// The server's certificate chain (PEM, leaf first).
    pub cert_file: Option<PathBuf>,
    /// The server's private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC); mount it from a Secret.
    pub key_file: Option<PathBuf>,
    /// CA certificates (PEM bundle) that client certificates must chain to. Setting it turns
    /// on mutual TLS; see `auth::tls` for when a client certificate is required.
    pub client_ca_file: Option<PathBuf>,
    /// Whether a client certificate without URI or DNS SAN is named by its subject common
    /// name. Off by default: name constraints do not bind a CN, so a constrained CA could
    /// issue any name as one; even when on, never for a chain carrying name constraints.
    pub identity_from_common_name: bool,
}

/// `auth.jwt`: callers may send `authorization: Bearer <JWT>`, verified against a JWKS with
/// issuer, audience, expiry and algorithm checks. Used when the issuer, the audiences or a JWKS
/// is set.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSettings {
    /// The exact `iss` accepted (for Kubernetes, the cluster's service-account issuer).
    pub issuer: Option<String>,
    /// The `aud` values accepted (one of them must be in the token's `aud`).
    pub audiences: Option<WordList>,
    /// A JWKS file (for example a mounted ConfigMap), re-read when it changes.
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL (https; plain http only on loopback), fetched at start and refreshed.
    pub jwks_url: Option<String>,
    /// The signature algorithms accepted; `none` never is.
    pub algorithms: WordList,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_s: u64,
    /// How often the JWKS is refreshed (a token with an unknown key id also refreshes it).
    pub jwks_refresh_s: u64,
}

impl Default for JwtSettings {
    fn default() -> Self {
        Self {
            issuer: None,
            audiences: None,
            jwks_file: None,
            jwks_url: None,
            algorithms: WordList::List(vec!["RS256".to_owned(), "ES256".to_owned()]),
            leeway_s: 30,
            jwks_refresh_s: 300,
        }
    }
}

/// `authz`: what authenticated callers may do.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthzSettings {
    /// Refuse every mutating RPC before Okta is called (for a read-only Okta admin token).
    pub read_only: bool,
    /// The policy file (YAML: roles and who holds them). Required unless `auth.insecure`.
    pub policy_file: Option<PathBuf>,
    /// How often the policy file is checked for changes.
    pub reload_interval_ms: u64,
    /// How often the groups of group-scoped roles, and their members, are reread from Okta.
    pub scope_refresh_ms: u64,
    /// Group-name patterns (`Admins`, `okta-admins-*`) whose members no group-scoped role may
    /// act on or add to a group: comma-separated, or a list.
    pub protected_groups: Option<WordList>,
}

impl Default for AuthzSettings {
    fn default() -> Self {
        Self {
            read_only: false,
            policy_file: None,
            reload_interval_ms: 2_000,
            scope_refresh_ms: 60_000,
            protected_groups: None,
        }
    }
}

/// The group-discovery cache: GetGroup, ListGroups, ListUserGroups and group member pages are
/// answered from memory for up to the TTL. The gateway's own writes forget what they change;
/// changes made elsewhere show once the TTL has passed.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// How long an answer may be served from the cache; 0 (the default) turns the cache off.
    pub group_discovery_ttl_ms: u64,
    /// Most groups and users the cache holds (a page of 200 members counts 200); the least
    /// recently used answers are evicted first.
    pub group_discovery_max_objects: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            group_discovery_ttl_ms: 0,
            group_discovery_max_objects: 10_000,
        }
    }
}

impl CacheSettings {
    /// The cache's TTL, or `None` when the cache is off.
    pub fn group_discovery_ttl(&self) -> Option<Duration> {
        (self.group_discovery_ttl_ms > 0)
            .then(|| Duration::from_millis(self.group_discovery_ttl_ms))
    }
}

/// `scim`: the SCIM 2.0 service provider (RFC 7643/7644) for tools that provision over the
/// identity standard, behind the same callers, policy and budget as the gRPC API.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScimSettings {
    /// Address of the SCIM HTTP server (base path `/scim/v2`); unset, there is none.
    pub listen_addr: Option<SocketAddr>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most resources one list answers (`count` above it is refused, as SCIM's `maxResults`).
    pub max_results: u32,
}

impl Default for ScimSettings {
    fn default() -> Self {
        Self {
            listen_addr: None,
            max_body_bytes: 256 * 1024,
            max_results: 200,
        }
    }
}

/// `coordination`: replicas of the gateway share changes named by a `request_id` through a
/// Valkey/Redis server, so a retry on any replica finds the first attempt's outcome. Without
/// `redis_url` every guarantee holds within one process, as with a single replica.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinationSettings {
    /// `redis://host:port/db` or `rediss://` (TLS); a secret, since it may carry a password.
    pub redis_url: Option<SecretString>,
    /// A file holding the server's password, for a URL that carries none (a Kubernetes Secret).
    pub redis_password_file: Option<PathBuf>,
    /// How long the outcome of a change named by a `request_id` is kept, in seconds.
    pub idempotency_ttl_s: u64,
    /// What a change named by a `request_id` gets while the server cannot be reached.
    pub idempotency_when_unavailable: WhenUnavailable,
    /// How many replicas share the Okta org while the server cannot be reached: each then
    /// spends at most this fraction of what Okta reports remaining, so together they stay
    /// within Okta's limits without the shared ledger.
    pub expected_replicas: u32,
}

impl Default for CoordinationSettings {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_password_file: None,
            idempotency_ttl_s: 3600,
            idempotency_when_unavailable: WhenUnavailable::Refuse,
            expected_replicas: 3,
        }
    }
}

/// What a change named by a `request_id` gets while the shared table cannot be reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenUnavailable {
    /// UNAVAILABLE, so a retry on another replica cannot repeat a change this one made.
    #[default]
    Refuse,
    /// Made once per replica at least: the table of this process answers retries that reach it.
    Proceed,
}

/// Where and how traces and metrics are exported. The standard `OTEL_*` variables fill these
/// (below the `IDGW_TELEMETRY__*` names); a signal with no endpoint is not exported.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// OTLP/gRPC collector of both signals, for example `http://otel-collector:4317`, or
    /// `https://…` for TLS (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub otlp_endpoint: Option<String>,
    /// PEM CA bundle trusted for an https collector instead of the system's roots
    /// (`OTEL_EXPORTER_OTLP_CERTIFICATE`).
    pub otlp_certificate_file: Option<PathBuf>,
    /// PEM client certificate presented to an https collector that asks for one
    /// (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`); goes with `otlp_client_key_file`.
    pub otlp_client_certificate_file: Option<PathBuf>,
    /// Its PEM private key (`OTEL_EXPORTER_OTLP_CLIENT_KEY`); mount it from a Secret.
    pub otlp_client_key_file: Option<PathBuf>,
    /// Metadata sent with every export, `key=value,key=value` with percent-encoded values, often
    /// the collector's credentials (`OTEL_EXPORTER_OTLP_HEADERS`).
    pub otlp_headers: Option<SecretString>,
    /// How long one export (of a span batch or of metrics) may take, retries included
    /// (`OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub otlp_timeout_ms: u64,
    /// Compression of every export (`OTEL_EXPORTER_OTLP_COMPRESSION`).
    pub otlp_compression: OtlpCompression,
    /// Where traces differ from the `otlp_*` settings (`OTEL_EXPORTER_OTLP_TRACES_*`).
    pub traces: OtlpSignalSettings,
    /// Where metrics differ from the `otlp_*` settings (`OTEL_EXPORTER_OTLP_METRICS_*`).
    pub metrics: OtlpSignalSettings,
    /// `service.name` of every span and metric (`OTEL_SERVICE_NAME`).
    pub service_name: String,
    /// Extra resource attributes, `key=value,key=value` (`OTEL_RESOURCE_ATTRIBUTES`).
    pub resource_attributes: String,
    /// `parentbased_always_on` (default), `parentbased_traceidratio`, `parentbased_always_off`,
    /// `always_on`, `always_off` or `traceidratio` (`OTEL_TRACES_SAMPLER`).
    pub traces_sampler: String,
    /// The ratio for the `*traceidratio` samplers, 0 to 1 (`OTEL_TRACES_SAMPLER_ARG`).
    pub traces_sampler_arg: Option<f64>,
    /// How often metrics are exported (`OTEL_METRIC_EXPORT_INTERVAL`).
    pub metrics_interval_ms: u64,
}

/// One signal's own export settings (`OTEL_EXPORTER_OTLP_TRACES_*` or `..._METRICS_*`): each
/// one set replaces the shared `otlp_*` setting of the same name for that signal, so traces and
/// metrics can go to different collectors. The client certificate and key replace the shared
/// pair together.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpSignalSettings {
    /// The signal's collector (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
    pub endpoint: Option<String>,
    /// PEM CA bundle for an https collector (`OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`).
    pub certificate_file: Option<PathBuf>,
    /// PEM client certificate (`OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE`).
    pub client_certificate_file: Option<PathBuf>,
    /// Its PEM private key (`OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY`).
    pub client_key_file: Option<PathBuf>,
    /// Metadata sent with every export, often credentials (`OTEL_EXPORTER_OTLP_TRACES_HEADERS`).
    pub headers: Option<SecretString>,
    /// How long one export may take (`OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`).
    pub timeout_ms: Option<u64>,
    /// Compression (`OTEL_EXPORTER_OTLP_TRACES_COMPRESSION`).
    pub compression: Option<OtlpCompression>,
}

/// How OTLP exports are compressed, by their `OTEL_EXPORTER_OTLP_COMPRESSION` names.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OtlpCompression {
    /// Sent as they are.
    #[default]
    None,
    /// gzip: less traffic to a remote collector for some CPU.
    Gzip,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            otlp_certificate_file: None,
            otlp_client_certificate_file: None,
            otlp_client_key_file: None,
            otlp_headers: None,
            otlp_timeout_ms: 10_000,
            otlp_compression: OtlpCompression::None,
            traces: OtlpSignalSettings::default(),
            metrics: OtlpSignalSettings::default(),
            service_name: env!("CARGO_PKG_NAME").to_owned(),
            resource_attributes: String::new(),
            traces_sampler: "parentbased_always_on".to_owned(),
            traces_sampler_arg: None,
            metrics_interval_ms: 60_000,
        }
    }
}

/// The per-signal `OTEL_EXPORTER_OTLP_TRACES_*` and `..._METRICS_*` variables, each with the
/// `IDGW_TELEMETRY__TRACES__*` or `..._METRICS__*` name it fills.
fn otlp_signal_variables() -> impl Iterator<Item = (String, String)> {
    const FIELDS: [(&str, &str); 7] = [
        ("ENDPOINT", "ENDPOINT"),
        ("CERTIFICATE", "CERTIFICATE_FILE"),
        ("CLIENT_CERTIFICATE", "CLIENT_CERTIFICATE_FILE"),
        ("CLIENT_KEY", "CLIENT_KEY_FILE"),
        ("HEADERS", "HEADERS"),
        ("TIMEOUT", "TIMEOUT_MS"),
        ("COMPRESSION", "COMPRESSION"),
    ];
    ["TRACES", "METRICS"].into_iter().flat_map(|signal| {
        FIELDS.into_iter().map(move |(variable, field)| {
            (
                format!("OTEL_EXPORTER_OTLP_{signal}_{variable}"),
                format!("{ENV_PREFIX}_TELEMETRY__{signal}__{field}"),
            )
        })
    })
}

/// How WatchEvents polls Okta's System Log.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsSettings {
    /// Shortest pause between two polls of one query when Okta has nothing new.
    pub poll_interval_ms: u64,
    /// How often an idle watch stream sends a keep-alive.
    pub keepalive_interval_ms: u64,
    /// Share of the System Log rate-limit bucket the pollers leave unused for other calls.
    pub rate_limit_reserve_percent: u32,
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self {
            poll_interval_ms: 5_000,
            keepalive_interval_ms: 15_000,
            rate_limit_reserve_percent: 20,
        }
    }
}

/// The gRPC server's address, timeouts and shutdown behaviour.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcSettings {
    /// Address to listen on; port 0 picks a free port.
    pub listen_addr: SocketAddr,
    /// Upper bound on any RPC when the caller sets no shorter deadline.
    pub request_timeout_ms: u64,
    /// After SIGTERM: how long health reports NOT_SERVING before the listener closes, so load
    /// balancers and Kubernetes readiness stop sending new calls first.
    pub drain_delay_ms: u64,
    /// After the listener closes: how long in-flight RPCs may take to finish.
    pub shutdown_grace_ms: u64,
    /// Largest request message accepted, in bytes.
    pub max_request_bytes: usize,
    /// Identity RPCs served at once; more are refused at once (health is always served).
    pub max_in_flight_rpcs: usize,
    /// A second, plaintext listener serving only `grpc.health.v1`, for Kubernetes gRPC probes
    /// (which cannot speak TLS) when the main port serves TLS.
    pub health_listen_addr: Option<SocketAddr>,
    /// The key (at least 32 bytes) that seals page tokens and resume cursors. Without one each
    /// process draws its own, so replicas behind one load balancer need a shared file.
    pub token_key_file: Option<PathBuf>,
}

impl Default for GrpcSettings {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            request_timeout_ms: 30_000,
            drain_delay_ms: 2_000,
            shutdown_grace_ms: 20_000,
            max_request_bytes: 1024 * 1024,
            max_in_flight_rpcs: 1024,
            health_listen_addr: None,
            token_key_file: None,
        }
    }
}

impl GrpcSettings {
    /// The default per-RPC timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    /// How long health reports NOT_SERVING before the listener closes.
    pub fn drain_delay(&self) -> Duration {
        Duration::from_millis(self.drain_delay_ms)
    }
    /// How long in-flight RPCs may take to finish after the listener closes.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

/// Where the Okta org is and how to call it.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OktaSettings {
    /// The org's base URL, for example `https://acme.okta.com`. Required unless simulating.
    pub org_url: Option<String>,
    /// The API token (`SSWS`); prefer `api_token_file` in production.
    pub api_token: Option<SecretString>,
    /// A file holding the API token (for example a mounted Kubernetes Secret).
    pub api_token_file: Option<PathBuf>,
    /// TCP + TLS connect timeout.
    pub connect_timeout_ms: u64,
    /// Timeout of one Okta HTTP request.
    pub request_timeout_ms: u64,
    /// Retries of reads, membership changes, user lifecycle transitions and OAuth token requests
    /// on 429, 5xx and connection errors (never of creates, profile updates or deletions).
    pub max_retries: u32,
    /// First backoff step when Okta gives no reset time.
    pub retry_base_delay_ms: u64,
    /// Longest single wait before a retry.
    pub retry_max_delay_ms: u64,
    /// Share of each Okta rate-limit bucket the gateway leaves unused (other clients of the token).
    pub rate_limit_reserve_percent: u32,
    /// Most Okta requests this gateway keeps in flight (Okta allows 75 per org, for all clients);
    /// all replicas together when they share a coordination server.
    pub max_concurrent_requests: u32,
    /// Allow a plain-http `org_url` that is not on loopback: only for a simulated org inside a
    /// cluster (the `simulated` deployment), never for a real one.
    pub allow_insecure_http: bool,
    /// OAuth 2.0 service-app credentials, instead of an API token.
    pub oauth: OktaOAuthSettings,
}

/// `okta.oauth`: authenticate as an OAuth 2.0 service app (client credentials with a
/// private_key_jwt assertion) instead of with an API token. Used when `client_id` is set.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OktaOAuthSettings {
    /// The service app's client id (`0oa…`).
    pub client_id: Option<String>,
    /// The app's private key: PEM (PKCS#8, PKCS#1 RSA, SEC1 EC) or a private JWK; RSA or EC
    /// P-256. Mount it from a Secret.
    pub private_key_file: Option<PathBuf>,
    /// The key id (`kid`) Okta shows for the registered public key; optional for a JWK that
    /// carries its `kid`.
    pub key_id: Option<String>,
    /// Bind access tokens to the key with DPoP from the start (the gateway also switches to
    /// DPoP by itself when Okta demands it).
    pub dpop: bool,
    /// Override of the requested scopes (space- or comma-separated, or a list). Default: the
    /// scopes of the services the gateway serves.
    pub scopes: Option<WordList>,
    /// Request only the `*.read` scopes (reads work, changes fail with OKTA_SCOPE_MISSING).
    pub read_only_scopes: bool,
}

/// A list setting (scopes, audiences, algorithms) as one string (`"okta.users.read
/// okta.groups.read"`, handy in environment variables) or a list.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum WordList {
    /// Space- or comma-separated.
    Text(String),
    /// One scope per entry.
    List(Vec<String>),
}

impl WordList {
    /// The entries, trimmed, empty ones dropped.
    pub fn words(&self) -> Vec<String> {
        self.split(&[' ', ','])
    }

    /// Like [`WordList::words`], with only commas separating a string's entries: for names
    /// that may hold spaces (group names).
    pub fn comma_separated(&self) -> Vec<String> {
        self.split(&[','])
    }

    fn split(&self, separators: &[char]) -> Vec<String> {
        let items: Vec<&str> = match self {
            Self::Text(text) => text.split(separators).collect(),
            Self::List(list) => list.iter().map(String::as_str).collect(),
        };
        items
            .into_iter()
            .map(str::trim)
            .filter(|scope| !scope.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl Default for OktaSettings {
    fn default() -> Self {
        Self {
            org_url: None,
            api_token: None,
            api_token_file: None,
            connect_timeout_ms: 5_000,
            request_timeout_ms: 15_000,
            max_retries: 2,
            retry_base_delay_ms: 200,
            retry_max_delay_ms: 10_000,
            rate_limit_reserve_percent: 5,
            max_concurrent_requests: 20,
            allow_insecure_http: false,
            oauth: OktaOAuthSettings::default(),
        }
    }
}

/// Log format and filter.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `json` (one object per line, for collectors) or `pretty` (for people).
    pub format: LogFormat,
    /// A `tracing` filter, for example `info` or `identity_gateway=debug,okta_client=debug,info`
    /// (the Okta client logs under its own crate's name).
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            filter: "info".to_owned(),
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

impl Settings {
    /// Loads defaults, then `file` (TOML or YAML, by extension) if given, then the environment
    /// `env` (pass `std::env::vars()`; tests pass their own map).
    pub fn load(file: Option<&Path>, env: &HashMap<String, String>) -> anyhow::Result<Self> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let sdk_env: HashMap<String, String> = [
            (OKTA_SDK_ORG_URL_VAR, "IDGW_OKTA__ORG_URL"),
            (OKTA_SDK_TOKEN_VAR, "IDGW_OKTA__API_TOKEN"),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "IDGW_TELEMETRY__OTLP_ENDPOINT",
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "IDGW_TELEMETRY__OTLP_HEADERS"),
            (
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                "IDGW_TELEMETRY__OTLP_CERTIFICATE_FILE",
            ),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                "IDGW_TELEMETRY__OTLP_CLIENT_CERTIFICATE_FILE",
            ),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                "IDGW_TELEMETRY__OTLP_CLIENT_KEY_FILE",
            ),
            (
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                "IDGW_TELEMETRY__OTLP_TIMEOUT_MS",
            ),
            (
                "OTEL_EXPORTER_OTLP_COMPRESSION",
                "IDGW_TELEMETRY__OTLP_COMPRESSION",
            ),
            ("OTEL_SERVICE_NAME", "IDGW_TELEMETRY__SERVICE_NAME"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "IDGW_TELEMETRY__RESOURCE_ATTRIBUTES",
            ),
            ("OTEL_TRACES_SAMPLER", "IDGW_TELEMETRY__TRACES_SAMPLER"),
            (
                "OTEL_TRACES_SAMPLER_ARG",
                "IDGW_TELEMETRY__TRACES_SAMPLER_ARG",
            ),
            (
                "OTEL_METRIC_EXPORT_INTERVAL",
                "IDGW_TELEMETRY__METRICS_INTERVAL_MS",
            ),
        ]
        .into_iter()
        .map(|(sdk_name, own_name)| (sdk_name.to_owned(), own_name.to_owned()))
        .chain(otlp_signal_variables())
        .filter_map(|(sdk_name, own_name)| {
            env.get(&sdk_name).map(|value| (own_name, value.clone()))
        })
        .collect();
        let own_env: HashMap<String, String> = env
            .iter()
            .filter(|(name, _)| name.starts_with(&format!("{ENV_PREFIX}_")))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        for source in [sdk_env, own_env] {
            builder = builder.add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(source)),
            );
        }
        let settings = builder.build()?.try_deserialize()?;
        Ok(settings)
    }

    /// Runs every section's rules and returns all problems at once, one line each, naming the
    /// setting, or what the `okta` section's rules give: the org and credentials to call (none
    /// when `simulate`, the embedded simulator providing the org).
    pub fn validate(
        &self,
        simulate: bool,
    ) -> Result<<OktaSettings as Section>::Valid, Vec<String>> {
        let checking = Checking {
            settings: self,
            simulate,
        };
        let mut problems: Vec<String> = [
            self.grpc.validate(&checking),
            self.telemetry.validate(&checking),
            self.log.validate(&checking),
            self.events.validate(&checking),
            self.auth.validate(&checking),
            self.authz.validate(&checking),
            self.fairness.validate(&checking),
            self.cache.validate(&checking),
            self.coordination.validate(&checking),
            self.scim.validate(&checking),
        ]
        .into_iter()
        .filter_map(Result::err)
        .flatten()
        .collect();
        match self.okta.validate(&checking) {
            Ok(target) => checked(problems, target),
            Err(okta_problems) => {
                problems.extend(okta_problems);
                Err(problems)
            }
        }
    }
}

/// One section of the settings with rules of its own, implemented by the module the section
/// configures, so a rule sits next to the code that depends on it.
pub trait Section {
    /// What the checked section gives its module beyond "it is usable": parsed values that
    /// checking had to make anyway (`()` for most sections).
    type Valid;

    /// Checks the section: its checked form, or every problem (at least one), each naming the
    /// setting and never echoing a secret.
    fn validate(&self, checking: &Checking<'_>) -> Result<Self::Valid, Vec<String>>;
}

/// What a section's rules may need beyond the section itself.
#[derive(Clone, Copy, Debug)]
pub struct Checking<'a> {
    /// Every section, for the few rules that span two (a policy is required unless
    /// `auth.insecure`).
    pub settings: &'a Settings,
    /// Whether the embedded simulator provides the Okta org, so its settings are not required.
    pub simulate: bool,
}

/// `valid` when no problem was found, else the problems: how a section's rules end.
pub fn checked<T>(problems: Vec<String>, valid: T) -> Result<T, Vec<String>> {
    if problems.is_empty() {
        Ok(valid)
    } else {
        Err(problems)
    }
}

/// What the tests of each section's rules share: settings from a few variables, and a check that
/// validation reports what it should.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Settings from the environment variables `pairs` alone.
    pub(crate) fn load(pairs: &[(&str, &str)]) -> Settings {
        let env = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        Settings::load(None, &env).unwrap()
    }

    /// Checks that validation reports each of `needles`; returns every problem, one a line.
    pub(crate) fn assert_reported(settings: &Settings, needles: &[&str]) -> String {
        let problems = settings.validate(true).unwrap_err().join("\n");
        for needle in needles {
            assert!(problems.contains(needle), "{needle}: {problems}");
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::testing::load;
    use super::*;

    #[test]
    fn okta_sdk_variables_are_honoured_below_the_gateway_variables() {
        let settings = load(&[
            ("OKTA_CLIENT_ORGURL", "https://sdk.okta.com"),
            ("OKTA_CLIENT_TOKEN", "sdk-token"),
            ("IDGW_OKTA__ORG_URL", "https://own.okta.com"),
        ]);
        assert_eq!(
            settings.okta.org_url.as_deref(),
            Some("https://own.okta.com")
        );
        assert_eq!(
            settings
                .okta
                .api_token
                .as_ref()
                .map(ExposeSecret::expose_secret),
            Some("sdk-token")
        );
    }

    #[test]
    fn validation_reports_every_problem_at_once() {
        let settings = load(&[
            ("IDGW_GRPC__REQUEST_TIMEOUT_MS", "0"),
            ("IDGW_OKTA__ORG_URL", "http://acme.okta.com/api"),
        ]);
        let problems = settings.validate(false).unwrap_err();
        let joined = problems.join("\n");
        assert!(joined.contains("grpc.request_timeout_ms"), "{joined}");
        assert!(joined.contains("must use https"), "{joined}");
        assert!(joined.contains("no path"), "{joined}");
        assert!(joined.contains("no Okta API token"), "{joined}");
        assert!(joined.contains("no caller authentication"), "{joined}");
    }

    #[test]
    fn the_standard_otlp_export_variables_are_read_without_echoing_headers() {
        let settings = load(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=header-canary"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ]);
        let telemetry = &settings.telemetry;
        assert_eq!(
            telemetry.otlp_endpoint.as_deref(),
            Some("http://collector:4317")
        );
        assert_eq!(telemetry.otlp_timeout_ms, 2500);
        assert!(!format!("{settings:?}").contains("header-canary"));
    }

    #[test]
    fn the_per_signal_otlp_variables_and_compression_are_read() {
        let settings = load(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "x-api-key=traces-canary",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1500"),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "none"),
            ("IDGW_TELEMETRY__METRICS__TIMEOUT_MS", "2500"),
            ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", ""),
        ]);
        let telemetry = &settings.telemetry;
        assert_eq!(telemetry.otlp_compression, OtlpCompression::Gzip);
        assert_eq!(
            telemetry.traces.endpoint.as_deref(),
            Some("http://traces:4317")
        );
        assert_eq!(telemetry.traces.timeout_ms, Some(1500));
        assert_eq!(telemetry.metrics.compression, Some(OtlpCompression::None));
        assert_eq!(telemetry.metrics.timeout_ms, Some(2500));
        assert!(
            telemetry
                .metrics
                .headers
                .as_ref()
                .is_some_and(|headers| headers.expose_secret().is_empty()),
            "an empty signal's headers variable sends that signal no headers"
        );
        assert!(!format!("{settings:?}").contains("traces-canary"));

        let env = HashMap::from([(
            "OTEL_EXPORTER_OTLP_COMPRESSION".to_owned(),
            "zstd".to_owned(),
        )]);
        let error = Settings::load(None, &env).unwrap_err().to_string();
        assert!(
            error.contains("zstd") && error.contains("telemetry.otlp_compression"),
            "{error}"
        );
    }

    #[test]
    fn list_settings_are_read_from_one_string_or_a_list() {
        let settings = load(&[
            ("IDGW_AUTH__JWT__AUDIENCES", "identity-gateway,other"),
            (
                "IDGW_AUTHZ__PROTECTED_GROUPS",
                "Super Admins, okta-admins-*",
            ),
        ]);
        assert_eq!(
            settings.auth.jwt.audiences.as_ref().unwrap().words(),
            ["identity-gateway", "other"]
        );
        assert_eq!(
            settings
                .authz
                .protected_groups
                .as_ref()
                .unwrap()
                .comma_separated(),
            ["Super Admins", "okta-admins-*"]
        );
        let list = WordList::List(vec![" okta.users.read ".to_owned(), String::new()]);
        assert_eq!(list.words(), ["okta.users.read"]);
    }

    #[test]
    fn the_group_discovery_cache_is_off_by_default() {
        let defaults = load(&[]);
        assert_eq!(defaults.cache.group_discovery_ttl(), None);
        let on = load(&[("IDGW_CACHE__GROUP_DISCOVERY_TTL_MS", "5000")]);
        assert_eq!(on.cache.group_discovery_ttl(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn unknown_settings_are_refused() {
        let env = HashMap::from([("IDGW_OKTA__ORG_ULR".to_owned(), "x".to_owned())]);
        let error = Settings::load(None, &env).unwrap_err();
        assert!(error.to_string().contains("org_ulr"), "{error}");
    }

    #[test]
    fn the_token_never_appears_in_debug_output() {
        let settings = load(&[("IDGW_OKTA__API_TOKEN", "canary-secret-1234")]);
        assert!(!format!("{settings:?}").contains("canary-secret-1234"));
    }
}
