//! Okta object ids, validated before they are put into a request path.

use std::fmt;

/// The length of every Okta object id (`00uqrks9ig7XuWV7X5d7`).
const OKTA_ID_LENGTH: usize = 20;

/// An Okta object id (user `00u…`, group `00g…`).
///
/// Validated to exactly 20 ASCII letters or digits, so an id taken from a caller can never
/// change the request path (`../`, `%2F`, `?`) or address a user by login instead of by id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OktaId(String);

/// Why a string is not an Okta id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidOktaId {
    /// The value was empty.
    #[error("okta id is empty, expected 20 ASCII letters or digits")]
    Empty,
    /// The value had the wrong number of characters.
    #[error("okta id has {0} characters, expected exactly 20 ASCII letters or digits")]
    WrongLength(usize),
    /// The value contained something other than ASCII letters and digits.
    #[error("okta id contains a character other than ASCII letters or digits")]
    InvalidCharacter,
}

impl OktaId {
    /// Whether [`OktaId::parse`] would accept `value`, without making an id of it: the client
    /// asks this of every path segment of every request, to name its endpoint.
    pub fn is_valid(value: &str) -> bool {
        value.len() == OKTA_ID_LENGTH && value.bytes().all(|byte| byte.is_ascii_alphanumeric())
    }

    /// Checks that `value` looks like an id Okta issued and wraps it.
    pub fn parse(value: &str) -> Result<Self, InvalidOktaId> {
        if value.is_empty() {
            return Err(InvalidOktaId::Empty);
        }
        if !value
            .chars()
            .all(|character| character.is_ascii_alphanumeric())
        {
            return Err(InvalidOktaId::InvalidCharacter);
        }
        if value.len() != OKTA_ID_LENGTH {
            return Err(InvalidOktaId::WrongLength(value.chars().count()));
        }
        Ok(Self(value.to_owned()))
    }

    /// The id as Okta spells it, for paths and for conversion into responses.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OktaId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_a_real_okta_id() {
        let id = OktaId::parse("00uqrks9ig7XuWV7X5d7").unwrap();
        assert_eq!(id.as_str(), "00uqrks9ig7XuWV7X5d7");
        assert_eq!(id.to_string(), "00uqrks9ig7XuWV7X5d7");
    }

    #[test]
    fn parse_rejects_values_that_could_change_the_path_or_are_not_ids() {
        assert_eq!(OktaId::parse(""), Err(InvalidOktaId::Empty));
        assert_eq!(OktaId::parse("../"), Err(InvalidOktaId::InvalidCharacter));
        assert_eq!(
            OktaId::parse("00uqrks9ig7XuW%2F5d7"),
            Err(InvalidOktaId::InvalidCharacter)
        );
        assert_eq!(
            OktaId::parse("00uqrks9ig XuWV7X5d7"),
            Err(InvalidOktaId::InvalidCharacter)
        );
        assert_eq!(
            OktaId::parse("00uqrks9ig7XuWV7X5d"),
            Err(InvalidOktaId::WrongLength(19))
        );
        assert_eq!(
            OktaId::parse("00uqrks9ig7XuWV7X5d7a"),
            Err(InvalidOktaId::WrongLength(21))
        );
        assert_eq!(
            OktaId::parse("00uqrks9ig7XuWV7X5dé"),
            Err(InvalidOktaId::InvalidCharacter)
        );
        assert_eq!(
            OktaId::parse("00uqrks9ig7XuWV7X5d7\n"),
            Err(InvalidOktaId::InvalidCharacter)
        );
    }

    #[test]
    fn is_valid_agrees_with_parse() {
        for value in [
            "00uqrks9ig7XuWV7X5d7",
            "",
            "api",
            "00uqrks9ig7XuW%2F5d7",
            "00uqrks9ig7XuWV7X5d",
            "00uqrks9ig7XuWV7X5dé",
            "00uqrks9ig7XuWV7X5é",
        ] {
            assert_eq!(
                OktaId::is_valid(value),
                OktaId::parse(value).is_ok(),
                "{value}"
            );
        }
    }
}
