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
