//! The client side of PEKAT: arbitrary bytes, in arbitrary chunks, through the answer decoder.
//! Contract: an answer that consumed bytes, "need more" that consumed nothing, a non-fatal
//! `InvalidUtf8` that consumed the answer, or a fatal `TooLarge`; never a panic.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pekat_proto::{ClientCodec, DecodeError, Dialect, wire};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let _ = wire::parse_response(data);
    let chunk = usize::from(control).max(1);
    let mut codec = ClientCodec::new(Dialect::V3_19);
    let mut buf = BytesMut::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        let before = buf.len();
        match codec.decode(&mut buf) {
            Ok(Some(_)) => assert!(buf.len() < before, "an answer consumed nothing"),
            Ok(None) => assert!(buf.len() <= before),
            Err(DecodeError::InvalidUtf8) => assert!(buf.is_empty()),
            Err(DecodeError::TooLarge { .. }) => return,
            Err(other) => panic!("unexpected decoder error {other:?}"),
        }
    }
    let _ = codec.decode_eof(&mut buf);
});
