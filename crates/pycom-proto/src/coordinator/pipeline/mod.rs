//! One node's command pipeline: which request goes next, which command an `output` belongs to,
//! which sequence a boardio verdict belongs to, and re-synchronisation after a loss. Sans-IO:
//! every method takes `now`; what must happen is pushed to an [`Out`] list.
//!
//! The rules (see the module docs of [`crate::coordinator`] for why):
//! - one command at a time: the next one is handed over only when the current one is finished
//!   (its output came, and boardio's verdicts if its output shows boardio was reached);
//! - an output belongs to the command in flight, and only while the pipeline is in step;
//! - after a command ends without its output (timeout, cancelled, maybe delivered), the
//!   pipeline is out of step: it sends a marker command (`echo <token>`) and discards every
//!   output until that token comes back. An output that arrives while no command is in flight
//!   (a duplicate, or a late one) puts it out of step too;
//! - a verdict belongs to the command in flight whatever the order of the output and message
//!   events; an `ERROR` wins over any `READY`;
//! - a command whose call ends (timeout, cancelled, maybe delivered) while boardio may still
//!   send it verdicts (its output announced more than came, or its output did not come and it
//!   may have reached boardio) leaves them owed: the next command waits until they came or
//!   the verdict wait passed, and every verdict meanwhile is the ended command's, dropped. A
//!   late verdict is thus never taken for the next command's, within that bound.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::config::PipelineTimings;
use super::effects::{CommandId, Delivery, Expect, Failure, Reply};
use super::matching::{marker_token, token_stem};
use crate::sequence::Verdict;

mod settle;

/// What the pipeline asks its owner to do.
#[derive(Debug)]
pub(super) enum Out {
    /// Hand this command line to the node (the next request in the node's order).
    Send {
        /// The request's number in this pipeline, given back to [`Pipeline::on_sent`].
        request: u64,
        /// The shell command line.
        command: String,
        /// The command it carries; `None` for a marker.
        id: Option<CommandId>,
    },
    /// A command is finished.
    Complete(CommandId, Result<Reply, Failure>),
    /// The pipeline fell out of step and is re-synchronising (for logs and events).
    Resync {
        /// The marker's token.
        token: String,
    },
    /// An output that was not given to any command.
    Discarded {
        /// Why.
        why: &'static str,
    },
}

/// A command waiting for its turn.
#[derive(Debug)]
pub(super) struct Queued {
    pub(super) id: CommandId,
    pub(super) command: String,
    pub(super) expect: Expect,
    pub(super) deadline: Instant,
}

/// The command handed to the node and not finished yet.
#[derive(Debug)]
struct Current {
    /// `None` once the call has been answered (its verdicts are still being drained).
    id: Option<CommandId>,
    expect: Expect,
    deadline: Instant,
    output: Option<String>,
    verdicts: Vec<Verdict>,
    /// When enough `READY`s are assumed to have come (set at the first one).
    settle_at: Option<Instant>,
    /// When the next command goes even though boardio's verdicts did not come.
    drain_until: Option<Instant>,
    /// Whether it may reach boardio (a confirmed sequence, or a line naming `boardiocli`):
    /// ended without its output, verdicts may still come for it.
    boardio: bool,
}

/// Verdicts boardio may still send for a command that ended: the next command waits for them
/// (or for the end of the wait), and every verdict meanwhile is dropped as that command's.
#[derive(Debug)]
struct Owed {
    /// How many; `None` when the command's output did not come (what it sent is unknown).
    count: Option<usize>,
    /// When the next command goes anyway (a lost verdict must not stall the node).
    until: Instant,
}

