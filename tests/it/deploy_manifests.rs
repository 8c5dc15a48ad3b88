//! The Kubernetes manifests in `deploy/` agree with the binary: ports, probes, settings, drain
//! timing, security context, how the Okta token arrives, and the Valkey/Redis server the replicas
//! share (a Valkey of its own in the simulated overlay, a URL from the Secret in production).
//! Schema validation is `.ci/run`'s job
//! (`kubernetes-validate --strict` on what `examples/render_deploy.rs` renders); this test
//! renders each overlay with the same renderer (`deploy_render`) and checks consistency.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;

use crate::deploy_render;

use deploy_render::{deploy_dir, load_documents, render, sequence, text};
use identity_gateway::config::{LogFormat, Settings};
use identity_gateway::startup::HEALTH_CHECKED_SERVICES;
use serde_yaml::Value;

/// The overlays a cluster is given.
const OVERLAYS: &[&str] = &["production", "simulated"];
/// Variables the manifests may set that are not gateway settings, and who reads them.
const NON_SETTING_VARS: &[(&str, &str)] = &[
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "the OpenTelemetry SDK"),
    ("OTEL_SERVICE_NAME", "the OpenTelemetry SDK"),
];
const TOKEN_FILE_VAR: &str = "IDGW_OKTA__API_TOKEN_FILE";
const TOKEN_KEY_FILE_VAR: &str = "IDGW_GRPC__TOKEN_KEY_FILE";
const JWKS_FILE_VAR: &str = "IDGW_AUTH__JWT__JWKS_FILE";
const REDIS_URL_VAR: &str = "IDGW_COORDINATION__REDIS_URL";
/// The image of the Valkey server the simulated overlay runs for the replicas, and the release
/// line the replica tests run against.
const VALKEY_IMAGE: &str = "valkey/valkey";
const VALKEY_RELEASE_LINE: &str = "8.1";
/// A public signing key set, standing in for the cluster's (no private key exists for it).
const CLUSTER_JWKS: &str = r#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "pVclTSfbalcATelAvXUOXIshcPlQ42HkdFZ6n-aNFLg", "y": "dKgftTksgFR7JIuzrHl-lc6WfTbLN0vvZHCbOJsR3so", "kid": "cluster-key", "use": "sig", "alg": "ES256"}]}"#;
// === lookups ===

struct Rendered {
    name: &'static str,
    objects: Vec<Value>,
}

impl Rendered {
    fn overlay(name: &'static str) -> Self {
        let objects = render(&deploy_dir().join("overlays").join(name));
        Self { name, objects }
    }

    fn all() -> Vec<Self> {
        OVERLAYS.iter().map(|name| Self::overlay(name)).collect()
    }

