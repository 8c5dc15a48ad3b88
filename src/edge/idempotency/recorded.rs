//! An answer of the services as it went to the first caller, kept to be given again: in this
//! process as it is, in the shared table encoded as a small protobuf message.

use std::convert::Infallible;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use prost::Message;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::super::Response;
use crate::status;

/// An answer as the services gave it, to be given again.
#[derive(Debug)]
pub(super) struct RecordedAnswer {
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
    trailers: Option<http::HeaderMap>,
}

/// Reads the whole answer of the services, trailers included.
pub(super) async fn record<E>(result: Result<Response, E>) -> RecordedAnswer {
    let Ok(response) = result else {
        return RecordedAnswer::of_status(status::internal("the service failed"));
    };
    let (parts, body) = response.into_parts();
    match body.collect().await {
        Ok(collected) => {
            let trailers = collected.trailers().cloned();
            RecordedAnswer {
                status: parts.status,
                headers: parts.headers,
                body: collected.to_bytes(),
                trailers,
            }
        }
        Err(_) => RecordedAnswer::of_status(status::outcome_lost()),
    }
}

impl RecordedAnswer {
    /// A trailers-only answer carrying `status`.
    pub(super) fn of_status(status: Status) -> Self {
        let (parts, _) = status.into_http::<tonic::body::Body>().into_parts();
        Self {
            status: parts.status,
            headers: parts.headers,
            body: Bytes::new(),
            trailers: None,
        }
    }

    /// The gRPC status the answer carries: in its trailers, or in its headers when it is
    /// trailers-only.
    fn grpc_status(&self) -> Option<Status> {
        self.trailers
            .as_ref()
            .and_then(Status::from_header_map)
            .or_else(|| Status::from_header_map(&self.headers))
    }

    /// Whether the answer says the change may or may not have been carried out: the next retry
    /// settles it.
    pub(super) fn outcome_unknown(&self) -> bool {
        self.grpc_status().is_some_and(|status| {
            status
                .get_details_error_info()
                .is_some_and(|info| info.reason == status::reason::OUTCOME_UNKNOWN)
        })
    }

    /// Whether the answer is kept for retries: see the module docs of `idempotency`.
    pub(super) fn remembered(&self) -> bool {
        let Some(status) = self.grpc_status() else {
            return true;
        };
        let may_simply_be_sent_again = matches!(
            status.code(),
            Code::Unavailable
                | Code::ResourceExhausted
                | Code::Aborted
                | Code::DeadlineExceeded
                | Code::Cancelled
        );
        !may_simply_be_sent_again || self.outcome_unknown()
    }

    /// The same answer again.
    pub(super) fn replay(&self) -> Response {
        let mut frames = vec![Ok::<_, Infallible>(Frame::data(self.body.clone()))];
        if let Some(trailers) = &self.trailers {
            frames.push(Ok(Frame::trailers(trailers.clone())));
        }
        let body = StreamBody::new(futures::stream::iter(frames));
        let mut response = http::Response::new(tonic::body::Body::new(body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
    }

    /// The answer as the shared table stores it.
    pub(super) fn encode(&self) -> Vec<u8> {
        StoredAnswer {
            status: u32::from(self.status.as_u16()),
            headers: stored_fields(&self.headers),
            body: self.body.to_vec(),
            has_trailers: self.trailers.is_some(),
            trailers: self
                .trailers
                .as_ref()
                .map(stored_fields)
                .unwrap_or_default(),
        }
        .encode_to_vec()
    }

    /// An answer the shared table stored; `None` when the bytes are not one (written by a
    /// different version, or damaged), which the caller treats as an outcome it cannot tell.
    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        let stored = StoredAnswer::decode(bytes).ok()?;
        Some(Self {
            status: http::StatusCode::from_u16(u16::try_from(stored.status).ok()?).ok()?,
            headers: header_map(stored.headers)?,
            body: Bytes::from(stored.body),
            trailers: if stored.has_trailers {
                Some(header_map(stored.trailers)?)
            } else {
                None
            },
        })
    }
}

/// The wire form of a [`RecordedAnswer`] in the shared table.
#[derive(Clone, PartialEq, Message)]
struct StoredAnswer {
    #[prost(uint32, tag = "1")]
    status: u32,
    #[prost(message, repeated, tag = "2")]
    headers: Vec<StoredField>,
    #[prost(bytes = "vec", tag = "3")]
    body: Vec<u8>,
    #[prost(bool, tag = "4")]
    has_trailers: bool,
    #[prost(message, repeated, tag = "5")]
    trailers: Vec<StoredField>,
}

/// One header or trailer.
#[derive(Clone, PartialEq, Message)]
struct StoredField {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

fn stored_fields(headers: &http::HeaderMap) -> Vec<StoredField> {
    headers
        .iter()
        .map(|(name, value)| StoredField {
            name: name.as_str().to_owned(),
            value: value.as_bytes().to_vec(),
        })
        .collect()
}

fn header_map(fields: Vec<StoredField>) -> Option<http::HeaderMap> {
    let mut headers = http::HeaderMap::with_capacity(fields.len());
    for field in fields {
        headers.append(
            http::HeaderName::from_bytes(field.name.as_bytes()).ok()?,
            http::HeaderValue::from_bytes(&field.value).ok()?,
        );
    }
    Some(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_answer_reads_back_as_it_was() {
        let status = status::request_id_reused();
        let answer = RecordedAnswer::of_status(status.clone());
        let again = RecordedAnswer::decode(&answer.encode()).expect("decodes");
        assert_eq!(again.status, answer.status);
        assert_eq!(again.headers, answer.headers);
        assert_eq!(again.trailers, None);
        let read = again.grpc_status().expect("a status");
        assert_eq!(read.code(), status.code());
        assert_eq!(read.message(), status.message());
        assert!(RecordedAnswer::decode(b"\xff\xff not protobuf").is_none());
    }
}
