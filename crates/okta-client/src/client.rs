//! [`OktaClient`]: one connection pool for the process ([`crate::transport`]) and the one
//! place (`send`) where requests get their auth header and responses become values or
//! [`OktaError`]s. `send` is a loop over small steps: budget, slot, [`OktaClient::attempt`], [`classify`], and the retry
//! decision of [`crate::retry`].

use std::fmt;
use std::time::Instant;

use bytes::Bytes;
use http::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, DATE, HeaderMap, HeaderName, HeaderValue,
    USER_AGENT, WWW_AUTHENTICATE,
};
use http::{Method, Request, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use url::Url;

use crate::auth::{Credentials, OAuthClient, OAuthSettings, RequestAuth};
use crate::budget::{Budgets, Refusal};
use crate::clock::{OktaClock, OktaTime};
use crate::concurrency::{Concurrency, Slot};
use crate::context::CallContext;
use crate::error::{OktaError, OktaErrorBody, ResponseMeta};
use crate::instrumentation;
use crate::ledger::SharedBudget;
use crate::pagination::{self, Page};
use crate::rate_limit::{self, RateLimitState};
use crate::retry::{Failure, Retry, RetryPolicy};
use crate::transport::{RequestBody, Transport};

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const DPOP_HEADER: HeaderName = HeaderName::from_static("dpop");
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-okta-request-id");
/// Okta's SDKs name the failed request and count retries so Okta can correlate them.
const RETRY_FOR_HEADER: HeaderName = HeaderName::from_static("x-okta-retry-for");
const RETRY_COUNT_HEADER: HeaderName = HeaderName::from_static("x-okta-retry-count");
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
    /// Retries of idempotent requests (GET, group membership PUT/DELETE), user lifecycle
    /// transitions and OAuth token requests; never of creates, updates or deletions.
    pub max_retries: u32,
    /// First step of the exponential backoff used when Okta gives no reset time.
    pub retry_base_delay: std::time::Duration,
    /// Cap on any single wait, including 429 waits.
    pub retry_max_delay: std::time::Duration,
    /// Share of each rate-limit bucket left unused (for other clients of the same token).
    pub rate_limit_reserve_percent: u32,
    /// Most Okta requests in flight at once (Okta allows 75 per org, shared by every client);
    /// with a shared budget, for all replicas together.
    pub max_concurrent_requests: u32,
    /// The `User-Agent` of every request, the application's `name/version`, so Okta's System
    /// Log and support can tell its traffic apart.
    pub user_agent: String,
    /// The rate-limit ledger shared with the other replicas of the deployment, since Okta
    /// counts org-wide; `None` for a gateway running alone.
    pub shared_budget: Option<std::sync::Arc<dyn SharedBudget>>,
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
            .field("shared_budget", &self.shared_budget.is_some())
            .finish()
    }
}

