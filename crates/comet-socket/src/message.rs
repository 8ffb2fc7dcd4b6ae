//! COMET's messages: a request `{"action", "value"}` and an answer `{"result"}`.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{DecodeError, EncodeError};
use crate::json::{self, NonFinite, is_truthy, member_non_finite};
use crate::pyrepr::python_str;
use crate::wire::Frame;

/// A request: an action name and any JSON value.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// What the message is for; COMET's handlers compare it with their own action name.
    pub action: String,
    /// The payload (COMET's docs call it "message"; on the wire the key is `value`).
    pub value: Value,
}

#[derive(Serialize)]
struct RequestRef<'a> {
    action: &'a str,
    value: &'a Value,
}

#[derive(Serialize)]
struct ResponseRef<'a> {
    result: &'a Value,
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    json::to_vec(value).map_err(|e| EncodeError::Json(e.to_string()))
}

impl Request {
    /// A request for `action` carrying `value`.
    pub fn new(action: impl Into<String>, value: Value) -> Self {
        Self {
            action: action.into(),
            value,
        }
    }

    /// Whether a COMET server would hand this request to its handlers, and if not why.
    ///
    /// # Errors
    /// [`Refusal::EmptyAction`] or [`Refusal::FalsyValue`].
    pub fn check(&self) -> Result<(), Refusal> {
        check_request(&self.action, &self.value)
    }

    /// The content bytes, as COMET writes them: `{"action": "...", "value": ...}`.
    ///
    /// # Errors
    /// [`EncodeError::Json`] only for values `serde_json` cannot write (none in practice).
    pub fn to_content(&self) -> Result<Vec<u8>, EncodeError> {
        request_content(&self.action, &self.value)
    }

    /// The request as a JSON frame.
    ///
    /// # Errors
    /// As [`Request::to_content`].
    pub fn to_frame(&self) -> Result<Frame, EncodeError> {
        Ok(Frame::json(self.to_content()?))
    }
}

/// [`Request::check`] without building a [`Request`].
///
/// # Errors
/// [`Refusal::EmptyAction`] or [`Refusal::FalsyValue`].
pub fn check_request(action: &str, value: &Value) -> Result<(), Refusal> {
    if action.is_empty() {
        Err(Refusal::EmptyAction)
    } else if !is_truthy(value) {
        Err(Refusal::FalsyValue(value.clone()))
    } else {
        Ok(())
    }
}

/// [`Request::to_content`] without building a [`Request`].
///
/// # Errors
/// As [`Request::to_content`].
pub fn request_content(action: &str, value: &Value) -> Result<Vec<u8>, EncodeError> {
    to_json(&RequestRef { action, value })
}

/// An answer: `{"result": <any JSON>}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// What the answering handler returned, or `null` when no handler answered.
    pub result: Value,
}

impl Response {
    /// An answer carrying `result`.
    pub fn new(result: Value) -> Self {
        Self { result }
    }

    /// The content bytes, as COMET writes them: `{"result": ...}`.
    ///
    /// # Errors
    /// [`EncodeError::Json`] only for values `serde_json` cannot write (none in practice).
    pub fn to_content(&self) -> Result<Vec<u8>, EncodeError> {
        to_json(&ResponseRef {
            result: &self.result,
        })
    }

    /// The answer as a JSON frame.
    ///
    /// # Errors
    /// As [`Response::to_content`].
    pub fn to_frame(&self) -> Result<Frame, EncodeError> {
        Ok(Frame::json(self.to_content()?))
    }

