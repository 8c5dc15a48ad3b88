//! Device endpoints (Okta Identity Engine): one method per Okta operation
//! (`/api/v1/devices…`, `/api/v1/users/{userId}/devices`), and their JSON shapes.

use chrono::{DateTime, Utc};
use http::Method;
use serde::Deserialize;

use crate::client::{Answered, OktaClient};
use crate::context::CallContext;
use crate::error::OktaError;
use crate::expression::Expression;
use crate::ids::OktaId;
use crate::models::{OktaUser, okta_timestamp};
use crate::pagination::{Page, PageRequest};
use crate::retry::Retry;
use crate::users::with_page;

/// A JSON object, as Okta profiles are.
type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Okta's largest page for `GET /api/v1/devices` (spec: maximum 200, default 200).
pub const MAX_DEVICES_PAGE_SIZE: u32 = 200;

/// An Okta device (`Device` in Okta's spec), without `_links` and the `resource*` echoes.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OktaDevice {
    /// Okta's id (`guo…`).
    pub id: String,
    /// `ACTIVE`, `DEACTIVATED`, `SUSPENDED` or `UNSUSPENDED`; kept as a string so new statuses
    /// do not break decoding.
    pub status: String,
    /// When the device was enrolled.
    #[serde(default, deserialize_with = "okta_timestamp")]
    pub created: Option<DateTime<Utc>>,
    /// Last change (signals collected at sign-in, or a lifecycle change).
    #[serde(default, deserialize_with = "okta_timestamp")]
    pub last_updated: Option<DateTime<Utc>>,
    /// `displayName`, `platform`, `registered`, … and any other attribute.
    #[serde(default)]
    pub profile: JsonObject,
}

/// One user of a device (`DeviceUser`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OktaDeviceUser {
    /// When the user enrolled the device (a string in Okta's spec).
    #[serde(default, deserialize_with = "okta_timestamp")]
    pub created: Option<DateTime<Utc>>,
    /// `MANAGED` or `NOT_MANAGED`.
    #[serde(default)]
    pub management_status: Option<String>,
    /// `NONE`, `PASSCODE` or `BIOMETRIC`.
    #[serde(default)]
    pub screen_lock_type: Option<String>,
    /// The user.
    pub user: OktaUser,
}

/// One device of a user (`UserDevice`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OktaUserDevice {
    /// When the user enrolled the device.
    #[serde(default, deserialize_with = "okta_timestamp")]
    pub created: Option<DateTime<Utc>>,
    /// The id of the device-user link.
    #[serde(default)]
    pub device_user_id: Option<String>,
    /// The device.
    pub device: OktaDevice,
}

/// Which devices `list_devices` returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceQuery {
    /// Every device.
    All,
    /// `search=`: e.g. `status eq "ACTIVE"`, `profile.platform eq "MACOS"`.
    Search(Expression),
}

/// The lifecycle operations of `POST /api/v1/devices/{deviceId}/lifecycle/{op}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceTransition {
    /// `activate`: DEACTIVATED → ACTIVE.
    Activate,
    /// `deactivate`: → DEACTIVATED; the device loses its user links.
    Deactivate,
    /// `suspend`: ACTIVE → SUSPENDED.
    Suspend,
    /// `unsuspend`: SUSPENDED → ACTIVE.
    Unsuspend,
}

impl DeviceTransition {
    /// The path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceTransition::Activate => "activate",
            DeviceTransition::Deactivate => "deactivate",
            DeviceTransition::Suspend => "suspend",
            DeviceTransition::Unsuspend => "unsuspend",
        }
    }

    /// The statuses the operation leaves a device in (none of them allows it again).
    pub fn leads_to(self) -> &'static [&'static str] {
        match self {
            DeviceTransition::Activate | DeviceTransition::Unsuspend => &["ACTIVE"],
            DeviceTransition::Deactivate => &["DEACTIVATED"],
            DeviceTransition::Suspend => &["SUSPENDED"],
        }
    }
}

impl OktaClient {
    /// Lists one page of devices (`GET /api/v1/devices`, optionally with `search`).
    pub async fn list_devices(
        &self,
        cx: &CallContext,
        query: &DeviceQuery,
        page: &PageRequest,
    ) -> Result<Page<OktaDevice>, OktaError> {
        let pairs: Vec<(&str, &str)> = match query {
            DeviceQuery::All => Vec::new(),
            DeviceQuery::Search(expression) => vec![("search", expression.as_str())],
        };
        let url = with_page(self.endpoint(&["api", "v1", "devices"])?, &pairs, page);
        self.get_page(cx, url).await
    }

