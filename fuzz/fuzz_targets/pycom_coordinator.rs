//! pycom-proto's coordinator node table (`NodeTable`, the sans-IO state machine behind every
//! `Coordinator`), driven by a script of operations against simulated LA4 nodes.
//!
//! Input: a sequence of operations, each an opcode byte and its argument bytes: manage or stop
//! managing a node, submit a command (`echo c<N>`, some with a `boardiocli` call, to be answered
//! with its output or with boardio's verdict too), cancel one, report how handing over the oldest
//! request ended (delivered, not delivered, unknown), let a node answer the oldest command it has
//! received, send a boardio verdict, a heartbeat probe, a unit-info event, an event from another
//! coordinator, or any bytes decoded by pycom-proto's own `wire::decode`, and let time pass. The
//! table is small (3 nodes besides those managed or commanded) so its eviction is reached.
//!
//! The simulated nodes are honest unless they sent an event made of fuzzed bytes: an honest node
//! answers every command it received, in order, with that command's own output (`c<N>` for
//! `echo c<N>`, the token for a marker), possibly late, possibly never; and boardio sends one
//! verdict for each of its `boardiocli` calls, in order, before or after the output, possibly
//! late, possibly never (an `ERROR` names its command: `BOARDIO_ERROR: c<N> rejected`). A
//! node's verdicts prove nothing once it sent one that no received command owed (a stray), or
//! one past the documented bound (verdicts carry no id): after its command's call ended, the
//! verdict wait from the end of the call if the call failed, else the verdict wait from the
//! output or the verdict settle from the command's first verdict, whichever ends first.
//!
//! Contract: every submitted command is answered exactly once (at the latest when the table
//! shuts down; one cancelled before its answer, queued or in flight, is answered `Cancelled` by
//! the cancel itself), after it was handed over if it succeeded, and never with an output other
//! than its own while its node is honest, however outputs are delayed, lost or duplicated by
//! loss of step; never with another command's verdict while its node's verdicts prove
//! something, however late within the bound that verdict comes; an `Output` command gets no
//! verdict; a command whose deadline passed is
//! answered by the next `handle_timeout`; after `handle_timeout(now)` the next timeout is later
//! than `now` (the shell never spins); one node's requests are handed over one at a time; every
//! request the table sends encodes and decodes back; another coordinator's event never creates
//! a node; the table holds at most its limit of nodes besides those managed or commanded;
//! nothing is sent after shutdown.
#![no_main]

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pycom_proto::coordinator::{
    CommandId, DEFAULT_VERDICT_SETTLE, DEFAULT_VERDICT_WAIT, Delivery, Effect, Event, Expect,
    Failure, NodeTable, PipelineTimings, Reply, RequestId, TableConfig,
};
use pycom_proto::message::{Body, Identity, Message, UnitInfo};
use pycom_proto::sequence::{BOARDIO_ERROR, BOARDIO_READY, Verdict};
use pycom_proto::wire::{self, Limits};

/// Nodes tracked on the listener's initiative: small, so a full table is reached.
const MAX_NODES: usize = 3;
/// The managed nodes' addresses (LA4 nodes listen on one port; the IP tells them apart).
const NODES: usize = 4;

fn node_addr(index: u8) -> SocketAddr {
    let last = index % NODES as u8 + 1;
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), 5000)
}

/// A sender the table did not know: anywhere in 10.0.1.0/24, any port.
fn stranger(ip: u8, port: u8) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 0, 1, ip)),
        5000 + u16::from(port),
    )
}

fn identity(node: SocketAddr, coordinator: bool) -> Identity {
    Identity::new(
        if coordinator { "coord" } else { "node" },
        "la4",
        node.ip().to_string(),
        node.port(),
        "1.0",
        coordinator,
    )
}

/// What an honest node prints for `command`.
fn honest_output(command: &str) -> String {
    let mut parts = command.split("; ");
    let mut output = String::new();
    if let Some(echo) = parts.next().and_then(|p| p.strip_prefix("echo ")) {
        output.push_str(echo);
        output.push('\n');
    }
    for part in parts {
        if let Some(sub) = part.strip_prefix("boardiocli ") {
            output.push_str(&format!("BOARDIO_CLI: Sent: \"{sub}\" to FIFO file\n"));
        }
    }
    output
}

