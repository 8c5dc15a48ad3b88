//! THE one mapping from Okta outcomes to gRPC statuses, decided on Okta's `errorCode` (the HTTP
//! status alone is ambiguous: Okta answers 403 both for "the gateway's token may not do this" and
//! for "the user is in the wrong state"). Every status carries `google.rpc.ErrorInfo` with Okta's
//! error code, error id and request id so a support ticket can quote them.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use okta_client::{OktaError, OktaErrorBody, ResponseMeta};

/// `ErrorInfo.domain` of every error the gateway returns.
pub const ERROR_DOMAIN: &str = "identity-gateway";

/// What kind of Okta call failed: the same Okta code means different things for different calls
/// (Okta reports "suspend a user that is not active" as a validation error, E0000001).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OktaCall {
    /// A read.
    Read,
    /// Creating or updating a user's profile.
    Write,
    /// A lifecycle transition or a delete: a refusal means the user is in the wrong status.
    Lifecycle,
    /// A group membership change.
    Membership,
}

/// Which request fields Okta's `errorCauses` (`"since: must not be…"`) name: each RPC sends
/// Okta its own attributes, so a cause is named by the fields of the RPC that was called. A
/// cause no table knows goes under the request as a whole (an empty field), never under a
/// made-up path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CauseFields {
    /// Creating or updating a user: a cause names a profile attribute (`profile.email`,
    /// `profile.custom_attributes.<name>`).
    UserProfile,
    /// The Okta query parameters the RPC sends, each with the request field it comes from.
    Parameters(&'static [(&'static str, &'static str)]),
}

impl CauseFields {
    /// No request field maps to an Okta attribute: every cause names the request as a whole.
    pub const NONE: Self = Self::Parameters(&[]);

    /// The fields a cause names when the call site says nothing more than its kind: a
    /// profile write names profile fields, anything else the request as a whole.
    fn of(call: OktaCall) -> Self {
        match call {
            OktaCall::Write => Self::UserProfile,
            OktaCall::Read | OktaCall::Lifecycle | OktaCall::Membership => Self::NONE,
        }
    }

    /// The request field Okta's `attribute` comes from, or `None` when this RPC has none.
    fn field(self, attribute: &str) -> Option<String> {
        match self {
            Self::UserProfile => Some(super::convert::proto_field_for_okta_attribute(attribute)),
            Self::Parameters(table) => table
                .iter()
                .find(|(okta, _)| *okta == attribute)
                .map(|(_, field)| (*field).to_owned()),
        }
    }
}

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
}

/// Okta's codes for "not allowed in the user's (or device's) current status".
const WRONG_STATUS_CODES: &[&str] = &[
    "E0000016",
    "E0000017",
    "E0000032",
    "E0000038",
    DEVICE_WRONG_STATUS_CODE,
];
/// "Illegal device status, cannot perform action." (403): a device lifecycle call or delete
/// from a status that does not allow it.
const DEVICE_WRONG_STATUS_CODE: &str = "E0000152";
/// Okta's codes for malformed requests or search expressions.
const INVALID_REQUEST_CODES: &[&str] = &[
    "E0000001", "E0000002", "E0000003", "E0000028", "E0000029", "E0000031", "E0000053", "E0000094",
    "E0000124", "E0000125",
];
/// What Okta says in an errorCause when a login is already taken.
const LOGIN_TAKEN_CAUSE: &str = "login: An object with this field already exists";

/// Maps a failed Okta call to the status the caller receives; Okta's causes name fields as
/// [`CauseFields`] says for `call`'s kind.
pub fn okta_error_status(error: &OktaError, call: OktaCall) -> Status {
    okta_error_status_naming(error, call, CauseFields::of(call))
}

