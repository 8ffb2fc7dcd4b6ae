//! The coordinator's sans-IO [`NodeTable`] against a model node and a faulty network: no
//! sockets, no clock. Commands, lost/late/reordered/duplicated events and timeouts in any
//! interleaving; no command ever completes with another command's output or verdict, and after
//! the faults stop the next command gets its own answer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use pycom_proto::coordinator::{
    CommandId, Delivery, Effect, Event, Expect, Failure, NodeTable, PipelineTimings, Reply,
    RequestId, TableConfig, marker_token,
};
use pycom_proto::{Body, Identity, Message, Verdict};

const NODE: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5000);
const MS: Duration = Duration::from_millis(1);

fn config() -> TableConfig {
    TableConfig {
        heartbeat_interval: Duration::from_secs(3600),
        offline_after: Duration::from_secs(3 * 3600),
        timings: PipelineTimings {
            resync_timeout: 1000 * MS,
            verdict_settle: 250 * MS,
            verdict_wait: 2000 * MS,
        },
        manage_discovered: true,
        max_nodes: 16,
    }
}

/// What a test command is, so that its answer can be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `echo cK`: output `cK\n`.
    Echo,
    /// A sequence (command text `seq K ok|err`) whose verdict is awaited.
    Confirmed { fails: bool },
    /// A sequence answered at its output.
    Unconfirmed { fails: bool },
}

/// One event on its way from the node, with the test command it answers (`None` for markers).
#[derive(Debug, Clone)]
struct InFlight {
    message: Message,
    origin: Option<u32>,
}

/// A model LA4 node behind a faulty network, and the table under test.
struct World {
    table: NodeTable,
    now: Instant,
    /// Requests the table asked for, not yet read by the node.
    inbox: VecDeque<(RequestId, String)>,
    /// Events from the node, in the order it sent them.
    net: VecDeque<InFlight>,
    /// Copies of events, delivered the next time the node has nothing in flight.
    dups: Vec<InFlight>,
    /// Whether boardio reports loading (`uSeq`) too, or only running.
    reports_load: bool,
    commands: HashMap<CommandId, (u32, Kind)>,
    results: HashMap<CommandId, Result<Reply, Failure>>,
    /// Test commands whose `READY` reached the table.
    ready_seen: HashSet<u32>,
    /// Test commands whose `ERROR` reached the table.
    error_seen: HashSet<u32>,
    next: u32,
    resyncs: usize,
}

fn node_identity() -> Identity {
    Identity::new(
        "81639cd4",
        "rigsters-controller",
        "127.0.0.1",
        NODE.port(),
        "0.14.0",
        false,
    )
}

impl World {
    fn new(reports_load: bool) -> Self {
        let now = Instant::now();
        let me = Identity::new("c0ffee00", "tests", "127.0.0.1", 5001, "0.1.0", true);
        Self {
            table: NodeTable::new(config(), me, now),
            now,
            inbox: VecDeque::new(),
            net: VecDeque::new(),
            dups: Vec::new(),
            reports_load,
            commands: HashMap::new(),
            results: HashMap::new(),
            ready_seen: HashSet::new(),
            error_seen: HashSet::new(),
            next: 0,
            resyncs: 0,
        }
    }

    fn submit(&mut self, kind: Kind, timeout: Duration) -> CommandId {
        let k = self.next;
        self.next += 1;
        let (text, expect) = match kind {
            Kind::Echo => (format!("echo c{k}"), Expect::Output),
            Kind::Confirmed { fails } => (seq_command(k, fails), Expect::Verdict),
            Kind::Unconfirmed { fails } => (seq_command(k, fails), Expect::Output),
        };
        let id = self
            .table
            .submit(NODE, text, expect, self.now + timeout, self.now);
        self.commands.insert(id, (k, kind));
        self.drain();
        id
    }

