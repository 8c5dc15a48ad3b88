//! Glob patterns for policies: `*` matches any run of characters (including none), everything
//! else matches itself. One syntax for caller identities (`spiffe://cluster.local/ns/team-x/*`,
//! `system:serviceaccount:team-x:*`), RPC names (`identity.v1.UserService/Get*`) and group
//! names (`team-x-*`).

use std::fmt;

/// A compiled glob pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    parts: Vec<String>,
}

impl Pattern {
    /// Compiles `text`; empty patterns are refused (they would match only the empty string,
    /// which is never what a policy means).
    pub fn new(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("an empty pattern matches nothing".to_owned());
        }
        if text.chars().any(char::is_control) {
            return Err(format!(
                "pattern `{}` holds control characters",
                text.escape_debug()
            ));
        }
        Ok(Self {
            text: text.to_owned(),
            parts: text.split('*').map(str::to_owned).collect(),
        })
    }

    /// Whether `value` matches the whole pattern.
    pub fn matches(&self, value: &str) -> bool {
        let (first, rest) = self
            .parts
            .split_first()
            .expect("split yields one part at least");
        let Some(mut remaining) = value.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return remaining.is_empty();
        };
        for part in middle {
            match remaining.find(part.as_str()) {
                Some(at) => remaining = &remaining[at + part.len()..],
                None => return false,
            }
        }
        remaining.len() >= last.len() && remaining.ends_with(last.as_str())
    }

    /// The literal text before the first `*`: what every match starts with.
    pub fn literal_prefix(&self) -> &str {
        &self.parts[0]
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "`{}`", self.text)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    fn matches(pattern: &str, value: &str) -> bool {
        Pattern::new(pattern).unwrap().matches(value)
    }

    #[test]
    fn stars_match_any_run_and_the_rest_matches_itself() {
        assert!(matches("team-x-*", "team-x-admins"));
        assert!(matches("team-x-*", "team-x-"));
        assert!(!matches("team-x-*", "team-y-admins"));
        assert!(!matches("team-x-*", "Team-x-admins"));
        assert!(matches("apikey:ops", "apikey:ops"));
        assert!(!matches("apikey:ops", "apikey:ops2"));
        assert!(matches(
            "spiffe://cluster.local/ns/*/sa/billing",
            "spiffe://cluster.local/ns/payments/sa/billing"
        ));
        assert!(!matches(
            "spiffe://cluster.local/ns/*/sa/billing",
            "spiffe://cluster.local/ns/payments/sa/billing-2"
        ));
        assert!(matches("*", ""));
        assert!(matches("a*a", "aa"));
        assert!(!matches("a*a", "a"));
        assert!(matches("*Service/Get*", "identity.v1.UserService/GetUser"));
    }

    #[test]
    fn empty_patterns_are_refused() {
        assert!(Pattern::new("").is_err());
        assert!(Pattern::new("  ").is_err());
    }
}