/// [`okta_error_status`] for an RPC whose Okta causes name its own `fields`.
pub fn okta_error_status_naming(error: &OktaError, call: OktaCall, fields: CauseFields) -> Status {
    let mut metadata = okta_metadata(error);
    match error {
        OktaError::Api {
            status,
            body,
            www_authenticate,
            ..
        } => api_error_status(
            *status,
            body.as_ref(),
            www_authenticate.as_deref(),
            (call, fields),
            metadata,
        ),
        OktaError::RateLimited { retry_after, .. } => retry_later(
            "Okta's rate limit for this operation is spent; retry after the delay in RetryInfo",
            reason::RATE_LIMITED,
            metadata,
            retry_after.unwrap_or(Duration::from_secs(1)),
        ),
        OktaError::CallerShareSpent {
            retry_after,
            bucket,
        } => {
            metadata.insert("okta_bucket".to_owned(), bucket.clone());
            retry_later(
                "this caller has spent its share of Okta's rate limit for this operation; \
                 other callers are still served; retry after the delay in RetryInfo",
                reason::CALLER_SHARE_SPENT,
                metadata,
                *retry_after,
            )
        }
        // Only a read is safe to repeat as such; a write reaches this mapping after a read
        // showed it was not carried out (`api::settle`), which adds that to the message.
        OktaError::Unavailable { status, .. } => with_info(
            Code::Unavailable,
            if call == OktaCall::Read {
                format!("Okta is unavailable (HTTP {status}); safe to retry")
            } else {
                format!("Okta is unavailable (HTTP {status})")
            },
            reason::UNAVAILABLE,
            metadata,
        ),
        OktaError::Connect(_) => with_info(
            Code::Unavailable,
            "Okta could not be reached",
            reason::UNREACHABLE,
            metadata,
        ),
        OktaError::Timeout(_) => with_info(
            Code::DeadlineExceeded,
            "Okta did not answer in time",
            reason::TIMEOUT,
            metadata,
        ),
        OktaError::OAuthRejected(failure) => {
            let mut metadata = metadata;
            metadata.insert("okta_oauth_error".to_owned(), failure.error.clone());
            let okta_said = failure
                .description
                .as_deref()
                .map(|description| format!(" (Okta: {} \"{description}\")", failure.error))
                .unwrap_or_else(|| format!(" (Okta: {})", failure.error));
            with_info(
                Code::Internal,
                format!(
                    "the gateway could not authenticate to Okta with its OAuth service app: {}{okta_said}",
                    failure.hint
                ),
                reason::OAUTH_REJECTED,
                metadata,
            )
        }
        OktaError::UnexpectedResponse { status, detail, .. } => {
            tracing::error!(okta.http_status = status, %detail, "unexpected response from okta");
            with_info(
                Code::Internal,
                "Okta answered in an unexpected way; see the gateway log",
                reason::UNEXPECTED_RESPONSE,
                metadata,
            )
        }
    }
}

