//! The client against the server over loopback sockets.

use std::sync::Arc;
use std::time::Duration;

use comet_socket::client::Error;
use comet_socket::server::{
    Answer, CancellationToken, Handlers, Incoming, ServerBuilder, ServerHandle, Service,
    async_handler_fn, handler_fn, serve, serve_until,
};
use comet_socket::{Client, Frame};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

const DEADLINE: Duration = Duration::from_secs(10);

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn start(handlers: Handlers) -> ServerHandle {
    serve(loopback(), handlers).await.unwrap()
}

fn echo() -> Handlers {
    Handlers::new().handler(handler_fn(|action, value| {
        Ok(if action == "ECHO" {
            value.clone()
        } else {
            Value::Null
        })
    }))
}

/// A server whose `WAIT` handler answers only once `release` is notified.
fn gated(release: Arc<Notify>) -> Handlers {
    Handlers::new().handler(async_handler_fn(move |action: String, value: Value| {
        let release = release.clone();
        async move {
            if action == "WAIT" {
                release.notified().await;
                Ok(json!("released"))
            } else {
                Ok(value)
            }
        }
    }))
}

#[tokio::test]
async fn a_slow_handler_does_not_stall_other_connections() {
    let release = Arc::new(Notify::new());
    let handle = start(gated(release.clone())).await;
    let client = Client::builder(handle.local_addr().to_string()).build();
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.send("WAIT", &json!(1)).await }
    });
    let fast = tokio::time::timeout(DEADLINE, client.send("ECHO", &json!("quick")))
        .await
        .expect("the fast request was not stalled")
        .unwrap();
    assert_eq!(fast, json!("quick"));
    assert!(!slow.is_finished());
    release.notify_one();
    let slow = tokio::time::timeout(DEADLINE, slow).await.unwrap().unwrap();
    assert_eq!(slow.unwrap(), json!("released"));
    handle.shutdown().await;
}

#[tokio::test]
async fn many_concurrent_clients_all_get_their_own_answer() {
    let handle = start(echo()).await;
    let client = Client::builder(handle.local_addr().to_string()).build();
    let calls = (0..200).map(|i| {
        let client = client.clone();
        tokio::spawn(async move { (i, client.send("ECHO", &json!({"n": i})).await) })
    });
    for call in calls {
        let (i, result) = tokio::time::timeout(DEADLINE, call).await.unwrap().unwrap();
        assert_eq!(result.unwrap(), json!({"n": i}));
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn the_client_gives_up_after_its_call_timeout() {
    let release = Arc::new(Notify::new());
    let handle = start(gated(release)).await;
    let client = Client::builder(handle.local_addr().to_string())
        .call_timeout(Duration::from_millis(200))
        .build();
    let err = tokio::time::timeout(DEADLINE, client.send("WAIT", &json!(1)))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(matches!(err, Error::Timeout(_)));
    handle.shutdown().await;
}

#[tokio::test]
async fn connecting_to_a_closed_port_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = Client::builder(addr.to_string())
        .build()
        .send("ECHO", &json!(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    assert!(!err.is_timeout());
}

/// A listener that never accepts, with the smallest backlog: once its queue is full the kernel
/// drops further connection attempts, so a connect hangs until the connect timeout ends it.
#[tokio::test]
async fn the_client_gives_up_after_its_connect_timeout() {
    const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    // Fill the queue; the connections are kept open so that it stays full.
    let mut queued = Vec::new();
    while let Ok(Ok(stream)) =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await
    {
        assert!(queued.len() < 64, "the backlog never filled up");
        queued.push(stream);
    }
    let client = Client::builder(addr.to_string())
        .connect_timeout(CONNECT_TIMEOUT)
        .call_timeout(DEADLINE)
        .build();
    let started = tokio::time::Instant::now();
    let err = tokio::time::timeout(DEADLINE, client.send("ECHO", &json!(1)))
        .await
        .expect("the connect timeout ended the call")
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() >= CONNECT_TIMEOUT);
    drop(listener);
}

#[tokio::test]
async fn the_server_closes_a_connection_that_stalls_past_its_deadline() {
    let handle = ServerBuilder::new(loopback())
        .connection_deadline(Duration::from_millis(200))
        .serve(Handlers::new())
        .await
        .unwrap();
    let mut stream = tokio::net::TcpStream::connect(handle.local_addr())
        .await
        .unwrap();
    // Half a header, then nothing.
    stream.write_all(&[0x00, 0x67, b'{']).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut rest))
        .await
        .expect("the server closed the connection");
    assert!(read.is_ok_and(|n| n == 0) || rest.is_empty());
    handle.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_connections_still_waiting_for_a_handler() {
    let release = Arc::new(Notify::new());
    let handle = start(gated(release)).await;
    let client = Client::builder(handle.local_addr().to_string()).build();
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.send("WAIT", &json!(1)).await }
    });
    assert!(
        labwire_wait(|| handle.connection_count() == 1).await,
        "the call reached the server"
    );
    tokio::time::timeout(DEADLINE, handle.shutdown())
        .await
        .unwrap();
    let err = tokio::time::timeout(DEADLINE, pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Closed
                | Error::Decode(comet_socket::DecodeError::Truncated { .. })
                | Error::Io(_)
        ),
        "{err}"
    );
}

