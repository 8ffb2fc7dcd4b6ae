#![doc = include_str!("../README.md")]
// The README links to items behind the `client` and `server` features. docs.rs builds with
// every feature (package.metadata.docs.rs), so there they are intra-doc links checked by
// rustdoc; a build without a feature gets these definitions instead: the same items on
// docs.rs, for this version.
#![cfg_attr(
    not(feature = "client"),
    doc = concat!(
        "<!-- without the `client` feature: its items on docs.rs -->\n",
        "[`coordinator`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/coordinator/index.html\n",
        "[`coordinator::Error`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/coordinator/enum.Error.html\n",
        "[`coordinator::NodeTable`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/coordinator/struct.NodeTable.html\n",
        "[`coordinator::Effect`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/coordinator/enum.Effect.html\n",
        "[`CoordinatorConfig::call_timeout`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/coordinator/struct.CoordinatorConfig.html#structfield.call_timeout\n",
        "[`Event`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/coordinator/enum.Event.html\n",
        "[`Event::Resync`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/coordinator/enum.Event.html#variant.Resync\n",
        "[`Coordinator::builder`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/coordinator/struct.Coordinator.html#method.builder\n",
        "[`Coordinator::start`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/coordinator/struct.Coordinator.html#method.start\n",
        "[`CoordinatorConfig`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/coordinator/struct.CoordinatorConfig.html\n",
        "[`coordinator::Command`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/coordinator/struct.Command.html\n",
        "[`coordinator::Command::sequence`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/coordinator/struct.Command.html#method.sequence\n",
        "[`coordinator::Response`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/coordinator/struct.Response.html\n",
        "[`coordinator::Error::Device`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/coordinator/enum.Error.html#variant.Device\n",
    )
)]
#![cfg_attr(
    not(feature = "server"),
    doc = concat!(
        "<!-- without the `server` feature: its items on docs.rs -->\n",
        "[`node`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/node/index.html\n",
        "[`node::serve`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/node/fn.serve.html\n",
        "[`node::serve_stream`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/node/fn.serve_stream.html\n",
        "[`node::Service`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/node/trait.Service.html\n",
        "[`node::EventSender`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/node/struct.EventSender.html\n",
        "[`node::Request::reply_addr`]: https://docs.rs/pycom-proto/", env!("CARGO_PKG_VERSION"), "/pycom_proto/node/struct.Request.html#method.reply_addr\n",
    )
)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod codec;
pub mod message;
mod raw;
pub mod sequence;
#[cfg(feature = "proptest")]
pub mod strategy;
pub mod wire;

#[cfg(any(feature = "client", feature = "server"))]
pub mod transport;

#[cfg(feature = "client")]
pub mod coordinator;

#[cfg(feature = "server")]
pub mod node;

pub use codec::PycomCodec;
pub use message::{Body, Identity, Message, UnitInfo};
pub use sequence::{Drive, Row, RowError, Sequence, SequenceError, Slot, Verdict};
pub use wire::{DecodeError, EncodeError, Limits};

#[cfg(feature = "client")]
#[allow(deprecated)]
pub use coordinator::SequenceReport;
#[cfg(feature = "client")]
pub use coordinator::{Coordinator, CoordinatorBuilder, CoordinatorConfig, Event, NodeTable};