    fn of_kind(&self, kind: &str) -> impl Iterator<Item = &Value> + use<'_> {
        let kind = kind.to_owned();
        self.objects
            .iter()
            .filter(move |object| object["kind"] == kind.as_str())
    }

    fn named(&self, kind: &str, name: &str) -> &Value {
        self.of_kind(kind)
            .find(|object| object["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{}: no {kind} {name}", self.name))
    }

    /// Every container of every Deployment, with its Deployment.
    fn containers(&self) -> impl Iterator<Item = (&Value, &Value)> {
        self.of_kind("Deployment").flat_map(|deployment| {
            sequence(&deployment["spec"]["template"]["spec"]["containers"])
                .iter()
                .map(move |container| (deployment, container))
        })
    }

    /// The one container (with its Deployment) playing `role`.
    fn only(&self, role: Role) -> (&Value, &Value) {
        let found: Vec<_> = self
            .containers()
            .filter(|(_, container)| Role::of(container) == role)
            .collect();
        assert_eq!(found.len(), 1, "{}: one {role:?} container", self.name);
        found[0]
    }

    fn gateway(&self) -> (&Value, &Value) {
        self.only(Role::Gateway)
    }

    /// The value under `key` of the Secret `name`: the committed one, or, for an overlay whose
    /// Secret is created with kubectl, the example that documents its keys.
    fn secret_value(&self, name: &str, key: &str) -> String {
        let committed = self
            .of_kind("Secret")
            .find(|secret| secret["metadata"]["name"] == name);
        let secret = committed.cloned().unwrap_or_else(|| {
            let example = example_secret();
            assert_eq!(
                example["metadata"]["name"], name,
                "{}: Secret {name} is neither committed nor the example",
                self.name
            );
            example
        });
        secret["stringData"][key]
            .as_str()
            .unwrap_or_else(|| panic!("{}: Secret {name} has no `{key}`", self.name))
            .to_owned()
    }

    /// The NetworkPolicies that select `deployment`'s pods.
    fn policies_of<'a>(&'a self, deployment: &'a Value) -> impl Iterator<Item = &'a Value> {
        self.of_kind("NetworkPolicy").filter(move |policy| {
            matches_selector(
                pod_labels(deployment),
                &policy["spec"]["podSelector"]["matchLabels"],
            )
        })
    }

    /// Whether an egress rule of `from`'s policies admits TCP `port` to the pods of `to`, a
    /// Deployment in the same namespace, or, when `to` is `None`, to some destination (which the
    /// manifests cannot know: a server outside the cluster).
    fn egress_allows(&self, from: &Value, to: Option<&Value>, port: u64) -> bool {
        self.policies_of(from)
            .flat_map(|policy| sequence(&policy["spec"]["egress"]))
            .any(|rule| {
                let peers = sequence(&rule["to"]);
                let reaches = match to {
                    Some(to) => peers.iter().any(|peer| {
                        let selector = &peer["podSelector"]["matchLabels"];
                        peer["namespaceSelector"].is_null()
                            && selector.is_mapping()
                            && matches_selector(pod_labels(to), selector)
                    }),
                    None => true,
                };
                reaches
                    && sequence(&rule["ports"]).iter().any(|p| {
                        // TCP unless the rule says otherwise.
                        p["port"].as_u64() == Some(port)
                            && (p["protocol"].is_null() || p["protocol"] == "TCP")
                    })
            })
    }

    /// The environment a container starts with: its ConfigMaps (envFrom), then its `env`.
    fn environment(&self, container: &Value) -> BTreeMap<String, String> {
        let mut environment = BTreeMap::new();
        for source in sequence(&container["envFrom"]) {
            assert!(
                source["secretRef"].is_null(),
                "{}: secrets only as files",
                self.name
            );
            let config_map = self.named("ConfigMap", text(&source["configMapRef"]["name"]));
            for (key, value) in config_map["data"].as_mapping().unwrap() {
                environment.insert(text(key).to_owned(), text(value).to_owned());
            }
        }
        for variable in sequence(&container["env"]) {
            let reference = &variable["valueFrom"]["secretKeyRef"];
            let value = match variable["value"].as_str() {
                Some(value) => value.to_owned(),
                None if reference.is_mapping() => {
                    self.secret_value(text(&reference["name"]), text(&reference["key"]))
                }
                None => format!("<valueFrom {:?}>", variable["valueFrom"]),
            };
            environment.insert(text(&variable["name"]).to_owned(), value);
        }
        environment
    }
}

/// What a container of the manifests runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Gateway,
    /// The gateway image's `simulate` subcommand.
    Simulator,
    /// The Valkey server the replicas share.
    Valkey,
}

impl Role {
    fn of(container: &Value) -> Self {
        if sequence(&container["args"]).first().map(text) == Some("simulate") {
            Self::Simulator
        } else if image_name_and_tag(container).0 == VALKEY_IMAGE {
            Self::Valkey
        } else {
            Self::Gateway
        }
    }
}

fn image_name_and_tag(container: &Value) -> (&str, &str) {
    let image = text(&container["image"]);
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, ""),
    }
}

/// The port a Valkey probe checks: a TCP connection, or `valkey-cli [-p PORT] ping`.
fn valkey_probe_port(container: &Value, probe: &Value) -> u64 {
    if probe["tcpSocket"].is_mapping() {
        return resolve_port(container, &probe["tcpSocket"]["port"]);
    }
    let command: Vec<&str> = sequence(&probe["exec"]["command"])
        .iter()
        .map(text)
        .collect();
    assert_eq!(command.first(), Some(&"valkey-cli"), "{probe:?}");
    assert_eq!(command.last(), Some(&"ping"), "{probe:?}");
    command
        .iter()
        .position(|argument| *argument == "-p")
        .map_or(6379, |position| command[position + 1].parse().unwrap())
}

/// deploy/base/secret.example.yaml: the Secret production creates with kubectl, with every key.
fn example_secret() -> Value {
    let [secret] = load_documents(&deploy_dir().join("base/secret.example.yaml"))
        .try_into()
        .unwrap();
    secret
}

fn argument_after<'a>(container: &'a Value, flag: &str) -> Option<&'a str> {
    let args = sequence(&container["args"]);
    let position = args.iter().position(|arg| text(arg) == flag)?;
    args.get(position + 1).map(text)
}

