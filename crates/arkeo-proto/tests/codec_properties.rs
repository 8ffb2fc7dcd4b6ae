//! Property tests of the framing and message codecs.

use arkeo_proto::json::{f64_value, parse, quote_non_finite, to_vec_non_finite};
use arkeo_proto::{
    ClientCodec, DecodeError, ErrorObject, FrameCodec, ParamKey, Request, Response, ServerCodec,
    Status, Target, wire,
};
use bytes::BytesMut;
use proptest::prelude::*;
use serde_json::{Map, Value};
use tokio_util::codec::{Decoder, Encoder};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        // Eighths are exact in binary and in decimal, so they survive a text round trip.
        (-1_000_000i32..1_000_000).prop_map(|n| Value::from(f64::from(n) / 8.0)),
        "\\PC{0,12}".prop_map(Value::from),
        // Keys and text as the vendor writes them.
        Just(Value::from("Start (V)")),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_ .()%]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-z_]{1,8}", value(), 0..4).prop_map(|m| m.into_iter().collect())
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        Just(Target::Main),
        Just(Target::Routine),
        Just(Target::Tmpctl),
        Just(Target::Mux),
        Just(Target::Led),
        "X[A-Z]{1,6}".prop_map(Target::Other),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    (
        target(),
        "[A-Za-z]{1,16}",
        object(),
        prop::option::of(any::<u64>()),
    )
        .prop_map(|(target, command, parameter, request_id)| Request {
            target,
            command,
            parameter,
            request_id,
        })
}

fn response() -> impl Strategy<Value = Response> {
    let status = prop_oneof![
        Just(Status::Ok),
        Just(Status::Error),
        "busy|BUSY".prop_map(Status::Other)
    ];
    let error =
        (prop::option::of(any::<i64>()), "\\PC{0,20}").prop_map(|(code, message)| ErrorObject {
            code,
            message,
            extra: Map::new(),
        });
    (
        prop::option::of(status),
        prop::option::of(value()),
        prop::option::of(error),
        prop::option::of(any::<u64>()),
    )
        .prop_map(|(status, data, error, request_id)| Response {
            status,
            // `"data": null` decodes as present-and-null, which is what was sent.
            data,
            error,
            request_id,
            extra: Map::new(),
        })
}

/// A JSON fragment of the kinds that decide how a message field decodes: strings (status
/// spellings, ids as text), whole and fractional floats, negative and huge numbers, `null`,
/// containers, and the bare non-finite tokens.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "null",
            "true",
            "0",
            "7",
            "-1",
            "-0",
            "1001",
            "1001.0",
            "1001.5",
            "1e3",
            "1e300",
            "18446744073709551615",
            "18446744073709551616",
            "\"1001\"",
            "\" 1001.0 \"",
            "\"abc\"",
            "\"NaN\"",
            "\"OK\"",
            "\"ok\"",
            "\"Error\"",
            "\"busy\"",
            "\"MAIN\"",
            "\"routine\"",
            "\"GetStatus\"",
            "{}",
            "[]",
            "[1,2]",
            "NaN",
            "Infinity",
            "-Infinity",
            "[NaN,1]",
            "{\"code\":101,\"message\":\"bad\"}",
            "{\"code\":\"4006\",\"hint\":1}",
            "\"plain\"",
            "{\"a\":{\"b\":[null]}}",
            "\"\\u0041\"",
            "{\"x\":1,\"x\":2}",
        ])
        .prop_map(str::to_owned),
        leaf().prop_map(|v| v.to_string()),
    ]
}

/// A payload whose keys are mostly the ones a message reads (aliases, repeats and escaped
/// spellings included), sometimes not an object at all or not JSON at all.
fn message_payload() -> impl Strategy<Value = Vec<u8>> {
    let key = prop::sample::select(vec![
        "status",
        "state",
        "data",
        "error",
        "request_id",
        "target",
        "command",
        "parameter",
        "params",
        "extra",
        "x",
        "req\\u0075est_id",
    ]);
    let object = prop::collection::vec((key, fragment()), 0..7).prop_map(|members| {
        let members: Vec<String> = members
            .into_iter()
            .map(|(k, v)| format!("\"{k}\": {v}"))
            .collect();
        format!("{{{}}}", members.join(", "))
    });
    prop_oneof![
        8 => object,
        1 => fragment(),
        1 => Just("{\"status\":\"OK\",".to_owned()),
    ]
    .prop_map(String::into_bytes)
}

