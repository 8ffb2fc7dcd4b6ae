#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod data;
pub mod device;
pub mod scenario;
mod server;

pub use device::{Device, Durations, Routine};
pub use labwire_simkit::{Fault, Faults, ScheduledFault, SimClock, SimHandle};
pub use scenario::{ArkeoMatcher, ArkeoScenario};
pub use server::{
    ArkeoFault, ArkeoSim, ArkeoSimBuilder, DEFAULT_FRAME_TIMEOUT, DEFAULT_IDLE_TIMEOUT, SimState,
};

/// The address the binary listens on by default (the ARKEO application's port on loopback).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6360";
