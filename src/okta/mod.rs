//! The Okta Management API client. Nothing here knows about gRPC.
