//! `identity.v1.DeviceService`: each handler validates, calls Okta, converts. Device
//! conversions live here too, next to their only user.

use serde_json::{Map, Value};
use tonic::{Request, Response, Status};

use super::convert::{struct_from_json, take_string, timestamp, user_from_okta};
use super::page_token;
use super::settle::{found, gone, settle};
use super::status::{OktaCall, failed_precondition, mapped};
use super::token_key::TokenKey;
use super::validate::{Violations, checked, parse_ids};
use crate::proto::device_service_server::DeviceService;
use crate::proto::{
    DeleteDeviceRequest, Device, DeviceFilter, DeviceLifecycleRequest, DevicePlatform,
    DeviceProfile, DeviceStatus, DeviceUser, GetDeviceRequest, ListDeviceUsersRequest,
    ListDeviceUsersResponse, ListDevicesRequest, ListDevicesResponse, ListUserDevicesRequest,
    ListUserDevicesResponse, ManagementStatus, UserDevice,
};
use okta_client::{
    DeviceQuery, DeviceTransition, Expression, MAX_DEVICES_PAGE_SIZE, OktaClient, OktaDevice,
    OktaDeviceUser, OktaId, OktaUserDevice, PageRequest,
};

/// Serves DeviceService over one shared Okta client.
#[derive(Clone)]
pub struct DevicesApi {
    okta: OktaClient,
    token_key: TokenKey,
}

impl DevicesApi {
    /// Wraps the shared Okta client and the page-token key.
    pub fn new(okta: OktaClient, token_key: TokenKey) -> Self {
        Self { okta, token_key }
    }

    async fn current_device(&self, device_id: &OktaId) -> Result<Device, Status> {
        let device = self
            .okta
            .get_device(device_id)
            .await
            .map_err(mapped(OktaCall::Read))?;
        Ok(device_from_okta(device))
    }

    /// Runs a lifecycle operation (204), then reports the device's new state.
    async fn transition(
        &self,
        request: Request<DeviceLifecycleRequest>,
        transition: DeviceTransition,
    ) -> Result<Response<Device>, Status> {
        let device_id = parse_ids(&[("device_id", &request.into_inner().device_id)])
            .await?
            .remove(0);
        if let Err(error) = self.okta.device_lifecycle(&device_id, transition).await {
            let check = format!("the status of device {device_id}");
            let device = settle(error, OktaCall::Lifecycle, &check, async {
                let device = self.okta.get_device(&device_id).await?;
                let done = transition.leads_to().contains(&device.status.as_str());
                Ok(found(device, done))
            })
            .await?;
            return Ok(Response::new(device_from_okta(device)));
        }
        Ok(Response::new(self.current_device(&device_id).await?))
    }
}

#[tonic::async_trait]
impl DeviceService for DevicesApi {
    async fn list_devices(
        &self,
        request: Request<ListDevicesRequest>,
    ) -> Result<Response<ListDevicesResponse>, Status> {
        let request = request.into_inner();
        let mut violations = Violations::default();
        let limit = violations.page_size("page_size", request.page_size, MAX_DEVICES_PAGE_SIZE);
        let filter = request
            .filter
            .as_ref()
            .and_then(|filter| device_filter_expression(filter, &mut violations));
        let query = match (request.search.is_empty(), filter) {
            (false, Some(_)) => {
                violations.add("search", "set at most one of `search` and `filter`");
                None
            }
            (false, None) => violations
                .expression("search", &request.search)
                .map(DeviceQuery::Search),
            (true, Some(expression)) => Some(DeviceQuery::Search(expression)),
            (true, None) => Some(DeviceQuery::All),
        };
        let expression = match &query {
            Some(DeviceQuery::Search(expression)) => expression.as_str(),
            Some(DeviceQuery::All) | None => "",
        };
        let fingerprint = page_token::query_fingerprint(&["devices", expression]);
        let after = violations.page_cursor(&self.token_key, &request.page_token, &fingerprint);
        violations.finish().await?;
        let page = self
            .okta
            .list_devices(&checked(query)?, &PageRequest { limit, after })
            .await
            .map_err(mapped(OktaCall::Read))?;
        Ok(Response::new(ListDevicesResponse {
            next_page_token: page_token::encode(&self.token_key, page.next.as_ref(), &fingerprint),
            devices: page.items.into_iter().map(device_from_okta).collect(),
        }))
    }