    /// The result as a `T`: a struct of your own for an answer whose shape your device
    /// documents, `String` for an acknowledgment text, `Option<T>` where no handler may answer
    /// (`null`). The raw result stays in [`Response::result`].
    ///
    /// # Errors
    /// [`DecodeError::UnexpectedResult`] when the result does not fit `T`.
    pub fn result_as<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        T::deserialize(&self.result).map_err(unexpected)
    }

    /// [`Response::result_as`], consuming the answer (no copy of the result).
    ///
    /// # Errors
    /// As [`Response::result_as`].
    pub fn into_result_as<T: DeserializeOwned>(self) -> Result<T, DecodeError> {
        serde_json::from_value(self.result).map_err(unexpected)
    }

    /// Reads an answer from JSON content (non-finite numbers are accepted, see [`crate::json`]).
    ///
    /// # Errors
    /// Invalid JSON, content that is not an object, or no `result` key.
    pub fn from_content(content: &[u8]) -> Result<Self, DecodeError> {
        // Strict JSON in one pass; only what that refuses takes the lenient path.
        let result = match json::pick_members(content, ["result"]) {
            Ok(Some([result])) => result,
            Ok(None) => return Err(DecodeError::ContentNotObject),
            Err(_) => content_object(content)?.remove("result"),
        };
        Ok(Self {
            result: result.ok_or(DecodeError::MissingResult)?,
        })
    }

    /// Reads an answer from a frame, which must carry UTF-8 JSON.
    ///
    /// # Errors
    /// [`DecodeError::NotJson`] for binary content, otherwise as [`Response::from_content`].
    pub fn from_frame(frame: &Frame) -> Result<Self, DecodeError> {
        check_json_frame(frame)?;
        Self::from_content(&frame.content)
    }
}

/// A refusal by the device: an answer whose `result` is a string starting with `Error:`.
///
/// COMET has no error frame: a server that will not or cannot do what a request asks answers
/// `{"result": "Error: ..."}`. Its dispatcher does so for a request it hands to no handler
/// (`Error: invalid action and or value <action>, <value>`, see
/// [`DeviceError::is_invalid_request`]), and handlers report their own failures the same way
/// (`Error: SMU not connected`). The client's `call` (feature `client`) returns such an answer
/// as `Error::Device`; the raw `result` stays reachable as [`DeviceError::message`], and
/// through the client's `send_content`, which returns every answer as it came.
///
/// Its `Display` is the device's own words (`Error: SMU not connected`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeviceError {
    message: String,
}

impl DeviceError {
    /// How a COMET error answer begins.
    pub const PREFIX: &'static str = "Error:";
    /// How the answer of COMET's dispatcher to an invalid request begins.
    pub const INVALID_REQUEST_PREFIX: &'static str = "Error: invalid action and or value ";

    /// The refusal a `result` stands for, if it is one: a string starting with
    /// [`DeviceError::PREFIX`].
    pub fn from_result(result: &Value) -> Option<Self> {
        match result {
            Value::String(message) if message.starts_with(Self::PREFIX) => Some(Self {
                message: message.clone(),
            }),
            _ => None,
        }
    }

    /// `response` when it is an answer, its refusal when it is one (without copying the
    /// message).
    ///
    /// # Errors
    /// The refusal, when `result` is a string starting with [`DeviceError::PREFIX`].
    pub fn check(response: Response) -> Result<Response, Self> {
        match response.result {
            Value::String(message) if message.starts_with(Self::PREFIX) => Err(Self { message }),
            result => Ok(Response { result }),
        }
    }

    /// The whole `result` string, as the device sent it (`Error: SMU not connected`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What follows `Error:` (`SMU not connected`).
    pub fn detail(&self) -> &str {
        self.message
            .get(Self::PREFIX.len()..)
            .unwrap_or_default()
            .trim_start()
    }

    /// Whether this is COMET's answer to a request with a missing or falsy action or value
    /// (`Error: invalid action and or value <action>, <value>`) rather than a handler's.
    pub fn is_invalid_request(&self) -> bool {
        self.message.starts_with(Self::INVALID_REQUEST_PREFIX)
    }

    /// The whole `result` string.
    pub fn into_message(self) -> String {
        self.message
    }
}

fn unexpected(e: serde_json::Error) -> DecodeError {
    DecodeError::UnexpectedResult {
        reason: e.to_string(),
    }
}

/// A request as a server receives it: `action` and `value` may be missing or of any type.
///
/// A non-finite number (`NaN`, `Infinity`, `-Infinity`) cannot be held in a [`Value`]: such an
/// `action` or `value` is `null` here, and `action_non_finite` / `value_non_finite` say which
/// number it was, because Python holds it truthy where `null` is falsy.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRequest {
    /// The `action` key, if present.
    pub action: Option<Value>,
    /// The `value` key, if present.
    pub value: Option<Value>,
    /// The number `action` stands for when it is `null` made of a non-finite number.
    pub action_non_finite: Option<NonFinite>,
    /// The number `value` stands for when it is `null` made of a non-finite number.
    pub value_non_finite: Option<NonFinite>,
}

