//! The Okta Management API client. Nothing here knows about gRPC.
//!
//! [`OktaClient`] has one method per Okta endpoint the gateway uses; every request goes
//! through one private `send` (auth, request id, rate limits, retries, errors). Values that
//! reach Okta's URLs are validated first: ids as [`OktaId`], cursors as [`Cursor`], search
//! and filter text as [`Expression`]. Every method takes the caller's [`CallContext`]
//! explicitly (deadline and budget share in, request ids and departures out); nothing reaches
//! the client through ambient state.

// `OktaError` carries Okta's error body and response metadata inline, as the handlers'
// contract requires; errors are rare next to the network round trip, so their size is fine.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod budget;
mod budget_reports;
mod client;
pub mod clock;
mod concurrency;
mod context;
mod devices;
mod error;
mod expression;
mod groups;
mod ids;
pub mod instrumentation;
pub mod ledger;
mod logs;
mod models;
mod pagination;
mod rate_limit;
mod retry;
pub mod trace_ids;
mod transition;
mod transport;
mod users;

pub use auth::{OAuthSettings, SigningKey, default_scopes};
pub use client::{Answered, OktaClient, OktaClientSettings};
pub use clock::OktaTime;
pub use context::{CallContext, Notes};
pub use devices::{
    DeviceQuery, DeviceTransition, MAX_DEVICES_PAGE_SIZE, OktaDevice, OktaDeviceUser,
    OktaUserDevice,
};
pub use error::{OAuthFailure, OktaError, OktaErrorBody, OktaErrorCause, ResponseMeta};
pub use expression::{Expression, ExpressionError, Operator};
pub use groups::GroupQuery;
pub use ids::{InvalidOktaId, OktaId};
pub use logs::{LogEvent, LogQuery, LogSortOrder, MAX_LOG_PAGE_SIZE};
pub use models::{ActivationToken, CreateUserRequest, OktaGroup, OktaUser, TypeRef};
pub use pagination::{Cursor, InvalidCursor, Page, PageRequest};
pub use rate_limit::RateLimitState;
pub use users::UserQuery;
