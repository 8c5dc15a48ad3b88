//! The HTTP client Okta API requests go through: hyper-util's pooled client over rustls, with
//! nothing between the request and the connection but what Okta needs. reqwest, which this
//! replaced on the hot path, always wraps its client in a redirect layer that parses every
//! request's URL twice more (about 15,000 of the 43,000 instructions it took per request),
//! although redirects are never followed here.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use crate::error::OktaError;

/// How a request's body is held: whole, since Okta's bodies are small JSON documents.
pub(crate) type RequestBody = Full<Bytes>;

/// One connection pool for every Okta request of the process; cheap to clone.
#[derive(Clone)]
pub(crate) struct Transport {
    client: Client<TimeoutConnector<HttpsConnector<HttpConnector>>, RequestBody>,
    /// Bound on one attempt, from sending to the answer's last body byte.
    request_timeout: Duration,
    /// The `User-Agent` of every request.
    pub(crate) user_agent: HeaderValue,
}

impl Transport {
    /// Builds the pool: TCP without Nagle's delay, TLS verified against the platform's roots
    /// (as reqwest did), HTTP/2 when the server offers it by ALPN and HTTP/1.1 otherwise, and
    /// `connect_timeout` bounding the TCP connection and the TLS handshake together.
    pub(crate) fn new(
        connect_timeout: Duration,
        request_timeout: Duration,
        user_agent: HeaderValue,
    ) -> Result<Self, OktaError> {
        // A provider the process installed wins, as in reqwest; otherwise aws-lc-rs.
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
            .map_err(|error| OktaError::Connect(Box::new(error)))?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| OktaError::Connect(Box::new(error)))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(tcp);
        let mut connector = TimeoutConnector::new(https);
        connector.set_connect_timeout(Some(connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(Self {
            client,
            request_timeout,
            user_agent,
        })
    }

    /// When an attempt starting now must have read its whole answer.
    pub(crate) fn deadline(&self) -> Instant {
        Instant::now() + self.request_timeout
    }

    /// Sends `request` and waits for the answer's head until `deadline`. Redirects are answers
    /// like any other: following one would carry the credentials wherever it points.
    pub(crate) async fn send(
        &self,
        request: Request<RequestBody>,
        deadline: Instant,
    ) -> Result<Response<Incoming>, OktaError> {
        match tokio::time::timeout_at(deadline, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(classify(error)),
            Err(elapsed) => Err(OktaError::Timeout(Box::new(elapsed))),
        }
    }

    /// Reads the answer's body until `deadline`.
    pub(crate) async fn read_body(body: Incoming, deadline: Instant) -> Result<Bytes, OktaError> {
        match tokio::time::timeout_at(deadline, body.collect()).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(error)) => Err(classify(error)),
            Err(elapsed) => Err(OktaError::Timeout(Box::new(elapsed))),
        }
    }
}

/// A failure on the wire: no connection made (the request was not sent), a timeout anywhere
/// in its chain, or else a connection that failed with the request on it. hyper's errors name
/// no URL.
fn classify(error: impl Error + Send + Sync + 'static) -> OktaError {
    let as_dyn: &(dyn Error + 'static) = &error;
    if as_dyn
        .downcast_ref::<hyper_util::client::legacy::Error>()
        .is_some_and(hyper_util::client::legacy::Error::is_connect)
    {
        return OktaError::NotConnected(Box::new(error));
    }
    let mut source_opt: Option<&(dyn Error + 'static)> = Some(&error);
    while let Some(source) = source_opt {
        if source
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return OktaError::Timeout(Box::new(error));
        }
        source_opt = source.source();
    }
    OktaError::Connect(Box::new(error))
}

/// Whether `error` is a TLS handshake that refused Okta's certificate (no trusted root signs
/// it, it names another host, it expired): a new connection would meet the same certificate,
/// so the request is not sent again.
pub(crate) fn certificate_refused(error: &OktaError) -> bool {
    match error {
        OktaError::NotConnected(source) => holds_certificate_refusal(source.as_ref()),
        _ => false,
    }
}

/// Whether rustls's refusal of a certificate is somewhere in `error`'s chain. The connector
/// layers wrap errors in `io::Error`s, whose `source` skips the error they hold, so each held
/// error is looked into as well.
fn holds_certificate_refusal(error: &(dyn Error + 'static)) -> bool {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return matches!(tls, rustls::Error::InvalidCertificate(_));
    }
    let held = error
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref);
    if held.is_some_and(|held| holds_certificate_refusal(held)) {
        return true;
    }
    error.source().is_some_and(holds_certificate_refusal)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client error wrapping the connector's, as hyper-util reports a failed connection.
    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("client error (Connect)")
        }
    }

    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[tokio::test]
    async fn a_connection_never_made_is_not_connected_and_sent_nothing() {
        // A port bound and closed again: nothing listens there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let transport = Transport::new(
            Duration::from_secs(2),
            Duration::from_secs(2),
            HeaderValue::from_static("test"),
        )
        .unwrap();
        let request = Request::get(format!("http://{address}/api/v1/users"))
            .body(RequestBody::default())
            .unwrap();
        let error = transport
            .send(request, transport.deadline())
            .await
            .unwrap_err();
        assert!(matches!(error, OktaError::NotConnected(_)), "{error:?}");
        assert!(!error.may_have_reached_okta());
    }

    #[test]
    fn a_refused_certificate_is_found_however_deep_the_connector_wrapped_it() {
        let refusal = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let wrapped = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            refusal,
        ));
        assert!(certificate_refused(&OktaError::NotConnected(Box::new(
            Wrapped(wrapped)
        ))));
        let refused = Wrapped(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(!certificate_refused(&OktaError::NotConnected(Box::new(
            refused
        ))));
        let other_tls = std::io::Error::other(rustls::Error::DecryptError);
        assert!(!certificate_refused(&OktaError::NotConnected(Box::new(
            other_tls
        ))));
    }

    #[test]
    fn a_timed_out_connection_is_a_timeout_and_a_refused_one_a_connect_error() {
        let timed_out = Wrapped(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(matches!(classify(timed_out), OktaError::Timeout(_)));
        let refused = Wrapped(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(classify(refused), OktaError::Connect(_)));
    }
}
