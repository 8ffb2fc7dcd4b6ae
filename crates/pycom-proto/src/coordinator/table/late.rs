//! Late verdicts: boardio's verdict for a command whose call already ended (timed out, or
//! answered at its output) is never credited to the next command of the node.

use std::time::Instant;

use crate::coordinator::effects::{CommandId, Delivery, Effect, Expect, Failure, Reply, RequestId};
use crate::message::Body;
use crate::sequence::{BOARDIO_READY, Verdict};

use super::NodeTable;
use super::tests::{Answer, MS, NODE, SEQUENCE_OUTPUT, node_says, table};

/// The late verdict of the first command: an `ERROR` that names it, so that it is told apart.
const LATE_ERROR: &str = "BOARDIO_ERROR: c0 rejected";
/// The second command's output: one boardio command sent, so one verdict is due.
const SECOND_OUTPUT: &str = "c1\nBOARDIO_CLI: Sent: \"uSeq\" to FIFO file\n";

/// Command hand-overs (with their lines) and answers since the last call.
fn poll(table: &mut NodeTable) -> (Vec<(RequestId, String)>, Vec<Answer>) {
    let (mut sends, mut completes) = (Vec::new(), Vec::new());
    while let Some(effect) = table.poll_effect() {
        match effect {
            Effect::Send { request, message } if !request.is_heartbeat() => {
                if let Body::Cmd { command } = message.body {
                    sends.push((request, command));
                }
            }
            Effect::Complete { command, result } => completes.push((command, result)),
            _ => {}
        }
    }
    (sends, completes)
}

/// Reports every hand-over in `sends` delivered; returns their lines.
fn deliver(table: &mut NodeTable, sends: Vec<(RequestId, String)>, now: Instant) -> Vec<String> {
    sends
        .into_iter()
        .map(|(request, command)| {
            table.on_sent(request, Delivery::Delivered, now);
            command
        })
        .collect()
}

/// The timer fires at `at`, the deadline of `first`, which is answered `Timeout`; returns the
/// hand-overs that followed.
fn timed_out(table: &mut NodeTable, first: CommandId, at: Instant) -> Vec<(RequestId, String)> {
    assert_eq!(table.poll_timeout(), Some(at));
    table.handle_timeout(at);
    let (sends, completes) = poll(table);
    assert_eq!(completes, [(first, Err(Failure::Timeout))]);
    sends
}

fn says(table: &mut NodeTable, message: &str, now: Instant) {
    node_says(
        table,
        Body::Message {
            message: message.into(),
        },
        now,
    );
}

fn outputs(table: &mut NodeTable, output: &str, now: Instant) {
    node_says(
        table,
        Body::Output {
            output: output.into(),
        },
        now,
    );
}

/// A confirmed sequence `c1` submitted at `t0`, answered by nothing yet.
fn submit_second(table: &mut NodeTable, t0: Instant) -> CommandId {
    table.submit(
        NODE,
        "echo c1; boardiocli uSeq".into(),
        Expect::Verdict,
        t0 + 20_000 * MS,
        t0,
    )
}

/// The second sequence, handed over at `now`, gets its output and its own `READY`: the answer
/// that comes must be exactly that.
fn second_answered_with_its_own_verdict(table: &mut NodeTable, now: Instant) -> Vec<Answer> {
    let (sends, mut completes) = poll(table);
    assert_eq!(deliver(table, sends, now), ["echo c1; boardiocli uSeq"]);
    outputs(table, SECOND_OUTPUT, now + 100 * MS);
    completes.extend(poll(table).1);
    says(table, BOARDIO_READY, now + 200 * MS);
    completes.extend(poll(table).1);
    completes
}

fn own_ready() -> Result<Reply, Failure> {
    Ok(Reply {
        output: SECOND_OUTPUT.into(),
        verdict: Some(Verdict::Ready),
    })
}

#[test]
fn a_sequences_verdict_after_its_call_timed_out_is_not_the_next_sequences() {
    let t0 = Instant::now();
    let mut table = table(t0);
    let first = table.submit(
        NODE,
        "echo c0; boardiocli uSeq".into(),
        Expect::Verdict,
        t0 + 3000 * MS,
        t0,
    );
    let second = submit_second(&mut table, t0);
    let (sends, _) = poll(&mut table);
    deliver(&mut table, sends, t0);
    outputs(&mut table, SEQUENCE_OUTPUT, t0 + 100 * MS);
    // The call's deadline passes with the output but no verdict.
    let sends = timed_out(&mut table, first, t0 + 3000 * MS);
    // The first sequence's verdict comes late, whether or not the second one went meanwhile
    // (it must not have: see the next test)...
    let early = deliver(&mut table, sends, t0 + 3000 * MS);
    says(&mut table, LATE_ERROR, t0 + 3500 * MS);
    // ...and the second one is answered with its own verdict, never with that one.
    let mut completes = Vec::new();
    if early.is_empty() {
        completes = second_answered_with_its_own_verdict(&mut table, t0 + 3500 * MS);
    } else {
        outputs(&mut table, SECOND_OUTPUT, t0 + 3600 * MS);
        completes.extend(poll(&mut table).1);
        says(&mut table, BOARDIO_READY, t0 + 3700 * MS);
        completes.extend(poll(&mut table).1);
    }
    assert_eq!(completes, [(second, own_ready())]);
}

