//! Graceful shutdown: health turns NOT_SERVING first, in-flight RPCs finish, then the server stops.

use crate::common;

use common::spawn_app_with;
use identity_gateway::proto::{GetUserRequest, get_user_request};
use serde_json::json;
use tonic::Code;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;

#[tokio::test]
async fn shutdown_reports_not_serving_then_drains_in_flight_rpcs() {
    let mut app = spawn_app_with(|settings| settings.grpc.drain_delay_ms = 500).await;
    let check = |service: &str| HealthCheckRequest {
        service: service.to_owned(),
    };
    let serving = app
        .health
        .clone()
        .check(check("identity.v1.UserService"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(serving.status, ServingStatus::Serving as i32);

    // An RPC whose Okta call takes a while is in flight when shutdown starts.
    app.inject_fault(json!({"method": "GET", "path_prefix": "/api/v1/users/", "status": 404, "error_code": "E0000007", "delay_ms": 1000, "times": 1})).await;
    let mut users = app.users.clone();
    let in_flight = tokio::spawn(async move {
        users
            .get_user(GetUserRequest {
                user: Some(get_user_request::User::Id(
                    "00uAAAAAAAAAAAAAAAAA".to_owned(),
                )),
            })
            .await
    });
    // The call is at Okta (it used the fault up) when shutdown starts.
    common::eventually(common::PATIENCE, "the slow call reaches Okta", async || {
        app.pending_faults().await.is_empty()
    })
    .await;
    app.begin_shutdown();

    for service in ["", "identity.v1.UserService", "identity.v1.GroupService"] {
        let what = format!("health reports {service:?} NOT_SERVING");
        common::eventually(common::PATIENCE, &what, async || {
            let status = app
                .health
                .clone()
                .check(check(service))
                .await
                .unwrap()
                .into_inner();
            status.status == ServingStatus::NotServing as i32
        })
        .await;
    }
    // The in-flight call got Okta's answer (NOT_FOUND), not a dropped connection.
    let answered = in_flight.await.unwrap().unwrap_err();
    assert_eq!(answered.code(), Code::NotFound);
    app.server.await.unwrap().unwrap();
}
