//! Okta's JSON shapes for users, groups and lifecycle answers (unknown fields are ignored, so
//! Okta can add fields without breaking us).

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::ids::OktaId;

/// A JSON object, as Okta profiles are (custom attributes included).
type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Reads an optional timestamp as Okta writes them (RFC 3339, `2024-05-01T12:00:00.000Z`) with
/// chrono's strict RFC 3339 parser, a fraction of the cost of the relaxed parser `DateTime`'s own
/// `Deserialize` runs (five timestamps are most of a user's decoding). Text the strict parser
/// refuses still goes to the relaxed one, so the same timestamps are accepted, with the same
/// error for the others.
pub(crate) fn okta_timestamp<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    Ok(Option::<OktaTimestamp>::deserialize(deserializer)?.map(|OktaTimestamp(time)| time))
}

/// One timestamp read by [`okta_timestamp`].
struct OktaTimestamp(DateTime<Utc>);

impl<'de> Deserialize<'de> for OktaTimestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(OktaTimestampVisitor)
    }
}

struct OktaTimestampVisitor;

impl Visitor<'_> for OktaTimestampVisitor {
    type Value = OktaTimestamp;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an RFC 3339 formatted date and time string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<OktaTimestamp, E> {
        DateTime::parse_from_rfc3339(text)
            .map(|time| time.with_timezone(&Utc))
            .or_else(|_| text.parse::<DateTime<Utc>>())
            .map(OktaTimestamp)
            .map_err(E::custom)
    }
}

/// An Okta user (`User` in Okta's spec), without `credentials` and `_links`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OktaUser {
    /// Okta's id (`00u…`).
    pub id: String,
    /// `STAGED`, `PROVISIONED`, `ACTIVE`, `RECOVERY`, `PASSWORD_EXPIRED`, `LOCKED_OUT`,
    /// `SUSPENDED` or `DEPROVISIONED`; kept as a string so new statuses do not break decoding.
    pub status: String,
    /// Set while an asynchronous transition is in progress.
    #[serde(default)]
    pub transitioning_to_status: Option<String>,
    /// When the user was created.
    #[serde(default, deserialize_with = "okta_timestamp")]
    pub created: Option<DateTime<Utc>>,
    /// When the user was activated; `null` until then.
    #[serde(default, deserialize_with = "okta_timestamp")]
    pub activated: Option<DateTime<Utc>>,
    /// When `status` last changed.
    #[serde(default, deserialize_with = "okta_timestamp")]
    pub status_changed: Option<DateTime<Utc>>,
    /// Last sign-in.
    #[serde(default, deserialize_with = "okta_timestamp")]
    pub last_login: Option<DateTime<Utc>>,
    /// Last change of any kind.
    #[serde(default, deserialize_with = "okta_timestamp")]
    pub last_updated: Option<DateTime<Utc>>,
    /// Last password change.
    #[serde(default, deserialize_with = "okta_timestamp")]
    pub password_changed: Option<DateTime<Utc>>,
    /// The user type.
    #[serde(default)]
    pub r#type: Option<TypeRef>,
    /// The profile: `login`, `email`, `firstName`, … and custom attributes.
    #[serde(default)]
    pub profile: JsonObject,
}

/// A reference to another Okta object by id (`{"id": "oty…"}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeRef {
    /// The referenced object's id.
    pub id: String,
}

/// An Okta group (`Group` in Okta's spec), without `objectClass` and `_links`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OktaGroup {
    /// Okta's id (`00g…`).
    pub id: String,
    /// `OKTA_GROUP`, `APP_GROUP` or `BUILT_IN`; only `OKTA_GROUP` memberships can be changed.
    pub r#type: String,
    /// When the group was created.
    #[serde(default, deserialize_with = "okta_timestamp")]
    pub created: Option<DateTime<Utc>>,
    /// Last change of the group's profile.
    #[serde(default, deserialize_with = "okta_timestamp")]
    pub last_updated: Option<DateTime<Utc>>,
    /// Last change of the group's members.
    #[serde(default, deserialize_with = "okta_timestamp")]
    pub last_membership_updated: Option<DateTime<Utc>>,
    /// The profile: `name`, `description`, and custom attributes.
    #[serde(default)]
    pub profile: JsonObject,
}

/// What activate/reactivate return with `sendEmail=false`: the link the user needs to finish
/// activation. Both fields are bearer secrets, so Debug redacts them.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivationToken {
    /// The activation link to hand to the user (it embeds the token).
    pub activation_url: String,
    /// The activation token itself.
    pub activation_token: String,
}

impl fmt::Debug for ActivationToken {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ActivationToken")
            .field("activation_url", &"[redacted]")
            .field("activation_token", &"[redacted]")
            .finish()
    }
}

/// A user to create (`POST /api/v1/users`).
#[derive(Clone)]
pub struct CreateUserRequest {
    /// The profile; Okta requires at least `login`, `email`, `firstName`, `lastName` by default.
    pub profile: JsonObject,
    /// An initial password; without one the user activates through email.
    pub password: Option<SecretString>,
    /// Groups to add the user to at creation (Okta allows up to 20).
    pub group_ids: Vec<OktaId>,
    /// `activate=true`: activate now; `false` leaves the user `STAGED`.
    pub activate: bool,
    /// `nextLogin=changePassword`: the password must be changed at first sign-in (needs a
    /// password and `activate`).
    pub expire_password_on_create: bool,
}

impl fmt::Debug for CreateUserRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("CreateUserRequest")
            .field("profile", &self.profile)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("group_ids", &self.group_ids)
            .field("activate", &self.activate)
            .field("expire_password_on_create", &self.expire_password_on_create)
            .finish()
    }
}

