//! The LA4 simulator and the pycom coordinator under hostile peers (issue 16), over loopback:
//! each attack runs a few seconds while a probe coordinator sends a command every 250 ms and
//! must have each answer within 1 s.
//!
//! - more than 1 024 distinct coordinators: a new one is still tracked and gets `unit_info`;
//! - silent connections to a coordinator's event listener do not hold up the events behind them;
//! - listeners that never accept cannot take every event destination of the node from a new
//!   coordinator.

use std::net::SocketAddr;
use std::time::Duration;

use la4_sim::{La4Sim, La4SimBuilder, state::MAX_COORDINATORS};
use labwire_tests::{TEST_DEADLINE, eventually};
use pycom_proto::coordinator::Command;
use pycom_proto::transport::send_message;
use pycom_proto::{Coordinator, Event, Identity, Limits, Message};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How often the probe calls, and how soon each answer must come.
const PROBE_EVERY: Duration = Duration::from_millis(250);
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A node on a free loopback port, booted at once.
fn sim() -> La4SimBuilder {
    La4Sim::builder().boot_time(Duration::ZERO)
}

/// A coordinator on a free loopback port, with an id of its own.
async fn coordinator(id: &str) -> Coordinator {
    Coordinator::builder(
        loopback(),
        Identity::new(id, "probe", "127.0.0.1", 0, "0.1.0", true),
    )
    .start()
    .await
    .unwrap()
}

/// A made-up coordinator `n`, whose events go to `port`.
fn attacker(n: usize, port: u16) -> Identity {
    Identity::new(
        format!("a{n:07x}"),
        "attacker",
        "127.0.0.1",
        port,
        "0.1.0",
        true,
    )
}

/// Calls `echo probe-N` on `node` every [`PROBE_EVERY`], `rounds` times; each answer must come
/// within [`ANSWER_WITHIN`]. Resolves with the slowest answer, or what went wrong.
fn probe(coordinator: Coordinator, node: SocketAddr, rounds: usize) -> JoinHandle<Duration> {
    tokio::spawn(async move {
        let mut slowest = Duration::ZERO;
        let mut tick = tokio::time::interval(PROBE_EVERY);
        for round in 0..rounds {
            tick.tick().await;
            let started = tokio::time::Instant::now();
            let command = Command::new(format!("echo probe-{round}"));
            let answer = coordinator
                .call_with_timeout(node, command, ANSWER_WITHIN)
                .await
                .unwrap_or_else(|e| panic!("probe {round} not answered within 1 s: {e}"));
            assert_eq!(answer.output, format!("probe-{round}\n"));
            slowest = slowest.max(started.elapsed());
        }
        slowest
    })
}

/// Waits for the probe, failing the test if it failed.
async fn probe_passed(probe: JoinHandle<Duration>) {
    let slowest = tokio::time::timeout(TEST_DEADLINE * 2, probe)
        .await
        .expect("the probe finished")
        .expect("every probe answered within 1 s");
    assert!(slowest < ANSWER_WITHIN, "{slowest:?}");
}

/// Sends `message` to `node` as a request and waits for the node to read it.
async fn request(node: SocketAddr, message: Message) {
    send_message(node, &message, &Limits::default(), TEST_DEADLINE, true)
        .await
        .unwrap();
}

/// Sends every message of `messages` to `node`, from `tasks` tasks at once.
async fn flood(node: SocketAddr, messages: Vec<Message>, tasks: usize) {
    let mut senders = Vec::new();
    let per_task = messages.len().div_ceil(tasks);
    let mut messages = messages.into_iter();
    for _ in 0..tasks {
        let batch: Vec<Message> = messages.by_ref().take(per_task).collect();
        senders.push(tokio::spawn(async move {
            for message in batch {
                request(node, message).await;
            }
        }));
    }
    for sender in senders {
        tokio::time::timeout(TEST_DEADLINE, sender)
            .await
            .unwrap()
            .unwrap();
    }
}

/// Waits for the coordinator's next `unit_info`.
async fn unit_info(events: &mut tokio::sync::broadcast::Receiver<Event>) -> SocketAddr {
    tokio::time::timeout(TEST_DEADLINE, async {
        loop {
            if let Ok(Event::UnitInfo { node, .. }) = events.recv().await {
                return node;
            }
        }
    })
    .await
    .expect("unit_info within the deadline")
}

