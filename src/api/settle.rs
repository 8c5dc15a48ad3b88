//! Settling a write whose outcome a failure left open. A write that failed after it may have
//! reached Okta (a server error, a timeout, a dropped connection, or any failure after a retry)
//! is never answered as if nothing happened: a read says whether its effect is there. When the
//! read proves it, the caller gets the write's success; when it proves the write was not
//! carried out and Okta answered, the failure with that said; otherwise `OUTCOME_UNKNOWN`, which
//! names what to check.

use std::future::Future;

use tonic::Status;

use super::status::{OktaCall, okta_error_status, outcome_unknown};
use crate::status::{self, with_note};
use okta_client::OktaError;

/// What a read after a failed write found.
pub enum Found<T> {
    /// The write's effect is there: the success answer.
    Done(T),
    /// The write's effect is not there.
    NotDone,
    /// The state is what the write leads to, but it may have been so before: the read cannot
    /// tell (a password reset of a user already in recovery).
    CannotTell,
}

/// True when `error` leaves open whether the write took effect: the request may have reached
/// Okta without an answer saying what happened, or an earlier attempt did.
pub fn outcome_open(error: &OktaError) -> bool {
    error.may_have_reached_okta() || error.meta().is_some_and(|meta| meta.after_unanswered)
}

/// Answers a failed write: mapped as usual when `error` settles the outcome by itself, else
/// from what `read` finds. `check` names what the caller should look at when the outcome stays
/// unknown ("user 00u…'s status").
pub async fn settle<T, Read>(
    error: OktaError,
    call: OktaCall,
    check: &str,
    read: Read,
) -> Result<T, Status>
where
    Read: Future<Output = Result<Found<T>, OktaError>>,
{
    if !outcome_open(&error) {
        return Err(okta_error_status(&error, call));
    }
    match read.await {
        Ok(Found::Done(value)) => {
            tracing::info!(error = %error, check, "a write whose answer was lost was found carried out");
            Ok(value)
        }
        // A retry found its earlier attempt not carried out: the retry after it makes it.
        Ok(Found::NotDone) if matches!(error, OktaError::Withheld) => {
            Err(status::earlier_attempt_not_carried_out(check))
        }
        // Okta's refusal of a later attempt stands as it is.
        Ok(Found::NotDone) if matches!(error, OktaError::Api { .. }) => {
            Err(okta_error_status(&error, call))
        }
        Ok(Found::NotDone) if okta_answered(&error) => Err(with_note(
            &okta_error_status(&error, call),
            "checked with Okta afterwards: it was not carried out, so it is safe to repeat",
        )),
        Ok(Found::NotDone | Found::CannotTell) => Err(outcome_unknown(&error, check)),
        Err(read_error) => {
            tracing::warn!(error = %error, read_error = %read_error, check,
                "a write whose answer was lost could not be checked");
            Err(outcome_unknown(&error, check))
        }
    }
}

/// Okta answered the (last) attempt, so it is done with it: a read after it is final. After a
/// timeout or a dropped connection Okta may still be carrying the request out.
fn okta_answered(error: &OktaError) -> bool {
    matches!(
        error,
        OktaError::Unavailable { .. } | OktaError::RateLimited { .. }
    )
}

/// A read's result as what a failed write left: `done(value)` says whether it shows the
/// write's effect.
pub fn found<T>(value: T, done: bool) -> Found<T> {
    if done {
        Found::Done(value)
    } else {
        Found::NotDone
    }
}

/// A deletion's read: Okta no longer knowing the object proves it.
#[allow(clippy::result_large_err)] // the read's own error, as `okta` returns it
pub fn gone<T>(read: Result<T, OktaError>) -> Result<Found<()>, OktaError> {
    match read {
        Ok(_) => Ok(Found::NotDone),
        Err(OktaError::Api { status: 404, .. }) => Ok(Found::Done(())),
        Err(error) => Err(error),
    }
}
