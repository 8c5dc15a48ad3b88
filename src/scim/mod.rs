//! The SCIM 2.0 facade (RFC 7643, RFC 7644): a service provider whose backend is Okta, for
//! tools that provision over the identity standard.
//!
//! It is a translation layer, not a second API: each SCIM operation is carried out as the
//! gRPC calls it amounts to (`PATCH /Users/{id}` with `active: false` is
//! `identity.v1.UserService/DeactivateUser`), made in process through the same edge as calls
//! from the network ([`in_process`]). One policy file therefore governs both APIs, group-scoped
//! roles included, and SCIM calls are audited, counted and spend callers' shares and Okta's
//! budget as RPCs do; their failures read as the same statuses, which [`error`] says in SCIM's
//! terms.
//!
//! The modules: [`server`] (the listener, routes and body rules), [`discovery`]
//! (`ServiceProviderConfig`, `ResourceTypes`, `Schemas`), [`mapping`] (the one table of User
//! attributes), [`filter`] (SCIM filters, parsed and evaluated), [`query`] (filters as Okta
//! searches, and `startIndex` over Okta's cursors), [`users`], [`patch`] and [`groups`].

pub mod bookmarks;
pub mod discovery;
pub mod error;
pub mod filter;
pub mod groups;
pub mod in_process;
pub mod mapping;
pub mod patch;
pub mod query;
pub mod server;
pub mod users;

use axum::response::{IntoResponse, Response};
use http::HeaderValue;

use crate::config::{Checking, ScimSettings, Section, checked};
pub use in_process::InProcess;
pub use server::ScimServer;

/// The base path of every SCIM endpoint.
pub const BASE_PATH: &str = "/scim/v2";
/// Smallest `scim.max_body_bytes`: below it an ordinary User would be refused.
const MIN_BODY_BYTES: usize = 4096;
/// Largest `scim.max_results`: the most users the gateway pages through for one list.
const MAX_RESULTS_CEILING: u32 = 1000;

impl Section for ScimSettings {
    type Valid = ();

    fn validate(&self, _checking: &Checking<'_>) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.max_body_bytes < MIN_BODY_BYTES {
            problems.push(format!(
                "`scim.max_body_bytes` must be at least {MIN_BODY_BYTES}"
            ));
        }
        if !(1..=MAX_RESULTS_CEILING).contains(&self.max_results) {
            problems.push(format!(
                "`scim.max_results` must be between 1 and {MAX_RESULTS_CEILING}"
            ));
        }
        checked(problems, ())
    }
}

/// A resource's `meta` (RFC 7643 §3.1): `version` is a weak ETag of the later of `changed`.
pub fn meta(
    resource_type: &str,
    created: Option<&prost_types::Timestamp>,
    changed: [Option<&prost_types::Timestamp>; 2],
    location: String,
) -> serde_json::Value {
    let millis = |time: Option<&prost_types::Timestamp>| {
        time.map_or(0, |time| {
            time.seconds * 1000 + i64::from(time.nanos) / 1_000_000
        })
    };
    let last = changed
        .into_iter()
        .max_by_key(|time| millis(*time))
        .flatten();
    serde_json::json!({
        "resourceType": resource_type,
        "created": date_time(created),
        "lastModified": date_time(last),
        "version": format!("W/\"{}\"", millis(last)),
        "location": location,
    })
}

/// `time` as SCIM's dateTime.
fn date_time(time: Option<&prost_types::Timestamp>) -> Option<String> {
    let time = time?;
    let nanos = u32::try_from(time.nanos).ok()?;
    chrono::DateTime::from_timestamp(time.seconds, nanos)
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// A JSON body answered as `application/scim+json`.
pub struct ScimJson(pub serde_json::Value);

impl IntoResponse for ScimJson {
    fn into_response(self) -> Response {
        let mut response = axum::Json(self.0).into_response();
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(error::SCIM_CONTENT_TYPE),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{assert_reported, load};

    #[test]
    fn the_body_bound_and_the_page_bound_are_checked() {
        let settings = load(&[
            ("IDGW_SCIM__MAX_BODY_BYTES", "100"),
            ("IDGW_SCIM__MAX_RESULTS", "0"),
        ]);
        assert_reported(
            &settings,
            &[
                "`scim.max_body_bytes` must be at least 4096",
                "`scim.max_results` must be between 1 and 1000",
            ],
        );
    }
}
