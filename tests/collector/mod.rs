//! An in-process OTLP/gRPC collector (the `opentelemetry-proto` crate's services) that keeps
//! what it receives, for the telemetry tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding::Gzip;
use tonic::transport::{Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

/// What the collector received, and the `x-collector-key` and `grpc-encoding` of each export.
#[derive(Clone, Default)]
pub struct Collected {
    pub traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    pub metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    pub keys: Arc<Mutex<Vec<String>>>,
    /// How each export was compressed (`identity`: not at all).
    pub encodings: Arc<Mutex<Vec<String>>>,
    /// Trace exports still to refuse with UNAVAILABLE (a collector starting up).
    pub refusals: Arc<AtomicUsize>,
    pub trace_attempts: Arc<AtomicUsize>,
}

impl Collected {
    /// Serves the collector on a port of its own (TLS when `tls` is given) until the test ends.
    pub async fn serve(&self, tls: Option<ServerTlsConfig>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut server = Server::builder();
        if let Some(tls) = tls {
            server = server.tls_config(tls).unwrap();
        }
        let serving = server
            .add_service(TraceServiceServer::new(self.clone()).accept_compressed(Gzip))
            .add_service(MetricsServiceServer::new(self.clone()).accept_compressed(Gzip))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        tokio::spawn(serving);
        address
    }

    /// How many spans arrived, over every export.
    pub fn span_count(&self) -> usize {
        self.traces
            .lock()
            .unwrap()
            .iter()
            .flat_map(|export| &export.resource_spans)
            .flat_map(|resource| &resource.scope_spans)
            .map(|scope| scope.spans.len())
            .sum()
    }

    fn record_metadata<T>(&self, request: &Request<T>) {
        let text = |name: &str, absent: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or(absent)
                .to_owned()
        };
        self.keys
            .lock()
            .unwrap()
            .push(text("x-collector-key", "none"));
        self.encodings
            .lock()
            .unwrap()
            .push(text("grpc-encoding", "identity"));
    }
}

#[tonic::async_trait]
impl TraceService for Collected {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.trace_attempts.fetch_add(1, Ordering::SeqCst);
        self.record_metadata(&request);
        let refuse = self
            .refusals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if refuse {
            return Err(Status::unavailable("starting up"));
        }
        self.traces.lock().unwrap().push(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collected {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.record_metadata(&request);
        self.metrics.lock().unwrap().push(request.into_inner());
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}
