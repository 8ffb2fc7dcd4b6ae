//! Properties of the codec and the message layer, over generated input.

use bytes::BytesMut;
use comet_socket::dispatch::classify;
use comet_socket::{CometCodec, Frame, Limits, RawRequest, Request, Response, json, pyrepr, wire};
use proptest::prelude::*;
use serde_json::{Map, Value};
use tokio_util::codec::{Decoder, Encoder};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((".{0,6}", inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        prop_oneof![
            Just("text/json".to_owned()),
            Just("binary/custom-client-binary-type".to_owned()),
            ".{0,20}"
        ],
        ".{0,10}",
        ".{0,10}",
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(
            |(content_type, content_encoding, byteorder, content)| Frame {
                byteorder,
                content_type,
                content_encoding,
                content: content.into(),
            },
        )
}

fn encode(frame: &Frame) -> Vec<u8> {
    wire::encode_to_bytes(frame, &Limits::default())
        .unwrap()
        .to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn frames_round_trip(frame in frame()) {
        let bytes = encode(&frame);
        let (decoded, used) = wire::decode(&bytes, &Limits::default()).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(decoded, frame);
    }

    #[test]
    fn every_strict_prefix_needs_more(frame in frame()) {
        let bytes = encode(&frame);
        for end in 0..bytes.len() {
            prop_assert_eq!(wire::decode(&bytes[..end], &Limits::default()), Ok(None));
        }
    }

    #[test]
    fn any_chunking_yields_the_same_frames(
        frames in prop::collection::vec(frame(), 1..4),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut stream = Vec::new();
        let mut codec = CometCodec::new();
        for frame in &frames {
            let mut buf = BytesMut::new();
            codec.encode(frame, &mut buf).unwrap();
            stream.extend_from_slice(&buf);
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.push(stream.len());
        points.sort_unstable();
        let mut decoded = Vec::new();
        let mut buf = BytesMut::new();
        let mut start = 0;
        for point in points {
            buf.extend_from_slice(&stream[start..point]);
            start = point;
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                decoded.push(frame);
            }
        }
        prop_assert!(codec.decode_eof(&mut buf).unwrap().is_none());
        prop_assert_eq!(decoded, frames);
    }

    #[test]
    fn requests_round_trip_through_python_formatting(action in ".{1,12}", value in json_value()) {
        let request = Request::new(action.clone(), value.clone());
        let frame = request.to_frame().unwrap();
        let raw = RawRequest::from_frame(&frame).unwrap();
        prop_assert_eq!(raw.action, Some(Value::String(action)));
        prop_assert_eq!(raw.value, Some(value));
    }

    #[test]
    fn answers_round_trip_through_python_formatting(result in json_value()) {
        let frame = Response::new(result.clone()).to_frame().unwrap();
        prop_assert_eq!(Response::from_frame(&frame).unwrap().result, result);
    }

    #[test]
    fn an_object_read_and_written_back_keeps_its_key_order_byte_for_byte(
        entries in prop::collection::btree_map(".{0,6}", json_value(), 0..8)
            .prop_map(|entries| entries.into_iter().collect::<Vec<(String, Value)>>())
            .prop_shuffle(),
    ) {
        // Unique keys in a shuffled (not sorted) order, written as Python would.
        let mut text = String::from("{");
        for (i, (key, value)) in entries.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            text.push_str(&String::from_utf8(json::to_vec(key).unwrap()).unwrap());
            text.push_str(": ");
            text.push_str(&String::from_utf8(json::to_vec(value).unwrap()).unwrap());
        }
        text.push('}');
        let written = json::to_vec(&json::from_slice(text.as_bytes()).unwrap()).unwrap();
        prop_assert_eq!(String::from_utf8(written).unwrap(), text);
    }

    #[test]
    fn python_rendering_never_panics(value in json_value()) {
        let _ = pyrepr::python_str(&value);
        let _ = pyrepr::python_repr(&value);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let limits = Limits { max_header_length: 64, max_content_length: 128 };
        if let Ok(Some((frame, used))) = wire::decode(&bytes, &limits) {
            prop_assert!(used <= bytes.len());
            let _ = classify(&frame);
        }
        let mut codec = CometCodec::with_limits(limits);
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = codec.decode_eof(&mut buf);
        let _ = json::from_slice(&bytes);
        let _ = RawRequest::from_content(&bytes);
        let _ = Response::from_content(&bytes);
        let _ = json::member_non_finite(&bytes, "value");
        let _ = json::non_finite_literal(&bytes);
    }

    #[test]
    fn a_non_finite_value_is_found_among_any_other_members(
        before in prop::collection::vec((".{0,6}", json_value()), 0..4),
        after in prop::collection::vec((".{0,6}", json_value()), 0..4),
        literal in prop::sample::select(vec!["NaN", "Infinity", "-Infinity"]),
    ) {
        // Members before and after `value`, with any values (nested NaN-looking strings and
        // objects with their own `value` keys included), written as Python would.
        let member = |(key, value): &(String, Value)| {
            let key = if key == "value" { format!("{key}_") } else { key.clone() };
            format!(
                "{}: {}",
                String::from_utf8(json::to_vec(&key).unwrap()).unwrap(),
                String::from_utf8(json::to_vec(value).unwrap()).unwrap()
            )
        };
        let mut members: Vec<String> = before.iter().map(member).collect();
        members.push(format!("\"value\": {literal}"));
        members.extend(after.iter().map(member));
        let text = format!("{{{}}}", members.join(", "));
        let raw = RawRequest::from_content(text.as_bytes()).unwrap();
        prop_assert_eq!(raw.value, Some(Value::Null));
        prop_assert_eq!(raw.value_non_finite.map(|n| n.literal()), Some(literal));
    }

    #[test]
    fn arbitrary_header_after_a_valid_prefix_never_panics(
        header in prop::collection::vec(any::<u8>(), 0..200),
        content in prop::collection::vec(any::<u8>(), 0..50),
    ) {
        let mut bytes = u16::try_from(header.len()).unwrap().to_be_bytes().to_vec();
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&content);
        let _ = wire::decode(&bytes, &Limits::default());
    }
}

