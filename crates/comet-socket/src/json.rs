//! JSON as COMET's Python writes and reads it.
//!
//! COMET encodes with `json.dumps` defaults except that non-ASCII text is written raw
//! (UTF-8), and decodes with `json.loads`. This module reproduces both sides:
//!
//! - [`to_vec`] writes `", "` between items and `": "` after keys, floats as Python's
//!   `repr(float)` does (`2.5`, `1e+20`, `1e-05`, `100.0`), strings with the same escapes as
//!   Python (`\"`, `\\`, `\n`, `\u001f`, ...), non-ASCII raw.
//! - [`from_slice`] is strict JSON first; only when that fails does it retry accepting Python's
//!   non-finite literals `NaN`, `Infinity` and `-Infinity`. A [`serde_json::Value`] cannot hold
//!   a non-finite number, so **they become `null`** (the same thing `serde_json` does with a
//!   non-finite `f64`), and are written back as `null`.
//! - [`is_truthy`] is Python's truthiness for a decoded JSON value, which decides how COMET
//!   dispatches. Python holds `nan`, `inf` and `-inf` truthy, while the `null` they are read as
//!   is falsy: where truthiness decides (the whole content, a request's `action` and `value`),
//!   [`non_finite_literal`] and [`member_non_finite`] tell a non-finite number from a real
//!   `null`, and [`NonFinite`] says which it was.
//!
//! Objects keep their keys in the order they were read or inserted, as Python's dicts do (this
//! crate enables `serde_json`'s `preserve_order` feature), so a value read and written back
//! comes out byte for byte the same.
//!
//! Known differences from Python, none of which the golden vectors exercise: integers beyond
//! the 64-bit range are read as floats (Python keeps them exact); a non-finite number nested in
//! an array or object is `null` there (it cannot change the truthiness of its non-empty
//! container, but a value read and written back has `null` where Python writes `NaN`).

use std::fmt::Write as _;
use std::io;

use serde::Serialize;
use serde_json::Value;
use serde_json::ser::Formatter;

/// A `serde_json` formatter that writes what Python's `json.dumps` writes by default.
///
/// Use it through [`to_vec`], or with `serde_json::Serializer::with_formatter` for any
/// `Serialize` type.
#[derive(Debug, Clone, Copy, Default)]
pub struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        let mut text = String::new();
        push_python_float(&mut text, value);
        writer.write_all(text.as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        // Python has only doubles; widening keeps the value a Python client would compare with.
        self.write_f64(writer, f64::from(value))
    }
}

/// Serializes `value` exactly as Python's `json.dumps(value, ensure_ascii=False)` would.
///
/// # Errors
/// Only what `value`'s own `Serialize` impl reports (a [`Value`] never fails).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(64);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value.serialize(&mut serializer)?;
    Ok(out)
}

/// Writes `value` as Python's `repr(float)` does: the shortest digits that read back to the same
/// double, positional between 1e-4 and 1e16, otherwise `d.ddde±XX`; `.0` on whole numbers;
/// `inf`, `-inf` and `nan` for non-finite values.
pub(crate) fn push_python_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("nan");
        return;
    }
    if value.is_infinite() {
        out.push_str(if value < 0.0 { "-inf" } else { "inf" });
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits, like Python's repr; only the layout
    // differs.
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if value.is_sign_negative() {
        out.push('-');
    }
    // Python's `decpt`: the value is 0.DIGITS × 10^decpt.
    let decpt = exponent + 1;
    let len = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    if decpt <= -4 || decpt > 16 {
        let mut chars = digits.chars();
        if let Some(first) = chars.next() {
            out.push(first);
        }
        let rest = chars.as_str();
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exponent.unsigned_abs());
    } else if decpt <= 0 {
        out.push_str("0.");
        for _ in 0..-decpt {
            out.push('0');
        }
        out.push_str(&digits);
    } else if decpt >= len {
        out.push_str(&digits);
        for _ in 0..decpt - len {
            out.push('0');
        }
        out.push_str(".0");
    } else {
        let split = usize::try_from(decpt).unwrap_or(0);
        let (int, frac) = digits.split_at(split.min(digits.len()));
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    }
}

/// Parses JSON as Python's `json.loads` accepts it: strict JSON, plus the non-finite literals
/// `NaN`, `Infinity` and `-Infinity`, which become `null` (see the module docs).
///
/// The strict parse runs first; the lenient pass costs a copy of the input and runs only when
/// the strict parse failed and the input holds one of those literals outside a string.
///
/// # Errors
/// The strict parser's error (positions refer to the input) when the input is not JSON even
/// with the literals allowed. Nesting deeper than 128 levels is an error, never a stack
/// overflow.
pub fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        Err(strict) => match replace_non_finite(bytes) {
            Some(rewritten) => serde_json::from_slice(&rewritten).map_err(|_| strict),
            None => Err(strict),
        },
    }
}