impl Current {
    /// When [`Pipeline::handle_timeout`] ends this command: once the verdicts settled, or
    /// else, while its call waits, at the call's deadline (a call awaiting boardio's verdict
    /// waits for it until then, past the verdict wait), and once the call is answered, when
    /// the wait for the verdicts still to drain ends.
    fn due(&self) -> Option<Instant> {
        let wait = match self.id {
            Some(_) => Some(self.deadline),
            None => self.drain_until,
        };
        [wait, self.settle_at].into_iter().flatten().min()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Sync {
    InStep,
    /// Out of step; a marker goes before the next command (at once when `eager`).
    Needed {
        eager: bool,
    },
    /// A marker is on its way; outputs are discarded until its token comes back.
    Waiting {
        token: String,
        deadline: Instant,
    },
}

/// One node's queue, command in flight and synchronisation state.
#[derive(Debug)]
pub(super) struct Pipeline {
    queue: VecDeque<Queued>,
    current: Option<Current>,
    /// The request being handed over (commands and markers go one at a time, in order).
    in_transit: Option<u64>,
    next_request: u64,
    sync: Sync,
    /// Verdicts owed by a command that ended, which the next command waits for.
    owed: Option<Owed>,
    /// Seed of this pipeline's marker tokens (unique per node and coordinator).
    token_seed: u64,
    next_token: u64,
}

impl Pipeline {
    /// An empty pipeline; `token_seed` makes its marker tokens unique.
    pub(super) fn new(token_seed: u64) -> Self {
        Self {
            queue: VecDeque::new(),
            current: None,
            in_transit: None,
            next_request: 0,
            sync: Sync::InStep,
            owed: None,
            token_seed,
            next_token: 0,
        }
    }

    /// Whether a command (or marker) is in flight or being handed over.
    pub(super) fn busy(&self) -> bool {
        self.current.is_some() || self.in_transit.is_some()
    }

    /// Whether outputs are currently matched to commands (no re-synchronisation pending).
    pub(super) fn in_step(&self) -> bool {
        self.sync == Sync::InStep
    }

    /// Commands waiting for their turn.
    pub(super) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Queues a command; it is handed over when its turn comes.
    pub(super) fn submit(
        &mut self,
        command: Queued,
        now: Instant,
        timings: &PipelineTimings,
        out: &mut Vec<Out>,
    ) {
        self.queue.push_back(command);
        self.pump(now, timings, out);
    }

    /// The call for `id` ended on the caller's side (dropped): treated like a timeout, and
    /// answered [`Failure::Cancelled`] whether it was queued or in flight (nothing when it was
    /// answered already).
    pub(super) fn cancel(
        &mut self,
        id: CommandId,
        timings: &PipelineTimings,
        now: Instant,
        out: &mut Vec<Out>,
    ) {
        if let Some(index) = self.queue.iter().position(|q| q.id == id) {
            self.queue.remove(index);
            out.push(Out::Complete(id, Err(Failure::Cancelled)));
            return;
        }
        if self.current.as_ref().is_some_and(|c| c.id == Some(id)) {
            self.abandon_current(Failure::Cancelled, now, timings, out);
            self.pump(now, timings, out);
        }
    }

    /// The outcome of handing over request `request`.
    pub(super) fn on_sent(
        &mut self,
        request: u64,
        delivery: Delivery,
        now: Instant,
        timings: &PipelineTimings,
        out: &mut Vec<Out>,
    ) {
        if self.in_transit != Some(request) {
            return;
        }
        self.in_transit = None;
        match delivery {
            Delivery::Delivered => {}
            // The node may have part of it: answer the caller now, and re-synchronise in case
            // an output comes after all.
            Delivery::Unknown => {
                if self.current.as_ref().is_some_and(|c| c.output.is_none()) {
                    self.abandon_current(Failure::NotDelivered, now, timings, out);
                }
            }
            Delivery::NotDelivered => {
                if let Some(current) = self.current.take() {
                    // The node never saw the command: nothing of it can come back.
                    if let Some(id) = current.id {
                        out.push(Out::Complete(id, Err(Failure::NotDelivered)));
                    }
                } else if let Sync::Waiting { token, .. } = &self.sync {
                    // The marker never reached the node, so the command it was sent for cannot
                    // either: that command fails now (rather than the node being hammered until
                    // its deadline); the next one tries another marker.
                    tracing::debug!(token, "marker not delivered");
                    self.sync = Sync::Needed { eager: false };
                    if let Some(waiting) = self.queue.pop_front() {
                        out.push(Out::Complete(waiting.id, Err(Failure::NotDelivered)));
                    }
                }
            }
        }
        self.pump(now, timings, out);
    }

    /// An `output` event from the node.
    pub(super) fn on_output(
        &mut self,
        output: &str,
        now: Instant,
        timings: &PipelineTimings,
        out: &mut Vec<Out>,
    ) {
        if let Some(token) = marker_token(output)
            && token.starts_with(&token_stem(self.token_seed))
        {
            if matches!(&self.sync, Sync::Waiting { token: t, .. } if t == token) {
                tracing::debug!(token, "back in step");
                self.sync = Sync::InStep;
                self.pump(now, timings, out);
            } else {
                // An earlier marker's output (late, or duplicated): never a command's answer.
                out.push(Out::Discarded {
                    why: "the output of an earlier marker",
                });
            }
            return;
        }
        if self.sync != Sync::InStep {
            out.push(Out::Discarded {
                why: "out of step: waiting for a marker's output",
            });
            return;
        }
        match self.current.as_mut() {
            Some(current) if current.output.is_none() => {
                current.output = Some(output.to_owned());
                current.drain_until = Some(later(now, timings.verdict_wait));
                self.settle(now, timings, out);
            }
            _ => {
                // A duplicate, or the late output of a command that ended: outputs can no
                // longer be trusted to follow the command order.
                out.push(Out::Discarded {
                    why: "no command was waiting for an output",
                });
                self.sync = Sync::Needed { eager: false };
                self.pump(now, timings, out);
            }
        }
    }

    /// A `BOARDIO_*` verdict message from the node; `false` when it belongs to no command.
    ///
    /// While an ended command's verdicts are owed no command is in flight, so a verdict then is
    /// that command's: it is dropped, and once the last owed one came the next command goes.
    pub(super) fn on_verdict(
        &mut self,
        verdict: Verdict,
        now: Instant,
        timings: &PipelineTimings,
        out: &mut Vec<Out>,
    ) -> bool {
        if let Some(current) = self.current.as_mut() {
            current.verdicts.push(verdict);
            self.settle(now, timings, out);
            return true;
        }
        let Some(owed) = self.owed.as_mut() else {
            return false;
        };
        tracing::debug!(?verdict, "the verdict of a command that ended: dropped");
        if let Some(count) = owed.count.as_mut() {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.owed = None;
                self.pump(now, timings, out);
            }
        }
        true
    }

    /// Deadlines that passed by `now`.
    pub(super) fn handle_timeout(
        &mut self,
        now: Instant,
        timings: &PipelineTimings,
        out: &mut Vec<Out>,
    ) {
        let mut index = 0;
        while index < self.queue.len() {
            if self.queue.get(index).is_some_and(|q| q.deadline <= now) {
                if let Some(expired) = self.queue.remove(index) {
                    out.push(Out::Complete(expired.id, Err(Failure::Timeout)));
                }
            } else {
                index += 1;
            }
        }
        if let Sync::Waiting { token, deadline } = &self.sync
            && *deadline <= now
        {
            tracing::debug!(token, "marker output did not come");
            self.sync = Sync::Needed { eager: false };
        }
        if self.owed.as_ref().is_some_and(|o| o.until <= now) {
            tracing::debug!("owed verdicts did not come: the next command goes");
            self.owed = None;
        }
        if let Some(current) = &self.current
            && current.due().is_some_and(|t| t <= now)
        {
            if current.settle_at.is_some_and(|t| t <= now) || current.id.is_none() {
                self.finish(out);
            } else {
                self.abandon_current(Failure::Timeout, now, timings, out);
            }
        }
        self.pump(now, timings, out);
    }

    /// The earliest deadline, if any: only instants [`Pipeline::handle_timeout`] acts on, so
    /// that right after it the next one is later (the shell's timer never spins).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let queued = self.queue.iter().map(|q| q.deadline).min();
        let marker = match &self.sync {
            Sync::Waiting { deadline, .. } => Some(*deadline),
            _ => None,
        };
        let current = self.current.as_ref().and_then(Current::due);
        let owed = self.owed.as_ref().map(|o| o.until);
        [queued, marker, current, owed].into_iter().flatten().min()
    }

