//! SCIM's error answers (RFC 7644 §3.12): the `urn:ietf:params:scim:api:messages:2.0:Error`
//! schema with the HTTP status and, where one fits, a `scimType`.
//!
//! A failed call is translated from the gRPC status the gateway's own API answered, whose
//! code and `ErrorInfo.reason` were decided by the one Okta error table (`api/status.rs`) or the
//! edge's refusals (`status.rs`); this module only says how each reads in SCIM's terms.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::json;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::status::reason;

/// SCIM's media type, of every answer.
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";
/// The schema of SCIM error answers.
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The `scimType` values of RFC 7644 Table 9 the facade answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScimType {
    /// The filter is malformed or cannot be evaluated.
    InvalidFilter,
    /// The request body is not valid JSON or not the resource's structure.
    InvalidSyntax,
    /// A value is missing, of the wrong type, or refused.
    InvalidValue,
    /// The value is already taken (a `userName`).
    Uniqueness,
    /// The attribute cannot be changed (read-only, immutable, or not mapped).
    Mutability,
    /// A PATCH path matched nothing it could act on.
    NoTarget,
    /// A PATCH path is malformed or names no attribute of the resource.
    InvalidPath,
    /// The request asks for more than the server will do (`count`, a broad post-filter).
    TooMany,
}

impl ScimType {
    fn as_str(self) -> &'static str {
        match self {
            Self::InvalidFilter => "invalidFilter",
            Self::InvalidSyntax => "invalidSyntax",
            Self::InvalidValue => "invalidValue",
            Self::Uniqueness => "uniqueness",
            Self::Mutability => "mutability",
            Self::NoTarget => "noTarget",
            Self::InvalidPath => "invalidPath",
            Self::TooMany => "tooMany",
        }
    }
}

/// A SCIM error answer.
#[derive(Debug)]
pub struct ScimError {
    status: StatusCode,
    scim_type: Option<ScimType>,
    detail: String,
    retry_after: Option<Duration>,
}

impl ScimError {
    /// A 400 of `scim_type`, with `detail` naming the problem.
    pub fn bad_request(scim_type: ScimType, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    /// An answer of `status`, of `scim_type` when one applies.
    pub fn new(status: StatusCode, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 404 for a resource or endpoint that does not exist.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }

    /// The same error, its detail starting with `note`.
    pub fn noting(mut self, note: &str) -> Self {
        self.detail = format!("{note}: {}", self.detail);
        self
    }

    /// The SCIM reading of a gRPC `status` of the gateway's, by its code and reason.
    pub fn from_status(status: &Status) -> Self {
        let details = status.get_error_details();
        let reason = details
            .error_info()
            .map(|info| info.reason.as_str())
            .unwrap_or_default();
        let (http_status, scim_type) = match (status.code(), reason) {
            (Code::InvalidArgument, _) => (StatusCode::BAD_REQUEST, Some(ScimType::InvalidValue)),
            (Code::NotFound, _) => (StatusCode::NOT_FOUND, None),
            (Code::AlreadyExists, _) => (StatusCode::CONFLICT, Some(ScimType::Uniqueness)),
            (Code::FailedPrecondition, reason::WRONG_STATUS) => (StatusCode::CONFLICT, None),
            (Code::FailedPrecondition, _) => {
                (StatusCode::BAD_REQUEST, Some(ScimType::InvalidValue))
            }
            (Code::Unauthenticated, _) => (StatusCode::UNAUTHORIZED, None),
            (Code::PermissionDenied, _) => (StatusCode::FORBIDDEN, None),
            (Code::ResourceExhausted, reason::REQUEST_TOO_LARGE) => {
                (StatusCode::PAYLOAD_TOO_LARGE, None)
            }
            (Code::ResourceExhausted, _) => (StatusCode::TOO_MANY_REQUESTS, None),
            (Code::DeadlineExceeded, _) => (StatusCode::GATEWAY_TIMEOUT, None),
            (Code::Unavailable, _) => (StatusCode::SERVICE_UNAVAILABLE, None),
            (Code::Unimplemented, _) => (StatusCode::NOT_IMPLEMENTED, None),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, None),
        };
        let mut detail = status.message().to_owned();
        if let Some(bad_request) = details.bad_request() {
            for violation in &bad_request.field_violations {
                detail.push_str(&format!("; {}: {}", violation.field, violation.description));
            }
        }
        if !reason.is_empty() {
            detail.push_str(&format!(" ({reason})"));
        }
        Self {
            status: http_status,
            scim_type,
            detail,
            retry_after: details
                .retry_info()
                .and_then(|info| info.retry_delay)
                .or_else(|| {
                    matches!(
                        http_status,
                        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                    )
                    .then_some(Duration::from_secs(1))
                }),
        }
    }
}

impl From<Status> for ScimError {
    fn from(status: Status) -> Self {
        Self::from_status(&status)
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_str(),
            "detail": self.detail,
        });
        if let Some(scim_type) = self.scim_type {
            body["scimType"] = json!(scim_type.as_str());
        }
        let mut response = (self.status, super::ScimJson(body)).into_response();
        if let Some(retry_after) = self.retry_after {
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"identity-gateway\""),
            );
        }
        response
    }
}
