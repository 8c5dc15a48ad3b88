//! Caller authentication: who is calling, proven by a static API key (`api_keys.rs`), a bearer
//! JWT (`jwt.rs`, keys from `jwks.rs` and `keys.rs`) or a verified client certificate
//! (`tls.rs`). Deny by default: a caller without valid credentials is refused UNAUTHENTICATED,
//! unless the deployment is explicitly insecure (local runs, the simulated quick start).
//!
//! **Which credential counts.** Health and reflection need none (unless
//! `auth.protect_health_and_reflection`). Otherwise a request may carry one per-request
//! credential, `x-api-key` or `authorization: Bearer <JWT>` (both at once is refused as
//! ambiguous); a presented credential is always checked and, when valid, names the caller even
//! over a connection with a client certificate (a shared mTLS identity, per-request tokens).
//! Without one, a verified client certificate names the caller. Without either, the caller is
//! `anonymous` in insecure mode and refused otherwise. A presented but invalid credential is
//! refused: it never falls back to the certificate or to anonymous.
//!
//! A request with more than one `x-api-key` or `authorization` value is refused: a proxy that
//! read another of them than the gateway would disagree about who is calling.
//!
//! Identities from certificates and tokens are checked before use (`identity.rs`): each reserved
//! form (`spiffe://…`, `system:serviceaccount:…`, `apikey:…`, [`ANONYMOUS`]) comes from one
//! mechanism only, near misses of them are refused, and names are printable and bounded.
//!
//! The authentication layer ([`crate::edge::authenticate`]) does not refuse anything itself: it
//! records the outcome in the request's extensions as an [`Authentication`], so the audit layer
//! can record refused calls with what was presented, and the authorization layer refuses them.

mod api_keys;
mod identity;
mod jwks;
mod jwt;
mod keys;
mod tls;

use std::sync::Arc;

use anyhow::Context as _;
use http::HeaderValue;
use tonic::transport::CertificateDer;

pub use api_keys::{ApiKeys, check_key_name, hash_api_key};
use identity::API_KEY_PREFIX;
pub use identity::{ANONYMOUS, MAX_IDENTITY_LEN, escaped_for_log};
use jwt::{JwtPolicy, JwtVerifier};
use tls::CertificateNames;
pub use tls::{PeerCertificates, peer_addr, server_tls_acceptor, server_tls_config};

use crate::config::{AuthSettings, Checking, Section, checked};

/// The metadata header carrying a static API key.
pub const API_KEY_HEADER: &str = "x-api-key";
/// Paths that need no credentials unless `auth.protect_health_and_reflection` is set: Kubernetes
/// probes and operators' grpcurl must keep working.
pub const INFRASTRUCTURE_PATHS: &[&str] = &["/grpc.health.v1.Health/", "/grpc.reflection."];

/// An authenticated caller, as policy, audit and fairness see it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The identity policies name: `apikey:NAME`, `spiffe://…`, `system:serviceaccount:NS:NAME`,
    /// or [`ANONYMOUS`] in insecure mode.
    pub identity: Arc<str>,
    /// How the identity was proven.
    pub mechanism: Mechanism,
}

/// How a caller proved its identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// A static API key from the keys file.
    ApiKey,
    /// A client certificate verified in the TLS handshake.
    MutualTls,
    /// A bearer JWT verified against the issuer's JWKS.
    Jwt,
    /// Nothing: insecure mode.
    Insecure,
}

impl Mechanism {
    /// The name used in logs and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::MutualTls => "mtls",
            Self::Jwt => "jwt",
            Self::Insecure => "insecure",
        }
    }
}

/// The outcome of authenticating one request, left in its extensions.
#[derive(Clone, Debug)]
pub enum Authentication {
    /// The caller is known.
    Authenticated(Caller),
    /// No credentials were needed (health or reflection, left open).
    NotRequired,
    /// Credentials were missing or invalid; the text says which, and never echoes a secret.
    Refused(String),
}

impl Authentication {
    /// The caller, when authenticated.
    pub fn caller(&self) -> Option<&Caller> {
        match self {
            Self::Authenticated(caller) => Some(caller),
            _ => None,
        }
    }

