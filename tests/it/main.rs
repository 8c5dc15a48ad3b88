//! The end-to-end tests, in one binary: each module drives the real gateway and simulator over
//! real sockets (or the Okta client against wiremock, or the simulator alone), sharing the
//! harness in `common`, `credentials` and `sim_harness`. One binary links once and compiles the
//! harness once; tests that install process-wide telemetry (`audit`, `otlp_tls`, `telemetry`)
//! stay binaries of their own.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;
mod credentials;
mod deploy_render;
#[path = "../invariants/mod.rs"]
mod invariants;
mod sim_harness;

mod bad_input;
mod cli;
mod delegation;
mod deploy_manifests;
mod devices;
mod error_mapping;
mod events;
mod faults;
mod groups;
mod grpcurl;
mod idempotency;
mod jwt;
mod mtls;
mod oauth;
mod okta_requests;
mod okta_spec_conformance;
mod okta_tls;
mod outcomes;
mod properties;
mod readme_recipes;
mod replica_budgets;
mod replicas;
mod replicas_watch;
mod resilience;
mod scim;
mod security;
mod settings_reference;
mod shutdown;
mod simulator;
mod simulator_logs;
mod users;
