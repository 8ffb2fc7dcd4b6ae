//! The typed ARKEO messages: [`Request`], [`Response`] and the values inside them.
//!
//! Decoding is deliberately forgiving where the vendor's documents disagree with each other;
//! encoding is canonical. The `from_value` constructors say what is accepted, from a
//! [`serde_json::Value`] (see [`crate::json`]); [`crate::wire`] decodes well-formed payloads
//! straight from their bytes into the same messages, and leaves the rest to `from_value`.

use std::fmt;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::DecodeError;

mod fast;

pub(crate) use fast::{FastRequest, FastResponse};

/// Well-known ARKEO error codes.
pub mod codes {
    /// Invalid parameters (a missing, mistyped or out-of-range parameter).
    pub const INVALID_PARAMETERS: i64 = 101;
    /// The payload of a readable frame was not valid JSON (labwire's choice; the vendor
    /// documents no code for it).
    pub const INVALID_JSON: i64 = 100;
    /// The payload was JSON but not a request object (missing `target`/`command`, ...);
    /// labwire's choice.
    pub const INVALID_REQUEST: i64 = 102;
    /// Unknown target (labwire's choice; the vendor documents no code for it).
    pub const UNKNOWN_TARGET: i64 = 103;
    /// Unknown command for a known target (labwire's choice).
    pub const UNKNOWN_COMMAND: i64 = 104;
    /// An array parameter has the wrong length, e.g. LED values that do not match the
    /// number of channels.
    pub const INVALID_ARRAY_SIZE: i64 = 1001;
    /// A `ROUTINE` command was sent while no routine is active.
    pub const NO_ACTIVE_ROUTINE: i64 = 4006;
    /// The routine is not in a state that allows the command (e.g. `StartMeasurement` while
    /// not Ready); labwire's choice.
    pub const INVALID_STATE: i64 = 4007;
    /// Unknown routine name in `StartRoutine`; labwire's choice.
    pub const UNKNOWN_ROUTINE: i64 = 4001;
}

/// Which key carries a request's parameters on the wire.
///
/// The vendor's protocol page and command pages say `parameter`; its Python example and index
/// page say `params`. Decoders accept both (or neither); encoders write the configured one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ParamKey {
    /// `"parameter"` — the documented protocol (default).
    #[default]
    Parameter,
    /// `"params"` — the spelling of the vendor's Python example.
    Params,
}

impl ParamKey {
    /// The JSON key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parameter => "parameter",
            Self::Params => "params",
        }
    }
}

/// The component a request addresses.
///
/// Known targets are matched case-insensitively and written in upper case; any other name is
/// kept as [`Target::Other`] so that a newer device's targets still round-trip.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// `MAIN`: routines (start, list, active).
    Main,
    /// `ROUTINE`: the active routine (measurements, settings, status, data, custom commands).
    Routine,
    /// `TMPCTL`: the temperature controller.
    Tmpctl,
    /// `MUX`: the relay multiplexer.
    Mux,
    /// `LED`: the LED light source boards.
    Led,
    /// A target this crate does not know, spelled as received.
    Other(String),
}

impl Target {
    /// The name on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Main => "MAIN",
            Self::Routine => "ROUTINE",
            Self::Tmpctl => "TMPCTL",
            Self::Mux => "MUX",
            Self::Led => "LED",
            Self::Other(name) => name,
        }
    }

    /// Parses a target name (known names case-insensitively).
    pub fn parse(name: &str) -> Self {
        const KNOWN: [(&str, Target); 5] = [
            ("MAIN", Target::Main),
            ("ROUTINE", Target::Routine),
            ("TMPCTL", Target::Tmpctl),
            ("MUX", Target::Mux),
            ("LED", Target::Led),
        ];
        KNOWN
            .into_iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map_or_else(|| Self::Other(name.to_owned()), |(_, target)| target)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Target {
    fn from(name: &str) -> Self {
        Self::parse(name)
    }
}

/// One request: `{"target", "command", "parameter", "request_id"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The addressed component.
    pub target: Target,
    /// The command name, e.g. `StartRoutine`.
    pub command: String,
    /// The parameters (an object; empty when the request carried none).
    pub parameter: Map<String, Value>,
    /// Echoed by the device in its response; the client assigns one when `None`.
    pub request_id: Option<u64>,
}

