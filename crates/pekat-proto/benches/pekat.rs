//! Parsing and writing PEKAT messages, against a baseline of the least work any parser must do
//! (UTF-8 check and one split) on the same bytes.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use pekat_proto::wire;
use pekat_proto::{Dialect, Request, RequestId};

const PATH: &str = r"C:\Users\pekat\PekatVisionProjects\Test Project 1";

fn requests(c: &mut Criterion) {
    let mut group = c.benchmark_group("pekat_request");
    let v18 = format!("start:{PATH}");
    let v19 = format!("42.start|{PATH}");
    group.bench_function("baseline_utf8_split", |b| {
        b.iter(|| {
            let text = std::str::from_utf8(black_box(v18.as_bytes())).ok();
            black_box(
                text.and_then(|t| t.split_once(':'))
                    .map(|(c, p)| (c, p.to_owned())),
            )
        });
    });
    group.bench_function("parse_3_18", |b| {
        b.iter(|| wire::parse_request(black_box(v18.as_bytes()), Dialect::V3_18));
    });
    group.bench_function("parse_3_19_with_id", |b| {
        b.iter(|| wire::parse_request(black_box(v19.as_bytes()), Dialect::V3_19));
    });
    let request = Request::start(PATH).with_id(RequestId::from(42));
    let mut buf = BytesMut::with_capacity(128);
    group.bench_function("encode_3_19", |b| {
        b.iter(|| {
            buf.clear();
            wire::encode_request(black_box(&request), Dialect::V3_19, &mut buf)
        });
    });
    group.finish();
}

fn responses(c: &mut Criterion) {
    let mut group = c.benchmark_group("pekat_response");
    group.bench_function("baseline_utf8_compare", |b| {
        b.iter(|| {
            let text = std::str::from_utf8(black_box(b"7.suc:running")).ok();
            black_box(text.is_some_and(|t| t.ends_with("running")))
        });
    });
    group.bench_function("parse_3_18", |b| {
        b.iter(|| wire::parse_response(black_box(b"running")));
    });
    group.bench_function("parse_3_19_with_id", |b| {
        b.iter(|| wire::parse_response(black_box(b"7.suc:running")));
    });
    group.finish();
}

criterion_group!(benches, requests, responses);
criterion_main!(benches);
