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
pub mod http;
mod key_values;
pub mod rpc;
mod span_fields;

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

use crate::config::{
    Checking, LogFormat, LogSettings, Section, Settings, TelemetrySettings, checked,
};
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

/// The trace samplers the gateway knows, by their `OTEL_TRACES_SAMPLER` names (see [`sampler`]).
const TRACE_SAMPLERS: &[&str] = &[
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
    "always_on",
    "always_off",
    "traceidratio",
];

impl Section for TelemetrySettings {
    type Valid = ();

    fn validate(&self, _checking: &Checking<'_>) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !TRACE_SAMPLERS.contains(&self.traces_sampler.as_str()) {
            problems.push(format!(
                "`telemetry.traces_sampler` must be one of {}, got `{}`",
                TRACE_SAMPLERS.join(", "),
                self.traces_sampler
            ));
        }
        if self
            .traces_sampler_arg
            .is_some_and(|ratio| !(0.0..=1.0).contains(&ratio))
        {
            problems.push("`telemetry.traces_sampler_arg` must be between 0 and 1".to_owned());
        }
        problems.extend(export::problems(self));
        if let Err(problem) = key_values::parse(&self.resource_attributes) {
            problems.push(format!("`telemetry.resource_attributes`: {problem}"));
        }
        if self.metrics_interval_ms == 0 {
            problems.push("`telemetry.metrics_interval_ms` must be greater than zero".to_owned());
        }
        checked(problems, ())
    }
}

impl Section for LogSettings {
    type Valid = ();

    fn validate(&self, _checking: &Checking<'_>) -> Result<(), Vec<String>> {
        log_filter(self).map(drop).map_err(|problem| vec![problem])
    }
}

/// The filter `log.filter` names, or the problem with it.
fn log_filter(settings: &LogSettings) -> Result<EnvFilter, String> {
    EnvFilter::try_new(&settings.filter)
        .map_err(|error| format!("`log.filter` is not a valid filter: {error}"))
}

/// Installs the global log subscriber, the W3C trace-context propagator and, when an OTLP
/// endpoint is configured, the trace and metric exporters. Call once, inside the runtime.
pub fn init_telemetry<W>(settings: &Settings, log_writer: W) -> anyhow::Result<TelemetryGuard>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    global::set_text_map_propagator(TraceContextPropagator::new());
    let log_filter = log_filter(&settings.log).map_err(anyhow::Error::msg)?;
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

/// The sampler named like `OTEL_TRACES_SAMPLER` (one of [`TRACE_SAMPLERS`], checked at start).
fn sampler(name: &str, ratio: Option<f64>) -> Sampler {
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

#[cfg(test)]
mod tests {
    use crate::config::testing::{assert_reported, load};

    #[test]
    fn the_shared_export_settings_are_checked_without_echoing_headers() {
        let good = load(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=header-canary"),
            ("IDGW_AUTH__INSECURE", "true"),
        ]);
        assert!(good.validate(true).is_ok());
        let bad = load(&[
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=header-canary%0A"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
        ]);
        let problems = assert_reported(
            &bad,
            &[
                "`telemetry.otlp_headers`: the value of `x-api-key`",
                "`telemetry.otlp_timeout_ms`",
            ],
        );
        assert!(!problems.contains("header-canary"), "{problems}");
        let odd = load(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "grpc://collector:4317"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "missing-ca.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "missing-key.pem"),
            ("OTEL_RESOURCE_ATTRIBUTES", "team=payments,region"),
        ]);
        assert_reported(
            &odd,
            &[
                "must be an http:// or https:// URL",
                "`telemetry.otlp_certificate_file` is for an https://",
                "`telemetry.otlp_certificate_file` (`missing-ca.pem`): cannot be read",
                "`telemetry.otlp_client_certificate_file` and `telemetry.otlp_client_key_file` go together",
                "`telemetry.resource_attributes`: entry 2 has no `=`",
            ],
        );
    }

    #[test]
    fn each_signals_own_export_settings_are_checked() {
        let good = load(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1500"),
            ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", ""),
            ("IDGW_AUTH__INSECURE", "true"),
        ]);
        assert!(good.validate(true).is_ok());
        let bad = load(&[
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "collector:4317"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "x-api-key=traces-canary%0A",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0"),
            ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "missing-ca.pem"),
            ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", "missing-key.pem"),
        ]);
        let problems = assert_reported(
            &bad,
            &[
                "`telemetry.metrics.endpoint` must be an http:// or https:// URL",
                "`telemetry.traces.headers`: the value of `x-api-key`",
                "`telemetry.traces.timeout_ms` must be greater than zero",
                "`telemetry.traces.certificate_file` is for an https:// collector endpoint",
                "`telemetry.metrics.client_certificate_file` and `telemetry.metrics.client_key_file` go together",
            ],
        );
        assert!(!problems.contains("traces-canary"), "{problems}");
    }

    #[test]
    fn the_sampler_and_the_log_filter_are_checked() {
        let settings = load(&[
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ("IDGW_LOG__FILTER", "identity_gateway=loud"),
        ]);
        assert_reported(
            &settings,
            &[
                "`telemetry.traces_sampler` must be one of parentbased_always_on,",
                "`telemetry.traces_sampler_arg` must be between 0 and 1",
                "`log.filter` is not a valid filter",
            ],
        );
    }
}
