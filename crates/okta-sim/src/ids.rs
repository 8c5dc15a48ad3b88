//! Identifiers and tokens: random ones for live traffic, deterministic ones for seeded data.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Length of the random part of an Okta object id (`00u` + 17 = 20 characters).
pub const ID_TAIL_LEN: usize = 17;

/// A random alphanumeric string of `len` characters.
pub fn alnum(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A random string over the URL-safe base64 alphabet.
pub fn url_safe(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(URL_SAFE[rng.random_range(0..URL_SAFE.len())]))
        .collect()
}

/// A fresh random object id with Okta's prefix, e.g. `00u` for users, `00g` for groups.
pub fn random_id(prefix: &str) -> String {
    format!("{prefix}{}", alnum(ID_TAIL_LEN))
}

/// A stable id derived from `key`, so seeded and demo objects keep their ids across restarts.
pub fn stable_id(prefix: &str, key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let tail: String = digest
        .iter()
        .take(ID_TAIL_LEN)
        .map(|b| char::from(ALNUM[usize::from(*b) % ALNUM.len()]))
        .collect();
    format!("{prefix}{tail}")
}

/// Whether `s` has the shape of an id with the given prefix (`00u` + 17 alphanumerics).
pub fn is_id_shaped(prefix: &str, s: &str) -> bool {
    s.len() == prefix.len() + ID_TAIL_LEN
        && s.starts_with(prefix)
        && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A fresh `x-okta-request-id`: 32 lowercase hex digits, as in current Okta traffic.
pub fn request_id() -> String {
    let mut rng = rand::rng();
    (0..32)
        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
        .collect()
}

/// A fresh `errorId`: `oae` + 22 URL-safe characters.
pub fn error_id() -> String {
    format!("oae{}", url_safe(22))
}