impl Request {
    /// A request with no parameters and no `request_id`.
    pub fn new(target: impl Into<Target>, command: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            command: command.into(),
            parameter: Map::new(),
            request_id: None,
        }
    }

    /// Sets the parameters from a JSON object; any other value is ignored and leaves them empty.
    #[must_use]
    pub fn with_parameter(mut self, parameter: Value) -> Self {
        self.parameter = match parameter {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        self
    }

    /// Adds one parameter.
    #[must_use]
    pub fn param(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.parameter.insert(key.into(), value.into());
        self
    }

    /// Sets the `request_id`.
    #[must_use]
    pub fn with_request_id(mut self, id: u64) -> Self {
        self.request_id = Some(id);
        self
    }

    /// A view that serializes this request with the given parameter key.
    pub fn with_key(&self, key: ParamKey) -> KeyedRequest<'_> {
        KeyedRequest { request: self, key }
    }

    /// Builds a request from a decoded JSON value.
    ///
    /// `target` and `command` must be strings; parameters are read from `parameter` or
    /// `params` (`null` or absent means none; a non-object is an error); `request_id`, when
    /// present and not `null`, must be a non-negative integer.
    ///
    /// # Errors
    /// [`DecodeError::InvalidMessage`] saying which field was wrong.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let Value::Object(mut map) = value else {
            return Err(DecodeError::InvalidMessage(
                "a request must be a JSON object",
            ));
        };
        let target = match map.remove("target") {
            Some(Value::String(target)) => Target::parse(&target),
            _ => return Err(DecodeError::InvalidMessage("`target` must be a string")),
        };
        let command = match map.remove("command") {
            Some(Value::String(command)) => command,
            _ => return Err(DecodeError::InvalidMessage("`command` must be a string")),
        };
        let raw = match map.remove("parameter") {
            Some(Value::Null) | None => map.remove("params"),
            some => some,
        };
        let parameter = match raw {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(parameter)) => parameter,
            Some(_) => {
                return Err(DecodeError::InvalidMessage(
                    "`parameter`/`params` must be an object",
                ));
            }
        };
        let request_id = request_id(map.remove("request_id"))?;
        Ok(Self {
            target,
            command,
            parameter,
            request_id,
        })
    }
}

/// Reads an optional `request_id`: absent or `null` is `None`, otherwise it must be a
/// non-negative integer.
fn request_id(value: Option<Value>) -> Result<Option<u64>, DecodeError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
        Some(_) => Err(DecodeError::InvalidMessage(
            "`request_id` must be a non-negative integer",
        )),
    }
}

/// Reads the `request_id` a device echoes: absent or `null` is `None`; an integer, a float
/// with an integral value (`1001.0`, as a device that keeps numbers as doubles writes it) or a
/// string holding one (`"1001"`, `"1001.0"`) is that id. Anything else cannot be the id of a
/// request this crate sent (those are integers), so the response is refused.
fn echoed_request_id(value: Option<Value>) -> Result<Option<u64>, DecodeError> {
    const INVALID: DecodeError = DecodeError::InvalidMessage(
        "`request_id` must be a non-negative integer (as a number or a string)",
    );
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(id) => Ok(Some(id)),
            None => n
                .as_f64()
                .and_then(echoed_id_from_f64)
                .map(Some)
                .ok_or(INVALID),
        },
        Some(Value::String(s)) => echoed_id_from_str(&s).map(Some).ok_or(INVALID),
        Some(_) => Err(INVALID),
    }
}

/// An echoed `request_id` that arrived as a float: the id when it is a whole one.
fn echoed_id_from_f64(id: f64) -> Option<u64> {
    integral_u64(id)
}

/// An echoed `request_id` that arrived as a string: `"1001"` or `"1001.0"`, blanks around
/// allowed.
fn echoed_id_from_str(id: &str) -> Option<u64> {
    let id = id.trim();
    id.parse::<u64>()
        .ok()
        .or_else(|| id.parse::<f64>().ok().and_then(integral_u64))
}

