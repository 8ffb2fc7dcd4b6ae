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

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::sync::OnceLock;

use serde::Serialize;
use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
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
        write_python_float(writer, value)
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
    let mut out = Vec::with_capacity(128);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value.serialize(&mut serializer)?;
    Ok(out)
}

/// Writes `value` as Python's `repr(float)` does: the shortest digits that read back to the same
/// double, positional between 1e-4 and 1e16, otherwise `d.ddde±XX`; `.0` on whole numbers;
/// `inf`, `-inf` and `nan` for non-finite values.
pub(crate) fn push_python_float(out: &mut String, value: f64) {
    let mut repr = FloatRepr::new();
    // Writing to a `FloatRepr` cannot fail, and only ASCII digits, signs, `.`, `e`, `inf` and
    // `nan` are ever written.
    let _ = write_python_float(&mut repr, value);
    out.push_str(std::str::from_utf8(repr.as_bytes()).unwrap_or_default());
}

/// Writes Python's `repr(value)` to `out`.
///
/// The digits come from `serde_json`'s own float writer: the shortest that read back to the
/// double, the closest candidate and the even digit on ties, exactly as Python's repr. Only the
/// layout may differ: where the exponent form begins and how the exponent is written.
///
/// Reading back bytes the writer has just stored costs more than everything else here, so
/// where the writer is known to lay a float out as Python does ([`writer_layout_is_known`]),
/// its text goes out unread, or with one padding digit added blind. The ranges are exact: a
/// double's shortest digits read back to it, so a double below the one nearest 10^k never
/// shows an exponent of k or more, and the one nearest 10^k shows exactly k.
fn write_python_float<W: ?Sized + io::Write>(out: &mut W, value: f64) -> io::Result<()> {
    let magnitude = value.abs();
    if writer_layout_is_known() {
        // Positional in both from 1e-4 to below 1e16 (zero too); an exponent of -10 or less,
        // `e-` and two or three digits, in both below 1e-9.
        if (1e-4..1e16).contains(&magnitude) || magnitude < 1e-9 {
            return serde_json::ser::CompactFormatter.write_f64(out, value);
        }
        // An exponent of -6 to -9: one digit from the writer, two from Python.
        if (1e-9..1e-5).contains(&magnitude) {
            return serde_json::ser::CompactFormatter.write_f64(&mut PadExponent { out }, value);
        }
    }
    if value.is_nan() {
        return out.write_all(b"nan");
    }
    if value.is_infinite() {
        return out.write_all(if value < 0.0 { b"-inf" } else { b"inf" });
    }
    serde_json::ser::CompactFormatter.write_f64(&mut Relayout { out, value }, value)
}

/// Whether `serde_json`'s float writer lays floats out as [`write_python_float`] takes for
/// granted without looking: checked once, on floats from each of its ranges. When not (a
/// future `serde_json`), every float takes the path that reads the text.
fn writer_layout_is_known() -> bool {
    static KNOWN: OnceLock<bool> = OnceLock::new();
    *KNOWN.get_or_init(|| {
        let expected: [(f64, &[u8]); 10] = [
            (0.0, b"0.0"),
            (-0.0, b"-0.0"),
            (1e-4, b"0.0001"),
            (-123.25, b"-123.25"),
            (100.0, b"100.0"),
            (9_999_999_999_999_998.0, b"9999999999999998.0"),
            (1.5e-9, b"1.5e-9"),
            (-9.5e-6, b"-9.5e-6"),
            (1e-10, b"1e-10"),
            (-2.5e-300, b"-2.5e-300"),
        ];
        expected.iter().all(|(value, text)| {
            let mut written = FloatRepr::new();
            serde_json::ser::CompactFormatter
                .write_f64(&mut written, *value)
                .is_ok()
                && written.as_bytes() == *text
        })
    })
}

/// Receives the writer's text of a float with a one-digit exponent and writes it with the
/// exponent padded to two digits.
struct PadExponent<'a, W: ?Sized> {
    out: &'a mut W,
}

