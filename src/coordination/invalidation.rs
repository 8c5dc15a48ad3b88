//! Coherent caches across replicas: a write through one replica tells the others, over the
//! server's publish/subscribe, which of their shared reads, cached answers and group-scope
//! entries it made stale, so a caller reads its own write on whichever replica it lands.
//!
//! A replica publishes before it answers the write; the others apply the message as it
//! arrives. Messages are not kept by the server, so a replica that was cut off from it treats
//! everything as stale when it subscribes again.

use std::time::Duration;

use futures::StreamExt;

use super::{Coordination, KEY_PREFIX};

/// What one write made stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// One user's profile, status or password changed.
    User(String),
    /// A member was added to or removed from the group.
    Membership(String),
    /// A user was created or deleted: memberships the gateway cannot name changed.
    Everything,
    /// The group-scope index learns that the user is now (or no longer) in the group.
    ScopeMembership {
        /// The group.
        group_id: String,
        /// The user.
        user_id: String,
        /// In the group now, rather than out of it.
        added: bool,
    },
}

impl Invalidation {
    /// The message's text: Okta ids never hold a space.
    fn encode(&self) -> String {
        match self {
            Self::User(id) => format!("user {id}"),
            Self::Membership(id) => format!("membership {id}"),
            Self::Everything => "everything".to_owned(),
            Self::ScopeMembership {
                group_id,
                user_id,
                added,
            } => format!(
                "scope {group_id} {user_id} {}",
                if *added { "added" } else { "removed" }
            ),
        }
    }

    fn decode(text: &str) -> Option<Self> {
        let words: Vec<&str> = text.split(' ').collect();
        Some(match words.as_slice() {
            ["user", id] => Self::User((*id).to_owned()),
            ["membership", id] => Self::Membership((*id).to_owned()),
            ["everything"] => Self::Everything,
            ["scope", group_id, user_id, change @ ("added" | "removed")] => Self::ScopeMembership {
                group_id: (*group_id).to_owned(),
                user_id: (*user_id).to_owned(),
                added: *change == "added",
            },
            _ => return None,
        })
    }
}

/// The channel every replica publishes its invalidations on and listens to.
fn channel() -> String {
    format!("{KEY_PREFIX}invalidations")
}

/// Longest pause between attempts to subscribe again after the server went away.
const LONGEST_RESUBSCRIBE_PAUSE: Duration = Duration::from_secs(5);

/// Tells the other replicas what this one's writes made stale; a no-op without a server.
#[derive(Clone, Debug, Default)]
pub struct Invalidations {
    shared: Option<(Coordination, String)>,
}

impl Invalidations {
    /// Invalidations through `coordination`'s server, when there is one.
    pub fn new(coordination: Option<Coordination>) -> Self {
        let replica = format!("{:016x}", rand::random::<u64>());
        Self {
            shared: coordination.map(|coordination| (coordination, replica)),
        }
    }

    /// Tells the other replicas; a server that cannot be reached is noted (the replica is
    /// degraded) and the write's answer is not held up further.
    pub async fn publish(&self, invalidation: &Invalidation) {
        let Some((coordination, replica)) = &self.shared else {
            return;
        };
        let message = format!("{replica} {}", invalidation.encode());
        let _ = coordination
            .run::<i64>(redis::cmd("PUBLISH").arg(channel()).arg(message))
            .await;
    }

    /// Applies every other replica's invalidations with `apply`, for as long as the process
    /// runs, subscribing again whenever the server comes back; after a gap, `apply` gets
    /// [`Invalidation::Everything`], since messages sent meanwhile are lost.
    pub fn listen(&self, apply: impl Fn(Invalidation) + Send + Sync + 'static) {
        let Some((coordination, replica)) = self.shared.clone() else {
            return;
        };
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(100);
            let mut subscribed_before = false;
            loop {
                let Ok(pubsub) = coordination.subscribe(&channel()).await else {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LONGEST_RESUBSCRIBE_PAUSE);
                    continue;
                };
                pause = Duration::from_millis(100);
                if subscribed_before {
                    apply(Invalidation::Everything);
                }
                subscribed_before = true;
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    let Ok(text) = message.get_payload::<String>() else {
                        continue;
                    };
                    let Some((sender, body)) = text.split_once(' ') else {
                        continue;
                    };
                    if sender == replica {
                        continue;
                    }
                    match Invalidation::decode(body) {
                        Some(invalidation) => apply(invalidation),
                        None => tracing::warn!("an invalidation message this replica cannot read"),
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalidation_reads_back_as_it_was_written() {
        for invalidation in [
            Invalidation::User("00u1".to_owned()),
            Invalidation::Membership("00g1".to_owned()),
            Invalidation::Everything,
            Invalidation::ScopeMembership {
                group_id: "00g1".to_owned(),
                user_id: "00u1".to_owned(),
                added: true,
            },
            Invalidation::ScopeMembership {
                group_id: "00g2".to_owned(),
                user_id: "00u2".to_owned(),
                added: false,
            },
        ] {
            assert_eq!(
                Invalidation::decode(&invalidation.encode()),
                Some(invalidation)
            );
        }
        assert_eq!(Invalidation::decode("scope 00g1 00u1 maybe"), None);
        assert_eq!(Invalidation::decode("user"), None);
    }
}
