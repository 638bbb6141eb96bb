//! JSON as strictly as PROTOCOL.md's step 2 reads it: RFC 8259 text where a key repeated in
//! one object, nesting deeper than [`MAX_DEPTH`] levels, a number beyond the range of an
//! f64 and a lone surrogate escape all count as not JSON.
//!
//! serde_json takes the last of repeated keys (so a repeated `type` could turn a `ping`
//! into a `set`) and nests to 128 levels; it already refuses the other two. This builds the
//! same [`Value`] as `serde_json::from_str`, through a visitor that also refuses those.
//!
//! A frame that fails is still answered as well as it can be ([`parse_frame`]): the frame's
//! `id` and whether it was a `hello`, as far as they were read before the problem, and the
//! problem's place as a field path (found by parsing again, so the good path pays nothing).

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_path_to_error::Segment;

/// Objects and arrays nest this deep at most (the frame itself is level 1).
pub const MAX_DEPTH: usize = 64;

/// A path longer than this (in bytes) is cut after its next segment (64 levels of nesting
/// would print 64 indices).
const MAX_PATH_CHARS: usize = 60;
/// A key longer than this (in characters) is cut in a path.
const MAX_KEY_CHARS: usize = 32;

/// Parses `text`, or says what is wrong and where (serde_json's message, with its line
/// and column).
pub fn parse(text: &str) -> Result<Value, serde_json::Error> {
    parse_seen(text, None)
}

/// Text that is not a frame's JSON, with what could be read of the frame before the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotJson {
    /// What is wrong, with the field's path when it lies inside a field, and the line and
    /// column.
    pub message: String,
    /// The frame's `id`, if one was read before the problem.
    pub id: Option<u64>,
    /// The frame said `"type": "hello"` before the problem.
    pub hello: bool,
}

/// Parses a frame's text; on failure, what [`NotJson`] tells.
pub fn parse_frame(text: &str) -> Result<Value, NotJson> {
    let seen = Cell::new(Seen::default());
    parse_seen(text, Some(&seen)).map_err(|e| NotJson {
        message: located(text, e),
        id: seen.get().id,
        hello: seen.get().hello,
    })
}

fn parse_seen(text: &str, seen: Option<&Cell<Seen>>) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Strict { depth: 0, seen }.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// `error`, preceded by the path of the field it lies in (if any), found by parsing `text`
/// again while tracking the path.
fn located(text: &str, error: serde_json::Error) -> String {
    let mut track = serde_path_to_error::Track::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let strict = Strict {
        depth: 0,
        seen: None,
    };
    if strict
        .deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track))
        .is_ok()
    {
        return error.to_string(); // the problem came after the value (trailing text)
    }
    let mut path = String::new();
    for segment in track.path().iter() {
        if path.len() > MAX_PATH_CHARS {
            path.push('…');
            break;
        }
        match segment {
            Segment::Seq { index } => path += &format!("[{index}]"),
            Segment::Map { key } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.extend(key.chars().take(MAX_KEY_CHARS));
                if key.chars().nth(MAX_KEY_CHARS).is_some() {
                    path.push('…');
                }
            }
            Segment::Enum { .. } | Segment::Unknown => path += ".?",
        }
    }
    if path.is_empty() {
        return error.to_string();
    }
    format!("in `{path}`: {error}")
}

/// What the top-level object said so far.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    id: Option<u64>,
    hello: bool,
}

/// A value `depth` levels inside objects and arrays; at the top, `seen` (if given) keeps
/// the frame's `id` and `type` as they are read.
#[derive(Clone, Copy)]
struct Strict<'a> {
    depth: usize,
    seen: Option<&'a Cell<Seen>>,
}

impl Strict<'_> {
    fn deeper<E: serde::de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format_args!(
                "nested deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(Strict {
            depth: self.depth + 1,
            seen: None,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
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
            if let Some(seen) = self.seen {
                let mut s = seen.get();
                match key.as_str() {
                    "id" => s.id = value.as_u64(),
                    "type" => s.hello |= value == "hello",
                    _ => {}
                }
                seen.set(s);
            }
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
    fn a_problem_is_placed_by_its_path_with_long_keys_cut() {
        let e = parse_frame(r#"{"type":"set","id":3,"value":{"a":[1,{"b":1e999}]}}"#).unwrap_err();
        assert_eq!((e.id, e.hello), (Some(3), false));
        assert!(
            e.message
                .starts_with("in `value.a[1].b`: number out of range"),
            "{}",
            e.message
        );
        let key = "k".repeat(40);
        let e = parse_frame(&format!(r#"{{"value":{{"{key}":1e999}}}}"#)).unwrap_err();
        let cut = format!("in `value.{}…`:", "k".repeat(32));
        assert!(e.message.starts_with(&cut), "{}", e.message);
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