/// The Okta Management API client. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct OktaClient {
    http: Transport,
    base_url: Url,
    /// The API token (`SSWS`, marked sensitive so hyper never prints it) or the OAuth
    /// service app's token source.
    credentials: Credentials,
    retry: RetryPolicy,
    budgets: std::sync::Arc<Budgets>,
    in_flight: std::sync::Arc<Concurrency>,
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
    /// or the User-Agent cannot be a header value (reported as `UnexpectedResponse` with status
    /// 0), or when the HTTP client cannot be built (`Connect`).
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
        let user_agent = HeaderValue::from_str(&settings.user_agent).map_err(|_| {
            OktaError::unexpected(
                0,
                "user agent is not a valid http header value",
                &no_response,
            )
        })?;
        let http = Transport::new(
            settings.connect_timeout,
            settings.request_timeout,
            user_agent,
        )?;
        let retry = RetryPolicy {
            max_retries: settings.max_retries,
            base_delay: settings.retry_base_delay,
            max_delay: settings.retry_max_delay,
        };
        let shared_budget = settings.shared_budget;
        let budgets = std::sync::Arc::new(Budgets::new(
            settings.rate_limit_reserve_percent,
            shared_budget.clone(),
        ));
        crate::instrumentation::observe_rate_limits(&budgets);
        Ok(Self {
            http,
            base_url,
            credentials: Credentials::ApiToken(authorization),
            retry,
            budgets,
            in_flight: std::sync::Arc::new(Concurrency::new(
                settings.max_concurrent_requests,
                shared_budget,
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
        // Token requests are few (one per token lifetime), so they keep reqwest's client.
        let token_http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .user_agent(settings.user_agent.as_str())
            // Never follow redirects: they would carry the assertion to wherever Okta points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| OktaError::Connect(Box::new(error)))?;
        let mut client = Self::new(OktaClientSettings {
            api_token: SecretString::from("unused"),
            ..settings
        })?;
        let oauth = OAuthClient::new(token_http, &client.base_url, oauth, client.retry);
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
        cx: &CallContext,
        url: Url,
    ) -> Result<Page<T>, OktaError> {
        let success = self
            .send(cx, Method::GET, url, None, Retry::Idempotent)
            .await?;
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
        cx: &CallContext,
        first_page: Url,
    ) -> Result<Vec<T>, OktaError> {
        let mut all_items = Vec::new();
        let mut next_url_opt = Some(first_page);
        let mut followed_pages = 0;
        while let Some(url) = next_url_opt.take() {
            followed_pages += 1;
            let success = self
                .send(cx, Method::GET, url, None, Retry::Idempotent)
                .await?;
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

    /// Sends one logical request, step by step: auth headers, budget, a connection slot (taken
    /// last), the attempt, classification of the answer, the retry decision. Returns 2xx
    /// responses.
    pub(crate) async fn send(
        &self,
        cx: &CallContext,
        method: Method,
        url: Url,
        body_opt: Option<&serde_json::Value>,
        retry: Retry,
    ) -> Result<Success, OktaError> {
        if cx.changes_withheld() && method != Method::GET {
            return Err(OktaError::Withheld);
        }
        // Parsed once for every attempt; `endpoint` and `with_query` only make URLs hyper takes.
        let uri = http::Uri::try_from(url.as_str()).map_err(|_| {
            OktaError::unexpected(
                0,
                "okta url is not a valid http uri",
                &ResponseMeta::default(),
            )
        })?;
        let body_bytes_opt = body_opt.map(|body| Bytes::from(body.to_string()));
        let names = instrumentation::RequestNames::new(&method, &url);
        let bucket = names.operation.as_str();
        let mut attempt = Attempt {
            method: &method,
            url: &url,
            uri: &uri,
            body_opt: body_bytes_opt.as_ref(),
            number: 0,
            retry_for_opt: None,
            after_unanswered: false,
        };
        let mut reauthenticated = false;
        loop {
            let mut span = instrumentation::AttemptSpan::start(&names, &url, attempt.number);
            let auth = self
                .credentials
                .request_auth(&method, &url)
                .await
                .map_err(|error| attempt.unsent(error))?;
            // The budget first: a wait for a spent bucket's reset must hold no slot, or it would
            // block every other bucket's requests.
            self.budgets
                .acquire(cx, bucket)
                .await
                .map_err(|refusal| attempt.unsent(refused(bucket, refusal)))?;
            let slot = self
                .in_flight_slot(cx, bucket)
                .await
                .map_err(|error| attempt.unsent(error))?;
            let (error, failure_opt) = match self
                .attempt(cx, &attempt, &auth, bucket, slot, &mut span)
                .await?
            {
                Attempted::Unanswered(error) => {
                    let failure_opt = Failure::of(&error);
                    (error, failure_opt)
                }
                Attempted::Answered(answer) => {
                    span.record_response(&names, &answer.meta, answer.elapsed);
                    match classify(answer) {
                        Verdict::Success(success) => return Ok(success),
                        Verdict::Failed { error, failure_opt } => (error, failure_opt),
                        Verdict::Unauthorized(error) => {
                            if let Some(code) = error.error_code() {
                                span.record_error_code(code);
                            }
                            if !self.credentials.refreshable() {
                                return Err(error);
                            }
                            // An expired or revoked access token: one new token, one more try.
                            if !reauthenticated {
                                reauthenticated = true;
                                self.credentials.invalidate(&auth);
                                continue;
                            }
                            let meta = error.meta().cloned().unwrap_or_default();
                            return Err(self
                                .credentials
                                .rejected_after_refresh(meta)
                                .unwrap_or(error));
                        }
                    }
                }
            };
            if let Some(code) = error.error_code() {
                span.record_error_code(code);
            }
            let Some(failure) = failure_opt else {
                return Err(attempt.outcome(error));
            };
            let Some(wait) = self
                .retry
                .next_wait(retry, attempt.number, failure, cx.time_left())
            else {
                return Err(attempt.outcome(error));
            };
            tokio::time::sleep(wait).await;
            attempt.again(failure, &error);
        }
    }

    /// One attempt on the wire, holding `slot` only until its answer is read: sends the request
    /// and settles the budget unit taken for it, measures Okta's clock, notes the departure and
    /// the request id in `cx`. `Err` only when an answer began but its body was lost.
    async fn attempt(
        &self,
        cx: &CallContext,
        attempt: &Attempt<'_>,
        auth: &RequestAuth,
        bucket: &str,
        slot: Slot,
        span: &mut instrumentation::AttemptSpan,
    ) -> Result<Attempted, OktaError> {
        let mut request = self.build_request(attempt, auth);
        span.add_trace_context(request.headers_mut());
        let deadline = self.http.deadline();
        let started = Instant::now();
        cx.departing(started);
        let response = match self.http.send(request, deadline).await {
            Ok(response) => response,
            Err(error) => {
                self.budgets.settle(bucket, None);
                drop(slot);
                span.record_transport_error(error.kind());
                tracing::debug!(http.method = %attempt.method, url.path = attempt.url.path(),
                    attempt = attempt.number, error = %error, "okta request failed");
                return Ok(Attempted::Unanswered(error));
            }
        };
        // Read once: the budget settles with it and the answer's meta keeps it.
        let rate_limit = RateLimitState::from_headers(response.headers());
        self.budgets.settle(bucket, rate_limit.as_ref());
        let (parts, incoming) = response.into_parts();
        let (status, headers) = (parts.status, parts.headers);
        if let Some(date) = headers.get(DATE).and_then(|date| date.to_str().ok()) {
            self.clock.observe(started, Instant::now(), date);
        }
        let meta = ResponseMeta {
            status: status.as_u16(),
            request_id: header_string(&headers, REQUEST_ID_HEADER),
            rate_limit,
            retry_count: attempt.number,
            after_unanswered: attempt.after_unanswered,
        };
        // `Vec::from` takes the buffer over when nothing else holds it, where `to_vec` copies.
        let body = Vec::from(Transport::read_body(incoming, deadline).await?);
        drop(slot);
        if let Some(request_id) = &meta.request_id {
            cx.answered(request_id);
        }
        let elapsed = started.elapsed();
        tracing::debug!(
            http.method = %attempt.method,
            url.path = attempt.url.path(),
            http.status = status.as_u16(),
            okta.request_id = meta.request_id.as_deref().unwrap_or_default(),
            duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            attempt = attempt.number,
            "okta request"
        );
        Ok(Attempted::Answered(Answer {
            status,
            headers,
            body,
            meta,
            elapsed,
        }))
    }

    /// A slot among the requests in flight, waited for no longer than the caller's deadline.
    /// Taken last, after the budget, and held only while the request is on the wire; without
    /// one the budget unit taken for `bucket` is settled as unanswered.
    async fn in_flight_slot(&self, cx: &CallContext, bucket: &str) -> Result<Slot, OktaError> {
        let slot_opt = self.in_flight.acquire(cx).await;
        slot_opt.ok_or_else(|| {
            self.budgets.settle(bucket, None);
            OktaError::RateLimited {
                retry_after: Some(std::time::Duration::from_secs(1)),
                body: None,
                meta: ResponseMeta::default(),
            }
        })
    }

    /// The HTTP request of `attempt`: auth, content and retry headers.
    fn build_request(&self, attempt: &Attempt<'_>, auth: &RequestAuth) -> Request<RequestBody> {
        let (method, body_opt) = (attempt.method, attempt.body_opt);
        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(USER_AGENT, self.http.user_agent.clone());
        headers.insert(ACCEPT, JSON);
        headers.insert(AUTHORIZATION, auth.authorization.clone());
        if let Some(proof) = &auth.dpop {
            headers.insert(DPOP_HEADER, proof.clone());
        }
        let body = match body_opt {
            Some(body) => {
                headers.insert(CONTENT_TYPE, JSON);
                body.clone()
            }
            // Okta answers 411 to a POST or PUT without a length.
            None => {
                if *method == Method::POST || *method == Method::PUT {
                    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
                }
                Bytes::new()
            }
        };
        if attempt.number > 0 {
            if let Some(retry_for) = attempt
                .retry_for_opt
                .as_deref()
                .and_then(|value| HeaderValue::from_str(value).ok())
            {
                headers.insert(RETRY_FOR_HEADER, retry_for);
            }
            headers.insert(RETRY_COUNT_HEADER, HeaderValue::from(attempt.number));
        }
        let mut request = Request::new(RequestBody::new(body));
        *request.method_mut() = method.clone();
        *request.uri_mut() = attempt.uri.clone();
        *request.headers_mut() = headers;
        request
    }
}

/// What one attempt sends, and what the attempts before it left for it to say.
struct Attempt<'a> {
    method: &'a Method,
    url: &'a Url,
    /// `url` as hyper sends it.
    uri: &'a http::Uri,
    body_opt: Option<&'a Bytes>,
    /// 0 for the first attempt.
    number: u32,
    /// Okta's id of the failed answer this attempt repeats (`X-Okta-Retry-For`).
    retry_for_opt: Option<String>,
    /// An earlier attempt may have been carried out although its answer was lost.
    after_unanswered: bool,
}

impl Attempt<'_> {
    /// Turns this into the next attempt, after `failure` ended it with `error`.
    fn again(&mut self, failure: Failure, error: &OktaError) {
        self.number += 1;
        self.retry_for_opt = error.meta().and_then(|meta| meta.request_id.clone());
        self.after_unanswered |= failure.may_have_been_carried_out();
    }

    /// `error`, which ended the last attempt, as the request's outcome: a connection never
    /// made says nothing was sent, unless an earlier attempt may have been carried out.
    fn outcome(&self, error: OktaError) -> OktaError {
        match error {
            OktaError::NotConnected(source) if self.after_unanswered => OktaError::Connect(source),
            other => other,
        }
    }

    /// `error`, which ended the request before this attempt was sent (no access token, no
    /// budget, no slot), as its outcome: this attempt carried nothing out, whatever the token
    /// request's own failure was. After an earlier attempt that may have been carried out, a
    /// budget refusal says so (a spent budget in its meta, as an answered failure would; a
    /// spent caller share in its own flag), so a write's outcome stays open while a read is
    /// refused as before.
    fn unsent(&self, error: OktaError) -> OktaError {
        match error {
            OktaError::RateLimited {
                retry_after,
                body,
                mut meta,
            } if self.after_unanswered => {
                meta.after_unanswered = true;
                OktaError::RateLimited {
                    retry_after,
                    body,
                    meta,
                }
            }
            OktaError::CallerShareSpent {
                retry_after,
                bucket,
                ..
            } if self.after_unanswered => OktaError::CallerShareSpent {
                retry_after,
                bucket,
                after_unanswered: true,
            },
            error if !self.after_unanswered && error.may_have_reached_okta() => {
                OktaError::NotConnected(Box::new(error))
            }
            other => other,
        }
    }
}

/// How an attempt on the wire ended.
enum Attempted {
    /// No answer (a connection error or a timeout).
    Unanswered(OktaError),
    /// An answer, body read.
    Answered(Answer),
}

/// One answer, as read off the wire.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    meta: ResponseMeta,
    /// From sending to the last body byte.
    elapsed: std::time::Duration,
}

/// What an answer means for the request.
enum Verdict {
    /// 2xx: done.
    Success(Success),
    /// A failure; `failure_opt` says what kind, when sending again might help.
    Failed {
        error: OktaError,
        failure_opt: Option<Failure>,
    },
    /// 401: with OAuth credentials, the access token may have expired or been revoked.
    Unauthorized(OktaError),
}

/// Classifies an answer by its status: success, a failure sending again might cure (429,
/// 5xx), 401, or a failure that stays (other 4xx, anything else).
fn classify(answer: Answer) -> Verdict {
    let Answer {
        status,
        headers,
        body,
        meta,
        ..
    } = answer;
    if status.is_success() {
        return Verdict::Success(Success {
            status: status.as_u16(),
            headers,
            body,
            meta,
        });
    }
    let body_opt = serde_json::from_slice::<OktaErrorBody>(&body).ok();
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
        return Verdict::Failed {
            error: OktaError::RateLimited {
                retry_after,
                body: body_opt,
                meta,
            },
            failure_opt: Some(Failure::RateLimited {
                reset_wait: retry_after,
            }),
        };
    }
    if status.is_server_error() {
        return Verdict::Failed {
            error: OktaError::Unavailable {
                status: status.as_u16(),
                body: body_opt,
                meta,
            },
            failure_opt: Some(Failure::ServerError),
        };
    }
    if status.is_client_error() {
        let error = OktaError::Api {
            status: status.as_u16(),
            body: body_opt,
            meta,
            www_authenticate: header_string(&headers, WWW_AUTHENTICATE),
        };
        return if status == StatusCode::UNAUTHORIZED {
            Verdict::Unauthorized(error)
        } else {
            Verdict::Failed {
                error,
                failure_opt: None,
            }
        };
    }
    Verdict::Failed {
        error: OktaError::unexpected(status.as_u16(), "unexpected http status", &meta),
        failure_opt: None,
    }
}

