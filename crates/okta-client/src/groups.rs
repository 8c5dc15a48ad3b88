//! Group endpoints: one method per Okta operation (`/api/v1/groups…`).

use http::Method;

use crate::client::OktaClient;
use crate::context::CallContext;
use crate::error::OktaError;
use crate::expression::Expression;
use crate::ids::OktaId;
use crate::models::{OktaGroup, OktaUser};
use crate::pagination::{Page, PageRequest};
use crate::retry::Retry;
use crate::users::with_page;

/// Which groups `list_groups` returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupQuery {
    /// Every group.
    All,
    /// `search=`: e.g. `profile.name sw "Eng"`, `type eq "OKTA_GROUP"`.
    Search(Expression),
}

impl OktaClient {
    /// Fetches one group by id (`GET /api/v1/groups/{groupId}`).
    pub async fn get_group(
        &self,
        cx: &CallContext,
        group_id: &OktaId,
    ) -> Result<OktaGroup, OktaError> {
        let url = self.endpoint(&["api", "v1", "groups", group_id.as_str()])?;
        self.send(cx, Method::GET, url, None, Retry::Idempotent)
            .await?
            .json()
    }

    /// Lists one page of groups (`GET /api/v1/groups`, optionally with `search`).
    pub async fn list_groups(
        &self,
        cx: &CallContext,
        query: &GroupQuery,
        page: &PageRequest,
    ) -> Result<Page<OktaGroup>, OktaError> {
        let pairs: Vec<(&str, &str)> = match query {
            GroupQuery::All => Vec::new(),
            GroupQuery::Search(expression) => vec![("search", expression.as_str())],
        };
        self.get_page(
            cx,
            with_page(self.endpoint(&["api", "v1", "groups"])?, &pairs, page),
        )
        .await
    }

    /// Lists one page of a group's members (`GET /api/v1/groups/{groupId}/users`).
    pub async fn list_group_members(
        &self,
        cx: &CallContext,
        group_id: &OktaId,
        page: &PageRequest,
    ) -> Result<Page<OktaUser>, OktaError> {
        let url = self.endpoint(&["api", "v1", "groups", group_id.as_str(), "users"])?;
        self.get_page(cx, with_page(url, &[], page)).await
    }

    /// Adds a user to an `OKTA_GROUP` (`PUT …/users/{userId}`, 204). Idempotent, so retried.
    pub async fn add_group_member(
        &self,
        cx: &CallContext,
        group_id: &OktaId,
        user_id: &OktaId,
    ) -> Result<(), OktaError> {
        self.send_membership(cx, Method::PUT, group_id, user_id)
            .await
    }

    /// Removes a user from an `OKTA_GROUP` (`DELETE …/users/{userId}`, 204). Idempotent, so retried.
    pub async fn remove_group_member(
        &self,
        cx: &CallContext,
        group_id: &OktaId,
        user_id: &OktaId,
    ) -> Result<(), OktaError> {
        self.send_membership(cx, Method::DELETE, group_id, user_id)
            .await
    }

    async fn send_membership(
        &self,
        cx: &CallContext,
        method: Method,
        group_id: &OktaId,
        user_id: &OktaId,
    ) -> Result<(), OktaError> {
        let segments = [
            "api",
            "v1",
            "groups",
            group_id.as_str(),
            "users",
            user_id.as_str(),
        ];
        let url = self.endpoint(&segments)?;
        self.send(cx, method, url, None, Retry::Idempotent)
            .await
            .map(drop)
    }
}
