//! Decode and encode errors.

use std::io;

/// Why bytes could not be decoded into a message.
///
/// [`DecodeError::is_fatal`] says whether the byte stream can go on: payload errors consume
/// exactly their frame, so the next frame still starts at a frame boundary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The length prefix claims more than the configured maximum. Nothing was allocated; the
    /// stream cannot be resynchronised and should be closed.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The claimed payload length.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// The payload is not UTF-8. The frame was consumed.
    #[error("payload is not valid UTF-8")]
    InvalidUtf8(#[from] std::str::Utf8Error),
    /// The payload is not JSON (even allowing bare `NaN`/`Infinity`). The frame was consumed.
    #[error("payload is not valid JSON")]
    InvalidJson(#[from] serde_json::Error),
    /// The payload is JSON but not a well-formed message. The frame was consumed.
    #[error("invalid message: {0}")]
    InvalidMessage(&'static str),
    /// Reading from the transport failed.
    #[error("I/O error")]
    Io(#[from] io::Error),
}

impl DecodeError {
    /// Whether the stream must be closed after this error (it cannot be resynchronised).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::FrameTooLarge { .. } | Self::Io(_))
    }
}

/// Why a message could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoded payload is larger than the configured maximum; nothing was written.
    #[error("payload of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The payload length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The message could not be serialized.
    #[error("cannot serialize message")]
    Json(#[from] serde_json::Error),
    /// Writing to the transport failed.
    #[error("I/O error")]
    Io(#[from] io::Error),
}

/// A readable request frame whose payload is not a request, as the device side decodes it
/// ([`ServerCodec`](crate::ServerCodec)): the stream is still in step, and the device answers it
/// with [`BadRequest::response`] instead of closing the connection.
#[derive(Debug, thiserror::Error)]
#[error("bad request: {error}")]
pub struct BadRequest {
    /// What is wrong with the payload: [`DecodeError::InvalidUtf8`],
    /// [`DecodeError::InvalidJson`] or [`DecodeError::InvalidMessage`].
    pub error: DecodeError,
    /// The payload's `request_id`, when it is JSON with an integer one: the error reply
    /// echoes it.
    pub request_id: Option<u64>,
}

impl BadRequest {
    /// The error reply the device sends: code [`INVALID_JSON`](crate::codes::INVALID_JSON)
    /// (100) for a payload that is not UTF-8 JSON, [`INVALID_REQUEST`](crate::codes::INVALID_REQUEST)
    /// (102) for JSON that is not a request (no `target` or `command`, a bad `request_id`,
    /// not an object).
    pub fn response(&self) -> crate::Response {
        use crate::codes::{INVALID_JSON, INVALID_REQUEST};
        let (code, message) = match &self.error {
            DecodeError::InvalidUtf8(_) => (
                INVALID_JSON,
                "Invalid JSON: payload is not UTF-8".to_owned(),
            ),
            // The parser's detail, which the error's message leaves to its source.
            DecodeError::InvalidJson(error) => (
                INVALID_JSON,
                format!("Invalid JSON: payload is not valid JSON: {error}"),
            ),
            other => (INVALID_REQUEST, format!("Invalid request: {other}")),
        };
        crate::Response::error(code, message, self.request_id)
    }
}
