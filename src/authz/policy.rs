//! The authorization policy file: caller identities (exact or patterns) are given roles; roles
//! allow RPCs and may be scoped to groups by name. A policy is checked as a whole when loaded:
//! an unknown role, an RPC pattern that names no RPC or an unknown field refuses the file.
//!
//! ```yaml
//! roles:
//!   reader:
//!     rpcs: ["identity.v1.UserService/Get*", "identity.v1.GroupService/*Group*"]
//!   team-x-groups:
//!     rpcs: ["identity.v1.GroupService/AddGroupMember", "identity.v1.GroupService/RemoveGroupMember"]
//!     groups: ["team-x-*"]       # only groups named like this, and their members
//!     okta_budget_percent: 20     # fairness: this role's callers share of each Okta bucket
//!     max_in_flight: 8            # fairness: RPCs at once per caller
//! callers:
//!   - identity: "system:serviceaccount:team-x:*"
//!     roles: [team-x-groups, reader]
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::pattern::Pattern;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    roles: BTreeMap<String, RoleFile>,
    #[serde(default)]
    callers: Vec<BindingFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleFile {
    rpcs: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    okta_budget_percent: Option<u32>,
    max_in_flight: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BindingFile {
    identity: String,
    roles: Vec<String>,
}

/// A role once checked.
#[derive(Debug)]
struct Role {
    name: String,
    rpcs: Vec<Pattern>,
    groups: Vec<Pattern>,
    okta_budget_percent: Option<u32>,
    max_in_flight: Option<u32>,
}

/// A loaded, checked policy.
#[derive(Debug)]
pub struct Policy {
    roles: Vec<Role>,
    bindings: Vec<(Pattern, Vec<usize>)>,
}

/// What a policy says about one caller calling one RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; `scope` is empty when some role allows it everywhere, else the group-name
    /// patterns the call is confined to.
    Allowed {
        /// Group-name patterns the targets must fall in (empty: no restriction).
        scope: Vec<Pattern>,
    },
    /// No role the caller holds allows the RPC; `roles` are those it holds.
    Denied {
        /// The caller's roles, for the refusal message.
        roles: Vec<String>,
    },
}

/// A caller's fairness limits from its roles (the most generous of them), if any role sets one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoleShares {
    /// Share of each Okta rate-limit bucket, in percent.
    pub okta_budget_percent: Option<u32>,
    /// RPCs at once.
    pub max_in_flight: Option<u32>,
}

/// Every identity RPC's full name (`identity.v1.UserService/GetUser`), from the served
/// descriptors, so a policy can be checked against what exists.
pub fn rpc_names() -> Vec<String> {
    crate::methods::names().map(str::to_owned).collect()
}

