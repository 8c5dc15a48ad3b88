//! What can go wrong talking to Okta, classified so callers can decide what to do
//! (retry later, fix the request, report our own misconfiguration).

use std::time::Duration;

use serde::Deserialize;

use crate::rate_limit::RateLimitState;

/// A failed Okta call.
///
/// Decide on [`OktaError::error_code`] (Okta's `errorCode`), not on the HTTP status alone:
/// Okta answers 403 both for missing permissions (E0000006) and for wrong user states
/// (E0000016, E0000032, E0000038).
#[derive(Debug, thiserror::Error)]
pub enum OktaError {
    /// Okta answered 4xx (not 429) — the body parsed as Okta's error when possible.
    #[error("okta rejected the request with status {status}{}", code_suffix(.body.as_ref()))]
    Api {
        /// The HTTP status.
        status: u16,
        /// Okta's error body, `None` when the body was empty or not Okta's error shape.
        body: Option<OktaErrorBody>,
        /// Request id and rate-limit state of the response.
        meta: ResponseMeta,
        /// The `WWW-Authenticate` header, which carries `insufficient_scope` details for
        /// OAuth tokens (the body may then be empty).
        www_authenticate: Option<String>,
    },
    /// 429 after retries (or not retried): when to retry.
    #[error("okta rate limit exceeded")]
    RateLimited {
        /// `X-Rate-Limit-Reset − Date + 1 s`; `None` when Okta did not send those headers.
        retry_after: Option<Duration>,
        /// Okta's error body (E0000047), when it parsed.
        body: Option<OktaErrorBody>,
        /// Request id and rate-limit state of the last 429.
        meta: ResponseMeta,
    },
    /// Not sent: the calling service has spent its share of the bucket for this window
    /// (fairness between the gateway's callers); Okta's budget itself may not be spent.
    #[error("the caller's share of the okta rate-limit bucket {bucket} is spent")]
    CallerShareSpent {
        /// When the bucket's window resets.
        retry_after: Duration,
        /// The bucket (method and endpoint template).
        bucket: String,
        /// An earlier attempt of the request may have been carried out although its answer
        /// was lost: the refusal ended only the attempt after it.
        after_unanswered: bool,
    },
    /// 5xx after retries.
    #[error("okta is unavailable (status {status})")]
    Unavailable {
        /// The HTTP status of the last attempt.
        status: u16,
        /// Okta's error body, when it parsed.
        body: Option<OktaErrorBody>,
        /// Request id and rate-limit state of the last attempt.
        meta: ResponseMeta,
    },
    /// The request (connect, send or receive) took longer than the configured timeout. The
    /// source is the HTTP client's error, which names no URL.
    #[error("okta request timed out")]
    Timeout(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The connection failed mid-request, so the request may have reached Okta (also: the
    /// HTTP client could not be built). The source is the HTTP client's error, which names no
    /// URL.
    #[error("could not reach okta")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No connection to Okta was made (refused, unresolvable, timed out, or a TLS handshake
    /// that failed, such as a certificate no trusted root signs), so this attempt sent nothing,
    /// and no earlier one may have been carried out. The source is the HTTP client's error,
    /// which names no URL.
    #[error("could not connect to okta; nothing was sent")]
    NotConnected(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Okta's token endpoint refused the gateway's OAuth credentials (or kept rejecting fresh
    /// access tokens): an operator must fix the `okta.oauth` settings or the service app.
    #[error("okta refused the gateway's oauth credentials ({}): {}", .0.error, .0.hint)]
    OAuthRejected(Box<OAuthFailure>),
    /// Not sent: the call withholds its changes ([`crate::CallContext::withhold_changes`])
    /// because an earlier attempt of the same change ended without an answer. Whether that
    /// attempt was carried out is for a read to say.
    #[error("not sent: an earlier attempt of this change ended without an answer")]
    Withheld,
    /// 2xx whose body could not be decoded, or another protocol surprise.
    #[error("unexpected response from okta (status {status}): {detail}")]
    UnexpectedResponse {
        /// The HTTP status (0 when no response was involved, e.g. invalid settings).
        status: u16,
        /// What was unexpected; never contains secrets or response bodies.
        detail: String,
        /// Request id and rate-limit state of the response.
        meta: ResponseMeta,
    },
}

fn code_suffix(body: Option<&OktaErrorBody>) -> String {
    body.map(|body| format!(" ({})", body.error_code))
        .unwrap_or_default()
}

impl OktaError {
    /// Okta's `errorCode` (`E0000007`…), the only field Okta supports for flow control.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Self::Api { body, .. }
            | Self::RateLimited { body, .. }
            | Self::Unavailable { body, .. } => body.as_ref().map(|body| body.error_code.as_str()),
            Self::Timeout(_)
            | Self::Connect(_)
            | Self::NotConnected(_)
            | Self::UnexpectedResponse { .. }
            | Self::OAuthRejected(_)
            | Self::CallerShareSpent { .. }
            | Self::Withheld => None,
        }
    }

    /// Request id and rate-limit state of the response behind this error, for support
    /// tickets and logs; `None` when no response was received.
    pub fn meta(&self) -> Option<&ResponseMeta> {
        match self {
            Self::Api { meta, .. }
            | Self::RateLimited { meta, .. }
            | Self::Unavailable { meta, .. }
            | Self::UnexpectedResponse { meta, .. } => Some(meta),
            Self::OAuthRejected(failure) => Some(&failure.meta),
            Self::Timeout(_)
            | Self::Connect(_)
            | Self::NotConnected(_)
            | Self::CallerShareSpent { .. }
            | Self::Withheld => None,
        }
    }

    pub(crate) fn unexpected(status: u16, detail: impl Into<String>, meta: &ResponseMeta) -> Self {
        Self::UnexpectedResponse {
            status,
            detail: detail.into(),
            meta: meta.clone(),
        }
    }

    /// True when the request may have been carried out although no answer says so (a timeout,
    /// a 5xx, a dropped connection, an unreadable answer): a write must then be reconciled.
    pub fn may_have_reached_okta(&self) -> bool {
        matches!(
            self,
            Self::Timeout(_)
                | Self::Unavailable { .. }
                | Self::Connect(_)
                | Self::UnexpectedResponse { .. }
                | Self::Withheld
                | Self::CallerShareSpent {
                    after_unanswered: true,
                    ..
                }
        )
    }

    /// A short name of the failure class, for span and metric attributes.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Api { .. } => "okta_rejected",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Timeout(_) => "timeout",
            Self::Connect(_) => "connect",
            Self::NotConnected(_) => "not_connected",
            Self::UnexpectedResponse { .. } => "unexpected_response",
            Self::OAuthRejected(_) => "oauth_rejected",
            Self::CallerShareSpent { .. } => "caller_share_spent",
            Self::Withheld => "withheld",
        }
    }

