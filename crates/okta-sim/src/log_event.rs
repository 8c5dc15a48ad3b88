//! The System Log `LogEvent` object, rendered with every key of Okta's schema present (null
//! where empty), in the order of the brief: `uuid`, `published`, `eventType`, … `securityContext`.

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;
use serde_json::{Map, Value};

use super::state::fmt_ts;

/// Serializes missing targets as an empty list.
fn targets_or_empty<S: serde::Serializer>(
    targets: &Option<Vec<Target>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(targets.as_deref().unwrap_or(&[]), serializer)
}

/// One System Log event, as `GET /api/v1/logs` returns it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEvent {
    /// UUID v4 text.
    pub uuid: String,
    /// `2025-09-29T03:49:50.123Z`.
    pub published: String,
    /// e.g. `user.session.start`.
    pub event_type: String,
    /// Always `"0"`.
    pub version: String,
    /// `DEBUG`, `INFO`, `WARN` or `ERROR`.
    pub severity: String,
    /// e.g. `core.user_auth.login_success`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_event_type: Option<String>,
    /// Human-readable message, e.g. `User login to Okta`.
    pub display_message: Option<String>,
    /// Who did it.
    pub actor: Actor,
    /// From where.
    pub client: Client,
    /// Device details (never filled by the simulator).
    pub device: Option<Value>,
    /// Session details.
    pub authentication_context: AuthenticationContext,
    /// Result.
    pub outcome: Outcome,
    /// What it was done to; `[]` when nothing (the shape of the spec's `ListLogs` example).
    #[serde(serialize_with = "targets_or_empty")]
    pub target: Option<Vec<Target>>,
    /// The transaction (request) that caused it.
    pub transaction: Transaction,
    /// Request id and URI.
    pub debug_context: DebugContext,
    /// The IP chain of the request.
    pub request: RequestChain,
    /// Network details (unknown in the simulator: all null).
    pub security_context: SecurityContext,
}

/// `actor` (and the shape of each `target` entry).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    /// Object id, e.g. `00u…`.
    pub id: String,
    /// Object type, e.g. `User`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Login or other alternate id.
    pub alternate_id: Option<String>,
    /// Display name, e.g. `Ada Lovelace`.
    pub display_name: Option<String>,
    /// Always null.
    pub detail_entry: Option<Value>,
}

/// A `target` entry: same shape as [`Actor`].
pub type Target = Actor;

/// `client`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    /// The caller's user agent.
    pub user_agent: Option<UserAgent>,
    /// Okta writes the text `"null"` here.
    pub zone: String,
    /// `Computer`, `Unknown`, …
    pub device: Option<String>,
    /// Always null.
    pub id: Option<String>,
    /// The caller's address.
    pub ip_address: Option<String>,
    /// Where the caller is; left out when unknown (Okta's schema has no null here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geographical_context: Option<Geo>,
}

/// `client.userAgent`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserAgent {
    /// The `User-Agent` header text.
    pub raw_user_agent: String,
    /// e.g. `Mac OS X`, `Unknown`.
    pub os: String,
    /// e.g. `CHROME`, `UNKNOWN`.
    pub browser: String,
}

/// `geographicalContext`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Geo {
    /// City.
    pub city: Option<String>,
    /// State or province.
    pub state: Option<String>,
    /// Country (full name).
    pub country: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// Coordinates, if known.
    pub geolocation: Option<GeoPoint>,
}

/// `geolocation`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GeoPoint {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
}

/// `authenticationContext`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationContext {
    /// Always null.
    pub authentication_provider: Option<String>,
    /// Always null.
    pub credential_provider: Option<String>,
    /// Always null.
    pub credential_type: Option<String>,
    /// Always null.
    pub issuer: Option<Value>,
    /// Always null.
    pub interface: Option<String>,
    /// Always 0.
    pub authentication_step: u32,
    /// Session id.
    pub root_session_id: Option<String>,
    /// Session id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_session_id: Option<String>,
}

/// `outcome`.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// `SUCCESS`, `FAILURE`, …
    pub result: String,
    /// e.g. `INVALID_CREDENTIALS`.
    pub reason: Option<String>,
}

/// `transaction`.
#[derive(Debug, Clone, Serialize)]
pub struct Transaction {
    /// Always `WEB`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Transaction id (the request id for API actions).
    pub id: Option<String>,
    /// Extra details, e.g. `requestApiTokenId`.
    pub detail: Map<String, Value>,
}

/// `debugContext`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DebugContext {
    /// `debugData`.
    pub debug_data: DebugData,
}

/// `debugContext.debugData`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DebugData {
    /// The `X-Okta-Request-Id` of the request that caused the event.
    pub request_id: Option<String>,
    /// Path of that request.
    pub request_uri: Option<String>,
    /// Path and query of that request.
    pub url: Option<String>,
}

/// `request`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestChain {
    /// One hop per address.
    pub ip_chain: Vec<IpHop>,
}

