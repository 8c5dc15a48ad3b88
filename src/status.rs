//! Every status the gateway answers with is built here, and carries `google.rpc.ErrorInfo`
//! with the gateway's domain and a stable reason: the refusals the gateway decides itself (the
//! caller edge, request validation, the handlers' own checks) and the pieces
//! [`crate::api::status`] maps Okta's errors onto. It depends on nothing of the gateway, so the
//! edge layers and the handlers both build on it without depending on each other.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// `ErrorInfo.domain` of every error the gateway returns.
pub const ERROR_DOMAIN: &str = "identity-gateway";

/// `ErrorInfo.reason` values, stable for callers and alerting.
pub mod reason {
    /// Okta does not know the user or group.
    pub const NOT_FOUND: &str = "OKTA_NOT_FOUND";
    /// GetUser by login: Okta's search found no user with this login.
    pub const LOGIN_NOT_FOUND: &str = "LOGIN_NOT_FOUND";
    /// A bug in the gateway: an invariant it relies on did not hold; see the gateway log.
    pub const INTERNAL: &str = "GATEWAY_INTERNAL";
    /// The gateway serves no such method (or service): refused by the gRPC framework.
    pub const NOT_SERVED: &str = "NOT_SERVED";
    /// The gRPC framework refused the request before any handler ran: an undecodable
    /// message, an unsupported compression, an unknown health service.
    pub const REQUEST_REFUSED: &str = "REQUEST_REFUSED";
    /// The login is already used by another user.
    pub const LOGIN_TAKEN: &str = "OKTA_LOGIN_TAKEN";
    /// Okta refused the values sent.
    pub const VALIDATION_FAILED: &str = "OKTA_VALIDATION_FAILED";
    /// The transition is not allowed from the user's current status.
    pub const WRONG_STATUS: &str = "OKTA_WRONG_STATUS";
    /// Okta's rate limit is spent.
    pub const RATE_LIMITED: &str = "OKTA_RATE_LIMITED";
    /// Okta answered with a server error.
    pub const UNAVAILABLE: &str = "OKTA_UNAVAILABLE";
    /// Okta could not be reached.
    pub const UNREACHABLE: &str = "OKTA_UNREACHABLE";
    /// Okta did not answer in time.
    pub const TIMEOUT: &str = "OKTA_TIMEOUT";
    /// The gateway's own Okta token is invalid or expired: an operator must fix it.
    pub const CREDENTIALS_REJECTED: &str = "OKTA_CREDENTIALS_REJECTED";
    /// The gateway's own Okta token lacks a permission or scope: an operator must grant it.
    pub const PERMISSION_DENIED: &str = "OKTA_PERMISSION_DENIED";
    /// Okta's token endpoint refused the gateway's OAuth service-app credentials (unknown client,
    /// unregistered key, clock skew, ungranted scopes…): an operator must fix `okta.oauth`.
    pub const OAUTH_REJECTED: &str = "OKTA_OAUTH_REJECTED";
    /// The gateway's OAuth access token lacks the scope this operation needs (named in the
    /// message and in `ErrorInfo.metadata["okta_missing_scope"]`): an operator must grant it.
    pub const SCOPE_MISSING: &str = "OKTA_SCOPE_MISSING";
    /// Okta answered something the gateway does not understand.
    pub const UNEXPECTED_RESPONSE: &str = "OKTA_UNEXPECTED_RESPONSE";
    /// The caller's request was malformed; nothing was sent to Okta.
    pub const INVALID_REQUEST: &str = "INVALID_REQUEST";
    /// The gateway is serving as many RPCs as it is configured to; retry shortly.
    pub const OVERLOADED: &str = "GATEWAY_OVERLOADED";
    /// The caller's deadline (or the gateway's default timeout) ran out first.
    pub const DEADLINE_EXPIRED: &str = "DEADLINE_EXPIRED";
    /// The caller asked for something the gateway refuses before calling Okta.
    pub const PRECONDITION: &str = "PRECONDITION_FAILED";
    /// The caller has its share of the gateway's concurrency in use.
    pub const CALLER_OVER_SHARE: &str = "CALLER_OVER_SHARE";
    /// The caller spent its share of an Okta bucket (fairness between callers).
    pub const CALLER_SHARE_SPENT: &str = "CALLER_SHARE_SPENT";
    /// The caller sent no valid credentials.
    pub const UNAUTHENTICATED: &str = "CALLER_UNAUTHENTICATED";
    /// The caller's roles do not grant the RPC, or not on this target.
    pub const PERMISSION_MISSING: &str = "PERMISSION_MISSING";
    /// The gateway is configured read-only and the RPC changes something.
    pub const READ_ONLY: &str = "GATEWAY_READ_ONLY";
    /// The request message is larger than `grpc.max_request_bytes`.
    pub const REQUEST_TOO_LARGE: &str = "REQUEST_TOO_LARGE";
    /// The caller's roles allow the RPC only inside their groups, and the target is outside
    /// (or, for AddGroupMember, the user would be brought into them from another group).
    pub const TARGET_OUTSIDE_SCOPE: &str = "TARGET_OUTSIDE_SCOPE";
    /// The target is a protected group or one of its members (`authz.protected_groups`),
    /// which no group-scoped role may reach.
    pub const TARGET_PROTECTED: &str = "TARGET_PROTECTED";
    /// The gateway has not yet read the groups of the group-scoped roles; retry shortly.
    pub const SCOPE_LOADING: &str = "GATEWAY_SCOPE_LOADING";
    /// A write may or may not have taken effect (its answer was lost and a read could not
    /// tell): `ErrorInfo.metadata["check"]` says what to look at before repeating it.
    pub const OUTCOME_UNKNOWN: &str = "OUTCOME_UNKNOWN";
    /// A change named by a `request_id` was refused before anything was done: the server that
    /// replicas share their record of changes through cannot be reached.
    pub const COORDINATION_UNAVAILABLE: &str = "COORDINATION_UNAVAILABLE";
    /// A retry of a change whose earlier attempt ended without an answer: a read showed that
    /// attempt was not carried out, and this retry made nothing; the next one makes the change.
    pub const NOT_CARRIED_OUT: &str = "NOT_CARRIED_OUT";
}

