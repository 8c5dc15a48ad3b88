//! The Okta org the gateway calls, from the `okta` settings: their rules (an https base URL,
//! exactly one kind of credential, timeouts and limits within Okta's), and the
//! [`OktaClient`] they describe. The settings become `okta_client` types here and nowhere
//! else, so the client crate never sees the gateway's settings.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::config::{
    Checking, OKTA_SDK_ORG_URL_VAR, OKTA_SDK_TOKEN_VAR, OktaOAuthSettings, OktaSettings, Section,
    checked,
};
use okta_client::ledger::SharedBudget;
use okta_client::{OAuthSettings, OktaClient, OktaClientSettings, SigningKey, default_scopes};

/// The Okta org and credentials once validated.
#[derive(Clone, Debug)]
pub struct OktaTarget {
    /// The org's base URL.
    pub org_url: Url,
    /// The API token (empty, and unused, when `oauth` is set).
    pub api_token: SecretString,
    /// The OAuth service-app credentials, when configured instead of an API token.
    pub oauth: Option<OAuthSettings>,
}

impl Section for OktaSettings {
    /// The org and credentials to call; `None` when simulating, since the embedded simulator
    /// provides the org.
    type Valid = Option<OktaTarget>;

    fn validate(&self, checking: &Checking<'_>) -> Result<Self::Valid, Vec<String>> {
        let mut problems = Vec::new();
        for (name, value) in [
            ("okta.connect_timeout_ms", self.connect_timeout_ms),
            ("okta.request_timeout_ms", self.request_timeout_ms),
            ("okta.retry_base_delay_ms", self.retry_base_delay_ms),
            ("okta.retry_max_delay_ms", self.retry_max_delay_ms),
        ] {
            if value == 0 {
                problems.push(format!("`{name}` must be greater than zero"));
            }
        }
        if self.max_concurrent_requests == 0 || self.max_concurrent_requests > 75 {
            problems.push(
                "`okta.max_concurrent_requests` must be between 1 and 75 (Okta's per-org limit)"
                    .to_owned(),
            );
        }
        if self.rate_limit_reserve_percent > 90 {
            problems.push("`okta.rate_limit_reserve_percent` must be at most 90".to_owned());
        }
        if self.retry_base_delay_ms > self.retry_max_delay_ms {
            problems.push(
                "`okta.retry_base_delay_ms` must not exceed `okta.retry_max_delay_ms`".to_owned(),
            );
        }
        let target = if checking.simulate {
            None
        } else if self.oauth.is_configured() {
            let org_url = self.validated_org_url(&mut problems);
            if self.api_token.is_some() || self.api_token_file.is_some() {
                problems.push(
                    "set either an API token (`okta.api_token` / `okta.api_token_file`) or \
                     `okta.oauth`, not both"
                        .to_owned(),
                );
            }
            let oauth = self.oauth.validated(&mut problems);
            org_url.zip(oauth).map(|(org_url, oauth)| OktaTarget {
                org_url,
                api_token: SecretString::from(String::new()),
                oauth: Some(oauth),
            })
        } else {
            let org_url = self.validated_org_url(&mut problems);
            let api_token = self.validated_token(&mut problems);
            org_url
                .zip(api_token)
                .map(|(org_url, api_token)| OktaTarget {
                    org_url,
                    api_token,
                    oauth: None,
                })
        };
        checked(problems, target)
    }
}

