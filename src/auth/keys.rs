//! The keys of a JSON Web Key Set (RFC 7517), read with jsonwebtoken's JWK types, that callers'
//! JWTs are verified with. Keys without a `kid`, with `use` other than `sig`, with an `alg` the
//! gateway does not accept, RSA keys under 2048 bits and EC keys off P-256/P-384 are skipped.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

/// Every algorithm the gateway verifies, by RFC 7518 name: RSA (PKCS#1 v1.5 and PSS) and ECDSA
/// on P-256/P-384. HMAC is not here: a public key must never serve as a shared secret.
pub const SUPPORTED: [(&str, Algorithm); 8] = [
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
];

/// The supported algorithm named `name` (`RS256`, …).
pub fn algorithm_named(name: &str) -> Option<Algorithm> {
    SUPPORTED
        .into_iter()
        .find_map(|(known, algorithm)| (known == name).then_some(algorithm))
}

/// The name of a supported `algorithm`, for messages.
pub fn algorithm_name(algorithm: Algorithm) -> &'static str {
    SUPPORTED
        .into_iter()
        .find_map(|(name, known)| (known == algorithm).then_some(name))
        .unwrap_or("unsupported")
}

/// The key types (and EC curves) a key of the set can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
}

impl KeyKind {
    /// Whether a key of this kind verifies `algorithm`.
    fn verifies(self, algorithm: Algorithm) -> bool {
        use Algorithm::{ES256, ES384, PS256, PS384, PS512, RS256, RS384, RS512};
        match self {
            Self::Rsa => matches!(algorithm, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Self::P256 => algorithm == ES256,
            Self::P384 => algorithm == ES384,
        }
    }
}

/// One public key of the set.
struct VerifyingKey {
    kid: String,
    /// The key's own `alg`, when the JWK names one: then only that algorithm is accepted.
    alg: Option<Algorithm>,
    kind: KeyKind,
    key: DecodingKey,
}

#[derive(Deserialize)]
struct JwkSetDocument {
    keys: Vec<serde_json::Value>,
}

/// The usable keys of one JWKS.
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KeySet")
            .field("kids", &self.kids())
            .finish()
    }
}

impl KeySet {
    /// Parses a JWKS document; fails when it is not one or holds no usable signing key.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let document: JwkSetDocument = serde_json::from_slice(bytes)
            .map_err(|_| "not a JWKS (a JSON object with a `keys` array)".to_owned())?;
        let keys: Vec<VerifyingKey> = document
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(usable_key)
            .collect();
        if keys.is_empty() {
            return Err(
                "the JWKS holds no usable signing key (RSA of 2048 bits or more, or EC \
                        P-256/P-384, with a `kid`)"
                    .to_owned(),
            );
        }
        Ok(Self { keys })
    }

    /// The keys with id `kid` that can verify `algorithm`; none means the `kid` is unknown.
    pub fn candidates(&self, kid: &str, algorithm: Algorithm) -> Vec<&DecodingKey> {
        self.keys
            .iter()
            .filter(|key| {
                key.kid == kid
                    && key.kind.verifies(algorithm)
                    && key.alg.is_none_or(|alg| alg == algorithm)
            })
            .map(|key| &key.key)
            .collect()
    }

    /// The key ids, for logs.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|key| key.kid.as_str()).collect()
    }
}

fn usable_key(jwk: Jwk) -> Option<VerifyingKey> {
    let kid = jwk.common.key_id.clone().filter(|kid| !kid.is_empty())?;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|usage| *usage != PublicKeyUse::Signature)
    {
        return None;
    }
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(alg) => Some(algorithm_named(&alg.to_string())?),
    };
    let length = |value: &str| {
        URL_SAFE_NO_PAD
            .decode(value.trim_end_matches('='))
            .ok()
            .filter(|bytes| !bytes.is_empty())
    };
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let n = length(&rsa.n)?;
            length(&rsa.e)?;
            let significant_bits = n.iter().position(|byte| *byte != 0).map_or(0, |first| {
                (n.len() - first) * 8 - n[first].leading_zeros() as usize
            });
            if significant_bits < 2048 {
                return None;
            }
            KeyKind::Rsa
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            let (kind, coordinate_len) = match ec.curve {
                EllipticCurve::P256 => (KeyKind::P256, 32),
                EllipticCurve::P384 => (KeyKind::P384, 48),
                _ => return None,
            };
            if length(&ec.x)?.len() != coordinate_len || length(&ec.y)?.len() != coordinate_len {
                return None;
            }
            kind
        }
        _ => return None,
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(VerifyingKey {
        kid,
        alg,
        kind,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_keys_are_skipped_and_an_empty_set_is_refused() {
        let short_rsa = URL_SAFE_NO_PAD.encode([0xffu8; 128]);
        let document = format!(
            r#"{{"keys":[
                {{"kty":"RSA","kid":"short","n":"{short_rsa}","e":"AQAB"}},
                {{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA","kid":"tiny"}},
                {{"kty":"oct","k":"c2VjcmV0","kid":"hmac"}},
                {{"kty":"RSA","use":"enc","kid":"enc"}},
                "not a key"
            ]}}"#
        );
        let error = KeySet::parse(document.as_bytes()).unwrap_err();
        assert!(error.contains("no usable signing key"), "{error}");
        assert!(KeySet::parse(b"[]").is_err());
    }

    #[test]
    fn a_key_serves_only_algorithms_of_its_type_and_its_own_alg() {
        let n = URL_SAFE_NO_PAD.encode([0xc5u8; 256]);
        let document =
            format!(r#"{{"keys":[{{"kty":"RSA","kid":"r","alg":"RS256","n":"{n}","e":"AQAB"}}]}}"#);
        let keys = KeySet::parse(document.as_bytes()).unwrap();
        for (kid, algorithm, usable) in [
            ("r", Algorithm::ES256, false),
            ("r", Algorithm::PS256, false),
            ("r", Algorithm::HS256, false),
            ("r", Algorithm::RS256, true),
            ("other", Algorithm::RS256, false),
        ] {
            assert_eq!(
                keys.candidates(kid, algorithm).len(),
                usize::from(usable),
                "{kid} {algorithm:?}"
            );
        }
    }
}
