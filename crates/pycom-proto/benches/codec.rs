//! Decoding and encoding cost, read as a ratio against the floor: a typed `serde_json` decode
//! (or encode) of the same bytes into (or from) the equivalent plain struct — the six base
//! fields, `type_` and the body's fields — measured in the same run (the `baseline` of each
//! group). The ratio is what pycom's rules (the lenient informational fields, the unknown
//! `type_` kept with its fields, the typed errors) add on valid input.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pycom_proto::sequence::{Row, Sequence, Slot};
use pycom_proto::wire::{self, Limits};
use pycom_proto::{Body, Identity, Message, UnitInfo};
use serde::{Deserialize, Serialize};

/// An `output` event as a plain struct.
#[derive(Serialize, Deserialize)]
struct TypedOutput {
    id: String,
    name: String,
    ip: String,
    port: u16,
    version: String,
    coordinator: bool,
    type_: String,
    output: String,
}

/// A `unit_info` event as a plain struct.
#[derive(Serialize, Deserialize)]
struct TypedUnitInfo {
    id: String,
    name: String,
    ip: String,
    port: u16,
    version: String,
    coordinator: bool,
    type_: String,
    wiringpi_version: String,
    boardio_version: String,
    firmware_version: String,
    unit_type: String,
    mcu_type: String,
    mac_address: String,
}

/// A `cmd` request as a plain struct.
#[derive(Serialize, Deserialize)]
struct TypedCmd {
    id: String,
    name: String,
    ip: String,
    port: u16,
    version: String,
    coordinator: bool,
    type_: String,
    command: String,
}

/// The typed equivalent of `message`, for the baseline encode.
enum Typed {
    Output(TypedOutput),
    UnitInfo(TypedUnitInfo),
    Cmd(TypedCmd),
}

impl Typed {
    fn of(message: &Message) -> Self {
        let id = &message.identity;
        match &message.body {
            Body::Output { output } => Self::Output(TypedOutput {
                id: id.id.clone(),
                name: id.name.clone(),
                ip: id.ip.clone(),
                port: id.port,
                version: id.version.clone(),
                coordinator: id.coordinator,
                type_: "output".into(),
                output: output.clone(),
            }),
            Body::UnitInfo(info) => Self::UnitInfo(TypedUnitInfo {
                id: id.id.clone(),
                name: id.name.clone(),
                ip: id.ip.clone(),
                port: id.port,
                version: id.version.clone(),
                coordinator: id.coordinator,
                type_: "unit_info".into(),
                wiringpi_version: info.wiringpi_version.clone(),
                boardio_version: info.boardio_version.clone(),
                firmware_version: info.firmware_version.clone(),
                unit_type: info.unit_type.clone(),
                mcu_type: info.mcu_type.clone(),
                mac_address: info.mac_address.clone(),
            }),
            Body::Cmd { command } => Self::Cmd(TypedCmd {
                id: id.id.clone(),
                name: id.name.clone(),
                ip: id.ip.clone(),
                port: id.port,
                version: id.version.clone(),
                coordinator: id.coordinator,
                type_: "cmd".into(),
                command: command.clone(),
            }),
            other => panic!("no typed equivalent in this bench: {other:?}"),
        }
    }

    fn to_vec(&self) -> Vec<u8> {
        match self {
            Self::Output(m) => serde_json::to_vec(m),
            Self::UnitInfo(m) => serde_json::to_vec(m),
            Self::Cmd(m) => serde_json::to_vec(m),
        }
        .unwrap()
    }

    fn decode(&self, bytes: &[u8]) -> Self {
        match self {
            Self::Output(_) => Self::Output(serde_json::from_slice(bytes).unwrap()),
            Self::UnitInfo(_) => Self::UnitInfo(serde_json::from_slice(bytes).unwrap()),
            Self::Cmd(_) => Self::Cmd(serde_json::from_slice(bytes).unwrap()),
        }
    }
}

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
    let cmd = Message::cmd(
        Identity::new("c0ffee00", "labwire", "192.168.0.100", 5001, "0.1.0", true),
        "echo \"MODEL_LIGHT,100\\nLED_FAN,1\" > /home/rigsters/la4_sequence.csv && boardiocli uSeq && boardiocli runSeq",
    );
    [
        ("output", output),
        ("unit_info", unit_info),
        ("cmd", cmd),
        ("output_40k", big_output),
    ]
    .into_iter()
    .map(|(name, m)| (name, wire::encode(&m, &limits).unwrap()))
    .collect()
}

fn decode(c: &mut Criterion) {
    let limits = Limits::default();
    for (name, bytes) in payloads() {
        let typed = Typed::of(&wire::decode(&bytes, &limits).unwrap());
        let mut group = c.benchmark_group(format!("pycom_decode_{name}"));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function("baseline_typed_serde_json", |b| {
            b.iter(|| typed.decode(black_box(&bytes)))
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
        let typed = Typed::of(&message);
        let mut group = c.benchmark_group(format!("pycom_encode_{name}"));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function("baseline_typed_serde_json", |b| {
            b.iter(|| black_box(&typed).to_vec())
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

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .measurement_time(std::time::Duration::from_secs(2))
        .warm_up_time(std::time::Duration::from_millis(500))
}

criterion_group! {
    name = benches;
    config = config();
    targets = decode, encode, sequence
}
criterion_main!(benches);