/// `x` as a `u64` when it is a whole number that a double represents exactly (at most 2^53).
fn integral_u64(x: f64) -> Option<u64> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "checked: a whole number within 0..=2^53"
    )]
    ((0.0..=EXACT).contains(&x) && x.fract() == 0.0).then_some(x as u64)
}

/// Serializes with `"parameter"`; use [`Request::with_key`] for `"params"`.
impl Serialize for Request {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.with_key(ParamKey::Parameter).serialize(serializer)
    }
}

/// A [`Request`] paired with the parameter key to write; see [`Request::with_key`].
#[derive(Debug, Clone, Copy)]
pub struct KeyedRequest<'a> {
    request: &'a Request,
    key: ParamKey,
}

impl Serialize for KeyedRequest<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.request;
        let mut map = serializer.serialize_map(Some(3 + usize::from(r.request_id.is_some())))?;
        map.serialize_entry("target", r.target.as_str())?;
        map.serialize_entry("command", &r.command)?;
        // The protocol page calls the parameter object required, so an empty one is written.
        map.serialize_entry(self.key.as_str(), &r.parameter)?;
        if let Some(id) = r.request_id {
            map.serialize_entry("request_id", &id)?;
        }
        map.end()
    }
}

/// A response's `status` (or `state`), compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// `OK` / `ok`.
    Ok,
    /// `ERROR` / `error`.
    Error,
    /// Anything else, as received.
    Other(String),
}

impl Status {
    /// Parses a status string case-insensitively.
    pub fn parse(status: &str) -> Self {
        if status.eq_ignore_ascii_case("ok") {
            Self::Ok
        } else if status.eq_ignore_ascii_case("error") {
            Self::Error
        } else {
            Self::Other(status.to_owned())
        }
    }

