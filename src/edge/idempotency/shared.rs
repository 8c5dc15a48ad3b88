//! The table of changes shared by every replica, on the coordination server.
//!
//! One hash per change, under a key made from a digest of caller, method and id: the request
//! that named it (encoded, without its id), the replica attempting it with a lease that
//! replica renews while the attempt runs, and, once known, the answer. Claiming runs as one
//! script, so exactly one replica makes the attempt; the others poll until the answer is
//! there. An attempt whose lease ran out without an answer (its replica stopped, or lost the
//! server), like an answer that is `OUTCOME_UNKNOWN`, is settled by the next retry with a read
//! (see the module docs of `idempotency`), which replaces it with what it found; the change is
//! never sent again meanwhile.
//! An answer that is not remembered (see the module docs of `idempotency`) stays a moment for
//! those waiting, and the next claim replaces it.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use prost_reflect::{DynamicMessage, ReflectMessage};
use sha2::{Digest, Sha256};

use super::recorded::RecordedAnswer;
use super::{Attempt, ChangeKey, Run};
use crate::coordination::{Coordination, KEY_PREFIX, Unavailable, millis};
use crate::edge::Response;
use crate::status;

/// How long an attempt's replica holds the change without renewing its lease.
const LEASE: Duration = Duration::from_secs(5);
/// How often the attempting replica renews its lease.
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How long an answer that is not remembered stays for those already waiting.
const TRANSIENT_ANSWER_MS: u64 = 10_000;
/// Pauses between looks at a change another replica is attempting: short at first.
const FIRST_POLL: Duration = Duration::from_millis(10);
const LONGEST_POLL: Duration = Duration::from_millis(200);

/// Claims the change, or reports what another replica recorded for it (see the module docs).
const CLAIM: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local found = redis.call('HMGET', KEYS[1], 'request', 'answer', 'lease', 'transient')
if found[1] and found[4] ~= '1' then
  if found[2] then return {'answered', found[1], found[2]} end
  if tonumber(found[3]) < now then return {'abandoned', found[1]} end
  return {'pending', found[1]}
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'request', ARGV[1], 'owner', ARGV[2], 'lease', now + tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {'first'}
";

/// Extends the attempting replica's lease while it has no answer.
const RENEW: &str = r"
local found = redis.call('HMGET', KEYS[1], 'owner', 'answer')
if found[1] ~= ARGV[1] or found[2] then return 0 end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('HSET', KEYS[1], 'lease', now + tonumber(ARGV[2]))
return 1
";

/// Records the answer of the attempting replica; a transient one expires soon.
const FINISH: &str = r"
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'answer', ARGV[2], 'transient', ARGV[3])
if ARGV[3] == '1' then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return 1
";

/// Replaces an unknown outcome (`ARGV[1]`: the unknown answer, or empty for an attempt whose
/// lease ran out) with what a retry's read settled, or forgets it when that is not remembered.
const SETTLE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local found = redis.call('HMGET', KEYS[1], 'answer', 'lease')
local current = found[1] or ''
if current ~= ARGV[1] then return 0 end
if current == '' then
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  if tonumber(found[2]) >= now then return 0 end
end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'answer', ARGV[2], 'transient', '0')
else
  redis.call('DEL', KEYS[1])
end
return 1
";

/// The changes every replica shares.
#[derive(Clone)]
pub(super) struct SharedTable {
    coordination: Coordination,
    ttl: Duration,
    claim: Arc<redis::Script>,
    renew: Arc<redis::Script>,
    finish: Arc<redis::Script>,
    settle: Arc<redis::Script>,
}

/// What a claim found.
enum Claim {
    /// This replica makes the attempt.
    First,
    /// Another attempt of this change: the request that named it, and what is known of it.
    Existing(Vec<u8>, State),
}

/// What is known of another attempt.
enum State {
    Answered(Vec<u8>),
    Pending,
    Abandoned,
}

impl SharedTable {
    /// A table on `coordination`'s server, keeping outcomes for `ttl`.
    pub(super) fn new(coordination: Coordination, ttl: Duration) -> Self {
        Self {
            coordination,
            ttl,
            claim: Arc::new(redis::Script::new(CLAIM)),
            renew: Arc::new(redis::Script::new(RENEW)),
            finish: Arc::new(redis::Script::new(FINISH)),
            settle: Arc::new(redis::Script::new(SETTLE)),
        }
    }

