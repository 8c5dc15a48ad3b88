//! DeviceService end to end: gateway and simulator over real sockets.

use crate::common;

use std::collections::HashSet;
use std::net::SocketAddr;

use common::{TestApp, error_metadata, reason, spawn_app, violated_fields};
use identity_gateway::proto::device_service_client::DeviceServiceClient;
use identity_gateway::proto::{
    DeleteDeviceRequest, Device, DeviceFilter, DeviceLifecycleRequest, DevicePlatform,
    DeviceStatus, GetDeviceRequest, ListDeviceUsersRequest, ListDevicesRequest,
    ListUserDevicesRequest, ManagementStatus,
};
use okta_sim::{RateLimitSettings, SeedSource, Simulator, SimulatorSettings};
use serde_json::{Value, json};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

async fn connect_devices(app: &TestApp) -> DeviceServiceClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.address))
        .unwrap()
        .connect()
        .await
        .unwrap();
    DeviceServiceClient::new(channel)
}

/// Seven devices: three ACTIVE (one shared by two users), two SUSPENDED, two DEACTIVATED.
async fn seed_devices(app: &TestApp) -> Value {
    app.seed(json!({
        "users": [{"login": "ada@example.com"}, {"login": "bob@example.com"}],
        "devices": [
            {"displayName": "ADA-MBP", "platform": "MACOS", "manufacturer": "APPLE",
             "model": "Mac15,9", "osVersion": "15.6.1", "serialNumber": "SN0001",
             "udid": "F5DFB6C9-24FB-5B81-BFCB-7AB5F7B58BA5", "secureHardwarePresent": true,
             "profile": {"diskEncryptionType": "ALL_INTERNAL_VOLUMES", "authenticatorAppKey": "C1A3"},
             "users": ["ada@example.com", "bob@example.com"], "managementStatus": "MANAGED",
             "screenLockType": "BIOMETRIC"},
            {"displayName": "ADA-IPHONE", "platform": "IOS", "serialNumber": "SN0002",
             "users": ["ada@example.com"]},
            {"displayName": "BOB-PC", "platform": "WINDOWS", "serialNumber": "SN0003",
             "users": ["bob@example.com"]},
            {"displayName": "PIXEL-1", "platform": "ANDROID", "serialNumber": "SN0004",
             "status": "SUSPENDED", "users": ["bob@example.com"]},
            {"displayName": "PIXEL-2", "platform": "ANDROID", "serialNumber": "SN0005",
             "status": "SUSPENDED"},
            {"displayName": "OLD-MAC-1", "platform": "MACOS", "serialNumber": "SN0006",
             "status": "DEACTIVATED"},
            {"displayName": "OLD-MAC-2", "platform": "MACOS", "serialNumber": "SN0007",
             "status": "DEACTIVATED"}
        ]
    }))
    .await
}

fn id_of(seeded: &Value, name: &str) -> String {
    seeded["devices"][name].as_str().unwrap().to_owned()
}

fn lifecycle(device_id: &str) -> DeviceLifecycleRequest {
    DeviceLifecycleRequest {
        device_id: device_id.to_owned(),
        ..Default::default()
    }
}

fn status_of(device: &Device) -> DeviceStatus {
    device.status()
}

