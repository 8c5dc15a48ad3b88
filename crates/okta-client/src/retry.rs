//! The one retry policy of the Okta client: which requests may be sent again after which
//! failure, and how long to wait first. `send` asks it after every failed Management API
//! attempt, and the OAuth token refresh after every failed token request.
//!
//! The rules: reads and idempotent changes are sent again after a connection error, a 5xx or a
//! 429; a lifecycle transition too (a repeat cannot transition twice); a transition that sends
//! email only after a 429 or a connection never made, which leave the request not carried out;
//! creates, updates and deletions, which may have been carried out although their answer was
//! lost, never.
//! A timed-out attempt may still be running at Okta and is not repeated. Waits are exponential
//! backoff with full jitter, or Okta's own reset time after a 429; a wait that would outlast the
//! caller's deadline is not taken.
//!
//! One module rather than `backon`: each decision needs what the failed attempt learned (Okta's
//! reset time, whether the request may have been carried out) and the deadline left, and
//! `send` takes budget and a connection slot between attempts; a `Retryable` closure would hide
//! those steps, and its jitter is not the full jitter this policy uses.

use std::time::Duration;

use rand::Rng;

use crate::error::OktaError;

/// Whether a request may be sent again after a 429, a 5xx or a connection error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// GET and the idempotent membership PUT/DELETE.
    Idempotent,
    /// A user or device lifecycle transition: sent again like an idempotent request, because a
    /// repeat after a lost answer cannot transition twice; `okta::transition` recognises Okta's
    /// refusal of a repeat that finds it already where the transition leads.
    Transition,
    /// A transition that sends email: sent again only after a 429, which Okta answers without
    /// carrying the request out, never after an answer that may have been lost (a repeat could
    /// email twice).
    WhenRefused,
    /// Creates, updates, deletions.
    Never,
}

/// A failed attempt, as far as sending it again goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No answer: the connection failed. The request may have reached Okta.
    Connection,
    /// No connection was made: the request was not sent.
    NotSent,
    /// No answer within the request timeout: Okta may still be carrying it out.
    Timeout,
    /// 429: refused without being carried out; `reset_wait` is what Okta's headers ask for.
    RateLimited {
        /// `X-Rate-Limit-Reset − Date + 1 s`, when Okta sent both.
        reset_wait: Option<Duration>,
    },
    /// 5xx: Okta may or may not have carried the request out.
    ServerError,
}

impl Failure {
    /// Whether the failed attempt may have been carried out although its answer was lost: a
    /// 5xx or a dropped connection; a 429 or a connection never made never was.
    pub(crate) fn may_have_been_carried_out(self) -> bool {
        !matches!(self, Self::RateLimited { .. } | Self::NotSent)
    }

    /// The failure an error stands for, when sending the request again might help: `None` for
    /// an answer that would be the same again (a 4xx, a bad body, a refused certificate) or a
    /// local problem.
    pub(crate) fn of(error: &OktaError) -> Option<Self> {
        Some(match error {
            OktaError::Connect(_) => Self::Connection,
            OktaError::NotConnected(_) if crate::transport::certificate_refused(error) => {
                return None;
            }
            OktaError::NotConnected(_) => Self::NotSent,
            OktaError::Timeout(_) => Self::Timeout,
            OktaError::RateLimited { retry_after, .. } => Self::RateLimited {
                reset_wait: *retry_after,
            },
            OktaError::Unavailable { .. } => Self::ServerError,
            _ => return None,
        })
    }
}

/// How many times and how patiently requests are sent again (the `okta.max_retries` and
/// `okta.retry_*_delay_ms` settings).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryPolicy {
    /// Attempts after the first.
    pub(crate) max_retries: u32,
    /// First step of the exponential backoff.
    pub(crate) base_delay: Duration,
    /// Cap on any single wait, 429 waits included.
    pub(crate) max_delay: Duration,
}

impl RetryPolicy {
    /// The wait before sending a request again after attempt `attempt` (0 for the first) failed
    /// with `failure`; `None` when it is not sent again: `retry` forbids it, the attempts are
    /// spent, or the wait would outlast `time_left` (the caller's deadline, if any).
    pub(crate) fn next_wait(
        &self,
        retry: Retry,
        attempt: u32,
        failure: Failure,
        time_left: Option<Duration>,
    ) -> Option<Duration> {
        if retry == Retry::Never || attempt >= self.max_retries {
            return None;
        }
        let wait = match failure {
            Failure::Timeout => return None,
            Failure::RateLimited { reset_wait } => self.wait_after_429(reset_wait, attempt),
            // Like a 429, never carried out: even a transition that sends email goes again.
            Failure::NotSent => self.backoff(attempt),
            Failure::Connection | Failure::ServerError if retry == Retry::WhenRefused => {
                return None;
            }
            Failure::Connection | Failure::ServerError => self.backoff(attempt),
        };
        match time_left {
            Some(left) if wait > left => None,
            _ => Some(wait),
        }
    }

