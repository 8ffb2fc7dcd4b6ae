//! The `la4-sim` binary: starts, announces its address, answers, and exits cleanly on SIGTERM.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use pycom_proto::transport::{read_message, send_message};
use pycom_proto::{Body, Identity, Limits, Message};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_la4-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--boot-ms",
            "0",
            "--no-discovery",
        ])
        .args(["--id", "0000abcd", "--name", "bench-node"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr: SocketAddr = first
        .strip_prefix("listening on ")
        .expect("first line announces the address")
        .parse()
        .unwrap();
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

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn fleet_mode_announces_every_node() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_la4-sim"))
        .args(["--listen", "127.0.0.1:0", "--nodes", "3", "--no-discovery"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let addr: SocketAddr = line.strip_prefix("listening on ").unwrap().parse().unwrap();
        addrs.push(addr);
    }
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 3);
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}