impl<W: ?Sized + io::Write> io::Write for PadExponent<'_, W> {
    fn write(&mut self, text: &[u8]) -> io::Result<usize> {
        if let [head @ .., last] = text {
            self.out.write_all(head)?;
            self.out.write_all(&[b'0', *last])?;
        }
        Ok(text.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Receives a float writer's text of `value`, whatever its layout, and writes Python's layout
/// of it to `out`: the general way, for the floats [`write_python_float`] does not write blind.
struct Relayout<'a, W: ?Sized> {
    out: &'a mut W,
    value: f64,
}

impl<W: ?Sized + io::Write> io::Write for Relayout<'_, W> {
    fn write(&mut self, text: &[u8]) -> io::Result<usize> {
        let unsigned = text.strip_prefix(b"-").unwrap_or(text);
        let repr = FloatRepr::python_from_digits(self.value, unsigned);
        self.out.write_all(repr.as_bytes())?;
        Ok(text.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Room for any double's repr: the longest is 24 bytes (`-1.2345678901234567e-308`), and the
/// shortest round-trip text it is made from is no longer.
const FLOAT_TEXT_MAX: usize = 32;

/// A float's text, built on the stack: writing a float allocates nothing.
struct FloatRepr {
    bytes: [u8; FLOAT_TEXT_MAX],
    len: usize,
}

impl FloatRepr {
    fn new() -> Self {
        Self {
            bytes: [0; FLOAT_TEXT_MAX],
            len: 0,
        }
    }

    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    fn push_all(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if let Some(slot) = self.bytes.get_mut(self.len..end) {
            slot.copy_from_slice(bytes);
            self.len = end;
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl io::Write for FloatRepr {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.push_all(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FloatRepr {
    /// `e`, the exponent's sign and at least two digits, as Python writes them.
    fn push_exponent(&mut self, exponent: i32) {
        self.push(b'e');
        self.push(if exponent < 0 { b'-' } else { b'+' });
        let exponent = exponent.unsigned_abs();
        if exponent >= 100 {
            self.push(b'0' + digit(exponent / 100));
        }
        self.push(b'0' + digit(exponent / 10 % 10));
        self.push(b'0' + digit(exponent % 10));
    }

    /// Python's `repr(value)` from any layout of the shortest digits (`unsigned`, the text of
    /// `value`'s magnitude).
    fn python_from_digits(value: f64, unsigned: &[u8]) -> Self {
        let mut out = Self::new();
        if value.is_sign_negative() {
            out.push(b'-');
        }
        let Some((digits, decpt)) = Self::shortest_digits(unsigned) else {
            out.push_all(b"0.0");
            return out;
        };
        let digits = digits.as_bytes();
        let len = i32::try_from(digits.len()).unwrap_or(i32::MAX);
        // Python's `float_repr_style = 'short'`: the value is 0.DIGITS × 10^decpt.
        if decpt <= -4 || decpt > 16 {
            let (first, rest) = digits.split_first().unwrap_or((&b'0', &[]));
            out.push(*first);
            if !rest.is_empty() {
                out.push(b'.');
                out.push_all(rest);
            }
            out.push_exponent(decpt - 1);
        } else if decpt <= 0 {
            out.push_all(b"0.");
            for _ in 0..-decpt {
                out.push(b'0');
            }
            out.push_all(digits);
        } else if decpt >= len {
            out.push_all(digits);
            for _ in 0..decpt - len {
                out.push(b'0');
            }
            out.push_all(b".0");
        } else {
            let split = usize::try_from(decpt).unwrap_or(0).min(digits.len());
            let (int, frac) = digits.split_at(split);
            out.push_all(int);
            out.push(b'.');
            out.push_all(frac);
        }
        out
    }

    /// The significant digits of a float writer's `text`, and where the decimal point
    /// goes (the value is 0.DIGITS × 10^decpt); `None` for zero.
    fn shortest_digits(text: &[u8]) -> Option<(Self, i32)> {
        let (mantissa, exponent) = match text.iter().position(|b| matches!(b, b'e' | b'E')) {
            Some(e) => (text.get(..e)?, text.get(e + 1..)?),
            None => (text, &b""[..]),
        };
        let exponent = if exponent.is_empty() {
            0
        } else {
            parse_exponent(exponent)?
        };
        let mut digits = Self::new();
        let mut decpt = exponent;
        let mut seen_point = false;
        for &byte in mantissa {
            match byte {
                b'.' => seen_point = true,
                b'0' if digits.len == 0 => {
                    // A leading zero: after the point it moves the first digit right.
                    if seen_point {
                        decpt -= 1;
                    }
                }
                b'0'..=b'9' => {
                    digits.push(byte);
                    if !seen_point {
                        decpt += 1;
                    }
                }
                _ => return None,
            }
        }
        while digits.as_bytes().last() == Some(&b'0') {
            digits.len -= 1;
        }
        (digits.len > 0).then_some((digits, decpt))
    }
}

/// An exponent as float writers write it: an optional sign and one to three digits.
fn parse_exponent(text: &[u8]) -> Option<i32> {
    let (negative, digits) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 3 {
        return None;
    }
    let mut n = 0_i32;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i32::from(byte - b'0');
    }
    Some(if negative { -n } else { n })
}

/// `n` (below 10) as a digit's offset from `b'0'`.
fn digit(n: u32) -> u8 {
    u8::try_from(n % 10).unwrap_or(0)
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

/// Reads strict JSON text whose top level should be an object, in one pass, keeping only the
/// members named in `keys` (in that order; the last of duplicate keys wins, as in a Python
/// dict and in [`from_slice`]). Other members are read and dropped, so exactly the text
/// [`from_slice`] accepts without its lenient retry is accepted, but no map of every member is
/// built. `Ok(None)`: valid JSON that is not an object.
///
/// # Errors
/// The parser's error when the text is not strict JSON (a non-finite literal included: retry
/// with [`from_slice`] for those).
pub(crate) fn pick_members<const N: usize>(
    bytes: &[u8],
    keys: [&str; N],
) -> Result<Option<[Option<Value>; N]>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let members = PickMembers { keys }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(members)
}

/// [`pick_members`]' visitor.
struct PickMembers<'k, const N: usize> {
    keys: [&'k str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for PickMembers<'_, N> {
    type Value = Option<[Option<Value>; N]>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for PickMembers<'_, N> {
    type Value = Option<[Option<Value>; N]>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members: [Option<Value>; N] = std::array::from_fn(|_| None);
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match self
                .keys
                .iter()
                .position(|k| *k == key)
                .and_then(|i| members.get_mut(i))
            {
                Some(slot) => *slot = Some(map.next_value()?),
                None => {
                    // Read as a value, not skipped: the same text is refused as before.
                    map.next_value::<Value>()?;
                }
            }
        }
        Ok(Some(members))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Read through, so that invalid JSON further on is still reported as such.
        while seq.next_element::<Value>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// An object key, borrowed from the input when it has no escapes.
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

    /// Python's repr laid out from Rust's own shortest digits (`{:e}`): the way this crate first
    /// wrote floats, kept as a reference for the layout. Its digits differ from Python's only
    /// where two shortest candidates are equally close: Rust rounds that half up, Python (and
    /// the fast path) to the even digit.
    fn py_float_reference(value: f64) -> String {
        if value.is_nan() {
            return "nan".into();
        }
        if value.is_infinite() {
            return if value < 0.0 { "-inf" } else { "inf" }.into();
        }
        let scientific = format!("{:e}", value.abs());
        let (mantissa, exponent) = scientific.split_once('e').unwrap();
        let exponent: i32 = exponent.parse().unwrap();
        let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
        let mut out = String::new();
        if value.is_sign_negative() {
            out.push('-');
        }
        let decpt = exponent + 1;
        let len = i32::try_from(digits.len()).unwrap();
        if decpt <= -4 || decpt > 16 {
            let (first, rest) = digits.split_at(1);
            out.push_str(first);
            if !rest.is_empty() {
                out.push('.');
                out.push_str(rest);
            }
            let sign = if exponent < 0 { '-' } else { '+' };
            out.push_str(&format!("e{sign}{:02}", exponent.unsigned_abs()));
        } else if decpt <= 0 {
            out.push_str("0.");
            out.push_str(&"0".repeat(usize::try_from(-decpt).unwrap()));
            out.push_str(&digits);
        } else if decpt >= len {
            out.push_str(&digits);
            out.push_str(&"0".repeat(usize::try_from(decpt - len).unwrap()));
            out.push_str(".0");
        } else {
            let (int, frac) = digits.split_at(usize::try_from(decpt).unwrap());
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        }
        out
    }

    /// The fast path writes what the reference writes, except on a tie between two shortest
    /// candidates: then both read back to `value`, are as long, and ours ends in the even digit.
    fn check_against_reference(value: f64) -> Result<(), proptest::test_runner::TestCaseError> {
        let ours = py_float(value);
        let reference = py_float_reference(value);
        if ours != reference {
            let parse = |s: &str| s.parse::<f64>().unwrap();
            proptest::prop_assert_eq!(parse(&ours).to_bits(), value.to_bits());
            proptest::prop_assert_eq!(parse(&reference).to_bits(), value.to_bits());
            proptest::prop_assert_eq!(ours.len(), reference.len());
            let mantissa = ours.split('e').next().unwrap();
            let last = mantissa.bytes().last().unwrap();
            proptest::prop_assert!((last - b'0').is_multiple_of(2), "{} vs {}", ours, reference);
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]

        #[test]
        fn floats_match_the_reference_layout_of_rusts_shortest_digits(bits in proptest::prelude::any::<u64>()) {
            check_against_reference(f64::from_bits(bits))?;
        }

        #[test]
        fn the_general_relayout_writes_what_the_fast_path_writes(bits in proptest::prelude::any::<u64>()) {
            // The path every float takes should `serde_json`'s writer change its layout.
            let value = f64::from_bits(bits);
            proptest::prop_assume!(value.is_finite());
            let mut general = Vec::new();
            serde_json::ser::CompactFormatter
                .write_f64(&mut Relayout { out: &mut general, value }, value)
                .unwrap();
            proptest::prop_assert_eq!(String::from_utf8(general).unwrap(), py_float(value));
        }

        #[test]
        fn floats_near_the_layout_boundaries_match_the_reference(
            mantissa in 1u64..10_000_000_000_000_000,
            exponent in -30i32..30,
        ) {
            #[allow(clippy::cast_precision_loss)]
            let value = mantissa as f64 * 10f64.powi(exponent - 16);
            check_against_reference(value)?;
            check_against_reference(-value)?;
        }
    }

    #[test]
    fn the_writer_lays_floats_out_as_the_fast_path_expects() {
        assert!(writer_layout_is_known());
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
            // Halfway between two shortest candidates: Python takes the even digit.
            (939_897_570_389_068.0 + 0.25, "939897570389068.2"),
            (716_807_938_640_939.0 + 0.25, "716807938640939.2"),
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
