//! The lenient JSON reader. Contract: never a panic; quoting only adds quote characters
//! around bare NaN/Infinity tokens; whatever parses re-serializes (with bare non-finite
//! tokens) to text that parses back to the same value (floats up to rounding).
#![no_main]

use arkeo_proto::json::{parse, quote_non_finite, to_vec_non_finite};
use libfuzzer_sys::fuzz_target;

#[path = "common/json.rs"]
mod common_json;
use common_json::same;

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
