//! Callers' RPCs in flight and open streams, and the Okta requests on the wire, counted across
//! replicas, so a caller's `max_in_flight` and Okta's concurrent-request ceiling hold for the
//! deployment rather than once per replica.
//!
//! One hash per caller and kind (RPCs or streams), under a digest of the caller's name, and
//! one for Okta's requests hold how many places each replica holds. A replica writes its own
//! count, never an increment, so a write that was lost is set right by the next one. A replica
//! is alive while its lease in the `replicas` set is renewed (every [`RENEW_EVERY`]); the
//! counts of a replica that stopped renewing (it died, or lost the server) stop counting when
//! its lease runs out. While the server cannot be reached, each replica holds the limits on
//! its own.
//!
//! Places are claimed in batches, as the ledger leases budget units, so that most calls and
//! Okta requests enter without a round trip: a replica that needs one more place claims it
//! together with up to [`headroom`] spare ones (an eighth of the limit), which its next calls
//! take locally. A claim is all or nothing for the places the replica needs, and never takes
//! the replicas together past the limit. The trade-off: a place one replica holds spare is
//! refused on the others. So the headroom is small, a replica left with more than the
//! headroom spare when a call ends gives the extra back, and a batch nobody entered for
//! [`IDLE`] gives back all its spare places. Under a limit of 8 there is no headroom: one
//! round trip per call, as without batches.
//!
//! A replica's writes of one count go one at a time, so they land in the order they were
//! made; after any failure to reach the server, the places the replica holds may have been
//! lost there (it restarted empty), so the next call claims them all again. Calls admitted
//! while the server could not be reached are in their batches too: once a renewal reaches the
//! server again, the replica writes every such count (even past the limit: the calls are
//! running), so the other replicas count them until they end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::{Coordination, KEY_PREFIX, Unavailable, digest, millis};

/// How long a replica's counts count without a renewal of its lease.
const LEASE: Duration = Duration::from_secs(5);
/// How often a replica renews its lease.
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How long the server is left alone after it could not be reached.
const REST: Duration = Duration::from_secs(1);
/// How long a caller's counts are kept after their last change.
const KEEP_COUNTS: Duration = Duration::from_secs(86_400);
/// A batch's spare places are at most a caller's limit divided by this: enough that a busy
/// caller rarely waits for a round trip, few enough that the other replicas rarely miss them.
const HEADROOM_DIVISOR: u32 = 8;
/// How long a caller's spare places stay with a replica after its last call entered there.
const IDLE: Duration = Duration::from_millis(100);

/// Sets the replica's (ARGV[1]) count to as much of ARGV[3] as the live replicas' counts leave
/// under the limit (ARGV[4]), unless that is less than ARGV[2], the count it needs: then the
/// count is left as it was. Answers the count granted.
const CLAIM: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[1])
local held = redis.call('HGETALL', KEYS[1])
local others = 0
for i = 1, #held, 2 do
  if held[i] ~= ARGV[1] then
    local alive = tonumber(redis.call('ZSCORE', KEYS[2], held[i]) or '0')
    if alive < now then
      redis.call('HDEL', KEYS[1], held[i])
    else
      others = others + tonumber(held[i + 1])
    end
  end
end
local need, want = tonumber(ARGV[2]), tonumber(ARGV[3])
local granted = math.max(0, math.min(want, tonumber(ARGV[4]) - others))
if granted < need then return granted end
if granted > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], granted)
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return granted
";

/// Writes the replica's (ARGV[1]) count (ARGV[2]) after it gave places back.
const LEAVE: &str = r"
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
";

/// Renews the replica's lease, and forgets replicas gone for long.
const RENEW: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
return 1
";

/// What the server said about a place for one more call.
pub enum Place {
    /// Taken: the replicas together hold no more than the limit. Held until dropped.
    Taken(SharedPlace),
    /// The replicas together hold the limit already.
    Full,
    /// The server cannot be reached; the replica counts alone. The call is in the replica's
    /// batch all the same, for the server to count once it is back. Held until dropped.
    Alone(SharedPlace),
}