    async fn get_device(
        &self,
        request: Request<GetDeviceRequest>,
    ) -> Result<Response<Device>, Status> {
        let device_id = parse_ids(&[("device_id", &request.into_inner().device_id)])
            .await?
            .remove(0);
        Ok(Response::new(self.current_device(&device_id).await?))
    }

    async fn activate_device(
        &self,
        request: Request<DeviceLifecycleRequest>,
    ) -> Result<Response<Device>, Status> {
        self.transition(request, DeviceTransition::Activate).await
    }

    async fn deactivate_device(
        &self,
        request: Request<DeviceLifecycleRequest>,
    ) -> Result<Response<Device>, Status> {
        self.transition(request, DeviceTransition::Deactivate).await
    }

    async fn suspend_device(
        &self,
        request: Request<DeviceLifecycleRequest>,
    ) -> Result<Response<Device>, Status> {
        self.transition(request, DeviceTransition::Suspend).await
    }

    async fn unsuspend_device(
        &self,
        request: Request<DeviceLifecycleRequest>,
    ) -> Result<Response<Device>, Status> {
        self.transition(request, DeviceTransition::Unsuspend).await
    }

    async fn delete_device(
        &self,
        request: Request<DeleteDeviceRequest>,
    ) -> Result<Response<()>, Status> {
        let device_id = parse_ids(&[("device_id", &request.into_inner().device_id)])
            .await?
            .remove(0);
        let read = self
            .okta
            .get_device_answered(&device_id)
            .await
            .map_err(mapped(OktaCall::Read))?;
        let device = read.value;
        if device.status != "DEACTIVATED" {
            return Err(failed_precondition(
                &format!("devices/{device_id}"),
                &format!(
                    "the device is {}; Okta deletes only DEACTIVATED devices: call \
                     DeactivateDevice first",
                    device.status
                ),
                read.request_id.as_deref(),
            ));
        }
        if let Err(error) = self.okta.delete_device(&device_id).await {
            let check = format!("whether device {device_id} still exists");
            settle(error, OktaCall::Lifecycle, &check, async {
                gone(self.okta.get_device(&device_id).await)
            })
            .await?;
        }
        Ok(Response::new(()))
    }

    async fn list_device_users(
        &self,
        request: Request<ListDeviceUsersRequest>,
    ) -> Result<Response<ListDeviceUsersResponse>, Status> {
        let device_id = parse_ids(&[("device_id", &request.into_inner().device_id)])
            .await?
            .remove(0);
        let users = self
            .okta
            .list_device_users(&device_id)
            .await
            .map_err(mapped(OktaCall::Read))?;
        Ok(Response::new(ListDeviceUsersResponse {
            users: users.into_iter().map(device_user_from_okta).collect(),
        }))
    }

    async fn list_user_devices(
        &self,
        request: Request<ListUserDevicesRequest>,
    ) -> Result<Response<ListUserDevicesResponse>, Status> {
        let user_id = parse_ids(&[("user_id", &request.into_inner().user_id)])
            .await?
            .remove(0);
        let devices = self
            .okta
            .list_user_devices(&user_id)
            .await
            .map_err(mapped(OktaCall::Read))?;
        Ok(Response::new(ListUserDevicesResponse {
            devices: devices.into_iter().map(user_device_from_okta).collect(),
        }))
    }
}

/// Okta's name for a device status; `None` for UNSPECIFIED.
pub fn okta_device_status(status: DeviceStatus) -> Option<&'static str> {
    match status {
        DeviceStatus::Unspecified => None,
        DeviceStatus::Active => Some("ACTIVE"),
        DeviceStatus::Deactivated => Some("DEACTIVATED"),
        DeviceStatus::Suspended => Some("SUSPENDED"),
        DeviceStatus::Unsuspended => Some("UNSUSPENDED"),
    }
}

/// Builds `status eq "…" or …` from the structured filter; `None` when it filters nothing.
fn device_filter_expression(
    filter: &DeviceFilter,
    violations: &mut Violations,
) -> Option<Expression> {
    let statuses = violations.status_filter("filter.statuses", &filter.statuses, |status| {
        DeviceStatus::try_from(status)
            .ok()
            .and_then(okta_device_status)
    });
    Expression::any_of(statuses)
}

