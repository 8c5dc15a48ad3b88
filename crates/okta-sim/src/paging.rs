//! Cursor paging: `limit`, the opaque `after` cursor (`0` + last id, as Okta's users API does)
//! and the separate `link: <…>; rel="self"` / `rel="next"` header lines.

use super::errors::OktaError;
use super::http::Ctx;
use super::ids;

/// Page size limits of one list endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Used when `limit` is absent.
    pub default: usize,
    /// Larger values are clamped to this.
    pub max: usize,
}

/// Parses `limit`: absent -> default, above max -> max, `< 1` or non-numeric -> 400 E0000001.
pub fn limit(ctx: &Ctx, limits: Limits) -> Result<usize, OktaError> {
    let Some(raw) = ctx.param("limit") else {
        return Ok(limits.default);
    };
    let raw = raw.trim();
    let bad = || {
        OktaError::validation(&[(
            "limit".to_owned(),
            format!("must be a number between 1 and {}", limits.max),
        )])
    };
    match raw.parse::<i64>() {
        Ok(n) if n < 1 => Err(bad()),
        Ok(n) => Ok(usize::try_from(n).unwrap_or(limits.max).min(limits.max)),
        // Too large for i64 but still a plain number: clamp like any other large value.
        Err(_) if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) => Ok(limits.max),
        Err(_) => Err(bad()),
    }
}

/// Parses `after`: `0` followed by an id with `id_prefix`; anything else is 400 E0000031.
///
/// A well-formed cursor whose object has since been deleted still works: paging continues
/// after that id, so deletions between pages never break a listing.
pub fn after(ctx: &Ctx, id_prefix: &str) -> Result<Option<String>, OktaError> {
    match ctx.param("after") {
        None => Ok(None),
        Some(c) => match c.strip_prefix('0') {
            Some(id) if ids::is_id_shaped(id_prefix, id) => Ok(Some(id.to_owned())),
            _ => Err(OktaError::bad_search(format!("Invalid after cursor: {c}"))),
        },
    }
}

/// One page of `ids` (sorted ascending): the ids on the page, and the last one if more follow.
pub fn page<'a>(
    ids: impl Iterator<Item = &'a str>,
    after: Option<&str>,
    limit: usize,
) -> (Vec<&'a str>, Option<&'a str>) {
    let mut rest = ids.filter(|id| after.is_none_or(|a| *id > a));
    let items: Vec<&str> = rest.by_ref().take(limit).collect();
    let more = rest.next().is_some();
    let next = if more { items.last().copied() } else { None };
    (items, next)
}

/// The `link` header values: `self`, and `next` when `next_after` is set.
///
/// Query parameters of the request are kept (re-encoded with `+` for spaces and `%22` for
/// quotes), then `after`, then the effective `limit`, like Okta's recorded links.
pub fn links(ctx: &Ctx, path: &str, limit: usize, next_after: Option<&str>) -> Vec<String> {
    let kept: Vec<&(String, String)> = ctx
        .query
        .iter()
        .filter(|(k, _)| k != "after" && k != "limit")
        .collect();
    let build = |after: Option<&str>| {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &kept {
            ser.append_pair(k, v);
        }
        if let Some(a) = after {
            ser.append_pair("after", a);
        }
        ser.append_pair("limit", &limit.to_string());
        format!("{}{}?{}", ctx.base, path, ser.finish())
    };
    let mut out = vec![format!("<{}>; rel=\"self\"", build(ctx.param("after")))];
    if let Some(id) = next_after {
        out.push(format!(
            "<{}>; rel=\"next\"",
            build(Some(&format!("0{id}")))
        ));
    }
    out
}

/// The `link` header for unpaged queries (`q`): only `self`.
pub fn self_link(ctx: &Ctx, path: &str, limit: usize) -> Vec<String> {
    links(ctx, path, limit, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;

    fn ctx(q: &str) -> Ctx {
        Ctx::new("http://h".into(), Some(q), Bytes::new())
    }

    #[test]
    fn limits_parse_and_clamp() {
        let l = Limits {
            default: 200,
            max: 200,
        };
        assert_eq!(limit(&ctx(""), l).unwrap(), 200);
        assert_eq!(limit(&ctx("limit=5"), l).unwrap(), 5);
        assert_eq!(limit(&ctx("limit=500"), l).unwrap(), 200);
        assert_eq!(
            limit(&ctx("limit=999999999999999999999999"), l).unwrap(),
            200
        );
        for bad in ["limit=0", "limit=-3", "limit=x", "limit=", "limit=1.5"] {
            assert_eq!(limit(&ctx(bad), l).unwrap_err().code, "E0000001", "{bad}");
        }
    }

    #[test]
    fn cursor_and_links() {
        let ids = [
            "00u00000000000000001",
            "00u00000000000000002",
            "00u00000000000000003",
        ];
        let (p, next) = page(ids.iter().copied(), None, 2);
        assert_eq!((p.len(), next), (2, Some("00u00000000000000002")));
        let (p, next) = page(ids.iter().copied(), next, 2);
        assert_eq!((p, next), (vec!["00u00000000000000003"], None));
        let c = ctx("q=a%20b&after=000u00000000000000001&limit=2");
        assert_eq!(
            after(&c, "00u").unwrap().as_deref(),
            Some("00u00000000000000001")
        );
        assert_eq!(
            after(&ctx("after=0abc"), "00u").unwrap_err().code,
            "E0000031"
        );
        let l = links(&c, "/api/v1/users", 2, Some("00u00000000000000003"));
        assert_eq!(
            l,
            vec![
                "<http://h/api/v1/users?q=a+b&after=000u00000000000000001&limit=2>; rel=\"self\"",
                "<http://h/api/v1/users?q=a+b&after=000u00000000000000003&limit=2>; rel=\"next\"",
            ]
        );
    }
}
