//! What each identity RPC does, as its proto declares it: whether it changes Okta, whether it
//! may be repeated, whether it streams. Read-only mode, the audit log, fairness and retry
//! decisions all ask here, so a new RPC is classified where it is defined (its
//! `option idempotency_level`) and not in a list kept by hand. An RPC that declares nothing
//! counts as a change that must not be repeated: forgetting the option fails closed.

use std::collections::HashMap;
use std::sync::LazyLock;

use foldhash::fast::RandomState;
use prost::Message;
use prost_types::FileDescriptorSet;
use prost_types::method_options::IdempotencyLevel;

use crate::auth::INFRASTRUCTURE_PATHS;

/// What repeating an RPC does to Okta.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Changes nothing (`NO_SIDE_EFFECTS`).
    Read,
    /// Changes Okta; repeating it leaves Okta as one call did (`IDEMPOTENT`).
    IdempotentWrite,
    /// Changes Okta and may not be repeated blindly (`IDEMPOTENCY_UNKNOWN`, or no option).
    Write,
}

/// One RPC's declared traits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodTraits {
    /// What the RPC does to Okta.
    pub effect: Effect,
    /// Whether the answer is a stream (it holds a stream slot while open).
    pub server_streaming: bool,
}

impl MethodTraits {
    /// Unknown paths and undeclared RPCs: treated as the most dangerous kind.
    const UNDECLARED: Self = Self {
        effect: Effect::Write,
        server_streaming: false,
    };

    /// Whether the RPC may change Okta: read-only mode refuses it, the audit log records it.
    pub fn changes_okta(self) -> bool {
        self.effect != Effect::Read
    }

    /// Whether sending the RPC again after an unknown outcome can do no harm.
    pub fn safe_to_retry(self) -> bool {
        self.effect != Effect::Write
    }
}

/// The traits of the RPC at `path` (`/identity.v1.UserService/GetUser`). Health and reflection
/// read only the server's own state; any other path the descriptors do not know counts as a
/// change.
pub fn of(path: &str) -> MethodTraits {
    if let Some(traits) = DECLARED.get(path) {
        return *traits;
    }
    if INFRASTRUCTURE_PATHS
        .iter()
        .any(|prefix| path.starts_with(prefix))
    {
        return MethodTraits {
            effect: Effect::Read,
            server_streaming: false,
        };
    }
    MethodTraits::UNDECLARED
}

/// Every identity RPC's full name (`identity.v1.UserService/GetUser`).
pub fn names() -> impl Iterator<Item = &'static str> {
    let mut names: Vec<&'static str> = DECLARED
        .keys()
        .map(|path| path.trim_start_matches('/'))
        .collect();
    names.sort_unstable();
    names.into_iter()
}

/// The identity RPCs by path, from the descriptor set the build compiled. Hashed (foldhash), not
/// ordered: several layers look the path up on every RPC, and the paths share a long prefix that
/// an ordered map compares again at every level.
static DECLARED: LazyLock<Declared> = LazyLock::new(|| {
    FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
        .map(|set| declared_in(&set))
        .unwrap_or_default()
});

/// RPC paths and their traits.
type Declared = HashMap<String, MethodTraits, RandomState>;

/// The RPCs a descriptor set declares, with their traits.
fn declared_in(set: &FileDescriptorSet) -> Declared {
    let mut declared = Declared::default();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                let level = method
                    .options
                    .as_ref()
                    .and_then(|options| options.idempotency_level)
                    .and_then(|level| IdempotencyLevel::try_from(level).ok());
                let effect = match level {
                    Some(IdempotencyLevel::NoSideEffects) => Effect::Read,
                    Some(IdempotencyLevel::Idempotent) => Effect::IdempotentWrite,
                    Some(IdempotencyLevel::IdempotencyUnknown) | None => Effect::Write,
                };
                let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                let traits = MethodTraits {
                    effect,
                    server_streaming: method.server_streaming(),
                };
                declared.insert(path, traits);
            }
        }
    }
    declared
}

#[cfg(test)]
mod tests {
    use prost_types::{
        FileDescriptorProto, MethodDescriptorProto, MethodOptions, ServiceDescriptorProto,
    };

    use super::*;

    #[test]
    fn every_rpc_declares_its_idempotency_level() {
        let set = FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut methods = 0;
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    methods += 1;
                    let declared = method
                        .options
                        .as_ref()
                        .and_then(|options| options.idempotency_level);
                    assert!(
                        declared.is_some(),
                        "{}.{}/{} has no `option idempotency_level`",
                        file.package(),
                        service.name(),
                        method.name()
                    );
                }
            }
        }
        assert_eq!(methods, names().count());
    }

    #[test]
    fn a_method_without_the_option_counts_as_a_write_that_must_not_be_repeated() {
        let method = |name: &str, level: Option<IdempotencyLevel>| MethodDescriptorProto {
            name: Some(name.to_owned()),
            options: level.map(|level| MethodOptions {
                idempotency_level: Some(level as i32),
                ..MethodOptions::default()
            }),
            ..MethodDescriptorProto::default()
        };
        let set = FileDescriptorSet {
            file: vec![FileDescriptorProto {
                package: Some("test.v1".to_owned()),
                service: vec![ServiceDescriptorProto {
                    name: Some("Things".to_owned()),
                    method: vec![
                        method("Forgotten", None),
                        method("Get", Some(IdempotencyLevel::NoSideEffects)),
                        method("Put", Some(IdempotencyLevel::Idempotent)),
                        method("Create", Some(IdempotencyLevel::IdempotencyUnknown)),
                    ],
                    ..ServiceDescriptorProto::default()
                }],
                ..FileDescriptorProto::default()
            }],
        };
        let declared = declared_in(&set);
        let effect = |name: &str| declared[&format!("/test.v1.Things/{name}")].effect;
        assert_eq!(effect("Forgotten"), Effect::Write);
        assert_eq!(effect("Get"), Effect::Read);
        assert_eq!(effect("Put"), Effect::IdempotentWrite);
        assert_eq!(effect("Create"), Effect::Write);
    }

    #[test]
    fn the_gateways_rpcs_are_classified_from_their_declarations() {
        let get = of("/identity.v1.UserService/GetUser");
        assert!(!get.changes_okta() && get.safe_to_retry() && !get.server_streaming);
        let suspend = of("/identity.v1.UserService/SuspendUser");
        assert!(suspend.changes_okta() && suspend.safe_to_retry());
        let create = of("/identity.v1.UserService/CreateUser");
        assert!(create.changes_okta() && !create.safe_to_retry());
        assert!(of("/identity.v1.EventService/WatchEvents").server_streaming);
        assert!(of("/identity.v1.GroupService/StreamGroupMembers").server_streaming);
        assert!(!of("/grpc.health.v1.Health/Check").changes_okta());
        assert!(of("/identity.v1.UserService/NoSuchRpc").changes_okta());
    }
}
