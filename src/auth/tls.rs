//! TLS on the gRPC port (rustls through tonic, on aws-lc-rs) and mutual TLS: client
//! certificates verified against `auth.tls.client_ca_file`, whose identity names the caller.
//!
//! **Identity.** From the verified leaf certificate, the first that exists of: its URI SAN (a
//! SPIFFE id such as `spiffe://cluster.local/ns/payments/sa/billing`; a certificate with more
//! than one is refused, as SPIFFE allows exactly one), its first DNS SAN, and, only when
//! `auth.tls.identity_from_common_name` is set, the subject's common name. Name constraints do
//! not bind a common name, so it never names the caller of a chain carrying them (a presented
//! certificate with the extension, or a CA of `auth.tls.client_ca_file` with it that issued
//! one). The identity follows the rules of [`super::identity`].
//!
//! **Required or optional.** A client certificate is required in the TLS handshake when client
//! certificates are the only way to authenticate. When API keys or JWTs are configured too (or
//! the deployment is insecure), it is optional, so those callers can connect without one; a
//! certificate that is presented is still verified, and an untrusted one fails the handshake.
//!
//! **Probes.** Kubernetes gRPC probes do not speak TLS, so a TLS deployment sets
//! `grpc.health_listen_addr`: a plaintext port serving only `grpc.health.v1`, for the kubelet.
//!
//! Revocation lists are not consulted: issue short-lived client certificates (SPIFFE SVIDs,
//! cert-manager) instead.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::transport::{Certificate, CertificateDer, Identity, ServerTlsConfig};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

use super::identity::{Form, identity_of};
use crate::config::{AuthSettings, TlsSettings};

/// How long a TLS handshake may take: a connection that stalls it cannot hold resources longer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The PEM labels of the private keys tonic reads.
const PRIVATE_KEY_LABELS: &[&str] = &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"];

/// Every problem with `auth.tls`, by setting name (files are read and parsed).
pub fn settings_problems(settings: &TlsSettings) -> Vec<String> {
    let mut problems = Vec::new();
    match (&settings.cert_file, &settings.key_file) {
        (Some(_), None) | (None, Some(_)) => problems.push(
            "`auth.tls.cert_file` and `auth.tls.key_file` go together: set both or neither"
                .to_owned(),
        ),
        (None, None) if settings.client_ca_file.is_some() => problems.push(
            "`auth.tls.client_ca_file` needs `auth.tls.cert_file` and `auth.tls.key_file`: \
             client certificates are only asked for over TLS"
                .to_owned(),
        ),
        _ => {}
    }
    if settings.identity_from_common_name && settings.client_ca_file.is_none() {
        problems.push(
            "`auth.tls.identity_from_common_name` needs `auth.tls.client_ca_file`: only client \
             certificates have common names"
                .to_owned(),
        );
    }
    for (name, path_opt) in [
        ("auth.tls.cert_file", &settings.cert_file),
        ("auth.tls.client_ca_file", &settings.client_ca_file),
    ] {
        if let Some(path) = path_opt {
            if let Err(problem) = read_certificates(path) {
                problems.push(format!("`{name}` (`{}`): {problem}", path.display()));
            }
        }
    }
    if let Some(path) = &settings.key_file {
        if let Err(problem) = check_private_key(path) {
            problems.push(format!(
                "`auth.tls.key_file` (`{}`): {problem}",
                path.display()
            ));
        }
    }
    problems
}

/// Reads a PEM file of certificates: at least one, each a well-formed X.509 certificate.
fn read_certificates(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|error| format!("cannot be read ({error})"))?;
    let mut count = 0;
    for block in Pem::iter_from_buffer(&pem) {
        let block = block.map_err(|_| "is not valid PEM".to_owned())?;
        if block.label == "CERTIFICATE" {
            block
                .parse_x509()
                .map_err(|_| format!("certificate {} is not valid X.509", count + 1))?;
            count += 1;
        }
    }
    if count == 0 {
        return Err("holds no PEM `CERTIFICATE` block".to_owned());
    }
    Ok(pem)
}

fn check_private_key(path: &std::path::Path) -> Result<(), String> {
    let pem = std::fs::read(path).map_err(|error| format!("cannot be read ({error})"))?;
    let labels: Vec<String> = Pem::iter_from_buffer(&pem)
        .map(|block| block.map(|block| block.label))
        .collect::<Result<_, _>>()
        .map_err(|_| "is not valid PEM".to_owned())?;
    if labels
        .iter()
        .any(|label| PRIVATE_KEY_LABELS.contains(&label.as_str()))
    {
        Ok(())
    } else if labels.iter().any(|label| label == "ENCRYPTED PRIVATE KEY") {
        Err("the key is encrypted: mount it unencrypted (`openssl pkcs8 -nocrypt`)".to_owned())
    } else {
        Err("holds no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)".to_owned())
    }
}