    /// Fails every command with `failure` and forgets everything (coordinator shutting down).
    pub(super) fn fail_all(&mut self, failure: Failure, out: &mut Vec<Out>) {
        self.owed = None;
        for queued in self.queue.drain(..) {
            out.push(Out::Complete(queued.id, Err(failure)));
        }
        if let Some(id) = self.current.take().and_then(|c| c.id) {
            out.push(Out::Complete(id, Err(failure)));
        }
    }

    /// Hands over the next request if the node is free for one.
    fn pump(&mut self, now: Instant, timings: &PipelineTimings, out: &mut Vec<Out>) {
        if self.in_transit.is_some() || self.current.is_some() {
            return;
        }
        match self.sync {
            Sync::Waiting { .. } => {}
            Sync::Needed { eager } => {
                if eager || !self.queue.is_empty() {
                    let token = format!(
                        "{}{:08x}",
                        token_stem(self.token_seed),
                        self.next_token as u32
                    );
                    self.next_token = self.next_token.wrapping_add(1);
                    let request = self.take_request();
                    out.push(Out::Resync {
                        token: token.clone(),
                    });
                    out.push(Out::Send {
                        request,
                        command: format!("echo {token}"),
                        id: None,
                    });
                    self.sync = Sync::Waiting {
                        token,
                        deadline: later(now, timings.resync_timeout),
                    };
                }
            }
            // An ended command's verdicts may still come: they must not be taken for the next's.
            Sync::InStep if self.owed.is_some() => {}
            Sync::InStep => {
                // Commands whose deadline passed while queued are answered by handle_timeout.
                let Some(next) = self.queue.pop_front() else {
                    return;
                };
                let boardio = next.expect == Expect::Verdict || next.command.contains("boardiocli");
                let request = self.take_request();
                out.push(Out::Send {
                    request,
                    command: next.command,
                    id: Some(next.id),
                });
                self.current = Some(Current {
                    id: Some(next.id),
                    expect: next.expect,
                    deadline: next.deadline,
                    output: None,
                    verdicts: Vec::new(),
                    settle_at: None,
                    drain_until: None,
                    boardio,
                });
            }
        }
    }

    fn take_request(&mut self) -> u64 {
        let request = self.next_request;
        self.next_request = self.next_request.wrapping_add(1);
        self.in_transit = Some(request);
        request
    }
}

/// `after` from `now`; a duration too large to represent (`Duration::MAX` for "never") is
/// capped at a century instead of overflowing.
pub(super) fn later(now: Instant, after: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(after.min(CENTURY)).unwrap_or(now)
}
