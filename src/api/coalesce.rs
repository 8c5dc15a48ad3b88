//! Read coalescing: identical concurrent reads share one Okta call, on moka's single flight.
//! `try_get_with` runs one read per key while the other callers of that key wait for its answer;
//! a failure is handed to those waiting callers too, and never kept. Whether an answer is kept
//! afterwards is the store's business: [`coalescing_store`] keeps nothing, the group-discovery
//! cache ([`super::discovery_cache`]) keeps answers for its TTL. If the caller running a read
//! goes away (its RPC was cancelled), one of the callers still waiting runs the read again.
//!
//! A write cannot take back an answer already on its way, so the gateway's writes change keys
//! instead: every key carries the generation of its scope (the user or group it is about), and a
//! write advances the generations of the scopes it makes stale. A read begun before the write
//! keeps its old key: the callers already waiting get its answer, but nobody who arrives after
//! the write joins it or finds it kept. Generations sit in a fixed number of slots per kind of
//! read, so a write can also make a few unrelated scopes miss once; it never misses its own.

use std::any::{Any, TypeId};
use std::future::Future;
use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use foldhash::fast::RandomState;
use moka::future::Cache;
use tonic::Status;

use crate::status;

/// Generation slots per kind of read: a write to one scope makes about 1/`SCOPE_SLOTS` of the
/// other scopes' answers miss once, in exchange for a fixed size.
const SCOPE_SLOTS: usize = 1024;

/// Where shared reads meet: moka's single flight, and the answers the store keeps (if any).
/// Hashed with foldhash rather than SipHash: every read hashes its key, and the keys are ids the
/// gateway validated, hashed under a seed of the process's own.
pub type Store = Cache<ReadKey, Answer, RandomState>;

/// A store that keeps nothing (capacity zero disables moka's map, not its single flight):
/// callers share a read only while it is in flight.
pub fn coalescing_store() -> Store {
    Cache::builder()
        .max_capacity(0)
        .build_with_hasher(RandomState::default())
}

/// What identifies one shared read: the type of its answer (one per kind of read), the key the
/// service gives it, and the generations current when the caller arrived.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReadKey {
    answer_type: TypeId,
    key: String,
    generations: [u64; 2],
}

/// One read's answer as the store holds it, with what a bounded store needs to know.
#[derive(Clone)]
pub struct Answer {
    value: Arc<dyn Any + Send + Sync>,
    weight: u32,
    sent_at: Instant,
}

impl Answer {
    /// Groups or users held, at least one: what the group-discovery cache's bound counts.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// When the read's Okta call was about to be sent: an answer's age counts from here.
    pub fn sent_at(&self) -> Instant {
        self.sent_at
    }
}

/// What the group-discovery cache's bound counts: the groups or users an answer holds.
pub trait Weighed {
    /// Groups or users held (the cache counts an empty answer as one).
    fn weight(&self) -> usize;
}

impl Weighed for crate::proto::Group {
    fn weight(&self) -> usize {
        1
    }
}

impl Weighed for crate::proto::User {
    fn weight(&self) -> usize {
        1
    }
}

impl<T> Weighed for Vec<T> {
    fn weight(&self) -> usize {
        self.len()
    }
}

/// Which reads a write makes stale.
#[derive(Clone, Copy, Debug)]
pub enum Stale<'a> {
    /// The reads about one user or group: keys that are its id, or start with its id and `/`
    /// (all the pages of one group's members, say).
    Of(&'a str),
    /// Every read of the kind.
    All,
}

/// The generations of one kind of read: one for the whole kind, and the scopes' slots.
struct Generations {
    all: AtomicU64,
    scopes: Box<[AtomicU64]>,
    slot_hasher: RandomState,
}

impl Generations {
    fn new() -> Self {
        Self {
            all: AtomicU64::new(0),
            scopes: (0..SCOPE_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            slot_hasher: RandomState::default(),
        }
    }

    fn slot(&self, scope: &str) -> &AtomicU64 {
        let slot = self.slot_hasher.hash_one(scope) as usize % SCOPE_SLOTS;
        &self.scopes[slot]
    }

    /// The generations a read of `key` starts with; its scope is the text before the first `/`.
    fn of(&self, key: &str) -> [u64; 2] {
        let scope = key.split_once('/').map_or(key, |(scope, _)| scope);
        [
            self.all.load(Ordering::SeqCst),
            self.slot(scope).load(Ordering::SeqCst),
        ]
    }

    fn advance(&self, stale: Stale<'_>) {
        let generation = match stale {
            Stale::Of(scope) => self.slot(scope),
            Stale::All => &self.all,
        };
        generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// One kind of read, shared between callers through a store; clones share the generations.
pub struct SharedReads<V> {
    store: Store,
    generations: Arc<Generations>,
    answers: PhantomData<fn() -> V>,
}

impl<V> Clone for SharedReads<V> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            generations: self.generations.clone(),
            answers: PhantomData,
        }
    }
}

