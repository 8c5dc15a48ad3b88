//! Okta's org authorization server, for service apps: `POST /oauth2/v1/token` with the client
//! credentials grant and a private_key_jwt client assertion, optional DPoP binding
//! with the `use_dpop_nonce` challenge, and the checks the Management API makes on `Bearer` and
//! `DPoP` access tokens: validity and expiry (401 E0000011 with `WWW-Authenticate`), then the
//! scope each operation needs, as Okta's Management API reference lists it (403, empty body,
//! `WWW-Authenticate … error="insufficient_scope"`).
//!
//! Clients come from seed documents (`clients:`) and `POST /__sim/oauth/clients`:
//!
//! ```yaml
//! clients:
//!   - client_id: 0oaservice
//!     jwks: {keys: [{kty: EC, crv: P-256, kid: key-1, x: "…", y: "…"}]}  # public keys
//!     scopes: [okta.users.read, okta.users.manage]   # granted scopes
//!     dpop_bound: false             # Require DPoP header in token requests
//!     token_lifetime_seconds: 3600  # Okta: fixed at one hour; shorter for tests
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::http::Reply;
use super::ids;
use super::jose::{Jwk, Jws, b64};

/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/oauth2/v1/token";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest a client assertion may live (Okta: `exp` at most one hour ahead).
const MAX_ASSERTION_LIFETIME_SECS: i64 = 3600;
/// Tolerated clock difference for `iat` of assertions and DPoP proofs.
const CLOCK_SKEW_SECS: i64 = 60;
const DPOP_ALGS: &str = "RS256 RS384 RS512 ES256 ES384 ES512";

fn default_lifetime() -> u64 {
    3600
}

/// A set of public keys, as on an Okta app (`jwks: {keys: […]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// A registered service app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// The client id (`iss` and `sub` of its assertions).
    pub client_id: String,
    /// Its public keys, looked up by `kid`.
    pub jwks: JwkSet,
    /// The Okta API scopes granted to the app.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// "Require DPoP header in token requests" (`dpop_bound_access_tokens`).
    #[serde(default)]
    pub dpop_bound: bool,
    /// Lifetime of issued access tokens.
    #[serde(default = "default_lifetime")]
    pub token_lifetime_seconds: u64,
}

impl ClientSpec {
    /// Checks the registration: an id, usable public keys, `okta.*` scopes, a lifetime.
    pub fn validate(&self) -> Result<(), String> {
        if self.client_id.trim().is_empty() {
            return Err("client_id must not be empty".to_owned());
        }
        if self.jwks.keys.is_empty() {
            return Err(format!(
                "client {}: jwks.keys must not be empty",
                self.client_id
            ));
        }
        for key in &self.jwks.keys {
            key.check()
                .map_err(|e| format!("client {}: {e}", self.client_id))?;
        }
        if let Some(bad) = self.scopes.iter().find(|s| !s.starts_with("okta.")) {
            return Err(format!(
                "client {}: `{bad}` is not an Okta API scope",
                self.client_id
            ));
        }
        if self.token_lifetime_seconds == 0 || self.token_lifetime_seconds > 86_400 {
            return Err(format!(
                "client {}: token_lifetime_seconds must be 1..=86400",
                self.client_id
            ));
        }
        Ok(())
    }
}

struct IssuedToken {
    client_id: String,
    scopes: Vec<String>,
    expires_at_ms: i64,
    /// The DPoP key thumbprint the token is bound to.
    jkt: Option<String>,
}

/// Clients, issued tokens, replay caches and counters.
#[derive(Default)]
pub struct OAuthServer {
    clients: BTreeMap<String, ClientSpec>,
    tokens: HashMap<String, IssuedToken>,
    /// Used `jti`s of assertions and proofs, with when they may be forgotten (seconds).
    seen_jtis: HashMap<String, i64>,
    nonce: Option<String>,
    token_requests: u64,
    tokens_issued: u64,
    /// Management API requests by `Authorization` scheme (`SSWS`, `Bearer`, `DPoP`, `other`).
    schemes: BTreeMap<String, u64>,
}

impl fmt::Debug for OAuthServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthServer")
            .field("clients", &self.clients.keys().collect::<Vec<_>>())
            .field("tokens", &self.tokens.len())
            .field("token_requests", &self.token_requests)
            .finish_non_exhaustive()
    }
}

