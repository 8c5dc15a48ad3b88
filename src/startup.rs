//! Builds the gRPC server once (bound listener, services, health, reflection) and runs it until
//! a shutdown future resolves, draining in-flight RPCs within a bound.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tonic::service::RoutesBuilder;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::ServiceBuilder;

use crate::api::discovery_cache::discovery_cache;
use crate::api::events::watch::{WatchHub, WatchSettings};
use crate::api::reads::CoalescedReads;
use crate::api::token_key::TokenKey;
use crate::api::{DevicesApi, EventsApi, GroupsApi, UsersApi};
use crate::auth::{Authenticator, server_tls_acceptor, server_tls_config};
use crate::authz::Authorizer;
use crate::config::{Checking, GrpcSettings, Section, Settings, checked};
use crate::coordination::Coordination;
use crate::coordination::invalidation::{Invalidation, Invalidations};
use crate::edge::audit::Audit;
use crate::edge::authenticate::Authenticate;
use crate::edge::authorize::Authorize;
use crate::edge::deadline::Deadline;
use crate::edge::fairness::Fairness;
use crate::edge::idempotency::Idempotency;
use crate::edge::shed::Shed;
use crate::edge::{EdgeLayer, request_size};
use crate::proto::device_service_server::DeviceServiceServer;
use crate::proto::event_service_server::EventServiceServer;
use crate::proto::group_service_server::GroupServiceServer;
use crate::proto::user_service_server::UserServiceServer;
use crate::scim::{InProcess, ScimServer};
use crate::telemetry::rpc::RpcTelemetry;
use okta_client::OktaClient;

/// The fully qualified names of the services the gateway reports in `grpc.health.v1`.
pub const HEALTH_CHECKED_SERVICES: &[&str] = &[
    "identity.v1.UserService",
    "identity.v1.GroupService",
    "identity.v1.DeviceService",
];

/// Smallest `grpc.max_request_bytes`: below it even an ordinary request would be refused.
const MIN_REQUEST_BYTES: usize = 1024;

impl Section for GrpcSettings {
    type Valid = ();

    fn validate(&self, _checking: &Checking<'_>) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.request_timeout_ms == 0 {
            problems.push("`grpc.request_timeout_ms` must be greater than zero".to_owned());
        }
        if self.max_in_flight_rpcs == 0 {
            problems.push("`grpc.max_in_flight_rpcs` must be greater than zero".to_owned());
        }
        if self.max_request_bytes < MIN_REQUEST_BYTES {
            problems.push(format!(
                "`grpc.max_request_bytes` must be at least {MIN_REQUEST_BYTES}"
            ));
        }
        if let Some(path) = &self.token_key_file {
            if let Err(problem) = TokenKey::from_file(path) {
                problems.push(format!(
                    "`grpc.token_key_file` (`{}`) {problem}",
                    path.display()
                ));
            }
        }
        if self
            .health_listen_addr
            .is_some_and(|health| health == self.listen_addr && health.port() != 0)
        {
            problems
                .push("`grpc.health_listen_addr` must differ from `grpc.listen_addr`".to_owned());
        }
        checked(problems, ())
    }
}

/// A bound, ready-to-run gateway server.
pub struct Application {
    local_addr: SocketAddr,
    health_addr: Option<SocketAddr>,
    scim_addr: Option<SocketAddr>,
    server: BoxFuture<'static, Result<(), tonic::transport::Error>>,
    drain_started: Arc<Notify>,
    shutdown_grace: Duration,
}