    fn caller_from(identity: Arc<str>, mechanism: Mechanism) -> Self {
        Self::Authenticated(Caller {
            identity,
            mechanism,
        })
    }
}

impl Section for AuthSettings {
    type Valid = ();

    fn validate(&self, _checking: &Checking<'_>) -> Result<(), Vec<String>> {
        let mut problems = tls::settings_problems(&self.tls);
        if let Err(jwt_problems) = JwtPolicy::from_settings(&self.jwt) {
            problems.extend(jwt_problems);
        }
        if let Some(path) = &self.jwt.jwks_file {
            if let Err(problem) = jwks::check_file(path) {
                problems.push(format!(
                    "`auth.jwt.jwks_file` (`{}`): {problem}",
                    path.display()
                ));
            }
        }
        if !self.insecure && !self.has_mechanism() {
            problems.push(
                "no caller authentication is configured: set `auth.api_keys_file`, `auth.jwt.*` or \
                 `auth.tls.client_ca_file`, or `auth.insecure = true` for a local run (never with a \
                 real org)"
                    .to_owned(),
            );
        }
        checked(problems, ())
    }
}

impl AuthSettings {
    /// Whether any way for a caller to authenticate is configured: without one, every identity
    /// RPC is refused unless the deployment is explicitly insecure.
    pub fn has_mechanism(&self) -> bool {
        self.api_keys_file.is_some()
            || self.jwt.is_configured()
            || self.tls.client_ca_file.is_some()
    }
}

/// What one request presented, taken from it before the (possibly asynchronous) checks.
pub struct Presented {
    infrastructure: bool,
    api_key: Option<HeaderValue>,
    authorization: Option<HeaderValue>,
    /// A credential header sent more than once.
    repeated: Option<&'static str>,
    client_certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}

impl Presented {
    /// The credentials `request` carries, and whether it is a health or reflection call.
    pub fn from_request<B>(request: &http::Request<B>) -> Self {
        let path = request.uri().path();
        let headers = request.headers();
        let repeated = [API_KEY_HEADER, http::header::AUTHORIZATION.as_str()]
            .into_iter()
            .find(|name| headers.get_all(*name).iter().nth(1).is_some());
        Self {
            infrastructure: INFRASTRUCTURE_PATHS
                .iter()
                .any(|prefix| path.starts_with(prefix)),
            api_key: headers.get(API_KEY_HEADER).cloned(),
            authorization: headers.get(http::header::AUTHORIZATION).cloned(),
            repeated,
            client_certificates: tls::client_certificates(request.extensions()),
        }
    }
}

/// Checks the credentials a request carries against the configured mechanisms.
#[derive(Debug)]
pub struct Authenticator {
    api_keys: Option<ApiKeys>,
    jwt: Option<JwtVerifier>,
    certificates: CertificateNames,
    insecure: bool,
    protect_infrastructure: bool,
    /// The refusal for a request without credentials, naming what this gateway accepts.
    missing_credentials: String,
}

impl Authenticator {
    /// Loads the configured mechanisms (reads the API keys file, loads the JWKS); fails naming
    /// the setting.
    pub async fn from_settings(settings: &AuthSettings) -> anyhow::Result<Self> {
        let api_keys = settings
            .api_keys_file
            .as_deref()
            .map(|path| {
                ApiKeys::load(path).with_context(|| {
                    format!("`auth.api_keys_file` (`{}`) is not usable", path.display())
                })
            })
            .transpose()?;
        let jwt = match JwtPolicy::from_settings(&settings.jwt) {
            Ok(None) => None,
            Ok(Some(policy)) => Some(JwtVerifier::new(policy).await.with_context(
                || "the JWKS of `auth.jwt.jwks_file` / `auth.jwt.jwks_url` could not be loaded",
            )?),
            Err(problems) => anyhow::bail!("{}", problems.join("; ")),
        };
        if settings.insecure {
            tracing::warn!(
                "INSECURE: caller authentication is off (`auth.insecure`); any caller that can \
                 reach the port acts as `{ANONYMOUS}`. Never run a real Okta org like this."
            );
        }
        let mut accepted = Vec::new();
        if api_keys.is_some() {
            accepted.push(format!("an API key in `{API_KEY_HEADER}`"));
        }
        if jwt.is_some() {
            accepted.push("a JWT in `authorization: Bearer …`".to_owned());
        }
        if settings.tls.client_ca_file.is_some() {
            accepted.push("a client certificate".to_owned());
        }
        let missing_credentials = if accepted.is_empty() {
            "no caller authentication is configured".to_owned()
        } else {
            format!("no credentials: send {}", accepted.join(" or "))
        };
        Ok(Self {
            api_keys,
            jwt,
            certificates: CertificateNames::from_settings(&settings.tls)?,
            insecure: settings.insecure,
            protect_infrastructure: settings.protect_health_and_reflection,
            missing_credentials,
        })
    }