    /// Carries out the table's effects, checking every answer.
    fn drain(&mut self) {
        while let Some(effect) = self.table.poll_effect() {
            match effect {
                Effect::Send { request, message } => match message.body {
                    Body::Cmd { command } => self.inbox.push_back((request, command)),
                    // Heartbeats reach the node and change nothing here.
                    _ => self.table.on_sent(request, Delivery::Delivered, self.now),
                },
                Effect::Complete { command, result } => self.check(command, result),
                Effect::Publish(Event::Resync { .. }) => self.resyncs += 1,
                Effect::Publish(_) => {}
            }
        }
        let idle = self
            .table
            .node(NODE)
            .is_none_or(|n| !n.busy && n.queued == 0);
        if idle && !self.dups.is_empty() {
            for dup in std::mem::take(&mut self.dups) {
                self.deliver(dup);
            }
        }
    }

    fn check(&mut self, command: CommandId, result: Result<Reply, Failure>) {
        let Some(&(k, kind)) = self.commands.get(&command) else {
            panic!("answer for an unknown command {command:?}");
        };
        assert!(
            !self.results.contains_key(&command),
            "command {k} answered twice"
        );
        if let Ok(reply) = &result {
            match kind {
                Kind::Echo => assert_eq!(reply.output, format!("c{k}\n"), "command {k}"),
                Kind::Confirmed { .. } | Kind::Unconfirmed { .. } => {
                    assert!(
                        reply.output.ends_with(&format!("seq {k}\n")),
                        "sequence {k} got {:?}",
                        reply.output
                    );
                }
            }
            match (&reply.verdict, kind) {
                (None, _) => {}
                (Some(_), Kind::Echo | Kind::Unconfirmed { .. }) => {
                    panic!("a verdict for a command that did not ask for one")
                }
                (Some(Verdict::Error(text)), Kind::Confirmed { .. }) => {
                    assert_eq!(*text, format!("BOARDIO_ERROR: seq {k}"), "sequence {k}");
                }
                (Some(Verdict::Ready), Kind::Confirmed { .. }) => {
                    assert!(
                        self.ready_seen.contains(&k),
                        "sequence {k} reported READY without a READY of its own"
                    );
                    assert!(
                        !self.error_seen.contains(&k),
                        "sequence {k} reported READY although its ERROR came"
                    );
                }
            }
            if let (Kind::Confirmed { .. }, None) = (kind, &reply.verdict) {
                panic!("sequence {k} reached boardio but got no verdict");
            }
        }
        self.results.insert(command, result);
    }

    /// The node reads the oldest request and answers it (events into the network).
    fn node_reads(&mut self, delivery: Delivery) {
        let Some((request, command)) = self.inbox.pop_front() else {
            return;
        };
        self.table.on_sent(request, delivery, self.now);
        if delivery != Delivery::NotDelivered {
            self.node_runs(&command);
        }
        self.drain();
    }

    fn node_runs(&mut self, command: &str) {
        let me = node_identity();
        if let Some(text) = command.strip_prefix("echo ") {
            let origin = text.strip_prefix('c').and_then(|k| k.parse().ok());
            assert!(origin.is_some() || marker_token(text).is_some(), "{text}");
            self.net.push_back(InFlight {
                message: Message::output(me, format!("{text}\n")),
                origin,
            });
            return;
        }
        let mut words = command.split(' ').skip(1);
        let k: u32 = words.next().and_then(|k| k.parse().ok()).unwrap();
        let fails = words.next() == Some("err");
        let output = format!(
            "BOARDIO_CLI: Sent: \"uSeq\" to FIFO file\nBOARDIO_CLI: Sent: \"runSeq\" to FIFO file\nseq {k}\n"
        );
        let mut events = vec![Message::output(me.clone(), output)];
        if self.reports_load {
            events.push(Message::text(me.clone(), "BOARDIO_READY"));
        }
        let run = if fails {
            format!("BOARDIO_ERROR: seq {k}")
        } else {
            "BOARDIO_READY".to_owned()
        };
        events.push(Message::text(me, run));
        for message in events {
            self.net.push_back(InFlight {
                message,
                origin: Some(k),
            });
        }
    }

