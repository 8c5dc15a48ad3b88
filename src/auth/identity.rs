//! Caller identities: which names each mechanism may give, and names that cannot pass for
//! others. Policies grant roles by identity, so a credential of one mechanism must never be able
//! to claim a name another mechanism vouches for, nor one that merely looks like it.
//!
//! **One namespace per mechanism.** `spiffe://…` comes only from a client certificate's URI
//! SAN; `system:serviceaccount:NS:NAME` only from a JWT whose Kubernetes claims agree;
//! `apikey:NAME` only from an API key and `anonymous` only from insecure mode, both made by the
//! gateway itself. A credential naming another mechanism's form is refused. The prefixes are
//! recognised case-insensitively after trimming, so ` APIKEY:admin` is a refused near miss, not
//! an ordinary name.
//!
//! **Printable.** An identity is at most [`MAX_IDENTITY_LEN`] bytes, without leading or
//! trailing spaces, and holds no control, format (Unicode `Cf`, such as U+200B ZERO WIDTH SPACE)
//! or bidi control (such as U+202E RIGHT-TO-LEFT OVERRIDE) characters, which would make two
//! different names read alike in a policy or an audit record.

use std::borrow::Cow;
use std::sync::Arc;

use icu_properties::props::{BidiControl, GeneralCategory};
use icu_properties::{CodePointMapData, CodePointSetData};

/// The identity given to callers without credentials in insecure mode.
pub const ANONYMOUS: &str = "anonymous";
/// The prefix of API-key identities (`apikey:NAME`).
pub(super) const API_KEY_PREFIX: &str = "apikey:";
/// The prefix of SPIFFE ids, the identities of certificates' URI SANs.
const SPIFFE_PREFIX: &str = "spiffe://";
/// The prefix of Kubernetes service-account identities (`system:serviceaccount:NS:NAME`).
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
/// The longest identity taken from a certificate or token.
pub const MAX_IDENTITY_LEN: usize = 256;

/// The reserved form a credential may name besides plain names; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Form {
    /// Plain names only.
    Plain,
    /// `spiffe://…`: a client certificate's URI SAN.
    Spiffe,
    /// `system:serviceaccount:NS:NAME`: a JWT whose Kubernetes claims name that account.
    ServiceAccount,
}

/// `raw` as the identity of a credential that may name `allowed`, if usable; see the module
/// docs.
pub(super) fn identity_of(raw: &str, allowed: Form) -> Option<Arc<str>> {
    let trimmed = raw.trim();
    let canonical = if starts_with_ignoring_case(trimmed, SPIFFE_PREFIX) {
        allowed == Form::Spiffe && raw.starts_with(SPIFFE_PREFIX)
    } else if starts_with_ignoring_case(trimmed, SERVICE_ACCOUNT_PREFIX) {
        allowed == Form::ServiceAccount && is_service_account(raw)
    } else {
        !(starts_with_ignoring_case(trimmed, API_KEY_PREFIX)
            || trimmed.eq_ignore_ascii_case(ANONYMOUS))
    };
    (canonical && printable(raw)).then(|| raw.into())
}

/// `system:serviceaccount:NS:NAME` with a namespace and a name and nothing more.
pub(super) fn is_service_account(raw: &str) -> bool {
    raw.strip_prefix(SERVICE_ACCOUNT_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .is_some_and(|(namespace, name)| {
            !namespace.is_empty() && !name.is_empty() && !name.contains(':')
        })
}

fn starts_with_ignoring_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn printable(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= MAX_IDENTITY_LEN
        && raw.trim() == raw
        && raw
            .chars()
            .all(|c| c == ' ' || !(c.is_whitespace() || hides_itself(c)))
}

/// Control, format and bidi control characters: invisible, or changing how the text around
/// them reads.
fn hides_itself(c: char) -> bool {
    c.is_control()
        || CodePointMapData::<GeneralCategory>::new().get(c) == GeneralCategory::Format
        || CodePointSetData::new::<BidiControl>().contains(c)
}

/// `text` as an audit record shows it: control, format and bidi characters escaped
/// (`\u{202e}`), so a record reads as what it holds.
pub fn escaped_for_log(text: &str) -> Cow<'_, str> {
    if !text.chars().any(hides_itself) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hides_itself(c) {
            escaped.extend(c.escape_unicode());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_usable_when_printable_and_bounded() {
        for usable in ["billing.payments.svc", "Billing Batch", "workload-7"] {
            assert_eq!(identity_of(usable, Form::Plain).as_deref(), Some(usable));
        }
        let too_long = "a".repeat(MAX_IDENTITY_LEN + 1);
        for unusable in [
            "",
            " billing",
            "billing ",
            "billing\nforged audit line",
            "tab\there",
            "admin\u{200B}",
            "\u{202E}nimda",
            "bill\u{2066}ing",
            "soft\u{AD}hyphen",
            too_long.as_str(),
        ] {
            assert_eq!(identity_of(unusable, Form::Plain), None, "{unusable:?}");
        }
    }

    #[test]
    fn each_reserved_form_belongs_to_one_mechanism_and_near_misses_to_none() {
        let spiffe = "spiffe://cluster.local/ns/payments/sa/billing";
        let account = "system:serviceaccount:payments:billing";
        assert_eq!(identity_of(spiffe, Form::Spiffe).as_deref(), Some(spiffe));
        assert_eq!(
            identity_of(account, Form::ServiceAccount).as_deref(),
            Some(account)
        );
        for (raw, allowed) in [
            (spiffe, Form::Plain),
            (spiffe, Form::ServiceAccount),
            (account, Form::Plain),
            (account, Form::Spiffe),
            ("SPIFFE://cluster.local/ns/payments/sa/root", Form::Spiffe),
            (
                "System:ServiceAccount:payments:billing",
                Form::ServiceAccount,
            ),
            ("system:serviceaccount:a:b:c", Form::ServiceAccount),
            ("system:serviceaccount::b", Form::ServiceAccount),
            ("apikey:admin", Form::Plain),
            ("APIKEY:admin", Form::Spiffe),
            (" apikey:admin", Form::Plain),
            ("anonymous", Form::Plain),
            ("Anonymous", Form::Plain),
            (" ANONYMOUS ", Form::Plain),
        ] {
            assert_eq!(identity_of(raw, allowed), None, "{raw:?} as {allowed:?}");
        }
    }

    #[test]
    fn the_audit_log_escapes_what_would_hide_itself() {
        assert!(matches!(
            escaped_for_log("apikey:billing"),
            Cow::Borrowed("apikey:billing")
        ));
        assert_eq!(
            escaped_for_log("a\u{202E}b\u{200B}"),
            "a\\u{202e}b\\u{200b}"
        );
        assert_eq!(escaped_for_log("line\nbreak"), "line\\u{a}break");
    }
}