    /// The canonical wire spelling (`OK`, `ERROR`, or the received text).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Ok => "OK",
            Self::Error => "ERROR",
            Self::Other(status) => status,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` object of a failed response: `{"code", "message"}` plus anything else the
/// device sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ErrorObject {
    /// The error code, when the device sent an integer one (see [`codes`]).
    pub code: Option<i64>,
    /// The human-readable message (empty when absent).
    pub message: String,
    /// Any other fields, kept as received.
    pub extra: Map<String, Value>,
}

impl ErrorObject {
    /// An error object with a code and message.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code: Some(code),
            message: message.into(),
            extra: Map::new(),
        }
    }

    fn from_value(value: Value) -> Self {
        match value {
            Value::Object(mut map) => {
                let code = map.remove("code").and_then(|c| match c {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                });
                let message = match map.remove("message") {
                    Some(Value::String(m)) => m,
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                };
                Self {
                    code,
                    message,
                    extra: map,
                }
            }
            // Some devices send a bare string or code; keep it readable.
            Value::String(message) => Self {
                code: None,
                message,
                extra: Map::new(),
            },
            Value::Number(n) => Self {
                code: n.as_i64(),
                message: String::new(),
                extra: Map::new(),
            },
            other => Self {
                code: None,
                message: other.to_string(),
                extra: Map::new(),
            },
        }
    }
}

impl Serialize for ErrorObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2 + self.extra.len()))?;
        if let Some(code) = self.code {
            map.serialize_entry("code", &code)?;
        }
        map.serialize_entry("message", &self.message)?;
        for (k, v) in &self.extra {
            if k != "code" && k != "message" {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// One response: `{"status", "data", "error", "request_id"}` plus unknown fields.
///
/// Decoding accepts `state` as an alias of `status`, compares the status case-insensitively,
/// and keeps unknown fields in [`Response::extra`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    /// `status` (or `state`); `None` when the device sent neither.
    pub status: Option<Status>,
    /// `data`, when present.
    pub data: Option<Value>,
    /// `error`, when present (and not `null`).
    pub error: Option<ErrorObject>,
    /// The echoed `request_id`, when present.
    pub request_id: Option<u64>,
    /// Any other fields, kept as received.
    pub extra: Map<String, Value>,
}

impl Response {
    /// A successful response carrying `data`.
    pub fn ok(data: Value, request_id: Option<u64>) -> Self {
        Self {
            status: Some(Status::Ok),
            data: Some(data),
            error: None,
            request_id,
            extra: Map::new(),
        }
    }

    /// A failed response with an error code and message.
    pub fn error(code: i64, message: impl Into<String>, request_id: Option<u64>) -> Self {
        Self {
            status: Some(Status::Error),
            data: None,
            error: Some(ErrorObject::new(code, message)),
            request_id,
            extra: Map::new(),
        }
    }

    /// Whether the device refused the request: an `error` object is present (whatever the
    /// status says) or the status is `ERROR`.
    pub fn is_error(&self) -> bool {
        self.error.is_some() || self.status == Some(Status::Error)
    }

    /// The response's `data` read as `T` (`null` when it had none): one of the [`crate::reply`]
    /// types for a shape the vendor documents, a struct of yours for a routine's own data.
    /// [`Response::data`] keeps the raw JSON.
    ///
    /// ```
    /// use arkeo_proto::{Rates, Response};
    /// use serde_json::json;
    ///
    /// let response = Response::ok(json!({"sync_rate": 8e7, "input_rate": 2e5, "ratio": 0.0025}), Some(7));
    /// let rates: Rates = response.data_as()?;
    /// assert_eq!(rates.input_rate, 2e5);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    ///
    /// # Errors
    /// The deserializer's error when `data` is not of `T`'s shape.
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match &self.data {
            Some(data) => T::deserialize(data),
            None => T::deserialize(&Value::Null),
        }
    }

    /// Builds a response from a decoded JSON value.
    ///
    /// # Errors
    /// [`DecodeError::InvalidMessage`] when the value is not an object, the status is not a
    /// string, or `request_id` is present but not a non-negative integer. The integer may
    /// arrive as a float with an integral value (`1001.0`) or as a string (`"1001"`,
    /// `"1001.0"`): devices that keep numbers as doubles or echo the id as text are understood.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let Value::Object(mut map) = value else {
            return Err(DecodeError::InvalidMessage(
                "a response must be a JSON object",
            ));
        };
        let status = match map.remove("status") {
            Some(s) => Some(s),
            None => map.remove("state"),
        };
        let status = match status {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(Status::parse(&s)),
            Some(_) => return Err(DecodeError::InvalidMessage("`status` must be a string")),
        };
        let data = map.remove("data");
        let error = match map.remove("error") {
            None | Some(Value::Null) => None,
            Some(e) => Some(ErrorObject::from_value(e)),
        };
        let request_id = echoed_request_id(map.remove("request_id"))?;
        Ok(Self {
            status,
            data,
            error,
            request_id,
            extra: map,
        })
    }
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(status) = &self.status {
            map.serialize_entry("status", status.as_str())?;
        }
        if let Some(data) = &self.data {
            map.serialize_entry("data", data)?;
        }
        if let Some(error) = &self.error {
            map.serialize_entry("error", error)?;
        }
        if let Some(id) = self.request_id {
            map.serialize_entry("request_id", &id)?;
        }
        for (k, v) in &self.extra {
            if !matches!(
                k.as_str(),
                "status" | "state" | "data" | "error" | "request_id"
            ) {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// The state of the active routine, as reported in `routine_status`.
///
/// Initializing → Ready → Starting → Running → Ready, or Error from anywhere (cleared back to
/// Ready by `ClearErrors`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RoutineState {
    /// Loading or configuring resources.
    Initializing,
    /// Idle, ready to start a measurement.
    Ready,
    /// Preparing a measurement.
    Starting,
    /// Measuring.
    Running,
    /// The routine failed; see the status's `error`.
    Error,
    /// A state this crate does not know, as received.
    Other(String),
}

impl RoutineState {
    /// Parses a state name case-insensitively.
    pub fn parse(state: &str) -> Self {
        match state.to_ascii_lowercase().as_str() {
            "initializing" | "initialising" => Self::Initializing,
            "ready" => Self::Ready,
            "starting" => Self::Starting,
            "running" => Self::Running,
            "error" => Self::Error,
            _ => Self::Other(state.to_owned()),
        }
    }

    /// The wire spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Initializing => "Initializing",
            Self::Ready => "Ready",
            Self::Starting => "Starting",
            Self::Running => "Running",
            Self::Error => "Error",
            Self::Other(state) => state,
        }
    }
}

