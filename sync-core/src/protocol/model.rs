//! The data model of PROTOCOL.md: which keys exist, their defaults, and the server's
//! validation rules.
//!
//! Client and server both use this module, so they agree by construction on what a key
//! is and what a value means. The engine never validates ranges itself (a rejected value is
//! a lesson the UI shows); it only uses [`Key::default_value`] and [`Key::kind`].

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest post name in a `like/<post>` or `comments/<post>` key.
pub const MAX_POST_LEN: usize = 64;
/// Longest display name, in Unicode scalar values, after trimming.
pub const MAX_DISPLAY_NAME: usize = 40;
/// Longest comment text, in Unicode scalar values, after trimming.
pub const MAX_COMMENT_TEXT: usize = 280;
/// Most comments one post can hold.
pub const MAX_COMMENTS: usize = 100;
/// Longest device id.
pub const MAX_DEVICE_ID_LEN: usize = 64;
/// The `device_id` the server uses for its own writes (a client may not take it).
pub const SERVER_DEVICE_ID: &str = "server";

/// A key of the data model. Parsing a string is the only way to make one, so a `Key` is
/// always valid.
///
/// A post name is an `Arc<str>`, not a `String`: engines, the server and the simulator
/// clone keys into maps, frames and traces on every write, and a shared string makes each
/// clone a reference-count increment instead of an allocation (the simulator's profile,
/// BENCHMARKS.md). Keys are ordered by kind first, in the order of the variants below, and
/// then by post name: not as their strings would sort (`comments/…` comes last).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// `like/<post>`: a bool.
    Like(Arc<str>),
    /// `settings/dark_mode`: a bool.
    DarkMode,
    /// `settings/notifications`: a bool, default `true`.
    Notifications,
    /// `settings/volume`: an integer in 0..=100.
    Volume,
    /// `settings/display_name`: a trimmed string of 1..=40 characters.
    DisplayName,
    /// `comments/<post>`: a list of comments, written only by commands.
    Comments(Arc<str>),
}

/// What kind of value a key holds. The engine uses it to know which intents make sense
/// (a `tap` needs a boolean key; comments are only written by commands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// `true` / `false`.
    Bool,
    /// An integer.
    Integer,
    /// A string.
    Text,
    /// A list of comments.
    Comments,
}

