//! The little JOSE the simulated authorization server needs: compact JWS parsing and RS256 /
//! ES256 verification against public JWKs, and RFC 7638 JWK thumbprints (DPoP `jkt`).

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// A public JWK as registered on a client or embedded in a DPoP proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `RSA` or `EC`.
    pub kty: String,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// EC curve (`P-256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// A private part: present means the key must be refused as a public key.
    #[serde(default, skip_serializing)]
    pub d: Option<String>,
}

impl Jwk {
    /// Whether the key is a usable public RSA or EC P-256 key (no private part).
    pub fn check(&self) -> Result<(), String> {
        if self.d.is_some() {
            return Err("the JWK holds a private key".to_owned());
        }
        match self.kty.as_str() {
            "RSA" if self.n.is_some() && self.e.is_some() => Ok(()),
            "EC" if self.crv.as_deref() == Some("P-256")
                && self.x.is_some()
                && self.y.is_some() =>
            {
                Ok(())
            }
            _ => Err("only RSA and EC P-256 public JWKs are supported".to_owned()),
        }
    }

    /// The algorithm this key verifies.
    pub fn alg(&self) -> &'static str {
        if self.kty == "EC" { "ES256" } else { "RS256" }
    }

    /// Verifies `signature` over `message`.
    pub fn verify(&self, alg: &str, message: &[u8], signature: &[u8]) -> bool {
        if alg != self.alg() {
            return false;
        }
        let decode = |v: &Option<String>| v.as_deref().and_then(|v| b64d(v).ok());
        match self.kty.as_str() {
            "RSA" => match (decode(&self.n), decode(&self.e)) {
                (Some(n), Some(e)) => RsaPublicKeyComponents { n, e }
                    .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                    .is_ok(),
                _ => false,
            },
            "EC" => match (decode(&self.x), decode(&self.y)) {
                (Some(x), Some(y)) if x.len() == 32 && y.len() == 32 => {
                    let mut point = vec![0x04];
                    point.extend(x);
                    point.extend(y);
                    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                        .verify(message, signature)
                        .is_ok()
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url.
    pub fn thumbprint(&self) -> String {
        let canonical = match self.kty.as_str() {
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                self.crv.as_deref().unwrap_or_default(),
                self.x.as_deref().unwrap_or_default(),
                self.y.as_deref().unwrap_or_default()
            ),
            _ => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                self.e.as_deref().unwrap_or_default(),
                self.n.as_deref().unwrap_or_default()
            ),
        };
        b64(&Sha256::digest(canonical.as_bytes()))
    }
}

/// A parsed (not yet verified) compact JWS.
#[derive(Debug, Clone)]
pub struct Jws {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The claims.
    pub claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

impl Jws {
    /// Splits and decodes `header.claims.signature`.
    pub fn parse(token: &str) -> Result<Self, String> {
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a compact JWS".to_owned());
        };
        let object = |part: &str| -> Result<Map<String, Value>, String> {
            let bytes = b64d(part).map_err(|()| "not base64url".to_owned())?;
            match serde_json::from_slice(&bytes) {
                Ok(Value::Object(map)) => Ok(map),
                _ => Err("not a JSON object".to_owned()),
            }
        };
        Ok(Jws {
            header: object(header)?,
            claims: object(claims)?,
            signing_input: format!("{header}.{claims}"),
            signature: b64d(signature).map_err(|()| "bad signature encoding".to_owned())?,
        })
    }

    /// A header field as a string.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    /// A claim as a string.
    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A numeric claim (seconds since the epoch).
    pub fn claim_i64(&self, name: &str) -> Option<i64> {
        self.claims.get(name).and_then(Value::as_i64)
    }

    /// Verifies the signature with `key` and the header's `alg`.
    pub fn verified_by(&self, key: &Jwk) -> bool {
        let alg = self.header_str("alg").unwrap_or_default();
        key.verify(alg, self.signing_input.as_bytes(), &self.signature)
    }
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn b64d(text: &str) -> Result<Vec<u8>, ()> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| ())
}
