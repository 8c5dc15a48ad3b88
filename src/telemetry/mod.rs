//! Logs, OpenTelemetry traces and metrics. Logs go to stdout (JSON lines for collectors, or
//! readable lines for people) and carry the trace and span ids of the RPC they belong to. Traces
//! and metrics are exported over OTLP/gRPC when an endpoint is configured, and flushed on exit.
//!
//! The two spans made on every request (the RPC's server span in [`rpc`] and one client span
//! per Okta attempt) are made with the OpenTelemetry API, not from `tracing` spans: bridging
//! formats each field for the log layer and converts it again for OpenTelemetry, and with every
//! span exported that cost about half as much CPU again as the RPC itself.

mod ids;
mod key_values;
mod otlp;
pub mod rpc;
mod span_fields;

pub(crate) use ids::traceparent;
pub(crate) use key_values::parse as key_value_list;
pub(crate) use otlp::headers::parse as otlp_headers;

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{KeyValue, global};
use opentelemetry_otlp::{MetricExporter, WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use secrecy::ExposeSecret;
use tonic::metadata::MetadataMap;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, Settings, TelemetrySettings};

/// The instrumentation scope name of every span and metric the gateway makes.
pub const INSTRUMENTATION_NAME: &str = env!("CARGO_PKG_NAME");

/// The tracer of exported spans; unset while traces are not exported, which leaves requests
/// without spans at all rather than with spans that go nowhere.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// The tracer to start spans with, when traces are exported.
pub(crate) fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get()
}

/// Keeps the exporters alive; [`TelemetryGuard::shutdown`] flushes them.
#[must_use = "dropping the guard without shutdown loses the last spans and metrics"]
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

impl TelemetryGuard {
    /// Flushes and stops the exporters. Blocks: call it from a blocking context
    /// (`tokio::task::spawn_blocking`) when inside a runtime.
    pub fn shutdown(self) {
        if let Some(provider) = self.tracer_provider {
            if let Err(error) = provider.shutdown() {
                eprintln!("identity-gateway: flushing traces failed: {error}");
            }
        }
        if let Some(provider) = self.meter_provider {
            if let Err(error) = provider.shutdown() {
                eprintln!("identity-gateway: flushing metrics failed: {error}");
            }
        }
    }
}

/// Installs the global log subscriber, the W3C trace-context propagator and, when an OTLP
/// endpoint is configured, the trace and metric exporters. Call once, inside the runtime.
pub fn init_telemetry<W>(settings: &Settings, log_writer: W) -> anyhow::Result<TelemetryGuard>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    global::set_text_map_propagator(TraceContextPropagator::new());
    let log_filter = EnvFilter::try_new(&settings.log.filter)
        .map_err(|error| anyhow::anyhow!("`log.filter` is not a valid filter: {error}"))?;
    let log_layer = match settings.log.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(span_fields::JsonSpanFields)
            .with_writer(log_writer)
            .with_filter(log_filter)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(log_writer)
            .with_filter(log_filter)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(log_layer)
        .try_init()
        .context("failed to install the log subscriber")?;
    if settings.telemetry.otlp_endpoint.is_none() {
        return Ok(TelemetryGuard {
            tracer_provider: None,
            meter_provider: None,
        });
    }
    let resource = resource(&settings.telemetry);
    let export = Export::of(&settings.telemetry)?;
    let tracer_provider = tracer_provider(&export, &settings.telemetry, resource.clone())?;
    let meter_provider = meter_provider(&export, &settings.telemetry, resource)?;
    global::set_tracer_provider(tracer_provider.clone());
    global::set_meter_provider(meter_provider.clone());
    // The subscriber above installs only once per process, so this is the one tracer set.
    let _ = TRACER.set(tracer_provider.tracer(INSTRUMENTATION_NAME));
    Ok(TelemetryGuard {
        tracer_provider: Some(tracer_provider),
        meter_provider: Some(meter_provider),
    })
}