/// A place in a count across replicas; dropping it ends the call (or Okta request) there.
pub struct SharedPlace {
    inner: Arc<Inner>,
    key: Counted,
}

impl Drop for SharedPlace {
    fn drop(&mut self) {
        let give_back = self.inner.with_batch(&self.key, Batch::leave);
        if give_back {
            tokio::spawn(give_back_spare(
                self.inner.clone(),
                self.key.clone(),
                Keep::Headroom,
            ));
        }
    }
}

/// What a count counts.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Counted {
    /// A caller's RPCs in flight.
    Rpcs(Arc<str>),
    /// A caller's open streams.
    Streams(Arc<str>),
    /// Okta requests on the wire, all callers', against the org's concurrent-request ceiling.
    OktaRequests,
}

impl Counted {
    /// The count's hash on the server.
    fn key(&self) -> String {
        match self {
            Self::Rpcs(caller) => format!("{KEY_PREFIX}in-flight:rpcs:{}", digest(caller)),
            Self::Streams(caller) => format!("{KEY_PREFIX}in-flight:streams:{}", digest(caller)),
            Self::OktaRequests => format!("{KEY_PREFIX}in-flight:okta"),
        }
    }
}

/// This replica's places of one count.
struct Batch {
    /// Places this replica holds on the server, as far as it knows.
    reserved: u32,
    /// Places its calls are in.
    in_use: u32,
    /// Spare places it may keep: the headroom of its last claim.
    headroom: u32,
    /// When a call last entered.
    entered: Instant,
    /// [`Coordination::failures`] when `reserved` was granted: after another failure the server
    /// may have lost it.
    failures: u64,
    /// Held while this batch's count is claimed or written, so writes land in order.
    writing: Arc<tokio::sync::Mutex<()>>,
}

/// What an entering call found in its batch.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// A spare place, now the call's.
    Spare,
    /// No spare place: the replica needs `need` places with this call.
    Short {
        /// The places in use, and the call's.
        need: u32,
    },
}

/// How many spare places to keep when giving back.
#[derive(Clone, Copy)]
enum Keep {
    /// The batch's headroom: a call ended.
    Headroom,
    /// None: the caller is idle here.
    NoSpare,
}

impl Batch {
    fn new(now: Instant) -> Self {
        Self {
            reserved: 0,
            in_use: 0,
            headroom: 0,
            entered: now,
            failures: 0,
            writing: Arc::default(),
        }
    }

    /// A call enters at `now` while the server cannot be reached: it holds no place there yet.
    fn enter_alone(&mut self, now: Instant) {
        self.entered = now;
        self.in_use += 1;
    }

    /// The count to write once the server is reached again after failing `failures` times in
    /// all, when calls entered since it last granted this batch's places.
    fn unsynced(&self, failures: u64) -> Option<u32> {
        (self.failures != failures && self.in_use > 0).then_some(self.in_use)
    }

    /// The server now holds `count` places of this batch's, written when it had failed
    /// `failures` times.
    fn synced(&mut self, count: u32, failures: u64) {
        self.reserved = count;
        self.failures = failures;
    }

    /// A call enters at `now`, the server having failed `failures` times so far.
    fn enter(&mut self, now: Instant, failures: u64) -> Found {
        self.entered = now;
        if self.failures == failures && self.in_use < self.reserved {
            self.in_use += 1;
            return Found::Spare;
        }
        Found::Short {
            need: self.in_use + 1,
        }
    }

    /// The server granted `granted` places (at least those needed) to a claim made when it
    /// had failed `failures` times; the entering call takes one.
    fn claimed(&mut self, granted: u32, headroom: u32, failures: u64) {
        self.reserved = granted;
        self.in_use += 1;
        self.headroom = headroom;
        self.failures = failures;
    }

    /// A call left; whether the batch now has more spare places than its headroom.
    fn leave(&mut self) -> bool {
        self.in_use = self.in_use.saturating_sub(1);
        self.reserved > self.in_use + self.headroom
    }

