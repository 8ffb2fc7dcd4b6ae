//! How a simulator starts: the device's own settings (the host's are `labwire_simkit`'s
//! [`HostConfig`](labwire_simkit::HostConfig)).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use comet_socket::Limits;
use serde_json::Value;

use crate::scenario::CometMatcher;
use crate::{CometFault, Fault};

/// One entry of a COMET fault schedule (see [`crate::scenario`]).
pub type ScheduledFault = labwire_simkit::ScheduledFault<CometFault, CometMatcher>;

/// COMET's default port.
pub const DEFAULT_PORT: u16 = 65432;
/// Where the binary listens unless told otherwise: COMET's default, `127.0.0.1:65432`.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, DEFAULT_PORT));
/// The action of COMET's Telegram bot messages.
pub const DEFAULT_TELEGRAM_ACTION: &str = "Telegram";
/// The action the built-in echo handler answers.
pub const ECHO_ACTION: &str = "ECHO";
/// What the `Garbage` fault writes instead of an answer: not a COMET frame (its prefix claims a
/// header of 65534 bytes).
pub const GARBAGE: &[u8] = b"\xff\xfe this is not a COMET frame \x00\x01\x02";

/// The device's settings, for those who prefer a struct to [`CometSim::builder`]'s setters.
/// Public fields; start from [`SimConfig::default`], then [`CometSim::start`] or
/// `CometSim::builder().config(config)`. Where the simulator listens and its clock are the
/// builder's host settings.
///
/// [`CometSim::builder`]: crate::CometSim::builder
/// [`CometSim::start`]: crate::CometSim::start
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Reproduce COMET's quirks where that is safe (see the crate docs).
    pub fidelity: bool,
    /// Real time each step of a connection may take: waiting for the request, receiving it,
    /// answering it, sending the answer. A connection held without an answer (fidelity mode,
    /// [`Fault::NoReply`]) is closed after it.
    pub connection_deadline: Duration,
    /// The action the Telegram-bot handler answers.
    pub telegram_action: String,
    /// Fixed answers per action, tried before the built-in handlers.
    pub answers: BTreeMap<String, Value>,
    /// Per action: how long the handlers take, in simulated time (as
    /// [`CometFault::Slow`] for every request of that action; a `Slow` fault replaces it).
    pub delays: BTreeMap<String, Duration>,
    /// The text the Telegram bot reports for `status`.
    pub status: String,
    /// Commands the Telegram bot knows besides `ping`, `status` and `help` (any case,
    /// trimmed), and its reply to each; they win over the built-in ones.
    pub telegram_replies: BTreeMap<String, String>,
    /// Frame size limits.
    pub limits: Limits,
    /// A fault applied to every request from the start (none by default); see
    /// [`Faults::set`](labwire_simkit::Faults::set).
    pub fault: Option<Fault>,
    /// The fault schedule from the start (a scenario's `faults`), after [`SimConfig::fault`];
    /// a reset schedules it again.
    pub schedule: Vec<ScheduledFault>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            fidelity: false,
            connection_deadline: comet_socket::server::DEFAULT_CONNECTION_DEADLINE,
            telegram_action: DEFAULT_TELEGRAM_ACTION.to_owned(),
            answers: BTreeMap::new(),
            delays: BTreeMap::new(),
            status: "idle".to_owned(),
            telegram_replies: BTreeMap::new(),
            limits: Limits::default(),
            fault: None,
            schedule: Vec::new(),
        }
    }
}