/// A listener on loopback that never accepts, its backlog filled with our own idle
/// connections: the kernel then drops further connection attempts, so connecting to it hangs
/// until the connector gives up (as in `la4_sim.rs`). Keep both alive.
async fn never_answering_listener() -> (TcpListener, Vec<TcpStream>) {
    let listener = labwire_net::bind(loopback(), 1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    tokio::time::timeout(TEST_DEADLINE, async {
        while let Ok(stream) = labwire_net::connect(addr, Duration::from_millis(200)).await {
            assert!(queued.len() < 64, "the backlog never filled up");
            queued.push(stream);
        }
    })
    .await
    .unwrap();
    (listener, queued)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_1024_coordinators_a_new_one_is_still_tracked_and_gets_unit_info() {
    let sim = sim().start().await.unwrap();
    let node = sim.local_addr();
    let prober = coordinator("00000001").await;
    let probing = probe(prober.clone(), node, 8);

    // More coordinators than the table holds, each with its own id and event listener (ours:
    // their unit_info lands in a backlog, never anywhere else).
    let count = MAX_COORDINATORS + 76;
    let mut listeners = Vec::new();
    let mut messages = Vec::new();
    for n in 0..count {
        let listener = labwire_net::bind(loopback(), 4).unwrap();
        let port = listener.local_addr().unwrap().port();
        listeners.push(listener);
        messages.push(Message::heartbeat(attacker(n, port)));
    }
    flood(node, messages, 8).await;
    probe_passed(probing).await;
    let state = sim.state();
    assert!(state.coordinators().len() <= MAX_COORDINATORS);

    // A coordinator never seen before is tracked, and gets its unit_info.
    let newcomer = coordinator("0000beef").await;
    let mut events = newcomer.events();
    let output = newcomer.send_command(node, "echo hello").await.unwrap();
    assert_eq!(output, "hello\n");
    assert_eq!(unit_info(&mut events).await, node);
    let listed = state.coordinators();
    assert!(
        listed
            .iter()
            .any(|c| c.identity.id == "0000beef" && c.online && c.unit_info_sent),
        "the newcomer is tracked"
    );
    assert!(listed.len() <= MAX_COORDINATORS);
    // The probe, heard from all along, is not served again.
    let probe_addr = SocketAddr::new(loopback().ip(), prober.local_addr().port());
    let sent_to_probe = state
        .stats()
        .unit_info_sent_to
        .iter()
        .filter(|to| **to == probe_addr)
        .count();
    assert_eq!(sent_to_probe, 1);
    newcomer.shutdown().await;
    prober.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_to_a_coordinators_listener_do_not_hold_up_its_events() {
    let sim = sim().start().await.unwrap();
    let node = sim.local_addr();
    let prober = coordinator("00000001").await;
    // The node's events come from 127.0.0.1, like every connection below; each holds its place
    // in that IP's order while it stays silent (the read deadline is 5 s).
    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(
            labwire_net::connect(prober.local_addr(), TEST_DEADLINE)
                .await
                .unwrap(),
        );
    }
    assert!(eventually(TEST_DEADLINE, || prober.connection_count() >= 200).await);
    probe_passed(probe(prober.clone(), node, 8)).await;
    drop(silent);
    prober.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_that_never_accept_cannot_starve_a_new_coordinators_events() {
    // A small table keeps the attack small; `defaults_are_the_devices` checks the default.
    const DESTINATIONS: usize = 64;
    let sim = sim()
        .max_event_destinations(DESTINATIONS)
        .start()
        .await
        .unwrap();
    let node = sim.local_addr();
    let prober = coordinator("00000001").await;
    let probing = probe(prober.clone(), node, 8);

    // One listener that never accepts per destination slot (their backlogs filled at once),
    // eight commands for each.
    let filling: Vec<_> = (0..DESTINATIONS)
        .map(|_| tokio::spawn(never_answering_listener()))
        .collect();
    let mut stuck = Vec::new();
    let mut messages = Vec::new();
    for (n, filled) in filling.into_iter().enumerate() {
        let (listener, queued) = filled.await.unwrap();
        let port = listener.local_addr().unwrap().port();
        stuck.push((listener, queued));
        for i in 0..8 {
            messages.push(Message::cmd(attacker(n, port), format!("echo {i}")));
        }
    }
    flood(node, messages, 8).await;

    // A coordinator that arrives now gets every output, each within a second.
    let newcomer = coordinator("0000beef").await;
    for i in 0..5 {
        let command = Command::new(format!("echo new-{i}"));
        let answer = newcomer
            .call_with_timeout(node, command, ANSWER_WITHIN)
            .await
            .unwrap_or_else(|e| panic!("output {i} of 5 not received: {e}"));
        assert_eq!(answer.output, format!("new-{i}\n"));
    }
    probe_passed(probing).await;
    // The attackers' events were given up, not kept.
    assert!(sim.state().stats().events_lost > 0);
    newcomer.shutdown().await;
    prober.shutdown().await;
    tokio::time::timeout(TEST_DEADLINE, sim.shutdown())
        .await
        .unwrap();
    drop(stuck);
}
