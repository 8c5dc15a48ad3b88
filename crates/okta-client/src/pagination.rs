//! Okta's cursor pagination: `Link: <…?after=…>; rel="next"` headers, the opaque cursor and
//! one page of results.

use http::header::{HeaderMap, LINK};
use url::Url;

use crate::error::ResponseMeta;

/// The longest cursor we accept; Okta's are about 20 characters.
const MAX_CURSOR_LENGTH: usize = 512;

/// Okta's opaque `after` value, taken from a `rel="next"` link.
///
/// Restricted to URL-safe characters so a cursor handed back by a caller is only ever
/// something Okta could have issued; it is still sent as one percent-encoded query value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor(String);

/// Why a string is not a cursor Okta issued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidCursor {
    /// The value was empty.
    #[error("cursor is empty, expected 1 to 512 characters of [A-Za-z0-9._~-]")]
    Empty,
    /// The value was longer than any cursor Okta issues.
    #[error("cursor has {0} bytes, expected at most 512")]
    TooLong(usize),
    /// The value contained a character Okta does not put in cursors.
    #[error("cursor contains a character outside [A-Za-z0-9._~-]")]
    InvalidCharacter,
}

impl Cursor {
    /// Checks that `value` could be a cursor Okta issued and wraps it.
    pub fn parse(value: &str) -> Result<Self, InvalidCursor> {
        if value.is_empty() {
            return Err(InvalidCursor::Empty);
        }
        if value.len() > MAX_CURSOR_LENGTH {
            return Err(InvalidCursor::TooLong(value.len()));
        }
        let is_cursor_character = |character: char| {
            character.is_ascii_alphanumeric() || matches!(character, '.' | '_' | '~' | '-')
        };
        if !value.chars().all(is_cursor_character) {
            return Err(InvalidCursor::InvalidCharacter);
        }
        Ok(Self(value.to_owned()))
    }

    /// The cursor as Okta issued it, for the `after` query parameter or a page token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which page of a list to fetch.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PageRequest {
    /// Okta's `limit`: page size. 0 leaves it out, so Okta's per-endpoint default applies;
    /// clamping to Okta's maximum is the caller's job.
    pub limit: u32,
    /// The cursor of the page to fetch; `None` for the first page.
    pub after: Option<Cursor>,
}

/// One page of a list, with the cursor of the next page.
#[derive(Clone, Debug)]
pub struct Page<T> {
    /// The objects on this page, in Okta's order.
    pub items: Vec<T>,
    /// The `after` value of the `rel="next"` link; `None` on the last page.
    pub next: Option<Cursor>,
    /// Request id and rate-limit state of the response that carried this page.
    pub meta: ResponseMeta,
}

/// The URL of the `rel="next"` link, from any number of `Link` header lines, each holding
/// any number of comma-separated links. `None` when there is no next link.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(parse_link_header)
        .find(|(_, is_next)| *is_next)
        .map(|(target, _)| target)
}

/// The cursor of a next link: its `after` query value. `Ok(None)` when there is no `after`,
/// `Err` when the link is not a URL or its `after` is not a valid cursor.
pub(crate) fn cursor_of(next_link: &str) -> Result<Option<Cursor>, String> {
    let next_url =
        Url::parse(next_link).map_err(|error| format!("next link is not a url: {error}"))?;
    let after_opt = next_url
        .query_pairs()
        .find(|(name, _)| name == "after")
        .map(|(_, value)| value.into_owned());
    match after_opt {
        None => Ok(None),
        Some(after) => Cursor::parse(&after)
            .map(Some)
            .map_err(|error| format!("next link carries an invalid cursor: {error}")),
    }
}

/// Splits one `Link` header value into `(target, is rel="next")` pairs. Tolerates commas and
/// semicolons inside `<…>` and inside quoted parameter values.
fn parse_link_header(value: &str) -> Vec<(String, bool)> {
    let mut links = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let after_open = &rest[open + 1..];
        let Some(close) = after_open.find('>') else {
            break;
        };
        let target = after_open[..close].trim().to_owned();
        let params_and_rest = &after_open[close + 1..];
        let params_end = end_of_params(params_and_rest);
        let is_next = params_and_rest[..params_end].split(';').any(is_rel_next);
        links.push((target, is_next));
        rest = &params_and_rest[params_end..];
    }
    links
}

/// Byte index of the comma that ends a link's parameters (outside quotes), or the end.
fn end_of_params(params: &str) -> usize {
    let mut in_quotes = false;
    for (index, character) in params.char_indices() {
        match character {
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => return index,
            _ => {}
        }
    }
    params.len()
}

fn is_rel_next(param: &str) -> bool {
    let Some((name, value)) = param.split_once('=') else {
        return false;
    };
    name.trim().eq_ignore_ascii_case("rel")
        && value
            .trim()
            .trim_matches('"')
            .split_ascii_whitespace()
            .any(|relation| relation.eq_ignore_ascii_case("next"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    fn link_headers(values: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(LINK, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn next_link_is_found_among_several_header_lines() {
        let map = link_headers(&[
            r#"<https://test.okta.com/api/v1/users?limit=1>; rel="self""#,
            r#"<https://test.okta.com/api/v1/users?after=000usfdsyqnIjEmHNm4x6&limit=1>; rel="next""#,
        ]);
        let next = next_link(&map).unwrap();
        assert_eq!(
            next,
            "https://test.okta.com/api/v1/users?after=000usfdsyqnIjEmHNm4x6&limit=1"
        );
        assert_eq!(
            cursor_of(&next).unwrap().unwrap().as_str(),
            "000usfdsyqnIjEmHNm4x6"
        );
    }

    #[test]
    fn next_link_is_found_in_one_comma_separated_line() {
        let map = link_headers(&[
            r#"<https://x.okta.com/api/v1/users?limit=1&a=b,c>; rel="self", <https://x.okta.com/api/v1/users?after=abc&limit=1>;rel=next"#,
        ]);
        assert_eq!(
            next_link(&map).unwrap(),
            "https://x.okta.com/api/v1/users?after=abc&limit=1"
        );
    }

    #[test]
    fn no_next_link_means_last_page() {
        let map = link_headers(&[r#"<https://x.okta.com/api/v1/users?limit=1>; rel="self""#]);
        assert!(next_link(&map).is_none());
        assert!(next_link(&HeaderMap::new()).is_none());
        assert!(next_link(&link_headers(&["garbage <unclosed; rel=next"])).is_none());
    }

    #[test]
    fn cursor_rejects_what_okta_never_issues() {
        assert_eq!(Cursor::parse(""), Err(InvalidCursor::Empty));
        assert_eq!(
            Cursor::parse("a&limit=1"),
            Err(InvalidCursor::InvalidCharacter)
        );
        assert_eq!(Cursor::parse("a b"), Err(InvalidCursor::InvalidCharacter));
        assert_eq!(
            Cursor::parse(&"a".repeat(513)),
            Err(InvalidCursor::TooLong(513))
        );
        assert!(Cursor::parse("00u1.b_c~d-e").is_ok());
        assert!(cursor_of("https://x.okta.com/api/v1/users?after=a%26b").is_err());
        assert_eq!(
            cursor_of("https://x.okta.com/api/v1/users?limit=2").unwrap(),
            None
        );
    }
}
