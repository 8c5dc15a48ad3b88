//! Parses caller input into the Okta client's checked types at the boundary, collecting every
//! bad field so the caller learns all problems in one INVALID_ARGUMENT.

use tonic::Status;
use tonic_types::FieldViolation;

use super::page_token::{self, PagePosition};
use super::status::{internal, invalid_argument};
use super::token_key::TokenKey;
use crate::authz::scope::{Target, check_targets};
use okta_client::{Cursor, Expression, OktaId, Operator};

/// Longest free-text value accepted (names, logins, prefixes); Okta's own limits are lower.
pub const MAX_TEXT_LENGTH: usize = 1024;
/// Longest search expression accepted.
pub const MAX_EXPRESSION_LENGTH: usize = 2048;
/// Most values accepted in a repeated status filter: more than any status enum has values, so
/// naming each status once always fits.
const MAX_STATUS_FILTERS: usize = 16;
/// Most violations one status lists. The status travels in HTTP/2 trailers, which clients cap
/// (hyper, under tonic, at 16 KiB); a request with thousands of bad values must still get a
/// readable INVALID_ARGUMENT, not a broken stream.
const MAX_REPORTED_VIOLATIONS: usize = 10;
/// Longest violation description, in bytes; longer ones (quoting caller input) are cut.
const MAX_DESCRIPTION_LENGTH: usize = 160;

/// Collects field violations; turns into one INVALID_ARGUMENT status. It also collects the
/// call's targets (valid ids and logins), which [`Violations::finish`] checks against a
/// group-scoped caller's scope: every handler validates through here, so none can skip it.
#[derive(Default)]
pub struct Violations {
    reported: Vec<FieldViolation>,
    unreported: usize,
    targets: Vec<(TargetKind, String)>,
}

/// What kind of object a target field names.
#[derive(Clone, Copy)]
enum TargetKind {
    Group,
    User,
    Login,
    Other,
}

impl TargetKind {
    /// Decided by the field name: `group_id`, `group_ids[3]`; `id`, `user_id`, `user.id`;
    /// anything else (a device) is outside every group.
    fn of_field(field: &str) -> Self {
        if field.starts_with("group_id") {
            Self::Group
        } else if matches!(field, "id" | "user_id" | "user.id") {
            Self::User
        } else {
            Self::Other
        }
    }
}

impl Violations {
    /// Records a bad field. Beyond [`MAX_REPORTED_VIOLATIONS`] only the count is kept.
    pub fn add(&mut self, field: &str, description: impl Into<String>) {
        if self.reported.len() < MAX_REPORTED_VIOLATIONS {
            let description = shortened(description.into(), MAX_DESCRIPTION_LENGTH);
            self.reported.push(FieldViolation::new(field, description));
        } else {
            self.unreported += 1;
        }
    }

    /// Checks the number of values of a repeated field; `false` (and a violation) when there
    /// are more than `max`, so the caller skips checking each one.
    pub fn count(&mut self, field: &str, count: usize, max: usize) -> bool {
        let acceptable = count <= max;
        if !acceptable {
            self.add(field, format!("at most {max} values, got {count}"));
        }
        acceptable
    }

    /// Parses a required Okta id, recording a violation when it is not one. A valid id is also
    /// noted as a target of the RPC's audit record.
    pub fn id(&mut self, field: &str, value: &str) -> Option<OktaId> {
        match OktaId::parse(value) {
            Ok(id) => {
                super::audit::note_target(field, id.as_str());
                self.targets
                    .push((TargetKind::of_field(field), id.as_str().to_owned()));
                Some(id)
            }
            Err(error) => {
                self.add(field, format!("not an Okta id: {error}"));
                None
            }
        }
    }

    /// Checks a free-text value: not over the length limit and free of control characters.
    pub fn text(&mut self, field: &str, value: &str) {
        if value.len() > MAX_TEXT_LENGTH {
            self.add(field, format!("longer than {MAX_TEXT_LENGTH} bytes"));
        } else if value.chars().any(char::is_control) {
            self.add(field, "contains control characters");
        }
    }

    /// Checks a required login that names the call's target user.
    pub fn login(&mut self, field: &str, value: &str) {
        self.required_text(field, value);
        self.targets.push((TargetKind::Login, value.to_owned()));
    }