impl CreateUserRequest {
    /// The JSON body Okta expects: `credentials` only with a password, `groupIds` only when
    /// there are groups. The password is exposed only here, into the request body.
    pub(crate) fn to_body(&self) -> serde_json::Value {
        let mut body = JsonObject::new();
        body.insert(
            "profile".to_owned(),
            serde_json::Value::Object(self.profile.clone()),
        );
        if let Some(password) = &self.password {
            body.insert(
                "credentials".to_owned(),
                serde_json::json!({ "password": { "value": password.expose_secret() } }),
            );
        }
        if !self.group_ids.is_empty() {
            let group_ids = self
                .group_ids
                .iter()
                .map(|id| serde_json::Value::from(id.as_str()))
                .collect();
            body.insert("groupIds".to_owned(), serde_json::Value::Array(group_ids));
        }
        serde_json::Value::Object(body)
    }
}

/// `activate`/`reactivate` answer `{}` with `sendEmail=true` and a token otherwise.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MaybeActivationToken {
    pub(crate) activation_url: Option<String>,
    pub(crate) activation_token: Option<String>,
}

/// `reset_password` answers `{"resetPasswordUrl"}` with `sendEmail=false`, `{}` otherwise.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResetPasswordAnswer {
    pub(crate) reset_password_url: Option<String>,
}

/// `expire_password_with_temp_password` answers `{"tempPassword"}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TempPasswordAnswer {
    pub(crate) temp_password: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_user_decodes_and_ignores_unknown_fields() {
        let user: OktaUser = serde_json::from_str(r#"{"id":"00usfgmn9xhwtA6f74x6","status":"STAGED","created":"2020-08-27T18:19:47.000Z","activated":null,"statusChanged":null,"lastLogin":null,"lastUpdated":"2020-08-27T18:19:47.000Z","passwordChanged":"2020-08-27T18:19:47.000Z","type":{"id":"otyc04qb2rUDcq2YA4x6"},"profile":{"firstName":"John","lastName":"Doe-Paginate-1","mobilePhone":null,"secondEmail":null,"login":"John.Doe-Paginate-1@example.com","email":"John.Doe-Paginate-1@example.com"},"credentials":{"password":{},"provider":{"type":"OKTA","name":"OKTA"}},"_links":{}}"#).unwrap();
        assert_eq!(user.status, "STAGED");
        assert_eq!(user.r#type.unwrap().id, "otyc04qb2rUDcq2YA4x6");
        assert!(user.activated.is_none());
        assert_eq!(user.profile["login"], "John.Doe-Paginate-1@example.com");
    }

    #[test]
    fn timestamps_read_as_chrono_reads_them_strict_or_relaxed() {
        #[derive(Deserialize)]
        struct Stamped {
            #[serde(default, deserialize_with = "okta_timestamp")]
            at: Option<DateTime<Utc>>,
        }
        let read = |json: &str| serde_json::from_str::<Stamped>(json).map(|stamped| stamped.at);
        for text in [
            "2020-08-27T18:19:47.000Z",
            "2020-08-27T18:19:47Z",
            "2020-08-27T20:19:47.123456+02:00",
            "2020-08-27 18:19:47Z",
            "2020-08-27T18:19:47.000 Z",
        ] {
            let chrono = text.parse::<DateTime<Utc>>().unwrap();
            assert_eq!(
                read(&format!(r#"{{"at":"{text}"}}"#)).unwrap(),
                Some(chrono),
                "{text}"
            );
        }
        assert_eq!(read(r#"{"at":null}"#).unwrap(), None);
        assert_eq!(read("{}").unwrap(), None);
        for refused in [
            r#"{"at":"yesterday"}"#,
            r#"{"at":"2020-13-27T18:19:47Z"}"#,
            r#"{"at":5}"#,
        ] {
            let ours = read(refused).unwrap_err().to_string();
            #[derive(Deserialize)]
            struct Chrono {
                #[allow(dead_code)]
                at: Option<DateTime<Utc>>,
            }
            let theirs = serde_json::from_str::<Chrono>(refused)
                .err()
                .unwrap()
                .to_string();
            assert_eq!(ours, theirs, "{refused}");
        }
    }

    #[test]
    fn create_body_has_credentials_and_group_ids_only_when_given() {
        let mut profile = JsonObject::new();
        profile.insert("login".into(), "a@example.com".into());
        let mut request = CreateUserRequest {
            profile,
            password: None,
            group_ids: vec![],
            activate: true,
            expire_password_on_create: false,
        };
        assert_eq!(
            request.to_body(),
            serde_json::json!({"profile": {"login": "a@example.com"}})
        );
        request.password = Some(SecretString::from("Abcd1234!"));
        request.group_ids = vec![OktaId::parse("00gsf7bj3rH2d9PvL4x6").unwrap()];
        assert_eq!(
            request.to_body(),
            serde_json::json!({"profile": {"login": "a@example.com"},
                "credentials": {"password": {"value": "Abcd1234!"}}, "groupIds": ["00gsf7bj3rH2d9PvL4x6"]})
        );
        assert!(!format!("{request:?}").contains("Abcd1234!"));
    }

    #[test]
    fn activation_token_debug_redacts_the_token() {
        let token = ActivationToken {
            activation_url: "https://test.okta.com/welcome/U1uFQ4LZpbyyiMe7Tw_t".into(),
            activation_token: "U1uFQ4LZpbyyiMe7Tw_t".into(),
        };
        assert!(!format!("{token:?}").contains("U1uFQ4LZpbyyiMe7Tw_t"));
    }
}
