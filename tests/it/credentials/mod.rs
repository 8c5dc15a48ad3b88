//! Real credentials made in the test: a CA with server and client certificates (rcgen), RSA
//! and EC signing keys with their JWKS, signed JWTs, and a JWKS server; and a policy letting
//! every authenticated caller in.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use identity_gateway::config::Settings;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, KeyPair, KeyUsagePurpose, NameConstraints, SanType,
};
use serde_json::{Value, json};
use tonic::Request;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// A policy giving every authenticated caller every RPC: these tests are about who calls.
const ALLOW_EVERY_CALLER: &str = r#"
roles:
  everything:
    rpcs: ["*"]
callers:
  - identity: "*"
    roles: [everything]
"#;

/// Points `settings` at a policy (written into `dir`) that lets every authenticated caller
/// call every RPC.
pub fn allow_every_caller(settings: &mut Settings, dir: &std::path::Path) {
    let path = dir.join("allow-every-caller.yaml");
    std::fs::write(&path, ALLOW_EVERY_CALLER).unwrap();
    settings.authz.policy_file = Some(path);
}

/// `message` with `authorization: Bearer <token>`.
pub fn bearer<T>(message: T, token: &str) -> Request<T> {
    with_metadata(message, "authorization", &format!("Bearer {token}"))
}

/// `message` with one metadata entry.
pub fn with_metadata<T>(message: T, name: &'static str, value: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(name, value.parse().unwrap());
    request
}

/// The SPIFFE id of the test's billing workload.
pub const SPIFFE_ID: &str = "spiffe://cluster.local/ns/payments/sa/billing";
/// The DNS name of the test's reports workload.
pub const DNS_NAME: &str = "reports.analytics.svc.cluster.local";

/// A certificate (PEM) and its private key (PEM).
#[derive(Clone)]
pub struct Credential {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Credential {
    pub fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, &self.key_pem)
    }
}

