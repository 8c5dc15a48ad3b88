//! JSON renderings of users and groups, in the field order of Okta's recorded responses.

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Map, Value};

use super::state::{Group, GroupType, User, UserStatus, fmt_ts};

/// The user type every simulated user has (Okta's default type in the recordings).
pub const USER_TYPE_ID: &str = "otysimdefaultusertyp";
/// The default user schema id.
const USER_SCHEMA_ID: &str = "oscsimdefaultschema0";

/// How much of `_links` to render: lists carry only `self`, single reads carry everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkDetail {
    /// Only `_links.self` (list responses).
    SelfOnly,
    /// Every link that applies to the user's status (get/create/update responses).
    Full,
}

#[derive(Serialize)]
struct Href {
    href: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserView<'a> {
    id: &'a str,
    status: &'static str,
    created: String,
    activated: Option<String>,
    status_changed: Option<String>,
    last_login: Option<String>,
    last_updated: String,
    password_changed: Option<String>,
    #[serde(rename = "type")]
    kind: TypeRef,
    profile: OrderedProfile<'a>,
    credentials: Credentials<'a>,
    #[serde(rename = "_links")]
    links: Map<String, Value>,
}

#[derive(Serialize)]
struct TypeRef {
    id: &'static str,
}

#[derive(Serialize)]
struct Credentials<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<Map<String, Value>>,
    emails: Vec<Email<'a>>,
    provider: Provider,
}

#[derive(Serialize)]
struct Email<'a> {
    value: &'a str,
    status: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct Provider {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'static str,
}

/// A profile rendered with `first` keys first, `last` keys last, the rest sorted in between.
struct OrderedProfile<'a> {
    map: &'a Map<String, Value>,
    first: &'static [&'static str],
    last: &'static [&'static str],
    defaults_null: &'static [&'static str],
}

