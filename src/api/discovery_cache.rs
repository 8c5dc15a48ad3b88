//! The optional group-discovery cache (`cache.group_discovery_ttl_ms`, off by default): answers
//! to group-discovery reads are kept for at most the TTL, so callers that ask the same thing over
//! and over (an authorization check reading a user's groups on every request) stop spending
//! Okta's rate limit. The gateway's own writes forget what they affect (the rules are in
//! [`super::reads`]); changes made elsewhere (the Admin Console, other API clients, group rules)
//! show once the entry is older than the TTL, which is therefore the staleness bound.
//!
//! An entry's age counts from the moment its Okta call was about to be sent, so nothing served
//! is older than the TTL. Memory is bounded by `cache.group_discovery_max_objects`: every group
//! or user held counts one, and the oldest entries are evicted first.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tonic::Status;

use super::coalesce::{Coalescer, Stale};

/// What the cache's bound counts: the groups or users an answer holds.
pub trait Weighed {
    /// Groups or users held (the cache counts an empty answer as one).
    fn weight(&self) -> usize;
}

impl Weighed for crate::proto::Group {
    fn weight(&self) -> usize {
        1
    }
}

impl<T> Weighed for Vec<T> {
    fn weight(&self) -> usize {
        self.len()
    }
}

/// Cached answers of every kind of group-discovery read, sharing one bound; clones share it.
#[derive(Clone)]
pub struct DiscoveryCache {
    ttl: Duration,
    max_objects: usize,
    table: Arc<Mutex<Table>>,
}

/// Where an entry sits in eviction order: oldest read first, then insertion.
type Age = (Instant, u64);

#[derive(Default)]
struct Table {
    /// Entries by kind of read, then key.
    entries: HashMap<&'static str, HashMap<String, Entry>>,
    /// The same entries, oldest first.
    by_age: BTreeMap<Age, (&'static str, String)>,
    /// Sum of the entries' weights.
    weight: usize,
    /// Insertions so far, to order entries read at the same instant.
    insertions: u64,
    /// Forgets so far: a read that overlapped one is answered but never kept.
    forgets: u64,
}

struct Entry {
    age: Age,
    weight: usize,
    value: Box<dyn Any + Send + Sync>,
}

/// Taken before a read's Okta call is sent: when, and the forgets seen by then.
struct ReadStart {
    at: Instant,
    forgets: u64,
}

impl DiscoveryCache {
    /// A cache serving entries younger than `ttl` and holding at most `max_objects` groups
    /// and users.
    pub fn new(ttl: Duration, max_objects: usize) -> Self {
        Self {
            ttl,
            max_objects,
            table: Arc::new(Mutex::new(Table::default())),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_start(&self) -> ReadStart {
        ReadStart {
            at: Instant::now(),
            forgets: self.table().forgets,
        }
    }

    fn get<V: Clone + 'static>(&self, kind: &'static str, key: &str) -> Option<V> {
        let table = self.table();
        let entry = table.entries.get(kind)?.get(key)?;
        if entry.age.0.elapsed() >= self.ttl {
            return None; // never served; a later insertion evicts it
        }
        entry.value.downcast_ref::<V>().cloned()
    }

    /// Keeps `value` in place of any older answer for `key`, unless the cache forgot anything
    /// since `start` (the answer may predate that write) or the answer is already too old or too
    /// big to keep.
    fn put<V: Weighed + Send + Sync + 'static>(
        &self,
        kind: &'static str,
        key: String,
        start: &ReadStart,
        value: V,
    ) {
        let weight = value.weight().max(1);
        let mut table = self.table();
        table.remove(kind, &key);
        if table.forgets != start.forgets
            || start.at.elapsed() >= self.ttl
            || weight > self.max_objects
        {
            return;
        }
        while let Some((&(read_at, _), _)) = table.by_age.first_key_value() {
            if read_at.elapsed() < self.ttl && table.weight + weight <= self.max_objects {
                break;
            }
            if let Some((_, (old_kind, old_key))) = table.by_age.pop_first() {
                table.remove(old_kind, &old_key);
            }
        }
        table.insertions += 1;
        let age = (start.at, table.insertions);
        table.weight += weight;
        table.by_age.insert(age, (kind, key.clone()));
        table.entries.entry(kind).or_default().insert(
            key,
            Entry {
                age,
                weight,
                value: Box::new(value),
            },
        );
    }

