//! A client that sends requests but never reads the replies, over 127.0.0.1.

use std::time::Duration;

use arkeo_proto::{ClientCodec, Request, Target};
use arkeo_sim::ArkeoSim;
use bytes::BytesMut;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_util::codec::Encoder;

const DEADLINE: Duration = Duration::from_secs(10);

/// Waits (polling) until `condition` holds, at most `within`.
async fn wait_for(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

#[tokio::test]
async fn a_client_that_never_reads_its_replies_is_disconnected_instead_of_holding_a_task_forever() {
    let sim = ArkeoSim::builder()
        .frame_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let started = sim
        .state()
        .handle(&Request::new(Target::Main, "StartRoutine").param("routine", "JV"));
    assert!(!started.is_error(), "{started:?}");
    let client = arkeo_proto::Client::connect(sim.local_addr())
        .await
        .unwrap();
    // Settings large enough that a few GetSettings replies fill the socket buffers.
    let filler = "x".repeat(900 * 1024);
    timeout(DEADLINE, client.apply_settings(json!({ "filler": filler })))
        .await
        .unwrap()
        .unwrap();
    drop(client);
    assert!(wait_for(DEADLINE, || sim.connection_count() == 0).await);

    let mut stream = TcpStream::connect(sim.local_addr()).await.unwrap();
    let mut requests = BytesMut::new();
    for id in 0..64 {
        ClientCodec::new()
            .encode(
                Request::new(Target::Routine, "GetSettings").with_request_id(id),
                &mut requests,
            )
            .unwrap();
    }
    timeout(DEADLINE, stream.write_all(&requests))
        .await
        .unwrap()
        .unwrap();
    // The simulator answers until the buffers are full, then cannot write any more.
    let handled_before = sim.state().requests_handled();
    assert!(
        wait_for(DEADLINE, || sim.state().requests_handled() > handled_before).await,
        "no request handled"
    );
    assert!(
        wait_for(DEADLINE, || sim.connection_count() == 0).await,
        "the connection of a client that does not read is still held"
    );
    // The simulator still serves others.
    let other = arkeo_proto::Client::connect(sim.local_addr())
        .await
        .unwrap();
    let routine = timeout(DEADLINE, other.active_routine()).await.unwrap();
    assert_eq!(routine.unwrap().as_deref(), Some("JV"));
    drop(stream);
    sim.shutdown().await;
}
