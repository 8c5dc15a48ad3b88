//! Okta's clock as seen from ours. Okta stamps objects (`created`, `lastUpdated`) with its own
//! clock, so deciding whether something happened before or after one of our requests needs the
//! offset between the two clocks. Each response's `Date` header (whole seconds, generated
//! between our request's departure and the answer's arrival) bounds that offset from both sides;
//! the tightest bounds seen are kept, widened with age by the most two clocks may drift apart.
//! Local time is the monotonic clock, so a step of our wall clock cannot move the bounds.

use std::cell::Cell;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use chrono::{DateTime, Utc};

/// How fast two clocks may drift apart: 500 ppm, NTP's bound on a clock's slew.
const DRIFT_PER_SECOND: f64 = 500e-6;
/// The resolution of the `Date` header: whole seconds, truncated.
const DATE_RESOLUTION_MS: i64 = 1000;

/// The interval in which Okta's clock read a moment of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OktaTime {
    /// Okta's clock read at least this.
    pub earliest: DateTime<Utc>,
    /// Okta's clock read at most this.
    pub latest: DateTime<Utc>,
}

/// One bound on the offset (Okta's clock in ms minus ours, since `anchor`) and when it was taken.
#[derive(Clone, Copy, Debug)]
struct Bound {
    offset_ms: i64,
    taken: Instant,
}

impl Bound {
    /// The bound's slack at `at`: how far the clocks may drift apart between then and when the
    /// bound was taken.
    fn drift_ms(&self, at: Instant) -> i64 {
        let apart = at
            .saturating_duration_since(self.taken)
            .max(self.taken.saturating_duration_since(at));
        (apart.as_secs_f64() * DRIFT_PER_SECOND * 1000.0).ceil() as i64
    }
}

#[derive(Default)]
struct Bounds {
    /// The offset is at least this (less drift).
    low: Option<Bound>,
    /// The offset is at most this (plus drift).
    high: Option<Bound>,
    /// The last `Date` read and its milliseconds: the header changes once a second, so most
    /// answers repeat it and need no parse.
    last_date: Option<(String, i64)>,
}

/// The measured offset between our clock and Okta's, shared by the client's clones.
pub(crate) struct OktaClock {
    anchor: Instant,
    anchor_utc: DateTime<Utc>,
    bounds: Mutex<Bounds>,
}

impl OktaClock {
    /// A clock with nothing measured yet.
    pub(crate) fn new() -> Self {
        Self {
            anchor: Instant::now(),
            anchor_utc: Utc::now(),
            bounds: Mutex::new(Bounds::default()),
        }
    }

    /// Milliseconds of our clock at `at`, on the UTC scale of the anchor.
    fn local_ms(&self, at: Instant) -> i64 {
        let since = i64::try_from(at.saturating_duration_since(self.anchor).as_millis())
            .unwrap_or(i64::MAX / 2);
        self.anchor_utc.timestamp_millis().saturating_add(since)
    }

    /// Records the `Date` of an answer to a request that left at `sent` and was answered at
    /// `received` (an unreadable date is ignored).
    pub(crate) fn observe(&self, sent: Instant, received: Instant, date: &str) {
        let date = date.trim();
        let mut bounds = self.bounds.lock().unwrap_or_else(PoisonError::into_inner);
        let okta_ms = match &bounds.last_date {
            Some((last, okta_ms)) if last == date => *okta_ms,
            _ => {
                let Ok(okta) = DateTime::parse_from_rfc2822(date) else {
                    return;
                };
                let okta_ms = okta.timestamp_millis();
                bounds.last_date = Some((date.to_owned(), okta_ms));
                okta_ms
            }
        };
        // Okta generated the answer between `sent` and `received`, at a time its clock
        // truncated to `okta_ms`.
        let low = Bound {
            offset_ms: okta_ms - self.local_ms(received),
            taken: received,
        };
        let high = Bound {
            offset_ms: okta_ms + DATE_RESOLUTION_MS - self.local_ms(sent),
            taken: received,
        };
        let now = received;
        let tighter_low = bounds.low.is_none_or(|kept| {
            low.offset_ms - low.drift_ms(now) >= kept.offset_ms - kept.drift_ms(now)
        });
        if tighter_low {
            bounds.low = Some(low);
        }
        let tighter_high = bounds.high.is_none_or(|kept| {
            high.offset_ms + high.drift_ms(now) <= kept.offset_ms + kept.drift_ms(now)
        });
        if tighter_high {
            bounds.high = Some(high);
        }
    }

    /// What Okta's clock read at our moment `at`; `None` until an answer with a `Date` arrived.
    pub(crate) fn okta_time_at(&self, at: Instant) -> Option<OktaTime> {
        let bounds = self.bounds.lock().unwrap_or_else(PoisonError::into_inner);
        let (low, high) = (bounds.low?, bounds.high?);
        let local = self.local_ms(at);
        let earliest = local + low.offset_ms - low.drift_ms(at);
        let latest = local + high.offset_ms + high.drift_ms(at);
        Some(OktaTime {
            earliest: DateTime::from_timestamp_millis(earliest)?,
            latest: DateTime::from_timestamp_millis(latest)?,
        })
    }
}

tokio::task_local! {
    static DEPARTURE: Cell<Option<Instant>>;
}

/// Runs `work` and returns when its first request to Okta left (`None`: none left), so a write
/// whose answer was lost can be compared with what Okta stamped afterwards.
pub async fn noting_departure<F: Future>(work: F) -> (F::Output, Option<Instant>) {
    DEPARTURE
        .scope(Cell::new(None), async {
            let output = work.await;
            (output, DEPARTURE.with(Cell::get))
        })
        .await
}

/// Called by `send` as each request leaves; the first one inside [`noting_departure`] counts.
pub(crate) fn departing(at: Instant) {
    let _ = DEPARTURE.try_with(|departure| {
        if departure.get().is_none() {
            departure.set(Some(at));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn date(clock: &OktaClock, at: Instant, skew_ms: i64) -> String {
        let okta = DateTime::from_timestamp_millis(clock.local_ms(at) + skew_ms).unwrap();
        okta.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
    }

    #[test]
    fn the_bounds_hold_okta_s_time_whatever_the_skew() {
        for skew_ms in [-90_000, -1_500, 0, 700, 42_000] {
            let clock = OktaClock::new();
            assert!(clock.okta_time_at(Instant::now()).is_none());
            let sent = Instant::now();
            let received = sent + Duration::from_millis(40);
            clock.observe(
                sent,
                received,
                &date(&clock, sent + Duration::from_millis(20), skew_ms),
            );
            let at = received + Duration::from_millis(5);
            let okta = clock.okta_time_at(at).unwrap();
            let truth = DateTime::from_timestamp_millis(clock.local_ms(at) + skew_ms).unwrap();
            assert!(
                okta.earliest <= truth && truth <= okta.latest,
                "{skew_ms}: {okta:?} {truth}"
            );
            assert!(okta.latest - okta.earliest <= chrono::TimeDelta::milliseconds(1_100));
        }
    }

    #[test]
    fn an_unreadable_date_measures_nothing() {
        let clock = OktaClock::new();
        let now = Instant::now();
        clock.observe(now, now, "yesterday");
        assert!(clock.okta_time_at(now).is_none());
    }

    #[test]
    fn the_departure_of_the_first_request_is_noted() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let first = Instant::now();
        let ((), departure) = runtime.block_on(noting_departure(async move {
            departing(first);
            departing(first + Duration::from_secs(1));
        }));
        assert_eq!(departure, Some(first));
        departing(first); // outside a scope: ignored
    }
}
