//! Decoding cost of a measurement-data response, against plain `serde_json` on the same bytes.
//!
//! Each group's `baseline_*` benchmark is plain `serde_json::from_slice::<Value>` measured in the
//! same run (`cargo xtask bench` prints every benchmark as a ratio to it):
//! - `valid`: the lenient reader must cost nothing extra on valid JSON (ratio ~1);
//! - `non_finite`: the price of the fallback path when the payload has bare `NaN` tokens,
//!   against serde_json reading the same data with those tokens already quoted.

use std::hint::black_box;

use arkeo_proto::json::{f64_value, quote_non_finite, to_vec_non_finite};
use arkeo_proto::{ClientCodec, Response, wire};
use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use tokio_util::codec::Decoder;

fn jv_payload(with_nan: bool) -> Vec<u8> {
    let points: Vec<Value> = (0..2000)
        .map(|i| {
            let v = -0.2 + f64::from(i) * 0.0007;
            let j = if with_nan && i % 100 == 0 {
                f64::NAN
            } else {
                1e-9 * ((v / 0.04).exp() - 1.0) - 21.5
            };
            json!([v, f64_value(j)])
        })
        .collect();
    let response = Response::ok(
        json!({"scans": [{"name": "forward", "data": points, "parameters": {"voc": {"value": 0.98, "unit": "V"}}}]}),
        Some(42),
    );
    to_vec_non_finite(&response).unwrap()
}

fn bench(c: &mut Criterion) {
    for (name, payload) in [
        ("valid", jv_payload(false)),
        ("non_finite", jv_payload(true)),
    ] {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(payload.len() as u64));
        // serde_json cannot read bare NaN: its baseline for that payload is the quoted text.
        let strict = quote_non_finite(&payload).unwrap_or_else(|| payload.clone());
        group.bench_function("baseline_serde_json_from_slice", |b| {
            b.iter(|| serde_json::from_slice::<Value>(black_box(&strict)).unwrap())
        });
        group.bench_function("arkeo_decode_response", |b| {
            b.iter(|| wire::decode_response(black_box(&payload)).unwrap())
        });
        let mut frame = BytesMut::new();
        wire::encode_frame(&payload, usize::MAX, &mut frame).unwrap();
        group.bench_function("client_codec_decode_frame", |b| {
            b.iter_batched(
                || frame.clone(),
                |mut buf| {
                    ClientCodec::new()
                        .decode(black_box(&mut buf))
                        .unwrap()
                        .unwrap()
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