fn api_error_status(
    http_status: u16,
    body: Option<&OktaErrorBody>,
    www_authenticate: Option<&str>,
    (call, fields): (OktaCall, CauseFields),
    metadata: HashMap<String, String>,
) -> Status {
    let code = body.map(|body| body.error_code.as_str()).unwrap_or("");
    let summary = body.map(|body| body.error_summary.as_str()).unwrap_or("");
    if code == "E0000011" || http_status == 401 {
        tracing::error!(
            okta.error_code = code,
            "okta rejected the gateway's api token"
        );
        return with_info(
            Code::Internal,
            "the gateway's Okta API token was rejected (invalid, expired or revoked): an operator \
             must replace `okta.api_token`",
            reason::CREDENTIALS_REJECTED,
            metadata,
        );
    }
    if let Some(scope) = www_authenticate.and_then(insufficient_scope) {
        tracing::error!(
            okta.error_code = code,
            okta.missing_scope = %scope,
            "okta refused the gateway's access token: missing scope"
        );
        let mut metadata = metadata;
        metadata.insert("okta_missing_scope".to_owned(), scope.clone());
        return with_info(
            Code::Internal,
            format!(
                "the gateway's Okta access token lacks the `{scope}` scope: grant `{scope}` to the \
                 service app (Okta API Scopes tab) and make sure the gateway requests it \
                 (`okta.oauth.scopes`, `okta.oauth.read_only_scopes`)"
            ),
            reason::SCOPE_MISSING,
            metadata,
        );
    }
    if code == "E0000006" || (http_status == 403 && body.is_none()) {
        let scope = www_authenticate.and_then(insufficient_scope);
        tracing::error!(
            okta.error_code = code,
            okta.missing_scope = scope.as_deref(),
            "okta refused the gateway's api token permission"
        );
        let message = match scope {
            Some(scope) => format!(
                "the gateway's Okta credentials lack the `{scope}` scope: an operator must grant it"
            ),
            None => "the gateway's Okta API token lacks the admin permission for this operation: \
                     an operator must grant it"
                .to_owned(),
        };
        return with_info(Code::Internal, message, reason::PERMISSION_DENIED, metadata);
    }
    if http_status == 404 || code == "E0000007" || code == "E0000008" {
        return with_info(
            Code::NotFound,
            summary_or(summary, "not found"),
            reason::NOT_FOUND,
            metadata,
        );
    }
    let causes: Vec<&str> = body
        .map(|body| {
            body.error_causes
                .iter()
                .map(|c| c.error_summary.as_str())
                .collect()
        })
        .unwrap_or_default();
    if causes
        .iter()
        .any(|cause| cause.starts_with(LOGIN_TAKEN_CAUSE))
    {
        return with_info(
            Code::AlreadyExists,
            "a user with this login already exists",
            reason::LOGIN_TAKEN,
            metadata,
        );
    }
    let wrong_status = WRONG_STATUS_CODES.contains(&code)
        || (call == OktaCall::Lifecycle && code == "E0000001")
        || (call == OktaCall::Membership && code == "E0000001");
    if wrong_status {
        let mut details = error_info(reason::WRONG_STATUS, metadata);
        let description = causes.first().copied().unwrap_or(summary);
        let subject = if code == DEVICE_WRONG_STATUS_CODE {
            "device"
        } else {
            "user"
        };
        details.add_precondition_failure_violation("STATUS", subject, description);
        return Status::with_error_details(
            Code::FailedPrecondition,
            summary_or(summary, "not allowed in the current status"),
            details,
        );
    }
    if INVALID_REQUEST_CODES.contains(&code) || http_status == 400 {
        let mut details = error_info(reason::VALIDATION_FAILED, metadata);
        let violations: Vec<FieldViolation> = causes
            .iter()
            .map(|cause| cause_violation(cause, fields))
            .collect();
        if !violations.is_empty() {
            details.set_bad_request(violations);
        }
        return Status::with_error_details(
            Code::InvalidArgument,
            summary_or(summary, "Okta rejected the request"),
            details,
        );
    }
    let grpc_code = match http_status {
        409 if code == "E0000112" => Code::Unavailable,
        409 => Code::Aborted,
        403 => Code::FailedPrecondition,
        _ => Code::Internal,
    };
    tracing::warn!(
        okta.http_status = http_status,
        okta.error_code = code,
        "unclassified okta error"
    );
    with_info(
        grpc_code,
        summary_or(summary, "Okta refused the request"),
        reason::VALIDATION_FAILED,
        metadata,
    )
}

/// Turns Okta's `"login: reason"` causes into field violations named after the fields of the
/// RPC that was called; a cause naming no field of it keeps its whole text.
fn cause_violation(cause: &str, fields: CauseFields) -> FieldViolation {
    let named = cause.split_once(": ").and_then(|(attribute, description)| {
        attribute
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            .then(|| fields.field(attribute))
            .flatten()
            .map(|field| FieldViolation::new(field, description))
    });
    named.unwrap_or_else(|| FieldViolation::new("", cause))
}