    fn forget(&self, kind: &'static str, stale: Stale<'_>) {
        let mut table = self.table();
        table.forgets += 1;
        let Table {
            entries,
            by_age,
            weight,
            ..
        } = &mut *table;
        if let Some(of_kind) = entries.get_mut(kind) {
            of_kind.retain(|key, entry| {
                let keep = !stale.covers(key);
                if !keep {
                    by_age.remove(&entry.age);
                    *weight -= entry.weight;
                }
                keep
            });
        }
    }
}

impl Table {
    fn remove(&mut self, kind: &'static str, key: &str) {
        if let Some(entry) = self
            .entries
            .get_mut(kind)
            .and_then(|of_kind| of_kind.remove(key))
        {
            self.by_age.remove(&entry.age);
            self.weight -= entry.weight;
        }
    }
}

/// One kind of group-discovery read: coalesced always, and cached when the cache is on.
pub struct CachedReads<V> {
    kind: &'static str,
    coalescer: Coalescer<V>,
    cache_opt: Option<DiscoveryCache>,
}

impl<V> Clone for CachedReads<V> {
    fn clone(&self) -> Self {
        Self {
            kind: self.kind,
            coalescer: self.coalescer.clone(),
            cache_opt: self.cache_opt.clone(),
        }
    }
}

impl<V: Weighed + Clone + Send + Sync + 'static> CachedReads<V> {
    /// The reads of one `kind` (a name unique among the kinds sharing `cache_opt`).
    pub fn new(kind: &'static str, cache_opt: Option<DiscoveryCache>) -> Self {
        Self {
            kind,
            coalescer: Coalescer::default(),
            cache_opt,
        }
    }

    /// Answers `key` from the cache, or from the in-flight read of the same key, or by starting
    /// `read` (whose answer the cache then keeps).
    pub async fn read<F>(&self, key: String, read: impl FnOnce() -> F) -> Result<V, Status>
    where
        F: Future<Output = Result<V, Status>> + Send + 'static,
    {
        let Some(cache) = &self.cache_opt else {
            return self.coalescer.read(key, read).await;
        };
        if let Some(hit) = cache.get(self.kind, &key) {
            return Ok(hit);
        }
        let (cache, kind, cache_key) = (cache.clone(), self.kind, key.clone());
        self.coalescer
            .read(key, move || {
                let start = cache.read_start();
                let answer = read();
                async move {
                    let value = answer.await?;
                    cache.put(kind, cache_key, &start, value.clone());
                    Ok(value)
                }
            })
            .await
    }

    /// Forgets the `stale` keys, in flight and cached: called after the gateway's own writes.
    pub fn forget(&self, stale: Stale<'_>) {
        self.coalescer.forget(stale);
        if let Some(cache) = &self.cache_opt {
            cache.forget(self.kind, stale);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Reads of `Vec<usize>` answering with `answer`, counting Okta calls in `calls`.
    async fn read(
        reads: &CachedReads<Vec<usize>>,
        key: &str,
        calls: &Arc<AtomicUsize>,
        answer: Vec<usize>,
    ) -> Vec<usize> {
        let calls = calls.clone();
        reads
            .read(key.to_owned(), move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(answer)
            })
            .await
            .unwrap()
    }

    fn cached(ttl: Duration, max_objects: usize) -> CachedReads<Vec<usize>> {
        CachedReads::new("test", Some(DiscoveryCache::new(ttl, max_objects)))
    }

    #[tokio::test]
    async fn an_answer_is_served_until_forgotten_and_only_its_keys_are_forgotten() {
        let reads = cached(Duration::from_secs(600), 100);
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(read(&reads, "g1/200/", &calls, vec![1]).await, vec![1]);
        assert_eq!(read(&reads, "g1/200/", &calls, vec![2]).await, vec![1]);
        read(&reads, "g2/200/", &calls, vec![3]).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2, "the repeat was a hit");
        reads.forget(Stale::Prefix("g1/"));
        assert_eq!(read(&reads, "g1/200/", &calls, vec![4]).await, vec![4]);
        assert_eq!(read(&reads, "g2/200/", &calls, vec![5]).await, vec![3]);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_answer_older_than_the_ttl_is_never_served() {
        let ttl = Duration::from_millis(20);
        let reads = cached(ttl, 100);
        let calls = Arc::new(AtomicUsize::new(0));
        read(&reads, "k", &calls, vec![1]).await;
        tokio::time::sleep(ttl).await;
        assert_eq!(read(&reads, "k", &calls, vec![2]).await, vec![2]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_oldest_answers_are_evicted_to_stay_within_the_object_bound() {
        let reads = cached(Duration::from_secs(600), 3);
        let calls = Arc::new(AtomicUsize::new(0));
        read(&reads, "a", &calls, vec![1, 2]).await;
        read(&reads, "b", &calls, vec![3, 4]).await;
        read(&reads, "too-big", &calls, vec![5, 6, 7, 8]).await;
        assert_eq!(read(&reads, "b", &calls, vec![0]).await, vec![3, 4], "kept");
        assert_eq!(read(&reads, "a", &calls, vec![9]).await, vec![9], "evicted");
        assert_eq!(read(&reads, "too-big", &calls, vec![0]).await, vec![0]);
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_read_that_overlapped_a_write_is_answered_but_not_kept() {
        let reads = cached(Duration::from_secs(600), 100);
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let before_write = {
            let (reads, calls) = (reads.clone(), calls.clone());
            tokio::spawn(async move {
                reads
                    .read("k".to_owned(), move || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        let _ = released.clone().wait_for(|go| *go).await;
                        Ok(vec![1])
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        reads.forget(Stale::Key("k"));
        release.send(true).unwrap();
        assert_eq!(before_write.await.unwrap().unwrap(), vec![1]);
        assert_eq!(read(&reads, "k", &calls, vec![2]).await, vec![2]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
