//! Spawns the real gateway and the Okta org simulator on port 0 and talks to both over sockets.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

pub mod callers;
pub mod valkey;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use identity_gateway::config::Settings;
use identity_gateway::coordination::Coordination;
use identity_gateway::coordination::ledger::RateLimitLedger;
use identity_gateway::okta::{OktaTarget, client_settings};
use identity_gateway::proto::group_service_client::GroupServiceClient;
use identity_gateway::proto::user_service_client::UserServiceClient;
use identity_gateway::proto::{GetUserRequest, UserLifecycleRequest, get_user_request};
use identity_gateway::startup::Application;
use okta_client::OktaClient;
use okta_sim::{RateLimitSettings, SeedSource, Simulator, SimulatorSettings};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// The SSWS token the test simulator accepts; a canary that must never show up in output.
pub const SIM_TOKEN: &str = "test-canary-token-9f3b2c71e5";

/// A running gateway in front of a running simulator.
pub struct TestApp {
    pub address: SocketAddr,
    /// The plaintext health port, when `grpc.health_listen_addr` is set.
    pub health_address: Option<SocketAddr>,
    /// The SCIM server, when `scim.listen_addr` is set.
    pub scim_address: Option<SocketAddr>,
    pub users: UserServiceClient<Channel>,
    pub groups: GroupServiceClient<Channel>,
    pub health: HealthClient<Channel>,
    /// Shared by the replicas of [`spawn_replica`].
    pub sim: Arc<Simulator>,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Settings for tests: fast retries, no drain delay.
pub fn test_settings() -> Settings {
    let mut settings = Settings::default();
    settings.grpc.listen_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    settings.grpc.drain_delay_ms = 0;
    settings.grpc.shutdown_grace_ms = 5_000;
    settings.okta.retry_base_delay_ms = 5;
    settings.okta.retry_max_delay_ms = 50;
    settings.okta.request_timeout_ms = 5_000;
    settings.events.poll_interval_ms = 25;
    settings.events.keepalive_interval_ms = 100;
    // Most suites test Okta behaviour, not caller security (tests/it/security.rs does).
    settings.auth.insecure = true;
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns with settings adjusted by `configure`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_gateway_for(start_simulator().await, configure).await
}

/// Starts another gateway in front of `app`'s simulator: a replica of the same deployment.
pub async fn spawn_replica(app: &TestApp, configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_gateway_for(app.sim.clone(), configure).await
}

/// Starts an empty simulated org with no rate limits, accepting [`SIM_TOKEN`].
pub async fn start_simulator() -> Simulator {
    Simulator::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        SimulatorSettings {
            api_token: SIM_TOKEN.to_owned(),
            seed: SeedSource::Empty,
            rate_limits: RateLimitSettings::unlimited(),
            ..SimulatorSettings::default()
        },
    )
    .await
    .expect("simulator starts")
}

/// Seeds `sim` directly (before a gateway starts in front of it); returns
/// `{"users":{login:id},"groups":{name:id}}`.
pub async fn seed_simulator(sim: &Simulator, document: &Value) -> Value {
    let url = format!("{}/__sim/seed", sim.base_url());
    answer_json(reqwest::Client::new().post(url).json(document)).await
}

