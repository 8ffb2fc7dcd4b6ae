//! Parsing and writing PEKAT messages, each group against its floor: a minimal, strict hand
//! parse of the same bytes into the same typed value (or a hand write of the same bytes). A
//! text protocol has no `serde_json` to compare with; the least work any parser must do to get
//! the typed message is the real floor. `cargo xtask bench` prints each as a ratio to its
//! group's `baseline`.
//!
//! The library does more than the floor on the way (it is lenient: either dialect's answers,
//! any case, surrounding whitespace, line endings); on valid input that must cost next to
//! nothing.

use std::hint::black_box;

use bytes::{BufMut, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};
use pekat_proto::wire;
use pekat_proto::{
    Command, DEFAULT_MAX_RESPONSE_LEN, Dialect, ProjectState, Reply, Request, RequestId, Response,
};

/// The vendor's example path: a small request.
const PATH: &str = r"C:\Users\pekat\PekatVisionProjects\Test Project 1";

/// A long (but valid) Windows path: a large request.
fn long_path() -> String {
    let mut path = String::from(r"C:\Users\pekat\PekatVisionProjects");
    while path.len() < 4000 {
        path.push_str(r"\Line 7 station B");
    }
    path
}

/// The floor for a request: find the separator, read an id before a `.`, match the command,
/// check the path is UTF-8 and own it.
#[inline(never)]
fn hand_parse_request(bytes: &[u8], separator: u8) -> Option<Request> {
    let at = bytes.iter().position(|&b| b == separator)?;
    let (head, path) = (bytes.get(..at)?, bytes.get(at + 1..)?);
    let (id, command) = match head.iter().position(|&b| b == b'.') {
        Some(dot) => {
            let id = std::str::from_utf8(head.get(..dot)?).ok()?;
            (Some(RequestId::new(id).ok()?), head.get(dot + 1..)?)
        }
        None => (None, head),
    };
    let command = match command {
        b"start" => Command::Start,
        b"stop" => Command::Stop,
        b"status" => Command::Status,
        b"switch" => Command::Switch,
        _ => return None,
    };
    let path = std::str::from_utf8(path).ok()?.to_owned();
    Some(Request { id, command, path })
}

/// The floor for an answer: an id before a `.`, then the exact text of a known answer.
///
/// Out of line, as every floor here is: the library's functions are called across a crate
/// boundary (one call each, never inlined into the loop), and at a few nanoseconds a floor
/// inlined into the benchmark's loop would be easier than the job by the call alone.
#[inline(never)]
fn hand_parse_reply(bytes: &[u8]) -> Option<Reply> {
    let (id, text) = match bytes.iter().position(|&b| b == b'.') {
        Some(dot) => {
            let id = std::str::from_utf8(bytes.get(..dot)?).ok()?;
            (Some(RequestId::new(id).ok()?), bytes.get(dot + 1..)?)
        }
        None => (None, bytes),
    };
    let response = match text {
        b"done" | b"suc:done" => Response::Done,
        b"success" | b"suc:success" => Response::Success,
        b"stopped" | b"suc:stopped" => Response::Status(ProjectState::Stopped),
        b"stopping" | b"suc:stopping" => Response::Status(ProjectState::Stopping),
        b"starting" | b"suc:starting" => Response::Status(ProjectState::Starting),
        b"running" | b"suc:running" => Response::Status(ProjectState::Running),
        b"not-found" | b"err:not-found" => Response::NotFound,
        b"error:port" | b"err:port" => Response::PortInUse,
        b"Unknown command" | b"err:invalid-command" => Response::UnknownCommand,
        _ => return None,
    };
    Some(Reply { id, response })
}

/// The floor for writing: the same bytes put one after the other, nothing checked.
#[inline(never)]
fn hand_write(id: Option<&RequestId>, parts: &[&[u8]], dst: &mut BytesMut) {
    if let Some(id) = id {
        dst.put_slice(id.as_str().as_bytes());
        dst.put_u8(b'.');
    }
    for part in parts {
        dst.put_slice(part);
    }
}