    /// Keeps only the places in use and those `keep` says; the count to write, if it fell.
    fn give_back(&mut self, keep: Keep) -> Option<u32> {
        let spare = match keep {
            Keep::Headroom => self.headroom,
            Keep::NoSpare => 0,
        };
        let kept = self.reserved.min(self.in_use + spare);
        if kept == self.reserved {
            return None;
        }
        self.reserved = kept;
        Some(kept)
    }

    /// Whether no call has entered for [`IDLE`] at `now`.
    fn idle(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.entered) >= IDLE
    }

    /// Whether the batch holds nothing and nobody is writing it: it can be forgotten.
    fn unused(&self) -> bool {
        self.reserved == 0 && self.in_use == 0 && Arc::strong_count(&self.writing) == 1
    }
}

/// Spare places a caller with `limit` may hold: none under [`HEADROOM_DIVISOR`].
fn headroom(limit: u32) -> u32 {
    limit / HEADROOM_DIVISOR
}

/// This replica's counts on the server; cheap to clone.
#[derive(Clone)]
pub struct SharedInFlight {
    inner: Arc<Inner>,
}

struct Inner {
    coordination: Coordination,
    /// This replica's name on the server, made up at start.
    replica: String,
    claim: redis::Script,
    leave: redis::Script,
    resting_until: Mutex<Option<Instant>>,
    batches: Mutex<HashMap<Counted, Batch>>,
}

impl SharedInFlight {
    /// Counts on `coordination`'s server, renewing this replica's lease and giving idle
    /// callers' spare places back in the background while the value lives.
    pub fn start(coordination: Coordination) -> Self {
        let inner = Arc::new(Inner {
            coordination,
            replica: format!("{:032x}", rand::random::<u128>()),
            claim: redis::Script::new(CLAIM),
            leave: redis::Script::new(LEAVE),
            resting_until: Mutex::new(None),
            batches: Mutex::default(),
        });
        tokio::spawn(renew(Arc::downgrade(&inner)));
        tokio::spawn(give_back_idle(Arc::downgrade(&inner)));
        Self { inner }
    }

    /// A place for one more call of `caller` (streams or RPCs) when the replicas together
    /// stay within `limit`: a spare one this replica holds, else one claimed on the server.
    pub async fn enter(&self, caller: &Arc<str>, stream: bool, limit: u32) -> Place {
        let counted = if stream {
            Counted::Streams(caller.clone())
        } else {
            Counted::Rpcs(caller.clone())
        };
        self.place(counted, limit).await
    }

    /// A place for one more Okta request on the wire, when the replicas together stay within
    /// the org's ceiling `limit`.
    pub async fn enter_okta_request(&self, limit: u32) -> Place {
        self.place(Counted::OktaRequests, limit).await
    }

    /// A place in `counted` within `limit`: a spare one this replica holds, else one claimed.
    async fn place(&self, counted: Counted, limit: u32) -> Place {
        let inner = &self.inner;
        if inner.resting() {
            return self.alone(counted);
        }
        if inner.enter(&counted) == Found::Spare {
            return self.taken(counted);
        }
        let writing = inner.with_batch(&counted, |batch| batch.writing.clone());
        let _writing = writing.lock().await;
        // While this call waited, another's claim may have left a place spare.
        let Found::Short { need } = inner.enter(&counted) else {
            return self.taken(counted);
        };
        let failures = inner.coordination.failures();
        let headroom = headroom(limit);
        match self
            .claim(&counted.key(), need, need + headroom, limit)
            .await
        {
            Ok(granted) if granted >= need => {
                inner.with_batch(&counted, |batch| batch.claimed(granted, headroom, failures));
                self.taken(counted)
            }
            Ok(_) => Place::Full,
            Err(Unavailable) => self.alone(counted),
        }
    }

    fn taken(&self, key: Counted) -> Place {
        Place::Taken(SharedPlace {
            inner: self.inner.clone(),
            key,
        })
    }

