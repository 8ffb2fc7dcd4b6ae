//! The table's deadlines and cancels, driven the way the fuzz target `pycom_coordinator` drives
//! it (its seeds `seed-verdict-wait-spin` and `seed-cancel-queued` are these scenarios).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::coordinator::config::{PipelineTimings, TableConfig};
use crate::coordinator::effects::{CommandId, Delivery, Effect, Expect, Failure, Reply, RequestId};
use crate::message::{Body, Identity, Message};
use crate::sequence::{BOARDIO_READY, Verdict};

use super::NodeTable;

pub(super) const MS: Duration = Duration::from_millis(1);
pub(super) const NODE: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5000);

/// A sequence command's output: boardiocli sent one command to boardio, so one verdict is due.
pub(super) const SEQUENCE_OUTPUT: &str = "c0\nBOARDIO_CLI: Sent: \"uSeq\" to FIFO file\n";

pub(super) fn table(now: Instant) -> NodeTable {
    let config = TableConfig {
        heartbeat_interval: Duration::from_secs(3600),
        offline_after: Duration::from_secs(3 * 3600),
        timings: PipelineTimings {
            resync_timeout: 1000 * MS,
            verdict_settle: 250 * MS,
            verdict_wait: 2000 * MS,
        },
        manage_discovered: true,
        max_nodes: 16,
    };
    let me = Identity::new("c0ffee00", "coordinator", "127.0.0.1", 5001, "0.1.0", true);
    NodeTable::new(config, me, now)
}

/// A command's answer.
pub(super) type Answer = (CommandId, Result<Reply, Failure>);

/// What the table asked for since the last call: command hand-overs and answers.
#[derive(Default)]
pub(super) struct Taken {
    pub(super) sends: Vec<RequestId>,
    pub(super) completes: Vec<Answer>,
}

pub(super) fn take(table: &mut NodeTable) -> Taken {
    let mut taken = Taken::default();
    while let Some(effect) = table.poll_effect() {
        match effect {
            Effect::Send { request, .. } if !request.is_heartbeat() => taken.sends.push(request),
            Effect::Complete { command, result } => taken.completes.push((command, result)),
            _ => {}
        }
    }
    taken
}

pub(super) fn node_says(table: &mut NodeTable, body: Body, now: Instant) {
    let identity = Identity::new(
        "81639cd4",
        "node",
        "127.0.0.1",
        NODE.port(),
        "0.14.0",
        false,
    );
    let peer = SocketAddr::new(NODE.ip(), 40000);
    table.on_message(peer, Message::new(identity, body), now);
}

/// The shell's timer: `handle_timeout` at every deadline `poll_timeout` reports, until `until`
/// (or until a command is answered); returns how many times it woke up and the answers.
pub(super) fn run_timer(table: &mut NodeTable, until: Instant) -> (usize, Vec<Answer>) {
    let mut wakes = 0;
    while let Some(at) = table.poll_timeout().filter(|at| *at <= until) {
        wakes += 1;
        assert!(wakes < 100, "the timer spins at {at:?}");
        table.handle_timeout(at);
        let next = table.poll_timeout();
        assert!(
            next.is_none_or(|next| next > at),
            "due again right after handle_timeout"
        );
        let completes = take(table).completes;
        if !completes.is_empty() {
            return (wakes, completes);
        }
    }
    (wakes, Vec::new())
}

/// A sequence awaiting its verdict, handed over and answered with its output at `t0`.
fn sequence_with_output_but_no_verdict(table: &mut NodeTable, t0: Instant) -> CommandId {
    let deadline = t0 + 10_000 * MS;
    let id = table.submit(
        NODE,
        "echo c0; boardiocli uSeq".into(),
        Expect::Verdict,
        deadline,
        t0,
    );
    let sent = take(table).sends;
    assert_eq!(sent.len(), 1);
    table.on_sent(sent[0], Delivery::Delivered, t0);
    node_says(
        table,
        Body::Output {
            output: SEQUENCE_OUTPUT.into(),
        },
        t0,
    );
    assert!(take(table).completes.is_empty(), "the verdict is awaited");
    id
}

