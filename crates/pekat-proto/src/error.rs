//! Errors of the wire layer (decoding and encoding) and the device's own refusals.

use std::io;

use crate::message::{Dialect, Response};

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
    #[error("I/O error")]
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
    #[error("I/O error")]
    Io(#[from] io::Error),
}

/// The device's refusal: what a Projects Manager answers instead of success, typed. A client
/// call returns it as `Error::Device`; the connection is fine.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// `not-found` (3.19 `err:not-found`): no such project, or the folder is not a PEKAT
    /// project.
    #[error("the device answered not-found: no such project, or not a PEKAT project")]
    NotFound,
    /// `error:port` (3.19 `err:port`): another project or program holds the project's port.
    #[error("the device answered error:port: the project's port is taken")]
    PortInUse,
    /// `Unknown command` (3.19 `err:invalid-command`): the request was not understood (often
    /// a client speaking the other dialect).
    #[error("the device answered that it does not know the command")]
    UnknownCommand,
    /// An answer the protocol does not know (`license expired`, `err:busy`, ...), as it came.
    #[error("the device answered {0:?}")]
    Other(String),
    /// A success that does not answer the call (`done` to `status`, a state to `start`).
    #[error("the device answered {0}, which does not answer this request")]
    Unexpected(Response),
}

impl DeviceError {
    /// The refusal `response` stands for: [`Response::NotFound`] is
    /// [`DeviceError::NotFound`], and so on; a success is [`DeviceError::Unexpected`].
    pub fn refusal(response: Response) -> Self {
        match response {
            Response::NotFound => Self::NotFound,
            Response::PortInUse => Self::PortInUse,
            Response::UnknownCommand => Self::UnknownCommand,
            Response::Other(text) => Self::Other(text),
            success @ (Response::Done | Response::Success | Response::Status(_)) => {
                Self::Unexpected(success)
            }
        }
    }

    /// The answer as a [`Response`].
    pub fn response(&self) -> Response {
        match self {
            Self::NotFound => Response::NotFound,
            Self::PortInUse => Response::PortInUse,
            Self::UnknownCommand => Response::UnknownCommand,
            Self::Other(text) => Response::Other(text.clone()),
            Self::Unexpected(response) => response.clone(),
        }
    }
}

impl From<DeviceError> for Response {
    fn from(error: DeviceError) -> Self {
        match error {
            DeviceError::Other(text) => Self::Other(text),
            other => other.response(),
        }
    }
}
