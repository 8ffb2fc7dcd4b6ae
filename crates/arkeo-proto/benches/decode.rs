//! The ARKEO codec against its floor: `serde_json` decoding the same bytes into (or encoding
//! the same message from) the equivalent typed struct, `#[derive]`d, in the same run.
//!
//! Times are CPU time of the benchmark's thread ([`ThreadCpu`]), not wall time. Each group's
//! `baseline_serde_json_typed` is that floor (`cargo xtask bench` prints every
//! benchmark of the group as a ratio to it). The equivalent structs have the fields the ARKEO
//! messages have, with a reply's `data` and a request's parameters as `serde_json` values (the
//! messages carry them so), and no leniency. Groups:
//! - `arkeo_decode_small_reply`, `arkeo_decode_large_reply`: a status reply and a JV data set
//!   of 2000 points, as `wire::decode_response` and the client codec (framing included) read
//!   them; `..._state_alias`: the same reply with `state` instead of `status` and the id echoed
//!   as a float, the lenient spellings, which must cost nothing either;
//! - `arkeo_decode_large_reply_non_finite`: the price of bare `NaN` tokens, against `serde_json`
//!   reading the same data with those tokens already quoted;
//! - `arkeo_decode_request`: a request as the device side reads it (`..._params_alias`: with
//!   `params`, the vendor example's key);
//! - `slow_path_value_then_from_value`: for comparison, the payload parsed into a `Value` and
//!   converted, the path every payload took before and the unusual ones still take;
//! - `arkeo_encode_request`, `arkeo_encode_small_reply`, `arkeo_encode_large_reply`: the other
//!   direction, into a reused buffer, header included.

use std::hint::black_box;
use std::time::{Duration, Instant};

use arkeo_proto::json::{f64_value, quote_non_finite, to_vec_non_finite};
use arkeo_proto::{ClientCodec, ParamKey, Request, Response, ServerCodec, Target, wire};
use bytes::BytesMut;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio_util::codec::{Decoder, Encoder};

/// A response as a plain `#[derive]`d struct: what `serde_json` alone makes of the bytes.
#[derive(Deserialize, Serialize)]
#[allow(dead_code, reason = "decoded to be dropped: only the work counts")]
struct TypedResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<TypedError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<u64>,
}

#[derive(Deserialize, Serialize)]
#[allow(dead_code, reason = "decoded to be dropped: only the work counts")]
struct TypedError {
    code: Option<i64>,
    message: Option<String>,
}

/// A request as a plain `#[derive]`d struct.
#[derive(Deserialize, Serialize)]
#[allow(dead_code, reason = "decoded to be dropped: only the work counts")]
struct TypedRequest {
    target: String,
    command: String,
    parameter: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<u64>,
}

impl From<&Response> for TypedResponse {
    fn from(r: &Response) -> Self {
        Self {
            status: r.status.as_ref().map(|s| s.as_str().to_owned()),
            data: r.data.clone(),
            error: r.error.as_ref().map(|e| TypedError {
                code: e.code,
                message: Some(e.message.clone()),
            }),
            request_id: r.request_id,
        }
    }
}

impl From<&Request> for TypedRequest {
    fn from(r: &Request) -> Self {
        Self {
            target: r.target.as_str().to_owned(),
            command: r.command.clone(),
            parameter: r.parameter.clone(),
            request_id: r.request_id,
        }
    }
}

/// `GetTestStatus` of a running JV measurement.
fn status_reply() -> Response {
    Response::ok(
        json!({"routine_status": "Running", "routine_name": "JV",
               "progress": {"progres_pct": 2.12, "direction": "Forward"}, "error": null}),
        Some(1001),
    )
}

/// `GetTestData` of a JV routine: 2000 points, a non-finite current every 100 with `with_nan`.
fn jv_reply(with_nan: bool) -> Response {
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
    Response::ok(
        json!({"scans": [{"name": "forward", "data": points,
                          "parameters": {"voc": {"value": 0.98, "unit": "V"}}}]}),
        Some(1001),
    )
}

