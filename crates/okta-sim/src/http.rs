//! Request and reply plumbing shared by the Okta handlers: decoded path, query, body, reply.

use axum::body::Bytes;
use axum::http::StatusCode;
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

use super::errors::OktaError;

/// What a handler answers before the pipeline adds the common headers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON body text, if any.
    pub body: Option<String>,
    /// Values for separate `link` header lines.
    pub links: Vec<String>,
    /// Extra headers (fault injection).
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// A JSON reply with `status`.
    pub fn json(status: StatusCode, body: String) -> Self {
        Reply {
            status,
            body: Some(body),
            links: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// A 200 JSON reply.
    pub fn ok(body: String) -> Self {
        Reply::json(StatusCode::OK, body)
    }

    /// A 200 `{}` reply, as lifecycle operations answer.
    pub fn empty_object() -> Self {
        Reply::ok("{}".to_owned())
    }

    /// A reply without body, e.g. 204.
    pub fn empty(status: StatusCode) -> Self {
        Reply {
            status,
            body: None,
            links: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// Attaches `link` header values.
    pub fn with_links(mut self, links: Vec<String>) -> Self {
        self.links = links;
        self
    }
}

impl From<OktaError> for Reply {
    fn from(e: OktaError) -> Self {
        Reply::json(e.status, e.body())
    }
}

/// Result type of every Okta handler.
pub type Handled = Result<Reply, OktaError>;

/// Who sent a request, for the System Log events it causes.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// The response's `X-Okta-Request-Id`.
    pub request_id: String,
    /// The caller's address.
    pub ip: String,
    /// The caller's `User-Agent`, if any.
    pub user_agent: Option<String>,
    /// Raw request path.
    pub path: String,
    /// Raw path and query.
    pub url: String,
}

impl Default for RequestMeta {
    fn default() -> Self {
        RequestMeta {
            request_id: String::new(),
            ip: "127.0.0.1".to_owned(),
            user_agent: None,
            path: String::new(),
            url: String::new(),
        }
    }
}

/// The parts of a request a handler needs.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Base URL for links, e.g. `http://127.0.0.1:8080`.
    pub base: String,
    /// Decoded query parameters, in request order.
    pub query: Vec<(String, String)>,
    /// Raw body bytes (empty for GET/DELETE).
    pub body: Bytes,
    /// Request id, caller address and URL, for System Log events.
    pub meta: RequestMeta,
}

impl Ctx {
    /// Builds a context from the raw query string.
    pub fn new(base: String, raw_query: Option<&str>, body: Bytes) -> Self {
        let query = raw_query
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Ctx {
            base,
            query,
            body,
            meta: RequestMeta::default(),
        }
    }

    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean query parameter (`true`/`false`, any case); anything else is a 400.
    pub fn bool_param(&self, name: &str, default: bool) -> Result<bool, OktaError> {
        match self.param(name) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(OktaError::validation(&[(
                name.to_owned(),
                "must be true or false".to_owned(),
            )])),
        }
    }

    /// The body as a JSON object; malformed or non-object bodies are `E0000003`.
    pub fn json_object(&self) -> Result<Map<String, Value>, OktaError> {
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(OktaError::new("E0000003", "")),
        }
    }
}

/// Splits a raw path into percent-decoded segments (lenient: bad escapes stay literal).
pub fn segments(raw_path: &str) -> Vec<String> {
    let trimmed = raw_path.strip_suffix('/').unwrap_or(raw_path);
    trimmed
        .split('/')
        .skip(1)
        .map(|segment| percent_decode_str(segment).decode_utf8_lossy().into_owned())
        .collect()
}