fn matches_selector(labels: &Value, selector: &Value) -> bool {
    selector
        .as_mapping()
        .unwrap()
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

fn pod_labels(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["metadata"]["labels"]
}

/// A container port given by number or by name.
fn resolve_port(container: &Value, port: &Value) -> u64 {
    port.as_u64().unwrap_or_else(|| {
        sequence(&container["ports"])
            .iter()
            .find(|candidate| candidate["name"] == *port)
            .and_then(|candidate| candidate["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("no container port {port:?}"))
    })
}

fn container_port(container: &Value, name: &str) -> u64 {
    resolve_port(container, &Value::from(name))
}

/// The restricted Pod Security Standard, and bounded resources.
fn assert_restricted(label: &str, rendered: &Rendered, deployment: &Value, container: &Value) {
    let pod_spec = &deployment["spec"]["template"]["spec"];
    let pod = &pod_spec["securityContext"];
    let own = &container["securityContext"];
    let either = |field: &str| own.get(field).unwrap_or(&pod[field]).clone();
    assert_eq!(either("runAsNonRoot"), true, "{label}");
    assert!(
        either("runAsUser").as_u64().is_some_and(|uid| uid > 0),
        "{label}: numeric non-root uid"
    );
    // The restricted standard refuses uid 0 at either level, even when the container overrides.
    assert_ne!(pod["runAsUser"], 0, "{label}: pod runAsUser");
    assert_eq!(pod["seccompProfile"]["type"], "RuntimeDefault", "{label}");
    assert_eq!(
        either("seccompProfile")["type"],
        "RuntimeDefault",
        "{label}"
    );
    assert_eq!(own["allowPrivilegeEscalation"], false, "{label}");
    assert_eq!(own["readOnlyRootFilesystem"], true, "{label}");
    assert!(
        sequence(&own["capabilities"]["drop"])
            .iter()
            .any(|c| c == "ALL"),
        "{label}: drops ALL capabilities"
    );
    assert!(
        own["capabilities"]["add"].is_null(),
        "{label}: adds no capability"
    );
    assert_eq!(pod_spec["automountServiceAccountToken"], false, "{label}");
    let account = rendered.named("ServiceAccount", text(&pod_spec["serviceAccountName"]));
    assert_eq!(account["automountServiceAccountToken"], false, "{label}");
    for resource in ["cpu", "memory"] {
        for bound in ["requests", "limits"] {
            assert!(
                !container["resources"][bound][resource].is_null(),
                "{label}: {bound}.{resource}"
            );
        }
    }
}

/// Loads settings the way the binary does: an unknown key is a failure.
fn load_settings(label: &str, environment: &BTreeMap<String, String>) -> Settings {
    let env: HashMap<String, String> = environment.clone().into_iter().collect();
    Settings::load(None, &env)
        .unwrap_or_else(|error| panic!("{label}: the gateway rejects these settings: {error:#}"))
}

// === tests ===

#[test]
fn every_variable_and_config_map_key_is_a_real_setting_or_a_known_outside_variable() {
    for rendered in Rendered::all() {
        for config_map in rendered.of_kind("ConfigMap") {
            let data: BTreeMap<String, String> =
                serde_yaml::from_value(config_map["data"].clone()).unwrap();
            load_settings(&format!("{} ConfigMap", rendered.name), &data);
        }
        for (deployment, container) in rendered.containers() {
            if Role::of(container) == Role::Valkey {
                continue; // not the gateway's binary: it reads no setting
            }
            let label = format!(
                "{} {}",
                rendered.name,
                text(&deployment["metadata"]["name"])
            );
            let environment = rendered.environment(container);
            for name in environment.keys() {
                assert!(
                    name.starts_with("IDGW_") || NON_SETTING_VARS.iter().any(|(n, _)| n == name),
                    "{label}: `{name}` is neither a gateway setting nor a known outside variable"
                );
                assert!(
                    !["IDGW_OKTA__API_TOKEN", "OKTA_CLIENT_TOKEN"].contains(&name.as_str()),
                    "{label}: the token must come from a file, not `{name}`"
                );
            }
            let settings = load_settings(&label, &environment);
            assert_eq!(settings.log.format, LogFormat::Json, "{label}");
        }
    }
}

#[test]
fn the_gateway_accepts_each_overlays_configuration_as_a_whole() {
    let token_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token_file.path(), "test-token\n").unwrap();
    let jwks_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(jwks_file.path(), CLUSTER_JWKS).unwrap();
    let token_key_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token_key_file.path(), "k".repeat(48)).unwrap();
    for rendered in Rendered::all() {
        let (_, container) = rendered.gateway();
        let mut environment = rendered.environment(container);
        environment.insert(
            TOKEN_FILE_VAR.to_owned(),
            token_file.path().display().to_string(),
        );
        assert!(
            environment.contains_key(TOKEN_KEY_FILE_VAR),
            "{}: replicas share the key sealing page tokens",
            rendered.name
        );
        environment.insert(
            TOKEN_KEY_FILE_VAR.to_owned(),
            token_key_file.path().display().to_string(),
        );
        assert!(
            environment.contains_key(JWKS_FILE_VAR),
            "{}: callers authenticate with service-account tokens",
            rendered.name
        );
        environment.insert(
            JWKS_FILE_VAR.to_owned(),
            jwks_file.path().display().to_string(),
        );
        let settings = load_settings(rendered.name, &environment);
        assert!(
            settings.coordination.redis_url.is_some(),
            "{}: replicas share changes named by a request_id through one server",
            rendered.name
        );
        match settings.validate(false) {
            Ok(target) => assert!(target.is_some(), "{}", rendered.name),
            Err(problems) => panic!("{}: {problems:?}", rendered.name),
        }
        assert!(
            !sequence(&container["args"])
                .iter()
                .any(|a| a == "--simulate"),
            "{}: the gateway never embeds a simulated org in a cluster",
            rendered.name
        );
    }
}

#[test]
fn container_ports_services_and_network_policies_agree_with_the_listen_addresses() {
    for rendered in Rendered::all() {
        for (deployment, container) in rendered.containers() {
            let label = format!(
                "{} {}",
                rendered.name,
                text(&deployment["metadata"]["name"])
            );
            // A second port of the container's own: the gateway's SCIM server, when it has one.
            let mut second_port: Option<(&str, SocketAddr)> = None;
            let (port_name, listen) = match Role::of(container) {
                Role::Simulator => {
                    let listen = argument_after(container, "--listen").unwrap_or("127.0.0.1:8089");
                    ("http", listen.parse::<SocketAddr>().unwrap())
                }
                Role::Gateway => {
                    let settings = load_settings(&label, &rendered.environment(container));
                    let listen = argument_after(container, "--listen")
                        .map(|addr| addr.parse().unwrap())
                        .unwrap_or(settings.grpc.listen_addr);
                    second_port = settings.scim.listen_addr.map(|scim| ("scim", scim));
                    ("grpc", listen)
                }
                Role::Valkey => {
                    // Valkey's own default binds every interface; a --bind would narrow it.
                    assert_eq!(argument_after(container, "--bind"), None, "{label}");
                    let port = argument_after(container, "--port").unwrap_or("6379");
                    (
                        "redis",
                        SocketAddr::from(([0, 0, 0, 0], port.parse().unwrap())),
                    )
                }
            };
            assert!(listen.ip().is_unspecified(), "{label}: listens on {listen}");
            assert_eq!(
                container_port(container, port_name),
                u64::from(listen.port()),
                "{label}"
            );
            let services: Vec<&Value> = rendered
                .of_kind("Service")
                .filter(|s| matches_selector(pod_labels(deployment), &s["spec"]["selector"]))
                .collect();
            assert_eq!(services.len(), 1, "{label}: exactly one Service");
            let service_port = &sequence(&services[0]["spec"]["ports"])[0];
            assert_eq!(service_port["name"], port_name, "{label}");
            assert_eq!(
                resolve_port(container, &service_port["targetPort"]),
                u64::from(listen.port()),
                "{label}"
            );
            if port_name == "grpc" {
                assert_eq!(service_port["appProtocol"], "kubernetes.io/h2c", "{label}");
            }
            let mut listen_ports = vec![u64::from(listen.port())];
            if let Some((name, address)) = second_port {
                assert!(
                    address.ip().is_unspecified(),
                    "{label}: {name} on {address}"
                );
                assert_eq!(
                    container_port(container, name),
                    u64::from(address.port()),
                    "{label}"
                );
                let service_port = sequence(&services[0]["spec"]["ports"])
                    .iter()
                    .find(|port| port["name"] == name)
                    .unwrap_or_else(|| panic!("{label}: the Service has a `{name}` port"));
                assert_eq!(
                    resolve_port(container, &service_port["targetPort"]),
                    u64::from(address.port()),
                    "{label}"
                );
                listen_ports.push(u64::from(address.port()));
            }
            let ingress_ports: Vec<&Value> = rendered
                .of_kind("NetworkPolicy")
                .filter(|p| {
                    matches_selector(
                        pod_labels(deployment),
                        &p["spec"]["podSelector"]["matchLabels"],
                    )
                })
                .flat_map(|p| sequence(&p["spec"]["ingress"]))
                .flat_map(|rule| sequence(&rule["ports"]))
                .collect();
            assert!(!ingress_ports.is_empty(), "{label}: ingress is restricted");
            for port in &ingress_ports {
                let port = port["port"].as_u64().unwrap_or_default();
                assert!(listen_ports.contains(&port), "{label}: ingress to {port}");
            }
            for port in &listen_ports {
                assert!(
                    ingress_ports
                        .iter()
                        .any(|open| open["port"].as_u64() == Some(*port)),
                    "{label}: port {port} is reachable"
                );
            }
        }
    }
}

#[test]
fn probes_use_the_container_port_and_a_health_checked_service() {
    for rendered in Rendered::all() {
        for (deployment, container) in rendered.containers() {
            let label = format!(
                "{} {}",
                rendered.name,
                text(&deployment["metadata"]["name"])
            );
            for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
                let probe_spec = &container[probe];
                match Role::of(container) {
                    Role::Simulator => {
                        let port = resolve_port(container, &probe_spec["tcpSocket"]["port"]);
                        assert_eq!(port, container_port(container, "http"), "{label} {probe}");
                        continue;
                    }
                    // Starts in milliseconds: no startup probe needed.
                    Role::Valkey if probe == "startupProbe" && probe_spec.is_null() => continue,
                    Role::Valkey => {
                        assert_eq!(
                            valkey_probe_port(container, probe_spec),
                            container_port(container, "redis"),
                            "{label} {probe}"
                        );
                        continue;
                    }
                    Role::Gateway => {}
                }
                let grpc = &probe_spec["grpc"];
                assert_eq!(
                    grpc["port"].as_u64(),
                    Some(container_port(container, "grpc")),
                    "{label} {probe} is a native gRPC probe on the container port"
                );
                let service = grpc["service"].as_str().unwrap_or("");
                assert!(
                    service.is_empty() || HEALTH_CHECKED_SERVICES.contains(&service),
                    "{label} {probe}: `{service}` is not reported by the health service"
                );
            }
        }
    }
}

