//! Compiles `proto/identity/v1/*.proto` with protox (pure Rust: no system `protoc`) and writes
//! the descriptor set that server reflection serves.

use std::path::PathBuf;

use prost::Message;

const PROTO_FILES: &[&str] = &[
    "proto/identity/v1/resources.proto",
    "proto/identity/v1/users.proto",
    "proto/identity/v1/groups.proto",
    "proto/identity/v1/events.proto",
    "proto/identity/v1/devices.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let file_descriptor_set = protox::compile(PROTO_FILES, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("identity_v1_descriptor.bin"),
        file_descriptor_set.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(file_descriptor_set)?;
    Ok(())
}
