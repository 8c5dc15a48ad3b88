//! Fault modes: standing misbehaviour of the org, set at start (`simulate --fault-modes FILE`)
//! or at runtime (`PUT /__sim/fault-modes`), as opposed to the counted canned answers of
//! [`super::faults`]. Each mode hits the `/api` requests it matches (`method`, `path_prefix`),
//! for `times` hits or `duration_ms` at most when given, until cleared otherwise:
//!
//! | mode | a hit request gets |
//! |---|---|
//! | `server_errors` | with probability `rate`, one of `statuses` (default 500, 502, 503): 500 with E0000009 and 503 with E0000010, Okta's catalogued server errors; other statuses without body, as Okta's edge answers them |
//! | `rate_limit_storm` | 429 E0000047 with its bucket's `X-Rate-Limit-Limit`, `Remaining: 0` and `Reset` at the storm's end (without a duration, the bucket window's end); budgets are not spent |
//! | `concurrency_limit` | when `max_in_flight` matching requests are in flight already: 429 E0000047 with `Limit: 0` and `Remaining: 0`, Okta's concurrency answer (its reset an estimate, 1 s ahead) |
//! | `connection_resets` | with probability `rate`, no answer: the connection is closed with a TCP reset |
//!
//! ```json
//! {"seed": 7,
//!  "server_errors": {"rate": 0.2, "statuses": [500, 503], "method": "GET", "path_prefix": "/api/v1/users"},
//!  "rate_limit_storm": {"duration_ms": 10000, "path_prefix": "/api/v1/groups"},
//!  "concurrency_limit": {"max_in_flight": 2},
//!  "connection_resets": {"rate": 0.05, "times": 3}}
//! ```
//!
//! Random choices come from one generator seeded with `seed` (a random seed when absent, shown
//! by `GET /__sim/fault-modes`), so a run replays: the same requests in the same order meet the
//! same faults. A rate of 1.0 hits every matching request and 0.0 none.

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::http::StatusCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::errors::OktaError;
use super::faults::request_matches;
use super::http::Reply;
use super::rate_limit::{self, InFlight, Verdict};

/// Server errors picked from when a `server_errors` mode names none.
const DEFAULT_SERVER_ERROR_STATUSES: [u16; 3] = [500, 502, 503];

/// The modes in effect: the body of `PUT /__sim/fault-modes`, the answer of `GET`, and the
/// `--fault-modes` file (YAML or JSON). A mode left out is off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultModes {
    /// Seed of the random choices, so a run can be replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Okta failing with 5xx for a share of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_errors: Option<Mode>,
    /// Every matching request refused with a rate-limit 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_storm: Option<Mode>,
    /// Okta's concurrent-request limit, scoped to the matching requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_limit: Option<Mode>,
    /// Connections dropped without an answer for a share of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_resets: Option<Mode>,
}

/// One mode's scope and extent; `rate`, `statuses` and `max_in_flight` apply to some modes only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mode {
    /// Only requests with this method (any case); all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Only requests whose raw path starts with this; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Share of matching requests hit, 0.0 to 1.0 (default 1.0): `server_errors` and
    /// `connection_resets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// The 5xx statuses to answer with, picked at random: `server_errors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statuses: Option<Vec<u16>>,
    /// Matching requests served at once; more are refused: `concurrency_limit` (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// The mode ends after this many hits (GET shows the hits left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    /// The mode ends this long after it was set (GET shows the time left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// The four modes, for validation messages and lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ServerErrors,
    RateLimitStorm,
    ConcurrencyLimit,
    ConnectionResets,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ServerErrors => "server_errors",
            Kind::RateLimitStorm => "rate_limit_storm",
            Kind::ConcurrencyLimit => "concurrency_limit",
            Kind::ConnectionResets => "connection_resets",
        }
    }
}

impl FaultModes {
    /// Reads a document (YAML or JSON) and checks it.
    pub fn parse(text: &str) -> Result<FaultModes, String> {
        let modes: FaultModes =
            serde_yaml::from_str(text).map_err(|e| format!("invalid fault modes: {e}"))?;
        modes.validate()?;
        Ok(modes)
    }

    /// Checks every mode: fields that do not apply to it are refused rather than ignored.
    pub fn validate(&self) -> Result<(), String> {
        self.modes()
            .into_iter()
            .filter_map(|(kind, mode)| mode.map(|mode| mode.validate(kind)))
            .collect()
    }

    fn modes(&self) -> [(Kind, Option<&Mode>); 4] {
        [
            (Kind::ServerErrors, self.server_errors.as_ref()),
            (Kind::RateLimitStorm, self.rate_limit_storm.as_ref()),
            (Kind::ConcurrencyLimit, self.concurrency_limit.as_ref()),
            (Kind::ConnectionResets, self.connection_resets.as_ref()),
        ]
    }
}