/// A decode result made comparable: the message, or the error's variant and text.
fn outcome<T: PartialEq + std::fmt::Debug>(r: Result<T, DecodeError>) -> Result<T, String> {
    r.map_err(|e| format!("{e:?} {e}"))
}

fn encode_requests(requests: &[Request], key: ParamKey) -> BytesMut {
    let mut codec = ClientCodec::new().param_key(key);
    let mut buf = BytesMut::new();
    for r in requests {
        codec.encode(r, &mut buf).unwrap();
    }
    buf
}

/// The frames `ServerCodec` writes for `responses`, one after another.
fn encode_responses(responses: &[Response]) -> BytesMut {
    let mut buf = BytesMut::new();
    for r in responses {
        ServerCodec::new().encode(r, &mut buf).unwrap();
    }
    buf
}

/// Every strict prefix of `frame` decodes, with a fresh codec from `new_codec`, to "need
/// more" and is left unconsumed.
fn every_strict_prefix_needs_more<D>(
    new_codec: impl Fn() -> D,
    frame: &[u8],
) -> Result<(), TestCaseError>
where
    D: Decoder<Error = DecodeError>,
{
    for cut in 0..frame.len() {
        let mut partial = BytesMut::from(&frame[..cut]);
        prop_assert!(new_codec().decode(&mut partial).unwrap().is_none());
        prop_assert_eq!(&partial[..], &frame[..cut], "a prefix must not be consumed");
    }
    Ok(())
}

