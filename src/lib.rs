//! identity-gateway: Okta user and group management behind one internal gRPC API.
//!
//! Read in this order: [`startup`] builds the server from [`config::Settings`]; each RPC enters
//! in [`api`] (validate, call, convert), reaches Okta through the [`okta_client::OktaClient`]
//! that [`okta`] makes from the settings, and failures become gRPC statuses in exactly one
//! place, [`api::status`]. [`okta_sim`] is an independent Okta org simulator for the quick
//! start, the tests and other teams' tests. [`cli`] ties them together for the binary.

/// The `User-Agent` of the gateway's outgoing HTTP (Okta, JWKS), `identity-gateway/<version>`,
/// so Okta's System Log, its support and an issuer's logs can tell the gateway's traffic apart.
pub const USER_AGENT: &str = concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"));

pub mod api;
pub mod auth;
pub mod authz;
pub mod cli;
pub mod config;
pub mod context;
pub mod coordination;
pub mod edge;
pub mod methods;
pub mod okta;
pub mod proto;
pub mod scim;
pub mod startup;
pub mod status;
pub mod telemetry;
