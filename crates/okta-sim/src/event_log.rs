//! The System Log store: events in persistence (insertion) order, each with a sequence
//! number, plus the opaque `after` cursors of `GET /api/v1/logs`.

use std::collections::VecDeque;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;

use super::log_event::LogEvent;

/// Oldest events are dropped beyond this many, so a long-running demo cannot grow forever.
const CAPACITY: usize = 100_000;

/// One stored event.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Sequence number: persistence order, starting at 1.
    pub seq: u64,
    /// Publication time (millisecond precision).
    pub published: DateTime<Utc>,
    /// The event's uuid.
    pub uuid: String,
    /// The rendered JSON text (in Okta's field order).
    pub json: String,
    /// The same as a JSON value, for filters and keywords.
    pub value: Value,
}

impl Stored {
    /// The paging key of bounded queries: `(publishedMillis, seq)`.
    pub fn key(&self) -> (i64, u64) {
        (self.published.timestamp_millis(), self.seq)
    }

    /// The cursor positioned on this event.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            published_ms: self.published.timestamp_millis(),
            seq: self.seq,
            floor_ms: None,
        }
    }
}

/// The events, oldest persisted first.
#[derive(Debug, Default)]
pub struct EventLog {
    events: VecDeque<Stored>,
    last_seq: u64,
}

impl EventLog {
    /// Appends an event published at `published`; returns its uuid.
    pub fn push(&mut self, published: DateTime<Utc>, event: &LogEvent) -> String {
        self.last_seq += 1;
        let value = serde_json::to_value(event).unwrap_or(Value::Null);
        let json = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned());
        if self.events.len() >= CAPACITY {
            self.events.pop_front();
        }
        self.events.push_back(Stored {
            seq: self.last_seq,
            published: published.trunc_subsecs(3),
            uuid: event.uuid.clone(),
            json,
            value,
        });
        event.uuid.clone()
    }

    /// Every stored event in persistence order.
    pub fn iter(&self) -> impl Iterator<Item = &Stored> {
        self.events.iter()
    }

    /// Events persisted after sequence number `seq`, in persistence order.
    pub fn after_seq(&self, seq: u64) -> impl Iterator<Item = &Stored> {
        let start = self.events.partition_point(|e| e.seq <= seq);
        self.events.range(start..)
    }

    /// How many events are stored.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is stored.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Forgets every event (sequence numbers keep counting up).
    pub fn clear(&mut self) {
        self.events.clear();
    }

    /// A cursor after everything persisted so far.
    pub fn end_cursor(&self) -> Cursor {
        Cursor {
            published_ms: self
                .events
                .back()
                .map(|e| e.published.timestamp_millis())
                .unwrap_or(0),
            seq: self.last_seq,
            floor_ms: None,
        }
    }
}

/// An `after` position: `{publishedMillis}_{sequence}`, optionally `_{sinceMillis}` for
/// descending bounded queries (Okta drops `since` from next links, so the cursor keeps it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// `published` of the event the cursor sits on, epoch milliseconds.
    pub published_ms: i64,
    /// Sequence number of that event.
    pub seq: u64,
    /// Lower `published` bound of the query that made the cursor, epoch milliseconds.
    pub floor_ms: Option<i64>,
}

impl Cursor {
    /// Parses the cursor text; `None` if it is not one.
    pub fn parse(s: &str) -> Option<Cursor> {
        let mut parts = s.split('_');
        let published_ms = parts.next()?.parse::<i64>().ok()?;
        let seq = parts.next()?.parse::<u64>().ok()?;
        let floor_ms = match parts.next() {
            None => None,
            Some(f) => Some(f.parse::<i64>().ok()?),
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Cursor {
            published_ms,
            seq,
            floor_ms,
        })
    }

    /// The cursor text.
    pub fn text(&self) -> String {
        match self.floor_ms {
            Some(f) => format!("{}_{}_{f}", self.published_ms, self.seq),
            None => format!("{}_{}", self.published_ms, self.seq),
        }
    }

    /// The paging key `(publishedMillis, seq)`.
    pub fn key(&self) -> (i64, u64) {
        (self.published_ms, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        for s in ["1732300000123_17", "0_0", "5_6_-7"] {
            assert_eq!(Cursor::parse(s).unwrap().text(), s);
        }
        for bad in ["", "x", "1_", "_1", "1_2_3_4", "1_-2", "a_b"] {
            assert!(Cursor::parse(bad).is_none(), "{bad}");
        }
    }
}
