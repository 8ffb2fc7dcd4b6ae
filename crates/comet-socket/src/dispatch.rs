//! What a COMET server does with a received frame, sans IO.
//!
//! [`classify`] sorts a frame into the three cases COMET distinguishes; the async server in
//! [`crate::server`] and the simulator build on it, and tests can check the rules without a
//! socket.

use bytes::{BufMut, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::message::{InvalidRequest, RawRequest, Request, Response};
use crate::wire::{CONTENT_TYPE_SERVER_BINARY, Frame};

/// The prefix of COMET's answer to binary content.
pub const BINARY_ANSWER_PREFIX: &[u8] = b"First 10 bytes of request: ";

/// What a received frame asks of a COMET server.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Incoming {
    /// A valid request: offer it to the handlers.
    Request(Request),
    /// Action or value missing or falsy: answer [`InvalidRequest::comet_answer`], run nothing.
    Invalid(InvalidRequest),
    /// Content type other than `text/json`: answer with [`binary_answer`].
    Binary(Frame),
}

/// Sorts `frame` as COMET does.
///
/// # Errors
/// Malformed JSON content (invalid JSON, not an object, unsupported encoding): COMET closes the
/// connection without answering.
pub fn classify(frame: &Frame) -> Result<Incoming, DecodeError> {
    if !frame.is_json() {
        return Ok(Incoming::Binary(frame.clone()));
    }
    let raw = RawRequest::from_frame(frame)?;
    Ok(match raw.into_request() {
        Ok(request) => Incoming::Request(request),
        Err(invalid) => Incoming::Invalid(invalid),
    })
}

/// COMET's answer to binary content: content type `binary/custom-server-binary-type`, encoding
/// `binary`, content `First 10 bytes of request: ` followed by the first 10 content bytes.
pub fn binary_answer(request: &Frame) -> Frame {
    let head = request.content.get(..10).unwrap_or(&request.content);
    let mut content = BytesMut::with_capacity(BINARY_ANSWER_PREFIX.len() + head.len());
    content.put_slice(BINARY_ANSWER_PREFIX);
    content.put_slice(head);
    Frame::binary(CONTENT_TYPE_SERVER_BINARY, content.freeze())
}

/// The frame answering an invalid request.
///
/// # Errors
/// Never in practice (a string always serializes).
pub fn invalid_answer(invalid: &InvalidRequest) -> Result<Frame, EncodeError> {
    Response::new(invalid.comet_answer().into()).to_frame()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_binary_content_is_answered_whole() {
        let answer = binary_answer(&Frame::binary("x/y", &b"abc"[..]));
        assert_eq!(&answer.content[..], b"First 10 bytes of request: abc");
        assert_eq!(answer.content_type, CONTENT_TYPE_SERVER_BINARY);
        assert_eq!(answer.content_encoding, "binary");
    }

    #[test]
    fn content_type_must_be_exactly_text_json() {
        let mut frame = Frame::json(&br#"{"action": "A", "value": 1}"#[..]);
        assert!(matches!(classify(&frame), Ok(Incoming::Request(_))));
        frame.content_type = "text/JSON".into();
        assert!(matches!(classify(&frame), Ok(Incoming::Binary(_))));
    }

    #[test]
    fn falsy_values_are_invalid_and_truthy_ones_dispatch() {
        let frame = Frame::json(&br#"{"action": "A", "value": []}"#[..]);
        let Ok(Incoming::Invalid(invalid)) = classify(&frame) else {
            panic!("expected invalid");
        };
        assert_eq!(invalid.value, Some(json!([])));
    }
}