#[test]
fn termination_grace_outlasts_the_drain_delay_plus_the_shutdown_grace() {
    for rendered in Rendered::all() {
        let (deployment, container) = rendered.gateway();
        let settings = load_settings(rendered.name, &rendered.environment(container));
        let grace_seconds = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap();
        let drain_ms = settings.grpc.drain_delay_ms + settings.grpc.shutdown_grace_ms;
        assert!(
            grace_seconds * 1000 > drain_ms,
            "{}: terminationGracePeriodSeconds {grace_seconds} must exceed {drain_ms} ms",
            rendered.name
        );
    }
}

#[test]
fn every_pod_runs_non_root_read_only_without_privileges_or_api_token() {
    for rendered in Rendered::all() {
        for (deployment, container) in rendered.containers() {
            let label = format!(
                "{} {}",
                rendered.name,
                text(&deployment["metadata"]["name"])
            );
            assert_restricted(&label, &rendered, deployment, container);
        }
    }
}

#[test]
fn the_okta_token_is_a_file_from_a_secret_and_never_committed_for_production() {
    for rendered in Rendered::all() {
        let (deployment, container) = rendered.gateway();
        let environment = rendered.environment(container);
        let token_path = Path::new(&environment[TOKEN_FILE_VAR]);
        let mount = sequence(&container["volumeMounts"])
            .iter()
            .find(|m| Path::new(text(&m["mountPath"])) == token_path.parent().unwrap())
            .unwrap_or_else(|| {
                panic!("{}: {} is not mounted", rendered.name, token_path.display())
            });
        assert_eq!(mount["readOnly"], true, "{}", rendered.name);
        let volume = sequence(&deployment["spec"]["template"]["spec"]["volumes"])
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        let secret = &volume["secret"];
        let file_name = token_path.file_name().unwrap().to_str().unwrap();
        let key = sequence(&secret["items"])
            .iter()
            .find(|item| item["path"] == file_name)
            .map_or(file_name, |item| text(&item["key"]));
        let secret_name = text(&secret["secretName"]);
        assert!(
            !secret_name.is_empty(),
            "{}: a Secret volume",
            rendered.name
        );
        match rendered.name {
            // Created with kubectl (deploy/base/secret.example.yaml), never rendered from git.
            "production" => assert_eq!(rendered.of_kind("Secret").count(), 0),
            _ => {
                let committed = rendered.named("Secret", secret_name);
                assert!(!committed["stringData"][key].is_null(), "{}", rendered.name);
            }
        }
    }
}

