#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod arkeo;
pub mod comet;
pub mod decode;
pub mod pekat;
pub mod proxy;
pub mod pycom;
pub mod recording;
pub mod replay;

pub use arkeo::Arkeo;
pub use comet::Comet;
pub use decode::{Fatal, Found, Framing, Protocol, SideDecoder};
pub use pekat::Pekat;
pub use proxy::{Print, TapConfig, TapHandle, start};
pub use pycom::Pycom;
pub use recording::{Decoded, Direction, Event, Header, Recording, Writer};
pub use replay::{ReplayConfig, ReplayHandle};
