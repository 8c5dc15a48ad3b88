//! Events described by tests, demos and seed documents (`POST /__sim/logs/events`, the seed
//! format's `events:` list), turned into full [`LogEvent`](super::log_event::LogEvent)s.
//!
//! ```json
//! {"eventType": "user.session.start", "login": "ada@example.com", "ip": "203.0.113.7",
//!  "outcome": "FAILURE", "reason": "INVALID_CREDENTIALS", "published": "2025-09-29T03:49:50.123Z",
//!  "country": "United States", "city": "New York"}
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Map;

use super::ids;
use super::log_event::{self, Actor, EventInput, Geo, GeoPoint, Target};
use super::logs::parse_ts;
use super::state::Org;

/// Okta's `outcome.result` values.
pub const RESULTS: &[&str] = &[
    "SUCCESS",
    "FAILURE",
    "SKIPPED",
    "ALLOW",
    "DENY",
    "CHALLENGE",
    "UNKNOWN",
    "RATE_LIMIT",
    "DEFERRED",
    "SCHEDULED",
    "ABANDONED",
    "UNANSWERED",
];

/// Okta's severities.
pub const SEVERITIES: &[&str] = &["DEBUG", "INFO", "WARN", "ERROR"];

/// A browser user agent for login events without one.
const DEFAULT_BROWSER: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.0.0 Safari/537.36";

/// One event to inject. Only `eventType` is required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventSpec {
    /// Event type, e.g. `user.session.start`.
    pub event_type: String,
    /// Actor login: a known user fills actor id, alternateId and displayName; an unknown
    /// login gets an id derived from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// Actor id (overrides the one found from `login`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    /// Client address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// `outcome.result` (default `SUCCESS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// `outcome.reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Severity (default INFO; WARN for a failed `user.session.start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// ISO-8601 publication time (default now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// Display message (default for `user.session.start`: `User login to Okta`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_message: Option<String>,
    /// Legacy event type (default for `user.session.start`: by outcome).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_event_type: Option<String>,
    /// Targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<TargetSpec>>,
    /// Raw user agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Client country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Client state or province.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Client city.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
}

/// One injected target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetSpec {
    /// Object id (default: derived from the other fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Object type, e.g. `User`, `AppInstance` (default `User`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Alternate id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternate_id: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// Body of `POST /__sim/logs/events`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectDoc {
    /// The events, persisted in this order.
    pub events: Vec<EventSpec>,
}

/// `"First Last"` of a user, or its login.
pub fn display_name(org: &Org, user_id: &str) -> Option<String> {
    let u = org.users.get(user_id)?;
    let s = |k: &str| u.profile.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let name = format!("{} {}", s("firstName"), s("lastName"));
    Some(if name.trim().is_empty() {
        u.login().to_owned()
    } else {
        name.trim().to_owned()
    })
}

/// Okta's system actor, for events without a login or actor id.
fn system_actor() -> Actor {
    Actor {
        id: "0oasimsystemprincip1".to_owned(),
        kind: "SystemPrincipal".to_owned(),
        alternate_id: Some("system@okta.com".to_owned()),
        display_name: Some("Okta System".to_owned()),
        detail_entry: None,
    }
}

fn actor(org: &Org, spec: &EventSpec) -> Actor {
    let mut a = match spec.login.as_deref().map(str::trim) {
        Some(login) if !login.is_empty() => match org.find_user(login) {
            Some(u) => Actor {
                id: u.id.clone(),
                kind: "User".to_owned(),
                alternate_id: Some(u.login().to_owned()),
                display_name: display_name(org, &u.id),
                detail_entry: None,
            },
            None => Actor {
                id: ids::stable_id("00u", &format!("actor:{}", login.to_lowercase())),
                kind: "User".to_owned(),
                alternate_id: Some(login.to_owned()),
                display_name: Some(login.to_owned()),
                detail_entry: None,
            },
        },
        _ => match &spec.actor_id {
            Some(id) => Actor {
                id: id.clone(),
                kind: "User".to_owned(),
                alternate_id: None,
                display_name: None,
                detail_entry: None,
            },
            None => system_actor(),
        },
    };
    if let Some(id) = &spec.actor_id {
        a.id = id.clone();
    }
    a
}

