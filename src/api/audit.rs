//! Audit records: one structured log line (target `audit`) for every mutating RPC, allowed or
//! refused, and for every refused read: the authenticated caller (identity, mechanism, peer
//! address), the method, the user and group ids it touched, the outcome and the Okta request
//! ids. No profile data beyond ids, never a secret.

use std::cell::RefCell;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Layer, Service};

use crate::auth::{Authentication, peer_addr};
use crate::methods;
use crate::okta::instrumentation::collecting_request_ids;

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
        let authentication = request.extensions().get::<Authentication>().cloned();
        if matches!(authentication, None | Some(Authentication::NotRequired)) {
            return Box::pin(self.inner.call(request));
        }
        let (caller, mechanism) = match authentication.as_ref().and_then(Authentication::caller) {
            Some(caller) => (caller.identity.to_string(), caller.mechanism.as_str()),
            None => ("unauthenticated".to_owned(), "none"),
        };
        let peer = peer_addr(request.extensions())
            .map_or_else(|| "unknown".to_owned(), |peer| peer.to_string());
        let response = self.inner.call(request);
        Box::pin(TARGETS.scope(RefCell::new(Vec::new()), async move {
            let (result, okta_request_ids) = if mutating {
                collecting_request_ids(response).await
            } else {
                (response.await, Vec::new())
            };
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
            if mutating || denied {
                let targets = TARGETS.with(|targets| targets.take()).join(" ");
                tracing::info!(
                    target: "audit",
                    caller = caller,
                    auth = mechanism,
                    peer = peer,
                    method = path.trim_start_matches('/'),
                    ids = targets,
                    outcome = code_name(outcome),
                    okta_request_ids = okta_request_ids.join(" "),
                    "audit"
                );
            }
            result
        }))
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