/// Why a string is not a key of the data model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}` is not a key of the data model ({reason})")]
pub struct UnknownKey {
    /// The string that was given.
    pub key: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Why a value does not fit its key (`reject invalid_value`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

impl Key {
    /// Parses `like/post-1`, `settings/volume`, … (PROTOCOL.md, "Data model").
    pub fn parse(s: &str) -> Result<Key, UnknownKey> {
        let unknown = |reason| UnknownKey {
            key: s.to_string(),
            reason,
        };
        match s {
            "settings/dark_mode" => return Ok(Key::DarkMode),
            "settings/notifications" => return Ok(Key::Notifications),
            "settings/volume" => return Ok(Key::Volume),
            "settings/display_name" => return Ok(Key::DisplayName),
            _ => {}
        }
        let (prefix, post) = s.split_once('/').ok_or_else(|| {
            unknown("expected `like/<post>`, `comments/<post>` or `settings/<name>`")
        })?;
        let make: fn(Arc<str>) -> Key = match prefix {
            "like" => Key::Like,
            "comments" => Key::Comments,
            "settings" => return Err(unknown("unknown setting")),
            _ => return Err(unknown("unknown prefix")),
        };
        if !is_valid_post(post) {
            return Err(unknown("a post name is 1..=64 of [a-z0-9_-]"));
        }
        Ok(make(post.into()))
    }

    /// The value a key has before anyone wrote it (read with revision 0).
    pub fn default_value(&self) -> Value {
        match self {
            Key::Like(_) | Key::DarkMode => Value::Bool(false),
            Key::Notifications => Value::Bool(true),
            Key::Volume => Value::from(50),
            Key::DisplayName => Value::String(String::new()),
            Key::Comments(_) => Value::Array(Vec::new()),
        }
    }

    /// The kind of value the key holds.
    pub fn kind(&self) -> ValueKind {
        match self {
            Key::Like(_) | Key::DarkMode | Key::Notifications => ValueKind::Bool,
            Key::Volume => ValueKind::Integer,
            Key::DisplayName => ValueKind::Text,
            Key::Comments(_) => ValueKind::Comments,
        }
    }

    /// Checks a `set` value against the key's rule and returns the value to store (the
    /// display name trimmed). Comments are never `set`: they change only by command.
    pub fn validate_set(&self, value: &Value) -> Result<Value, InvalidValue> {
        let bad = |what: &str| Err(InvalidValue(format!("`{self}` takes {what}, got {value}")));
        match self.kind() {
            ValueKind::Bool => match value {
                Value::Bool(_) => Ok(value.clone()),
                _ => bad("a boolean"),
            },
            ValueKind::Integer => match value.as_i64() {
                Some(v) if (0..=100).contains(&v) => Ok(value.clone()),
                _ => bad("an integer in 0..=100"),
            },
            ValueKind::Text => match value.as_str().map(str::trim) {
                Some(t) if (1..=MAX_DISPLAY_NAME).contains(&t.chars().count()) => {
                    Ok(Value::String(t.to_string()))
                }
                _ => bad("a string of 1..=40 characters after trimming"),
            },
            ValueKind::Comments => Err(InvalidValue(format!(
                "`{self}` is written only by the add_comment, edit_comment and delete_comment commands"
            ))),
        }
    }
}

/// `true` when `post` is 1..=64 of `[a-z0-9_-]`.
pub fn is_valid_post(post: &str) -> bool {
    (1..=MAX_POST_LEN).contains(&post.len())
        && post
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `true` when `id` is a device id a client may use: 1..=64 of `[A-Za-z0-9_-]`, not
/// `server`.
pub fn is_valid_device_id(id: &str) -> bool {
    (1..=MAX_DEVICE_ID_LEN).contains(&id.len())
        && id != SERVER_DEVICE_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Like(post) => write!(f, "like/{post}"),
            Key::DarkMode => f.write_str("settings/dark_mode"),
            Key::Notifications => f.write_str("settings/notifications"),
            Key::Volume => f.write_str("settings/volume"),
            Key::DisplayName => f.write_str("settings/display_name"),
            Key::Comments(post) => write!(f, "comments/{post}"),
        }
    }
}

impl std::str::FromStr for Key {
    type Err = UnknownKey;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Key::parse(s)
    }
}

impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Key::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One comment of a `comments/<post>` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// Assigned by the server: the `rev` of the write that added it, as a decimal string.
    pub id: String,
    /// The trimmed text, 1..=280 characters.
    pub text: String,
    /// The device that wrote it.
    pub device_id: String,
}

/// A command on a `comments/<post>` key (`command` frame, `name` + `args`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", content = "args", rename_all = "snake_case")]
pub enum CommandOp {
    /// `add_comment` with `{"text"}`.
    AddComment {
        /// The comment's text (the server trims it).
        text: String,
    },
    /// `edit_comment` with `{"id","text"}`: the comment keeps its id and author.
    EditComment {
        /// The id of the comment to edit.
        id: String,
        /// Its new text (the server trims it; the same rules as `add_comment`).
        text: String,
    },
    /// `delete_comment` with `{"id"}`.
    DeleteComment {
        /// The id of the comment to delete.
        id: String,
    },
}

impl CommandOp {
    /// Applies the command to a comment list the way the server does, `rev` being the
    /// revision the write will get. Returns the new list, or why the command is refused.
    pub fn apply(
        &self,
        list: &[Comment],
        rev: u64,
        device_id: &str,
    ) -> Result<Vec<Comment>, InvalidValue> {
        match self {
            CommandOp::AddComment { text } => {
                let text = checked_text(text)?;
                if list.len() >= MAX_COMMENTS {
                    return Err(InvalidValue(format!(
                        "a post holds at most {MAX_COMMENTS} comments"
                    )));
                }
                let mut out = list.to_vec();
                out.push(Comment {
                    id: rev.to_string(),
                    text: text.to_string(),
                    device_id: device_id.to_string(),
                });
                Ok(out)
            }
            CommandOp::EditComment { id, text } => {
                let text = checked_text(text)?;
                let Some(pos) = list.iter().position(|c| &c.id == id) else {
                    return Err(InvalidValue(format!("no comment with id `{id}`")));
                };
                let mut out = list.to_vec();
                out[pos].text = text.to_string();
                Ok(out)
            }
            CommandOp::DeleteComment { id } => {
                let Some(pos) = list.iter().position(|c| &c.id == id) else {
                    return Err(InvalidValue(format!("no comment with id `{id}`")));
                };
                let mut out = list.to_vec();
                out.remove(pos);
                Ok(out)
            }
        }
    }
}