/// The error of a request the budget refused to send.
fn refused(bucket: &str, refusal: Refusal) -> OktaError {
    match refusal {
        Refusal::Deadline(wait) => {
            tracing::warn!(okta.bucket = %bucket, wait_ms = wait.as_millis() as u64,
                "okta rate-limit budget cannot recover before the caller's deadline");
            OktaError::RateLimited {
                retry_after: Some(wait),
                body: None,
                meta: ResponseMeta::default(),
            }
        }
        Refusal::CallerShareSpent(retry_after) => {
            tracing::warn!(okta.bucket = %bucket, retry_after_ms = retry_after.as_millis() as u64,
                "the caller has spent its share of this okta rate-limit bucket");
            OktaError::CallerShareSpent {
                retry_after,
                bucket: bucket.to_string(),
                after_unanswered: false,
            }
        }
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
            shared_budget: None,
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

    /// An answer with `status`, `headers` and `body`, as the attempt step reads it.
    fn answer(status: u16, headers: &[(&'static str, &'static str)], body: &str) -> Answer {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_static(value));
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            meta: ResponseMeta {
                status,
                request_id: Some("req-1".to_owned()),
                rate_limit: RateLimitState::from_headers(&map),
                ..ResponseMeta::default()
            },
            headers: map,
            body: body.as_bytes().to_vec(),
            elapsed: Duration::from_millis(3),
        }
    }

    const NOT_FOUND: &str =
        r#"{"errorCode":"E0000007","errorSummary":"Not found: Resource not found: x (User)"}"#;

    #[test]
    fn a_2xx_is_a_success_with_its_body() {
        let Verdict::Success(success) = classify(answer(200, &[], r#"{"id":"00u1"}"#)) else {
            panic!("a success")
        };
        assert_eq!(success.status, 200);
        assert_eq!(success.body, br#"{"id":"00u1"}"#);
        assert_eq!(success.meta.request_id.as_deref(), Some("req-1"));
    }

    #[test]
    fn a_429_is_a_failure_worth_retrying_after_okta_s_reset() {
        let verdict = classify(answer(
            429,
            &[
                ("x-rate-limit-limit", "600"),
                ("x-rate-limit-remaining", "0"),
                ("x-rate-limit-reset", "1598552424"),
                ("date", "Thu, 27 Aug 2020 18:20:20 GMT"),
            ],
            "",
        ));
        let Verdict::Failed {
            error: OktaError::RateLimited { retry_after, .. },
            failure_opt,
        } = verdict
        else {
            panic!("rate limited")
        };
        assert_eq!(retry_after, Some(Duration::from_secs(5)));
        assert_eq!(
            failure_opt,
            Some(Failure::RateLimited {
                reset_wait: Some(Duration::from_secs(5))
            })
        );
    }

    #[test]
    fn a_5xx_is_a_server_error_and_other_statuses_are_final() {
        let Verdict::Failed {
            error: OktaError::Unavailable { status: 503, .. },
            failure_opt: Some(Failure::ServerError),
        } = classify(answer(503, &[], ""))
        else {
            panic!("unavailable, worth retrying")
        };
        let Verdict::Failed {
            error,
            failure_opt: None,
        } = classify(answer(404, &[], NOT_FOUND))
        else {
            panic!("a final 404")
        };
        assert_eq!(error.error_code(), Some("E0000007"));
        assert!(matches!(
            classify(answer(302, &[], "")),
            Verdict::Failed {
                error: OktaError::UnexpectedResponse { .. },
                failure_opt: None
            }
        ));
        let Verdict::Unauthorized(OktaError::Api {
            www_authenticate, ..
        }) = classify(answer(
            401,
            &[("www-authenticate", "Bearer error=\"invalid_token\"")],
            "",
        ))
        else {
            panic!("unauthorized")
        };
        assert_eq!(
            www_authenticate.as_deref(),
            Some("Bearer error=\"invalid_token\"")
        );
    }

    /// A POST's parts, for attempts of it.
    struct Post {
        method: Method,
        url: Url,
        uri: http::Uri,
    }

    impl Post {
        fn new() -> Self {
            Self {
                method: Method::POST,
                url: Url::parse("https://acme.okta.com/x").unwrap(),
                uri: http::Uri::from_static("https://acme.okta.com/x"),
            }
        }

        fn first_attempt(&self) -> Attempt<'_> {
            Attempt {
                method: &self.method,
                url: &self.url,
                uri: &self.uri,
                body_opt: None,
                number: 0,
                retry_for_opt: None,
                after_unanswered: false,
            }
        }
    }

    /// Ends `attempt` with a 502, an answer that may hide a change carried out.
    fn lose_an_answer(attempt: &mut Attempt<'_>) {
        let Verdict::Failed { error, failure_opt } = classify(answer(502, &[], "")) else {
            panic!("unavailable")
        };
        attempt.again(failure_opt.unwrap(), &error);
    }

    #[test]
    fn a_repeat_names_the_failed_answer_and_remembers_a_possibly_lost_one() {
        let post = Post::new();
        let mut attempt = post.first_attempt();
        let Verdict::Failed { error, failure_opt } = classify(answer(429, &[], "")) else {
            panic!("rate limited")
        };
        attempt.again(failure_opt.unwrap(), &error);
        assert_eq!(attempt.number, 1);
        assert_eq!(attempt.retry_for_opt.as_deref(), Some("req-1"));
        assert!(!attempt.after_unanswered, "a 429 was never carried out");
        lose_an_answer(&mut attempt);
        assert_eq!(attempt.number, 2);
        assert!(attempt.after_unanswered, "a 5xx may have been carried out");
    }

    #[test]
    fn a_connection_never_made_says_nothing_was_sent_unless_an_earlier_attempt_may_have_been() {
        let post = Post::new();
        let mut attempt = post.first_attempt();
        let not_connected = || OktaError::NotConnected("connection refused".into());
        let first = attempt.outcome(not_connected());
        assert!(matches!(first, OktaError::NotConnected(_)), "{first:?}");
        assert!(!first.may_have_reached_okta());

        lose_an_answer(&mut attempt);
        let after_a_lost_answer = attempt.outcome(not_connected());
        assert!(
            after_a_lost_answer.may_have_reached_okta(),
            "{after_a_lost_answer:?}"
        );
    }

    #[test]
    fn a_request_ended_before_sending_carried_nothing_out_unless_an_earlier_attempt_may_have() {
        let post = Post::new();
        let mut attempt = post.first_attempt();
        // The access token's request timed out: the change itself never left.
        let token_timeout = || OktaError::Timeout("token request timed out".into());
        let unsent = attempt.unsent(token_timeout());
        assert!(matches!(unsent, OktaError::NotConnected(_)), "{unsent:?}");
        let no_budget = || refused("GET /api/v1/users", Refusal::Deadline(Duration::ZERO));
        let refused_here = attempt.unsent(no_budget());
        assert!(!refused_here.may_have_reached_okta());
        assert!(!refused_here.meta().unwrap().after_unanswered);

        lose_an_answer(&mut attempt);
        assert!(attempt.unsent(token_timeout()).may_have_reached_okta());
        let refused_after_a_lost_answer = attempt.unsent(no_budget());
        assert!(matches!(
            refused_after_a_lost_answer,
            OktaError::RateLimited { .. }
        ));
        assert!(refused_after_a_lost_answer.meta().unwrap().after_unanswered);
        let share_spent = || refused("b", Refusal::CallerShareSpent(Duration::ZERO));
        let share_spent_after_a_lost_answer = attempt.unsent(share_spent());
        assert!(
            matches!(
                share_spent_after_a_lost_answer,
                OktaError::CallerShareSpent { .. }
            ),
            "still the caller's refusal, for a read"
        );
        assert!(share_spent_after_a_lost_answer.may_have_reached_okta());
        assert!(!share_spent().may_have_reached_okta());
    }

    #[test]
    fn budget_refusals_become_the_errors_callers_are_told() {
        assert!(matches!(
            refused("b", Refusal::Deadline(Duration::from_secs(7))),
            OktaError::RateLimited { retry_after: Some(wait), .. } if wait == Duration::from_secs(7)
        ));
        assert!(matches!(
            refused("b", Refusal::CallerShareSpent(Duration::from_secs(3))),
            OktaError::CallerShareSpent { ref bucket, .. } if bucket == "b"
        ));
    }
}