/// One `request.ipChain` entry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IpHop {
    /// Address.
    pub ip: String,
    /// Where it is; left out when unknown (Okta's schema has no null here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geographical_context: Option<Geo>,
    /// `V4` or `V6`.
    pub version: String,
    /// Always null.
    pub source: Option<String>,
}

/// `securityContext`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    /// Autonomous system number.
    pub as_number: Option<u64>,
    /// Autonomous system organisation.
    pub as_org: Option<String>,
    /// Internet service provider.
    pub isp: Option<String>,
    /// Domain.
    pub domain: Option<String>,
    /// Whether the caller came through a proxy.
    pub is_proxy: Option<bool>,
}

/// Everything that varies between events; [`build`] fills in the rest.
#[derive(Debug, Clone)]
pub struct EventInput {
    /// Publication time.
    pub published: DateTime<Utc>,
    /// Event type.
    pub event_type: String,
    /// Severity text.
    pub severity: String,
    /// Legacy event type.
    pub legacy_event_type: Option<String>,
    /// Display message.
    pub display_message: Option<String>,
    /// Actor.
    pub actor: Actor,
    /// Caller address.
    pub ip: Option<String>,
    /// Caller user agent.
    pub user_agent: Option<String>,
    /// Device kind for `client.device`.
    pub device: Option<String>,
    /// Caller location.
    pub geo: Option<Geo>,
    /// Outcome result.
    pub result: String,
    /// Outcome reason.
    pub reason: Option<String>,
    /// Targets.
    pub targets: Vec<Target>,
    /// Request id (also the transaction id).
    pub request_id: Option<String>,
    /// Request path.
    pub request_uri: Option<String>,
    /// Request path and query.
    pub url: Option<String>,
    /// Session id for the authentication context.
    pub session_id: Option<String>,
    /// `transaction.detail`.
    pub transaction_detail: Map<String, Value>,
}

/// A fresh UUID v4 in its usual text form.
pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let part = |r: std::ops::Range<usize>| hex.get(r).unwrap_or("");
    format!(
        "{}-{}-{}-{}-{}",
        part(0..8),
        part(8..12),
        part(12..16),
        part(16..20),
        part(20..32)
    )
}

/// Guesses `(os, browser)` from a user-agent text, as Okta's parser would name them.
pub fn parse_user_agent(ua: &str) -> (String, String) {
    let os = if ua.contains("Windows") {
        "Windows"
    } else if ua.contains("iPhone") || ua.contains("iPad") {
        "iOS"
    } else if ua.contains("Mac OS X") {
        "Mac OS X"
    } else if ua.contains("Android") {
        "Android"
    } else if ua.contains("Linux") {
        "Linux"
    } else {
        "Unknown"
    };
    let browser = if ua.contains("Edg/") {
        "EDGE"
    } else if ua.contains("Firefox/") {
        "FIREFOX"
    } else if ua.contains("Chrome/") {
        "CHROME"
    } else if ua.contains("Safari/") {
        "SAFARI"
    } else {
        "UNKNOWN"
    };
    (os.to_owned(), browser.to_owned())
}

/// Builds the full event from its varying parts (with a fresh uuid).
pub fn build(input: EventInput) -> LogEvent {
    let user_agent = input.user_agent.map(|raw| {
        let (os, browser) = parse_user_agent(&raw);
        UserAgent {
            raw_user_agent: raw,
            os,
            browser,
        }
    });
    let ip_chain = input
        .ip
        .iter()
        .map(|ip| IpHop {
            ip: ip.clone(),
            geographical_context: input.geo.clone(),
            version: if ip.contains(':') { "V6" } else { "V4" }.to_owned(),
            source: None,
        })
        .collect();
    let targets = (!input.targets.is_empty()).then_some(input.targets);
    LogEvent {
        uuid: uuid_v4(),
        published: fmt_ts(&input.published),
        event_type: input.event_type,
        version: "0".to_owned(),
        severity: input.severity,
        legacy_event_type: input.legacy_event_type,
        display_message: input.display_message,
        actor: input.actor,
        client: Client {
            user_agent,
            zone: "null".to_owned(),
            device: input.device,
            id: None,
            ip_address: input.ip,
            geographical_context: input.geo,
        },
        device: None,
        authentication_context: AuthenticationContext {
            authentication_provider: None,
            credential_provider: None,
            credential_type: None,
            issuer: None,
            interface: None,
            authentication_step: 0,
            root_session_id: input.session_id.clone(),
            external_session_id: input.session_id,
        },
        outcome: Outcome {
            result: input.result,
            reason: input.reason,
        },
        target: targets,
        transaction: Transaction {
            kind: "WEB".to_owned(),
            id: input.request_id.clone(),
            detail: input.transaction_detail,
        },
        debug_context: DebugContext {
            debug_data: DebugData {
                request_id: input.request_id,
                request_uri: input.request_uri,
                url: input.url,
            },
        },
        request: RequestChain { ip_chain },
        security_context: SecurityContext::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(u.get(14..15), Some("4"));
        assert!(matches!(u.get(19..20), Some("8" | "9" | "a" | "b")));
    }
}
