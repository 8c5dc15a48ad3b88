//! [`OktaClient`]: one reqwest client for the process and the one place (`send`) where
//! requests get their auth header and responses become values or [`OktaError`]s.

use std::fmt;
use std::time::Instant;

use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, DATE, HeaderMap, HeaderName, HeaderValue,
    WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use url::Url;

use crate::auth::{Credentials, OAuthClient, OAuthSettings, RequestAuth};
use crate::budget::{self, Budgets, Refusal};
use crate::clock::{self, OktaClock, OktaTime};
use crate::error::{OktaError, OktaErrorBody, ResponseMeta};
use crate::instrumentation;
use crate::pagination::{self, Page};
use crate::rate_limit::{self, RateLimitState, RetryParams};

const JSON: &str = "application/json";
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-okta-request-id");
/// Okta's SDKs name the failed request and count retries so Okta can correlate them.
const RETRY_FOR_HEADER: &str = "x-okta-retry-for";
const RETRY_COUNT_HEADER: &str = "x-okta-retry-count";
/// Upper bound on pages followed by `get_all`, so a looping `next` link cannot hang a call.
const MAX_FOLLOWED_PAGES: usize = 1000;

/// How to reach Okta. Built by the configuration layer; the token never appears in Debug.
#[derive(Clone)]
pub struct OktaClientSettings {
    /// The org URL, e.g. `https://acme.okta.com` (or the simulator's `http://127.0.0.1:PORT`).
    pub base_url: Url,
    /// The API token, sent as `Authorization: SSWS <token>`; never logged.
    pub api_token: SecretString,
    /// Bound on establishing a connection.
    pub connect_timeout: std::time::Duration,
    /// Bound on one attempt of one request, connect to last body byte.
    pub request_timeout: std::time::Duration,
    /// Retries of idempotent requests (GET, group membership PUT/DELETE) and user lifecycle
    /// transitions; never of creates, updates or deletions.
    pub max_retries: u32,
    /// First step of the exponential backoff used when Okta gives no reset time.
    pub retry_base_delay: std::time::Duration,
    /// Cap on any single wait, including 429 waits.
    pub retry_max_delay: std::time::Duration,
    /// Share of each rate-limit bucket left unused (for other clients of the same token).
    pub rate_limit_reserve_percent: u32,
    /// Most Okta requests in flight at once (Okta allows 75 per org, shared by every client).
    pub max_concurrent_requests: u32,
    /// The `User-Agent` of every request, the application's `name/version`, so Okta's System
    /// Log and support can tell its traffic apart.
    pub user_agent: String,
}

impl fmt::Debug for OktaClientSettings {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("OktaClientSettings")
            .field("base_url", &self.base_url.as_str())
            .field("api_token", &"[redacted]")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_base_delay", &self.retry_base_delay)
            .field("retry_max_delay", &self.retry_max_delay)
            .field(
                "rate_limit_reserve_percent",
                &self.rate_limit_reserve_percent,
            )
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

/// The Okta Management API client. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct OktaClient {
    http: reqwest::Client,
    base_url: Url,
    /// The API token (`SSWS`, marked sensitive so reqwest/hyper never print it) or the OAuth
    /// service app's token source.
    credentials: Credentials,
    retry: RetryParams,
    budgets: std::sync::Arc<Budgets>,
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
    clock: std::sync::Arc<OktaClock>,
}

impl fmt::Debug for OktaClient {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("OktaClient")
            .field("base_url", &self.base_url.as_str())
            .field("retry", &self.retry)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// Whether a request may be sent again after a 429, a 5xx or a connection error.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// GET and the idempotent membership PUT/DELETE.
    Idempotent,
    /// A user or device lifecycle transition: sent again like an idempotent request, because a
    /// repeat after a lost answer cannot transition twice; `okta::transition` recognises Okta's
    /// refusal of a repeat that finds it already where the transition leads.
    Transition,
    /// A transition that sends email: sent again only after a 429, which Okta answers without
    /// carrying the request out, never after an answer that may have been lost (a repeat could
    /// email twice).
    WhenRefused,
    /// Creates, updates, deletions.
    Never,
}