impl RawRequest {
    /// Reads a request from JSON content. Keys other than `action` and `value` are ignored.
    ///
    /// # Errors
    /// Invalid JSON or content that is not an object: COMET closes without answering those.
    pub fn from_content(content: &[u8]) -> Result<Self, DecodeError> {
        // Strict JSON in one pass: it holds no non-finite literal, so nothing more to look for.
        match json::pick_members(content, ["action", "value"]) {
            Ok(Some([action, value])) => {
                return Ok(Self {
                    action,
                    value,
                    action_non_finite: None,
                    value_non_finite: None,
                });
            }
            Ok(None) => return Err(DecodeError::ContentNotObject),
            Err(_) => {}
        }
        // What strict JSON refuses: Python's non-finite literals, or an error to report.
        let mut object = content_object(content)?;
        let action = object.remove("action");
        let value = object.remove("value");
        // Only a `null` can have been a non-finite number; the scan runs for nothing else.
        let non_finite = |member: &Option<Value>, key| match member {
            Some(Value::Null) => member_non_finite(content, key),
            _ => None,
        };
        Ok(Self {
            action_non_finite: non_finite(&action, "action"),
            value_non_finite: non_finite(&value, "value"),
            action,
            value,
        })
    }

    /// Reads a request from a frame, which must carry UTF-8 JSON.
    ///
    /// # Errors
    /// [`DecodeError::NotJson`] for binary content, otherwise as [`RawRequest::from_content`].
    pub fn from_frame(frame: &Frame) -> Result<Self, DecodeError> {
        check_json_frame(frame)?;
        Self::from_content(&frame.content)
    }

    /// The request COMET would hand to its handlers: a non-empty string `action` and a truthy
    /// `value`.
    ///
    /// A non-finite `value` (`NaN`, `Infinity`, `-Infinity`) is truthy, as in Python, so the
    /// request is handed on, with `value` `null`: the closest a [`Value`] comes (handlers see
    /// `null` where COMET's see `nan`).
    ///
    /// A truthy action that is not a string (a non-finite number included) is refused here
    /// too. COMET would offer it to its handlers, but they all compare it with a string, so
    /// none could answer it.
    ///
    /// # Errors
    /// The [`InvalidRequest`] to answer with [`InvalidRequest::comet_answer`].
    // The "error" is an ordinary outcome carrying the two values it was built from (as large as
    // the request itself with `preserve_order`); it is moved once, boxing it gains nothing.
    #[allow(clippy::result_large_err)]
    pub fn into_request(self) -> Result<Request, InvalidRequest> {
        let value_truthy =
            self.value_non_finite.is_some() || self.value.as_ref().is_some_and(is_truthy);
        match (self.action, self.value) {
            (Some(Value::String(action)), Some(value)) if !action.is_empty() && value_truthy => {
                Ok(Request { action, value })
            }
            (action, value) => Err(InvalidRequest {
                action,
                value,
                action_non_finite: self.action_non_finite,
                value_non_finite: self.value_non_finite,
            }),
        }
    }
}

/// A request whose action or value is missing or falsy: COMET runs no handler and answers
/// with an error string.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidRequest {
    /// The `action` key, if present.
    pub action: Option<Value>,
    /// The `value` key, if present.
    pub value: Option<Value>,
    /// As [`RawRequest::action_non_finite`].
    pub action_non_finite: Option<NonFinite>,
    /// As [`RawRequest::value_non_finite`].
    pub value_non_finite: Option<NonFinite>,
}

impl InvalidRequest {
    /// COMET's answer, `Error: invalid action and or value <action>, <value>`, with both
    /// rendered as Python's `str()` does (a missing key prints as `None`, a non-finite number
    /// as `nan`, `inf` or `-inf`).
    pub fn comet_answer(&self) -> String {
        let render = |v: &Option<Value>, non_finite: Option<NonFinite>| match (non_finite, v) {
            (Some(number), _) => number.python_str().to_owned(),
            (None, Some(v)) => python_str(v),
            (None, None) => "None".to_owned(),
        };
        format!(
            "{}{}, {}",
            DeviceError::INVALID_REQUEST_PREFIX,
            render(&self.action, self.action_non_finite),
            render(&self.value, self.value_non_finite)
        )
    }
}