impl Application {
    /// Binds the listener (port 0 picks a free port) and assembles every service. The server
    /// starts draining when `shutdown` resolves: health turns NOT_SERVING, then after the drain
    /// delay the listener closes and in-flight RPCs get `shutdown_grace` to finish. Replicas
    /// share what they must through `coordination`'s server, the one `okta` spends its
    /// rate-limit budgets through.
    pub async fn build(
        all_settings: &Settings,
        okta: OktaClient,
        coordination: Option<Coordination>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<Self> {
        let settings = &all_settings.grpc;
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .with_context(|| {
                format!(
                    "failed to bind the gRPC listener on {}",
                    settings.listen_addr
                )
            })?;
        let local_addr = listener.local_addr()?;
        let health_listener = match settings.health_listen_addr {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("failed to bind the health listener on {address}"))?,
            ),
            None => None,
        };
        let health_addr = health_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        let tls = server_tls_config(&all_settings.auth)?;
        let authenticator = Arc::new(Authenticator::from_settings(&all_settings.auth).await?);
        let authorizer = Arc::new(Authorizer::start(
            &all_settings.authz,
            &all_settings.auth,
            okta.clone(),
        )?);
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        set_all_statuses(&health_reporter, ServingStatus::Serving).await;
        let reflection = |builder: tonic_reflection::server::Builder<'static>| {
            builder
                .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                // The google.rpc error details every error carries, so grpcurl can decode them.
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 =
            reflection(tonic_reflection::server::Builder::configure()).build_v1()?;
        let reflection_v1alpha =
            reflection(tonic_reflection::server::Builder::configure()).build_v1alpha()?;
        let max_bytes = settings.max_request_bytes;
        let cache_settings = &all_settings.cache;
        let cache_opt = cache_settings.group_discovery_ttl().map(|ttl| {
            tracing::info!(
                ttl_ms = cache_settings.group_discovery_ttl_ms,
                max_objects = cache_settings.group_discovery_max_objects,
                "group-discovery cache on"
            );
            discovery_cache(ttl, cache_settings.group_discovery_max_objects)
        });
        let invalidations = Invalidations::new(coordination.clone());
        let reads = CoalescedReads::new(cache_opt, invalidations.clone());
        let scopes = authorizer.scopes();
        let listening = reads.clone();
        invalidations.listen(move |invalidation| match invalidation {
            Invalidation::ScopeMembership {
                group_id,
                user_id,
                added,
            } => scopes.membership_changed(&group_id, &user_id, added),
            other => listening.forget(&other),
        });
        let token_key = TokenKey::from_settings(settings.token_key_file.as_deref())
            .map_err(|problem| anyhow::anyhow!("`grpc.token_key_file`: {problem}"))?;
        let users = UserServiceServer::new(UsersApi::new(
            okta.clone(),
            reads.clone(),
            token_key.clone(),
        ))
        .max_decoding_message_size(max_bytes);
        let (draining_sender, draining) = tokio::sync::watch::channel(false);
        let watch_settings = WatchSettings::from(&all_settings.events);
        let hub = WatchHub::new(
            okta.clone(),
            watch_settings,
            draining,
            token_key.clone(),
            coordination.clone(),
        );
        let events = EventServiceServer::new(EventsApi::new(okta.clone(), hub, token_key.clone()))
            .max_decoding_message_size(max_bytes);
        let devices = DeviceServiceServer::new(DevicesApi::new(okta.clone(), token_key.clone()))
            .max_decoding_message_size(max_bytes);
        let groups =
            GroupServiceServer::new(GroupsApi::new(okta, reads, authorizer.scopes(), token_key))
                .max_decoding_message_size(max_bytes);

