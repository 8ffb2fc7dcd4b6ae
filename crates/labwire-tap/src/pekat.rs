//! PEKAT: unframed text, `command:path` (3.18) or `id.command|path` (3.19), short text answers.

use bytes::BytesMut;
use pekat_proto::{BadRequestKind, ClientCodec, Dialect, Limits, ServerCodec};
use tokio_util::codec::Decoder as _;

use crate::decode::{Fatal, Found, Framing, Protocol, short};
use crate::recording::{Decoded, Direction, Header};

/// PEKAT, decoded with pekat-proto's codecs under its [`Limits`]: requests with the server
/// codec (as the Projects Manager reads them), answers with the client codec.
///
/// There is no framing on the wire: a message is what the codec takes as complete, which for
/// a well-behaved peer is one write. A request that does not parse (an unknown command) is a
/// decode error and decoding goes on; more bytes than the limit for one message stops decoding
/// of that direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pekat {
    /// The dialect requests are read in.
    pub dialect: Dialect,
    /// The bounds of what is decoded.
    pub limits: Limits,
}

impl Protocol for Pekat {
    fn name(&self) -> &'static str {
        "pekat"
    }

    fn header(&self) -> Header {
        let mut header = Header::new(self.name());
        header
            .options
            .insert("dialect".into(), self.dialect.as_str().into());
        header
    }

    fn framing(&self, dir: Direction) -> Box<dyn Framing> {
        match dir {
            Direction::ToDevice => Box::new(Requests {
                codec: ServerCodec::with_limits(self.dialect, self.limits),
                max: self.limits.max_request_len,
            }),
            Direction::ToClient => Box::new(Answers {
                codec: ClientCodec::with_limits(self.dialect, self.limits),
                max: self.limits.max_response_len,
            }),
        }
    }
}

/// Line endings a message may carry besides its limit.
const LINE_ENDING: usize = 2;

/// Runs `decode` on a copy of `buf` (messages are at most a few KiB): the bytes it consumed
/// are the message's.
fn run<T>(
    buf: &[u8],
    decode: impl FnOnce(&mut BytesMut) -> Result<Option<T>, pekat_proto::DecodeError>,
) -> Result<Option<(usize, T)>, pekat_proto::DecodeError> {
    let mut work = BytesMut::from(buf);
    let item = decode(&mut work)?;
    Ok(item.map(|item| (buf.len() - work.len(), item)))
}

/// A codec error as a [`Fatal`]: a message over the limit is [`Fatal::over_limit`].
fn fatal(e: &pekat_proto::DecodeError) -> Fatal {
    match e {
        pekat_proto::DecodeError::TooLarge { .. } => Fatal::over_limit(e.to_string()),
        other => Fatal::new(other.to_string()),
    }
}

struct Requests {
    codec: ServerCodec,
    max: usize,
}

impl Requests {
    fn found(used: usize, incoming: pekat_proto::Incoming) -> Found {
        match incoming {
            Ok(request) => {
                let id = request
                    .id
                    .as_ref()
                    .map(|id| format!("{id}. "))
                    .unwrap_or_default();
                let summary = format!("{id}{} {}", request.command, short(&request.path, 80));
                let decoded = serde_json::to_value(&request)
                    .map_or_else(|e| Decoded::error(e.to_string()), Decoded::Message);
                Found {
                    used,
                    decoded,
                    summary,
                }
            }
            Err(bad) => Found {
                used,
                summary: format!("decode error: {bad}"),
                decoded: Decoded::error(bad.to_string()),
            },
        }
    }
}

impl Framing for Requests {
    fn next(&mut self, buf: &[u8]) -> Result<Option<Found>, Fatal> {
        match run(buf, |work| self.codec.decode(work)) {
            // The codec takes an oversize request as a bad request once (and fails after it):
            // for the tap it is the stream going over the limit.
            Ok(Some((_, Err(bad)))) if matches!(bad.kind, BadRequestKind::TooLarge { .. }) => {
                Err(Fatal::over_limit(bad.to_string()))
            }
            Ok(found) => Ok(found.map(|(used, incoming)| Self::found(used, incoming))),
            Err(e) => Err(fatal(&e)),
        }
    }

    fn at_eof(&mut self, buf: &[u8]) -> Option<Found> {
        run(buf, |work| self.codec.decode_eof(work))
            .ok()
            .flatten()
            .map(|(_, incoming)| Self::found(buf.len(), incoming))
    }

    fn max_message(&self) -> usize {
        self.max.saturating_add(LINE_ENDING)
    }
}

struct Answers {
    codec: ClientCodec,
    max: usize,
}

impl Answers {
    fn found(used: usize, reply: Result<pekat_proto::Reply, pekat_proto::DecodeError>) -> Found {
        match reply {
            Ok(reply) => {
                let id = reply
                    .id
                    .as_ref()
                    .map(|id| format!("{id}. "))
                    .unwrap_or_default();
                let summary = format!("{id}{}", short(&reply.response.to_string(), 80));
                let decoded = serde_json::to_value(&reply)
                    .map_or_else(|e| Decoded::error(e.to_string()), Decoded::Message);
                Found {
                    used,
                    decoded,
                    summary,
                }
            }
            Err(e) => Found {
                used,
                summary: format!("decode error: {e}"),
                decoded: Decoded::error(e.to_string()),
            },
        }
    }
}

impl Framing for Answers {
    fn next(&mut self, buf: &[u8]) -> Result<Option<Found>, Fatal> {
        match run(buf, |work| match self.codec.decode(work) {
            // Not UTF-8: the answer was consumed and the stream is in step.
            Err(e) if !e.is_fatal() => Ok(Some(Err(e))),
            other => other.map(|reply| reply.map(Ok)),
        }) {
            Ok(found) => Ok(found.map(|(used, reply)| Self::found(used, reply))),
            Err(e) => Err(fatal(&e)),
        }
    }

    fn at_eof(&mut self, buf: &[u8]) -> Option<Found> {
        let reply = match run(buf, |work| self.codec.decode_eof(work)) {
            Ok(Some((_, reply))) => Ok(reply),
            Ok(None) => return None,
            Err(e) => Err(e),
        };
        Some(Self::found(buf.len(), reply))
    }

    fn max_message(&self) -> usize {
        self.max.saturating_add(LINE_ENDING)
    }
}
