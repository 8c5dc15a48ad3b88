//! Writes each kustomization in `deploy/` rendered (`OUT_DIR/{base,production,simulated}.yaml`),
//! for `kubernetes-validate --strict` in `.ci/run`: the same renderer the manifest tests use.
//! Each object is written as JSON (itself YAML): every string is quoted, so a validator reading
//! YAML 1.1 sees `"no"` as the string the renderer read, not as `false`.
//!
//! ```sh
//! cargo run --example render_deploy -- target/deploy/rendered
//! ```

#[path = "../tests/it/deploy_render/mod.rs"]
mod deploy_render;

use std::path::PathBuf;

/// What gets rendered: each kustomization's name (the output file's) and its directory.
const KUSTOMIZATIONS: &[(&str, &str)] = &[
    ("base", "base"),
    ("production", "overlays/production"),
    ("simulated", "overlays/simulated"),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir: PathBuf = std::env::args_os()
        .nth(1)
        .ok_or("usage: render_deploy OUT_DIR")?
        .into();
    std::fs::create_dir_all(&out_dir)?;
    for (name, directory) in KUSTOMIZATIONS {
        let objects = deploy_render::render(&deploy_render::deploy_dir().join(directory));
        let mut text = String::new();
        for object in &objects {
            text.push_str("---\n");
            text.push_str(&serde_json::to_string_pretty(object)?);
            text.push('\n');
        }
        let path = out_dir.join(format!("{name}.yaml"));
        std::fs::write(&path, text)?;
        println!("{}: {} objects", path.display(), objects.len());
    }
    Ok(())
}
