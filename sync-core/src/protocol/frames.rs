//! The frames of PROTOCOL.md as Rust types.
//!
//! Encoding uses serde (internally tagged by `type`). Client frames are *decoded* by hand in
//! [`super::decode`], because the server must be strict and name the offending field; server
//! frames are decoded by serde and ignore unknown fields, so the server can grow.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::codes::ErrorCode;
use super::model::CommandOp;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// The most writes one `batch` frame may carry (PROTOCOL.md, "Several writes in one
/// frame").
pub const MAX_BATCH: usize = 64;

/// How a `hello` asks to catch up: by revision (`since`) or by the server's change times
/// (`since_time`, PROTOCOL.md "Catching up by clock"). A frame carries exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CatchUp {
    /// Every change after this revision: the contiguous cursor (0 for none).
    #[serde(rename = "since")]
    Since(u64),
    /// Every key whose last change is later than this server time, in ms since the Unix
    /// epoch (taken from the device's own clock, so a skewed clock misses changes).
    #[serde(rename = "since_time")]
    SinceTime(u64),
}

/// A frame a device sends to the server.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// The first frame: authenticate and ask for every change after `since`.
    Hello {
        /// Always [`PROTOCOL_VERSION`] for this crate.
        protocol: u64,
        /// The user's token.
        token: String,
        /// 1..=64 of `[A-Za-z0-9_-]`, not `server`.
        device_id: String,
        /// `since` or `since_time`.
        #[serde(flatten)]
        catch_up: CatchUp,
    },
    /// Write a value (last write wins).
    Set {
        /// Request id, unique per connection.
        id: u64,
        /// The key (a string: the server reports unknown keys itself).
        key: String,
        /// Any JSON; the server validates it against the key.
        value: Value,
        /// The device's revision for this key (≥ 1).
        local_rev: u64,
    },
    /// Run a command on a comments key.
    Command {
        /// Request id, unique per connection.
        id: u64,
        /// A `comments/<post>` key.
        key: String,
        /// `name` and `args`.
        #[serde(flatten)]
        op: CommandOp,
        /// The device's revision for this key (≥ 1).
        local_rev: u64,
    },
    /// Heartbeat.
    Ping {
        /// Request id.
        id: u64,
    },
    /// Re-authenticate the open connection with a new token of the same user.
    Auth {
        /// Request id.
        id: u64,
        /// The new token.
        token: String,
    },
    /// Several writes in one frame: each answered as if sent alone, in list order, then
    /// `batch_done`; the accepted ones committed in one transaction.
    Batch {
        /// Request id of the batch (each write has its own too).
        id: u64,
        /// 1..=[`MAX_BATCH`] `Set` / `Command` frames with distinct ids.
        writes: Vec<ClientFrame>,
    },
}

impl ClientFrame {
    /// The request id, for frames that have one.
    pub fn id(&self) -> Option<u64> {
        match self {
            ClientFrame::Hello { .. } => None,
            ClientFrame::Set { id, .. }
            | ClientFrame::Command { id, .. }
            | ClientFrame::Ping { id }
            | ClientFrame::Auth { id, .. }
            | ClientFrame::Batch { id, .. } => Some(*id),
        }
    }

    /// The writes the frame carries: itself for a `set` or `command`, its `writes` for a
    /// `batch`, none for the others.
    pub fn writes(&self) -> &[ClientFrame] {
        match self {
            ClientFrame::Set { .. } | ClientFrame::Command { .. } => std::slice::from_ref(self),
            ClientFrame::Batch { writes, .. } => writes,
            ClientFrame::Hello { .. } | ClientFrame::Ping { .. } | ClientFrame::Auth { .. } => &[],
        }
    }

    /// `true` for a `set` or a `command`: what a `batch` may carry.
    pub fn is_write(&self) -> bool {
        matches!(self, ClientFrame::Set { .. } | ClientFrame::Command { .. })
    }

    /// The frame's `type`, for logs, the wire view and exports.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientFrame::Hello { .. } => "hello",
            ClientFrame::Set { .. } => "set",
            ClientFrame::Command { .. } => "command",
            ClientFrame::Ping { .. } => "ping",
            ClientFrame::Auth { .. } => "auth",
            ClientFrame::Batch { .. } => "batch",
        }
    }

    /// The JSON text of the frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("client frames always serialize")
    }
}

/// One key's state as the server sends it: in `push` frames and in `welcome.changes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The key.
    pub key: String,
    /// The stored value.
    pub value: Value,
    /// The revision the write got.
    pub rev: u64,
    /// Who wrote it (`server` for the server itself).
    pub device_id: String,
    /// The writer's `local_rev` (0 for the server).
    pub local_rev: u64,
}

/// The value and revision stored for a key, sent with a `reject` so the device can roll
/// back to the truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Current {
    /// The stored value.
    pub value: Value,
    /// Its revision.
    pub rev: u64,
}

