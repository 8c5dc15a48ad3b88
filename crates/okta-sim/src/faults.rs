//! Fault injection: canned responses that replace the next matching `/api` requests.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use axum::http::{HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};

use super::errors;
use super::http::Reply;

fn one() -> u32 {
    1
}

/// One injected fault, as posted to `POST /__sim/faults`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Only requests with this method (any case); `None` = any.
    #[serde(default)]
    pub method: Option<String>,
    /// Only requests whose raw path starts with this; `None` = any.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Response status.
    pub status: u16,
    /// When set, the body is an Okta error with this code.
    #[serde(default)]
    pub error_code: Option<String>,
    /// Summary for the error body (default: the catalogue text for `error_code`).
    #[serde(default)]
    pub error_summary: Option<String>,
    /// How many matching requests get this response (default 1).
    #[serde(default = "one")]
    pub times: u32,
    /// Delay before answering, in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
    /// Extra response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Carry the request out first, then answer with the fault: the write happened but its
    /// answer is lost (a timeout or a 5xx after the commit), as after a network failure.
    #[serde(default)]
    pub commit_then_fail: bool,
}

impl Fault {
    /// Checks that the fault can be turned into a response.
    pub fn validate(&self) -> Result<(), String> {
        StatusCode::from_u16(self.status).map_err(|_| format!("invalid status {}", self.status))?;
        if self.times == 0 {
            return Err("times must be at least 1".to_owned());
        }
        for (k, v) in &self.headers {
            HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("invalid header name {k}"))?;
            HeaderValue::from_str(v).map_err(|_| format!("invalid header value for {k}"))?;
        }
        Ok(())
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        request_matches(
            self.method.as_deref(),
            self.path_prefix.as_deref(),
            method,
            path,
        )
    }

    /// The response this fault produces.
    pub fn reply(&self) -> Reply {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = match &self.error_code {
            Some(code) => {
                let summary = self.error_summary.clone().unwrap_or_else(|| {
                    errors::catalogue(code)
                        .map(|(_, t)| t.replace(": {0}", "").replace("{0}", ""))
                        .unwrap_or_else(|| "Simulated failure".to_owned())
                });
                Reply::json(status, errors::render_body(code, &summary, &[]))
            }
            None => Reply::empty(status),
        };
        r.headers = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        r
    }
}

/// Whether a request falls in a fault's scope: its method (any case) when one is named, and a
/// raw path starting with the prefix when one is given.
pub fn request_matches(
    method_opt: Option<&str>,
    path_prefix_opt: Option<&str>,
    method: &str,
    path: &str,
) -> bool {
    method_opt.is_none_or(|m| m.eq_ignore_ascii_case(method))
        && path_prefix_opt.is_none_or(|p| path.starts_with(p))
}

/// The pending faults, matched in the order they were added.
#[derive(Debug, Default)]
pub struct Faults(Mutex<Vec<Fault>>);

impl Faults {
    /// Adds a fault (already validated).
    pub fn push(&self, f: Fault) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(f);
    }

    /// Removes every pending fault.
    pub fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The pending faults.
    pub fn list(&self) -> Vec<Fault> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Consumes one use of the first fault matching the request that answers instead of it.
    pub fn take(&self, method: &str, path: &str) -> Option<Fault> {
        self.take_kind(method, path, false)
    }

    /// Consumes one use of the first "commit then fail" fault matching the request.
    pub fn take_commit_then_fail(&self, method: &str, path: &str) -> Option<Fault> {
        self.take_kind(method, path, true)
    }

    fn take_kind(&self, method: &str, path: &str, commit_then_fail: bool) -> Option<Fault> {
        let mut v = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let i = v
            .iter()
            .position(|f| f.commit_then_fail == commit_then_fail && f.matches(method, path))?;
        let f = v.get_mut(i)?;
        f.times = f.times.saturating_sub(1);
        let out = f.clone();
        if f.times == 0 {
            v.remove(i);
        }
        Some(out)
    }
}
