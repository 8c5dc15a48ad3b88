//! Group-scoped delegation under attack, over real sockets: a delegate scoped to Sales must
//! never reach a user it could not reach before its own change (no taking over a member of
//! another group by adding them to Sales), must never act on a member of a protected group,
//! and sees only its own groups; each refusal leaves the simulated org unchanged.

use crate::common;

use common::callers::{key, keyed, with_api_keys};
use common::{PATIENCE, TestApp, error_metadata, eventually, reason};
use identity_gateway::config::{Settings, WordList};
use identity_gateway::proto::{
    GetUserRequest, GroupMemberRequest, ListUserGroupsRequest, ResetPasswordRequest,
    get_user_request,
};
use serde_json::{Value, json};
use tonic::{Code, Status};

/// A Sales delegate (the `team-x` key) holding the membership RPCs and ResetPassword, the
/// reproduction's role; `billing` may do everything, unscoped.
const POLICY: &str = r#"
roles:
  everything:
    rpcs: ["*"]
  sales-delegate:
    rpcs: ["identity.v1.GroupService/*GroupMember*", "identity.v1.UserService/ResetPassword",
           "identity.v1.UserService/ListUserGroups", "identity.v1.UserService/GetUser"]
    groups: ["Sales"]
callers:
  - identity: "apikey:billing"
    roles: [everything]
  - identity: "apikey:team-x"
    roles: [sales-delegate]
"#;

const ADD: &str = "GroupService/AddGroupMember";
const REMOVE: &str = "GroupService/RemoveGroupMember";
const RESET: &str = "UserService/ResetPassword";
const LIST_GROUPS: &str = "UserService/ListUserGroups";

/// The org: `admin` in Admins, `seller` in Sales, `both` in Sales and Marketing, `vip` in
/// Sales and Executives, `exec` in Executives only, `marketer` in Marketing, `hire` in no
/// group but Okta's built-in Everyone.
fn org_document() -> Value {
    json!({
        "users": [{"login": "admin@example.com"}, {"login": "seller@example.com"},
                  {"login": "both@example.com"}, {"login": "vip@example.com"},
                  {"login": "exec@example.com"}, {"login": "marketer@example.com"},
                  {"login": "hire@example.com"}],
        "groups": [
            {"name": "Admins", "members": ["admin@example.com"]},
            {"name": "Sales", "members": ["seller@example.com", "both@example.com",
                                           "vip@example.com"]},
            {"name": "Marketing", "members": ["both@example.com", "marketer@example.com"]},
            {"name": "Executives", "members": ["vip@example.com", "exec@example.com"]},
        ],
    })
}

/// The gateway with the Sales delegate, in front of a simulator seeded before it starts (so
/// the scope index's first load sees the org); answers once the index is loaded.
struct Delegation {
    app: TestApp,
    ids: Value,
    _dir: tempfile::TempDir,
}

