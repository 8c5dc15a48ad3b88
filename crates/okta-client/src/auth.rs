//! The gateway's credentials for Okta: an API token (`SSWS`) or an OAuth 2.0 service app
//! (client credentials with a `private_key_jwt` client assertion, optionally DPoP-bound).
//!
//! [`OktaClient`](crate::OktaClient)'s `send` asks [`Credentials::request_auth`] for the
//! `Authorization` (and `DPoP`) header of each request. With OAuth, the access token is cached
//! and refreshed before it expires by a single in-flight token request shared by every
//! concurrent caller; a request Okta rejects with 401 invalidates the token it used
//! ([`Credentials::invalidate`]) so the retry gets a fresh one.
//!
//! Secrets (the private key, access tokens, client assertions, DPoP proofs) never appear in
//! `Debug` output, errors or logs: header values are marked sensitive and the types holding
//! secrets print `[redacted]`.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

use crate::error::{OAuthFailure, OktaError, ResponseMeta};
use crate::rate_limit::{self, RateLimitState};

/// The Okta scopes behind the gateway's services, as (read, manage) pairs: users, groups, the
/// System Log (read only) and devices. The gateway requests exactly these (least privilege),
/// only the read halves in read-only mode, unless `okta.oauth.scopes` overrides them.
pub const SERVICE_SCOPES: &[(&str, Option<&str>)] = &[
    ("okta.users.read", Some("okta.users.manage")),
    ("okta.groups.read", Some("okta.groups.manage")),
    ("okta.logs.read", None),
    ("okta.devices.read", Some("okta.devices.manage")),
];

/// The scopes the gateway requests by default: every service's read scope, plus the manage
/// scopes unless `read_only`.
pub fn default_scopes(read_only: bool) -> Vec<String> {
    let mut scopes = Vec::new();
    for (read, manage) in SERVICE_SCOPES {
        scopes.push((*read).to_owned());
        if let (false, Some(manage)) = (read_only, manage) {
            scopes.push((*manage).to_owned());
        }
    }
    scopes
}

/// Okta's org authorization server token endpoint, the only one that mints `okta.*` scopes.
pub const TOKEN_PATH: &str = "/oauth2/v1/token";
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Lifetime of a client assertion (Okta accepts at most one hour).
const ASSERTION_LIFETIME_SECS: i64 = 300;
/// Token requests in one refresh: the first, a retry with a DPoP proof the server demanded,
/// and a retry with the nonce it then sent.
const MAX_TOKEN_ATTEMPTS: usize = 3;
const DPOP_HEADER: &str = "dpop";
const DPOP_NONCE_HEADER: &str = "dpop-nonce";

/// A problem with the configured private key; never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

fn key_error(message: impl Into<String>) -> KeyError {
    KeyError(message.into())
}

enum KeyPair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// The service app's private key (RSA or EC P-256) and its key id (`kid`), which Okta uses to
/// find the registered public key. Prints as `[redacted]`; clones share the key.
#[derive(Clone)]
pub struct SigningKey {
    pair: Arc<KeyPair>,
    key_id: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SigningKey")
            .field("alg", &self.alg())
            .field("key_id", &self.key_id)
            .field("key", &"[redacted]")
            .finish()
    }
}

#[derive(Deserialize)]
struct PrivateJwk {
    kty: String,
    kid: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    d: Option<String>,
    p: Option<String>,
    q: Option<String>,
    dp: Option<String>,
    dq: Option<String>,
    qi: Option<String>,
}