impl Mode {
    fn validate(&self, kind: Kind) -> Result<(), String> {
        let name = kind.name();
        let random = matches!(kind, Kind::ServerErrors | Kind::ConnectionResets);
        if let Some(rate) = self.rate {
            if !random {
                return Err(format!(
                    "{name}: `rate` applies to server_errors and connection_resets"
                ));
            }
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name}: `rate` must be between 0.0 and 1.0"));
            }
        }
        if let Some(statuses) = &self.statuses {
            if kind != Kind::ServerErrors {
                return Err(format!("{name}: `statuses` applies to server_errors"));
            }
            if statuses.is_empty() || statuses.iter().any(|s| !(500..=599).contains(s)) {
                return Err(format!("{name}: `statuses` must be 5xx statuses"));
            }
        }
        if (kind == Kind::ConcurrencyLimit) != self.max_in_flight.is_some() {
            return Err(format!(
                "{name}: `max_in_flight` is required by concurrency_limit and applies to it alone"
            ));
        }
        if self.times == Some(0) {
            return Err(format!("{name}: `times` must be at least 1"));
        }
        Ok(())
    }
}

/// A mode in effect.
struct Running {
    kind: Kind,
    mode: Mode,
    /// When a `duration_ms` mode ends.
    until: Option<(Instant, SystemTime)>,
    /// The matching requests in flight (`concurrency_limit`).
    in_flight: Arc<AtomicU32>,
}

impl Running {
    fn applies(&self, kind: Kind, method: &str, path: &str) -> bool {
        self.kind == kind
            && self.mode.times != Some(0)
            && self.until.is_none_or(|(until, _)| Instant::now() < until)
            && request_matches(
                self.mode.method.as_deref(),
                self.mode.path_prefix.as_deref(),
                method,
                path,
            )
    }

    fn count_hit(&mut self) {
        self.mode.times = self.mode.times.map(|left| left.saturating_sub(1));
    }
}

struct Active {
    seed: u64,
    rng: StdRng,
    modes: Vec<Running>,
}

/// The modes in effect and the random generator, shared by every request.
pub struct FaultModeState(Mutex<Active>);

impl FaultModeState {
    /// Starts with `modes` (already validated).
    pub fn new(modes: &FaultModes) -> Self {
        FaultModeState(Mutex::new(activate(modes)))
    }

    fn lock(&self) -> MutexGuard<'_, Active> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces every mode (already validated) and reseeds the generator.
    pub fn replace(&self, modes: &FaultModes) {
        *self.lock() = activate(modes);
    }

    /// The modes still in effect, with the hits and time they have left, and the seed.
    pub fn current(&self) -> FaultModes {
        let active = self.lock();
        let now = Instant::now();
        let mut out = FaultModes {
            seed: Some(active.seed),
            ..FaultModes::default()
        };
        for running in active.modes.iter().filter(|r| r.mode.times != Some(0)) {
            let mut mode = running.mode.clone();
            if let Some((until, _)) = running.until {
                let left = until.saturating_duration_since(now);
                if left.is_zero() {
                    continue;
                }
                mode.duration_ms = Some(u64::try_from(left.as_millis()).unwrap_or(u64::MAX));
            }
            let slot = match running.kind {
                Kind::ServerErrors => &mut out.server_errors,
                Kind::RateLimitStorm => &mut out.rate_limit_storm,
                Kind::ConcurrencyLimit => &mut out.concurrency_limit,
                Kind::ConnectionResets => &mut out.connection_resets,
            };
            *slot = Some(mode);
        }
        out
    }

    /// Counts one hit of the `kind` mode when it applies to the request and its rate draws it,
    /// and returns what `then` makes of the mode and the generator.
    fn hit<T>(
        &self,
        kind: Kind,
        method: &str,
        path: &str,
        then: impl FnOnce(&Mode, Option<SystemTime>, &mut StdRng) -> T,
    ) -> Option<T> {
        let mut active = self.lock();
        let Active { rng, modes, .. } = &mut *active;
        let running = modes.iter_mut().find(|r| r.applies(kind, method, path))?;
        if !running.mode.rate.is_none_or(|rate| rng.random_bool(rate)) {
            return None;
        }
        running.count_hit();
        Some(then(&running.mode, running.until.map(|(_, end)| end), rng))
    }

    /// Whether the connection carrying this request is to be dropped without an answer.
    pub fn connection_reset(&self, method: &str, path: &str) -> bool {
        self.hit(Kind::ConnectionResets, method, path, |_, _, _| ())
            .is_some()
    }

    /// The server error this request gets instead of its answer, if any.
    pub fn server_error(&self, method: &str, path: &str) -> Option<Reply> {
        self.hit(Kind::ServerErrors, method, path, |mode, _, rng| {
            let statuses = mode
                .statuses
                .as_deref()
                .unwrap_or(&DEFAULT_SERVER_ERROR_STATUSES);
            let status = statuses
                .get(rng.random_range(0..statuses.len()))
                .copied()
                .unwrap_or(500);
            server_error_reply(status)
        })
    }

    /// `Some(end)` when the request is caught in a rate-limit storm; `end` is when the storm
    /// is over, for a storm with a duration.
    pub fn rate_limit_storm(&self, method: &str, path: &str) -> Option<Option<SystemTime>> {
        self.hit(Kind::RateLimitStorm, method, path, |_, end, _| end)
    }