impl Serialize for OrderedProfile<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        let null = Value::Null;
        for k in self.first {
            if let Some(v) = self.map.get(*k) {
                m.serialize_entry(k, v)?;
            }
        }
        for (k, v) in self.map {
            if !self.first.contains(&k.as_str()) && !self.last.contains(&k.as_str()) {
                m.serialize_entry(k, v)?;
            }
        }
        for k in self.defaults_null {
            if !self.map.contains_key(*k) {
                m.serialize_entry(k, &null)?;
            }
        }
        for k in self.last {
            if let Some(v) = self.map.get(*k) {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

fn link(href: String) -> Value {
    serde_json::to_value(Href { href, method: None }).unwrap_or(Value::Null)
}

fn post_link(href: String) -> Value {
    serde_json::to_value(Href {
        href,
        method: Some("POST"),
    })
    .unwrap_or(Value::Null)
}

/// The `_links` object of a user.
fn user_links(base: &str, u: &User, detail: LinkDetail) -> Map<String, Value> {
    let me = format!("{base}/api/v1/users/{}", u.id);
    let mut l = Map::new();
    l.insert("self".into(), link(me.clone()));
    if detail == LinkDetail::SelfOnly {
        return l;
    }
    l.insert(
        "schema".into(),
        link(format!("{base}/api/v1/meta/schemas/user/{USER_SCHEMA_ID}")),
    );
    l.insert(
        "type".into(),
        link(format!("{base}/api/v1/meta/types/user/{USER_TYPE_ID}")),
    );
    let lc = |op: &str| post_link(format!("{me}/lifecycle/{op}"));
    let cred = |op: &str| post_link(format!("{me}/credentials/{op}"));
    let mut add = |k: &str, v: Value| {
        l.insert(k.to_owned(), v);
    };
    use UserStatus::*;
    if u.status != Deprovisioned {
        add("resetFactors", lc("reset_factors"));
        add("deactivate", lc("deactivate"));
    }
    match u.status {
        Staged | Deprovisioned => add("activate", lc("activate")),
        Provisioned => add("reactivate", lc("reactivate")),
        Active => {
            add("suspend", lc("suspend"));
            add("resetPassword", lc("reset_password"));
            add("expirePassword", lc("expire_password"));
            add("forgotPassword", cred("forgot_password"));
            add("changePassword", cred("change_password"));
            add("changeRecoveryQuestion", cred("change_recovery_question"));
        }
        Suspended => add("unsuspend", lc("unsuspend")),
        LockedOut => {
            add("unlock", lc("unlock"));
            add("resetPassword", lc("reset_password"));
            add("expirePassword", lc("expire_password"));
        }
        PasswordExpired | Recovery => {
            add("resetPassword", lc("reset_password"));
            add("expirePassword", lc("expire_password"));
        }
    }
    l
}

/// Renders a user as Okta does; the password value is never part of the model.
pub fn user_json(base: &str, u: &User, detail: LinkDetail) -> String {
    let email = u.profile.get("email").and_then(Value::as_str).unwrap_or("");
    let view = UserView {
        id: &u.id,
        status: u.status.as_str(),
        created: fmt_ts(&u.created),
        activated: u.activated.as_ref().map(fmt_ts),
        status_changed: u.status_changed.as_ref().map(fmt_ts),
        last_login: u.last_login.as_ref().map(fmt_ts),
        last_updated: fmt_ts(&u.last_updated),
        password_changed: u.password_changed.as_ref().map(fmt_ts),
        kind: TypeRef { id: USER_TYPE_ID },
        profile: OrderedProfile {
            map: &u.profile,
            first: &["firstName", "lastName"],
            last: &["login", "email"],
            defaults_null: &["mobilePhone", "secondEmail"],
        },
        credentials: Credentials {
            password: u.has_password.then(Map::new),
            emails: vec![Email {
                value: email,
                status: "VERIFIED",
                kind: "PRIMARY",
            }],
            provider: Provider {
                kind: "OKTA",
                name: "OKTA",
            },
        },
        links: user_links(base, u, detail),
    };
    to_text(&view)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupView<'a> {
    id: &'a str,
    created: String,
    last_updated: String,
    last_membership_updated: String,
    object_class: [&'static str; 1],
    #[serde(rename = "type")]
    kind: &'static str,
    profile: OrderedProfile<'a>,
    #[serde(rename = "_links")]
    links: GroupLinks,
}

#[derive(Serialize)]
struct GroupLinks {
    logo: [Logo; 2],
    users: Href,
    apps: Href,
}

#[derive(Serialize)]
struct Logo {
    name: &'static str,
    href: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// Renders a group as Okta does.
pub fn group_json(base: &str, g: &Group) -> String {
    let me = format!("{base}/api/v1/groups/{}", g.id);
    let logo_dir = if g.kind == GroupType::BuiltIn {
        "odyssey/"
    } else {
        ""
    };
    let view = GroupView {
        id: &g.id,
        created: fmt_ts(&g.created),
        last_updated: fmt_ts(&g.last_updated),
        last_membership_updated: fmt_ts(&g.last_membership_updated),
        object_class: ["okta:user_group"],
        kind: g.kind.as_str(),
        profile: OrderedProfile {
            map: &g.profile,
            first: &["name", "description"],
            last: &[],
            defaults_null: &[],
        },
        links: GroupLinks {
            logo: [
                Logo {
                    name: "medium",
                    href: format!("{base}/assets/img/logos/groups/{logo_dir}okta-medium.png"),
                    kind: "image/png",
                },
                Logo {
                    name: "large",
                    href: format!("{base}/assets/img/logos/groups/{logo_dir}okta-large.png"),
                    kind: "image/png",
                },
            ],
            users: Href {
                href: format!("{me}/users"),
                method: None,
            },
            apps: Href {
                href: format!("{me}/apps"),
                method: None,
            },
        },
    };
    to_text(&view)
}

/// Serializes a view to JSON text, keeping the struct's field order.
///
/// `serde_json::Value` would sort object keys (no `preserve_order` feature in this crate), so
/// rendered objects travel as text.
fn to_text<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".to_owned())
}

/// Joins rendered objects into a JSON array.
pub fn array(items: &[String]) -> String {
    format!("[{}]", items.join(","))
}
