//! Pure functions from bytes to [`Message`]s and back; no sockets, no clock.
//!
//! The framing is the connection itself: a sender writes one UTF-8 JSON object and closes, so
//! a message is complete exactly when the peer's EOF arrives. Until then a receiver can only
//! check the size limit ([`check_len`]); at EOF it [`decode`]s the whole buffer.

use crate::message::{Body, Identity, Message, TYPE_KEY, UnitInfo};
use crate::raw::{Kind, Member, RawObject, Slot, Strict};

/// Largest message accepted or sent when no limit is configured: 256 KiB.
///
/// Requests and events are small (the longest are command outputs); the bound keeps a peer that
/// never stops sending from costing more than this per connection.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 256 * 1024;

/// Size limits for decoding and encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message, in bytes, read or written.
    pub max_message_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
        }
    }
}

/// Why bytes received on a connection are not a message. Every variant ends the connection
/// (there is one message per connection), and none affects any other connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The peer sent more than the limit; reading stopped at `len` bytes.
    #[error("message of at least {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Bytes received when the limit was crossed.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The peer closed the connection without sending anything.
    #[error("connection closed before any byte arrived")]
    Empty,
    /// The bytes are not UTF-8.
    #[error("message is not UTF-8 (valid up to byte {valid_up_to})")]
    NotUtf8 {
        /// Length of the longest valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// The text is not one JSON value (or has trailing data after it).
    #[error("message is not valid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// The JSON value is not an object.
    #[error("message is a JSON {found}, not an object")]
    NotAnObject {
        /// The kind of value found (`array`, `string`, ...).
        found: &'static str,
    },
    /// A required field is absent.
    #[error("required field `{field}` is missing")]
    MissingField {
        /// The field's wire name.
        field: &'static str,
    },
    /// A field has the wrong JSON type or an impossible value.
    #[error("field `{field}` must be {expected}")]
    InvalidField {
        /// The field's wire name.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// Reading from the connection failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a message cannot be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoded message would exceed the limit.
    #[error("encoded message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Serialisation failed (only possible for an [`Body::Unknown`] value serde cannot write).
    #[error("cannot serialise message: {0}")]
    Json(#[from] serde_json::Error),
    /// Writing to the connection failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Fails when `len` received bytes already exceed the limit; call it as bytes arrive, before
/// keeping more of them.
///
/// # Errors
/// [`DecodeError::TooLarge`].
pub fn check_len(len: usize, limits: &Limits) -> Result<(), DecodeError> {
    if len > limits.max_message_len {
        Err(DecodeError::TooLarge {
            len,
            max: limits.max_message_len,
        })
    } else {
        Ok(())
    }
}

/// What an informational field reads as when a message lacks it (or it is `null`).
pub const UNKNOWN: &str = "unknown";

/// Decodes everything a connection carried (the bytes up to EOF) into one message.
///
/// Whitespace around the object is allowed; anything else after it is [`DecodeError::InvalidJson`].
///
/// Lenient where the protocol allows: the informational fields `name`, `ip`, `version` and
/// every `unit_info` detail never make a message unusable. A missing (or `null`) one reads as
/// [`UNKNOWN`]; one of another JSON type is kept as its JSON text (`"version": 14` reads as
/// `"14"`). `id`, `port`, `coordinator`, `type_` and the body's own field (`command`,
/// `output`, `message`) must be present and typed as documented.
/// Fields besides the base fields and those of the message's `type_` are ignored, except for an
/// unknown `type_`, whose fields are all kept.
///
/// # Errors
/// A typed [`DecodeError`] saying what is wrong; never panics, whatever the input.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Message, DecodeError> {
    check_len(bytes.len(), limits)?;
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    match Strict::read(bytes).and_then(strict_message) {
        Some(message) => Ok(message),
        None => decode_leniently(bytes),
    }
}

/// The message a [`Strict`] read holds, `None` when it needs the lenient reader: an unknown
/// `type_`, a body field missing.
#[inline]
fn strict_message(s: Strict) -> Option<Message> {
    let body = match s.type_ {
        None => Body::Heartbeat,
        Some(Kind::Cmd) => Body::Cmd {
            command: s.command?,
        },
        Some(Kind::Output) => Body::Output { output: s.output? },
        Some(Kind::Message) => Body::Message {
            message: s.message?,
        },
        Some(Kind::UnitInfo) => Body::UnitInfo(UnitInfo {
            wiringpi_version: s.wiringpi_version?,
            boardio_version: s.boardio_version?,
            firmware_version: s.firmware_version?,
            unit_type: s.unit_type?,
            mcu_type: s.mcu_type?,
            mac_address: s.mac_address?,
        }),
    };
    let identity = Identity {
        id: s.id,
        name: s.name,
        ip: s.ip,
        port: s.port,
        version: s.version,
        coordinator: s.coordinator,
    };
    Some(Message { identity, body })
}

/// [`decode`] of anything [`Strict`] does not take: every rule of the protocol, every error.
#[cold]
#[inline(never)]
fn decode_leniently(bytes: &[u8]) -> Result<Message, DecodeError> {
    // serde_json checks UTF-8 as it parses (outside strings only ASCII is valid JSON), so a
    // successful parse needs no separate pass; a failed one is classified afterwards.
    let read = RawObject::read(bytes).map_err(|error| match std::str::from_utf8(bytes) {
        Err(e) => DecodeError::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        },
        Ok(_) => DecodeError::InvalidJson(error),
    })?;
    let mut object = read.map_err(|found| DecodeError::NotAnObject { found })?;
    let identity = Identity {
        id: take_string(&mut object, Slot::Id)?,
        name: take_text(&mut object, Slot::Name),
        ip: take_text(&mut object, Slot::Ip),
        port: take_port(&mut object)?,
        version: take_text(&mut object, Slot::Version),
        coordinator: match object.take(Slot::Coordinator) {
            Some(Member::Bool(b)) => b,
            Some(_) => return Err(invalid("coordinator", "a boolean")),
            None => {
                return Err(DecodeError::MissingField {
                    field: "coordinator",
                });
            }
        },
    };
    let type_ = match object.take(Slot::Type) {
        None => None,
        Some(Member::Str(s)) => Some(s),
        Some(_) => return Err(invalid(TYPE_KEY, "a string")),
    };
    let body = match type_.as_deref() {
        None => Body::Heartbeat,
        Some("cmd") => Body::Cmd {
            command: take_string(&mut object, Slot::Command)?,
        },
        Some("output") => Body::Output {
            output: take_string(&mut object, Slot::Output)?,
        },
        Some("message") => Body::Message {
            message: take_string(&mut object, Slot::Message)?,
        },
        Some("unit_info") => Body::UnitInfo(UnitInfo {
            wiringpi_version: take_text(&mut object, Slot::WiringpiVersion),
            boardio_version: take_text(&mut object, Slot::BoardioVersion),
            firmware_version: take_text(&mut object, Slot::FirmwareVersion),
            unit_type: take_text(&mut object, Slot::UnitType),
            mcu_type: take_text(&mut object, Slot::McuType),
            mac_address: take_text(&mut object, Slot::MacAddress),
        }),
        Some(_) => Body::Unknown {
            type_: type_.unwrap_or_default(),
            fields: object.into_body_fields(),
        },
    };
    Ok(Message { identity, body })
}

/// Encodes `message` as the bytes to write on its connection (then close it).
///
/// # Errors
/// [`EncodeError::TooLarge`] when the result exceeds the limit.
pub fn encode(message: &Message, limits: &Limits) -> Result<Vec<u8>, EncodeError> {
    // Sized once for what the message will take: growing a large output's buffer by doubling
    // would copy it several times over.
    let mut out = Vec::with_capacity(encoded_len_hint(message).min(limits.max_message_len));
    encode_into(message, limits, &mut out)?;
    Ok(out)
}

/// Like [`encode`], appending to `out`; on error `out` is left as it was.
///
/// # Errors
/// [`EncodeError::TooLarge`] when the message alone exceeds the limit.
pub fn encode_into(
    message: &Message,
    limits: &Limits,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    if let Err(error) = serde_json::to_writer(&mut *out, message) {
        out.truncate(start);
        return Err(error.into());
    }
    let len = out.len() - start;
    if len > limits.max_message_len {
        out.truncate(start);
        return Err(EncodeError::TooLarge {
            len,
            max: limits.max_message_len,
        });
    }
    Ok(())
}

/// About what `message` takes encoded: its text, room for the keys and punctuation, and an
/// eighth more for escapes (a command output's line endings).
fn encoded_len_hint(message: &Message) -> usize {
    /// Keys, quotes, separators and numbers of a message with the longest set of fields.
    const FRAME: usize = 256;
    /// What an unknown body's field is guessed to take.
    const UNKNOWN_FIELD: usize = 64;
    let id = &message.identity;
    let mut text = id.id.len() + id.name.len() + id.ip.len() + id.version.len();
    text += match &message.body {
        Body::Heartbeat => 0,
        Body::Cmd { command: s } | Body::Output { output: s } | Body::Message { message: s } => {
            s.len()
        }
        Body::UnitInfo(info) => info.values().iter().map(|s| s.len()).sum(),
        Body::Unknown { type_, fields } => type_.len() + fields.len() * UNKNOWN_FIELD,
    };
    FRAME + text + text / 8
}

fn invalid(field: &'static str, expected: &'static str) -> DecodeError {
    DecodeError::InvalidField { field, expected }
}

fn take_string(object: &mut RawObject, slot: Slot) -> Result<String, DecodeError> {
    match object.take(slot) {
        Some(Member::Str(s)) => Ok(s),
        Some(_) => Err(invalid(slot.key(), "a string")),
        None => Err(DecodeError::MissingField { field: slot.key() }),
    }
}

/// An informational text field, leniently: see [`decode`].
fn take_text(object: &mut RawObject, slot: Slot) -> String {
    match object.take(slot) {
        Some(Member::Str(s)) => s,
        None | Some(Member::Null) => {
            tracing::debug!(
                field = slot.key(),
                "informational field missing: read as unknown"
            );
            UNKNOWN.to_owned()
        }
        Some(other) => {
            tracing::debug!(
                field = slot.key(),
                "informational field is not a string: kept as JSON text"
            );
            other.json_text()
        }
    }
}

fn take_port(object: &mut RawObject) -> Result<u16, DecodeError> {
    match object.take(Slot::Port) {
        Some(Member::Unsigned(port)) => {
            u16::try_from(port).map_err(|_| invalid("port", "an integer from 0 to 65535"))
        }
        Some(_) => Err(invalid("port", "an integer from 0 to 65535")),
        None => Err(DecodeError::MissingField { field: "port" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn node() -> Identity {
        Identity::new(
            "81639cd4",
            "rigsters-controller",
            "192.168.0.22",
            5000,
            "0.14.0",
            false,
        )
    }

    fn decode_str(s: &str) -> Result<Message, DecodeError> {
        decode(s.as_bytes(), &Limits::default())
    }

    #[test]
    fn decodes_the_vendor_command_example() {
        let text = r#"{
            "command": "echo \"MODEL_LIGHT,100\\nLED_FAN,1\" > /home/rigsters/la4_sequence.csv && boardiocli uSeq && boardiocli runSeq",
            "type_": "cmd", "id": "31548ca2", "name": "My PC App", "ip": "192.168.0.100",
            "port": 5000, "version": "0.1.0", "coordinator": true }"#;
        let message = decode_str(text).unwrap();
        assert_eq!(message.identity.id, "31548ca2");
        assert!(message.identity.coordinator);
        assert_eq!(
            message.body,
            Body::Cmd {
                command: "echo \"MODEL_LIGHT,100\\nLED_FAN,1\" > /home/rigsters/la4_sequence.csv && boardiocli uSeq && boardiocli runSeq".into()
            }
        );
    }

    #[test]
    fn decodes_the_vendor_unit_info_example() {
        let text = r#"{"id": "81639cd4", "name": "rigsters-controller", "ip": "192.168.0.22",
            "port": 5000, "version": "0.14.0", "coordinator": false, "type_": "unit_info",
            "wiringpi_version": "2.61", "boardio_version": "1.3.0", "firmware_version": "2.0.4",
            "unit_type": "light_array", "mcu_type": "RP2040", "mac_address": "dc:a6:32:1b:4e:f0"}"#;
        let message = decode_str(text).unwrap();
        assert_eq!(message.identity, node());
        let Body::UnitInfo(info) = message.body else {
            panic!("not unit_info")
        };
        assert_eq!(info.mcu_type, "RP2040");
        assert_eq!(info.mac_address, "dc:a6:32:1b:4e:f0");
    }

    #[test]
    fn a_message_without_type_is_a_heartbeat() {
        let text = r#"{"id":"7756f193","name":"x","ip":"1.2.3.4","port":5000,"version":"0.1.0","coordinator":true}"#;
        assert_eq!(decode_str(text).unwrap().body, Body::Heartbeat);
    }

    #[test]
    fn unknown_type_is_kept_with_its_fields() {
        let text = r#"{"id":"a","name":"b","ip":"c","port":1,"version":"v","coordinator":false,"type_":"progress","percent":42,"extra":{"x":[1]}}"#;
        let message = decode_str(text).unwrap();
        let Body::Unknown { type_, fields } = &message.body else {
            panic!("not unknown")
        };
        assert_eq!(type_, "progress");
        assert_eq!(fields.len(), 2);
        assert_eq!(fields["percent"], 42);
        // And it survives a round trip.
        let again = decode(
            &encode(&message, &Limits::default()).unwrap(),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(again, message);
    }

    #[test]
    fn encoding_writes_wire_field_names_in_documented_order() {
        let bytes = encode(&Message::output(node(), "ok\n"), &Limits::default()).unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"id":"81639cd4","name":"rigsters-controller","ip":"192.168.0.22","port":5000,"version":"0.14.0","coordinator":false,"type_":"output","output":"ok\n"}"#
        );
    }

    #[test]
    fn a_heartbeat_is_written_without_type() {
        let bytes = encode(&Message::heartbeat(node()), &Limits::default()).unwrap();
        assert!(!std::str::from_utf8(&bytes).unwrap().contains("type_"));
    }

    #[test]
    fn unknown_fields_named_like_base_fields_are_not_written_twice() {
        let mut fields = serde_json::Map::new();
        fields.insert("id".into(), Value::from("spoof"));
        fields.insert("type_".into(), Value::from("spoof"));
        let message = Message::new(
            node(),
            Body::Unknown {
                type_: "x".into(),
                fields,
            },
        );
        let bytes = encode(&message, &Limits::default()).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert_eq!(text.matches("\"id\"").count(), 1);
        assert_eq!(text.matches("\"type_\"").count(), 1);
    }

    #[test]
    fn every_error_kind_is_typed() {
        assert!(matches!(decode_str(""), Err(DecodeError::Empty)));
        assert!(matches!(
            decode(b"{\"id\":\"\xff\"}", &Limits::default()),
            Err(DecodeError::NotUtf8 { valid_up_to: 7 })
        ));
        assert!(matches!(
            decode_str("{\"id\":"),
            Err(DecodeError::InvalidJson(_))
        ));
        assert!(matches!(
            decode_str("{} {}"),
            Err(DecodeError::InvalidJson(_))
        ));
        assert!(matches!(
            decode_str("[1,2]"),
            Err(DecodeError::NotAnObject { found: "array" })
        ));
        assert!(matches!(
            decode_str(r#"{"name":"b","ip":"c","port":1,"version":"v","coordinator":false}"#),
            Err(DecodeError::MissingField { field: "id" })
        ));
        assert!(matches!(
            decode_str(
                r#"{"id":"a","name":"b","ip":"c","port":1,"version":"v","coordinator":false,"type_":"cmd"}"#
            ),
            Err(DecodeError::MissingField { field: "command" })
        ));
        assert!(matches!(
            decode_str(
                r#"{"id":"a","name":"b","ip":"c","port":70000,"version":"v","coordinator":false}"#
            ),
            Err(DecodeError::InvalidField { field: "port", .. })
        ));
        assert!(matches!(
            decode_str(
                r#"{"id":"a","name":"b","ip":"c","port":-1,"version":"v","coordinator":false}"#
            ),
            Err(DecodeError::InvalidField { field: "port", .. })
        ));
        assert!(matches!(
            decode_str(
                r#"{"id":"a","name":"b","ip":"c","port":1,"version":"v","coordinator":"yes"}"#
            ),
            Err(DecodeError::InvalidField {
                field: "coordinator",
                ..
            })
        ));
        assert!(matches!(
            decode_str(
                r#"{"id":"a","name":"b","ip":"c","port":1,"version":"v","coordinator":true,"type_":7}"#
            ),
            Err(DecodeError::InvalidField { field: "type_", .. })
        ));
    }

    #[test]
    fn informational_fields_are_read_leniently() {
        let text = r#"{"id":"n1","port":5000,"coordinator":false,"version":14,"ip":null,
            "type_":"unit_info","wiringpi_version":2.61,"boardio_version":"1.3.0",
            "unit_type":"light_array","mcu_type":["RP2040"],"mac_address":"dc:a6:32:1b:4e:f0"}"#;
        let message = decode_str(text).unwrap();
        assert_eq!(message.identity.name, UNKNOWN);
        assert_eq!(message.identity.ip, UNKNOWN);
        assert_eq!(message.identity.version, "14");
        let Body::UnitInfo(info) = message.body else {
            panic!("not unit_info")
        };
        assert_eq!(info.wiringpi_version, "2.61");
        assert_eq!(info.firmware_version, UNKNOWN);
        assert_eq!(info.mcu_type, r#"["RP2040"]"#);
        assert_eq!(info.unit_type, "light_array");
    }

    #[test]
    fn an_output_from_a_node_with_odd_informational_fields_is_still_an_output() {
        let text = r#"{"id":"n1","port":5000,"coordinator":false,"name":7,"type_":"output","output":"ok\n"}"#;
        let message = decode_str(text).unwrap();
        assert_eq!(message.identity.name, "7");
        assert_eq!(
            message.body,
            Body::Output {
                output: "ok\n".into()
            }
        );
    }

    #[test]
    fn deep_nesting_up_to_the_size_limit_is_an_error_not_a_stack_overflow() {
        let limits = Limits::default();
        let base = r#"{"id":"a","name":"b","ip":"c","port":1,"version":"v","coordinator":false,"type_":"x","deep":"#;
        let nested = |open: &str, close: &str| {
            // As deep as fits.
            let depth = (limits.max_message_len - base.len() - 1) / (open.len() + close.len());
            let mut text = String::from(base);
            text.push_str(&open.repeat(depth));
            text.push_str(&close.repeat(depth));
            text.push('}');
            text
        };
        for text in [nested("[", "]"), nested("{\"k\":", "}")] {
            assert!(text.len() <= limits.max_message_len);
            assert!(matches!(
                decode(text.as_bytes(), &limits),
                Err(DecodeError::InvalidJson(_))
            ));
        }
        // A top-level array goes through the kind check without building anything.
        let depth = limits.max_message_len / 2;
        let array = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(decode(array.as_bytes(), &limits).is_err());
    }

    #[test]
    fn size_limit_applies_to_decode_and_encode() {
        let limits = Limits {
            max_message_len: 64,
        };
        let big = Message::output(node(), "x".repeat(100));
        assert!(matches!(
            encode(&big, &limits),
            Err(EncodeError::TooLarge { max: 64, .. })
        ));
        let bytes = encode(&big, &Limits::default()).unwrap();
        assert!(matches!(
            decode(&bytes, &limits),
            Err(DecodeError::TooLarge { max: 64, .. })
        ));
    }

    #[test]
    fn encode_into_leaves_the_buffer_untouched_on_error() {
        let mut out = b"prefix".to_vec();
        let limits = Limits {
            max_message_len: 10,
        };
        assert!(encode_into(&Message::heartbeat(node()), &limits, &mut out).is_err());
        assert_eq!(out, b"prefix");
    }
}

/// The one-pass reader against what decoding meant before it: the whole object read into a
/// `serde_json::Map`, then each field taken out of it.
#[cfg(test)]
mod through_a_map {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    const BODY_KEYS: [&str; 9] = [
        "command",
        "output",
        "message",
        "wiringpi_version",
        "boardio_version",
        "firmware_version",
        "unit_type",
        "mcu_type",
        "mac_address",
    ];

    fn take_string(
        map: &mut Map<String, Value>,
        field: &'static str,
    ) -> Result<String, DecodeError> {
        match map.remove(field) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(invalid(field, "a string")),
            None => Err(DecodeError::MissingField { field }),
        }
    }

    fn take_text(map: &mut Map<String, Value>, field: &str) -> String {
        match map.remove(field) {
            Some(Value::String(s)) => s,
            None | Some(Value::Null) => UNKNOWN.to_owned(),
            Some(other) => other.to_string(),
        }
    }

    fn decode_through_a_map(bytes: &[u8]) -> Result<Message, DecodeError> {
        let mut map = match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => map,
            Ok(_) => unreachable!("only objects are generated"),
            Err(error) => return Err(DecodeError::InvalidJson(error)),
        };
        // The order in which the old reader kept the fields: body keys first, then the others.
        let mut body_fields = Map::new();
        for key in BODY_KEYS {
            if let Some(value) = map.get(key) {
                body_fields.insert(key.to_owned(), value.clone());
            }
        }
        for (key, value) in &map {
            if !BODY_KEYS.contains(&key.as_str())
                && !crate::message::RESERVED_KEYS.contains(&key.as_str())
            {
                body_fields.insert(key.clone(), value.clone());
            }
        }
        let identity = Identity {
            id: take_string(&mut map, "id")?,
            name: take_text(&mut map, "name"),
            ip: take_text(&mut map, "ip"),
            port: match map.remove("port") {
                Some(Value::Number(n)) => n
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| invalid("port", "an integer from 0 to 65535"))?,
                Some(_) => return Err(invalid("port", "an integer from 0 to 65535")),
                None => return Err(DecodeError::MissingField { field: "port" }),
            },
            version: take_text(&mut map, "version"),
            coordinator: match map.remove("coordinator") {
                Some(Value::Bool(b)) => b,
                Some(_) => return Err(invalid("coordinator", "a boolean")),
                None => {
                    return Err(DecodeError::MissingField {
                        field: "coordinator",
                    });
                }
            },
        };
        let type_ = match map.remove(TYPE_KEY) {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(invalid(TYPE_KEY, "a string")),
        };
        let body = match type_.as_deref() {
            None => Body::Heartbeat,
            Some("cmd") => Body::Cmd {
                command: take_string(&mut map, "command")?,
            },
            Some("output") => Body::Output {
                output: take_string(&mut map, "output")?,
            },
            Some("message") => Body::Message {
                message: take_string(&mut map, "message")?,
            },
            Some("unit_info") => Body::UnitInfo(UnitInfo {
                wiringpi_version: take_text(&mut map, "wiringpi_version"),
                boardio_version: take_text(&mut map, "boardio_version"),
                firmware_version: take_text(&mut map, "firmware_version"),
                unit_type: take_text(&mut map, "unit_type"),
                mcu_type: take_text(&mut map, "mcu_type"),
                mac_address: take_text(&mut map, "mac_address"),
            }),
            Some(_) => Body::Unknown {
                type_: type_.unwrap_or_default(),
                fields: body_fields,
            },
        };
        Ok(Message { identity, body })
    }

    fn member_value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9 é\\\\n\"]{0,8}".prop_map(|s| Value::String(s).to_string()),
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            any::<u64>().prop_map(|n| n.to_string()),
            (0u64..70_000).prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            Just("-0".to_owned()),
            Just("2.61".to_owned()),
            Just("1e3".to_owned()),
            Just("18446744073709551616".to_owned()),
            Just(r#"[1, "a", {"b": null}]"#.to_owned()),
            Just(r#"{"x": [true], "x": 2}"#.to_owned()),
            Just("\"\\u0069d\"".to_owned()),
            prop::sample::select(vec![
                "\"cmd\"",
                "\"output\"",
                "\"message\"",
                "\"unit_info\"",
                "\"progress\""
            ])
            .prop_map(str::to_owned),
        ]
    }

    fn object_text() -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec![
            "id",
            "name",
            "ip",
            "port",
            "version",
            "coordinator",
            "type_",
            "command",
            "output",
            "message",
            "wiringpi_version",
            "mcu_type",
            "mac_address",
            "percent",
            "extra",
            "\\u0069d",
            "typ\\u0065_",
        ]);
        prop::collection::vec((key, member_value()), 0..14).prop_map(|members| {
            let members: Vec<String> = members
                .iter()
                .map(|(key, value)| format!("\"{key}\": {value}"))
                .collect();
            format!("{{{}}}", members.join(", "))
        })
    }

    /// A complete message with every base field valid, then more members on top (which may
    /// replace them), so that most cases get past the base fields.
    fn message_text() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec!["\"cmd\"", "\"output\"", "\"message\"", "\"unit_info\"", "\"progress\"", "null", "5"]),
            object_text(),
        )
            .prop_map(|(type_, more)| {
                let base = format!(
                    r#"{{"id": "81639cd4", "name": "n", "ip": "1.2.3.4", "port": 5000, "version": "0.14.0", "coordinator": false, "type_": {type_}, "command": "c", "output": "o", "message": "m""#
                );
                let more = more.strip_prefix('{').unwrap_or("}");
                if more == "}" { format!("{base}}}") } else { format!("{base}, {more}") }
            })
    }

    /// What the strict fast path makes of `text`, `None` when it leaves it to the lenient reader.
    fn strict(text: &str) -> Option<Message> {
        Strict::read(text.as_bytes()).and_then(strict_message)
    }

    #[test]
    fn documented_messages_take_the_strict_path() {
        let node = r#""id":"a","name":"b","ip":"c","port":5000,"version":"v","coordinator":false"#;
        for body in [
            "",
            r#","type_":"cmd","command":"ls""#,
            r#","type_":"output","output":"ok\n""#,
            r#","type_":"message","message":"BOARDIO_READY""#,
            r#","type_":"unit_info","wiringpi_version":"2.61","boardio_version":"1.3.0","firmware_version":"2.0.4","unit_type":"light_array","mcu_type":"RP2040","mac_address":"dc""#,
        ] {
            let text = format!(" {{{node}{body}}}\n");
            assert!(strict(&text).is_some(), "{text}");
            assert_eq!(
                format!("{:?}", strict(&text)),
                format!("{:?}", decode_leniently(text.as_bytes()).ok())
            );
        }
    }

    #[test]
    fn the_strict_path_leaves_anything_unusual_to_the_lenient_reader() {
        let node = r#""id":"a","name":"b","ip":"c","port":5000,"version":"v","coordinator":false"#;
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for text in [
            // A struct can be read from an array; a message cannot.
            r#"["a","b","c",5000,"v",false]"#.to_owned(),
            format!(r#"{{{node},"type_":null}}"#),
            format!(r#"{{{node},"type_":"progress","output":"x"}}"#),
            format!(r#"{{{node},"type_":"output"}}"#),
            format!(r#"{{{node},"type_":"unit_info"}}"#),
            format!(r#"{{{node},"type_":"output","output":"x","output":"y"}}"#),
            format!(r#"{{{node},"type_":"output","output":"x","n":1e400}}"#),
            format!(r#"{{{node},"type_":"output","output":"x","deep":{deep}}}"#),
            format!(r#"{{{node},"type_":"output","output":"x","command":null}}"#),
            r#"{"id":"a","name":7,"ip":"c","port":5000,"version":"v","coordinator":false}"#
                .to_owned(),
            r#"{"id":"a","ip":"c","port":5000,"version":"v","coordinator":false}"#.to_owned(),
            r#"{"id":"a","name":"b","ip":"c","port":-0,"version":"v","coordinator":false}"#
                .to_owned(),
        ] {
            assert!(strict(&text).is_none(), "{text}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn what_the_strict_path_takes_it_decodes_as_the_lenient_reader(
            text in prop_oneof![object_text(), message_text()]
        ) {
            if let Some(message) = strict(&text) {
                let lenient = decode_leniently(text.as_bytes());
                prop_assert_eq!(format!("{:?}", Ok::<_, ()>(message)), format!("{:?}", lenient.map_err(|_| ())), "{}", text);
            }
        }

        #[test]
        fn any_object_decodes_as_through_a_map(text in object_text()) {
            let one_pass = format!("{:?}", decode(text.as_bytes(), &Limits::default()));
            let through_a_map = format!("{:?}", decode_through_a_map(text.as_bytes()));
            prop_assert_eq!(one_pass, through_a_map, "{}", text);
        }

        #[test]
        fn any_message_decodes_as_through_a_map(text in message_text()) {
            let one_pass = decode(text.as_bytes(), &Limits::default());
            let through_a_map = decode_through_a_map(text.as_bytes());
            prop_assert_eq!(format!("{one_pass:?}"), format!("{through_a_map:?}"), "{}", text);
            // The fields of an unknown type come back in the same order.
            if let (Ok(one_pass), Ok(through_a_map)) = (one_pass, through_a_map) {
                let limits = Limits::default();
                prop_assert_eq!(encode(&one_pass, &limits).unwrap(), encode(&through_a_map, &limits).unwrap());
            }
        }
    }
}
