//! One rate-limit ledger per Okta bucket, shared by every replica: Okta counts org-wide, so
//! replicas that each kept their own count would together draw 429s, and each caller could
//! spend its share once per replica.
//!
//! One hash per bucket holds the window Okta last reported (limit, remaining, reset, reserve)
//! and the units each caller with a share took in it, under a digest of the caller's name.
//! Leasing runs as one script: it grants a small batch of units only from what remains above
//! the reserve, and only within the caller's share, taking them from the count at once, so
//! the units granted to all replicas together never exceed what is left. Every answer's
//! budget is reported by another script: a later window replaces the hash, and within a window
//! the smaller of the shared count and Okta's wins. While nobody knows a bucket's window (at
//! first, or after its reset), one replica at a time probes it, holding a short-lived key that
//! names the caller the probe counts against.

use std::sync::Arc;
use std::time::Duration;

use okta_client::ledger::{
    HeldSlot, Lease, LeaseRequest, LedgerFuture, Reported, SharedBudget, SlotAnswer, Unreachable,
};

use super::in_flight::{Place, SharedInFlight};
use super::{Coordination, KEY_PREFIX, digest, millis};
use crate::config::CoordinationSettings;

/// How long a probe holds a bucket before another replica may probe it (its replica stopped,
/// or its report was lost).
const PROBE_LEASE: Duration = Duration::from_secs(5);
/// How long a window's hash outlives its reset, so a late report still finds it.
const KEEP_AFTER_RESET_S: u64 = 60;

/// Grants units of a bucket, or says why not (see the module docs). `{kind, n, reset}`: `n`
/// is the units granted, or the milliseconds until the reset.
const LEASE: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local found = redis.call('HMGET', KEYS[1], 'limit', 'remaining', 'reset', 'reserve')
local reset = tonumber(found[3])
if not reset or now >= reset * 1000 then
  if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[4]) then return {'probe', 0, 0} end
  return {'probing', 0, 0}
end
local limit, remaining, reserve = tonumber(found[1]), tonumber(found[2]), tonumber(found[4])
local until_reset = reset * 1000 - now
local free = remaining - reserve
if free <= 0 then return {'spent', until_reset, reset} end
local grant = math.min(tonumber(ARGV[1]), math.max(1, math.floor(free / 4)))
if ARGV[2] ~= '' then
  local allowed = math.max(1, math.floor(limit * tonumber(ARGV[3]) / 100))
  local spent = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
  if spent >= allowed then return {'share', until_reset, reset} end
  -- A quarter of the share at most, so a share is not stranded on the replica that leased it.
  grant = math.min(grant, allowed - spent, math.max(1, math.floor(allowed / 4)))
  redis.call('HINCRBY', KEYS[1], ARGV[2], grant)
end
redis.call('HINCRBY', KEYS[1], 'remaining', -grant)
return {'granted', grant, reset}
";

/// Records one answer's budget (no arguments: a probe got none) and ends the bucket's probe,
/// counting the probe against the share of the caller that sent it.
const REPORT: &str = r"
local prober = redis.call('GET', KEYS[2])
redis.call('DEL', KEYS[2])
if #ARGV == 0 then return 0 end
local reset = tonumber(ARGV[3])
local known = tonumber(redis.call('HGET', KEYS[1], 'reset') or '0')
if reset < known then return 0 end
if reset > known then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'limit', ARGV[1], 'remaining', ARGV[2], 'reset', ARGV[3], 'reserve', ARGV[4])
  redis.call('EXPIREAT', KEYS[1], reset + tonumber(ARGV[5]))
elseif tonumber(ARGV[2]) < tonumber(redis.call('HGET', KEYS[1], 'remaining')) then
  redis.call('HSET', KEYS[1], 'remaining', ARGV[2], 'limit', ARGV[1], 'reserve', ARGV[4])
end
if prober and prober ~= '' then redis.call('HINCRBY', KEYS[1], prober, 1) end
return 1
";

