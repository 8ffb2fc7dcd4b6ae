//! One pass from JSON text to the fields decoding needs, without building a map of every key.
//!
//! Known keys are matched while parsing (no allocation for the key) and their values kept in
//! fixed slots, as what decoding needs of them: a string, a boolean, an unsigned integer, null,
//! or (rarely) any other JSON value. Other keys are kept only in case the message has an
//! unknown `type_`. Duplicate keys: the last one wins, as in `serde_json::Map`. Every value is
//! read as strictly as a `serde_json::Value` would be, so exactly the same text is accepted.

use std::borrow::Cow;
use std::fmt;

use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::{Map, Value};

/// Every key a known message uses: the base fields, `type_`, then the body fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Id,
    Name,
    Ip,
    Port,
    Version,
    Coordinator,
    Type,
    Command,
    Output,
    Message,
    WiringpiVersion,
    BoardioVersion,
    FirmwareVersion,
    UnitType,
    McuType,
    MacAddress,
}

/// How many [`Slot`]s there are.
const SLOTS: usize = 16;

impl Slot {
    /// The body keys, in the order they go back into an unknown `type_`'s fields.
    const BODY: [Slot; 9] = [
        Slot::Command,
        Slot::Output,
        Slot::Message,
        Slot::WiringpiVersion,
        Slot::BoardioVersion,
        Slot::FirmwareVersion,
        Slot::UnitType,
        Slot::McuType,
        Slot::MacAddress,
    ];

    fn of(key: &str) -> Option<Self> {
        Some(match key {
            "id" => Self::Id,
            "name" => Self::Name,
            "ip" => Self::Ip,
            "port" => Self::Port,
            "version" => Self::Version,
            "coordinator" => Self::Coordinator,
            "type_" => Self::Type,
            "command" => Self::Command,
            "output" => Self::Output,
            "message" => Self::Message,
            "wiringpi_version" => Self::WiringpiVersion,
            "boardio_version" => Self::BoardioVersion,
            "firmware_version" => Self::FirmwareVersion,
            "unit_type" => Self::UnitType,
            "mcu_type" => Self::McuType,
            "mac_address" => Self::MacAddress,
            _ => return None,
        })
    }

    /// The key on the wire.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Name => "name",
            Self::Ip => "ip",
            Self::Port => "port",
            Self::Version => "version",
            Self::Coordinator => "coordinator",
            Self::Type => "type_",
            Self::Command => "command",
            Self::Output => "output",
            Self::Message => "message",
            Self::WiringpiVersion => "wiringpi_version",
            Self::BoardioVersion => "boardio_version",
            Self::FirmwareVersion => "firmware_version",
            Self::UnitType => "unit_type",
            Self::McuType => "mcu_type",
            Self::MacAddress => "mac_address",
        }
    }
}

/// A member's value, as decoding needs it: the common kinds without a `Value` around them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Member {
    /// A string.
    Str(String),
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer from 0 up.
    Unsigned(u64),
    /// Anything else: a negative or fractional number, an array, an object.
    Other(Box<Value>),
}

impl Member {
    /// The member as the `Value` it was read from.
    pub(crate) fn into_value(self) -> Value {
        match self {
            Self::Str(s) => Value::String(s),
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(b),
            Self::Unsigned(n) => Value::from(n),
            Self::Other(value) => *value,
        }
    }

    /// The member written as JSON text (a string with its quotes).
    pub(crate) fn json_text(self) -> String {
        match self {
            Self::Null => "null".to_owned(),
            Self::Bool(b) => b.to_string(),
            Self::Unsigned(n) => n.to_string(),
            other => other.into_value().to_string(),
        }
    }
}

/// An object's fields: known keys in fixed slots, the rest in arrival order.
pub(crate) struct RawObject {
    known: [Option<Member>; SLOTS],
    extra: Vec<(String, Value)>,
}