impl fmt::Display for RoutineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `data` of `GetTestStatus` (older name `GetStatus`).
#[derive(Debug, Clone, PartialEq)]
pub struct TestStatus {
    /// `routine_status`.
    pub routine_status: RoutineState,
    /// `routine_name`, when sent.
    pub routine_name: Option<String>,
    /// `progress`: `None` unless Running. Its shape is routine-specific (a number, or an object
    /// such as the JV routine's with `progres_pct` — the vendor's spelling); see
    /// [`TestStatus::progress_pct`].
    pub progress: Option<Value>,
    /// `error`: `None` unless the routine is in Error.
    pub error: Option<Value>,
    /// Any other fields, kept as received.
    pub extra: Map<String, Value>,
}

impl TestStatus {
    /// Reads a status from a response's `data`.
    ///
    /// # Errors
    /// [`DecodeError::InvalidMessage`] when `data` is not an object or has no string
    /// `routine_status`.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let Value::Object(mut map) = value else {
            return Err(DecodeError::InvalidMessage("test status must be an object"));
        };
        let routine_status = match map.remove("routine_status") {
            Some(Value::String(s)) => RoutineState::parse(&s),
            _ => {
                return Err(DecodeError::InvalidMessage(
                    "`routine_status` must be a string",
                ));
            }
        };
        let routine_name = match map.remove("routine_name") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let progress = map.remove("progress").filter(|v| !v.is_null());
        let error = map.remove("error").filter(|v| !v.is_null());
        Ok(Self {
            routine_status,
            routine_name,
            progress,
            error,
            extra: map,
        })
    }

    /// Progress in percent when the device reports one: `progress` as a number, or a
    /// `progres_pct` / `progress_pct` / `pct` member of a `progress` object.
    pub fn progress_pct(&self) -> Option<f64> {
        match self.progress.as_ref()? {
            Value::Object(map) => ["progres_pct", "progress_pct", "pct"]
                .iter()
                .find_map(|k| map.get(*k).and_then(crate::json::lenient_f64)),
            other => crate::json::lenient_f64(other),
        }
    }
}

/// The `data` of `MUX GetStatus`: `{connected, firmware, nrRelays, status}` (the vendor's
/// multiplexer reports `"Multiplexer_v1.1"` and 4 relays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxStatus {
    /// Whether the application is connected to the MUX hardware.
    pub connected: bool,
    /// The firmware version, when reported.
    pub firmware: Option<String>,
    /// `nrRelays`, when reported (an integer, possibly written as a whole float).
    pub nr_relays: Option<usize>,
    /// The relay states (`status`); its length is normally `nrRelays`.
    pub relays: Vec<bool>,
}