/// Reads `scope="okta.users.read"` from a `WWW-Authenticate: Bearer ... error="insufficient_scope"`.
fn insufficient_scope(header: &str) -> Option<String> {
    if !header.contains("insufficient_scope") {
        return None;
    }
    let start = header.find("scope=\"")? + "scope=\"".len();
    let end = header[start..].find('"')? + start;
    Some(header[start..end].to_owned())
}

fn summary_or(summary: &str, fallback: &str) -> String {
    if summary.is_empty() {
        fallback.to_owned()
    } else {
        summary.to_owned()
    }
}

fn okta_metadata(error: &OktaError) -> HashMap<String, String> {
    let mut metadata = HashMap::new();
    if let Some(code) = error.error_code() {
        metadata.insert("okta_error_code".to_owned(), code.to_owned());
    }
    let (body, meta): (Option<&OktaErrorBody>, Option<&ResponseMeta>) = match error {
        OktaError::Api { body, meta, .. }
        | OktaError::RateLimited { body, meta, .. }
        | OktaError::Unavailable { body, meta, .. } => (body.as_ref(), Some(meta)),
        OktaError::UnexpectedResponse { meta, .. } => (None, Some(meta)),
        OktaError::OAuthRejected(failure) => (None, Some(&failure.meta)),
        OktaError::Timeout(_) | OktaError::Connect(_) | OktaError::CallerShareSpent { .. } => {
            (None, None)
        }
    };
    if let Some(error_id) = body.and_then(|body| body.error_id.clone()) {
        metadata.insert("okta_error_id".to_owned(), error_id);
    }
    if let Some(meta) = meta {
        if let Some(request_id) = &meta.request_id {
            metadata.insert("okta_request_id".to_owned(), request_id.clone());
        }
        metadata.insert("okta_http_status".to_owned(), meta.status.to_string());
    }
    metadata
}

fn error_info(reason: &str, metadata: HashMap<String, String>) -> ErrorDetails {
    ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata)
}

fn with_info(
    code: Code,
    message: impl Into<String>,
    reason: &str,
    metadata: HashMap<String, String>,
) -> Status {
    Status::with_error_details(code, message, error_info(reason, metadata))
}

/// RESOURCE_EXHAUSTED with ErrorInfo and the RetryInfo telling when to try again: every
/// "not now" answer, whoever decided it (Okta, the gateway, the caller's share).
fn retry_later(
    message: impl Into<String>,
    reason: &str,
    metadata: HashMap<String, String>,
    retry_after: Duration,
) -> Status {
    let mut details = error_info(reason, metadata);
    details.set_retry_info(Some(retry_after));
    Status::with_error_details(Code::ResourceExhausted, message, details)
}

/// Adapts [`okta_error_status`] for `map_err`.
pub fn mapped(call: OktaCall) -> impl Fn(OktaError) -> Status {
    move |error| okta_error_status(&error, call)
}

