//! The public keys that callers' JWTs are verified with: a JSON Web Key Set (RFC 7517) read from
//! a file or fetched from a URL, cached, and refreshed so a key rotation at the issuer needs no
//! restart.
//!
//! - At start the keys are loaded once, and a failure stops the gateway (fail fast: a wrong path
//!   or URL shows at deploy time, as a crash-looping pod, not as refused callers later).
//! - Every `auth.jwt.jwks_refresh_s` the set is loaded again (the file re-read, the URL fetched),
//!   so removed keys stop being accepted.
//! - A token naming an unknown key id loads the set again at once, at most once per
//!   [`UNKNOWN_KID_REFETCH_INTERVAL`], so a new signing key is followed within one request and a
//!   stream of made-up key ids cannot turn into a stream of fetches. The load finishes even
//!   when the caller that caused it runs out of time.
//!
//! A failed refresh keeps the keys in hand and is logged.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use url::Url;

use super::keys::KeySet;

/// The shortest time between two loads caused by unknown key ids.
pub const UNKNOWN_KID_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// The largest JWKS accepted; real ones are a few kilobytes.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Bounds on fetching the JWKS URL; a caller whose token named a new key waits for the fetch.
const FETCH_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the JWKS comes from.
#[derive(Clone, Debug)]
pub enum JwksSource {
    /// A file, re-read at each refresh (a mounted ConfigMap updates in place).
    File(PathBuf),
    /// An http(s) URL.
    Url(Url),
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(formatter, "{}", path.display()),
            Self::Url(url) => write!(formatter, "{url}"),
        }
    }
}

/// The cached key set and how to load it again; see the module docs.
pub struct Jwks {
    source: JwksSource,
    http: reqwest::Client,
    current: RwLock<Arc<KeySet>>,
    /// When an unknown key id last caused a load; also makes such loads one at a time.
    last_unknown_kid_load: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Jwks")
            .field("source", &self.source)
            .field("kids", &self.current().kids())
            .finish()
    }
}

impl Jwks {
    /// Loads the set (failing if it cannot), then refreshes it every `refresh` in the
    /// background for as long as the returned value lives.
    pub async fn load(source: JwksSource, refresh: Duration) -> anyhow::Result<Arc<Self>> {
        let http = reqwest::Client::builder()
            .connect_timeout(FETCH_CONNECT_TIMEOUT)
            .timeout(FETCH_TIMEOUT)
            // A redirect could leave https; issuers publish their JWKS at a stable URL.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(crate::USER_AGENT)
            .build()
            .context("cannot build the JWKS HTTP client")?;
        let keys = read_key_set(&source, &http).await?;
        tracing::info!(jwks = %source, kids = ?keys.kids(), "jwks loaded");
        let jwks = Arc::new(Self {
            source,
            http,
            current: RwLock::new(Arc::new(keys)),
            last_unknown_kid_load: tokio::sync::Mutex::new(None),
        });
        spawn_refresher(Arc::downgrade(&jwks), refresh);
        Ok(jwks)
    }

    /// The keys in hand.
    pub fn current(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The keys after a token named an unknown key id: loaded again unless that was done less
    /// than [`UNKNOWN_KID_REFETCH_INTERVAL`] ago (concurrent callers share one load). The load
    /// runs on its own task, so a caller whose deadline ends the wait does not end the load:
    /// the next caller finds the new key.
    pub async fn after_unknown_kid(self: &Arc<Self>) -> Arc<KeySet> {
        let mut last = self.last_unknown_kid_load.lock().await;
        if last.is_none_or(|at| at.elapsed() >= UNKNOWN_KID_REFETCH_INTERVAL) {
            *last = Some(Instant::now());
            let jwks = Arc::clone(self);
            // A failed load is logged by `refresh`; the task cannot panic.
            let _ = tokio::spawn(async move { jwks.refresh().await }).await;
        }
        self.current()
    }

    /// Loads the set again; on failure keeps the current keys and logs why.
    async fn refresh(&self) {
        match read_key_set(&self.source, &self.http).await {
            Ok(keys) => {
                let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
                if current.kids() != keys.kids() {
                    tracing::info!(jwks = %self.source, kids = ?keys.kids(), "jwks keys changed");
                }
                *current = Arc::new(keys);
            }
            Err(error) => {
                tracing::warn!(jwks = %self.source, error = format!("{error:#}"),
                    "jwks refresh failed; keeping the keys in hand");
            }
        }
    }
}

fn spawn_refresher(jwks: Weak<Jwks>, period: Duration) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(jwks) = jwks.upgrade() else {
                return;
            };
            jwks.refresh().await;
        }
    });
}

async fn read_key_set(source: &JwksSource, http: &reqwest::Client) -> anyhow::Result<KeySet> {
    let bytes = match source {
        JwksSource::File(path) => tokio::fs::read(path)
            .await
            .context("cannot read the file")?,
        JwksSource::Url(url) => fetch(http, url).await?,
    };
    if bytes.len() > MAX_JWKS_BYTES {
        bail!("the JWKS is larger than {MAX_JWKS_BYTES} bytes");
    }
    KeySet::parse(&bytes).map_err(anyhow::Error::msg)
}

async fn fetch(http: &reqwest::Client, url: &Url) -> anyhow::Result<Vec<u8>> {
    let mut response = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .context("cannot fetch the JWKS")?;
    if !response.status().is_success() {
        bail!("fetching the JWKS answered {}", response.status());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .context("cannot read the JWKS response")?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            bail!("the JWKS is larger than {MAX_JWKS_BYTES} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Checks that `path` holds a usable JWKS, for settings validation.
pub fn check_file(path: &std::path::Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|error| format!("cannot be read ({error})"))?;
    KeySet::parse(&bytes).map(|_| ())
}
