//! `GET /api/v1/logs`: polling and bounded System Log queries with `since`, `until`, `after`,
//! `filter`, `q`, `limit` and `sortOrder`.
//!
//! A **polling query** (no `until`, `ASCENDING`) returns events in persistence order after
//! the cursor and always carries a `next` link, even on an empty page. A **bounded query**
//! (`until` given, or `DESCENDING`) returns events with `since <= published < until` ordered
//! by `published` (then sequence) and has a `next` link only while more events follow.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

use super::errors::OktaError;
use super::event_log::{Cursor, EventLog, Stored};
use super::expr::{self, Expr, Op};
use super::http::{Ctx, Handled, Reply};

/// The endpoint's path.
pub const PATH: &str = "/api/v1/logs";
/// Page size without `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest `limit`.
pub const MAX_LIMIT: usize = 1000;
/// Most keywords in `q`.
pub const MAX_KEYWORDS: usize = 10;
/// Longest keyword in `q`, in characters.
pub const MAX_KEYWORD_LEN: usize = 40;
/// How far back `since` may reach.
pub const MAX_SINCE_DAYS: i64 = 180;
/// Default window: `since` defaults to this many days before `until` (or now).
pub const DEFAULT_WINDOW_DAYS: i64 = 7;

/// The fields `q` keywords are looked for in.
const KEYWORD_FIELDS: &[&str] = &[
    "displayMessage",
    "eventType",
    "actor.alternateId",
    "actor.displayName",
    "target.alternateId",
    "target.displayName",
    "client.ipAddress",
];

/// Sort order of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Ascending,
    Descending,
}

/// The parsed parameters of one request.
struct Query {
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    after: Option<Cursor>,
    filter: Option<Expr>,
    keywords: Vec<String>,
    limit: usize,
    order: Order,
}

/// `t` minus `days` days, saturating at the earliest representable time.
fn days_before(t: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    t.checked_sub_signed(Duration::days(days))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn invalid(param: &str, why: &str) -> OktaError {
    OktaError::validation(&[(param.to_owned(), why.to_owned())])
}

/// Parses an ISO-8601 timestamp: RFC 3339, or without zone (UTC), or a bare date.
pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    // A `+` offset arrives as a space when the client did not percent-encode it.
    let plus = s.replace(' ', "+");
    for cand in [s, plus.as_str()] {
        if let Ok(t) = DateTime::parse_from_rfc3339(cand) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

fn ts_param(ctx: &Ctx, name: &str) -> Result<Option<DateTime<Utc>>, OktaError> {
    match ctx.param(name) {
        None => Ok(None),
        Some(v) => parse_ts(v)
            .map(Some)
            .ok_or_else(|| invalid(name, "must be an ISO 8601 timestamp")),
    }
}

fn limit_param(ctx: &Ctx) -> Result<usize, OktaError> {
    match ctx.param("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(raw) => raw
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= MAX_LIMIT)
            .ok_or_else(|| invalid("limit", "must be an integer between 0 and 1000")),
    }
}

fn order_param(ctx: &Ctx) -> Result<Order, OktaError> {
    match ctx.param("sortOrder") {
        None => Ok(Order::Ascending),
        Some(v) if v.eq_ignore_ascii_case("ASCENDING") => Ok(Order::Ascending),
        Some(v) if v.eq_ignore_ascii_case("DESCENDING") => Ok(Order::Descending),
        Some(_) => Err(invalid("sortOrder", "must be ASCENDING or DESCENDING")),
    }
}

/// Parses and checks a log `filter`: syntax errors are E0000053, `published` and `co` on
/// the debug URLs are E0000031.
pub fn parse_filter(text: &str) -> Result<Expr, OktaError> {
    let e = expr::parse(text).map_err(|why| OktaError::new("E0000053", "").cause(why))?;
    check_filter(&e)?;
    Ok(e)
}

fn check_filter(e: &Expr) -> Result<(), OktaError> {
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter().try_for_each(check_filter),
        Expr::Cmp { attr, op, .. } => {
            if attr == "published" || attr.starts_with("published.") {
                return Err(OktaError::bad_search(
                    "The published attribute cannot be used in a filter; use since and until",
                ));
            }
            let url = matches!(
                attr.as_str(),
                "debugContext.debugData.url" | "debugContext.debugData.requestUri"
            );
            if url && *op == Op::Co {
                return Err(OktaError::bad_search(format!(
                    "Operator 'co' is not supported for attribute '{attr}'"
                )));
            }
            Ok(())
        }
    }
}