/// `service.name`, the version, and the extra attributes of `OTEL_RESOURCE_ATTRIBUTES`
/// (checked when the settings were validated).
fn resource(settings: &TelemetrySettings) -> Resource {
    let extra = key_values::parse(&settings.resource_attributes)
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| KeyValue::new(key, value));
    Resource::builder_empty()
        .with_service_name(settings.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .with_attributes(extra)
        .build()
}

/// The sampler named like `OTEL_TRACES_SAMPLER` (validated in the configuration).
pub fn sampler(name: &str, ratio: Option<f64>) -> Sampler {
    let ratio = ratio.unwrap_or(1.0);
    match name {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio),
        "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        "parentbased_traceidratio" => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
        }
        _ => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
    }
}

/// How both exporters reach the collector: one connection (made on first use), the headers
/// and the timeout.
struct Export {
    channel: Channel,
    headers: MetadataMap,
    timeout: Duration,
}

impl Export {
    fn of(settings: &TelemetrySettings) -> anyhow::Result<Self> {
        let headers = match &settings.otlp_headers {
            Some(headers) => otlp_headers(headers.expose_secret())
                .map_err(|problem| anyhow::anyhow!("`telemetry.otlp_headers`: {problem}"))?,
            None => MetadataMap::new(),
        };
        Ok(Self {
            channel: collector_channel(settings)?,
            headers,
            timeout: Duration::from_millis(settings.otlp_timeout_ms),
        })
    }
}

/// The connection to `settings.otlp_endpoint` that traces and metrics share, connecting on
/// first use: plaintext for `http://`, TLS for `https://` trusting `otlp_certificate_file` or,
/// without one, the system's roots, and presenting the client certificate when configured.
/// Call inside the Tokio runtime.
pub fn collector_channel(settings: &TelemetrySettings) -> anyhow::Result<Channel> {
    let endpoint = settings
        .otlp_endpoint
        .as_deref()
        .context("no `telemetry.otlp_endpoint`")?;
    let mut channel = Channel::from_shared(endpoint.to_owned())
        .context("`telemetry.otlp_endpoint` is not a valid URI")?
        .timeout(Duration::from_millis(settings.otlp_timeout_ms));
    let https = endpoint
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
    if https {
        let read = |path: &std::path::Path, setting: &str| {
            std::fs::read(path)
                .with_context(|| format!("cannot read `telemetry.{setting}` `{}`", path.display()))
        };
        let mut tls = match &settings.otlp_certificate_file {
            Some(path) => ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(read(path, "otlp_certificate_file")?)),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        if let (Some(certificate), Some(key)) = (
            &settings.otlp_client_certificate_file,
            &settings.otlp_client_key_file,
        ) {
            tls = tls.identity(Identity::from_pem(
                read(certificate, "otlp_client_certificate_file")?,
                read(key, "otlp_client_key_file")?,
            ));
        }
        channel = channel
            .tls_config(tls)
            .context("the TLS settings of `telemetry.otlp_endpoint`")?;
    }
    Ok(channel.connect_lazy())
}

fn tracer_provider(
    export: &Export,
    settings: &TelemetrySettings,
    resource: Resource,
) -> anyhow::Result<SdkTracerProvider> {
    let exporter = otlp::OtlpSpanExporter::new(
        export.channel.clone(),
        export.headers.clone(),
        export.timeout,
    )
    .context("failed to build the OTLP span exporter")?;
    Ok(SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(sampler(
            &settings.traces_sampler,
            settings.traces_sampler_arg,
        ))
        .with_batch_exporter(exporter)
        .build())
}

fn meter_provider(
    export: &Export,
    settings: &TelemetrySettings,
    resource: Resource,
) -> anyhow::Result<SdkMeterProvider> {
    let exporter = MetricExporter::builder()
        .with_tonic()
        .with_channel(export.channel.clone())
        .with_metadata(export.headers.clone())
        .with_timeout(export.timeout)
        .build()
        .context("failed to build the OTLP metric exporter")?;
    let reader = PeriodicReader::builder(exporter)
        .with_interval(Duration::from_millis(settings.metrics_interval_ms))
        .build();
    Ok(SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader)
        .build())
}
