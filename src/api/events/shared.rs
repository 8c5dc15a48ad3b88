//! The System Log pollers replicas share through the coordination server: per filter, the
//! replica holding the filter's lease polls Okta and appends each page to the filter's stream,
//! and every replica with watchers of the filter reads that stream and broadcasts its pages to
//! them, so Okta sees one poller per filter however many replicas there are.
//!
//! On the server, under `idgw:watch:<filter fingerprint>:`, `lease` names the leader with a
//! token (`epoch:nonce`, the epoch counted in `epoch`), set if absent with an expiry of two poll
//! intervals and renewed four times as often; `log` is the stream, one entry per page: the page
//! request (`position`), where the next starts (`next`), the events as callers receive them and
//! Okta's health. Appending runs as one script that first compares the token, so a leader that
//! lost its lease (paused past its expiry, cut off) can no longer write: the pages of the stream
//! continue one another across a change of leader, which starts where the stream's last page
//! ends. Entries older than [`STREAM_RETENTION`] or beyond [`STREAM_MAX_PAGES`] are trimmed.
//!
//! A replica that cannot reach the server polls Okta for its own watchers from where their last
//! page ended, and follows the stream again once the server answers. Whenever the pages a
//! replica broadcasts do not continue one another (it joins a stream mid-way, the stream lost
//! entries), its watchers catch up from their cursors and drop what they delivered by uuid.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::sync::{broadcast, watch};

use super::cursor::Position;
use super::poller::{LocalEnd, Polling, poll_locally, poll_once};
use super::watch::{PolledPage, PollerMessage, PositionedEvent, WatchHub};
use crate::coordination::{Coordination, KEY_PREFIX, Unavailable};
use crate::proto::Event;
use okta_client::Expression;

/// Pages a filter's stream keeps at least (trimmed approximately beyond): enough for a replica
/// that paused to read on where it stopped.
const STREAM_MAX_PAGES: usize = 1_000;
/// How long a page stays in the stream, and the stream of a filter nobody polls any more.
const STREAM_RETENTION: Duration = Duration::from_secs(600);
/// Pages read at once.
const READ_PAGES: usize = 64;
/// Longest wait for new pages in one read: how soon a reader notices its watchers left.
const READ_BLOCK: Duration = Duration::from_secs(1);

/// Takes the lease when nobody holds it; answers the new token, or nothing.
const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local epoch = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local token = epoch .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
return token
";

/// Extends the lease of the token's holder, and keeps its stream meanwhile.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 1
";

/// Gives the lease up, if the token still holds it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
";

/// Appends a page (its fields and values from `ARGV[4]` on) for the token's holder only,
/// bounding the stream by length and age.
const APPEND: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 4))
local clock = redis.call('TIME')
local oldest = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) - tonumber(ARGV[3])
redis.call('XTRIM', KEYS[2], 'MINID', '~', string.format('%d', oldest))
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return id
";

/// The server's side of the shared pollers.
#[derive(Clone)]
pub(super) struct SharedPolls {
    coordination: Coordination,
    poll_interval: Duration,
    acquire: Arc<redis::Script>,
    renew: Arc<redis::Script>,
    release: Arc<redis::Script>,
    append: Arc<redis::Script>,
}

/// One filter's keys on the server.
struct Keys {
    lease: String,
    epoch: String,
    stream: String,
}

impl Keys {
    /// The keys of the filter fingerprinted `key` (a digest: no filter is spelled out).
    fn of(key: &str) -> Self {
        let base = format!("{KEY_PREFIX}watch:{key}:");
        Self {
            lease: format!("{base}lease"),
            epoch: format!("{base}epoch"),
            stream: format!("{base}log"),
        }
    }
}

/// The lease this replica holds on a filter.
struct Lease {
    token: String,
}

/// One page of the stream, with Okta's health when it was polled.
struct StreamEntry {
    /// The page request that returned the events.
    position: Position,
    page: PolledPage,
    okta_problem: Option<String>,
}

