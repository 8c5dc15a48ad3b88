//! The real binary: the one-command quick start, and a clear refusal without an Okta org.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use identity_gateway::proto::ListUsersRequest;
use identity_gateway::proto::user_service_client::UserServiceClient;

const BINARY: &str = env!("CARGO_BIN_EXE_identity-gateway");

#[test]
fn without_an_okta_org_or_simulate_it_refuses_to_start_and_says_why() {
    let output = Command::new(BINARY).env_clear().output().unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("okta.org_url") && stderr.contains("--simulate"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no Okta API token"),
        "every problem is listed at once: {stderr}"
    );
}

#[test]
fn hash_api_key_prints_an_entry_the_gateway_accepts_for_that_key_and_no_other() {
    let key = "7f3a9c0e5b2d4f618a9b7c6d5e4f3a2b1c0d9e8f";
    let run = |input: &str| hash_api_key("billing", input);
    let output = run(&format!("  {key}\n"));
    assert!(output.status.success(), "{output:?}");
    let entry = String::from_utf8(output.stdout).unwrap();
    assert!(!entry.contains(key), "the key itself is never printed");
    let keys = identity_gateway::auth::ApiKeys::parse(&entry).unwrap();
    assert_eq!(keys.verify(key), Some("billing"));
    assert_eq!(keys.verify(&key.replace('7', "8")), None);

    let short = run("too-short\n");
    assert!(!short.status.success());
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("at least 32 characters"),
        "{short:?}"
    );
}

/// Runs `hash-api-key --name NAME` with `input` on standard input.
fn hash_api_key(name: &str, input: &str) -> std::process::Output {
    let mut child = Command::new(BINARY)
        .args(["hash-api-key", "--name", name])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn hash_api_key_refuses_a_name_the_keys_file_would_refuse() {
    let key = "7f3a9c0e5b2d4f618a9b7c6d5e4f3a2b1c0d9e8f\n";
    for name in [
        "billing batch",
        "billing\nadmin",
        "",
        "apikey:admin",
        "bill\u{200B}ing",
    ] {
        let output = hash_api_key(name, key);
        assert!(!output.status.success(), "{name:?}: {output:?}");
        assert!(output.stdout.is_empty(), "{name:?}: no entry is printed");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("key name"),
            "{name:?}: {output:?}"
        );
    }
}

#[test]
fn help_documents_every_setting() {
    let output = Command::new(BINARY).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for name in [
        "IDGW_OKTA__ORG_URL",
        "OKTA_CLIENT_TOKEN",
        "IDGW_OKTA__API_TOKEN_FILE",
        "IDGW_GRPC__LISTEN_ADDR",
        "IDGW_CACHE__GROUP_DISCOVERY_TTL_MS",
        "IDGW_CACHE__GROUP_DISCOVERY_MAX_OBJECTS",
        "IDGW_AUTH__TLS__IDENTITY_FROM_COMMON_NAME",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "--simulate",
    ] {
        assert!(help.contains(name), "{name} missing from --help");
    }
}

#[tokio::test]
async fn simulate_serves_the_demo_org_in_one_command_and_stops_on_sigterm() {
    let mut child = Command::new(BINARY)
        .args(["--simulate", "--listen", "127.0.0.1:0"])
        .env_clear()
        .env("IDGW_LOG__FORMAT", "pretty")
        .env("IDGW_GRPC__DRAIN_DELAY_MS", "0")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Read stdout to the end on a thread (as a terminal would), reporting the address once seen.
    let (address_sender, address_receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("is serving on ").nth(1) {
                let _ =
                    address_sender.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let address = tokio::task::spawn_blocking(move || address_receiver.recv())
        .await
        .unwrap()
        .expect("the quick start prints its address");

    let mut users = UserServiceClient::connect(format!("http://{address}"))
        .await
        .unwrap();
    let listed = users
        .list_users(ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(!listed.users.is_empty(), "the demo org has users");

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}

#[tokio::test]
async fn simulate_starts_with_the_fault_modes_of_its_file_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "server_errors: {rate: 2.0}\n").unwrap();
    let output = Command::new(BINARY)
        .args(["simulate", "--listen", "127.0.0.1:0", "--fault-modes"])
        .arg(&bad)
        .env_clear()
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.yaml") && stderr.contains("rate"),
        "{stderr}"
    );

    let good = dir.path().join("faults.yaml");
    std::fs::write(
        &good,
        "seed: 9\nconnection_resets: {rate: 0.25, path_prefix: /api/v1/users}\n",
    )
    .unwrap();
    let mut child = Command::new(BINARY)
        .args([
            "simulate",
            "--listen",
            "127.0.0.1:0",
            "--token",
            "t",
            "--fault-modes",
        ])
        .arg(&good)
        .env_clear()
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let address = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| line.split("simulator on ").nth(1).map(str::to_owned))
    })
    .await
    .unwrap()
    .expect("the simulator prints its address");
    let modes: serde_json::Value = reqwest::get(format!("{address}/__sim/fault-modes"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        modes,
        serde_json::json!({"seed": 9, "connection_resets": {"rate": 0.25, "path_prefix": "/api/v1/users"}})
    );
}