#[derive(Debug)]
struct Submitted {
    node: SocketAddr,
    text: String,
    expect: Expect,
    deadline: Instant,
    sent: bool,
    /// Given up by its caller (`cancel`).
    cancelled: bool,
    answer: Option<Result<Reply, Failure>>,
    /// When it was answered.
    answered_at: Option<Instant>,
    /// When its node sent its output.
    output_at: Option<Instant>,
    /// When boardio sent its first verdict.
    first_verdict_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct NodeModel {
    /// Commands received and not answered yet, oldest first.
    received: VecDeque<String>,
    /// Sent an event of fuzzed bytes: its outputs prove nothing.
    dishonest: bool,
    /// Verdicts boardio owes the commands received: (command, how many), oldest first.
    owed_verdicts: VecDeque<(usize, usize)>,
    /// Sent a verdict no command owed, or one past the documented bound: its verdicts prove
    /// nothing.
    verdicts_unsure: bool,
}

struct Harness {
    table: NodeTable,
    now: Instant,
    commands: Vec<Submitted>,
    by_text: HashMap<String, usize>,
    /// Requests handed to the shell and not reported yet: (request, command text or None).
    unreported: VecDeque<(RequestId, Option<String>)>,
    nodes: HashMap<SocketAddr, NodeModel>,
    /// Nodes given to `add_node` or sent commands: never evicted.
    explicit: BTreeSet<SocketAddr>,
    shut_down: bool,
}

impl Harness {
    fn new() -> Self {
        let config = TableConfig {
            heartbeat_interval: Duration::from_secs(5),
            offline_after: Duration::from_secs(15),
            timings: PipelineTimings {
                resync_timeout: Duration::from_secs(2),
                verdict_settle: DEFAULT_VERDICT_SETTLE,
                verdict_wait: DEFAULT_VERDICT_WAIT,
            },
            manage_discovered: true,
            max_nodes: MAX_NODES,
        };
        let now = Instant::now();
        let me = identity(
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100)), 6000),
            true,
        );
        Self {
            table: NodeTable::new(config, me, now),
            now,
            commands: Vec::new(),
            by_text: HashMap::new(),
            unreported: VecDeque::new(),
            nodes: HashMap::new(),
            explicit: BTreeSet::new(),
            shut_down: false,
        }
    }

    fn submit(&mut self, node: SocketAddr, flags: u8, after: u8) {
        let n = self.commands.len();
        let mut text = format!("echo c{n}");
        if flags & 1 != 0 {
            text.push_str("; boardiocli uSeq");
        }
        if flags & 2 != 0 {
            text.push_str("; boardiocli runSeq");
        }
        let expect = if flags & 4 != 0 {
            Expect::Verdict
        } else {
            Expect::Output
        };
        let deadline = self.now + Duration::from_millis(u64::from(after) * 100);
        let id = self
            .table
            .submit(node, text.clone(), expect, deadline, self.now);
        assert_eq!(id, CommandId(n as u64), "command ids count up from 0");
        self.explicit.insert(node);
        self.by_text.insert(text.clone(), n);
        self.commands.push(Submitted {
            node,
            text,
            expect,
            deadline,
            sent: false,
            cancelled: false,
            answer: None,
            answered_at: None,
            output_at: None,
            first_verdict_at: None,
        });
    }

    fn report(&mut self, how: u8) {
        let Some((request, command)) = self.unreported.pop_front() else {
            return;
        };
        let delivery = match how % 4 {
            0 | 1 => Delivery::Delivered,
            2 => Delivery::NotDelivered,
            _ => Delivery::Unknown,
        };
        // Unknown: the node may have it after all.
        let received =
            delivery == Delivery::Delivered || (delivery == Delivery::Unknown && how & 4 != 0);
        if let Some(command) = command
            && received
        {
            let calls = honest_output(&command).matches("Sent:").count();
            let owner = self.by_text.get(&command).copied();
            let node = self.nodes.entry(request.node()).or_default();
            if let Some(n) = owner
                && calls > 0
            {
                node.owed_verdicts.push_back((n, calls));
            }
            node.received.push_back(command);
        }
        self.table.on_sent(request, delivery, self.now);
    }

    fn event(&mut self, node: SocketAddr, peer_port: u8, body: Body) {
        let peer = SocketAddr::new(node.ip(), 40000 + u16::from(peer_port));
        let message = Message::new(identity(node, false), body);
        self.table.on_message(peer, message, self.now);
    }

    /// The node answers the oldest command it received (or repeats nothing when it has none).
    fn answer(&mut self, node: SocketAddr, peer_port: u8) {
        let Some(command) = self
            .nodes
            .get_mut(&node)
            .and_then(|n| n.received.pop_front())
        else {
            return;
        };
        let output = honest_output(&command);
        if let Some(&n) = self.by_text.get(&command) {
            self.commands[n].output_at.get_or_insert(self.now);
        }
        self.event(node, peer_port, Body::Output { output });
    }

    /// Boardio's next verdict on `node`: for the oldest command owed one (an `ERROR` naming it
    /// when `error`), or a stray one when none is owed.
    fn verdict(&mut self, node: SocketAddr, peer_port: u8, error: bool) {
        let in_time = self
            .nodes
            .get(&node)
            .and_then(|model| model.owed_verdicts.front())
            .is_some_and(|&(n, _)| self.verdict_in_time(n));
        let model = self.nodes.entry(node).or_default();
        model.verdicts_unsure |= !in_time;
        let owner = model.owed_verdicts.front_mut().map(|(n, left)| {
            *left -= 1;
            (*n, *left == 0)
        });
        let message = match owner {
            Some((n, last)) => {
                if last {
                    model.owed_verdicts.pop_front();
                }
                self.commands[n].first_verdict_at.get_or_insert(self.now);
                if error {
                    format!("{BOARDIO_ERROR}: c{n} rejected")
                } else {
                    BOARDIO_READY.to_owned()
                }
            }
            None => {
                if error {
                    format!("{BOARDIO_ERROR}: sequence rejected")
                } else {
                    BOARDIO_READY.to_owned()
                }
            }
        };
        self.event(node, peer_port, Body::Message { message });
    }

    /// Whether a verdict of command `n` sent now is within the documented bound: its call not
    /// ended yet, or ended so recently that the table still waits for its verdicts.
    fn verdict_in_time(&self, n: usize) -> bool {
        let command = &self.commands[n];
        let Some(answered) = command.answered_at else {
            return true;
        };
        let until = match (&command.answer, command.output_at) {
            (Some(Ok(_)), Some(output)) => {
                let settle = command
                    .first_verdict_at
                    .map(|first| first + DEFAULT_VERDICT_SETTLE);
                [Some(output + DEFAULT_VERDICT_WAIT), settle]
                    .into_iter()
                    .flatten()
                    .min()
            }
            (Some(Err(_)), _) => Some(answered + DEFAULT_VERDICT_WAIT),
            _ => None,
        };
        until.is_some_and(|until| self.now < until)
    }

    fn fuzzed_event(&mut self, peer: SocketAddr, bytes: &[u8]) {
        let Ok(message) = wire::decode(bytes, &Limits::default()) else {
            return;
        };
        if !message.identity.coordinator {
            let node = SocketAddr::new(peer.ip(), message.identity.port);
            self.nodes.entry(node).or_default().dishonest = true;
        }
        let known_before = self.table.nodes().len();
        let coordinator = message.identity.coordinator;
        self.table.on_message(peer, message, self.now);
        if coordinator {
            assert_eq!(
                self.table.nodes().len(),
                known_before,
                "another coordinator's event created a node"
            );
        }
    }

    fn time_passes(&mut self, step: Duration) {
        self.now += step;
        self.timeout();
    }

    fn wait_for_next_deadline(&mut self) {
        if let Some(at) = self.table.poll_timeout() {
            self.now = self.now.max(at);
        }
        self.timeout();
    }

    fn timeout(&mut self) {
        self.table.handle_timeout(self.now);
        self.drain();
        if let Some(next) = self.table.poll_timeout() {
            assert!(
                next > self.now,
                "a timeout due now after handle_timeout: the shell would spin"
            );
        } else {
            assert!(self.shut_down, "no timeout before shutdown");
        }
        for (n, command) in self.commands.iter().enumerate() {
            if command.deadline <= self.now {
                assert!(
                    command.answer.is_some(),
                    "command {n} past its deadline unanswered"
                );
            }
        }
    }

    /// Takes every effect and checks it.
    fn drain(&mut self) {
        while let Some(effect) = self.table.poll_effect() {
            match effect {
                Effect::Send { request, message } => self.sent(request, message),
                Effect::Complete { command, result } => self.completed(command, result),
                Effect::Publish(event) => {
                    if let Event::NodeDiscovered { identity, .. } = &event {
                        assert!(!identity.coordinator);
                    }
                }
            }
        }
        let tracked = self.table.nodes().len();
        assert!(
            tracked <= MAX_NODES + self.explicit.len(),
            "{tracked} nodes tracked, limit {MAX_NODES} + {} managed or commanded",
            self.explicit.len()
        );
    }

    fn sent(&mut self, request: RequestId, message: Message) {
        assert!(!self.shut_down, "a request after shutdown");
        let bytes = wire::encode(&message, &Limits::default()).expect("a request encodes");
        let back = wire::decode(&bytes, &Limits::default()).expect("a request decodes");
        assert_eq!(back, message);
        assert!(message.identity.coordinator);
        if request.is_heartbeat() {
            assert!(matches!(message.body, Body::Heartbeat));
            self.unreported.push_back((request, None));
            return;
        }
        let Body::Cmd { command } = message.body else {
            panic!("a command request without a command: {message:?}");
        };
        assert!(
            !self
                .unreported
                .iter()
                .any(|(r, c)| r.node() == request.node() && c.is_some()),
            "two requests of one node's order handed over at once"
        );
        if let Some(&n) = self.by_text.get(&command) {
            let submitted = &mut self.commands[n];
            assert!(!submitted.sent, "command {n} handed over twice");
            assert_eq!(submitted.node, request.node());
            submitted.sent = true;
        } else {
            let token = command.strip_prefix("echo ").unwrap_or_default();
            assert!(
                pycom_proto::coordinator::marker_token(token).is_some(),
                "a request that is neither a command nor a marker: {command:?}"
            );
        }
        self.unreported.push_back((request, Some(command)));
    }

    fn completed(&mut self, command: CommandId, result: Result<Reply, Failure>) {
        let n = usize::try_from(command.0).expect("an id that fits");
        let submitted = self
            .commands
            .get_mut(n)
            .unwrap_or_else(|| panic!("an answer for command {n}, never submitted"));
        assert!(submitted.answer.is_none(), "command {n} answered twice");
        if submitted.cancelled {
            assert_eq!(
                result,
                Err(Failure::Cancelled),
                "command {n} answered after cancel"
            );
        }
        if let Ok(reply) = &result {
            assert!(
                submitted.sent,
                "command {n} answered before it was handed over"
            );
            let honest = self
                .nodes
                .get(&submitted.node)
                .is_none_or(|node| !node.dishonest);
            if honest {
                assert_eq!(
                    reply.output,
                    honest_output(&submitted.text),
                    "command {n} got another command's output"
                );
            }
            if submitted.expect == Expect::Output {
                assert_eq!(reply.verdict, None);
            }
            self.check_verdict_owner(n, reply);
        }
        let submitted = &mut self.commands[n];
        if self.shut_down {
            assert_eq!(result, Err(Failure::Shutdown));
        }
        submitted.answer = Some(result);
        submitted.answered_at = Some(self.now);
    }

    /// Command `n` is answered with `reply`: an `ERROR` that names another command is never its
    /// while its node's verdicts prove something.
    fn check_verdict_owner(&self, n: usize, reply: &Reply) {
        let Some(Verdict::Error(text)) = &reply.verdict else {
            return;
        };
        let Some(m) = text
            .strip_prefix(BOARDIO_ERROR)
            .and_then(|rest| rest.strip_prefix(": c"))
            .and_then(|rest| rest.split_once(' '))
            .and_then(|(m, _)| m.parse::<usize>().ok())
        else {
            return;
        };
        let sure = self
            .nodes
            .get(&self.commands[n].node)
            .is_none_or(|node| !node.dishonest && !node.verdicts_unsure);
        assert!(
            m == n || !sure,
            "command {n} answered with command {m}'s verdict: {text:?}"
        );
    }
}