    /// Exponential backoff with full jitter: uniform in `[0, min(base · 2^attempt, max)]`.
    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self
            .base_delay
            .saturating_mul(2_u32.saturating_pow(attempt));
        random_up_to(exponential.min(self.max_delay))
    }

    /// After a 429: Okta's reset time plus a little jitter (so clients do not retry in
    /// lockstep), capped; exponential backoff when Okta sent no usable headers.
    fn wait_after_429(&self, reset_wait_opt: Option<Duration>, attempt: u32) -> Duration {
        match reset_wait_opt {
            Some(reset_wait) => {
                let jitter = random_up_to((reset_wait / 10).min(Duration::from_secs(1)));
                reset_wait.saturating_add(jitter).min(self.max_delay)
            }
            None => self.backoff(attempt),
        }
    }
}

fn random_up_to(cap: Duration) -> Duration {
    let cap_millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=cap_millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    };
    const FAILURES: [Failure; 5] = [
        Failure::Connection,
        Failure::NotSent,
        Failure::Timeout,
        Failure::RateLimited { reset_wait: None },
        Failure::ServerError,
    ];

    #[test]
    fn waits_are_capped_by_the_max_delay() {
        for attempt in 0..40 {
            assert!(POLICY.backoff(attempt) <= Duration::from_millis(50));
        }
        assert_eq!(
            POLICY.wait_after_429(Some(Duration::from_secs(1)), 0),
            Duration::from_millis(50)
        );
        assert!(POLICY.wait_after_429(None, 0) <= Duration::from_millis(10));
    }

    #[test]
    fn writes_are_never_sent_again_and_timeouts_never() {
        for failure in FAILURES {
            assert_eq!(POLICY.next_wait(Retry::Never, 0, failure, None), None);
        }
        for retry in [Retry::Idempotent, Retry::Transition, Retry::WhenRefused] {
            assert_eq!(POLICY.next_wait(retry, 0, Failure::Timeout, None), None);
        }
    }

    #[test]
    fn reads_and_transitions_are_sent_again_after_every_answerless_or_refused_attempt() {
        for retry in [Retry::Idempotent, Retry::Transition] {
            for failure in [
                Failure::Connection,
                Failure::NotSent,
                Failure::ServerError,
                Failure::RateLimited { reset_wait: None },
            ] {
                let wait = POLICY.next_wait(retry, 0, failure, None);
                assert!(
                    wait.is_some_and(|wait| wait <= Duration::from_millis(10)),
                    "{retry:?} {failure:?}: {wait:?}"
                );
            }
        }
    }

    #[test]
    fn an_emailing_transition_is_sent_again_only_when_it_was_not_carried_out() {
        let refused = Failure::RateLimited {
            reset_wait: Some(Duration::from_millis(20)),
        };
        let wait = POLICY.next_wait(Retry::WhenRefused, 0, refused, None);
        assert!(wait.is_some_and(|wait| wait >= Duration::from_millis(20)));
        assert!(!refused.may_have_been_carried_out());
        assert!(
            POLICY
                .next_wait(Retry::WhenRefused, 0, Failure::NotSent, None)
                .is_some()
        );
        assert!(!Failure::NotSent.may_have_been_carried_out());
        for lost in [Failure::Connection, Failure::ServerError] {
            assert_eq!(POLICY.next_wait(Retry::WhenRefused, 0, lost, None), None);
        }
    }

    #[test]
    fn the_attempts_run_out_after_max_retries() {
        for attempt in 0..3 {
            assert!(
                POLICY
                    .next_wait(Retry::Idempotent, attempt, Failure::ServerError, None)
                    .is_some()
            );
        }
        assert_eq!(
            POLICY.next_wait(Retry::Idempotent, 3, Failure::ServerError, None),
            None
        );
    }

    #[test]
    fn a_wait_past_the_deadline_is_not_taken() {
        let reset = Failure::RateLimited {
            reset_wait: Some(Duration::from_secs(30)),
        };
        let patient = RetryPolicy {
            max_delay: Duration::from_secs(60),
            ..POLICY
        };
        assert_eq!(
            patient.next_wait(Retry::Idempotent, 0, reset, Some(Duration::from_secs(5))),
            None
        );
        assert!(
            patient
                .next_wait(Retry::Idempotent, 0, reset, Some(Duration::from_secs(40)))
                .is_some_and(|wait| wait >= Duration::from_secs(30))
        );
    }
}
