//! One pass from JSON text to the fields decoding needs, without building a map of every key.
//!
//! Known keys are matched while parsing (borrowed from the input when they hold no escapes) and
//! their values kept in fixed slots; other keys are kept only in case the message has an
//! unknown `type_`. Duplicate keys: the last one wins, as in `serde_json::Map`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Every key a known message uses: the base fields, `type_`, then the body fields.
const KEYS: [&str; 16] = [
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
    "boardio_version",
    "firmware_version",
    "unit_type",
    "mcu_type",
    "mac_address",
];

/// Keys from this index on belong to a body and are kept with an unknown `type_`.
const FIRST_BODY_KEY: usize = 7;

/// What the top-level JSON value was.
pub(crate) enum Raw {
    /// An object, split into known and other fields.
    Object(Box<RawObject>),
    /// Anything else, by kind (`array`, `string`, ...).
    NotObject(&'static str),
}

/// An object's fields: known keys in fixed slots, the rest in arrival order.
pub(crate) struct RawObject {
    known: [Option<Value>; KEYS.len()],
    extra: Vec<(String, Value)>,
}

impl RawObject {
    /// Takes the value of a known key (`None` when absent or for a key not in the known set).
    pub(crate) fn remove(&mut self, key: &str) -> Option<Value> {
        let index = KEYS.iter().position(|k| *k == key)?;
        self.known.get_mut(index).and_then(Option::take)
    }

    /// Every field not taken yet, except the base fields and `type_`: the fields of a message
    /// with an unknown `type_`.
    pub(crate) fn into_body_fields(self) -> Map<String, Value> {
        let mut fields = Map::new();
        for (key, value) in KEYS.iter().zip(self.known).skip(FIRST_BODY_KEY) {
            if let Some(value) = value {
                fields.insert((*key).to_owned(), value);
            }
        }
        // Later duplicates overwrite earlier ones.
        for (key, value) in self.extra {
            fields.insert(key, value);
        }
        fields
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut object = Box::new(RawObject {
            known: Default::default(),
            extra: Vec::new(),
        });
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let value: Value = map.next_value()?;
            match KEYS.iter().position(|k| *k == key) {
                Some(index) => {
                    if let Some(slot) = object.known.get_mut(index) {
                        *slot = Some(value);
                    }
                }
                None => object.extra.push((key.into_owned(), value)),
            }
        }
        Ok(Raw::Object(object))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        // Consumed, so that invalid JSON further on is still reported as such.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Raw::NotObject("array"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Raw, E> {
        Ok(Raw::NotObject("boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Raw, E> {
        Ok(Raw::NotObject("number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Raw, E> {
        Ok(Raw::NotObject("number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Raw, E> {
        Ok(Raw::NotObject("number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Raw, E> {
        Ok(Raw::NotObject("string"))
    }

    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::NotObject("null"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn object(text: &str) -> RawObject {
        match serde_json::from_str::<Raw>(text).unwrap() {
            Raw::Object(object) => *object,
            Raw::NotObject(kind) => panic!("not an object: {kind}"),
        }
    }

    #[test]
    fn the_last_duplicate_wins_for_known_and_other_keys() {
        let mut o = object(r#"{"id":"a","x":1,"id":"b","x":2}"#);
        assert_eq!(o.remove("id"), Some(Value::from("b")));
        assert_eq!(o.into_body_fields()["x"], 2);
    }

    #[test]
    fn escaped_keys_are_matched_too() {
        let mut o = object(r#"{"\u0069d":"a"}"#);
        assert_eq!(o.remove("id"), Some(Value::from("a")));
    }

    #[test]
    fn body_keys_go_back_into_the_fields_of_an_unknown_type() {
        let mut o = object(r#"{"id":"a","type_":"t","message":[1],"other":null}"#);
        assert!(o.remove("id").is_some());
        assert!(o.remove("type_").is_some());
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
                matches!(serde_json::from_str::<Raw>(text).unwrap(), Raw::NotObject(k) if k == kind),
                "{text}"
            );
        }
        assert!(serde_json::from_str::<Raw>("[1, oops]").is_err());
    }
}
