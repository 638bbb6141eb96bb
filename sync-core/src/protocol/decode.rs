//! Decoding frames from JSON text, with errors that name what was wrong.
//!
//! The client-frame decoder is the server's step 2 ("Decoding") of PROTOCOL.md: every
//! malformed frame becomes a [`DecodeError`] whose message names the field, and whose `id`
//! is the frame's id when one could be read (the server echoes it in its `error` frame).
//! Nothing here panics, whatever the input.

use serde_json::{Map, Value};

use super::frames::{CatchUp, ClientFrame, MAX_BATCH, ServerFrame};
use super::model::{CommandOp, is_valid_device_id};

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct DecodeError {
    /// The frame's `id`, when it had a readable one.
    pub id: Option<u64>,
    /// `true` when the frame said `"type": "hello"` (a bad `hello` closes the connection).
    pub in_hello: bool,
    /// What was wrong.
    pub problem: Problem,
}

/// The classes of malformed frames of PROTOCOL.md's step 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Not JSON text at all.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("a frame is a JSON object, got {0}")]
    NotObject(&'static str),
    /// No `type` field, or not a string.
    #[error("missing field `type` (a string)")]
    MissingType,
    /// A `type` this protocol does not have.
    #[error(
        "unknown type `{0}`, expected one of `hello`, `set`, `command`, `ping`, `auth`, `batch`"
    )]
    UnknownType(String),
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field the frame type does not have.
    #[error("unknown field `{field}` in `{frame}`, expected only {expected}")]
    UnknownField {
        /// The field.
        field: String,
        /// The frame type.
        frame: &'static str,
        /// The fields it has.
        expected: &'static str,
    },
    /// A field of the wrong JSON type, or out of its range.
    #[error("field `{field}`: expected {expected}, got {got}")]
    BadField {
        /// The field (a path such as `args.text`).
        field: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it was (shortened).
        got: String,
    },
    /// A binary WebSocket frame (the protocol is JSON text only).
    #[error("binary frames are not part of the protocol; send JSON text")]
    Binary,
    /// One item of a `batch`'s `writes` is malformed: the whole batch is.
    #[error("`writes[{index}]`: {problem}")]
    InBatch {
        /// The item's place in the list, from 0.
        index: usize,
        /// What was wrong with it.
        problem: Box<Problem>,
    },
    /// A `batch` item that is not a write (`hello`, `ping`, or a nested `batch`).
    #[error("a batch carries only `set` and `command` frames, not `{0}`")]
    NotAWrite(&'static str),
    /// Two items of one `batch` share an `id`.
    #[error("`writes`: the id {0} appears twice (each write needs its own)")]
    DuplicateId(u64),
}

/// Decodes a frame a device sent, as strictly as PROTOCOL.md requires.
pub fn decode_client_frame(text: &str) -> Result<ClientFrame, DecodeError> {
    let value: Value = super::strict_json::parse_frame(text).map_err(|e| DecodeError {
        id: e.id,
        in_hello: e.hello,
        problem: Problem::NotJson(e.message),
    })?;
    let Value::Object(map) = value else {
        return Err(DecodeError {
            id: None,
            in_hello: false,
            problem: Problem::NotObject(json_type(&value)),
        });
    };
    let id = map.get("id").and_then(Value::as_u64);
    let in_hello = map.get("type").and_then(Value::as_str) == Some("hello");
    decode_object(map).map_err(|problem| DecodeError {
        id,
        in_hello,
        problem,
    })
}

/// Decodes a frame the server sent. Unknown fields are ignored (the server may grow);
/// anything else wrong is reported with serde's message.
pub fn decode_server_frame(text: &str) -> Result<ServerFrame, serde_json::Error> {
    serde_json::from_str(text)
}

