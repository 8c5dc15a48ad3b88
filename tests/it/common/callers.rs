//! Callers of the security tests: API keys for a set of named callers and a policy giving
//! them roles.

use identity_gateway::auth::hash_api_key;
use identity_gateway::config::Settings;
use tonic::Request;

pub const BILLING_KEY: &str = "billing-key-5d1c0a3e9b7f4c2a8e6d0b1f3a5c7e9d";
/// Every caller of the policy tests: (key name, key).
pub const KEYS: &[(&str, &str)] = &[
    ("billing", BILLING_KEY),
    ("reader", "reader-key-0f2e4d6c8b0a1f3e5d7c9b1a3f5e7d9c"),
    ("ops", "ops-key-7a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9d1e3f"),
    ("groups", "groups-key-2b4d6f8a0c2e4a6c8e0a2c4e6a8c0e2a4c6"),
    ("team-x", "team-x-key-9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a"),
    ("nobody", "nobody-key-1f2e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b"),
    ("siem", "siem-key-4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e"),
    ("editor", "editor-key-6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f"),
];
/// Roles for the matrix; `billing` holds every RPC so the existing tests keep their access.
pub const POLICY: &str = r#"
roles:
  everything:
    rpcs: ["*"]
  auditor:
    rpcs: ["identity.v1.EventService/*"]
  reader:
    rpcs: ["identity.v1.UserService/GetUser", "identity.v1.UserService/ListUsers",
           "identity.v1.UserService/ListUserGroups", "identity.v1.GroupService/GetGroup"]
  lifecycle-admin:
    rpcs: ["identity.v1.UserService/SuspendUser", "identity.v1.UserService/UnsuspendUser"]
  profile-editor:
    rpcs: ["identity.v1.UserService/GetUser", "identity.v1.UserService/UpdateUser"]
  group-admin:
    rpcs: ["identity.v1.GroupService/AddGroupMember", "identity.v1.GroupService/RemoveGroupMember"]
  team-x:
    rpcs: ["identity.v1.GroupService/*GroupMember", "identity.v1.GroupService/GetGroup",
           "identity.v1.UserService/SuspendUser", "identity.v1.UserService/GetUser",
           "identity.v1.UserService/ListUsers"]
    groups: ["team-x-*"]
callers:
  - identity: "apikey:billing"
    roles: [everything]
  - identity: "apikey:reader"
    roles: [reader]
  - identity: "apikey:siem"
    roles: [auditor]
  - identity: "apikey:ops"
    roles: [reader, lifecycle-admin]
  - identity: "apikey:groups"
    roles: [group-admin]
  - identity: "apikey:editor"
    roles: [profile-editor]
  - identity: "apikey:team-*"
    roles: [team-x]
"#;

pub fn key(name: &str) -> &'static str {
    KEYS.iter().find(|(known, _)| *known == name).unwrap().1
}

/// Writes the keys file and the policy and points `settings` at them, with insecure mode off.
pub fn with_api_keys(settings: &mut Settings, dir: &tempfile::TempDir) {
    let keys = dir.path().join("api-keys.yaml");
    let entries: String = KEYS
        .iter()
        .map(|(name, key)| format!("- name: {name}\n  sha256: {}\n", hash_api_key(key)))
        .collect();
    std::fs::write(&keys, entries).unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    settings.auth.insecure = false;
    settings.auth.api_keys_file = Some(keys);
    settings.authz.policy_file = Some(policy);
    settings.authz.reload_interval_ms = 50;
}

/// `message` with the API key `key` attached.
pub fn keyed<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-api-key", key.parse().unwrap());
    request
}
