#!/usr/bin/env python3
"""Renders the kustomizations in deploy/ without kubectl or kustomize, for validation in CI.

Implements only the kustomize features deploy/ uses and refuses anything else, so a new feature
fails CI loudly instead of being rendered wrong:
  resources (files, multi-document files, and directories holding a kustomization.yaml),
  namespace (set on every namespaced object), patches given by `path` (strategic-merge patches
  that only merge maps: a list in a patch would need kustomize's per-field merge keys), and
  images (name -> newName / newTag).
tests/deploy_manifests.rs renders the same way in Rust; in CI it compares its rendering with
this script's output in target/deploy/rendered/.

  deploy/render.py OUT_DIR    writes OUT_DIR/{base,production,simulated}.yaml
"""

import os
import sys

import yaml  # PyYAML, installed with kubernetes-validate

DEPLOY = os.path.dirname(os.path.abspath(__file__))
KUSTOMIZATIONS = {
    "base": "base",
    "production": "overlays/production",
    "simulated": "overlays/simulated",
}
SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "namespace", "patches", "images"}
CLUSTER_SCOPED_KINDS = {"Namespace"}


def fail(message):
    sys.exit(f"render.py: {message}")


def load_documents(path):
    with open(path, encoding="utf-8") as file:
        return [doc for doc in yaml.safe_load_all(file) if doc is not None]


def render(directory):
    kustomization_path = os.path.join(directory, "kustomization.yaml")
    (kustomization,) = load_documents(kustomization_path)
    unsupported = set(kustomization) - SUPPORTED_FIELDS
    if unsupported:
        fail(f"{kustomization_path}: unsupported kustomization fields {sorted(unsupported)}")
    objects = []
    for resource in kustomization.get("resources", []):
        path = os.path.normpath(os.path.join(directory, resource))
        objects += render(path) if os.path.isdir(path) else load_documents(path)
    for patch_entry in kustomization.get("patches", []):
        if set(patch_entry) != {"path"}:
            fail(f"{kustomization_path}: only `patches: - path: FILE` is supported")
        for patch in load_documents(os.path.join(directory, patch_entry["path"])):
            apply_patch(objects, patch, patch_entry["path"])
    namespace = kustomization.get("namespace")
    if namespace is not None:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED_KINDS:
                obj["metadata"]["namespace"] = namespace
    for image in kustomization.get("images", []):
        set_image(objects, image)
    return objects


def apply_patch(objects, patch, patch_path):
    targets = [
        obj
        for obj in objects
        if obj["kind"] == patch["kind"] and obj["metadata"]["name"] == patch["metadata"]["name"]
    ]
    if len(targets) != 1:
        fail(f"{patch_path}: matches {len(targets)} objects, expected exactly one")
    merge_maps(targets[0], patch, patch_path)


def merge_maps(target, patch, where):
    for key, value in patch.items():
        if isinstance(value, list):
            fail(f"{where}: lists in patches (`{key}`) are not supported")
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_maps(target[key], value, where)
        elif value is None:
            target.pop(key, None)
        else:
            target[key] = value


def set_image(objects, image):
    if set(image) - {"name", "newName", "newTag"}:
        fail(f"images: only name, newName and newTag are supported: {image}")
    for obj in objects:
        pod_spec = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                new_tag = image.get("newTag", tag)
                container["image"] = image.get("newName", name) + (f":{new_tag}" if new_tag else "")


def main():
    if len(sys.argv) != 2:
        fail("usage: render.py OUT_DIR")
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    for name, relative in KUSTOMIZATIONS.items():
        objects = render(os.path.join(DEPLOY, relative))
        out_path = os.path.join(out_dir, f"{name}.yaml")
        with open(out_path, "w", encoding="utf-8") as out:
            yaml.safe_dump_all(objects, out, sort_keys=False)
        print(f"{out_path}: {len(objects)} objects")


if __name__ == "__main__":
    main()
