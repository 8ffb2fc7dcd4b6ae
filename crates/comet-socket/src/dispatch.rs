//! What a COMET server does with a received frame, sans IO.
//!
//! [`classify`] sorts a frame into the cases COMET distinguishes, and [`Answer`] is what goes
//! back, including nothing at all. A COMET `Service` (the `server` module, feature `server`)
//! takes an [`Incoming`] and returns an [`Answer`]; the handler chain there and the simulator
//! build on these, and tests can check the rules without a socket.

use bytes::{BufMut, BytesMut};
use serde_json::Value;

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
    /// JSON content that is not an object COMET can read (invalid JSON, not an object, not
    /// UTF-8): COMET closes the connection without answering.
    Malformed(DecodeError),
}

impl Incoming {
    /// Sorts `frame` as COMET does ([`classify`]), malformed content included.
    pub fn from_frame(frame: &Frame) -> Self {
        classify(frame).unwrap_or_else(Self::Malformed)
    }

    /// What COMET answers when no handler does: `{"result": null}` for a request, the error
    /// string for an invalid one, the binary answer for binary content, and nothing (a silent
    /// close) for malformed content.
    pub fn default_answer(&self) -> Answer {
        match self {
            Self::Request(_) => Answer::result(Value::Null),
            Self::Invalid(invalid) => Answer::result(invalid.comet_answer().into()),
            Self::Binary(frame) => Answer::Frame(binary_answer(frame)),
            Self::Malformed(_) => Answer::Close,
        }
    }
}

/// Sorts `frame` as COMET does.
///
/// # Errors
/// Malformed JSON content (invalid JSON, not an object, unsupported encoding): COMET closes the
/// connection without answering. [`Incoming::from_frame`] makes that an
/// [`Incoming::Malformed`].
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

/// What a COMET server sends back for one request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Answer {
    /// `{"result": ...}` as a JSON frame.
    Response(Response),
    /// Any other frame (COMET's binary answer).
    Frame(Frame),
    /// Nothing: the connection is closed without an answer, as COMET does with malformed
    /// content.
    Close,
    /// Nothing, and the connection is kept open: the client waits until it gives up or the
    /// server's deadline passes, then the connection is closed. What a real COMET server does
    /// with falsy content (it spins at 100 % CPU and never answers); the simulator's fidelity
    /// mode answers that with this. Served by the `server` module (or `labwire-net`'s loop
    /// through `server::with_hold`), it waits on the socket and a timer, never spinning.
    Hold,
}

impl Answer {
    /// `{"result": <result>}`.
    pub fn result(result: Value) -> Self {
        Self::Response(Response::new(result))
    }

    /// The frame to send, or `None` for [`Answer::Close`] and [`Answer::Hold`].
    ///
    /// # Errors
    /// [`EncodeError::Json`] only for values `serde_json` cannot write (none in practice).
    pub fn into_frame(self) -> Result<Option<Frame>, EncodeError> {
        match self {
            Self::Response(response) => response.to_frame().map(Some),
            Self::Frame(frame) => Ok(Some(frame)),
            Self::Close | Self::Hold => Ok(None),
        }
    }
}

impl From<Response> for Answer {
    fn from(response: Response) -> Self {
        Self::Response(response)
    }
}

impl From<Frame> for Answer {
    fn from(frame: Frame) -> Self {
        Self::Frame(frame)
    }
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

    #[test]
    fn default_answers_follow_comet() {
        let answer =
            |content: &'static [u8]| Incoming::from_frame(&Frame::json(content)).default_answer();
        assert_eq!(
            answer(br#"{"action": "A", "value": 1}"#),
            Answer::result(Value::Null)
        );
        assert_eq!(
            answer(br#"{"value": 1}"#),
            Answer::result(json!("Error: invalid action and or value None, 1"))
        );
        assert_eq!(answer(b"[1]"), Answer::Close);
        assert_eq!(Answer::Close.into_frame(), Ok(None));
        assert_eq!(Answer::Hold.into_frame(), Ok(None));
        let binary =
            Incoming::from_frame(&Frame::binary("x/y", &b"0123456789ab"[..])).default_answer();
        let Answer::Frame(frame) = binary else {
            panic!("{binary:?}");
        };
        assert_eq!(&frame.content[..], b"First 10 bytes of request: 0123456789");
    }
}
