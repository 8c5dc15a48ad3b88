//! Static API keys for small setups: a mounted YAML file lists each key's name and the SHA-256
//! of the key, never the key itself. A presented key is hashed and compared in constant time.
//!
//! ```yaml
//! - name: billing-batch
//!   sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
//! ```
//! Keys should be long random strings (`openssl rand -hex 32`); `identity-gateway hash-api-key`
//! prints the line to add.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// One entry of the keys file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    sha256: String,
}

/// The accepted keys, by name, as SHA-256 digests.
pub struct ApiKeys {
    keys: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.keys.iter().map(|(name, _)| name.as_str()).collect();
        formatter
            .debug_struct("ApiKeys")
            .field("names", &names)
            .finish()
    }
}

impl ApiKeys {
    /// Reads and checks the keys file: names unique and valid ([`check_key_name`]), digests 64
    /// hex digits, each digest under one name only.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).context("cannot read the file")?;
        Self::parse(&text)
    }

    /// Parses the keys file's contents; see [`ApiKeys::load`].
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let entries: Vec<KeyEntry> =
            serde_yaml::from_str(text).context("not a YAML list of `name` + `sha256` entries")?;
        let mut keys: Vec<(String, [u8; 32])> = Vec::with_capacity(entries.len());
        for entry in entries {
            let name = entry.name.trim().to_owned();
            check_key_name(&name).map_err(anyhow::Error::msg)?;
            if keys.iter().any(|(existing, _)| *existing == name) {
                bail!("key name `{name}` appears twice");
            }
            let digest = decode_digest(entry.sha256.trim())
                .with_context(|| format!("key `{name}`: `sha256` must be 64 hex digits"))?;
            if let Some((other, _)) = keys.iter().find(|(_, existing)| *existing == digest) {
                bail!(
                    "keys `{other}` and `{name}` have the same `sha256`: one key would name two \
                     callers"
                );
            }
            keys.push((name, digest));
        }
        Ok(Self { keys })
    }

    /// The name of the key `presented` is, if any. Every stored digest is compared, in
    /// constant time, so timing tells nothing about the keys.
    pub fn verify(&self, presented: &str) -> Option<&str> {
        // aws-lc-rs (assembly, the crypto rustls already uses) rather than sha2: this runs on
        // every RPC.
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, presented.as_bytes());
        let mut found = None;
        for (name, stored) in &self.keys {
            if aws_lc_rs::constant_time::verify_slices_are_equal(stored, digest.as_ref()).is_ok() {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// Checks a key name as the keys file requires it (letters, digits, `-`, `_`, `.`, `@`), so
/// `apikey:NAME` is a plain, printable identity; `hash-api-key --name` checks it the same way.
pub fn check_key_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "key name `{}` must be letters, digits, `-`, `_`, `.` or `@`",
            name.escape_default()
        ))
    }
}

/// The SHA-256 of `key` in hex, as the keys file stores it.
pub fn hash_api_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn decode_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut digest = [0u8; 32];
    for (index, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16).ok()?;
    }
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_key_is_known_by_its_name_and_others_are_not() {
        let file = format!(
            "- name: billing\n  sha256: {}\n- name: reports\n  sha256: {}\n",
            hash_api_key("key-one"),
            hash_api_key("key-two")
        );
        let keys = ApiKeys::parse(&file).unwrap();
        assert_eq!(keys.verify("key-one"), Some("billing"));
        assert_eq!(keys.verify("key-two"), Some("reports"));
        assert_eq!(keys.verify("key-three"), None);
        assert_eq!(keys.verify(""), None);
        assert!(!format!("{keys:?}").contains(&hash_api_key("key-one")));
    }

    #[test]
    fn malformed_files_are_refused() {
        assert!(ApiKeys::parse("- name: a\n  sha256: abc\n").is_err());
        let twice = format!(
            "- name: a\n  sha256: {0}\n- name: a\n  sha256: {0}\n",
            hash_api_key("k")
        );
        assert!(ApiKeys::parse(&twice).is_err());
        let one_key_two_names = format!(
            "- name: a\n  sha256: {0}\n- name: b\n  sha256: {0}\n",
            hash_api_key("k")
        );
        let error = ApiKeys::parse(&one_key_two_names).unwrap_err().to_string();
        assert!(error.contains("`a` and `b`"), "{error}");
        assert!(ApiKeys::parse("- name: \"a b\"\n  sha256: x\n").is_err());
        assert!(ApiKeys::parse("key: value\n").is_err());
    }
}
