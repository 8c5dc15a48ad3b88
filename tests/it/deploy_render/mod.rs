//! Renders the kustomizations in `deploy/` without kubectl or kustomize: the one renderer, used
//! by the manifest tests and by `.ci/run` (through `examples/render_deploy.rs`) to hand
//! `kubernetes-validate --strict` the objects a cluster would get.
//!
//! Implements only the kustomize features `deploy/` uses and refuses anything else, so a new
//! feature fails loudly instead of being rendered wrong: `resources` (files, multi-document
//! files, directories holding a `kustomization.yaml`), `namespace` (set on every namespaced
//! object), `patches` given by `path` (strategic-merge patches that only merge maps: a list in
//! a patch would need kustomize's per-field merge keys) and `images` (name -> newName / newTag).
//!
//! This renderer reads YAML 1.2, where an unquoted `no` is a string; kubectl reads YAML 1.1,
//! where it is `false`. A manifest holding such a word unquoted is refused, so what the tests
//! check is what a cluster gets.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed render

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

/// Kustomization fields the renderer implements.
const SUPPORTED_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "patches",
    "images",
];

/// The repository's `deploy/` directory.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Plain scalars that YAML 1.1 (kubectl) reads as booleans and YAML 1.2 (this renderer) as
/// strings.
const YAML_1_1_BOOLEANS: &[&str] = &["y", "n", "yes", "no", "on", "off"];

/// The non-empty YAML documents of a file.
pub fn load_documents(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    if let Some(line) = unquoted_yaml_1_1_boolean(&text) {
        panic!(
            "{}:{line}: quote it: kubectl reads this word as a boolean, the renderer as a string",
            path.display()
        );
    }
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).unwrap())
        .filter(|document| !document.is_null())
        .collect()
}

/// The first line (from 1) whose value, as a mapping value or a sequence item, is a plain
/// scalar YAML 1.1 reads as a boolean.
fn unquoted_yaml_1_1_boolean(text: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            let line = if line.starts_with('#') { "" } else { line };
            let line = line.split(" #").next().unwrap_or_default().trim();
            let value = match line.rsplit_once(": ") {
                Some((_, value)) => value,
                None => line.strip_prefix("- ").unwrap_or_default(),
            };
            let value = value.trim().trim_start_matches("- ").trim();
            YAML_1_1_BOOLEANS
                .iter()
                .any(|word| value.eq_ignore_ascii_case(word))
        })
        .map(|index| index + 1)
}

/// A YAML sequence's items; none for anything else.
pub fn sequence(value: &Value) -> &[Value] {
    value.as_sequence().map(Vec::as_slice).unwrap_or_default()
}

/// A YAML string's text; empty for anything else.
pub fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// The objects the kustomization in `dir` produces.
pub fn render(dir: &Path) -> Vec<Value> {
    let [kustomization] = load_documents(&dir.join("kustomization.yaml"))
        .try_into()
        .unwrap();
    for field in kustomization.as_mapping().unwrap().keys() {
        assert!(
            SUPPORTED_FIELDS.contains(&text(field)),
            "{}: kustomization field {field:?} is not supported by the renderer",
            dir.display()
        );
    }
    let mut objects = Vec::new();
    for resource in sequence(&kustomization["resources"]) {
        let path = dir.join(text(resource));
        objects.extend(if path.is_dir() {
            render(&path)
        } else {
            load_documents(&path)
        });
    }
    for entry in sequence(&kustomization["patches"]) {
        assert_eq!(
            entry.as_mapping().unwrap().len(),
            1,
            "only `- path: FILE` patches are supported"
        );
        for patch in load_documents(&dir.join(text(&entry["path"]))) {
            let mut targets: Vec<&mut Value> = objects
                .iter_mut()
                .filter(|object| {
                    object["kind"] == patch["kind"]
                        && object["metadata"]["name"] == patch["metadata"]["name"]
                })
                .collect();
            assert_eq!(targets.len(), 1, "patch {patch:?} must match one object");
            merge_maps(targets.pop().unwrap(), &patch);
        }
    }
    if let Some(namespace) = kustomization["namespace"].as_str() {
        for object in objects.iter_mut().filter(|o| o["kind"] != "Namespace") {
            object["metadata"]["namespace"] = Value::from(namespace);
        }
    }
    for image in sequence(&kustomization["images"]) {
        set_image(&mut objects, image);
    }
    objects
}

fn merge_maps(target: &mut Value, patch: &Value) {
    let target_map = target.as_mapping_mut().unwrap();
    for (key, value) in patch.as_mapping().unwrap() {
        assert!(!value.is_sequence(), "lists in patches are not supported");
        if value.is_mapping() && target_map.get(key).is_some_and(Value::is_mapping) {
            merge_maps(target_map.get_mut(key).unwrap(), value);
        } else if value.is_null() {
            target_map.remove(key);
        } else {
            target_map.insert(key.clone(), value.clone());
        }
    }
}

fn set_image(objects: &mut [Value], image: &Value) {
    for object in objects {
        let Some(pod_spec) = object
            .get_mut("spec")
            .and_then(|spec| spec.get_mut("template"))
            .and_then(|template| template.get_mut("spec"))
        else {
            continue;
        };
        for list in ["containers", "initContainers"] {
            let Some(containers) = pod_spec.get_mut(list).and_then(Value::as_sequence_mut) else {
                continue;
            };
            for container in containers {
                let (name, tag) = text(&container["image"])
                    .split_once(':')
                    .unwrap_or((text(&container["image"]), ""));
                if name == text(&image["name"]) {
                    let new_name = image["newName"].as_str().unwrap_or(name).to_owned();
                    let new_tag = image["newTag"].as_str().unwrap_or(tag);
                    let reference = if new_tag.is_empty() {
                        new_name
                    } else {
                        format!("{new_name}:{new_tag}")
                    };
                    container["image"] = Value::from(reference);
                }
            }
        }
    }
}
