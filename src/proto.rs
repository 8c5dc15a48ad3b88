//! Code generated from `proto/identity/v1`, and the descriptor set that server reflection serves.
#![allow(missing_docs, clippy::all)]

tonic::include_proto!("identity.v1");

/// The encoded `FileDescriptorSet` of `identity.v1`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("identity_v1_descriptor");