/// `GET /__sim/oauth/stats`.
#[derive(Debug, Clone, Serialize)]
pub struct OAuthStats {
    /// Every `POST /oauth2/v1/token`, successful or not.
    pub token_requests: u64,
    /// Access tokens issued.
    pub tokens_issued: u64,
    /// Issued tokens not yet expired or revoked.
    pub active_tokens: usize,
    /// Management API requests by `Authorization` scheme (`SSWS`, `Bearer`, `DPoP`, `other`).
    pub requests_by_scheme: BTreeMap<String, u64>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Reply {
    let mut reply = Reply::json(
        status,
        json!({ "error": error, "error_description": description }).to_string(),
    );
    reply
        .headers
        .push(("cache-control".to_owned(), "no-cache, no-store".to_owned()));
    reply
}

fn invalid_client(description: &str) -> Reply {
    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description)
}

impl OAuthServer {
    /// Registers (or replaces) a client.
    pub fn register(&mut self, client: ClientSpec) -> Result<(), String> {
        client.validate()?;
        self.clients.insert(client.client_id.clone(), client);
        Ok(())
    }

    /// The registered clients.
    pub fn clients(&self) -> Vec<ClientSpec> {
        self.clients.values().cloned().collect()
    }

    /// Counters for tests.
    pub fn stats(&self) -> OAuthStats {
        let now = now_ms();
        OAuthStats {
            token_requests: self.token_requests,
            tokens_issued: self.tokens_issued,
            active_tokens: self
                .tokens
                .values()
                .filter(|t| t.expires_at_ms > now)
                .count(),
            requests_by_scheme: self.schemes.clone(),
        }
    }

    /// Counts one Management API request by its `Authorization` scheme.
    pub fn count_scheme(&mut self, scheme: &str) {
        let name = ["SSWS", "Bearer", "DPoP"]
            .into_iter()
            .find(|known| known.eq_ignore_ascii_case(scheme))
            .unwrap_or("other");
        *self.schemes.entry(name.to_owned()).or_default() += 1;
    }

    /// Revokes every issued access token.
    pub fn revoke_all(&mut self) {
        self.tokens.clear();
    }

    fn nonce(&mut self) -> String {
        self.nonce.get_or_insert_with(|| ids::url_safe(43)).clone()
    }

    /// Records a `jti`; false when it was already used.
    fn fresh_jti(&mut self, jti: &str, forget_at: i64) -> bool {
        let now = now_s();
        self.seen_jtis.retain(|_, until| *until >= now);
        if self.seen_jtis.contains_key(jti) {
            return false;
        }
        self.seen_jtis
            .insert(jti.to_owned(), forget_at.max(now + 2 * CLOCK_SKEW_SECS));
        true
    }

