//! The LA4 simulator and the coordinator's listener under bursts, boot timing, scaled time and
//! shutdown, over loopback.

use std::net::SocketAddr;
use std::time::Duration;

use la4_sim::{
    Fault, Fleet, HostConfig, La4Sim, La4SimBuilder, MAX_QUEUED_EVENTS, SimClock, SimConfig,
};
use labwire_tests::{TEST_DEADLINE, eventually};
use pycom_proto::transport::{read_message, send_message};
use pycom_proto::{Body, Coordinator, Event, Identity, Limits, Message};
use tokio::io::AsyncReadExt;
use tokio::sync::broadcast;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A node on a free loopback port, booted at once.
fn sim() -> La4SimBuilder {
    La4Sim::builder().boot_time(Duration::ZERO)
}

fn coordinator_identity(port: u16) -> Identity {
    Identity::new("7756f193", "burst", "127.0.0.1", port, "0.1.0", true)
}

/// A coordinator on a free loopback port.
async fn coordinator() -> Coordinator {
    Coordinator::builder(loopback(), coordinator_identity(0))
        .start()
        .await
        .unwrap()
}

/// Sends `message` to `node` as a request and waits for the node to close the connection once
/// it has read it; fails the test on any error.
async fn request(node: SocketAddr, message: Message) {
    send_message(node, &message, &Limits::default(), TEST_DEADLINE, true)
        .await
        .unwrap();
}

/// Sends a shell command to `node` and returns its output; fails the test on any error.
async fn run(coordinator: &Coordinator, node: SocketAddr, command: impl Into<String>) -> String {
    coordinator.send_command(node, command).await.unwrap()
}

/// Shuts down the coordinator, then the simulator.
async fn shut_down(coordinator: &Coordinator, sim: &La4Sim) {
    coordinator.shutdown().await;
    sim.shutdown().await;
}

/// One read from a connection the simulator should have closed: `Ok(0)` or an error once it
/// has; fails the test if the connection is still open at the deadline.
async fn read_within_deadline(idle: &mut tokio::net::TcpStream) -> std::io::Result<usize> {
    let mut buf = [0u8; 8];
    tokio::time::timeout(TEST_DEADLINE, idle.read(&mut buf))
        .await
        .expect("the connection outlived the deadline")
}

/// Shuts the simulator down, failing the test if that takes longer than the deadline.
async fn shut_down_in_time(sim: &La4Sim) {
    tokio::time::timeout(TEST_DEADLINE, sim.shutdown())
        .await
        .unwrap();
}

