//! Sends encoded span batches to an OTLP/gRPC collector (`TraceService/Export`), the way the
//! OTLP exporter specification asks: the configured headers on every request, one overall
//! timeout, and retries with exponential backoff (and the collector's `RetryInfo`) on the codes
//! the specification calls retryable. A partial success is logged, not retried.
//!
//! The batch span processor calls [`OtlpSpanExporter::export`] on its own thread and takes no
//! new batch until it returns, while finished spans wait in its bounded queue. Sending there
//! would leave the queue to fill for a whole collector round trip: measured at saturation, a
//! few spans in a thousand were dropped. So a batch is encoded there and sent by a task on the
//! runtime, up to [`CONCURRENT_EXPORTS`] at once; beyond that the processor waits (and its
//! queue bounds memory, as designed). Shutdown waits for the batches still being sent.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut as _, Bytes};
use http::uri::PathAndQuery;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use rand::Rng as _;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use super::encode;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// Backoff between attempts: doubling from the first delay up to the last, plus up to
/// [`MAX_JITTER`], for at most [`MAX_RETRIES`] retries and never past the export timeout.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_millis(1_600);
const MAX_JITTER: Duration = Duration::from_millis(100);
const MAX_RETRIES: u32 = 3;
/// The longest a collector's `RetryInfo` may delay a batch.
const MAX_THROTTLE_DELAY: Duration = Duration::from_secs(5);
/// Batches being sent at once.
const CONCURRENT_EXPORTS: usize = 4;

/// The span exporter of the tracer provider; see the module docs.
pub(crate) struct OtlpSpanExporter {
    sender: Arc<BatchSender>,
    resource: Resource,
    runtime: Handle,
    /// A permit per batch being sent.
    exports: Arc<Semaphore>,
    stopped: AtomicBool,
}

/// Without the sender's headers: they often hold the collector's credentials.
impl fmt::Debug for OtlpSpanExporter {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("OtlpSpanExporter")
            .field("timeout", &self.sender.timeout)
            .finish_non_exhaustive()
    }
}

impl OtlpSpanExporter {
    /// An exporter to the collector behind `channel`. Call inside the Tokio runtime: batches
    /// are sent by tasks on it.
    pub(crate) fn new(
        channel: Channel,
        headers: MetadataMap,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            sender: Arc::new(BatchSender {
                channel,
                headers,
                timeout,
            }),
            resource: Resource::builder_empty().build(),
            runtime: Handle::try_current()?,
            exports: Arc::new(Semaphore::new(CONCURRENT_EXPORTS)),
            stopped: AtomicBool::new(false),
        })
    }
}

impl SpanExporter for OtlpSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if self.stopped.load(Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let request = Bytes::from(encode::trace_request(&self.resource, &batch));
        let spans = batch.len();
        drop(batch);
        let permit = Arc::clone(&self.exports)
            .acquire_owned()
            .await
            .map_err(|_| OTelSdkError::AlreadyShutdown)?;
        let sender = Arc::clone(&self.sender);
        self.runtime.spawn(async move {
            if let Err(code) = sender.send_with_retries(request).await {
                tracing::warn!(
                    spans,
                    grpc_code = ?code,
                    "exporting spans to the OTLP collector failed; they are lost"
                );
            }
            drop(permit);
        });
        Ok(())
    }

    /// Waits, up to `timeout`, for the batches still being sent.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        if self.stopped.swap(true, Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let started = Instant::now();
        while self.exports.available_permits() < CONCURRENT_EXPORTS {
            if started.elapsed() >= timeout {
                return Err(OTelSdkError::Timeout(timeout));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.clone();
    }
}

/// Where batches go, and how.
struct BatchSender {
    channel: Channel,
    headers: MetadataMap,
    timeout: Duration,
}

impl BatchSender {
    /// Sends one encoded batch, retrying as the module docs say; the last gRPC code when it
    /// could not be delivered.
    async fn send_with_retries(&self, request: Bytes) -> Result<(), Code> {
        let started = Instant::now();
        let mut backoff = FIRST_RETRY_DELAY;
        let mut retries = 0;
        loop {
            let remaining = self.timeout.saturating_sub(started.elapsed());
            let status = match self.send(request.clone(), remaining).await {
                Ok(response) => {
                    response.log_partial_success();
                    return Ok(());
                }
                Err(status) => status,
            };
            let Some(wait) = retry_delay(&status, backoff) else {
                return Err(status.code());
            };
            let wait = wait + MAX_JITTER.mul_f64(rand::rng().random::<f64>());
            if retries == MAX_RETRIES || started.elapsed() + wait >= self.timeout {
                return Err(status.code());
            }
            tokio::time::sleep(wait).await;
            retries += 1;
            backoff = (backoff * 2).min(MAX_RETRY_DELAY);
        }
    }