#[test]
fn the_gateway_is_replicated_spread_and_protected_and_exports_telemetry() {
    for rendered in Rendered::all() {
        let (deployment, container) = rendered.gateway();
        let name = text(&deployment["metadata"]["name"]);
        let labels = pod_labels(deployment);
        assert!(deployment["spec"]["replicas"].as_u64().unwrap() >= 2);
        let spread = sequence(&deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]);
        for key in ["kubernetes.io/hostname", "topology.kubernetes.io/zone"] {
            let constraint = spread.iter().find(|c| c["topologyKey"] == key).unwrap();
            assert!(matches_selector(
                labels,
                &constraint["labelSelector"]["matchLabels"]
            ));
        }
        let budget = rendered.named("PodDisruptionBudget", name);
        assert!(matches_selector(
            labels,
            &budget["spec"]["selector"]["matchLabels"]
        ));
        let autoscaler = rendered.named("HorizontalPodAutoscaler", name);
        assert_eq!(autoscaler["spec"]["scaleTargetRef"]["name"], name);
        assert!(autoscaler["spec"]["minReplicas"].as_u64().unwrap() >= 2);
        let environment = rendered.environment(container);
        for variable in ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"] {
            assert!(
                !environment[variable].is_empty(),
                "{}: {variable}",
                rendered.name
            );
        }
    }
}

