//! THE one mapping from Okta outcomes to gRPC statuses, decided on Okta's `errorCode` (the HTTP
//! status alone is ambiguous: Okta answers 403 both for "the gateway's token may not do this" and
//! for "the user is in the wrong state"). Every status carries `google.rpc.ErrorInfo` with Okta's
//! error code, error id and request id so a support ticket can quote them.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::FieldViolation;

use crate::status::{error_info, reason, retry_later, with_details, with_info};
use okta_client::{OktaError, OktaErrorBody, ResponseMeta};

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
            ..
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
        // Reached only when no read settled the withheld change (`api::settle` answers it).
        OktaError::Withheld => with_info(
            Code::Unavailable,
            "an earlier attempt of this change ended without an answer; it may or may not \
             have been carried out by Okta",
            reason::OUTCOME_UNKNOWN,
            metadata,
        ),
        OktaError::Connect(_) => with_info(
            Code::Unavailable,
            "Okta could not be reached",
            reason::UNREACHABLE,
            metadata,
        ),
        OktaError::NotConnected(_) => with_info(
            Code::Unavailable,
            "Okta could not be reached; nothing was sent, so the call may be made again",
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
        return with_details(
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
        return with_details(
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
        OktaError::Timeout(_)
        | OktaError::Connect(_)
        | OktaError::NotConnected(_)
        | OktaError::CallerShareSpent { .. }
        | OktaError::Withheld => (None, None),
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

/// Adapts [`okta_error_status`] for `map_err`.
pub fn mapped(call: OktaCall) -> impl Fn(OktaError) -> Status {
    move |error| okta_error_status(&error, call)
}

/// Adapts [`okta_error_status_naming`] for `map_err`.
pub fn mapped_naming(call: OktaCall, fields: CauseFields) -> impl Fn(OktaError) -> Status {
    move |error| okta_error_status_naming(&error, call, fields)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{ERROR_DOMAIN, with_note};
    use okta_client::OktaErrorCause;
    use tonic_types::StatusExt;

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