/// Feeds `stream` to `codec` in the pieces that `cuts` mark, decoding all it can after each;
/// returns the items and what was left undecoded.
fn decode_in_chunks<D>(
    mut codec: D,
    stream: &[u8],
    cuts: &[prop::sample::Index],
) -> (Vec<D::Item>, BytesMut)
where
    D: Decoder<Error = DecodeError>,
{
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
    points.push(0);
    points.push(stream.len());
    points.sort_unstable();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for pair in points.windows(2) {
        buf.extend_from_slice(&stream[pair[0]..pair[1]]);
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            out.push(item);
        }
    }
    (out, buf)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn request_round_trips_with_either_parameter_key(r in request(), params in any::<bool>()) {
        let key = if params { ParamKey::Params } else { ParamKey::Parameter };
        let mut buf = encode_requests(std::slice::from_ref(&r), key);
        let decoded = ServerCodec::new().decode(&mut buf).unwrap().unwrap();
        prop_assert_eq!(decoded.ok(), Some(r));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn response_round_trips(r in response()) {
        let mut buf = encode_responses(std::slice::from_ref(&r));
        let decoded = ClientCodec::new().decode(&mut buf).unwrap().unwrap();
        prop_assert_eq!(decoded, r);
    }

    #[test]
    fn every_strict_prefix_of_a_frame_needs_more(r in request()) {
        let frame = encode_requests(std::slice::from_ref(&r), ParamKey::Parameter);
        every_strict_prefix_needs_more(ServerCodec::new, &frame)?;
    }

    #[test]
    fn every_strict_prefix_of_a_response_frame_needs_more(r in response()) {
        let frame = encode_responses(std::slice::from_ref(&r));
        every_strict_prefix_needs_more(ClientCodec::new, &frame)?;
    }

    #[test]
    fn any_chunking_of_responses_yields_the_same_responses(
        responses in prop::collection::vec(response(), 1..4),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let stream = encode_responses(&responses);
        let (out, buf) = decode_in_chunks(ClientCodec::new(), &stream, &cuts);
        prop_assert_eq!(out, responses);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn any_chunking_yields_the_same_frames(
        requests in prop::collection::vec(request(), 1..5),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let stream = encode_requests(&requests, ParamKey::Parameter);
        let (out, buf) = decode_in_chunks(ServerCodec::new(), &stream, &cuts);
        let out: Vec<_> = out.into_iter().map(Result::ok).collect();
        prop_assert_eq!(out, requests.into_iter().map(Some).collect::<Vec<_>>());
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_consume_more_than_given(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        for max in [16usize, 1 << 20] {
            let mut buf = BytesMut::from(&bytes[..]);
            let mut codec = ServerCodec::new().max_frame_length(max);
            loop {
                let before = buf.len();
                match codec.decode(&mut buf) {
                    Ok(Some(_)) => prop_assert!(buf.len() < before),
                    Ok(None) => { prop_assert_eq!(buf.len(), before); break; }
                    Err(e) if e.is_fatal() => break,
                    Err(_) => prop_assert!(buf.len() < before, "a payload error consumes its frame"),
                }
            }
            let mut buf = BytesMut::from(&bytes[..]);
            let _ = ClientCodec::new().max_frame_length(max).decode(&mut buf);
            let _ = FrameCodec::new().max_frame_length(max).decode(&mut buf);
        }
        let _ = parse(&bytes);
        let _ = quote_non_finite(&bytes);
    }

    #[test]
    fn arbitrary_frames_with_valid_headers_are_requests_or_answered(payload in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut buf = BytesMut::new();
        FrameCodec::new().encode(&payload[..], &mut buf).unwrap();
        match ServerCodec::new().decode(&mut buf) {
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(bad))) => {
                prop_assert!(matches!(
                    bad.error,
                    DecodeError::InvalidUtf8(_) | DecodeError::InvalidJson(_) | DecodeError::InvalidMessage(_)
                ));
                // The error reply is itself a response any client decodes.
                let reply = encode_responses(&[bad.response()]);
                let decoded = ClientCodec::new().decode(&mut reply.clone()).unwrap().unwrap();
                prop_assert!(decoded.is_error());
                prop_assert_eq!(decoded.request_id, bad.request_id);
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn bare_non_finite_numbers_decode_as_their_strings(
        xs in prop::collection::vec(prop_oneof![
            Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY),
            (-1000i32..1000).prop_map(|n| f64::from(n) / 4.0),
        ], 0..12),
        note in "\\PC{0,12}",
    ) {
        let value = serde_json::json!({
            "data": xs.iter().map(|x| f64_value(*x)).collect::<Vec<_>>(),
            "note": note,
        });
        let text = to_vec_non_finite(&value).unwrap();
        let decoded = parse(&text).unwrap();
        // The note is only written bare if it is exactly one of the three tokens.
        if !matches!(note.as_str(), "NaN" | "Infinity" | "-Infinity") {
            prop_assert_eq!(decoded, value);
        }
    }

    #[test]
    fn valid_json_decodes_the_same_as_serde_json(v in value()) {
        let text = serde_json::to_vec(&v).unwrap();
        prop_assert_eq!(parse(&text).unwrap(), serde_json::from_slice::<Value>(&text).unwrap());
    }

    #[test]
    fn responses_decode_as_the_slow_path_decodes_them(payload in message_payload()) {
        let slow = wire::parse_payload(&payload).and_then(Response::from_value);
        prop_assert_eq!(outcome(wire::decode_response(&payload)), outcome(slow));
    }

    #[test]
    fn requests_decode_as_the_slow_path_decodes_them(payload in message_payload()) {
        let slow = wire::parse_payload(&payload).and_then(Request::from_value);
        prop_assert_eq!(outcome(wire::decode_request(&payload)), outcome(slow));
        let incoming = wire::decode_incoming(&payload).map_err(|bad| {
            (format!("{:?} {}", bad.error, bad.error), bad.request_id)
        });
        let slow = match wire::parse_payload(&payload) {
            Err(e) => Err((format!("{e:?} {e}"), None)),
            Ok(v) => {
                let id = v.get("request_id").and_then(Value::as_u64);
                Request::from_value(v).map_err(|e| (format!("{e:?} {e}"), id))
            }
        };
        prop_assert_eq!(incoming, slow);
    }

    #[test]
    fn requests_encode_to_the_bytes_serde_json_writes(r in request(), params in any::<bool>()) {
        let key = if params { ParamKey::Params } else { ParamKey::Parameter };
        let mut frame = BytesMut::new();
        wire::encode_request(&r, key, usize::MAX, &mut frame).unwrap();
        let json = serde_json::to_vec(&r.with_key(key)).unwrap();
        prop_assert_eq!(&frame[wire::HEADER_LEN..], &json[..]);
    }

    #[test]
    fn responses_encode_to_the_bytes_serde_json_writes(
        r in response(),
        extra in object(),
        reserved in prop::sample::subsequence(
            vec!["status", "state", "data", "error", "request_id"], 0..3),
        error_extra in object(),
    ) {
        let mut r = r;
        r.extra = extra;
        for name in reserved {
            r.extra.insert(name.to_owned(), Value::from(name));
        }
        if let Some(error) = &mut r.error {
            error.extra = error_extra;
        }
        let mut frame = BytesMut::new();
        wire::encode_response(&r, usize::MAX, &mut frame).unwrap();
        let json = serde_json::to_vec(&r).unwrap();
        prop_assert_eq!(&frame[wire::HEADER_LEN..], &json[..]);
    }
}
