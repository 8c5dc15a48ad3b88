//! The policy in force, reloaded when its file changes. A changed file applies only once a
//! second read [`SETTLE`] after the first finds the same content, so a file caught while its
//! writer is still writing it (a torn read) never applies. A file that fails to load or check
//! (an empty one included) is refused with an error log line naming every problem, and the
//! previous policy stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::policy::Policy;

/// How long a changed policy file must stay the same before it applies. Writers that replace
/// the file at once (Kubernetes ConfigMap symlink swaps, editors) are unaffected; one that
/// pauses mid-file for less than this is not applied half-written.
pub const SETTLE: Duration = Duration::from_secs(1);

/// The current policy, and where it came from.
#[derive(Debug)]
pub struct PolicyStore {
    current: RwLock<(Arc<Policy>, [u8; 32])>,
    path: Option<PathBuf>,
}

impl PolicyStore {
    /// Loads the policy file; at start an invalid policy is an error (the gateway does not
    /// start with a policy nobody meant).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).context("cannot read the policy file")?;
        let policy = Policy::parse(&text).map_err(|problems| anyhow::anyhow!("{problems}"))?;
        tracing::info!(policy = %path.display(), "authorization policy loaded");
        Ok(Self {
            current: RwLock::new((Arc::new(policy), digest(&text))),
            path: Some(path.to_owned()),
        })
    }

    /// A fixed policy with no file behind it.
    pub fn fixed(policy: Policy) -> Self {
        Self {
            current: RwLock::new((Arc::new(policy), [0; 32])),
            path: None,
        }
    }

    /// The policy in force now.
    pub fn current(&self) -> Arc<Policy> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            .clone()
    }

    /// Rereads the file; a changed, valid policy that reads the same again after [`SETTLE`]
    /// replaces the current one. Returns whether it was replaced.
    pub async fn reload(&self) -> bool {
        let Some(path) = &self.path else {
            return false;
        };
        let Some(text) = read_policy(path).await else {
            return false;
        };
        let new_digest = digest(&text);
        if self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1
            == new_digest
        {
            return false;
        }
        tokio::time::sleep(SETTLE).await;
        let Some(again) = read_policy(path).await else {
            return false;
        };
        if digest(&again) != new_digest {
            tracing::info!(policy = %path.display(),
                "the authorization policy file is still being written; it applies once it stays unchanged");
            return false;
        }
        match Policy::parse(&text) {
            Ok(policy) => {
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    (Arc::new(policy), new_digest);
                tracing::info!(policy = %path.display(), "authorization policy reloaded");
                true
            }
            Err(problems) => {
                tracing::error!(policy = %path.display(), problems = %problems.replace('\n', "; "),
                    "the changed authorization policy is invalid and was refused; the previous policy stays in force");
                // Remember the refused version so the same problems are logged once.
                self.current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .1 = new_digest;
                false
            }
        }
    }

    /// Checks the file every `interval` (content, not modification time: Kubernetes swaps
    /// ConfigMap files through symlinks). Ends when the store is dropped.
    pub fn spawn_reloader(self: &Arc<Self>, interval: Duration) {
        if self.path.is_none() {
            return;
        }
        let store = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                match store.upgrade() {
                    Some(store) => {
                        store.reload().await;
                    }
                    None => return,
                }
            }
        });
    }
}

/// The policy file's text, or `None` (logged) when it cannot be read.
async fn read_policy(path: &Path) -> Option<String> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Some(text),
        Err(error) => {
            tracing::error!(policy = %path.display(), %error,
                "cannot read the authorization policy; the previous policy stays in force");
            None
        }
    }
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}