/// The script's bytes, read front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn bytes(&mut self, len: usize) -> &'a [u8] {
        let (bytes, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        bytes
    }
}

fuzz_target!(|data: &[u8]| {
    let mut h = Harness::new();
    let mut input = Reader(data);
    while let Some(op) = input.byte() {
        let a = input.byte().unwrap_or(0);
        match op % 14 {
            0 => {
                h.table.add_node(node_addr(a), h.now);
                h.explicit.insert(node_addr(a));
            }
            1 => h.table.remove_node(node_addr(a)),
            2 | 3 => {
                let (flags, after) = (input.byte().unwrap_or(0), input.byte().unwrap_or(0));
                h.submit(node_addr(a), flags, after);
            }
            4 => {
                if !h.commands.is_empty() {
                    let n = usize::from(a) % h.commands.len();
                    let node = h.commands[n].node;
                    let open = h.commands[n].answer.is_none();
                    if open {
                        h.commands[n].cancelled = true;
                    }
                    h.table.cancel(node, CommandId(n as u64), h.now);
                    h.drain();
                    if open {
                        // Queued or in flight, the cancel itself answers it.
                        assert_eq!(
                            h.commands[n].answer,
                            Some(Err(Failure::Cancelled)),
                            "command {n} not answered by its cancel"
                        );
                    }
                }
            }
            5 | 6 => h.report(a),
            7 | 8 => h.answer(node_addr(a), a),
            9 => h.verdict(node_addr(a), a, a & 0x80 != 0),
            10 => {
                // A heartbeat probe from a managed node or from a stranger.
                let node = if a & 0x80 == 0 {
                    node_addr(a)
                } else {
                    stranger(a, input.byte().unwrap_or(0))
                };
                h.event(node, a, Body::Heartbeat);
            }
            11 => {
                let len = usize::from(input.byte().unwrap_or(0));
                let bytes = input.bytes(len);
                let peer = if a & 0x80 == 0 {
                    node_addr(a)
                } else {
                    stranger(a, a)
                };
                h.fuzzed_event(peer, bytes);
            }
            12 => {
                if a & 1 == 0 {
                    h.time_passes(Duration::from_millis(u64::from(a).pow(2) * 4));
                } else {
                    h.wait_for_next_deadline();
                }
            }
            _ => {
                let info = UnitInfo {
                    wiringpi_version: "2.52".into(),
                    boardio_version: "1.0".into(),
                    firmware_version: "1.0".into(),
                    unit_type: "LA4".into(),
                    mcu_type: "rp2040".into(),
                    mac_address: "b8:27:eb:00:00:01".into(),
                };
                if a & 1 == 0 {
                    h.event(node_addr(a), a, Body::UnitInfo(info));
                } else {
                    // Another coordinator's request reaching this one's listener.
                    let before = h.table.nodes().len();
                    let message = Message::new(identity(stranger(a, a), true), Body::Heartbeat);
                    h.table.on_message(stranger(a, a), message, h.now);
                    assert_eq!(h.table.nodes().len(), before);
                }
            }
        }
        h.drain();
    }
    // Shutdown answers everything still open; every command has exactly one answer.
    h.shut_down = true;
    h.table.shutdown();
    h.drain();
    for (n, command) in h.commands.iter().enumerate() {
        assert!(command.answer.is_some(), "command {n} never answered");
    }
    h.table.handle_timeout(h.now);
    assert_eq!(h.table.poll_timeout(), None);
    h.drain();
});
