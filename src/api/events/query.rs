//! Turns EventService requests into checked Okta System Log queries: every caller value is
//! validated, then escaped into the filter by `okta_client::Expression`, never spliced in as text.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};

use crate::api::convert::datetime;
use crate::api::validate::Violations;
use crate::proto::{EventFilter, EventOutcome, EventSeverity};
use okta_client::{Expression, Operator};

/// Okta's event type for a sign-in ("User login to Okta").
pub const LOGON_EVENT_TYPE: &str = "user.session.start";
/// Default window of ListLogonEvents.
pub const DEFAULT_LOGON_WINDOW: Duration = Duration::hours(24);
/// Okta allows at most 10 keywords in `q`, each at most 40 characters.
const MAX_KEYWORDS: usize = 10;
const MAX_KEYWORD_LENGTH: usize = 40;
/// Longest event type name accepted.
const MAX_EVENT_TYPE_LENGTH: usize = 128;
/// Most event types in one filter, so the filter Okta receives stays bounded.
const MAX_EVENT_TYPES: usize = 32;

/// Builds the filter for the structured conditions; `None` when nothing is set.
/// `field` prefixes the violation field names (`filter`).
pub fn event_filter_expression(
    filter: &EventFilter,
    field: &str,
    violations: &mut Violations,
) -> Option<Expression> {
    let mut clauses = Vec::new();
    let event_types_to_check: &[_] = if violations.count(
        &format!("{field}.event_types"),
        filter.event_types.len(),
        MAX_EVENT_TYPES,
    ) {
        &filter.event_types
    } else {
        &[]
    };
    let event_types: Vec<Expression> = event_types_to_check
        .iter()
        .filter(|event_type| {
            valid_event_type(&format!("{field}.event_types"), event_type, violations)
        })
        .map(|event_type| Expression::compare("eventType", Operator::Eq, event_type))
        .collect();
    clauses.extend(Expression::any_of(event_types));
    for (name, attribute, value) in [
        ("actor_id", "actor.id", &filter.actor_id),
        ("actor_login", "actor.alternateId", &filter.actor_login),
        ("target_id", "target.id", &filter.target_id),
    ] {
        if !value.is_empty() {
            violations.text(&format!("{field}.{name}"), value);
            clauses.push(Expression::compare(attribute, Operator::Eq, value));
        }
    }
    if !filter.ip_address.is_empty() {
        clauses.extend(ip_expression(
            &format!("{field}.ip_address"),
            &filter.ip_address,
            violations,
        ));
    }
    clauses.extend(outcome_expression(
        filter.outcome(),
        filter.outcome,
        &format!("{field}.outcome"),
        violations,
    ));
    match EventSeverity::try_from(filter.severity) {
        Ok(EventSeverity::Unspecified) => {}
        Ok(severity) => {
            let name = severity.as_str_name().trim_start_matches("EVENT_SEVERITY_");
            clauses.push(Expression::compare("severity", Operator::Eq, name));
        }
        Err(_) => violations.add(&format!("{field}.severity"), "unknown severity"),
    }
    clauses.into_iter().reduce(Expression::and)
}

/// `client.ipAddress eq "<ip>"` for a valid IP, written in its canonical form.
pub fn ip_expression(field: &str, value: &str, violations: &mut Violations) -> Option<Expression> {
    match value.parse::<IpAddr>() {
        Ok(ip) => Some(Expression::compare(
            "client.ipAddress",
            Operator::Eq,
            &ip.to_string(),
        )),
        Err(_) => {
            violations.add(field, "not an IPv4 or IPv6 address");
            None
        }
    }
}

/// `outcome.result eq "<OUTCOME>"`, or `None` for any outcome.
pub fn outcome_expression(
    outcome: EventOutcome,
    raw: i32,
    field: &str,
    violations: &mut Violations,
) -> Option<Expression> {
    if EventOutcome::try_from(raw).is_err() {
        violations.add(field, "unknown outcome");
        return None;
    }
    match outcome {
        EventOutcome::Unspecified => None,
        known => {
            let name = known.as_str_name().trim_start_matches("EVENT_OUTCOME_");
            Some(Expression::compare("outcome.result", Operator::Eq, name))
        }
    }
}