    /// Classifies a transport error of a token request (sent with reqwest) once: timeouts apart
    /// from everything else. The URL is dropped so query values never reach logs through the
    /// error.
    pub(crate) fn from_transport(error: reqwest::Error) -> Self {
        let error = error.without_url();
        if error.is_timeout() {
            Self::Timeout(Box::new(error))
        } else {
            Self::Connect(Box::new(error))
        }
    }
}

/// An OAuth error answer of Okta's token endpoint (`{"error", "error_description"}`), with
/// what the operator should change. Holds no secret: Okta's descriptions name claims, not values.
#[derive(Clone, Debug)]
pub struct OAuthFailure {
    /// The HTTP status (0 when no response was involved).
    pub status: u16,
    /// The OAuth `error` (`invalid_client`, `invalid_scope`, …; `invalid_token` for an access
    /// token Okta rejected right after issuing it).
    pub error: String,
    /// Okta's `error_description`, when it sent one.
    pub description: Option<String>,
    /// What to fix, naming the setting or the scope.
    pub hint: String,
    /// Request id and rate-limit state of the response.
    pub meta: ResponseMeta,
}

/// Okta's error body (`{"errorCode", "errorSummary", …}`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OktaErrorBody {
    /// `E0000001`…: stable, use it for decisions.
    pub error_code: String,
    /// Human-readable summary; Okta may change it, and it can name user data.
    pub error_summary: String,
    /// Currently the same as `error_code`.
    #[serde(default)]
    pub error_link: Option<String>,
    /// Okta's id for this error occurrence, for support tickets.
    #[serde(default)]
    pub error_id: Option<String>,
    /// Details, e.g. which profile attribute failed validation.
    #[serde(default)]
    pub error_causes: Vec<OktaErrorCause>,
}

/// One detail of an Okta error (`{"errorSummary": "login: …already exists…"}`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OktaErrorCause {
    /// The detail, usually `attribute: problem`.
    pub error_summary: String,
}

/// What every Okta response tells us besides its body: kept on successes (in
/// [`crate::Page`]) and errors so request ids reach logs and support tickets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseMeta {
    /// The HTTP status.
    pub status: u16,
    /// `X-Okta-Request-Id`, which links to System Log `debugContext.debugData.requestId`.
    pub request_id: Option<String>,
    /// The `X-Rate-Limit-*` headers, when all were present.
    pub rate_limit: Option<RateLimitState>,
    /// How many retries of the same request came before this response (0: the first attempt).
    pub retry_count: u32,
    /// An earlier attempt of the same request may have been carried out although its answer
    /// was lost (it ended in a 5xx or a dropped connection; a 429 was never carried out).
    pub after_unanswered: bool,
}