#[test]
fn a_call_awaiting_its_verdict_past_the_verdict_wait_is_not_due_until_its_deadline() {
    let t0 = Instant::now();
    let mut table = table(t0);
    table.add_node(NODE, t0);
    let id = sequence_with_output_but_no_verdict(&mut table, t0);
    // The verdict wait (2 s) ends; the call's own deadline (10 s) bounds it.
    let now = t0 + 2704 * MS;
    table.handle_timeout(now);
    assert_eq!(table.poll_timeout(), Some(t0 + 10_000 * MS));
    // The timer wakes once more, at the deadline, and that answers the call.
    let (wakes, completes) = run_timer(&mut table, t0 + 3600 * 1000 * MS);
    assert_eq!(wakes, 1);
    assert_eq!(completes, [(id, Err(Failure::Timeout))]);
}

#[test]
fn a_verdict_after_the_verdict_wait_still_answers_the_call_before_its_deadline() {
    let t0 = Instant::now();
    let mut table = table(t0);
    let id = sequence_with_output_but_no_verdict(&mut table, t0);
    let (wakes, completes) = run_timer(&mut table, t0 + 5000 * MS);
    assert_eq!((wakes, completes), (0, Vec::new()));
    node_says(
        &mut table,
        Body::Message {
            message: BOARDIO_READY.into(),
        },
        t0 + 5000 * MS,
    );
    let reply = Reply {
        output: SEQUENCE_OUTPUT.into(),
        verdict: Some(Verdict::Ready),
    };
    assert_eq!(take(&mut table).completes, [(id, Ok(reply))]);
}

#[test]
fn a_cancel_answers_a_queued_or_in_flight_command_once_with_cancelled() {
    let t0 = Instant::now();
    let mut table = table(t0);
    let deadline = t0 + 20_000 * MS;
    let first = table.submit(NODE, "echo c0".into(), Expect::Output, deadline, t0);
    let second = table.submit(NODE, "echo c1".into(), Expect::Output, deadline, t0);
    let third = table.submit(NODE, "echo c2".into(), Expect::Output, deadline, t0);
    assert_eq!(table.node(NODE).map(|n| n.queued), Some(2));
    let _ = take(&mut table);

    // Queued: answered at once, and gone from the queue.
    table.cancel(NODE, second, t0);
    assert_eq!(
        take(&mut table).completes,
        [(second, Err(Failure::Cancelled))]
    );
    assert_eq!(table.node(NODE).map(|n| n.queued), Some(1));
    // In flight: answered the same way (the next command waits for a marker).
    table.cancel(NODE, first, t0);
    assert_eq!(
        take(&mut table).completes,
        [(first, Err(Failure::Cancelled))]
    );
    // Cancelling again, or a command of no node, answers nothing more.
    table.cancel(NODE, first, t0);
    table.cancel(NODE, second, t0);
    table.cancel(SocketAddr::new(NODE.ip(), 1), third, t0);
    assert!(take(&mut table).completes.is_empty());
    // The one left is still answered at its deadline, once.
    let (_, completes) = run_timer(&mut table, deadline);
    assert_eq!(completes, [(third, Err(Failure::Timeout))]);
    table.shutdown();
    assert!(take(&mut table).completes.is_empty());
}

#[test]
fn a_cancel_after_the_answer_answers_nothing_more() {
    let t0 = Instant::now();
    let mut table = table(t0);
    let id = table.submit(NODE, "echo c0".into(), Expect::Output, t0 + 1000 * MS, t0);
    let (_, completes) = run_timer(&mut table, t0 + 1000 * MS);
    assert_eq!(completes, [(id, Err(Failure::Timeout))]);
    table.cancel(NODE, id, t0 + 1000 * MS);
    assert!(take(&mut table).completes.is_empty());
}
