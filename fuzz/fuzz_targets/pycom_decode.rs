//! pycom framing and message decoding: arbitrary bytes, arbitrarily chunked.
//!
//! Contract: before EOF the codec only ever asks for more (or refuses a buffer over the limit);
//! at EOF it agrees with `wire::decode`; a decoded message re-encodes to bytes that decode to the
//! same message.
//!
//! The limit is 1 KiB, well under libFuzzer's 4 KiB `-max_len`, so the `TooLarge` path is reached.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pycom_proto::PycomCodec;
use pycom_proto::wire::{self, DecodeError, Limits};
use tokio_util::codec::Decoder;

const LIMITS: Limits = Limits {
    max_message_len: 1024,
};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, bytes)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk.max(1));
    let mut codec = PycomCodec::with_limits(LIMITS);
    let mut buf = BytesMut::new();
    for piece in bytes.chunks(chunk) {
        buf.extend_from_slice(piece);
        match codec.decode(&mut buf) {
            Ok(None) => {}
            Ok(Some(_)) => panic!("a message before EOF"),
            Err(DecodeError::TooLarge { len, max }) => {
                assert!(len > max && bytes.len() > LIMITS.max_message_len);
                return;
            }
            Err(other) => panic!("unexpected error before EOF: {other}"),
        }
    }
    let at_eof = codec.decode_eof(&mut buf);
    let direct = wire::decode(bytes, &LIMITS);
    match (at_eof, direct) {
        (Ok(None), Err(DecodeError::Empty)) => assert!(bytes.is_empty()),
        (Ok(Some(message)), Ok(same)) => {
            assert_eq!(message, same);
            let encoded = wire::encode(&message, &Limits::default()).expect("re-encode");
            let again = wire::decode(&encoded, &Limits::default()).expect("decode re-encoded");
            assert_eq!(again, message);
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!("codec and wire disagree: {a:?} vs {b:?}"),
    }
});
