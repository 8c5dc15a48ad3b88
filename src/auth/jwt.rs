//! Bearer JWTs (`authorization: Bearer <JWT>`): Kubernetes projected service-account tokens
//! and OIDC workload tokens, verified with jsonwebtoken (on aws-lc-rs) against the issuer's JWKS.
//!
//! A token is accepted when: it is a compact JWS; its `alg` is one of
//! `auth.jwt.algorithms` (`none` never is) and it has no `crit` header; its `kid` names a key of
//! the JWKS (an unknown `kid` reloads the set once, see [`super::jwks`]) that verifies the
//! signature; `iss` equals `auth.jwt.issuer`; `aud` (a string or an array) holds one of
//! `auth.jwt.audiences`; `exp` is present and not passed, and `nbf` / `iat`, when present, are
//! not in the future, each with `auth.jwt.leeway_s` of clock skew, and all three are JSON numbers
//! (NumericDate); `sub` is a usable identity ([`super::identity`]). The caller is `sub`. A
//! Kubernetes subject, `system:serviceaccount:NS:NAME`, is accepted only from a token whose
//! Kubernetes claims name that account: the `kubernetes.io` claim of projected tokens, the flat
//! `kubernetes.io/serviceaccount/…` claims of legacy ones, or both, agreeing.
//!
//! The signature, `iss`, `aud`, `exp` and `nbf` are checked by jsonwebtoken's `decode` and
//! `Validation`; what it does not check is checked around it, on the claims it decoded: that
//! `exp` is present (required here rather than by the crate, so a string `exp` is named as not a
//! NumericDate), that `iss` is one string, `iat`, and the subject rules. Keys named by the token
//! itself (`jwk`, `jku`, `x5u`, `x5c` headers) are never used: only the `kid` is read, and only
//! the JWKS is searched.
//!
//! Errors say which check failed and never contain the token or anything read from it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::{Error as JoseError, ErrorKind};
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde_json::{Map, Value};
use url::Url;

use super::identity::{Form, identity_of, is_service_account};
use super::jwks::{Jwks, JwksSource};
use super::keys::{KeySet, SUPPORTED, algorithm_name, algorithm_named};
use crate::config::JwtSettings;

/// The longest token accepted; real ones are one to two kilobytes.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The most clock skew `auth.jwt.leeway_s` may allow.
const MAX_LEEWAY_S: u64 = 300;
/// The shortest `auth.jwt.jwks_refresh_s`.
const MIN_JWKS_REFRESH_S: u64 = 10;
/// The namespace and service-account claims of legacy (secret-based) Kubernetes tokens.
const LEGACY_NAMESPACE_CLAIM: &str = "kubernetes.io/serviceaccount/namespace";
const LEGACY_ACCOUNT_CLAIM: &str = "kubernetes.io/serviceaccount/service-account.name";

