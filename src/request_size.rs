//! Requests over `grpc.max_request_bytes`: tonic's codec refuses them before decoding, but with
//! OUT_OF_RANGE and no details. gRPC (and the README) say RESOURCE_EXHAUSTED, and every error
//! of the gateway carries ErrorInfo, so this layer, directly around the services, turns that
//! answer into [`status::request_too_large`]. The codec is the only source of OUT_OF_RANGE: no
//! handler answers it, and responses have no size limit.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Layer, Service};

use crate::api::status;

/// Applies [`RequestSize`] to every service.
#[derive(Clone, Copy, Debug)]
pub struct RequestSizeLayer {
    max_bytes: usize,
}

impl RequestSizeLayer {
    /// Reports the limit `max_bytes` the services decode with.
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes }
    }
}

impl<S> Layer<S> for RequestSizeLayer {
    type Service = RequestSize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestSize {
            inner,
            max_bytes: self.max_bytes,
        }
    }
}

/// Answers an oversized request RESOURCE_EXHAUSTED; see the module docs.
#[derive(Clone, Debug)]
pub struct RequestSize<S> {
    inner: S,
    max_bytes: usize,
}

impl<S, RequestBody> Service<http::Request<RequestBody>> for RequestSize<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let max_bytes = self.max_bytes;
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            // A refused request is answered trailers-only: the status is in the headers.
            let out_of_range = response
                .headers()
                .get("grpc-status")
                .and_then(|code| code.to_str().ok())
                .and_then(|code| code.parse::<i32>().ok())
                == Some(tonic::Code::OutOfRange as i32);
            if out_of_range {
                return Ok(status::request_too_large(max_bytes).into_http());
            }
            Ok(response)
        })
    }
}
