//! 600 random JSON values as CPython writes them (`tests/data/python_parity.py` made the data):
//! reading each and writing it back must give CPython's bytes, and Python's `str()` of it must
//! match ours.

use comet_socket::{json, pyrepr};

const CASES: &str = include_str!("data/python_parity.tsv");

#[test]
fn json_writing_and_str_rendering_match_cpython() {
    let mut checked = 0;
    for (number, line) in CASES.lines().enumerate() {
        let (dumped, python_str) = line.split_once('\t').expect("a tab separates the columns");
        let value = json::from_slice(dumped.as_bytes()).unwrap();
        let written = String::from_utf8(json::to_vec(&value).unwrap()).unwrap();
        assert_eq!(written, dumped, "line {}: json.dumps", number + 1);
        let python_str: String = serde_json::from_str(python_str).unwrap();
        assert_eq!(
            pyrepr::python_str(&value),
            python_str,
            "line {}: str()",
            number + 1
        );
        checked += 1;
    }
    assert_eq!(checked, 600);
}

const FLOATS: &str = include_str!("data/python_floats.tsv");

/// 2 500 doubles as CPython's `repr` writes them (`tests/data/python_floats.py` made the data),
/// halfway cases included, where CPython takes the even digit.
#[test]
fn floats_are_written_as_cpython_writes_them() {
    let mut checked = 0;
    for (number, line) in FLOATS.lines().enumerate() {
        let (bits, repr) = line.split_once('\t').expect("a tab separates the columns");
        let value = f64::from_bits(u64::from_str_radix(bits, 16).expect("hex bits"));
        let written = String::from_utf8(json::to_vec(&value).unwrap()).unwrap();
        let expected = if value.is_finite() { repr } else { "null" };
        assert_eq!(written, expected, "line {}: json.dumps", number + 1);
        assert_eq!(
            pyrepr::python_str(&serde_json::Value::from(value)),
            if value.is_finite() { repr } else { "None" },
            "line {}: str()",
            number + 1
        );
        checked += 1;
    }
    assert_eq!(checked, 2510);
}