fn keywords_param(ctx: &Ctx) -> Result<Vec<String>, OktaError> {
    let Some(q) = ctx.param("q") else {
        return Ok(Vec::new());
    };
    let words: Vec<String> = q.split_whitespace().map(str::to_lowercase).collect();
    if words.len() > MAX_KEYWORDS {
        return Err(invalid("q", "at most 10 keywords are allowed"));
    }
    if words.iter().any(|w| w.chars().count() > MAX_KEYWORD_LEN) {
        return Err(invalid("q", "keywords may be at most 40 characters long"));
    }
    Ok(words)
}

fn parse_query(ctx: &Ctx, now: DateTime<Utc>) -> Result<Query, OktaError> {
    let since = ts_param(ctx, "since")?;
    let until = ts_param(ctx, "until")?;
    let limit = limit_param(ctx)?;
    let order = order_param(ctx)?;
    let after = match ctx.param("after") {
        None => None,
        Some(a) => Some(
            Cursor::parse(a.trim())
                .ok_or_else(|| OktaError::bad_search(format!("Invalid after cursor: {a}")))?,
        ),
    };
    if since.is_some() && after.is_some() {
        return Err(invalid("since", "since and after cannot be used together"));
    }
    if since.is_some_and(|s| s < days_before(now, MAX_SINCE_DAYS)) {
        // Okta's docs: a `since` more than 180 days back is an E0000053 error.
        return Err(OktaError::new("E0000053", "")
            .cause("since: must not be more than 180 days in the past"));
    }
    let filter = ctx.param("filter").map(parse_filter).transpose()?;
    let keywords = keywords_param(ctx)?;
    Ok(Query {
        since,
        until,
        after,
        filter,
        keywords,
        limit,
        order,
    })
}

/// The values at a dotted attribute path of an event; arrays on the way are flattened, so
/// `target.id` yields every target's id (as an array: a comparison matches if any does).
pub fn lookup(v: &Value, path: &str) -> Option<Value> {
    let mut current = vec![v];
    let mut through_array = false;
    for seg in path.split('.') {
        let mut next = Vec::new();
        for c in current {
            match c {
                Value::Object(m) => {
                    if let Some(x) = m.get(seg) {
                        next.push(x);
                    }
                }
                Value::Array(items) => {
                    through_array = true;
                    next.extend(items.iter().filter_map(|i| i.get(seg)));
                }
                _ => {}
            }
        }
        current = next;
    }
    let mut out = Vec::new();
    for c in current {
        match c {
            Value::Array(items) => {
                through_array = true;
                out.extend(items.iter().cloned());
            }
            Value::Null => {}
            other => out.push(other.clone()),
        }
    }
    if through_array {
        Some(Value::Array(out))
    } else {
        out.into_iter().next()
    }
}

fn has_keywords(v: &Value, keywords: &[String]) -> bool {
    if keywords.is_empty() {
        return true;
    }
    let mut texts = Vec::new();
    for f in KEYWORD_FIELDS {
        match lookup(v, f) {
            Some(Value::String(s)) => texts.push(s.to_lowercase()),
            Some(Value::Array(items)) => texts.extend(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_lowercase),
            ),
            _ => {}
        }
    }
    keywords
        .iter()
        .all(|k| texts.iter().any(|t| t.contains(k.as_str())))
}

fn selected(e: &Stored, q: &Query) -> bool {
    q.filter
        .as_ref()
        .is_none_or(|f| expr::eval(f, false, &|a| lookup(&e.value, a)))
        && has_keywords(&e.value, &q.keywords)
}

/// The `self` and (when `next` is set) `next` link values. The next link repeats the
/// request's parameters except `since` and `after`, then the new `after`.
fn links(ctx: &Ctx, next: Option<Cursor>) -> Vec<String> {
    let url = |pairs: &mut dyn Iterator<Item = (&str, &str)>| {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            ser.append_pair(k, v);
        }
        let q = ser.finish();
        if q.is_empty() {
            format!("{}{PATH}", ctx.base)
        } else {
            format!("{}{PATH}?{q}", ctx.base)
        }
    };
    let mut all = ctx.query.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let mut out = vec![format!("<{}>; rel=\"self\"", url(&mut all))];
    if let Some(c) = next {
        let text = c.text();
        let mut kept = ctx
            .query
            .iter()
            .filter(|(k, _)| k != "since" && k != "after")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(std::iter::once(("after", text.as_str())));
        out.push(format!("<{}>; rel=\"next\"", url(&mut kept)));
    }
    out
}

