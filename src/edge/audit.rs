//! Audit records: one structured log line (target `audit`) for every mutating RPC, allowed or
//! refused, and for every refused read: the authenticated caller (identity, mechanism, peer
//! address), the method, the user and group ids it touched, the outcome and the Okta request
//! ids. No profile data beyond ids, never a secret. A change dropped before it is answered (the
//! deadline layer sits outside this one, and a caller may go away) is recorded as it ends.

use std::sync::Arc;

use super::{Answer, Inner, Next, Request, Step};
use crate::auth::{Authentication, escaped_for_log, peer_addr};
use crate::context::RequestContext;
use crate::methods;

/// Writes the audit record of each mutating RPC; see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Audit;

impl Step for Audit {
    fn handle<S: Inner>(&self, mut request: Request, next: Next<'_, S>) -> Answer<S::Error> {
        let path = request.uri().path().to_owned();
        let mutating = methods::of(&path).changes_okta();
        let authentication = match request.extensions().get::<Authentication>() {
            None | Some(Authentication::NotRequired) => return Box::pin(next.call(request)),
            Some(authentication) => authentication.clone(),
        };
        let peer = peer_addr(request.extensions());
        let cx = RequestContext::of_http(&mut request);
        cx.collect_targets();
        if mutating {
            cx.okta().collect_request_ids();
        }
        let record = Record {
            authentication,
            peer,
            path,
            cx,
        };
        let response = next.call(request);
        Box::pin(async move {
            // A change dropped before its answer is still recorded.
            let mut unanswered = Unanswered {
                record: Some(record),
                mutating,
            };
            let result = response.await;
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
                record.write(outcome);
            }
            result
        })
    }
}

/// What an audit record says about the call, known before it runs.
struct Record {
    /// Who called, named only when the record is written: most reads are not.
    authentication: Authentication,
    /// Formatted only when the record is written: most reads are not.
    peer: Option<std::net::SocketAddr>,
    path: String,
    /// Where the call notes its targets and the Okta client its request ids.
    cx: Arc<RequestContext>,
}

impl Record {
    /// Writes the record with the ids the call noted and the Okta request ids of its answers.
    fn write(&self, outcome: tonic::Code) {
        let targets = self.cx.take_targets().join(" ");
        let okta_request_ids = self.cx.okta().take_request_ids();
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
            let outcome = if record.cx.okta().time_left() == Some(std::time::Duration::ZERO) {
                tonic::Code::DeadlineExceeded
            } else {
                tonic::Code::Cancelled
            };
            record.write(outcome);
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
