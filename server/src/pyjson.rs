//! Byte-exact imitations of Python's JSON and repr output, where Dify's wire
//! format shows them: `json.dumps` defaults (`", "`/`": "` separators,
//! `ensure_ascii`) in blocking bodies and in a run record's `inputs` string,
//! Flask's `\/` escaping in error bodies, and `repr()` inside pydantic
//! validation messages.

use serde::Serialize;
use serde_json::Value;
use std::io;

/// Serializes `value` as Python's `json.dumps(value)` would.
pub fn to_python_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    // Serializing our own types into a Vec cannot fail.
    value.serialize(&mut ser).expect("serialize to Vec");
    out
}

/// Appends `value` to `out` as `to_python_json` writes it.
pub(crate) fn append_python_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let mut ser = serde_json::Serializer::with_formatter(out, PythonFormatter);
    value.serialize(&mut ser).expect("serialize to Vec");
}

/// Appends `s` as a Python JSON string; text that needs no escape (ids,
/// statuses: printable ASCII without `"` or `\`) is copied as it is.
pub(crate) fn append_python_str(out: &mut Vec<u8>, s: &str) {
    if needs_no_escape(s) {
        append_plain_str(out, s);
    } else {
        append_python_json(out, s);
    }
}

/// Appends `s`, which the server wrote itself and needs no escape (a UUID,
/// a status), in quotes, unchecked.
pub(crate) fn append_plain_str(out: &mut Vec<u8>, s: &str) {
    debug_assert!(needs_no_escape(s), "{s:?} needs escapes");
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

fn needs_no_escape(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// Compact JSON with `/` escaped as `\/`, as Flask-RESTx writes error and
/// record bodies, plus its trailing newline.
pub fn to_flask_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut compact = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut compact, CompactPythonFloats);
    value.serialize(&mut ser).expect("serialize to Vec");
    let mut out = Vec::with_capacity(compact.len() + 8);
    for &b in &compact {
        // `/` can only occur inside strings in JSON text.
        if b == b'/' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'\n');
    out
}

/// Python's `repr()` of a JSON value (dicts, lists, str, int, float, bool, None).
pub fn python_repr(value: &Value) -> String {
    let mut out = String::new();
    write_repr(value, &mut out);
    out
}

/// Python's type name for a JSON value, as pydantic prints `input_type=`.
pub fn python_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// pydantic-core shortens long `input_value` reprs: head, `...`, tail.
pub fn truncated_repr(value: &Value) -> String {
    const MAX_CHARS: usize = 50;
    let repr = python_repr(value);
    let n = repr.chars().count();
    if n <= MAX_CHARS {
        return repr;
    }
    let head: String = repr.chars().take(25).collect();
    let tail: String = repr.chars().skip(n - 24).collect();
    format!("{head}...{tail}")
}

/// Writes `v` as Python's `repr(float)`: the shortest digits that read
/// back as `v` (as serde_json's), but in exponent form exactly when the
/// decimal exponent is below −4 or above 15, with a sign and at least two
/// exponent digits (`8e-06`, `1e+16`, `0.0001`, `100.0`), where serde_json
/// writes `8e-6`, `1e16` and `0.00001`. Non-finite values, which JSON
/// lacks, stay `null` as serde_json writes them.
pub(crate) fn write_python_float<W: ?Sized + io::Write>(writer: &mut W, v: f64) -> io::Result<()> {
    if !v.is_finite() {
        return writer.write_all(b"null");
    }
    // ryu (serde_json's own) gives the shortest digits, in fixed form for
    // a decimal point at −4 to 16 (`0.000086`, `1.5`, `100.0`), in exponent
    // form otherwise (`8e-6`, `1.5e300`, `1e16`). Python agrees on all but
    // the exponent's spelling and the point at −4, which it writes in
    // exponent form (`8.6e-05`). All on the stack: this runs per answer.
    let mut ryu = ryu::Buffer::new();
    let text = ryu.format_finite(v).as_bytes();
    let (sign, unsigned) = match text.split_first() {
        Some((b'-', rest)) => (&b"-"[..], rest),
        _ => (&b""[..], text),
    };
    if let Some(e) = unsigned.iter().position(|&b| b == b'e') {
        let (mantissa, exp) = (&unsigned[..e], &unsigned[e + 1..]);
        let (exp_sign, exp_digits) = match exp.split_first() {
            Some((b'-', rest)) => (b'-', rest),
            _ => (b'+', exp),
        };
        writer.write_all(sign)?;
        writer.write_all(mantissa)?;
        writer.write_all(&[b'e', exp_sign])?;
        if exp_digits.len() < 2 {
            writer.write_all(b"0")?;
        }
        return writer.write_all(exp_digits);
    }
    if let Some(digits) = unsigned.strip_prefix(b"0.0000") {
        // 0.0000ddd: Python's d.dde-05.
        writer.write_all(sign)?;
        writer.write_all(&digits[..1])?;
        if digits.len() > 1 {
            writer.write_all(b".")?;
            writer.write_all(&digits[1..])?;
        }
        return writer.write_all(b"e-05");
    }
    writer.write_all(text)
}

