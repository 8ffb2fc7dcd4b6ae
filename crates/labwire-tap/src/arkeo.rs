//! ARKEO: u32 big-endian length-prefixed JSON, both ways, on one persistent connection.

use arkeo_proto::wire::{self, HEADER_LEN};
use arkeo_proto::{DecodeError, Limits, Request, Response};

use crate::decode::{Fatal, Found, Framing, Protocol, error_summary, short_json};
use crate::recording::{Decoded, Direction};

/// ARKEO, decoded with arkeo-proto's `wire` functions under its [`Limits`].
///
/// A payload that is not a request or answer (bad JSON, bad UTF-8, not a message) is one
/// decode error and decoding goes on with the next frame (the length prefix keeps the stream
/// in step); a length prefix over `max_frame_length` stops decoding of that direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Arkeo {
    /// The bounds of what is decoded.
    pub limits: Limits,
}

impl Protocol for Arkeo {
    fn name(&self) -> &'static str {
        "arkeo"
    }

    fn framing(&self, dir: Direction) -> Box<dyn Framing> {
        Box::new(ArkeoFraming {
            dir,
            limits: self.limits,
        })
    }
}

struct ArkeoFraming {
    dir: Direction,
    limits: Limits,
}

impl Framing for ArkeoFraming {
    fn next(&mut self, buf: &[u8]) -> Result<Option<Found>, Fatal> {
        let (payload, used) = match wire::split_frame(buf, self.limits.max_frame_length) {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ok(None),
            Err(e) => return Err(Fatal::over_limit(e.to_string())),
        };
        let (decoded, summary) = match self.dir {
            Direction::ToDevice => message(wire::decode_request(payload), request_summary),
            Direction::ToClient => message(wire::decode_response(payload), response_summary),
        };
        Ok(Some(Found {
            used,
            decoded,
            summary,
        }))
    }

    fn max_message(&self) -> usize {
        HEADER_LEN.saturating_add(self.limits.max_frame_length)
    }
}

fn message<T: serde::Serialize>(
    result: Result<T, DecodeError>,
    summary: fn(&T) -> String,
) -> (Decoded, String) {
    match result {
        Ok(message) => match serde_json::to_value(&message) {
            Ok(value) => (Decoded::Message(value), summary(&message)),
            Err(e) => error_summary("payload", &e),
        },
        Err(e) => error_summary("payload", &e),
    }
}

fn id(request_id: Option<u64>) -> String {
    request_id.map(|id| format!(" #{id}")).unwrap_or_default()
}

fn request_summary(request: &Request) -> String {
    let mut text = format!(
        "{} {}{}",
        request.target,
        request.command,
        id(request.request_id)
    );
    if !request.parameter.is_empty() {
        text.push(' ');
        text.push_str(&short_json(&request.parameter.clone().into(), 80));
    }
    text
}

fn response_summary(response: &Response) -> String {
    let status = response
        .status
        .as_ref()
        .map_or("(no status)", |s| s.as_str());
    let mut text = format!("{status}{}", id(response.request_id));
    if let Some(error) = &response.error {
        let code = error.code.map(|c| format!(" {c}")).unwrap_or_default();
        text.push_str(&format!(" error{code} {}", error.message));
    } else if let Some(data) = &response.data {
        text.push(' ');
        text.push_str(&short_json(data, 80));
    }
    text
}