/// Why a client refuses to send a request.
///
/// A real COMET server never runs a handler for an empty action or a falsy value; it only
/// answers with an error string. Worse, a request whose whole content is falsy (`{}`, `[]`,
/// `null`, `false`, nothing — whatever the content type) makes a COMET server spin at 100 % CPU
/// and never answer. So our client refuses these before opening a connection, with this
/// error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The action is empty.
    #[error("the action is empty; COMET answers such requests only with an error")]
    EmptyAction,
    /// The value is falsy in Python terms.
    #[error(
        "the value {0} is falsy (null, false, 0, \"\", [] or {{}}); COMET runs no handler for it"
    )]
    FalsyValue(Value),
    /// The whole content is falsy or empty, JSON or binary (an empty binary content is falsy
    /// too).
    #[error("the content is falsy or empty; it makes a COMET server hang at 100% CPU")]
    FalsyContent,
}

pub(crate) fn check_json_frame(frame: &Frame) -> Result<(), DecodeError> {
    if !frame.is_json() {
        return Err(DecodeError::NotJson(frame.content_type.clone()));
    }
    let encoding = &frame.content_encoding;
    if !["utf-8", "utf8", "utf_8"]
        .iter()
        .any(|utf8| encoding.eq_ignore_ascii_case(utf8))
    {
        return Err(DecodeError::UnsupportedEncoding(
            frame.content_encoding.clone(),
        ));
    }
    Ok(())
}