fn target(t: &TargetSpec) -> Target {
    let kind = t.kind.clone().unwrap_or_else(|| "User".to_owned());
    let id = t.id.clone().unwrap_or_else(|| {
        let key = format!(
            "target:{kind}:{}:{}",
            t.alternate_id.as_deref().unwrap_or(""),
            t.display_name.as_deref().unwrap_or("")
        );
        ids::stable_id("0oa", &key)
    });
    Actor {
        id,
        kind,
        alternate_id: t.alternate_id.clone(),
        display_name: t.display_name.clone(),
        detail_entry: None,
    }
}

/// Coordinates of a few well-known cities, so demo and test events look real.
fn point(city: &str) -> Option<GeoPoint> {
    let (lat, lon) = match city {
        "New York" => (40.7128, -74.006),
        "San Francisco" => (37.7749, -122.4194),
        "Seattle" => (47.6062, -122.3321),
        "London" => (51.5074, -0.1278),
        "Berlin" => (52.52, 13.405),
        "Toronto" => (43.6532, -79.3832),
        "Lagos" => (6.5244, 3.3792),
        "Sydney" => (-33.8688, 151.2093),
        _ => return None,
    };
    Some(GeoPoint { lat, lon })
}

fn geo(spec: &EventSpec) -> Option<Geo> {
    if spec.country.is_none() && spec.city.is_none() && spec.state.is_none() {
        return None;
    }
    Some(Geo {
        city: spec.city.clone(),
        state: spec.state.clone(),
        country: spec.country.clone(),
        postal_code: None,
        geolocation: spec.city.as_deref().and_then(point),
    })
}

fn one_of(what: &str, value: Option<&str>, allowed: &[&str]) -> Result<Option<String>, String> {
    match value {
        None => Ok(None),
        Some(v) => {
            let up = v.trim().to_ascii_uppercase();
            if allowed.contains(&up.as_str()) {
                Ok(Some(up))
            } else {
                Err(format!("{what} must be one of {}", allowed.join(", ")))
            }
        }
    }
}

/// Checks a spec and resolves it against the org into an event input.
pub fn resolve(org: &Org, spec: &EventSpec, now: DateTime<Utc>) -> Result<EventInput, String> {
    let event_type = spec.event_type.trim();
    if event_type.is_empty() || event_type.len() > 255 {
        return Err("eventType must be a non-empty string".to_owned());
    }
    let result = one_of("outcome", spec.outcome.as_deref(), RESULTS)?
        .unwrap_or_else(|| "SUCCESS".to_owned());
    let failed = result == "FAILURE";
    let login = event_type == "user.session.start";
    let severity = one_of("severity", spec.severity.as_deref(), SEVERITIES)?
        .unwrap_or_else(|| if login && failed { "WARN" } else { "INFO" }.to_owned());
    let published = match &spec.published {
        None => now,
        Some(p) => parse_ts(p).ok_or_else(|| format!("published {p:?} is not ISO 8601"))?,
    };
    let display_message = spec
        .display_message
        .clone()
        .or_else(|| login.then(|| "User login to Okta".to_owned()));
    let legacy_event_type = spec.legacy_event_type.clone().or_else(|| {
        login.then(|| {
            if failed {
                "core.user_auth.login_failed"
            } else {
                "core.user_auth.login_success"
            }
            .to_owned()
        })
    });
    let user_agent = spec
        .user_agent
        .clone()
        .or_else(|| login.then(|| DEFAULT_BROWSER.to_owned()));
    Ok(EventInput {
        published,
        event_type: event_type.to_owned(),
        severity,
        legacy_event_type,
        display_message,
        actor: actor(org, spec),
        ip: spec.ip.clone(),
        device: user_agent.as_ref().map(|_| "Computer".to_owned()),
        user_agent,
        geo: geo(spec),
        result,
        reason: spec.reason.clone(),
        targets: spec.targets.iter().flatten().map(target).collect(),
        request_id: Some(ids::request_id()),
        request_uri: login.then(|| "/idp/idx/identify".to_owned()),
        url: login.then(|| "/idp/idx/identify?".to_owned()),
        session_id: Some(format!("idx{}", ids::url_safe(22))),
        transaction_detail: Map::new(),
    })
}

/// Validates every spec first, then appends them all in order; returns the uuids.
pub fn inject(org: &mut Org, specs: &[EventSpec]) -> Result<Vec<String>, String> {
    let now = Utc::now();
    let inputs = specs
        .iter()
        .enumerate()
        .map(|(i, s)| resolve(org, s, now).map_err(|e| format!("events[{i}]: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(inputs
        .into_iter()
        .map(|input| {
            let published = input.published;
            let event = log_event::build(input);
            org.events.push(published, &event)
        })
        .collect())
}
