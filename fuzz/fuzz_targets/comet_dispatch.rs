//! COMET dispatch: frames as a client sends them, decoded by comet-socket's own `ServerCodec`
//! (512-byte header and 2 KiB content limits), sorted as COMET sorts them (`dispatch`) and
//! answered by a `Handlers` chain, as every COMET server built on comet-socket answers (COMET
//! takes one request per connection; each frame here is one such exchange).
//!
//! The chain: fixed answers (`Status` → `"running"`, `Zero` → `0`, falsy, so it passes), a
//! handler that fails on `FAIL`, one that panics on `PANIC`, an echo for `ECHO`, `FAIL` and
//! `PANIC`, and an async handler for `ASYNC`. Contract, for every frame: exactly one answer, at
//! the first poll (these handlers never wait): a valid request gets `{"result": r}` with `r` the
//! first truthy handler result (a failing or panicking handler passes to the next; `null` when
//! none answers); an invalid one COMET's error string; binary content COMET's binary answer
//! (the prefix and the first 10 content bytes); malformed content a close, with nothing sent.
//! Every answer encodes within the default limits and a client decodes it back to the same
//! frame, and a response to the same response.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::sync::Once;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use comet_socket::dispatch::{Answer, BINARY_ANSWER_PREFIX, Incoming, binary_answer};
use comet_socket::json::is_truthy;
use comet_socket::message::DeviceError;
use comet_socket::server::{Handlers, async_handler_fn, handler_fn};
use comet_socket::{CometCodec, Limits, Response, ServerCodec};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use tokio_util::codec::{Decoder, Encoder};

/// The panic the `PANIC` handler raises on purpose; the panic hook lets only this one unwind
/// (to the chain's `catch_unwind`) instead of aborting as libFuzzer's hook does.
const DELIBERATE: &str = "the PANIC handler panics on purpose";

const LIMITS: Limits = Limits {
    max_header_length: 512,
    max_content_length: 2048,
};

fn handlers() -> Handlers {
    Handlers::new()
        .handler(handler_fn(|action, _| {
            Ok(match action {
                "Status" => json!("running"),
                "Zero" => json!(0),
                _ => Value::Null,
            })
        }))
        .handler(handler_fn(|action, _| {
            if action == "FAIL" {
                Err("refused on purpose".into())
            } else {
                Ok(Value::Null)
            }
        }))
        .handler(handler_fn(|action, _| {
            if action == "PANIC" {
                std::panic::panic_any(DELIBERATE);
            }
            Ok(Value::Null)
        }))
        .handler(handler_fn(|action, value| {
            Ok(match action {
                "ECHO" | "FAIL" | "PANIC" => value.clone(),
                _ => Value::Null,
            })
        }))
        .handler(async_handler_fn(
            |action: String, _value: Value| async move {
                Ok(if action == "ASYNC" {
                    json!({"async": true})
                } else {
                    Value::Null
                })
            },
        ))
}

/// What the chain answers, worked out independently.
fn expected(action: &str, value: &Value) -> Value {
    match action {
        "Status" => json!("running"),
        "ECHO" | "FAIL" | "PANIC" => value.clone(),
        "ASYNC" => json!({"async": true}),
        _ => Value::Null,
    }
}

fn let_the_deliberate_panic_unwind() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&DELIBERATE) {
                previous(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    let_the_deliberate_panic_unwind();
    let handlers = handlers();
    let mut codec = ServerCodec::with_limits(LIMITS);
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        let incoming = match codec.decode(&mut buf) {
            Ok(Some(incoming)) => incoming,
            // A partial frame waits; a bad header ends the connection (comet_frame checks these).
            Ok(None) | Err(_) => break,
        };
        assert!(buf.len() < before, "a frame consumed nothing");
        let future = pin!(handlers.answer(incoming.clone()));
        let Poll::Ready(answer) = poll_once(future) else {
            panic!("handlers that never wait did not answer at once");
        };
        check_answer(&incoming, &answer);
        check_encoded(answer);
    }
});

fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

fn check_answer(incoming: &Incoming, answer: &Answer) {
    match incoming {
        Incoming::Request(request) => {
            // A non-finite value (Python's `nan`, truthy) is dispatched as `null`.
            assert!(!request.action.is_empty());
            assert!(is_truthy(&request.value) || request.value.is_null());
            assert_eq!(
                answer,
                &Answer::result(expected(&request.action, &request.value))
            );
        }
        Incoming::Invalid(invalid) => {
            let text = invalid.comet_answer();
            assert!(text.starts_with(DeviceError::INVALID_REQUEST_PREFIX));
            assert_eq!(answer, &Answer::result(Value::String(text)));
        }
        Incoming::Binary(frame) => {
            assert!(!frame.is_json());
            let Answer::Frame(reply) = answer else {
                panic!("binary content answered {answer:?}");
            };
            assert_eq!(reply, &binary_answer(frame));
            let head = &frame.content[..frame.content.len().min(10)];
            assert_eq!(&reply.content[..], [BINARY_ANSWER_PREFIX, head].concat());
        }
        Incoming::Malformed(_) => assert_eq!(answer, &Answer::Close),
        other => panic!("an incoming kind this target does not know: {other:?}"),
    }
}

/// The answer encodes as the server writes it, and a client reads back the same frame.
fn check_encoded(answer: Answer) {
    let mut bytes = BytesMut::new();
    ServerCodec::new()
        .encode(answer.clone(), &mut bytes)
        .expect("an answer encodes");
    let Some(frame) = answer
        .clone()
        .into_frame()
        .expect("an answer has a frame or none")
    else {
        assert!(bytes.is_empty(), "a close or hold sends nothing");
        return;
    };
    let total = bytes.len();
    let read = CometCodec::new()
        .decode(&mut bytes)
        .expect("the client decodes the answer")
        .expect("the answer is one whole frame");
    assert!(bytes.is_empty(), "{} of {total} bytes left", bytes.len());
    assert_eq!(read, frame);
    if let Answer::Response(response) = answer {
        assert_eq!(Response::from_frame(&read).ok(), Some(response));
    }
}
