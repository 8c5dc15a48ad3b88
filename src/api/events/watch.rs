//! WatchEvents: one poller per distinct filter follows Okta's polling query and broadcasts each
//! page to every watcher of that filter, so watchers do not multiply Okta calls. A watcher that
//! resumes from a cursor (or falls behind the broadcast) first catches up on its own from its
//! cursor, then follows the shared poller, dropping what it already delivered by uuid: every
//! event is delivered once, in Okta's order. Keep-alives carry a resume cursor too: the last
//! delivered event, or the poller position the watcher has been offered everything before, so a
//! watcher that has received no event can still resume without a gap.
//!
//! With a coordination server, the pages come from the poller the replicas share
//! (`shared.rs`) rather than from one of this replica's own (`poller.rs`); a replica that
//! cannot reach the server polls for its watchers alone meanwhile. When the pages a watcher
//! follows stop continuing one another (on joining the shared poller, or on leaving it), the
//! watcher catches up from its cursor as one that fell behind does.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::convert::{event_from_okta, uuid_of};
use super::cursor::{self, Position, ResumePoint};
use super::poller::{describe, fetch, is_full, pause_after_error, poll_locally};
use super::shared::{self, SharedPolls};
use crate::api::token_key::TokenKey;
use crate::config::{Checking, EventsSettings, Section, checked};
use crate::coordination::Coordination;
use crate::proto::watch_events_response::Message;
use crate::proto::{Event, KeepAlive, WatchEventsResponse};
use okta_client::{Expression, OktaClient};

/// Pages a poller may broadcast ahead of its slowest watcher before that watcher must catch up
/// on its own.
const BROADCAST_PAGES: usize = 64;
/// Messages buffered towards one caller.
const WATCH_BUFFER: usize = 256;
/// Delivered uuids a watcher remembers, to drop events seen both while catching up and in the
/// broadcast.
const REMEMBERED_UUIDS: usize = 50_000;

/// Open WatchEvents streams, for the metrics; created on first use, after the meter provider
/// is installed.
static STREAMS: std::sync::LazyLock<opentelemetry::metrics::UpDownCounter<i64>> =
    std::sync::LazyLock::new(|| {
        opentelemetry::global::meter(crate::telemetry::INSTRUMENTATION_NAME)
            .i64_up_down_counter("identity_gateway.watch.streams")
            .with_description("Open WatchEvents streams")
            .build()
    });

/// How the pollers pace themselves and how often idle streams send keep-alives.
#[derive(Clone, Debug)]
pub struct WatchSettings {
    /// Shortest pause between two polls of one filter when Okta has nothing new.
    pub poll_interval: Duration,
    /// Keep-alive period of an idle stream.
    pub keepalive_interval: Duration,
    /// Share of the logs rate-limit bucket left unused for other calls.
    pub rate_limit_reserve_percent: u32,
}

impl From<&EventsSettings> for WatchSettings {
    fn from(settings: &EventsSettings) -> Self {
        Self {
            poll_interval: Duration::from_millis(settings.poll_interval_ms),
            keepalive_interval: Duration::from_millis(settings.keepalive_interval_ms),
            rate_limit_reserve_percent: settings.rate_limit_reserve_percent,
        }
    }
}

impl Section for EventsSettings {
    type Valid = ();

    fn validate(&self, _checking: &Checking<'_>) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.poll_interval_ms == 0 || self.keepalive_interval_ms == 0 {
            problems.push(
                "`events.poll_interval_ms` and `events.keepalive_interval_ms` must be greater \
                 than zero"
                    .to_owned(),
            );
        }
        if self.rate_limit_reserve_percent > 90 {
            problems.push("`events.rate_limit_reserve_percent` must be at most 90".to_owned());
        }
        checked(problems, ())
    }
}

/// Where a new watch starts.
pub enum WatchStart {
    /// With the events recorded from now on.
    Live,
    /// With the events recorded since a time.
    Since(DateTime<Utc>),
    /// After the event a resume cursor names.
    Resume(ResumePoint),
}

/// What a poller tells its watchers.
#[derive(Clone, Debug)]
pub(super) enum PollerMessage {
    /// A page of new events, or a new poller position with none.
    Page(Arc<PolledPage>),
    /// Okta became reachable again (`None`) or not (`Some(problem)`).
    Health(Option<String>),
    /// The pages that follow do not continue the ones before: catch up from your cursor first.
    Gap,
}

/// What one poll returned.
#[derive(Debug)]
pub(super) struct PolledPage {
    /// The page's events, in Okta's order.
    pub(super) events: Vec<PositionedEvent>,
    /// Where the next poll starts: everything before it has been broadcast.
    pub(super) next: Position,
}

