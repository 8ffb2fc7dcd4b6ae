//! The `la4-sim` binary: starts, announces its address, answers, and exits cleanly on SIGTERM.

use std::time::Duration;

use labwire_simkit::bin_test::SimProcess;
use pycom_proto::transport::{read_message, send_message};
use pycom_proto::{Body, Identity, Limits, Message};

const DEADLINE: Duration = Duration::from_secs(10);

async fn next_event(listener: &tokio::net::TcpListener) -> Message {
    let (mut stream, _) = tokio::time::timeout(DEADLINE, listener.accept())
        .await
        .unwrap()
        .unwrap();
    read_message(&mut stream, &Limits::default(), DEADLINE)
        .await
        .unwrap()
}

#[tokio::test]
async fn binary_announces_answers_and_stops_on_sigterm() {
    let sim = SimProcess::spawn(
        env!("CARGO_BIN_EXE_la4-sim"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--boot-ms",
            "0",
            "--no-discovery",
            "--id",
            "0000abcd",
            "--name",
            "bench-node",
        ],
    )
    .unwrap();
    let addr = sim.addr();
    assert!(addr.ip().is_loopback());

    let events = labwire_net::bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
    let me = Identity::new(
        "7756f193",
        "test",
        "127.0.0.1",
        events.local_addr().unwrap().port(),
        "0.1.0",
        true,
    );
    send_message(
        addr,
        &Message::cmd(me, "echo hello"),
        &Limits::default(),
        DEADLINE,
        true,
    )
    .await
    .unwrap();
    // First contact as a coordinator after boot: unit_info, then the command's output.
    let first = next_event(&events).await;
    assert!(matches!(first.body, Body::UnitInfo(_)), "{first:?}");
    assert_eq!(first.identity.id, "0000abcd");
    assert_eq!(first.identity.name, "bench-node");
    assert_eq!(first.identity.port, addr.port());
    assert!(!first.identity.coordinator);
    let second = next_event(&events).await;
    assert_eq!(
        second.body,
        Body::Output {
            output: "hello\n".into()
        }
    );

    let status = tokio::task::spawn_blocking(move || sim.terminate())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn fleet_mode_announces_every_node() {
    let mut sim = SimProcess::spawn(
        env!("CARGO_BIN_EXE_la4-sim"),
        &["--listen", "127.0.0.1:0", "--nodes", "3", "--no-discovery"],
    )
    .unwrap();
    let mut addrs = vec![sim.addr()];
    for _ in 1..3 {
        addrs.push(sim.next_addr().unwrap());
    }
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 3);
    assert!(sim.terminate().unwrap().success());
}
