//! identity-gateway: Okta user and group management behind one internal gRPC API.
//!
//! Read in this order: [`startup`] builds the server from [`config::Settings`]; each RPC enters
//! in [`api`] (validate, call, convert), reaches Okta through [`okta::OktaClient`], and failures
//! become gRPC statuses in exactly one place, [`api::status`]. [`sim`] is an independent Okta
//! org simulator for the quick start, the tests and other teams' tests. [`cli`] ties them
//! together for the binary.

pub mod api;
pub mod auth;
pub mod authz;
pub mod cli;
pub mod config;
pub mod context;
pub mod deadline;
pub mod fairness;
pub mod methods;
pub mod okta;
pub mod proto;
pub mod request_size;
pub mod shed;
pub mod sim;
pub mod startup;
pub mod telemetry;