impl SigningKey {
    /// Parses a private key: PEM (`PRIVATE KEY` PKCS#8, `RSA PRIVATE KEY` PKCS#1, `EC PRIVATE
    /// KEY` SEC1) or a private JWK (RSA, or EC P-256). `key_id` (`okta.oauth.key_id`) wins over
    /// a JWK's own `kid`; one of them is required.
    pub fn parse(text: &str, key_id: Option<&str>) -> Result<Self, KeyError> {
        let text = text.trim();
        let (pair, jwk_kid) = if text.starts_with('{') {
            parse_jwk(text)?
        } else {
            (parse_pem(text)?, None)
        };
        let key_id = key_id
            .map(str::trim)
            .filter(|kid| !kid.is_empty())
            .map(str::to_owned)
            .or(jwk_kid)
            .ok_or_else(|| {
                key_error(
                    "the key has no key id: set `okta.oauth.key_id` to the kid Okta shows for \
                     the public key registered on the service app",
                )
            })?;
        Ok(Self {
            pair: Arc::new(pair),
            key_id,
        })
    }

    /// The key id sent as `kid`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// `RS256` or `ES256`.
    pub fn alg(&self) -> &'static str {
        match *self.pair {
            KeyPair::Rsa(_) => "RS256",
            KeyPair::Ec(_) => "ES256",
        }
    }

    /// The public half as a JWK (for DPoP proofs and for registering the key with Okta).
    pub fn public_jwk(&self) -> Value {
        match &*self.pair {
            KeyPair::Rsa(pair) => {
                let public = pair.public_key();
                json!({
                    "kty": "RSA",
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                })
            }
            KeyPair::Ec(pair) => {
                let point = pair.public_key().as_ref();
                let (x, y) = point
                    .get(1..)
                    .unwrap_or_default()
                    .split_at(32.min(point.len()));
                json!({ "kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y) })
            }
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, OktaError> {
        let failed = || local_error("signing with the configured private key failed");
        let rng = SystemRandom::new();
        match &*self.pair {
            KeyPair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(|_| failed())?;
                Ok(signature)
            }
            KeyPair::Ec(pair) => pair
                .sign(&rng, message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| failed()),
        }
    }

    /// A compact JWS of `header` (with `alg` added) and `claims`.
    fn jws(&self, mut header: Value, claims: &Value) -> Result<String, OktaError> {
        header["alg"] = Value::from(self.alg());
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self.sign(signing_input.as_bytes())?;
        Ok(format!("{signing_input}.{}", b64(&signature)))
    }
}

fn parse_pem(text: &str) -> Result<KeyPair, KeyError> {
    let begin = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("-----BEGIN "))
        .ok_or_else(|| {
            key_error("the private key is neither PEM (a `BEGIN PRIVATE KEY` block) nor a JWK")
        })?;
    let label = begin
        .trim_start_matches("-----BEGIN ")
        .trim_end_matches('-')
        .to_owned();
    let body: String = text
        .lines()
        .map(str::trim)
        .skip_while(|line| !line.starts_with("-----BEGIN "))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END "))
        .collect();
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|_| key_error(format!("the PEM `{label}` block is not valid base64")))?;
    match label.as_str() {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der)
            .map(KeyPair::Rsa)
            .or_else(|_| {
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).map(KeyPair::Ec)
            })
            .map_err(|_| {
                key_error("the PKCS#8 private key is neither RSA (2048 bits or more) nor EC P-256")
            }),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der)
            .map(KeyPair::Rsa)
            .map_err(|_| key_error("the RSA private key could not be read (2048 bits or more)")),
        "EC PRIVATE KEY" => {
            EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                .map(KeyPair::Ec)
                .map_err(|_| key_error("the EC private key could not be read (P-256 only)"))
        }
        "ENCRYPTED PRIVATE KEY" => Err(key_error(
            "the private key is encrypted: mount it unencrypted (`openssl pkcs8 -nocrypt`)",
        )),
        "PUBLIC KEY" | "RSA PUBLIC KEY" | "CERTIFICATE" => Err(key_error(format!(
            "the file holds a {label}, not the private key: the gateway signs with the private key"
        ))),
        other => Err(key_error(format!(
            "unsupported PEM block `{other}`: expected PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY"
        ))),
    }
}

