//! `identity.v1.GroupService`: each handler validates, calls Okta, converts.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert::{group_from_okta, user_from_okta};
use super::page_token;
use super::reads::{CoalescedReads, ListedPage, group_list_key, member_page_key};
use super::settle::{found, settle};
use super::status::{OktaCall, mapped};
use super::token_key::TokenKey;
use super::validate::{Violations, checked, parse_id, parse_ids};
use crate::authz::scope::ScopeIndex;
use crate::context::RequestContext;
use crate::coordination::invalidation::Invalidation;
use crate::proto::group_service_server::GroupService;
use crate::proto::{
    GetGroupRequest, Group, GroupMemberRequest, ListGroupMembersRequest, ListGroupMembersResponse,
    ListGroupsRequest, ListGroupsResponse, StreamGroupMembersRequest, User,
};
use okta_client::{Expression, GroupQuery, OktaClient, OktaId, Operator, PageRequest};

/// Largest page the gateway asks Okta for when listing groups or members: Okta recommends
/// `limit=200` for both (its defaults are higher for historical reasons).
pub const MAX_GROUPS_PAGE_SIZE: u32 = 200;
/// Users buffered ahead of a slow stream reader: one Okta page.
const STREAM_BUFFER: usize = MAX_GROUPS_PAGE_SIZE as usize;

/// Serves GroupService over one shared Okta client.
#[derive(Clone)]
pub struct GroupsApi {
    okta: OktaClient,
    reads: CoalescedReads,
    scopes: Arc<ScopeIndex>,
    token_key: TokenKey,
}

impl GroupsApi {
    /// Wraps the shared Okta client, the coalesced reads, the group-scope index (told about
    /// membership changes) and the page-token key.
    pub fn new(
        okta: OktaClient,
        reads: CoalescedReads,
        scopes: Arc<ScopeIndex>,
        token_key: TokenKey,
    ) -> Self {
        Self {
            okta,
            reads,
            scopes,
            token_key,
        }
    }
}

/// The two membership changes.
enum MembershipChange {
    Add,
    Remove,
}

/// The stream StreamGroupMembers answers with.
pub type UserStream = Pin<Box<dyn Stream<Item = Result<User, Status>> + Send>>;

#[tonic::async_trait]
impl GroupService for GroupsApi {
    async fn get_group(
        &self,
        request: Request<GetGroupRequest>,
    ) -> Result<Response<Group>, Status> {
        let cx = RequestContext::of(&request);
        let group_id = parse_id(&cx, "group_id", &request.into_inner().group_id).await?;
        let okta = self.okta.clone();
        let group = self
            .reads
            .groups
            .read(group_id.as_str().to_owned(), move || async move {
                let group = okta
                    .get_group(cx.okta(), &group_id)
                    .await
                    .map_err(mapped(OktaCall::Read))?;
                Ok(group_from_okta(group))
            })
            .await?;
        Ok(Response::new(group))
    }

    async fn list_groups(
        &self,
        request: Request<ListGroupsRequest>,
    ) -> Result<Response<ListGroupsResponse>, Status> {
        let cx = RequestContext::of(&request);
        let request = request.into_inner();
        let mut violations = Violations::new(&cx);
        let limit = violations.page_size("page_size", request.page_size, MAX_GROUPS_PAGE_SIZE);
        let query = match (request.name_prefix.is_empty(), request.search.is_empty()) {
            (false, false) => {
                violations.add("search", "set at most one of `name_prefix` and `search`");
                None
            }
            (false, true) => {
                violations.text("name_prefix", &request.name_prefix);
                Some(GroupQuery::Search(Expression::compare(
                    "profile.name",
                    Operator::Sw,
                    &request.name_prefix,
                )))
            }
            (true, false) => violations
                .expression("search", &request.search)
                .map(GroupQuery::Search),
            (true, true) => Some(GroupQuery::All),
        };
        let expression = match &query {
            Some(GroupQuery::Search(expression)) => expression.as_str(),
            Some(GroupQuery::All) | None => "",
        };
        let fingerprint = page_token::query_fingerprint(&["groups", expression]);
        let after = violations.page_cursor(&self.token_key, &request.page_token, &fingerprint);
        violations.finish().await?;
        let page_request = PageRequest { limit, after };
        let key = group_list_key(expression, &page_request);
        let (okta, query) = (self.okta.clone(), checked(query)?);
        let page = self
            .reads
            .group_lists
            .read(key, move || async move {
                let answer = okta.list_groups(cx.okta(), &query, &page_request).await;
                ListedPage::from_okta(answer, group_from_okta)
            })
            .await?;
        Ok(Response::new(ListGroupsResponse {
            next_page_token: page_token::encode(&self.token_key, page.next.as_ref(), &fingerprint),
            groups: page.items,
        }))
    }

    async fn list_group_members(
        &self,
        request: Request<ListGroupMembersRequest>,
    ) -> Result<Response<ListGroupMembersResponse>, Status> {
        let cx = RequestContext::of(&request);
        let request = request.into_inner();
        let mut violations = Violations::new(&cx);
        let group_id = violations.id("group_id", &request.group_id);
        let limit = violations.page_size("page_size", request.page_size, MAX_GROUPS_PAGE_SIZE);
        let fingerprint = page_token::query_fingerprint(&["group-members", &request.group_id]);
        let after = violations.page_cursor(&self.token_key, &request.page_token, &fingerprint);
        violations.finish().await?;
        let page = self
            .member_page(&cx, checked(group_id)?, PageRequest { limit, after })
            .await?;
        Ok(Response::new(ListGroupMembersResponse {
            next_page_token: page_token::encode(&self.token_key, page.next.as_ref(), &fingerprint),
            users: page.items,
        }))
    }

