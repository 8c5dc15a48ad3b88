//! The request log behind `GET /__sim/requests`: every `/api` request, in arrival order.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

/// Oldest entries are dropped beyond this many, so a long-running demo cannot grow forever.
const CAPACITY: usize = 100_000;

/// One logged request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Raw path exactly as received (still percent-encoded).
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Status of the response; 0 when the connection was dropped without one (a connection
    /// reset fault).
    pub status: u16,
    /// The W3C `traceparent` the caller sent, so tests can tie Okta's side to a trace.
    pub traceparent: Option<String>,
    /// The `X-Okta-Request-Id` the simulator answered with.
    pub request_id: String,
}

/// The log itself.
#[derive(Debug, Default)]
pub struct Journal(Mutex<VecDeque<RequestRecord>>);

impl Journal {
    /// Appends a record.
    pub fn push(&self, r: RequestRecord) {
        let mut q = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if q.len() >= CAPACITY {
            q.pop_front();
        }
        q.push_back(r);
    }

    /// A copy of every record, oldest first.
    pub fn list(&self) -> Vec<RequestRecord> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Forgets every record.
    pub fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