/// Replaces `NaN`, `Infinity` and `-Infinity` outside strings with `null`; `None` when the
/// input has none of them.
fn replace_non_finite(bytes: &[u8]) -> Option<Vec<u8>> {
    const LITERALS: [&[u8]; 3] = [b"-Infinity", b"Infinity", b"NaN"];
    let mut out: Option<Vec<u8>> = None;
    let mut in_string = false;
    let mut escaped = false;
    let mut copied_to = 0;
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        if byte == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        let rest = bytes.get(i..).unwrap_or_default();
        if let Some(literal) = LITERALS.iter().find(|l| rest.starts_with(l)) {
            let buffer = out.get_or_insert_with(|| Vec::with_capacity(bytes.len() + 8));
            buffer.extend_from_slice(bytes.get(copied_to..i).unwrap_or_default());
            buffer.extend_from_slice(b"null");
            i += literal.len();
            copied_to = i;
            continue;
        }
        i += 1;
    }
    let mut buffer = out?;
    buffer.extend_from_slice(bytes.get(copied_to..).unwrap_or_default());
    Some(buffer)
}

/// A number Python's `json` reads and writes but JSON has no room for, and neither has a
/// [`Value`]: [`from_slice`] reads it as `null`. Python holds all three truthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NonFinite {
    /// `NaN`.
    NaN,
    /// `Infinity`.
    Infinity,
    /// `-Infinity`.
    NegInfinity,
}

impl NonFinite {
    /// The literal on the wire: `NaN`, `Infinity` or `-Infinity`.
    pub fn literal(self) -> &'static str {
        match self {
            Self::NaN => "NaN",
            Self::Infinity => "Infinity",
            Self::NegInfinity => "-Infinity",
        }
    }

    /// Python's `str()` of the number: `nan`, `inf` or `-inf`.
    pub fn python_str(self) -> &'static str {
        match self {
            Self::NaN => "nan",
            Self::Infinity => "inf",
            Self::NegInfinity => "-inf",
        }
    }

    /// The number.
    pub fn to_f64(self) -> f64 {
        match self {
            Self::NaN => f64::NAN,
            Self::Infinity => f64::INFINITY,
            Self::NegInfinity => f64::NEG_INFINITY,
        }
    }

    /// The literal starting `bytes`, if one does (`-Infinity` before `Infinity`).
    fn at_start(bytes: &[u8]) -> Option<Self> {
        [Self::NegInfinity, Self::Infinity, Self::NaN]
            .into_iter()
            .find(|literal| bytes.starts_with(literal.literal().as_bytes()))
    }
}