fn settings_request() -> Request {
    Request::new(Target::Routine, "SetSettings")
        .param("integration_time", 100)
        .param("averages", 1)
        .param("pixel_smoothing", 1)
        .with_request_id(1001)
}

/// The CPU time of the benchmark's thread, from Linux's scheduler statistics (wall time where
/// there are none): on a machine shared with other work, wall time also counts the moments the
/// thread waits for a CPU, and ratios taken minutes apart compare different neighbours. The
/// statistics are updated at least every scheduler tick (4 ms here), so every sample runs the
/// same number of iterations for a long time ([`SamplingMode::Flat`], 50 ms a sample): the
/// tick's error at both ends averages out over the samples.
struct ThreadCpu;

/// CPU time this thread has run so far.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(
        stat.split_whitespace().next()?.parse().ok()?,
    ))
}

impl Measurement for ThreadCpu {
    type Intermediate = (Option<Duration>, Instant);
    type Value = Duration;

    fn start(&self) -> Self::Intermediate {
        (thread_cpu(), Instant::now())
    }

    fn end(&self, (cpu, wall): Self::Intermediate) -> Duration {
        match (cpu, thread_cpu()) {
            (Some(before), Some(after)) => after.saturating_sub(before),
            _ => wall.elapsed(),
        }
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}

fn group<'a>(
    c: &'a mut Criterion<ThreadCpu>,
    name: &str,
    bytes: usize,
) -> BenchmarkGroup<'a, ThreadCpu> {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sampling_mode(SamplingMode::Flat);
    group
}

fn framed(payload: &[u8]) -> BytesMut {
    let mut frame = BytesMut::new();
    wire::encode_frame(payload, usize::MAX, &mut frame).unwrap();
    frame
}