fn parse_jwk(text: &str) -> Result<(KeyPair, Option<String>), KeyError> {
    let jwk: PrivateJwk = serde_json::from_str(text)
        .map_err(|error| key_error(format!("the JWK is not valid JSON ({error})")))?;
    let field = |name: &str, value: &Option<String>| -> Result<Vec<u8>, KeyError> {
        let value = value.as_deref().ok_or_else(|| {
            key_error(format!(
                "the {} JWK lacks `{name}`: a private JWK is needed",
                jwk.kty
            ))
        })?;
        URL_SAFE_NO_PAD
            .decode(value.trim_end_matches('='))
            .map_err(|_| key_error(format!("the JWK's `{name}` is not base64url")))
    };
    let pair = match jwk.kty.as_str() {
        "RSA" => {
            let components = aws_lc_rs::rsa::KeyPairComponents {
                public_key: signature::RsaPublicKeyComponents {
                    n: field("n", &jwk.n)?,
                    e: field("e", &jwk.e)?,
                },
                d: field("d", &jwk.d)?,
                p: field("p", &jwk.p)?,
                q: field("q", &jwk.q)?,
                dP: field("dp", &jwk.dp)?,
                dQ: field("dq", &jwk.dq)?,
                qInv: field("qi", &jwk.qi)?,
            };
            RsaKeyPair::from_components(&components)
                .map(KeyPair::Rsa)
                .map_err(|_| key_error("the RSA JWK's components do not form a valid key"))?
        }
        "EC" => {
            if jwk.crv.as_deref() != Some("P-256") {
                return Err(key_error(
                    "only EC keys on curve P-256 (ES256) are supported",
                ));
            }
            let mut point = vec![0x04];
            point.extend(field("x", &jwk.x)?);
            point.extend(field("y", &jwk.y)?);
            EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &field("d", &jwk.d)?,
                &point,
            )
            .map(KeyPair::Ec)
            .map_err(|_| key_error("the EC JWK's components do not form a valid P-256 key"))?
        }
        other => {
            return Err(key_error(format!(
                "unsupported JWK key type `{other}`: expected RSA or EC"
            )));
        }
    };
    Ok((pair, jwk.kid))
}

/// Everything needed to obtain Okta-scoped access tokens as a service app.
#[derive(Clone, Debug)]
pub struct OAuthSettings {
    /// The service app's client id (`okta.oauth.client_id`).
    pub client_id: String,
    /// The private key whose public half is registered on the app.
    pub key: SigningKey,
    /// The scopes requested.
    pub scopes: Vec<String>,
    /// Bind tokens to the key with DPoP from the first request (otherwise only when Okta
    /// demands it).
    pub dpop: bool,
}

/// How the client authenticates to Okta.
#[derive(Clone)]
pub(crate) enum Credentials {
    /// `Authorization: SSWS <token>`, marked sensitive.
    ApiToken(HeaderValue),
    /// Access tokens from the org authorization server.
    OAuth(Arc<OAuthClient>),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiToken(_) => formatter.write_str("ApiToken([redacted])"),
            Self::OAuth(client) => client.fmt(formatter),
        }
    }
}

/// The auth headers of one request, and which token they carry.
pub(crate) struct RequestAuth {
    pub(crate) authorization: HeaderValue,
    pub(crate) dpop: Option<HeaderValue>,
    generation: u64,
}

impl Credentials {
    /// The `Authorization` (and, with DPoP, `DPoP` proof) headers for one request; fetches or
    /// refreshes the access token first when needed.
    pub(crate) async fn request_auth(
        &self,
        method: &Method,
        url: &Url,
    ) -> Result<RequestAuth, OktaError> {
        match self {
            Self::ApiToken(header) => Ok(RequestAuth {
                authorization: header.clone(),
                dpop: None,
                generation: 0,
            }),
            Self::OAuth(client) => client.request_auth(method, url).await,
        }
    }

    /// Whether a 401 may be cured by a new access token.
    pub(crate) fn refreshable(&self) -> bool {
        matches!(self, Self::OAuth(_))
    }