/// Sends `request` and reads its JSON answer.
async fn answer_json(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Starts the gateway in front of `sim` (or of `okta.org_url` when `configure` sets one, for a
/// proxy placed between the two).
pub async fn spawn_gateway_for(
    sim: impl Into<Arc<Simulator>>,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let sim = sim.into();
    let mut settings = test_settings();
    configure(&mut settings);
    let target = OktaTarget {
        org_url: settings
            .okta
            .org_url
            .clone()
            .unwrap_or_else(|| sim.base_url())
            .parse()
            .unwrap(),
        api_token: SecretString::from(
            settings
                .okta
                .api_token
                .as_ref()
                .map(|token| secrecy::ExposeSecret::expose_secret(token).to_owned())
                .unwrap_or_else(|| SIM_TOKEN.to_owned()),
        ),
        oauth: None,
    };
    let coordination =
        Coordination::from_settings(&settings.coordination).expect("coordination settings");
    let ledger = RateLimitLedger::shared_budget(coordination.as_ref(), &settings.coordination);
    let okta =
        OktaClient::new(client_settings(&settings.okta, target, ledger)).expect("okta client");
    let (shutdown_sender, shutdown_receiver) = oneshot::channel::<()>();
    let application = Application::build(&settings, okta, coordination, async {
        let _ = shutdown_receiver.await;
    })
    .await
    .expect("gateway builds");
    let address = application.local_addr();
    let health_address = application.health_addr();
    let scim_address = application.scim_addr();
    let server = tokio::spawn(application.run_until_stopped());
    let endpoint = Endpoint::from_shared(format!("http://{address}")).unwrap();
    let channel = if settings.auth.tls.cert_file.is_some() {
        // A TLS gateway: the test connects with its own TLS channels.
        endpoint.connect_lazy()
    } else {
        endpoint
            .connect()
            .await
            .expect("gateway accepts connections")
    };
    TestApp {
        address,
        health_address,
        scim_address,
        users: UserServiceClient::new(channel.clone()),
        groups: GroupServiceClient::new(channel.clone()),
        health: HealthClient::new(channel),
        sim,
        http: reqwest::Client::new(),
        shutdown: Some(shutdown_sender),
        server,
    }
}

impl TestApp {
    /// Starts the gateway's graceful shutdown.
    pub fn begin_shutdown(&mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
    }

    fn admin_url(&self, path: &str) -> String {
        format!("{}/__sim/{path}", self.sim.base_url())
    }

    /// Adds users and groups to the simulated org; returns `{"users":{login:id},"groups":{name:id}}`.
    pub async fn seed(&self, document: Value) -> Value {
        self.admin(reqwest::Method::POST, "seed", &document).await
    }

    /// Sends `body` to the admin endpoint `path`; asserts the simulator accepted it and returns
    /// its JSON answer.
    async fn admin(&self, method: reqwest::Method, path: &str, body: &Value) -> Value {
        let response = self
            .http
            .request(method, self.admin_url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path} refused: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Seeds one ACTIVE user and returns its id.
    pub async fn seed_user(&self, login: &str) -> String {
        let ids = self.seed(json!({"users": [{"login": login}]})).await;
        ids["users"][login].as_str().unwrap().to_owned()
    }

    /// Every Okta request the simulator received, oldest first.
    pub async fn sim_requests(&self) -> Vec<Value> {
        let answer = answer_json(self.http.get(self.admin_url("requests"))).await;
        serde_json::from_value(answer).unwrap()
    }

    /// The injected faults not used up yet (a fault is used when a request arrives, before
    /// any delay it adds).
    pub async fn pending_faults(&self) -> Vec<Value> {
        let answer = answer_json(self.http.get(self.admin_url("faults"))).await;
        serde_json::from_value(answer).unwrap()
    }

    /// Forgets the requests received so far.
    pub async fn clear_sim_requests(&self) {
        self.http
            .delete(self.admin_url("requests"))
            .send()
            .await
            .unwrap();
    }

    /// Makes the simulator fail the next matching requests.
    pub async fn inject_fault(&self, fault: Value) {
        self.admin(reqwest::Method::POST, "faults", &fault).await;
    }

    /// Removes every fault not yet spent.
    pub async fn clear_faults(&self) {
        self.http
            .delete(self.admin_url("faults"))
            .send()
            .await
            .unwrap();
    }

    /// Replaces the simulator's fault modes (`PUT /__sim/fault-modes`); returns them as now in
    /// effect.
    pub async fn set_fault_modes(&self, modes: Value) -> Value {
        self.admin(reqwest::Method::PUT, "fault-modes", &modes)
            .await
    }

    /// The statuses the simulator answered to requests with `method` on paths starting with
    /// `path_prefix`, oldest first (0: the connection was dropped without an answer).
    pub async fn sim_statuses(&self, method: &str, path_prefix: &str) -> Vec<u64> {
        self.sim_requests()
            .await
            .iter()
            .filter(|r| {
                r["method"] == method && r["path"].as_str().unwrap().starts_with(path_prefix)
            })
            .map(|r| r["status"].as_u64().unwrap())
            .collect()
    }

    /// How many System Log events of `event_type` name `user_id` as a target: each lifecycle
    /// transition the simulated org carried out logs one.
    pub async fn transitions_logged(&self, event_type: &str, user_id: &str) -> usize {
        let mut url = url::Url::parse(&format!("{}/api/v1/logs", self.sim.base_url())).unwrap();
        url.query_pairs_mut().append_pair(
            "filter",
            &format!("eventType eq \"{event_type}\" and target.id eq \"{user_id}\""),
        );
        let request = self.http.get(url);
        let response = request
            .header("Authorization", format!("SSWS {SIM_TOKEN}"))
            .send()
            .await
            .unwrap();
        let events: Vec<Value> = response.json().await.unwrap();
        events.len()
    }

    /// Appends System Log events (oldest first); returns their uuids.
    pub async fn inject_events(&self, events: Vec<Value>) -> Vec<String> {
        let body = self
            .admin(
                reqwest::Method::POST,
                "logs/events",
                &json!({ "events": events }),
            )
            .await;
        body["uuids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|uuid| uuid.as_str().unwrap().to_owned())
            .collect()
    }

    /// Makes every Okta answer of the simulator come `delay_ms` later (0 for none).
    pub async fn set_latency(&self, delay_ms: u64) {
        let response = self
            .http
            .put(self.admin_url("latency"))
            .json(&json!({ "delay_ms": delay_ms }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "latency refused");
    }

    /// A request to the simulator's Okta API itself, as another Okta client would send it.
    pub fn okta_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.sim.base_url()))
            .header("Authorization", format!("SSWS {SIM_TOKEN}"))
    }

    /// Forces a user's status in the simulated org (for states the API cannot reach).
    pub async fn force_status(&self, user_id: &str, status: &str) {
        let path = format!("users/{user_id}/status");
        self.admin(reqwest::Method::POST, &path, &json!({"status": status}))
            .await;
    }
}

/// The `ErrorInfo.reason` of a status, or "".
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

/// The `ErrorInfo.metadata` entry of a status, or "".
pub fn error_metadata(status: &tonic::Status, key: &str) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .and_then(|info| info.metadata.get(key).cloned())
        .unwrap_or_default()
}

/// The fields named by a status's BadRequest violations.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// The health status the gateway reports for UserService (1 is SERVING).
pub async fn user_service_health(health: &mut HealthClient<Channel>) -> i32 {
    health
        .check(HealthCheckRequest {
            service: "identity.v1.UserService".to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

/// A GetUser request by id.
pub fn get_user(id: &str) -> GetUserRequest {
    GetUserRequest {
        user: Some(get_user_request::User::Id(id.to_owned())),
    }
}

/// A lifecycle request (suspend, unsuspend, …) for the user `id`.
pub fn lifecycle(id: &str) -> UserLifecycleRequest {
    UserLifecycleRequest {
        user_id: id.to_owned(),
        ..Default::default()
    }
}

/// A deadline long enough for any single test RPC.
pub const RPC_DEADLINE: Duration = Duration::from_secs(10);

/// How long [`eventually`] usually waits for something the gateway does in the background.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// What a condition polled by [`eventually`] answers: `bool`, or `Option` of what it found.
pub trait Holds {
    /// What [`eventually`] returns once the condition holds.
    type Found;
    /// `Some` once the condition holds.
    fn holds(self) -> Option<Self::Found>;
}

impl Holds for bool {
    type Found = ();
    fn holds(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Holds for Option<T> {
    type Found = T;
    fn holds(self) -> Option<T> {
        self
    }
}

/// Polls `condition` until it holds and returns what it found; panics saying what never
/// happened (`what`) if it does not hold within `timeout`. Tests wait for what they can
/// observe with this, never with a fixed sleep.
pub async fn eventually<H: Holds>(
    timeout: Duration,
    what: &str,
    mut condition: impl AsyncFnMut() -> H,
) -> H::Found {
    let poll = async {
        loop {
            if let Some(found) = condition().await.holds() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(timeout, poll)
        .await
        .unwrap_or_else(|_| panic!("not within {timeout:?}: {what}"))
}

/// Log output captured in memory.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// Waits until `text` has been logged.
    pub async fn wait_for(&self, text: &str) {
        let what = format!("the gateway logs {text:?}");
        eventually(PATIENCE, &what, async || self.text().contains(text)).await;
    }

    /// The JSON audit records written so far.
    pub fn audit_records(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|record| record["target"] == "audit")
            .collect()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'writer> tracing_subscriber::fmt::MakeWriter<'writer> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'writer self) -> Self::Writer {
        self.clone()
    }
}

/// Captures every log line of this thread as JSON, the gateway's at trace level. A
/// current-thread `#[tokio::test]` runs the gateway on the test's thread, so this sees its logs.
pub fn capture_logs() -> (LogBuffer, tracing::subscriber::DefaultGuard) {
    // With a single registered subscriber, tracing-core decides a new callsite's interest by
    // the registering thread's subscriber alone, so a test thread without one would disable
    // callsites for every thread. A global subscriber (which discards everything) keeps
    // thread-local ones from ever being alone.
    static GLOBAL: std::sync::Once = std::sync::Once::new();
    GLOBAL.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::new());
    });
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter("identity_gateway=trace,okta_client=trace,audit=trace,info")
        .with_writer(logs.clone())
        .finish();
    (logs.clone(), tracing::subscriber::set_default(subscriber))
}
