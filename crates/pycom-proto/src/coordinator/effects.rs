//! The vocabulary between the [`NodeTable`](super::NodeTable) and its shell: what the table
//! asks for ([`Effect`]), how it names commands and requests, and what the shell reports back.

use std::net::SocketAddr;

use super::types::Event;
use crate::message::Message;
use crate::sequence::Verdict;

/// A command submitted to the table, answered by one [`Effect::Complete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandId(pub u64);

/// One request the table asked to hand to a node; its outcome goes back to
/// [`NodeTable::on_sent`](super::NodeTable::on_sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId {
    pub(super) node: SocketAddr,
    /// `None` for a heartbeat (not part of the node's command order).
    pub(super) seq: Option<u64>,
}

impl RequestId {
    /// The node the request goes to.
    pub fn node(&self) -> SocketAddr {
        self.node
    }

    /// Whether it is a heartbeat (outside the node's command order: nothing waits for it).
    pub fn is_heartbeat(&self) -> bool {
        self.seq.is_none()
    }
}

/// What a finished command got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The `output` event's text.
    pub output: String,
    /// boardio's verdict, for a command submitted with [`Expect::Verdict`] whose output shows
    /// boardio was reached.
    pub verdict: Option<Verdict>,
}

/// Why a command finished without a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Its deadline passed (queued, being handed over, or waiting for output or verdict).
    Timeout,
    /// It could not be handed to the node (the shell knows the transport error).
    NotDelivered,
    /// The caller gave up ([`NodeTable::cancel`](super::NodeTable::cancel)), while the
    /// command was queued or in flight.
    Cancelled,
    /// The table was shut down.
    Shutdown,
}

/// What the table asks its shell to do.
#[derive(Debug)]
pub enum Effect {
    /// Hand `message` to `node` (connect, write, close) and report with
    /// [`NodeTable::on_sent`](super::NodeTable::on_sent). Requests of one node's command order are asked for one at a
    /// time; heartbeats may go alongside.
    Send {
        /// Identifies the request in [`NodeTable::on_sent`](super::NodeTable::on_sent).
        request: RequestId,
        /// The message.
        message: Message,
    },
    /// Answer a command.
    Complete {
        /// The command.
        command: CommandId,
        /// What it got.
        result: Result<Reply, Failure>,
    },
    /// Publish an event to the coordinator's subscribers.
    Publish(Event),
}

/// What a command waits for besides its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The output alone: the call completes when it arrives.
    Output,
    /// The output and boardio's verdict on the sequence it loaded.
    Verdict,
}

/// How a request hand-over ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The node read it (closed the connection), or at least it was written whole.
    Delivered,
    /// It certainly never reached the node (the connection could not be made).
    NotDelivered,
    /// Writing failed or timed out part-way: the node may or may not have it.
    Unknown,
}