    /// Forgets the token `auth` carried (Okta rejected it), unless it was already replaced.
    pub(crate) fn invalidate(&self, auth: &RequestAuth) {
        if let Self::OAuth(client) = self {
            client.invalidate(auth.generation);
        }
    }

    /// Explains a 401 that persisted with a fresh access token.
    pub(crate) fn rejected_after_refresh(&self, meta: ResponseMeta) -> Option<OktaError> {
        let Self::OAuth(client) = self else {
            return None;
        };
        Some(OktaError::OAuthRejected(Box::new(OAuthFailure {
            status: meta.status,
            error: "invalid_token".to_owned(),
            description: None,
            hint: format!(
                "Okta rejected a freshly issued access token of the service app `{}`: check that \
                 the app is active and has an admin role assigned",
                client.client_id
            ),
            meta,
        })))
    }
}

struct AccessToken {
    authorization: HeaderValue,
    /// The raw token, for DPoP's `ath`.
    value: SecretString,
    dpop: bool,
    refresh_at: Instant,
    generation: u64,
}

/// The OAuth client-credentials flow with a private_key_jwt assertion, and the token cache.
pub(crate) struct OAuthClient {
    http: reqwest::Client,
    token_url: Url,
    client_id: String,
    key: SigningKey,
    scopes: Vec<String>,
    /// DPoP from the first request (configured), or since the token endpoint demanded it.
    dpop: AtomicBool,
    /// The last `DPoP-Nonce` the token endpoint sent.
    nonce: Mutex<Option<String>>,
    current: Mutex<Option<Arc<AccessToken>>>,
    /// Held while a token request is in flight: the single refresh every caller waits for.
    refresh: tokio::sync::Mutex<()>,
    generations: AtomicU64,
    /// When Okta last refused a token request, and its answer: callers in the following
    /// [`REFUSAL_HOLDOFF`] share it instead of asking again one after the other.
    last_refusal: Mutex<Option<(Instant, OAuthFailure)>>,
}

/// How long a refused token request is answered from memory (bad credentials would otherwise
/// cost one token request per RPC, against Okta's token-endpoint rate limit).
const REFUSAL_HOLDOFF: Duration = Duration::from_secs(2);

impl fmt::Debug for OAuthClient {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("OAuthClient")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("key", &self.key)
            .field("scopes", &self.scopes)
            .field("dpop", &self.dpop.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    token_type: String,
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl OAuthClient {
    pub(crate) fn new(http: reqwest::Client, base_url: &Url, settings: OAuthSettings) -> Self {
        let mut token_url = base_url.clone();
        token_url.set_path(TOKEN_PATH);
        token_url.set_query(None);
        token_url.set_fragment(None);
        Self {
            http,
            token_url,
            client_id: settings.client_id,
            key: settings.key,
            scopes: settings.scopes,
            dpop: AtomicBool::new(settings.dpop),
            nonce: Mutex::new(None),
            current: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            generations: AtomicU64::new(0),
            last_refusal: Mutex::new(None),
        }
    }

    fn cached(&self) -> Option<Arc<AccessToken>> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .filter(|token| Instant::now() < token.refresh_at)
    }

    async fn token(&self) -> Result<Arc<AccessToken>, OktaError> {
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        let _refreshing = self.refresh.lock().await;
        // Whoever held the lock before us may have refreshed already, or been refused.
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        let recent_refusal = self
            .last_refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .filter(|(at, _)| at.elapsed() < REFUSAL_HOLDOFF);
        if let Some((_, failure)) = recent_refusal {
            return Err(OktaError::OAuthRejected(Box::new(failure)));
        }
        let result = self.fetch_token().await;
        let refusal = match &result {
            Err(OktaError::OAuthRejected(failure)) => Some((Instant::now(), (**failure).clone())),
            _ => None,
        };
        *self
            .last_refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = refusal;
        let token = Arc::new(result?);
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(token.clone());
        Ok(token)
    }

    fn invalidate(&self, generation: u64) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current
            .as_ref()
            .is_some_and(|token| token.generation == generation)
        {
            *current = None;
        }
    }

