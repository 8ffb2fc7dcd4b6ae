//! Client edge cases against fake devices on 127.0.0.1.
#![cfg(feature = "client")]

use std::time::Duration;

use arkeo_proto::{Client, Request, Response, ServerCodec};
use bytes::BytesMut;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_util::codec::{Decoder, Encoder};

const DEADLINE: Duration = Duration::from_secs(10);

/// The next request a fake device reads on `stream`, or `None` at EOF or reset.
async fn next_request(stream: &mut TcpStream, buf: &mut BytesMut) -> Option<Request> {
    loop {
        if let Some(request) = ServerCodec::new().decode(buf).unwrap() {
            return Some(request.unwrap());
        }
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// The frame a fake device writes for `response`.
fn frame(response: &Response) -> BytesMut {
    let mut out = BytesMut::new();
    ServerCodec::new().encode(response, &mut out).unwrap();
    out
}

mod unsolicited {
    use super::*;

    /// A device that sends, after a reply, the start of a frame nobody asked for: the rest of
    /// that frame would come in front of the next reply. The connection is out of step and
    /// must not be used for the next call.
    #[tokio::test]
    async fn bytes_left_after_a_reply_are_not_the_start_of_the_next_one() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let device = tokio::spawn(async move {
            let (mut first, _) = listener.accept().await.unwrap();
            let mut buf = BytesMut::new();
            let request = next_request(&mut first, &mut buf).await.unwrap();
            let stray = frame(&Response::ok(json!("stray"), None));
            let (stray_head, stray_tail) = stray.split_at(2);
            let mut out = frame(&Response::ok(json!("first"), request.request_id));
            out.extend_from_slice(stray_head);
            first.write_all(&out).await.unwrap();
            match next_request(&mut first, &mut buf).await {
                Some(request) => {
                    // The same connection: the stray frame's rest, then the reply.
                    let mut out = BytesMut::from(stray_tail);
                    out.extend_from_slice(&frame(&Response::ok(
                        json!("second"),
                        request.request_id,
                    )));
                    first.write_all(&out).await.unwrap();
                    let _ = next_request(&mut first, &mut buf).await;
                }
                None => {
                    let (mut second, _) = listener.accept().await.unwrap();
                    let mut buf = BytesMut::new();
                    let request = next_request(&mut second, &mut buf).await.unwrap();
                    let reply = frame(&Response::ok(json!("second"), request.request_id));
                    second.write_all(&reply).await.unwrap();
                    let _ = next_request(&mut second, &mut buf).await;
                }
            }
        });
        let arkeo = Client::builder(addr)
            .call_timeout(Duration::from_secs(2))
            .build();
        let first = arkeo
            .command(arkeo_proto::Target::Main, "A", serde_json::Value::Null)
            .await
            .unwrap();
        assert_eq!(first, json!("first"));
        let second = arkeo
            .command(arkeo_proto::Target::Main, "B", serde_json::Value::Null)
            .await
            .unwrap();
        assert_eq!(second, json!("second"));
        drop(arkeo);
        timeout(DEADLINE, device).await.unwrap().unwrap();
    }
}

mod sequencing {
    use super::*;
    use arkeo_proto::Error;

    /// The device forbids pipelining: while a request is unanswered, a client must not send
    /// the next one, however many clones call at once. The fake device reads one request,
    /// checks that nothing more arrives before it answers, and only then replies.
    #[tokio::test]
    async fn concurrent_calls_from_clones_are_never_pipelined() {
        const CALLS: usize = 6;
        /// Long enough for a pipelined request (already written to loopback) to arrive.
        const WINDOW: Duration = Duration::from_millis(30);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let device = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = BytesMut::new();
            for _ in 0..CALLS {
                let Some(request) = next_request(&mut stream, &mut buf).await else {
                    panic!("client left");
                };
                assert!(buf.is_empty(), "a second request came with the first");
                let early = timeout(WINDOW, stream.read_buf(&mut buf)).await;
                assert!(
                    early.is_err(),
                    "the next request arrived before this one was answered"
                );
                let reply = Response::ok(json!(request.command), request.request_id);
                stream.write_all(&frame(&reply)).await.unwrap();
            }
        });
        let arkeo = Client::builder(addr).call_timeout(DEADLINE).build();
        let calls: Vec<_> = (0..CALLS)
            .map(|n| {
                let arkeo = arkeo.clone();
                tokio::spawn(async move {
                    let command = format!("Call{n}");
                    let data = arkeo
                        .command(arkeo_proto::Target::Main, &command, serde_json::Value::Null)
                        .await
                        .unwrap();
                    assert_eq!(data, json!(command), "a call got another call's reply");
                })
            })
            .collect();
        timeout(DEADLINE, async {
            for call in calls {
                call.await.unwrap();
            }
            device.await.unwrap();
        })
        .await
        .unwrap();
    }

    /// A request too large for the frame limit fails as an encode error before anything is
    /// sent or connected: the first connection the device sees carries the next call, and
    /// the shared frame buffer holds nothing of the refused request.
    #[tokio::test]
    async fn a_request_that_cannot_be_encoded_never_connects() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let device = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = BytesMut::new();
            let request = next_request(&mut stream, &mut buf).await.unwrap();
            assert_eq!(request.command, "Small");
            assert!(buf.is_empty(), "more than the one request arrived");
            let reply = Response::ok(json!("small"), request.request_id);
            stream.write_all(&frame(&reply)).await.unwrap();
            let _ = next_request(&mut stream, &mut buf).await;
        });
        let arkeo = Client::builder(addr)
            .call_timeout(DEADLINE)
            .limits(arkeo_proto::Limits {
                max_frame_length: 256,
            })
            .build();
        let large = arkeo
            .command(
                arkeo_proto::Target::Main,
                "Large",
                json!({ "text": "x".repeat(300) }),
            )
            .await
            .unwrap_err();
        assert!(matches!(large, Error::Encode(_)), "{large:?}");
        assert!(!large.is_connection_fatal());
        let small = arkeo
            .command(arkeo_proto::Target::Main, "Small", serde_json::Value::Null)
            .await
            .unwrap();
        assert_eq!(small, json!("small"));
        drop(arkeo);
        timeout(DEADLINE, device).await.unwrap().unwrap();
    }

    /// A listener that never accepts, with the smallest backlog: once its queue is full the
    /// kernel drops further connection attempts, so a connect hangs until the client's
    /// connect timeout ends it.
    #[tokio::test]
    async fn a_connect_that_hangs_ends_at_the_connect_timeout() {
        const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        let err = timeout(DEADLINE, async {
            loop {
                let started = tokio::time::Instant::now();
                match Client::builder(addr)
                    .connect_timeout(CONNECT_TIMEOUT)
                    .connect()
                    .await
                {
                    // Fills the listener's queue; kept open so that it stays full.
                    Ok(client) => {
                        assert!(queued.len() < 64, "the backlog never filled up");
                        queued.push(client);
                    }
                    Err(err) => break (err, started.elapsed()),
                }
            }
        })
        .await
        .unwrap();
        let (err, took) = err;
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        assert!(err.is_timeout() && err.is_connection_fatal(), "{err:?}");
        assert!(took >= CONNECT_TIMEOUT, "gave up after {took:?}");
        drop(listener);
    }
}

