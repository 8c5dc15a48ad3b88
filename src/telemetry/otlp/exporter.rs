//! Sends encoded span batches to an OTLP/gRPC collector (`TraceService/Export`), the way the
//! OTLP exporter specification asks: the configured headers on every request, one overall
//! timeout, and retries with exponential backoff (and the collector's `RetryInfo`) on the codes
//! the specification calls retryable. A partial success is logged, not retried.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut as _, Bytes};
use http::uri::PathAndQuery;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use rand::Rng as _;
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
/// The longest a collector's `RetryInfo` may hold the export thread.
const MAX_THROTTLE_DELAY: Duration = Duration::from_secs(5);

/// The span exporter of the tracer provider; see the module docs.
pub(crate) struct OtlpSpanExporter {
    channel: Channel,
    headers: MetadataMap,
    timeout: Duration,
    resource: Resource,
    stopped: AtomicBool,
}

/// Without the headers: they often hold the collector's credentials.
impl fmt::Debug for OtlpSpanExporter {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("OtlpSpanExporter")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl OtlpSpanExporter {
    /// An exporter to the collector at `endpoint` (`http://host:4317`), connecting on first
    /// use. Call inside the Tokio runtime: the channel's connection task runs there.
    pub(crate) fn new(
        endpoint: &str,
        headers: MetadataMap,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(endpoint.to_owned())?
            .timeout(timeout)
            .connect_lazy();
        Ok(Self {
            channel,
            headers,
            timeout,
            resource: Resource::builder_empty().build(),
            stopped: AtomicBool::new(false),
        })
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

impl SpanExporter for OtlpSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if self.stopped.load(Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let request = Bytes::from(encode::trace_request(&self.resource, &batch));
        let spans = batch.len();
        drop(batch);
        let started = Instant::now();
        let mut backoff = FIRST_RETRY_DELAY;
        let mut retries = 0;
        loop {
            let remaining = self.timeout.saturating_sub(started.elapsed());
            let status = match self.send(request.clone(), remaining).await {
                Ok(response) => {
                    response.log_partial_success(spans);
                    return Ok(());
                }
                Err(status) => status,
            };
            let failed = || {
                OTelSdkError::InternalFailure(format!(
                    "exporting {spans} spans to the OTLP collector failed after {retries} retries: gRPC {:?}",
                    status.code()
                ))
            };
            let Some(wait) = retry_delay(&status, backoff) else {
                return Err(failed());
            };
            let jitter = MAX_JITTER.mul_f64(rand::rng().random::<f64>());
            let wait = wait + jitter;
            if retries == MAX_RETRIES || started.elapsed() + wait >= self.timeout {
                return Err(failed());
            }
            sleep(wait).await;
            retries += 1;
            backoff = (backoff * 2).min(MAX_RETRY_DELAY);
        }
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        if self.stopped.swap(true, Ordering::Relaxed) {
            Err(OTelSdkError::AlreadyShutdown)
        } else {
            Ok(())
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.clone();
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

/// Waits on the runtime when there is one, else blocks the exporting thread (the batch span
/// processor exports on a thread of its own).
async fn sleep(duration: Duration) {
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::time::sleep(duration).await;
    } else {
        std::thread::sleep(duration);
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
    fn log_partial_success(&self, spans: usize) {
        if let Some(partial) = &self.partial_success {
            if partial.rejected_spans > 0 || !partial.error_message.is_empty() {
                tracing::warn!(
                    spans,
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
