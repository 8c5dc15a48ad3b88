//! Idempotent changes (AIP-155): a change that carries a `request_id` (a UUID the caller
//! chooses) is remembered by caller, method and id with its outcome. A retry with the same id
//! gets the first attempt's answer without the gateway calling Okta again, or waits for the
//! first attempt while it is still running; the same id with a different request is
//! INVALID_ARGUMENT. A caller's ids are its own: another caller's equal id is another change.
//!
//! The first attempt runs in a task of its own, so it finishes and is remembered even when its
//! caller goes away or its deadline passes first: the retry that follows a lost answer finds
//! the outcome instead of making the change again.
//!
//! An answer that says nothing was changed and the call may simply be sent again (UNAVAILABLE,
//! RESOURCE_EXHAUSTED, ABORTED, DEADLINE_EXCEEDED or CANCELLED, unless its reason is
//! `OUTCOME_UNKNOWN`) is given to those waiting for it but not remembered, so the retry runs.
//! Every other answer is remembered, `OUTCOME_UNKNOWN` included: repeating the change could
//! make it twice, so the retry is told the same.
//!
//! The table lives in this process, for `IDEMPOTENCY_TTL` after the first attempt began.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use prost_reflect::{DynamicMessage, Value};
use tokio::sync::watch;
use tonic::codec::Streaming;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::named_ids::{DynamicDecoder, request_message};
use super::{Answer, Inner, Next, Request, Response};
use crate::auth::Authentication;
use crate::methods;
use crate::status;

/// The request field that names a change (AIP-155).
pub const REQUEST_ID_FIELD: &str = "request_id";
/// How long an outcome is remembered after the first attempt began.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(3600);
/// Most changes remembered at once; the oldest make room. An answer is a few KiB at most (one
/// user), so this bounds the table to tens of MiB.
const MAX_REMEMBERED: u64 = 20_000;

/// Remembers the outcomes of changes named by a `request_id`; see the module docs.
#[derive(Clone)]
pub struct Idempotency {
    changes: moka::future::Cache<ChangeKey, Arc<Change>>,
    max_request_bytes: usize,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Idempotency")
            .field("remembered", &self.changes.entry_count())
            .finish()
    }
}

impl Idempotency {
    /// A table remembering outcomes for `ttl`, reading requests of at most `max_request_bytes`
    /// (the limit the services decode with).
    pub fn new(ttl: Duration, max_request_bytes: usize) -> Self {
        Self {
            changes: moka::future::Cache::builder()
                .max_capacity(MAX_REMEMBERED)
                .time_to_live(ttl)
                .build(),
            max_request_bytes,
        }
    }
}

/// Whose change, which method, which id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ChangeKey {
    caller: String,
    path: String,
    request_id: String,
}

/// One change: the request that named it (without its id) and, once known, its answer.
struct Change {
    request: DynamicMessage,
    answer: watch::Receiver<Option<Arc<RecordedAnswer>>>,
}

/// An answer as the services gave it, to be given again.
struct RecordedAnswer {
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
    trailers: Option<http::HeaderMap>,
}

impl super::Step for Idempotency {
    fn handle<S: Inner>(&self, request: Request, next: Next<'_, S>) -> Answer<S::Error> {
        let path = request.uri().path().to_owned();
        let traits = methods::of(&path);
        // Reads pass at the cost of one lookup: only a change has a request message to read.
        let input = (traits.changes_okta() && !traits.server_streaming)
            .then(|| request_message(&path))
            .flatten();
        let Some(input) = input else {
            return Box::pin(next.call(request));
        };
        let caller = match request.extensions().get::<Authentication>() {
            Some(Authentication::Authenticated(caller)) => caller.identity.to_string(),
            _ => String::new(),
        };
        let mut service = next.into_service();
        let table = self.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let bytes = match Limited::new(body, table.max_request_bytes + 5)
                .collect()
                .await
            {
                Ok(collected) => collected.to_bytes(),
                Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                    return Ok(status::request_too_large(table.max_request_bytes).into_http());
                }
                Err(_) => {
                    return Ok(status::framework_refusal(
                        Code::Cancelled,
                        "the request's message did not arrive whole",
                    )
                    .into_http());
                }
            };
            let request =
                http::Request::from_parts(parts, tonic::body::Body::new(Full::new(bytes.clone())));
            let Some(mut message) = decode(input, bytes, table.max_request_bytes).await else {
                // tonic refuses what cannot be decoded, with its own status.
                return service.call(request).await;
            };
            let request_id = match message.get_field_by_name(REQUEST_ID_FIELD).as_deref() {
                Some(Value::String(id)) if !id.is_empty() => id.clone(),
                _ => return service.call(request).await,
            };
            if uuid::Uuid::try_parse(&request_id).is_err() {
                return Ok(status::request_id_not_uuid().into_http());
            }
            message.clear_field_by_name(REQUEST_ID_FIELD);
            let key = ChangeKey {
                caller,
                path,
                request_id,
            };
            let (sender, receiver) = watch::channel(None);
            let entry = table
                .changes
                .entry(key.clone())
                .or_insert_with(async {
                    Arc::new(Change {
                        request: message.clone(),
                        answer: receiver,
                    })
                })
                .await;
            let fresh = entry.is_fresh();
            let change = entry.into_value();
            if fresh {
                // The first attempt: it runs to its end even if this caller goes away.
                let changes = table.changes.clone();
                tokio::spawn(async move {
                    let answer = Arc::new(record(service.call(request).await).await);
                    if !answer.remembered() {
                        changes.invalidate(&key).await;
                    }
                    let _ = sender.send(Some(answer));
                });
            }
            if change.request != message {
                return Ok(status::request_id_reused().into_http());
            }
            let mut answer = change.answer.clone();
            let recorded = match answer.wait_for(Option::is_some).await {
                Ok(recorded) => recorded.clone(),
                Err(_) => None,
            };
            Ok(match recorded {
                Some(recorded) => recorded.replay(),
                // The first attempt's task ended without an answer (the server is stopping).
                None => status::outcome_lost().into_http(),
            })
        })
    }
}

