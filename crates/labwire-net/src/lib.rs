#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod budget;
mod connect;
pub mod idle;
mod listener;
mod report;
mod server;
pub mod service;
pub mod transport;
pub mod warn_limit;

#[cfg(feature = "cli")]
pub mod cli;

pub use budget::{DEFAULT_FRAME_BUDGET, FrameBudget};
pub use connect::connect;
pub use listener::{DEFAULT_BACKLOG, bind};
pub use report::error_chain;
pub use server::{DEFAULT_MAX_CONNECTIONS, Peer, Server, ServerConfig, ServerHandle};
pub use service::{Exchange, PlannedService, Service};
pub use tokio_util::sync::CancellationToken;
pub use transport::{AsyncStream, Connector, Stream};
pub use warn_limit::WarnLimit;
