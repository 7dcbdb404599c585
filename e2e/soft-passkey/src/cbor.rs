//! The little CBOR (RFC 8949) a WebAuthn registration needs: maps with
//! integer or text keys, byte strings, small integers. Definite lengths
//! only, canonical enough for any relying party's decoder.

/// A CBOR value.
#[derive(Clone, Debug)]
pub enum Value {
    /// A (possibly negative) integer.
    Int(i64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A text string.
    Text(String),
    /// A map, in the given key order.
    Map(Vec<(Value, Value)>),
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let major = major << 5;
    match n {
        0..=23 => out.push(major | n as u8),
        24..=0xff => out.extend([major | 24, n as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend((n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend((n as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend(n.to_be_bytes());
        }
    }
}

impl Value {
    /// The encoding of this value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) if *i >= 0 => head(out, 0, i.unsigned_abs()),
            Value::Int(i) => head(out, 1, (-1 - *i).unsigned_abs()),
            Value::Bytes(b) => {
                head(out, 2, b.len() as u64);
                out.extend_from_slice(b);
            }
            Value::Text(t) => {
                head(out, 3, t.len() as u64);
                out.extend_from_slice(t.as_bytes());
            }
            Value::Map(entries) => {
                head(out, 5, entries.len() as u64);
                for (k, v) in entries {
                    k.write(out);
                    v.write(out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_8949_appendix_a_examples() {
        assert_eq!(Value::Int(0).encode(), [0x00]);
        assert_eq!(Value::Int(24).encode(), [0x18, 0x18]);
        assert_eq!(Value::Int(1000).encode(), [0x19, 0x03, 0xe8]);
        assert_eq!(Value::Int(-1).encode(), [0x20]);
        assert_eq!(Value::Int(-7).encode(), [0x26]);
        assert_eq!(Value::Int(-100).encode(), [0x38, 0x63]);
        assert_eq!(Value::Text("a".into()).encode(), [0x61, 0x61]);
        assert_eq!(Value::Bytes(vec![1, 2, 3, 4]).encode(), [0x44, 1, 2, 3, 4]);
        let map = Value::Map(vec![
            (Value::Int(1), Value::Int(2)),
            (Value::Int(3), Value::Int(4)),
        ]);
        assert_eq!(map.encode(), [0xa2, 0x01, 0x02, 0x03, 0x04]);
    }
}
