//! The SCIM facade's way into the gateway: gRPC calls made in process through the same edge
//! as calls from the network (telemetry, deadline, shedding, authentication, audit,
//! authorization, idempotency, fairness), so a SCIM operation is authenticated, authorized,
//! audited and counted exactly as the RPCs it amounts to, by one policy.
//!
//! What the edge reads from a network call is carried over from the SCIM request: the
//! credentials (`Authorization: Bearer <API key or JWT>`, `x-api-key`), the client certificate
//! of a mutual-TLS connection, the peer's address and the W3C trace context.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use tonic::body::Body;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::transport::CertificateDer;
use tower::util::BoxCloneSyncService;

use crate::api::page_token::fingerprint;
use crate::auth::{API_KEY_HEADER, PeerCertificates};
use crate::proto::group_service_client::GroupServiceClient;
use crate::proto::user_service_client::UserServiceClient;

/// The gateway's gRPC services behind their edge, as one service of HTTP requests.
pub type GrpcStack = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

/// The headers of the W3C trace context, carried so the calls' spans join the caller's trace.
const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// The gateway's services, called in process; cheap to clone.
#[derive(Clone)]
pub struct InProcess {
    stack: GrpcStack,
}

impl InProcess {
    /// Calls `stack`: the services wrapped in the same edge the gRPC server serves them with.
    pub fn new<S>(stack: S) -> Self
    where
        S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Self {
            stack: BoxCloneSyncService::new(stack),
        }
    }

    /// A client of `identity.v1.UserService`.
    pub(super) fn users(&self) -> UserServiceClient<GrpcStack> {
        UserServiceClient::new(self.stack.clone())
    }

    /// A client of `identity.v1.GroupService`.
    pub(super) fn groups(&self) -> GroupServiceClient<GrpcStack> {
        GroupServiceClient::new(self.stack.clone())
    }
}

/// What the edge needs to know of the SCIM request's sender, attached to every call made for it.
#[derive(Clone, Default)]
pub struct Sender {
    metadata: Vec<(&'static str, HeaderValue)>,
    peer: Option<SocketAddr>,
    certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// Names the headers carried, never their values: they are API keys and JWTs.
impl std::fmt::Debug for Sender {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let carried: Vec<&str> = self.metadata.iter().map(|(name, _)| *name).collect();
        formatter
            .debug_struct("Sender")
            .field("carried", &carried)
            .field("peer", &self.peer)
            .field("certificate", &self.certificates.is_some())
            .finish()
    }
}

impl Sender {
    /// The sender of a request with `headers`, from `peer`, over a connection whose client
    /// presented `certificates`. A bearer token in JWS compact form is a JWT; any other bearer
    /// token is an API key (the edge then checks either, and refuses what does not verify).
    pub fn new(
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
        certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
    ) -> Self {
        let mut metadata = Vec::new();
        for value in headers.get_all(http::header::AUTHORIZATION) {
            match bearer_api_key(value) {
                Some(key) => metadata.push((API_KEY_HEADER, key)),
                None => metadata.push(("authorization", value.clone())),
            }
        }
        for value in headers.get_all(API_KEY_HEADER) {
            metadata.push((API_KEY_HEADER, value.clone()));
        }
        for name in TRACE_HEADERS {
            if let Some(value) = headers.get(name) {
                metadata.push((name, value.clone()));
            }
        }
        Self {
            metadata,
            peer,
            certificates,
        }
    }

    /// A fingerprint of the credentials this sender presents (its API key or JWT and its
    /// client certificate, not the trace context), to tell callers apart without keeping their
    /// secrets.
    pub fn credentials_fingerprint(&self) -> String {
        let presented = self
            .metadata
            .iter()
            .filter(|(name, _)| !TRACE_HEADERS.contains(name))
            .flat_map(|(name, value)| [name.as_bytes(), value.as_bytes()]);
        let certificate = self.certificates.iter().flat_map(|chain| chain.first());
        fingerprint(presented.chain(certificate.map(|der| der.as_ref())))
    }

    /// `message` as a call of this sender's, with `timeout` left of its deadline.
    pub fn call<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        let metadata: &mut MetadataMap = request.metadata_mut();
        for (name, value) in &self.metadata {
            if let Ok(value) = AsciiMetadataValue::try_from(value.as_bytes()) {
                metadata.append(*name, value);
            }
        }
        if let Some(peer) = self.peer {
            request
                .extensions_mut()
                .insert(tonic::transport::server::TcpConnectInfo {
                    local_addr: None,
                    remote_addr: Some(peer),
                });
        }
        if let Some(certificates) = &self.certificates {
            request
                .extensions_mut()
                .insert(PeerCertificates(certificates.clone()));
        }
        request
    }
}

/// The token of `Authorization: Bearer <token>` when it is not a JWS (three base64url parts
/// joined by dots): an API key, which gRPC callers send as `x-api-key`.
fn bearer_api_key(value: &HeaderValue) -> Option<HeaderValue> {
    let text = value.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    let parts: Vec<&str> = token.split('.').collect();
    let jws = parts.len() == 3
        && parts.iter().all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        });
    if jws {
        return None;
    }
    HeaderValue::from_str(token).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(headers: &[(&'static str, &str)]) -> Sender {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        Sender::new(&map, None, None)
    }

    #[test]
    fn debug_output_names_the_headers_carried_never_their_values() {
        let shown = format!(
            "{:?}",
            sender(&[
                ("authorization", "Bearer api-key-5d1c0a3e9b7f"),
                ("x-api-key", "other-key-0f2e4d6c"),
            ])
        );
        assert!(shown.contains("x-api-key"), "{shown}");
        assert!(!shown.contains("5d1c0a3e9b7f"), "{shown}");
        assert!(!shown.contains("0f2e4d6c"), "{shown}");
    }

    #[test]
    fn the_credentials_fingerprint_ignores_the_trace_context_and_tells_keys_apart() {
        let key_a = sender(&[("x-api-key", "key-a"), ("traceparent", "00-aa-01")]);
        let key_a_later = sender(&[("x-api-key", "key-a"), ("traceparent", "00-bb-01")]);
        let key_b = sender(&[("x-api-key", "key-b")]);
        assert_eq!(
            key_a.credentials_fingerprint(),
            key_a_later.credentials_fingerprint()
        );
        assert_ne!(
            key_a.credentials_fingerprint(),
            key_b.credentials_fingerprint()
        );
        assert_ne!(
            key_a.credentials_fingerprint(),
            sender(&[]).credentials_fingerprint()
        );
    }

    #[test]
    fn a_bearer_jws_stays_a_jwt_and_any_other_bearer_token_is_an_api_key() {
        let header = |text: &str| HeaderValue::from_str(text).unwrap();
        assert_eq!(
            bearer_api_key(&header("Bearer 0123456789abcdef0123456789abcdef")),
            Some(header("0123456789abcdef0123456789abcdef"))
        );
        assert_eq!(bearer_api_key(&header("Bearer eyJh.eyJz.c2ln")), None);
        assert_eq!(bearer_api_key(&header("Basic dXNlcjpwYXNz")), None);
        assert_eq!(
            bearer_api_key(&header("bearer a.b")),
            Some(header("a.b")),
            "two parts are no JWS"
        );
    }
}