/// Why a token was refused; the text names the failed check, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts with JSON objects, or too long.
    #[error("the bearer token is not a JWT (a compact JWS of three base64url parts)")]
    Malformed,
    /// `alg: none`.
    #[error("the token is unsigned (`alg: none`), which is never accepted")]
    Unsigned,
    /// An algorithm not in `auth.jwt.algorithms`.
    #[error("the token's signature algorithm is not accepted (accepted: {0})")]
    AlgorithmNotAccepted(String),
    /// A `crit` header: extensions the gateway does not implement.
    #[error("the token has critical header extensions (`crit`), which are not supported")]
    CriticalHeader,
    /// No `kid` header.
    #[error("the token has no key id (`kid`)")]
    MissingKeyId,
    /// The `kid` is not in the JWKS, even after reloading it.
    #[error("the token's key id (`kid`) is not in the issuer's JWKS")]
    UnknownKeyId,
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// `iss` is missing or another issuer.
    #[error("the token's issuer (`iss`) is not the accepted issuer")]
    WrongIssuer,
    /// No accepted audience in `aud`.
    #[error("the token's audience (`aud`) holds none of the accepted audiences")]
    WrongAudience,
    /// No `exp`.
    #[error("the token has no expiry (`exp`)")]
    MissingExpiry,
    /// `exp` has passed.
    #[error("the token has expired (`exp`)")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not valid yet (`nbf`)")]
    NotYetValid,
    /// `iat` is in the future.
    #[error("the token was issued in the future (`iat`)")]
    IssuedInFuture,
    /// `exp`, `nbf` or `iat` is there but not a number.
    #[error("the token's `{0}` is not a NumericDate (a JSON number of seconds)")]
    NotNumericDate(&'static str),
    /// `sub` is missing or not a usable identity.
    #[error(
        "the token's subject (`sub`) is missing or not a usable identity (`spiffe://…`, \
         `apikey:…` and `anonymous` are other mechanisms' names)"
    )]
    BadSubject,
    /// `sub` disagrees with the Kubernetes claims, or they are incomplete or disagree.
    #[error("the token's subject (`sub`) disagrees with its `kubernetes.io` claims")]
    KubernetesMismatch,
    /// A service-account `sub` without Kubernetes claims to vouch for it.
    #[error(
        "the token's subject (`sub`) is a Kubernetes service account, but the token has no \
         `kubernetes.io` claim naming it"
    )]
    ServiceAccountWithoutClaim,
}

impl JwtSettings {
    /// Whether JWT authentication is asked for (any of its identifying settings is set).
    pub fn is_configured(&self) -> bool {
        self.issuer.is_some()
            || self.audiences.is_some()
            || self.jwks_file.is_some()
            || self.jwks_url.is_some()
    }
}

/// The checks `auth.jwt` asks for, validated; no I/O.
#[derive(Debug)]
pub struct JwtPolicy {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway_s: u64,
    source: JwksSource,
    refresh: Duration,
}

impl JwtPolicy {
    /// The policy `settings` describe, `None` when JWTs are not configured, or every problem
    /// by setting name.
    pub fn from_settings(settings: &JwtSettings) -> Result<Option<Self>, Vec<String>> {
        if !settings.is_configured() {
            return Ok(None);
        }
        let mut problems = Vec::new();
        let issuer = settings
            .issuer
            .as_deref()
            .map(str::trim)
            .filter(|issuer| !issuer.is_empty());
        if issuer.is_none() {
            problems.push(
                "`auth.jwt.issuer` must be set: the exact `iss` of accepted tokens (for \
                 Kubernetes, the cluster's service-account issuer)"
                    .to_owned(),
            );
        }
        let audiences = settings
            .audiences
            .as_ref()
            .map(|list| list.words())
            .unwrap_or_default();
        if audiences.is_empty() {
            problems.push(
                "`auth.jwt.audiences` must name at least one audience (the `aud` callers \
                 request their tokens for)"
                    .to_owned(),
            );
        }
        let mut algorithms = Vec::new();
        let names = settings.algorithms.words();
        for name in &names {
            match algorithm_named(name) {
                Some(algorithm) => algorithms.push(algorithm),
                None if name.eq_ignore_ascii_case("none") => problems
                    .push("`auth.jwt.algorithms` must not hold `none`: tokens are signed".into()),
                None => problems.push(format!(
                    "`auth.jwt.algorithms` holds `{name}`, which is not one of {}",
                    algorithm_names(SUPPORTED.map(|(_, algorithm)| algorithm).as_slice())
                )),
            }
        }
        if names.is_empty() {
            problems.push("`auth.jwt.algorithms` is empty".to_owned());
        }
        let source = match (&settings.jwks_file, settings.jwks_url.as_deref()) {
            (Some(_), Some(_)) => {
                problems.push("set one of `auth.jwt.jwks_file` and `auth.jwt.jwks_url`".into());
                None
            }
            (None, None) => {
                problems.push(
                    "`auth.jwt.jwks_file` or `auth.jwt.jwks_url` must be set: where the \
                     issuer's public keys are"
                        .to_owned(),
                );
                None
            }
            (Some(path), None) => Some(JwksSource::File(path.clone())),
            (None, Some(raw)) => match jwks_url(raw) {
                Ok(url) => Some(JwksSource::Url(url)),
                Err(problem) => {
                    problems.push(problem);
                    None
                }
            },
        };
        if settings.leeway_s > MAX_LEEWAY_S {
            problems.push(format!(
                "`auth.jwt.leeway_s` must be at most {MAX_LEEWAY_S} (fix the clocks instead)"
            ));
        }
        if settings.jwks_refresh_s < MIN_JWKS_REFRESH_S {
            problems.push(format!(
                "`auth.jwt.jwks_refresh_s` must be at least {MIN_JWKS_REFRESH_S}"
            ));
        }
        match (issuer, source) {
            (Some(issuer), Some(source)) if problems.is_empty() => Ok(Some(Self {
                issuer: issuer.to_owned(),
                audiences,
                algorithms,
                leeway_s: settings.leeway_s,
                source,
                refresh: Duration::from_secs(settings.jwks_refresh_s),
            })),
            _ => Err(problems),
        }
    }