/// A decoded answer with Okta's id of the request that gave it, for a refusal the gateway
/// decides on what Okta answered (the id links the refusal to Okta's System Log).
#[derive(Debug)]
pub struct Answered<T> {
    /// The decoded answer.
    pub value: T,
    /// `X-Okta-Request-Id` of the answer.
    pub request_id: Option<String>,
}

/// A 2xx response, body read.
pub(crate) struct Success {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    pub(crate) meta: ResponseMeta,
}

impl Success {
    /// A success without an answer of its own: a transition whose lost answer a retry found
    /// already carried out (`meta` is the retry's refusal).
    pub(crate) fn without_body(meta: ResponseMeta) -> Self {
        Self {
            status: 204,
            headers: HeaderMap::new(),
            body: Vec::new(),
            meta,
        }
    }

    /// Decodes the JSON body; a body that does not match is Okta breaking its contract.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, OktaError> {
        serde_json::from_slice(&self.body).map_err(|error| {
            OktaError::unexpected(
                self.status,
                format!("could not decode the response body: {error}"),
                &self.meta,
            )
        })
    }

    /// Decodes the JSON body, keeping the request id.
    pub(crate) fn answered<T: DeserializeOwned>(&self) -> Result<Answered<T>, OktaError> {
        Ok(Answered {
            value: self.json()?,
            request_id: self.meta.request_id.clone(),
        })
    }

    /// Decodes the JSON body, or `None` for 204 / an empty body.
    pub(crate) fn json_opt<T: DeserializeOwned>(&self) -> Result<Option<T>, OktaError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            Ok(None)
        } else {
            self.json().map(Some)
        }
    }
}

