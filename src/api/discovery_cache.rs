//! The optional group-discovery cache (`cache.group_discovery_ttl_ms`, off by default): answers
//! to group-discovery reads are kept for at most the TTL, so callers that ask the same thing over
//! and over (an authorization check reading a user's groups on every request) stop spending
//! Okta's rate limit. The gateway's own writes make what they affect unreachable at once (the
//! rules are in [`super::reads`], the mechanism in [`super::coalesce`]); changes made elsewhere
//! (the Admin Console, other API clients, group rules) show once the entry is older than the TTL,
//! which is therefore the staleness bound.
//!
//! A moka cache shared by every kind of group-discovery read. An entry's age counts from the
//! moment its Okta call was about to be sent (a per-entry expiry, not moka's `time_to_live`,
//! which would count from the insertion), so nothing served is older than the TTL. Memory is
//! bounded by `cache.group_discovery_max_objects`: a weigher counts every group or user held as
//! one, the least recently used entries are evicted first (moka's LRU policy, which admits every
//! new answer), and an answer heavier than the whole bound is not kept.

use std::time::{Duration, Instant};

use moka::Expiry;
use moka::policy::EvictionPolicy;

use super::coalesce::{Answer, ReadKey, Store};

/// A store keeping answers younger than `ttl`, holding at most `max_objects` groups and users.
pub fn discovery_cache(ttl: Duration, max_objects: usize) -> Store {
    moka::future::Cache::builder()
        .max_capacity(u64::try_from(max_objects).unwrap_or(u64::MAX))
        .weigher(|_, answer: &Answer| answer.weight())
        .eviction_policy(EvictionPolicy::lru())
        .expire_after(AgeFromSend { ttl })
        .build_with_hasher(foldhash::fast::RandomState::default())
}

/// Expires an answer `ttl` after its Okta call was sent.
struct AgeFromSend {
    ttl: Duration,
}

impl Expiry<ReadKey, Answer> for AgeFromSend {
    fn expire_after_create(
        &self,
        _key: &ReadKey,
        answer: &Answer,
        created_at: Instant,
    ) -> Option<Duration> {
        let age = created_at.saturating_duration_since(answer.sent_at());
        Some(self.ttl.saturating_sub(age))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::super::coalesce::{SharedReads, Stale};
    use super::*;

    /// Reads of `Vec<usize>` answering with `answer`, counting Okta calls in `calls`; then lets
    /// the cache settle its bound, as it does by itself shortly after.
    async fn read(
        reads: &SharedReads<Vec<usize>>,
        key: &str,
        calls: &Arc<AtomicUsize>,
        answer: Vec<usize>,
    ) -> Vec<usize> {
        let calls = calls.clone();
        let value = reads
            .read(key.to_owned(), move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(answer)
            })
            .await
            .unwrap();
        reads.settle().await;
        value
    }

    fn cached(ttl: Duration, max_objects: usize) -> SharedReads<Vec<usize>> {
        SharedReads::new(discovery_cache(ttl, max_objects))
    }

    #[tokio::test]
    async fn an_answer_is_served_until_forgotten_and_only_its_keys_are_forgotten() {
        let reads = cached(Duration::from_secs(600), 100);
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(read(&reads, "g1/200/", &calls, vec![1]).await, vec![1]);
        assert_eq!(read(&reads, "g1/200/", &calls, vec![2]).await, vec![1]);
        read(&reads, "g2/200/", &calls, vec![3]).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2, "the repeat was a hit");
        reads.forget(Stale::Of("g1"));
        assert_eq!(read(&reads, "g1/200/", &calls, vec![4]).await, vec![4]);
        assert_eq!(read(&reads, "g2/200/", &calls, vec![5]).await, vec![3]);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        reads.forget(Stale::All);
        assert_eq!(read(&reads, "g2/200/", &calls, vec![6]).await, vec![6]);
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
    async fn an_answer_whose_okta_call_outlasted_the_ttl_is_not_kept() {
        let ttl = Duration::from_millis(20);
        let reads = cached(ttl, 100);
        let calls = Arc::new(AtomicUsize::new(0));
        let slow = {
            let calls = calls.clone();
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(ttl).await;
                Ok(vec![1])
            }
        };
        assert_eq!(reads.read("k".to_owned(), slow).await.unwrap(), vec![1]);
        assert_eq!(read(&reads, "k", &calls, vec![2]).await, vec![2]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_least_recently_used_answers_are_evicted_to_stay_within_the_object_bound() {
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
    async fn a_failure_is_not_kept() {
        let reads = cached(Duration::from_secs(600), 100);
        let calls = Arc::new(AtomicUsize::new(0));
        let failed = {
            let calls = calls.clone();
            reads
                .read("k".to_owned(), move || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(tonic::Status::unavailable("okta is down"))
                })
                .await
        };
        assert_eq!(failed.unwrap_err().code(), tonic::Code::Unavailable);
        assert_eq!(read(&reads, "k", &calls, vec![1]).await, vec![1]);
        assert_eq!(read(&reads, "k", &calls, vec![2]).await, vec![1], "kept");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
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
        reads.forget(Stale::Of("k"));
        release.send(true).unwrap();
        assert_eq!(before_write.await.unwrap().unwrap(), vec![1]);
        assert_eq!(read(&reads, "k", &calls, vec![2]).await, vec![2]);
        assert_eq!(read(&reads, "k", &calls, vec![3]).await, vec![2], "kept");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