/// The frame's fields, taken out one by one so that what is left is exactly the unknown
/// fields.
struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    fn take(&mut self, field: &'static str) -> Result<Value, Problem> {
        self.map.remove(field).ok_or(Problem::MissingField(field))
    }

    fn u64(&mut self, field: &'static str, min: u64) -> Result<u64, Problem> {
        let v = self.take(field)?;
        match v.as_u64() {
            Some(n) if n >= min => Ok(n),
            _ => Err(bad(
                field,
                if min == 0 {
                    "an unsigned integer"
                } else {
                    "an integer ≥ 1"
                },
                &v,
            )),
        }
    }

    fn string(&mut self, field: &'static str) -> Result<String, Problem> {
        match self.take(field)? {
            Value::String(s) => Ok(s),
            other => Err(bad(field, "a string", &other)),
        }
    }

    /// Fails on the first field nobody took.
    fn finish(self, frame: &'static str, expected: &'static str) -> Result<(), Problem> {
        match self.map.into_iter().next() {
            None => Ok(()),
            Some((field, _)) => Err(Problem::UnknownField {
                field,
                frame,
                expected,
            }),
        }
    }
}

fn decode_object(map: Map<String, Value>) -> Result<ClientFrame, Problem> {
    let mut f = Fields { map };
    let kind = match f.map.remove("type") {
        Some(Value::String(s)) => s,
        _ => return Err(Problem::MissingType),
    };
    match kind.as_str() {
        "hello" => {
            let protocol = f.u64("protocol", 0)?;
            let token = f.string("token")?;
            let device_id = f.string("device_id")?;
            if !is_valid_device_id(&device_id) {
                return Err(bad(
                    "device_id",
                    "1..=64 of [A-Za-z0-9_-], not `server`",
                    &Value::String(device_id),
                ));
            }
            let catch_up = match (
                f.map.contains_key("since"),
                f.map.contains_key("since_time"),
            ) {
                (true, true) => {
                    let got = f.take("since_time")?;
                    return Err(bad(
                        "since_time",
                        "absent when `since` is given (send one of them)",
                        &got,
                    ));
                }
                (false, true) => CatchUp::SinceTime(f.u64("since_time", 0)?),
                _ => CatchUp::Since(f.u64("since", 0)?),
            };
            f.finish(
                "hello",
                "`type`, `protocol`, `token`, `device_id`, `since` or `since_time`",
            )?;
            Ok(ClientFrame::Hello {
                protocol,
                token,
                device_id,
                catch_up,
            })
        }
        "set" => {
            let id = f.u64("id", 0)?;
            let key = f.string("key")?;
            let value = f.take("value")?;
            let local_rev = f.u64("local_rev", 1)?;
            f.finish("set", "`type`, `id`, `key`, `value`, `local_rev`")?;
            Ok(ClientFrame::Set {
                id,
                key,
                value,
                local_rev,
            })
        }
        "command" => {
            let id = f.u64("id", 0)?;
            let key = f.string("key")?;
            let name = f.string("name")?;
            let args = f.take("args")?;
            let local_rev = f.u64("local_rev", 1)?;
            f.finish(
                "command",
                "`type`, `id`, `key`, `name`, `args`, `local_rev`",
            )?;
            let op = decode_command(&name, args)?;
            Ok(ClientFrame::Command {
                id,
                key,
                op,
                local_rev,
            })
        }
        "ping" => {
            let id = f.u64("id", 0)?;
            f.finish("ping", "`type`, `id`")?;
            Ok(ClientFrame::Ping { id })
        }
        "auth" => {
            let id = f.u64("id", 0)?;
            let token = f.string("token")?;
            f.finish("auth", "`type`, `id`, `token`")?;
            Ok(ClientFrame::Auth { id, token })
        }
        "batch" => {
            let id = f.u64("id", 0)?;
            let writes = f.take("writes")?;
            f.finish("batch", "`type`, `id`, `writes`")?;
            Ok(ClientFrame::Batch {
                id,
                writes: decode_writes(writes)?,
            })
        }
        _ => Err(Problem::UnknownType(kind)),
    }
}

