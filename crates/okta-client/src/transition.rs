//! Lifecycle transitions of users and devices: `POST …/lifecycle/{action}` with no body, sent
//! again after a 429, a 5xx or a connection error within the caller's deadline. A repeat cannot
//! transition twice, but an earlier attempt may have been carried out although its answer was
//! lost: Okta then refuses the repeat because the user or device is already where the
//! transition leads. Such a refusal, on a retry only, is a success once a read confirms the
//! status; the transition's own answer is then lost (`Success::without_body`). A refusal of the
//! first attempt is always the caller's to see. A transition that sends email is not repeated
//! after an answer that may have been lost ([`Retry::WhenRefused`]): it could email twice.

use std::future::Future;

use http::Method;
use url::Url;

use crate::client::{OktaClient, Success};
use crate::context::CallContext;
use crate::error::OktaError;
use crate::retry::Retry;

impl OktaClient {
    /// Sends the transition at `url`, again after a lost answer when `retry` allows.
    /// `arrived(errorCode)` names the statuses in which Okta's refusal with that code means the
    /// transition was already carried out (`None`: the code never means that); `read_status`
    /// reads the current status to tell.
    pub(crate) async fn transition<Read, Reading>(
        &self,
        cx: &CallContext,
        url: Url,
        retry: Retry,
        arrived: impl Fn(Option<&str>) -> Option<&'static [&'static str]>,
        read_status: Read,
    ) -> Result<Success, OktaError>
    where
        Read: FnOnce() -> Reading,
        Reading: Future<Output = Result<String, OktaError>>,
    {
        let path = url.path().to_owned();
        let error = match self.send(cx, Method::POST, url, None, retry).await {
            Ok(success) => return Ok(success),
            Err(error) => error,
        };
        let targets_opt = match error.meta() {
            Some(meta) if meta.after_unanswered => arrived(error.error_code()),
            _ => None,
        };
        let Some(targets) = targets_opt else {
            return Err(error);
        };
        let status = read_status().await?;
        if !targets.contains(&status.as_str()) {
            return Err(error);
        }
        tracing::info!(okta.path = %path, okta.status = %status,
            "a retried okta transition found it carried out by an attempt whose answer was lost");
        Ok(Success::without_body(
            error.meta().cloned().unwrap_or_default(),
        ))
    }
}
