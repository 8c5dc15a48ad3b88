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
//! Every other answer is remembered. An `OUTCOME_UNKNOWN` answer (or a first attempt that
//! ended without one) is settled by the next retry: it runs the services with every change to
//! Okta withheld ([`okta_client::CallContext::withhold_changes`]), so the handler's read after
//! a lost answer says what happened. Found carried out, the retry gets the change's success,
//! which is remembered; found not carried out, it gets UNAVAILABLE `NOT_CARRIED_OUT` and the
//! retry after it makes the change; still unknown, `OUTCOME_UNKNOWN` again. No retry ever
//! sends the change a second time while its first attempt may have been carried out.
//!
//! With `coordination.redis_url` the table is shared by every replica (`shared.rs`), so a retry
//! that reaches another replica is answered the same; without it, or while the server cannot
//! be reached and `coordination.idempotency_when_unavailable` is `proceed`, it lives in this
//! process (`local.rs`). While the server cannot be reached and the setting is `refuse` (the
//! default), a change with a `request_id` is refused with UNAVAILABLE before anything is done:
//! made without the shared table, a retry on another replica could make it again.

mod local;
mod recorded;
mod shared;

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use prost_reflect::{DynamicMessage, Value};
use tonic::Code;
use tonic::codec::Streaming;

use self::local::LocalTable;
use self::recorded::{RecordedAnswer, record};
use self::shared::SharedTable;
use super::named_ids::{DynamicDecoder, request_message};
use super::{Answer, Inner, Next, Request};
use crate::auth::Authentication;
use crate::config::{CoordinationSettings, WhenUnavailable};
use crate::context::RequestContext;
use crate::coordination::Coordination;
use crate::methods;
use crate::status;

/// The request field that names a change (AIP-155).
pub const REQUEST_ID_FIELD: &str = "request_id";

/// Remembers the outcomes of changes named by a `request_id`; see the module docs.
#[derive(Clone)]
pub struct Idempotency {
    local: LocalTable,
    shared: Option<SharedTable>,
    when_unavailable: WhenUnavailable,
    max_request_bytes: usize,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Idempotency")
            .field("remembered_here", &self.local.len())
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

impl Idempotency {
    /// A table as `settings` say, on `coordination`'s server when there is one, reading
    /// requests of at most `max_request_bytes` (the limit the services decode with).
    pub fn new(
        settings: &CoordinationSettings,
        coordination: Option<Coordination>,
        max_request_bytes: usize,
    ) -> Self {
        let ttl = Duration::from_secs(settings.idempotency_ttl_s);
        Self {
            local: LocalTable::new(ttl),
            shared: coordination.map(|coordination| SharedTable::new(coordination, ttl)),
            when_unavailable: settings.idempotency_when_unavailable,
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

/// An attempt of a change, not yet made: run as it is (the first), or settling an earlier
/// attempt whose outcome is unknown, with its changes withheld.
struct Attempt(Box<dyn FnOnce(Run) -> BoxFuture<'static, RecordedAnswer> + Send>);

/// How an [`Attempt`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    /// The change is made.
    First,
    /// Only reads reach Okta: they settle an earlier attempt.
    Settling,
}

impl Attempt {
    /// The services' answer, read whole.
    fn run(self, how: Run) -> BoxFuture<'static, RecordedAnswer> {
        (self.0)(how)
    }
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
            let mut request = request;
            let attempt = Attempt(Box::new(move |how| {
                if how == Run::Settling {
                    RequestContext::of_http(&mut request)
                        .okta()
                        .withhold_changes();
                }
                Box::pin(async move { record(service.call(request).await).await })
            }));
            let Some(shared) = &table.shared else {
                return Ok(table.local.answer(key, message, attempt).await);
            };
            match shared.answer(&key, &message, attempt).await {
                Ok(answer) => Ok(answer),
                Err((_, attempt)) => match table.when_unavailable {
                    WhenUnavailable::Proceed => Ok(table.local.answer(key, message, attempt).await),
                    WhenUnavailable::Refuse => Ok(status::coordination_unavailable().into_http()),
                },
            }
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
