//! User endpoints: one method per Okta operation (`/api/v1/users…`).

use http::Method;
use secrecy::SecretString;

use crate::client::{Answered, OktaClient, Success, query_bool, with_query};
use crate::context::CallContext;
use crate::error::OktaError;
use crate::expression::{Expression, Operator};
use crate::ids::OktaId;
use crate::models::{
    ActivationToken, CreateUserRequest, MaybeActivationToken, OktaGroup, OktaUser,
    ResetPasswordAnswer, TempPasswordAnswer,
};
use crate::pagination::{Page, PageRequest};
use crate::retry::Retry;

/// Which users `list_users` returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserQuery {
    /// Every user except `DEPROVISIONED` ones (Okta's default).
    All,
    /// `search=`: any profile attribute, eventually consistent, includes `DEPROVISIONED`.
    Search(Expression),
    /// `filter=`: a few attributes (`status`, `lastUpdated`, `id`, `profile.login`, …).
    Filter(Expression),
    /// `q=`: prefix match on first name, last name or email; not paginated by Okta.
    Prefix(String),
}

/// Okta answers the login filter with at most this many users; two tell us it is ambiguous.
const LOGIN_LOOKUP_LIMIT: &str = "2";

impl OktaClient {
    /// Creates a user (`POST /api/v1/users`). Never retried: a retry could create twice.
    pub async fn create_user(
        &self,
        cx: &CallContext,
        request: &CreateUserRequest,
    ) -> Result<OktaUser, OktaError> {
        let mut query = vec![("activate", query_bool(request.activate))];
        if request.expire_password_on_create {
            query.push(("nextLogin", "changePassword"));
        }
        let url = with_query(self.endpoint(&["api", "v1", "users"])?, &query);
        let body = request.to_body();
        self.send(cx, Method::POST, url, Some(&body), Retry::Never)
            .await?
            .json()
    }

    /// Fetches one user by id (`GET /api/v1/users/{id}`).
    pub async fn get_user(
        &self,
        cx: &CallContext,
        user_id: &OktaId,
    ) -> Result<OktaUser, OktaError> {
        Ok(self.get_user_answered(cx, user_id).await?.value)
    }

    /// [`Self::get_user`] with the request id, for a refusal decided on the user's status.
    pub async fn get_user_answered(
        &self,
        cx: &CallContext,
        user_id: &OktaId,
    ) -> Result<Answered<OktaUser>, OktaError> {
        let url = self.endpoint(&["api", "v1", "users", user_id.as_str()])?;
        self.send(cx, Method::GET, url, None, Retry::Idempotent)
            .await?
            .answered()
    }