    /// The answer to `request` named by `key`, when the server answers: the first attempt's,
    /// which `attempt` makes when this replica claims it. `attempt` is handed back untouched
    /// when the server cannot be reached before anything was claimed.
    pub(super) async fn answer(
        &self,
        key: &ChangeKey,
        request: &DynamicMessage,
        attempt: Attempt,
    ) -> Result<Response, (Unavailable, Attempt)> {
        let server_key = server_key(key);
        let encoded = request.encode_to_vec();
        let owner = format!("{:032x}", rand::random::<u128>());
        let mut pause = FIRST_POLL;
        let mut waited = false;
        loop {
            let claim = match self.claim(&server_key, &encoded, &owner).await {
                Ok(claim) => claim,
                // Nothing was claimed: the caller decides what to do without the table.
                Err(unavailable) if !waited => return Err((unavailable, attempt)),
                // Another replica's attempt was seen and the server is gone now: its outcome
                // cannot be learned, and attempting again could make the change twice.
                Err(_) => return Ok(status::outcome_lost().into_http()),
            };
            let (stored_request, state) = match claim {
                Claim::First => {
                    return Ok(self
                        .attempt(server_key, owner, attempt.run(Run::First))
                        .await);
                }
                Claim::Existing(stored_request, state) => (stored_request, state),
            };
            if !same_request(request, &stored_request) {
                return Ok(status::request_id_reused().into_http());
            }
            match state {
                State::Answered(stored) => {
                    return Ok(match RecordedAnswer::decode(&stored) {
                        Some(answer) if answer.outcome_unknown() => {
                            self.settle(&server_key, &stored, attempt).await
                        }
                        Some(answer) => answer.replay(),
                        None => status::outcome_lost().into_http(),
                    });
                }
                State::Abandoned => return Ok(self.settle(&server_key, &[], attempt).await),
                State::Pending => {
                    waited = true;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LONGEST_POLL);
                }
            }
        }
    }

    async fn claim(&self, key: &str, request: &[u8], owner: &str) -> Result<Claim, Unavailable> {
        let mut invocation = self.claim.key(key);
        invocation
            .arg(request)
            .arg(owner)
            .arg(millis(LEASE))
            .arg(millis(self.ttl));
        let found: Vec<redis::Value> = self.coordination.run_script(&invocation).await?;
        let text = |index: usize| match found.get(index) {
            Some(redis::Value::BulkString(bytes)) => Some(bytes.clone()),
            _ => None,
        };
        let kind = text(0).unwrap_or_default();
        Ok(match (kind.as_slice(), text(1)) {
            (b"first", _) => Claim::First,
            (b"answered", Some(request)) => {
                Claim::Existing(request, State::Answered(text(2).unwrap_or_default()))
            }
            (b"abandoned", Some(request)) => Claim::Existing(request, State::Abandoned),
            (b"pending", Some(request)) => Claim::Existing(request, State::Pending),
            // Not what the script answers: treated as a server that cannot be used.
            _ => return Err(Unavailable),
        })
    }

    /// Settles an earlier attempt whose outcome is unknown (`unknown`: its stored answer, empty
    /// when its lease ran out) with `attempt`, its changes withheld, and stores what it found.
    async fn settle(&self, key: &str, unknown: &[u8], attempt: Attempt) -> Response {
        let settled = attempt.run(Run::Settling).await;
        let remembered = if settled.remembered() { "1" } else { "0" };
        let mut invocation = self.settle.key(key);
        invocation
            .arg(unknown)
            .arg(settled.encode())
            .arg(remembered);
        // Not stored, the next retry settles again: it reads, and never writes twice.
        let _ = self.coordination.run_script::<i64>(&invocation).await;
        settled.replay()
    }

    /// Makes the claimed attempt in a task of its own, so it runs to its end even if the caller
    /// goes away, renewing the lease meanwhile; records and returns its answer.
    async fn attempt(
        &self,
        key: String,
        owner: String,
        attempt: futures::future::BoxFuture<'static, RecordedAnswer>,
    ) -> Response {
        let table = self.clone();
        let task = tokio::spawn(async move {
            let mut attempt = std::pin::pin!(attempt);
            let mut renewals =
                tokio::time::interval_at(tokio::time::Instant::now() + RENEW_EVERY, RENEW_EVERY);
            let answer = loop {
                tokio::select! {
                    answer = &mut attempt => break answer,
                    _ = renewals.tick() => {
                        let mut invocation = table.renew.key(&key);
                        invocation.arg(&owner).arg(millis(LEASE));
                        // A lost renewal shows as an abandoned attempt: retries are told the
                        // outcome is unknown, never made again.
                        let _ = table.coordination.run_script::<i64>(&invocation).await;
                    }
                }
            };
            let transient = if answer.remembered() { "0" } else { "1" };
            let mut invocation = table.finish.key(&key);
            invocation
                .arg(&owner)
                .arg(answer.encode())
                .arg(transient)
                .arg(TRANSIENT_ANSWER_MS);
            let _ = table.coordination.run_script::<i64>(&invocation).await;
            answer
        });
        match task.await {
            Ok(answer) => answer.replay(),
            Err(_) => status::outcome_lost().into_http(),
        }
    }
}

/// The key of a change on the server: a digest, so callers' names and ids are not spelled out
/// in a server other applications may share.
fn server_key(key: &ChangeKey) -> String {
    let mut digest = Sha256::new();
    for part in [&key.caller, &key.path, &key.request_id] {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    let hex: String = digest
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("{KEY_PREFIX}idempotency:{hex}")
}

/// Whether `stored` encodes the same request: compared decoded, since encodings of equal maps
/// may order their entries differently.
fn same_request(request: &DynamicMessage, stored: &[u8]) -> bool {
    DynamicMessage::decode(request.descriptor(), stored).is_ok_and(|stored| &stored == request)
}