/// The details every status starts from: ErrorInfo with `reason` and `metadata`, to which a
/// status adds its field violations, precondition failures or RetryInfo.
pub fn error_info(reason: &str, metadata: HashMap<String, String>) -> ErrorDetails {
    ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata)
}

/// A status with `code` and `message` whose details are ErrorInfo alone.
pub fn with_info(
    code: Code,
    message: impl Into<String>,
    reason: &str,
    metadata: HashMap<String, String>,
) -> Status {
    Status::with_error_details(code, message, error_info(reason, metadata))
}

/// A status with `code` and `message` and `details` made from [`error_info`].
pub fn with_details(code: Code, message: impl Into<String>, details: ErrorDetails) -> Status {
    Status::with_error_details(code, message, details)
}

/// RESOURCE_EXHAUSTED with ErrorInfo and the RetryInfo telling when to try again: every
/// "not now" answer, whoever decided it (Okta, the gateway, the caller's share).
pub fn retry_later(
    message: impl Into<String>,
    reason: &str,
    metadata: HashMap<String, String>,
    retry_after: Duration,
) -> Status {
    let mut details = error_info(reason, metadata);
    details.set_retry_info(Some(retry_after));
    Status::with_error_details(Code::ResourceExhausted, message, details)
}

/// INVALID_ARGUMENT for a malformed request, naming every bad field; nothing was sent to Okta.
pub fn invalid_argument(violations: Vec<FieldViolation>) -> Status {
    let summary = violations
        .iter()
        .map(|violation| format!("{}: {}", violation.field, violation.description))
        .collect::<Vec<_>>()
        .join("; ");
    let mut details = error_info(reason::INVALID_REQUEST, HashMap::new());
    details.set_bad_request(violations);
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {summary}"),
        details,
    )
}

/// RESOURCE_EXHAUSTED when the gateway sheds load, with when to retry.
pub fn overloaded(retry_after: Duration) -> Status {
    retry_later(
        "the gateway is serving as many calls as it may; retry after the delay in RetryInfo",
        reason::OVERLOADED,
        HashMap::new(),
        retry_after,
    )
}

/// `status` with `note` appended to its message, in `grpc-message` and in the
/// `google.rpc.Status` of `grpc-status-details-bin` alike (tonic keeps a status's details as
/// encoded when only the message is replaced, so the two would disagree).
pub fn with_note(status: &Status, note: &str) -> Status {
    Status::with_error_details(
        status.code(),
        format!("{}; {note}", status.message()),
        status.get_error_details(),
    )
}

