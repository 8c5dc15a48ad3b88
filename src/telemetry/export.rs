//! Where each signal is exported and how. A signal's own settings (`telemetry.traces.*` from
//! `OTEL_EXPORTER_OTLP_TRACES_*`, `telemetry.metrics.*` from `OTEL_EXPORTER_OTLP_METRICS_*`)
//! are laid over the shared `telemetry.otlp_*` ones, checked at start, and handed to the
//! `opentelemetry-otlp` exporter builders, which do the sending: the connection, TLS, headers,
//! compression, timeout and the specification's retries.
//!
//! The gateway reads these variables itself (in [`crate::config`]) rather than leaving them
//! to the exporter crate, which reads the process environment directly: so they also work from
//! the settings file and the `IDGW_TELEMETRY__*` names, a bad value stops the start with the
//! setting's name instead of being skipped with a warning, and the shared endpoint, set by the
//! gateway, does not hide a signal's own. The crate still merges the `*_HEADERS` variables it
//! finds into the metadata, the same values the settings hold.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry_otlp::{Compression, WithExportConfig, WithTonicConfig};
use secrecy::{ExposeSecret as _, SecretString};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};
use url::Url;

use crate::config::{OtlpCompression, OtlpSignalSettings, TelemetrySettings};

/// The two signals the gateway exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Spans.
    Traces,
    /// Metrics.
    Metrics,
}

const SIGNALS: [Signal; 2] = [Signal::Traces, Signal::Metrics];

impl Signal {
    fn own(self, settings: &TelemetrySettings) -> &OtlpSignalSettings {
        match self {
            Self::Traces => &settings.traces,
            Self::Metrics => &settings.metrics,
        }
    }
}

/// One group of export settings, the shared `otlp_*` ones or a signal's own, with the prefix
/// of their names under `telemetry.` (`otlp_endpoint`, `traces.endpoint`).
struct Group<'a> {
    prefix: &'static str,
    endpoint: Option<&'a str>,
    certificate_file: Option<&'a Path>,
    client_certificate_file: Option<&'a Path>,
    client_key_file: Option<&'a Path>,
    headers: Option<&'a SecretString>,
    timeout_ms: Option<u64>,
}

impl<'a> Group<'a> {
    fn shared(settings: &'a TelemetrySettings) -> Self {
        Self {
            prefix: "otlp_",
            endpoint: settings.otlp_endpoint.as_deref(),
            certificate_file: settings.otlp_certificate_file.as_deref(),
            client_certificate_file: settings.otlp_client_certificate_file.as_deref(),
            client_key_file: settings.otlp_client_key_file.as_deref(),
            headers: settings.otlp_headers.as_ref(),
            timeout_ms: Some(settings.otlp_timeout_ms),
        }
    }

    fn of(signal: Signal, settings: &'a TelemetrySettings) -> Self {
        let own = signal.own(settings);
        Self {
            prefix: match signal {
                Signal::Traces => "traces.",
                Signal::Metrics => "metrics.",
            },
            endpoint: own.endpoint.as_deref(),
            certificate_file: own.certificate_file.as_deref(),
            client_certificate_file: own.client_certificate_file.as_deref(),
            client_key_file: own.client_key_file.as_deref(),
            headers: own.headers.as_ref(),
            timeout_ms: own.timeout_ms,
        }
    }

    fn has_client_identity(&self) -> bool {
        self.client_certificate_file.is_some() || self.client_key_file.is_some()
    }
}

/// How one signal is exported, its own settings laid over the shared ones.
pub(crate) struct SignalExport<'a> {
    endpoint: &'a str,
    certificate_file: Option<&'a Path>,
    /// The client certificate and its key, taken together from one group.
    client_identity: Option<(&'a Path, &'a Path)>,
    headers: Option<&'a SecretString>,
    timeout: Duration,
    compression: OtlpCompression,
}

impl<'a> SignalExport<'a> {
    /// How `signal` is exported, or `None` when neither its own nor the shared endpoint is
    /// set: then it is not exported at all.
    pub(crate) fn of(signal: Signal, settings: &'a TelemetrySettings) -> Option<Self> {
        let (own, shared) = (Group::of(signal, settings), Group::shared(settings));
        let identity_group = if own.has_client_identity() {
            &own
        } else {
            &shared
        };
        Some(Self {
            endpoint: own.endpoint.or(shared.endpoint)?,
            certificate_file: own.certificate_file.or(shared.certificate_file),
            client_identity: identity_group
                .client_certificate_file
                .zip(identity_group.client_key_file),
            headers: own.headers.or(shared.headers),
            timeout: Duration::from_millis(own.timeout_ms.unwrap_or(settings.otlp_timeout_ms)),
            compression: signal
                .own(settings)
                .compression
                .unwrap_or(settings.otlp_compression),
        })
    }

