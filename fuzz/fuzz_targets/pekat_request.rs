//! The server side of PEKAT: arbitrary bytes, in arbitrary chunks, through the request decoder
//! of either dialect. Contract: a request or a `BadRequest` item that consumed bytes, "need
//! more" that consumed nothing, or a fatal `TooLarge` error; never a panic; a decoded request
//! re-encodes (when its path is sendable) to bytes that parse back to it.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pekat_proto::{DecodeError, Dialect, ServerCodec, wire};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let dialect = if control & 1 == 0 {
        Dialect::V3_18
    } else {
        Dialect::V3_19
    };
    let chunk = usize::from(control >> 1).max(1);
    let mut codec = ServerCodec::new(dialect).with_max_request_len(256);
    let mut buf = BytesMut::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        let before = buf.len();
        match codec.decode(&mut buf) {
            Ok(Some(item)) => {
                assert!(buf.len() < before, "an item consumed nothing");
                if let Ok(request) = item {
                    let mut out = BytesMut::new();
                    if wire::encode_request(&request, dialect, &mut out).is_ok() {
                        assert_eq!(wire::parse_request(&out, dialect), Ok(request));
                    }
                }
            }
            Ok(None) => assert_eq!(buf.len(), before, "need more consumed bytes"),
            Err(DecodeError::TooLarge { max, .. }) => {
                assert_eq!(max, 256);
                return;
            }
            Err(other) => panic!("unexpected decoder error {other:?}"),
        }
    }
    let _ = codec.decode_eof(&mut buf);
});
