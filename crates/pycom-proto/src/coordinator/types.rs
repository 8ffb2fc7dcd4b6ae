//! What the coordinator publishes and answers: events, errors, node status, sequence reports.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::message::{Identity, Message, UnitInfo};
use crate::sequence::Verdict;
use crate::transport::{ReceiveError, SendError};

/// Something the coordinator heard or noticed. `node` is always the node's address as
/// commands are sent to it: the IP its connection came from and the port in its message.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// An unknown node probed this coordinator (a base message with `coordinator: false`).
    NodeDiscovered {
        /// The node.
        node: SocketAddr,
        /// How it introduced itself.
        identity: Identity,
    },
    /// A node became reachable: first contact, or contact again after [`Event::NodeOffline`].
    NodeOnline {
        /// The node.
        node: SocketAddr,
    },
    /// A managed node has not been heard from (events or delivered requests) for
    /// [`CoordinatorConfig::offline_after`](super::CoordinatorConfig::offline_after).
    NodeOffline {
        /// The node.
        node: SocketAddr,
    },
    /// The node's hardware description (sent once per coordinator).
    UnitInfo {
        /// The node.
        node: SocketAddr,
        /// Its identity.
        identity: Identity,
        /// The description.
        info: UnitInfo,
    },
    /// A text message, e.g. `BOARDIO_READY` or `BOARDIO_ERROR: …`.
    Message {
        /// The node.
        node: SocketAddr,
        /// Its identity.
        identity: Identity,
        /// The text.
        message: String,
    },
    /// A command's output (also the answer of the command in flight, when the node is in
    /// step).
    Output {
        /// The node.
        node: SocketAddr,
        /// Its identity.
        identity: Identity,
        /// The output text.
        output: String,
    },
    /// The coordinator fell out of step with the node's outputs (a command ended without its
    /// output, or an output came that no command was waiting for) and sent a marker command;
    /// outputs are given to no command until the marker's comes back.
    Resync {
        /// The node.
        node: SocketAddr,
    },
    /// Any other valid message: an unknown `type_`, or a request from another coordinator.
    Other {
        /// The sender.
        node: SocketAddr,
        /// The message.
        message: Message,
    },
    /// A connection to the listener that did not carry a valid message. It was closed; nothing
    /// else was affected.
    Rejected {
        /// The peer.
        peer: SocketAddr,
        /// What was wrong.
        error: Arc<ReceiveError>,
    },
}

/// Why a coordinator call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request could not be delivered to the node.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The node's output (or, for a confirmed sequence, boardio's verdict) did not arrive in
    /// time.
    #[error("no answer from {node} within {after:?}")]
    Timeout {
        /// The node.
        node: SocketAddr,
        /// The deadline.
        after: Duration,
    },
    /// The coordinator was shut down.
    #[error("the coordinator is shut down")]
    Shutdown,
}

impl Error {
    /// Whether a deadline passed (sending, or waiting for the output).
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Send(error) => error.is_timeout(),
            Error::Shutdown => false,
        }
    }
}

/// What the coordinator knows about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStatus {
    /// The node's address.
    pub addr: SocketAddr,
    /// Whether it receives heartbeats.
    pub managed: bool,
    /// Whether it is reachable (contact within the offline delay).
    pub online: bool,
    /// The identity from its latest message, if any.
    pub identity: Option<Identity>,
    /// Its `unit_info`, once received.
    pub unit_info: Option<UnitInfo>,
    /// Whether its outputs are matched to commands (no re-synchronisation pending).
    pub in_step: bool,
    /// Whether a command (or a re-synchronisation marker) is in flight.
    pub busy: bool,
    /// Commands waiting for their turn (not counting the one in flight).
    pub queued: usize,
}

/// What [`Coordinator::run_sequence_confirmed`](super::Coordinator::run_sequence_confirmed) learnt about a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SequenceReport {
    /// The command's output (boardiocli's lines).
    pub output: String,
    /// boardio's verdict; `None` when the output shows boardio was not reached.
    pub verdict: Option<Verdict>,
}

impl SequenceReport {
    /// Whether boardio accepted the sequence.
    pub fn is_ready(&self) -> bool {
        self.verdict == Some(Verdict::Ready)
    }
}
