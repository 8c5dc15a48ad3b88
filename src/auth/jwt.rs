//! Bearer JWTs (`authorization: Bearer <JWT>`): Kubernetes projected service-account tokens
//! and OIDC workload tokens, verified with aws-lc-rs against the issuer's JWKS.
//!
//! A token is accepted when, in this order: it is a compact JWS; its `alg` is one of
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
//! Errors say which check failed and never contain the token or anything read from it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use url::Url;

use super::identity::{Form, identity_of, is_service_account};
use super::jwks::{Jwks, JwksSource};
use super::keys::{Algorithm, KeyCheck, KeySet};
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
            match Algorithm::from_name(name) {
                Some(algorithm) => algorithms.push(algorithm),
                None if name.eq_ignore_ascii_case("none") => problems
                    .push("`auth.jwt.algorithms` must not hold `none`: tokens are signed".into()),
                None => problems.push(format!(
                    "`auth.jwt.algorithms` holds `{name}`, which is not one of {}",
                    algorithm_names(&Algorithm::ALL)
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

    /// The caller identity in `claims` of a token whose signature verified, checked at `now`
    /// (seconds since the epoch).
    fn check_claims(&self, claims: &Map<String, Value>, now: i64) -> Result<Arc<str>, JwtError> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(JwtError::WrongIssuer);
        }
        let audience_accepted = |value: &Value| {
            value
                .as_str()
                .is_some_and(|audience| self.audiences.iter().any(|wanted| wanted == audience))
        };
        let audience_ok = match claims.get("aud") {
            Some(Value::Array(audiences)) => audiences.iter().any(audience_accepted),
            Some(audience) => audience_accepted(audience),
            None => false,
        };
        if !audience_ok {
            return Err(JwtError::WrongAudience);
        }
        let leeway = i64::try_from(self.leeway_s).unwrap_or(i64::MAX);
        let expiry = numeric_date(claims, "exp")?.ok_or(JwtError::MissingExpiry)?;
        if now >= expiry.saturating_add(leeway) {
            return Err(JwtError::Expired);
        }
        if numeric_date(claims, "nbf")?
            .is_some_and(|not_before| now < not_before.saturating_sub(leeway))
        {
            return Err(JwtError::NotYetValid);
        }
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
        .map(|algorithm| algorithm.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Verifies bearer JWTs against the policy and the issuer's keys.
#[derive(Debug)]
pub struct JwtVerifier {
    policy: JwtPolicy,
    jwks: Arc<Jwks>,
}

/// A token split and decoded, its signature not yet checked.
struct Parts<'token> {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signing_input: &'token str,
    signature: Vec<u8>,
}

impl JwtVerifier {
    /// Loads the JWKS (fail fast) and starts refreshing it; see [`super::jwks`].
    pub async fn new(policy: JwtPolicy) -> anyhow::Result<Self> {
        let jwks = Jwks::load(policy.source.clone(), policy.refresh).await?;
        Ok(Self { policy, jwks })
    }

    /// The caller identity (`sub`) of a valid token.
    pub async fn verify(&self, token: &str) -> Result<Arc<str>, JwtError> {
        let parts = split(token)?;
        let algorithm = self.algorithm(&parts.header)?;
        if parts.header.contains_key("crit") {
            return Err(JwtError::CriticalHeader);
        }
        let kid = parts
            .header
            .get("kid")
            .and_then(Value::as_str)
            .ok_or(JwtError::MissingKeyId)?;
        let check = |keys: &KeySet| {
            keys.check(
                kid,
                algorithm,
                parts.signing_input.as_bytes(),
                &parts.signature,
            )
        };
        let mut outcome = check(self.jwks.current().as_ref());
        if outcome == KeyCheck::UnknownKey {
            outcome = check(self.jwks.after_unknown_kid().await.as_ref());
        }
        match outcome {
            KeyCheck::Verified => self.policy.check_claims(&parts.claims, unix_now()),
            KeyCheck::BadSignature => Err(JwtError::BadSignature),
            KeyCheck::UnknownKey => Err(JwtError::UnknownKeyId),
        }
    }

    fn algorithm(&self, header: &Map<String, Value>) -> Result<Algorithm, JwtError> {
        let name = header.get("alg").and_then(Value::as_str).unwrap_or("none");
        if name.eq_ignore_ascii_case("none") {
            return Err(JwtError::Unsigned);
        }
        Algorithm::from_name(name)
            .filter(|algorithm| self.policy.algorithms.contains(algorithm))
            .ok_or_else(|| JwtError::AlgorithmNotAccepted(algorithm_names(&self.policy.algorithms)))
    }
}

fn split(token: &str) -> Result<Parts<'_>, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed);
    }
    let mut pieces = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (pieces.next(), pieces.next(), pieces.next(), pieces.next())
    else {
        return Err(JwtError::Malformed);
    };
    let decode = |piece: &str| {
        URL_SAFE_NO_PAD
            .decode(piece)
            .map_err(|_| JwtError::Malformed)
    };
    let object = |piece: &str| match serde_json::from_slice(&decode(piece)?) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed),
    };
    Ok(Parts {
        header: object(header)?,
        claims: object(claims)?,
        signing_input: &token[..header.len() + 1 + claims.len()],
        signature: decode(signature)?,
    })
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
    use serde_json::json;

    use super::*;
    use crate::config::WordList;

    const NOW: i64 = 1_750_000_000;

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

    /// The claims of a Kubernetes projected service-account token (Kubernetes 1.30).
    fn projected_token_claims() -> Map<String, Value> {
        let claims = json!({
            "aud": ["identity-gateway"],
            "exp": NOW + 3600,
            "iat": NOW,
            "nbf": NOW,
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
        let identity = policy()
            .check_claims(&projected_token_claims(), NOW)
            .unwrap();
        assert_eq!(&*identity, "system:serviceaccount:payments:billing");
    }

    #[test]
    fn each_claim_check_refuses_with_its_own_reason() {
        let policy = policy();
        let base = projected_token_claims;
        let cases = [
            (
                with(base(), "iss", json!("https://evil")),
                JwtError::WrongIssuer,
            ),
            (
                with(base(), "aud", json!("someone-else")),
                JwtError::WrongAudience,
            ),
            (
                with(base(), "aud", json!([1, "x"])),
                JwtError::WrongAudience,
            ),
            (with(base(), "exp", json!(NOW - 31)), JwtError::Expired),
            (
                with(base(), "exp", json!("tomorrow")),
                JwtError::NotNumericDate("exp"),
            ),
            (
                with(base(), "nbf", json!((NOW + 3600).to_string())),
                JwtError::NotNumericDate("nbf"),
            ),
            (
                with(base(), "iat", json!(NOW.to_string())),
                JwtError::NotNumericDate("iat"),
            ),
            (
                with(base(), LEGACY_NAMESPACE_CLAIM, json!("reports")),
                JwtError::KubernetesMismatch,
            ),
            (with(base(), "nbf", json!(NOW + 31)), JwtError::NotYetValid),
            (
                with(base(), "iat", json!(NOW + 31)),
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
            assert_eq!(
                policy.check_claims(&claims, NOW),
                Err(expected.clone()),
                "{expected}"
            );
        }
        let mut no_expiry = base();
        no_expiry.remove("exp");
        assert_eq!(
            policy.check_claims(&no_expiry, NOW),
            Err(JwtError::MissingExpiry)
        );
    }

    #[test]
    fn the_leeway_tolerates_small_clock_skew_and_a_string_audience_counts() {
        let claims = with(
            with(projected_token_claims(), "exp", json!(NOW - 29)),
            "aud",
            json!("other"),
        );
        assert!(policy().check_claims(&claims, NOW).is_ok());
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
        // `e30` is `{}` and `W10` is `[]`, base64url.
        for token in ["", "a.b", "a.b.c.d", "!!.??.##", "W10.e30.AA", "e30.e30.*"] {
            assert!(split(token).is_err(), "{token}");
        }
        assert!(split(&"a".repeat(MAX_TOKEN_BYTES + 1)).is_err());
        assert!(
            split("e30.e30.").is_ok(),
            "an empty signature is left to the key check"
        );
    }
}