/// The whitespace Python's `json` skips around values.
fn is_json_whitespace(byte: &u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// Whether `bytes` is one non-finite literal and nothing else (whitespace aside): content that
/// [`from_slice`] reads as `null` but Python as a truthy float.
pub fn non_finite_literal(bytes: &[u8]) -> Option<NonFinite> {
    let start = bytes.iter().position(|b| !is_json_whitespace(b))?;
    let end = bytes.iter().rposition(|b| !is_json_whitespace(b))?;
    let trimmed = bytes.get(start..=end)?;
    NonFinite::at_start(trimmed).filter(|literal| literal.literal().len() == trimmed.len())
}

/// For JSON text whose top level is an object (as [`from_slice`] reads it): whether the member
/// named `key` has a non-finite literal as its value, the last member of that name counting (as
/// in Python and in [`from_slice`]). Members of nested objects are not looked at.
///
/// This is how to tell a `null` that [`from_slice`] made of `NaN` from one that was sent. It
/// scans the text once and allocates only for a key written with escapes; on text that is not
/// such an object the answer means nothing, but the scan still ends without panicking.
pub fn member_non_finite(object: &[u8], key: &str) -> Option<NonFinite> {
    let mut found = None;
    let mut depth = 0_usize;
    // Inside the top-level object: whether the next string is a key, whether the next token is
    // a value, and the span of the last key (with its quotes).
    let mut expect_key = false;
    let mut expect_value = false;
    let mut last_key: Option<(usize, usize)> = None;
    let mut i = 0;
    while let Some(&byte) = object.get(i) {
        if is_json_whitespace(&byte) {
            i += 1;
            continue;
        }
        let top = depth == 1;
        if top && expect_value {
            // A member's value starts here: remember it only when its key is the one asked for.
            expect_value = false;
            let named = last_key
                .and_then(|(start, end)| object.get(start..end))
                .is_some_and(|raw| key_is(raw, key));
            if named {
                found = NonFinite::at_start(object.get(i..).unwrap_or_default());
            }
        }
        match byte {
            b'"' => {
                let end = string_end(object, i);
                if top && expect_key {
                    last_key = Some((i, end));
                    expect_key = false;
                }
                i = end;
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                expect_key = depth == 1 && byte == b'{';
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if top => expect_key = true,
            b':' if top => expect_value = true,
            _ => {}
        }
        i += 1;
    }
    found
}

/// The index just past the string whose opening quote is at `start` (or the end of `bytes`).
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut escaped = false;
    let mut i = start + 1;
    while let Some(&byte) = bytes.get(i) {
        i += 1;
        if escaped {
            escaped = false;
        } else if byte == b'\\' {
            escaped = true;
        } else if byte == b'"' {
            return i;
        }
    }
    bytes.len()
}

/// Whether the JSON string `raw` (quotes included) is `key`.
fn key_is(raw: &[u8], key: &str) -> bool {
    if raw.contains(&b'\\') {
        serde_json::from_slice::<String>(raw).is_ok_and(|decoded| decoded == key)
    } else {
        raw.strip_prefix(b"\"")
            .and_then(|raw| raw.strip_suffix(b"\""))
            .is_some_and(|raw| raw == key.as_bytes())
    }
}

/// Python's truthiness of a decoded JSON value: `null`, `false`, `0`, `0.0`, `""`, `[]` and
/// `{}` are falsy, everything else is truthy.
///
/// A `null` that [`from_slice`] made of a non-finite number is truthy in Python; this function
/// cannot see that (see [`non_finite_literal`] and [`member_non_finite`]).
pub fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i != 0
            } else if let Some(u) = n.as_u64() {
                u != 0
            } else {
                n.as_f64().is_some_and(|f| f != 0.0)
            }
        }
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Whether JSON request content would make a real COMET server spin without answering: nothing
/// but whitespace, or a falsy JSON value (`{}`, `[]`, `null`, `false`, `0`, `""`). A bare
/// `NaN`, `Infinity` or `-Infinity` is truthy, as in Python.
///
/// Content of nothing but whitespace is not valid JSON, so COMET would close the connection on
/// it rather than spin; it counts as falsy here all the same (labwire's choice: nobody means to
/// send it). For binary content see [`Frame::has_falsy_content`](crate::Frame::has_falsy_content).
pub fn is_falsy_content(content: &[u8]) -> bool {
    content.iter().all(u8::is_ascii_whitespace)
        || from_slice(content).is_ok_and(|value| {
            !is_truthy(&value) && (!value.is_null() || non_finite_literal(content).is_none())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn py_float(value: f64) -> String {
        let mut s = String::new();
        push_python_float(&mut s, value);
        s
    }

    #[test]
    fn floats_are_written_as_python_repr_writes_them() {
        // Expected strings produced by CPython 3's repr(float).
        let cases: &[(f64, &str)] = &[
            (2.5, "2.5"),
            (1e20, "1e+20"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123_456_789_012_345_680.0, "1.2345678901234568e+17"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (100.0, "100.0"),
            (1e22, "1e+22"),
            (12345.678, "12345.678"),
            (-2.5e-10, "-2.5e-10"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ];
        for (value, expected) in cases {
            assert_eq!(py_float(*value), *expected, "{value:e}");
        }
    }

    #[test]
    fn dumps_uses_python_separators_and_writes_non_ascii_raw() {
        let value = json!({"k": "välue", "n": [1, 2.5, null, true], "e": {}, "l": []});
        let text = String::from_utf8(to_vec(&value).unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{"k": "välue", "n": [1, 2.5, null, true], "e": {}, "l": []}"#
        );
    }

    #[test]
    fn object_keys_keep_their_order_through_read_and_write() {
        // Python dicts keep insertion order; sorted keys would reorder every one of these.
        let texts = [
            r#"{"b": 1, "a": 2}"#,
            r#"{"zeta": {"y": [{"d": 1, "c": 2}], "x": null}, "alpha": "é", "mid": 0.5}"#,
            r#"{"é": 1, "e": 2, "Z": 3, "a": NaN}"#,
        ];
        for text in texts {
            let value = from_slice(text.as_bytes()).unwrap();
            let written = String::from_utf8(to_vec(&value).unwrap()).unwrap();
            assert_eq!(written, text.replace("NaN", "null"));
        }
    }

    #[test]
    fn dumps_escapes_control_characters_like_python() {
        let value = json!("q\"b\\n\n\t\u{1}\u{7f}");
        let text = String::from_utf8(to_vec(&value).unwrap()).unwrap();
        assert_eq!(text, "\"q\\\"b\\\\n\\n\\t\\u0001\u{7f}\"");
    }

    #[test]
    fn non_finite_literals_are_read_as_null() {
        let value = from_slice(br#"{"a": NaN, "b": [Infinity, -Infinity, 1.5]}"#).unwrap();
        assert_eq!(value, json!({"a": null, "b": [null, null, 1.5]}));
    }

    #[test]
    fn literals_inside_strings_are_left_alone() {
        let value = from_slice(br#"["NaN \" Infinity", NaN]"#).unwrap();
        assert_eq!(value, json!(["NaN \" Infinity", null]));
    }

    #[test]
    fn lenient_parse_still_rejects_what_python_rejects() {
        for bad in [
            &b"nan"[..],
            b"-NaN",
            b"NaNx",
            b"[1,]",
            b"{'a': 1}",
            b"",
            b"Infinity Infinity",
        ] {
            assert!(
                from_slice(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(from_slice(deep.as_bytes()).is_err());
        let deep_nan = format!("{}NaN", "[".repeat(100_000));
        assert!(from_slice(deep_nan.as_bytes()).is_err());
    }

    #[test]
    fn truthiness_follows_python() {
        for falsy in [
            json!(null),
            json!(false),
            json!(0),
            json!(0.0),
            json!(-0.0),
            json!(""),
            json!([]),
            json!({}),
        ] {
            assert!(!is_truthy(&falsy), "{falsy}");
        }
        for truthy in [
            json!(true),
            json!(-1),
            json!(u64::MAX),
            json!(0.5),
            json!(" "),
            json!([null]),
            json!({"a": null}),
        ] {
            assert!(is_truthy(&truthy), "{truthy}");
        }
    }

    #[test]
    fn bare_non_finite_literals_are_recognised() {
        assert_eq!(non_finite_literal(b" NaN\n"), Some(NonFinite::NaN));
        assert_eq!(non_finite_literal(b"Infinity"), Some(NonFinite::Infinity));
        assert_eq!(
            non_finite_literal(b"-Infinity"),
            Some(NonFinite::NegInfinity)
        );
        for other in [
            &b"null"[..],
            b"",
            b"  ",
            b"NaN1",
            b"[NaN]",
            b"\"NaN\"",
            b"-NaN",
        ] {
            assert_eq!(non_finite_literal(other), None, "{other:?}");
        }
        assert_eq!(NonFinite::NegInfinity.python_str(), "-inf");
        assert!(NonFinite::NaN.to_f64().is_nan());
    }

    #[test]
    fn members_holding_non_finite_literals_are_found_by_key() {
        let value = |text: &str| member_non_finite(text.as_bytes(), "value");
        assert_eq!(
            value(r#"{"action": "A", "value": NaN}"#),
            Some(NonFinite::NaN)
        );
        assert_eq!(
            value("{\"value\":\n\t-Infinity }"),
            Some(NonFinite::NegInfinity)
        );
        assert_eq!(
            value(r#"{"val\u0075e": Infinity}"#),
            Some(NonFinite::Infinity)
        );
        // The last member of a name counts, as in Python.
        assert_eq!(value(r#"{"value": NaN, "value": null}"#), None);
        assert_eq!(
            value(r#"{"value": null, "value": NaN}"#),
            Some(NonFinite::NaN)
        );
        for none in [
            r#"{"value": null}"#,
            r#"{"value": "NaN"}"#,
            r#"{"value": [NaN]}"#,
            r#"{"x": {"value": NaN}, "value": null}"#,
            r#"{"x": "value", "y": NaN}"#,
            r#"{"v\"alue": NaN}"#,
            r#"{"action": NaN}"#,
            r#"[{"value": NaN}]"#,
            r#"{"value": "#,
            r#"{"value"#,
        ] {
            assert_eq!(value(none), None, "{none}");
        }
        assert_eq!(
            member_non_finite(br#"{"action": NaN, "value": 1}"#, "action"),
            Some(NonFinite::NaN)
        );
    }

    #[test]
    fn falsy_content_is_recognised() {
        for content in [
            &b""[..],
            b"  ",
            b"{}",
            b"[]",
            b"null",
            b"false",
            b"0",
            b"\"\"",
        ] {
            assert!(is_falsy_content(content), "{content:?}");
        }
        for content in [
            &b"{\"a\": 1}"[..],
            b"[0]",
            b"not json",
            b"NaN",
            b" Infinity",
            b"-Infinity",
        ] {
            assert!(!is_falsy_content(content), "{content:?}");
        }
    }
}