    /// The algorithm and key id of `token`, which is refused here when its header alone says so:
    /// too long, not a JWS, unsigned, an algorithm not accepted, `crit`, no `kid`.
    fn header(&self, token: &str) -> Result<(Algorithm, String), JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::Malformed);
        }
        let header = decode_header(token).map_err(|error| self.header_refusal(&error))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(self.algorithm_not_accepted());
        }
        if header.crit.is_some() {
            return Err(JwtError::CriticalHeader);
        }
        let kid = header.kid.ok_or(JwtError::MissingKeyId)?;
        Ok((header.alg, kid))
    }

    /// The caller identity of `token` (its header read by [`Self::header`]), verified with the
    /// keys of `keys` that have its `kid` and fit its algorithm.
    fn verify_with(
        &self,
        token: &str,
        algorithm: Algorithm,
        kid: &str,
        keys: &KeySet,
    ) -> Result<Arc<str>, JwtError> {
        let candidates = keys.candidates(kid, algorithm);
        if candidates.is_empty() {
            return Err(JwtError::UnknownKeyId);
        }
        let validation = self.validation(algorithm);
        for key in candidates {
            match decode::<Map<String, Value>>(token, key, &validation) {
                Ok(decoded) => return self.check_claims(&decoded.claims, unix_now()),
                Err(error) if matches!(error.kind(), ErrorKind::InvalidSignature) => {}
                Err(error) => return Err(claims_refusal(&error)),
            }
        }
        Err(JwtError::BadSignature)
    }

    /// What jsonwebtoken checks for a token signed with `algorithm`: `iss` and `aud` (both
    /// required), `exp` when present and `nbf`, with the leeway.
    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.leeway_s;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.audiences);
        validation.set_required_spec_claims(&["iss", "aud"]);
        validation
    }

    /// Why the header could not be read. The crate reads `alg` into an enum of the algorithms
    /// it knows, so `none` (or no `alg`) and unknown algorithms fail there; serde's error names
    /// the unknown variant, which tells an unsigned token from another algorithm. Either way
    /// the token is refused: this only picks the message.
    fn header_refusal(&self, error: &JoseError) -> JwtError {
        let ErrorKind::Json(json) = error.kind() else {
            return JwtError::Malformed;
        };
        let message = json.to_string().to_ascii_lowercase();
        if message.starts_with("unknown variant `none`")
            || message.starts_with("missing field `alg`")
        {
            JwtError::Unsigned
        } else if message.starts_with("unknown variant") {
            self.algorithm_not_accepted()
        } else {
            JwtError::Malformed
        }
    }

    fn algorithm_not_accepted(&self) -> JwtError {
        JwtError::AlgorithmNotAccepted(algorithm_names(&self.algorithms))
    }

    /// The caller identity in `claims` of a token that jsonwebtoken verified and validated,
    /// after the checks it does not make, at `now` (seconds since the epoch).
    fn check_claims(&self, claims: &Map<String, Value>, now: i64) -> Result<Arc<str>, JwtError> {
        // The crate also accepts an array of issuers holding ours; `iss` is one string.
        if !claims.get("iss").is_some_and(Value::is_string) {
            return Err(JwtError::WrongIssuer);
        }
        if !claims.contains_key("exp") {
            return Err(JwtError::MissingExpiry);
        }
        let leeway = i64::try_from(self.leeway_s).unwrap_or(i64::MAX);
        if numeric_date(claims, "iat")?.is_some_and(|issued| issued > now.saturating_add(leeway)) {
            return Err(JwtError::IssuedInFuture);
        }
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .and_then(|subject| identity_of(subject, Form::ServiceAccount))
            .ok_or(JwtError::BadSubject)?;
        match kubernetes_service_account(claims)? {
            Some(account) if account != *subject => Err(JwtError::KubernetesMismatch),
            None if is_service_account(&subject) => Err(JwtError::ServiceAccountWithoutClaim),
            _ => Ok(subject),
        }
    }
}