    async fn send(&self, request: Bytes, timeout: Duration) -> Result<ExportResponse, Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|error| Status::unavailable(format!("collector unreachable: {error}")))?;
        let mut request = tonic::Request::new(request);
        *request.metadata_mut() = self.headers.clone();
        request.set_timeout(timeout);
        grpc.unary(request, PathAndQuery::from_static(EXPORT_PATH), RawCodec)
            .await
            .map(tonic::Response::into_inner)
    }
}

/// How long to wait before sending a failed export again, or `None` when it must not be:
/// the OTLP specification's retryable codes, `RESOURCE_EXHAUSTED` only when the collector says
/// when (`RetryInfo`), and the collector's delay when it gives one (capped).
fn retry_delay(status: &Status, backoff: Duration) -> Option<Duration> {
    let asked = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .map(|delay| delay.min(MAX_THROTTLE_DELAY));
    match status.code() {
        Code::ResourceExhausted => asked.map(|delay| delay.max(backoff)),
        Code::Unavailable
        | Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss => Some(asked.map_or(backoff, |delay| delay.max(backoff))),
        _ => None,
    }
}

/// `ExportTraceServiceResponse`.
#[derive(Clone, PartialEq, prost::Message)]
struct ExportResponse {
    #[prost(message, optional, tag = "1")]
    partial_success: Option<PartialSuccess>,
}

/// `ExportTracePartialSuccess`.
#[derive(Clone, PartialEq, prost::Message)]
struct PartialSuccess {
    #[prost(int64, tag = "1")]
    rejected_spans: i64,
    #[prost(string, tag = "2")]
    error_message: String,
}

impl ExportResponse {
    fn log_partial_success(&self) {
        if let Some(partial) = &self.partial_success {
            if partial.rejected_spans > 0 || !partial.error_message.is_empty() {
                tracing::warn!(
                    rejected_spans = partial.rejected_spans,
                    collector_message = %partial.error_message,
                    "the OTLP collector rejected some spans"
                );
            }
        }
    }
}

/// Sends a request that is already encoded and decodes the response.
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportResponse;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        Self
    }

    fn decoder(&mut self) -> Self::Decoder {
        Self
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, destination: &mut EncodeBuf<'_>) -> Result<(), Status> {
        destination.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = ExportResponse;
    type Error = Status;

    fn decode(&mut self, source: &mut DecodeBuf<'_>) -> Result<Option<ExportResponse>, Status> {
        prost::Message::decode(source)
            .map(Some)
            .map_err(|error| Status::internal(format!("undecodable export response: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use tokio::net::TcpListener;
    use tonic_types::{ErrorDetails, StatusExt as _};

    use super::*;

    /// A collector answering every export the same way (`None`: accepted), counting them.
    #[derive(Clone)]
    struct Collector {
        answer: fn() -> Option<Status>,
        attempts: Arc<AtomicUsize>,
    }

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            _request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, Status> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            match (self.answer)() {
                Some(status) => Err(status),
                None => Ok(tonic::Response::new(ExportTraceServiceResponse::default())),
            }
        }
    }

    /// How many times one batch reached a collector answering `answer`, within `timeout`.
    async fn attempts(answer: fn() -> Option<Status>, timeout: Duration) -> usize {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let collector = Collector {
            answer,
            attempts: Arc::default(),
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector.clone()))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        let channel = Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .timeout(timeout)
            .connect_lazy();
        let exporter = OtlpSpanExporter::new(channel, MetadataMap::new(), timeout).unwrap();
        exporter.export(Vec::new()).await.unwrap();
        tokio::task::spawn_blocking(move || {
            exporter.shutdown_with_timeout(Duration::from_secs(10))
        })
        .await
        .unwrap()
        .unwrap();
        collector.attempts.load(Ordering::SeqCst)
    }

    fn throttled() -> Option<Status> {
        Some(Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            ErrorDetails::with_retry_info(Some(Duration::from_millis(20))),
        ))
    }

    #[tokio::test]
    async fn retryable_refusals_are_sent_again_and_others_are_not() {
        let long = Duration::from_secs(10);
        assert_eq!(attempts(|| None, long).await, 1);
        assert_eq!(
            attempts(|| Some(Status::invalid_argument("bad")), long).await,
            1
        );
        assert_eq!(
            attempts(|| Some(Status::resource_exhausted("full")), long).await,
            1,
            "RESOURCE_EXHAUSTED without RetryInfo is final"
        );
        assert_eq!(attempts(throttled, long).await, 1 + MAX_RETRIES as usize);
        assert_eq!(
            attempts(|| Some(Status::unavailable("down")), long).await,
            1 + MAX_RETRIES as usize
        );
    }

    #[tokio::test]
    async fn retries_stop_at_the_export_timeout() {
        // The first backoff (100–200 ms) fits in 250 ms; the second (200–300 ms) would not.
        let unavailable = || Some(Status::unavailable("down"));
        assert_eq!(attempts(unavailable, Duration::from_millis(250)).await, 2);
    }
}
