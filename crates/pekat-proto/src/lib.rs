#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(feature = "client")]
pub mod client;
pub mod codec;
mod error;
mod message;
#[cfg(feature = "server")]
pub mod server;
pub mod wire;

#[cfg(feature = "client")]
pub use client::{
    Client, ClientBuilder, ClientConfig, DEFAULT_BLOCKING_TIMEOUT, DEFAULT_CALL_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT, Error,
};
pub use codec::{ClientCodec, Incoming, ServerCodec};
pub use error::{DecodeError, DeviceError, EncodeError};
#[cfg(feature = "client")]
pub use labwire_net::transport::Connector;
pub use message::{
    BadRequest, BadRequestKind, Command, Dialect, InvalidRequestId, MAX_ID_LEN, MAX_PATH_LEN,
    ProjectState, Reply, Request, RequestId, Response, Terminator, UnknownDialect,
    UnknownTerminator,
};
pub use wire::{DEFAULT_MAX_REQUEST_LEN, DEFAULT_MAX_RESPONSE_LEN, DEFAULT_PORT, Limits};
