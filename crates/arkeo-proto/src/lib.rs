#![doc = include_str!("../README.md")]
// The README links to items behind the `client` and `server` features. docs.rs builds with
// every feature (package.metadata.docs.rs), so there they are intra-doc links checked by
// rustdoc; a build without a feature gets these definitions instead: the same items on
// docs.rs, for this version.
#![cfg_attr(
    not(feature = "client"),
    doc = concat!(
        "<!-- without the `client` feature: its items on docs.rs -->\n",
        "[`Client`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/struct.Client.html\n",
        "[`client::DEFAULT_CALL_TIMEOUT`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/constant.DEFAULT_CALL_TIMEOUT.html\n",
        "[`client::DEFAULT_CONNECT_TIMEOUT`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/constant.DEFAULT_CONNECT_TIMEOUT.html\n",
        "[`client::DEFAULT_BLOCKING_TIMEOUT`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/constant.DEFAULT_BLOCKING_TIMEOUT.html\n",
        "[`client::DEFAULT_START_GRACE`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/constant.DEFAULT_START_GRACE.html\n",
        "[`client::BLOCKING_COMMANDS`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/constant.BLOCKING_COMMANDS.html\n",
        "[`ClientBuilder::call_timeout`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/struct.ClientBuilder.html#method.call_timeout\n",
        "[`ClientBuilder::blocking_timeout`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/struct.ClientBuilder.html#method.blocking_timeout\n",
        "[`ClientBuilder::connect_timeout`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/struct.ClientBuilder.html#method.connect_timeout\n",
        "[`ClientBuilder::start_grace`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/struct.ClientBuilder.html#method.start_grace\n",
        "[`Client::call`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/struct.Client.html#method.call\n",
        "[`Client::call_with_timeout`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/struct.Client.html#method.call_with_timeout\n",
        "[`Client::command`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/struct.Client.html#method.command\n",
        "[`Client::command_with_timeout`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/struct.Client.html#method.command_with_timeout\n",
        "[`Client::routine_command`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/struct.Client.html#method.routine_command\n",
        "[`Client::timeout_for`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/struct.Client.html#method.timeout_for\n",
        "[`Client::measure`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/struct.Client.html#method.measure\n",
        "[`Client::wait_for_measurement`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/struct.Client.html#method.wait_for_measurement\n",
        "[`Error::Device`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/enum.Error.html#variant.Device\n",
        "[`Error::MeasurementNotStarted`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/enum.Error.html#variant.MeasurementNotStarted\n",
        "[`Error::RoutineFailed`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/enum.Error.html#variant.RoutineFailed\n",
        "[`DeviceError`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/struct.DeviceError.html\n",
        "[`Error`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/enum.Error.html\n",
        "[`Connector`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/struct.Connector.html\n",
        "[`Error::Connect`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/enum.Error.html#variant.Connect\n",
        "[`Client::call_response`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/struct.Client.html#method.call_response\n",
        "[`Client::command_as`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/client/struct.Client.html#method.command_as\n",
    )
)]
#![cfg_attr(
    not(feature = "server"),
    doc = concat!(
        "<!-- without the `server` feature: its items on docs.rs -->\n",
        "[`Service`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/trait.Service.html\n",
        "[`ServerBuilder`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/server/struct.ServerBuilder.html\n",
        "[`server::serve`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/server/fn.serve.html\n",
        "[`server::serve_until`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/server/fn.serve_until.html\n",
        "[`server::serve_connection`]: https://docs.rs/arkeo-proto/", env!("CARGO_PKG_VERSION"), "/arkeo_proto/server/fn.serve_connection.html\n",
    )
)]
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
#[allow(deprecated)]
pub use client::Reply;
#[cfg(feature = "client")]
pub use client::{Client, ClientBuilder, DeviceError, Error};
/// How a client opens its connection (re-exported from `labwire-net`): TCP, or any stream.
#[cfg(feature = "client")]
pub use labwire_net::transport::Connector;
#[cfg(feature = "server")]
pub use server::{ServerBuilder, Service};

/// The JSON library whose [`serde_json::Value`] this crate's messages carry.
pub use serde_json;

/// The ARKEO application's default TCP port.
pub const DEFAULT_PORT: u16 = 6360;
