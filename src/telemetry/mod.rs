//! Logs, OpenTelemetry traces and metrics. Logs go to stdout (JSON lines for collectors, or
//! readable lines for people) and carry the trace and span ids of the RPC they belong to. Traces
//! and metrics are exported over OTLP/gRPC by the `opentelemetry-otlp` exporters, each signal
//! when an endpoint is configured for it, and flushed on exit.
//!
//! The two spans made on every request (the RPC's server span in [`rpc`] and one client span
//! per Okta attempt) are made with the OpenTelemetry API, not from `tracing` spans: bridging
//! formats each field for the log layer and converts it again for OpenTelemetry, and with every
//! span exported that cost about half as much CPU again as the RPC itself.

mod export;
mod key_values;
pub mod rpc;
mod span_fields;

pub(crate) use export::problems as export_problems;
pub(crate) use key_values::parse as key_value_list;

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{KeyValue, global};
use opentelemetry_otlp::{MetricExporter, SpanExporter};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, Settings, TelemetrySettings};
use export::{Signal, SignalExport};

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
    let telemetry = &settings.telemetry;
    let resource = resource(telemetry);
    let tracer_provider = span_exporter(telemetry)?
        .map(|exporter| tracer_provider(exporter, telemetry, resource.clone()));
    let meter_provider = SignalExport::of(Signal::Metrics, telemetry)
        .map(|export| meter_provider(&export, telemetry, resource))
        .transpose()?;
    if let Some(provider) = &tracer_provider {
        global::set_tracer_provider(provider.clone());
        // The subscriber above installs only once per process, so this is the one tracer set.
        let _ = TRACER.set(provider.tracer(INSTRUMENTATION_NAME));
        okta_client::instrumentation::export_spans_with(provider.tracer(INSTRUMENTATION_NAME));
    }
    if let Some(provider) = &meter_provider {
        global::set_meter_provider(provider.clone());
    }
    Ok(TelemetryGuard {
        tracer_provider,
        meter_provider,
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

/// The span exporter `settings` describe, or `None` when traces are not exported. Call inside
/// the Tokio runtime. Public so tests can try an export over the configured connection.
pub fn span_exporter(settings: &TelemetrySettings) -> anyhow::Result<Option<SpanExporter>> {
    SignalExport::of(Signal::Traces, settings)
        .map(|export| {
            export
                .configure(SpanExporter::builder().with_tonic())?
                .build()
                .context("failed to build the OTLP span exporter")
        })
        .transpose()
}

fn tracer_provider(
    exporter: SpanExporter,
    settings: &TelemetrySettings,
    resource: Resource,
) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(sampler(
            &settings.traces_sampler,
            settings.traces_sampler_arg,
        ))
        .with_batch_exporter(exporter)
        .build()
}

fn meter_provider(
    export: &SignalExport<'_>,
    settings: &TelemetrySettings,
    resource: Resource,
) -> anyhow::Result<SdkMeterProvider> {
    let exporter = export
        .configure(MetricExporter::builder().with_tonic())?
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