    /// Checks a non-empty free-text value.
    pub fn required_text(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.add(field, "required");
        } else {
            self.text(field, value);
        }
    }

    /// Parses an optional caller-written Okta expression; `None` when empty or invalid.
    pub fn expression(&mut self, field: &str, value: &str) -> Option<Expression> {
        if value.is_empty() {
            return None;
        }
        if value.len() > MAX_EXPRESSION_LENGTH {
            self.add(field, format!("longer than {MAX_EXPRESSION_LENGTH} bytes"));
            return None;
        }
        match Expression::parse(value) {
            Ok(expression) => Some(expression),
            Err(error) => {
                self.add(field, format!("not a valid Okta expression: {error}"));
                None
            }
        }
    }

    /// Clamps a page size to `1..=max`, 0 meaning `max`; negative sizes are violations.
    pub fn page_size(&mut self, field: &str, value: i32, max: u32) -> u32 {
        match u32::try_from(value) {
            Ok(0) => max,
            Ok(size) => size.min(max),
            Err(_) => {
                self.add(field, "must not be negative");
                max
            }
        }
    }

    /// Turns a repeated status filter into `status eq "…"` comparisons: at most
    /// [`MAX_STATUS_FILTERS`] values, each one that `okta_status` names (unknown and
    /// unspecified values are violations).
    pub fn status_filter(
        &mut self,
        field: &str,
        statuses: &[i32],
        okta_status: impl Fn(i32) -> Option<&'static str>,
    ) -> Vec<Expression> {
        if !self.count(field, statuses.len(), MAX_STATUS_FILTERS) {
            return Vec::new();
        }
        statuses
            .iter()
            .filter_map(|status| {
                let name = okta_status(*status);
                if name.is_none() {
                    self.add(field, "unknown or unspecified status");
                }
                name.map(|name| Expression::compare("status", Operator::Eq, name))
            })
            .collect()
    }

    /// Decodes a page token bound to `fingerprint`, recording a violation when it is malformed
    /// or belongs to another query; `None` for the first page.
    pub fn page_position(
        &mut self,
        key: &TokenKey,
        token: &str,
        fingerprint: &str,
    ) -> Option<PagePosition> {
        page_token::decode_position(key, token, fingerprint).unwrap_or_else(|violation| {
            self.add(&violation.field, violation.description);
            None
        })
    }

    /// Like [`Violations::page_position`], for lists whose token carries only the cursor.
    pub fn page_cursor(
        &mut self,
        key: &TokenKey,
        token: &str,
        fingerprint: &str,
    ) -> Option<Cursor> {
        self.page_position(key, token, fingerprint)
            .map(|position| position.cursor)
    }

    /// Ok when nothing was recorded, else INVALID_ARGUMENT naming every reported field and
    /// counting the rest. A valid request of a group-scoped caller is then checked against its
    /// scope (PERMISSION_DENIED outside; what the index lets through is confirmed against Okta).
    pub async fn finish(mut self) -> Result<(), Status> {
        if !self.reported.is_empty() {
            if self.unreported > 0 {
                self.reported.push(FieldViolation::new(
                    "request",
                    format!("{} more problems not listed", self.unreported),
                ));
            }
            return Err(invalid_argument(self.reported));
        }
        let targets: Vec<Target<'_>> = self
            .targets
            .iter()
            .map(|(kind, value)| match kind {
                TargetKind::Group => Target::Group(value),
                TargetKind::User => Target::User(value),
                TargetKind::Login => Target::Login(value),
                TargetKind::Other => Target::Other(value),
            })
            .collect();
        check_targets(&targets).await
    }
}

/// `text` cut to at most `max` bytes on a character boundary, marked with `…` when cut.
fn shortened(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// Unwraps values that [`Violations::finish`] has vouched for.
pub fn checked<T>(value: Option<T>) -> Result<T, Status> {
    value.ok_or_else(|| internal("validated value missing"))
}

/// Parses every (field, value) as an Okta id, reporting all bad ones in one status.
pub async fn parse_ids(fields: &[(&str, &str)]) -> Result<Vec<OktaId>, Status> {
    let mut violations = Violations::default();
    let ids: Vec<Option<OktaId>> = fields
        .iter()
        .map(|(field, value)| violations.id(field, value))
        .collect();
    violations.finish().await?;
    ids.into_iter().map(checked).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use tonic_types::StatusExt;

    #[test]
    fn many_violations_are_counted_not_listed_and_long_ones_are_cut() {
        let mut violations = Violations::default();
        for index in 0..25 {
            violations.add(&format!("field{index}"), "é".repeat(200));
        }
        let status = block_on(violations.finish()).unwrap_err();
        let listed = status.get_details_bad_request().unwrap().field_violations;
        assert_eq!(listed.len(), MAX_REPORTED_VIOLATIONS + 1);
        assert_eq!(listed[0].description, format!("{}…", "é".repeat(80)));
        assert_eq!(listed[MAX_REPORTED_VIOLATIONS].field, "request");
        assert_eq!(
            listed[MAX_REPORTED_VIOLATIONS].description,
            "15 more problems not listed"
        );
    }

    #[test]
    fn shortened_cuts_on_a_character_boundary() {
        assert_eq!(shortened("abc".to_owned(), 3), "abc");
        assert_eq!(shortened("abcd".to_owned(), 3), "abc…");
        assert_eq!(shortened("aé".to_owned(), 2), "a…");
    }

    #[test]
    fn counts_over_the_maximum_are_one_violation() {
        let mut violations = Violations::default();
        assert!(violations.count("statuses", 16, MAX_STATUS_FILTERS));
        assert!(block_on(violations.finish()).is_ok());
        let mut violations = Violations::default();
        assert!(!violations.count("statuses", 17, MAX_STATUS_FILTERS));
        let message = block_on(violations.finish())
            .unwrap_err()
            .message()
            .to_owned();
        assert_eq!(
            message,
            "invalid request: statuses: at most 16 values, got 17"
        );
    }
}