/// NOT_FOUND for a login no user has: Okta's search (request `okta_request_id`) found none.
pub fn login_not_found(okta_request_id: Option<&str>) -> Status {
    with_info(
        Code::NotFound,
        "no user has this login",
        reason::LOGIN_NOT_FOUND,
        request_id_metadata(okta_request_id),
    )
}

/// INTERNAL for a broken invariant of the gateway itself (`what` names it; never a value
/// the caller sent): a bug to report, not something the caller can change.
pub fn internal(what: &str) -> Status {
    tracing::error!(what, "internal error");
    with_info(
        Code::Internal,
        format!("internal error of the gateway: {what}"),
        reason::INTERNAL,
        HashMap::new(),
    )
}

/// The answers the gRPC framework gives on its own, before any handler runs (an unknown
/// method, an undecodable message, an unsupported compression, an unknown health service),
/// with their code and message kept and ErrorInfo added.
pub fn framework_refusal(code: Code, message: &str) -> Status {
    let reason = if code == Code::Unimplemented {
        reason::NOT_SERVED
    } else {
        reason::REQUEST_REFUSED
    };
    with_info(code, message, reason, HashMap::new())
}

/// ErrorInfo metadata naming the Okta request a status was decided on, when there was one.
pub fn request_id_metadata(okta_request_id: Option<&str>) -> HashMap<String, String> {
    okta_request_id
        .map(|id| HashMap::from([("okta_request_id".to_owned(), id.to_owned())]))
        .unwrap_or_default()
}

/// ALREADY_EXISTS for a login that was taken before this call, as Okta's read
/// `okta_request_id` showed.
pub fn login_taken(detail: &str, okta_request_id: Option<&str>) -> Status {
    with_info(
        Code::AlreadyExists,
        detail,
        reason::LOGIN_TAKEN,
        request_id_metadata(okta_request_id),
    )
}

/// DEADLINE_EXCEEDED when the caller's deadline (or the default timeout) runs out.
pub fn deadline_expired() -> Status {
    with_info(
        Code::DeadlineExceeded,
        "the deadline expired before the gateway could answer",
        reason::DEADLINE_EXPIRED,
        HashMap::new(),
    )
}

/// FAILED_PRECONDITION decided by the gateway on what Okta's read `okta_request_id` answered
/// (the target's status), before the change is sent.
pub fn failed_precondition(
    subject: &str,
    description: &str,
    okta_request_id: Option<&str>,
) -> Status {
    let mut details = error_info(reason::PRECONDITION, request_id_metadata(okta_request_id));
    details.add_precondition_failure_violation("STATUS", subject, description);
    Status::with_error_details(Code::FailedPrecondition, description, details)
}

/// RESOURCE_EXHAUSTED for a caller over its share of the gateway's concurrency (`what`:
/// RPCs in flight or open streams), with when to retry; other callers are unaffected.
pub fn caller_over_share(what: &str, limit: u32, retry_after: Duration) -> Status {
    let metadata = HashMap::from([("limit".to_owned(), limit.to_string())]);
    retry_later(
        format!(
            "this caller already has {limit} {what}, its share; retry after the delay in RetryInfo"
        ),
        reason::CALLER_OVER_SHARE,
        metadata,
        retry_after,
    )
}

/// RESOURCE_EXHAUSTED for a request message over `grpc.max_request_bytes` (`max_bytes`).
pub fn request_too_large(max_bytes: usize) -> Status {
    let metadata = HashMap::from([("max_request_bytes".to_owned(), max_bytes.to_string())]);
    with_info(
        Code::ResourceExhausted,
        format!(
            "the request message is larger than this gateway accepts ({max_bytes} bytes, \
             `grpc.max_request_bytes`)"
        ),
        reason::REQUEST_TOO_LARGE,
        metadata,
    )
}

/// UNAUTHENTICATED: the caller's credentials are missing or invalid (`why` never holds a secret).
pub fn unauthenticated(why: &str) -> Status {
    with_info(
        Code::Unauthenticated,
        format!("caller not authenticated: {why}"),
        reason::UNAUTHENTICATED,
        HashMap::new(),
    )
}

/// PERMISSION_DENIED naming the permission (`Service/Method`, or a target) the caller lacks.
pub fn permission_denied(permission: &str, why: &str) -> Status {
    let metadata = HashMap::from([("permission".to_owned(), permission.to_owned())]);
    with_info(
        Code::PermissionDenied,
        format!("permission `{permission}` missing: {why}"),
        reason::PERMISSION_MISSING,
        metadata,
    )
}

