//! What the coordinator publishes and answers: events, errors, node status, sequence reports.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::io;

use super::effects::Expect;
use crate::message::{Identity, Message, UnitInfo};
use crate::sequence::{Sequence, Slot, Verdict};
use crate::transport::{ReceiveError, SendError};
use crate::wire::{DecodeError, EncodeError};

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

/// Why a coordinator call failed: the transport, the wire, or the node's own refusal
/// ([`Error::Device`]). The same variants as every labwire client's `Error`
/// (`docs/clients.md`), plus [`Error::Shutdown`].
///
/// A cause appears once: print the whole chain with [`labwire_net::error_chain`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node could not be reached: connecting to it failed (refused, unreachable, or the
    /// connect timeout passed). Nothing was delivered.
    #[error("cannot connect to {peer}")]
    Connect {
        /// The node, as the connection's [`Connector`](labwire_net::Connector) names it (its
        /// address for TCP).
        peer: String,
        /// Why (`ConnectionRefused`, `TimedOut`, a TLS error, ...).
        #[source]
        source: io::Error,
    },
    /// Writing the request failed part-way.
    #[error("I/O error")]
    Io(#[source] io::Error),
    /// The node's output (or, for a sequence, boardio's verdict) did not arrive in time; or
    /// handing the request over did not finish within the send timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The node closed the connection without taking the request.
    #[error("the node closed the connection before taking the request")]
    Closed,
    /// What came is not a valid message.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The request cannot be encoded (too large); nothing was sent.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The node refused: boardio's `BOARDIO_ERROR` verdict on a sequence.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The coordinator was shut down.
    #[error("the coordinator is shut down")]
    Shutdown,
}

impl Error {
    /// Whether a deadline passed (connecting, handing the request over, or waiting for the
    /// answer).
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout(_) => true,
            Error::Connect { source, .. } => source.kind() == io::ErrorKind::TimedOut,
            _ => false,
        }
    }

    /// Whether the exchange with the node failed on the way (unreachable, cut off, out of
    /// time, garbled): the node may be out of step, and the next command to it is preceded by
    /// a re-synchronisation (see the [module docs](super#correlation)).
    pub fn is_connection_fatal(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::Io(_)
                | Error::Timeout(_)
                | Error::Closed
                | Error::Decode(_)
        )
    }

    /// The node's refusal, when this is one.
    pub fn device_error(&self) -> Option<&DeviceError> {
        match self {
            Error::Device(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SendError> for Error {
    fn from(error: SendError) -> Self {
        match error {
            SendError::Encode(e) => Error::Encode(e),
            SendError::Connect { addr, source } => Error::Connect {
                peer: addr.to_string(),
                source,
            },
            SendError::Write { source, .. } => match source.kind() {
                io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted => Error::Closed,
                _ => Error::Io(source),
            },
            SendError::TimedOut { after, .. } => Error::Timeout(after),
        }
    }
}

/// The node refused a request: boardio answered a sequence with `BOARDIO_ERROR…`.
///
/// Displays as `boardio on 127.0.0.1:5000 refused the sequence: BOARDIO_ERROR: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("boardio on {node} refused the sequence: {message}")]
#[non_exhaustive]
pub struct DeviceError {
    /// The node.
    pub node: SocketAddr,
    /// boardio's message as it came (`BOARDIO_ERROR…`).
    pub message: String,
    /// The command's output (boardiocli's lines).
    pub output: String,
}

impl DeviceError {
    /// boardio's message (`BOARDIO_ERROR…`).
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// What a coordinator call sends to a node: a shell command line, answered by its `output`
/// event, and — for a sequence — by boardio's verdict too.
///
/// ```
/// use pycom_proto::coordinator::Command;
/// use pycom_proto::{Row, Sequence, Slot};
///
/// let ls = Command::new("ls /home/rigsters");
/// assert!(!ls.awaits_verdict());
/// let sequence = Sequence::new([Row::LedFan { on: true }]).unwrap();
/// let run = Command::sequence(&sequence, Slot::Normal);
/// assert!(run.awaits_verdict());
/// assert!(run.line().contains("boardiocli runSeq"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    line: String,
    expect: Expect,
}

impl Command {
    /// Runs `line` in the node's shell; answered by its output.
    pub fn new(line: impl Into<String>) -> Self {
        Self {
            line: line.into(),
            expect: Expect::Output,
        }
    }

    /// Writes `sequence` to `slot`'s file, loads and runs it ([`Sequence::command`]);
    /// answered by the output and boardio's verdict (an `ERROR` is [`Error::Device`]).
    pub fn sequence(sequence: &Sequence, slot: Slot) -> Self {
        Self {
            line: sequence.command(slot),
            expect: Expect::Verdict,
        }
    }

    /// The shell command line.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// Whether boardio's verdict is awaited besides the output.
    pub fn awaits_verdict(&self) -> bool {
        self.expect == Expect::Verdict
    }

    pub(super) fn into_parts(self) -> (String, Expect) {
        (self.line, self.expect)
    }
}

impl From<&str> for Command {
    fn from(line: &str) -> Self {
        Self::new(line)
    }
}

impl From<String> for Command {
    fn from(line: String) -> Self {
        Self::new(line)
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

/// A node's answer to a [`Command`]: its output and, for a sequence, boardio's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// The command's output (its stdout, or its stderr when it failed), as it came.
    pub output: String,
    /// boardio's verdict, for a [`Command::sequence`]; `None` for a plain command, or when the
    /// output shows boardio was not reached. Never an `ERROR` from
    /// [`Coordinator::call`](super::Coordinator::call) (that is [`Error::Device`]);
    /// [`Coordinator::call_response`](super::Coordinator::call_response) returns it as it came.
    pub verdict: Option<Verdict>,
}

impl Response {
    /// Whether boardio accepted the sequence.
    pub fn is_ready(&self) -> bool {
        self.verdict == Some(Verdict::Ready)
    }

    /// The boardio commands the output shows boardiocli sent, in order: `uSeq` and `runSeq`
    /// for `BOARDIO_CLI: Sent: "uSeq" to FIFO file` and `BOARDIO_CLI: Sent: "runSeq" to FIFO
    /// file` (the vendor's example output). Empty when boardio was not reached.
    pub fn boardio_sent(&self) -> Vec<&str> {
        super::matching::boardio_sent(&self.output).collect()
    }
}

/// The former name of [`Response`].
#[deprecated(since = "0.2.0", note = "use Response")]
pub type SequenceReport = Response;