impl RawObject {
    /// Reads the JSON text `bytes` (strictly, as `serde_json::from_slice` does) into an
    /// object's fields, in one pass; `Ok(Err(kind))` when the text is valid JSON but not an
    /// object (`array`, `string`, ...).
    ///
    /// # Errors
    /// The parser's error for anything that is not JSON.
    pub(crate) fn read(bytes: &[u8]) -> Result<Result<Self, &'static str>, serde_json::Error> {
        let mut object = Self {
            known: Default::default(),
            extra: Vec::new(),
        };
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        // Filled in place: the slots are not moved around on their way out.
        let found = Fill(&mut object).deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(match found {
            None => Ok(object),
            Some(kind) => Err(kind),
        })
    }

    /// Takes the value of a known key (`None` when absent or already taken).
    pub(crate) fn take(&mut self, slot: Slot) -> Option<Member> {
        self.known.get_mut(slot as usize).and_then(Option::take)
    }

    /// Every field not taken yet, except the base fields and `type_`: the fields of a message
    /// with an unknown `type_` (body keys first, then the others in arrival order).
    pub(crate) fn into_body_fields(mut self) -> Map<String, Value> {
        let mut fields = Map::new();
        for slot in Slot::BODY {
            if let Some(member) = self.take(slot) {
                fields.insert(slot.key().to_owned(), member.into_value());
            }
        }
        // Later duplicates overwrite earlier ones.
        for (key, value) in self.extra {
            fields.insert(key, value);
        }
        fields
    }
}

/// Reads a JSON value into the object's fields, or says which kind of value it was instead.
struct Fill<'a>(&'a mut RawObject);

impl<'de> DeserializeSeed<'de> for Fill<'_> {
    type Value = Option<&'static str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Fill<'_> {
    type Value = Option<&'static str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let object = self.0;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match Slot::of(&key).and_then(|slot| object.known.get_mut(slot as usize)) {
                Some(slot) => *slot = Some(map.next_value()?),
                None => {
                    let value = map.next_value()?;
                    object.extra.push((key.into_owned(), value));
                }
            }
        }
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Consumed, so that invalid JSON further on is still reported as such.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Some("array"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Some("boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Some("number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Some("number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Some("number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Some("string"))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Some("null"))
    }
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MemberVisitor)
    }
}

/// Reads any JSON value as a [`Member`], building what `serde_json`'s own `Value` visitor would
/// build for the kinds that are not kept apart.
struct MemberVisitor;