/// A batch's `writes`: 1..=[`MAX_BATCH`] `set` / `command` objects with distinct ids, each
/// decoded exactly as if sent alone (its problem named with its place in the list).
fn decode_writes(writes: Value) -> Result<Vec<ClientFrame>, Problem> {
    let items = match writes {
        Value::Array(items) if (1..=MAX_BATCH).contains(&items.len()) => items,
        other => return Err(bad("writes", "a list of 1 to 64 writes", &other)),
    };
    let mut frames = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let frame = match item {
            Value::Object(map) => decode_object(map),
            other => Err(Problem::NotObject(json_type(&other))),
        };
        frames.push(frame.map_err(|problem| in_batch(index, problem))?);
    }
    check_batch(&frames)?;
    Ok(frames)
}

/// What a batch's `writes` must be beyond each item's own shape: 1..=[`MAX_BATCH`] of
/// them, each a `set` or `command`, with distinct ids. The decoder checks it; so does the
/// server for a batch handed to it already decoded (the simulator's).
pub fn check_batch(writes: &[ClientFrame]) -> Result<(), Problem> {
    if !(1..=MAX_BATCH).contains(&writes.len()) {
        return Err(Problem::BadField {
            field: "writes",
            expected: "a list of 1 to 64 writes",
            got: format!("{} items", writes.len()),
        });
    }
    let mut ids = std::collections::HashSet::with_capacity(writes.len());
    for (index, frame) in writes.iter().enumerate() {
        let id = match frame {
            ClientFrame::Set { id, .. } | ClientFrame::Command { id, .. } => *id,
            other => return Err(in_batch(index, Problem::NotAWrite(other.type_name()))),
        };
        if !ids.insert(id) {
            return Err(Problem::DuplicateId(id));
        }
    }
    Ok(())
}

fn in_batch(index: usize, problem: Problem) -> Problem {
    Problem::InBatch {
        index,
        problem: Box::new(problem),
    }
}

fn decode_command(name: &str, args: Value) -> Result<CommandOp, Problem> {
    let Value::Object(map) = args else {
        return Err(bad("args", "an object", &args));
    };
    let mut a = Fields { map };
    match name {
        "add_comment" => {
            let text = match a
                .take("text")
                .map_err(|_| Problem::MissingField("args.text"))?
            {
                Value::String(s) => s,
                other => return Err(bad("args.text", "a string", &other)),
            };
            a.finish("add_comment args", "`text`")?;
            Ok(CommandOp::AddComment { text })
        }
        "edit_comment" => {
            let id = match a.take("id").map_err(|_| Problem::MissingField("args.id"))? {
                Value::String(s) => s,
                other => return Err(bad("args.id", "a string", &other)),
            };
            let text = match a
                .take("text")
                .map_err(|_| Problem::MissingField("args.text"))?
            {
                Value::String(s) => s,
                other => return Err(bad("args.text", "a string", &other)),
            };
            a.finish("edit_comment args", "`id`, `text`")?;
            Ok(CommandOp::EditComment { id, text })
        }
        "delete_comment" => {
            let id = match a.take("id").map_err(|_| Problem::MissingField("args.id"))? {
                Value::String(s) => s,
                other => return Err(bad("args.id", "a string", &other)),
            };
            a.finish("delete_comment args", "`id`")?;
            Ok(CommandOp::DeleteComment { id })
        }
        other => Err(bad(
            "name",
            "`add_comment`, `edit_comment` or `delete_comment`",
            &Value::String(other.to_string()),
        )),
    }
}