fn request_decode(c: &mut Criterion) {
    let long = long_path();
    let cases = [
        (
            "pekat_request_decode_3_18",
            Dialect::V3_18,
            format!("start:{PATH}"),
        ),
        (
            "pekat_request_decode_3_19_with_id",
            Dialect::V3_19,
            format!("42.start|{PATH}"),
        ),
        (
            "pekat_request_decode_3_18_long_path",
            Dialect::V3_18,
            format!("status:{long}"),
        ),
    ];
    for (group, dialect, text) in cases {
        let bytes = text.as_bytes();
        assert_eq!(
            hand_parse_request(bytes, dialect.separator()),
            wire::parse_request(bytes, dialect).ok(),
            "{group}: the floor parses to the same request"
        );
        let mut g = c.benchmark_group(group);
        g.bench_function("baseline_hand_parse", |b| {
            b.iter(|| hand_parse_request(black_box(bytes), dialect.separator()));
        });
        g.bench_function("parse_request", |b| {
            b.iter(|| wire::parse_request(black_box(bytes), dialect));
        });
        g.finish();
    }
}

/// The floor for writing a request: the same bytes, refused the simplest way when the path
/// holds a CR, LF or NUL. The wire cannot carry them (there is no escaping: a line ending would
/// end the request early), so every correct writer checks, as a JSON writer scans for what to
/// escape.
#[inline(never)]
fn hand_write_request(request: &Request, dst: &mut BytesMut) -> Option<()> {
    let path = request.path.as_bytes();
    if path.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
        return None;
    }
    let parts = [request.command.as_str().as_bytes(), b"|", path];
    hand_write(request.id.as_ref(), &parts, dst);
    Some(())
}

fn request_encode(c: &mut Criterion) {
    let request = Request::start(PATH).with_id(RequestId::from(42));
    let mut g = c.benchmark_group("pekat_request_encode_3_19_with_id");
    let mut buf = BytesMut::with_capacity(128);
    g.bench_function("baseline_hand_write", |b| {
        b.iter(|| {
            buf.clear();
            hand_write_request(black_box(&request), &mut buf)
        });
    });
    // For scale: the copy alone, with the path not checked at all.
    g.bench_function("copy_only_path_unchecked", |b| {
        b.iter(|| {
            buf.clear();
            let request = black_box(&request);
            let parts = [
                request.command.as_str().as_bytes(),
                b"|",
                request.path.as_bytes(),
            ];
            hand_write(request.id.as_ref(), &parts, &mut buf);
        });
    });
    g.bench_function("encode_request", |b| {
        b.iter(|| {
            buf.clear();
            wire::encode_request(black_box(&request), Dialect::V3_19, &mut buf)
        });
    });
    g.finish();
}

fn response_decode(c: &mut Criterion) {
    for (group, text) in [
        ("pekat_response_decode_3_18", &b"running"[..]),
        ("pekat_response_decode_3_19_with_id", b"7.suc:running"),
    ] {
        assert_eq!(
            hand_parse_reply(text),
            wire::parse_response(text).ok(),
            "{group}: the floor parses to the same reply"
        );
        let mut g = c.benchmark_group(group);
        g.bench_function("baseline_hand_parse", |b| {
            b.iter(|| hand_parse_reply(black_box(text)));
        });
        g.bench_function("parse_response", |b| {
            b.iter(|| wire::parse_response(black_box(text)));
        });
        g.finish();
    }
}

/// The floor for writing an answer: its 3.19 text, after the id.
#[inline(never)]
fn hand_write_reply(reply: &Reply, dst: &mut BytesMut) {
    let text: &[u8] = match reply.response {
        Response::Status(ProjectState::Running) => b"suc:running",
        _ => b"suc:done",
    };
    if let Some(id) = &reply.id {
        dst.put_slice(id.as_str().as_bytes());
        dst.put_u8(b'.');
    }
    dst.put_slice(text);
}

fn response_encode(c: &mut Criterion) {
    let reply = Reply {
        id: Some(RequestId::from(7)),
        response: Response::Status(ProjectState::Running),
    };
    let mut g = c.benchmark_group("pekat_response_encode_3_19_with_id");
    let mut buf = BytesMut::with_capacity(64);
    g.bench_function("baseline_hand_write", |b| {
        b.iter(|| {
            buf.clear();
            hand_write_reply(black_box(&reply), &mut buf);
        });
    });
    g.bench_function("encode_reply", |b| {
        b.iter(|| {
            buf.clear();
            wire::encode_reply(
                black_box(&reply),
                Dialect::V3_19,
                DEFAULT_MAX_RESPONSE_LEN,
                &mut buf,
            )
        });
    });
    g.finish();
}

criterion_group!(
    benches,
    request_decode,
    request_encode,
    response_decode,
    response_encode
);
criterion_main!(benches);
