//! The ids a request names, read from its encoded message by the served descriptors: for the
//! audit record of a call refused before any handler parsed it (by the policy, or read-only
//! mode). Handlers note the ids they parse themselves ([`RequestContext::note_target`]).

use std::sync::LazyLock;
use std::time::Duration;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value};
use tonic::Status;
use tonic::codec::{DecodeBuf, Decoder, Streaming};
use tonic_types::FieldViolation;

use crate::context::RequestContext;
use crate::status::invalid_argument;
use okta_client::OktaId;

/// Largest refused message read for its ids; ids fit in far less, and a larger message is
/// recorded without them.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// How long a refusal waits for the caller's message before it answers without the ids.
const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// How deep nested messages are searched (`user.id` is one level).
const MAX_DEPTH: usize = 4;

static SERVED: LazyLock<Option<DescriptorPool>> =
    LazyLock::new(|| DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET).ok());

/// Reads the request message of the RPC at `path` (`/identity.v1.UserService/GetUser`) from
/// `body` and notes each valid Okta id it names, by field: `user_id=00u…`, `user.id=00u…`,
/// `group_ids[0]=00g…`, as the handlers would have. Anything unreadable notes nothing.
pub async fn note_named_ids<B>(cx: &RequestContext, path: &str, body: B)
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    let Some(input) = request_message(path) else {
        return;
    };
    let mut messages =
        Streaming::new_request(DynamicDecoder(input), body, None, Some(MAX_MESSAGE_BYTES));
    if let Ok(Ok(Some(message))) = tokio::time::timeout(READ_TIMEOUT, messages.message()).await {
        note_ids(cx, &message, "", 0);
    }
}

/// The request message type of the RPC at `path`.
pub(super) fn request_message(path: &str) -> Option<MessageDescriptor> {
    let (service, method) = path.trim_start_matches('/').split_once('/')?;
    let service = SERVED.as_ref()?.get_service_by_name(service)?;
    let method = service.methods().find(|known| known.name() == method)?;
    Some(method.input())
}

fn note_ids(cx: &RequestContext, message: &DynamicMessage, prefix: &str, depth: usize) {
    for (field, value) in message.fields() {
        let name = format!("{prefix}{}", field.name());
        match value {
            Value::String(text) if field.name() == "id" || field.name().ends_with("_id") => {
                note_id(cx, &name, text);
            }
            Value::List(items) if field.name().ends_with("_ids") => {
                for (index, item) in items.iter().enumerate() {
                    if let Value::String(text) = item {
                        note_id(cx, &format!("{name}[{index}]"), text);
                    }
                }
            }
            Value::Message(inner) if depth < MAX_DEPTH => {
                note_ids(cx, inner, &format!("{name}."), depth + 1);
            }
            _ => {}
        }
    }
}

/// Notes `text` when it is an Okta id: nothing a caller writes freely reaches the audit log.
fn note_id(cx: &RequestContext, field: &str, text: &str) {
    if let Ok(id) = OktaId::parse(text) {
        cx.note_target(field, id.as_str());
    }
}

/// Decodes one message of a type known only at run time.
pub(super) struct DynamicDecoder(pub(super) MessageDescriptor);

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, source: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        DynamicMessage::decode(self.0.clone(), source)
            .map(Some)
            .map_err(|error| invalid_argument(vec![FieldViolation::new("", error.to_string())]))
    }
}