/// serde_json's compact output, with Python's floats.
struct CompactPythonFloats;

impl serde_json::ser::Formatter for CompactPythonFloats {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        write_python_float(writer, value)
    }
}

struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        write_python_float(writer, value)
    }

    fn begin_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { writer.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { writer.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        if fragment.is_ascii() {
            return writer.write_all(fragment.as_bytes());
        }
        let mut units = [0u16; 2];
        for c in fragment.chars() {
            if c.is_ascii() {
                writer.write_all(&[c as u8])?;
            } else {
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

fn write_repr(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_str_repr(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str_repr(k, out);
                out.push_str(": ");
                write_repr(v, out);
            }
            out.push('}');
        }
    }
}

/// Python's `repr(str)`: single quotes unless the text holds `'` and no `"`.
pub fn write_str_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
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
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_dumps_separators_and_ascii() {
        let v = json!({"a": [1, "é", null], "b": {"c": 0.5}});
        assert_eq!(String::from_utf8(to_python_json(&v)).unwrap(), r#"{"a": [1, "\u00e9", null], "b": {"c": 0.5}}"#);
    }

    /// What CPython 3.12 prints for `repr(x)` (and so `json.dumps(x)`).
    #[test]
    fn floats_are_written_as_python_writes_them() {
        let cases = [
            (8e-6, "8e-06"),
            (8.6e-5, "8.6e-05"),
            (1e-5, "1e-05"),
            (0.00001234, "1.234e-05"),
            (-0.00005, "-5e-05"),
            (0.0001, "0.0001"),
            (0.000123, "0.000123"),
            (0.023748, "0.023748"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (100.0, "100.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (-2.5e-7, "-2.5e-07"),
            (1234567890123456.0, "1234567890123456.0"),
            (1e16, "1e+16"),
            (1.5e300, "1.5e+300"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
        ];
        for (value, python) in cases {
            let mut out = Vec::new();
            write_python_float(&mut out, value).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), python, "{value:e}");
        }
        assert_eq!(String::from_utf8(to_python_json(&json!({"e": 8e-6}))).unwrap(), r#"{"e": 8e-06}"#);
        assert_eq!(String::from_utf8(to_flask_json(&json!({"e": 8e-6}))).unwrap(), "{\"e\":8e-06}\n");
    }

    #[test]
    fn flask_escapes_slash_and_ends_with_newline() {
        let v = json!({"m": "https://x/y"});
        assert_eq!(String::from_utf8(to_flask_json(&v)).unwrap(), "{\"m\":\"https:\\/\\/x\\/y\"}\n");
    }

    #[test]
    fn repr_matches_python() {
        let v = json!({"response_mode": "blocking", "user": "bench", "n": [1, true, null], "q": "it's"});
        assert_eq!(python_repr(&v), r#"{'response_mode': 'blocking', 'user': 'bench', 'n': [1, True, None], 'q': "it's"}"#);
    }
}