#[test]
fn the_simulated_gateway_calls_the_simulator_service_and_may_reach_it() {
    let rendered = Rendered::overlay("simulated");
    let (_, container) = rendered.gateway();
    let environment = rendered.environment(container);
    let org_url = url::Url::parse(&environment["IDGW_OKTA__ORG_URL"]).unwrap();
    let service = rendered.named("Service", org_url.host_str().unwrap());
    let service_port = &sequence(&service["spec"]["ports"])[0]["port"];
    assert_eq!(org_url.port().map(u64::from), service_port.as_u64());
    let simulator = rendered
        .of_kind("Deployment")
        .find(|d| matches_selector(pod_labels(d), &service["spec"]["selector"]))
        .unwrap();
    assert_eq!(simulator["spec"]["replicas"], 1, "one in-memory org");
    let (gateway_deployment, _) = rendered.gateway();
    assert!(
        rendered.egress_allows(
            gateway_deployment,
            Some(simulator),
            service_port.as_u64().unwrap()
        ),
        "the gateway may call the simulator"
    );
}

#[test]
fn the_gateway_may_reach_the_configured_opentelemetry_collector() {
    for rendered in Rendered::all() {
        let (gateway_deployment, container) = rendered.gateway();
        let environment = rendered.environment(container);
        let endpoint = url::Url::parse(&environment["OTEL_EXPORTER_OTLP_ENDPOINT"]).unwrap();
        let port = endpoint.port_or_known_default().map(u64::from);
        let allowed = rendered
            .of_kind("NetworkPolicy")
            .filter(|p| {
                matches_selector(
                    pod_labels(gateway_deployment),
                    &p["spec"]["podSelector"]["matchLabels"],
                )
            })
            .flat_map(|p| sequence(&p["spec"]["egress"]))
            .any(|rule| {
                !sequence(&rule["to"]).is_empty()
                    && sequence(&rule["ports"])
                        .iter()
                        .any(|p| p["port"].as_u64() == port)
            });
        assert!(
            allowed,
            "{}: no egress rule lets traces reach {endpoint}",
            rendered.name
        );
    }
}

#[test]
fn the_mounted_policy_is_the_file_the_gateway_reads_and_it_is_valid() {
    for rendered in Rendered::all() {
        let (deployment, container) = rendered.gateway();
        let environment = rendered.environment(container);
        let policy_path = environment
            .get("IDGW_AUTHZ__POLICY_FILE")
            .unwrap_or_else(|| panic!("{}: no policy file set", rendered.name));
        let mount = sequence(&container["volumeMounts"])
            .iter()
            .find(|mount| policy_path.starts_with(&format!("{}/", text(&mount["mountPath"]))))
            .unwrap_or_else(|| panic!("{}: `{policy_path}` is not mounted", rendered.name));
        let volume = sequence(&deployment["spec"]["template"]["spec"]["volumes"])
            .iter()
            .find(|volume| volume["name"] == mount["name"])
            .unwrap();
        let config_map = rendered.named("ConfigMap", text(&volume["configMap"]["name"]));
        let file_name = policy_path.rsplit('/').next().unwrap();
        let policy = text(&config_map["data"][file_name]);
        if let Err(problems) = identity_gateway::authz::policy::Policy::parse(policy) {
            panic!("{}: the policy is invalid:\n{problems}", rendered.name);
        }
    }
}