impl<V: Weighed + Clone + Send + Sync + 'static> SharedReads<V> {
    /// The reads answering `V` (a type no other kind of read sharing `store` answers).
    pub fn new(store: Store) -> Self {
        Self {
            store,
            generations: Arc::new(Generations::new()),
            answers: PhantomData,
        }
    }

    /// Answers `key` from the store, or from the in-flight read of the same key, or by running
    /// `read` (whose answer the store then keeps, if it keeps answers).
    pub async fn read<F>(&self, key: String, read: impl FnOnce() -> F) -> Result<V, Status>
    where
        F: Future<Output = Result<V, Status>>,
    {
        let generations = self.generations.of(&key);
        let read_key = ReadKey {
            answer_type: TypeId::of::<V>(),
            key,
            generations,
        };
        let answer = self
            .store
            .try_get_with(read_key, async move {
                let sent_at = Instant::now();
                // Boxed: the Okta call's future is large, and every future that holds it inline
                // (this one, moka's, the handler's) is copied whole each time it moves.
                let value = Box::pin(read()).await?;
                let weight = u32::try_from(value.weight().max(1)).unwrap_or(u32::MAX);
                Ok::<_, Status>(Answer {
                    value: Arc::new(value),
                    weight,
                    sent_at,
                })
            })
            .await
            .map_err(|shared| Status::clone(&shared))?;
        // The key holds the answer's type, so only a `V` is ever found under it.
        answer
            .value
            .downcast_ref::<V>()
            .cloned()
            .ok_or_else(|| status::internal("a shared read answered with another type"))
    }

    /// Makes the `stale` reads, in flight and kept, unreachable to every later caller: called
    /// after the gateway's own writes, so nobody reads their own write's past.
    pub fn forget(&self, stale: Stale<'_>) {
        self.generations.advance(stale);
    }

    /// Applies the store's pending evictions now (moka applies them shortly after by itself),
    /// so tests see the bound settled.
    #[cfg(test)]
    pub async fn settle(&self) {
        self.store.run_pending_tasks().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A read that waits for `released`, then answers how many reads ran before it.
    fn counted_read(
        calls: &Arc<AtomicUsize>,
        released: &tokio::sync::watch::Receiver<bool>,
    ) -> impl FnOnce() -> futures::future::BoxFuture<'static, Result<Vec<usize>, Status>> + use<>
    {
        let (calls, mut released) = (calls.clone(), released.clone());
        move || {
            Box::pin(async move {
                let _ = released.wait_for(|go| *go).await;
                Ok(vec![calls.fetch_add(1, Ordering::SeqCst)])
            })
        }
    }

    #[tokio::test]
    async fn concurrent_identical_reads_run_once_and_later_reads_run_again() {
        let reads: SharedReads<Vec<usize>> = SharedReads::new(coalescing_store());
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let waiters: Vec<_> = (0..10)
            .map(|_| {
                let reads = reads.clone();
                let read = counted_read(&calls, &released);
                tokio::spawn(async move { reads.read("user/1".to_owned(), read).await })
            })
            .collect();
        tokio::task::yield_now().await;
        release.send(true).unwrap();
        for waiter in waiters {
            assert_eq!(
                waiter.await.unwrap().unwrap(),
                vec![0],
                "every caller got the one answer"
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let again = reads
            .read("user/1".to_owned(), counted_read(&calls, &released))
            .await;
        assert_eq!(
            again.unwrap(),
            vec![1],
            "nothing is kept after the read completed"
        );
    }

    #[tokio::test]
    async fn a_read_begun_before_a_write_is_not_joined_by_callers_after_it() {
        let reads: SharedReads<Vec<&'static str>> = SharedReads::new(coalescing_store());
        let (release, released) = tokio::sync::watch::channel(false);
        let before_write = {
            let reads = reads.clone();
            tokio::spawn(async move {
                reads
                    .read("00u1".to_owned(), move || async move {
                        let _ = released.clone().wait_for(|go| *go).await;
                        Ok(vec!["before"])
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        reads.forget(Stale::Of("00u1"));
        let after_write = {
            let reads = reads.clone();
            tokio::spawn(async move {
                reads
                    .read("00u1".to_owned(), || async { Ok(vec!["after"]) })
                    .await
            })
        };
        tokio::task::yield_now().await;
        release.send(true).unwrap();
        assert_eq!(after_write.await.unwrap().unwrap(), vec!["after"]);
        assert_eq!(before_write.await.unwrap().unwrap(), vec!["before"]);
    }

    #[tokio::test]
    async fn a_failure_reaches_the_callers_waiting_for_it_and_the_next_caller_reads_again() {
        let reads: SharedReads<Vec<usize>> = SharedReads::new(coalescing_store());
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let failing = |calls: Arc<AtomicUsize>,
                       mut released: tokio::sync::watch::Receiver<bool>| {
            move || async move {
                let _ = released.wait_for(|go| *go).await;
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<Vec<usize>, _>(Status::unavailable("okta is down"))
            }
        };
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let reads = reads.clone();
                let read = failing(calls.clone(), released.clone());
                tokio::spawn(async move { reads.read("k".to_owned(), read).await })
            })
            .collect();
        tokio::task::yield_now().await;
        release.send(true).unwrap();
        for waiter in waiters {
            let status = waiter.await.unwrap().unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unavailable);
            assert_eq!(status.message(), "okta is down");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one read failed for all");
        let after = reads
            .read("k".to_owned(), counted_read(&calls, &released))
            .await;
        assert_eq!(after.unwrap(), vec![1], "the failure was not kept");
    }

    #[tokio::test]
    async fn a_waiting_caller_is_answered_when_the_caller_running_the_read_goes_away() {
        let reads: SharedReads<Vec<usize>> = SharedReads::new(coalescing_store());
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let running = {
            let (reads, read) = (reads.clone(), counted_read(&calls, &released));
            tokio::spawn(async move { reads.read("k".to_owned(), read).await })
        };
        tokio::task::yield_now().await;
        let waiting = {
            let (reads, read) = (reads.clone(), counted_read(&calls, &released));
            tokio::spawn(async move { reads.read("k".to_owned(), read).await })
        };
        tokio::task::yield_now().await;
        running.abort();
        assert!(running.await.unwrap_err().is_cancelled());
        release.send(true).unwrap();
        assert_eq!(
            waiting.await.unwrap().unwrap(),
            vec![0],
            "the waiting caller ran the read itself"
        );
    }
}