impl StreamEntry {
    /// The entry's fields and values on the server; the events each length-delimited as
    /// callers receive them.
    fn fields(&self) -> [(&'static str, Vec<u8>); 4] {
        let mut events = Vec::new();
        for positioned in &self.page.events {
            // Writing into a Vec cannot fail.
            let _ = positioned.event.encode_length_delimited(&mut events);
        }
        [
            ("position", self.position.to_text().into_bytes()),
            ("next", self.page.next.to_text().into_bytes()),
            ("events", events),
            (
                "okta",
                self.okta_problem.clone().unwrap_or_default().into_bytes(),
            ),
        ]
    }

    fn decode(fields: &HashMap<String, Vec<u8>>) -> Option<Self> {
        let text = |name: &str| {
            fields
                .get(name)
                .and_then(|value| String::from_utf8(value.clone()).ok())
        };
        let position = Position::from_text(&text("position")?)?;
        let next = Position::from_text(&text("next")?)?;
        let mut bytes = fields.get("events")?.as_slice();
        let mut events = Vec::new();
        while !bytes.is_empty() {
            let event = Event::decode_length_delimited(&mut bytes).ok()?;
            events.push(PositionedEvent {
                position: position.clone(),
                uuid: event.uuid.clone(),
                event,
            });
        }
        let okta_problem = text("okta").filter(|problem| !problem.is_empty());
        Some(Self {
            position,
            page: PolledPage { events, next },
            okta_problem,
        })
    }
}

/// A stream read's answer: per stream, its entries as id and fields.
type StreamRead = Vec<(String, Vec<(String, HashMap<String, Vec<u8>>)>)>;

impl SharedPolls {
    /// The shared pollers on `coordination`'s server, for pollers pausing `poll_interval`.
    pub(super) fn new(coordination: Coordination, poll_interval: Duration) -> Self {
        Self {
            coordination,
            poll_interval,
            acquire: Arc::new(redis::Script::new(ACQUIRE)),
            renew: Arc::new(redis::Script::new(RENEW)),
            release: Arc::new(redis::Script::new(RELEASE)),
            append: Arc::new(redis::Script::new(APPEND)),
        }
    }

    /// How long a lease lasts unrenewed: two poll intervals, so another replica takes a dead
    /// leader's place before its watchers miss more than a poll or two.
    fn lease_ttl(&self) -> Duration {
        self.poll_interval * 2
    }

    /// How often the leader renews its lease, and how often the others try to take it.
    fn renew_every(&self) -> Duration {
        self.poll_interval / 2
    }

    /// True when the server answers.
    pub(super) async fn reachable(&self) -> bool {
        self.coordination
            .run::<String>(&redis::cmd("PING"))
            .await
            .is_ok()
    }

    /// Takes the lease on `keys`' filter when nobody holds it.
    async fn try_acquire(&self, keys: &Keys) -> Result<Option<Lease>, Unavailable> {
        let nonce = format!("{:016x}", rand::random::<u64>());
        let mut invocation = self.acquire.key(&keys.lease);
        invocation
            .key(&keys.epoch)
            .arg(nonce)
            .arg(millis(self.lease_ttl()))
            .arg(millis(STREAM_RETENTION));
        let token: Option<String> = self.coordination.run_script(&invocation).await?;
        Ok(token.map(|token| Lease { token }))
    }

    /// Extends `lease`; false once it is lost or the server cannot be reached.
    async fn renew(&self, keys: &Keys, lease: &Lease) -> bool {
        let mut invocation = self.renew.key(&keys.lease);
        invocation
            .key(&keys.stream)
            .key(&keys.epoch)
            .arg(&lease.token)
            .arg(millis(self.lease_ttl()))
            .arg(millis(STREAM_RETENTION));
        self.coordination
            .run_script::<i64>(&invocation)
            .await
            .is_ok_and(|renewed| renewed == 1)
    }

    /// Gives `lease` up, so another replica takes over at once; a lease already lost stays
    /// with its new holder.
    async fn release(&self, keys: &Keys, lease: &Lease) {
        let mut invocation = self.release.key(&keys.lease);
        invocation.arg(&lease.token);
        let _ = self.coordination.run_script::<i64>(&invocation).await;
    }

    /// Appends `entry` while `lease` holds; false once it is lost or the server cannot be
    /// reached.
    async fn append(&self, keys: &Keys, lease: &Lease, entry: &StreamEntry) -> bool {
        let mut invocation = self.append.key(&keys.lease);
        invocation
            .key(&keys.stream)
            .arg(&lease.token)
            .arg(STREAM_MAX_PAGES)
            .arg(millis(STREAM_RETENTION));
        for (field, value) in entry.fields() {
            invocation.arg(field).arg(value);
        }
        self.coordination
            .run_script::<Option<String>>(&invocation)
            .await
            .is_ok_and(|id| id.is_some())
    }

