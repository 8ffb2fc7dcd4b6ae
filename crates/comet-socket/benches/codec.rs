//! Decoding and encoding a typical request, against plain `serde_json` on the same content.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use comet_socket::{Limits, RawRequest, Request, wire};
use serde_json::json;

fn request() -> Request {
    Request::new(
        "ECHO",
        json!({"sample": "W42", "bias": -150.0, "currents": [1.5e-9, 2.25e-9, 3.0e-9, 4.5e-9],
               "ok": true, "note": "välue"}),
    )
}

fn decode(c: &mut Criterion) {
    let frame = request().to_frame().unwrap();
    let bytes = wire::encode_to_bytes(&frame, &Limits::default()).unwrap();
    let content = frame.content.clone();
    let mut group = c.benchmark_group("comet_decode_request");
    group.bench_function("baseline_serde_json_from_slice", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&content)).unwrap())
    });
    group.bench_function("frame_and_request", |b| {
        b.iter(|| {
            let (frame, _) = wire::decode(black_box(&bytes), &Limits::default())
                .unwrap()
                .unwrap();
            RawRequest::from_frame(&frame).unwrap()
        })
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let request = request();
    let mut group = c.benchmark_group("comet_encode_request");
    group.bench_function("baseline_serde_json_to_vec", |b| {
        b.iter(|| {
            serde_json::to_vec(&json!({"action": &request.action, "value": &request.value}))
                .unwrap()
        })
    });
    group.bench_function("frame_python_format", |b| {
        b.iter(|| {
            let frame = black_box(&request).to_frame().unwrap();
            wire::encode_to_bytes(&frame, &Limits::default()).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