    /// Finds the user whose login equals `login` (case-insensitively, as Okta compares
    /// logins) with `filter=profile.login eq "…"`; `None` when there is none, with the request
    /// id of the search that found none.
    pub async fn find_user_by_login(
        &self,
        cx: &CallContext,
        login: &str,
    ) -> Result<Answered<Option<OktaUser>>, OktaError> {
        let filter = Expression::compare("profile.login", Operator::Eq, login);
        let url = with_query(
            self.endpoint(&["api", "v1", "users"])?,
            &[("filter", filter.as_str()), ("limit", LOGIN_LOOKUP_LIMIT)],
        );
        let success = self
            .send(cx, Method::GET, url, None, Retry::Idempotent)
            .await?;
        let users: Vec<OktaUser> = success.json()?;
        let wanted = login.to_lowercase();
        let mut matches = users.into_iter().filter(|user| {
            user.profile
                .get("login")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|found| found.to_lowercase() == wanted)
        });
        let first_opt = matches.next();
        if matches.next().is_some() {
            return Err(OktaError::unexpected(
                success.status,
                "several users have the same login",
                &success.meta,
            ));
        }
        Ok(Answered {
            value: first_opt,
            request_id: success.meta.request_id.clone(),
        })
    }

    /// Lists one page of users (`GET /api/v1/users` with `search`, `filter` or `q`).
    pub async fn list_users(
        &self,
        cx: &CallContext,
        query: &UserQuery,
        page: &PageRequest,
    ) -> Result<Page<OktaUser>, OktaError> {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        match query {
            UserQuery::All => {}
            UserQuery::Search(expression) => pairs.push(("search", expression.as_str())),
            UserQuery::Filter(expression) => pairs.push(("filter", expression.as_str())),
            UserQuery::Prefix(prefix) => pairs.push(("q", prefix.as_str())),
        }
        let url = with_page(self.endpoint(&["api", "v1", "users"])?, &pairs, page);
        self.get_page(cx, url).await
    }

    /// Partially updates a profile (`POST /api/v1/users/{id}`): attributes not sent are kept,
    /// a JSON `null` clears one. Not retried.
    pub async fn update_user_profile(
        &self,
        cx: &CallContext,
        user_id: &OktaId,
        profile: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<OktaUser, OktaError> {
        let url = self.endpoint(&["api", "v1", "users", user_id.as_str()])?;
        let body = serde_json::json!({ "profile": profile });
        self.send(cx, Method::POST, url, Some(&body), Retry::Never)
            .await?
            .json()
    }

    /// Activates a `STAGED` or `DEPROVISIONED` user; with `send_email = false` Okta returns
    /// the activation link instead of emailing it.
    pub async fn activate_user(
        &self,
        cx: &CallContext,
        user_id: &OktaId,
        send_email: bool,
    ) -> Result<Option<ActivationToken>, OktaError> {
        let success = self
            .lifecycle(
                cx,
                user_id,
                "activate",
                &[("sendEmail", query_bool(send_email))],
            )
            .await?;
        activation_token(&success)
    }

    /// Restarts activation of a `PROVISIONED` or `RECOVERY` user; like `activate_user`.
    pub async fn reactivate_user(
        &self,
        cx: &CallContext,
        user_id: &OktaId,
        send_email: bool,
    ) -> Result<Option<ActivationToken>, OktaError> {
        let success = self
            .lifecycle(
                cx,
                user_id,
                "reactivate",
                &[("sendEmail", query_bool(send_email))],
            )
            .await?;
        activation_token(&success)
    }

    /// Deactivates a user (→ `DEPROVISIONED`); Okta answers 200 `{}` or 204.
    pub async fn deactivate_user(
        &self,
        cx: &CallContext,
        user_id: &OktaId,
        send_email: bool,
    ) -> Result<(), OktaError> {
        self.lifecycle(
            cx,
            user_id,
            "deactivate",
            &[("sendEmail", query_bool(send_email))],
        )
        .await
        .map(drop)
    }

    /// Suspends an `ACTIVE` user.
    pub async fn suspend_user(&self, cx: &CallContext, user_id: &OktaId) -> Result<(), OktaError> {
        self.lifecycle(cx, user_id, "suspend", &[]).await.map(drop)
    }

    /// Returns a `SUSPENDED` user to `ACTIVE`.
    pub async fn unsuspend_user(
        &self,
        cx: &CallContext,
        user_id: &OktaId,
    ) -> Result<(), OktaError> {
        self.lifecycle(cx, user_id, "unsuspend", &[])
            .await
            .map(drop)
    }

    /// Unlocks a `LOCKED_OUT` user (Okta answers 403 E0000032 when the user is not locked).
    pub async fn unlock_user(&self, cx: &CallContext, user_id: &OktaId) -> Result<(), OktaError> {
        self.lifecycle(cx, user_id, "unlock", &[]).await.map(drop)
    }

    /// Starts a password reset (→ `RECOVERY`); with `send_email = false` Okta returns the
    /// reset link instead of emailing it.
    pub async fn reset_password(
        &self,
        cx: &CallContext,
        user_id: &OktaId,
        send_email: bool,
        revoke_sessions: bool,
    ) -> Result<Option<String>, OktaError> {
        let query = [
            ("sendEmail", query_bool(send_email)),
            ("revokeSessions", query_bool(revoke_sessions)),
        ];
        let success = self
            .lifecycle(cx, user_id, "reset_password", &query)
            .await?;
        let answer_opt: Option<ResetPasswordAnswer> = success.json_opt()?;
        Ok(answer_opt.and_then(|answer| answer.reset_password_url))
    }

    /// Expires the password (→ `PASSWORD_EXPIRED`); the user must change it at next sign-in.
    pub async fn expire_password(
        &self,
        cx: &CallContext,
        user_id: &OktaId,
    ) -> Result<OktaUser, OktaError> {
        self.lifecycle(cx, user_id, "expire_password", &[])
            .await?
            .json()
    }

    /// Expires the password and sets a temporary one, which Okta returns (a secret).
    pub async fn expire_password_with_temp_password(
        &self,
        cx: &CallContext,
        user_id: &OktaId,
    ) -> Result<SecretString, OktaError> {
        let success = self
            .lifecycle(cx, user_id, "expire_password_with_temp_password", &[])
            .await?;
        let answer: TempPasswordAnswer = success.json()?;
        Ok(SecretString::from(answer.temp_password))
    }

    /// Deletes a user (`DELETE /api/v1/users/{id}`): deactivates first unless the user is
    /// already `DEPROVISIONED`, so a full delete takes two calls. Never retried.
    pub async fn delete_user(
        &self,
        cx: &CallContext,
        user_id: &OktaId,
        send_email: bool,
    ) -> Result<(), OktaError> {
        let url = with_query(
            self.endpoint(&["api", "v1", "users", user_id.as_str()])?,
            &[("sendEmail", query_bool(send_email))],
        );
        self.send(cx, Method::DELETE, url, None, Retry::Never)
            .await
            .map(drop)
    }

    /// Every group the user belongs to, following all `next` links.
    pub async fn list_user_groups(
        &self,
        cx: &CallContext,
        user_id: &OktaId,
    ) -> Result<Vec<OktaGroup>, OktaError> {
        let url = self.endpoint(&["api", "v1", "users", user_id.as_str(), "groups"])?;
        self.get_all(cx, url).await
    }

    /// `POST /api/v1/users/{id}/lifecycle/{action}`, a transition (see
    /// [`crate::transition`]) whose repeats Okta refuses as [`ALREADY_THERE`] says.
    /// Not repeated after a possibly lost answer when it sends email (`sendEmail=true`): a
    /// repeat could email the user twice.
    async fn lifecycle(
        &self,
        cx: &CallContext,
        user_id: &OktaId,
        action: &str,
        query: &[(&str, &str)],
    ) -> Result<Success, OktaError> {
        let url = with_query(
            self.endpoint(&["api", "v1", "users", user_id.as_str(), "lifecycle", action])?,
            query,
        );
        let retry = if query.contains(&("sendEmail", "true")) {
            Retry::WhenRefused
        } else {
            Retry::Transition
        };
        self.transition(
            cx,
            url,
            retry,
            |code| already_there(action, code),
            || async { Ok(self.get_user(cx, user_id).await?.status) },
        )
        .await
    }
}

