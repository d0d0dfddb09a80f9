//! What a publish's outcome means for its event: delivered, retried with backoff, or refused
//! (counted towards `RELAY_MAX_ATTEMPTS`).

use crate::relay::Verdict;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::{self, ErrorCode};

/// A publish that never got its PubAck future: the message could not be sent.
pub(super) fn publish_verdict(error: &PublishError) -> Verdict {
    let text = crate::error::cause_chain(error);
    match error.kind() {
        // Refused before sending: this message can never be published as it is.
        PublishErrorKind::MaxPayloadExceeded | PublishErrorKind::Other => {
            Verdict::Rejected { error: text }
        }
        _ => Verdict::Retry {
            error: text,
            retry_after: None,
        },
    }
}

/// What a PubAck (or its absence) means for the event.
pub(super) fn pub_ack_verdict(
    ack: Result<jetstream::publish::PublishAck, PublishError>,
) -> Verdict {
    let error = match ack {
        Ok(_) => return Verdict::Delivered,
        Err(error) => error,
    };
    let text = crate::error::cause_chain(&error);
    let refused = match error.kind() {
        PublishErrorKind::MaxPayloadExceeded => true,
        // The stream answered with an error: refused if it is about this message.
        PublishErrorKind::Other => std::error::Error::source(&error)
            .and_then(|source| source.downcast_ref::<jetstream::Error>())
            .is_some_and(|api| refuses_the_message(api.error_code())),
        // No responders (no stream, or no leader yet), timed out, connection lost: may pass.
        _ => false,
    };
    match refused {
        true => Verdict::Rejected { error: text },
        false => Verdict::Retry {
            error: text,
            retry_after: None,
        },
    }
}

/// JetStream errors that refuse the message itself, not the moment.
fn refuses_the_message(code: ErrorCode) -> bool {
    [
        ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM,
        ErrorCode::STREAM_NOT_MATCH,
        ErrorCode::STREAM_MISMATCH,
    ]
    .contains(&code)
}
