//! The JOSE the simulated authorization server needs, on jsonwebtoken: public JWKs as registered
//! on a client (a private one is refused), RS256 / ES256 verification of client assertions and
//! DPoP proofs against them, and RFC 7638 JWK thumbprints (DPoP `jkt`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A public JWK as registered on a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    /// The key, as jsonwebtoken reads it.
    #[serde(flatten)]
    pub jwk: Jwk,
    /// A private part, which jsonwebtoken's JWK type would drop: present means the key must be
    /// refused as a public key.
    #[serde(default, skip_serializing)]
    pub d: Option<String>,
}

impl PublicJwk {
    /// Whether the key is a usable public RSA or EC P-256 key (no private part).
    pub fn check(&self) -> Result<(), String> {
        if self.d.is_some() {
            return Err("the JWK holds a private key".to_owned());
        }
        algorithm_of(&self.jwk).map(|_| ())
    }

    /// The key id.
    pub fn kid(&self) -> Option<&str> {
        self.jwk.common.key_id.as_deref()
    }
}

/// The algorithm a key verifies: RS256 for RSA, ES256 for EC P-256; other keys are refused.
pub fn algorithm_of(jwk: &Jwk) -> Result<Algorithm, String> {
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Ok(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Ok(Algorithm::ES256)
        }
        _ => Err("only RSA and EC P-256 public JWKs are supported".to_owned()),
    }
}

/// Checks of the signature alone: no claim required or validated, for tokens whose claims the
/// caller checks itself (DPoP proofs).
pub fn signature_only() -> Validation {
    let mut validation = Validation::default();
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation
}

/// The claims of `token` when `jwk` verifies its signature, by the key's algorithm, and they
/// pass `validation` (whose algorithms are set here).
pub fn verify(token: &str, jwk: &Jwk, mut validation: Validation) -> Result<Claims, Error> {
    let algorithm = algorithm_of(jwk).map_err(|_| Error::from(ErrorKind::InvalidKeyFormat))?;
    validation.algorithms = vec![algorithm];
    let key = DecodingKey::from_jwk(jwk)?;
    jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .map(|decoded| Claims(decoded.claims))
}

/// Whether a verification failed on the signature or the key, rather than on a claim.
pub fn is_signature_failure(error: &Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::InvalidSignature
            | ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidKeyFormat
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::Base64(_)
    )
}

/// The claims of a verified token.
#[derive(Debug, Clone)]
pub struct Claims(pub Map<String, Value>);

impl Claims {
    /// A claim as a string.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    /// A numeric claim (seconds since the epoch).
    pub fn i64(&self, name: &str) -> Option<i64> {
        self.0.get(name).and_then(Value::as_i64)
    }
}

/// The RFC 7638 SHA-256 thumbprint, base64url.
pub fn thumbprint(jwk: &Jwk) -> String {
    jwk.thumbprint(ThumbprintHash::SHA256).unwrap_or_default()
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn thumbprints_follow_rfc_7638() {
        // The example of RFC 7638, section 3.1.
        let key: PublicJwk = serde_json::from_value(json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }))
        .unwrap();
        assert!(key.check().is_ok());
        assert_eq!(
            thumbprint(&key.jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn private_and_unsupported_keys_are_refused_and_d_is_never_echoed() {
        let public = json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "k"});
        let mut private = public.clone();
        private["d"] = json!("c2VjcmV0");
        let private: PublicJwk = serde_json::from_value(private).unwrap();
        assert!(private.check().unwrap_err().contains("private key"));
        assert!(
            !serde_json::to_string(&private)
                .unwrap()
                .contains("c2VjcmV0")
        );
        let p384: PublicJwk =
            serde_json::from_value(json!({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}))
                .unwrap();
        assert!(p384.check().is_err());
        let public: PublicJwk = serde_json::from_value(public).unwrap();
        assert_eq!((public.check(), public.kid()), (Ok(()), Some("k")));
    }
}
