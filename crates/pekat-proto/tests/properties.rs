//! Property tests of the wire format and codecs.
//!
//! The wire has no delimiter, so "every strict prefix needs more" holds for the part of a
//! message that says it is incomplete: a request's head (before its separator) and any known
//! answer. Everything after a request's separator may be the end of the message.

use bytes::BytesMut;
use pekat_proto::wire::{self, Completeness};
use pekat_proto::{
    ClientCodec, Command, Dialect, MAX_ID_LEN, ProjectState, Reply, Request, RequestId, Response,
    ServerCodec,
};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

fn dialect() -> impl Strategy<Value = Dialect> {
    prop_oneof![Just(Dialect::V3_18), Just(Dialect::V3_19)]
}

fn command() -> impl Strategy<Value = Command> {
    prop::sample::select(Command::ALL.to_vec())
}

fn id() -> impl Strategy<Value = RequestId> {
    proptest::string::string_regex(&format!("[A-Za-z0-9_-]{{1,{MAX_ID_LEN}}}"))
        .unwrap()
        .prop_map(|s| RequestId::new(s).unwrap())
}

/// Windows-looking paths and arbitrary text without CR, LF or NUL.
fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::string::string_regex(
            r"[A-Z]:\\([A-Za-z0-9 ._:|=-]{1,12}\\){0,4}[A-Za-z0-9 ._-]{1,12}"
        )
        .unwrap(),
        "[^\r\n\u{0}]{1,80}",
    ]
}

fn request(dialect: Dialect) -> impl Strategy<Value = Request> {
    let id = if dialect.supports_ids() {
        prop::option::of(id()).boxed()
    } else {
        Just(None).boxed()
    };
    (id, command(), path()).prop_map(|(id, command, path)| Request { id, command, path })
}

fn dialect_and_request() -> impl Strategy<Value = (Dialect, Request)> {
    dialect().prop_flat_map(|d| (Just(d), request(d)))
}

fn known_response() -> impl Strategy<Value = Response> {
    prop_oneof![
        Just(Response::Done),
        Just(Response::Success),
        prop::sample::select(ProjectState::ALL.to_vec()).prop_map(Response::Status),
        Just(Response::NotFound),
        Just(Response::PortInUse),
        Just(Response::UnknownCommand),
    ]
}

fn dialect_and_reply() -> impl Strategy<Value = (Dialect, Reply)> {
    dialect().prop_flat_map(|d| {
        let id = if d.supports_ids() {
            prop::option::of(id()).boxed()
        } else {
            Just(None).boxed()
        };
        (Just(d), id, known_response()).prop_map(|(d, id, response)| (d, Reply { id, response }))
    })
}

fn encode_request(request: &Request, dialect: Dialect) -> Vec<u8> {
    let mut buf = BytesMut::new();
    wire::encode_request(request, dialect, &mut buf).unwrap();
    buf.to_vec()
}

fn encode_reply(reply: &Reply, dialect: Dialect) -> Vec<u8> {
    let mut buf = BytesMut::new();
    ServerCodec::new(dialect).encode(reply, &mut buf).unwrap();
    buf.to_vec()
}