/// Whether the handshake must carry a client certificate; see the module docs.
fn client_certificate_required(settings: &AuthSettings) -> bool {
    !(settings.insecure || settings.api_keys_file.is_some() || settings.jwt.is_configured())
}

/// tonic's server TLS configuration for `settings`, or `None` to serve plaintext.
pub fn server_tls_config(settings: &AuthSettings) -> anyhow::Result<Option<ServerTlsConfig>> {
    let tls = &settings.tls;
    let (Some(cert_file), Some(key_file)) = (&tls.cert_file, &tls.key_file) else {
        return Ok(None);
    };
    let certificate = read_certificates(cert_file).map_err(|problem| {
        anyhow::anyhow!(
            "`auth.tls.cert_file` (`{}`): {problem}",
            cert_file.display()
        )
    })?;
    let key = std::fs::read(key_file).with_context(|| {
        format!(
            "`auth.tls.key_file` (`{}`) cannot be read",
            key_file.display()
        )
    })?;
    let mut config = ServerTlsConfig::new()
        .identity(Identity::from_pem(certificate, key))
        .timeout(HANDSHAKE_TIMEOUT);
    if let Some(ca_file) = &tls.client_ca_file {
        let bundle = read_certificates(ca_file).map_err(|problem| {
            anyhow::anyhow!(
                "`auth.tls.client_ca_file` (`{}`): {problem}",
                ca_file.display()
            )
        })?;
        let required = client_certificate_required(settings);
        tracing::info!(
            client_certificate = if required { "required" } else { "optional" },
            "mutual tls: client certificates are verified against `auth.tls.client_ca_file`"
        );
        config = config
            .client_ca_root(Certificate::from_pem(bundle))
            .client_auth_optional(!required);
    }
    Ok(Some(config))
}

/// The same TLS as [`server_tls_config`] (certificate, client CA, whether a client certificate
/// is required), for a server the gateway accepts connections for itself: the SCIM server.
pub fn server_tls_acceptor(
    settings: &AuthSettings,
) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::PrivateKeyDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;

    let tls = &settings.tls;
    let (Some(cert_file), Some(key_file)) = (&tls.cert_file, &tls.key_file) else {
        return Ok(None);
    };
    let chain = CertificateDer::pem_file_iter(cert_file)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(|| format!("`auth.tls.cert_file` (`{}`)", cert_file.display()))?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .with_context(|| format!("`auth.tls.key_file` (`{}`)", key_file.display()))?;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("the TLS settings (`auth.tls.*`) are not usable")?;
    let builder = match &tls.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in CertificateDer::pem_file_iter(ca_file)
                .with_context(|| format!("`auth.tls.client_ca_file` (`{}`)", ca_file.display()))?
            {
                roots
                    .add(certificate.with_context(|| {
                        format!("`auth.tls.client_ca_file` (`{}`)", ca_file.display())
                    })?)
                    .context("`auth.tls.client_ca_file` holds an unusable CA")?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                std::sync::Arc::new(roots),
                provider,
            );
            let verifier = if client_certificate_required(settings) {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .context("`auth.tls.client_ca_file` is not usable")?,
            )
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .context("`auth.tls.cert_file` and `auth.tls.key_file` do not make a usable identity")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(
        config,
    ))))
}

/// The client certificate chain verified in the handshake of a connection the gateway accepted
/// itself (the SCIM server's), where tonic's `TlsConnectInfo` is not available.
#[derive(Clone, Debug)]
pub struct PeerCertificates(pub std::sync::Arc<Vec<CertificateDer<'static>>>);

/// The verified client certificate chain of the request's connection, if it presented one.
pub(super) fn client_certificates(
    extensions: &http::Extensions,
) -> Option<std::sync::Arc<Vec<CertificateDer<'static>>>> {
    extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(TlsConnectInfo::peer_certs)
        .or_else(|| {
            extensions
                .get::<PeerCertificates>()
                .map(|certificates| certificates.0.clone())
        })
        .filter(|certificates| !certificates.is_empty())
}

/// Names callers by their verified client certificates; see the module docs.
#[derive(Debug, Default)]
pub(super) struct CertificateNames {
    from_common_name: bool,
    /// The subjects (DER) of the CAs of `auth.tls.client_ca_file` carrying name constraints.
    constrained_issuers: Vec<Vec<u8>>,
}

