//! Okta System Log events as the caller sees them: the fields callers use, typed, and the
//! complete original as a `Struct`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::api::convert::{struct_from_json, timestamp};
use crate::proto::{Event, EventClient, EventEntity, EventSeverity};
use okta_client::LogEvent;

/// Okta's unique id of an event ("" when missing).
pub fn uuid_of(event: &LogEvent) -> &str {
    event.get("uuid").and_then(Value::as_str).unwrap_or("")
}

/// Converts one Okta event.
pub fn event_from_okta(event: LogEvent) -> Event {
    let root = Value::Object(event);
    let text = |path: &[&str]| text_at(&root, path);
    let severity = match text(&["severity"]).as_str() {
        "DEBUG" => EventSeverity::Debug,
        "INFO" => EventSeverity::Info,
        "WARN" => EventSeverity::Warn,
        "ERROR" => EventSeverity::Error,
        _ => EventSeverity::Unspecified,
    };
    let published = text(&["published"]).parse::<DateTime<Utc>>().ok();
    let targets = root
        .get("target")
        .and_then(Value::as_array)
        .map(|targets| targets.iter().map(entity).collect())
        .unwrap_or_default();
    let event = Event {
        uuid: text(&["uuid"]),
        published: timestamp(published),
        event_type: text(&["eventType"]),
        legacy_event_type: text(&["legacyEventType"]),
        display_message: text(&["displayMessage"]),
        severity: severity as i32,
        actor: root.get("actor").map(entity),
        client: Some(EventClient {
            ip_address: text(&["client", "ipAddress"]),
            user_agent: text(&["client", "userAgent", "rawUserAgent"]),
            os: text(&["client", "userAgent", "os"]),
            browser: text(&["client", "userAgent", "browser"]),
            city: text(&["client", "geographicalContext", "city"]),
            state: text(&["client", "geographicalContext", "state"]),
            country: text(&["client", "geographicalContext", "country"]),
        }),
        outcome_result: text(&["outcome", "result"]),
        outcome_reason: text(&["outcome", "reason"]),
        targets,
        transaction_id: text(&["transaction", "id"]),
        okta_request_id: text(&["debugContext", "debugData", "requestId"]),
        original: None,
    };
    let Value::Object(original) = root else {
        return event;
    };
    Event {
        original: struct_from_json(original),
        ..event
    }
}

fn entity(value: &Value) -> EventEntity {
    EventEntity {
        id: text_at(value, &["id"]),
        r#type: text_at(value, &["type"]),
        alternate_id: text_at(value, &["alternateId"]),
        display_name: text_at(value, &["displayName"]),
    }
}

fn text_at(value: &Value, path: &[&str]) -> String {
    let found = path.iter().try_fold(value, |current, key| current.get(key));
    match found {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_okta_login_event_keeps_its_fields_and_its_original() {
        let okta: LogEvent = serde_json::from_value(serde_json::json!({
            "uuid": "f0e1d2c3-0000-4000-8000-000000000001",
            "published": "2025-09-29T03:49:50.123Z",
            "eventType": "user.session.start",
            "severity": "WARN",
            "displayMessage": "User login to Okta",
            "actor": {"id": "00u1", "type": "User", "alternateId": "ada@example.com", "displayName": "Ada"},
            "client": {"ipAddress": "203.0.113.7", "userAgent": {"rawUserAgent": "curl/8", "os": "Linux", "browser": "UNKNOWN"},
                       "geographicalContext": {"city": "Oslo", "country": "Norway"}},
            "outcome": {"result": "FAILURE", "reason": "INVALID_CREDENTIALS"},
            "target": [{"id": "00g1", "type": "UserGroup"}],
            "debugContext": {"debugData": {"requestId": "req-9"}},
            "newFieldOktaAddsLater": {"nested": true}
        }))
        .unwrap();
        let event = event_from_okta(okta);
        assert_eq!(event.severity(), EventSeverity::Warn);
        assert_eq!(event.actor.unwrap().alternate_id, "ada@example.com");
        assert_eq!(event.client.unwrap().country, "Norway");
        assert_eq!(event.outcome_reason, "INVALID_CREDENTIALS");
        assert_eq!(event.targets[0].r#type, "UserGroup");
        assert_eq!(event.okta_request_id, "req-9");
        assert_eq!(event.published.unwrap().nanos, 123_000_000);
        assert!(
            event
                .original
                .unwrap()
                .fields
                .contains_key("newFieldOktaAddsLater")
        );
    }
}
