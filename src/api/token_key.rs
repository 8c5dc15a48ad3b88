//! The key that authenticates page tokens and WatchEvents resume cursors. Both carry Okta's
//! cursor, which the gateway sends back to Okta; sealed with an HMAC-SHA256 under this key, a
//! token a caller made up or edited is refused before any Okta call. The key comes from
//! `grpc.token_key_file`; without one each process draws its own, so replicas behind one load
//! balancer need a shared file (or a caller's next page fails on another replica).

use std::path::Path;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Shortest key file accepted: 32 bytes, HMAC-SHA256's own strength.
pub const MIN_KEY_BYTES: usize = 32;
/// Length of the tag at the end of every sealed token.
const TAG_BYTES: usize = 32;

/// An HMAC-SHA256 key for tokens handed to callers; cheap to clone.
#[derive(Clone)]
pub struct TokenKey {
    key: hmac::Key,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("TokenKey(redacted)")
    }
}

impl TokenKey {
    /// The key in `path` (surrounding whitespace ignored, at least [`MIN_KEY_BYTES`]), or a
    /// random one for this process when no file is configured.
    pub fn from_settings(path: Option<&Path>) -> Result<Self, String> {
        match path {
            Some(path) => Self::from_file(path),
            None => {
                tracing::info!(
                    "page tokens and resume cursors are sealed with a key of this process only; \
                     replicas need a shared `grpc.token_key_file`"
                );
                Ok(Self::random())
            }
        }
    }

    /// The key held in a file; the problem (never the key) otherwise.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|error| format!("cannot be read: {error}"))?;
        let secret = bytes.trim_ascii();
        if secret.len() < MIN_KEY_BYTES {
            return Err(format!(
                "holds {} bytes; a token key needs at least {MIN_KEY_BYTES}",
                secret.len()
            ));
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        })
    }

    /// A fresh random key.
    pub fn random() -> Self {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .expect("the system random generator works");
        Self { key }
    }

    /// `payload` with its tag, as one base64url string.
    pub fn seal(&self, payload: &str) -> String {
        let tag = hmac::sign(&self.key, payload.as_bytes());
        let mut bytes = Vec::with_capacity(payload.len() + TAG_BYTES);
        bytes.extend_from_slice(payload.as_bytes());
        bytes.extend_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The payload of a token this key sealed; `None` for anything else (the tag is compared
    /// in constant time).
    pub fn open(&self, token: &str) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let split = bytes.len().checked_sub(TAG_BYTES)?;
        let (payload, tag) = bytes.split_at(split);
        hmac::verify(&self.key, payload, tag).ok()?;
        String::from_utf8(payload.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_this_key_sealed_opens() {
        let key = TokenKey::random();
        let token = key.seal("v2.abc.-.cursor");
        assert_eq!(key.open(&token).as_deref(), Some("v2.abc.-.cursor"));
        assert_eq!(TokenKey::random().open(&token), None);
        let forged = URL_SAFE_NO_PAD.encode("v2.abc.-.other-cursor-and-32-bytes-of-fake-tag!!");
        assert_eq!(key.open(&forged), None);
        for short in ["", "%%", "AAAA"] {
            assert_eq!(key.open(short), None);
        }
    }

    #[test]
    fn a_key_file_must_hold_enough_bytes_and_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.key");
        std::fs::write(&path, "too-short\n").unwrap();
        let problem = TokenKey::from_file(&path).unwrap_err();
        assert!(problem.contains("at least 32"), "{problem}");
        assert!(!problem.contains("too-short"), "{problem}");
        let secret = "k".repeat(MIN_KEY_BYTES);
        std::fs::write(&path, format!("{secret}\n")).unwrap();
        let key = TokenKey::from_file(&path).unwrap();
        std::fs::write(&path, &secret).unwrap();
        let same = TokenKey::from_file(&path).unwrap();
        assert_eq!(same.open(&key.seal("page")).as_deref(), Some("page"));
        assert!(!format!("{key:?}").contains(&secret));
    }
}