/// Feeds `bytes` to `codec` cut at `cuts` (then the rest), decoding after each piece.
/// Returns what was decoded, the codec and what is left in its buffer.
fn feed_in_chunks<D>(
    mut codec: D,
    bytes: &[u8],
    mut cuts: Vec<usize>,
) -> (Vec<D::Item>, (D, BytesMut))
where
    D: Decoder,
    D::Error: std::fmt::Debug,
{
    cuts.sort_unstable();
    cuts.push(bytes.len());
    let mut buf = BytesMut::new();
    let mut decoded = Vec::new();
    let mut from = 0;
    for cut in cuts {
        buf.extend_from_slice(&bytes[from..cut]);
        from = cut;
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            decoded.push(item);
        }
    }
    (decoded, (codec, buf))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn requests_round_trip_in_both_dialects((dialect, request) in dialect_and_request()) {
        let bytes = encode_request(&request, dialect);
        prop_assert_eq!(wire::parse_request(&bytes, dialect), Ok(request.clone()));
        // With a tolerated line ending too.
        let mut crlf = bytes.clone();
        crlf.extend_from_slice(b"\r\n");
        prop_assert_eq!(wire::parse_request(&crlf, dialect), Ok(request));
    }

    #[test]
    fn a_whole_request_is_complete_and_decodes_at_once((dialect, request) in dialect_and_request()) {
        let bytes = encode_request(&request, dialect);
        prop_assert_eq!(wire::request_completeness(&bytes, dialect), Completeness::Complete);
        let mut codec = ServerCodec::new(dialect);
        let mut buf = BytesMut::from(&bytes[..]);
        prop_assert_eq!(codec.decode(&mut buf).unwrap(), Some(Ok(request)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn every_strict_prefix_of_a_request_head_needs_more((dialect, request) in dialect_and_request()) {
        let bytes = encode_request(&request, dialect);
        let separator = bytes.iter().position(|&b| b == dialect.separator()).unwrap();
        for end in 0..=separator {
            prop_assert_eq!(
                wire::request_completeness(&bytes[..end], dialect),
                Completeness::NeedMore,
                "prefix {:?}", String::from_utf8_lossy(&bytes[..end])
            );
        }
    }

    #[test]
    fn a_request_chunked_anywhere_in_its_head_decodes_the_same(
        (dialect, request) in dialect_and_request(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let bytes = encode_request(&request, dialect);
        let separator = bytes.iter().position(|&b| b == dialect.separator()).unwrap();
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(separator + 1)).collect();
        let (decoded, _) = feed_in_chunks(ServerCodec::new(dialect), &bytes, cuts);
        prop_assert_eq!(decoded, vec![Ok(request)]);
    }

    #[test]
    fn line_endings_cut_from_their_requests_never_become_requests(
        (dialect, requests) in dialect().prop_flat_map(|d| {
            (Just(d), prop::collection::vec(request(d), 1..5))
        }),
        endings in prop::collection::vec(
            (prop::sample::select(vec!["", "\n", "\r\n", "\r\n\r\n"]), any::<prop::sample::Index>()),
            5,
        ),
    ) {
        // Strict turn-taking: each request arrives whole, with the part of its line ending
        // before `cut`; the rest arrives late, a byte at a time, before the next request.
        let mut codec = ServerCodec::new(dialect);
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        for (request, (ending, cut)) in requests.iter().zip(&endings) {
            let cut = cut.index(ending.len() + 1);
            let mut bytes = encode_request(request, dialect);
            bytes.extend_from_slice(&ending.as_bytes()[..cut]);
            for piece in std::iter::once(&bytes[..]).chain(ending.as_bytes()[cut..].chunks(1)) {
                buf.extend_from_slice(piece);
                while let Some(item) = codec.decode(&mut buf).unwrap() {
                    decoded.push(item);
                }
            }
        }
        while let Some(item) = codec.decode_eof(&mut buf).unwrap() {
            decoded.push(item);
        }
        let expected: Vec<_> = requests.into_iter().map(Ok).collect();
        prop_assert_eq!(decoded, expected);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn known_answers_round_trip_in_both_dialects((dialect, reply) in dialect_and_reply()) {
        let bytes = encode_reply(&reply, dialect);
        prop_assert!(bytes.len() <= pekat_proto::DEFAULT_MAX_RESPONSE_LEN);
        prop_assert_eq!(wire::parse_response(&bytes).unwrap(), reply.clone());
        let mut crlf = bytes.clone();
        crlf.extend_from_slice(b"\r\n");
        prop_assert_eq!(wire::parse_response(&crlf).unwrap(), reply);
    }

    #[test]
    fn answers_are_understood_whatever_dialect_the_client_speaks(
        (server, reply) in dialect_and_reply(),
        client in dialect(),
    ) {
        let bytes = encode_reply(&reply, server);
        let mut codec = ClientCodec::new(client);
        let mut buf = BytesMut::from(&bytes[..]);
        prop_assert_eq!(codec.decode(&mut buf).unwrap(), Some(reply));
    }

    #[test]
    fn every_strict_prefix_of_a_known_answer_needs_more((dialect, reply) in dialect_and_reply()) {
        let bytes = encode_reply(&reply, dialect);
        for end in 0..bytes.len() {
            prop_assert_eq!(
                wire::response_completeness(&bytes[..end], reply.id.as_ref()),
                Completeness::NeedMore,
                "prefix {:?}", String::from_utf8_lossy(&bytes[..end])
            );
        }
        prop_assert_eq!(
            wire::response_completeness(&bytes, reply.id.as_ref()),
            Completeness::Complete
        );
    }

    #[test]
    fn a_known_answer_chunked_anywhere_decodes_the_same(
        (dialect, reply) in dialect_and_reply(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        line_ending in prop::sample::select(vec!["", "\n", "\r\n"]),
    ) {
        let mut bytes = encode_reply(&reply, dialect);
        bytes.extend_from_slice(line_ending.as_bytes());
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        let mut codec = ClientCodec::new(dialect);
        codec.expect_id(reply.id.clone());
        let (mut decoded, (mut codec, mut buf)) = feed_in_chunks(codec, &bytes, cuts);
        while let Some(item) = codec.decode_eof(&mut buf).unwrap() {
            decoded.push(item);
        }
        prop_assert_eq!(decoded, vec![reply]);
    }

    #[test]
    fn unknown_answers_keep_their_text(text in "[A-Za-z][A-Za-z0-9 ,!-]{0,40}") {
        let reply = wire::parse_response(text.as_bytes()).unwrap();
        if let Response::Other(kept) = &reply.response {
            prop_assert_eq!(kept, &text);
            let bytes = encode_reply(&reply, Dialect::V3_18);
            prop_assert_eq!(wire::parse_response(&bytes).unwrap(), reply);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        chunk in 1usize..32,
        dialect in dialect(),
    ) {
        let _ = wire::parse_request(&bytes, dialect);
        let _ = wire::parse_response(&bytes);
        let _ = wire::request_completeness(&bytes, dialect);
        let _ = wire::response_completeness(&bytes, None);
        let mut server = ServerCodec::new(dialect).with_max_request_len(64);
        let mut client = ClientCodec::new(dialect);
        let (mut sbuf, mut cbuf) = (BytesMut::new(), BytesMut::new());
        for piece in bytes.chunks(chunk) {
            sbuf.extend_from_slice(piece);
            cbuf.extend_from_slice(piece);
            let before = sbuf.len();
            match server.decode(&mut sbuf) {
                Ok(Some(_)) => prop_assert!(sbuf.len() < before),
                Ok(None) => prop_assert_eq!(sbuf.len(), before),
                Err(e) => {
                    prop_assert!(e.is_fatal());
                    sbuf.clear();
                }
            }
            if client.decode(&mut cbuf).is_err() {
                cbuf.clear();
            }
        }
        let _ = server.decode_eof(&mut sbuf);
        let _ = client.decode_eof(&mut cbuf);
    }
}
