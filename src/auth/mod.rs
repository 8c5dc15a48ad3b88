//! Caller authentication: who is calling, proven by an API key (more mechanisms plug in beside
//! it). Deny by default: a caller without valid credentials is refused UNAUTHENTICATED, unless
//! the deployment is explicitly insecure (local runs, the simulated quick start).
//!
//! Authentication does not refuse anything itself ([`Authenticator::annotate`]): it records the outcome in the
//! request's extensions as an [`Authentication`], so the audit layer can record refused calls
//! with what was presented, and the authorization layer refuses them.

mod api_keys;

use std::sync::Arc;

use anyhow::Context as _;

pub use api_keys::{ApiKeys, hash_api_key};

use crate::config::AuthSettings;

/// The metadata header carrying a static API key.
pub const API_KEY_HEADER: &str = "x-api-key";
/// The identity given to callers without credentials in insecure mode.
pub const ANONYMOUS: &str = "anonymous";
/// Paths that need no credentials unless `auth.protect_health_and_reflection` is set: Kubernetes
/// probes and operators' grpcurl must keep working.
pub const INFRASTRUCTURE_PATHS: &[&str] = &["/grpc.health.v1.Health/", "/grpc.reflection."];

/// An authenticated caller, as policy, audit and fairness see it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The identity policies name: `apikey:NAME`, `spiffe://…`, `system:serviceaccount:NS:NAME`,
    /// or [`ANONYMOUS`] in insecure mode.
    pub identity: Arc<str>,
    /// How the identity was proven.
    pub mechanism: Mechanism,
}

/// How a caller proved its identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// A static API key from the keys file.
    ApiKey,
    /// Nothing: insecure mode.
    Insecure,
}

impl Mechanism {
    /// The name used in logs and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Insecure => "insecure",
        }
    }
}

/// The outcome of authenticating one request, left in its extensions.
#[derive(Clone, Debug)]
pub enum Authentication {
    /// The caller is known.
    Authenticated(Caller),
    /// No credentials were needed (health or reflection, left open).
    NotRequired,
    /// Credentials were missing or invalid; the text says which, and never echoes a secret.
    Refused(String),
}

impl Authentication {
    /// The caller, when authenticated.
    pub fn caller(&self) -> Option<&Caller> {
        match self {
            Self::Authenticated(caller) => Some(caller),
            _ => None,
        }
    }
}

/// Checks the credentials a request carries against the configured mechanisms.
#[derive(Debug)]
pub struct Authenticator {
    api_keys: Option<ApiKeys>,
    insecure: bool,
    protect_infrastructure: bool,
}

impl Authenticator {
    /// Loads the configured mechanisms (reads the API keys file); fails naming the setting.
    pub fn from_settings(settings: &AuthSettings) -> anyhow::Result<Self> {
        let api_keys = settings
            .api_keys_file
            .as_deref()
            .map(|path| {
                ApiKeys::load(path).with_context(|| {
                    format!("`auth.api_keys_file` (`{}`) is not usable", path.display())
                })
            })
            .transpose()?;
        if settings.insecure {
            tracing::warn!(
                "INSECURE: caller authentication is off (`auth.insecure`); any caller that can \
                 reach the port acts as `{ANONYMOUS}`. Never run a real Okta org like this."
            );
        }
        Ok(Self {
            api_keys,
            insecure: settings.insecure,
            protect_infrastructure: settings.protect_health_and_reflection,
        })
    }

    /// Decides who sent `request`. Presented credentials are always checked, even in insecure
    /// mode: a bad key never falls back to anonymous.
    pub fn authenticate<B>(&self, request: &http::Request<B>) -> Authentication {
        let path = request.uri().path();
        if !self.protect_infrastructure
            && INFRASTRUCTURE_PATHS
                .iter()
                .any(|prefix| path.starts_with(prefix))
        {
            return Authentication::NotRequired;
        }
        let headers = request.headers();
        if let Some(key) = headers.get(API_KEY_HEADER) {
            let Some(keys) = &self.api_keys else {
                return Authentication::Refused(format!(
                    "an `{API_KEY_HEADER}` was sent but this gateway accepts no API keys"
                ));
            };
            return match key.to_str().ok().and_then(|key| keys.verify(key)) {
                Some(name) => Authentication::Authenticated(Caller {
                    identity: format!("apikey:{name}").into(),
                    mechanism: Mechanism::ApiKey,
                }),
                None => Authentication::Refused("the API key is not valid".to_owned()),
            };
        }
        if self.insecure {
            return Authentication::Authenticated(Caller {
                identity: ANONYMOUS.into(),
                mechanism: Mechanism::Insecure,
            });
        }
        Authentication::Refused(format!(
            "no credentials: send an API key in `{API_KEY_HEADER}`"
        ))
    }
}

impl Authenticator {
    /// Records `request`'s [`Authentication`] in its extensions: the whole of the
    /// authentication layer (`tower::util::MapRequestLayer` around this).
    pub fn annotate<B>(&self, mut request: http::Request<B>) -> http::Request<B> {
        let authentication = self.authenticate(&request);
        request.extensions_mut().insert(authentication);
        request
    }
}