mod deadlines {
    use super::*;
    use tokio::time::Instant;

    /// A device on one connection: answers each request after the delay `delays` gives it
    /// (`None`: never), in order.
    async fn slow_device(delays: Vec<Option<Duration>>) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = BytesMut::new();
            for delay in delays {
                let Some(request) = next_request(&mut stream, &mut buf).await else {
                    return;
                };
                let Some(delay) = delay else {
                    // Hold the connection without answering until the client drops it.
                    let _ = next_request(&mut stream, &mut buf).await;
                    return;
                };
                tokio::time::sleep(delay).await;
                let reply = frame(&Response::ok(json!("late"), request.request_id));
                if stream.write_all(&reply).await.is_err() {
                    return;
                }
            }
        });
        addr
    }

    /// The connection keeps its timer from call to call: where an earlier call's deadline
    /// left it must not cut short a later call that has longer.
    #[tokio::test(start_paused = true)]
    async fn an_earlier_calls_deadline_does_not_end_a_later_longer_call() {
        let addr = slow_device(vec![Some(Duration::ZERO), Some(Duration::from_secs(3))]).await;
        let arkeo = Client::builder(addr)
            .call_timeout(Duration::from_secs(1))
            .build();
        let request = || Request::new(arkeo_proto::Target::Main, "A");
        arkeo.call(request()).await.unwrap();
        let reply = arkeo
            .call_with_timeout(request(), Duration::from_secs(10))
            .await
            .unwrap();
        assert!(!reply.is_error());
    }

    /// A call with a shorter timeout than the one before it ends at its own deadline.
    #[tokio::test(start_paused = true)]
    async fn a_shorter_timeout_after_a_longer_one_ends_at_its_own_deadline() {
        let addr = slow_device(vec![Some(Duration::ZERO), None]).await;
        let arkeo = Client::builder(addr)
            .call_timeout(Duration::from_secs(60))
            .build();
        let request = || Request::new(arkeo_proto::Target::Main, "A");
        arkeo.call(request()).await.unwrap();
        let start = Instant::now();
        let error = arkeo
            .call_with_timeout(request(), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            matches!(error, arkeo_proto::client::Error::Timeout(t) if t == Duration::from_secs(1))
        );
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    /// Calls with the same timeout, one after another, each get all of it.
    #[tokio::test(start_paused = true)]
    async fn every_call_gets_its_whole_timeout() {
        let second = Duration::from_secs(1);
        let addr = slow_device(vec![Some(second * 3 / 4); 4]).await;
        let arkeo = Client::builder(addr).call_timeout(second).build();
        for _ in 0..4 {
            let request = Request::new(arkeo_proto::Target::Main, "A");
            assert!(!arkeo.call(request).await.unwrap().is_error());
        }
    }
}