/// Why jsonwebtoken refused a token whose header was accepted, as the check that failed.
fn claims_refusal(error: &JoseError) -> JwtError {
    match error.kind() {
        ErrorKind::ExpiredSignature => JwtError::Expired,
        ErrorKind::ImmatureSignature => JwtError::NotYetValid,
        ErrorKind::InvalidIssuer => JwtError::WrongIssuer,
        ErrorKind::InvalidAudience => JwtError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) | ErrorKind::InvalidClaimFormat(claim) => {
            match claim.as_str() {
                "iss" => JwtError::WrongIssuer,
                "aud" => JwtError::WrongAudience,
                "exp" => JwtError::NotNumericDate("exp"),
                "nbf" => JwtError::NotNumericDate("nbf"),
                _ => JwtError::Malformed,
            }
        }
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => JwtError::Malformed,
        _ => JwtError::BadSignature,
    }
}

/// The NumericDate claim `name` in whole seconds (a fraction is dwarfed by the leeway), `None`
/// when absent; anything but a number is refused.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_f64()
            .map(|seconds| Some(seconds as i64))
            .ok_or(JwtError::NotNumericDate(name)),
    }
}

/// `system:serviceaccount:NS:NAME` as the token's Kubernetes claims name it (see the module
/// docs), `None` without any; incomplete or disagreeing claims are a mismatch.
fn kubernetes_service_account(claims: &Map<String, Value>) -> Result<Option<String>, JwtError> {
    let projected = claims.get("kubernetes.io").map(|kubernetes| {
        (
            kubernetes.get("namespace").and_then(Value::as_str),
            kubernetes
                .pointer("/serviceaccount/name")
                .and_then(Value::as_str),
        )
    });
    let legacy = (claims.contains_key(LEGACY_NAMESPACE_CLAIM)
        || claims.contains_key(LEGACY_ACCOUNT_CLAIM))
    .then(|| {
        (
            claims.get(LEGACY_NAMESPACE_CLAIM).and_then(Value::as_str),
            claims.get(LEGACY_ACCOUNT_CLAIM).and_then(Value::as_str),
        )
    });
    let mut named: Option<String> = None;
    for claimed in [projected, legacy].into_iter().flatten() {
        let (Some(namespace), Some(account)) = claimed else {
            return Err(JwtError::KubernetesMismatch);
        };
        let account = format!("system:serviceaccount:{namespace}:{account}");
        if named.as_ref().is_some_and(|earlier| *earlier != account) {
            return Err(JwtError::KubernetesMismatch);
        }
        named = Some(account);
    }
    Ok(named)
}

fn jwks_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw)
        .map_err(|error| format!("`auth.jwt.jwks_url` is not a URL ({error}): `{raw}`"))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if url.scheme() == "https" || (url.scheme() == "http" && loopback) {
        Ok(url)
    } else {
        Err(format!(
            "`auth.jwt.jwks_url` must use https (plain http only on loopback), got `{raw}`"
        ))
    }
}