/// Adapts [`okta_error_status_naming`] for `map_err`.
pub fn mapped_naming(call: OktaCall, fields: CauseFields) -> impl Fn(OktaError) -> Status {
    move |error| okta_error_status_naming(&error, call, fields)
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

/// UNAVAILABLE with reason `OUTCOME_UNKNOWN`: a write whose answer was lost may or may not have
/// taken effect, and a read could not tell. `check` (also in `ErrorInfo.metadata["check"]`)
/// says what to look at before repeating the call; Okta's ids of the failure stay in metadata.
pub fn outcome_unknown(error: &OktaError, check: &str) -> Status {
    let mut metadata = okta_metadata(error);
    metadata.insert("check".to_owned(), check.to_owned());
    with_info(
        Code::Unavailable,
        format!(
            "the change may or may not have been carried out by Okta ({error}); check {check} \
             before repeating it"
        ),
        reason::OUTCOME_UNKNOWN,
        metadata,
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

fn request_id_metadata(okta_request_id: Option<&str>) -> HashMap<String, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use okta_client::OktaErrorCause;

    fn api_error(status: u16, code: &str, causes: &[&str]) -> OktaError {
        OktaError::Api {
            status,
            body: Some(OktaErrorBody {
                error_code: code.to_owned(),
                error_summary: format!("summary of {code}"),
                error_link: Some(code.to_owned()),
                error_id: Some("oaeTESTERRORID".to_owned()),
                error_causes: causes
                    .iter()
                    .map(|c| OktaErrorCause {
                        error_summary: (*c).to_owned(),
                    })
                    .collect(),
            }),
            meta: ResponseMeta {
                status,
                request_id: Some("req-1".to_owned()),
                rate_limit: None,
                retry_count: 0,
                after_unanswered: false,
            },
            www_authenticate: None,
        }
    }

    fn reason_of(status: &Status) -> String {
        status
            .get_details_error_info()
            .map(|info| info.reason)
            .unwrap_or_default()
    }

    #[test]
    fn the_mapping_table_decides_on_okta_error_codes() {
        let cases = [
            (
                api_error(404, "E0000007", &[]),
                OktaCall::Read,
                Code::NotFound,
            ),
            (
                api_error(
                    400,
                    "E0000001",
                    &[
                        "login: An object with this field already exists in the current organization",
                    ],
                ),
                OktaCall::Write,
                Code::AlreadyExists,
            ),
            (
                api_error(400, "E0000001", &["email: Does not match required pattern"]),
                OktaCall::Write,
                Code::InvalidArgument,
            ),
            (
                api_error(
                    400,
                    "E0000001",
                    &["Cannot suspend a user that is not active"],
                ),
                OktaCall::Lifecycle,
                Code::FailedPrecondition,
            ),
            (
                api_error(403, "E0000016", &[]),
                OktaCall::Lifecycle,
                Code::FailedPrecondition,
            ),
            (
                api_error(403, "E0000032", &["The user is not locked out."]),
                OktaCall::Lifecycle,
                Code::FailedPrecondition,
            ),
            (
                api_error(403, "E0000038", &[]),
                OktaCall::Lifecycle,
                Code::FailedPrecondition,
            ),
            (
                api_error(403, "E0000152", &[]),
                OktaCall::Lifecycle,
                Code::FailedPrecondition,
            ),
            (
                api_error(403, "E0000006", &[]),
                OktaCall::Read,
                Code::Internal,
            ),
            (
                api_error(401, "E0000011", &[]),
                OktaCall::Read,
                Code::Internal,
            ),
            (
                api_error(400, "E0000031", &[]),
                OktaCall::Read,
                Code::InvalidArgument,
            ),
            (
                api_error(409, "E0000112", &[]),
                OktaCall::Write,
                Code::Unavailable,
            ),
        ];
        for (error, call, expected) in cases {
            let status = okta_error_status(&error, call);
            assert_eq!(status.code(), expected, "{error:?} during {call:?}");
            let info = status
                .get_details_error_info()
                .expect("every status carries ErrorInfo");
            assert_eq!(info.domain, ERROR_DOMAIN);
            assert_eq!(
                info.metadata.get("okta_request_id").map(String::as_str),
                Some("req-1")
            );
            assert_eq!(
                info.metadata.get("okta_error_id").map(String::as_str),
                Some("oaeTESTERRORID")
            );
        }
    }

    #[test]
    fn credential_problems_are_never_reported_as_the_callers_authentication() {
        for error in [
            api_error(401, "E0000011", &[]),
            api_error(403, "E0000006", &[]),
        ] {
            let status = okta_error_status(&error, OktaCall::Read);
            assert_ne!(status.code(), Code::Unauthenticated);
            assert_ne!(status.code(), Code::PermissionDenied);
            assert!(
                reason_of(&status).starts_with("OKTA_"),
                "{}",
                reason_of(&status)
            );
        }
    }

    #[test]
    fn an_empty_403_with_insufficient_scope_names_the_scope() {
        let error = OktaError::Api {
            status: 403,
            body: None,
            meta: ResponseMeta::default(),
            www_authenticate: Some(
                "Bearer authorization_uri=\"x\", error=\"insufficient_scope\", scope=\"okta.groups.read\"".to_owned(),
            ),
        };
        let status = okta_error_status(&error, OktaCall::Read);
        assert_eq!(reason_of(&status), reason::SCOPE_MISSING);
        assert_ne!(status.code(), Code::PermissionDenied);
        assert!(
            status.message().contains("okta.groups.read"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn validation_causes_become_field_violations_named_after_proto_fields() {
        let status = okta_error_status(
            &api_error(400, "E0000001", &["email: Does not match required pattern"]),
            OktaCall::Write,
        );
        let bad_request = status.get_details_bad_request().unwrap();
        assert_eq!(bad_request.field_violations[0].field, "profile.email");
    }

    #[test]
    fn causes_name_the_fields_of_the_rpc_called_and_never_a_made_up_profile_path() {
        let error = api_error(400, "E0000053", &["since: must not be more than 180 days"]);
        let fields = |status: Status| -> Vec<String> {
            let bad_request = status.get_details_bad_request().unwrap();
            bad_request
                .field_violations
                .into_iter()
                .map(|v| v.field)
                .collect()
        };
        let events = CauseFields::Parameters(&[("since", "since")]);
        let named = okta_error_status_naming(&error, OktaCall::Read, events);
        assert_eq!(fields(named), ["since"]);
        for call in [OktaCall::Read, OktaCall::Lifecycle, OktaCall::Membership] {
            assert_eq!(fields(okta_error_status(&error, call)), [""]);
        }
    }

    /// The `google.rpc.Status` a client decodes from `grpc-status-details-bin`.
    fn details_status(status: &Status) -> tonic_types::pb::Status {
        prost::Message::decode(status.details()).unwrap()
    }

    #[test]
    fn a_note_reaches_the_message_and_the_details_alike() {
        let failed = okta_error_status(&api_error(400, "E0000031", &[]), OktaCall::Read);
        let noted = with_note(&failed, "checked with Okta");
        assert!(noted.message().ends_with("; checked with Okta"));
        assert_eq!(details_status(&noted).message, noted.message());
        assert_eq!(reason_of(&noted), reason::VALIDATION_FAILED);
        let unknown = outcome_unknown(&api_error(500, "E0000009", &[]), "user 00u1's status");
        assert_eq!(unknown.code(), Code::Unavailable);
        assert_eq!(details_status(&unknown).message, unknown.message());
        assert!(unknown.message().contains("user 00u1's status"));
        let info = unknown.get_details_error_info().unwrap();
        assert_eq!(info.reason, reason::OUTCOME_UNKNOWN);
        assert_eq!(info.metadata["check"], "user 00u1's status");
    }

    #[test]
    fn a_server_error_says_safe_to_retry_only_for_a_read() {
        let error = OktaError::Unavailable {
            status: 503,
            body: None,
            meta: ResponseMeta::default(),
        };
        assert!(
            okta_error_status(&error, OktaCall::Read)
                .message()
                .contains("safe to retry")
        );
        for call in [OktaCall::Write, OktaCall::Lifecycle, OktaCall::Membership] {
            assert!(!okta_error_status(&error, call).message().contains("retry"));
        }
    }

    #[test]
    fn rate_limits_carry_retry_info() {
        let error = OktaError::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
            body: None,
            meta: ResponseMeta::default(),
        };
        let status = okta_error_status(&error, OktaCall::Read);
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.get_details_retry_info().unwrap().retry_delay,
            Some(Duration::from_secs(7))
        );
    }
}
