//! The real binary: the one-command quick start, and a clear refusal without an Okta org.

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
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_*",
        "--simulate",
    ] {
        assert!(help.contains(name), "{name} missing from --help");
    }
}

/// `--simulate` on ports of its own, so tests run side by side.
const QUICK_START_ARGS: [&str; 7] = [
    "--simulate",
    "--listen",
    "127.0.0.1:0",
    "--simulator-listen",
    "127.0.0.1:0",
    "--scim-listen",
    "127.0.0.1:0",
];

/// What the quick-start banner told the person at the terminal.
struct Banner {
    grpc_address: String,
    simulator_url: String,
    simulator_token: String,
    inject_command: String,
    text: String,
}

/// Reads the banner from the gateway's stderr, then keeps draining it (as a terminal would).
async fn read_banner(stderr: std::process::ChildStderr) -> Banner {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent {
                text.push_str(&line);
                text.push('\n');
                if line.contains("grpcurl -plaintext") && line.trim_end().ends_with(" list") {
                    let _ = sender.send(text.clone());
                    sent = true;
                }
            }
        }
    });
    let text = tokio::task::spawn_blocking(move || receiver.recv())
        .await
        .unwrap()
        .expect("the quick start prints a banner");
    let after = |marker: &str| {
        text.split(marker)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no `{marker}` in the banner:\n{text}"))
            .to_owned()
    };
    Banner {
        grpc_address: after("is serving on "),
        simulator_url: after("simulated Okta org: "),
        simulator_token: after("token: "),
        inject_command: text
            .lines()
            .find(|line| line.trim_start().starts_with("curl "))
            .unwrap_or_else(|| panic!("no event injection command in:\n{text}"))
            .trim()
            .to_owned(),
        text,
    }
}

#[tokio::test]
async fn simulate_serves_the_demo_org_in_one_command_and_stops_on_sigterm() {
    let mut child = Command::new(BINARY)
        .args(QUICK_START_ARGS)
        .env_clear()
        .env("IDGW_LOG__FORMAT", "pretty")
        .env("IDGW_GRPC__DRAIN_DELAY_MS", "0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let banner = read_banner(child.stderr.take().unwrap()).await;
    let address = banner.grpc_address;

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
    let address = first_stdout_line(&mut child, |line| {
        line.split("simulator on ").nth(1).map(str::to_owned)
    })
    .await
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

/// The banner names everything a newcomer needs, and each thing it names works: the simulator
/// answers Okta's API with the printed token, and the printed curl line adds a System Log event.
#[tokio::test]
async fn the_quick_start_banner_shows_working_addresses_token_and_event_injection() {
    let mut child = Command::new(BINARY)
        .args(QUICK_START_ARGS)
        .env_clear()
        .env("IDGW_LOG__FORMAT", "pretty")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let banner = read_banner(child.stderr.take().unwrap()).await;
    assert!(banner.text.contains("/__sim/"), "{}", banner.text);

    let okta = reqwest::Client::new();
    let users = okta
        .get(format!("{}/api/v1/users", banner.simulator_url))
        .header("Authorization", format!("SSWS {}", banner.simulator_token))
        .send()
        .await
        .unwrap();
    assert_eq!(
        users.status(),
        200,
        "the printed token opens the simulated org"
    );
    let events_before = log_event_count(&banner.simulator_url).await;
    let injected = Command::new("sh")
        .args(["-c", &banner.inject_command])
        .output()
        .unwrap();
    assert!(injected.status.success(), "{injected:?}");
    assert_eq!(
        log_event_count(&banner.simulator_url).await,
        events_before + 1
    );

    child.kill().unwrap();
    child.wait().unwrap();
}

async fn log_event_count(simulator_url: &str) -> u64 {
    let stats: serde_json::Value = reqwest::get(format!("{simulator_url}/__sim/logs/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["events"].as_u64().unwrap()
}

/// With JSON logs and no terminal, the banner's facts come as one structured log line.
#[tokio::test]
async fn with_json_logs_the_quick_start_is_one_structured_line() {
    let mut child = Command::new(BINARY)
        .args(QUICK_START_ARGS)
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = first_stdout_line(&mut child, |line| {
        line.contains("quick start").then(|| line.to_owned())
    })
    .await
    .expect("a quick-start log line");
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.stderr.is_empty(), "no banner without a terminal");
    let record: serde_json::Value = serde_json::from_str(&line).unwrap();
    let fields = &record;
    for field in [
        "grpc_address",
        "simulator_url",
        "simulator_token",
        "simulator_admin",
        "inject_event",
        "try_command",
    ] {
        assert!(
            fields[field]
                .as_str()
                .is_some_and(|value| !value.is_empty()),
            "{field} missing from {record}"
        );
    }
}

/// `simulate --token-file` keeps the token off the terminal: the banner never prints it.
#[tokio::test]
async fn the_standalone_simulator_never_prints_a_token_from_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let token = "s3cret-simulator-token-from-a-file";
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let mut child = Command::new(BINARY)
        .args(["simulate", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&token_file)
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (address, printed) = tokio::task::spawn_blocking(move || {
        let mut printed = String::new();
        let mut address = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            printed.push_str(&line);
            printed.push('\n');
            if let Some(rest) = line.split("simulator on ").nth(1) {
                address = Some(rest.to_owned());
            }
            if line.contains("curl ") {
                break;
            }
        }
        (address.expect("the simulator prints its address"), printed)
    })
    .await
    .unwrap();
    let answer = reqwest::Client::new()
        .get(format!("{address}/api/v1/users"))
        .header("Authorization", format!("SSWS {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "the file's token is the one accepted");
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let everything = format!("{printed}{}", String::from_utf8_lossy(&output.stderr));
    assert!(!everything.contains(token), "token printed:\n{everything}");
}

/// The first thing `pick` finds in a line of the child's stdout, read off the runtime's threads.
async fn first_stdout_line(
    child: &mut std::process::Child,
    pick: impl Fn(&str) -> Option<String> + Send + 'static,
) -> Option<String> {
    let stdout = child.stdout.take().unwrap();
    tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| pick(&line))
    })
    .await
    .unwrap()
}