/// What reading a request meant before the one-pass reader: the whole content into a map, the
/// two members taken out of it, a `null` scanned for a non-finite literal.
fn request_through_a_map(content: &[u8]) -> Result<RawRequest, comet_socket::DecodeError> {
    let mut object = match json::from_slice(content) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(comet_socket::DecodeError::ContentNotObject),
        Err(e) => {
            return Err(comet_socket::DecodeError::InvalidJson {
                reason: e.to_string(),
            });
        }
    };
    let action = object.remove("action");
    let value = object.remove("value");
    let non_finite = |member: &Option<Value>, key| match member {
        Some(Value::Null) => json::member_non_finite(content, key),
        _ => None,
    };
    Ok(RawRequest {
        action_non_finite: non_finite(&action, "action"),
        value_non_finite: non_finite(&value, "value"),
        action,
        value,
    })
}

/// Objects as a peer may write them: the members COMET reads (some under an escaped name, some
/// twice), others, non-finite literals, and sometimes junk after the object.
fn request_text() -> impl Strategy<Value = Vec<u8>> {
    let key = prop::sample::select(vec![
        "action",
        "value",
        "result",
        "x",
        "act\\u0069on",
        "valu\\u0065",
        "",
    ]);
    let member_value = prop_oneof![
        json_value().prop_map(|v| String::from_utf8(json::to_vec(&v).unwrap()).unwrap()),
        prop::sample::select(vec!["NaN", "Infinity", "-Infinity", "nan", "\"\\ud800\""])
            .prop_map(str::to_owned),
    ];
    (
        prop::collection::vec((key, member_value), 0..5),
        prop::sample::select(vec!["", " ", "x", "}", "[1]"]),
    )
        .prop_map(|(members, tail)| {
            let members: Vec<String> = members
                .iter()
                .map(|(key, value)| format!("\"{key}\": {value}"))
                .collect();
            format!("{{{}}}{tail}", members.join(", ")).into_bytes()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn requests_read_in_one_pass_as_through_a_map(text in request_text()) {
        prop_assert_eq!(RawRequest::from_content(&text), request_through_a_map(&text));
    }

    #[test]
    fn arbitrary_bytes_read_in_one_pass_as_through_a_map(
        bytes in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        prop_assert_eq!(RawRequest::from_content(&bytes), request_through_a_map(&bytes));
    }

    #[test]
    fn answers_read_in_one_pass_as_through_a_map(text in request_text()) {
        let through_a_map = request_through_a_map(&text).and_then(|_| {
            match json::from_slice(&text) {
                Ok(Value::Object(mut object)) => object
                    .remove("result")
                    .map(Response::new)
                    .ok_or(comet_socket::DecodeError::MissingResult),
                _ => unreachable!("checked by request_through_a_map"),
            }
        });
        prop_assert_eq!(Response::from_content(&text), through_a_map);
    }
}

/// What reading a header meant before the one-pass reader: the whole header into a map, then
/// COMET's checks in COMET's order.
fn head_through_a_map(
    header: &[u8],
) -> Result<(String, String, String, usize), comet_socket::DecodeError> {
    use comet_socket::DecodeError;
    let header: Value =
        serde_json::from_slice(header).map_err(|e| DecodeError::InvalidHeaderJson {
            reason: e.to_string(),
        })?;
    let Value::Object(mut header) = header else {
        return Err(DecodeError::HeaderNotObject);
    };
    for key in [
        "byteorder",
        "content-length",
        "content-type",
        "content-encoding",
    ] {
        if !header.contains_key(key) {
            return Err(DecodeError::MissingHeaderField(key));
        }
    }
    let content_length = header.get("content-length").and_then(Value::as_u64).ok_or(
        DecodeError::InvalidHeaderField {
            field: "content-length",
            reason: "expected a non-negative integer",
        },
    )?;
    let max = Limits::default().max_content_length;
    let content_length = match usize::try_from(content_length) {
        Ok(len) if len <= max => len,
        _ => {
            return Err(DecodeError::ContentTooLong {
                len: content_length,
                max,
            });
        }
    };
    let mut string_field = |field: &'static str| match header.remove(field) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(DecodeError::InvalidHeaderField {
            field,
            reason: "expected a string",
        }),
    };
    Ok((
        string_field("byteorder")?,
        string_field("content-type")?,
        string_field("content-encoding")?,
        content_length,
    ))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn headers_read_in_one_pass_as_through_a_map(
        members in prop::collection::vec(
            (
                prop::sample::select(vec![
                    "byteorder", "content-type", "content-encoding", "content-length",
                    "content-l\\u0065ngth", "x",
                ]),
                prop::sample::select(vec![
                    "\"little\"", "\"text/json\"", "\"utf-8\"", "12", "-1", "-0", "1.0", "null",
                    "99999999999999999999", "[1, {}]", "NaN",
                ]),
            ),
            0..7,
        ),
        tail in prop::sample::select(vec!["", " ", "x"]),
    ) {
        let members: Vec<String> = members
            .iter()
            .map(|(key, value)| format!("\"{key}\": {value}"))
            .collect();
        let header = format!("{{{}}}{tail}", members.join(", "));
        let mut bytes = u16::try_from(header.len()).unwrap().to_be_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        let one_pass = wire::decode_head(&bytes, &Limits::default()).map(|head| {
            let head = head.unwrap();
            (head.byteorder, head.content_type, head.content_encoding, head.content_length)
        });
        prop_assert_eq!(one_pass, head_through_a_map(header.as_bytes()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_canonical_header_reads_as_through_a_map(
        length in prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            (0u64..100_000).prop_map(|n| n.to_string()),
            "[0-9 .eE+-]{0,24}",
            Just("18446744073709551616".to_owned()),
            Just("-0".to_owned()),
            Just("007".to_owned()),
        ],
        tail in prop::sample::select(vec!["}", " }", "}x", "", ", \"x\": 1}"]),
    ) {
        let header = format!(
            r#"{{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": {length}{tail}"#
        );
        let mut bytes = u16::try_from(header.len()).unwrap().to_be_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        let one_pass = wire::decode_head(&bytes, &Limits::default()).map(|head| {
            let head = head.unwrap();
            (head.byteorder, head.content_type, head.content_encoding, head.content_length)
        });
        prop_assert_eq!(one_pass, head_through_a_map(header.as_bytes()));
    }
}
