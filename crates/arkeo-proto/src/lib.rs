#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod codec;
mod error;
pub mod json;
mod message;
pub mod reply;
pub mod wire;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "server")]
pub mod server;

pub use codec::{ClientCodec, FrameCodec, ServerCodec};
pub use error::{BadRequest, DecodeError, EncodeError};
pub use message::{
    ErrorObject, KeyedRequest, MuxStatus, ParamKey, Request, Response, RoutineState, Status,
    Target, TestStatus, codes,
};
pub use reply::{
    Exposure, LedBoard, LedStatus, MonochromatorStatus, Rates, Spectrum, TempMeasurement,
    TmpctlController, TmpctlDeviceStatus, TmpctlMeasurement,
};
pub use wire::{DEFAULT_MAX_FRAME_LENGTH, Limits};

#[cfg(feature = "client")]
pub use client::{Client, ClientBuilder, DeviceError, Error, Reply};
#[cfg(feature = "server")]
pub use server::{ServerBuilder, Service};

/// The JSON library whose [`serde_json::Value`] this crate's messages carry.
pub use serde_json;

/// The ARKEO application's default TCP port.
pub const DEFAULT_PORT: u16 = 6360;
