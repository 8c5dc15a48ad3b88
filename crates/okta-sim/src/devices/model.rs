//! A device of the org and its links to users, as the simulator holds them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Id prefix of devices.
pub const DEVICE_ID_PREFIX: &str = "guo";
/// Id prefix of device-user links (`deviceUserId`, `lnk…` in the spec's example).
pub const LINK_ID_PREFIX: &str = "lnk";

/// Okta's `DeviceStatus` values a device can be in. (`UNSUSPENDED` is in the spec's enum too,
/// but `unsuspend` returns a device to `ACTIVE`, so no device is ever left in it.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeviceStatus {
    /// In use; may be suspended or deactivated.
    Active,
    /// Temporarily blocked; may only be unsuspended or deactivated.
    Suspended,
    /// Lost its user links; may be activated again or deleted.
    Deactivated,
}

impl DeviceStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Active => "ACTIVE",
            DeviceStatus::Suspended => "SUSPENDED",
            DeviceStatus::Deactivated => "DEACTIVATED",
        }
    }
}

/// Okta's `DeviceUser.managementStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ManagementStatus {
    /// Management software installed.
    Managed,
    /// No management software.
    #[default]
    NotManaged,
}

impl ManagementStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ManagementStatus::Managed => "MANAGED",
            ManagementStatus::NotManaged => "NOT_MANAGED",
        }
    }
}

/// Okta's `DeviceUser.screenLockType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScreenLockType {
    /// No screen lock.
    None,
    /// A passcode.
    Passcode,
    /// Biometrics.
    Biometric,
}

impl ScreenLockType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScreenLockType::None => "NONE",
            ScreenLockType::Passcode => "PASSCODE",
            ScreenLockType::Biometric => "BIOMETRIC",
        }
    }
}

/// The link between a device and one of its users.
#[derive(Debug, Clone)]
pub struct DeviceUserLink {
    /// `deviceUserId` (`lnk…`).
    pub id: String,
    /// When the user enrolled the device.
    pub created: DateTime<Utc>,
    /// Whether the device is managed (MDM) for this user.
    pub management_status: ManagementStatus,
    /// The screen lock reported at enrollment, if any.
    pub screen_lock_type: Option<ScreenLockType>,
}

/// One device of the org.
#[derive(Debug, Clone)]
pub struct Device {
    /// `guo…` id.
    pub id: String,
    /// Lifecycle status.
    pub status: DeviceStatus,
    /// Creation (enrollment) time.
    pub created: DateTime<Utc>,
    /// Last change of anything, status included.
    pub last_updated: DateTime<Utc>,
    /// `displayName`, `platform`, `registered`, … and any other attribute.
    pub profile: Map<String, Value>,
    /// Links by user id.
    pub users: BTreeMap<String, DeviceUserLink>,
}

impl Device {
    /// The profile's display name, or `""`.
    pub fn display_name(&self) -> &str {
        self.profile
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}