    /// `POST /oauth2/v1/token`.
    pub fn token(&mut self, token_url: &str, headers: &HeaderMap, body: &[u8]) -> Reply {
        self.token_requests += 1;
        let form_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !form_type.starts_with("application/x-www-form-urlencoded") {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request must be application/x-www-form-urlencoded.",
            );
        }
        let form: HashMap<String, String> = url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
        if field("grant_type") != "client_credentials" {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "The authorization server supports only the client_credentials grant here.",
            );
        }
        if field("client_assertion_type") != ASSERTION_TYPE || field("client_assertion").is_empty()
        {
            return invalid_client(
                "Client authentication with private_key_jwt is required: client_assertion_type \
                 and client_assertion must be provided.",
            );
        }
        let assertion = match Jws::parse(field("client_assertion")) {
            Ok(jws) => jws,
            Err(_) => return invalid_client("The client_assertion is not a valid JWT."),
        };
        let issuer = assertion.claim_str("iss").unwrap_or_default().to_owned();
        let Some(client) = self.clients.get(&issuer).cloned() else {
            return invalid_client("Invalid value for 'client_id' parameter.");
        };
        if assertion.claim_str("sub") != Some(issuer.as_str())
            || form.get("client_id").is_some_and(|id| *id != issuer)
        {
            return invalid_client(
                "The client_assertion's iss and sub must both be the client_id.",
            );
        }
        let key = match assertion.header_str("kid") {
            Some(kid) => client
                .jwks
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid)),
            None => client.jwks.keys.iter().find(|k| assertion.verified_by(k)),
        };
        let Some(key) = key else {
            return invalid_client(
                "The client_assertion's kid does not match any key id registered for the client.",
            );
        };
        if !assertion.verified_by(key) {
            return invalid_client("The client_assertion signature is invalid.");
        }
        if assertion.claim_str("aud") != Some(token_url) {
            return invalid_client(
                "The audience claim for client_assertion must be the endpoint invoked for the request.",
            );
        }
        let now = now_s();
        let Some(exp) = assertion.claim_i64("exp") else {
            return invalid_client("The client_assertion token must have an exp claim.");
        };
        if exp <= now - CLOCK_SKEW_SECS {
            return invalid_client("The client_assertion token is expired (exp).");
        }
        if exp > now + MAX_ASSERTION_LIFETIME_SECS + CLOCK_SKEW_SECS {
            return invalid_client(
                "The client_assertion token has an expiration (exp) too far in the future.",
            );
        }
        if assertion
            .claim_i64("iat")
            .is_some_and(|iat| iat > now + CLOCK_SKEW_SECS)
        {
            return invalid_client("The client_assertion token was issued in the future (iat).");
        }
        let jti = assertion.claim_str("jti").map(str::to_owned);
        if jti
            .as_deref()
            .is_some_and(|jti| self.seen_jtis.contains_key(&format!("assertion:{jti}")))
        {
            return invalid_client("The client_assertion token has already been used (jti).");
        }
        // DPoP: required for DPoP-bound clients, honoured whenever a proof is sent.
        let proof = headers.get("dpop").and_then(|v| v.to_str().ok());
        let jkt = match (proof, client.dpop_bound) {
            (None, true) => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_dpop_proof",
                    "The DPoP proof JWT header is missing.",
                );
            }
            (None, false) => None,
            (Some(proof), _) => {
                let checked = match self.check_proof(proof, "POST", token_url, None) {
                    Ok(checked) => checked,
                    Err(why) => {
                        return oauth_error(StatusCode::BAD_REQUEST, "invalid_dpop_proof", &why);
                    }
                };
                let nonce = self.nonce();
                if checked.nonce.as_deref() != Some(nonce.as_str()) {
                    let mut reply = oauth_error(
                        StatusCode::BAD_REQUEST,
                        "use_dpop_nonce",
                        "Authorization server requires nonce in DPoP proof.",
                    );
                    reply.headers.push(("dpop-nonce".to_owned(), nonce));
                    return reply;
                }
                if !self.fresh_jti(&format!("dpop:{}", checked.jti), now + CLOCK_SKEW_SECS) {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_dpop_proof",
                        "The DPoP proof jti has already been used.",
                    );
                }
                Some(checked.jkt)
            }
        };
        let requested: Vec<String> = field("scope")
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if requested.is_empty() {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "The authorization server resource does not have any configured default scopes, \
                 'scope' must be provided.",
            );
        }
        let ungranted: Vec<&str> = requested
            .iter()
            .filter(|s| !client.scopes.contains(s))
            .map(String::as_str)
            .collect();
        if !ungranted.is_empty() {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                &format!(
                    "The following scopes are not granted to the client: {}",
                    ungranted.join(" ")
                ),
            );
        }
        if let Some(jti) = &jti {
            self.fresh_jti(&format!("assertion:{jti}"), exp);
        }
        let access_token = format!("sim.{}", ids::url_safe(48));
        let lifetime = client.token_lifetime_seconds;
        let token_type = if jkt.is_some() { "DPoP" } else { "Bearer" };
        let now = now_ms();
        self.tokens.retain(|_, t| t.expires_at_ms > now);
        self.tokens.insert(
            access_token.clone(),
            IssuedToken {
                client_id: client.client_id.clone(),
                scopes: requested.clone(),
                expires_at_ms: now + i64::try_from(lifetime).unwrap_or(3600) * 1000,
                jkt,
            },
        );
        self.tokens_issued += 1;
        let mut reply = Reply::ok(
            json!({
                "token_type": token_type,
                "expires_in": lifetime,
                "access_token": access_token,
                "scope": requested.join(" "),
            })
            .to_string(),
        );
        reply
            .headers
            .push(("cache-control".to_owned(), "no-cache, no-store".to_owned()));
        reply
    }

    /// Checks a DPoP proof's form, signature, `htm`, `htu`, `iat` and `ath` (not its `jti`
    /// replay or nonce, which the caller decides on).
    fn check_proof(
        &self,
        proof: &str,
        method: &str,
        htu: &str,
        access_token: Option<&str>,
    ) -> Result<CheckedProof, String> {
        let jws = Jws::parse(proof).map_err(|e| format!("The DPoP proof is malformed: {e}."))?;
        if jws.header_str("typ") != Some("dpop+jwt") {
            return Err("The DPoP proof typ must be dpop+jwt.".to_owned());
        }
        let jwk: Jwk = jws
            .header
            .get("jwk")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or("The DPoP proof has no usable jwk header.")?;
        jwk.check()
            .map_err(|e| format!("The DPoP proof jwk is not acceptable: {e}."))?;
        if !jws.verified_by(&jwk) {
            return Err("The DPoP proof signature is invalid.".to_owned());
        }
        if jws.claim_str("htm") != Some(method) {
            return Err("The DPoP proof htm does not match the request method.".to_owned());
        }
        if jws.claim_str("htu") != Some(htu) {
            return Err("The DPoP proof htu does not match the request URL.".to_owned());
        }
        let now = now_s();
        match jws.claim_i64("iat") {
            Some(iat) if (iat - now).abs() <= CLOCK_SKEW_SECS => {}
            _ => return Err("The DPoP proof iat is missing or not recent.".to_owned()),
        }
        let jti = jws
            .claim_str("jti")
            .filter(|j| !j.is_empty())
            .ok_or("The DPoP proof has no jti.")?
            .to_owned();
        if let Some(token) = access_token {
            let expected = b64(&Sha256::digest(token.as_bytes()));
            if jws.claim_str("ath") != Some(expected.as_str()) {
                return Err("The DPoP proof ath does not match the access token.".to_owned());
            }
        }
        Ok(CheckedProof {
            jkt: jwk.thumbprint(),
            jti,
            nonce: jws.claim_str("nonce").map(str::to_owned),
        })
    }

    /// Authenticates a Management API request made with `Authorization: Bearer|DPoP <token>`
    /// and checks the token grants the operation's scope.
    pub fn authorize(&mut self, request: &ResourceRequest<'_>) -> Result<(), Reply> {
        let ResourceRequest {
            scheme,
            token,
            proof,
            method,
            htu,
            required_scope,
            base,
        } = *request;
        let dpop_scheme = scheme.eq_ignore_ascii_case("DPoP");
        let challenge = |error: &str, description: &str, scope: Option<&str>| {
            let mut value = if dpop_scheme {
                format!("DPoP algs=\"{DPOP_ALGS}\", ")
            } else {
                "Bearer ".to_owned()
            };
            value.push_str(&format!(
                "authorization_uri=\"{base}/oauth2/v1/authorize\", realm=\"IdP\""
            ));
            if let Some(scope) = scope {
                value.push_str(&format!(", scope=\"{scope}\""));
            }
            value.push_str(&format!(
                ", error=\"{error}\", error_description=\"{description}\""
            ));
            ("www-authenticate".to_owned(), value)
        };
        let invalid = |description: &str| {
            let mut reply: Reply = super::errors::OktaError::new("E0000011", "").into();
            reply
                .headers
                .push(challenge("invalid_token", description, None));
            reply
        };
        let now = now_ms();
        let (client_id, scopes, jkt) = match self.tokens.get(token) {
            Some(t) if t.expires_at_ms > now => {
                (t.client_id.clone(), t.scopes.clone(), t.jkt.clone())
            }
            Some(_) => return Err(invalid("The access token is expired.")),
            None => return Err(invalid("The access token is invalid.")),
        };
        if !self.clients.contains_key(&client_id) {
            return Err(invalid("The access token's client no longer exists."));
        }
        match (jkt, dpop_scheme) {
            (Some(_), false) => {
                return Err(invalid(
                    "The access token is DPoP-bound: use the DPoP authorization scheme.",
                ));
            }
            (None, true) => {
                return Err(invalid(
                    "The access token is not DPoP-bound: use the Bearer authorization scheme.",
                ));
            }
            (Some(jkt), true) => {
                let proof_error = |description: String| {
                    let mut reply: Reply = super::errors::OktaError::new("E0000011", "").into();
                    reply
                        .headers
                        .push(challenge("invalid_dpop_proof", &description, None));
                    reply
                };
                let Some(proof) = proof else {
                    return Err(proof_error(
                        "The DPoP proof JWT header is missing.".to_owned(),
                    ));
                };
                let checked = self
                    .check_proof(proof, method, htu, Some(token))
                    .map_err(proof_error)?;
                if checked.jkt != jkt {
                    return Err(proof_error(
                        "The DPoP proof key does not match the key the token is bound to."
                            .to_owned(),
                    ));
                }
                if !self.fresh_jti(&format!("dpop:{}", checked.jti), now_s() + CLOCK_SKEW_SECS) {
                    return Err(proof_error(
                        "The DPoP proof jti has already been used.".to_owned(),
                    ));
                }
            }
            (None, false) => {}
        }
        if let Some(scope) = required_scope {
            if !scopes.iter().any(|s| s == scope) {
                let mut reply = Reply::empty(StatusCode::FORBIDDEN);
                reply.headers.push(challenge(
                    "insufficient_scope",
                    "The access token provided does not contain the required scopes.",
                    Some(scope),
                ));
                return Err(reply);
            }
        }
        Ok(())
    }
}

