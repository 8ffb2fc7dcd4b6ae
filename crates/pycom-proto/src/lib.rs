#![doc = include_str!("../README.md")]
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
pub use coordinator::{Coordinator, CoordinatorConfig, Event, NodeTable, SequenceReport};
