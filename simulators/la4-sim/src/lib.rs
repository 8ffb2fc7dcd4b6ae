#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod coordinators;
mod faults;
pub mod fleet;
mod outbox;
pub mod scenario;
pub mod shell;
pub mod sim;
pub mod state;

pub use faults::{GARBAGE, La4Fault};
pub use fleet::Fleet;
pub use labwire_simkit::{Fault, Faults, HostConfig, ScheduledFault, SimClock, SimHandle};
pub use scenario::{La4Matcher, La4Scenario};
pub use sim::{
    DEFAULT_CONNECT_TIMEOUT, La4Sim, La4SimBuilder, MAX_EVENT_DESTINATIONS, MAX_QUEUED_EVENTS,
    SimConfig, SimState, Stats,
};
pub use state::{BOARDIO_ERROR, BOARDIO_READY, CoordinatorStatus, LightState};