impl CertificateNames {
    /// Reads `auth.tls.client_ca_file` for CAs with name constraints, when common names may
    /// name callers.
    pub(super) fn from_settings(settings: &TlsSettings) -> anyhow::Result<Self> {
        let mut constrained_issuers = Vec::new();
        if let (true, Some(path)) = (settings.identity_from_common_name, &settings.client_ca_file) {
            let pem = read_certificates(path).map_err(|problem| {
                anyhow::anyhow!(
                    "`auth.tls.client_ca_file` (`{}`): {problem}",
                    path.display()
                )
            })?;
            for block in Pem::iter_from_buffer(&pem).flatten() {
                if let Ok(certificate) = block.parse_x509() {
                    if carries_name_constraints(&certificate) {
                        constrained_issuers.push(certificate.subject().as_raw().to_vec());
                    }
                }
            }
        }
        Ok(Self {
            from_common_name: settings.identity_from_common_name,
            constrained_issuers,
        })
    }

    /// The caller identity a verified chain (leaf first) names, or why it names none.
    pub(super) fn identity(
        &self,
        chain: &[CertificateDer<'static>],
    ) -> Result<std::sync::Arc<str>, &'static str> {
        const UNREADABLE: &str = "the client certificate cannot be read";
        let leaf = chain.first().ok_or(UNREADABLE)?;
        let (_, certificate) = x509_parser::parse_x509_certificate(leaf).map_err(|_| UNREADABLE)?;
        let alternative_names = certificate
            .subject_alternative_name()
            .map_err(|_| UNREADABLE)?;
        let names: &[GeneralName<'_>] = alternative_names
            .as_ref()
            .map_or(&[], |extension| extension.value.general_names.as_slice());
        let mut uris = names.iter().filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        });
        if let Some(uri) = uris.next() {
            if uris.next().is_some() {
                return Err("the client certificate has more than one URI SAN (SPIFFE allows one)");
            }
            return identity_of(uri, Form::Spiffe)
                .ok_or("the client certificate's URI SAN is not a usable identity");
        }
        let dns = names.iter().find_map(|name| match name {
            GeneralName::DNSName(dns) => Some(*dns),
            _ => None,
        });
        if let Some(dns) = dns {
            return identity_of(dns, Form::Plain)
                .ok_or("the client certificate's DNS SAN is not a usable identity");
        }
        if !self.from_common_name {
            return Err(
                "the client certificate has no URI or DNS SAN (common names name no \
                 caller unless `auth.tls.identity_from_common_name` is set)",
            );
        }
        if self.carries_name_constraints(chain) {
            return Err(
                "the client certificate has no URI or DNS SAN, and its chain carries \
                 name constraints, which do not bind a common name",
            );
        }
        certificate
            .subject()
            .iter_common_name()
            .next()
            .and_then(|attribute| attribute.as_str().ok())
            .and_then(|common_name| identity_of(common_name, Form::Plain))
            .ok_or("the client certificate's common name is missing or not a usable identity")
    }

    /// Whether a certificate of the chain, or a configured CA that issued one, carries name
    /// constraints; an unreadable certificate counts as carrying them.
    fn carries_name_constraints(&self, chain: &[CertificateDer<'static>]) -> bool {
        chain
            .iter()
            .any(|der| match x509_parser::parse_x509_certificate(der) {
                Ok((_, certificate)) => {
                    carries_name_constraints(&certificate)
                        || self
                            .constrained_issuers
                            .iter()
                            .any(|subject| subject.as_slice() == certificate.issuer().as_raw())
                }
                Err(_) => true,
            })
    }
}

fn carries_name_constraints(certificate: &x509_parser::certificate::X509Certificate<'_>) -> bool {
    !matches!(certificate.name_constraints(), Ok(None))
}