        let scim_draining = draining_sender.subscribe();
        let drain_started = Arc::new(Notify::new());
        let stop_accepting = drain_then_stop(
            shutdown,
            health_reporter,
            settings.drain_delay(),
            drain_started.clone(),
            draining_sender,
        );
        // Kubernetes gRPC probes cannot speak TLS: a plaintext port of health alone for them.
        let health_only = health_listener.map(|listener| {
            Server::builder()
                .add_service(health_service.clone())
                .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
        });
        // The edge every call passes, built once: the gRPC server and the SCIM facade's
        // in-process calls share its state (callers' shares, the record of changes, shedding).
        let edge = ServiceBuilder::new()
            .layer(EdgeLayer::new(RpcTelemetry))
            // Directly inside telemetry, so the deadline bounds everything the gateway does for a
            // call, authentication (a JWKS refetch) included, and answers DEADLINE_EXCEEDED
            // before tonic's own `grpc-timeout` answers CANCELLED.
            .layer(EdgeLayer::new(Deadline::new(settings.request_timeout())))
            .layer(EdgeLayer::new(Shed::new(settings.max_in_flight_rpcs)))
            .layer(EdgeLayer::new(Authenticate::new(authenticator)))
            .layer(EdgeLayer::new(Audit))
            .layer(EdgeLayer::new(Authorize::new(authorizer.clone())))
            // Inside authorization, so only allowed changes are remembered, and outside
            // fairness, so a retry answered from the table spends no share of Okta.
            .layer(EdgeLayer::new(Idempotency::new(
                &all_settings.coordination,
                coordination.clone(),
                max_bytes,
            )))
            .layer(EdgeLayer::new(Fairness::new(
                all_settings.fairness.clone(),
                authorizer,
                coordination,
            )))
            .layer(request_size::layer(max_bytes));
        let mut routes = RoutesBuilder::default();
        routes
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(users)
            .add_service(groups)
            .add_service(events)
            .add_service(devices);
        let routes = routes.routes();
        let scim = match all_settings.scim.listen_addr {
            Some(address) => Some(
                ScimServer::bind(
                    address,
                    &all_settings.scim,
                    InProcess::new(edge.clone().service(routes.clone())),
                    settings.request_timeout(),
                    server_tls_acceptor(&all_settings.auth)?,
                )
                .await?,
            ),
            None => None,
        };
        let mut builder = Server::builder();
        if let Some(tls) = tls {
            builder = builder
                .tls_config(tls)
                .context("the TLS settings (`auth.tls.*`) are not usable")?;
        }
        let main_server = builder
            .layer(edge)
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                // TCP_NODELAY: small gRPC frames must not wait for delayed ACKs (Nagle); without it the
                // benchmark showed ~40 ms added at p99.
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                stop_accepting,
            );
        // The health port lives as long as the main server, reporting NOT_SERVING while it drains.
        let server: BoxFuture<'static, _> = match health_only {
            None => Box::pin(main_server),
            Some(health_server) => Box::pin(async move {
                tokio::select! {
                    result = main_server => result,
                    result = health_server => result,
                }
            }),
        };
        let scim_addr = scim.as_ref().map(ScimServer::local_addr);
        let server: BoxFuture<'static, _> = match scim {
            None => server,
            Some(scim) => Box::pin(async move {
                let scim = scim.run_until(scim_draining);
                let (grpc, ()) = tokio::join!(server, scim);
                grpc
            }),
        };
        Ok(Self {
            local_addr,
            health_addr,
            scim_addr,
            server,
            drain_started,
            shutdown_grace: settings.shutdown_grace(),
        })
    }

    /// The address actually bound (the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The plaintext health port actually bound, when `grpc.health_listen_addr` is set.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_addr
    }

    /// The SCIM server's address actually bound, when `scim.listen_addr` is set.
    pub fn scim_addr(&self) -> Option<SocketAddr> {
        self.scim_addr
    }

    /// Serves until shutdown, then waits at most the shutdown grace for in-flight RPCs.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let grace_expired = async {
            self.drain_started.notified().await;
            tokio::time::sleep(self.shutdown_grace).await;
        };
        tokio::select! {
            result = self.server => result.context("the gRPC server failed"),
            () = grace_expired => {
                tracing::warn!(grace_ms = self.shutdown_grace.as_millis() as u64,
                    "shutdown grace expired with RPCs still in flight; dropping them");
                Ok(())
            }
        }
    }
}

async fn set_all_statuses(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for service in HEALTH_CHECKED_SERVICES {
        reporter.set_service_status(*service, status).await;
    }
}

async fn drain_then_stop(
    shutdown: impl Future<Output = ()>,
    health_reporter: HealthReporter,
    drain_delay: Duration,
    drain_started: Arc<Notify>,
    draining: tokio::sync::watch::Sender<bool>,
) {
    shutdown.await;
    tracing::info!(
        drain_delay_ms = drain_delay.as_millis() as u64,
        "shutdown requested: health is NOT_SERVING, draining"
    );
    set_all_statuses(&health_reporter, ServingStatus::NotServing).await;
    tokio::time::sleep(drain_delay).await;
    // Watch streams never end by themselves: end them with OK so the drain can finish.
    let _ = draining.send(true);
    drain_started.notify_one();
    tracing::info!("listener closed; waiting for in-flight RPCs");
}

/// Resolves on SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{assert_reported, load};

    #[test]
    fn a_token_key_file_must_be_readable_and_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.key");
        std::fs::write(&short, "short-secret-canary").unwrap();
        for (path, needle) in [
            (short, "at least 32"),
            (dir.path().join("none"), "cannot be read"),
        ] {
            let settings = load(&[("IDGW_GRPC__TOKEN_KEY_FILE", path.to_str().unwrap())]);
            let problems = assert_reported(&settings, &["`grpc.token_key_file`", needle]);
            assert!(!problems.contains("canary"), "{problems}");
        }
    }

    #[test]
    fn the_health_port_and_the_smallest_request_bound_are_checked() {
        let settings = load(&[
            ("IDGW_GRPC__HEALTH_LISTEN_ADDR", "127.0.0.1:50051"),
            ("IDGW_GRPC__MAX_REQUEST_BYTES", "1023"),
        ]);
        assert_reported(
            &settings,
            &[
                "`grpc.health_listen_addr` must differ from `grpc.listen_addr`",
                "`grpc.max_request_bytes` must be at least 1024",
            ],
        );
        let any_ports = load(&[
            ("IDGW_GRPC__LISTEN_ADDR", "127.0.0.1:0"),
            ("IDGW_GRPC__HEALTH_LISTEN_ADDR", "127.0.0.1:0"),
            ("IDGW_AUTH__INSECURE", "true"),
        ]);
        assert!(any_ports.validate(true).is_ok());
    }
}