impl<'de> Visitor<'de> for MemberVisitor {
    type Value = Member;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E>(self, v: &str) -> Result<Member, E> {
        Ok(Member::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Member, E> {
        Ok(Member::Str(v))
    }

    fn visit_unit<E>(self) -> Result<Member, E> {
        Ok(Member::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Member, E> {
        Ok(Member::Bool(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Member, E> {
        Ok(Member::Unsigned(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Member, E> {
        // As a `Value` holds it: a non-negative integer is unsigned, whichever way it came.
        Ok(match u64::try_from(v) {
            Ok(v) => Member::Unsigned(v),
            Err(_) => Member::Other(Box::new(Value::from(v))),
        })
    }

    fn visit_f64<E>(self, v: f64) -> Result<Member, E> {
        Ok(Member::Other(Box::new(Value::from(v))))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Member, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Member::Other(Box::new(Value::Array(items))))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member, A::Error> {
        let mut object = Map::new();
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            object.insert(key, value);
        }
        Ok(Member::Other(Box::new(Value::Object(object))))
    }
}

/// A key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

/// What a message of a known `type_` (or a heartbeat) looks like when every field is as the
/// protocol documents it: every key known and given once, each string a string. Read with
/// `serde_json`'s own typed decoding, as fast as a plain struct; anything else (an unknown key or
/// `type_`, a duplicate, a missing or `null` field, a value of another type, invalid JSON, not
/// an object) is left to the lenient [`RawObject`] reader, which decides what it means.
///
/// Whatever this accepts, the lenient reader decodes to the same values: only keys with a slot
/// (`deny_unknown_fields`, so no unknown value goes unchecked through `IgnoredAny`, which is
/// laxer than a `Value`), strings read by the same parser, a port read as the same integer.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Strict {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) ip: String,
    pub(crate) port: u16,
    pub(crate) version: String,
    pub(crate) coordinator: bool,
    #[serde(default, deserialize_with = "some")]
    pub(crate) type_: Option<Kind>,
    #[serde(default, deserialize_with = "some")]
    pub(crate) command: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub(crate) output: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub(crate) message: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub(crate) wiringpi_version: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub(crate) boardio_version: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub(crate) firmware_version: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub(crate) unit_type: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub(crate) mcu_type: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub(crate) mac_address: Option<String>,
}

impl Strict {
    /// The message in `bytes` when it is exactly as the protocol documents it, `None` otherwise
    /// (including every error: the lenient reader reports them).
    #[inline]
    pub(crate) fn read(bytes: &[u8]) -> Option<Self> {
        // A struct is also read from an array; a message is only ever an object.
        let first = bytes
            .iter()
            .find(|b| !matches!(b, b' ' | b'\n' | b'\t' | b'\r'));
        if first != Some(&b'{') {
            return None;
        }
        serde_json::from_slice(bytes).ok()
    }
}

/// A present field, which must not be `null` (a missing one is `None` by `default`).
fn some<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// A known `type_`, matched without keeping the string; any other is an error (for [`Strict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Cmd,
    Output,
    Message,
    UnitInfo,
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KindVisitor)
    }
}

struct KindVisitor;

impl Visitor<'_> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a known type_")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Kind, E> {
        Ok(match v {
            "cmd" => Kind::Cmd,
            "output" => Kind::Output,
            "message" => Kind::Message,
            "unit_info" => Kind::UnitInfo,
            _ => return Err(E::custom("unknown type_")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(text: &str) -> RawObject {
        match RawObject::read(text.as_bytes()).unwrap() {
            Ok(object) => object,
            Err(kind) => panic!("not an object: {kind}"),
        }
    }

    #[test]
    fn the_last_duplicate_wins_for_known_and_other_keys() {
        let mut o = object(r#"{"id":"a","x":1,"id":"b","x":2}"#);
        assert_eq!(o.take(Slot::Id), Some(Member::Str("b".into())));
        assert_eq!(o.into_body_fields()["x"], 2);
    }

    #[test]
    fn escaped_keys_are_matched_too() {
        let mut o = object(r#"{"\u0069d":"a"}"#);
        assert_eq!(o.take(Slot::Id), Some(Member::Str("a".into())));
    }

    #[test]
    fn every_slot_is_found_by_its_key() {
        for slot in [
            Slot::Id,
            Slot::Name,
            Slot::Ip,
            Slot::Port,
            Slot::Version,
            Slot::Coordinator,
            Slot::Type,
        ]
        .into_iter()
        .chain(Slot::BODY)
        {
            assert_eq!(Slot::of(slot.key()), Some(slot));
        }
    }

    #[test]
    fn members_are_read_as_a_value_would_be() {
        let mut o = object(
            r#"{"id":-0,"name":-1,"ip":2.5,"port":7,"version":[1,{"a":null}],"coordinator":true,"type_":null}"#,
        );
        // `-0` is read as a float, by `Value` as here.
        assert_eq!(o.take(Slot::Id).unwrap().json_text(), "-0.0");
        assert_eq!(o.take(Slot::Name).unwrap().json_text(), "-1");
        assert_eq!(o.take(Slot::Ip).unwrap().json_text(), "2.5");
        assert_eq!(o.take(Slot::Port), Some(Member::Unsigned(7)));
        assert_eq!(
            o.take(Slot::Version).unwrap().json_text(),
            r#"[1,{"a":null}]"#
        );
        assert_eq!(o.take(Slot::Coordinator), Some(Member::Bool(true)));
        assert_eq!(o.take(Slot::Type), Some(Member::Null));
    }

    #[test]
    fn body_keys_go_back_into_the_fields_of_an_unknown_type() {
        let mut o = object(r#"{"id":"a","type_":"t","message":[1],"other":null}"#);
        assert!(o.take(Slot::Id).is_some());
        assert!(o.take(Slot::Type).is_some());
        let fields = o.into_body_fields();
        assert_eq!(fields.len(), 2);
        assert_eq!(fields["message"], serde_json::json!([1]));
    }

    #[test]
    fn non_objects_are_named_by_kind() {
        for (text, kind) in [
            ("[1,{}]", "array"),
            ("true", "boolean"),
            ("-1", "number"),
            ("1.5", "number"),
            ("\"s\"", "string"),
            ("null", "null"),
        ] {
            assert!(
                matches!(RawObject::read(text.as_bytes()).unwrap(), Err(k) if k == kind),
                "{text}"
            );
        }
        assert!(RawObject::read(b"[1, oops]").is_err());
        assert!(RawObject::read(b"{} {}").is_err());
    }
}