fn algorithm_names(algorithms: &[Algorithm]) -> String {
    algorithms
        .iter()
        .map(|algorithm| algorithm_name(*algorithm))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Verifies bearer JWTs against the policy and the issuer's keys.
#[derive(Debug)]
pub struct JwtVerifier {
    policy: JwtPolicy,
    jwks: Arc<Jwks>,
}

impl JwtVerifier {
    /// Loads the JWKS (fail fast) and starts refreshing it; see [`super::jwks`].
    pub async fn new(policy: JwtPolicy) -> anyhow::Result<Self> {
        let jwks = Jwks::load(policy.source.clone(), policy.refresh).await?;
        Ok(Self { policy, jwks })
    }

    /// The caller identity (`sub`) of a valid token.
    pub async fn verify(&self, token: &str) -> Result<Arc<str>, JwtError> {
        let (algorithm, kid) = self.policy.header(token)?;
        let verify = |keys: &KeySet| self.policy.verify_with(token, algorithm, &kid, keys);
        match verify(self.jwks.current().as_ref()) {
            Err(JwtError::UnknownKeyId) => verify(self.jwks.after_unknown_kid().await.as_ref()),
            outcome => outcome,
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::*;
    use crate::config::WordList;

    const KID: &str = "cluster-key";

    fn policy() -> JwtPolicy {
        let settings = JwtSettings {
            issuer: Some("https://kubernetes.default.svc.cluster.local".to_owned()),
            audiences: Some(WordList::Text("identity-gateway, other".to_owned())),
            jwks_file: Some("jwks.json".into()),
            leeway_s: 30,
            ..JwtSettings::default()
        };
        JwtPolicy::from_settings(&settings).unwrap().unwrap()
    }

    /// A fresh P-256 key: the private half, and a JWKS of its public half under [`KID`].
    fn key() -> (EncodingKey, KeySet) {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let private = EncodingKey::from_ec_der(pkcs8.as_ref());
        let mut public = Jwk::from_encoding_key(&private, Algorithm::ES256).unwrap();
        public.common.key_id = Some(KID.to_owned());
        let jwks = json!({ "keys": [public] }).to_string();
        (private, KeySet::parse(jwks.as_bytes()).unwrap())
    }

    fn sign(private: &EncodingKey, header: Value, claims: &Map<String, Value>) -> String {
        let mut header = header;
        header["alg"] = json!("ES256");
        let header: Header = serde_json::from_value(header).unwrap();
        encode(&header, claims, private).unwrap()
    }

    /// What the gateway makes of `token`, signed by a key of `keys`.
    fn verified(policy: &JwtPolicy, token: &str, keys: &KeySet) -> Result<Arc<str>, JwtError> {
        let (algorithm, kid) = policy.header(token)?;
        policy.verify_with(token, algorithm, &kid, keys)
    }

    /// The claims of a Kubernetes projected service-account token (Kubernetes 1.30).
    fn projected_token_claims() -> Map<String, Value> {
        let now = unix_now();
        let claims = json!({
            "aud": ["identity-gateway"],
            "exp": now + 3600,
            "iat": now,
            "nbf": now,
            "iss": "https://kubernetes.default.svc.cluster.local",
            "jti": "3f9a2f63-0f8c-4d3c-9b7e-0d9c3f2b1a77",
            "kubernetes.io": {
                "namespace": "payments",
                "node": {"name": "node-a", "uid": "6a1e…"},
                "pod": {"name": "billing-7c9f8d-x2x4q", "uid": "0b1c…"},
                "serviceaccount": {"name": "billing", "uid": "9d8e…"}
            },
            "sub": "system:serviceaccount:payments:billing"
        });
        claims.as_object().unwrap().clone()
    }

    fn with(mut claims: Map<String, Value>, name: &str, value: Value) -> Map<String, Value> {
        claims.insert(name.to_owned(), value);
        claims
    }

    #[test]
    fn a_projected_service_account_token_names_the_service_account() {
        let (private, keys) = key();
        let token = sign(&private, json!({"kid": KID}), &projected_token_claims());
        let identity = verified(&policy(), &token, &keys).unwrap();
        assert_eq!(&*identity, "system:serviceaccount:payments:billing");
    }

    #[test]
    fn each_claim_check_refuses_with_its_own_reason() {
        let policy = policy();
        let (private, keys) = key();
        let base = projected_token_claims;
        let now = unix_now();
        let mut no_expiry = base();
        no_expiry.remove("exp");
        let mut no_issuer = base();
        no_issuer.remove("iss");
        let cases = [
            (
                with(base(), "iss", json!("https://evil")),
                JwtError::WrongIssuer,
            ),
            (
                with(
                    base(),
                    "iss",
                    json!(["https://kubernetes.default.svc.cluster.local"]),
                ),
                JwtError::WrongIssuer,
            ),
            (no_issuer, JwtError::WrongIssuer),
            (
                with(base(), "aud", json!("someone-else")),
                JwtError::WrongAudience,
            ),
            (
                with(base(), "aud", json!([1, "x"])),
                JwtError::WrongAudience,
            ),
            (with(base(), "exp", json!(now - 3600)), JwtError::Expired),
            (no_expiry, JwtError::MissingExpiry),
            (
                with(base(), "exp", json!("tomorrow")),
                JwtError::NotNumericDate("exp"),
            ),
            (
                with(base(), "nbf", json!((now + 3600).to_string())),
                JwtError::NotNumericDate("nbf"),
            ),
            (
                with(base(), "iat", json!(now.to_string())),
                JwtError::NotNumericDate("iat"),
            ),
            (
                with(base(), LEGACY_NAMESPACE_CLAIM, json!("reports")),
                JwtError::KubernetesMismatch,
            ),
            (
                with(base(), "nbf", json!(now + 3600)),
                JwtError::NotYetValid,
            ),
            (
                with(base(), "iat", json!(now + 3600)),
                JwtError::IssuedInFuture,
            ),
            (
                with(base(), "sub", json!("apikey:billing")),
                JwtError::BadSubject,
            ),
            (
                with(base(), "sub", json!("system:serviceaccount:payments:admin")),
                JwtError::KubernetesMismatch,
            ),
        ];
        for (claims, expected) in cases {
            let token = sign(&private, json!({"kid": KID}), &claims);
            assert_eq!(
                verified(&policy, &token, &keys),
                Err(expected.clone()),
                "{expected}"
            );
        }
    }

    #[test]
    fn the_leeway_tolerates_small_clock_skew_and_a_string_audience_counts() {
        let (private, keys) = key();
        let now = unix_now();
        for (name, value) in [("exp", now - 10), ("nbf", now + 10), ("iat", now + 10)] {
            let claims = with(
                with(projected_token_claims(), name, json!(value)),
                "aud",
                json!("other"),
            );
            let token = sign(&private, json!({"kid": KID}), &claims);
            assert!(verified(&policy(), &token, &keys).is_ok(), "{name}");
        }
    }

    #[test]
    fn the_header_alone_refuses_unsigned_confused_and_key_carrying_tokens() {
        let policy = policy();
        let (private, keys) = key();
        let claims = projected_token_claims();
        let valid = sign(&private, json!({"kid": KID}), &claims);
        let payload = valid.split('.').nth(1).unwrap();
        let header = |header: Value| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header.to_string())
        };
        // The published public key used as an HMAC secret: alg confusion.
        let public = Jwk::from_encoding_key(&private, Algorithm::ES256).unwrap();
        let public = serde_json::to_string(&public).unwrap();
        let confused = encode(
            &Header {
                kid: Some(KID.to_owned()),
                ..Header::new(Algorithm::HS256)
            },
            &claims,
            &EncodingKey::from_secret(public.as_bytes()).unwrap(),
        )
        .unwrap();
        for (token, expected) in [
            (
                format!("{}.{payload}.", header(json!({"alg": "none", "kid": KID}))),
                JwtError::Unsigned,
            ),
            (
                format!("{}.{payload}.", header(json!({"alg": "NONE", "kid": KID}))),
                JwtError::Unsigned,
            ),
            (
                format!("{}.{payload}.", header(json!({"kid": KID}))),
                JwtError::Unsigned,
            ),
            (
                confused,
                JwtError::AlgorithmNotAccepted("RS256, ES256".to_owned()),
            ),
            (
                format!("{}.{payload}.", header(json!({"alg": "XS999", "kid": KID}))),
                JwtError::AlgorithmNotAccepted("RS256, ES256".to_owned()),
            ),
            (
                sign(&private, json!({"kid": KID, "crit": ["exp"]}), &claims),
                JwtError::CriticalHeader,
            ),
            (sign(&private, json!({}), &claims), JwtError::MissingKeyId),
            (
                sign(&private, json!({"kid": "elsewhere"}), &claims),
                JwtError::UnknownKeyId,
            ),
        ] {
            assert_eq!(
                verified(&policy, &token, &keys),
                Err(expected.clone()),
                "{expected}"
            );
        }
    }

    #[test]
    fn keys_the_token_names_or_carries_are_never_used() {
        let policy = policy();
        let (_, keys) = key();
        let (attacker, _) = key();
        let mut carried = Jwk::from_encoding_key(&attacker, Algorithm::ES256).unwrap();
        carried.common.key_id = Some(KID.to_owned());
        let claims = projected_token_claims();
        for header in [
            json!({"kid": KID, "jwk": carried}),
            json!({"kid": KID, "jku": "https://attacker.example/jwks.json"}),
            json!({"kid": KID, "x5u": "https://attacker.example/cert.pem"}),
        ] {
            let token = sign(&attacker, header.clone(), &claims);
            assert_eq!(
                verified(&policy, &token, &keys),
                Err(JwtError::BadSignature),
                "{header}"
            );
        }
    }

    #[test]
    fn settings_problems_name_every_setting() {
        let settings = JwtSettings {
            issuer: Some(" ".to_owned()),
            jwks_file: Some("a".into()),
            jwks_url: Some("http://issuer.example/keys".to_owned()),
            algorithms: WordList::Text("RS256 none HS256".to_owned()),
            leeway_s: 3600,
            jwks_refresh_s: 1,
            ..JwtSettings::default()
        };
        let problems = JwtPolicy::from_settings(&settings).unwrap_err().join("\n");
        for needle in [
            "auth.jwt.issuer",
            "auth.jwt.audiences",
            "must not hold `none`",
            "`HS256`",
            "set one of `auth.jwt.jwks_file` and `auth.jwt.jwks_url`",
            "auth.jwt.leeway_s",
            "auth.jwt.jwks_refresh_s",
        ] {
            assert!(problems.contains(needle), "{needle}: {problems}");
        }
        let plain_http = JwtSettings {
            jwks_url: Some("http://issuer.example/keys".to_owned()),
            ..JwtSettings::default()
        };
        let problems = JwtPolicy::from_settings(&plain_http)
            .unwrap_err()
            .join("\n");
        assert!(problems.contains("must use https"), "{problems}");
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        let policy = policy();
        let (_, keys) = key();
        // `e30` is `{}` and `W10` is `[]`, base64url.
        for token in ["", "a.b", "a.b.c.d", "!!.??.##", "W10.e30.AA", "not-a-jwt"] {
            assert_eq!(policy.header(token), Err(JwtError::Malformed), "{token}");
        }
        assert_eq!(
            policy.header(&"a".repeat(MAX_TOKEN_BYTES + 1)),
            Err(JwtError::Malformed)
        );
        // eyJhbGciOiJFUzI1NiIsImtpZCI6ImNsdXN0ZXIta2V5In0 is {"alg":"ES256","kid":"cluster-key"}.
        let header = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImNsdXN0ZXIta2V5In0";
        for (token, expected) in [
            (format!("{header}.e30.*"), JwtError::Malformed),
            (format!("{header}.!!.AA"), JwtError::BadSignature),
            (format!("{header}.e30."), JwtError::BadSignature),
        ] {
            assert_eq!(verified(&policy, &token, &keys), Err(expected), "{token}");
        }
    }
}
