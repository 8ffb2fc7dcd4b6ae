//! The shell's timer over a paused tokio clock: it wakes when the table has something due,
//! not in a loop.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use labwire_net::Connector;
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;

use crate::coordinator::{Command, Coordinator, Error};
use crate::message::{Body, Identity, Message};
use crate::sequence::{Row, Sequence, Slot};

const NODE: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5000);

/// A connector to a node that reads each request to its end, reports it on `read` and closes.
fn reading_node(read: mpsc::UnboundedSender<Vec<u8>>) -> impl Fn(SocketAddr) -> Connector {
    move |_| {
        let read = read.clone();
        Connector::from_fn("node", move || {
            let read = read.clone();
            async move {
                let (near, mut far) = tokio::io::duplex(64 * 1024);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    if far.read_to_end(&mut request).await.is_ok() {
                        let _ = read.send(request);
                    }
                });
                Ok::<_, io::Error>(near)
            }
        })
    }
}

#[tokio::test(start_paused = true)]
async fn the_timer_sleeps_from_the_end_of_the_verdict_wait_to_the_calls_deadline() {
    let (read, mut requests) = mpsc::unbounded_channel();
    let me = Identity::new("c", "coordinator", "127.0.0.1", 0, "0", true);
    let coordinator = Coordinator::builder("127.0.0.1:0".parse().unwrap(), me)
        .call_timeout(Duration::from_secs(10))
        .configure(|config| {
            config.verdict_wait = Duration::from_secs(2);
            config.heartbeat_interval = Duration::from_secs(3600);
        })
        .connector(reading_node(read))
        .start()
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let sequence = Sequence::new([Row::LedFan { on: true }]).unwrap();
    let call = tokio::spawn({
        let coordinator = coordinator.clone();
        async move {
            coordinator
                .call(NODE, Command::sequence(&sequence, Slot::Normal))
                .await
        }
    });
    assert!(requests.recv().await.is_some(), "the node got the command");
    // Its output shows boardio was reached; the verdict never comes.
    let identity = Identity::new("n", "node", "127.0.0.1", NODE.port(), "0", false);
    let output = "BOARDIO_CLI: Sent: \"runSeq\" to FIFO file\n".to_owned();
    let event = Message::new(identity, Body::Output { output });
    let peer = SocketAddr::new(NODE.ip(), 40000);
    coordinator.inner.on_received(peer, Ok(event));

    let rounds = || coordinator.inner.timer_rounds.load(Ordering::Relaxed);
    let before = rounds();
    // From before the end of the verdict wait (2 s) to just before the call's deadline
    // (10 s), in steps that each let the timer run: nothing is due, so it never wakes.
    while started.elapsed() < Duration::from_millis(9900) {
        tokio::time::advance(Duration::from_millis(100)).await;
        tokio::task::yield_now().await;
    }
    assert!(!call.is_finished());
    assert_eq!(rounds() - before, 0, "the timer woke with nothing due");
    // Its one wake-up, at the deadline, answers the call.
    let answered = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(answered, Err(Error::Timeout(_))), "{answered:?}");
    let elapsed = started.elapsed();
    assert!(
        (Duration::from_secs(10)..Duration::from_millis(10_100)).contains(&elapsed),
        "{elapsed:?}"
    );
    assert_eq!(rounds() - before, 1);
    coordinator.shutdown().await;
}