/// A frame the server sends to a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The answer to a good `hello`.
    Welcome {
        /// The user of the token.
        user: String,
        /// The user's current revision.
        rev: u64,
        /// Every key whose revision is above `since` (everything when `reset`).
        changes: Vec<Change>,
        /// The server lost history the device had seen: take `changes` as the whole truth.
        reset: bool,
    },
    /// A write was accepted.
    Ack {
        /// The request's id.
        id: u64,
        /// The key.
        key: String,
        /// The value now stored (may differ from the one sent: normalised).
        value: Value,
        /// The revision the write got.
        rev: u64,
        /// `true` when this repeats the answer to an already applied `local_rev`.
        #[serde(default)]
        duplicate: bool,
    },
    /// A write was refused; nothing changed.
    Reject {
        /// The request's id.
        id: u64,
        /// The key.
        key: String,
        /// Why.
        code: ErrorCode,
        /// For people.
        message: String,
        /// What is stored for the key, or `None` when nothing is (or the key is unknown).
        current: Option<Current>,
    },
    /// A key changed (sent to every device of the user, the writer included).
    Push(Change),
    /// The heartbeat's answer.
    Pong {
        /// The ping's id.
        id: u64,
    },
    /// An `auth` succeeded: the connection runs on the new token.
    Authed {
        /// The `auth`'s id.
        id: u64,
    },
    /// Every write of a `batch` has been answered (the answers came before this).
    BatchDone {
        /// The batch's id.
        id: u64,
        /// How many writes were answered.
        count: u64,
    },
    /// A frame could not be handled.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// For people.
        message: String,
        /// The bad frame's id, when it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
}

impl ServerFrame {
    /// The JSON text of the frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server frames always serialize")
    }

    /// The frame's `type`, for logs and the wire view.
    pub fn type_name(&self) -> &'static str {
        match self {
            ServerFrame::Welcome { .. } => "welcome",
            ServerFrame::Ack { .. } => "ack",
            ServerFrame::Reject { .. } => "reject",
            ServerFrame::Push(_) => "push",
            ServerFrame::Pong { .. } => "pong",
            ServerFrame::Authed { .. } => "authed",
            ServerFrame::BatchDone { .. } => "batch_done",
            ServerFrame::Error { .. } => "error",
        }
    }
}

/// One line per frame, for traces, logs and the wire view.
impl std::fmt::Display for ClientFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientFrame::Hello {
                device_id,
                catch_up: CatchUp::Since(since),
                ..
            } => write!(f, "hello {device_id} since {since}"),
            ClientFrame::Hello {
                device_id,
                catch_up: CatchUp::SinceTime(ms),
                ..
            } => write!(f, "hello {device_id} since_time {ms}"),
            ClientFrame::Set {
                id,
                key,
                value,
                local_rev,
            } => write!(f, "set #{id} {key} = {value} (local_rev {local_rev})"),
            ClientFrame::Command {
                id,
                key,
                op,
                local_rev,
            } => match op {
                CommandOp::AddComment { text } => write!(
                    f,
                    "command #{id} {key} add_comment {:?} (local_rev {local_rev})",
                    text
                ),
                CommandOp::EditComment { id: cid, text } => write!(
                    f,
                    "command #{id} {key} edit_comment {cid} {:?} (local_rev {local_rev})",
                    text
                ),
                CommandOp::DeleteComment { id: cid } => write!(
                    f,
                    "command #{id} {key} delete_comment {cid} (local_rev {local_rev})"
                ),
            },
            ClientFrame::Ping { id } => write!(f, "ping #{id}"),
            // The token is a secret: traces and logs never show it.
            ClientFrame::Auth { id, .. } => write!(f, "auth #{id}"),
            // The first writes only: a trace line stays a line.
            ClientFrame::Batch { id, writes } => {
                write!(f, "batch #{id} of {}:", writes.len())?;
                for (i, w) in writes.iter().take(2).enumerate() {
                    write!(f, "{} {w}", if i == 0 { "" } else { ";" })?;
                }
                match writes.len().saturating_sub(2) {
                    0 => Ok(()),
                    more => write!(f, "; and {more} more"),
                }
            }
        }
    }
}

/// One line per frame, for traces, logs and the wire view.
impl std::fmt::Display for ServerFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerFrame::Welcome {
                rev,
                changes,
                reset,
                ..
            } => write!(
                f,
                "welcome rev {rev}, {} change(s){}",
                changes.len(),
                if *reset { ", reset" } else { "" }
            ),
            ServerFrame::Ack {
                id,
                key,
                value,
                rev,
                duplicate,
            } => write!(
                f,
                "ack #{id} {key} = {value} rev {rev}{}",
                if *duplicate { " (duplicate)" } else { "" }
            ),
            ServerFrame::Reject { id, key, code, .. } => write!(f, "reject #{id} {key} {code}"),
            ServerFrame::Push(c) => write!(
                f,
                "push {} = {} rev {} from {} (local_rev {})",
                c.key, c.value, c.rev, c.device_id, c.local_rev
            ),
            ServerFrame::Pong { id } => write!(f, "pong #{id}"),
            ServerFrame::Authed { id } => write!(f, "authed #{id}"),
            ServerFrame::BatchDone { id, count } => {
                write!(f, "batch_done #{id}, {count} answered")
            }
            ServerFrame::Error { code, message, .. } => write!(f, "error {code}: {message}"),
        }
    }
}