fn device_status_from_okta(status: &str) -> DeviceStatus {
    DeviceStatus::from_str_name(&format!("DEVICE_STATUS_{status}"))
        .unwrap_or(DeviceStatus::Unspecified)
}

fn take_bool(attributes: &mut Map<String, Value>, name: &str) -> Option<bool> {
    match attributes.remove(name) {
        Some(Value::Bool(flag)) => Some(flag),
        Some(Value::Null) | None => None,
        Some(other) => {
            // Keep what we cannot read as a flag rather than dropping it.
            attributes.insert(name.to_owned(), other);
            None
        }
    }
}

fn profile_from_okta(mut attributes: Map<String, Value>) -> DeviceProfile {
    let platform = take_string(&mut attributes, "platform");
    DeviceProfile {
        display_name: take_string(&mut attributes, "displayName"),
        platform: DevicePlatform::from_str_name(&format!("DEVICE_PLATFORM_{platform}"))
            .unwrap_or(DevicePlatform::Unspecified) as i32,
        manufacturer: take_string(&mut attributes, "manufacturer"),
        model: take_string(&mut attributes, "model"),
        os_version: take_string(&mut attributes, "osVersion"),
        serial_number: take_string(&mut attributes, "serialNumber"),
        udid: take_string(&mut attributes, "udid"),
        sid: take_string(&mut attributes, "sid"),
        imei: take_string(&mut attributes, "imei"),
        meid: take_string(&mut attributes, "meid"),
        registered: take_bool(&mut attributes, "registered").unwrap_or(false),
        secure_hardware_present: take_bool(&mut attributes, "secureHardwarePresent"),
        managed: take_bool(&mut attributes, "managed"),
        integrity_jailbreak: take_bool(&mut attributes, "integrityJailbreak"),
        disk_encryption_type: take_string(&mut attributes, "diskEncryptionType"),
        tpm_public_key_hash: take_string(&mut attributes, "tpmPublicKeyHash"),
        other_attributes: struct_from_json(attributes),
    }
}

/// An Okta device as the caller sees it.
pub fn device_from_okta(device: OktaDevice) -> Device {
    Device {
        id: device.id,
        status: device_status_from_okta(&device.status) as i32,
        created: timestamp(device.created),
        last_updated: timestamp(device.last_updated),
        profile: Some(profile_from_okta(device.profile)),
    }
}

fn device_user_from_okta(device_user: OktaDeviceUser) -> DeviceUser {
    let management_status = match device_user.management_status.as_deref() {
        Some("MANAGED") => ManagementStatus::Managed,
        Some("NOT_MANAGED") => ManagementStatus::NotManaged,
        _ => ManagementStatus::Unspecified,
    };
    DeviceUser {
        user: Some(user_from_okta(device_user.user)),
        management_status: management_status as i32,
        screen_lock_type: device_user.screen_lock_type.unwrap_or_default(),
        created: timestamp(device_user.created),
    }
}

fn user_device_from_okta(user_device: OktaUserDevice) -> UserDevice {
    UserDevice {
        device: Some(device_from_okta(user_device.device)),
        device_user_id: user_device.device_user_id.unwrap_or_default(),
        created: timestamp(user_device.created),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_split_into_fields_and_other_attributes() {
        let profile: Map<String, Value> = serde_json::from_str(
            r#"{"displayName":"HQPWN2JYWK","platform":"IOS","registered":true,
                "secureHardwarePresent":true,"authenticatorAppKey":"C1A3"}"#,
        )
        .unwrap();
        let profile = profile_from_okta(profile);
        assert_eq!(profile.platform, DevicePlatform::Ios as i32);
        assert!(profile.registered);
        assert_eq!(profile.secure_hardware_present, Some(true));
        assert_eq!(profile.managed, None);
        let other = profile.other_attributes.unwrap();
        assert_eq!(other.fields.len(), 1);
        assert!(other.fields.contains_key("authenticatorAppKey"));
    }

    #[test]
    fn statuses_map_both_ways() {
        for status in [
            DeviceStatus::Active,
            DeviceStatus::Deactivated,
            DeviceStatus::Suspended,
            DeviceStatus::Unsuspended,
        ] {
            let name = okta_device_status(status).unwrap();
            assert_eq!(device_status_from_okta(name), status);
        }
        assert_eq!(device_status_from_okta("NEW"), DeviceStatus::Unspecified);
    }
}
