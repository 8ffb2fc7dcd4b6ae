//! The client's kept connection against a misbehaving server on 127.0.0.1.
#![cfg(feature = "client")]

use std::time::Duration;

use pekat_proto::{Client, ProjectState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

/// What one read brings; empty at EOF or when the client reset the connection (closing a socket
/// with unread bytes does that).
async fn read_request(stream: &mut TcpStream) -> Vec<u8> {
    let mut buf = vec![0u8; 512];
    let n = stream.read(&mut buf).await.unwrap_or(0);
    buf.truncate(n);
    buf
}

/// Bytes a server sends on an idle kept connection, unasked, answer no request: the next call
/// must not take them for its answer.
#[tokio::test]
async fn unsolicited_bytes_on_an_idle_kept_connection_are_never_taken_as_the_next_answer() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (answered_tx, answered_rx) = oneshot::channel::<()>();
    let (stray_tx, stray_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (mut first, _) = listener.accept().await.unwrap();
        assert!(read_request(&mut first).await.starts_with(b"start:"));
        first.write_all(b"done").await.unwrap();
        // Once the client has its answer, a stray answer nobody asked for.
        answered_rx.await.unwrap();
        first.write_all(b"running").await.unwrap();
        stray_tx.send(()).unwrap();
        // Whichever connection the next request comes on, its true answer is `stopped`.
        let mut fresh = None;
        let mut request = tokio::select! {
            request = read_request(&mut first) => request,
            accepted = listener.accept() => {
                let (mut stream, _) = accepted.unwrap();
                let request = read_request(&mut stream).await;
                fresh = Some(stream);
                request
            }
        };
        if request.is_empty() && fresh.is_none() {
            // The client dropped the first connection: the request comes on a new one.
            let (mut stream, _) = listener.accept().await.unwrap();
            request = read_request(&mut stream).await;
            fresh = Some(stream);
        }
        assert!(request.starts_with(b"status:"), "{request:?}");
        let stream = fresh.as_mut().unwrap_or(&mut first);
        stream.write_all(b"stopped").await.unwrap();
        // Keep the sockets open until the client has read the answer.
        let _ = read_request(stream).await;
    });

    let client = Client::builder(addr.to_string())
        .keep_connection(true)
        .call_timeout(LIMIT)
        .blocking_timeout(LIMIT)
        .build();
    timeout(LIMIT, client.start(r"C:\p"))
        .await
        .unwrap()
        .unwrap();
    answered_tx.send(()).unwrap();
    timeout(LIMIT, stray_rx).await.unwrap().unwrap();

    let state = timeout(LIMIT, client.status(r"C:\p")).await.unwrap();
    assert_eq!(state.unwrap(), ProjectState::Stopped);
    drop(client);
    timeout(LIMIT, server).await.unwrap().unwrap();
}
