//! Audit records: one structured log line (target `audit`) for every mutating RPC, allowed or
//! refused, and for every refused read: the authenticated caller (identity, mechanism, peer
//! address), the method, the user and group ids it touched, the outcome and the Okta request
//! ids. No profile data beyond ids, never a secret. A change dropped before it is answered (the
//! deadline layer sits outside this one, and a caller may go away) is recorded as it ends.

use std::cell::RefCell;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Layer, Service};

use crate::auth::{Authentication, escaped_for_log, peer_addr};
use crate::methods;
use okta_client::instrumentation::collecting_request_ids;

tokio::task_local! {
    static TARGETS: RefCell<Vec<String>>;
}

/// Notes an id the current RPC acts on (`user_id=00u…`), for its audit record. Ids are
/// validated before they are noted, so nothing a caller writes freely reaches the audit log.
pub fn note_target(field: &str, id: &str) {
    let _ = TARGETS.try_with(|targets| targets.borrow_mut().push(format!("{field}={id}")));
}

/// Applies [`Audit`] to every service.
#[derive(Clone, Copy, Debug, Default)]
pub struct AuditLayer;

impl<S> Layer<S> for AuditLayer {
    type Service = Audit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Audit { inner }
    }
}

/// Writes the audit record of each mutating RPC; see the module docs.
#[derive(Clone, Debug)]
pub struct Audit<S> {
    inner: S,
}

impl<S, RequestBody, ResponseBody> Service<http::Request<RequestBody>> for Audit<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<ResponseBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let mutating = methods::of(&path).changes_okta();
        let authentication = match request.extensions().get::<Authentication>() {
            None | Some(Authentication::NotRequired) => return Box::pin(self.inner.call(request)),
            Some(authentication) => authentication.clone(),
        };
        let peer = peer_addr(request.extensions());
        let record = Record {
            authentication,
            peer,
            path,
        };
        let response = self.inner.call(request);
        Box::pin(TARGETS.scope(RefCell::new(Vec::new()), async move {
            // A change dropped before its answer is still recorded.
            let mut unanswered = Unanswered {
                record: Some(record),
                mutating,
            };
            let (result, okta_request_ids) = if mutating {
                collecting_request_ids(response).await
            } else {
                (response.await, Vec::new())
            };
            let answered = unanswered.record.take();
            let outcome = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|code| code.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from),
                Err(_) => tonic::Code::Unknown,
            };
            let denied = matches!(
                outcome,
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
            );
            if let Some(record) = answered.filter(|_| mutating || denied) {
                record.write(outcome, &okta_request_ids);
            }
            result
        }))
    }
}

/// What an audit record says about the call, known before it runs.
struct Record {
    /// Who called, named only when the record is written: most reads are not.
    authentication: Authentication,
    /// Formatted only when the record is written: most reads are not.
    peer: Option<std::net::SocketAddr>,
    path: String,
}

impl Record {
    /// Writes the record with the ids the call noted.
    fn write(&self, outcome: tonic::Code, okta_request_ids: &[String]) {
        let targets = TARGETS
            .try_with(|targets| targets.take())
            .unwrap_or_default()
            .join(" ");
        let (caller, mechanism) = match self.authentication.caller() {
            Some(caller) => (caller.identity.to_string(), caller.mechanism.as_str()),
            None => ("unauthenticated".to_owned(), "none"),
        };
        let peer = self
            .peer
            .map_or_else(|| "unknown".to_owned(), |peer| peer.to_string());
        tracing::info!(
            target: "audit",
            caller = &*escaped_for_log(&caller),
            auth = mechanism,
            peer,
            method = &*escaped_for_log(self.path.trim_start_matches('/')),
            ids = targets,
            outcome = code_name(outcome),
            okta_request_ids = okta_request_ids.join(" "),
            "audit"
        );
    }
}

/// The record of a call until it is answered; a change dropped before that is recorded as it
/// ends: its deadline passed (DEADLINE_EXCEEDED, as the caller is told) or the caller went away
/// (CANCELLED).
struct Unanswered {
    record: Option<Record>,
    mutating: bool,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some(record) = self.record.take().filter(|_| self.mutating) {
            let outcome = if okta_client::budget::time_left() == Some(std::time::Duration::ZERO) {
                tonic::Code::DeadlineExceeded
            } else {
                tonic::Code::Cancelled
            };
            record.write(outcome, &[]);
        }
    }
}

/// The gRPC spec's name of a status code (`OK`, `PERMISSION_DENIED`), as operators know them.
fn code_name(code: tonic::Code) -> String {
    let mut name = String::new();
    for (index, letter) in format!("{code:?}").chars().enumerate() {
        if letter.is_ascii_uppercase() && index > 0 {
            name.push('_');
        }
        name.push(letter.to_ascii_uppercase());
    }
    name
}

#[cfg(test)]
mod tests {
    use super::code_name;

    #[test]
    fn outcomes_use_the_grpc_names() {
        assert_eq!(code_name(tonic::Code::Ok), "OK");
        assert_eq!(
            code_name(tonic::Code::PermissionDenied),
            "PERMISSION_DENIED"
        );
        assert_eq!(code_name(tonic::Code::Unauthenticated), "UNAUTHENTICATED");
    }
}
