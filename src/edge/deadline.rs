//! Bounds every RPC by the caller's `grpc-timeout` (or the configured default when the caller
//! sets none) and answers DEADLINE_EXCEEDED when it runs out.
//!
//! tonic enforces `grpc-timeout` too, but answers CANCELLED; this layer fires a moment earlier so
//! callers see the status gRPC prescribes, and get it before their own deadline passes.

use std::sync::Arc;
use std::time::Duration;

use super::{Answer, Inner, Next, Request, Step};
use crate::context::RequestContext;
use crate::status::deadline_expired;

/// How much earlier than the caller's deadline the gateway gives up, so its answer arrives
/// before the deadline (and before tonic's own timer) rather than racing them.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(5);

/// The deadline-enforcing step; see the module docs.
#[derive(Clone, Debug)]
pub struct Deadline {
    default_timeout: Duration,
}

impl Deadline {
    /// `default_timeout` bounds RPCs whose caller sets no shorter deadline.
    pub fn new(default_timeout: Duration) -> Self {
        Self { default_timeout }
    }
}

impl Step for Deadline {
    fn handle<S: Inner>(&self, mut request: Request, next: Next<'_, S>) -> Answer<S::Error> {
        let caller_timeout = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_grpc_timeout);
        let budget = caller_timeout
            .map_or(self.default_timeout, |timeout| {
                timeout.min(self.default_timeout)
            })
            .saturating_sub(DEADLINE_MARGIN);
        // The deadline is fixed now, when the call arrives, like tonic's own timer: the future
        // below may be first polled much later under load.
        let deadline = tokio::time::Instant::now() + budget;
        // The request's context starts here, with the deadline: the Okta client sees it too and
        // never waits for budget past it.
        request
            .extensions_mut()
            .insert(Arc::new(RequestContext::until(deadline)));
        let response = next.call(request);
        Box::pin(async move {
            match tokio::time::timeout_at(deadline, response).await {
                Ok(result) => result,
                Err(_) => Ok(deadline_expired().into_http()),
            }
        })
    }
}

/// Parses gRPC's `grpc-timeout` header: up to 8 digits and a unit (`H M S m u n`).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_garbage_is_ignored() {
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_grpc_timeout("99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(parse_grpc_timeout("5n"), Some(Duration::from_nanos(5)));
        for garbage in ["", "S", "10", "123456789S", "-1S", "1.5S", "10s", "１S"] {
            assert_eq!(parse_grpc_timeout(garbage), None, "{garbage}");
        }
    }
}
