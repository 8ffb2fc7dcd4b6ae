//! Decoding and encoding cost, read as a ratio against plain `serde_json` on the same payload
//! (the `baseline` of each group, measured in the same run).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pycom_proto::sequence::{Row, Sequence, Slot};
use pycom_proto::wire::{self, Limits};
use pycom_proto::{Identity, Message, UnitInfo};

fn node() -> Identity {
    Identity::new(
        "81639cd4",
        "rigsters-controller",
        "192.168.0.22",
        5000,
        "0.14.0",
        false,
    )
}

fn payloads() -> Vec<(&'static str, Vec<u8>)> {
    let limits = Limits::default();
    let output = Message::output(
        node(),
        "BOARDIO_CLI: Sent: \"uSeq\" to FIFO file\nBOARDIO_CLI: Sent: \"runSeq\" to FIFO file\n",
    );
    let unit_info = Message::unit_info(
        node(),
        UnitInfo {
            wiringpi_version: "2.61".into(),
            boardio_version: "1.3.0".into(),
            firmware_version: "2.0.4".into(),
            unit_type: "light_array".into(),
            mcu_type: "RP2040".into(),
            mac_address: "dc:a6:32:1b:4e:f0".into(),
        },
    );
    let big_output = Message::output(node(), "LED_FAN,1\n".repeat(4000));
    [
        ("output", output),
        ("unit_info", unit_info),
        ("output_40k", big_output),
    ]
    .into_iter()
    .map(|(name, m)| (name, wire::encode(&m, &limits).unwrap()))
    .collect()
}

fn decode(c: &mut Criterion) {
    let limits = Limits::default();
    for (name, bytes) in payloads() {
        let mut group = c.benchmark_group(format!("decode_{name}"));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function("baseline_serde_json_value", |b| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&bytes)).unwrap())
        });
        group.bench_function("pycom_decode", |b| {
            b.iter(|| wire::decode(black_box(&bytes), &limits).unwrap())
        });
        group.finish();
    }
}

fn encode(c: &mut Criterion) {
    let limits = Limits::default();
    for (name, bytes) in payloads() {
        let message = wire::decode(&bytes, &limits).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let mut group = c.benchmark_group(format!("encode_{name}"));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function("baseline_serde_json_value", |b| {
            b.iter(|| serde_json::to_vec(black_box(&value)).unwrap())
        });
        group.bench_function("pycom_encode", |b| {
            b.iter(|| wire::encode(black_box(&message), &limits).unwrap())
        });
        group.finish();
    }
}

fn sequence(c: &mut Criterion) {
    let rows: Vec<Row> = (0..50)
        .map(|i| Row::All4Canon {
            power: i * 2,
            shutter_ms: i,
        })
        .collect();
    let expected = Sequence::new(rows.clone()).unwrap().command(Slot::Normal);
    let mut group = c.benchmark_group("sequence_50_rows");
    group.bench_function("baseline_format_by_hand", |b| {
        b.iter(|| {
            let body: Vec<String> = black_box(&rows).iter().map(ToString::to_string).collect();
            format!(
                "echo \"{}\" > /home/rigsters/la4_sequence.csv && boardiocli uSeq && boardiocli runSeq",
                body.join("\\n")
            )
        })
    });
    group.bench_function("validate_and_build", |b| {
        b.iter(|| {
            let command = Sequence::new(black_box(rows.clone()))
                .unwrap()
                .command(Slot::Normal);
            debug_assert_eq!(command, expected);
            command
        })
    });
    group.finish();
}

criterion_group!(benches, decode, encode, sequence);
criterion_main!(benches);