    fn deliver(&mut self, event: InFlight) {
        if let (Body::Message { message }, Some(k)) = (&event.message.body, event.origin) {
            if message == "BOARDIO_READY" {
                self.ready_seen.insert(k);
            } else {
                self.error_seen.insert(k);
            }
        }
        let peer = SocketAddr::new(NODE.ip(), 40000);
        self.table.on_message(peer, event.message, self.now);
        self.drain();
    }

    fn deliver_next(&mut self) {
        if let Some(event) = self.net.pop_front() {
            self.deliver(event);
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.table.handle_timeout(self.now);
        self.drain();
    }

    fn has_verdict_in_flight(&self) -> bool {
        self.net
            .iter()
            .any(|e| matches!(e.message.body, Body::Message { .. }))
    }

    /// Runs without faults until nothing is pending (bounded).
    fn settle(&mut self) {
        for _ in 0..10_000 {
            if !self.inbox.is_empty() {
                self.node_reads(Delivery::Delivered);
            } else if !self.net.is_empty() {
                self.deliver_next();
            } else if let Some(at) = self.table.poll_timeout().filter(|_| self.pending()) {
                self.advance(at.saturating_duration_since(self.now).max(MS));
            } else {
                return;
            }
        }
        panic!("the table did not settle");
    }

    fn pending(&self) -> bool {
        self.commands
            .keys()
            .any(|id| !self.results.contains_key(id))
            || self.table.node(NODE).is_some_and(|n| n.busy)
    }

    fn result(&self, id: CommandId) -> &Result<Reply, Failure> {
        self.results.get(&id).expect("not answered")
    }
}

fn seq_command(k: u32, fails: bool) -> String {
    format!("seq {k} {}", if fails { "err" } else { "ok" })
}

#[test]
fn a_lost_output_costs_one_command_and_the_next_ten_get_their_own() {
    let mut w = World::new(false);
    let lost = w.submit(Kind::Echo, 500 * MS);
    w.node_reads(Delivery::Delivered);
    w.net.clear(); // the output is lost
    let next: Vec<CommandId> = (0..10).map(|_| w.submit(Kind::Echo, 5000 * MS)).collect();
    w.advance(500 * MS);
    assert_eq!(w.result(lost), &Err(Failure::Timeout));
    assert_eq!(w.resyncs, 1);
    w.settle();
    for id in next {
        assert!(w.result(id).is_ok(), "{:?}", w.result(id));
    }
}

#[test]
fn a_late_output_is_discarded_while_the_marker_is_awaited() {
    let mut w = World::new(false);
    let first = w.submit(Kind::Echo, 100 * MS);
    w.node_reads(Delivery::Delivered);
    w.advance(100 * MS);
    assert_eq!(w.result(first), &Err(Failure::Timeout));
    let second = w.submit(Kind::Echo, 5000 * MS);
    // The marker is handed over before the second command; the late output comes first.
    w.node_reads(Delivery::Delivered);
    w.deliver_next();
    assert!(!w.results.contains_key(&second));
    w.settle();
    assert_eq!(w.result(second).as_ref().unwrap().output, "c1\n");
}

#[test]
fn a_verdict_before_the_output_still_confirms_the_sequence() {
    let mut w = World::new(false);
    let id = w.submit(Kind::Confirmed { fails: false }, 5000 * MS);
    w.node_reads(Delivery::Delivered);
    w.net.swap(0, 1);
    w.deliver_next();
    w.deliver_next();
    // One READY for two boardio commands: settled after the grace.
    w.advance(250 * MS);
    assert_eq!(w.result(id).as_ref().unwrap().verdict, Some(Verdict::Ready));
}

#[test]
fn a_ready_for_loading_never_hides_an_error_for_running() {
    let mut w = World::new(true);
    let id = w.submit(Kind::Confirmed { fails: true }, 5000 * MS);
    w.node_reads(Delivery::Delivered);
    w.deliver_next(); // output
    w.deliver_next(); // READY (uSeq)
    assert!(
        !w.results.contains_key(&id),
        "decided before runSeq's verdict"
    );
    w.deliver_next(); // ERROR (runSeq)
    assert_eq!(
        w.result(id).as_ref().unwrap().verdict,
        Some(Verdict::Error("BOARDIO_ERROR: seq 0".into()))
    );
}

#[test]
fn two_readies_for_two_boardio_commands_decide_at_once() {
    let mut w = World::new(true);
    let id = w.submit(Kind::Confirmed { fails: false }, 5000 * MS);
    w.node_reads(Delivery::Delivered);
    for _ in 0..3 {
        w.deliver_next();
    }
    assert_eq!(w.result(id).as_ref().unwrap().verdict, Some(Verdict::Ready));
}

#[test]
fn the_verdicts_of_a_plain_command_are_not_taken_for_the_next_sequences() {
    let mut w = World::new(false);
    let plain = w.submit(Kind::Unconfirmed { fails: true }, 5000 * MS);
    let confirmed = w.submit(Kind::Confirmed { fails: false }, 5000 * MS);
    w.node_reads(Delivery::Delivered);
    w.deliver_next(); // output: the plain command is answered at once
    assert!(w.result(plain).is_ok());
    assert!(
        w.inbox.is_empty(),
        "the sequence went before boardio's verdict"
    );
    w.settle();
    assert_eq!(
        w.result(confirmed).as_ref().unwrap().verdict,
        Some(Verdict::Ready)
    );
}

#[test]
fn an_output_nobody_waits_for_puts_the_node_out_of_step() {
    let mut w = World::new(false);
    let id = w.submit(Kind::Echo, 5000 * MS);
    w.node_reads(Delivery::Delivered);
    let copy = w.net.front().cloned().unwrap();
    w.deliver_next();
    assert!(w.result(id).is_ok());
    w.deliver(copy);
    assert!(!w.table.node(NODE).unwrap().in_step);
    let next = w.submit(Kind::Echo, 5000 * MS);
    assert_eq!(w.resyncs, 1);
    w.settle();
    assert_eq!(w.result(next).as_ref().unwrap().output, "c1\n");
}

#[test]
fn commands_to_a_node_that_never_answers_do_not_pile_up() {
    let mut w = World::new(false);
    for _ in 0..50 {
        w.submit(Kind::Echo, 30 * MS);
        w.node_reads(Delivery::Delivered);
        w.net.clear();
        w.advance(1000 * MS);
    }
    assert_eq!(w.results.len(), 50);
    assert_eq!(w.table.node(NODE).unwrap().queued, 0);
}

#[test]
fn a_command_that_never_reached_the_node_needs_no_resync() {
    let mut w = World::new(false);
    let id = w.submit(Kind::Echo, 5000 * MS);
    w.node_reads(Delivery::NotDelivered);
    assert_eq!(w.result(id), &Err(Failure::NotDelivered));
    assert!(w.table.node(NODE).unwrap().in_step);
    assert_eq!(w.resyncs, 0);
}

#[test]
fn a_node_gone_while_out_of_step_fails_each_command_once_without_retrying() {
    let mut w = World::new(false);
    let lost = w.submit(Kind::Echo, 100 * MS);
    w.node_reads(Delivery::Delivered);
    w.net.clear();
    w.advance(100 * MS);
    assert_eq!(w.result(lost), &Err(Failure::Timeout));
    // The eager marker finds the node gone.
    w.node_reads(Delivery::NotDelivered);
    let next = w.submit(Kind::Echo, 5000 * MS);
    let after = w.submit(Kind::Echo, 5000 * MS);
    // One marker for `next`, which fails with it; then one for `after`.
    w.node_reads(Delivery::NotDelivered);
    assert_eq!(w.result(next), &Err(Failure::NotDelivered));
    assert!(!w.results.contains_key(&after));
    w.node_reads(Delivery::NotDelivered);
    assert_eq!(w.result(after), &Err(Failure::NotDelivered));
    assert!(w.inbox.is_empty(), "nothing more is tried");
}

#[test]
fn a_cancelled_command_is_answered_by_no_later_output() {
    let mut w = World::new(false);
    let cancelled = w.submit(Kind::Echo, 5000 * MS);
    w.node_reads(Delivery::Delivered);
    w.table.cancel(NODE, cancelled, w.now);
    w.drain();
    assert_eq!(w.result(cancelled), &Err(Failure::Cancelled));
    let next = w.submit(Kind::Echo, 5000 * MS);
    w.settle();
    assert_eq!(w.result(next).as_ref().unwrap().output, "c1\n");
}

/// What the test does next.
#[derive(Debug, Clone)]
enum Action {
    Submit { kind: Kind, timeout_ms: u64 },
    NodeReads { delivery: Delivery },
    Deliver,
    Lose,
    Swap,
    Duplicate,
    Advance { ms: u64 },
}

fn action() -> impl Strategy<Value = Action> {
    let kind = prop_oneof![
        Just(Kind::Echo),
        any::<bool>().prop_map(|fails| Kind::Confirmed { fails }),
        any::<bool>().prop_map(|fails| Kind::Unconfirmed { fails }),
    ];
    let delivery = prop_oneof![
        8 => Just(Delivery::Delivered),
        1 => Just(Delivery::NotDelivered),
        1 => Just(Delivery::Unknown),
    ];
    prop_oneof![
        3 => (kind, 50u64..3000).prop_map(|(kind, timeout_ms)| Action::Submit { kind, timeout_ms }),
        3 => delivery.prop_map(|delivery| Action::NodeReads { delivery }),
        6 => Just(Action::Deliver),
        1 => Just(Action::Lose),
        1 => Just(Action::Swap),
        1 => Just(Action::Duplicate),
        2 => (1u64..3000).prop_map(|ms| Action::Advance { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_command_ever_completes_with_another_commands_answer(
        reports_load in any::<bool>(),
        actions in proptest::collection::vec(action(), 1..120),
    ) {
        let mut w = World::new(reports_load);
        for action in actions {
            match action {
                Action::Submit { kind, timeout_ms } => {
                    w.submit(kind, Duration::from_millis(timeout_ms));
                }
                Action::NodeReads { delivery } => w.node_reads(delivery),
                Action::Deliver => w.deliver_next(),
                Action::Lose => {
                    w.net.pop_front();
                }
                Action::Swap => {
                    // Events of one command, in either order.
                    if w.net.len() >= 2 && w.net[0].origin.is_some() && w.net[0].origin == w.net[1].origin {
                        w.net.swap(0, 1);
                    }
                }
                Action::Duplicate => {
                    if let Some(front) = w.net.front().cloned() {
                        w.dups.push(front);
                    }
                }
                // boardio's verdicts are never later than the verdict wait (see the
                // coordinator's docs); outputs may be late by any amount.
                Action::Advance { ms } if !w.has_verdict_in_flight() => {
                    w.advance(Duration::from_millis(ms));
                }
                Action::Advance { .. } => w.deliver_next(),
            }
        }
        // The faults stop: whatever happened, the table gets back in step, and the very next
        // command gets its own output.
        w.dups.clear();
        w.settle();
        let after = w.submit(Kind::Echo, Duration::from_secs(60));
        w.settle();
        let answer = w.result(after);
        prop_assert!(answer.is_ok(), "{:?}", answer);
    }
}