#[test]
fn an_owed_verdict_that_never_comes_holds_the_next_command_for_the_verdict_wait_only() {
    let t0 = Instant::now();
    let mut table = table(t0);
    let first = table.submit(
        NODE,
        "echo c0; boardiocli uSeq".into(),
        Expect::Verdict,
        t0 + 3000 * MS,
        t0,
    );
    let second = submit_second(&mut table, t0);
    let (sends, _) = poll(&mut table);
    deliver(&mut table, sends, t0);
    outputs(&mut table, SEQUENCE_OUTPUT, t0 + 100 * MS);
    let sends = timed_out(&mut table, first, t0 + 3000 * MS);
    assert!(sends.is_empty(), "handed over while a verdict is owed");
    // The verdict wait (2 s) counts from the timeout; the node is not held longer.
    assert_eq!(table.poll_timeout(), Some(t0 + 5000 * MS));
    table.handle_timeout(t0 + 5000 * MS);
    let completes = second_answered_with_its_own_verdict(&mut table, t0 + 5000 * MS);
    assert_eq!(completes, [(second, own_ready())]);
}

#[test]
fn a_sequence_that_timed_out_without_its_output_owes_its_verdict_past_the_marker() {
    let t0 = Instant::now();
    let mut table = table(t0);
    let first = table.submit(
        NODE,
        "echo c0; boardiocli uSeq".into(),
        Expect::Verdict,
        t0 + 3000 * MS,
        t0,
    );
    let second = submit_second(&mut table, t0);
    let (sends, _) = poll(&mut table);
    deliver(&mut table, sends, t0);
    let sends = timed_out(&mut table, first, t0 + 3000 * MS);
    // The marker goes at once and comes back: the line is in step for outputs...
    let marker = deliver(&mut table, sends, t0 + 3000 * MS);
    assert_eq!(marker.len(), 1);
    let token = marker[0].strip_prefix("echo ").unwrap_or_default();
    outputs(&mut table, &format!("{token}\n"), t0 + 3100 * MS);
    assert!(table.node(NODE).is_some_and(|n| n.in_step));
    // ...but not for verdicts: how many the sequence sent is unknown, so every verdict within
    // the verdict wait is its own, and the next sequence goes when the wait ends.
    says(&mut table, LATE_ERROR, t0 + 3500 * MS);
    let (sends, _) = poll(&mut table);
    assert!(sends.is_empty(), "handed over while a verdict may be owed");
    assert_eq!(table.poll_timeout(), Some(t0 + 5000 * MS));
    table.handle_timeout(t0 + 5000 * MS);
    let completes = second_answered_with_its_own_verdict(&mut table, t0 + 5000 * MS);
    assert_eq!(completes, [(second, own_ready())]);
}

#[test]
fn a_plain_commands_verdict_within_the_verdict_wait_is_not_the_next_sequences() {
    let t0 = Instant::now();
    let mut table = table(t0);
    let first = table.submit(
        NODE,
        "echo c0; boardiocli uSeq".into(),
        Expect::Output,
        t0 + 3000 * MS,
        t0,
    );
    let second = submit_second(&mut table, t0);
    let (sends, _) = poll(&mut table);
    deliver(&mut table, sends, t0);
    // Answered at its output; its verdict is still awaited before the next command goes.
    outputs(&mut table, SEQUENCE_OUTPUT, t0 + 100 * MS);
    let (sends, completes) = poll(&mut table);
    let reply = Reply {
        output: SEQUENCE_OUTPUT.into(),
        verdict: None,
    };
    assert_eq!(completes, [(first, Ok(reply))]);
    assert!(sends.is_empty(), "handed over while a verdict is awaited");
    says(&mut table, LATE_ERROR, t0 + 1500 * MS);
    let completes = second_answered_with_its_own_verdict(&mut table, t0 + 1500 * MS);
    assert_eq!(completes, [(second, own_ready())]);
}

#[test]
fn a_command_that_cannot_reach_boardio_owes_no_verdict() {
    let t0 = Instant::now();
    let mut table = table(t0);
    let first = table.submit(NODE, "echo c0".into(), Expect::Output, t0 + 3000 * MS, t0);
    let second = submit_second(&mut table, t0);
    let (sends, _) = poll(&mut table);
    deliver(&mut table, sends, t0);
    let sends = timed_out(&mut table, first, t0 + 3000 * MS);
    // Only the marker stands between it and the next command.
    let marker = deliver(&mut table, sends, t0 + 3000 * MS);
    let token = marker[0].strip_prefix("echo ").unwrap_or_default();
    outputs(&mut table, &format!("{token}\n"), t0 + 3100 * MS);
    let completes = second_answered_with_its_own_verdict(&mut table, t0 + 3100 * MS);
    assert_eq!(completes, [(second, own_ready())]);
}

#[test]
fn a_cancelled_sequence_owes_its_verdict_too() {
    let t0 = Instant::now();
    let mut table = table(t0);
    let first = table.submit(
        NODE,
        "echo c0; boardiocli uSeq".into(),
        Expect::Verdict,
        t0 + 10_000 * MS,
        t0,
    );
    let second = submit_second(&mut table, t0);
    let (sends, _) = poll(&mut table);
    deliver(&mut table, sends, t0);
    outputs(&mut table, SEQUENCE_OUTPUT, t0 + 100 * MS);
    table.cancel(NODE, first, t0 + 200 * MS);
    let (sends, completes) = poll(&mut table);
    assert_eq!(completes, [(first, Err(Failure::Cancelled))]);
    assert!(sends.is_empty(), "handed over while a verdict is owed");
    says(&mut table, LATE_ERROR, t0 + 300 * MS);
    let completes = second_answered_with_its_own_verdict(&mut table, t0 + 300 * MS);
    assert_eq!(completes, [(second, own_ready())]);
}
