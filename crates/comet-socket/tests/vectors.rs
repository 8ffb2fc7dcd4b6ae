//! The golden vectors recorded from COMET's own Python client and server, both directions,
//! byte for byte: encoding, decoding, dispatch, and over real sockets.

use std::time::Duration;

use comet_socket::dispatch::{Incoming, classify};
use comet_socket::server::{Handlers, ServerHandle, handler_fn, serve};
use comet_socket::{Client, Limits, Request, Response, ServerCodec, wire};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::Encoder as _;

const VECTORS: &str = include_str!("data/comet.jsonl");
const DEADLINE: Duration = Duration::from_secs(10);

struct Vector {
    name: String,
    action: Option<String>,
    value: Option<Value>,
    request: Vec<u8>,
    response: Vec<u8>,
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn vectors() -> Vec<Vector> {
    let vectors: Vec<Vector> = VECTORS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            Vector {
                name: v["name"].as_str().unwrap().to_owned(),
                action: v.get("action").and_then(Value::as_str).map(str::to_owned),
                value: v.get("value").cloned(),
                request: unhex(v["request_hex"].as_str().unwrap()),
                response: unhex(v["response_hex"].as_str().unwrap_or("")),
            }
        })
        .collect();
    assert_eq!(vectors.len(), 18, "all vectors present");
    vectors
}

/// The handlers COMET ran when the vectors were recorded: ECHO answers the value; FAIL raises
/// and EMPTY answers "" in the first handler, and a second handler answers both.
fn comet_like_server() -> Handlers {
    Handlers::new()
        .handler(handler_fn(|action, value| match action {
            "ECHO" => Ok(value.clone()),
            "FAIL" => Err("raised".into()),
            "EMPTY" => Ok(json!("")),
            _ => Ok(Value::Null),
        }))
        .handler(handler_fn(|action, _| {
            Ok(match action {
                "FAIL" | "EMPTY" => json!("second handler"),
                _ => Value::Null,
            })
        }))
}

async fn serve_comet_like() -> ServerHandle {
    serve("127.0.0.1:0".parse().unwrap(), comet_like_server())
        .await
        .unwrap()
}

#[test]
fn requests_we_encode_match_comets_bytes() {
    let mut checked = 0;
    for v in vectors() {
        let (Some(action), Some(value)) = (&v.action, &v.value) else {
            continue;
        };
        let frame = Request::new(action.clone(), value.clone())
            .to_frame()
            .unwrap();
        let bytes = wire::encode_to_bytes(&frame, &Limits::default()).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&v.request),
            "{}",
            v.name
        );
        assert_eq!(&bytes[..], &v.request[..], "{}", v.name);
        checked += 1;
    }
    assert_eq!(checked, 12);
}

#[test]
fn every_request_decodes_whole_and_classifies_as_comet_did() {
    for v in vectors() {
        let (frame, used) = wire::decode(&v.request, &Limits::default())
            .unwrap()
            .unwrap_or_else(|| panic!("{}: incomplete", v.name));
        assert_eq!(used, v.request.len(), "{}", v.name);
        let incoming = classify(&frame);
        match v.name.as_str() {
            "invalid_json_no_answer" | "content_not_object_no_answer" => {
                assert!(incoming.is_err(), "{}", v.name)
            }
            "binary_content_type" => {
                assert!(matches!(incoming, Ok(Incoming::Binary(_))), "{}", v.name)
            }
            name if name.starts_with("falsy_")
                || name == "value_dict_repr"
                || name == "missing_value"
                || name == "empty_action_with_dict_value" =>
            {
                assert!(matches!(incoming, Ok(Incoming::Invalid(_))), "{name}")
            }
            name => {
                let Ok(Incoming::Request(request)) = incoming else {
                    panic!("{name}: {incoming:?}");
                };
                if let Some(value) = &v.value {
                    assert_eq!(&request.value, value, "{name}");
                }
            }
        }
    }
}

#[tokio::test]
async fn our_answers_match_comets_bytes() {
    let server = comet_like_server();
    for v in vectors() {
        let (frame, _) = wire::decode(&v.request, &Limits::default())
            .unwrap()
            .unwrap();
        // A silent close encodes as nothing, the empty response of the vectors.
        let answer = server.answer(Incoming::from_frame(&frame)).await;
        let mut bytes = bytes::BytesMut::new();
        ServerCodec::new().encode(answer, &mut bytes).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&v.response),
            "{}",
            v.name
        );
        assert_eq!(&bytes[..], &v.response[..], "{}", v.name);
    }
}

#[test]
fn comets_answers_decode() {
    for v in vectors().iter().filter(|v| !v.response.is_empty()) {
        let (frame, used) = wire::decode(&v.response, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(used, v.response.len());
        if v.name == "binary_content_type" {
            assert!(!frame.is_json());
            assert_eq!(&frame.content[..], b"First 10 bytes of request: hello worl");
            continue;
        }
        let response = Response::from_frame(&frame).unwrap();
        if v.action.as_deref() == Some("ECHO")
            && let Some(value) = &v.value
            && !v.name.starts_with("falsy")
            && v.name != "value_dict_repr"
        {
            assert_eq!(&response.result, value, "{}", v.name);
        }
        assert_eq!(
            wire::encode_to_bytes(&response.to_frame().unwrap(), &Limits::default()).unwrap(),
            v.response,
            "{}: re-encoding",
            v.name
        );
    }
}

#[tokio::test]
async fn over_a_socket_every_vector_gets_comets_exact_answer_or_a_silent_close() {
    let handle = serve_comet_like().await;
    for v in vectors() {
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(handle.local_addr()).await?;
            stream.write_all(&v.request).await?;
            // COMET never waits for EOF: the answer must come while our side stays open.
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await?;
            std::io::Result::Ok(answer)
        };
        let answer = tokio::time::timeout(DEADLINE, exchange)
            .await
            .unwrap_or_else(|_| panic!("{}: no answer", v.name))
            .unwrap();
        assert_eq!(answer, v.response, "{}", v.name);
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn trailing_bytes_after_the_frame_are_ignored() {
    let handle = serve_comet_like().await;
    let v = vectors().into_iter().next().unwrap();
    let mut stream = tokio::net::TcpStream::connect(handle.local_addr())
        .await
        .unwrap();
    let mut bytes = v.request.clone();
    bytes.extend_from_slice(b"trailing garbage \x00\xff");
    stream.write_all(&bytes).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer, v.response);
    handle.shutdown().await;
}

#[tokio::test]
async fn our_client_gets_the_vectors_results() {
    let handle = serve_comet_like().await;
    let client = Client::builder(handle.local_addr().to_string()).build();
    for (action, value, expected) in [
        ("ECHO", json!("hello"), json!("hello")),
        (
            "ECHO",
            json!({"k": "välue", "n": [1, 2.5, null, true]}),
            json!({"k": "välue", "n": [1, 2.5, null, true]}),
        ),
        ("PING", json!("x"), Value::Null),
        ("FAIL", json!("x"), json!("second handler")),
        ("EMPTY", json!("x"), json!("second handler")),
    ] {
        let result = client.send(action, &value).await.unwrap();
        assert_eq!(result, expected, "{action}");
    }
    handle.shutdown().await;
}
