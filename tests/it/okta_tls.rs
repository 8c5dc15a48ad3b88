//! The Okta client over real TLS. The gateway binary is pointed at an `https` org: a TLS relay
//! in front of the simulator, its certificate from a CA made in the test. Which roots the binary
//! trusts is the platform's choice, and `SSL_CERT_FILE` replaces them, so each gateway is given
//! exactly one CA (as an operator would give one behind a TLS-inspecting egress proxy).
//! Trusted, a call goes through over HTTP/2 and reaches the org; signed by another CA, or for
//! another name, the org is refused in the handshake, before a byte of the request (its token
//! included) leaves the gateway, and the caller is told Okta could not be reached while the log
//! says why.

use crate::common;
use crate::credentials;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use common::{get_user, reason, start_simulator};
use credentials::{Credential, Pki, ia5};
use identity_gateway::proto::user_service_client::UserServiceClient;
use okta_sim::Simulator;
use rcgen::SanType;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::Code;

const BINARY: &str = env!("CARGO_BIN_EXE_identity-gateway");
const LOGIN: &str = "tls.reader@example.com";

/// What the relay saw of one connection's handshake: the protocol agreed by ALPN, or why the
/// handshake failed.
type Handshake = Result<Option<String>, String>;

/// A TLS server in front of the simulator: it completes handshakes with `credential` and
/// relays the decrypted bytes to the simulator's plain port.
struct TlsRelay {
    address: SocketAddr,
    handshakes: Arc<Mutex<Vec<Handshake>>>,
}

impl TlsRelay {
    async fn start(credential: &Credential, upstream: SocketAddr) -> Self {
        let certificates = CertificateDer::pem_slice_iter(credential.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(credential.key_pem.as_bytes()).unwrap();
        let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let seen = handshakes.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    match acceptor.accept(tcp).await {
                        Ok(mut tls) => {
                            let protocol = tls
                                .get_ref()
                                .1
                                .alpn_protocol()
                                .map(|p| String::from_utf8_lossy(p).into_owned());
                            seen.lock().unwrap().push(Ok(protocol));
                            let mut simulator = TcpStream::connect(upstream).await.unwrap();
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut simulator).await;
                        }
                        Err(error) => seen.lock().unwrap().push(Err(error.to_string())),
                    }
                });
            }
        });
        Self {
            address,
            handshakes,
        }
    }

    fn handshakes(&self) -> Vec<Handshake> {
        self.handshakes.lock().unwrap().clone()
    }
}

