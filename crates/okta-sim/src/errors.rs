//! Okta-shaped error bodies: `errorCode`, `errorSummary`, `errorLink`, `errorId`, `errorCauses`.
//!
//! Summaries come verbatim from Okta's published error catalogue, with `{0}` filled in.

use axum::http::StatusCode;
use serde::Serialize;

use super::ids;

/// One error the simulator answers with, before it is rendered to JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OktaError {
    /// HTTP status of the response.
    pub status: StatusCode,
    /// Okta error code, e.g. `E0000007`.
    pub code: &'static str,
    /// Full summary text (catalogue text with `{0}` already filled in).
    pub summary: String,
    /// Texts of the `errorCauses` entries.
    pub causes: Vec<String>,
}

/// The JSON body of an Okta error, in Okta's field order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    error_code: &'a str,
    error_summary: &'a str,
    error_link: &'a str,
    error_id: String,
    error_causes: Vec<Cause<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Cause<'a> {
    error_summary: &'a str,
}

/// Catalogue entries the simulator uses: (code, HTTP status, summary template).
const CATALOGUE: &[(&str, u16, &str)] = &[
    ("E0000001", 400, "Api validation failed: {0}"),
    ("E0000002", 400, "The request was not valid: {0}"),
    ("E0000003", 400, "The request body was not well-formed."),
    ("E0000004", 401, "Authentication failed"),
    ("E0000005", 403, "Invalid session"),
    (
        "E0000006",
        403,
        "You do not have permission to perform the requested action",
    ),
    ("E0000007", 404, "Not found: {0}"),
    ("E0000008", 404, "The requested path was not found"),
    ("E0000009", 500, "Internal Server Error"),
    ("E0000010", 503, "Service is in read only mode"),
    ("E0000011", 401, "Invalid token provided"),
    (
        "E0000016",
        403,
        "Activation failed because the user is already active",
    ),
    ("E0000017", 403, "Password reset failed"),
    (
        "E0000022",
        405,
        "The endpoint does not support the provided HTTP method",
    ),
    (
        "E0000028",
        400,
        "The request is missing a required parameter.",
    ),
    ("E0000031", 400, "Invalid search criteria."),
    ("E0000032", 403, "Unlock is not allowed for this user."),
    (
        "E0000038",
        403,
        "This operation is not allowed in the user's current status.",
    ),
    (
        "E0000047",
        429,
        "API call exceeded rate limit due to too many requests.",
    ),
    ("E0000053", 400, "Invalid SCIM filter."),
    (
        "E0000112",
        409,
        "Cannot update this user because they are still being activated. Please try again in a few minutes.",
    ),
    (
        "E0000152",
        403,
        "Illegal device status, cannot perform action.",
    ),
    (
        "E0000124",
        400,
        "Could not create user. To create a user and expire their password immediately, a password must be specified",
    ),
    (
        "E0000125",
        400,
        "Could not create user. To create a user and expire their password immediately, \"activate\" must be true",
    ),
];

/// Looks up a catalogue entry: the status and the summary template, if the code is known.
pub fn catalogue(code: &str) -> Option<(StatusCode, &'static str)> {
    CATALOGUE
        .iter()
        .find(|(c, _, _)| *c == code)
        .and_then(|(_, s, t)| StatusCode::from_u16(*s).ok().map(|s| (s, *t)))
}

impl OktaError {
    /// Builds an error for a catalogue code; `arg` fills `{0}` in the summary.
    pub fn new(code: &'static str, arg: &str) -> Self {
        let (status, template) =
            catalogue(code).unwrap_or((StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"));
        OktaError {
            status,
            code,
            summary: template.replace("{0}", arg),
            causes: Vec::new(),
        }
    }

    /// Adds one `errorCauses` entry.
    pub fn cause(mut self, text: impl Into<String>) -> Self {
        self.causes.push(text.into());
        self
    }

    /// `E0000001 Api validation failed: {field}` with one cause per `(field, message)`.
    pub fn validation(causes: &[(String, String)]) -> Self {
        let first = causes.first().map(|(f, _)| f.as_str()).unwrap_or("");
        let mut e = OktaError::new("E0000001", first);
        for (field, msg) in causes {
            e.causes.push(format!("{field}: {msg}"));
        }
        e
    }

    /// `E0000007 Not found: Resource not found: {id} ({kind})`, with no causes (as recorded).
    pub fn not_found(id: &str, kind: &str) -> Self {
        OktaError::new("E0000007", &format!("Resource not found: {id} ({kind})"))
    }

    /// `E0000031 Invalid search criteria.` with an explanatory cause.
    pub fn bad_search(why: impl Into<String>) -> Self {
        OktaError::new("E0000031", "").cause(why)
    }

    /// Renders the Okta JSON body (in Okta's field order) with a fresh `errorId`.
    pub fn body(&self) -> String {
        render_body(self.code, &self.summary, &self.causes)
    }
}

/// Renders an Okta error body for any code/summary (used by fault injection too).
pub fn render_body(code: &str, summary: &str, causes: &[String]) -> String {
    let body = ErrorBody {
        error_code: code,
        error_summary: summary,
        error_link: code,
        error_id: ids::error_id(),
        error_causes: causes.iter().map(|c| Cause { error_summary: c }).collect(),
    };
    serde_json::to_string(&body).unwrap_or_else(|_| "{}".to_owned())
}