fn valid_event_type(field: &str, event_type: &str, violations: &mut Violations) -> bool {
    let valid = !event_type.is_empty()
        && event_type.len() <= MAX_EVENT_TYPE_LENGTH
        && event_type.starts_with(|c: char| c.is_ascii_lowercase())
        && event_type
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_');
    if !valid {
        violations.add(
            field,
            "an Okta event type: lowercase letters, digits, `.` and `_`, like `user.session.start`",
        );
    }
    valid
}

/// Checks Okta's keyword rules; `None` when there are none.
pub fn keywords(field: &str, value: &str, violations: &mut Violations) -> Option<String> {
    let words: Vec<&str> = value.split_whitespace().collect();
    if words.is_empty() {
        return None;
    }
    violations.text(field, value);
    if words.len() > MAX_KEYWORDS {
        violations.add(field, format!("at most {MAX_KEYWORDS} keywords"));
    }
    if words
        .iter()
        .any(|word| word.chars().count() > MAX_KEYWORD_LENGTH)
    {
        violations.add(
            field,
            format!("each keyword at most {MAX_KEYWORD_LENGTH} characters"),
        );
    }
    Some(words.join(" "))
}

/// A time window from optional caller timestamps: `until` defaults to now, `since` to
/// `until - default_span` (or left to Okta when `default_span` is `None`).
pub fn window(
    since: Option<&prost_types::Timestamp>,
    until: Option<&prost_types::Timestamp>,
    default_span: Option<Duration>,
    violations: &mut Violations,
) -> (Option<DateTime<Utc>>, DateTime<Utc>) {
    let mut parse = |field: &str, timestamp: Option<&prost_types::Timestamp>| {
        timestamp.and_then(|timestamp| {
            let parsed = datetime(timestamp);
            if parsed.is_none() {
                violations.add(field, "not a valid timestamp");
            }
            parsed
        })
    };
    let until_time = parse("until", until).unwrap_or_else(Utc::now);
    let since_time = parse("since", since).or_else(|| default_span.map(|span| until_time - span));
    if since_time.is_some_and(|since_time| since_time >= until_time) {
        violations.add("since", "must be before `until`");
    }
    (since_time, until_time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn structured_filters_become_escaped_okta_expressions() {
        let filter = EventFilter {
            event_types: vec!["user.session.start".into(), "user.lifecycle.suspend".into()],
            actor_login: "o\"neil@example.com".into(),
            ip_address: "2001:db8:0:0::1".into(),
            outcome: EventOutcome::Failure as i32,
            ..Default::default()
        };
        let mut violations = Violations::default();
        let expression = event_filter_expression(&filter, "filter", &mut violations).unwrap();
        block_on(violations.finish()).unwrap();
        let text = expression.as_str();
        assert!(
            text.contains(r#"eventType eq "user.session.start""#),
            "{text}"
        );
        assert!(
            text.contains(r#"actor.alternateId eq "o\"neil@example.com""#),
            "{text}"
        );
        assert!(
            text.contains(r#"client.ipAddress eq "2001:db8::1""#),
            "{text}"
        );
        assert!(text.contains(r#"outcome.result eq "FAILURE""#), "{text}");
        assert!(
            Expression::parse(text).is_ok(),
            "the result is a well-formed expression"
        );
    }

    #[test]
    fn bad_event_types_ips_and_keywords_are_violations() {
        let filter = EventFilter {
            event_types: vec!["user.session.start\" or eventType pr".into()],
            ip_address: "10.0.0.1 or 1=1".into(),
            ..Default::default()
        };
        let mut violations = Violations::default();
        event_filter_expression(&filter, "filter", &mut violations);
        keywords("keywords", &"k".repeat(41), &mut violations);
        let message = block_on(violations.finish())
            .unwrap_err()
            .message()
            .to_owned();
        for field in ["filter.event_types", "filter.ip_address", "keywords"] {
            assert!(message.contains(field), "{message}");
        }
    }
}
