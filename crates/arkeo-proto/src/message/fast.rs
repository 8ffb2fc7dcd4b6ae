//! The fast path of decoding: a [`Request`] or a [`Response`] deserialized straight from the
//! payload, field by field, the way a `#[derive(Deserialize)]` struct is, without a generic
//! [`Value`] map in between.
//!
//! It takes the payloads peers actually send and gives up (an error, never a different
//! message) on anything unusual: a known key twice, both `status` and `state`, a status that
//! is not a string, a `request_id` the slow path would refuse, a parameter object that is not
//! one. The caller then takes the slow path (the payload parsed into a [`Value`], then
//! [`Request::from_value`] / [`Response::from_value`]), which decides. So every payload
//! decodes exactly as it did through the slow path alone, errors included, and the leniency
//! (the `params` and `state` aliases, an id echoed as a float or a string) costs nothing on the
//! payloads that use it, since the fast path reads those too.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::{
    ErrorObject, Request, Response, Status, Target, echoed_id_from_f64, echoed_id_from_str,
};

/// A [`Response`] read by the fast path.
pub(crate) struct FastResponse(pub(crate) Response);

/// A [`Request`] read by the fast path.
pub(crate) struct FastRequest(pub(crate) Request);

/// The error that sends a payload to the slow path (its text is never shown: the slow path
/// makes the error the caller sees).
fn give_up<E: de::Error>() -> E {
    E::custom("not on the fast path")
}

/// A map key, borrowed from the payload when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }

            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }

            fn visit_string<E: de::Error>(self, key: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key)))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Sets a field once; a second occurrence of the key goes to the slow path, which keeps the
/// last one as a JSON object does.
fn once<T, E: de::Error>(slot: &mut Option<T>, value: T) -> Result<(), E> {
    match slot {
        Some(_) => Err(give_up()),
        None => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// `status` / `state`: a string, or `null` for none.
struct StatusField(Option<Status>);

impl<'de> Deserialize<'de> for StatusField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StatusVisitor;

        impl Visitor<'_> for StatusVisitor {
            type Value = StatusField;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a status string or null")
            }

            fn visit_str<E: de::Error>(self, status: &str) -> Result<StatusField, E> {
                Ok(StatusField(Some(Status::parse(status))))
            }

            fn visit_unit<E: de::Error>(self) -> Result<StatusField, E> {
                Ok(StatusField(None))
            }
        }

        deserializer.deserialize_any(StatusVisitor)
    }
}

/// The `request_id` a device echoes: what `echoed_request_id` accepts, or the slow path.
struct EchoedId(Option<u64>);

impl<'de> Deserialize<'de> for EchoedId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;

        impl Visitor<'_> for IdVisitor {
            type Value = EchoedId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a request_id")
            }

            fn visit_u64<E: de::Error>(self, id: u64) -> Result<EchoedId, E> {
                Ok(EchoedId(Some(id)))
            }

            fn visit_i64<E: de::Error>(self, id: i64) -> Result<EchoedId, E> {
                u64::try_from(id)
                    .map(|id| EchoedId(Some(id)))
                    .map_err(|_| give_up())
            }

            fn visit_f64<E: de::Error>(self, id: f64) -> Result<EchoedId, E> {
                echoed_id_from_f64(id)
                    .map(|id| EchoedId(Some(id)))
                    .ok_or_else(give_up)
            }

            fn visit_str<E: de::Error>(self, id: &str) -> Result<EchoedId, E> {
                echoed_id_from_str(id)
                    .map(|id| EchoedId(Some(id)))
                    .ok_or_else(give_up)
            }

            fn visit_unit<E: de::Error>(self) -> Result<EchoedId, E> {
                Ok(EchoedId(None))
            }
        }

        deserializer.deserialize_any(IdVisitor)
    }
}

impl<'de> Deserialize<'de> for FastResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ResponseVisitor;

        impl<'de> Visitor<'de> for ResponseVisitor {
            type Value = FastResponse;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ARKEO response object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FastResponse, A::Error> {
                // Outer `Option`: whether the key was there.
                let mut status: Option<Option<Status>> = None;
                let mut data: Option<Value> = None;
                let mut error: Option<Option<Value>> = None;
                let mut request_id: Option<Option<u64>> = None;
                let mut extra = Map::new();
                while let Some(Key(key)) = map.next_key()? {
                    match &*key {
                        // Both keys at once: the slow path keeps `state` among the extras.
                        "status" | "state" => {
                            once(&mut status, map.next_value::<StatusField>()?.0)?;
                        }
                        "data" => once(&mut data, map.next_value()?)?,
                        "error" => once(&mut error, map.next_value()?)?,
                        "request_id" => once(&mut request_id, map.next_value::<EchoedId>()?.0)?,
                        _ => {
                            let value = map.next_value()?;
                            extra.insert(key.into_owned(), value);
                        }
                    }
                }
                Ok(FastResponse(Response {
                    status: status.flatten(),
                    data,
                    error: error.flatten().map(ErrorObject::from_value),
                    request_id: request_id.flatten(),
                    extra,
                }))
            }
        }

        deserializer.deserialize_map(ResponseVisitor)
    }
}

/// A request's `target`: a string.
struct TargetField(Target);

impl<'de> Deserialize<'de> for TargetField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TargetVisitor;

        impl Visitor<'_> for TargetVisitor {
            type Value = TargetField;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a target string")
            }

            fn visit_str<E: de::Error>(self, target: &str) -> Result<TargetField, E> {
                Ok(TargetField(Target::parse(target)))
            }
        }

        deserializer.deserialize_str(TargetVisitor)
    }
}

impl<'de> Deserialize<'de> for FastRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RequestVisitor;

        impl<'de> Visitor<'de> for RequestVisitor {
            type Value = FastRequest;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ARKEO request object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FastRequest, A::Error> {
                let mut target: Option<Target> = None;
                let mut command: Option<String> = None;
                // Outer `Option`: whether the key was there; inner: `null` or an object (any
                // other value goes to the slow path, which refuses it unless the other key
                // carries the parameters).
                let mut parameter: Option<Option<Map<String, Value>>> = None;
                let mut params: Option<Option<Map<String, Value>>> = None;
                let mut request_id: Option<Option<u64>> = None;
                while let Some(Key(key)) = map.next_key()? {
                    match &*key {
                        "target" => once(&mut target, map.next_value::<TargetField>()?.0)?,
                        "command" => once(&mut command, map.next_value()?)?,
                        "parameter" => once(&mut parameter, map.next_value()?)?,
                        "params" => once(&mut params, map.next_value()?)?,
                        "request_id" => once(&mut request_id, map.next_value()?)?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let (Some(target), Some(command)) = (target, command) else {
                    return Err(give_up());
                };
                // `parameter` wins; `params` when it is absent or null.
                let parameter = parameter.flatten().or(params.flatten()).unwrap_or_default();
                Ok(FastRequest(Request {
                    target,
                    command,
                    parameter,
                    request_id: request_id.flatten(),
                }))
            }
        }

        deserializer.deserialize_map(RequestVisitor)
    }
}