    /// A call of `key` admitted while the server cannot be reached, in the batch all the same.
    fn alone(&self, key: Counted) -> Place {
        self.inner
            .with_batch(&key, |batch| batch.enter_alone(Instant::now()));
        Place::Alone(SharedPlace {
            inner: self.inner.clone(),
            key,
        })
    }

    /// Runs [`CLAIM`] on `key`; a server that cannot be reached is left alone for [`REST`].
    async fn claim(&self, key: &str, need: u32, want: u32, limit: u32) -> Result<u32, Unavailable> {
        let inner = &self.inner;
        let mut invocation = inner.claim.key(key);
        invocation
            .key(replicas_key())
            .arg(&inner.replica)
            .arg(need)
            .arg(want)
            .arg(limit)
            .arg(millis(LEASE))
            .arg(millis(KEEP_COUNTS));
        let claimed = inner.coordination.run_script::<u32>(&invocation).await;
        if claimed.is_err() {
            *inner
                .resting_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + REST);
        }
        claimed
    }
}

impl Inner {
    /// Whether the server is being left alone after a failure.
    fn resting(&self) -> bool {
        self.resting_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| Instant::now() < until)
    }

    /// A call of `key` enters its batch.
    fn enter(&self, key: &Counted) -> Found {
        let failures = self.coordination.failures();
        self.with_batch(key, |batch| batch.enter(Instant::now(), failures))
    }

    /// `change` applied to `key`'s batch, made empty when there is none.
    fn with_batch<T>(&self, key: &Counted, change: impl FnOnce(&mut Batch) -> T) -> T {
        let mut batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
        let batch = batches
            .entry(key.clone())
            .or_insert_with(|| Batch::new(Instant::now()));
        change(batch)
    }

    /// The batches whose callers have not entered for [`IDLE`] but hold spare places; the
    /// empty ones are forgotten.
    fn idle_batches(&self) -> Vec<Counted> {
        let now = Instant::now();
        let mut batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
        batches.retain(|_, batch| !(batch.idle(now) && batch.unused()));
        batches
            .iter()
            .filter(|(_, batch)| batch.idle(now) && batch.reserved > batch.in_use)
            .map(|(key, _)| key.clone())
            .collect()
    }
}

/// Gives back `key`'s spare places beyond what `keep` says. A lost write is set right by this
/// replica's next one, or its lease running out.
async fn give_back_spare(inner: Arc<Inner>, key: Counted, keep: Keep) {
    write_count(&inner, &key, |batch| batch.give_back(keep), |_, _| {}).await;
}

/// Writes `key`'s count, if `count_of` gives one from its batch, after any claim or write of
/// it still running; `written` updates the batch once the server holds the count.
async fn write_count(
    inner: &Inner,
    key: &Counted,
    count_of: impl FnOnce(&mut Batch) -> Option<u32>,
    written: impl FnOnce(&mut Batch, u32),
) {
    let writing = inner.with_batch(key, |batch| batch.writing.clone());
    let _writing = writing.lock().await;
    let Some(count) = inner.with_batch(key, count_of) else {
        return;
    };
    let mut invocation = inner.leave.key(key.key());
    invocation.arg(&inner.replica).arg(count);
    if inner
        .coordination
        .run_script::<i64>(&invocation)
        .await
        .is_ok()
    {
        inner.with_batch(key, |batch| written(batch, count));
    }
}

/// Gives back the spare places of callers idle on the replica `inner` is, until it is gone.
async fn give_back_idle(inner: Weak<Inner>) {
    let mut ticks = tokio::time::interval(IDLE);
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        for key in inner.idle_batches() {
            tokio::spawn(give_back_spare(inner.clone(), key, Keep::NoSpare));
        }
    }
}