fn content_object(content: &[u8]) -> Result<Map<String, Value>, DecodeError> {
    match json::from_slice(content) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(DecodeError::ContentNotObject),
        Err(e) => Err(DecodeError::InvalidJson {
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_content_keeps_action_before_value_and_the_value_keys_in_order() {
        let request = Request::new("ECHO", json!({"b": 1, "a": [2.5]}));
        assert_eq!(
            request.to_content().unwrap(),
            br#"{"action": "ECHO", "value": {"b": 1, "a": [2.5]}}"#
        );
    }

    #[test]
    fn invalid_answers_render_values_as_python_str() {
        let invalid =
            RawRequest::from_content(br#"{"action": "", "value": {"a": 1, "b": [true, null]}}"#)
                .unwrap()
                .into_request()
                .unwrap_err();
        assert_eq!(
            invalid.comet_answer(),
            "Error: invalid action and or value , {'a': 1, 'b': [True, None]}"
        );
        let missing = RawRequest::from_content(b"{}")
            .unwrap()
            .into_request()
            .unwrap_err();
        assert_eq!(
            missing.comet_answer(),
            "Error: invalid action and or value None, None"
        );
    }

    #[test]
    fn non_string_actions_are_invalid() {
        let invalid = RawRequest::from_content(br#"{"action": 5, "value": "x"}"#)
            .unwrap()
            .into_request()
            .unwrap_err();
        assert_eq!(
            invalid.comet_answer(),
            "Error: invalid action and or value 5, x"
        );
    }

    #[test]
    fn content_must_be_a_json_object() {
        assert_eq!(
            RawRequest::from_content(b"[1]").unwrap_err(),
            DecodeError::ContentNotObject
        );
        assert!(matches!(
            RawRequest::from_content(b"{\"action\": ").unwrap_err(),
            DecodeError::InvalidJson { .. }
        ));
    }

    #[test]
    fn non_finite_values_are_truthy_and_dispatched_as_null() {
        for (literal, number) in [
            ("NaN", NonFinite::NaN),
            ("Infinity", NonFinite::Infinity),
            ("-Infinity", NonFinite::NegInfinity),
        ] {
            let content = format!(r#"{{"action": "A", "value": {literal}}}"#);
            let raw = RawRequest::from_content(content.as_bytes()).unwrap();
            assert_eq!(raw.value_non_finite, Some(number));
            assert_eq!(
                raw.into_request(),
                Ok(Request::new("A", Value::Null)),
                "{literal}"
            );
        }
        // A `null` that was sent stays falsy, and a non-finite number in the error renders as
        // Python's str() renders it.
        let null = RawRequest::from_content(br#"{"action": "A", "value": null}"#).unwrap();
        assert_eq!(null.value_non_finite, None);
        assert!(null.into_request().is_err());
        let invalid = RawRequest::from_content(br#"{"action": "", "value": NaN}"#)
            .unwrap()
            .into_request()
            .unwrap_err();
        assert_eq!(
            invalid.comet_answer(),
            "Error: invalid action and or value , nan"
        );
        // A non-finite action is truthy but not a string: refused, as `5` would be.
        let invalid = RawRequest::from_content(br#"{"action": NaN, "value": Infinity}"#)
            .unwrap()
            .into_request()
            .unwrap_err();
        assert_eq!(
            invalid.comet_answer(),
            "Error: invalid action and or value nan, inf"
        );
    }

    #[test]
    fn answers_with_non_finite_numbers_decode() {
        let response = Response::from_content(br#"{"result": [NaN, -Infinity]}"#).unwrap();
        assert_eq!(response.result, json!([null, null]));
    }

    #[test]
    fn results_read_as_the_type_asked_for() {
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct Reading {
            sample: String,
            bias_v: f64,
        }
        let response = Response::new(json!({"sample": "W42-3", "bias_v": -150.0}));
        assert_eq!(
            response.result_as::<Reading>(),
            Ok(Reading {
                sample: "W42-3".into(),
                bias_v: -150.0
            })
        );
        assert_eq!(
            Response::new(json!(null)).result_as::<Option<u8>>(),
            Ok(None)
        );
        let err = response.clone().into_result_as::<String>().unwrap_err();
        assert!(matches!(err, DecodeError::UnexpectedResult { .. }), "{err}");
        assert_eq!(response.result["sample"], "W42-3", "the raw result stays");
    }

    #[test]
    fn answers_need_a_result_key() {
        assert_eq!(
            Response::from_content(b"{\"x\": 1}").unwrap_err(),
            DecodeError::MissingResult
        );
    }

    #[test]
    fn only_utf8_json_frames_are_read_as_messages() {
        let mut frame = Frame::json(&b"{\"result\": 1}"[..]);
        frame.content_encoding = "UTF8".into();
        assert!(Response::from_frame(&frame).is_ok());
        frame.content_encoding = "latin-1".into();
        assert_eq!(
            Response::from_frame(&frame).unwrap_err(),
            DecodeError::UnsupportedEncoding("latin-1".into())
        );
        let binary = Frame::binary("application/octet-stream", &b"x"[..]);
        assert!(matches!(
            Response::from_frame(&binary).unwrap_err(),
            DecodeError::NotJson(_)
        ));
    }

    #[test]
    fn error_strings_are_device_refusals_and_everything_else_an_answer() {
        let refusal = DeviceError::from_result(&json!("Error: SMU not connected")).unwrap();
        assert_eq!(refusal.message(), "Error: SMU not connected");
        assert_eq!(refusal.detail(), "SMU not connected");
        assert_eq!(refusal.to_string(), "Error: SMU not connected");
        assert!(!refusal.is_invalid_request());
        let invalid = RawRequest::from_content(b"{}")
            .unwrap()
            .into_request()
            .unwrap_err()
            .comet_answer();
        let invalid = DeviceError::check(Response::new(json!(invalid))).unwrap_err();
        assert!(invalid.is_invalid_request(), "{invalid}");
        for answer in [
            json!("Errors: none"),
            json!(["Error: x"]),
            json!(null),
            json!("ok"),
        ] {
            assert_eq!(DeviceError::from_result(&answer), None, "{answer}");
            assert_eq!(
                DeviceError::check(Response::new(answer.clone())),
                Ok(Response::new(answer))
            );
        }
    }

    #[test]
    fn check_refuses_what_comet_would_not_dispatch() {
        assert_eq!(
            Request::new("", json!("x")).check(),
            Err(Refusal::EmptyAction)
        );
        assert_eq!(
            Request::new("ECHO", json!(0)).check(),
            Err(Refusal::FalsyValue(json!(0)))
        );
        assert_eq!(Request::new("ECHO", json!("x")).check(), Ok(()));
    }
}