/// A Management API request carrying an access token.
#[derive(Debug, Clone, Copy)]
pub struct ResourceRequest<'a> {
    /// `Bearer` or `DPoP`.
    pub scheme: &'a str,
    /// The access token.
    pub token: &'a str,
    /// The `DPoP` header, if any.
    pub proof: Option<&'a str>,
    /// The HTTP method.
    pub method: &'a str,
    /// The request URL without query (DPoP `htu`).
    pub htu: &'a str,
    /// The scope the operation needs.
    pub required_scope: Option<&'a str>,
    /// The org's base URL, for the `WWW-Authenticate` challenge.
    pub base: &'a str,
}

struct CheckedProof {
    jkt: String,
    jti: String,
    nonce: Option<String>,
}

/// The scope a Management API operation needs (Okta's API reference); `None` for paths the simulator
/// does not serve (they answer 404 anyway).
pub fn required_scope(method: &str, segments: &[&str]) -> Option<&'static str> {
    let read = method == "GET";
    let pick = |r: &'static str, m: &'static str| Some(if read { r } else { m });
    match segments {
        ["api", "v1", "users", _, "devices"] => Some("okta.users.read"),
        ["api", "v1", "users", ..] => pick("okta.users.read", "okta.users.manage"),
        ["api", "v1", "groups", ..] => pick("okta.groups.read", "okta.groups.manage"),
        ["api", "v1", "logs"] => Some("okta.logs.read"),
        ["api", "v1", "devices", ..] => pick("okta.devices.read", "okta.devices.manage"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_follow_the_endpoint_table() {
        assert_eq!(
            required_scope("GET", &["api", "v1", "users", "x", "groups"]),
            Some("okta.users.read")
        );
        assert_eq!(
            required_scope("POST", &["api", "v1", "users", "x", "lifecycle", "suspend"]),
            Some("okta.users.manage")
        );
        assert_eq!(
            required_scope("PUT", &["api", "v1", "groups", "g", "users", "u"]),
            Some("okta.groups.manage")
        );
        assert_eq!(
            required_scope("GET", &["api", "v1", "logs"]),
            Some("okta.logs.read")
        );
        assert_eq!(
            required_scope("DELETE", &["api", "v1", "devices", "d"]),
            Some("okta.devices.manage")
        );
        assert_eq!(required_scope("GET", &["api", "v1", "apps"]), None);
    }

    #[test]
    fn registrations_are_checked() {
        let mut server = OAuthServer::default();
        let key = Jwk {
            kty: "EC".to_owned(),
            kid: Some("k".to_owned()),
            crv: Some("P-256".to_owned()),
            x: Some("AA".to_owned()),
            y: Some("AA".to_owned()),
            n: None,
            e: None,
            d: None,
        };
        let mut client = ClientSpec {
            client_id: "0oa1".to_owned(),
            jwks: JwkSet {
                keys: vec![key.clone()],
            },
            scopes: vec!["okta.users.read".to_owned()],
            dpop_bound: false,
            token_lifetime_seconds: 60,
        };
        assert!(server.register(client.clone()).is_ok());
        client.scopes.push("openid".to_owned());
        assert!(server.register(client.clone()).is_err());
        client.scopes.pop();
        client.jwks.keys[0].d = Some("secret".to_owned());
        assert!(server.register(client).is_err());
    }
}