fn bad(field: &'static str, expected: &'static str, got: &Value) -> Problem {
    let mut got = got.to_string();
    if got.len() > 40 {
        let cut = (0..=40)
            .rev()
            .find(|&i| got.is_char_boundary(i))
            .unwrap_or(0);
        got.truncate(cut);
        got.push('…');
    }
    Problem::BadField {
        field,
        expected,
        got,
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Change, Current, ErrorCode};
    use serde_json::json;

    fn err(text: &str) -> DecodeError {
        decode_client_frame(text).expect_err(text)
    }

    #[test]
    fn every_client_frame_round_trips() {
        let frames = [
            ClientFrame::Hello {
                protocol: 1,
                token: "t".into(),
                device_id: "phone".into(),
                catch_up: CatchUp::Since(3),
            },
            ClientFrame::Hello {
                protocol: 1,
                token: "t".into(),
                device_id: "phone".into(),
                catch_up: CatchUp::SinceTime(1_767_225_600_000),
            },
            ClientFrame::Set {
                id: 1,
                key: "settings/volume".into(),
                value: json!(7),
                local_rev: 2,
            },
            ClientFrame::Command {
                id: 2,
                key: "comments/p".into(),
                op: CommandOp::AddComment { text: "hi".into() },
                local_rev: 1,
            },
            ClientFrame::Command {
                id: 3,
                key: "comments/p".into(),
                op: CommandOp::DeleteComment { id: "4".into() },
                local_rev: 2,
            },
            ClientFrame::Ping { id: 9 },
            ClientFrame::Auth {
                id: 13,
                token: "t2".into(),
            },
            ClientFrame::Batch {
                id: 10,
                writes: vec![
                    ClientFrame::Set {
                        id: 11,
                        key: "like/a".into(),
                        value: json!(true),
                        local_rev: 1,
                    },
                    ClientFrame::Command {
                        id: 12,
                        key: "comments/p".into(),
                        op: CommandOp::EditComment {
                            id: "4".into(),
                            text: "new".into(),
                        },
                        local_rev: 3,
                    },
                ],
            },
        ];
        for f in frames {
            assert_eq!(decode_client_frame(&f.to_json()).unwrap(), f);
        }
    }

    #[test]
    fn not_json_not_object_no_type_unknown_type() {
        assert!(matches!(err("{").problem, Problem::NotJson(_)));
        assert!(matches!(err("[1]").problem, Problem::NotObject("an array")));
        assert_eq!(err(r#"{"id":1}"#).problem, Problem::MissingType);
        assert_eq!(err(r#"{"type":5}"#).problem, Problem::MissingType);
        let e = err(r#"{"type":"sett","id":4}"#);
        assert_eq!(e.problem, Problem::UnknownType("sett".into()));
        assert_eq!(e.id, Some(4), "the id is echoed even for a bad frame");
    }

    /// Step 2 as PROTOCOL.md writes it: a repeated key (last-one-wins would turn this
    /// `ping` into a `set`), nesting over 64, a number beyond f64, a lone surrogate.
    #[test]
    fn repeated_keys_deep_nesting_huge_numbers_and_lone_surrogates_are_not_json() {
        let deep = format!(
            r#"{{"type":"set","id":1,"key":"like/a","value":{}true{},"local_rev":1}}"#,
            "[".repeat(64),
            "]".repeat(64)
        );
        for (text, says) in [
            (
                r#"{"type":"ping","id":1,"type":"set","key":"like/a","value":true,"local_rev":1}"#,
                "not JSON: key `type` repeated at line 1 column 28",
            ),
            (
                deep.as_str(),
                "not JSON: in `value[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]…`: \
                 nested deeper than 64 levels at line 1 column 108",
            ),
            (
                r#"{"type":"set","id":1,"key":"settings/volume","value":1e999,"local_rev":1}"#,
                "not JSON: in `value`: number out of range at line 1 column 58",
            ),
            (
                r#"{"type":"set","id":1,"key":"settings/display_name","value":"\udead","local_rev":1}"#,
                "not JSON: in `value`: lone leading surrogate in hex escape at line 1 column 66",
            ),
        ] {
            let e = err(text);
            assert!(matches!(e.problem, Problem::NotJson(_)), "{text}: {e}");
            assert_eq!(e.to_string(), says, "{text}");
            assert_eq!((e.id, e.in_hello), (Some(1), false), "{text}");
        }
    }

    /// What was read before the problem still counts: a `hello` that repeats a key is a
    /// malformed `hello` (closed 4400 with `bad_message`, not `hello_required`); an `id`
    /// that comes after the problem was never read.
    #[test]
    fn a_frame_that_is_not_json_keeps_what_was_read_before_the_problem() {
        let e = err(r#"{"type":"hello","protocol":1,"protocol":1,"token":"t"}"#);
        assert!(e.in_hello, "{e}");
        assert_eq!(e.id, None);
        let e = err(r#"{"type":"set","value":1e999,"id":7}"#);
        assert_eq!((e.id, e.in_hello), (None, false), "{e}");
        let e = err(r#"{"type":"set","id":7} x"#);
        assert_eq!(
            e.to_string(),
            "not JSON: trailing characters at line 1 column 23"
        );
    }

    #[test]
    fn missing_extra_and_mistyped_fields_are_named() {
        let e = err(r#"{"type":"set","id":1,"key":"k","value":1}"#);
        assert_eq!(e.problem, Problem::MissingField("local_rev"));
        assert_eq!(e.to_string(), "missing field `local_rev`");
        let e = err(r#"{"type":"set","id":1,"key":"k","value":1,"local_rev":1,"x":2}"#);
        assert!(e.to_string().contains("unknown field `x`"), "{e}");
        let e = err(r#"{"type":"set","id":"1","key":"k","value":1,"local_rev":1}"#);
        assert!(e.to_string().starts_with("field `id`"), "{e}");
        let e = err(r#"{"type":"set","id":1,"key":7,"value":1,"local_rev":1}"#);
        assert!(e.to_string().starts_with("field `key`"), "{e}");
        let e = err(r#"{"type":"ping","id":-1}"#);
        assert!(e.to_string().starts_with("field `id`"), "{e}");
    }

    #[test]
    fn local_rev_zero_is_bad_but_any_value_is_fine() {
        let e = err(r#"{"type":"set","id":1,"key":"k","value":1,"local_rev":0}"#);
        assert!(e.to_string().contains("local_rev"), "{e}");
        assert_eq!(e.id, Some(1));
        for v in ["null", "\"x\"", "[1,2]", "{\"a\":1}", "1.5"] {
            let text = format!(r#"{{"type":"set","id":1,"key":"k","value":{v},"local_rev":1}}"#);
            assert!(decode_client_frame(&text).is_ok(), "{text}");
        }
    }

    #[test]
    fn command_name_and_args_shape() {
        let base = |name: &str, args: &str| {
            format!(
                r#"{{"type":"command","id":5,"key":"comments/p","name":"{name}","args":{args},"local_rev":1}}"#
            )
        };
        assert!(
            err(&base("like", r#"{"text":"x"}"#))
                .to_string()
                .contains("`name`")
        );
        assert!(
            err(&base("add_comment", "[]"))
                .to_string()
                .contains("`args`")
        );
        assert!(
            err(&base("add_comment", "{}"))
                .to_string()
                .contains("args.text")
        );
        assert!(
            err(&base("add_comment", r#"{"text":1}"#))
                .to_string()
                .contains("args.text")
        );
        assert_eq!(
            decode_client_frame(&base("edit_comment", r#"{"id":"3","text":"new"}"#)).map(
                |f| match f {
                    ClientFrame::Command { op, .. } => op,
                    other => panic!("{other:?}"),
                }
            ),
            Ok(CommandOp::EditComment {
                id: "3".into(),
                text: "new".into()
            })
        );
        assert!(
            err(&base("edit_comment", r#"{"id":"3"}"#))
                .to_string()
                .contains("args.text")
        );
        assert!(
            err(&base("edit_comment", r#"{"id":"3","text":"x","by":1}"#))
                .to_string()
                .contains("`by`")
        );
        assert!(
            err(&base("add_comment", r#"{"text":"a","b":1}"#))
                .to_string()
                .contains("`b`")
        );
        assert!(
            err(&base("delete_comment", r#"{"id":3}"#))
                .to_string()
                .contains("args.id")
        );
        assert!(decode_client_frame(&base("delete_comment", r#"{"id":"3"}"#)).is_ok());
    }

    /// PROTOCOL.md: a batch malformed as a whole — `writes` not a list, empty, over 64, a
    /// nested batch, repeated item ids, or an item that would be `bad_message` alone — is
    /// one `bad_message` with the batch's id, naming the item.
    #[test]
    fn a_malformed_batch_is_named_with_the_batch_id_and_the_item() {
        let set = |id: u64| {
            format!(r#"{{"type":"set","id":{id},"key":"like/a","value":true,"local_rev":1}}"#)
        };
        let batch = |writes: &str| format!(r#"{{"type":"batch","id":7,"writes":{writes}}}"#);
        let sixty_five: Vec<String> = (1..=65).map(set).collect();
        let sixty_four = format!("[{}]", sixty_five[..64].join(","));
        assert!(decode_client_frame(&batch(&sixty_four)).is_ok());
        let cases = [
            (batch("{}"), "field `writes`"),
            (batch("[]"), "field `writes`"),
            (
                batch(&format!("[{}]", sixty_five.join(","))),
                "field `writes`",
            ),
            (batch(&format!("[{}]", batch("[]"))), "`writes[0]`"),
            (
                batch(&format!("[{},{}]", set(1), batch(&format!("[{}]", set(3))))),
                "`writes[1]`: a batch carries only `set` and `command` frames, not `batch`",
            ),
            (
                batch(r#"[{"type":"ping","id":1}]"#),
                "`writes[0]`: a batch carries only",
            ),
            (
                batch(&format!("[{},{}]", set(2), set(2))),
                "the id 2 appears twice",
            ),
            (
                batch(&format!(
                    r#"[{},{{"type":"set","id":3,"key":"like/a","value":1,"local_rev":0}}]"#,
                    set(1)
                )),
                "`writes[1]`: field `local_rev`",
            ),
            (batch("[5]"), "`writes[0]`: a frame is a JSON object"),
            (
                format!(r#"{{"type":"batch","id":7,"writes":[{}],"x":1}}"#, set(1)),
                "unknown field `x` in `batch`",
            ),
        ];
        for (text, says) in cases {
            let e = err(&text);
            assert_eq!(e.id, Some(7), "{text}");
            assert!(e.to_string().contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn bad_hello_is_marked_as_hello() {
        let e = err(r#"{"type":"hello","protocol":1,"token":"t","device_id":"server","since":0}"#);
        assert!(e.in_hello);
        assert!(e.to_string().contains("device_id"));
        let e = err(r#"{"type":"hello","protocol":1,"token":"t","device_id":"a b","since":0}"#);
        assert!(e.in_hello);
        let e = err(r#"{"type":"hello","protocol":1,"token":"t","device_id":"a"}"#);
        assert_eq!(e.problem, Problem::MissingField("since"));
        let e = err(
            r#"{"type":"hello","protocol":1,"token":"t","device_id":"a","since":1,"since_time":5}"#,
        );
        assert!(e.in_hello);
        assert!(e.to_string().contains("since_time"), "{e}");
        assert!(!err(r#"{"type":"ping"}"#).in_hello);
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let long = "x".repeat(1000);
        let e = err(&format!(r#"{{"type":"ping","id":"{long}"}}"#));
        assert!(e.to_string().len() < 120, "{e}");
    }

    #[test]
    fn server_frames_ignore_unknown_fields_and_codes() {
        let f = decode_server_frame(
            r#"{"type":"push","key":"like/a","value":true,"rev":3,"device_id":"x","local_rev":1,"new":1}"#,
        )
        .unwrap();
        assert_eq!(
            f,
            ServerFrame::Push(Change {
                key: "like/a".into(),
                value: json!(true),
                rev: 3,
                device_id: "x".into(),
                local_rev: 1
            })
        );
        let f = decode_server_frame(
            r#"{"type":"reject","id":1,"key":"k","code":"brand_new","message":"m","current":{"value":1,"rev":2}}"#,
        )
        .unwrap();
        assert!(matches!(
            f,
            ServerFrame::Reject {
                code: ErrorCode::Other,
                current: Some(Current { rev: 2, .. }),
                ..
            }
        ));
        let e = ServerFrame::Error {
            code: ErrorCode::BadMessage,
            message: "m".into(),
            id: None,
        };
        assert_eq!(
            e.to_json(),
            r#"{"type":"error","code":"bad_message","message":"m"}"#
        );
        assert_eq!(decode_server_frame(&e.to_json()).unwrap(), e);
    }
}
