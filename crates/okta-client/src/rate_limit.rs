//! Okta's `X-Rate-Limit-*` headers and the wait they ask for after a 429.

use std::time::Duration;

use http::header::{DATE, HeaderMap, HeaderName};

// Header names rather than text, so reading them does not parse the name on every answer.
const LIMIT_HEADER: HeaderName = HeaderName::from_static("x-rate-limit-limit");
const REMAINING_HEADER: HeaderName = HeaderName::from_static("x-rate-limit-remaining");
const RESET_HEADER: HeaderName = HeaderName::from_static("x-rate-limit-reset");

/// The rate-limit window Okta reported on one response.
///
/// Kept in [`crate::ResponseMeta`] so callers can see how close they are to a 429 and
/// tell a concurrency limit from a per-minute limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitState {
    /// `X-Rate-Limit-Limit`: the ceiling of the bucket this request counted against.
    pub limit: u64,
    /// `X-Rate-Limit-Remaining`: requests left in the current window.
    pub remaining: u64,
    /// `X-Rate-Limit-Reset`: when the window resets, UTC epoch seconds (the minimum when
    /// several headers are sent, as the Python SDK does).
    pub reset_epoch_seconds: i64,
}

impl RateLimitState {
    /// Reads the three headers; `None` unless all of them are present and numeric.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Self> {
        Some(Self {
            limit: first_number(headers, LIMIT_HEADER)?,
            remaining: first_number(headers, REMAINING_HEADER)?,
            reset_epoch_seconds: earliest_reset(headers)?,
        })
    }

    /// Okta sends limit = remaining = 0 when the org's concurrent-request limit, not a
    /// per-minute bucket, was hit; the reset time is then only an estimate.
    pub fn is_concurrency_limit(&self) -> bool {
        self.limit == 0 && self.remaining == 0
    }
}

/// The wait Okta's SDKs use after a 429: `X-Rate-Limit-Reset − Date + 1 s`, computed against
/// the server's `Date` so local clock skew does not matter. `None` when either header is
/// missing or unreadable (the caller then falls back to exponential backoff).
pub(crate) fn backoff_after_429(headers: &HeaderMap) -> Option<Duration> {
    let reset_epoch_seconds = earliest_reset(headers)?;
    let date = headers.get(DATE)?.to_str().ok()?;
    let server_now = chrono::DateTime::parse_from_rfc2822(date.trim()).ok()?;
    let wait_seconds = reset_epoch_seconds
        .saturating_sub(server_now.timestamp())
        .saturating_add(1)
        .max(0);
    Some(Duration::from_secs(
        u64::try_from(wait_seconds).unwrap_or(0),
    ))
}

fn first_number(headers: &HeaderMap, name: HeaderName) -> Option<u64> {
    headers
        .get_all(name)
        .iter()
        .find_map(|value| value.to_str().ok()?.trim().parse().ok())
}

fn earliest_reset(headers: &HeaderMap) -> Option<i64> {
    headers
        .get_all(RESET_HEADER)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|value| value.trim().parse::<i64>().ok())
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn state_is_read_from_recorded_headers() {
        let state = RateLimitState::from_headers(&headers(&[
            ("x-rate-limit-limit", "600"),
            ("x-rate-limit-remaining", "576"),
            ("x-rate-limit-reset", "1598552424"),
        ]))
        .unwrap();
        assert_eq!(state.limit, 600);
        assert_eq!(state.remaining, 576);
        assert_eq!(state.reset_epoch_seconds, 1_598_552_424);
        assert!(!state.is_concurrency_limit());
    }

    #[test]
    fn several_reset_headers_use_the_earliest() {
        let map = headers(&[
            ("x-rate-limit-limit", "0"),
            ("x-rate-limit-remaining", "0"),
            ("x-rate-limit-reset", "1598552430"),
            ("x-rate-limit-reset", "1598552424"),
            ("date", "Thu, 27 Aug 2020 18:20:20 GMT"),
        ]);
        let state = RateLimitState::from_headers(&map).unwrap();
        assert_eq!(state.reset_epoch_seconds, 1_598_552_424);
        assert!(state.is_concurrency_limit());
        // 18:20:20 is 1598552420, so 4 s + 1 s.
        assert_eq!(backoff_after_429(&map), Some(Duration::from_secs(5)));
    }

    #[test]
    fn missing_or_garbled_headers_give_none() {
        assert!(RateLimitState::from_headers(&headers(&[("x-rate-limit-limit", "600")])).is_none());
        assert!(backoff_after_429(&headers(&[("x-rate-limit-reset", "1598552424")])).is_none());
        assert!(
            backoff_after_429(&headers(&[
                ("x-rate-limit-reset", "soon"),
                ("date", "Thu, 27 Aug 2020 18:20:20 GMT")
            ]))
            .is_none()
        );
    }

    #[test]
    fn a_reset_in_the_past_does_not_wait_and_a_reset_now_waits_one_second() {
        let map = headers(&[
            ("x-rate-limit-reset", "1598552000"),
            ("date", "Thu, 27 Aug 2020 18:20:20 GMT"),
        ]);
        assert_eq!(backoff_after_429(&map), Some(Duration::ZERO));
        let equal = headers(&[
            ("x-rate-limit-reset", "1598552420"),
            ("date", "Thu, 27 Aug 2020 18:20:20 GMT"),
        ]);
        assert_eq!(backoff_after_429(&equal), Some(Duration::from_secs(1)));
    }
}
