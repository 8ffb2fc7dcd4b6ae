//! Errors of the wire layer: decoding and encoding.

use std::io;

use crate::message::Dialect;

/// Why received bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// More bytes arrived for one message than the limit allows. The peer is not speaking this
    /// protocol (or is hostile): close the connection.
    #[error("message of at least {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Bytes buffered when the limit was hit.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// An answer that is not UTF-8. The answer has been consumed; the connection can go on.
    #[error("answer is not valid UTF-8")]
    InvalidUtf8,
    /// Reading from the transport failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl DecodeError {
    /// Whether the connection is unusable after this error (anything but [`DecodeError::InvalidUtf8`]).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Self::InvalidUtf8)
    }
}

/// Why a message could not be encoded. Nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A request needs a project path.
    #[error("the project path is empty")]
    EmptyPath,
    /// A raw request needs some text.
    #[error("the request is empty")]
    EmptyRequest,
    /// The path is longer than [`MAX_PATH_LEN`](crate::MAX_PATH_LEN) bytes.
    #[error("the project path is {len} bytes, more than the limit of {max}")]
    PathTooLong {
        /// The path's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The text holds a CR, LF or NUL: with no framing on the wire, a line ending would be
    /// taken for the end of the message.
    #[error("text contains a control character (CR, LF or NUL) that the wire cannot carry")]
    ControlCharacter,
    /// Request ids exist only in the 3.19 dialect.
    #[error("request ids are not part of the {0} dialect")]
    IdNotSupported(Dialect),
    /// An [`Other`](crate::Response::Other) answer with no text would send nothing at all.
    #[error("an answer needs some text")]
    EmptyAnswer,
    /// The encoded message would exceed the configured limit.
    #[error("encoded message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The encoded length.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// Writing to the transport failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}