/// A running poller: its broadcast and the position of its next poll.
struct PollerHandle {
    sender: broadcast::Sender<PollerMessage>,
    /// Changed only with the broadcast of the page that moved it, under the hub's lock.
    position: Position,
}

/// An event with the page request that returned it (for its resume cursor).
#[derive(Clone, Debug)]
pub(super) struct PositionedEvent {
    /// The page request that returned the event.
    pub(super) position: Position,
    /// Okta's id of the event, by which watchers drop repeats.
    pub(super) uuid: String,
    /// The event as callers receive it.
    pub(super) event: Event,
}

/// The shared pollers, by filter fingerprint.
#[derive(Clone)]
pub struct WatchHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    okta: OktaClient,
    settings: WatchSettings,
    /// Seals the resume cursors handed to watchers.
    token_key: TokenKey,
    pollers: Mutex<HashMap<String, PollerHandle>>,
    draining: watch::Receiver<bool>,
    /// The pollers replicas share, with a coordination server.
    shared: Option<SharedPolls>,
}

impl WatchHub {
    /// `draining` turns true when the server drains: every stream then ends with OK; resume
    /// cursors are sealed with `token_key`. With `coordination`, replicas share one poller per
    /// filter through its server.
    pub fn new(
        okta: OktaClient,
        settings: WatchSettings,
        draining: watch::Receiver<bool>,
        token_key: TokenKey,
        coordination: Option<Coordination>,
    ) -> Self {
        let shared =
            coordination.map(|coordination| SharedPolls::new(coordination, settings.poll_interval));
        let inner = HubInner {
            okta,
            settings,
            token_key,
            pollers: Mutex::new(HashMap::new()),
            draining,
            shared,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Starts a watch of the events matching `filter` (fingerprinted as `key`).
    pub fn watch(
        &self,
        key: String,
        filter: Option<Expression>,
        start: WatchStart,
    ) -> ReceiverStream<Result<WatchEventsResponse, Status>> {
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        let (poller, poller_position) = self.subscribe(&key, &filter);
        let (resume, catch_up) = match start {
            WatchStart::Live => (
                ResumePoint {
                    position: poller_position,
                    uuid: None,
                },
                false,
            ),
            WatchStart::Since(time) => (
                ResumePoint {
                    position: Position::Since(time),
                    uuid: None,
                },
                true,
            ),
            WatchStart::Resume(point) => (point, true),
        };
        let watcher = Watcher {
            hub: self.clone(),
            key,
            filter,
            sender,
            remembered: RememberedUuids::default(),
            resume,
            resume_at_poller: !catch_up,
            okta_problem: None,
        };
        tokio::spawn(watcher.run(poller, catch_up));
        ReceiverStream::new(receiver)
    }

    /// Joins the poller of `key`, starting one (at "now") when there is none. Returns the
    /// poller's position at joining: the receiver gets every page from there on.
    fn subscribe(
        &self,
        key: &str,
        filter: &Option<Expression>,
    ) -> (broadcast::Receiver<PollerMessage>, Position) {
        let mut pollers = self.pollers();
        if let Some(poller) = pollers.get(key) {
            return (poller.sender.subscribe(), poller.position.clone());
        }
        let (sender, receiver) = broadcast::channel(BROADCAST_PAGES);
        let position = Position::Since(Utc::now());
        pollers.insert(
            key.to_owned(),
            PollerHandle {
                sender: sender.clone(),
                position: position.clone(),
            },
        );
        let (hub, key, filter) = (self.clone(), key.to_owned(), filter.clone());
        match self.inner.shared.clone() {
            Some(shared) => tokio::spawn(shared::run(hub, key, filter, sender, shared)),
            None => tokio::spawn(async move {
                poll_locally(&hub, &key, &filter, &sender, None).await;
            }),
        };
        (receiver, position)
    }

    /// Broadcasts a page of the poller of `key` that starts at `from` and records its next
    /// position, under the lock [`subscribe`](Self::subscribe) takes: a joining watcher's start
    /// position and the pages it receives neither overlap nor leave a gap. A page that does not
    /// start where the last one ended is preceded by [`PollerMessage::Gap`]; a page that moves
    /// nothing is not sent.
    pub(super) fn publish(&self, key: &str, from: &Position, page: PolledPage) {
        let mut pollers = self.pollers();
        let Some(poller) = pollers.get_mut(key) else {
            return;
        };
        if *from != poller.position {
            let _ = poller.sender.send(PollerMessage::Gap);
        } else if page.events.is_empty() && page.next == poller.position {
            return;
        }
        poller.position = page.next.clone();
        let _ = poller.sender.send(PollerMessage::Page(Arc::new(page)));
    }

    /// Where the last page broadcast to the watchers of `key` ended; `None` once its poller
    /// is retired.
    pub(super) fn position(&self, key: &str) -> Option<Position> {
        self.pollers()
            .get(key)
            .map(|poller| poller.position.clone())
    }

    /// The Okta client the pollers and catch-ups read with.
    pub(super) fn okta(&self) -> &OktaClient {
        &self.inner.okta
    }

    /// How the pollers pace themselves.
    pub(super) fn settings(&self) -> &WatchSettings {
        &self.inner.settings
    }

    /// Removes the poller of `key` when nobody watches it any more. Checked under the same lock
    /// as [`subscribe`](Self::subscribe), so a joining watcher never lands on a stopped poller.
    pub(super) fn retire_if_unwatched(
        &self,
        key: &str,
        sender: &broadcast::Sender<PollerMessage>,
    ) -> bool {
        let mut pollers = self.pollers();
        if sender.receiver_count() > 0 {
            return false;
        }
        pollers.remove(key);
        true
    }

    /// The running pollers; every change to them and every page broadcast happens under this lock.
    fn pollers(&self) -> MutexGuard<'_, HashMap<String, PollerHandle>> {
        self.inner
            .pollers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Resolves once the server drains.
    pub(super) async fn drained(&self) {
        let mut draining = self.inner.draining.clone();
        let _ = draining.wait_for(|draining| *draining).await;
    }
}

/// The uuids a watcher delivered recently, bounded.
#[derive(Default)]
struct RememberedUuids {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl RememberedUuids {
    /// True when `uuid` is new (and remembers it). Events without a uuid are always new.
    fn first_time(&mut self, uuid: &str) -> bool {
        if uuid.is_empty() {
            return true;
        }
        if !self.set.insert(uuid.to_owned()) {
            return false;
        }
        self.order.push_back(uuid.to_owned());
        if self.order.len() > REMEMBERED_UUIDS {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
        true
    }
}

/// How following the shared poller ended.
enum Followed {
    /// The caller left, the server drains, or the poller stopped.
    Stop,
    /// The watcher fell behind the broadcast and must catch up on its own.
    FellBehind,
    /// The poller's pages stopped continuing one another: catch up on its own, then go on
    /// following.
    Gap,
}

struct Watcher {
    hub: WatchHub,
    key: String,
    filter: Option<Expression>,
    sender: mpsc::Sender<Result<WatchEventsResponse, Status>>,
    remembered: RememberedUuids,
    /// Where a resume continues: everything before it has been offered to the caller.
    resume: ResumePoint,
    /// True when `resume` is the position of the last poller page this watcher followed. False
    /// after a catch-up, until a page ends with a delivered event: a page broadcast during the
    /// catch-up may end before what the catch-up delivered.
    resume_at_poller: bool,
    okta_problem: Option<String>,
}

impl Watcher {
    async fn run(self, poller: broadcast::Receiver<PollerMessage>, catch_up: bool) {
        STREAMS.add(1, &[]);
        self.stream(poller, catch_up).await;
        STREAMS.add(-1, &[]);
    }

    /// Follows `receiver`, first catching up from `resume` when `catch_up` is set.
    async fn stream(
        mut self,
        mut receiver: broadcast::Receiver<PollerMessage>,
        mut catch_up: bool,
    ) {
        loop {
            if catch_up {
                self.resume_at_poller = false;
                let ResumePoint { position, uuid } = self.resume.clone();
                if !self.catch_up(position, uuid).await {
                    return;
                }
            }
            match self.follow(&mut receiver).await {
                Followed::Stop => return,
                Followed::FellBehind => {
                    tracing::info!(watch.filter = %self.key, "watcher fell behind; catching up from its cursor");
                    receiver = self.hub.subscribe(&self.key, &self.filter).0;
                    catch_up = true;
                }
                Followed::Gap => catch_up = true,
            }
        }
    }

    /// Reads pages from `position` until Okta has nothing more; false when the stream must end.
    async fn catch_up(&mut self, mut position: Position, mut skip_through: Option<String>) -> bool {
        loop {
            let page = match fetch(self.hub.okta(), &self.filter, &position).await {
                Ok(page) => page,
                Err(error) => {
                    self.okta_problem = Some(describe(&error));
                    if !self.send_keepalive().await {
                        return false;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(pause_after_error(&error, &self.hub.inner.settings)) => continue,
                        () = self.hub.drained() => return false,
                        () = self.sender.closed() => return false,
                    }
                }
            };
            self.okta_problem = None;
            let page_len = page.items.len();
            let mut events = page.items;
            if let Some(uuid) = skip_through.take() {
                if let Some(index) = events.iter().position(|event| uuid_of(event) == uuid) {
                    events.drain(..=index);
                }
            }
            for event in events {
                let uuid = uuid_of(&event).to_owned();
                if !self.deliver(&position, &uuid, event_from_okta(event)).await {
                    return false;
                }
            }
            match page.next {
                Some(next) if is_full(page_len) => position = Position::After(next),
                _ => return true,
            }
        }
    }

    /// Delivers what the shared poller broadcasts, with keep-alives while idle.
    async fn follow(&mut self, receiver: &mut broadcast::Receiver<PollerMessage>) -> Followed {
        let period = self.hub.inner.settings.keepalive_interval;
        let mut keepalive = tokio::time::interval_at(Instant::now() + period, period);
        loop {
            tokio::select! {
                message = receiver.recv() => match message {
                    Ok(PollerMessage::Page(page)) => {
                        for positioned in &page.events {
                            let event = positioned.event.clone();
                            if !self.deliver(&positioned.position, &positioned.uuid, event).await {
                                return Followed::Stop;
                            }
                        }
                        self.passed(&page);
                        if !page.events.is_empty() {
                            keepalive.reset();
                        }
                    }
                    Ok(PollerMessage::Health(problem)) => self.okta_problem = problem,
                    Ok(PollerMessage::Gap) => return Followed::Gap,
                    Err(broadcast::error::RecvError::Lagged(_)) => return Followed::FellBehind,
                    Err(broadcast::error::RecvError::Closed) => return Followed::Stop,
                },
                _ = keepalive.tick() => {
                    if !self.send_keepalive().await {
                        return Followed::Stop;
                    }
                }
                () = self.hub.drained() => return Followed::Stop,
                () = self.sender.closed() => return Followed::Stop,
            }
        }
    }

    /// Moves `resume` to the end of a followed poller page when nothing delivered lies beyond it.
    fn passed(&mut self, page: &PolledPage) {
        let ends_at_resume = page
            .events
            .last()
            .is_some_and(|last| self.resume.uuid.as_deref() == Some(last.uuid.as_str()));
        self.resume_at_poller |= ends_at_resume;
        if self.resume_at_poller {
            self.resume = ResumePoint {
                position: page.next.clone(),
                uuid: None,
            };
        }
    }

    /// Sends an event unless already delivered; false when the caller is gone.
    async fn deliver(&mut self, position: &Position, uuid: &str, event: Event) -> bool {
        if !self.remembered.first_time(uuid) {
            return true;
        }
        self.resume = ResumePoint {
            position: position.clone(),
            uuid: (!uuid.is_empty()).then(|| uuid.to_owned()),
        };
        let message = WatchEventsResponse {
            message: Some(Message::Event(event)),
            resume_cursor: self.resume_cursor(),
        };
        self.sender.send(Ok(message)).await.is_ok()
    }

    async fn send_keepalive(&self) -> bool {
        let now = Utc::now();
        let keep_alive = KeepAlive {
            time: Some(prost_types::Timestamp {
                seconds: now.timestamp(),
                nanos: i32::try_from(now.timestamp_subsec_nanos()).unwrap_or(0),
            }),
            okta_reachable: self.okta_problem.is_none(),
            okta_problem: self.okta_problem.clone().unwrap_or_default(),
        };
        let message = WatchEventsResponse {
            message: Some(Message::KeepAlive(keep_alive)),
            resume_cursor: self.resume_cursor(),
        };
        self.sender.send(Ok(message)).await.is_ok()
    }

    fn resume_cursor(&self) -> String {
        cursor::encode(&self.hub.inner.token_key, &self.key, &self.resume)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{assert_reported, load};

    #[test]
    fn polling_needs_intervals_and_leaves_at_most_90_percent_unused() {
        let settings = load(&[
            ("IDGW_EVENTS__KEEPALIVE_INTERVAL_MS", "0"),
            ("IDGW_EVENTS__RATE_LIMIT_RESERVE_PERCENT", "91"),
        ]);
        assert_reported(
            &settings,
            &[
                "`events.poll_interval_ms` and `events.keepalive_interval_ms` must be greater than \
                 zero",
                "`events.rate_limit_reserve_percent` must be at most 90",
            ],
        );
    }

    #[test]
    fn remembered_uuids_drop_repeats_and_stay_bounded() {
        let mut remembered = RememberedUuids::default();
        assert!(remembered.first_time("a"));
        assert!(!remembered.first_time("a"));
        assert!(remembered.first_time(""));
        assert!(remembered.first_time(""));
        for index in 0..REMEMBERED_UUIDS + 10 {
            remembered.first_time(&index.to_string());
        }
        assert!(remembered.order.len() <= REMEMBERED_UUIDS);
    }
}