/// Renews the lease of the replica `inner` is, until it is gone; the first renewal that
/// reaches the server after a failure writes the counts of the calls that entered meanwhile.
async fn renew(inner: Weak<Inner>) {
    let script = redis::Script::new(RENEW);
    let mut ticks = tokio::time::interval(RENEW_EVERY);
    let mut synced_at_failures = 0;
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let failures = inner.coordination.failures();
        let mut invocation = script.key(replicas_key());
        invocation.arg(&inner.replica).arg(millis(LEASE));
        // While the server is away the lease runs out, and so do this replica's counts.
        let renewed = inner.coordination.run_script::<i64>(&invocation).await;
        if renewed.is_ok() && failures != synced_at_failures {
            synced_at_failures = failures;
            let keys: Vec<Counted> = inner
                .batches
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .keys()
                .cloned()
                .collect();
            // Calls entered since the server last granted their places are running, so they
            // count even past the limit.
            for key in keys {
                write_count(
                    &inner,
                    &key,
                    |batch| batch.unsynced(failures),
                    |batch, count| batch.synced(count, failures),
                )
                .await;
            }
        }
    }
}

fn replicas_key() -> String {
    format!("{KEY_PREFIX}replicas")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch whose claim was granted `granted` places with `headroom`, one of them taken.
    fn claimed(granted: u32, headroom: u32) -> Batch {
        let mut batch = Batch::new(Instant::now());
        assert_eq!(batch.enter(Instant::now(), 0), Found::Short { need: 1 });
        batch.claimed(granted, headroom, 0);
        batch
    }

    #[test]
    fn calls_admitted_alone_are_written_once_the_server_is_back_and_then_claimed_beyond() {
        let mut batch = claimed(2, 0);
        // The server fails (failures 0 -> 1); two more calls enter alone.
        batch.enter_alone(Instant::now());
        batch.enter_alone(Instant::now());
        assert_eq!(batch.unsynced(0), None, "nothing happened since the grant");
        assert_eq!(
            batch.unsynced(1),
            Some(3),
            "every running call, the first one's too"
        );
        batch.synced(3, 1);
        assert_eq!(batch.unsynced(1), None);
        assert_eq!(
            batch.enter(Instant::now(), 1),
            Found::Short { need: 4 },
            "the next call claims a place beyond the three running"
        );
        assert!(
            batch.leave(),
            "a call that ends leaves a written place spare"
        );
        assert_eq!(batch.give_back(Keep::Headroom), Some(2));
    }

    #[test]
    fn no_headroom_under_a_limit_of_eight() {
        assert_eq!(headroom(7), 0);
        assert_eq!(headroom(8), 1);
        assert_eq!(headroom(256), 32);
    }

    #[test]
    fn calls_take_the_claimed_places_then_claim_one_more_than_in_use() {
        let mut batch = claimed(3, 2);
        assert_eq!(batch.enter(Instant::now(), 0), Found::Spare);
        assert_eq!(batch.enter(Instant::now(), 0), Found::Spare);
        assert_eq!(batch.enter(Instant::now(), 0), Found::Short { need: 4 });
        assert_eq!(batch.in_use, 3);
    }

    #[test]
    fn after_a_failure_the_places_held_are_claimed_again() {
        let mut batch = claimed(3, 2);
        assert_eq!(batch.enter(Instant::now(), 1), Found::Short { need: 2 });
    }

    #[test]
    fn a_call_that_ends_gives_back_what_exceeds_the_headroom() {
        let mut batch = claimed(3, 2);
        assert_eq!(batch.enter(Instant::now(), 0), Found::Spare);
        assert!(
            !batch.leave(),
            "1 in use of 3: 2 spare, within the headroom"
        );
        assert!(batch.leave(), "none in use of 3: 1 over the headroom");
        assert_eq!(batch.give_back(Keep::Headroom), Some(2));
        assert_eq!(
            batch.give_back(Keep::Headroom),
            None,
            "nothing more to give"
        );
        assert_eq!(
            batch.give_back(Keep::NoSpare),
            Some(0),
            "an idle caller keeps none"
        );
    }

    #[test]
    fn a_batch_is_idle_once_no_call_entered_for_a_while() {
        let batch = claimed(3, 1);
        assert!(!batch.idle(batch.entered));
        assert!(batch.idle(batch.entered + IDLE));
    }
}