impl OktaClient {
    /// Builds the client once at startup: connection pool, timeouts, User-Agent, auth header.
    /// Fails when the base URL is not an http(s) URL or the token cannot be a header value
    /// (reported as `UnexpectedResponse` with status 0), or when the HTTP client cannot be
    /// built (`Connect`).
    pub fn new(settings: OktaClientSettings) -> Result<Self, OktaError> {
        let no_response = ResponseMeta::default();
        let base_url = settings.base_url;
        if !matches!(base_url.scheme(), "http" | "https")
            || base_url.cannot_be_a_base()
            || base_url.host().is_none()
        {
            return Err(OktaError::unexpected(
                0,
                "okta base url must be an http or https url with a host",
                &no_response,
            ));
        }
        let mut authorization =
            HeaderValue::from_str(&format!("SSWS {}", settings.api_token.expose_secret()))
                .map_err(|_| {
                    OktaError::unexpected(
                        0,
                        "okta api token is not a valid http header value",
                        &no_response,
                    )
                })?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .user_agent(settings.user_agent.as_str())
            // Never follow redirects: they would carry the token to wherever Okta points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(OktaError::Connect)?;
        let retry = RetryParams {
            max_retries: settings.max_retries,
            base_delay: settings.retry_base_delay,
            max_delay: settings.retry_max_delay,
        };
        let budgets = std::sync::Arc::new(Budgets::new(settings.rate_limit_reserve_percent));
        crate::instrumentation::observe_rate_limits(&budgets);
        Ok(Self {
            http,
            base_url,
            credentials: Credentials::ApiToken(authorization),
            retry,
            budgets,
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(
                usize::try_from(settings.max_concurrent_requests.max(1)).unwrap_or(1),
            )),
            clock: std::sync::Arc::new(OktaClock::new()),
        })
    }

    /// Like [`OktaClient::new`], but authenticating as an OAuth 2.0 service app (client
    /// credentials with a private_key_jwt assertion, DPoP when configured or demanded) instead
    /// of with `settings.api_token`, which is ignored.
    pub fn with_oauth(
        settings: OktaClientSettings,
        oauth: OAuthSettings,
    ) -> Result<Self, OktaError> {
        let mut client = Self::new(OktaClientSettings {
            api_token: SecretString::from("unused"),
            ..settings
        })?;
        let oauth = OAuthClient::new(client.http.clone(), &client.base_url, oauth);
        client.credentials = Credentials::OAuth(std::sync::Arc::new(oauth));
        Ok(client)
    }

    /// The URL of an Okta path under the base URL; each segment is percent-encoded, so a
    /// value can never add a path level or a query.
    pub(crate) fn endpoint(&self, segments: &[&str]) -> Result<Url, OktaError> {
        let mut url = self.base_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .map_err(|()| {
                OktaError::unexpected(
                    0,
                    "okta base url cannot have a path",
                    &ResponseMeta::default(),
                )
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// What Okta's clock read at our moment `at`, as measured from the `Date` of its answers;
    /// `None` before the first answer.
    pub fn okta_time_at(&self, at: Instant) -> Option<OktaTime> {
        self.clock.okta_time_at(at)
    }

    /// Fetches one page of a list and the cursor of the next one.
    pub(crate) async fn get_page<T: DeserializeOwned>(
        &self,
        url: Url,
    ) -> Result<Page<T>, OktaError> {
        let success = self.send(Method::GET, url, None, Retry::Idempotent).await?;
        let items = success.json()?;
        let next = match pagination::next_link(&success.headers) {
            None => None,
            Some(next_link) => pagination::cursor_of(&next_link)
                .map_err(|detail| OktaError::unexpected(success.status, detail, &success.meta))?,
        };
        Ok(Page {
            items,
            next,
            meta: success.meta,
        })
    }

    /// Fetches every page of a list by following `rel="next"` links, but only links on
    /// our own origin: the token must never be sent anywhere else.
    pub(crate) async fn get_all<T: DeserializeOwned>(
        &self,
        first_page: Url,
    ) -> Result<Vec<T>, OktaError> {
        let mut all_items = Vec::new();
        let mut next_url_opt = Some(first_page);
        let mut followed_pages = 0;
        while let Some(url) = next_url_opt.take() {
            followed_pages += 1;
            let success = self.send(Method::GET, url, None, Retry::Idempotent).await?;
            let items: Vec<T> = success.json()?;
            all_items.extend(items);
            let Some(next_link) = pagination::next_link(&success.headers) else {
                break;
            };
            let next_url = Url::parse(&next_link).map_err(|error| {
                OktaError::unexpected(
                    success.status,
                    format!("next link is not a url: {error}"),
                    &success.meta,
                )
            })?;
            if next_url.origin() != self.base_url.origin() {
                return Err(OktaError::unexpected(
                    success.status,
                    "next link points to another origin than the okta base url; not followed",
                    &success.meta,
                ));
            }
            if followed_pages >= MAX_FOLLOWED_PAGES {
                return Err(OktaError::unexpected(
                    success.status,
                    "too many pages; stopped following next links",
                    &success.meta,
                ));
            }
            next_url_opt = Some(next_url);
        }
        Ok(all_items)
    }

    /// Sends one logical request: auth and content headers, retries when `retry` allows,
    /// request id and rate-limit capture, status classification. Returns 2xx responses.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: Url,
        body_opt: Option<&serde_json::Value>,
        retry: Retry,
    ) -> Result<Success, OktaError> {
        let body_bytes_opt = body_opt.map(|body| body.to_string().into_bytes());
        let names = instrumentation::RequestNames::new(&method, &url);
        let bucket = names.operation.as_str();
        let mut attempt: u32 = 0;
        let mut retry_for_opt: Option<String> = None;
        let mut reauthenticated = false;
        // Whether an earlier attempt may have been carried out although its answer was lost.
        let mut unanswered = false;
        loop {
            let mut span = instrumentation::AttemptSpan::start(&names, &url, attempt);
            let auth = self.credentials.request_auth(&method, &url).await?;
            // The budget first: a wait for a spent bucket's reset must hold no slot, or it would
            // block every other bucket's requests.
            match self.budgets.acquire(bucket).await {
                Ok(()) => {}
                Err(Refusal::Deadline(wait)) => {
                    tracing::warn!(okta.bucket = %bucket, wait_ms = wait.as_millis() as u64,
                        "okta rate-limit budget cannot recover before the caller's deadline");
                    return Err(OktaError::RateLimited {
                        retry_after: Some(wait),
                        body: None,
                        meta: ResponseMeta::default(),
                    });
                }
                Err(Refusal::CallerShareSpent(retry_after)) => {
                    tracing::warn!(okta.bucket = %bucket, retry_after_ms = retry_after.as_millis() as u64,
                        "the caller has spent its share of this okta rate-limit bucket");
                    return Err(OktaError::CallerShareSpent {
                        retry_after,
                        bucket: bucket.to_string(),
                    });
                }
            }
            // A slot is held only while the request is on the wire; a unit taken for a request
            // that never leaves is settled as unanswered.
            let Some(in_flight_slot) = self.in_flight_slot().await else {
                self.budgets.settle(bucket, None);
                return Err(OktaError::RateLimited {
                    retry_after: Some(std::time::Duration::from_secs(1)),
                    body: None,
                    meta: ResponseMeta::default(),
                });
            };
            let request = span.with_trace_context(self.build_request(
                &method,
                &url,
                body_bytes_opt.as_deref(),
                attempt,
                retry_for_opt.as_deref(),
                &auth,
            ));
            let may_retry = retry != Retry::Never && attempt < self.retry.max_retries;
            let started = Instant::now();
            clock::departing(started);
            let sent = request.send().await;
            self.budgets.settle(
                bucket,
                sent.as_ref()
                    .ok()
                    .and_then(|response| RateLimitState::from_headers(response.headers()))
                    .as_ref(),
            );
            let mut response = match sent {
                Ok(response) => response,
                Err(transport_error) => {
                    drop(in_flight_slot);
                    let error = OktaError::from_transport(transport_error);
                    span.record_transport_error(error.kind());
                    tracing::debug!(http.method = %method, url.path = url.path(), attempt, error = %error, "okta request failed");
                    let wait = self.retry.backoff(attempt);
                    if may_retry
                        && retry != Retry::WhenRefused
                        && matches!(error, OktaError::Connect(_))
                        && !budget::outlasts_deadline(wait)
                    {
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        retry_for_opt = None;
                        unanswered = true;
                        continue;
                    }
                    return Err(error);
                }
            };
            let status = response.status();
            // Taken, not cloned: reading the body needs only the body.
            let headers = std::mem::take(response.headers_mut());
            if let Some(date) = headers.get(DATE).and_then(|date| date.to_str().ok()) {
                self.clock.observe(started, Instant::now(), date);
            }
            let meta = ResponseMeta {
                status: status.as_u16(),
                request_id: header_string(&headers, REQUEST_ID_HEADER),
                rate_limit: RateLimitState::from_headers(&headers),
                retry_count: attempt,
                after_unanswered: unanswered,
            };
            let body = response
                .bytes()
                .await
                .map_err(OktaError::from_transport)?
                .to_vec();
            span.record_response(&names, &meta, started.elapsed());
            drop(in_flight_slot);

            tracing::debug!(
                http.method = %method,
                url.path = url.path(),
                http.status = status.as_u16(),
                okta.request_id = meta.request_id.as_deref().unwrap_or_default(),
                duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                attempt,
                "okta request"
            );
            if status.is_success() {
                return Ok(Success {
                    status: status.as_u16(),
                    headers,
                    body,
                    meta,
                });
            }
            let error_body_opt = serde_json::from_slice::<OktaErrorBody>(&body).ok();
            if let Some(error_body) = &error_body_opt {
                span.record_error_code(&error_body.error_code);
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                let retry_after = rate_limit::backoff_after_429(&headers);
                if meta
                    .rate_limit
                    .is_some_and(|state| state.is_concurrency_limit())
                {
                    tracing::warn!(
                        okta.request_id = meta.request_id.as_deref().unwrap_or_default(),
                        "okta concurrent request limit exceeded"
                    );
                }
                let wait = self.retry.wait_after_429(retry_after, attempt);
                if may_retry && !budget::outlasts_deadline(wait) {
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    retry_for_opt = meta.request_id;
                    continue;
                }
                return Err(OktaError::RateLimited {
                    retry_after,
                    body: error_body_opt,
                    meta,
                });
            }
            if status.is_server_error() {
                let wait = self.retry.backoff(attempt);
                if may_retry && retry != Retry::WhenRefused && !budget::outlasts_deadline(wait) {
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    retry_for_opt = meta.request_id;
                    unanswered = true;
                    continue;
                }
                return Err(OktaError::Unavailable {
                    status: status.as_u16(),
                    body: error_body_opt,
                    meta,
                });
            }
            if status == StatusCode::UNAUTHORIZED && self.credentials.refreshable() {
                // An expired or revoked access token: one new token, one more try.
                if !reauthenticated {
                    reauthenticated = true;
                    self.credentials.invalidate(&auth);
                    continue;
                }
                if let Some(error) = self.credentials.rejected_after_refresh(meta.clone()) {
                    return Err(error);
                }
            }
            if status.is_client_error() {
                let www_authenticate = header_string(&headers, WWW_AUTHENTICATE);
                return Err(OktaError::Api {
                    status: status.as_u16(),
                    body: error_body_opt,
                    meta,
                    www_authenticate,
                });
            }
            return Err(OktaError::unexpected(
                status.as_u16(),
                "unexpected http status",
                &meta,
            ));
        }
    }

    /// A slot among the requests in flight, waited for no longer than the caller's deadline.
    async fn in_flight_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let acquire = self.in_flight.clone().acquire_owned();
        match budget::time_left() {
            Some(left) => tokio::time::timeout(left, acquire)
                .await
                .ok()
                .and_then(Result::ok),
            None => acquire.await.ok(),
        }
    }

    fn build_request(
        &self,
        method: &Method,
        url: &Url,
        body_opt: Option<&[u8]>,
        attempt: u32,
        retry_for_opt: Option<&str>,
        auth: &RequestAuth,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header(ACCEPT, JSON)
            .header(AUTHORIZATION, auth.authorization.clone());
        if let Some(proof) = &auth.dpop {
            request = request.header("dpop", proof.clone());
        }
        request = match body_opt {
            Some(body) => request.header(CONTENT_TYPE, JSON).body(body.to_vec()),
            // Okta answers 411 to a POST or PUT without a length.
            None if *method == Method::POST || *method == Method::PUT => {
                request.header(CONTENT_LENGTH, "0").body(Vec::new())
            }
            None => request,
        };
        if attempt > 0 {
            if let Some(retry_for) =
                retry_for_opt.and_then(|value| HeaderValue::from_str(value).ok())
            {
                request = request.header(RETRY_FOR_HEADER, retry_for);
            }
            request = request.header(RETRY_COUNT_HEADER, attempt.to_string());
        }
        request
    }
}

