//! The gRPC handlers: thin adapters that validate the request, call the Okta client, and
//! convert the answer. Failures become statuses only in [`status`].

pub mod coalesce;
pub mod convert;
pub mod devices;
pub mod discovery_cache;
pub mod events;
pub mod groups;
pub mod page_token;
pub mod reads;
pub mod settle;
pub mod status;
pub mod token_key;
pub mod users;
pub mod validate;

pub use devices::DevicesApi;
pub use events::EventsApi;
pub use groups::GroupsApi;
pub use users::UsersApi;