/// The request message in `bytes` (one gRPC frame), read by the method's descriptor.
async fn decode(
    input: prost_reflect::MessageDescriptor,
    bytes: Bytes,
    max_bytes: usize,
) -> Option<DynamicMessage> {
    let mut messages = Streaming::new_request(
        DynamicDecoder(input),
        Full::new(bytes),
        None,
        Some(max_bytes),
    );
    messages.message().await.ok().flatten()
}

/// Reads the whole answer of the services, trailers included.
async fn record<E>(result: Result<Response, E>) -> RecordedAnswer {
    let Ok(response) = result else {
        return RecordedAnswer::of_status(status::internal("the service failed"));
    };
    let (parts, body) = response.into_parts();
    match body.collect().await {
        Ok(collected) => {
            let trailers = collected.trailers().cloned();
            RecordedAnswer {
                status: parts.status,
                headers: parts.headers,
                body: collected.to_bytes(),
                trailers,
            }
        }
        Err(_) => RecordedAnswer::of_status(status::outcome_lost()),
    }
}

impl RecordedAnswer {
    /// A trailers-only answer carrying `status`.
    fn of_status(status: Status) -> Self {
        let (parts, _) = status.into_http::<tonic::body::Body>().into_parts();
        Self {
            status: parts.status,
            headers: parts.headers,
            body: Bytes::new(),
            trailers: None,
        }
    }

    /// The gRPC status the answer carries: in its trailers, or in its headers when it is
    /// trailers-only.
    fn grpc_status(&self) -> Option<Status> {
        self.trailers
            .as_ref()
            .and_then(Status::from_header_map)
            .or_else(|| Status::from_header_map(&self.headers))
    }

    /// Whether the answer is kept for retries; see the module docs.
    fn remembered(&self) -> bool {
        let Some(status) = self.grpc_status() else {
            return true;
        };
        let may_simply_be_sent_again = matches!(
            status.code(),
            Code::Unavailable
                | Code::ResourceExhausted
                | Code::Aborted
                | Code::DeadlineExceeded
                | Code::Cancelled
        );
        let outcome_unknown = status
            .get_details_error_info()
            .is_some_and(|info| info.reason == status::reason::OUTCOME_UNKNOWN);
        !may_simply_be_sent_again || outcome_unknown
    }

    /// The same answer again.
    fn replay(&self) -> Response {
        let mut frames = vec![Ok::<_, Infallible>(Frame::data(self.body.clone()))];
        if let Some(trailers) = &self.trailers {
            frames.push(Ok(Frame::trailers(trailers.clone())));
        }
        let body = StreamBody::new(futures::stream::iter(frames));
        let mut response = http::Response::new(tonic::body::Body::new(body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
    }
}

#[cfg(test)]
mod tests {
    use prost_reflect::Kind;

    use super::*;

    #[test]
    fn every_change_can_be_named_by_a_request_id() {
        let changes: Vec<&str> = methods::names()
            .filter(|name| methods::of(&format!("/{name}")).changes_okta())
            .collect();
        assert!(changes.len() > 10, "{changes:?}");
        for name in changes {
            let input = request_message(&format!("/{name}")).unwrap();
            let field = input.get_field_by_name(REQUEST_ID_FIELD);
            assert!(
                field.is_some_and(|field| field.kind() == Kind::String && !field.is_list()),
                "{name}: its request has no string `{REQUEST_ID_FIELD}`"
            );
        }
    }
}
