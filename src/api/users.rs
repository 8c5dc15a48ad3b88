//! `identity.v1.UserService`: each handler validates, calls Okta, converts.

use tonic::{Request, Response, Status};

use super::convert::{self, okta_user_status, user_from_okta};
use super::page_token;
use super::reads::CoalescedReads;
use super::settle::{Found, found, gone, outcome_open, settle};
use super::status::{OktaCall, mapped, outcome_unknown};
use super::token_key::TokenKey;
use super::validate::{MAX_TEXT_LENGTH, Violations, checked, parse_id};
use crate::authz::scope;
use crate::context::RequestContext;
use crate::coordination::invalidation::Invalidation;
use crate::proto::user_service_server::UserService;
use crate::proto::{
    ActivateUserRequest, ActivateUserResponse, CreateUserRequest, DeactivateUserRequest,
    DeleteUserRequest, ExpirePasswordRequest, ExpirePasswordResponse, GetUserRequest,
    ListUserGroupsRequest, ListUserGroupsResponse, ListUsersRequest, ListUsersResponse,
    ReactivateUserRequest, ResetPasswordRequest, ResetPasswordResponse, UpdateUserRequest, User,
    UserFilter, UserLifecycleRequest, UserStatus, get_user_request,
};
use crate::status::{failed_precondition, invalid_argument, login_not_found, login_taken};
use okta_client::{
    self, Answered, Expression, OktaClient, OktaError, OktaId, OktaTime, OktaUser, Operator,
    PageRequest, UserQuery,
};
use secrecy::{ExposeSecret, SecretString};

/// Okta's largest page for `GET /api/v1/users` (Okta's users API reference: "maximum 200").
pub const MAX_USERS_PAGE_SIZE: u32 = 200;
/// Okta accepts at most 20 `groupIds` on create.
const MAX_CREATE_GROUP_IDS: usize = 20;

/// Serves UserService over one shared Okta client.
#[derive(Clone)]
pub struct UsersApi {
    okta: OktaClient,
    reads: CoalescedReads,
    token_key: TokenKey,
}

impl UsersApi {
    /// Wraps the shared Okta client, the coalesced reads and the page-token key.
    pub fn new(okta: OktaClient, reads: CoalescedReads, token_key: TokenKey) -> Self {
        Self {
            okta,
            reads,
            token_key,
        }
    }

    async fn current_user(&self, cx: &RequestContext, user_id: &OktaId) -> Result<User, Status> {
        let user = self
            .okta
            .get_user(cx.okta(), user_id)
            .await
            .map_err(mapped(OktaCall::Read))?;
        Ok(user_from_okta(user))
    }

    /// Runs a transition that returns nothing, then reports the user's new state.
    async fn transition(
        &self,
        cx: &RequestContext,
        user_id: &str,
        transition: Transition,
    ) -> Result<Response<User>, Status> {
        let user_id = parse_id(cx, "user_id", user_id).await?;
        let result = match transition {
            Transition::Suspend => self.okta.suspend_user(cx.okta(), &user_id).await,
            Transition::Unsuspend => self.okta.unsuspend_user(cx.okta(), &user_id).await,
            Transition::Unlock => self.okta.unlock_user(cx.okta(), &user_id).await,
            Transition::Deactivate { send_email } => {
                self.okta
                    .deactivate_user(cx.okta(), &user_id, send_email)
                    .await
            }
        };
        self.reads
            .changed(Invalidation::User(user_id.as_str().to_owned()))
            .await;
        match result {
            Ok(()) => Ok(Response::new(self.current_user(cx, &user_id).await?)),
            Err(error) => {
                let user = self
                    .settle_transition(cx, error, &user_id, transition.leads_to(), true)
                    .await?;
                Ok(Response::new(user_from_okta(user)))
            }
        }
    }

    /// Settles a failed transition by the user's status: in one of `statuses`, the transition
    /// is done when `proves` (the transition cannot start from there), else cannot be told.
    async fn settle_transition(
        &self,
        cx: &RequestContext,
        error: OktaError,
        user_id: &OktaId,
        statuses: &[&str],
        proves: bool,
    ) -> Result<OktaUser, Status> {
        let check = format!("the status of user {user_id}");
        settle(error, OktaCall::Lifecycle, &check, async {
            let user = self.okta.get_user(cx.okta(), user_id).await?;
            Ok(match statuses.contains(&user.status.as_str()) {
                false => Found::NotDone,
                true if proves => Found::Done(user),
                true => Found::CannotTell,
            })
        })
        .await
    }
}

