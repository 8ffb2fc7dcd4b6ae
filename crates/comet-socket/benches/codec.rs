//! Decoding and encoding whole frames (prefix, header, content), requests and answers, small
//! and large, each against the floor: a typed `serde_json` decode (or encode) of the same bytes
//! into (or from) the equivalent structs — the header into a four-field struct, the content
//! into `{action: String, value: Value}` or `{result: Value}` — measured in the same run. The
//! ratio is what COMET's rules (Python's separators and float repr, the header checks, the
//! lenient `NaN`/`Infinity`, truthiness) add on valid input.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use comet_socket::message::request_content;
use comet_socket::{Limits, RawRequest, Request, Response, wire};

/// The header as a plain typed struct: what `serde_json` alone would read and write.
#[derive(Serialize, Deserialize)]
struct Header {
    byteorder: String,
    #[serde(rename = "content-type")]
    content_type: String,
    #[serde(rename = "content-encoding")]
    content_encoding: String,
    #[serde(rename = "content-length")]
    content_length: usize,
}

#[derive(Deserialize)]
struct TypedRequest {
    #[allow(dead_code)]
    action: String,
    #[allow(dead_code)]
    value: Value,
}

#[derive(Serialize)]
struct TypedRequestRef<'a> {
    action: &'a str,
    value: &'a Value,
}

#[derive(Serialize, Deserialize)]
struct TypedResponse {
    result: Value,
}

fn small_value() -> Value {
    json!({"sample": "W42", "bias": -150.0, "currents": [1.5e-9, 2.25e-9, 3.0e-9, 4.5e-9],
           "ok": true, "note": "välue"})
}

/// About 60 KB: a sweep of readings, as a measurement answer carries.
fn large_value() -> Value {
    let currents: Vec<f64> = (0..2000)
        .map(|i| f64::from(i) * 1.234_567e-10 - 3.3e-8)
        .collect();
    let voltages: Vec<f64> = (0..2000).map(|i| -150.0 + f64::from(i) * 0.25).collect();
    let steps: Vec<Value> = (0..200)
        .map(|i| json!({"step": i, "label": format!("step {i}"), "done": i % 2 == 0}))
        .collect();
    json!({"sample": "W42-3", "currents": currents, "voltages": voltages, "steps": steps,
           "note": "välue ".repeat(100)})
}

fn sizes() -> [(&'static str, Value); 2] {
    [("small", small_value()), ("large", large_value())]
}

/// The typed floor of a decode: prefix, header struct, content struct.
fn typed_decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> (Header, T) {
    let header_len = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
    let header_end = 2 + header_len;
    let header: Header = serde_json::from_slice(&bytes[2..header_end]).unwrap();
    let content_end = header_end + header.content_length;
    let content: T = serde_json::from_slice(&bytes[header_end..content_end]).unwrap();
    (header, content)
}

/// The typed floor of an encode: content struct, header struct, one buffer with the prefix.
fn typed_encode<T: Serialize>(content: &T) -> Vec<u8> {
    let content = serde_json::to_vec(content).unwrap();
    let header = serde_json::to_vec(&Header {
        byteorder: "little".into(),
        content_type: "text/json".into(),
        content_encoding: "utf-8".into(),
        content_length: content.len(),
    })
    .unwrap();
    let mut out = Vec::with_capacity(2 + header.len() + content.len());
    out.extend_from_slice(&u16::try_from(header.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&content);
    out
}

fn decode(c: &mut Criterion) {
    let limits = Limits::default();
    for (size, value) in sizes() {
        let request = wire::encode_to_bytes(
            &Request::new("ECHO", value.clone()).to_frame().unwrap(),
            &limits,
        )
        .unwrap();
        let mut group = c.benchmark_group(format!("comet_decode_request_{size}"));
        group.throughput(Throughput::Bytes(request.len() as u64));
        group.bench_function("baseline_typed_serde_json", |b| {
            b.iter(|| typed_decode::<TypedRequest>(black_box(&request)))
        });
        group.bench_function("frame_and_request", |b| {
            b.iter(|| {
                let (frame, _) = wire::decode(black_box(&request), &limits).unwrap().unwrap();
                RawRequest::from_frame(&frame)
                    .unwrap()
                    .into_request()
                    .unwrap()
            })
        });
        group.finish();

        let answer =
            wire::encode_to_bytes(&Response::new(value).to_frame().unwrap(), &limits).unwrap();
        let mut group = c.benchmark_group(format!("comet_decode_answer_{size}"));
        group.throughput(Throughput::Bytes(answer.len() as u64));
        group.bench_function("baseline_typed_serde_json", |b| {
            b.iter(|| typed_decode::<TypedResponse>(black_box(&answer)))
        });
        group.bench_function("frame_and_answer", |b| {
            b.iter(|| {
                let (frame, _) = wire::decode(black_box(&answer), &limits).unwrap().unwrap();
                Response::from_frame(&frame).unwrap()
            })
        });
        group.finish();
    }
}

fn encode(c: &mut Criterion) {
    let limits = Limits::default();
    for (size, value) in sizes() {
        let request = Request::new("ECHO", value.clone());
        let mut group = c.benchmark_group(format!("comet_encode_request_{size}"));
        group.bench_function("baseline_typed_serde_json", |b| {
            b.iter(|| {
                let request = black_box(&request);
                typed_encode(&TypedRequestRef {
                    action: &request.action,
                    value: &request.value,
                })
            })
        });
        // What the client sends: the content, then the frame written straight around it.
        group.bench_function("content_python_format", |b| {
            b.iter(|| {
                let request = black_box(&request);
                let content = request_content(&request.action, &request.value).unwrap();
                wire::encode_json_to_bytes(&content, &limits).unwrap()
            })
        });
        // The same through a `Frame`.
        group.bench_function("frame_python_format", |b| {
            b.iter(|| {
                let frame = black_box(&request).to_frame().unwrap();
                wire::encode_to_bytes(&frame, &limits).unwrap()
            })
        });
        group.finish();

        let answer = TypedResponse { result: value };
        let response = Response::new(answer.result.clone());
        let mut group = c.benchmark_group(format!("comet_encode_answer_{size}"));
        group.bench_function("baseline_typed_serde_json", |b| {
            b.iter(|| typed_encode(black_box(&answer)))
        });
        // What a server's codec writes for an answer.
        group.bench_function("content_python_format", |b| {
            b.iter(|| {
                let content = black_box(&response).to_content().unwrap();
                wire::encode_json_to_bytes(&content, &limits).unwrap()
            })
        });
        // The same through a `Frame`.
        group.bench_function("frame_python_format", |b| {
            b.iter(|| {
                let frame = black_box(&response).to_frame().unwrap();
                wire::encode_to_bytes(&frame, &limits).unwrap()
            })
        });
        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .measurement_time(std::time::Duration::from_secs(2))
        .warm_up_time(std::time::Duration::from_millis(500))
}

criterion_group! {
    name = benches;
    config = config();
    targets = decode, encode
}
criterion_main!(benches);
