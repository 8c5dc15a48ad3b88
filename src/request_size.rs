//! Requests over `grpc.max_request_bytes`: tonic's codec refuses them before decoding, but with
//! OUT_OF_RANGE and no details. gRPC (and the README) say RESOURCE_EXHAUSTED, and every error
//! of the gateway carries ErrorInfo, so this layer, directly around the services, turns that
//! answer into [`status::request_too_large`]. The codec is the only source of OUT_OF_RANGE: no
//! handler answers it, and responses have no size limit.

use tonic::body::Body;
use tower::util::MapResponseLayer;

use crate::api::status;

/// The layer that answers an oversized request RESOURCE_EXHAUSTED, naming the limit
/// `max_bytes` the services decode with.
pub fn layer(
    max_bytes: usize,
) -> MapResponseLayer<impl Fn(http::Response<Body>) -> http::Response<Body> + Clone> {
    MapResponseLayer::new(move |response: http::Response<Body>| {
        if refused_by_codec(&response) {
            status::request_too_large(max_bytes).into_http()
        } else {
            response
        }
    })
}

/// Whether the answer is the codec's OUT_OF_RANGE; a refused request is answered
/// trailers-only, so the status is in the headers.
fn refused_by_codec(response: &http::Response<Body>) -> bool {
    response
        .headers()
        .get("grpc-status")
        .and_then(|code| code.to_str().ok())
        .and_then(|code| code.parse::<i32>().ok())
        == Some(tonic::Code::OutOfRange as i32)
}
