//! Parses caller input into the Okta client's checked types at the boundary, collecting every
//! bad field so the caller learns all problems in one INVALID_ARGUMENT.

use tonic::Status;
use tonic_types::FieldViolation;

use super::page_token::{self, PagePosition};
use super::status::invalid_argument;
use crate::authz::scope::{Target, check_targets};
use crate::okta::{Cursor, Expression, OktaId};

/// Longest free-text value accepted (names, logins, prefixes); Okta's own limits are lower.
pub const MAX_TEXT_LENGTH: usize = 1024;
/// Longest search expression accepted.
pub const MAX_EXPRESSION_LENGTH: usize = 2048;

/// Collects field violations; turns into one INVALID_ARGUMENT status. It also collects the
/// call's targets (valid ids and logins), which [`Violations::finish`] checks against a
/// group-scoped caller's scope: every handler validates through here, so none can skip it.
#[derive(Default)]
pub struct Violations(Vec<FieldViolation>, Vec<(TargetKind, String)>);

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
    /// Records a bad field.
    pub fn add(&mut self, field: &str, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Parses a required Okta id, recording a violation when it is not one. A valid id is also
    /// noted as a target of the RPC's audit record.
    pub fn id(&mut self, field: &str, value: &str) -> Option<OktaId> {
        match OktaId::parse(value) {
            Ok(id) => {
                super::audit::note_target(field, id.as_str());
                self.1
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
        self.1.push((TargetKind::Login, value.to_owned()));
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

    /// Decodes a page token bound to `fingerprint`, recording a violation when it is malformed
    /// or belongs to another query; `None` for the first page.
    pub fn page_position(&mut self, token: &str, fingerprint: &str) -> Option<PagePosition> {
        page_token::decode_position(token, fingerprint).unwrap_or_else(|violation| {
            self.add(&violation.field, violation.description);
            None
        })
    }

    /// Like [`Violations::page_position`], for lists whose token carries only the cursor.
    pub fn page_cursor(&mut self, token: &str, fingerprint: &str) -> Option<Cursor> {
        self.page_position(token, fingerprint)
            .map(|position| position.cursor)
    }

    /// Ok when nothing was recorded, else INVALID_ARGUMENT naming every field. A valid request
    /// of a group-scoped caller is then checked against its scope (PERMISSION_DENIED outside).
    pub fn finish(self) -> Result<(), Status> {
        if !self.0.is_empty() {
            return Err(invalid_argument(self.0));
        }
        let targets: Vec<Target<'_>> = self
            .1
            .iter()
            .map(|(kind, value)| match kind {
                TargetKind::Group => Target::Group(value),
                TargetKind::User => Target::User(value),
                TargetKind::Login => Target::Login(value),
                TargetKind::Other => Target::Other(value),
            })
            .collect();
        check_targets(&targets)
    }
}

/// Unwraps values that [`Violations::finish`] has vouched for.
pub fn checked<T>(value: Option<T>) -> Result<T, Status> {
    value.ok_or_else(|| Status::internal("validated value missing"))
}

/// Parses every (field, value) as an Okta id, reporting all bad ones in one status.
pub fn parse_ids(fields: &[(&str, &str)]) -> Result<Vec<OktaId>, Status> {
    let mut violations = Violations::default();
    let ids: Vec<Option<OktaId>> = fields
        .iter()
        .map(|(field, value)| violations.id(field, value))
        .collect();
    violations.finish()?;
    ids.into_iter().map(checked).collect()
}