/// What Okta answers a transition that finds the user already in a status it leads to
/// (action, `errorCode`, those statuses). Only the activate code says so exactly; the others
/// mean "not allowed in the user's current status", so the status is read to tell. Reactivate,
/// password resets and expiries are allowed again from the status they lead to, so a repeat of
/// them simply succeeds.
const ALREADY_THERE: &[(&str, &str, &[&str])] = &[
    // 403 "Activation failed because the user is already active"
    ("activate", "E0000016", &["ACTIVE"]),
    // 403 "This operation is not allowed in the user's current status": a user without a
    // password waits in PROVISIONED after activation
    ("activate", "E0000038", &["PROVISIONED"]),
    ("deactivate", "E0000038", &["DEPROVISIONED"]),
    // 400 "Api validation failed: Cannot suspend a user that is not active"
    ("suspend", "E0000001", &["SUSPENDED"]),
    // 400 "Api validation failed: Cannot unsuspend a user that is not suspended"
    ("unsuspend", "E0000001", &["ACTIVE"]),
    // 403 "Unlock is not allowed for this user." (cause: "The user is not locked out.")
    ("unlock", "E0000032", &["ACTIVE"]),
];

/// The statuses in which `action` refused with `code` means it was already carried out.
fn already_there(action: &str, code: Option<&str>) -> Option<&'static [&'static str]> {
    ALREADY_THERE
        .iter()
        .find(|(known_action, known_code, _)| *known_action == action && Some(*known_code) == code)
        .map(|(_, _, statuses)| *statuses)
}

/// `{}` / 204 → `None`; `{activationUrl, activationToken}` → `Some`.
fn activation_token(success: &Success) -> Result<Option<ActivationToken>, OktaError> {
    let answer_opt: Option<MaybeActivationToken> = success.json_opt()?;
    Ok(answer_opt.and_then(|answer| {
        Some(ActivationToken {
            activation_url: answer.activation_url?,
            activation_token: answer.activation_token?,
        })
    }))
}

/// Adds the query pairs, then `limit` (unless 0) and `after` (when given).
pub(crate) fn with_page(url: url::Url, pairs: &[(&str, &str)], page: &PageRequest) -> url::Url {
    let limit = page.limit.to_string();
    let mut all_pairs = pairs.to_vec();
    if page.limit > 0 {
        all_pairs.push(("limit", limit.as_str()));
    }
    if let Some(after) = &page.after {
        all_pairs.push(("after", after.as_str()));
    }
    with_query(url, &all_pairs)
}
