#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod codec;
pub mod dispatch;
pub mod error;
pub mod json;
pub mod message;
pub mod pyrepr;
pub mod wire;

#[cfg(any(feature = "client", feature = "server"))]
pub mod io;

#[cfg(feature = "client")]
pub mod client;

#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "config")]
pub mod config;

pub use codec::{CodecError, CometCodec, ServerCodec};
pub use dispatch::{Answer, Incoming};
pub use error::{DecodeError, EncodeError};
pub use message::{DeviceError, InvalidRequest, RawRequest, Refusal, Request, Response};
pub use wire::{Frame, Limits};

#[cfg(feature = "client")]
pub use client::{Client, ClientBuilder, Connector};

#[cfg(feature = "server")]
pub use server::{Handler, Handlers};