impl MuxStatus {
    /// Reads a MUX status from a response's `data`.
    ///
    /// # Errors
    /// [`DecodeError::InvalidMessage`] when `connected` is not a boolean or `status` is not a
    /// list of booleans.
    pub fn from_value(value: &Value) -> Result<Self, DecodeError> {
        let connected = value
            .get("connected")
            .and_then(Value::as_bool)
            .ok_or(DecodeError::InvalidMessage("`connected` must be a boolean"))?;
        let relays = value
            .get("status")
            .and_then(Value::as_array)
            .and_then(|states| {
                states
                    .iter()
                    .map(Value::as_bool)
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or(DecodeError::InvalidMessage(
                "`status` must be a list of booleans",
            ))?;
        let nr_relays = value.get("nrRelays").and_then(|n| {
            n.as_u64()
                .or_else(|| n.as_f64().and_then(integral_u64))
                .and_then(|n| usize::try_from(n).ok())
        });
        Ok(Self {
            connected,
            firmware: value
                .get("firmware")
                .and_then(Value::as_str)
                .map(str::to_owned),
            nr_relays,
            relays,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_accepts_parameter_params_or_neither() {
        let a = Request::from_value(json!({"target":"MAIN","command":"X","parameter":{"a":1}}));
        let b = Request::from_value(json!({"target":"MAIN","command":"X","params":{"a":1}}));
        let c = Request::from_value(json!({"target":"MAIN","command":"X"}));
        assert_eq!(a.unwrap().parameter, b.unwrap().parameter);
        assert!(c.unwrap().parameter.is_empty());
    }

    #[test]
    fn request_encodes_parameter_by_default_and_params_on_request() {
        let r = Request::new(Target::Main, "StartRoutine")
            .param("routine", "JV")
            .with_request_id(7);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({"target":"MAIN","command":"StartRoutine","parameter":{"routine":"JV"},"request_id":7})
        );
        let v = serde_json::to_value(r.with_key(ParamKey::Params)).unwrap();
        assert_eq!(v["params"], json!({"routine":"JV"}));
        assert!(v.get("parameter").is_none());
    }

    #[test]
    fn request_rejects_missing_command_and_bad_ids() {
        assert!(Request::from_value(json!({"target":"MAIN"})).is_err());
        assert!(Request::from_value(json!({"command":"X"})).is_err());
        assert!(
            Request::from_value(json!({"target":"MAIN","command":"X","request_id":-1})).is_err()
        );
        assert!(
            Request::from_value(json!({"target":"MAIN","command":"X","request_id":"7"})).is_err()
        );
        assert!(Request::from_value(json!({"target":"MAIN","command":"X","params":[1]})).is_err());
        assert!(Request::from_value(json!([1])).is_err());
    }

    #[test]
    fn an_echoed_request_id_may_be_a_whole_float_or_a_string() {
        for echoed in [json!(1001), json!(1001.0), json!("1001"), json!(" 1001.0 ")] {
            let r = Response::from_value(json!({"status":"OK","request_id": echoed.clone()}));
            assert_eq!(r.unwrap().request_id, Some(1001), "{echoed}");
        }
        for bad in [
            json!(1001.5),
            json!(-1),
            json!("abc"),
            json!("NaN"),
            json!(1e300),
            json!([1]),
        ] {
            let r = Response::from_value(json!({"status":"OK","request_id": bad.clone()}));
            assert!(r.is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_are_case_insensitive_and_unknown_ones_are_kept() {
        assert_eq!(Target::parse("routine"), Target::Routine);
        assert_eq!(Target::parse("SPECTRO"), Target::Other("SPECTRO".into()));
        assert_eq!(Target::parse("SPECTRO").as_str(), "SPECTRO");
    }

    #[test]
    fn response_status_is_case_insensitive_and_state_is_an_alias() {
        let r = Response::from_value(json!({"state":"ok","data":{}})).unwrap();
        assert_eq!(r.status, Some(Status::Ok));
        assert_eq!(r.request_id, None);
        let r = Response::from_value(json!({"status":"Error","request_id":3})).unwrap();
        assert!(r.is_error());
    }

    #[test]
    fn an_error_object_means_failure_whatever_the_status_says() {
        let r = Response::from_value(
            json!({"status":"OK","error":{"code":101,"message":"Invalid parameters","hint":"x"}}),
        )
        .unwrap();
        assert!(r.is_error());
        let e = r.error.unwrap();
        assert_eq!(e.code, Some(101));
        assert_eq!(e.extra["hint"], json!("x"));
    }

    #[test]
    fn response_keeps_unknown_fields_and_round_trips() {
        let v = json!({"status":"OK","data":{"a":[1,2]},"request_id":9,"elapsed_ms":3});
        let r = Response::from_value(v.clone()).unwrap();
        assert_eq!(r.extra["elapsed_ms"], json!(3));
        assert_eq!(serde_json::to_value(&r).unwrap(), v);
    }

    #[test]
    fn test_status_reads_progress_number_or_vendor_object() {
        let s =
            TestStatus::from_value(json!({"routine_status":"Running","progress":42,"error":null}))
                .unwrap();
        assert_eq!(s.progress_pct(), Some(42.0));
        assert_eq!(s.error, None);
        let s = TestStatus::from_value(
            json!({"routine_status":"running","routine_name":"JV","progress":{"progres_pct":2.12}}),
        )
        .unwrap();
        assert_eq!(s.routine_status, RoutineState::Running);
        assert_eq!(s.progress_pct(), Some(2.12));
        assert_eq!(s.routine_name.as_deref(), Some("JV"));
    }
}