#[test]
fn the_redis_url_comes_from_a_secret_never_from_a_config_map_or_a_literal() {
    for rendered in Rendered::all() {
        for config_map in rendered.of_kind("ConfigMap") {
            assert!(
                config_map["data"][REDIS_URL_VAR].is_null(),
                "{}: {REDIS_URL_VAR} may carry a password: not in a ConfigMap",
                rendered.name
            );
        }
        let (_, container) = rendered.gateway();
        let variable = sequence(&container["env"])
            .iter()
            .find(|variable| variable["name"] == REDIS_URL_VAR)
            .unwrap_or_else(|| panic!("{}: the gateway gets no {REDIS_URL_VAR}", rendered.name));
        assert!(variable["value"].is_null(), "{}: a literal", rendered.name);
        let reference = &variable["valueFrom"]["secretKeyRef"];
        assert!(
            !text(&reference["name"]).is_empty() && !text(&reference["key"]).is_empty(),
            "{}: {REDIS_URL_VAR} is not from a Secret's key",
            rendered.name
        );
        // Started without it, a replica would keep its own record, and a retry reaching another
        // replica would make the change again.
        assert_ne!(
            reference["optional"], true,
            "{}: the key must be there",
            rendered.name
        );
    }
}

#[test]
fn the_simulated_gateway_shares_its_records_through_one_valkey_only_it_may_reach() {
    let rendered = Rendered::overlay("simulated");
    let (valkey_deployment, valkey) = rendered.only(Role::Valkey);
    let label = format!("simulated {}", text(&valkey_deployment["metadata"]["name"]));
    assert_restricted(&label, &rendered, valkey_deployment, valkey);
    let (image, tag) = image_name_and_tag(valkey);
    assert!(
        tag == VALKEY_RELEASE_LINE || tag.starts_with(&format!("{VALKEY_RELEASE_LINE}.")),
        "{label}: {image} pinned to the {VALKEY_RELEASE_LINE} line, not `{tag}`"
    );
    // One server, never two at once: each would hold part of the records.
    assert_eq!(valkey_deployment["spec"]["replicas"], 1, "{label}");
    assert_eq!(
        valkey_deployment["spec"]["strategy"]["type"], "Recreate",
        "{label}"
    );
    // No persistence: neither snapshots nor an append-only file, and anything written goes to
    // a volume that lives and dies with the pod.
    assert_eq!(argument_after(valkey, "--save"), Some(""), "{label}");
    assert_eq!(
        argument_after(valkey, "--appendonly"),
        Some("no"),
        "{label}"
    );
    let volumes = sequence(&valkey_deployment["spec"]["template"]["spec"]["volumes"]);
    for mount in sequence(&valkey["volumeMounts"]) {
        let volume = volumes.iter().find(|v| v["name"] == mount["name"]).unwrap();
        assert!(
            volume["emptyDir"].is_mapping(),
            "{label}: {} is not an emptyDir",
            text(&mount["mountPath"])
        );
    }

    // The gateway's URL names the Service in front of that Valkey.
    let (gateway_deployment, gateway) = rendered.gateway();
    let url = url::Url::parse(&rendered.environment(gateway)[REDIS_URL_VAR]).unwrap();
    assert_eq!(url.scheme(), "redis", "{url}");
    let service = rendered.named("Service", url.host_str().unwrap());
    assert!(
        matches_selector(pod_labels(valkey_deployment), &service["spec"]["selector"]),
        "{url} is not the Valkey's Service"
    );
    let port = url.port().map_or(6379, u64::from);
    let service_port = sequence(&service["spec"]["ports"])
        .iter()
        .find(|candidate| candidate["port"].as_u64() == Some(port))
        .unwrap_or_else(|| panic!("{url}: the Service has no port {port}"));
    let valkey_port = resolve_port(valkey, &service_port["targetPort"]);
    assert_eq!(valkey_port, container_port(valkey, "redis"), "{label}");

    // The gateway may reach it, and nothing else may.
    assert!(
        rendered.egress_allows(gateway_deployment, Some(valkey_deployment), valkey_port),
        "the gateway's egress does not admit Valkey on {valkey_port}"
    );
    let policies: Vec<&Value> = rendered.policies_of(valkey_deployment).collect();
    let restricts = |kind: &str| {
        policies.iter().any(|p| {
            sequence(&p["spec"]["policyTypes"])
                .iter()
                .any(|t| t == kind)
        })
    };
    assert!(restricts("Ingress"), "{label}: ingress is not restricted");
    let others: Vec<&Value> = rendered
        .of_kind("Deployment")
        .filter(|d| d["metadata"]["name"] != gateway_deployment["metadata"]["name"])
        .collect();
    let rules: Vec<&Value> = policies
        .iter()
        .flat_map(|p| sequence(&p["spec"]["ingress"]))
        .collect();
    assert!(!rules.is_empty(), "{label}: the gateway may not connect");
    for rule in rules {
        let peers = sequence(&rule["from"]);
        assert!(
            !peers.is_empty(),
            "{label}: a rule without `from` admits every pod"
        );
        for peer in peers {
            assert!(
                peer["namespaceSelector"].is_null() && peer["ipBlock"].is_null(),
                "{label}: admits more than this namespace's pods: {peer:?}"
            );
            let selector = &peer["podSelector"]["matchLabels"];
            assert!(
                selector.is_mapping() && peer["podSelector"]["matchExpressions"].is_null(),
                "{label}: {peer:?}"
            );
            assert!(
                matches_selector(pod_labels(gateway_deployment), selector),
                "{label}: admits pods other than the gateway's: {peer:?}"
            );
            for other in &others {
                assert!(
                    !matches_selector(pod_labels(other), selector),
                    "{label}: admits {} too",
                    text(&other["metadata"]["name"])
                );
            }
        }
        let ports = sequence(&rule["ports"]);
        assert!(
            !ports.is_empty(),
            "{label}: a rule without ports admits every port"
        );
        for port in ports {
            assert_eq!(port["port"].as_u64(), Some(valkey_port), "{label}");
            assert!(
                port["protocol"].is_null() || port["protocol"] == "TCP",
                "{label}: {port:?}"
            );
        }
    }
    // Valkey itself connects to nothing (no replication, no cluster bus).
    assert!(restricts("Egress"), "{label}: egress is not restricted");
    assert!(
        policies
            .iter()
            .all(|p| sequence(&p["spec"]["egress"]).is_empty()),
        "{label}: has egress"
    );
}