/// A trusted CA with the certificates the tests need, written to files for the gateway.
pub struct Pki {
    pub ca_pem: String,
    pub server: Credential,
    /// Client certificate with a SPIFFE URI SAN (and a DNS SAN, which the URI beats).
    pub spiffe_client: Credential,
    /// Client certificate with only a DNS SAN.
    pub dns_client: Credential,
    /// Client certificate with the SPIFFE id, from a CA the gateway does not trust.
    pub untrusted_client: Credential,
    pub dir: tempfile::TempDir,
    trusted: CertifiedIssuer<'static, KeyPair>,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    common_name: &str,
    names: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
) -> Credential {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.subject_alt_names = names;
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    Credential {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

pub fn ia5(text: &str) -> rcgen::string::Ia5String {
    text.try_into().unwrap()
}

impl Pki {
    pub fn new() -> Self {
        let trusted = ca("identity-gateway test CA");
        let stranger = ca("someone else's CA");
        let server = leaf(
            &trusted,
            "identity-gateway",
            vec![
                SanType::DnsName(ia5("localhost")),
                SanType::IpAddress([127, 0, 0, 1].into()),
            ],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let spiffe_client = leaf(
            &trusted,
            "billing",
            vec![
                SanType::DnsName(ia5("billing.payments.svc.cluster.local")),
                SanType::URI(ia5(SPIFFE_ID)),
            ],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let dns_client = leaf(
            &trusted,
            "reports",
            vec![SanType::DnsName(ia5(DNS_NAME))],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let untrusted_client = leaf(
            &stranger,
            "billing",
            vec![SanType::URI(ia5(SPIFFE_ID))],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        Self {
            ca_pem: trusted.pem(),
            server,
            spiffe_client,
            dns_client,
            untrusted_client,
            dir: tempfile::tempdir().unwrap(),
            trusted,
        }
    }

    /// A server certificate of the trusted CA for `names` only.
    pub fn server_for(&self, names: Vec<SanType>) -> Credential {
        leaf(
            &self.trusted,
            "identity-gateway",
            names,
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate of the trusted CA with subject CN `common_name` and `names` as SANs.
    pub fn client(&self, common_name: &str, names: Vec<SanType>) -> Credential {
        leaf(
            &self.trusted,
            common_name,
            names,
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    /// A client certificate without SANs, subject CN `common_name`, issued by an intermediate
    /// CA of the trusted CA that is constrained to DNS names under `permitted_dns` when given;
    /// its PEM holds the chain, leaf first.
    pub fn client_via_intermediate(
        &self,
        common_name: &str,
        permitted_dns: Option<&str>,
    ) -> Credential {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "payments intermediate CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.name_constraints = permitted_dns.map(|dns| NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::DnsName(dns.to_owned())],
            excluded_subtrees: Vec::new(),
        });
        let intermediate =
            CertifiedIssuer::signed_by(params, KeyPair::generate().unwrap(), &self.trusted)
                .unwrap();
        let client = leaf(
            &intermediate,
            common_name,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        Credential {
            cert_pem: format!("{}{}", client.cert_pem, intermediate.pem()),
            key_pem: client.key_pem,
        }
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Points `settings` at the server certificate and, with `mutual`, at the client CA.
    pub fn configure(&self, settings: &mut Settings, mutual: bool) {
        settings.auth.insecure = false;
        settings.auth.tls.cert_file = Some(self.write("server.pem", &self.server.cert_pem));
        settings.auth.tls.key_file = Some(self.write("server-key.pem", &self.server.key_pem));
        if mutual {
            settings.auth.tls.client_ca_file = Some(self.write("client-ca.pem", &self.ca_pem));
        }
    }

    /// A TLS channel to `address` trusting the test CA, presenting `client` if given.
    pub async fn connect(
        &self,
        address: SocketAddr,
        client: Option<&Credential>,
    ) -> Result<Channel, tonic::transport::Error> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .domain_name("localhost");
        if let Some(client) = client {
            tls = tls.identity(client.identity());
        }
        Endpoint::from_shared(format!("https://{address}"))
            .unwrap()
            .tls_config(tls)?
            .connect()
            .await
    }
}

/// A signing key of the test issuer, with its public JWK.
pub enum SigningKey {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A key and the `kid` it is published under.
pub struct TestKey {
    pub kid: String,
    key: SigningKey,
}

impl TestKey {
    pub fn rsa(kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            key: SigningKey::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap()),
        }
    }

    pub fn ec(kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            key: SigningKey::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap()),
        }
    }

    pub fn alg(&self) -> &'static str {
        match self.key {
            SigningKey::Rsa(_) => "RS256",
            SigningKey::Ec(_) => "ES256",
        }
    }

    /// The public JWK, as an issuer publishes it.
    pub fn public_jwk(&self) -> Value {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        match &self.key {
            SigningKey::Rsa(pair) => {
                let public = pair.public_key();
                json!({
                    "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                })
            }
            SigningKey::Ec(pair) => {
                let point = pair.public_key().as_ref();
                json!({
                    "kty": "EC", "use": "sig", "crv": "P-256", "kid": self.kid,
                    "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                })
            }
        }
    }

    /// A compact JWS of `claims` with this key's `alg` and `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&json!({"alg": self.alg(), "kid": self.kid}), claims)
    }

    /// A compact JWS of `claims` with `header` as given, signed with this key.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let signature = match &self.key {
            SigningKey::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &rng,
                    signing_input.as_bytes(),
                    &mut signature,
                )
                .unwrap();
                signature
            }
            SigningKey::Ec(pair) => pair
                .sign(&rng, signing_input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
        };
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// A JWKS document of `keys`.
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|key| key.public_jwk()).collect::<Vec<_>>() })
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// What the JWKS server's handler shares with the test.
#[derive(Clone)]
struct IssuerState {
    document: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    delay_ms: Arc<AtomicU64>,
}

/// An HTTP server publishing a JWKS that the test can change, counting fetches.
#[derive(Clone)]
pub struct JwksServer {
    pub url: String,
    document: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    /// How long each answer is held back, in milliseconds.
    delay_ms: Arc<AtomicU64>,
}

impl JwksServer {
    pub async fn start(document: Value) -> Self {
        let document = Arc::new(Mutex::new(document));
        let fetches = Arc::new(AtomicUsize::new(0));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let state = IssuerState {
            document: document.clone(),
            fetches: fetches.clone(),
            delay_ms: delay_ms.clone(),
        };
        let router = axum::Router::new().route(
            "/openid/v1/jwks",
            axum::routing::get(
                |axum::extract::State(state): axum::extract::State<IssuerState>| async move {
                    state.fetches.fetch_add(1, Ordering::SeqCst);
                    let delay = Duration::from_millis(state.delay_ms.load(Ordering::SeqCst));
                    tokio::time::sleep(delay).await;
                    axum::Json(state.document.lock().unwrap().clone())
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, router.with_state(state))
                .await
                .unwrap();
        });
        Self {
            url: format!("http://{address}/openid/v1/jwks"),
            document,
            fetches,
            delay_ms,
        }
    }

    /// Publishes another set (a rotation at the issuer).
    pub fn publish(&self, document: Value) {
        *self.document.lock().unwrap() = document;
    }

    /// Holds back every later answer by `delay` (a slow issuer).
    pub fn set_delay(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap();
        self.delay_ms.store(millis, Ordering::SeqCst);
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}
