//! JSON Canonicalization Scheme (RFC 8785) and the SHA-256 digests built on it.
//!
//! Digests of grant specs (what a human approves) and of audit events (what
//! the chain links) must not depend on key order, whitespace or number
//! spelling, so both are taken over the JCS form:
//!
//! - object members sorted by the UTF-16 code units of their names (§3.2.3);
//! - strings with the minimal JSON escapes, everything else literal UTF-8 (§3.2.2.2);
//! - numbers as ECMAScript `Number.prototype.toString` prints the IEEE double (§3.2.2.3).
//!
//! Integers that an IEEE double cannot hold exactly (|n| > 2^53) are refused
//! rather than rounded: a digest must never silently cover a different value.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorCode, Result};

/// The largest integer an IEEE double represents exactly together with all
/// integers below it (2^53).
const MAX_EXACT_INTEGER: u64 = 1 << 53;

/// Serializes a JSON value in RFC 8785 canonical form.
pub fn canonicalize(value: &Value) -> Result<String> {
    let mut out = String::with_capacity(256);
    write_value(value, &mut out)?;
    Ok(out)
}

/// Serializes any `Serialize` type to JSON and then to canonical form.
pub fn canonicalize_serializable<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    let value = serde_json::to_value(value)
        .map_err(|e| Error::new(ErrorCode::JsonInvalid, format!("cannot serialize: {e}")))?;
    canonicalize(&value)
}

/// SHA-256 over the canonical form of `value`.
pub fn sha256<T: Serialize + ?Sized>(value: &T) -> Result<[u8; 32]> {
    let canonical = canonicalize_serializable(value)?;
    Ok(Sha256::digest(canonical.as_bytes()).into())
}

/// base64url(SHA-256(canonical(value))): the form digests take on the wire
/// and in CRD status (e.g. `status.approval.specDigest`).
pub fn digest_b64<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    Ok(crate::b64::encode(sha256(value)?))
}

fn write_value(value: &Value, out: &mut String) -> Result<()> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out)?;
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (name, member)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(name, out);
                out.push(':');
                write_value(member, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_number(n: &serde_json::Number, out: &mut String) -> Result<()> {
    let too_large = || {
        Error::new(
            ErrorCode::JsonInvalid,
            format!("integer {n} is beyond 2^53 and has no exact canonical form"),
        )
    };
    if let Some(u) = n.as_u64() {
        if u > MAX_EXACT_INTEGER {
            return Err(too_large());
        }
        out.push_str(&u.to_string());
    } else if let Some(i) = n.as_i64() {
        if i.unsigned_abs() > MAX_EXACT_INTEGER {
            return Err(too_large());
        }
        out.push_str(&i.to_string());
    } else if let Some(f) = n.as_f64() {
        if !f.is_finite() {
            return Err(Error::new(ErrorCode::JsonInvalid, "non-finite number"));
        }
        // ryu-js prints exactly what ECMAScript's Number.prototype.toString
        // prints, which is what RFC 8785 §3.2.2.3 prescribes (-0 prints "0").
        let mut buf = ryu_js::Buffer::new();
        out.push_str(buf.format_finite(f));
    } else {
        return Err(Error::new(ErrorCode::JsonInvalid, "unrepresentable number"));
    }
    Ok(())
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{09}' => out.push_str("\\t"),
            '\u{0A}' => out.push_str("\\n"),
            '\u{0C}' => out.push_str("\\f"),
            '\u{0D}' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn canon(json: &str) -> String {
        canonicalize(&serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn integers_beyond_two_to_the_53_are_refused() {
        let v: Value = serde_json::from_str("9007199254740993").unwrap();
        assert_eq!(canonicalize(&v).unwrap_err().code, ErrorCode::JsonInvalid);
        assert_eq!(canon("9007199254740992"), "9007199254740992");
        assert_eq!(canon("-9007199254740992"), "-9007199254740992");
    }

    #[test]
    fn whitespace_and_order_do_not_change_the_digest() {
        let a: Value = serde_json::from_str(r#"{ "b": [1, 2], "a": {"y": 1, "x": 2} }"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":2,"y":1},"b":[1,2]}"#).unwrap();
        assert_eq!(sha256(&a).unwrap(), sha256(&b).unwrap());
        assert_eq!(
            canonicalize(&a).unwrap(),
            r#"{"a":{"x":2,"y":1},"b":[1,2]}"#
        );
    }
}
