//! Callers' RPCs in flight and open streams, and the Okta requests on the wire, counted across
//! replicas, so a caller's `max_in_flight` and Okta's concurrent-request ceiling hold for the
//! deployment rather than once per replica.
//!
//! One hash per caller and kind (RPCs or streams), under a digest of the caller's name, and
//! one for Okta's requests hold how many each replica has open (or, for Okta, holds ready). A replica writes its own count, never an increment, so a
//! write that was lost is set right by the next one. A replica is alive while its lease in
//! the `replicas` set is renewed (every [`RENEW_EVERY`]); the counts of a replica that stopped
//! renewing (it died, or lost the server) stop counting when its lease runs out. While the
//! server cannot be reached, each replica holds its callers to the limit on its own.

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

/// Sets the replica's (ARGV[1]) count to ARGV[2], or to as much of it as the live replicas'
/// counts leave under the limit (ARGV[3]); with ARGV[6] `all`, to all of it or nothing.
/// Answers the count granted.
const CLAIM: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
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
local want = tonumber(ARGV[2])
local granted = math.max(0, math.min(want, tonumber(ARGV[3]) - others))
if granted < want and ARGV[6] == 'all' then return granted end
if granted > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], granted)
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return granted
";

/// Writes the replica's (ARGV[1]) count (ARGV[2]) after one of its calls ended.
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
#[derive(Debug, PartialEq, Eq)]
pub enum Place {
    /// Taken: the replicas together hold no more than the limit.
    Taken,
    /// The replicas together hold the limit already.
    Full,
    /// The server cannot be reached; the replica counts alone.
    Alone,
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
}

impl SharedInFlight {
    /// Counts on `coordination`'s server, renewing this replica's lease in the background
    /// while the value lives.
    pub fn start(coordination: Coordination) -> Self {
        let inner = Arc::new(Inner {
            coordination,
            replica: format!("{:032x}", rand::random::<u128>()),
            claim: redis::Script::new(CLAIM),
            leave: redis::Script::new(LEAVE),
            resting_until: Mutex::new(None),
        });
        tokio::spawn(renew(Arc::downgrade(&inner)));
        Self { inner }
    }

    /// A place for one more call of `caller` (streams or RPCs), this replica holding `mine`
    /// with it, when the replicas together stay within `limit`.
    pub async fn enter(&self, caller: &str, stream: bool, mine: u32, limit: u32) -> Place {
        let inner = &self.inner;
        let resting = inner
            .resting_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| Instant::now() < until);
        if resting {
            return Place::Alone;
        }
        match self
            .claim(&counts_key(caller, stream), mine, limit, true)
            .await
        {
            Ok(granted) if granted == mine => Place::Taken,
            Ok(_) => Place::Full,
            Err(Unavailable) => Place::Alone,
        }
    }

    /// Holds `want` of the org's `limit` Okta requests in flight for this replica, or as many
    /// as the other live replicas leave; how many it holds now.
    pub async fn hold_okta_slots(&self, want: u32, limit: u32) -> Result<u32, Unavailable> {
        let key = format!("{KEY_PREFIX}in-flight:okta");
        self.claim(&key, want, limit, false).await
    }

    /// Runs [`CLAIM`] on `key`; a server that cannot be reached is left alone for [`REST`].
    async fn claim(&self, key: &str, want: u32, limit: u32, all: bool) -> Result<u32, Unavailable> {
        let inner = &self.inner;
        let mut invocation = inner.claim.key(key);
        invocation
            .key(replicas_key())
            .arg(&inner.replica)
            .arg(want)
            .arg(limit)
            .arg(millis(LEASE))
            .arg(millis(KEEP_COUNTS))
            .arg(if all { "all" } else { "some" });
        let claimed = inner.coordination.run_script::<u32>(&invocation).await;
        if claimed.is_err() {
            *inner
                .resting_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + REST);
        }
        claimed
    }

    /// Writes, in the background, that this replica now holds `mine` calls of `caller`.
    pub fn left(&self, caller: &str, stream: bool, mine: u32) {
        let inner = self.inner.clone();
        let key = counts_key(caller, stream);
        tokio::spawn(async move {
            let mut invocation = inner.leave.key(key);
            invocation.arg(&inner.replica).arg(mine);
            // A lost write is set right by this replica's next one, or its lease running out.
            let _ = inner.coordination.run_script::<i64>(&invocation).await;
        });
    }
}

/// Renews the lease of the replica `inner` is, until it is gone.
async fn renew(inner: Weak<Inner>) {
    let script = redis::Script::new(RENEW);
    let mut ticks = tokio::time::interval(RENEW_EVERY);
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let mut invocation = script.key(replicas_key());
        invocation.arg(&inner.replica).arg(millis(LEASE));
        // While the server is away the lease runs out, and so do this replica's counts.
        let _ = inner.coordination.run_script::<i64>(&invocation).await;
    }
}

fn counts_key(caller: &str, stream: bool) -> String {
    let kind = if stream { "streams" } else { "rpcs" };
    format!("{KEY_PREFIX}in-flight:{kind}:{}", digest(caller))
}

fn replicas_key() -> String {
    format!("{KEY_PREFIX}replicas")
}
