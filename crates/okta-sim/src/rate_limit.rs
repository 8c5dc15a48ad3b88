//! Okta-style rate limiting: per-bucket budgets over a window that starts with the bucket's
//! first request, plus a cap on concurrent in-flight requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{BucketLimit, RateLimitSettings};

/// The rate-limit outcome of one request, which also fills the `x-rate-limit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// `x-rate-limit-limit`.
    pub limit: u32,
    /// `x-rate-limit-remaining` after this request.
    pub remaining: u32,
    /// `x-rate-limit-reset`: window end, UTC epoch seconds.
    pub reset: u64,
    /// Whether the request may proceed.
    pub allowed: bool,
}

struct Window {
    start: Instant,
    reset: u64,
    count: u32,
}

struct Inner {
    settings: RateLimitSettings,
    windows: HashMap<String, Window>,
}

/// Budgets and counters, shared by all requests.
pub struct RateLimiter {
    inner: Mutex<Inner>,
    in_flight: Arc<AtomicU32>,
}

/// Holds one concurrency slot until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicU32>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The name of the implicit bucket for paths no configured bucket matches.
const UNMATCHED: &str = "(unmatched)";

fn epoch_secs_ceil(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Takes one of `cap` slots counted by `in_flight`, or returns the `limit=0, remaining=0`
/// verdict of Okta's concurrency 429 (its reset is an estimate: one second from now).
pub fn take_slot(in_flight: &Arc<AtomicU32>, cap: u32) -> Result<InFlight, Verdict> {
    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let guard = InFlight(Arc::clone(in_flight));
    if now > cap {
        drop(guard);
        return Err(Verdict {
            limit: 0,
            remaining: 0,
            reset: epoch_secs_ceil(SystemTime::now() + Duration::from_secs(1)),
            allowed: false,
        });
    }
    Ok(guard)
}

/// Picks the bucket for a request: an exact path beats a prefix, a longer prefix beats a
/// shorter one, and a bucket naming the method beats one that does not.
pub fn find_bucket<'a>(
    buckets: &'a [BucketLimit],
    method: &str,
    path: &str,
) -> Option<&'a BucketLimit> {
    buckets
        .iter()
        .filter(|b| {
            b.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
        })
        .filter_map(|b| {
            let exact = !b.path_prefix.ends_with('/');
            let hit = if exact {
                path == b.path_prefix
            } else {
                path.starts_with(&b.path_prefix)
            };
            hit.then_some(((exact, b.path_prefix.len(), b.method.is_some()), b))
        })
        .max_by_key(|(k, _)| *k)
        .map(|(_, b)| b)
}

impl RateLimiter {
    /// A limiter with the given budgets and fresh counters.
    pub fn new(settings: RateLimitSettings) -> Self {
        RateLimiter {
            inner: Mutex::new(Inner {
                settings,
                windows: HashMap::new(),
            }),
            in_flight: Arc::new(AtomicU32::new(0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the budgets and resets every counter.
    pub fn replace(&self, settings: RateLimitSettings) {
        let mut inner = self.lock();
        inner.settings = settings;
        inner.windows.clear();
    }

    /// The current budgets.
    pub fn settings(&self) -> RateLimitSettings {
        self.lock().settings.clone()
    }

    /// Takes a slot among the org's concurrent requests (see [`take_slot`]).
    pub fn enter(&self) -> Result<InFlight, Verdict> {
        let cap = self.lock().settings.concurrency_limit;
        take_slot(&self.in_flight, cap)
    }

    /// The verdict of a request refused although its bucket may have budget left (a rate-limit
    /// storm): the bucket's limit, nothing remaining, and a reset at `until` or, without one,
    /// at the end of the bucket's current window. Counts nothing.
    pub fn spent(&self, method: &str, path: &str, until: Option<SystemTime>) -> Verdict {
        let inner = self.lock();
        let bucket = find_bucket(&inner.settings.buckets, method, path);
        let window_end = bucket
            .and_then(|b| inner.windows.get(&b.name))
            .filter(|w| w.start.elapsed() < inner.settings.window)
            .map(|w| w.reset);
        Verdict {
            limit: bucket.map_or(u32::MAX, |b| b.limit),
            remaining: 0,
            reset: until
                .map(epoch_secs_ceil)
                .or(window_end)
                .unwrap_or_else(|| epoch_secs_ceil(SystemTime::now() + inner.settings.window)),
            allowed: false,
        }
    }

    /// Counts one request against its bucket.
    pub fn check(&self, method: &str, path: &str) -> Verdict {
        let mut inner = self.lock();
        let window = inner.settings.window.max(Duration::from_millis(1));
        let (name, limit) = match find_bucket(&inner.settings.buckets, method, path) {
            Some(b) => (b.name.clone(), b.limit),
            None => (UNMATCHED.to_owned(), u32::MAX),
        };
        let now = Instant::now();
        let w = inner.windows.entry(name).or_insert_with(|| Window {
            start: now,
            reset: epoch_secs_ceil(SystemTime::now() + window),
            count: 0,
        });
        if now.duration_since(w.start) >= window {
            *w = Window {
                start: now,
                reset: epoch_secs_ceil(SystemTime::now() + window),
                count: 0,
            };
        }
        if w.count >= limit {
            return Verdict {
                limit,
                remaining: 0,
                reset: w.reset,
                allowed: false,
            };
        }
        w.count += 1;
        Verdict {
            limit,
            remaining: limit - w.count,
            reset: w.reset,
            allowed: true,
        }
    }
}

/// Okta's last published Enterprise budgets, per minute.
pub fn enterprise_buckets() -> Vec<BucketLimit> {
    let b = |name: &str, method: Option<&str>, path: &str, limit: u32| BucketLimit {
        name: name.to_owned(),
        method: method.map(str::to_owned),
        path_prefix: path.to_owned(),
        limit,
    };
    vec![
        // Create and list share one bucket.
        b("users-create-list", Some("GET"), "/api/v1/users", 600),
        b("users-create-list", Some("POST"), "/api/v1/users", 600),
        b("users-read", Some("GET"), "/api/v1/users/", 1000),
        b("users-write", None, "/api/v1/users/", 600),
        b("groups", None, "/api/v1/groups", 600),
        b("groups-id", None, "/api/v1/groups/", 600),
        b("logs", None, "/api/v1/logs", 50),
        b("logs", None, "/api/v1/logs/", 50),
        b("devices", None, "/api/v1/devices", 150),
        b("devices", None, "/api/v1/devices/", 150),
        b("default", None, "/api/v1/", 600),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_selection() {
        let bs = enterprise_buckets();
        let name = |m: &str, p: &str| find_bucket(&bs, m, p).map(|b| b.name.as_str());
        assert_eq!(name("GET", "/api/v1/users"), Some("users-create-list"));
        assert_eq!(name("POST", "/api/v1/users"), Some("users-create-list"));
        assert_eq!(name("DELETE", "/api/v1/users"), Some("default"));
        assert_eq!(name("GET", "/api/v1/users/00u1"), Some("users-read"));
        assert_eq!(name("POST", "/api/v1/users/00u1"), Some("users-write"));
        assert_eq!(name("GET", "/api/v1/groups"), Some("groups"));
        assert_eq!(name("GET", "/api/v1/groups/x/users"), Some("groups-id"));
        assert_eq!(name("GET", "/api/v1/apps"), Some("default"));
        assert_eq!(name("GET", "/other"), None);
    }
}
