#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(feature = "bin-test")]
pub mod bin_test;
#[cfg(feature = "cli")]
pub mod cli;
pub mod clock;
#[cfg(feature = "control")]
pub mod control;
pub mod duration;
pub mod faults;
pub mod handle;
pub mod host;
pub mod layer;
#[cfg(feature = "scenario")]
pub mod scenario;
#[cfg(feature = "testing")]
pub mod testing;

pub use clock::SimClock;
pub use faults::{
    Fault, Faults, FaultsSnapshot, Matcher, NoDeviceFault, NoMatcher, ScheduleError, ScheduledFault,
};
pub use handle::SimHandle;
pub use host::HostConfig;
pub use layer::{Device, Faulty, Requests};