    /// Fetches one device (`GET /api/v1/devices/{deviceId}`).
    pub async fn get_device(
        &self,
        cx: &CallContext,
        device_id: &OktaId,
    ) -> Result<OktaDevice, OktaError> {
        Ok(self.get_device_answered(cx, device_id).await?.value)
    }

    /// [`Self::get_device`] with the request id, for a refusal decided on the device's status.
    pub async fn get_device_answered(
        &self,
        cx: &CallContext,
        device_id: &OktaId,
    ) -> Result<Answered<OktaDevice>, OktaError> {
        let url = self.endpoint(&["api", "v1", "devices", device_id.as_str()])?;
        self.send(cx, Method::GET, url, None, Retry::Idempotent)
            .await?
            .answered()
    }

    /// Runs a lifecycle operation (`POST …/lifecycle/{op}`, 204), a transition (see
    /// [`crate::transition`]): Okta refuses a repeat from the status the operation leads
    /// to with E0000152, as from any status it does not start from, so the status is read to
    /// tell.
    pub async fn device_lifecycle(
        &self,
        cx: &CallContext,
        device_id: &OktaId,
        transition: DeviceTransition,
    ) -> Result<(), OktaError> {
        let segments = [
            "api",
            "v1",
            "devices",
            device_id.as_str(),
            "lifecycle",
            transition.as_str(),
        ];
        let url = self.endpoint(&segments)?;
        let arrived =
            |code: Option<&str>| (code == Some("E0000152")).then(|| transition.leads_to());
        self.transition(cx, url, Retry::Transition, arrived, || async {
            Ok(self.get_device(cx, device_id).await?.status)
        })
        .await
        .map(drop)
    }

    /// Deletes a DEACTIVATED device permanently (`DELETE /api/v1/devices/{deviceId}`, 204).
    /// Not retried.
    pub async fn delete_device(
        &self,
        cx: &CallContext,
        device_id: &OktaId,
    ) -> Result<(), OktaError> {
        let url = self.endpoint(&["api", "v1", "devices", device_id.as_str()])?;
        self.send(cx, Method::DELETE, url, None, Retry::Never)
            .await
            .map(drop)
    }

    /// Lists a device's users with their management status
    /// (`GET /api/v1/devices/{deviceId}/users`; follows `next` links should Okta send any).
    pub async fn list_device_users(
        &self,
        cx: &CallContext,
        device_id: &OktaId,
    ) -> Result<Vec<OktaDeviceUser>, OktaError> {
        let url = self.endpoint(&["api", "v1", "devices", device_id.as_str(), "users"])?;
        self.get_all(cx, url).await
    }

    /// Lists the devices a user enrolled (`GET /api/v1/users/{userId}/devices`).
    pub async fn list_user_devices(
        &self,
        cx: &CallContext,
        user_id: &OktaId,
    ) -> Result<Vec<OktaUserDevice>, OktaError> {
        let url = self.endpoint(&["api", "v1", "users", user_id.as_str(), "devices"])?;
        self.get_all(cx, url).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_device_decodes() {
        let device: OktaDevice = serde_json::from_str(r#"{"id":"guonli06qyirBuaHF1d7","status":"ACTIVE","created":"2025-06-27T06:12:03.000Z","lastUpdated":"2025-09-19T03:15:43.000Z","profile":{"displayName":"HQPWN2JYWK","platform":"IOS","manufacturer":"APPLE","model":"iPhone15,4","osVersion":"18.5.0","serialNumber":"HQPWN2JYWK","udid":"00008120-001C5D4A3E32601E","registered":true,"secureHardwarePresent":true,"authenticatorAppKey":"C1A3CED7-2009-4CCE-BEF4-034278790828"},"resourceType":"UDDevice","resourceDisplayName":{"value":"HQPWN2JYWK","sensitive":false},"resourceId":"guonli06qyirBuaHF1d7","resourceAlternateId":null,"_links":{}}"#).unwrap();
        assert_eq!(device.status, "ACTIVE");
        assert_eq!(device.profile["platform"], "IOS");
        assert!(device.last_updated.is_some());
    }
}