fn render(page: &[&Stored]) -> String {
    let items: Vec<&str> = page.iter().map(|e| e.json.as_str()).collect();
    format!("[{}]", items.join(","))
}

/// `GET /api/v1/logs`.
pub fn list(log: &EventLog, ctx: &Ctx) -> Handled {
    let now = Utc::now();
    let q = parse_query(ctx, now)?;
    if q.until.is_none() && q.order == Order::Ascending {
        Ok(polling(log, ctx, &q, now))
    } else {
        Ok(bounded(log, ctx, &q, now))
    }
}

fn polling(log: &EventLog, ctx: &Ctx, q: &Query, now: DateTime<Utc>) -> Reply {
    let since = match (q.since, q.after) {
        (Some(s), _) => Some(s),
        (None, None) => Some(days_before(now, DEFAULT_WINDOW_DAYS)),
        (None, Some(_)) => None,
    };
    let start = q.after.map(|c| c.seq).unwrap_or(0);
    let page: Vec<&Stored> = if q.limit == 0 {
        Vec::new()
    } else {
        log.after_seq(start)
            .filter(|e| since.is_none_or(|s| e.published >= s) && selected(e, q))
            .take(q.limit)
            .collect()
    };
    let next = match (page.last(), q.after) {
        (Some(e), _) => e.cursor(),
        (None, Some(c)) => c,
        (None, None) => log.end_cursor(),
    };
    Reply::ok(render(&page)).with_links(links(ctx, Some(next)))
}

fn bounded(log: &EventLog, ctx: &Ctx, q: &Query, now: DateTime<Utc>) -> Reply {
    let until = q.until.unwrap_or(now);
    // With a cursor, `since` is gone from the request: an ascending cursor is itself the lower
    // bound, a descending one carries the original bound.
    let since = match (q.since, q.after) {
        (Some(s), _) => s,
        (None, Some(c)) => c
            .floor_ms
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
        (None, None) => days_before(until, DEFAULT_WINDOW_DAYS),
    };
    let mut hits: Vec<&Stored> = log
        .iter()
        .filter(|e| e.published >= since && e.published < until)
        .filter(|e| match (q.after, q.order) {
            (None, _) => true,
            (Some(c), Order::Ascending) => e.key() > c.key(),
            (Some(c), Order::Descending) => e.key() < c.key(),
        })
        .filter(|e| selected(e, q))
        .collect();
    hits.sort_by_key(|e| e.key());
    if q.order == Order::Descending {
        hits.reverse();
    }
    let more = hits.len() > q.limit;
    hits.truncate(q.limit);
    let next = if more {
        hits.last().map(|e| {
            let mut c = e.cursor();
            if q.order == Order::Descending {
                c.floor_ms = Some(since.timestamp_millis());
            }
            c
        })
    } else {
        None
    };
    Reply::ok(render(&hits)).with_links(links(ctx, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookup_paths() {
        let v = json!({"actor": {"id": "a"}, "target": [{"id": "t1"}, {"id": "t2"}], "x": null});
        assert_eq!(lookup(&v, "actor.id"), Some(json!("a")));
        assert_eq!(lookup(&v, "target.id"), Some(json!(["t1", "t2"])));
        assert_eq!(lookup(&v, "x"), None);
        assert_eq!(lookup(&v, "nope.deeper"), None);
    }

    #[test]
    fn timestamps() {
        for ok in [
            "2025-09-29T03:49:50.123Z",
            "2025-09-29T03:49:50Z",
            "2025-09-29T03:49:50+02:00",
            "2025-09-29T03:49:50 02:00",
            "2025-09-29T03:49:50",
            "2025-09-29",
        ] {
            assert!(parse_ts(ok).is_some(), "{ok}");
        }
        for bad in ["", "yesterday", "2025-13-01", "2025-09-29T25:00:00Z"] {
            assert!(parse_ts(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn filter_errors() {
        assert_eq!(parse_filter("eventType eq").unwrap_err().code, "E0000053");
        assert_eq!(
            parse_filter(r#"published gt "2025-01-01T00:00:00Z""#)
                .unwrap_err()
                .code,
            "E0000031"
        );
        assert!(parse_filter(r#"eventType eq "x" and (a pr or b ew "y")"#).is_ok());
    }
}