#[test]
fn the_production_redis_url_is_a_key_of_the_secret_created_with_kubectl_and_its_port_is_open() {
    let rendered = Rendered::overlay("production");
    assert_eq!(
        rendered.of_kind("Secret").count(),
        0,
        "created with kubectl, never from git"
    );
    let (gateway_deployment, gateway) = rendered.gateway();
    let reference = &sequence(&gateway["env"])
        .iter()
        .find(|variable| variable["name"] == REDIS_URL_VAR)
        .unwrap()["valueFrom"]["secretKeyRef"];
    // The example documents every key of the Secret the operator creates.
    let example = example_secret();
    assert_eq!(example["metadata"]["name"], reference["name"]);
    assert_eq!(
        example["metadata"]["namespace"],
        gateway_deployment["metadata"]["namespace"]
    );
    let key = text(&reference["key"]);
    let value = example["stringData"][key]
        .as_str()
        .unwrap_or_else(|| panic!("deploy/base/secret.example.yaml has no `{key}`"));
    let url = url::Url::parse(value).unwrap();
    assert!(matches!(url.scheme(), "redis" | "rediss"), "{url}");
    // The destination is the team's to narrow; the port of the documented URL must be open.
    let port = url.port().map_or(6379, u64::from);
    assert!(
        rendered.egress_allows(gateway_deployment, None, port),
        "production: no egress rule admits the Valkey/Redis server on {port}"
    );
}

#[test]
fn the_renderer_refuses_a_plain_word_kubectl_would_read_as_a_boolean() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("args:\n  - --appendonly\n  - \"no\"\n", true),
        (
            "enabled: 'on'\nname: nobody\n# a comment: no\nmode: strict # on\n",
            true,
        ),
        ("args:\n  - --appendonly\n  - no\n", false),
        ("enabled: Off\n", false),
        ("- name: x\n  value: yes\n", false),
    ];
    for (index, (manifest, accepted)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("{index}.yaml"));
        std::fs::write(&path, manifest).unwrap();
        let loaded = std::panic::catch_unwind(|| load_documents(&path)).is_ok();
        assert_eq!(loaded, accepted, "{manifest}");
    }
}