    /// Takes a slot among the matching requests in flight when a concurrency limit applies to
    /// this request (`Ok(None)` when none does), or the verdict of Okta's concurrency 429.
    pub fn enter(&self, method: &str, path: &str) -> Result<Option<InFlight>, Verdict> {
        let mut active = self.lock();
        let Some(running) = active
            .modes
            .iter_mut()
            .find(|r| r.applies(Kind::ConcurrencyLimit, method, path))
        else {
            return Ok(None);
        };
        let cap = running.mode.max_in_flight.unwrap_or(0);
        match rate_limit::take_slot(&running.in_flight, cap) {
            Ok(slot) => Ok(Some(slot)),
            Err(verdict) => {
                running.count_hit();
                Err(verdict)
            }
        }
    }
}

fn activate(modes: &FaultModes) -> Active {
    let seed = modes.seed.unwrap_or_else(|| rand::rng().random());
    let now = (Instant::now(), SystemTime::now());
    let running = modes
        .modes()
        .into_iter()
        .filter_map(|(kind, mode)| {
            let mode = mode?.clone();
            let until = mode.duration_ms.map(|ms| {
                let duration = Duration::from_millis(ms);
                (now.0 + duration, now.1 + duration)
            });
            Some(Running {
                kind,
                mode,
                until,
                in_flight: Arc::new(AtomicU32::new(0)),
            })
        })
        .collect();
    Active {
        seed,
        rng: StdRng::seed_from_u64(seed),
        modes: running,
    }
}

/// Okta's answer for a server error: its catalogued error for 500 (E0000009) and 503
/// (E0000010); no body for other statuses (502, 504), which come from Okta's edge, not from
/// the application that writes Okta's error bodies.
fn server_error_reply(status: u16) -> Reply {
    match status {
        500 => OktaError::new("E0000009", "").into(),
        503 => OktaError::new("E0000010", "").into(),
        other => {
            Reply::empty(StatusCode::from_u16(other).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modes(json: &str) -> FaultModes {
        FaultModes::parse(json).unwrap()
    }

    #[test]
    fn fields_that_do_not_apply_are_refused() {
        for bad in [
            r#"{"rate_limit_storm": {"rate": 0.5}}"#,
            r#"{"server_errors": {"rate": 1.5}}"#,
            r#"{"server_errors": {"statuses": [404]}}"#,
            r#"{"connection_resets": {"statuses": [500]}}"#,
            r#"{"concurrency_limit": {}}"#,
            r#"{"server_errors": {"max_in_flight": 1}}"#,
            r#"{"server_errors": {"times": 0}}"#,
            r#"{"server_errors": {"rates": 1.0}}"#,
            r#"{"brownout": {}}"#,
        ] {
            assert!(FaultModes::parse(bad).is_err(), "{bad}");
        }
        assert!(FaultModes::parse("seed: 3\nserver_errors: {rate: 0.5}\n").is_ok());
    }

    #[test]
    fn the_same_seed_replays_the_same_faults() {
        let run = || {
            let state = FaultModeState::new(&modes(
                r#"{"seed": 42, "server_errors": {"rate": 0.5}, "connection_resets": {"rate": 0.3}}"#,
            ));
            (0..64)
                .map(|_| {
                    (
                        state.connection_reset("GET", "/api/v1/users"),
                        state.server_error("GET", "/api/v1/users").map(|r| r.status),
                    )
                })
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        assert!(first.iter().any(|(reset, _)| *reset));
        assert!(first.iter().any(|(_, error)| error.is_some()));
        assert!(first.iter().any(|(_, error)| error.is_none()));
    }

    #[test]
    fn scope_times_and_rates_decide_what_is_hit() {
        let state = FaultModeState::new(&modes(
            r#"{"server_errors": {"method": "post", "path_prefix": "/api/v1/users/", "statuses": [503], "times": 2},
                "connection_resets": {"rate": 0.0}}"#,
        ));
        assert!(state.server_error("GET", "/api/v1/users/x").is_none());
        assert!(state.server_error("POST", "/api/v1/groups").is_none());
        let reply = state.server_error("POST", "/api/v1/users/x").unwrap();
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(reply.body.unwrap().contains("E0000010"));
        assert_eq!(state.current().server_errors.unwrap().times, Some(1));
        assert!(state.server_error("POST", "/api/v1/users/x").is_some());
        assert!(state.server_error("POST", "/api/v1/users/x").is_none());
        assert!(state.current().server_errors.is_none(), "used up");
        assert!(!state.connection_reset("GET", "/api/v1/users"));
    }

    #[test]
    fn the_concurrency_limit_refuses_beyond_its_slots_as_okta_does() {
        let state = FaultModeState::new(&modes(r#"{"concurrency_limit": {"max_in_flight": 1}}"#));
        let held = state.enter("GET", "/api/v1/users").unwrap();
        assert!(held.is_some());
        let refused = state.enter("GET", "/api/v1/groups").unwrap_err();
        assert_eq!((refused.limit, refused.remaining), (0, 0));
        drop(held);
        assert!(state.enter("GET", "/api/v1/groups").unwrap().is_some());
    }
}
