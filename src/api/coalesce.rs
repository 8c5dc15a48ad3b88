//! Read coalescing: identical concurrent reads share one Okta call. The first caller's call runs;
//! callers asking the same thing while it is in flight wait for its answer instead of spending
//! Okta's rate limit again. Nothing is kept here: once the call completes, the next caller asks
//! Okta (or, when it is on, the group-discovery cache in [`super::discovery_cache`]).

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

/// Which keys a write makes stale.
#[derive(Clone, Copy, Debug)]
pub enum Stale<'a> {
    /// One key.
    Key(&'a str),
    /// Every key starting with this text: all the pages of one group's members, say.
    Prefix(&'a str),
    /// Every key.
    All,
}

impl Stale<'_> {
    /// Whether `key` is among the stale keys.
    pub fn covers(self, key: &str) -> bool {
        match self {
            Self::Key(stale) => key == stale,
            Self::Prefix(prefix) => key.starts_with(prefix),
            Self::All => true,
        }
    }
}

impl<V> Coalescer<V> {
    /// Detaches the in-flight reads of the `stale` keys, so the next caller asks Okta afresh:
    /// called after the gateway's own writes, so nobody reads their own write from a read that
    /// began before it.
    pub fn forget(&self, stale: Stale<'_>) {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|key, _| !stale.covers(key));
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

    #[tokio::test]
    async fn a_read_begun_before_a_write_is_not_joined_by_callers_after_it() {
        let coalescer: Coalescer<&'static str> = Coalescer::default();
        let (release, released) = tokio::sync::watch::channel(false);
        let before_write = {
            let coalescer = coalescer.clone();
            tokio::spawn(async move {
                coalescer
                    .read("user/1".to_owned(), move || async move {
                        let _ = released.clone().wait_for(|go| *go).await;
                        Ok("before")
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        coalescer.forget(Stale::Key("user/1"));
        let after_write = coalescer
            .read("user/1".to_owned(), || async { Ok("after") })
            .await;
        assert_eq!(after_write.unwrap(), "after");
        release.send(true).unwrap();
        assert_eq!(before_write.await.unwrap().unwrap(), "before");
    }
}