/// The gateway binary, its Okta org at `org_url`, trusting only the CAs in `roots`.
struct Gateway {
    child: Child,
    address: SocketAddr,
    /// Log lines after the listening one, read as the gateway runs.
    later_lines: Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    fn start(org_url: &str, roots: &Path, dir: &Path) -> Self {
        let token_file = dir.join("okta-token");
        std::fs::write(&token_file, common::SIM_TOKEN).unwrap();
        let mut child = Command::new(BINARY)
            .env_clear()
            .env("SSL_CERT_FILE", roots)
            .env("IDGW_OKTA__ORG_URL", org_url)
            .env("IDGW_OKTA__API_TOKEN_FILE", &token_file)
            .env("IDGW_OKTA__RETRY_BASE_DELAY_MS", "5")
            .env("IDGW_OKTA__RETRY_MAX_DELAY_MS", "20")
            .env("IDGW_AUTH__INSECURE", "true")
            .env("IDGW_GRPC__LISTEN_ADDR", "127.0.0.1:0")
            .env("IDGW_GRPC__DRAIN_DELAY_MS", "0")
            .env("IDGW_LOG__FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let address = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                let record: Value = serde_json::from_str(&line).ok()?;
                (record["message"] == "grpc server listening")
                    .then(|| record["address"].as_str()?.parse().ok())?
            })
            .expect("the gateway says where it listens");
        let later_lines = Arc::new(Mutex::new(Vec::new()));
        let kept = later_lines.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            address,
            later_lines,
        }
    }

    async fn get_user(&self, id: &str) -> Result<Value, tonic::Status> {
        let mut users = UserServiceClient::connect(format!("http://{}", self.address))
            .await
            .unwrap();
        let user = users.get_user(get_user(id)).await?.into_inner();
        Ok(json!({"id": user.id, "login": user.profile.map(|p| p.login)}))
    }

    fn logs(&self) -> String {
        self.later_lines.lock().unwrap().join("\n")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A simulated org with one user behind a TLS relay, and the gateway binary calling it.
struct OrgOverTls {
    sim: Simulator,
    relay: TlsRelay,
    user_id: String,
    gateway: Gateway,
}

impl OrgOverTls {
    /// The relay presents `presented`; the gateway trusts only the CA `trusted_ca_pem`.
    async fn start(pki: &Pki, presented: &Credential, trusted_ca_pem: &str) -> Self {
        let sim = start_simulator().await;
        let ids = common::seed_simulator(&sim, &json!({"users": [{"login": LOGIN}]})).await;
        let user_id = ids["users"][LOGIN].as_str().unwrap().to_owned();
        let upstream = sim
            .base_url()
            .trim_start_matches("http://")
            .parse()
            .unwrap();
        let relay = TlsRelay::start(presented, upstream).await;
        let roots = write(pki.dir.path(), "roots.pem", trusted_ca_pem);
        let gateway = Gateway::start(
            &format!("https://localhost:{}", relay.address.port()),
            &roots,
            pki.dir.path(),
        );
        Self {
            sim,
            relay,
            user_id,
            gateway,
        }
    }
}

/// The Okta requests the simulator received.
async fn received(sim: &Simulator) -> Vec<Value> {
    reqwest::get(format!("{}/__sim/requests", sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[tokio::test]
async fn an_org_whose_certificate_a_trusted_root_signs_is_reached_over_http2() {
    let pki = Pki::new();
    let org = OrgOverTls::start(&pki, &pki.server, &pki.ca_pem).await;

    let user = org.gateway.get_user(&org.user_id).await.unwrap();

    assert_eq!(user["login"], LOGIN);
    assert_eq!(
        org.relay.handshakes(),
        vec![Ok(Some("h2".to_owned()))],
        "one connection, HTTP/2 agreed by ALPN"
    );
    let requests = received(&org.sim).await;
    assert_eq!(requests.len(), 1, "{requests:?}");
}

/// Refused in the handshake: the relay saw the gateway abort it, the simulator saw nothing,
/// and the caller is told Okta could not be reached and nothing was sent, with no certificate
/// detail or token.
async fn assert_refused_before_any_request(org: &OrgOverTls, why_logged: &str) {
    let status = org.gateway.get_user(&org.user_id).await.unwrap_err();

    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "OKTA_UNREACHABLE");
    assert!(status.message().contains("nothing was sent"), "{status:?}");
    assert!(!format!("{status:?}").contains(common::SIM_TOKEN));
    let handshakes = org.relay.handshakes();
    assert_eq!(
        handshakes.len(),
        1,
        "one try: the same certificate would be refused again"
    );
    assert!(handshakes[0].is_err(), "the handshake completed");
    assert_eq!(
        received(&org.sim).await,
        Vec::<Value>::new(),
        "a request got through"
    );
    common::eventually(
        common::PATIENCE,
        "the log names the certificate problem",
        async || org.gateway.logs().contains(why_logged),
    )
    .await;
    assert!(
        !org.gateway.logs().contains(common::SIM_TOKEN),
        "the token was logged"
    );
}

#[tokio::test]
async fn an_org_whose_certificate_no_trusted_root_signs_gets_no_request() {
    let pki = Pki::new();
    // A CA of the same name with another key: its name finds it, its signature does not hold.
    let stranger = Pki::new();
    let org = OrgOverTls::start(&pki, &pki.server, &stranger.ca_pem).await;

    assert_refused_before_any_request(&org, "invalid peer certificate: BadSignature").await;
}

#[tokio::test]
async fn a_trusted_certificate_for_another_name_gets_no_request() {
    let pki = Pki::new();
    let elsewhere = pki.server_for(vec![SanType::DnsName(ia5("acme.okta.com"))]);
    let org = OrgOverTls::start(&pki, &elsewhere, &pki.ca_pem).await;

    assert_refused_before_any_request(
        &org,
        "invalid peer certificate: certificate not valid for name",
    )
    .await;
}
