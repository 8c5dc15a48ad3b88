//! The Kubernetes manifests in `deploy/` agree with the binary: ports, probes, settings, drain
//! timing, security context and how the Okta token arrives. Schema validation is `.ci/run`'s job
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

    fn gateway(&self) -> (&Value, &Value) {
        let gateway: Vec<_> = self
            .containers()
            .filter(|(_, container)| !is_simulator(container))
            .collect();
        assert_eq!(gateway.len(), 1, "{}: one gateway container", self.name);
        gateway[0]
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
            let value = match variable["value"].as_str() {
                Some(value) => value.to_owned(),
                None => format!("<valueFrom {:?}>", variable["valueFrom"]),
            };
            environment.insert(text(&variable["name"]).to_owned(), value);
        }
        environment
    }
}

fn is_simulator(container: &Value) -> bool {
    sequence(&container["args"]).first().map(text) == Some("simulate")
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
            let (port_name, listen) = if is_simulator(container) {
                let listen = argument_after(container, "--listen").unwrap_or("127.0.0.1:8089");
                ("http", listen.parse::<SocketAddr>().unwrap())
            } else {
                let settings = load_settings(&label, &rendered.environment(container));
                let listen = argument_after(container, "--listen")
                    .map(|addr| addr.parse().unwrap())
                    .unwrap_or(settings.grpc.listen_addr);
                ("grpc", listen)
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
            for port in ingress_ports {
                assert_eq!(
                    port["port"].as_u64(),
                    Some(u64::from(listen.port())),
                    "{label}"
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
                if is_simulator(container) {
                    let port = resolve_port(container, &probe_spec["tcpSocket"]["port"]);
                    assert_eq!(port, container_port(container, "http"), "{label} {probe}");
                    continue;
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
            let pod_spec = &deployment["spec"]["template"]["spec"];
            let pod = &pod_spec["securityContext"];
            let own = &container["securityContext"];
            let either = |field: &str| own.get(field).unwrap_or(&pod[field]).clone();
            assert_eq!(either("runAsNonRoot"), true, "{label}");
            assert!(
                either("runAsUser").as_u64().is_some_and(|uid| uid > 0),
                "{label}: numeric non-root uid"
            );
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
    let egress_to_simulator = rendered
        .of_kind("NetworkPolicy")
        .filter(|p| {
            matches_selector(
                pod_labels(gateway_deployment),
                &p["spec"]["podSelector"]["matchLabels"],
            )
        })
        .flat_map(|p| sequence(&p["spec"]["egress"]))
        .any(|rule| {
            sequence(&rule["to"]).iter().any(|peer| {
                matches_selector(pod_labels(simulator), &peer["podSelector"]["matchLabels"])
            }) && sequence(&rule["ports"])
                .iter()
                .any(|p| p["port"] == *service_port)
        });
    assert!(egress_to_simulator, "the gateway may call the simulator");
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
