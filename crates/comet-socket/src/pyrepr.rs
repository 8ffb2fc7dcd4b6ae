//! Python's `str()` and `repr()` of decoded JSON values.
//!
//! COMET's answer to an invalid request embeds the offending values as Python's `str()` prints
//! them: `None`, `True`, `0`, `2.5`, `1e+20`, `{'a': 1, 'b': [True, None]}`. At the top level a
//! string prints raw; inside containers strings print as `repr()` does (single quotes, or double
//! quotes when the text holds a single quote and no double quote; `\n`, `\\`, `\xhh`, `\uhhhh`
//! escapes for what Python deems unprintable).
//!
//! Python's notion of "printable" comes from its Unicode database. This module escapes control
//! characters, separators other than the space, format characters, private-use code points and
//! non-characters, which covers what occurs in practice; code points unassigned in Unicode are
//! printed raw here where Python would escape them.

use std::fmt::Write as _;

use serde_json::Value;

use crate::json::push_python_float;

/// `str(value)` as Python prints the decoded JSON `value`.
pub fn python_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => python_repr(other),
    }
}

/// `repr(value)` as Python prints the decoded JSON `value`.
pub fn python_repr(value: &Value) -> String {
    let mut out = String::new();
    push_repr(&mut out, value);
    out
}

fn push_repr(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => {
            if n.is_f64() {
                push_python_float(out, n.as_f64().unwrap_or(f64::NAN));
            } else {
                let _ = write!(out, "{n}");
            }
        }
        Value::String(s) => push_str_repr(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_repr(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_str_repr(out, key);
                out.push_str(": ");
                push_repr(out, item);
            }
            out.push('}');
        }
    }
}

fn push_str_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_printable(c) => out.push(c),
            c => {
                let code = u32::from(c);
                let _ = if code < 0x100 {
                    write!(out, "\\x{code:02x}")
                } else if code < 0x10000 {
                    write!(out, "\\u{code:04x}")
                } else {
                    write!(out, "\\U{code:08x}")
                };
            }
        }
    }
    out.push(quote);
}

/// Python's `str.isprintable()` for one character, approximated as described in the module
/// docs.
fn is_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() {
        return false;
    }
    let code = u32::from(c);
    const NOT_PRINTABLE: &[(u32, u32)] = &[
        // Space separators other than U+0020, line and paragraph separators.
        (0x00A0, 0x00A0),
        (0x1680, 0x1680),
        (0x2000, 0x200A),
        (0x2028, 0x2029),
        (0x202F, 0x202F),
        (0x205F, 0x205F),
        (0x3000, 0x3000),
        // Format characters.
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
        // Private use.
        (0xE000, 0xF8FF),
        (0xF0000, 0x10FFFF),
        // Non-characters.
        (0xFDD0, 0xFDEF),
    ];
    if code & 0xFFFE == 0xFFFE {
        return false;
    }
    !NOT_PRINTABLE
        .iter()
        .any(|&(low, high)| (low..=high).contains(&code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_print_as_python_prints_them() {
        assert_eq!(python_str(&json!(null)), "None");
        assert_eq!(python_str(&json!(true)), "True");
        assert_eq!(python_str(&json!(false)), "False");
        assert_eq!(python_str(&json!(0)), "0");
        assert_eq!(python_str(&json!(-17)), "-17");
        assert_eq!(python_str(&json!(u64::MAX)), "18446744073709551615");
        assert_eq!(python_str(&json!(2.5)), "2.5");
        assert_eq!(python_str(&json!(1e20)), "1e+20");
        assert_eq!(python_str(&json!(3.0)), "3.0");
    }

    #[test]
    fn top_level_strings_print_raw_and_nested_ones_quoted() {
        assert_eq!(python_str(&json!("it's")), "it's");
        assert_eq!(python_str(&json!("")), "");
        assert_eq!(python_str(&json!(["a", ""])), "['a', '']");
    }

    #[test]
    fn containers_print_like_python_dicts_and_lists() {
        assert_eq!(
            python_str(&json!({"a": 1, "b": [true, null]})),
            "{'a': 1, 'b': [True, None]}"
        );
        assert_eq!(python_str(&json!({})), "{}");
        assert_eq!(python_str(&json!([])), "[]");
        assert_eq!(
            python_str(&json!([[1.5, {"k": false}]])),
            "[[1.5, {'k': False}]]"
        );
    }

    #[test]
    fn string_repr_picks_quotes_and_escapes_like_python() {
        // Expected strings produced by CPython 3's repr(str).
        let cases = [
            ("it's", r#""it's""#),
            ("x\"y", r#"'x"y'"#),
            ("both'\"", r#"'both\'"'"#),
            (
                "\n\t\\\u{0}\u{7f}\u{a0}é\u{2028}😀",
                r"'\n\t\\\x00\x7f\xa0é\u2028😀'",
            ),
            ("\r\u{e000}\u{10ffff}", r"'\r\ue000\U0010ffff'"),
            ("\u{feff}\u{ffff}", r"'\ufeff\uffff'"),
        ];
        for (input, expected) in cases {
            assert_eq!(python_repr(&json!(input)), expected, "{input:?}");
        }
    }
}
