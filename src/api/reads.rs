//! The reads the gateway shares between callers, and what each of its own writes makes stale.
//!
//! Every read here is coalesced ([`super::coalesce`]); the group-discovery reads are also cached
//! when `cache.group_discovery_ttl_ms` is set ([`super::discovery_cache`]). After a write the
//! gateway forgets the in-flight and cached answers the write may have changed, so a caller
//! never reads its own write's past. A key's scope (what [`Stale::Of`] names) is the text
//! before its first `/`: a user or group id.

use tonic::Status;

use super::coalesce::{SharedReads, Stale, Store, Weighed, coalescing_store};
use super::status::{OktaCall, mapped};
use crate::coordination::invalidation::{Invalidation, Invalidations};
use crate::proto::{Group, User};
use okta_client::{Cursor, OktaError, Page, PageRequest};

/// One page of a list as the gateway serves it: the converted items and Okta's cursor of the
/// next page (re-encoded into a page token per query).
#[derive(Clone, Debug)]
pub struct ListedPage<T> {
    /// The items, in Okta's order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

impl<T> ListedPage<T> {
    /// Converts the answer to an Okta list read: each object, keeping the cursor, or the
    /// failure as a status.
    pub fn from_okta<O>(
        answer: Result<Page<O>, OktaError>,
        convert: impl FnMut(O) -> T,
    ) -> Result<Self, Status> {
        let page = answer.map_err(mapped(OktaCall::Read))?;
        Ok(Self {
            items: page.items.into_iter().map(convert).collect(),
            next: page.next,
        })
    }
}

impl<T> Weighed for ListedPage<T> {
    fn weight(&self) -> usize {
        self.items.len()
    }
}

/// The shared reads, handed to the services whose writes make them stale; clones share them.
#[derive(Clone)]
pub struct CoalescedReads {
    /// GetUser by id, keyed by user id (coalesced only: a user's profile is not group discovery).
    pub users: SharedReads<User>,
    /// ListUserGroups, keyed by user id.
    pub user_groups: SharedReads<Vec<Group>>,
    /// GetGroup, keyed by group id.
    pub groups: SharedReads<Group>,
    /// ListGroups pages, keyed by [`group_list_key`].
    pub group_lists: SharedReads<ListedPage<Group>>,
    /// Pages of a group's members (ListGroupMembers and StreamGroupMembers), keyed by
    /// [`member_page_key`].
    pub member_pages: SharedReads<ListedPage<User>>,
    /// Tells the other replicas what this one's writes made stale.
    invalidations: Invalidations,
}

impl CoalescedReads {
    /// The shared reads, with the group-discovery cache
    /// ([`super::discovery_cache::discovery_cache`]) when it is on, telling other replicas
    /// through `invalidations`.
    pub fn new(cache_opt: Option<Store>, invalidations: Invalidations) -> Self {
        let coalescing = coalescing_store();
        let discovery = cache_opt.unwrap_or_else(|| coalescing.clone());
        Self {
            users: SharedReads::new(coalescing),
            user_groups: SharedReads::new(discovery.clone()),
            groups: SharedReads::new(discovery.clone()),
            group_lists: SharedReads::new(discovery.clone()),
            member_pages: SharedReads::new(discovery),
            invalidations,
        }
    }

    /// Forgets what `invalidation` names, and tells the other replicas to forget it too.
    pub async fn changed(&self, invalidation: Invalidation) {
        self.forget(&invalidation);
        self.invalidations.publish(&invalidation).await;
    }

    /// Tells the other replicas what a write did to the group-scope index, which the caller
    /// updated in this replica.
    pub async fn publish(&self, invalidation: Invalidation) {
        self.invalidations.publish(&invalidation).await;
    }

    /// Forgets what `invalidation` names, here only: for writes through another replica.
    pub fn forget(&self, invalidation: &Invalidation) {
        match invalidation {
            Invalidation::User(user_id) => self.user_changed(user_id),
            Invalidation::Membership(group_id) => self.membership_changed(group_id),
            Invalidation::Everything => self.user_created_or_deleted(),
            Invalidation::ScopeMembership { .. } => {}
        }
    }

    /// After a change to one user's profile, status or password: that user and their groups,
    /// and every member page, since pages show each member's profile and status.
    fn user_changed(&self, user_id: &str) {
        self.users.forget(Stale::Of(user_id));
        self.user_groups.forget(Stale::Of(user_id));
        self.member_pages.forget(Stale::All);
    }

    /// After a member was added to or removed from `group_id`: the group and its member pages,
    /// and every list of groups (ListGroups pages, users' groups), since each shows the group's
    /// `last_membership_updated`.
    fn membership_changed(&self, group_id: &str) {
        self.groups.forget(Stale::Of(group_id));
        self.member_pages.forget(Stale::Of(group_id));
        self.group_lists.forget(Stale::All);
        self.user_groups.forget(Stale::All);
    }

    /// After a user was created or deleted: the memberships of groups the gateway cannot name
    /// cheaply changed (Everyone, the groups named at creation, every group of a deleted user),
    /// so everything is forgotten.
    fn user_created_or_deleted(&self) {
        self.users.forget(Stale::All);
        self.user_groups.forget(Stale::All);
        self.groups.forget(Stale::All);
        self.group_lists.forget(Stale::All);
        self.member_pages.forget(Stale::All);
    }
}

/// The key of one ListGroups page: the Okta search expression (empty for all groups) and the
/// page requested.
pub fn group_list_key(expression: &str, page: &PageRequest) -> String {
    format!("{}/{expression}", page_key(page))
}

/// The key of one page of `group_id`'s members: scoped by the group (an Okta id never holds
/// `/`).
pub fn member_page_key(group_id: &str, page: &PageRequest) -> String {
    format!("{group_id}/{}", page_key(page))
}

fn page_key(page: &PageRequest) -> String {
    format!(
        "{}/{}",
        page.limit,
        page.after.as_ref().map_or("", Cursor::as_str)
    )
}