/// Transitions whose Okta call returns no payload.
#[derive(Clone, Copy)]
enum Transition {
    Suspend,
    Unsuspend,
    Unlock,
    Deactivate { send_email: bool },
}

impl Transition {
    /// The statuses the transition leaves a user in; none of them allows it again.
    fn leads_to(self) -> &'static [&'static str] {
        match self {
            Transition::Suspend => &["SUSPENDED"],
            Transition::Unsuspend | Transition::Unlock => &["ACTIVE"],
            Transition::Deactivate { .. } => &["DEPROVISIONED"],
        }
    }
}

/// What ActivateUser leaves a user in (`PROVISIONED`: no password yet).
const ACTIVATED: &[&str] = &["ACTIVE", "PROVISIONED"];

#[tonic::async_trait]
impl UserService for UsersApi {
    async fn create_user(
        &self,
        request: Request<CreateUserRequest>,
    ) -> Result<Response<User>, Status> {
        let cx = RequestContext::of(&request);
        let request = request.into_inner();
        let mut violations = Violations::new(&cx);
        let profile = request.profile.unwrap_or_default();
        let attributes = convert::profile_for_create(&profile, &mut violations);
        let group_ids: Vec<OktaId> =
            if violations.count("group_ids", request.group_ids.len(), MAX_CREATE_GROUP_IDS) {
                request
                    .group_ids
                    .iter()
                    .enumerate()
                    .filter_map(|(index, id)| violations.id(&format!("group_ids[{index}]"), id))
                    .collect()
            } else {
                Vec::new()
            };
        if request.password.len() > MAX_TEXT_LENGTH {
            violations.add("password", format!("longer than {MAX_TEXT_LENGTH} bytes"));
        }
        if request.require_password_change && (!request.activate || request.password.is_empty()) {
            violations.add(
                "require_password_change",
                "needs `activate` and a `password`",
            );
        }
        violations.finish().await?;
        let create = okta_client::CreateUserRequest {
            profile: attributes,
            password: (!request.password.is_empty()).then(|| SecretString::from(request.password)),
            group_ids,
            activate: request.activate,
            expire_password_on_create: request.require_password_change,
        };
        let (created, departed) = cx
            .okta()
            .noting_departure(self.okta.create_user(cx.okta(), &create))
            .await;
        self.reads.changed(Invalidation::Everything).await;
        let user = match created {
            Ok(user) => user,
            Err(error) if outcome_open(&error) => {
                let departed = departed.and_then(|at| self.okta.okta_time_at(at));
                self.reconcile_create(&cx, &create, departed, error).await?
            }
            Err(error) => return Err(mapped(OktaCall::Write)(error)),
        };
        cx.note_target("created_user_id", &user.id);
        Ok(Response::new(user_from_okta(user)))
    }

