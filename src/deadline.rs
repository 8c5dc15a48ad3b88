//! Bounds every RPC by the caller's `grpc-timeout` (or the configured default when the caller
//! sets none) and answers DEADLINE_EXCEEDED when it runs out.
//!
//! tonic enforces `grpc-timeout` too, but answers CANCELLED; this layer fires a moment earlier so
//! callers see the status gRPC prescribes, and get it before their own deadline passes.

use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tower::{Layer, Service};

use crate::api::status::deadline_expired;

/// How much earlier than the caller's deadline the gateway gives up, so its answer arrives
/// before the deadline (and before tonic's own timer) rather than racing them.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(5);

/// Applies [`Deadline`] to every service.
#[derive(Clone, Debug)]
pub struct DeadlineLayer {
    default_timeout: Duration,
}

impl DeadlineLayer {
    /// `default_timeout` bounds RPCs whose caller sets no shorter deadline.
    pub fn new(default_timeout: Duration) -> Self {
        Self { default_timeout }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            default_timeout: self.default_timeout,
        }
    }
}

/// The deadline-enforcing service; see the module docs.
#[derive(Clone, Debug)]
pub struct Deadline<S> {
    inner: S,
    default_timeout: Duration,
}

impl<S, RequestBody> Service<http::Request<RequestBody>> for Deadline<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
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
        // The deadline is fixed now, in `call`, like tonic's own timer: the future below may be
        // first polled much later under load.
        let deadline = tokio::time::Instant::now() + budget;
        let response = self.inner.call(request);
        Box::pin(async move {
            // The Okta client sees the deadline too: it never waits for budget past it.
            let response = okta_client::budget::with_deadline(deadline, response);
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