/// PERMISSION_DENIED for a group-scoped call whose `target` lies outside the caller's groups.
pub fn outside_scope(permission: &str, target: &str, why: &str) -> Status {
    scope_refusal(permission, target, why, reason::TARGET_OUTSIDE_SCOPE)
}

/// PERMISSION_DENIED for a group-scoped call whose `target` is protected.
pub fn target_protected(permission: &str, target: &str, why: &str) -> Status {
    scope_refusal(permission, target, why, reason::TARGET_PROTECTED)
}

fn scope_refusal(permission: &str, target: &str, why: &str, reason: &str) -> Status {
    let metadata = HashMap::from([
        ("permission".to_owned(), permission.to_owned()),
        ("target".to_owned(), target.to_owned()),
    ]);
    with_info(
        Code::PermissionDenied,
        format!("`{permission}` refused on {target}: {why}"),
        reason,
        metadata,
    )
}

/// UNAVAILABLE for a group-scoped call before the scope index's first load: the gateway
/// cannot tell yet what the call may touch.
pub fn scope_loading() -> Status {
    with_info(
        Code::Unavailable,
        "the groups of group-scoped roles are still being read from Okta; retry shortly",
        reason::SCOPE_LOADING,
        HashMap::new(),
    )
}

/// FAILED_PRECONDITION for a mutating RPC while the gateway is read-only.
pub fn read_only(method: &str) -> Status {
    let mut details = error_info(reason::READ_ONLY, HashMap::new());
    details.add_precondition_failure_violation(
        "READ_ONLY",
        method,
        "the gateway is read-only (`authz.read_only`)",
    );
    Status::with_error_details(
        Code::FailedPrecondition,
        format!("{method} changes Okta, and this gateway is configured read-only"),
        details,
    )
}

/// INVALID_ARGUMENT for a `request_id` that is not a UUID (AIP-155): ids that are not unique by
/// construction would make unrelated changes collide.
pub fn request_id_not_uuid() -> Status {
    invalid_argument(vec![FieldViolation::new(
        "request_id",
        "must be a UUID (for example 1b4e28ba-2fa1-11d2-883f-0016d3cca427), or empty",
    )])
}

/// INVALID_ARGUMENT for a `request_id` this caller already used for a different request of the
/// same method: the id names the first change, and the gateway will not guess which was meant.
pub fn request_id_reused() -> Status {
    invalid_argument(vec![FieldViolation::new(
        "request_id",
        "was already used by this caller for a different request to this method; \
         use a new id for a new change",
    )])
}

/// UNAVAILABLE for a change named by a `request_id` while the shared record of changes cannot
/// be reached (`coordination.idempotency_when_unavailable: refuse`): nothing was done, and a
/// retry is safe.
pub fn coordination_unavailable() -> Status {
    with_info(
        Code::Unavailable,
        "the change was not made: the record of changes replicas share cannot be reached, so a \
         retry on another replica could not be answered from it; retry with the same request_id",
        reason::COORDINATION_UNAVAILABLE,
        HashMap::new(),
    )
}

/// UNAVAILABLE for a retry that settled an earlier attempt's unknown outcome with a read
/// (`check` says what was read) and found it not carried out: nothing was changed, and the
/// same request with the same `request_id` now makes the change.
pub fn earlier_attempt_not_carried_out(check: &str) -> Status {
    with_info(
        Code::Unavailable,
        format!(
            "the earlier attempt of this change was not carried out (checked with Okta: {check}); \
             nothing was changed: send it again with the same request_id to make it"
        ),
        reason::NOT_CARRIED_OUT,
        HashMap::from([("check".to_owned(), check.to_owned())]),
    )
}

/// UNAVAILABLE with reason `OUTCOME_UNKNOWN` for a change whose first attempt ended without an
/// answer the gateway could keep (the server stopped under it).
pub fn outcome_lost() -> Status {
    with_info(
        Code::Unavailable,
        "the change's first attempt ended without an answer; it may or may not have been \
         carried out by Okta: read the resource before repeating it",
        reason::OUTCOME_UNKNOWN,
        HashMap::from([(
            "check".to_owned(),
            "the resource the change named".to_owned(),
        )]),
    )
}
