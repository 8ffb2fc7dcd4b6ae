//! `frame_timeout(Duration::MAX)`, "no limit", over 127.0.0.1.

use std::time::Duration;

use arkeo_proto::{ClientCodec, Request, Target};
use arkeo_sim::ArkeoSim;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::codec::{Decoder, Encoder};

const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_frame_in_two_pieces_is_answered_when_frames_have_no_time_limit() {
    let sim = ArkeoSim::builder()
        .frame_timeout(Duration::MAX)
        .start()
        .await
        .unwrap();
    let mut stream = TcpStream::connect(sim.local_addr()).await.unwrap();
    let mut frame = BytesMut::new();
    ClientCodec::new()
        .encode(
            Request::new(Target::Main, "GetActiveRoutine").with_request_id(7),
            &mut frame,
        )
        .unwrap();
    let (head, tail) = frame.split_at(3);
    stream.write_all(head).await.unwrap();
    // Usually read by the simulator on its own, which starts the frame's (unlimited) deadline;
    // either way the request must be answered.
    tokio::task::yield_now().await;
    stream.write_all(tail).await.unwrap();
    let mut codec = ClientCodec::new();
    let mut buf = BytesMut::new();
    let response = timeout(DEADLINE, async {
        loop {
            if let Some(response) = codec.decode(&mut buf).unwrap() {
                return Some(response);
            }
            if stream.read_buf(&mut buf).await.unwrap() == 0 {
                return None;
            }
        }
    })
    .await
    .unwrap()
    .expect("the connection was closed instead of answered");
    assert_eq!(response.request_id, Some(7));
    sim.shutdown().await;
}