impl Delegation {
    async fn start(configure: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sim = common::start_simulator().await;
        let ids = common::seed_simulator(&sim, &org_document()).await;
        let app = common::spawn_gateway_for(sim, |settings| {
            with_api_keys(settings, &dir);
            std::fs::write(settings.authz.policy_file.as_ref().unwrap(), POLICY).unwrap();
            configure(settings);
        })
        .await;
        let delegation = Self {
            app,
            ids,
            _dir: dir,
        };
        let seller = delegation.user("seller");
        eventually(PATIENCE, "the scope index loads", async || match delegation
            .get_user(&seller)
            .await
        {
            Ok(()) => true,
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert_eq!(reason(&status), "GATEWAY_SCOPE_LOADING", "{status:?}");
                false
            }
        })
        .await;
        delegation
    }

    fn user(&self, name: &str) -> String {
        let login = format!("{name}@example.com");
        self.ids["users"][&login].as_str().unwrap().to_owned()
    }

    fn group(&self, name: &str) -> String {
        self.ids["groups"][name].as_str().unwrap().to_owned()
    }

    async fn get_user(&self, user_id: &str) -> Result<(), Status> {
        let request = GetUserRequest {
            user: Some(get_user_request::User::Id(user_id.to_owned())),
        };
        let mut users = self.app.users.clone();
        users
            .get_user(keyed(request, key("team-x")))
            .await
            .map(drop)
    }

    /// AddGroupMember (`add`) or RemoveGroupMember as the delegate.
    async fn membership(&self, add: bool, group: &str, user_id: &str) -> Result<(), Status> {
        let request = keyed(
            GroupMemberRequest {
                group_id: self.group(group),
                user_id: user_id.to_owned(),
                ..Default::default()
            },
            key("team-x"),
        );
        let mut groups = self.app.groups.clone();
        if add {
            groups.add_group_member(request).await.map(drop)
        } else {
            groups.remove_group_member(request).await.map(drop)
        }
    }

    async fn reset_password(&self, user_id: &str) -> Result<String, Status> {
        let request = ResetPasswordRequest {
            user_id: user_id.to_owned(),
            send_email: false,
            revoke_sessions: false,
            ..Default::default()
        };
        let mut users = self.app.users.clone();
        let answer = users.reset_password(keyed(request, key("team-x"))).await?;
        Ok(answer.into_inner().reset_password_url)
    }

    /// The names of the groups ListUserGroups shows the caller holding `caller_key`.
    async fn user_groups(&self, caller_key: &str, user_id: &str) -> Result<Vec<String>, Status> {
        let request = ListUserGroupsRequest {
            user_id: user_id.to_owned(),
        };
        let mut users = self.app.users.clone();
        let groups = users
            .list_user_groups(keyed(request, caller_key))
            .await?
            .into_inner()
            .groups;
        let mut names: Vec<String> = groups.into_iter().map(|group| group.name).collect();
        names.sort();
        Ok(names)
    }

    /// Okta's answer to `GET path`, read from the simulated org directly.
    async fn okta_get(&self, path: &str) -> Value {
        let request = self.app.okta_request(reqwest::Method::GET, path);
        request.send().await.unwrap().json().await.unwrap()
    }

    /// A group's member ids, as the simulated org holds them.
    async fn members(&self, group: &str) -> Vec<String> {
        let path = format!("/api/v1/groups/{}/users", self.group(group));
        let users = self.okta_get(&path).await;
        users
            .as_array()
            .unwrap()
            .iter()
            .map(|user| user["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// A user's status, as the simulated org holds it.
    async fn status(&self, user_id: &str) -> String {
        let user = self.okta_get(&format!("/api/v1/users/{user_id}")).await;
        user["status"].as_str().unwrap().to_owned()
    }

    /// The requests that reached the simulated org since the last call which change something.
    async fn writes(&self) -> Vec<Value> {
        let requests = self.app.sim_requests().await;
        self.app.clear_sim_requests().await;
        requests
            .into_iter()
            .filter(|request| request["method"] != "GET")
            .collect()
    }

    /// PERMISSION_DENIED with `reason`, naming the RPC, and nothing written to the org since
    /// the last look.
    async fn assert_refused(
        &self,
        outcome: Result<impl std::fmt::Debug, Status>,
        reason_wanted: &str,
        rpc: &str,
    ) {
        let status = outcome.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{rpc}: {status:?}");
        assert_eq!(reason(&status), reason_wanted, "{rpc}: {status:?}");
        assert_eq!(
            error_metadata(&status, "permission"),
            format!("identity.v1.{rpc}"),
            "{status:?}"
        );
        assert_eq!(
            self.writes().await,
            Vec::<Value>::new(),
            "{rpc}: nothing written"
        );
    }
}

#[tokio::test]
async fn a_sales_delegate_cannot_take_over_a_member_of_another_group() {
    let org = Delegation::start(|_| {}).await;
    let admin = org.user("admin");
    let sales_before = org.members("Sales").await;
    org.writes().await;

    // The reproduction: add an Admins member to Sales, then reset their password.
    let added = org.membership(true, "Sales", &admin).await;
    org.assert_refused(added, "TARGET_OUTSIDE_SCOPE", ADD).await;
    assert_eq!(org.members("Sales").await, sales_before, "Sales unchanged");
    let reset = org.reset_password(&admin).await;
    org.assert_refused(reset, "TARGET_OUTSIDE_SCOPE", RESET)
        .await;
    assert_eq!(
        org.status(&admin).await,
        "ACTIVE",
        "the victim is untouched"
    );
    // Nor can a user outside the scope be removed from Sales.
    let removed = org.membership(false, "Sales", &admin).await;
    org.assert_refused(removed, "TARGET_OUTSIDE_SCOPE", REMOVE)
        .await;

    // A member of another group is refused too, even when that group is harmless.
    let marketer = org.user("marketer");
    let added = org.membership(true, "Sales", &marketer).await;
    org.assert_refused(added, "TARGET_OUTSIDE_SCOPE", ADD).await;
    assert_eq!(org.members("Sales").await, sales_before, "Sales unchanged");
}

#[tokio::test]
async fn a_new_hire_can_be_added_and_then_managed() {
    let org = Delegation::start(|_| {}).await;
    let hire = org.user("hire");
    org.membership(true, "Sales", &hire).await.unwrap();
    assert!(org.members("Sales").await.contains(&hire));
    let link = org.reset_password(&hire).await.unwrap();
    assert!(!link.is_empty(), "the reset link is returned");
    org.membership(false, "Sales", &hire).await.unwrap();
    assert!(!org.members("Sales").await.contains(&hire));

    // A user already in scope (in Sales and Marketing) may be added again: Okta keeps one
    // membership.
    let both = org.user("both");
    org.membership(true, "Sales", &both).await.unwrap();
}

#[tokio::test]
async fn a_scoped_caller_sees_only_the_groups_of_its_scope() {
    let org = Delegation::start(|_| {}).await;
    let both = org.user("both");
    assert_eq!(
        org.user_groups(key("team-x"), &both).await.unwrap(),
        ["Sales"]
    );
    assert_eq!(
        org.user_groups(key("billing"), &both).await.unwrap(),
        ["Everyone", "Marketing", "Sales"],
        "an unscoped caller sees every group"
    );
    let refused = org.user_groups(key("team-x"), &org.user("marketer")).await;
    org.assert_refused(refused, "TARGET_OUTSIDE_SCOPE", LIST_GROUPS)
        .await;
}

#[tokio::test]
async fn a_member_of_a_protected_group_is_never_reached_nor_added() {
    let org = Delegation::start(|settings| {
        settings.authz.protected_groups = Some(WordList::Text("Exec*, Board of Directors".into()));
    })
    .await;
    org.writes().await;
    // vip is in Sales, so in scope, but also in the protected Executives.
    let vip = org.user("vip");
    let reset = org.reset_password(&vip).await;
    org.assert_refused(reset, "TARGET_PROTECTED", RESET).await;
    let removed = org.membership(false, "Sales", &vip).await;
    org.assert_refused(removed, "TARGET_PROTECTED", REMOVE)
        .await;
    let listed = org.user_groups(key("team-x"), &vip).await;
    org.assert_refused(listed, "TARGET_PROTECTED", LIST_GROUPS)
        .await;
    let exec = org.user("exec");
    let added = org.membership(true, "Sales", &exec).await;
    org.assert_refused(added, "TARGET_PROTECTED", ADD).await;
    assert_eq!(org.status(&vip).await, "ACTIVE");
    assert!(org.members("Sales").await.contains(&vip));
    assert!(!org.members("Sales").await.contains(&exec));

    // A membership made in Okta after the index was loaded counts at once: the index is not
    // trusted to know who is protected.
    let seller = org.user("seller");
    org.get_user(&seller).await.unwrap();
    let path = format!("/api/v1/groups/{}/users/{seller}", org.group("Executives"));
    let made = org
        .app
        .okta_request(reqwest::Method::PUT, &path)
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success(), "{made:?}");
    org.writes().await;
    let reset = org.reset_password(&seller).await;
    org.assert_refused(reset, "TARGET_PROTECTED", RESET).await;
    assert_eq!(org.status(&seller).await, "ACTIVE");

    // So does a group renamed in Okta into a protected name.
    let path = format!("/api/v1/groups/{}", org.group("Sales"));
    let renamed = org
        .app
        .okta_request(reqwest::Method::PUT, &path)
        .json(&json!({"profile": {"name": "Executive Sales"}}))
        .send()
        .await
        .unwrap();
    assert!(renamed.status().is_success(), "{renamed:?}");
    org.writes().await;
    let hire = org.user("hire");
    let added = org.membership(true, "Sales", &hire).await;
    org.assert_refused(added, "TARGET_PROTECTED", ADD).await;
    assert!(!org.members("Sales").await.contains(&hire));
}
