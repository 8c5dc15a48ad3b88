//! Coordination between replicas through a Valkey/Redis server (`coordination.redis_url`).
//!
//! One [`Coordination`] per process holds one multiplexed connection, made lazily and remade by
//! the `redis` crate's connection manager whenever it breaks, so a server that is down at start
//! or goes away later is no outage: every use answers [`Unavailable`] at once, the callers fall
//! back to what one replica can do alone, a log line and the
//! `identity_gateway.coordination.degraded` metric say so, and all recovers when the server
//! answers again. Without a URL there is no `Coordination` and the gateway runs in one process.

pub mod in_flight;
pub mod invalidation;
pub mod ledger;
mod settings;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, FromRedisValue, IntoConnectionInfo};
use secrecy::ExposeSecret;

use crate::config::CoordinationSettings;

/// How long one exchange with the server may take before the replica treats it as unreachable.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long connecting may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// Every shared key starts with this, so a server shared with other applications stays legible.
pub const KEY_PREFIX: &str = "idgw:";

/// The shared server, as this replica sees it; cheap to clone.
#[derive(Clone)]
pub struct Coordination {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    connection: ConnectionManager,
    degraded: AtomicBool,
    failures: AtomicU64,
}

impl std::fmt::Debug for Coordination {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never printed.
        formatter
            .debug_struct("Coordination")
            .field("degraded", &self.is_degraded())
            .finish_non_exhaustive()
    }
}

/// The shared server could not be used for this operation; the caller falls back.
#[derive(Debug, thiserror::Error)]
#[error("the coordination server is unavailable")]
pub struct Unavailable;

impl Coordination {
    /// The coordination `settings` ask for, or `None` when no server is configured. Connects
    /// lazily: a server that is down at start does not stop the gateway from starting.
    pub fn from_settings(settings: &CoordinationSettings) -> anyhow::Result<Option<Self>> {
        let Some(url) = &settings.redis_url else {
            return Ok(None);
        };
        let mut info = url
            .expose_secret()
            .into_connection_info()
            .map_err(|_| anyhow::anyhow!("`coordination.redis_url` is not a Redis URL"))?;
        if let Some(path) = &settings.redis_password_file {
            let password = settings::read_password(path)?;
            let redis = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(redis);
        }
        let client = redis::Client::open(info)
            .map_err(|_| anyhow::anyhow!("`coordination.redis_url` is not usable"))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|_| anyhow::anyhow!("`coordination.redis_url` is not usable"))?;
        Ok(Some(Self {
            inner: Arc::new(Inner {
                client,
                connection,
                degraded: AtomicBool::new(false),
                failures: AtomicU64::new(0),
            }),
        }))
    }

    /// Runs `command` on the shared server. A failure marks the replica degraded until a later
    /// command succeeds.
    pub async fn run<T: FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, Unavailable> {
        let mut connection = self.inner.connection.clone();
        self.observe(command.query_async(&mut connection).await)
    }

    /// Runs `script` with `invocation`'s keys and arguments, atomically on the server.
    pub async fn run_script<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, Unavailable> {
        let mut connection = self.inner.connection.clone();
        self.observe(invocation.invoke_async(&mut connection).await)
    }

    /// A connection of its own for receiving published messages, subscribed to `channel`.
    pub async fn subscribe(&self, channel: &str) -> Result<redis::aio::PubSub, Unavailable> {
        let subscribed = async {
            let mut pubsub = self.inner.client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok(pubsub)
        };
        match tokio::time::timeout(CONNECTION_TIMEOUT, subscribed).await {
            Ok(result) => self.observe(result),
            Err(_) => self.observe(Err(redis::RedisError::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            )))),
        }
    }

    /// A connection of its own for commands that block for up to `longest_block` (a stream read
    /// waiting for entries), which on the shared connection would hold up every other command.
    pub async fn blocking_connection(
        &self,
        longest_block: Duration,
    ) -> Result<BlockingConnection, Unavailable> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(longest_block + RESPONSE_TIMEOUT));
        let connection = self
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await;
        Ok(BlockingConnection {
            coordination: self.clone(),
            connection: self.observe(connection)?,
        })
    }

    /// True while the last exchange with the server failed.
    pub fn is_degraded(&self) -> bool {
        self.inner.degraded.load(Ordering::Relaxed)
    }

    /// How many exchanges with the server have failed. What a replica keeps on the server may
    /// have been lost (the server restarted empty, or its lease ran out) only when this changed.
    pub fn failures(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    /// Notes whether the server answered, logging and counting each change of state.
    fn observe<T>(&self, result: redis::RedisResult<T>) -> Result<T, Unavailable> {
        match result {
            Ok(value) => {
                if self.inner.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("the coordination server answers again; shared state restored");
                    degraded_metric().add(-1, &[]);
                }
                Ok(value)
            }
            Err(error) => {
                self.inner.failures.fetch_add(1, Ordering::Relaxed);
                if !self.inner.degraded.swap(true, Ordering::Relaxed) {
                    // The error names the operation and the failure, never the URL or password.
                    tracing::warn!(error_kind = ?error.kind(),
                        "the coordination server is unavailable: this replica is degraded to what it can do alone");
                    degraded_metric().add(1, &[]);
                }
                Err(Unavailable)
            }
        }
    }
}

/// A connection for blocking commands (see [`Coordination::blocking_connection`]); after a
/// failure, make a new one.
pub struct BlockingConnection {
    coordination: Coordination,
    connection: MultiplexedConnection,
}

impl BlockingConnection {
    /// Runs `command`, which may block on the server; a failure marks the replica degraded as
    /// [`Coordination::run`]'s do.
    pub async fn run<T: FromRedisValue>(&mut self, command: &redis::Cmd) -> Result<T, Unavailable> {
        let result = command.query_async(&mut self.connection).await;
        self.coordination.observe(result)
    }
}

/// A short digest of `text` (a caller's name), so names are not spelled out in a server other
/// applications may share.
pub(crate) fn digest(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// `duration` in whole milliseconds, as the server's scripts take time.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// 1 while this replica cannot reach the coordination server, else 0.
fn degraded_metric() -> &'static opentelemetry::metrics::UpDownCounter<i64> {
    static METRIC: std::sync::LazyLock<opentelemetry::metrics::UpDownCounter<i64>> =
        std::sync::LazyLock::new(|| {
            opentelemetry::global::meter(crate::telemetry::INSTRUMENTATION_NAME)
                .i64_up_down_counter("identity_gateway.coordination.degraded")
                .with_description(
                    "1 while this replica cannot reach the coordination server (Valkey/Redis)",
                )
                .build()
        });
    &METRIC
}
