//! COMET: one exchange per connection, `u16 header length | JSON header | content` each way.

use comet_socket::wire::{self, Frame, PREFIX_LEN};
use comet_socket::{Limits, RawRequest, Response};
use serde_json::{Value, json};

use crate::decode::{Fatal, Found, Framing, Protocol, error_summary, short, short_json};
use crate::recording::{Decoded, Direction};

/// COMET, decoded with comet-socket's `wire` functions under its [`Limits`].
///
/// A request decodes to `{"action", "value"}` as it came (a missing key is absent, so an
/// invalid request still shows what it held), an answer to `{"result"}`; binary content (a
/// content type other than `text/json`) to `{"content_type", "content_hex"}`. Content that is
/// not JSON is a decode error; a header over the limit or that cannot be read stops decoding.
/// A COMET server reads one frame a connection; any frames after it are decoded all the same.
#[derive(Debug, Clone, Copy, Default)]
pub struct Comet {
    /// The bounds of what is decoded.
    pub limits: Limits,
}

impl Protocol for Comet {
    fn name(&self) -> &'static str {
        "comet"
    }

    fn framing(&self, dir: Direction) -> Box<dyn Framing> {
        Box::new(CometFraming {
            dir,
            limits: self.limits,
        })
    }
}

struct CometFraming {
    dir: Direction,
    limits: Limits,
}

impl Framing for CometFraming {
    fn next(&mut self, buf: &[u8]) -> Result<Option<Found>, Fatal> {
        let (frame, used) = match wire::decode(buf, &self.limits) {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(None),
            Err(e) => return Err(fatal(&e)),
        };
        let (decoded, summary) = if !frame.is_json() {
            binary(&frame)
        } else {
            match self.dir {
                Direction::ToDevice => request(&frame),
                Direction::ToClient => answer(&frame),
            }
        };
        Ok(Some(Found {
            used,
            decoded,
            summary,
        }))
    }

    fn max_message(&self) -> usize {
        PREFIX_LEN
            .saturating_add(self.limits.max_header_length.min(usize::from(u16::MAX)))
            .saturating_add(self.limits.max_content_length)
    }
}

/// A frame error as a [`Fatal`]: a header or content longer than the limits is
/// [`Fatal::over_limit`].
fn fatal(e: &comet_socket::DecodeError) -> Fatal {
    use comet_socket::DecodeError::{ContentTooLong, HeaderTooLong};
    match e {
        HeaderTooLong { .. } | ContentTooLong { .. } => Fatal::over_limit(e.to_string()),
        other => Fatal::new(other.to_string()),
    }
}

fn binary(frame: &Frame) -> (Decoded, String) {
    let decoded = json!({
        "content_type": frame.content_type,
        "content_hex": crate::recording::to_hex(&frame.content),
    });
    let summary = format!(
        "binary ({}), {} bytes",
        short(&frame.content_type, 40),
        frame.content.len()
    );
    (Decoded::Message(decoded), summary)
}

fn request(frame: &Frame) -> (Decoded, String) {
    match RawRequest::from_frame(frame) {
        Ok(raw) => {
            let mut object = serde_json::Map::new();
            if let Some(action) = &raw.action {
                object.insert("action".into(), action.clone());
            }
            if let Some(value) = &raw.value {
                object.insert("value".into(), value.clone());
            }
            let action = raw
                .action
                .as_ref()
                .map_or("(no action)".into(), |a| match a {
                    Value::String(s) => short(s, 40),
                    other => short_json(other, 40),
                });
            let value = raw
                .value
                .as_ref()
                .map_or("(no value)".into(), |v| short_json(v, 80));
            (
                Decoded::Message(Value::Object(object)),
                format!("{action} {value}"),
            )
        }
        Err(e) => error_summary("content", &e),
    }
}

fn answer(frame: &Frame) -> (Decoded, String) {
    match Response::from_frame(frame) {
        Ok(response) => {
            let summary = format!("result {}", short_json(&response.result, 80));
            (
                Decoded::Message(json!({"result": response.result})),
                summary,
            )
        }
        Err(e) => error_summary("content", &e),
    }
}