    /// The stream's last page, with its id, when there is one.
    async fn last_entry(&self, keys: &Keys) -> Result<Option<(String, StreamEntry)>, Unavailable> {
        let command = redis::cmd("XREVRANGE")
            .arg(&keys.stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .to_owned();
        let entries: Vec<(String, HashMap<String, Vec<u8>>)> =
            self.coordination.run(&command).await?;
        Ok(entries
            .into_iter()
            .next()
            .and_then(|(id, fields)| Some((id, StreamEntry::decode(&fields)?))))
    }
}

/// Serves the watchers of `key` on this replica from the shared poller, leading it while this
/// replica holds the filter's lease, until nobody here watches the filter or the server drains.
pub(super) async fn run(
    hub: WatchHub,
    key: String,
    filter: Option<Expression>,
    sender: broadcast::Sender<PollerMessage>,
    shared: SharedPolls,
) {
    let keys = Keys::of(&key);
    let (stop_sender, stop) = watch::channel(false);
    let following = async {
        follow(&hub, &key, &filter, &sender, &shared, &keys).await;
        let _ = stop_sender.send(true);
    };
    let leading = lead_while_watched(&hub, &key, &filter, &shared, &keys, stop);
    tokio::join!(following, leading);
}

/// How reading the stream ended.
enum StreamEnd {
    /// Nobody watches the filter any more, or the server drains.
    Stopped,
    /// The server cannot be reached.
    ServerLost,
}

/// Broadcasts the stream's pages to this replica's watchers, polling Okta for them alone
/// while the server cannot be reached.
async fn follow(
    hub: &WatchHub,
    key: &str,
    filter: &Option<Expression>,
    sender: &broadcast::Sender<PollerMessage>,
    shared: &SharedPolls,
    keys: &Keys,
) {
    loop {
        if let StreamEnd::Stopped = read_stream(hub, key, sender, shared, keys).await {
            return;
        }
        tracing::warn!(watch.filter = %key,
            "the shared system log poller cannot be reached; polling okta from this replica");
        match poll_locally(hub, key, filter, sender, Some(shared)).await {
            LocalEnd::Stopped => return,
            LocalEnd::ServerBack => {
                tracing::info!(watch.filter = %key, "following the shared system log poller again");
            }
        }
    }
}

/// Reads the stream from its last page on, broadcasting each page.
async fn read_stream(
    hub: &WatchHub,
    key: &str,
    sender: &broadcast::Sender<PollerMessage>,
    shared: &SharedPolls,
    keys: &Keys,
) -> StreamEnd {
    let connected = async {
        let connection = shared.coordination.blocking_connection(READ_BLOCK).await?;
        Ok::<_, Unavailable>((connection, shared.last_entry(keys).await?))
    };
    let Ok((mut connection, last)) = connected.await else {
        return StreamEnd::ServerLost;
    };
    let mut okta_problem = None;
    let mut last_id = "0-0".to_owned();
    if let Some((id, entry)) = last {
        // Joined where the stream ends: the watchers catch up to there unless they are there.
        let next = entry.page.next.clone();
        let resync = PolledPage {
            events: Vec::new(),
            next: next.clone(),
        };
        hub.publish(key, &next, resync);
        okta_problem = broadcast_health(sender, &okta_problem, entry.okta_problem);
        last_id = id;
    }
    loop {
        if hub.retire_if_unwatched(key, sender) {
            return StreamEnd::Stopped;
        }
        let read = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(READ_PAGES)
            .arg("BLOCK")
            .arg(millis(READ_BLOCK))
            .arg("STREAMS")
            .arg(&keys.stream)
            .arg(&last_id)
            .to_owned();
        let streams: Option<StreamRead> = tokio::select! {
            read = connection.run(&read) => match read {
                Ok(streams) => streams,
                Err(Unavailable) => return StreamEnd::ServerLost,
            },
            () = hub.drained() => return StreamEnd::Stopped,
        };
        for (id, fields) in streams
            .into_iter()
            .flatten()
            .flat_map(|(_, entries)| entries)
        {
            last_id = id;
            // A page this replica cannot read is left out: the next one then shows a gap.
            let Some(entry) = StreamEntry::decode(&fields) else {
                tracing::warn!(watch.filter = %key, "a shared system log page this replica cannot read");
                continue;
            };
            okta_problem = broadcast_health(sender, &okta_problem, entry.okta_problem);
            hub.publish(key, &entry.position, entry.page);
        }
    }
}

/// Tells the watchers when Okta's health changed; returns it.
fn broadcast_health(
    sender: &broadcast::Sender<PollerMessage>,
    known: &Option<String>,
    now: Option<String>,
) -> Option<String> {
    if *known != now {
        let _ = sender.send(PollerMessage::Health(now.clone()));
    }
    now
}

/// Resolves once `stop` turns true.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Tries to take the filter's lease, and leads while holding it, until `stop` turns true or
/// the server drains; gives the lease up then.
async fn lead_while_watched(
    hub: &WatchHub,
    key: &str,
    filter: &Option<Expression>,
    shared: &SharedPolls,
    keys: &Keys,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let acquired = tokio::select! {
            acquired = shared.try_acquire(keys) => acquired,
            () = stopped(&mut stop) => return,
            () = hub.drained() => return,
        };
        if let Ok(Some(lease)) = acquired {
            tracing::info!(watch.filter = %key, lease.token = %lease.token,
                "polling the system log for every replica");
            let stopping = tokio::select! {
                () = lead(hub, key, filter, shared, keys, &lease) => false,
                () = stopped(&mut stop) => true,
                () = hub.drained() => true,
            };
            shared.release(keys, &lease).await;
            if stopping {
                return;
            }
            tracing::info!(watch.filter = %key, lease.token = %lease.token,
                "no longer polling the system log for every replica");
        }
        tokio::select! {
            () = tokio::time::sleep(shared.renew_every()) => {}
            () = stopped(&mut stop) => return,
            () = hub.drained() => return,
        }
    }
}

/// Polls Okta where the stream ends and appends each page, renewing `lease` meanwhile; returns
/// once the lease is lost or the server cannot be reached.
async fn lead(
    hub: &WatchHub,
    key: &str,
    filter: &Option<Expression>,
    shared: &SharedPolls,
    keys: &Keys,
    lease: &Lease,
) {
    // A stream with no page yet starts where this replica's watchers are.
    let (start, known_problem) = match shared.last_entry(keys).await {
        Ok(Some((_, entry))) => (entry.page.next, entry.okta_problem),
        Ok(None) => match hub.position(key) {
            Some(position) => (position, None),
            None => return,
        },
        Err(Unavailable) => return,
    };
    let _polling = Polling::start();
    let renewing = async {
        loop {
            tokio::time::sleep(shared.renew_every()).await;
            if !shared.renew(keys, lease).await {
                return;
            }
        }
    };
    let polling = async {
        let (mut position, mut okta_problem) = (start, known_problem);
        loop {
            let polled = poll_once(hub, key, filter, &position).await;
            if polled.page.is_some() || polled.problem != okta_problem {
                let page = polled.page.unwrap_or_else(|| PolledPage {
                    events: Vec::new(),
                    next: position.clone(),
                });
                let entry = StreamEntry {
                    position,
                    page,
                    okta_problem: polled.problem,
                };
                if !shared.append(keys, lease, &entry).await {
                    return;
                }
                position = entry.page.next;
                okta_problem = entry.okta_problem;
            }
            tokio::time::sleep(polled.pause).await;
        }
    };
    tokio::select! {
        () = renewing => {}
        () = polling => {}
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use okta_client::Cursor;

    fn event(uuid: &str) -> Event {
        Event {
            uuid: uuid.to_owned(),
            event_type: "user.session.start".to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn a_page_reads_back_from_its_fields_as_it_was_written() {
        let position = Position::After(Cursor::parse("1732300000123_17").unwrap());
        for (events, okta_problem) in [
            (vec![event("u-1"), event("u-2")], None),
            (
                Vec::new(),
                Some("Unavailable: okta is unavailable".to_owned()),
            ),
        ] {
            let entry = StreamEntry {
                position: position.clone(),
                page: PolledPage {
                    events: events
                        .iter()
                        .map(|event| PositionedEvent {
                            position: position.clone(),
                            uuid: event.uuid.clone(),
                            event: event.clone(),
                        })
                        .collect(),
                    next: Position::After(Cursor::parse("1732300000999_18").unwrap()),
                },
                okta_problem,
            };
            let fields: HashMap<String, Vec<u8>> = entry
                .fields()
                .into_iter()
                .map(|(field, value)| (field.to_owned(), value))
                .collect();
            let read = StreamEntry::decode(&fields).unwrap();
            assert_eq!(read.position, entry.position);
            assert_eq!(read.page.next, entry.page.next);
            assert_eq!(read.okta_problem, entry.okta_problem);
            let uuids: Vec<&str> = read.page.events.iter().map(|e| e.uuid.as_str()).collect();
            let expected: Vec<&str> = events.iter().map(|e| e.uuid.as_str()).collect();
            assert_eq!(uuids, expected);
            assert!(read.page.events.iter().all(|e| e.position == position));
            assert_eq!(
                read.page
                    .events
                    .iter()
                    .map(|e| &e.event)
                    .collect::<Vec<_>>(),
                events.iter().collect::<Vec<_>>()
            );
        }
        assert!(StreamEntry::decode(&HashMap::new()).is_none());
    }
}
