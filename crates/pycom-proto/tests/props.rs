//! Property tests: messages round-trip, framing needs EOF, chunking does not matter, arbitrary
//! bytes never panic, and sequences render to a fixed safe alphabet.

use bytes::BytesMut;
use proptest::prelude::*;
use pycom_proto::PycomCodec;
use pycom_proto::message::{Body, Identity, Message, UnitInfo};
use pycom_proto::sequence::{Row, Sequence, Slot};
use pycom_proto::wire::{self, Limits};
use serde_json::{Map, Value};
use tokio_util::codec::Decoder;

fn identity() -> impl Strategy<Value = Identity> {
    (
        ".{0,12}",
        ".{0,24}",
        "[0-9.]{0,15}",
        any::<u16>(),
        ".{0,8}",
        any::<bool>(),
    )
        .prop_map(|(id, name, ip, port, version, coordinator)| Identity {
            id,
            name,
            ip,
            port,
            version,
            coordinator,
        })
}

fn unknown_fields() -> impl Strategy<Value = Map<String, Value>> {
    let value = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,16}".prop_map(Value::from),
    ];
    prop::collection::btree_map("[a-z]{1,8}", value, 0..4).prop_map(|fields| {
        fields
            .into_iter()
            .filter(|(k, _)| {
                !["id", "name", "ip", "port", "version", "coordinator"].contains(&k.as_str())
            })
            .collect()
    })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        Just(Body::Heartbeat),
        ".{0,64}".prop_map(|command| Body::Cmd { command }),
        ".{0,64}".prop_map(|output| Body::Output { output }),
        ".{0,64}".prop_map(|message| Body::Message { message }),
        prop::array::uniform6(".{0,12}").prop_map(|[a, b, c, d, e, f]| Body::UnitInfo(UnitInfo {
            wiringpi_version: a,
            boardio_version: b,
            firmware_version: c,
            unit_type: d,
            mcu_type: e,
            mac_address: f,
        })),
        ("[a-z_]{1,12}", unknown_fields())
            .prop_filter("known types are not unknown", |(t, _)| {
                !["cmd", "output", "message", "unit_info"].contains(&t.as_str())
            })
            .prop_map(|(type_, fields)| Body::Unknown { type_, fields }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (identity(), body()).prop_map(|(identity, body)| Message { identity, body })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_message_round_trips(message in message()) {
        let limits = Limits::default();
        let bytes = wire::encode(&message, &limits).unwrap();
        prop_assert_eq!(wire::decode(&bytes, &limits).unwrap(), message);
    }

    #[test]
    fn every_strict_prefix_needs_more_and_is_invalid_at_eof(message in message()) {
        let bytes = wire::encode(&message, &Limits::default()).unwrap();
        let mut codec = PycomCodec::new();
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            prop_assert!(codec.decode(&mut buf).unwrap().is_none());
            if cut > 0 {
                prop_assert!(wire::decode(&bytes[..cut], &Limits::default()).is_err());
            }
        }
    }

    #[test]
    fn any_chunking_yields_the_same_message(
        message in message(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let bytes = wire::encode(&message, &Limits::default()).unwrap();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut codec = PycomCodec::new();
        let mut buf = BytesMut::new();
        let mut start = 0;
        for point in points.into_iter().chain([bytes.len()]) {
            buf.extend_from_slice(&bytes[start..point]);
            start = point;
            prop_assert!(codec.decode(&mut buf).unwrap().is_none());
        }
        prop_assert_eq!(codec.decode_eof(&mut buf).unwrap(), Some(message));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let limits = Limits { max_message_len: 256 };
        let _ = wire::decode(&bytes, &limits);
        let mut codec = PycomCodec::with_limits(limits);
        let mut buf = BytesMut::from(&bytes[..]);
        if codec.decode(&mut buf).is_ok() {
            let _ = codec.decode_eof(&mut buf);
        }
    }

    #[test]
    fn arbitrary_json_objects_never_panic(fields in unknown_fields(), type_ in prop::option::of(".{0,10}")) {
        let mut object = fields;
        if let Some(t) = type_ {
            object.insert("type_".into(), Value::from(t));
        }
        let bytes = serde_json::to_vec(&object).unwrap();
        let _ = wire::decode(&bytes, &Limits::default());
    }

    #[test]
    fn rows_render_to_a_safe_alphabet_and_parse_back(rows in prop::collection::vec(pycom_proto::strategy::row(), 1..12)) {
        let sequence = Sequence::new(rows.clone()).unwrap();
        let argument = sequence.echo_argument();
        // Upper-case letters, digits, `_`, `,` and the two characters of each `\n`: nothing
        // inside the double quotes means anything to sh.
        prop_assert!(argument.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"_,\\n".contains(&b)));
        prop_assert_eq!(argument.matches("\\n").count(), rows.len() - 1);
        for slot in [Slot::Normal, Slot::Standalone] {
            let command = sequence.command(slot);
            let expected_start = format!("echo \"{argument}\" > {}", slot.file());
            let starts = command.starts_with(&expected_start);
            prop_assert!(starts);
            prop_assert_eq!(command.matches('"').count(), 2);
        }
        prop_assert_eq!(Sequence::parse_csv(&sequence.to_csv()).unwrap(), sequence);
        for row in rows {
            prop_assert_eq!(row.to_string().parse::<Row>().unwrap(), row);
        }
    }

    #[test]
    fn out_of_range_values_never_build_a_sequence(power in 101u8.., shutter in 110u8..) {
        let light = Sequence::new([Row::ModelLight { power }]);
        let canon = Sequence::new([Row::All4Canon { power: 1, shutter_ms: shutter }]);
        prop_assert!(light.is_err());
        prop_assert!(canon.is_err());
    }

    #[test]
    fn row_parsing_never_panics(text in ".{0,40}") {
        let _ = text.parse::<Row>();
        let _ = Sequence::parse_csv(&text);
    }
}