impl OktaSettings {
    fn validated_org_url(&self, problems: &mut Vec<String>) -> Option<Url> {
        let Some(raw) = self.org_url.as_deref() else {
            problems.push(format!(
                "`okta.org_url` is not set (set IDGW_OKTA__ORG_URL or {OKTA_SDK_ORG_URL_VAR}, \
                 or run with --simulate to use the built-in simulated org)"
            ));
            return None;
        };
        let url = match Url::parse(raw) {
            Ok(url) => url,
            Err(error) => {
                problems.push(format!("`okta.org_url` is not a URL ({error}): `{raw}`"));
                return None;
            }
        };
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        let plain_http_allowed = loopback || self.allow_insecure_http;
        if url.scheme() != "https" && !(url.scheme() == "http" && plain_http_allowed) {
            problems.push(format!(
                "`okta.org_url` must use https (plain http only for a simulator: on loopback, or \
                 with `okta.allow_insecure_http`), got `{raw}`"
            ));
        }
        if url.path() != "/" || url.query().is_some() {
            problems.push(format!(
                "`okta.org_url` must be the org's base URL with no path, got `{raw}`"
            ));
        }
        Some(url)
    }

    fn validated_token(&self, problems: &mut Vec<String>) -> Option<SecretString> {
        let token = match (&self.api_token, &self.api_token_file) {
            (Some(_), Some(_)) => {
                problems
                    .push("set only one of `okta.api_token` and `okta.api_token_file`".to_owned());
                return None;
            }
            (Some(token), None) => token.expose_secret().trim().to_owned(),
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(contents) => contents.trim().to_owned(),
                Err(error) => {
                    problems.push(format!(
                        "`okta.api_token_file` could not be read ({error}): `{}`",
                        path.display()
                    ));
                    return None;
                }
            },
            (None, None) => {
                problems.push(format!(
                    "no Okta API token: set `okta.api_token_file`, IDGW_OKTA__API_TOKEN or \
                     {OKTA_SDK_TOKEN_VAR}"
                ));
                return None;
            }
        };
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            problems.push("the Okta API token is empty or contains whitespace".to_owned());
            return None;
        }
        Some(SecretString::from(token))
    }
}

impl OktaOAuthSettings {
    /// Whether OAuth credentials are configured (any of the identifying settings is set).
    fn is_configured(&self) -> bool {
        self.client_id.is_some() || self.private_key_file.is_some()
    }

    /// The scopes requested: the override, or the defaults for the read-only flag.
    fn effective_scopes(&self) -> Vec<String> {
        match &self.scopes {
            Some(list) => list.words(),
            None => default_scopes(self.read_only_scopes),
        }
    }

    /// Checks `okta.oauth`: client id, a readable and usable private key with a key id, and
    /// well-formed scopes; every problem is reported.
    fn validated(&self, problems: &mut Vec<String>) -> Option<OAuthSettings> {
        let client_id = match self.client_id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() && !id.chars().any(char::is_whitespace) => {
                Some(id.to_owned())
            }
            Some(_) => {
                problems.push("`okta.oauth.client_id` is empty or contains whitespace".to_owned());
                None
            }
            None => {
                problems.push(
                    "`okta.oauth.client_id` is not set (the service app's client id, 0oa…)"
                        .to_owned(),
                );
                None
            }
        };
        let key = match &self.private_key_file {
            None => {
                problems.push(
                    "`okta.oauth.private_key_file` is not set (the service app's private key, \
                     PEM or JWK)"
                        .to_owned(),
                );
                None
            }
            Some(path) => match std::fs::read_to_string(path) {
                Err(error) => {
                    problems.push(format!(
                        "`okta.oauth.private_key_file` could not be read ({error}): `{}`",
                        path.display()
                    ));
                    None
                }
                Ok(text) => match SigningKey::parse(&text, self.key_id.as_deref()) {
                    Ok(key) => Some(key),
                    Err(error) => {
                        problems.push(format!(
                            "`okta.oauth.private_key_file` (`{}`): {error}",
                            path.display()
                        ));
                        None
                    }
                },
            },
        };
        let scopes = self.effective_scopes();
        if scopes.is_empty() {
            problems.push("`okta.oauth.scopes` is empty".to_owned());
        }
        let bad: Vec<&str> = scopes
            .iter()
            .map(String::as_str)
            .filter(|scope| {
                !scope.starts_with("okta.")
                    || !scope
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
            })
            .collect();
        if !bad.is_empty() {
            problems.push(format!(
                "`okta.oauth.scopes` holds scopes that are not Okta API scopes (okta.*): {}",
                bad.join(" ")
            ));
        }
        let (client_id, key) = client_id.zip(key)?;
        Some(OAuthSettings {
            client_id,
            key,
            scopes,
            dpop: self.dpop,
        })
    }
}