    async fn get_user(&self, request: Request<GetUserRequest>) -> Result<Response<User>, Status> {
        let cx = RequestContext::of(&request);
        match request.into_inner().user {
            Some(get_user_request::User::Id(id)) => {
                let user_id = parse_id(&cx, "id", &id).await?;
                let okta = self.okta.clone();
                // A shared read runs under the context of the caller that starts it.
                let user = self
                    .reads
                    .users
                    .read(user_id.as_str().to_owned(), move || async move {
                        let user = okta
                            .get_user(cx.okta(), &user_id)
                            .await
                            .map_err(mapped(OktaCall::Read))?;
                        Ok(user_from_okta(user))
                    })
                    .await?;
                Ok(Response::new(user))
            }
            Some(get_user_request::User::Login(login)) => {
                let mut violations = Violations::new(&cx);
                violations.login("login", &login);
                violations.finish().await?;
                let found = self
                    .okta
                    .find_user_by_login(cx.okta(), &login)
                    .await
                    .map_err(mapped(OktaCall::Read))?;
                let request_id = found.request_id;
                let user = found
                    .value
                    .ok_or_else(|| login_not_found(request_id.as_deref()))?;
                Ok(Response::new(user_from_okta(user)))
            }
            None => Err(invalid_argument(vec![tonic_types::FieldViolation::new(
                "user",
                "set `id` or `login`",
            )])),
        }
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let cx = RequestContext::of(&request);
        let request = request.into_inner();
        let mut violations = Violations::new(&cx);
        let limit = violations.page_size("page_size", request.page_size, MAX_USERS_PAGE_SIZE);
        let queries_set = [
            !request.search.is_empty(),
            request.filter.is_some(),
            !request.prefix.is_empty(),
        ];
        if queries_set.iter().filter(|set| **set).count() > 1 {
            violations.add(
                "search",
                "set at most one of `search`, `filter` and `prefix`",
            );
        }
        let query = if !request.search.is_empty() {
            violations
                .expression("search", &request.search)
                .map(UserQuery::Search)
        } else if let Some(filter) = &request.filter {
            user_filter_expression(filter, &mut violations)
                .map_or(Some(UserQuery::All), |expression| {
                    Some(UserQuery::Filter(expression))
                })
        } else if !request.prefix.is_empty() {
            violations.text("prefix", &request.prefix);
            Some(UserQuery::Prefix(request.prefix.clone()))
        } else {
            Some(UserQuery::All)
        };
        let fingerprint = match &query {
            Some(UserQuery::Search(expression)) => {
                page_token::query_fingerprint(&["users", "search", expression.as_str()])
            }
            Some(UserQuery::Filter(expression)) => {
                page_token::query_fingerprint(&["users", "filter", expression.as_str()])
            }
            Some(UserQuery::Prefix(prefix)) => {
                page_token::query_fingerprint(&["users", "prefix", prefix])
            }
            Some(UserQuery::All) | None => page_token::query_fingerprint(&["users"]),
        };
        let after = violations.page_cursor(&self.token_key, &request.page_token, &fingerprint);
        violations.finish().await?;
        let query = checked(query)?;
        let page = self
            .okta
            .list_users(cx.okta(), &query, &PageRequest { limit, after })
            .await
            .map_err(mapped(OktaCall::Read))?;
        Ok(Response::new(ListUsersResponse {
            next_page_token: page_token::encode(&self.token_key, page.next.as_ref(), &fingerprint),
            users: page.items.into_iter().map(user_from_okta).collect(),
        }))
    }

    async fn update_user(
        &self,
        request: Request<UpdateUserRequest>,
    ) -> Result<Response<User>, Status> {
        let cx = RequestContext::of(&request);
        let request = request.into_inner();
        let mut violations = Violations::new(&cx);
        let user = request.user.unwrap_or_default();
        let user_id = violations.id("user.id", &user.id);
        let profile = user.profile.unwrap_or_default();
        let attributes =
            convert::profile_for_update(&profile, request.update_mask.as_ref(), &mut violations);
        violations.finish().await?;
        let user_id = checked(user_id)?;
        let result = self
            .okta
            .update_user_profile(cx.okta(), &user_id, &attributes)
            .await;
        self.reads
            .changed(Invalidation::User(user_id.as_str().to_owned()))
            .await;
        let updated = match result {
            Ok(updated) => updated,
            Err(error) => {
                let check = format!("the profile of user {user_id}");
                settle(error, OktaCall::Write, &check, async {
                    let user = self.okta.get_user(cx.okta(), &user_id).await?;
                    let done = attributes.iter().all(|(name, value)| {
                        user.profile.get(name).unwrap_or(&serde_json::Value::Null) == value
                    });
                    Ok(found(user, done))
                })
                .await?
            }
        };
        Ok(Response::new(user_from_okta(updated)))
    }

    async fn activate_user(
        &self,
        request: Request<ActivateUserRequest>,
    ) -> Result<Response<ActivateUserResponse>, Status> {
        let cx = RequestContext::of(&request);
        let request = request.into_inner();
        let user_id = parse_id(&cx, "user_id", &request.user_id).await?;
        let token = match self
            .okta
            .activate_user(cx.okta(), &user_id, request.send_email)
            .await
        {
            Ok(token) => token,
            Err(error) => {
                self.reads
                    .changed(Invalidation::User(user_id.as_str().to_owned()))
                    .await;
                self.settle_transition(&cx, error, &user_id, ACTIVATED, true)
                    .await?;
                None
            }
        };
        self.activation_response(&cx, &user_id, token).await
    }

    async fn reactivate_user(
        &self,
        request: Request<ReactivateUserRequest>,
    ) -> Result<Response<ActivateUserResponse>, Status> {
        let cx = RequestContext::of(&request);
        let request = request.into_inner();
        let user_id = parse_id(&cx, "user_id", &request.user_id).await?;
        let token = match self
            .okta
            .reactivate_user(cx.okta(), &user_id, request.send_email)
            .await
        {
            Ok(token) => token,
            Err(error) => {
                // Reactivation is allowed again from where it leads: a read cannot prove it.
                self.reads
                    .changed(Invalidation::User(user_id.as_str().to_owned()))
                    .await;
                self.settle_transition(&cx, error, &user_id, &["PROVISIONED"], false)
                    .await?;
                None
            }
        };
        self.activation_response(&cx, &user_id, token).await
    }