#[tokio::test]
async fn binary_content_gets_comets_binary_answer() {
    let handle = start(echo()).await;
    let client = Client::builder(handle.local_addr().to_string()).build();
    let answer = client
        .exchange(&Frame::binary(
            "binary/custom-client-binary-type",
            &b"0123456789abcdef"[..],
        ))
        .await
        .unwrap();
    assert_eq!(answer.content_type, "binary/custom-server-binary-type");
    assert_eq!(
        &answer.content[..],
        b"First 10 bytes of request: 0123456789"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn malformed_content_is_closed_without_an_answer() {
    let handle = start(echo()).await;
    let client = Client::builder(handle.local_addr().to_string()).build();
    let err = client
        .exchange(&Frame::json(&b"[\"ECHO\", \"x\"]"[..]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Closed), "{err}");
    handle.shutdown().await;
}

#[tokio::test]
async fn send_content_reaches_the_handlers_like_send() {
    let handle = start(echo()).await;
    let client = Client::builder(handle.local_addr().to_string()).build();
    let response = client
        .send_content(&json!({"action": "ECHO", "value": [1, 2], "extra": true}))
        .await
        .unwrap();
    assert_eq!(response.result, json!([1, 2]));
    handle.shutdown().await;
}

/// Polls `condition` until it holds, for at most [`DEADLINE`].
async fn labwire_wait(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    condition()
}

#[tokio::test]
async fn a_panicking_handler_is_skipped_like_a_raising_one_over_a_socket() {
    let server = Handlers::new()
        .handler(handler_fn(|action, _| {
            assert_ne!(action, "BOOM", "handler panicked on purpose");
            Ok(Value::Null)
        }))
        .handler(handler_fn(|action, value| {
            Ok(if action == "BOOM" {
                json!({"second": value.clone()})
            } else {
                Value::Null
            })
        }));
    let handle = start(server).await;
    let client = Client::builder(handle.local_addr().to_string()).build();
    for _ in 0..3 {
        let answer = tokio::time::timeout(DEADLINE, client.send("BOOM", &json!(7)))
            .await
            .expect("answered in time")
            .unwrap();
        assert_eq!(answer, json!({"second": 7}));
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn an_echo_keeps_object_keys_in_the_order_sent_byte_for_byte() {
    let handle = start(echo()).await;
    let content = r#"{"action": "ECHO", "value": {"b": 1, "a": 2, "z": {"y": [{"d": 1, "c": 2}], "x": "é"}}}"#;
    let request = comet_socket::wire::encode_to_bytes(
        &Frame::json(content.as_bytes().to_vec()),
        &comet_socket::Limits::default(),
    )
    .unwrap();
    let mut stream = tokio::net::TcpStream::connect(handle.local_addr())
        .await
        .unwrap();
    stream.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("answered in time")
        .unwrap();
    let (frame, _) = comet_socket::wire::decode(&answer, &comet_socket::Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&frame.content).unwrap(),
        r#"{"result": {"b": 1, "a": 2, "z": {"y": [{"d": 1, "c": 2}], "x": "é"}}}"#
    );
    handle.shutdown().await;
}

/// Sends `bytes` on a fresh connection and returns what came back before the server closed
/// (a reset, from closing with our bytes unread, counts as nothing back).
async fn raw_answer(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(bytes).await?;
        let mut answer = Vec::new();
        match stream.read_to_end(&mut answer).await {
            Ok(_) => Ok(answer),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(answer),
            Err(e) => Err(e),
        }
    };
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("the server closed in time")
        .unwrap()
}

#[tokio::test]
async fn malformed_headers_are_closed_without_an_answer_and_the_server_keeps_serving() {
    let handle = start(echo()).await;
    let framed = |header: &str, content: &[u8]| {
        let mut bytes = u16::try_from(header.len()).unwrap().to_be_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(content);
        bytes
    };
    let content = br#"{"action": "ECHO", "value": 1}"#;
    let cases: [(&str, Vec<u8>); 5] = [
        (
            "missing content-encoding",
            framed(
                r#"{"byteorder": "little", "content-type": "text/json", "content-length": 30}"#,
                content,
            ),
        ),
        ("header not JSON", framed("{not json", content)),
        ("header not an object", framed("[1, 2]", content)),
        // The prefix claims 65535 header bytes: over the limit after 2 bytes.
        ("header over the limit", vec![0xff, 0xff, b'{']),
        (
            "content over the limit",
            framed(
                r#"{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": 99999999999}"#,
                content,
            ),
        ),
    ];
    for (name, bytes) in cases {
        assert_eq!(raw_answer(handle.local_addr(), &bytes).await, b"", "{name}");
    }
    let client = Client::builder(handle.local_addr().to_string()).build();
    assert_eq!(
        client.send("ECHO", &json!("still here")).await.unwrap(),
        json!("still here")
    );
    handle.shutdown().await;
}

/// A device of one's own instead of a handler chain: answers `Temperature`, and leaves the
/// rest to COMET's default answers.
struct Thermometer;

impl Service for Thermometer {
    type Request = Incoming;
    type Response = Answer;

    async fn call(&self, _peer: std::net::SocketAddr, request: Incoming) -> Answer {
        match request {
            Incoming::Request(r) if r.action == "Temperature" => Answer::result(json!(21.5)),
            other => other.default_answer(),
        }
    }
}

#[tokio::test]
async fn an_own_service_is_served_like_the_handler_chain_until_its_token_is_cancelled() {
    let shutdown = CancellationToken::new();
    let handle = serve_until(loopback(), Thermometer, shutdown.clone())
        .await
        .unwrap();
    let client = Client::builder(handle.local_addr().to_string())
        .call_timeout(DEADLINE)
        .build();
    assert_eq!(
        client.send("Temperature", &json!(1)).await.unwrap(),
        json!(21.5)
    );
    assert_eq!(client.send("Other", &json!(1)).await.unwrap(), Value::Null);
    let invalid = client
        .send_content(&json!({"action": "Temperature"}))
        .await
        .unwrap();
    assert_eq!(
        invalid.result,
        json!("Error: invalid action and or value Temperature, None")
    );
    let malformed = client
        .exchange(&Frame::json(&b"[1]"[..]))
        .await
        .unwrap_err();
    assert!(matches!(malformed, Error::Closed), "{malformed}");
    shutdown.cancel();
    tokio::time::timeout(DEADLINE, handle.shutdown())
        .await
        .unwrap();
    assert!(client.send("Temperature", &json!(1)).await.is_err());
}
