//! JSON as strictly as PROTOCOL.md's step 2 reads it: RFC 8259 text where a key repeated in
//! one object, nesting deeper than [`MAX_DEPTH`] levels, a number beyond the range of an
//! f64 and a lone surrogate escape all count as not JSON.
//!
//! serde_json takes the last of repeated keys (so a repeated `type` could turn a `ping`
//! into a `set`) and nests to 128 levels; it already refuses the other two. This builds the
//! same [`Value`] as `serde_json::from_str`, through a visitor that also refuses those.

use std::fmt;

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Objects and arrays nest this deep at most (the frame itself is level 1).
pub const MAX_DEPTH: usize = 64;

/// Parses `text`, or says what is wrong and where (serde_json's message, with its line
/// and column).
pub fn parse(text: &str) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Strict { depth: 0 }.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// A value `depth` levels inside objects and arrays.
#[derive(Clone, Copy)]
struct Strict {
    depth: usize,
}

impl Strict {
    fn deeper<E: serde::de::Error>(self) -> Result<Strict, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format_args!(
                "nested deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(Strict {
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Value, E> {
        Number::from_f64(n)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(A::Error::custom(format_args!("key `{key}` repeated")));
            }
            let value = map.next_value_seed(inner)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!(
            r#"{{"v":{}1{}}}"#,
            "[".repeat(levels - 1),
            "]".repeat(levels - 1)
        )
    }

    #[test]
    fn the_same_values_as_serde_json_for_good_text() {
        for text in [
            r#"{"type":"set","id":1,"key":"k","value":{"a":[1,-2,3.5,null,true,"é"]},"local_rev":1}"#,
            r#"[]"#,
            r#""\ud83d\ude00""#,
            "12345678901234567890123456789",
        ] {
            let ours = parse(text).unwrap();
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours, theirs, "{text}");
        }
        assert!(parse(&nested(64)).is_ok(), "64 levels");
    }

    #[test]
    fn repeated_keys_deep_nesting_huge_numbers_and_lone_surrogates_are_refused() {
        let cases = [
            (
                r#"{"type":"ping","id":1,"type":"set"}"#,
                "key `type` repeated",
            ),
            (r#"{"v":{"a":1,"a":1}}"#, "key `a` repeated"),
            (&nested(65), "nested deeper than 64"),
            (r#"{"v":1e400}"#, "number out of range"),
            (r#"{"v":-1e400}"#, "number out of range"),
            (r#"{"v":"\ud800"}"#, "hex escape"),
            (r#"{"v":"\udc00x"}"#, "surrogate"),
            (r#"{"v":1} x"#, "trailing"),
        ];
        for (text, says) in cases {
            let e = parse(text).expect_err(text).to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