    async fn deactivate_user(
        &self,
        request: Request<DeactivateUserRequest>,
    ) -> Result<Response<User>, Status> {
        let cx = RequestContext::of(&request);
        let request = request.into_inner();
        self.transition(
            &cx,
            &request.user_id,
            Transition::Deactivate {
                send_email: request.send_email,
            },
        )
        .await
    }

    async fn suspend_user(
        &self,
        request: Request<UserLifecycleRequest>,
    ) -> Result<Response<User>, Status> {
        let cx = RequestContext::of(&request);
        self.transition(&cx, &request.into_inner().user_id, Transition::Suspend)
            .await
    }

    async fn unsuspend_user(
        &self,
        request: Request<UserLifecycleRequest>,
    ) -> Result<Response<User>, Status> {
        let cx = RequestContext::of(&request);
        self.transition(&cx, &request.into_inner().user_id, Transition::Unsuspend)
            .await
    }

    async fn unlock_user(
        &self,
        request: Request<UserLifecycleRequest>,
    ) -> Result<Response<User>, Status> {
        let cx = RequestContext::of(&request);
        self.transition(&cx, &request.into_inner().user_id, Transition::Unlock)
            .await
    }

    async fn reset_password(
        &self,
        request: Request<ResetPasswordRequest>,
    ) -> Result<Response<ResetPasswordResponse>, Status> {
        let cx = RequestContext::of(&request);
        let request = request.into_inner();
        let user_id = parse_id(&cx, "user_id", &request.user_id).await?;
        let reset = self
            .okta
            .reset_password(
                cx.okta(),
                &user_id,
                request.send_email,
                request.revoke_sessions,
            )
            .await;
        self.reads
            .changed(Invalidation::User(user_id.as_str().to_owned()))
            .await;
        let reset_password_url = match reset {
            Ok(url) => url,
            Err(error) => {
                // A reset is allowed again from RECOVERY: a read cannot prove it.
                self.settle_transition(&cx, error, &user_id, &["RECOVERY"], false)
                    .await?;
                None
            }
        };
        Ok(Response::new(ResetPasswordResponse {
            user: Some(self.current_user(&cx, &user_id).await?),
            reset_password_url: reset_password_url.unwrap_or_default(),
        }))
    }

    async fn expire_password(
        &self,
        request: Request<ExpirePasswordRequest>,
    ) -> Result<Response<ExpirePasswordResponse>, Status> {
        let cx = RequestContext::of(&request);
        let request = request.into_inner();
        let user_id = parse_id(&cx, "user_id", &request.user_id).await?;
        let expired = if request.issue_temporary_password {
            self.okta
                .expire_password_with_temp_password(cx.okta(), &user_id)
                .await
                .map(|password| (None, password.expose_secret().to_owned()))
        } else {
            self.okta
                .expire_password(cx.okta(), &user_id)
                .await
                .map(|user| (Some(user_from_okta(user)), String::new()))
        };
        self.reads
            .changed(Invalidation::User(user_id.as_str().to_owned()))
            .await;
        let (user_opt, temporary_password) = match expired {
            Ok(expired) => expired,
            Err(error) => {
                // Expiry is allowed again from PASSWORD_EXPIRED: a read cannot prove it.
                self.settle_transition(&cx, error, &user_id, &["PASSWORD_EXPIRED"], false)
                    .await?;
                (None, String::new())
            }
        };
        let user = match user_opt {
            Some(user) => user,
            None => self.current_user(&cx, &user_id).await?,
        };
        Ok(Response::new(ExpirePasswordResponse {
            user: Some(user),
            temporary_password,
        }))
    }

