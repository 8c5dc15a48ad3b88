//! Read coalescing: identical concurrent reads share one Okta call. The first caller's call runs;
//! callers asking the same thing while it is in flight wait for its answer instead of spending
//! Okta's rate limit again. Nothing is cached: once the call completes, the next caller asks Okta.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tonic::Status;

type InFlight<V> = Shared<BoxFuture<'static, Result<V, Status>>>;

/// In-flight reads by key; clones share the same table.
pub struct Coalescer<V> {
    in_flight: Arc<Mutex<HashMap<String, InFlight<V>>>>,
}

impl<V> Clone for Coalescer<V> {
    fn clone(&self) -> Self {
        Self {
            in_flight: self.in_flight.clone(),
        }
    }
}

impl<V> Default for Coalescer<V> {
    fn default() -> Self {
        Self {
            in_flight: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl<V> Coalescer<V> {
    /// Detaches the in-flight read of `key`, so the next caller asks Okta afresh: called after
    /// the gateway's own writes, so nobody reads their own write from a read that began before it.
    pub fn forget(&self, key: &str) {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

/// The coalesced reads of the gateway, shared by the services whose writes invalidate them.
#[derive(Clone, Default)]
pub struct CoalescedReads {
    /// GetUser by id, keyed by user id.
    pub users: Coalescer<crate::proto::User>,
    /// ListUserGroups, keyed by user id.
    pub user_groups: Coalescer<Vec<crate::proto::Group>>,
    /// GetGroup, keyed by group id.
    pub groups: Coalescer<crate::proto::Group>,
}

impl CoalescedReads {
    /// Forgets every in-flight read about `user_id` after a write to that user.
    pub fn user_changed(&self, user_id: &str) {
        self.users.forget(user_id);
        self.user_groups.forget(user_id);
    }
}

impl<V: Clone + Send + Sync + 'static> Coalescer<V> {
    /// Answers `key` with the in-flight read of the same key, or starts `read`. The read keeps
    /// running while any caller still waits for it, even if the one that started it went away.
    pub async fn read<F>(&self, key: String, read: impl FnOnce() -> F) -> Result<V, Status>
    where
        F: Future<Output = Result<V, Status>> + Send + 'static,
    {
        let shared = {
            let mut in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match in_flight.get(&key) {
                Some(existing) => existing.clone(),
                None => {
                    let started = read().boxed().shared();
                    in_flight.insert(key.clone(), started.clone());
                    started
                }
            }
        };
        let answer = shared.clone().await;
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if in_flight
            .get(&key)
            .is_some_and(|current| current.ptr_eq(&shared))
        {
            in_flight.remove(&key);
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_identical_reads_run_once_and_later_reads_run_again() {
        let coalescer: Coalescer<usize> = Coalescer::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let read = |calls: Arc<AtomicUsize>, mut released: tokio::sync::watch::Receiver<bool>| {
            move || async move {
                let _ = released.wait_for(|go| *go).await;
                Ok(calls.fetch_add(1, Ordering::SeqCst))
            }
        };
        let waiters: Vec<_> = (0..10)
            .map(|_| {
                let coalescer = coalescer.clone();
                let read = read(calls.clone(), released.clone());
                tokio::spawn(async move { coalescer.read("user/1".to_owned(), read).await })
            })
            .collect();
        tokio::task::yield_now().await;
        release.send(true).unwrap();
        for waiter in waiters {
            assert_eq!(
                waiter.await.unwrap().unwrap(),
                0,
                "every caller got the one answer"
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let again = coalescer
            .read("user/1".to_owned(), read(calls.clone(), released))
            .await;
        assert_eq!(
            again.unwrap(),
            1,
            "nothing is cached after the read completed"
        );
    }
}
