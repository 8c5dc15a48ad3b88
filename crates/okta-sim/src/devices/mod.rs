//! `/api/v1/devices` and `/api/v1/users/{id}/devices`: Okta's device registry (Okta Identity
//! Engine), its lifecycle, and the links between devices and users.
//!
//! Facts from the spec (`Device`, `DeviceUser`, `UserDevice`, the lifecycle operation
//! descriptions) and the recorded `TestDeviceResource` traffic:
//! - ids are `guo` + 17 letters or digits; lists are ordered by id and the `after` cursor is the
//!   last id of the previous page, exactly as recorded (`after=guooooy45xtYQeCmC1d7`); a cursor
//!   that is not a device id is `400 E0000031` with the cause `Invalid cursor.`;
//! - `limit` is 1..=200, default 200; `search` is case-insensitive SCIM over `id`, `status`,
//!   `lastUpdated`, `created` and every `profile.*` attribute, `co` only on the attributes the
//!   spec names;
//! - 404 bodies are `Not found: Resource not found: {id} (Device)`, except `…/users`, which
//!   names `(GenericUDObject)` as recorded;
//! - lifecycle calls answer 204. `suspend` needs ACTIVE, `unsuspend` SUSPENDED (back to
//!   ACTIVE), `deactivate` ACTIVE or SUSPENDED and drops every device-user link, `activate`
//!   needs DEACTIVATED. The spec lists only 403/404/429 for these calls, so a transition from the
//!   wrong status is `403 E0000152 Illegal device status, cannot perform action.` (Okta's
//!   catalogue code for exactly this), and so is `DELETE` of a device that is not DEACTIVATED
//!   (the spec's deleteDevice lists 403, not 400, so E0000001 is not used).
//!
//! Nothing here uses the gateway's Okta client or API modules.
//!
//! Split the way users are: [`model`] (the device, its statuses and user links, as the org
//! holds them), [`views`] (Okta's JSON for them) and [`handlers`] (the endpoints).

pub mod handlers;
pub mod model;
pub mod views;

pub use handlers::{delete, get, is_known, lifecycle, list, of_user, users};
pub use model::{
    DEVICE_ID_PREFIX, Device, DeviceStatus, DeviceUserLink, LINK_ID_PREFIX, ManagementStatus,
    ScreenLockType,
};
