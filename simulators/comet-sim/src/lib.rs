#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod config;
mod device;
pub mod scenario;
mod sim;

pub use config::{
    DEFAULT_LISTEN, DEFAULT_PORT, DEFAULT_TELEGRAM_ACTION, ECHO_ACTION, GARBAGE, ScheduledFault,
    SimConfig,
};
pub use device::{CometFault, Counters, LOG_CAPACITY, Received, SimState, TelegramMessage};
pub use labwire_simkit::{HostConfig, SimClock, SimHandle};
pub use scenario::{CometMatcher, CometScenario};
pub use sim::{CometSim, CometSimBuilder};

/// A fault to inject: simkit's vocabulary, shared by every labwire simulator, with COMET's own
/// as [`Fault::Device`]`(`[`CometFault`]`)`. Queue one with `sim.faults().push(..)`, or set one
/// until cleared with `sim.faults().set(..)`.
///
/// What each does to a request (which always reaches the device): `Delay(d)` sends the answer
/// `d` later (real time); `NoReply` sends nothing and keeps the connection open until the
/// connection deadline; `Close` closes without an answer; `Truncate` sends the first half of
/// the answer, then closes; `Garbage` sends [`GARBAGE`] instead of the answer, then closes.
pub type Fault = labwire_simkit::Fault<CometFault>;

/// The simulator's faults, shared with it ([`CometSim`] hands them out as `faults()`);
/// scheduled entries pick requests with a [`CometMatcher`].
pub type Faults = labwire_simkit::Faults<CometFault, CometMatcher>;
