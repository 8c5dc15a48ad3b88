//! The SCIM HTTP server: its listener (plaintext, or TLS with the gRPC server's certificate and
//! client-certificate rules), the routes under [`BASE_PATH`], and what every request must be.
//!
//! Connections are accepted here rather than by `axum::serve` so a mutual-TLS client's
//! verified certificate can reach the edge with each request, as tonic's does for gRPC.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use super::bookmarks::Bookmarks;
use super::error::ScimError;
use super::{BASE_PATH, InProcess, discovery, groups, users};
use crate::auth::PeerCertificates;
use crate::config::ScimSettings;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish their requests once the server drains.
const DRAIN_GRACE: Duration = Duration::from_secs(20);

/// What every SCIM handler shares.
#[derive(Clone)]
pub struct Scim {
    /// The gateway's services behind their edge.
    pub grpc: InProcess,
    /// The `scim` settings.
    pub settings: Arc<ScimSettings>,
    /// How long the gRPC calls of one SCIM request may take in all.
    pub request_timeout: Duration,
    /// Where lists walked lately have their Okta pages, for the next page of each.
    pub bookmarks: Bookmarks,
}

/// The connection a request came on: its peer and, over mutual TLS, its verified certificate.
#[derive(Clone, Debug)]
pub struct Connection {
    /// The client's address.
    pub peer: SocketAddr,
    /// `https` or `http`, for the resources' `meta.location`.
    pub scheme: &'static str,
}

/// A bound SCIM server, ready to run.
pub struct ScimServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: Router,
    tls: Option<TlsAcceptor>,
}

impl ScimServer {
    /// Binds `address` and builds the routes over `grpc`; with `tls`, connections must
    /// complete its handshake first.
    pub async fn bind(
        address: SocketAddr,
        settings: &ScimSettings,
        grpc: InProcess,
        request_timeout: Duration,
        tls: Option<TlsAcceptor>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(address).await.with_context(|| {
            format!(
                "failed to bind the SCIM listener on {address} (choose another with \
                     `scim.listen_addr`, or `--scim-listen` with --simulate)"
            )
        })?;
        let local_addr = listener.local_addr()?;
        let scim = Scim {
            grpc,
            settings: Arc::new(settings.clone()),
            request_timeout,
            bookmarks: Bookmarks::default(),
        };
        tracing::info!(%local_addr, tls = tls.is_some(), "scim server listening");
        Ok(Self {
            listener,
            local_addr,
            router: routes(scim, settings.max_body_bytes),
            tls,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `draining` turns true, then gives open connections [`DRAIN_GRACE`].
    pub async fn run_until(self, mut draining: tokio::sync::watch::Receiver<bool>) {
        let graceful = GracefulShutdown::new();
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let Ok((stream, peer)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let router = self.router.clone();
                    let tls = self.tls.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        serve_connection(stream, peer, tls, router, watcher).await;
                    });
                }
                changed = draining.wait_for(|draining| *draining) => {
                    let _ = changed;
                    break;
                }
            }
        }
        drop(self.listener);
        let _ = tokio::time::timeout(DRAIN_GRACE, graceful.shutdown()).await;
    }
}

/// Serves one connection, after its TLS handshake when there is one.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    router: Router,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    match tls {
        None => {
            let connection = Connection {
                peer,
                scheme: "http",
            };
            let service = per_connection(router, connection, None);
            let serving = builder.serve_connection(TokioIo::new(stream), service);
            let _ = watcher.watch(serving.into_owned()).await;
        }
        Some(acceptor) => {
            let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
            else {
                return;
            };
            let certificates =
                stream.get_ref().1.peer_certificates().map(|chain| {
                    Arc::new(chain.iter().map(|der| der.clone().into_owned()).collect())
                });
            let connection = Connection {
                peer,
                scheme: "https",
            };
            let service = per_connection(router, connection, certificates.map(PeerCertificates));
            let serving = builder.serve_connection(TokioIo::new(stream), service);
            let _ = watcher.watch(serving.into_owned()).await;
        }
    }
}

/// The router as hyper calls it for one connection: each request carries the connection.
fn per_connection(
    router: Router,
    connection: Connection,
    certificates: Option<PeerCertificates>,
) -> hyper_util::service::TowerToHyperService<
    impl tower::Service<
        http::Request<hyper::body::Incoming>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send,
    > + Clone,
> {
    let service = router.map_request(move |mut request: http::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(connection.clone());
        if let Some(certificates) = &certificates {
            request.extensions_mut().insert(certificates.clone());
        }
        request.map(axum::body::Body::new)
    });
    hyper_util::service::TowerToHyperService::new(service)
}

/// Every SCIM endpoint; anything else is a SCIM 404.
fn routes(scim: Scim, max_body_bytes: usize) -> Router {
    let api = Router::new()
        .route(
            "/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{name}", get(discovery::resource_type))
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema))
        .route("/Users", get(users::list).post(users::create))
        .route(
            "/Users/{id}",
            get(users::get)
                .put(users::replace)
                .patch(users::patch)
                .delete(users::delete),
        )
        .route("/Groups", get(groups::list).post(groups::not_managed))
        .route(
            "/Groups/{id}",
            get(groups::get)
                .patch(groups::patch)
                .put(groups::not_managed)
                .delete(groups::not_managed),
        )
        .route("/Bulk", axum::routing::any(bulk))
        .fallback(not_found)
        .with_state(scim);
    Router::new()
        .nest(BASE_PATH, api)
        .fallback(not_found)
        .layer(axum::middleware::from_fn(crate::telemetry::http::traced))
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
}

/// Bulk is not supported, as `ServiceProviderConfig` says.
async fn bulk() -> ScimError {
    ScimError::new(
        http::StatusCode::NOT_IMPLEMENTED,
        None,
        "bulk operations are not supported",
    )
}

async fn not_found(request: Request) -> ScimError {
    ScimError::not_found(format!(
        "no SCIM endpoint at `{} {}`",
        request.method(),
        request.uri().path()
    ))
}

/// What a handler knows of the request besides its body: who sent it (for the edge) and the
/// base URL of resources' `meta.location`.
pub struct Caller {
    /// The sender, as the in-process calls carry it.
    pub sender: super::in_process::Sender,
    /// `scheme://host/scim/v2`, from the request's `Host`.
    pub base_url: String,
}

impl axum::extract::FromRequestParts<Scim> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _scim: &Scim,
    ) -> Result<Self, Self::Rejection> {
        let connection = parts.extensions.get::<Connection>();
        let certificates = parts
            .extensions
            .get::<PeerCertificates>()
            .map(|certificates| certificates.0.clone());
        let sender = super::in_process::Sender::new(
            &parts.headers,
            connection.map(|connection| connection.peer),
            certificates,
        );
        let scheme = connection.map_or("http", |connection| connection.scheme);
        // A Host that is not a valid authority (or none, in HTTP/2) falls back to the URI's.
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|host| host.to_str().ok())
            .and_then(|host| host.parse::<http::uri::Authority>().ok())
            .or_else(|| parts.uri.authority().cloned())
            .map_or_else(|| "localhost".to_owned(), |authority| authority.to_string());
        Ok(Self {
            sender,
            base_url: format!("{scheme}://{host}{BASE_PATH}"),
        })
    }
}