impl Policy {
    /// Parses and checks a policy (YAML); every problem is reported, one per line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: PolicyFile =
            serde_yaml::from_str(text).map_err(|error| format!("not a policy: {error}"))?;
        let known = rpc_names();
        let mut problems = Vec::new();
        if file.callers.is_empty() {
            // An empty or cut-short file would refuse every call: never a policy anyone meant.
            problems.push(
                "the policy gives no caller a role, so it would refuse every call".to_owned(),
            );
        }
        let mut roles = Vec::new();
        for (name, role) in &file.roles {
            let mut rpcs = Vec::new();
            if role.rpcs.is_empty() {
                problems.push(format!("role `{name}` allows no RPC"));
            }
            for text in &role.rpcs {
                match Pattern::new(text) {
                    Ok(pattern) if known.iter().any(|rpc| pattern.matches(rpc)) => {
                        rpcs.push(pattern);
                    }
                    Ok(_) => problems.push(format!(
                        "role `{name}`: `{text}` names no RPC (write `identity.v1.UserService/GetUser`; `*` matches anything)"
                    )),
                    Err(error) => problems.push(format!("role `{name}`: {error}")),
                }
            }
            let mut groups = Vec::new();
            for text in &role.groups {
                match Pattern::new(text) {
                    Ok(pattern) => groups.push(pattern),
                    Err(error) => problems.push(format!("role `{name}` groups: {error}")),
                }
            }
            if role
                .okta_budget_percent
                .is_some_and(|percent| !(1..=100).contains(&percent))
            {
                problems.push(format!(
                    "role `{name}`: `okta_budget_percent` must be 1 to 100"
                ));
            }
            if role.max_in_flight == Some(0) {
                problems.push(format!("role `{name}`: `max_in_flight` must be at least 1"));
            }
            roles.push(Role {
                name: name.clone(),
                rpcs,
                groups,
                okta_budget_percent: role.okta_budget_percent,
                max_in_flight: role.max_in_flight,
            });
        }
        let mut bindings = Vec::new();
        for binding in &file.callers {
            let identity = match Pattern::new(&binding.identity) {
                Ok(pattern) => pattern,
                Err(error) => {
                    problems.push(format!("caller: {error}"));
                    continue;
                }
            };
            let mut held = Vec::new();
            for role in &binding.roles {
                match roles.iter().position(|known| known.name == *role) {
                    Some(index) => held.push(index),
                    None => problems.push(format!(
                        "caller `{}` is given role `{role}`, which the policy does not define",
                        binding.identity
                    )),
                }
            }
            bindings.push((identity, held));
        }
        if problems.is_empty() {
            Ok(Self { roles, bindings })
        } else {
            Err(problems.join("\n"))
        }
    }

    /// A policy that allows everything to everyone: insecure mode without a policy file.
    pub fn allow_all() -> Self {
        let everything = Pattern::new("*").expect("`*` is a valid pattern");
        Self {
            roles: vec![Role {
                name: "everything".to_owned(),
                rpcs: vec![everything.clone()],
                groups: Vec::new(),
                okta_budget_percent: None,
                max_in_flight: None,
            }],
            bindings: vec![(everything, vec![0])],
        }
    }

    fn held_roles<'a>(&'a self, identity: &'a str) -> impl Iterator<Item = &'a Role> + 'a {
        let mut indices: Vec<usize> = self
            .bindings
            .iter()
            .filter(|(pattern, _)| pattern.matches(identity))
            .flat_map(|(_, roles)| roles.iter().copied())
            .collect();
        indices.sort_unstable();
        indices.dedup();
        indices.into_iter().map(|index| &self.roles[index])
    }

    /// Whether `identity` may call `rpc` (`identity.v1.UserService/GetUser`), and within
    /// which groups.
    pub fn decide(&self, identity: &str, rpc: &str) -> Decision {
        let mut scope = Vec::new();
        let mut roles = Vec::new();
        for role in self.held_roles(identity) {
            roles.push(role.name.clone());
            if role.rpcs.iter().any(|pattern| pattern.matches(rpc)) {
                if role.groups.is_empty() {
                    return Decision::Allowed { scope: Vec::new() };
                }
                scope.extend(role.groups.iter().cloned());
            }
        }
        if scope.is_empty() {
            Decision::Denied { roles }
        } else {
            Decision::Allowed { scope }
        }
    }

    /// The fairness limits `identity`'s roles set: the most generous of each.
    pub fn shares(&self, identity: &str) -> RoleShares {
        self.held_roles(identity)
            .fold(RoleShares::default(), |shares, role| RoleShares {
                okta_budget_percent: shares.okta_budget_percent.max(role.okta_budget_percent),
                max_in_flight: shares.max_in_flight.max(role.max_in_flight),
            })
    }

    /// Every group-name pattern any role is scoped to (what the scope index must know).
    pub fn scoped_groups(&self) -> Vec<Pattern> {
        let mut patterns: Vec<Pattern> = Vec::new();
        for pattern in self.roles.iter().flat_map(|role| role.groups.iter()) {
            if !patterns.contains(pattern) {
                patterns.push(pattern.clone());
            }
        }
        patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
roles:
  reader:
    rpcs: ["identity.v1.UserService/Get*", "identity.v1.GroupService/GetGroup"]
  lifecycle-admin:
    rpcs: ["identity.v1.UserService/*"]
    max_in_flight: 4
  team-x-groups:
    rpcs: ["identity.v1.GroupService/AddGroupMember"]
    groups: ["team-x-*"]
    okta_budget_percent: 20
callers:
  - identity: "spiffe://cluster.local/ns/payments/*"
    roles: [reader]
  - identity: "apikey:ops"
    roles: [reader, lifecycle-admin]
  - identity: "system:serviceaccount:team-x:*"
    roles: [team-x-groups]
"#;

    #[test]
    fn roles_allow_their_rpcs_and_scopes_travel_with_the_decision() {
        let policy = Policy::parse(POLICY).unwrap();
        let reader = "spiffe://cluster.local/ns/payments/sa/billing";
        assert_eq!(
            policy.decide(reader, "identity.v1.UserService/GetUser"),
            Decision::Allowed { scope: vec![] }
        );
        assert_eq!(
            policy.decide(reader, "identity.v1.UserService/DeleteUser"),
            Decision::Denied {
                roles: vec!["reader".to_owned()]
            }
        );
        assert!(matches!(
            policy.decide("apikey:ops", "identity.v1.UserService/DeleteUser"),
            Decision::Allowed { scope } if scope.is_empty()
        ));
        let team = "system:serviceaccount:team-x:bot";
        match policy.decide(team, "identity.v1.GroupService/AddGroupMember") {
            Decision::Allowed { scope } => assert_eq!(scope[0].to_string(), "team-x-*"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            policy.decide("apikey:stranger", "identity.v1.UserService/GetUser"),
            Decision::Denied { roles: vec![] }
        );
        assert_eq!(policy.shares(team).okta_budget_percent, Some(20));
        assert_eq!(policy.shares("apikey:ops").max_in_flight, Some(4));
        assert_eq!(policy.shares(reader), RoleShares::default());
    }

    #[test]
    fn a_bad_policy_is_refused_with_every_problem() {
        let problems = Policy::parse(
            r#"
roles:
  typo:
    rpcs: ["identity.v1.UserService/GetUsr"]
    okta_budget_percent: 0
callers:
  - identity: "apikey:a"
    roles: [missing]
"#,
        )
        .unwrap_err();
        assert!(problems.contains("names no RPC"), "{problems}");
        assert!(problems.contains("okta_budget_percent"), "{problems}");
        assert!(problems.contains("`missing`"), "{problems}");
        assert!(Policy::parse("roles: {r: {rpcs: ['*'], colour: red}}").is_err());
        assert!(Policy::parse("- not a map").is_err());
    }

    #[test]
    fn an_empty_policy_is_refused() {
        for text in [
            "",
            "\n",
            "# nothing yet\n",
            "roles: {r: {rpcs: ['*']}}",
            "callers: []",
        ] {
            let problems = Policy::parse(text).unwrap_err();
            assert!(
                problems.contains("no caller") || problems.starts_with("not a policy"),
                "{text:?}: {problems}"
            );
        }
    }

    #[test]
    fn every_rpc_is_known() {
        let names = rpc_names();
        assert!(names.contains(&"identity.v1.UserService/GetUser".to_owned()));
        assert!(names.contains(&"identity.v1.EventService/WatchEvents".to_owned()));
    }
}