/// The caller's address, over plaintext or TLS.
pub fn peer_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<TcpConnectInfo>()
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .map(TlsConnectInfo::get_ref)
        })
        .and_then(TcpConnectInfo::remote_addr)
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

    use super::*;

    fn certificate_der(common_name: Option<&str>, names: Vec<SanType>) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        if let Some(common_name) = common_name {
            params
                .distinguished_name
                .push(DnType::CommonName, common_name);
        }
        params.subject_alt_names = names;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn uri(text: &str) -> SanType {
        SanType::URI(text.try_into().unwrap())
    }

    fn dns(text: &str) -> SanType {
        SanType::DnsName(text.try_into().unwrap())
    }

    #[test]
    fn the_identity_is_the_uri_san_else_the_dns_san_else_the_common_name_when_allowed() {
        let with_common_names = CertificateNames {
            from_common_name: true,
            constrained_issuers: Vec::new(),
        };
        let identity = |names: &CertificateNames, der: Vec<u8>| {
            names
                .identity(&[CertificateDer::from(der)])
                .map(|id| id.to_string())
        };
        let spiffe = "spiffe://cluster.local/ns/payments/sa/billing";
        assert_eq!(
            identity(
                &with_common_names,
                certificate_der(
                    Some("billing"),
                    vec![dns("billing.payments.svc"), uri(spiffe)]
                )
            ),
            Ok(spiffe.to_owned())
        );
        assert!(
            identity(
                &with_common_names,
                certificate_der(Some("billing"), vec![uri(spiffe), uri("spiffe://other")])
            )
            .is_err(),
            "more than one URI SAN"
        );
        let dns_only = certificate_der(Some("billing"), vec![dns("billing.payments.svc")]);
        assert_eq!(
            identity(&with_common_names, dns_only),
            Ok("billing.payments.svc".to_owned())
        );
        let common_name_only = || certificate_der(Some("Billing Batch"), vec![]);
        assert_eq!(
            identity(&with_common_names, common_name_only()),
            Ok("Billing Batch".to_owned())
        );
        assert!(identity(&CertificateNames::default(), common_name_only()).is_err());
        assert!(identity(&with_common_names, certificate_der(None, vec![])).is_err());
        assert!(
            identity(
                &with_common_names,
                certificate_der(Some("apikey:billing"), vec![])
            )
            .is_err(),
            "a certificate cannot pose as an API key"
        );
        assert!(identity(&with_common_names, b"not a certificate".to_vec()).is_err());
    }

    #[test]
    fn a_configured_ca_with_name_constraints_keeps_common_names_of_its_certificates_out() {
        let dir = tempfile::tempdir().unwrap();
        let identity_via = |permitted_dns: Option<&str>| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(DnType::CommonName, "payments CA");
            params.name_constraints = permitted_dns.map(|dns| rcgen::NameConstraints {
                permitted_subtrees: vec![rcgen::GeneralSubtree::DnsName(dns.to_owned())],
                excluded_subtrees: Vec::new(),
            });
            let ca =
                rcgen::CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
            let path = dir.path().join("client-ca.pem");
            std::fs::write(&path, ca.pem()).unwrap();
            let names = CertificateNames::from_settings(&TlsSettings {
                client_ca_file: Some(path),
                identity_from_common_name: true,
                ..TlsSettings::default()
            })
            .unwrap();
            let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
            leaf.distinguished_name
                .push(DnType::CommonName, "root.admin.svc");
            let leaf = leaf.signed_by(&KeyPair::generate().unwrap(), &ca).unwrap();
            names
                .identity(&[leaf.der().clone()])
                .map(|identity| identity.to_string())
        };
        assert_eq!(identity_via(None), Ok("root.admin.svc".to_owned()));
        assert!(identity_via(Some("payments.svc")).is_err());
    }

    #[test]
    fn settings_problems_name_the_setting_and_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, contents: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, contents).unwrap();
            Some(path)
        };
        let encrypted = "ENCRYPTED PRIVATE KEY";
        let settings = TlsSettings {
            cert_file: write("server.pem", "no certificate here"),
            key_file: write(
                "server-key.pem",
                &format!("-----BEGIN {encrypted}-----\nAAAA\n-----END {encrypted}-----\n"),
            ),
            client_ca_file: Some(dir.path().join("missing.pem")),
            identity_from_common_name: false,
        };
        let problems = settings_problems(&settings).join("\n");
        for needle in [
            "`auth.tls.cert_file` (",
            "holds no PEM `CERTIFICATE` block",
            "`auth.tls.key_file` (",
            "the key is encrypted",
            "`auth.tls.client_ca_file` (",
            "cannot be read",
        ] {
            assert!(problems.contains(needle), "{needle}: {problems}");
        }
        let only_ca = TlsSettings {
            client_ca_file: write("ca.pem", "x"),
            ..TlsSettings::default()
        };
        assert!(
            settings_problems(&only_ca)
                .join("\n")
                .contains("only asked for over TLS")
        );
        let common_names_without_ca = TlsSettings {
            identity_from_common_name: true,
            ..TlsSettings::default()
        };
        assert!(
            settings_problems(&common_names_without_ca)
                .join("\n")
                .contains("`auth.tls.identity_from_common_name` needs `auth.tls.client_ca_file`")
        );
    }
}
