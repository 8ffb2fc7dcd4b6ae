//! COMET frames: arbitrary bytes, in arbitrary chunks, through `wire::decode` and the codec.
//! Contract: a frame that consumed no more than it was given and re-encodes to bytes that
//! decode back to it, "need more", or a typed error; the codec agrees with `wire::decode`
//! however the input is chunked; never a panic.
#![no_main]

use bytes::BytesMut;
use comet_socket::{CometCodec, Limits, wire};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_header_length: 512,
        max_content_length: 4096,
    };
    let whole = wire::decode(data, &limits);
    if let Ok(Some((frame, used))) = &whole {
        assert!(*used <= data.len());
        // COMET's separators make a re-encoded header up to 7 bytes longer than a compact one
        // that just fit the limit, so re-encode with the largest header the prefix can announce.
        let reencode = Limits {
            max_header_length: usize::from(u16::MAX),
            ..limits
        };
        let bytes = wire::encode_to_bytes(frame, &reencode).expect("a decoded frame re-encodes");
        let (again, again_used) = wire::decode(&bytes, &reencode).unwrap().unwrap();
        assert_eq!(&again, frame);
        assert_eq!(again_used, bytes.len());
    }
    let chunk = usize::from(control).max(1);
    let mut codec = CometCodec::with_limits(limits);
    let mut buf = BytesMut::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => {
                let Ok(Some((expected, _))) = &whole else {
                    panic!("the codec found a frame wire::decode did not");
                };
                assert_eq!(&frame, expected);
                return;
            }
            Ok(None) => {}
            Err(_) => {
                assert!(
                    whole.is_err(),
                    "the codec failed where wire::decode did not"
                );
                return;
            }
        }
    }
    assert!(
        matches!(whole, Ok(None)),
        "wire::decode found what the codec did not"
    );
});