fn decode_replies(c: &mut Criterion<ThreadCpu>) {
    for (name, reply) in [
        ("arkeo_decode_small_reply", status_reply()),
        ("arkeo_decode_large_reply", jv_reply(false)),
    ] {
        let payload = serde_json::to_vec(&reply).unwrap();
        assert_eq!(
            wire::decode_response(&payload).unwrap().request_id,
            Some(1001)
        );
        let mut g = group(c, name, payload.len());
        g.bench_function("baseline_serde_json_typed", |b| {
            b.iter(|| serde_json::from_slice::<TypedResponse>(black_box(&payload)).unwrap())
        });
        g.bench_function("arkeo_decode_response", |b| {
            b.iter(|| wire::decode_response(black_box(&payload)).unwrap())
        });
        g.bench_function("slow_path_value_then_from_value", |b| {
            b.iter(|| Response::from_value(wire::parse_payload(black_box(&payload)).unwrap()))
        });
        // The lenient spellings: `state` for `status` (one byte shorter), the id as a float
        // (two bytes longer).
        let text = String::from_utf8(payload.clone()).unwrap();
        let alias = text
            .replacen("\"status\":", "\"state\":", 1)
            .replacen("\"request_id\":1001", "\"request_id\":1001.0", 1)
            .into_bytes();
        // (Compared with what the plain bytes decode to: without serde_json's
        // `float_roundtrip`, a float may come back one ulp off what was written.)
        assert!(wire::decode_response(&alias).unwrap() == wire::decode_response(&payload).unwrap());
        g.bench_function("arkeo_decode_response_state_alias", |b| {
            b.iter(|| wire::decode_response(black_box(&alias)).unwrap())
        });
        let frame = framed(&payload);
        g.bench_function("client_codec_decode_frame", |b| {
            b.iter_batched_ref(
                || frame.clone(),
                // The decoded message is dropped here, inside the timed section, as the
                // baseline's `iter` drops its result; the input buffer, as the baseline's
                // borrowed bytes, is freed outside it.
                |buf| drop(ClientCodec::new().decode(black_box(buf)).unwrap().unwrap()),
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }

    let payload = to_vec_non_finite(&jv_reply(true)).unwrap();
    // serde_json cannot read bare NaN: its baseline is the same data with the tokens quoted.
    let quoted = quote_non_finite(&payload).unwrap();
    let mut g = group(c, "arkeo_decode_large_reply_non_finite", payload.len());
    g.bench_function("baseline_serde_json_typed", |b| {
        b.iter(|| serde_json::from_slice::<TypedResponse>(black_box(&quoted)).unwrap())
    });
    g.bench_function("arkeo_decode_response", |b| {
        b.iter(|| wire::decode_response(black_box(&payload)).unwrap())
    });
    g.bench_function("slow_path_value_then_from_value", |b| {
        b.iter(|| Response::from_value(wire::parse_payload(black_box(&payload)).unwrap()))
    });
    g.finish();
}

fn decode_requests(c: &mut Criterion<ThreadCpu>) {
    let request = settings_request();
    let payload = serde_json::to_vec(&request).unwrap();
    let mut g = group(c, "arkeo_decode_request", payload.len());
    g.bench_function("baseline_serde_json_typed", |b| {
        b.iter(|| serde_json::from_slice::<TypedRequest>(black_box(&payload)).unwrap())
    });
    g.bench_function("arkeo_decode_request", |b| {
        b.iter(|| wire::decode_request(black_box(&payload)).unwrap())
    });
    g.bench_function("slow_path_value_then_from_value", |b| {
        b.iter(|| Request::from_value(wire::parse_payload(black_box(&payload)).unwrap()))
    });
    // `params`: the same length as `parameter` minus three bytes.
    let params = serde_json::to_vec(&request.with_key(ParamKey::Params)).unwrap();
    assert_eq!(wire::decode_request(&params).unwrap(), request);
    g.bench_function("arkeo_decode_request_params_alias", |b| {
        b.iter(|| wire::decode_request(black_box(&params)).unwrap())
    });
    let frame = framed(&payload);
    g.bench_function("server_codec_decode_frame", |b| {
        b.iter_batched_ref(
            || frame.clone(),
            // The decoded message is dropped here, inside the timed section, as the
            // baseline's `iter` drops its result; the input buffer, as the baseline's
            // borrowed bytes, is freed outside it.
            |buf| drop(ServerCodec::new().decode(black_box(buf)).unwrap().unwrap()),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn encode(c: &mut Criterion<ThreadCpu>) {
    let request = settings_request();
    let typed = TypedRequest::from(&request);
    let len = serde_json::to_vec(&typed).unwrap().len();
    let mut g = group(c, "arkeo_encode_request", len);
    let mut out = Vec::with_capacity(len);
    g.bench_function("baseline_serde_json_typed", |b| {
        b.iter(|| {
            out.clear();
            serde_json::to_writer(&mut out, black_box(&typed)).unwrap();
        })
    });
    let mut buf = BytesMut::with_capacity(len + wire::HEADER_LEN);
    g.bench_function("arkeo_encode_request", |b| {
        b.iter(|| {
            buf.clear();
            wire::encode_request(
                black_box(&request),
                ParamKey::Parameter,
                usize::MAX,
                &mut buf,
            )
            .unwrap();
        })
    });
    let mut codec = ClientCodec::new();
    g.bench_function("client_codec_encode", |b| {
        b.iter(|| {
            buf.clear();
            codec.encode(black_box(&request), &mut buf).unwrap();
        })
    });
    g.finish();

    for (name, reply) in [
        ("arkeo_encode_small_reply", status_reply()),
        ("arkeo_encode_large_reply", jv_reply(false)),
    ] {
        let typed = TypedResponse::from(&reply);
        let len = serde_json::to_vec(&typed).unwrap().len();
        let mut g = group(c, name, len);
        let mut out = Vec::with_capacity(len);
        g.bench_function("baseline_serde_json_typed", |b| {
            b.iter(|| {
                out.clear();
                serde_json::to_writer(&mut out, black_box(&typed)).unwrap();
            })
        });
        let mut buf = BytesMut::with_capacity(len + wire::HEADER_LEN);
        g.bench_function("arkeo_encode_response", |b| {
            b.iter(|| {
                buf.clear();
                wire::encode_response(black_box(&reply), usize::MAX, &mut buf).unwrap();
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = decode_replies, decode_requests, encode
}
criterion_main!(benches);