    fn is_https(&self) -> bool {
        self.endpoint
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    }

    /// `builder` (a span or metric exporter's, with tonic) set up for this signal: plaintext
    /// for `http://`; for `https://` TLS trusting the certificate file or, without one, the
    /// system's roots, presenting the client certificate when there is one.
    pub(crate) fn configure<B>(&self, builder: B) -> anyhow::Result<B>
    where
        B: WithExportConfig + WithTonicConfig,
    {
        let headers = match self.headers {
            Some(headers) => metadata(headers.expose_secret())
                .map_err(|problem| anyhow::anyhow!("the OTLP headers: {problem}"))?,
            None => MetadataMap::new(),
        };
        let mut builder = builder
            .with_endpoint(self.endpoint)
            .with_timeout(self.timeout)
            .with_metadata(headers);
        if self.compression == OtlpCompression::Gzip {
            builder = builder.with_compression(Compression::Gzip);
        }
        if self.is_https() {
            let read = |path: &Path| {
                std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))
            };
            let mut tls = match self.certificate_file {
                Some(path) => {
                    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(path)?))
                }
                None => ClientTlsConfig::new().with_native_roots(),
            };
            if let Some((certificate, key)) = self.client_identity {
                tls = tls.identity(Identity::from_pem(read(certificate)?, read(key)?));
            }
            builder = builder.with_tls_config(tls);
        }
        Ok(builder)
    }
}

/// `OTEL_EXPORTER_OTLP_HEADERS` (a [`super::key_values`] list) as the gRPC metadata sent with
/// every export. An error names the bad entry by its key only: values are often credentials.
fn metadata(text: &str) -> Result<MetadataMap, String> {
    let mut metadata = MetadataMap::new();
    for (key, value) in super::key_values::parse(text)? {
        let parsed_key = key
            .parse::<AsciiMetadataKey>()
            .ok()
            .filter(|_| !key.ends_with("-bin"))
            .ok_or_else(|| format!("`{key}` is not a valid header name"))?;
        let parsed_value = value
            .parse::<AsciiMetadataValue>()
            .map_err(|_| format!("the value of `{key}` is not a valid header value"))?;
        metadata.append(parsed_key, parsed_value);
    }
    Ok(metadata)
}