    async fn delete_user(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<()>, Status> {
        let cx = RequestContext::of(&request);
        let request = request.into_inner();
        let user_id = parse_id(&cx, "user_id", &request.user_id).await?;
        let read = self
            .okta
            .get_user_answered(cx.okta(), &user_id)
            .await
            .map_err(mapped(OktaCall::Read))?;
        let user = user_from_okta(read.value);
        if user.status != UserStatus::Deprovisioned as i32 {
            if !request.deactivate_first {
                let status = okta_user_status(user.status()).unwrap_or("not DEPROVISIONED");
                return Err(failed_precondition(
                    &format!("users/{user_id}"),
                    &format!(
                        "the user is {status}; Okta deletes only DEPROVISIONED users: call \
                         DeactivateUser first, or set `deactivate_first`"
                    ),
                    read.request_id.as_deref(),
                ));
            }
            let deactivated = self
                .okta
                .deactivate_user(cx.okta(), &user_id, request.send_email)
                .await;
            self.reads
                .changed(Invalidation::User(user_id.as_str().to_owned()))
                .await;
            if let Err(error) = deactivated {
                let leads_to = Transition::Deactivate { send_email: false }.leads_to();
                self.settle_transition(&cx, error, &user_id, leads_to, true)
                    .await?;
            }
        }
        let deleted = self
            .okta
            .delete_user(cx.okta(), &user_id, request.send_email)
            .await;
        self.reads.changed(Invalidation::Everything).await;
        if let Err(error) = deleted {
            let check = format!("whether user {user_id} still exists");
            settle(error, OktaCall::Lifecycle, &check, async {
                gone(self.okta.get_user(cx.okta(), &user_id).await)
            })
            .await?;
        }
        Ok(Response::new(()))
    }

    async fn list_user_groups(
        &self,
        request: Request<ListUserGroupsRequest>,
    ) -> Result<Response<ListUserGroupsResponse>, Status> {
        let cx = RequestContext::of(&request);
        let user_id = parse_id(&cx, "user_id", &request.into_inner().user_id).await?;
        let (okta, read_cx) = (self.okta.clone(), cx.clone());
        let groups = self
            .reads
            .user_groups
            .read(user_id.as_str().to_owned(), move || async move {
                let groups = okta
                    .list_user_groups(read_cx.okta(), &user_id)
                    .await
                    .map_err(mapped(OktaCall::Read))?;
                Ok(groups.into_iter().map(convert::group_from_okta).collect())
            })
            .await?;
        let groups = scope::visible_groups(&cx, groups, |group| &group.name);
        Ok(Response::new(ListUserGroupsResponse { groups }))
    }
}

impl UsersApi {
    /// A create whose answer was lost may or may not have taken effect, and is never sent twice:
    /// look the login up. The user found is this call's only when it provably is (see
    /// [`claim`]); another party's is ALREADY_EXISTS; no user means nothing was created.
    async fn reconcile_create(
        &self,
        cx: &RequestContext,
        create: &okta_client::CreateUserRequest,
        departed: Option<OktaTime>,
        error: OktaError,
    ) -> Result<OktaUser, Status> {
        let login = create
            .profile
            .get("login")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        let check = format!("whether a user with login {login} exists and is this call's");
        let found = match self.okta.find_user_by_login(cx.okta(), login).await {
            Ok(Answered {
                value: Some(user),
                request_id,
            }) => match claim(&user, create, departed) {
                Claim::Ours => {
                    tracing::warn!(okta.user_id = %user.id, "the answer to a create was lost; the user it created exists, answering with it");
                    return Ok(user);
                }
                Claim::Theirs => {
                    return Err(login_taken(
                        "a user with this login already exists, and is not the one this call \
                         (whose answer from Okta was lost) would have created",
                        request_id.as_deref(),
                    ));
                }
                Claim::CannotTell => return Err(outcome_unknown(&error, &check)),
            },
            Ok(Answered { value: None, .. }) => Ok(Found::NotDone),
            Err(read_error) => Err(read_error),
        };
        settle(error, OktaCall::Write, &check, async { found }).await
    }

