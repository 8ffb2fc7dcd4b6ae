//! ARKEO framing: arbitrary bytes, in arbitrary chunks, through the request (device side) and
//! response (client side) decoders. Contract: an item or a payload error consumed bytes (exactly
//! one frame), "need more" consumed nothing, the only fatal error is `FrameTooLarge` and only
//! when the header really claims more than the limit; never a panic. The device side yields a
//! bad payload as an item (`Err(BadRequest)`) whose error reply encodes; a decoded request
//! re-encodes to a frame that decodes back to it.
#![no_main]

use arkeo_proto::{ClientCodec, DecodeError, ParamKey, ServerCodec};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

const MAX: usize = 512;

fn check<D>(mut codec: D, data: &[u8], chunk: usize, mut on_item: impl FnMut(D::Item))
where
    D: Decoder<Error = DecodeError>,
{
    let mut buf = BytesMut::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(Some(item)) => {
                    assert!(buf.len() < before, "an item consumed nothing");
                    on_item(item);
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "need-more consumed bytes");
                    break;
                }
                Err(DecodeError::FrameTooLarge { len, max }) => {
                    assert!(len > max as u64);
                    assert_eq!(max, MAX);
                    return;
                }
                Err(e) => {
                    assert!(!e.is_fatal(), "unexpected fatal error {e}");
                    assert!(buf.len() < before, "a payload error consumed nothing");
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(control).max(1);
    check(
        ServerCodec::new().max_frame_length(MAX),
        data,
        chunk,
        |request| {
            let request = match request {
                Ok(request) => request,
                Err(bad) => {
                    assert!(!bad.error.is_fatal(), "a fatal error as an item: {bad}");
                    let mut reply = BytesMut::new();
                    ServerCodec::new()
                        .encode(bad.response(), &mut reply)
                        .expect("the error reply encodes");
                    return;
                }
            };
            let mut frame = BytesMut::new();
            let key = if control & 1 == 0 {
                ParamKey::Parameter
            } else {
                ParamKey::Params
            };
            // Re-encoding may exceed the limit (key spelling, number formatting); that is an
            // encode error, not a bug.
            if ClientCodec::new()
                .param_key(key)
                .max_frame_length(MAX * 4)
                .encode(&request, &mut frame)
                .is_ok()
            {
                let again = ServerCodec::new()
                    .max_frame_length(MAX * 4)
                    .decode(&mut frame);
                assert_eq!(again.ok().flatten().and_then(Result::ok), Some(request));
            }
        },
    );
    check(
        ClientCodec::new().max_frame_length(MAX),
        data,
        chunk,
        |_| {},
    );
});