    type StreamGroupMembersStream = UserStream;

    async fn stream_group_members(
        &self,
        request: Request<StreamGroupMembersRequest>,
    ) -> Result<Response<UserStream>, Status> {
        let cx = RequestContext::of(&request);
        let group_id = parse_id(&cx, "group_id", &request.into_inner().group_id).await?;
        let first_request = PageRequest {
            limit: MAX_GROUPS_PAGE_SIZE,
            after: None,
        };
        // The first page is fetched before answering, so an unknown group is a plain NOT_FOUND.
        let mut page = self
            .member_page(&cx, group_id.clone(), first_request)
            .await?;
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        let api = self.clone();
        // The rest of the stream outlives the RPC's deadline: it reads on as background work.
        let cx = Arc::new(RequestContext::default());
        tokio::spawn(async move {
            loop {
                for user in page.items.drain(..) {
                    if sender.send(Ok(user)).await.is_err() {
                        return; // the caller went away
                    }
                }
                let Some(after) = page.next.take() else {
                    return;
                };
                let next_request = PageRequest {
                    limit: MAX_GROUPS_PAGE_SIZE,
                    after: Some(after),
                };
                match api.member_page(&cx, group_id.clone(), next_request).await {
                    Ok(next_page) => page = next_page,
                    Err(status) => {
                        let _ = sender.send(Err(status)).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn add_group_member(
        &self,
        request: Request<GroupMemberRequest>,
    ) -> Result<Response<()>, Status> {
        let cx = RequestContext::of(&request);
        self.change_membership(&cx, request.into_inner(), MembershipChange::Add)
            .await
    }

    async fn remove_group_member(
        &self,
        request: Request<GroupMemberRequest>,
    ) -> Result<Response<()>, Status> {
        let cx = RequestContext::of(&request);
        self.change_membership(&cx, request.into_inner(), MembershipChange::Remove)
            .await
    }
}

impl GroupsApi {
    /// Records in the group-scope index, here and in the other replicas, that the user is now
    /// in (or out of) the group, so a delegate sees its own change on any replica.
    async fn scope_membership_changed(&self, group_id: &str, user_id: &str, added: bool) {
        self.scopes.membership_changed(group_id, user_id, added);
        self.reads
            .publish(Invalidation::ScopeMembership {
                group_id: group_id.to_owned(),
                user_id: user_id.to_owned(),
                added,
            })
            .await;
    }

    /// One page of a group's members, shared by ListGroupMembers and StreamGroupMembers so
    /// identical concurrent page reads share one Okta call.
    async fn member_page(
        &self,
        cx: &Arc<RequestContext>,
        group_id: OktaId,
        page_request: PageRequest,
    ) -> Result<ListedPage<User>, Status> {
        let key = member_page_key(group_id.as_str(), &page_request);
        let (okta, cx) = (self.okta.clone(), cx.clone());
        self.reads
            .member_pages
            .read(key, move || async move {
                let answer = okta
                    .list_group_members(cx.okta(), &group_id, &page_request)
                    .await;
                ListedPage::from_okta(answer, user_from_okta)
            })
            .await
    }

    /// Adds or removes one membership.
    async fn change_membership(
        &self,
        cx: &RequestContext,
        request: GroupMemberRequest,
        change: MembershipChange,
    ) -> Result<Response<()>, Status> {
        let ids = parse_ids(
            cx,
            &[
                ("group_id", &request.group_id),
                ("user_id", &request.user_id),
            ],
        )
        .await?;
        let result = match change {
            MembershipChange::Add => {
                self.okta
                    .add_group_member(cx.okta(), &ids[0], &ids[1])
                    .await
            }
            MembershipChange::Remove => {
                self.okta
                    .remove_group_member(cx.okta(), &ids[0], &ids[1])
                    .await
            }
        };
        self.reads
            .changed(Invalidation::Membership(ids[0].as_str().to_owned()))
            .await;
        if let Err(error) = result {
            let adding = matches!(change, MembershipChange::Add);
            if !adding {
                // A removal that may have happened takes the user out of scope at once; the
                // next refresh of the index says what Okta holds (an addition waits for it).
                self.scope_membership_changed(ids[0].as_str(), ids[1].as_str(), false)
                    .await;
            }
            let check = format!("whether user {} is a member of group {}", ids[1], ids[0]);
            settle(error, OktaCall::Membership, &check, async {
                let groups = self.okta.list_user_groups(cx.okta(), &ids[1]).await?;
                let member = groups.iter().any(|group| group.id == ids[0].as_str());
                Ok(found((), member == adding))
            })
            .await?;
        }
        self.scope_membership_changed(
            ids[0].as_str(),
            ids[1].as_str(),
            matches!(change, MembershipChange::Add),
        )
        .await;
        Ok(Response::new(()))
    }
}