const CLIENTS: usize = 8;
const PER_CLIENT: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_short_lived_requests_is_served_completely() {
    let sim = sim().start().await.unwrap();
    let addr = sim.local_addr();
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        clients.push(tokio::spawn(async move {
            // Each client advertises its own (unused) port: a coordinator of its own.
            let heartbeat = Message::heartbeat(coordinator_identity(40_000 + client as u16));
            for _ in 0..PER_CLIENT {
                request(addr, heartbeat.clone()).await;
            }
        }));
    }
    for client in clients {
        tokio::time::timeout(TEST_DEADLINE, client)
            .await
            .unwrap()
            .unwrap();
    }
    assert!(
        eventually(TEST_DEADLINE, || sim.requests()
            == (CLIENTS * PER_CLIENT) as u64)
        .await
    );
    assert_eq!(sim.state().coordinators().len(), CLIENTS);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinators_listener_takes_a_burst_of_events() {
    let coordinator = coordinator().await;
    let mut events = coordinator.events();
    let listener = coordinator.local_addr();
    let mut senders = Vec::new();
    for client in 0..CLIENTS {
        senders.push(tokio::spawn(async move {
            let node = Identity::new(
                "n",
                "node",
                "127.0.0.1",
                6000 + client as u16,
                "0.14.0",
                false,
            );
            for i in 0..PER_CLIENT {
                let event = Message::output(node.clone(), format!("{i}\n"));
                send_message(listener, &event, &Limits::default(), TEST_DEADLINE, false)
                    .await
                    .unwrap();
            }
        }));
    }
    let mut outputs = 0;
    tokio::time::timeout(TEST_DEADLINE, async {
        while outputs < CLIENTS * PER_CLIENT {
            match events.recv().await {
                Ok(Event::Output { .. }) => outputs += 1,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => panic!("lagged by {n}"),
                Err(broadcast::error::RecvError::Closed) => panic!("closed"),
            }
        }
    })
    .await
    .unwrap();
    for sender in senders {
        sender.await.unwrap();
    }
    coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boardiocli_fails_until_boot_and_time_scale_shortens_boot() {
    let coordinator = coordinator().await;
    // An hour of boot: never over during this test.
    let slow = sim()
        .boot_time(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    let output = run(&coordinator, slow.local_addr(), "boardiocli uSeq").await;
    assert_eq!(output, "BOARDIO_CLI: boardio is not running\n");
    assert!(!slow.state().is_booted());
    slow.shutdown().await;

    // Ten seconds of boot at 1000x: 10 ms.
    let fast = sim()
        .boot_time(Duration::from_secs(10))
        .speed(1000.0)
        .start()
        .await
        .unwrap();
    let state = fast.state();
    assert!(eventually(TEST_DEADLINE, || state.is_booted()).await);
    let output = run(
        &coordinator,
        fast.local_addr(),
        "echo 'LED_FAN,1' > /home/rigsters/la4_sequence.csv && boardiocli uSeq",
    )
    .await;
    assert_eq!(output, "BOARDIO_CLI: Sent: \"uSeq\" to FIFO file\n");
    fast.shutdown().await;
    coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_disconnects_clients_and_stops_listening() {
    let sim = sim().start().await.unwrap();
    let addr = sim.local_addr();
    let mut idle = labwire_net::connect(addr, TEST_DEADLINE).await.unwrap();
    shut_down_in_time(&sim).await;
    let read = read_within_deadline(&mut idle).await;
    assert!(matches!(read, Ok(0) | Err(_)), "connection still open");
    assert!(labwire_net::connect(addr, TEST_DEADLINE).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_never_disturb_the_simulator() {
    // The whole-config form of the same API.
    let sim = La4Sim::start(SimConfig {
        host: HostConfig::loopback(),
        boot_time: Duration::ZERO,
        read_timeout: Duration::from_millis(200),
        limits: Limits {
            max_message_len: 4096,
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let addr = sim.local_addr();
    let mut idle = labwire_net::connect(addr, TEST_DEADLINE).await.unwrap();
    let huge = vec![b'{'; 100_000];
    let bodies: [&[u8]; 4] = [
        b"\xff\xfe not utf-8",
        b"\"just a string\"",
        &huge,
        br#"{"id":"x","name":"y","ip":"z","port":1,"version":"1","coordinator":true,"type_":"cmd"}"#,
    ];
    for body in bodies {
        let mut stream = labwire_net::connect(addr, TEST_DEADLINE).await.unwrap();
        let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, body).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
    }
    // A peer that never finishes its request is closed at the read deadline.
    let read = read_within_deadline(&mut idle).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // Nothing above was a request; a real one is still answered.
    let coordinator = coordinator().await;
    let output = run(&coordinator, addr, "echo still here").await;
    assert_eq!(output, "still here\n");
    assert_eq!(sim.requests(), 1);
    assert_eq!(sim.state().stats().commands, ["echo still here"]);
    shut_down(&coordinator, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_manual_clock_boot_and_offline_happen_only_when_time_is_advanced() {
    let coordinator = coordinator().await;
    let mut events = coordinator.events();
    let sim = La4Sim::builder()
        .boot_time(Duration::from_secs(3))
        .offline_after(Duration::from_secs(15))
        .clock(SimClock::manual())
        .start()
        .await
        .unwrap();
    let node = sim.local_addr();
    assert_eq!(sim.clock().speed(), 0.0);
    let output = run(&coordinator, node, "boardiocli runSeq").await;
    assert_eq!(output, "BOARDIO_CLI: boardio is not running\n");
    assert!(!sim.state().is_booted());
    let tracked = sim.state().coordinators();
    assert!(tracked.len() == 1 && tracked[0].online && !tracked[0].unit_info_sent);

    // Boot finishes when the test says so, and the waiting coordinator gets unit_info.
    sim.clock().advance(Duration::from_secs(3));
    assert!(sim.state().is_booted());
    let (from, info) = tokio::time::timeout(TEST_DEADLINE, async {
        loop {
            if let Ok(Event::UnitInfo { node, info, .. }) = events.recv().await {
                return (node, info);
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(from, node);
    assert_eq!(info.mcu_type, "RP2040");

    // Fifteen simulated seconds of silence: offline, at once.
    sim.clock().advance(Duration::from_secs(15));
    let state = sim.state();
    assert!(
        eventually(TEST_DEADLINE, || state
            .coordinators()
            .iter()
            .all(|c| !c.online))
        .await
    );
    shut_down(&coordinator, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handle_injects_faults_counts_connections_and_stops_by_token() {
    let sim = sim().start().await.unwrap();
    let addr = sim.local_addr();
    let events = labwire_net::bind(loopback(), 16).unwrap();
    let me = coordinator_identity(events.local_addr().unwrap().port());
    let command = |line: &str| {
        let message = Message::cmd(me.clone(), line);
        request(addr, message)
    };

    sim.faults().set(Some(Fault::NoReply));
    assert_eq!(sim.faults().standing(), Some(Fault::NoReply));
    command("echo lost").await;
    // The command's output is held back; unit_info (first contact) is no answer to it and goes.
    let state = sim.state();
    assert!(eventually(TEST_DEADLINE, || state.stats().events_lost == 1).await);
    let info = accept_message(&events).await;
    assert!(matches!(info.body, Body::UnitInfo(_)), "{info:?}");
    assert!(eventually(TEST_DEADLINE, || state.stats().events_sent == 1).await);

    sim.faults().clear();
    command("echo back").await;
    let event = accept_message(&events).await;
    assert_eq!(
        event.body,
        Body::Output {
            output: "back\n".into()
        }
    );

    let idle = labwire_net::connect(addr, TEST_DEADLINE).await.unwrap();
    assert!(eventually(TEST_DEADLINE, || sim.connection_count() == 1).await);
    sim.shutdown_token().cancel();
    assert!(eventually(TEST_DEADLINE, || sim.connection_count() == 0).await);
    shut_down_in_time(&sim).await;
    assert!(labwire_net::connect(addr, TEST_DEADLINE).await.is_err());
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_from_a_builder_shares_one_clock() {
    let fleet = Fleet::start(
        sim()
            .boot_time(Duration::from_secs(60))
            .clock(SimClock::manual())
            .id("000000f0"),
        3,
    )
    .await
    .unwrap();
    assert_eq!(fleet.len(), 3);
    let ids: Vec<_> = fleet
        .nodes()
        .iter()
        .map(|n| n.state().identity().id.clone())
        .collect();
    assert_eq!(ids, ["000000f0", "000000f1", "000000f2"]);
    assert!(fleet.nodes().iter().all(|n| !n.state().is_booted()));
    fleet.clock().advance(Duration::from_secs(60));
    assert!(fleet.nodes().iter().all(|n| n.state().is_booted()));
    fleet.shutdown().await;

    // From a whole config too; a fleet of one is that node exactly.
    let one = Fleet::start(
        SimConfig {
            host: HostConfig::loopback(),
            ..SimConfig::default()
        },
        1,
    )
    .await
    .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one.nodes()[0].state().identity().id, "81639cd4");
    assert_eq!(one.clock().speed(), 1.0);
    one.shutdown().await;
}

/// The next connection to `listener`, read as one message.
async fn accept_message(listener: &tokio::net::TcpListener) -> Message {
    let (mut stream, _) = tokio::time::timeout(TEST_DEADLINE, listener.accept())
        .await
        .unwrap()
        .unwrap();
    read_message(&mut stream, &Limits::default(), TEST_DEADLINE)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probing_stops_while_a_coordinator_is_online_and_resumes_once_it_is_offline() {
    // A bare listener plays the coordinator, so that nothing heartbeats on its own.
    let listener = labwire_net::bind(loopback(), 16).unwrap();
    let sim = sim()
        .offline_after(Duration::from_secs(15))
        .discovery_interval(Duration::from_secs(5))
        .clock(SimClock::manual())
        .discover(listener.local_addr().unwrap())
        .start()
        .await
        .unwrap();
    let node = sim.local_addr();
    let state = sim.state();

    // No coordinator yet: the node probes with its own base message.
    let probe = accept_message(&listener).await;
    assert_eq!(probe.body, Body::Heartbeat);
    assert!(!probe.identity.coordinator);
    assert_eq!(probe.identity.port, node.port());
    // Counted once its send has finished, which may be just after we read it.
    assert!(eventually(TEST_DEADLINE, || state.stats().probes_sent == 1).await);

    // A coordinator makes itself known; booted already, the node sends it unit_info.
    let me = coordinator_identity(listener.local_addr().unwrap().port());
    request(node, Message::heartbeat(me)).await;
    let info = accept_message(&listener).await;
    assert!(matches!(info.body, Body::UnitInfo(_)), "{info:?}");

    // Two probe intervals pass with the coordinator online: no scan.
    sim.clock().advance(Duration::from_secs(5));
    sim.clock().advance(Duration::from_secs(5));
    assert_eq!(state.stats().probes_sent, 1);

    // Fifteen seconds of silence in all: offline, and the node scans again at once.
    sim.clock().advance(Duration::from_secs(5));
    let again = accept_message(&listener).await;
    assert_eq!(again.body, Body::Heartbeat);
    assert!(!again.identity.coordinator);
    assert!(state.coordinators().iter().all(|c| !c.online));
    assert!(eventually(TEST_DEADLINE, || state.stats().probes_sent == 2).await);
    sim.shutdown().await;
}

/// A listener on loopback that never accepts, its backlog filled with our own idle
/// connections: the kernel then drops further connection attempts, so connecting to it hangs
/// until the connector gives up. Keep both the listener and the connections alive.
async fn never_answering_listener() -> (tokio::net::TcpListener, Vec<tokio::net::TcpStream>) {
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
async fn a_coordinator_that_never_answers_does_not_hold_up_another_coordinators_events() {
    // Far beyond TEST_DEADLINE: if B's events waited behind A's, B would see nothing in time.
    const SEND_TIMEOUT: Duration = Duration::from_secs(120);
    let (stuck, _queued) = never_answering_listener().await;
    let sim = sim()
        .send_timeout(SEND_TIMEOUT)
        .connect_timeout(SEND_TIMEOUT)
        .start()
        .await
        .unwrap();
    let node = sim.local_addr();
    let request = |message: Message| request(node, message);

    // Coordinator A advertises the port that never answers; its unit_info hangs in connect and
    // its outputs queue up behind it.
    let a = coordinator_identity(stuck.local_addr().unwrap().port());
    for i in 0..3 {
        request(Message::cmd(a.clone(), format!("echo a{i}"))).await;
    }
    // Coordinator B, healthy, gets its unit_info and then its outputs in command order.
    let healthy = labwire_net::bind(loopback(), 16).unwrap();
    // Another application: unit_info goes once per coordinator id.
    let b = Identity {
        id: "0b0b0b0b".into(),
        ..coordinator_identity(healthy.local_addr().unwrap().port())
    };
    for i in 0..3 {
        request(Message::cmd(b.clone(), format!("echo b{i}"))).await;
    }
    let info = accept_message(&healthy).await;
    assert!(matches!(info.body, Body::UnitInfo(_)), "{info:?}");
    for i in 0..3 {
        let event = accept_message(&healthy).await;
        assert_eq!(
            event.body,
            Body::Output {
                output: format!("b{i}\n")
            }
        );
    }
    let state = sim.state();
    assert!(eventually(TEST_DEADLINE, || state.stats().events_sent == 4).await);
    // A's first event is still on its way: nothing of A's was delivered or given up.
    assert_eq!(state.stats().events_lost, 0);
    // All six commands ran.
    assert_eq!(state.stats().commands.len(), 6);

    // Shutdown does not wait for A's hanging delivery.
    shut_down_in_time(&sim).await;
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_target_that_never_answers_does_not_hold_up_the_others() {
    const SEND_TIMEOUT: Duration = Duration::from_secs(120);
    let (stuck, _queued) = never_answering_listener().await;
    let healthy = labwire_net::bind(loopback(), 16).unwrap();
    let sim = sim()
        .send_timeout(SEND_TIMEOUT)
        .connect_timeout(SEND_TIMEOUT)
        .discovery_interval(Duration::from_secs(5))
        .clock(SimClock::manual())
        // The stuck one first: a scan that went target by target would wait on it.
        .discover(stuck.local_addr().unwrap())
        .discover(healthy.local_addr().unwrap())
        .start()
        .await
        .unwrap();
    let probe = accept_message(&healthy).await;
    assert_eq!(probe.body, Body::Heartbeat);
    let state = sim.state();
    assert!(eventually(TEST_DEADLINE, || state.stats().probes_sent == 1).await);

    // The next scan probes the healthy target again but not the stuck one, whose first probe
    // is still on its way.
    sim.clock().advance(Duration::from_secs(5));
    let again = accept_message(&healthy).await;
    assert_eq!(again.body, Body::Heartbeat);
    assert!(eventually(TEST_DEADLINE, || state.stats().probes_sent == 2).await);
    shut_down_in_time(&sim).await;
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_beyond_a_stuck_coordinators_queue_are_dropped_and_counted() {
    let (stuck, _queued) = never_answering_listener().await;
    let sim = sim()
        .send_timeout(Duration::from_secs(120))
        .connect_timeout(Duration::from_secs(120))
        .start()
        .await
        .unwrap();
    let node = sim.local_addr();
    let a = coordinator_identity(stuck.local_addr().unwrap().port());
    // unit_info and one output per command: at most one of them on its way (hanging), at most
    // MAX_QUEUED_EVENTS waiting, so two or three are dropped.
    let commands = MAX_QUEUED_EVENTS + 2;
    tokio::time::timeout(TEST_DEADLINE, async {
        for _ in 0..commands {
            request(node, Message::cmd(a.clone(), "echo a")).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(sim.requests(), commands as u64);
    let stats = sim.state().stats();
    assert!((2..=3).contains(&stats.events_lost), "{stats:?}");
    assert_eq!(stats.events_sent, 0);

    // Another coordinator is served all the same.
    let coordinator = coordinator().await;
    let output = run(&coordinator, node, "echo b").await;
    assert_eq!(output, "b\n");
    coordinator.shutdown().await;
    shut_down_in_time(&sim).await;
    drop(stuck);
}
