//! Support shared by the workspace integration tests in `tests/tests/`: the simulator kit's test
//! helpers, so that every test in the workspace waits on conditions the same way.
#![deny(missing_docs)]

pub mod python;

pub use labwire_simkit::testing::{TEST_DEADLINE, eventually, eventually_async};