    async fn request_auth(&self, method: &Method, url: &Url) -> Result<RequestAuth, OktaError> {
        let token = self.token().await?;
        let dpop = if token.dpop {
            let ath = b64(&Sha256::digest(token.value.expose_secret().as_bytes()));
            Some(self.proof(method, url, Some(&ath), None)?)
        } else {
            None
        };
        Ok(RequestAuth {
            authorization: token.authorization.clone(),
            dpop,
            generation: token.generation,
        })
    }

    /// A DPoP proof JWT for one request, as a sensitive header value.
    fn proof(
        &self,
        method: &Method,
        url: &Url,
        ath: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<HeaderValue, OktaError> {
        let mut htu = url.clone();
        htu.set_query(None);
        htu.set_fragment(None);
        let mut claims = json!({
            "htm": method.as_str(),
            "htu": htu.as_str(),
            "iat": chrono::Utc::now().timestamp(),
            "jti": random_id(),
        });
        if let Some(ath) = ath {
            claims["ath"] = Value::from(ath);
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = Value::from(nonce);
        }
        let header = json!({ "typ": "dpop+jwt", "jwk": self.key.public_jwk() });
        sensitive(&self.key.jws(header, &claims)?)
    }

    fn assertion(&self) -> Result<String, OktaError> {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url.as_str(),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
            "jti": random_id(),
        });
        self.key
            .jws(json!({ "typ": "JWT", "kid": self.key.key_id() }), &claims)
    }

    /// One refresh: token requests until Okta issues a token, answering its DPoP demands.
    async fn fetch_token(&self) -> Result<AccessToken, OktaError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let use_dpop = self.dpop.load(Ordering::Relaxed);
            let form = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("scope", &self.scopes.join(" "))
                .append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE)
                .append_pair("client_assertion", &self.assertion()?)
                .finish();
            let mut request = self
                .http
                .post(self.token_url.clone())
                .header(ACCEPT, "application/json")
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form);
            if use_dpop {
                let nonce = self
                    .nonce
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                request = request.header(
                    DPOP_HEADER,
                    self.proof(&Method::POST, &self.token_url, None, nonce.as_deref())?,
                );
            }
            let started = Instant::now();
            let response = request.send().await.map_err(OktaError::from_transport)?;
            let status = response.status();
            let headers = response.headers().clone();
            let meta = ResponseMeta {
                status: status.as_u16(),
                request_id: header_string(&headers, "x-okta-request-id"),
                rate_limit: RateLimitState::from_headers(&headers),
                retry_count: 0,
                after_unanswered: false,
            };
            let body = response.bytes().await.map_err(OktaError::from_transport)?;
            tracing::debug!(
                http.status = status.as_u16(),
                okta.request_id = meta.request_id.as_deref().unwrap_or_default(),
                duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                dpop = use_dpop,
                attempt,
                "okta token request"
            );
            if status.is_success() {
                return self.accept_token(&body, &meta);
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                return Err(OktaError::RateLimited {
                    retry_after: rate_limit::backoff_after_429(&headers),
                    body: None,
                    meta,
                });
            }
            if status.is_server_error() {
                return Err(OktaError::Unavailable {
                    status: status.as_u16(),
                    body: None,
                    meta,
                });
            }
            let Ok(error) = serde_json::from_slice::<OAuthErrorBody>(&body) else {
                return Err(OktaError::unexpected(
                    status.as_u16(),
                    "the token endpoint answered an error without an OAuth error body",
                    &meta,
                ));
            };
            let retryable = attempt < MAX_TOKEN_ATTEMPTS;
            match error.error.as_str() {
                "use_dpop_nonce" if retryable => {
                    let nonce = header_string(&headers, DPOP_NONCE_HEADER);
                    if nonce.is_none() && use_dpop {
                        return Err(self.failure(error, meta));
                    }
                    *self.nonce.lock().unwrap_or_else(PoisonError::into_inner) = nonce;
                    self.enable_dpop();
                }
                "invalid_dpop_proof" if retryable && !use_dpop => self.enable_dpop(),
                _ => return Err(self.failure(error, meta)),
            }
        }
    }

    fn enable_dpop(&self) {
        if !self.dpop.swap(true, Ordering::Relaxed) {
            tracing::info!(
                okta.client_id = %self.client_id,
                "okta demands DPoP for this service app; binding tokens to the key from now on"
            );
        }
    }

    fn accept_token(&self, body: &[u8], meta: &ResponseMeta) -> Result<AccessToken, OktaError> {
        let response: TokenResponse = serde_json::from_slice(body).map_err(|_| {
            OktaError::unexpected(
                meta.status,
                "the token endpoint's answer is not a token response",
                meta,
            )
        })?;
        let dpop = response.token_type.eq_ignore_ascii_case("DPoP");
        if !dpop && !response.token_type.eq_ignore_ascii_case("Bearer") {
            return Err(OktaError::unexpected(
                meta.status,
                format!("unsupported token_type `{}`", response.token_type),
                meta,
            ));
        }
        if dpop {
            self.dpop.store(true, Ordering::Relaxed);
        }
        let scheme = if dpop { "DPoP" } else { "Bearer" };
        let authorization = sensitive(&format!("{scheme} {}", response.access_token))?;
        let lifetime = Duration::from_secs(response.expires_in);
        tracing::info!(
            okta.client_id = %self.client_id,
            token_type = scheme,
            expires_in_s = response.expires_in,
            "obtained an okta access token"
        );
        Ok(AccessToken {
            authorization,
            value: SecretString::from(response.access_token),
            dpop,
            refresh_at: Instant::now() + refresh_after(lifetime),
            generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
        })
    }

    /// An OAuth error answer as an error naming the configuration to fix.
    fn failure(&self, error: OAuthErrorBody, meta: ResponseMeta) -> OktaError {
        let description = error.error_description.unwrap_or_default();
        let lower = description.to_ascii_lowercase();
        let client_id = &self.client_id;
        let hint = match error.error.as_str() {
            "invalid_client" if lower.contains("kid") || lower.contains("key id") => format!(
                "Okta has no public key with key id `{}` for the service app `{client_id}`: \
                 register the public key on the app, or fix `okta.oauth.key_id`",
                self.key.key_id()
            ),
            "invalid_client" if lower.contains("audience") => format!(
                "Okta expects another audience than `{}` in the client assertion: `okta.org_url` \
                 must be the org's own URL (the org authorization server mints Okta scopes)",
                self.token_url
            ),
            "invalid_client"
                if lower.contains("expir")
                    || lower.contains("future")
                    || lower.contains("clock")
                    || lower
                        .split(|c: char| !c.is_ascii_alphanumeric())
                        .any(|word| word == "iat" || word == "exp" || word == "nbf") =>
            {
                "Okta refused the client assertion's timestamps: the gateway host's clock is \
                 probably wrong (check NTP)"
                    .to_owned()
            }
            "invalid_client" if lower.contains("signature") => format!(
                "the client assertion's signature does not match the public key registered as \
                 `{}` on the service app `{client_id}`: `okta.oauth.private_key_file` holds \
                 another key",
                self.key.key_id()
            ),
            "invalid_client" => format!(
                "Okta does not accept the service app `{client_id}`: check `okta.oauth.client_id`, \
                 that the app is active and uses private_key_jwt client authentication"
            ),
            "invalid_scope" => format!(
                "the service app `{client_id}` is not granted all the requested scopes ({}): grant \
                 them on the app's Okta API Scopes tab, or request fewer with \
                 `okta.oauth.scopes` / `okta.oauth.read_only_scopes`",
                self.scopes.join(" ")
            ),
            "unauthorized_client" => format!(
                "the service app `{client_id}` may not use the client credentials grant: enable \
                 it on the app"
            ),
            "invalid_dpop_proof" | "use_dpop_nonce" => {
                "Okta refused the gateway's DPoP proof; check `okta.oauth.dpop` and the gateway \
                 host's clock"
                    .to_owned()
            }
            _ => format!(
                "Okta refused the token request of the service app `{client_id}`; check the \
                 `okta.oauth` settings"
            ),
        };
        tracing::error!(
            okta.oauth_error = %error.error,
            okta.oauth_error_description = %description,
            okta.request_id = meta.request_id.as_deref().unwrap_or_default(),
            "okta refused the gateway's oauth credentials"
        );
        OktaError::OAuthRejected(Box::new(OAuthFailure {
            status: meta.status,
            error: error.error,
            description: (!description.is_empty()).then_some(description),
            hint,
            meta,
        }))
    }
}