    async fn activation_response(
        &self,
        cx: &RequestContext,
        user_id: &OktaId,
        token: Option<okta_client::ActivationToken>,
    ) -> Result<Response<ActivateUserResponse>, Status> {
        self.reads
            .changed(Invalidation::User(user_id.as_str().to_owned()))
            .await;
        let (activation_url, activation_token) = token
            .map(|token| (token.activation_url, token.activation_token))
            .unwrap_or_default();
        Ok(Response::new(ActivateUserResponse {
            user: Some(self.current_user(cx, user_id).await?),
            activation_url,
            activation_token,
        }))
    }
}

/// Whose user a create whose answer was lost found under its login.
#[derive(Debug, PartialEq, Eq)]
enum Claim {
    /// Provably this call's write.
    Ours,
    /// Provably not: another party's.
    Theirs,
    /// Like this call's write, but created too close to the call for Okta's clock, as
    /// measured, to tell before from after.
    CannotTell,
}

/// A user is this call's write only when every profile attribute the call set is equal, its
/// status is what `activate` leads to, and Okta created it after the call's request left,
/// judged on Okta's clock (`departed`). Okta stamps `created` in whole seconds, truncated: a user
/// stamped a second or more before `departed.earliest` was created before the request left.
fn claim(
    user: &OktaUser,
    create: &okta_client::CreateUserRequest,
    departed: Option<OktaTime>,
) -> Claim {
    let same_profile = create
        .profile
        .iter()
        .all(|(name, value)| user.profile.get(name) == Some(value));
    let same_activation = (user.status != "STAGED") == create.activate;
    if !same_profile || !same_activation {
        return Claim::Theirs;
    }
    let (Some(created), Some(departed)) = (user.created, departed) else {
        return Claim::CannotTell;
    };
    if created >= departed.latest {
        Claim::Ours
    } else if created + chrono::TimeDelta::seconds(1) <= departed.earliest {
        Claim::Theirs
    } else {
        Claim::CannotTell
    }
}

/// Builds Okta's `filter` from the structured filter; `None` when it filters nothing.
fn user_filter_expression(filter: &UserFilter, violations: &mut Violations) -> Option<Expression> {
    let mut clauses = Vec::new();
    let statuses = violations.status_filter("filter.statuses", &filter.statuses, |status| {
        UserStatus::try_from(status).ok().and_then(okta_user_status)
    });
    clauses.extend(Expression::any_of(statuses));
    for (field, attribute, value) in [
        ("filter.login", "profile.login", &filter.login),
        ("filter.email", "profile.email", &filter.email),
        ("filter.first_name", "profile.firstName", &filter.first_name),
        ("filter.last_name", "profile.lastName", &filter.last_name),
    ] {
        if !value.is_empty() {
            violations.text(field, value);
            clauses.push(Expression::compare(attribute, Operator::Eq, value));
        }
    }
    if let Some(after) = &filter.last_updated_after {
        match convert::datetime(after) {
            Some(time) => clauses.push(Expression::compare(
                "lastUpdated",
                Operator::Gt,
                &time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            )),
            None => violations.add("filter.last_updated_after", "not a valid timestamp"),
        }
    }
    clauses.into_iter().reduce(Expression::and)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone, Utc};
    use serde_json::json;

    fn request(activate: bool) -> okta_client::CreateUserRequest {
        okta_client::CreateUserRequest {
            profile: json!({"login": "a@example.com", "firstName": "A"})
                .as_object()
                .unwrap()
                .clone(),
            password: None,
            group_ids: Vec::new(),
            activate,
            expire_password_on_create: false,
        }
    }

    fn user(first_name: &str, status: &str, created_ms: i64) -> OktaUser {
        serde_json::from_value(json!({
            "id": "00u1", "status": status,
            "created": Utc.timestamp_millis_opt(created_ms).unwrap(),
            "profile": {"login": "a@example.com", "firstName": first_name, "lastName": "B"}
        }))
        .unwrap()
    }

    #[test]
    fn a_found_user_is_claimed_only_when_it_provably_is_the_call_s_write() {
        let departed = Some(OktaTime {
            earliest: Utc.timestamp_millis_opt(100_000).unwrap(),
            latest: Utc.timestamp_millis_opt(101_000).unwrap(),
        });
        let second = TimeDelta::seconds(1).num_milliseconds();
        let cases = [
            (user("A", "STAGED", 101_000), false, Claim::Ours),
            (user("A", "STAGED", 100_500), false, Claim::CannotTell),
            (user("A", "STAGED", 99_000 + 1), false, Claim::CannotTell),
            (user("A", "STAGED", 100_000 - second), false, Claim::Theirs),
            (user("A", "STAGED", 40_000), false, Claim::Theirs),
            (user("Other", "STAGED", 200_000), false, Claim::Theirs),
            (user("A", "STAGED", 200_000), true, Claim::Theirs),
            (user("A", "ACTIVE", 200_000), true, Claim::Ours),
        ];
        for (found, activate, expected) in cases {
            assert_eq!(
                claim(&found, &request(activate), departed),
                expected,
                "{found:?}"
            );
        }
        assert_eq!(
            claim(&user("A", "STAGED", 200_000), &request(false), None),
            Claim::CannotTell,
            "without a measured clock nothing is provable"
        );
    }
}