/// The rate-limit ledger on the coordination server, handed to the Okta client.
#[derive(Clone)]
pub struct RateLimitLedger {
    coordination: Coordination,
    /// Okta's requests on the wire, counted with the other replicas'.
    in_flight: SharedInFlight,
    expected_replicas: u32,
    lease: Arc<redis::Script>,
    report: Arc<redis::Script>,
}

impl RateLimitLedger {
    /// The ledger the Okta client spends from when replicas share `coordination`'s server, as
    /// `settings` describe the deployment; `None` without a server.
    pub fn shared_budget(
        coordination: Option<&Coordination>,
        settings: &CoordinationSettings,
    ) -> Option<Arc<dyn SharedBudget>> {
        coordination.map(|coordination| {
            Arc::new(Self::new(coordination.clone(), settings.expected_replicas))
                as Arc<dyn SharedBudget>
        })
    }

    /// A ledger on `coordination`'s server; while it cannot be reached, each replica keeps to
    /// `1 / expected_replicas` of what Okta reports.
    pub fn new(coordination: Coordination, expected_replicas: u32) -> Self {
        Self {
            in_flight: SharedInFlight::start(coordination.clone()),
            coordination,
            expected_replicas,
            lease: Arc::new(redis::Script::new(LEASE)),
            report: Arc::new(redis::Script::new(REPORT)),
        }
    }
}

impl SharedBudget for RateLimitLedger {
    fn lease<'a>(&'a self, request: LeaseRequest<'a>) -> LedgerFuture<'a, Lease> {
        Box::pin(async move {
            let mut invocation = self.lease.key(bucket_key(request.bucket));
            invocation.key(probe_key(request.bucket)).arg(request.want);
            match request.caller {
                Some((caller, percent)) => invocation.arg(caller_field(caller)).arg(percent),
                None => invocation.arg("").arg(0),
            };
            invocation.arg(millis(PROBE_LEASE));
            let (kind, count, reset): (String, u64, i64) = self
                .coordination
                .run_script(&invocation)
                .await
                .map_err(|_| Unreachable)?;
            Ok(match kind.as_str() {
                "granted" => Lease::Granted {
                    units: count,
                    reset_epoch_seconds: reset,
                },
                "probe" => Lease::Probe,
                "probing" => Lease::Probing,
                "spent" => Lease::Spent(Duration::from_millis(count)),
                "share" => Lease::ShareSpent(Duration::from_millis(count)),
                // Not what the script answers: treated as a server that cannot be used.
                _ => return Err(Unreachable),
            })
        })
    }

    fn report<'a>(&'a self, bucket: &'a str, reported: Option<Reported>) -> LedgerFuture<'a, ()> {
        Box::pin(async move {
            let mut invocation = self.report.key(bucket_key(bucket));
            invocation.key(probe_key(bucket));
            if let Some(Reported { state, reserve }) = reported {
                invocation
                    .arg(state.limit)
                    .arg(state.remaining)
                    .arg(state.reset_epoch_seconds)
                    .arg(reserve)
                    .arg(KEEP_AFTER_RESET_S);
            }
            self.coordination
                .run_script::<i64>(&invocation)
                .await
                .map(drop)
                .map_err(|_| Unreachable)
        })
    }

    fn take_slot(&self, limit: u32) -> LedgerFuture<'_, SlotAnswer> {
        Box::pin(async move {
            match self.in_flight.enter_okta_request(limit).await {
                Place::Taken(place) => Ok(SlotAnswer::Taken(HeldSlot::new(place))),
                Place::Full => Ok(SlotAnswer::Full),
                // The client counts alone; a request is over before the server is back.
                Place::Alone(_) => Err(Unreachable),
            }
        })
    }

    fn replicas(&self) -> u32 {
        self.expected_replicas
    }
}

fn bucket_key(bucket: &str) -> String {
    format!("{KEY_PREFIX}budget:{bucket}")
}

fn probe_key(bucket: &str) -> String {
    format!("{KEY_PREFIX}budget-probe:{bucket}")
}

/// A caller's field in a bucket's hash.
fn caller_field(caller: &str) -> String {
    format!("caller:{}", digest(caller))
}