    /// Decides who sent the request; see the module docs for which credential counts.
    pub async fn authenticate(&self, presented: Presented) -> Authentication {
        if presented.infrastructure && !self.protect_infrastructure {
            return Authentication::NotRequired;
        }
        if let Some(header) = presented.repeated {
            return Authentication::Refused(format!(
                "send one `{header}` value per request, not several"
            ));
        }
        match (&presented.api_key, &presented.authorization) {
            (Some(_), Some(_)) => Authentication::Refused(format!(
                "send one credential per request: `{API_KEY_HEADER}` or `authorization`, not both"
            )),
            (Some(key), None) => self.api_key(key),
            (None, Some(authorization)) => self.bearer(authorization).await,
            (None, None) => match presented.client_certificates.as_deref().map(Vec::as_slice) {
                Some(chain @ [_, ..]) => match self.certificates.identity(chain) {
                    Ok(identity) => Authentication::caller_from(identity, Mechanism::MutualTls),
                    Err(problem) => Authentication::Refused(problem.to_owned()),
                },
                _ if self.insecure => {
                    Authentication::caller_from(ANONYMOUS.into(), Mechanism::Insecure)
                }
                _ => Authentication::Refused(self.missing_credentials.clone()),
            },
        }
    }

    fn api_key(&self, key: &HeaderValue) -> Authentication {
        let Some(keys) = &self.api_keys else {
            return Authentication::Refused(format!(
                "an `{API_KEY_HEADER}` was sent but this gateway accepts no API keys"
            ));
        };
        match key.to_str().ok().and_then(|key| keys.verify(key)) {
            Some(name) => Authentication::caller_from(
                format!("{API_KEY_PREFIX}{name}").into(),
                Mechanism::ApiKey,
            ),
            None => Authentication::Refused("the API key is not valid".to_owned()),
        }
    }

    async fn bearer(&self, authorization: &HeaderValue) -> Authentication {
        let token = authorization
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let Some(token) = token else {
            return Authentication::Refused(
                "the `authorization` header must be `Bearer <JWT>`".to_owned(),
            );
        };
        let Some(verifier) = &self.jwt else {
            return Authentication::Refused(
                "a bearer token was sent but this gateway accepts no JWTs".to_owned(),
            );
        };
        match verifier.verify(token).await {
            Ok(identity) => Authentication::caller_from(identity, Mechanism::Jwt),
            Err(error) => Authentication::Refused(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{assert_reported, load};

    #[test]
    fn caller_authentication_problems_name_each_setting() {
        let settings = load(&[
            ("IDGW_AUTH__TLS__CERT_FILE", "missing-server.pem"),
            ("IDGW_AUTH__JWT__JWKS_URL", "ftp://issuer.example/keys"),
            ("IDGW_AUTH__JWT__AUDIENCES", "identity-gateway,other"),
        ]);
        let problems = assert_reported(
            &settings,
            &[
                "`auth.tls.cert_file` and `auth.tls.key_file` go together",
                "`auth.tls.cert_file` (`missing-server.pem`): cannot be read",
                "`auth.jwt.issuer` must be set",
                "`auth.jwt.jwks_url` must use https",
            ],
        );
        assert!(!problems.contains("no caller authentication"), "{problems}");
    }
}