/// The Okta client for the validated configuration: API token or OAuth service app.
pub fn client(
    settings: &OktaSettings,
    mut target: OktaTarget,
    shared_budget: Option<Arc<dyn SharedBudget>>,
) -> anyhow::Result<OktaClient> {
    let oauth = target.oauth.take();
    let client_settings = client_settings(settings, target, shared_budget);
    let client = match oauth {
        Some(oauth) => {
            tracing::info!(okta.client_id = %oauth.client_id, scopes = %oauth.scopes.join(" "),
                dpop = oauth.dpop, "authenticating to okta as an oauth service app");
            OktaClient::with_oauth(client_settings, oauth)?
        }
        None => OktaClient::new(client_settings)?,
    };
    Ok(client)
}

/// The Okta client's settings from the validated configuration, spending `shared_budget` (the
/// replicas' rate-limit ledger) when there is one; public so tests can build a client for an
/// org they start themselves.
pub fn client_settings(
    settings: &OktaSettings,
    target: OktaTarget,
    shared_budget: Option<Arc<dyn SharedBudget>>,
) -> OktaClientSettings {
    OktaClientSettings {
        base_url: target.org_url,
        api_token: target.api_token,
        connect_timeout: Duration::from_millis(settings.connect_timeout_ms),
        request_timeout: Duration::from_millis(settings.request_timeout_ms),
        max_retries: settings.max_retries,
        retry_base_delay: Duration::from_millis(settings.retry_base_delay_ms),
        retry_max_delay: Duration::from_millis(settings.retry_max_delay_ms),
        rate_limit_reserve_percent: settings.rate_limit_reserve_percent,
        max_concurrent_requests: settings.max_concurrent_requests,
        user_agent: crate::USER_AGENT.to_owned(),
        shared_budget,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::load;

    #[test]
    fn the_target_is_the_org_and_token_the_settings_name() {
        let settings = load(&[
            ("OKTA_CLIENT_ORGURL", "https://sdk.okta.com"),
            ("OKTA_CLIENT_TOKEN", " sdk-token\n"),
            ("IDGW_OKTA__ORG_URL", "https://own.okta.com"),
            ("IDGW_AUTH__INSECURE", "true"),
        ]);
        let target = settings.validate(false).unwrap().unwrap();
        assert_eq!(target.org_url.as_str(), "https://own.okta.com/");
        assert_eq!(target.api_token.expose_secret(), "sdk-token");
        assert!(target.oauth.is_none());
        assert!(settings.validate(true).unwrap().is_none());
    }

    #[test]
    fn limits_are_checked_even_when_simulating() {
        let settings = load(&[
            ("IDGW_OKTA__MAX_CONCURRENT_REQUESTS", "76"),
            ("IDGW_OKTA__RETRY_BASE_DELAY_MS", "20000"),
            ("IDGW_OKTA__CONNECT_TIMEOUT_MS", "0"),
        ]);
        let problems = settings.okta.validate(&Checking {
            settings: &settings,
            simulate: true,
        });
        let problems = problems.unwrap_err().join("\n");
        for needle in [
            "`okta.max_concurrent_requests` must be between 1 and 75",
            "`okta.retry_base_delay_ms` must not exceed",
            "`okta.connect_timeout_ms` must be greater than zero",
        ] {
            assert!(problems.contains(needle), "{needle}: {problems}");
        }
        assert!(!problems.contains("okta.org_url"), "{problems}");
    }
}