/// Every problem of the export settings, one line each, naming the setting; never a header's
/// value or a key file's contents.
pub(crate) fn problems(settings: &TelemetrySettings) -> Vec<String> {
    let mut problems = Vec::new();
    let https = |signal: &Signal| {
        SignalExport::of(*signal, settings).is_some_and(|export| export.is_https())
    };
    for (group, signal) in [
        (Group::shared(settings), None),
        (Group::of(Signal::Traces, settings), Some(Signal::Traces)),
        (Group::of(Signal::Metrics, settings), Some(Signal::Metrics)),
    ] {
        let name = |field: &str| format!("`telemetry.{}{field}`", group.prefix);
        if let Some(endpoint) = group.endpoint {
            match Url::parse(endpoint).as_ref().map(Url::scheme) {
                Ok("http" | "https") => {}
                Ok(_) => problems.push(format!(
                    "{} must be an http:// or https:// URL, got `{endpoint}`",
                    name("endpoint")
                )),
                Err(_) => problems.push(format!("{} is not a URL: `{endpoint}`", name("endpoint"))),
            }
        }
        if let Some(Err(problem)) = group.headers.map(|text| metadata(text.expose_secret())) {
            problems.push(format!("{}: {problem}", name("headers")));
        }
        if group.timeout_ms == Some(0) {
            problems.push(format!("{} must be greater than zero", name("timeout_ms")));
        }
        if group.client_certificate_file.is_some() != group.client_key_file.is_some() {
            problems.push(format!(
                "{} and {} go together",
                name("client_certificate_file"),
                name("client_key_file")
            ));
        }
        // The signals a TLS file of this group serves: its own, or for a shared file those
        // that do not set their own.
        let serves_https = |overridden: fn(&Group<'_>) -> bool| match signal {
            Some(signal) => https(&signal),
            None => SIGNALS
                .iter()
                .filter(|other| !overridden(&Group::of(**other, settings)))
                .any(https),
        };
        let tls_files = [
            (
                "certificate_file",
                group.certificate_file,
                "CERTIFICATE",
                serves_https(|own| own.certificate_file.is_some()),
            ),
            (
                "client_certificate_file",
                group.client_certificate_file,
                "CERTIFICATE",
                serves_https(|own| own.has_client_identity()),
            ),
            (
                "client_key_file",
                group.client_key_file,
                "PRIVATE KEY",
                serves_https(|own| own.has_client_identity()),
            ),
        ];
        for (field, path, pem_label, for_https) in tls_files {
            let Some(path) = path else { continue };
            if !for_https {
                problems.push(format!(
                    "{} is for an https:// collector endpoint",
                    name(field)
                ));
            }
            // The key's text never goes into a message, only whether it looks like a key.
            match std::fs::read_to_string(path) {
                Ok(pem) if pem.contains("-----BEGIN") && pem.contains(pem_label) => {}
                Ok(_) => problems.push(format!(
                    "{} (`{}`) holds no PEM {}",
                    name(field),
                    path.display(),
                    pem_label.to_lowercase()
                )),
                Err(error) => problems.push(format!(
                    "{} (`{}`): cannot be read: {error}",
                    name(field),
                    path.display()
                )),
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn header_pairs_become_metadata_with_values_decoded() {
        let metadata = metadata(" x-api-key = se%20cret%2Cpart ,tenant=a=b,,").unwrap();
        assert_eq!(metadata.get("x-api-key").unwrap(), "se cret,part");
        assert_eq!(metadata.get("tenant").unwrap(), "a=b");
        assert_eq!(metadata.len(), 2);
        assert!(super::metadata("").unwrap().is_empty());
    }

    #[test]
    fn bad_headers_are_named_by_key_without_their_value() {
        for (text, expected) in [
            ("novalue", "entry 1 has no `=`"),
            ("a=1,bad key=s3cret", "`bad key` is not a valid header name"),
            ("k-bin=s3cret", "`k-bin` is not a valid header name"),
            (
                "k=s3cret%zz",
                "the value of `k` is not valid percent-encoded UTF-8",
            ),
            (
                "k=s3cret%0A",
                "the value of `k` is not a valid header value",
            ),
        ] {
            let error = metadata(text).unwrap_err();
            assert_eq!(error, expected, "{text}");
            assert!(!error.contains("s3cret"));
        }
    }

    #[test]
    fn a_signal_takes_each_of_its_own_settings_over_the_shared_one() {
        let mut settings = TelemetrySettings {
            otlp_endpoint: Some("https://shared:4317".to_owned()),
            otlp_certificate_file: Some(PathBuf::from("shared-ca.pem")),
            otlp_client_certificate_file: Some(PathBuf::from("shared.pem")),
            otlp_client_key_file: Some(PathBuf::from("shared-key.pem")),
            otlp_headers: Some("k=shared".to_owned().into()),
            otlp_compression: OtlpCompression::Gzip,
            ..TelemetrySettings::default()
        };
        settings.traces = OtlpSignalSettings {
            endpoint: Some("http://traces:4317".to_owned()),
            client_key_file: Some(PathBuf::from("traces-key.pem")),
            headers: Some("k=traces".to_owned().into()),
            timeout_ms: Some(500),
            compression: Some(OtlpCompression::None),
            ..OtlpSignalSettings::default()
        };
        let traces = SignalExport::of(Signal::Traces, &settings).unwrap();
        assert_eq!(traces.endpoint, "http://traces:4317");
        assert_eq!(traces.certificate_file, Some(Path::new("shared-ca.pem")));
        assert_eq!(
            traces.client_identity, None,
            "a signal's key without its certificate does not mix with the shared pair"
        );
        assert_eq!(traces.headers.unwrap().expose_secret(), "k=traces");
        assert_eq!(traces.timeout, Duration::from_millis(500));
        assert_eq!(traces.compression, OtlpCompression::None);
        let metrics = SignalExport::of(Signal::Metrics, &settings).unwrap();
        assert_eq!(metrics.endpoint, "https://shared:4317");
        assert_eq!(
            metrics.client_identity,
            Some((Path::new("shared.pem"), Path::new("shared-key.pem")))
        );
        assert_eq!(metrics.headers.unwrap().expose_secret(), "k=shared");
        assert_eq!(metrics.timeout, Duration::from_millis(10_000));
        assert_eq!(metrics.compression, OtlpCompression::Gzip);

        settings.otlp_endpoint = None;
        assert!(SignalExport::of(Signal::Traces, &settings).is_some());
        assert!(
            SignalExport::of(Signal::Metrics, &settings).is_none(),
            "without an endpoint of its own or a shared one, metrics are not exported"
        );
    }
}
