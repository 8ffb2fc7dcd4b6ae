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
    #[error("payload is not valid UTF-8: {0}")]
    InvalidUtf8(#[from] std::str::Utf8Error),
    /// The payload is not JSON (even allowing bare `NaN`/`Infinity`). The frame was consumed.
    #[error("payload is not valid JSON: {0}")]
    InvalidJson(#[from] serde_json::Error),
    /// The payload is JSON but not a well-formed message. The frame was consumed.
    #[error("invalid message: {0}")]
    InvalidMessage(&'static str),
    /// Reading from the transport failed.
    #[error("I/O error: {0}")]
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
    #[error("cannot serialize message: {0}")]
    Json(#[from] serde_json::Error),
    /// Writing to the transport failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}
