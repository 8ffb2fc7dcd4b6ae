//! The lenient JSON reader. Contract: never a panic; quoting only adds quote characters
//! around bare NaN/Infinity tokens; whatever parses re-serializes (with bare non-finite
//! tokens) to text that parses back to the same value (floats up to rounding).
#![no_main]

use arkeo_proto::json::{parse, quote_non_finite, to_vec_non_finite};
use arkeo_proto::serde_json::Value;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(quoted) = quote_non_finite(data) {
        assert!(quoted.len() > data.len());
        assert_eq!((quoted.len() - data.len()) % 2, 0, "quotes come in pairs");
        let unquoted: Vec<u8> = quoted.iter().copied().filter(|b| *b != b'"').collect();
        let original: Vec<u8> = data.iter().copied().filter(|b| *b != b'"').collect();
        assert_eq!(unquoted, original, "only quotes were added");
    }
    if let Ok(value) = parse(data) {
        let text = to_vec_non_finite(&value).expect("a parsed value serializes");
        let again = parse(&text).expect("re-serialized text parses");
        assert!(same(&again, &value), "{again} != {value}");
    }
});

/// Equal, except that floats may differ in the last bits: serde_json's default float parser
/// does not promise an exact round trip.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}