/// A comment's text, trimmed, if it has 1..=280 characters.
fn checked_text(text: &str) -> Result<&str, InvalidValue> {
    let text = text.trim();
    if (1..=MAX_COMMENT_TEXT).contains(&text.chars().count()) {
        Ok(text)
    } else {
        Err(InvalidValue(
            "a comment is 1..=280 characters after trimming".into(),
        ))
    }
}

/// Reads a comment list out of a JSON value; anything that is not a well-formed list reads
/// as empty (the server only ever stores well-formed lists).
pub fn comments_from_value(value: &Value) -> Vec<Comment> {
    serde_json::from_value(value.clone()).unwrap_or_default()
}

/// Turns a comment list into the JSON value stored under a `comments/<post>` key.
pub fn comments_to_value(list: &[Comment]) -> Value {
    serde_json::to_value(list).unwrap_or(Value::Array(Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_round_trip_and_reject_what_is_outside_the_model() {
        for s in [
            "like/post-1",
            "settings/dark_mode",
            "settings/notifications",
            "settings/volume",
            "settings/display_name",
            "comments/a_b-9",
        ] {
            assert_eq!(Key::parse(s).unwrap().to_string(), s);
        }
        for s in [
            "like/",
            "like/Post",
            "like/a/b",
            "settings/theme",
            "foo/bar",
            "volume",
            &format!("like/{}", "a".repeat(65)),
        ] {
            assert!(Key::parse(s).is_err(), "{s} should be unknown");
        }
    }

    #[test]
    fn defaults_follow_the_table() {
        assert_eq!(Key::parse("like/x").unwrap().default_value(), json!(false));
        assert_eq!(Key::Notifications.default_value(), json!(true));
        assert_eq!(Key::Volume.default_value(), json!(50));
        assert_eq!(Key::DisplayName.default_value(), json!(""));
        assert_eq!(Key::Comments("x".into()).default_value(), json!([]));
    }

    #[test]
    fn set_validation_and_normalisation() {
        assert_eq!(Key::Volume.validate_set(&json!(100)).unwrap(), json!(100));
        assert!(Key::Volume.validate_set(&json!(101)).is_err());
        assert!(Key::Volume.validate_set(&json!(-1)).is_err());
        assert!(Key::Volume.validate_set(&json!(5.5)).is_err());
        assert!(Key::DarkMode.validate_set(&json!("true")).is_err());
        assert_eq!(
            Key::DisplayName.validate_set(&json!("  Ana ")).unwrap(),
            json!("Ana")
        );
        assert!(Key::DisplayName.validate_set(&json!("   ")).is_err());
        let forty = "é".repeat(40);
        assert!(Key::DisplayName.validate_set(&json!(forty)).is_ok());
        assert!(
            Key::DisplayName
                .validate_set(&json!("é".repeat(41)))
                .is_err()
        );
        assert!(Key::Comments("p".into()).validate_set(&json!([])).is_err());
    }

    #[test]
    fn comment_commands() {
        let add = CommandOp::AddComment {
            text: " hi ".into(),
        };
        let list = add.apply(&[], 7, "phone").unwrap();
        assert_eq!(list[0].id, "7");
        assert_eq!(list[0].text, "hi");
        let del = CommandOp::DeleteComment { id: "7".into() };
        assert!(del.apply(&list, 8, "phone").unwrap().is_empty());
        assert!(del.apply(&[], 8, "phone").is_err());
        let full: Vec<Comment> = (0..100)
            .map(|i| Comment {
                id: i.to_string(),
                text: "x".into(),
                device_id: "d".into(),
            })
            .collect();
        assert!(add.apply(&full, 9, "d").is_err());
        assert!(
            CommandOp::AddComment { text: "  ".into() }
                .apply(&[], 1, "d")
                .is_err()
        );
    }

    #[test]
    fn device_ids() {
        assert!(is_valid_device_id("phone-1_A"));
        assert!(!is_valid_device_id("server"));
        assert!(!is_valid_device_id(""));
        assert!(!is_valid_device_id("a b"));
        assert!(!is_valid_device_id(&"a".repeat(65)));
    }
}
