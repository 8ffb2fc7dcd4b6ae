//! Lenient JSON: the non-finite number tokens ARKEO writes.
//!
//! The ARKEO application (like Python's `json` module) writes bare `NaN`, `Infinity` and
//! `-Infinity` where a measurement has no finite value. Those tokens are not JSON, and
//! [`serde_json::Value`] cannot hold a non-finite number, so this crate decodes them as the
//! **strings** `"NaN"`, `"Infinity"` and `"-Infinity"`. [`lenient_f64`] reads a value back as
//! an `f64`, mapping those strings to the non-finite floats.
//!
//! Valid JSON pays nothing for the leniency: [`parse`] first runs `serde_json` on the payload
//! as it is, and only when that fails does it look for the tokens (outside string literals),
//! quote them, and parse once more.
//!
//! The consequence to know: after decoding, a genuine string `"NaN"` and a bare `NaN` look
//! the same. [`to_vec_non_finite`] goes the other way for a simulator or test that needs to
//! emit bare tokens.

use serde::Serialize;
use serde_json::Value;

/// The three tokens, longest first so that `-Infinity` wins over `Infinity`.
const TOKENS: [&[u8]; 3] = [b"-Infinity", b"Infinity", b"NaN"];

/// Parses a JSON payload, accepting bare `NaN`, `Infinity` and `-Infinity` (see the module
/// docs for what they become).
///
/// # Errors
/// The `serde_json` error when the payload is not JSON even with the leniency.
pub fn parse(payload: &[u8]) -> Result<Value, serde_json::Error> {
    match serde_json::from_slice(payload) {
        Ok(value) => Ok(value),
        Err(strict) => match quote_non_finite(payload) {
            Some(quoted) => serde_json::from_slice(&quoted),
            None => Err(strict),
        },
    }
}

/// Returns a copy of `payload` with every bare non-finite token outside string literals
/// quoted, or `None` when there is none.
pub fn quote_non_finite(payload: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0; // bytes of `payload` already copied to `out`
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    while let Some(&b) = payload.get(i) {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        // Only these bytes begin a token; numbers, the bulk of measurement data, go by
        // without a look at the tokens.
        if !matches!(b, b'-' | b'I' | b'N') {
            i += 1;
            continue;
        }
        let starts_token = i == 0 || payload.get(i - 1).is_some_and(|p| !is_word_byte(*p));
        if starts_token
            && let Some(token) = TOKENS.iter().find(|t| {
                payload.get(i..i + t.len()) == Some(**t)
                    && payload.get(i + t.len()).is_none_or(|n| !is_word_byte(*n))
            })
        {
            let buf = out.get_or_insert_with(|| Vec::with_capacity(payload.len() + 16));
            buf.extend_from_slice(payload.get(copied..i).unwrap_or_default());
            buf.push(b'"');
            buf.extend_from_slice(token);
            buf.push(b'"');
            i += token.len();
            copied = i;
            continue;
        }
        i += 1;
    }
    let mut buf = out?;
    buf.extend_from_slice(payload.get(copied..).unwrap_or_default());
    Some(buf)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-')
}

/// Reads a JSON value as an `f64`: numbers as they are, and the strings `"NaN"`,
/// `"Infinity"`, `"+Infinity"` and `"-Infinity"` (what [`parse`] makes of the bare tokens) as
/// the non-finite floats. Anything else is `None`.
pub fn lenient_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" | "+Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// Turns an `f64` into a JSON value the way [`parse`] represents it: finite numbers as
/// numbers, non-finite ones as the strings `"NaN"`, `"Infinity"` and `"-Infinity"`.
pub fn f64_value(x: f64) -> Value {
    if x.is_nan() {
        Value::from("NaN")
    } else if x == f64::INFINITY {
        Value::from("Infinity")
    } else if x == f64::NEG_INFINITY {
        Value::from("-Infinity")
    } else {
        Value::from(x)
    }
}

/// Serializes `value` as JSON, writing the strings `"NaN"`, `"Infinity"` and `"-Infinity"`
/// as the bare tokens, the way the ARKEO application writes non-finite numbers.
///
/// Every string with exactly one of those texts is written bare, so use this only for
/// payloads where such strings stand for numbers (measurement data).
///
/// # Errors
/// When `value` cannot be represented as JSON (e.g. a map with non-string keys).
pub fn to_vec_non_finite<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let value = serde_json::to_value(value)?;
    let mut out = Vec::with_capacity(128);
    write_non_finite(&mut out, &value)?;
    Ok(out)
}

fn write_non_finite(out: &mut Vec<u8>, value: &Value) -> Result<(), serde_json::Error> {
    match value {
        Value::String(s) if TOKENS.contains(&s.as_bytes()) => {
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            out.push(b'[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_non_finite(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (n, (k, v)) in map.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k)?;
                out.push(b':');
                write_non_finite(out, v)?;
            }
            out.push(b'}');
        }
        leaf => serde_json::to_writer(&mut *out, leaf)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn valid_json_is_parsed_as_is() {
        assert_eq!(parse(br#"{"a":[1,2.5]}"#).unwrap(), json!({"a":[1,2.5]}));
    }

    #[test]
    fn bare_non_finite_tokens_become_strings() {
        let v = parse(br#"{"voc": NaN, "r": [Infinity,-Infinity, 1.0]}"#).unwrap();
        assert_eq!(v, json!({"voc":"NaN","r":["Infinity","-Infinity",1.0]}));
        assert!(lenient_f64(&v["voc"]).unwrap().is_nan());
        assert_eq!(lenient_f64(&v["r"][1]), Some(f64::NEG_INFINITY));
        assert_eq!(lenient_f64(&v["r"][2]), Some(1.0));
    }

    #[test]
    fn tokens_inside_strings_are_left_alone() {
        let v = parse(br#"{"note":"NaN \"Infinity\" -Infinity","x":NaN}"#).unwrap();
        assert_eq!(v["note"], json!("NaN \"Infinity\" -Infinity"));
        assert_eq!(v["x"], json!("NaN"));
    }

    #[test]
    fn tokens_must_stand_alone() {
        assert!(parse(b"[NaNx]").is_err());
        assert!(parse(b"[xNaN]").is_err());
        assert!(parse(b"[Infinityy]").is_err());
        assert!(parse(b"[NaN]").is_ok());
        assert!(parse(b"NaN").is_ok());
    }

    #[test]
    fn invalid_json_stays_invalid() {
        assert!(parse(b"{\"a\":").is_err());
        assert!(parse(b"{\"a\": NaN").is_err());
        assert!(parse(b"nan").is_err());
    }

    #[test]
    fn non_finite_writer_round_trips_through_the_lenient_parser() {
        let v = json!({"data":[[0.1, f64_value(f64::NAN)], [f64_value(f64::INFINITY), "text"]]});
        let bytes = to_vec_non_finite(&v).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("[0.1,NaN]"), "{text}");
        assert!(text.contains("[Infinity,\"text\"]"), "{text}");
        assert_eq!(parse(&bytes).unwrap(), v);
    }

    #[test]
    fn f64_value_keeps_finite_numbers() {
        assert_eq!(f64_value(1.5), json!(1.5));
        assert_eq!(f64_value(f64::NEG_INFINITY), json!("-Infinity"));
    }
}
