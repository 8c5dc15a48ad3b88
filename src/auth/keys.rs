//! The keys of a JSON Web Key Set (RFC 7517) and JWS signature verification with them
//! (RFC 7518 algorithms, on aws-lc-rs). Keys without a `kid`, with `use` other than `sig`, with
//! an `alg` the gateway does not support, RSA keys under 2048 bits and EC keys off P-256/P-384
//! are skipped.

use aws_lc_rs::signature::{
    self, EcdsaVerificationAlgorithm, RsaParameters, RsaPublicKeyComponents, UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// A JWS signature algorithm the gateway can verify (RFC 7518 names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (Kubernetes service-account tokens, most OIDC issuers).
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
}

/// How a key of an algorithm's family verifies.
enum Verification {
    Rsa(&'static RsaParameters),
    Ec(Curve, &'static EcdsaVerificationAlgorithm),
}

impl Algorithm {
    /// Every supported algorithm, for messages.
    pub const ALL: [Self; 8] = [
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
        Self::Es256,
        Self::Es384,
    ];

    /// The algorithm named `name` (`RS256`, …), if supported.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|algorithm| algorithm.name() == name)
    }

    /// The RFC 7518 name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
        }
    }

    fn verification(self) -> Verification {
        match self {
            Self::Rs256 => Verification::Rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
            Self::Rs384 => Verification::Rsa(&signature::RSA_PKCS1_2048_8192_SHA384),
            Self::Rs512 => Verification::Rsa(&signature::RSA_PKCS1_2048_8192_SHA512),
            Self::Ps256 => Verification::Rsa(&signature::RSA_PSS_2048_8192_SHA256),
            Self::Ps384 => Verification::Rsa(&signature::RSA_PSS_2048_8192_SHA384),
            Self::Ps512 => Verification::Rsa(&signature::RSA_PSS_2048_8192_SHA512),
            Self::Es256 => Verification::Ec(Curve::P256, &signature::ECDSA_P256_SHA256_FIXED),
            Self::Es384 => Verification::Ec(Curve::P384, &signature::ECDSA_P384_SHA384_FIXED),
        }
    }
}

/// The elliptic curves of the EC algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

impl Curve {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "P-256" => Some(Self::P256),
            "P-384" => Some(Self::P384),
            _ => None,
        }
    }

    /// The length of one coordinate, in bytes.
    fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }
}

#[derive(Debug)]
enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point, `04 || x || y`.
    Ec {
        curve: Curve,
        point: Vec<u8>,
    },
}

/// One public key of the set.
#[derive(Debug)]
struct VerifyingKey {
    kid: String,
    /// The key's own `alg`, when the JWK names one: then only that algorithm is accepted.
    alg: Option<Algorithm>,
    material: KeyMaterial,
}

impl VerifyingKey {
    fn fits(&self, algorithm: Algorithm) -> bool {
        if self.alg.is_some_and(|alg| alg != algorithm) {
            return false;
        }
        match (&self.material, algorithm.verification()) {
            (KeyMaterial::Rsa { .. }, Verification::Rsa(_)) => true,
            (KeyMaterial::Ec { curve, .. }, Verification::Ec(wanted, _)) => *curve == wanted,
            _ => false,
        }
    }

    fn verify(&self, algorithm: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        match (&self.material, algorithm.verification()) {
            (KeyMaterial::Rsa { n, e }, Verification::Rsa(parameters)) => {
                RsaPublicKeyComponents { n, e }
                    .verify(parameters, message, signature)
                    .is_ok()
            }
            (KeyMaterial::Ec { point, .. }, Verification::Ec(_, verification)) => {
                UnparsedPublicKey::new(verification, point)
                    .verify(message, signature)
                    .is_ok()
            }
            _ => false,
        }
    }
}

/// One JWK as published; only the public members the gateway uses.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

#[derive(Deserialize)]
struct JwkSetDocument {
    keys: Vec<serde_json::Value>,
}

/// The usable keys of one JWKS.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

/// What verifying a signature with the set found.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyCheck {
    /// A key with the token's `kid` and algorithm verified the signature.
    Verified,
    /// A key with the token's `kid` and algorithm exists, and the signature does not verify.
    BadSignature,
    /// No key has the token's `kid` (with a key type fitting the algorithm).
    UnknownKey,
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

    /// Checks `signature` over `message` with the key `kid` for `algorithm`.
    pub fn check(
        &self,
        kid: &str,
        algorithm: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> KeyCheck {
        let mut candidates = self
            .keys
            .iter()
            .filter(|key| key.kid == kid && key.fits(algorithm))
            .peekable();
        if candidates.peek().is_none() {
            return KeyCheck::UnknownKey;
        }
        if candidates.any(|key| key.verify(algorithm, message, signature)) {
            KeyCheck::Verified
        } else {
            KeyCheck::BadSignature
        }
    }

    /// The key ids, for logs.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|key| key.kid.as_str()).collect()
    }
}

fn usable_key(jwk: Jwk) -> Option<VerifyingKey> {
    let kid = jwk.kid.filter(|kid| !kid.is_empty())?;
    if jwk.usage.as_deref().is_some_and(|usage| usage != "sig") {
        return None;
    }
    let alg = match jwk.alg.as_deref() {
        None => None,
        Some(name) => Some(Algorithm::from_name(name)?),
    };
    let decode = |value: Option<String>| {
        URL_SAFE_NO_PAD
            .decode(value?.trim_end_matches('='))
            .ok()
            .filter(|bytes| !bytes.is_empty())
    };
    let material = match jwk.kty.as_str() {
        "RSA" => {
            let n = decode(jwk.n)?;
            let significant_bits = n.iter().position(|byte| *byte != 0).map_or(0, |first| {
                (n.len() - first) * 8 - n[first].leading_zeros() as usize
            });
            if significant_bits < 2048 {
                return None;
            }
            KeyMaterial::Rsa {
                n,
                e: decode(jwk.e)?,
            }
        }
        "EC" => {
            let curve = Curve::from_name(jwk.crv.as_deref()?)?;
            let (x, y) = (decode(jwk.x)?, decode(jwk.y)?);
            if x.len() != curve.coordinate_len() || y.len() != curve.coordinate_len() {
                return None;
            }
            let mut point = Vec::with_capacity(1 + x.len() + y.len());
            point.push(0x04);
            point.extend(x);
            point.extend(y);
            KeyMaterial::Ec { curve, point }
        }
        _ => return None,
    };
    Some(VerifyingKey { kid, alg, material })
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
        for (kid, algorithm, expected) in [
            ("r", Algorithm::Es256, KeyCheck::UnknownKey),
            ("r", Algorithm::Ps256, KeyCheck::UnknownKey),
            ("r", Algorithm::Rs256, KeyCheck::BadSignature),
            ("other", Algorithm::Rs256, KeyCheck::UnknownKey),
        ] {
            assert_eq!(
                keys.check(kid, algorithm, b"m", b"s"),
                expected,
                "{kid} {algorithm:?}"
            );
        }
    }
}
