//! The pycom coordinator against the LA4 simulator, over loopback.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use la4_sim::{
    BOARDIO_ERROR, BOARDIO_READY, Fault, Fleet, La4Fault, La4Sim, La4SimBuilder, SimState,
};
use labwire_tests::{TEST_DEADLINE, eventually};
use pycom_proto::coordinator::{Command, Error};
use pycom_proto::transport::send_message;
use pycom_proto::{
    Coordinator, CoordinatorConfig, Event, Identity, Limits, Message, Row, Sequence, Slot, Verdict,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Scaled-down timings: heartbeat every 50 ms, offline after 1 s (twenty missed heartbeats, so
/// that a loaded machine does not make nodes flap).
fn coordinator_config() -> CoordinatorConfig {
    let mut config = CoordinatorConfig::new(
        loopback(),
        Identity::new("7756f193", "labwire tests", "127.0.0.1", 0, "0.1.0", true),
    );
    config.heartbeat_interval = Duration::from_millis(50);
    config.offline_after = Duration::from_secs(1);
    config.call_timeout = Duration::from_secs(5);
    config
}

/// A node on a free loopback port, booted at once, with the coordinator's timings scaled down.
fn sim() -> La4SimBuilder {
    La4Sim::builder()
        .boot_time(Duration::ZERO)
        .offline_after(Duration::from_secs(1))
        .discovery_interval(Duration::from_millis(50))
}

async fn start() -> (Coordinator, La4Sim, broadcast::Receiver<Event>) {
    start_with(|_| sim()).await
}

/// A coordinator started with `config`, and its event stream.
async fn coordinator_with_events(
    config: CoordinatorConfig,
) -> (Coordinator, broadcast::Receiver<Event>) {
    let coordinator = Coordinator::start(config).await.unwrap();
    let events = coordinator.events();
    (coordinator, events)
}

/// A coordinator, then a simulator configured knowing the coordinator's address.
async fn start_with(
    sim: impl FnOnce(SocketAddr) -> La4SimBuilder,
) -> (Coordinator, La4Sim, broadcast::Receiver<Event>) {
    let (coordinator, events) = coordinator_with_events(coordinator_config()).await;
    let sim = sim(coordinator.local_addr()).start().await.unwrap();
    (coordinator, sim, events)
}

/// A simulator that probes the coordinator for discovery.
fn probing(coordinator: SocketAddr) -> La4SimBuilder {
    sim().discover(coordinator)
}

/// The next event `pick` accepts, skipping others; fails the test after the deadline.
async fn next<T>(
    events: &mut broadcast::Receiver<Event>,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> T {
    tokio::time::timeout(TEST_DEADLINE, async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = pick(event) {
                        return found;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("event stream closed"),
            }
        }
    })
    .await
    .expect("expected event did not arrive in time")
}

/// Sends a shell command to `node` and returns its output; fails the test on any error.
async fn run(coordinator: &Coordinator, node: SocketAddr, command: impl Into<String>) -> String {
    coordinator.send_command(node, command).await.unwrap()
}

/// Waits until the node sees at least one coordinator online (`true`), or none (`false`).
async fn sees_a_coordinator_online(state: &SimState, online: bool) -> bool {
    eventually(TEST_DEADLINE, || {
        state.coordinators().iter().any(|c| c.online) == online
    })
    .await
}

/// Shuts down the coordinator, then the simulator.
async fn shut_down(coordinator: &Coordinator, sim: &La4Sim) {
    coordinator.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_bring_unit_info_exactly_once() {
    let (coordinator, sim, mut events) = start().await;
    let node = sim.local_addr();
    coordinator.add_node(node);
    let (from, info) = next(&mut events, |e| match e {
        Event::UnitInfo { node, info, .. } => Some((node, info)),
        _ => None,
    })
    .await;
    assert_eq!(from, node);
    assert_eq!(info.mcu_type, "RP2040");
    assert_eq!(
        coordinator.node(node).unwrap().unit_info.as_ref(),
        Some(&info)
    );
    // Many more heartbeats later, still exactly one.
    let state = sim.state();
    let seen = sim.requests();
    assert!(eventually(TEST_DEADLINE, || sim.requests() >= seen + 6).await);
    assert_eq!(
        state.stats().unit_info_sent_to,
        vec![coordinator.local_addr()]
    );
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, Event::UnitInfo { .. }),
            "unit_info sent twice"
        );
    }
    let tracked = state.coordinators();
    assert_eq!(tracked.len(), 1);
    assert_eq!(tracked[0].addr.port(), coordinator.local_addr().port());
    assert!(tracked[0].online && tracked[0].unit_info_sent);
    shut_down(&coordinator, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unit_info_waits_until_boardio_has_booted() {
    let (coordinator, sim, mut events) =
        start_with(|_| sim().boot_time(Duration::from_millis(400))).await;
    let state = sim.state();
    coordinator.add_node(sim.local_addr());
    assert!(eventually(TEST_DEADLINE, || !state.coordinators().is_empty()).await);
    next(&mut events, |e| {
        matches!(e, Event::UnitInfo { .. }).then_some(())
    })
    .await;
    // It came only once boot was over, and the coordinator was known before that.
    assert!(state.is_booted());
    // The simulator records the delivery once its write is done, which may be just after.
    assert!(eventually(TEST_DEADLINE, || state.stats().unit_info_sent_to.len() == 1).await);
    shut_down(&coordinator, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_returns_its_output_then_boardio_ready_and_sets_the_lights() {
    let (coordinator, sim, mut events) = start().await;
    let node = sim.local_addr();
    let sequence =
        Sequence::new([Row::ModelLight { power: 100 }, Row::LedFan { on: true }]).unwrap();
    let output = coordinator.run_sequence(node, &sequence).await.unwrap();
    assert_eq!(
        output,
        "BOARDIO_CLI: Sent: \"uSeq\" to FIFO file\nBOARDIO_CLI: Sent: \"runSeq\" to FIFO file\n"
    );
    let message = next(&mut events, |e| match e {
        Event::Message {
            node: from,
            message,
            ..
        } if from == node => Some(message),
        _ => None,
    })
    .await;
    assert_eq!(message, BOARDIO_READY);
    let lights = sim.state().lights();
    assert_eq!(lights.model_light, 100);
    assert!(lights.fans);
    assert_eq!(lights.last_run, Some(sequence.clone()));
    // The file reads back as the rows, one per line.
    let cat = run(
        &coordinator,
        node,
        format!("cat {}", pycom_proto::sequence::SEQUENCE_FILE),
    )
    .await;
    assert_eq!(cat, sequence.to_csv());
    shut_down(&coordinator, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_row_written_by_hand_gets_boardio_error() {
    let (coordinator, sim, mut events) = start().await;
    let node = sim.local_addr();
    let command = format!(
        "echo \"MODEL_LIGHT,100\\nALL_4_CANON,50,200\" > {} && boardiocli uSeq && boardiocli runSeq",
        pycom_proto::sequence::SEQUENCE_FILE
    );
    let output = run(&coordinator, node, command).await;
    assert!(output.starts_with("BOARDIO_CLI: Sent: \"uSeq\""));
    let message = next(&mut events, |e| match e {
        Event::Message { message, .. } => Some(message),
        _ => None,
    })
    .await;
    assert!(message.starts_with(BOARDIO_ERROR), "{message}");
    assert!(message.contains("shutter_ms"), "{message}");
    assert_eq!(sim.state().lights().model_light, 0);
    shut_down(&coordinator, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anything_else_answers_like_sh_and_runs_nothing() {
    let (coordinator, sim, _events) = start().await;
    let output = run(&coordinator, sim.local_addr(), "rm -rf / && echo gone").await;
    assert_eq!(output, "sh: 1: rm: not found\n");
    shut_down(&coordinator, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_to_one_node_each_get_their_own_output() {
    let (coordinator, sim, _events) = start().await;
    let node = sim.local_addr();
    let calls = (0..20).map(|i| {
        let coordinator = coordinator.clone();
        async move { (i, coordinator.send_command(node, format!("echo {i}")).await) }
    });
    let mut handles = Vec::new();
    for call in calls {
        handles.push(tokio::spawn(call));
    }
    for handle in handles {
        let (i, output) = handle.await.unwrap();
        assert_eq!(output.unwrap(), format!("{i}\n"));
    }
    assert_eq!(sim.state().stats().commands.len(), 20);
    shut_down(&coordinator, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_goes_offline_and_the_node_drops_a_silent_coordinator() {
    let (coordinator, sim, mut events) = start().await;
    let node = sim.local_addr();
    coordinator.add_node(node);
    next(&mut events, |e| {
        matches!(e, Event::NodeOnline { node: n } if n == node).then_some(())
    })
    .await;
    let state = sim.state();
    assert!(sees_a_coordinator_online(state, true).await);
    // The coordinator stops heartbeating: the node marks it offline after its delay.
    coordinator.remove_node(node);
    assert!(sees_a_coordinator_online(state, false).await);
    // The node disappears: the coordinator reports it offline after its delay.
    coordinator.add_node(node);
    sim.shutdown().await;
    next(&mut events, |e| {
        matches!(e, Event::NodeOffline { node: n } if n == node).then_some(())
    })
    .await;
    assert!(!coordinator.node(node).unwrap().online);
    coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probing_node_is_discovered_and_managed() {
    let (coordinator, sim, mut events) = start_with(probing).await;
    let (node, identity) = next(&mut events, |e| match e {
        Event::NodeDiscovered { node, identity } => Some((node, identity)),
        _ => None,
    })
    .await;
    assert_eq!(node, sim.local_addr());
    assert_eq!(identity.id, sim.state().identity().id);
    assert!(!identity.coordinator);
    // Managed from now on: heartbeats flow, unit_info follows.
    next(&mut events, |e| {
        matches!(e, Event::UnitInfo { .. }).then_some(())
    })
    .await;
    assert!(coordinator.node(node).unwrap().managed);
    let state = sim.state();
    assert!(sees_a_coordinator_online(state, true).await);
    shut_down(&coordinator, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_stops_probing_once_a_coordinator_is_online() {
    let (coordinator, sim, mut events) = start_with(probing).await;
    next(&mut events, |e| {
        matches!(e, Event::UnitInfo { .. }).then_some(())
    })
    .await;
    let state = sim.state();
    let probes = state.stats().probes_sent;
    // Ten more heartbeats (ten probe intervals) and no new scan: at most the one that may have
    // been under way when the first heartbeat arrived is still counted.
    let requests = sim.requests();
    assert!(eventually(TEST_DEADLINE, || sim.requests() >= requests + 10).await);
    assert!(state.stats().probes_sent <= probes + 1);
    shut_down(&coordinator, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_100_nodes_is_managed_and_commanded() {
    let fleet = Fleet::start(sim(), 100).await.unwrap();
    let (coordinator, mut events) = coordinator_with_events(coordinator_config()).await;
    for addr in fleet.addrs() {
        coordinator.add_node(addr);
    }
    let expected: HashSet<SocketAddr> = fleet.addrs().into_iter().collect();
    let mut seen = HashSet::new();
    while seen.len() < expected.len() {
        let node = next(&mut events, |e| match e {
            Event::UnitInfo { node, .. } => Some(node),
            _ => None,
        })
        .await;
        assert!(expected.contains(&node), "unit_info from unknown {node}");
        assert!(seen.insert(node), "second unit_info from {node}");
    }
    let mut calls = Vec::new();
    for (i, addr) in fleet.addrs().into_iter().enumerate() {
        let coordinator = coordinator.clone();
        calls.push(tokio::spawn(async move {
            (
                i,
                coordinator
                    .send_command(addr, format!("echo node {i}"))
                    .await,
            )
        }));
    }
    for call in calls {
        let (i, output) = call.await.unwrap();
        assert_eq!(output.unwrap(), format!("node {i}\n"));
    }
    assert!(
        eventually(TEST_DEADLINE, || coordinator
            .nodes()
            .iter()
            .all(|n| n.online && n.unit_info.is_some()))
        .await
    );
    coordinator.shutdown().await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_never_disturb_the_listener() {
    let mut config = coordinator_config();
    config.read_timeout = Duration::from_millis(200);
    config.limits.max_message_len = 4096;
    let (coordinator, mut events) = coordinator_with_events(config).await;
    let listener = coordinator.local_addr();
    let sim = sim().start().await.unwrap();

    // A peer that connects and never sends nor closes.
    let idle = labwire_net::connect(listener, TEST_DEADLINE).await.unwrap();
    // Garbage, a non-object, a huge body, a message with a field of the wrong type.
    let huge = vec![b'['; 100_000];
    let bodies: [&[u8]; 4] = [
        b"\x00\xff\xfe garbage",
        b"[1, 2, 3]",
        &huge,
        br#"{"id":"x","name":"y","ip":"z","port":"5000","version":"1","coordinator":false}"#,
    ];
    for body in bodies {
        let mut stream = labwire_net::connect(listener, TEST_DEADLINE).await.unwrap();
        // The listener may close early on the huge body; that is its right.
        let _ = stream.write_all(body).await;
        let _ = stream.shutdown().await;
    }
    let mut rejected = 0;
    while rejected < 5 {
        next(&mut events, |e| {
            matches!(e, Event::Rejected { .. }).then_some(())
        })
        .await;
        rejected += 1;
    }
    drop(idle);
    // Everything still works.
    let output = run(&coordinator, sim.local_addr(), "echo ok").await;
    assert_eq!(output, "ok\n");
    shut_down(&coordinator, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_event_types_are_kept() {
    let (coordinator, mut events) = coordinator_with_events(coordinator_config()).await;
    let mut stream = labwire_net::connect(coordinator.local_addr(), TEST_DEADLINE)
        .await
        .unwrap();
    stream
        .write_all(br#"{"id":"n","name":"node","ip":"127.0.0.1","port":5999,"version":"0.15.0","coordinator":false,"type_":"progress","percent":40}"#)
        .await
        .unwrap();
    stream.shutdown().await.unwrap();
    let message = next(&mut events, |e| match e {
        Event::Other { message, .. } => Some(message),
        _ => None,
    })
    .await;
    assert_eq!(message.body.type_name(), Some("progress"));
    coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_events_means_a_timeout_and_unreachable_nodes_fail_fast() {
    let (coordinator, sim, _events) = start().await;
    let node = sim.local_addr();
    sim.faults().set(Some(Fault::NoReply));
    let err = coordinator
        .call_with_timeout(node, "echo lost", Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(matches!(err, Error::Timeout(_)));
    sim.shutdown().await;
    let err = coordinator
        .send_command(node, "echo nobody")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_output_is_not_taken_for_the_next_commands_answer() {
    let (coordinator, sim, _events) = start().await;
    let node = sim.local_addr();
    // This command's events only.
    sim.faults().push(Fault::Delay(Duration::from_millis(400)));
    let err = coordinator
        .call_with_timeout(node, "echo one", Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    // "one" arrives late and is consumed by the abandoned command, not by this one.
    let output = run(&coordinator, node, "echo two").await;
    assert_eq!(output, "two\n");
    shut_down(&coordinator, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_events_are_rejected_and_the_command_times_out() {
    let (coordinator, sim, mut events) = start().await;
    sim.faults().set(Some(Fault::Garbage));
    let err = coordinator
        .call_with_timeout(sim.local_addr(), "echo x", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    next(&mut events, |e| {
        matches!(e, Event::Rejected { .. }).then_some(())
    })
    .await;
    shut_down(&coordinator, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_one_node_are_handled_in_the_order_their_connections_arrived() {
    let mut config = coordinator_config();
    config.read_timeout = Duration::from_millis(300);
    let (coordinator, mut events) = coordinator_with_events(config).await;
    let listener = coordinator.local_addr();
    let node = Identity::new("n", "node", "127.0.0.1", 5999, "0.14.0", false);
    let bytes = |text: &str| {
        pycom_proto::wire::encode(
            &pycom_proto::Message::output(node.clone(), text),
            &pycom_proto::Limits::default(),
        )
        .unwrap()
    };
    let (first, second, third) = (bytes("first"), bytes("second"), bytes("third"));
    // The first connection arrives first but finishes last.
    let mut slow = labwire_net::connect(listener, TEST_DEADLINE).await.unwrap();
    slow.write_all(&first[..10]).await.unwrap();
    // A connection that never finishes: it only delays what follows by the read deadline.
    let stalled = labwire_net::connect(listener, TEST_DEADLINE).await.unwrap();
    let mut quick = labwire_net::connect(listener, TEST_DEADLINE).await.unwrap();
    quick.write_all(&second).await.unwrap();
    quick.shutdown().await.unwrap();
    let mut quick = labwire_net::connect(listener, TEST_DEADLINE).await.unwrap();
    quick.write_all(&third).await.unwrap();
    quick.shutdown().await.unwrap();
    slow.write_all(&first[10..]).await.unwrap();
    slow.shutdown().await.unwrap();
    let mut order = Vec::new();
    while order.len() < 3 {
        let output = next(&mut events, |e| match e {
            Event::Output { output, .. } => Some(output),
            _ => None,
        })
        .await;
        order.push(output);
    }
    assert_eq!(order, ["first", "second", "third"]);
    drop(stalled);
    coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_node_heartbeats_it_at_once_without_waiting_for_the_interval() {
    let mut config = coordinator_config();
    config.heartbeat_interval = Duration::from_secs(3600);
    let (coordinator, mut events) = coordinator_with_events(config).await;
    let sim = sim().start().await.unwrap();
    // The first heartbeat round is an hour away.
    coordinator.add_node(sim.local_addr());
    next(&mut events, |e| {
        matches!(e, Event::UnitInfo { .. }).then_some(())
    })
    .await;
    assert_eq!(sim.requests(), 1);
    shut_down(&coordinator, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_sequence_gets_its_own_verdict_not_an_earlier_one() {
    let (coordinator, sim, _events) = start().await;
    let node = sim.local_addr();
    // A hand-written bad row: two BOARDIO_ERROR messages follow its output (uSeq, runSeq).
    let bad = format!(
        "echo \"LED_FAN,7\" > {} && boardiocli uSeq && boardiocli runSeq",
        pycom_proto::sequence::SEQUENCE_FILE
    );
    run(&coordinator, node, bad).await;
    let sequence = Sequence::new([Row::LedFan { on: true }]).unwrap();
    let report = coordinator
        .run_sequence_confirmed(node, &sequence, Slot::Normal)
        .await
        .unwrap();
    assert_eq!(report.verdict, Some(Verdict::Ready));
    assert!(report.is_ready());
    assert!(sim.state().lights().fans);
    let stored = coordinator
        .run_sequence_confirmed(node, &sequence, Slot::Standalone)
        .await
        .unwrap();
    assert!(stored.is_ready());
    assert_eq!(sim.state().lights().standalone, Some(sequence));
    shut_down(&coordinator, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_verdict_is_awaited_when_boardio_was_not_reached() {
    let (coordinator, sim, _events) =
        start_with(|_| sim().boot_time(Duration::from_secs(3600))).await;
    let sequence = Sequence::new([Row::ModelLight { power: 1 }]).unwrap();
    let report = coordinator
        .run_sequence_confirmed(sim.local_addr(), &sequence, Slot::Normal)
        .await
        .unwrap();
    assert_eq!(report.verdict, None);
    assert_eq!(report.output, "BOARDIO_CLI: boardio is not running\n");
    shut_down(&coordinator, &sim).await;
}

/// A node of our own (the node library from outside) whose boardio refuses every sequence.
struct Refusing(pycom_proto::node::EventSender);

impl pycom_proto::node::Service for Refusing {
    type Request = pycom_proto::node::Request;
    type Response = ();

    async fn call(&self, _peer: SocketAddr, request: pycom_proto::node::Request) {
        if let pycom_proto::Body::Cmd { .. } = request.message.body {
            let to = request.reply_addr();
            let sender = self.0.clone();
            tokio::spawn(async move {
                let output = "BOARDIO_CLI: Sent: \"uSeq\" to FIFO file\n".to_owned();
                sender
                    .send(to, pycom_proto::Body::Output { output })
                    .await
                    .unwrap();
                let message = "BOARDIO_ERROR: firmware says no".to_owned();
                sender
                    .send(to, pycom_proto::Body::Message { message })
                    .await
                    .unwrap();
            });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sequence_reports_boardio_error() {
    let listener =
        pycom_proto::node::NodeListener::bind(pycom_proto::node::NodeConfig::new(loopback()))
            .await
            .unwrap();
    let addr = listener.local_addr().unwrap();
    let me = Identity::new("0badf00d", "refusing", "127.0.0.1", addr.port(), "1", false);
    let node = listener.serve(Refusing(pycom_proto::node::EventSender::new(me)));
    let coordinator = Coordinator::start(coordinator_config()).await.unwrap();
    let sequence = Sequence::new([Row::ModelLight { power: 1 }]).unwrap();
    let err = coordinator
        .run_sequence_confirmed(addr, &sequence, Slot::Normal)
        .await
        .unwrap_err();
    let refused = err.device_error().expect("the node's refusal");
    assert_eq!(refused.message, "BOARDIO_ERROR: firmware says no");
    assert_eq!(refused.node, addr);
    assert!(!err.is_connection_fatal() && !err.is_timeout());
    // The raw path gives the verdict as it came.
    let report = coordinator
        .call_response(
            addr,
            Command::sequence(&sequence, Slot::Normal),
            TEST_DEADLINE,
        )
        .await
        .unwrap();
    assert_eq!(
        report.verdict,
        Some(Verdict::Error("BOARDIO_ERROR: firmware says no".into()))
    );
    assert!(!report.is_ready());
    coordinator.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_made_up_nodes_keeps_the_table_within_its_limit_and_new_ones_are_still_found() {
    let mut config = coordinator_config();
    config.max_nodes = 3;
    config.manage_discovered = false;
    let (coordinator, mut events) = coordinator_with_events(config).await;
    for port in 7000..7010 {
        let probe = Message::heartbeat(Identity::new("x", "fake", "127.0.0.1", port, "1", false));
        send_message(
            coordinator.local_addr(),
            &probe,
            &Limits::default(),
            TEST_DEADLINE,
            true,
        )
        .await
        .unwrap();
    }
    // The last probe was handled before its connection closed: everything is counted by now.
    let mut discovered = 0;
    while let Ok(event) = events.try_recv() {
        discovered += usize::from(matches!(event, Event::NodeDiscovered { .. }));
    }
    // Each new sender takes the place of the one heard from longest ago: all are discovered,
    // the table keeps the latest three.
    assert_eq!(discovered, 10);
    let ports: Vec<u16> = coordinator.nodes().iter().map(|n| n.addr.port()).collect();
    assert_eq!(ports, [7007, 7008, 7009]);
    assert!(coordinator.nodes().iter().all(|n| !n.managed));
    // Nodes the application names are always tracked.
    let sim = sim().start().await.unwrap();
    coordinator.add_node(sim.local_addr());
    assert_eq!(coordinator.nodes().len(), 4);
    shut_down(&coordinator, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_heartbeat_makes_the_coordinator_known_to_the_node() {
    let (coordinator, sim, _events) = start().await;
    let node = sim.local_addr();
    coordinator.heartbeat(node).await.unwrap();
    let tracked = sim.state().coordinators();
    assert_eq!(tracked.len(), 1);
    assert_eq!(tracked[0].identity, *coordinator.identity());
    assert_eq!(tracked[0].addr, coordinator.local_addr());
    // Not managed: no further heartbeats follow on their own.
    assert!(!coordinator.node(node).unwrap().managed);
    sim.shutdown().await;
    assert!(matches!(
        coordinator.heartbeat(node).await,
        Err(Error::Connect { .. })
    ));
    coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_output_costs_one_command_and_the_next_ten_get_their_own() {
    let (coordinator, sim, mut events) = start().await;
    let node = sim.local_addr();
    sim.faults().push(Fault::Device(La4Fault::DropOutput));
    let err = coordinator
        .call_with_timeout(node, "echo lost", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    for i in 0..10 {
        assert_eq!(
            run(&coordinator, node, format!("echo n{i}")).await,
            format!("n{i}\n")
        );
    }
    next(&mut events, |e| {
        matches!(e, Event::Resync { .. }).then_some(())
    })
    .await;
    // One marker went between the lost command and the next ones.
    let commands = sim.state().stats().commands;
    let markers: Vec<&String> = commands
        .iter()
        .filter(|c| c.starts_with("echo labwire-sync-"))
        .collect();
    assert_eq!(markers.len(), 1, "{commands:?}");
    assert_eq!(commands[1], *markers[0]);
    assert!(coordinator.node(node).unwrap().in_step);
    shut_down(&coordinator, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_that_overtakes_the_output_still_confirms_the_sequence() {
    let (coordinator, sim, _events) = start().await;
    sim.faults()
        .set(Some(Fault::Device(La4Fault::MessageBeforeOutput)));
    let sequence = Sequence::new([Row::LedFan { on: true }]).unwrap();
    let report = coordinator
        .run_sequence_confirmed(sim.local_addr(), &sequence, Slot::Normal)
        .await
        .unwrap();
    assert_eq!(report.verdict, Some(Verdict::Ready));
    assert!(
        report.output.contains("Sent: \"runSeq\""),
        "{}",
        report.output
    );
    assert!(sim.state().lights().fans);
    shut_down(&coordinator, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_for_loading_never_hides_an_error_for_running() {
    let (coordinator, sim, _events) = start().await;
    let node = sim.local_addr();
    // A variant of the device (two verdicts: `uSeq`'s, then `runSeq`'s) under a standing fault.
    sim.state().set_reports_load(true);
    sim.faults().set(Some(Fault::Device(La4Fault::RunSeqError(
        "LED driver overheated".into(),
    ))));
    let sequence = Sequence::new([Row::ModelLight { power: 60 }]).unwrap();
    for _ in 0..3 {
        let err = coordinator
            .run_sequence_confirmed(node, &sequence, Slot::Normal)
            .await
            .unwrap_err();
        assert_eq!(
            err.device_error().map(|refused| refused.message.as_str()),
            Some(format!("{BOARDIO_ERROR}: LED driver overheated").as_str())
        );
    }
    // Two READYs for two boardio commands: READY, at once.
    sim.faults().clear();
    let report = coordinator
        .run_sequence_confirmed(node, &sequence, Slot::Normal)
        .await
        .unwrap();
    assert!(report.is_ready(), "{report:?}");
    assert_eq!(sim.state().lights().model_light, 60);
    shut_down(&coordinator, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_idiom_stores_and_runs_the_sequence() {
    let (coordinator, sim, _events) = start().await;
    let sequence = Sequence::new([Row::DigitalPolarizer { on: true }]).unwrap();
    let output = coordinator
        .store_standalone_sequence(sim.local_addr(), &sequence)
        .await
        .unwrap();
    assert!(output.contains("Sent: \"uSeqStandalone\""), "{output}");
    assert!(output.contains("Sent: \"runSeq\""), "{output}");
    let state = sim.state();
    assert_eq!(state.lights().standalone, Some(sequence));
    assert!(state.lights().polarizer);
    // And again at every boot.
    state.reboot();
    assert!(eventually(TEST_DEADLINE, || state.lights().polarizer).await);
    shut_down(&coordinator, &sim).await;
}

/// A node of our own (listening on the port it holds) whose events carry informational fields
/// of the wrong type or none.
struct Sloppy(u16);

impl pycom_proto::node::Service for Sloppy {
    type Request = pycom_proto::node::Request;
    type Response = ();

    async fn call(&self, _peer: SocketAddr, request: pycom_proto::node::Request) {
        if let pycom_proto::Body::Cmd { .. } = request.message.body {
            let to = request.reply_addr();
            let raw = format!(
                r#"{{"id":"5107b0a7","port":{},"coordinator":false,"version":14,"ip":null,"type_":"output","output":"ok\n"}}"#,
                self.0
            );
            tokio::spawn(async move {
                pycom_proto::transport::send_bytes(to, raw.as_bytes(), TEST_DEADLINE, false)
                    .await
                    .unwrap();
            });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_with_odd_informational_fields_still_answers_the_command() {
    let listener =
        pycom_proto::node::NodeListener::bind(pycom_proto::node::NodeConfig::new(loopback()))
            .await
            .unwrap();
    let addr = listener.local_addr().unwrap();
    let node = listener.serve(Sloppy(addr.port()));
    let coordinator = Coordinator::start(coordinator_config()).await.unwrap();
    assert_eq!(run(&coordinator, addr, "true").await, "ok\n");
    let identity = coordinator.node(addr).unwrap().identity.unwrap();
    assert_eq!(identity.version, "14");
    assert_eq!(identity.name, pycom_proto::wire::UNKNOWN);
    coordinator.shutdown().await;
    node.shutdown().await;
}