/// When to replace a token of `lifetime`: 60 s before expiry for long lifetimes, at 80% for
/// short ones.
fn refresh_after(lifetime: Duration) -> Duration {
    if lifetime > Duration::from_secs(300) {
        lifetime - Duration::from_secs(60)
    } else {
        lifetime * 4 / 5
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn random_id() -> String {
    b64(&rand::random::<[u8; 18]>())
}

fn sensitive(value: &str) -> Result<HeaderValue, OktaError> {
    let mut header = HeaderValue::from_str(value)
        .map_err(|_| local_error("a credential is not a valid http header value"))?;
    header.set_sensitive(true);
    Ok(header)
}

fn local_error(detail: &str) -> OktaError {
    OktaError::unexpected(0, detail, &ResponseMeta::default())
}

fn header_string(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;

    fn pem(label: &str, der: &[u8]) -> String {
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            STANDARD.encode(der)
        )
    }

    #[test]
    fn default_scopes_follow_read_only_mode() {
        assert_eq!(
            default_scopes(false),
            [
                "okta.users.read",
                "okta.users.manage",
                "okta.groups.read",
                "okta.groups.manage",
                "okta.logs.read",
                "okta.devices.read",
                "okta.devices.manage"
            ]
        );
        assert!(default_scopes(true).iter().all(|s| s.ends_with(".read")));
    }

    #[test]
    fn ec_pem_keys_parse_and_never_print() {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let text = pem("PRIVATE KEY", pkcs8.as_ref());
        let key = SigningKey::parse(&text, Some("k1")).unwrap();
        assert_eq!(key.alg(), "ES256");
        assert_eq!(key.key_id(), "k1");
        let debug = format!("{key:?}");
        let body_line = text.lines().nth(1).unwrap();
        assert!(!debug.contains(&body_line[..20]), "{debug}");
        let jwk = key.public_jwk();
        assert_eq!(jwk["crv"], "P-256");
        assert!(jwk.get("d").is_none());
        assert!(
            SigningKey::parse(&text, None)
                .unwrap_err()
                .0
                .contains("okta.oauth.key_id")
        );
    }

    #[test]
    fn rsa_pem_keys_parse() {
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = pair.as_der().unwrap();
        let key = SigningKey::parse(&pem("PRIVATE KEY", der.as_ref()), Some("r")).unwrap();
        assert_eq!(key.alg(), "RS256");
        assert_eq!(key.public_jwk()["e"], "AQAB");
    }

    #[test]
    fn bad_keys_are_explained_without_echoing_them() {
        for (text, expected) in [
            ("not a key", "neither PEM"),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
                "not the private key",
            ),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----",
                "encrypted",
            ),
            (
                &format!(
                    "-----BEGIN {0} KEY-----\nAAAA\n-----END {0} KEY-----",
                    "PRIVATE"
                ),
                "neither RSA",
            ),
            (r#"{"kty":"oct","k":"c2VjcmV0"}"#, "unsupported JWK"),
            (
                r#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}"#,
                "lacks `d`",
            ),
        ] {
            let error = SigningKey::parse(text, Some("k")).unwrap_err();
            assert!(error.0.contains(expected), "{text}: {error}");
            assert!(!error.0.contains("c2VjcmV0"));
        }
    }

    fn oauth_client(scopes: &[&str]) -> OAuthClient {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let key = SigningKey::parse(&pem("PRIVATE KEY", pkcs8.as_ref()), Some("kid-7")).unwrap();
        OAuthClient::new(
            reqwest::Client::new(),
            &Url::parse("https://acme.okta.com").unwrap(),
            OAuthSettings {
                client_id: "0oaclient".to_owned(),
                key,
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                dpop: false,
            },
        )
    }

    fn hint_for(error: &str, description: &str) -> String {
        let client = oauth_client(&["okta.users.read", "okta.users.manage"]);
        let failure = client.failure(
            OAuthErrorBody {
                error: error.to_owned(),
                error_description: Some(description.to_owned()),
            },
            ResponseMeta::default(),
        );
        match failure {
            OktaError::OAuthRejected(failure) => failure.hint,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn token_endpoint_errors_name_what_to_fix() {
        for (error, description, expected) in [
            (
                "invalid_client",
                "The client_assertion token is expired.",
                "clock",
            ),
            (
                "invalid_client",
                "The client_assertion token was issued in the future (iat).",
                "clock",
            ),
            (
                "invalid_client",
                "The client_assertion's kid does not match any key id registered for the client.",
                "`okta.oauth.key_id`",
            ),
            (
                "invalid_client",
                "The client_assertion signature is invalid.",
                "`okta.oauth.private_key_file`",
            ),
            (
                "invalid_client",
                "Invalid value for 'client_id' parameter.",
                "`okta.oauth.client_id`",
            ),
            (
                "invalid_client",
                "The client_assertion token has an expiration too far into the future.",
                "clock",
            ),
            (
                "invalid_client",
                "The audience claim for client_assertion must be the endpoint invoked for the request.",
                "`okta.org_url`",
            ),
            (
                "invalid_scope",
                "The following scopes are not granted to the client: okta.users.manage",
                "okta.users.manage",
            ),
            ("invalid_scope", "", "`okta.oauth.read_only_scopes`"),
        ] {
            let hint = hint_for(error, description);
            assert!(hint.contains(expected), "{description}: {hint}");
        }
    }

    #[test]
    fn assertions_and_proofs_carry_the_required_claims() {
        let client = oauth_client(&["okta.users.read"]);
        let decode = |part: &str| -> Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
        };
        let assertion = client.assertion().unwrap();
        let parts: Vec<&str> = assertion.split('.').collect();
        let (header, claims) = (decode(parts[0]), decode(parts[1]));
        assert_eq!(header["kid"], "kid-7");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(claims["iss"], "0oaclient");
        assert_eq!(claims["sub"], "0oaclient");
        assert_eq!(claims["aud"], "https://acme.okta.com/oauth2/v1/token");
        assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 3600);

        let url = Url::parse("https://acme.okta.com/api/v1/users?limit=2&search=x").unwrap();
        let proof = client.proof(&Method::GET, &url, Some("ATH"), None).unwrap();
        assert!(proof.is_sensitive());
        let parts: Vec<String> = proof
            .to_str()
            .unwrap()
            .split('.')
            .map(str::to_owned)
            .collect();
        let (header, claims) = (decode(&parts[0]), decode(&parts[1]));
        assert_eq!(header["typ"], "dpop+jwt");
        assert!(header["jwk"].get("d").is_none());
        assert_eq!(claims["htm"], "GET");
        assert_eq!(claims["htu"], "https://acme.okta.com/api/v1/users");
        assert_eq!(claims["ath"], "ATH");
        assert!(claims["jti"].as_str().is_some_and(|jti| jti.len() >= 16));
    }

    #[test]
    fn refresh_happens_before_expiry() {
        assert_eq!(
            refresh_after(Duration::from_secs(3600)),
            Duration::from_secs(3540)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(10)),
            Duration::from_secs(8)
        );
    }
}
