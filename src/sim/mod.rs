//! The Okta org simulator: an independent implementation of Okta's side of the REST API.