/// Adds query parameters, each as one percent-encoded value (no-op for none, so no bare `?`).
pub(crate) fn with_query(mut url: Url, pairs: &[(&str, &str)]) -> Url {
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    url
}

/// Okta's spelling of booleans in query parameters.
pub(crate) fn query_bool(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

fn header_string(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(base_url: &str, token: &str) -> OktaClientSettings {
        OktaClientSettings {
            base_url: Url::parse(base_url).unwrap(),
            api_token: SecretString::from(token),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            max_retries: 2,
            retry_base_delay: Duration::from_millis(10),
            retry_max_delay: Duration::from_millis(50),
            rate_limit_reserve_percent: 5,
            max_concurrent_requests: 20,
            user_agent: "okta-client-tests/1".to_owned(),
        }
    }

    #[test]
    fn debug_output_never_contains_the_token() {
        let settings = settings("https://acme.okta.com", "00secret-token");
        assert!(!format!("{settings:?}").contains("00secret-token"));
        let client = OktaClient::new(settings).unwrap();
        assert!(!format!("{client:?}").contains("00secret-token"));
    }

    #[test]
    fn new_rejects_unusable_settings_without_echoing_the_token() {
        let error = OktaClient::new(settings("https://acme.okta.com", "bad\ntoken")).unwrap_err();
        assert!(!error.to_string().contains("token\n"));
        assert!(OktaClient::new(settings("mailto:a@example.com", "t")).is_err());
        assert!(OktaClient::new(settings("ftp://acme.okta.com", "t")).is_err());
    }

    #[test]
    fn endpoint_percent_encodes_segments_and_keeps_a_base_path() {
        let client = OktaClient::new(settings("http://127.0.0.1:9/okta/", "t")).unwrap();
        let url = client.endpoint(&["api", "v1", "users", "../a?b"]).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/okta/api/v1/users/..%2Fa%3Fb"
        );
        let client = OktaClient::new(settings("https://acme.okta.com", "t")).unwrap();
        assert_eq!(
            client.endpoint(&["api", "v1", "groups"]).unwrap().as_str(),
            "https://acme.okta.com/api/v1/groups"
        );
    }
}
