//! Requests over `grpc.max_request_bytes`: tonic's codec refuses them before decoding, but with
//! OUT_OF_RANGE and no details. gRPC (and the README) say RESOURCE_EXHAUSTED, and every error
//! of the gateway carries ErrorInfo, so this layer, directly around the services, turns that
//! answer into [`status::request_too_large`]. The codec is the only source of OUT_OF_RANGE: no
//! handler answers it, and responses have no size limit.
//!
//! The framework's other refusals (an unknown method, an undecodable message, an unknown
//! health service) come without details too; the same layer adds ErrorInfo to them
//! ([`status::framework_refusal`]), so no answer of the gateway lacks it.

use tonic::body::Body;
use tonic::{Code, Status};
use tower::util::MapResponseLayer;

use crate::status;

/// The layer that answers an oversized request RESOURCE_EXHAUSTED, naming the limit
/// `max_bytes` the services decode with, and adds ErrorInfo to the framework's refusals.
pub fn layer(
    max_bytes: usize,
) -> MapResponseLayer<impl Fn(http::Response<Body>) -> http::Response<Body> + Clone> {
    MapResponseLayer::new(move |response: http::Response<Body>| {
        match undetailed_refusal(&response) {
            Some(refusal) if refusal.code() == Code::OutOfRange => {
                status::request_too_large(max_bytes).into_http()
            }
            Some(refusal) => {
                status::framework_refusal(refusal.code(), refusal.message()).into_http()
            }
            None => response,
        }
    })
}

/// The status of a refusal answered trailers-only (so the status is in the headers) without
/// `grpc-status-details-bin`: only the framework answers so, every status of the gateway's
/// own carries details.
fn undetailed_refusal(response: &http::Response<Body>) -> Option<Status> {
    let headers = response.headers();
    if headers.contains_key("grpc-status-details-bin") {
        return None;
    }
    Status::from_header_map(headers).filter(|refusal| refusal.code() != Code::Ok)
}