async fn list_all(
    client: &mut DeviceServiceClient<Channel>,
    request: ListDevicesRequest,
) -> (Vec<Device>, usize) {
    let mut all = Vec::new();
    let mut pages = 0;
    let mut page_token = String::new();
    loop {
        let page = client
            .list_devices(ListDevicesRequest {
                page_token,
                ..request.clone()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        all.extend(page.devices);
        if page.next_page_token.is_empty() {
            return (all, pages);
        }
        page_token = page.next_page_token;
    }
}

fn query_of(request: &Value) -> Vec<(String, String)> {
    url::form_urlencoded::parse(request["query"].as_str().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn devices_are_listed_across_pages_and_by_search_or_status_filter() {
    let app = spawn_app().await;
    seed_devices(&app).await;
    let mut client = connect_devices(&app).await;

    let (all, pages) = list_all(
        &mut client,
        ListDevicesRequest {
            page_size: 3,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(pages, 3);
    let ids: Vec<&str> = all.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids.len(), 7);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 7, "no repeats");
    let requests = app.sim_requests().await;
    assert!(requests.iter().all(|r| r["path"] == "/api/v1/devices"));
    assert!(query_of(&requests[0]).contains(&("limit".to_owned(), "3".to_owned())));
    assert!(query_of(&requests[1]).iter().any(|(k, _)| k == "after"));

    let (active, _) = list_all(
        &mut client,
        ListDevicesRequest {
            search: r#"status eq "ACTIVE""#.to_owned(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(active.len(), 3);
    assert!(active.iter().all(|d| status_of(d) == DeviceStatus::Active));

    let (windows, _) = list_all(
        &mut client,
        ListDevicesRequest {
            search: r#"profile.platform eq "WINDOWS" or profile.displayName co "mac-1""#.to_owned(),
            ..Default::default()
        },
    )
    .await;
    let names: HashSet<String> = windows
        .iter()
        .map(|d| d.profile.as_ref().unwrap().display_name.clone())
        .collect();
    assert_eq!(
        names,
        HashSet::from(["BOB-PC".to_owned(), "OLD-MAC-1".to_owned()])
    );

    app.clear_sim_requests().await;
    let (not_active, _) = list_all(
        &mut client,
        ListDevicesRequest {
            filter: Some(DeviceFilter {
                statuses: vec![
                    DeviceStatus::Suspended as i32,
                    DeviceStatus::Deactivated as i32,
                ],
            }),
            page_size: 200,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(not_active.len(), 4);
    let requests = app.sim_requests().await;
    assert!(
        query_of(&requests[0]).contains(&(
            "search".to_owned(),
            r#"(status eq "SUSPENDED") or (status eq "DEACTIVATED")"#.to_owned()
        )),
        "{requests:?}"
    );
}

#[tokio::test]
async fn get_device_returns_the_profile_fields_and_the_rest_as_a_struct() {
    let app = spawn_app().await;
    let seeded = seed_devices(&app).await;
    let mut client = connect_devices(&app).await;
    let device = client
        .get_device(GetDeviceRequest {
            device_id: id_of(&seeded, "ADA-MBP"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(device.id, id_of(&seeded, "ADA-MBP"));
    assert_eq!(status_of(&device), DeviceStatus::Active);
    assert!(device.created.is_some() && device.last_updated.is_some());
    let profile = device.profile.unwrap();
    assert_eq!(profile.display_name, "ADA-MBP");
    assert_eq!(profile.platform(), DevicePlatform::Macos);
    assert_eq!(profile.manufacturer, "APPLE");
    assert_eq!(profile.model, "Mac15,9");
    assert_eq!(profile.os_version, "15.6.1");
    assert_eq!(profile.serial_number, "SN0001");
    assert_eq!(profile.udid, "F5DFB6C9-24FB-5B81-BFCB-7AB5F7B58BA5");
    assert!(profile.registered);
    assert_eq!(profile.secure_hardware_present, Some(true));
    assert_eq!(profile.disk_encryption_type, "ALL_INTERNAL_VOLUMES");
    let other = profile.other_attributes.unwrap();
    assert_eq!(
        other.fields.keys().collect::<Vec<_>>(),
        vec!["authenticatorAppKey"]
    );
}

#[tokio::test]
async fn the_whole_lifecycle_reports_the_state_after_each_step() {
    let app = spawn_app().await;
    let seeded = seed_devices(&app).await;
    let mut client = connect_devices(&app).await;
    let id = id_of(&seeded, "ADA-MBP");

    let suspended = client.suspend_device(lifecycle(&id)).await.unwrap();
    assert_eq!(status_of(suspended.get_ref()), DeviceStatus::Suspended);
    let unsuspended = client.unsuspend_device(lifecycle(&id)).await.unwrap();
    assert_eq!(status_of(unsuspended.get_ref()), DeviceStatus::Active);

    let users_before = client
        .list_device_users(ListDeviceUsersRequest {
            device_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(users_before.users.len(), 2);

    let deactivated = client.deactivate_device(lifecycle(&id)).await.unwrap();
    assert_eq!(status_of(deactivated.get_ref()), DeviceStatus::Deactivated);
    // Okta: "Deactivation causes a device to lose all device user links."
    let users_after = client
        .list_device_users(ListDeviceUsersRequest {
            device_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(users_after.users.is_empty());

    let activated = client.activate_device(lifecycle(&id)).await.unwrap();
    assert_eq!(status_of(activated.get_ref()), DeviceStatus::Active);

    let fetched = client
        .get_device(GetDeviceRequest { device_id: id })
        .await
        .unwrap();
    assert_eq!(status_of(fetched.get_ref()), DeviceStatus::Active);

    // Each transition is one POST then one GET.
    let requests = app.sim_requests().await;
    let methods: Vec<String> = requests
        .iter()
        .filter(|r| !r["path"].as_str().unwrap().ends_with("/users"))
        .map(|r| {
            format!(
                "{} {}",
                r["method"],
                r["path"].as_str().unwrap().rsplit('/').next().unwrap()
            )
        })
        .collect();
    assert_eq!(methods.len(), 9, "{methods:?}");
    assert!(methods[0].contains("POST") && methods[0].ends_with("suspend"));
    assert!(methods[1].contains("GET"));
}

fn assert_wrong_status(status: &Status) {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(reason(status), "OKTA_WRONG_STATUS");
    assert_eq!(error_metadata(status, "okta_error_code"), "E0000152");
    let precondition = status.get_details_precondition_failure().unwrap();
    assert_eq!(precondition.violations[0].subject, "device");
}

#[tokio::test]
async fn transitions_from_the_wrong_status_are_failed_precondition() {
    let app = spawn_app().await;
    let seeded = seed_devices(&app).await;
    let mut client = connect_devices(&app).await;
    let active = id_of(&seeded, "ADA-IPHONE");
    let suspended = id_of(&seeded, "PIXEL-1");
    let deactivated = id_of(&seeded, "OLD-MAC-1");

    assert_wrong_status(
        &client
            .activate_device(lifecycle(&active))
            .await
            .unwrap_err(),
    );
    assert_wrong_status(
        &client
            .unsuspend_device(lifecycle(&active))
            .await
            .unwrap_err(),
    );
    assert_wrong_status(
        &client
            .suspend_device(lifecycle(&suspended))
            .await
            .unwrap_err(),
    );
    assert_wrong_status(
        &client
            .activate_device(lifecycle(&suspended))
            .await
            .unwrap_err(),
    );
    assert_wrong_status(
        &client
            .suspend_device(lifecycle(&deactivated))
            .await
            .unwrap_err(),
    );
    assert_wrong_status(
        &client
            .unsuspend_device(lifecycle(&deactivated))
            .await
            .unwrap_err(),
    );
    assert_wrong_status(
        &client
            .deactivate_device(lifecycle(&deactivated))
            .await
            .unwrap_err(),
    );

    // A suspended device may be deactivated.
    let device = client
        .deactivate_device(lifecycle(&suspended))
        .await
        .unwrap();
    assert_eq!(status_of(device.get_ref()), DeviceStatus::Deactivated);
}

#[tokio::test]
async fn a_transition_whose_answer_was_lost_is_retried_and_carried_out_once() {
    let app = spawn_app().await;
    let seeded = seed_devices(&app).await;
    let mut client = connect_devices(&app).await;
    for (op, name, expected) in [
        ("suspend", "ADA-IPHONE", DeviceStatus::Suspended),
        ("unsuspend", "PIXEL-2", DeviceStatus::Active),
        ("deactivate", "BOB-PC", DeviceStatus::Deactivated),
        ("activate", "OLD-MAC-2", DeviceStatus::Active),
    ] {
        let device_id = id_of(&seeded, name);
        let path = format!("/api/v1/devices/{device_id}/lifecycle/{op}");
        // The transition is carried out, then its answer is lost.
        app.inject_fault(
            json!({"method": "POST", "path_prefix": path, "status": 502, "commit_then_fail": true}),
        )
        .await;
        let request = lifecycle(&device_id);
        let answer = match op {
            "suspend" => client.suspend_device(request).await,
            "unsuspend" => client.unsuspend_device(request).await,
            "deactivate" => client.deactivate_device(request).await,
            _ => client.activate_device(request).await,
        };
        let device = answer
            .unwrap_or_else(|status| panic!("{op}: {status:?}"))
            .into_inner();
        assert_eq!(status_of(&device), expected, "{op}");
        assert_eq!(
            app.sim_statuses("POST", &path).await,
            [502, 403],
            "{op}: carried out by the first attempt, the repeat refused with E0000152"
        );
    }

    // A retry refused because the device is in another status than the target stays refused.
    let deactivated = id_of(&seeded, "OLD-MAC-1");
    let path = format!("/api/v1/devices/{deactivated}/lifecycle/suspend");
    app.inject_fault(json!({"method": "POST", "path_prefix": path, "status": 503}))
        .await;
    assert_wrong_status(
        &client
            .suspend_device(lifecycle(&deactivated))
            .await
            .unwrap_err(),
    );
    assert_eq!(app.sim_statuses("POST", &path).await, [503, 403]);
}

#[tokio::test]
async fn only_deactivated_devices_are_deleted() {
    let app = spawn_app().await;
    let seeded = seed_devices(&app).await;
    let mut client = connect_devices(&app).await;
    for name in ["ADA-IPHONE", "PIXEL-2"] {
        let id = id_of(&seeded, name);
        app.clear_sim_requests().await;
        let refused = client
            .delete_device(DeleteDeviceRequest {
                device_id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert_eq!(reason(&refused), "PRECONDITION_FAILED");
        let precondition = refused.get_details_precondition_failure().unwrap();
        assert!(
            precondition.violations[0]
                .description
                .contains("DeactivateDevice"),
            "{precondition:?}"
        );
        assert_eq!(precondition.violations[0].subject, format!("devices/{id}"));
        let requests = app.sim_requests().await;
        assert!(
            requests.iter().all(|r| r["method"] != "DELETE"),
            "{requests:?}"
        );
    }

    let id = id_of(&seeded, "ADA-IPHONE");
    client.deactivate_device(lifecycle(&id)).await.unwrap();
    client
        .delete_device(DeleteDeviceRequest {
            device_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let gone = client
        .get_device(GetDeviceRequest { device_id: id })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);

    // Okta itself refuses too (403 E0000152) should the status change between read and delete:
    // the sim answers so for a direct DELETE of an ACTIVE device.
    let response = app
        .http
        .delete(format!(
            "{}/api/v1/devices/{}",
            app.sim.base_url(),
            id_of(&seeded, "BOB-PC")
        ))
        .header("Authorization", format!("SSWS {}", common::SIM_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorCode"], "E0000152");
}

#[tokio::test]
async fn device_users_and_user_devices_show_the_links() {
    let app = spawn_app().await;
    let seeded = seed_devices(&app).await;
    let mut client = connect_devices(&app).await;
    let ada = seeded["users"]["ada@example.com"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = seeded["users"]["bob@example.com"]
        .as_str()
        .unwrap()
        .to_owned();

    let users = client
        .list_device_users(ListDeviceUsersRequest {
            device_id: id_of(&seeded, "ADA-MBP"),
        })
        .await
        .unwrap()
        .into_inner()
        .users;
    let ids: HashSet<String> = users
        .iter()
        .map(|u| u.user.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(ids, HashSet::from([ada.clone(), bob.clone()]));
    for user in &users {
        assert_eq!(user.management_status(), ManagementStatus::Managed);
        assert_eq!(user.screen_lock_type, "BIOMETRIC");
        assert!(user.created.is_some());
        assert!(
            !user
                .user
                .as_ref()
                .unwrap()
                .profile
                .as_ref()
                .unwrap()
                .login
                .is_empty()
        );
    }
    let unmanaged = client
        .list_device_users(ListDeviceUsersRequest {
            device_id: id_of(&seeded, "ADA-IPHONE"),
        })
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(unmanaged.len(), 1);
    assert_eq!(
        unmanaged[0].management_status(),
        ManagementStatus::NotManaged
    );

    let ada_devices = client
        .list_user_devices(ListUserDevicesRequest {
            user_id: ada.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .devices;
    let names: HashSet<String> = ada_devices
        .iter()
        .map(|d| {
            d.device
                .as_ref()
                .unwrap()
                .profile
                .as_ref()
                .unwrap()
                .display_name
                .clone()
        })
        .collect();
    assert_eq!(
        names,
        HashSet::from(["ADA-MBP".to_owned(), "ADA-IPHONE".to_owned()])
    );
    assert!(ada_devices.iter().all(|d| !d.device_user_id.is_empty()));

    let bob_devices = client
        .list_user_devices(ListUserDevicesRequest { user_id: bob })
        .await
        .unwrap()
        .into_inner()
        .devices;
    assert_eq!(bob_devices.len(), 3);
    let requests = app.sim_requests().await;
    assert!(
        requests
            .iter()
            .any(|r| r["path"] == format!("/api/v1/users/{ada}/devices"))
    );
}

#[tokio::test]
async fn unknown_devices_and_users_are_not_found() {
    let app = spawn_app().await;
    let mut client = connect_devices(&app).await;
    let missing = "guo00000000000000000".to_owned();
    let statuses = vec![
        client
            .get_device(GetDeviceRequest {
                device_id: missing.clone(),
            })
            .await
            .unwrap_err(),
        client
            .suspend_device(lifecycle(&missing))
            .await
            .unwrap_err(),
        client
            .activate_device(lifecycle(&missing))
            .await
            .unwrap_err(),
        client
            .delete_device(DeleteDeviceRequest {
                device_id: missing.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        client
            .list_device_users(ListDeviceUsersRequest {
                device_id: missing.clone(),
            })
            .await
            .unwrap_err(),
        client
            .list_user_devices(ListUserDevicesRequest {
                user_id: "00u00000000000000000".to_owned(),
            })
            .await
            .unwrap_err(),
    ];
    for status in statuses {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert_eq!(reason(&status), "OKTA_NOT_FOUND");
        assert_eq!(error_metadata(&status, "okta_error_code"), "E0000007");
    }
}

#[tokio::test]
async fn bad_inputs_are_invalid_argument_and_never_reach_okta() {
    let app = spawn_app().await;
    let seeded = seed_devices(&app).await;
    let mut client = connect_devices(&app).await;

    // A page token from one query, kept for the foreign-token case below.
    let first = client
        .list_devices(ListDevicesRequest {
            page_size: 2,
            search: r#"status eq "ACTIVE""#.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    app.clear_sim_requests().await;

    for hostile in [
        "",
        "../users",
        "guonli06qyirBuaHF1d7/../x",
        "guonli06qyirBuaHF1d7?x=1",
        "guo%2Fli06qyirBuaHF1",
        "guonli06qyirBuaHF1d77",
        "guonli06qyirBuaHF1d",
        "guonli06qyirBuaHF1\u{e9}",
    ] {
        let id = hostile.to_owned();
        let results = vec![
            client
                .get_device(GetDeviceRequest {
                    device_id: id.clone(),
                })
                .await
                .unwrap_err(),
            client.suspend_device(lifecycle(&id)).await.unwrap_err(),
            client.deactivate_device(lifecycle(&id)).await.unwrap_err(),
            client
                .delete_device(DeleteDeviceRequest {
                    device_id: id.clone(),
                    ..Default::default()
                })
                .await
                .unwrap_err(),
            client
                .list_device_users(ListDeviceUsersRequest {
                    device_id: id.clone(),
                })
                .await
                .unwrap_err(),
        ];
        for status in results {
            assert_eq!(status.code(), Code::InvalidArgument, "{hostile:?}");
            assert_eq!(violated_fields(&status), vec!["device_id"]);
        }
        let status = client
            .list_user_devices(ListUserDevicesRequest { user_id: id })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), vec!["user_id"]);
    }

    let bad_lists = [
        (
            ListDevicesRequest {
                search: r#"status eq"#.to_owned(),
                ..Default::default()
            },
            vec!["search"],
        ),
        (
            ListDevicesRequest {
                search: r#"status eq "ACTIVE""#.to_owned(),
                filter: Some(DeviceFilter {
                    statuses: vec![DeviceStatus::Active as i32],
                }),
                ..Default::default()
            },
            vec!["search"],
        ),
        (
            ListDevicesRequest {
                filter: Some(DeviceFilter {
                    statuses: vec![DeviceStatus::Unspecified as i32, 99],
                }),
                ..Default::default()
            },
            vec!["filter.statuses", "filter.statuses"],
        ),
        (
            ListDevicesRequest {
                page_size: -1,
                page_token: "not a token".to_owned(),
                ..Default::default()
            },
            vec!["page_size", "page_token"],
        ),
        (
            // The token came from `status eq "ACTIVE"`: refused for another query.
            ListDevicesRequest {
                search: r#"status eq "SUSPENDED""#.to_owned(),
                page_token: first.next_page_token.clone(),
                ..Default::default()
            },
            vec!["page_token"],
        ),
        (
            ListDevicesRequest {
                page_token: first.next_page_token.clone(),
                ..Default::default()
            },
            vec!["page_token"],
        ),
    ];
    for (request, fields) in bad_lists {
        let status = client.list_devices(request.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{request:?}");
        assert_eq!(reason(&status), "INVALID_REQUEST");
        assert_eq!(violated_fields(&status), fields, "{request:?}");
    }
    assert_eq!(app.sim_requests().await, Vec::<Value>::new());

    // The token still works with its own query.
    let second = client
        .list_devices(ListDevicesRequest {
            page_size: 2,
            search: r#"status eq "ACTIVE""#.to_owned(),
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.devices.len(), 1);
    assert!(!seeded["devices"].as_object().unwrap().is_empty());
}

#[tokio::test]
async fn the_demo_org_has_devices_in_mixed_statuses_linked_to_demo_users() {
    let sim = Simulator::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        SimulatorSettings {
            api_token: common::SIM_TOKEN.to_owned(),
            seed: SeedSource::Demo,
            rate_limits: RateLimitSettings::unlimited(),
            ..SimulatorSettings::default()
        },
    )
    .await
    .unwrap();
    let app = common::spawn_gateway_for(sim, |_| {}).await;
    let mut client = connect_devices(&app).await;
    let (all, _) = list_all(&mut client, ListDevicesRequest::default()).await;
    assert_eq!(all.len(), 5);
    let statuses: HashSet<i32> = all.iter().map(|d| d.status).collect();
    assert_eq!(statuses.len(), 3, "ACTIVE, SUSPENDED and DEACTIVATED");
    let ada = client
        .list_user_devices(ListUserDevicesRequest {
            user_id: "00u55tN5556tr55wr2dL".to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .devices;
    assert_eq!(ada.len(), 2);
}

/// GET/POST/DELETE straight to the simulator with the test token.
async fn sim_call(
    app: &TestApp,
    method: reqwest::Method,
    path_and_query: &str,
) -> reqwest::Response {
    app.http
        .request(method, format!("{}{path_and_query}", app.sim.base_url()))
        .header("Authorization", format!("SSWS {}", common::SIM_TOKEN))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_simulator_answers_like_the_recorded_okta_traffic() {
    let app = spawn_app().await;
    let seeded = seed_devices(&app).await;

    // 404 bodies exactly as recorded: `(Device)`, but `(GenericUDObject)` for `…/users`.
    for (path, kind) in [
        ("/api/v1/devices/non-existent-device-id", "Device"),
        (
            "/api/v1/devices/non-existent-device-id/users",
            "GenericUDObject",
        ),
    ] {
        let response = sim_call(&app, reqwest::Method::GET, path).await;
        assert_eq!(response.status().as_u16(), 404);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errorCode"], "E0000007");
        assert_eq!(
            body["errorSummary"],
            format!("Not found: Resource not found: non-existent-device-id ({kind})")
        );
        assert_eq!(body["errorCauses"], json!([]));
    }
    let response = sim_call(
        &app,
        reqwest::Method::POST,
        "/api/v1/devices/non-existent-device-id/lifecycle/activate",
    )
    .await;
    assert_eq!(response.status().as_u16(), 404);

    // A cursor Okta did not issue: 400 E0000031 "Invalid cursor." as recorded.
    let response = sim_call(
        &app,
        reqwest::Method::GET,
        "/api/v1/devices?after=mock_cursor_for_testing&limit=2",
    )
    .await;
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorSummary"], "Invalid search criteria.");
    assert_eq!(body["errorCauses"][0]["errorSummary"], "Invalid cursor.");

    // Paging: the cursor is the last id of the page; links order their parameters by name.
    let response = sim_call(
        &app,
        reqwest::Method::GET,
        "/api/v1/devices?limit=2&search=status%20eq%20%22ACTIVE%22",
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    let links: Vec<String> = response
        .headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let page: Vec<Value> = response.json().await.unwrap();
    assert_eq!(page.len(), 2);
    let last = page[1]["id"].as_str().unwrap();
    assert!(
        links[0].ends_with("/api/v1/devices?limit=2&search=status+eq+%22ACTIVE%22>; rel=\"self\"")
    );
    assert!(links[1].ends_with(&format!(
        "/api/v1/devices?after={last}&limit=2&search=status+eq+%22ACTIVE%22>; rel=\"next\""
    )));
    // The recorded device shape.
    let device = &page[0];
    assert!(device["id"].as_str().unwrap().starts_with("guo"));
    assert_eq!(device["resourceType"], "UDDevice");
    assert_eq!(device["resourceId"], device["id"]);
    assert_eq!(device["resourceAlternateId"], Value::Null);
    assert_eq!(
        device["resourceDisplayName"]["value"],
        device["profile"]["displayName"]
    );
    assert_eq!(
        device["_links"]["suspend"]["hints"]["allow"],
        json!(["POST"])
    );

    // `co` only where the spec allows it.
    let response = sim_call(
        &app,
        reqwest::Method::GET,
        "/api/v1/devices?search=profile.platform%20co%20%22MAC%22",
    )
    .await;
    assert_eq!(response.status().as_u16(), 400);

    // Lifecycle writes device.lifecycle.* events to the System Log.
    let id = id_of(&seeded, "BOB-PC");
    let response = sim_call(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/devices/{id}/lifecycle/suspend"),
    )
    .await;
    assert_eq!(response.status().as_u16(), 204);
    let response = sim_call(
        &app,
        reqwest::Method::GET,
        "/api/v1/logs?filter=eventType%20eq%20%22device.lifecycle.suspend%22",
    )
    .await;
    let events: Vec<Value> = response.json().await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["target"][0]["id"], id.as_str());
    assert_eq!(events[0]["target"][0]["type"], "Device");

    // Seeds: a DEACTIVATED device keeps no user links; unknown platforms are refused.
    app.seed(
        json!({"devices": [{"displayName": "DEAD-PHONE", "platform": "IOS",
        "status": "DEACTIVATED", "users": ["ada@example.com"]}]}),
    )
    .await;
    let ada = seeded["users"]["ada@example.com"].as_str().unwrap();
    let response = sim_call(
        &app,
        reqwest::Method::GET,
        &format!("/api/v1/users/{ada}/devices"),
    )
    .await;
    let ada_devices: Vec<Value> = response.json().await.unwrap();
    assert_eq!(ada_devices.len(), 2);
    assert!(
        ada_devices[0]["deviceUserId"]
            .as_str()
            .unwrap()
            .starts_with("lnk")
    );
    let refused = app
        .http
        .post(format!("{}/__sim/seed", app.sim.base_url()))
        .json(&json!({"devices": [{"displayName": "X", "platform": "BEOS"}]}))
        .send()
        .await
        .unwrap();
    assert!(refused.status().is_client_error());
}
