//! The observable events of a device engine: everything the panes, the wire view, the
//! timeline and the scenario trace show. Each names the rule that produced it.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::optimistic::SendKind;
use crate::protocol::{CatchUp, ErrorCode, Key};

use super::connection::ConnectionState;

/// An event with the time it happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// When (the `now` of the input that caused it).
    pub at: Duration,
    /// What happened.
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A user intent changed the value on screen at once (optimistic write).
    OptimisticWrite {
        /// The key.
        key: Key,
        /// The value now shown.
        value: Value,
        /// The intent's local revision.
        local_rev: u64,
    },
    /// A `set` or `command` frame was handed to the link.
    RequestSent {
        /// The key.
        key: Key,
        /// The frame id (shared with `hello` and `ping`, so it runs ahead of `number`).
        id: u64,
        /// The device's request count with this one: the `requests` counter's value.
        number: u64,
        /// The value sent (for a command: the optimistic list).
        value: Value,
        /// Its local revision.
        local_rev: u64,
        /// First, follow-up, resend, or sent after a failure.
        #[serde(serialize_with = "ser_kind")]
        kind: SendKind,
        /// The id of the `batch` frame that carried it, when one did.
        #[serde(skip_serializing_if = "Option::is_none")]
        batch: Option<u64>,
    },
    /// Two or more requests (their `RequestSent` events just before) left in one `batch`
    /// frame.
    BatchSent {
        /// The batch's frame id.
        id: u64,
        /// The keys of its writes, in list order.
        keys: Vec<Key>,
    },
    /// The token source handed the device a new token.
    TokenReceived,
    /// The server said the connection's token expired: writes wait for a new one.
    TokenExpired,
    /// A write was refused `token_expired`: nothing applied, the intent kept, resent after
    /// `authed`.
    KeptForToken {
        /// The key.
        key: Key,
    },
    /// `auth` with the new token was sent.
    AuthSent {
        /// Its frame id.
        id: u64,
    },
    /// `authed`: the connection runs on the new token.
    Authed {
        /// The `auth`'s frame id.
        id: u64,
    },
    /// The server answered every write of a batch (`batch_done`).
    BatchDone {
        /// The batch's frame id.
        id: u64,
        /// How many writes the server answered.
        count: u64,
    },
    /// A request is due but the device is not connected (or its token expired): it goes
    /// out after `welcome` (or `authed`).
    RequestQueued {
        /// The key.
        key: Key,
    },
    /// An ack arrived while the user had acted since: it is dropped and a follow-up sent.
    FollowUpDecided {
        /// The key.
        key: Key,
        /// The dropped ack's revision.
        rev: u64,
    },
    /// The server's answer was applied.
    ResponseApplied {
        /// The key.
        key: Key,
        /// The stored value (may be normalised).
        value: Value,
        /// Its revision.
        rev: u64,
    },
    /// An ack with a revision lower than the known one was not applied.
    ResponseStale {
        /// The key.
        key: Key,
        /// The ack's revision.
        rev: u64,
        /// The known revision.
        known: u64,
    },
    /// A push (or catch-up change) was applied.
    PushApplied {
        /// The key.
        key: Key,
        /// The value.
        value: Value,
        /// Its revision.
        rev: u64,
        /// The writer.
        from: String,
        /// The writer's local revision (0 for the server).
        local_rev: u64,
        /// The writer is this device: its own echo, applied (under `sync-with-push`, it
        /// arrived before its ack; `naive` applies every echo).
        own: bool,
    },
    /// A push (or catch-up change) older than the known revision was ignored.
    PushStale {
        /// The key.
        key: Key,
        /// Its revision.
        rev: u64,
        /// The known revision.
        known: u64,
    },
    /// A push with the known revision (typically the own echo after its ack) was ignored.
    PushAlreadySeen {
        /// The key.
        key: Key,
        /// Its revision.
        rev: u64,
    },
    /// The echo of an older request of this device: only an acknowledgement.
    PushTakenAsAck {
        /// The key.
        key: Key,
        /// Its revision.
        rev: u64,
        /// The local revision of the request it acknowledges.
        local_rev: u64,
    },
    /// `sync` ignores its own echoes.
    OwnEchoIgnored {
        /// The key.
        key: Key,
        /// Its revision.
        rev: u64,
    },
    /// After reconnecting, another device's newer change superseded an unanswered intent:
    /// nothing is sent.
    Superseded {
        /// The key.
        key: Key,
    },
    /// The server refused a write.
    Rejected {
        /// The key.
        key: Key,
        /// Why.
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
    /// A rejected optimistic change was rolled back.
    RolledBack {
        /// The key.
        key: Key,
        /// The value that was shown.
        from: Value,
        /// The value shown now.
        to: Value,
    },
    /// The screen went back: the answer or change just applied was older than what the
    /// device already had (an older request than its newest intent, or a revision lower
    /// than the known one), and it changed the value shown.
    Regressed {
        /// The key.
        key: Key,
        /// The value shown before.
        from: Value,
        /// The older value shown now.
        to: Value,
    },
    /// A comment was refused because another comment on the post is pending.
    CommandRefused {
        /// The key.
        key: Key,
    },
    /// The server sent an `error` frame, or something could not be handled.
    Error {
        /// The code, when the server sent one.
        code: Option<ErrorCode>,
        /// What happened.
        message: String,
    },
    /// The connection changed state.
    Connection {
        /// The new state.
        state: ConnectionState,
    },
    /// The WebSocket upgrade was refused with an HTTP status.
    UpgradeRefused {
        /// The status (503 while the server blocks WebSockets).
        status: u16,
        /// Refused attempts in a row, this one included.
        in_a_row: u32,
    },
    /// A poll (`GET /sync/changes`) was handed to the link.
    PollSent {
        /// Its request id.
        id: u64,
        /// The cursor it asks from.
        #[serde(flatten)]
        catch_up: CatchUp,
    },
    /// A poll's answer was applied (its changes by the push rules).
    PollAnswered {
        /// Its request id.
        id: u64,
        /// The user's revision.
        rev: u64,
        /// How many changes it carried.
        changes: usize,
        /// Whether the server lost history (`reset`).
        reset: bool,
    },
    /// A poll got no usable answer; the next goes at the interval.
    PollFailed {
        /// Its request id.
        id: u64,
        /// Why.
        why: String,
    },
    /// A write over HTTP got no answer: what it carried goes out again after the next
    /// successful poll.
    HttpWriteFailed {
        /// Its request id (the frame's).
        id: u64,
        /// Why.
        why: String,
    },
    /// A `welcome` was handled.
    CaughtUp {
        /// The user's revision.
        rev: u64,
        /// How many changes it carried.
        changes: usize,
        /// Whether the server lost history (`reset`).
        reset: bool,
    },
}

fn ser_kind<S: serde::Serializer>(k: &SendKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(send_kind_name(*k))
}

/// A short name for a [`SendKind`].
pub fn send_kind_name(k: SendKind) -> &'static str {
    match k {
        SendKind::First => "first",
        SendKind::FollowUp => "follow-up",
        SendKind::Resend => "resend",
        SendKind::AfterFailure => "after-failure",
        SendKind::Queued => "queued",
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use EventKind::*;
        match self {
            OptimisticWrite {
                key,
                value,
                local_rev,
            } => {
                write!(f, "intent {key} = {value} (local_rev {local_rev})")
            }
            RequestSent {
                key,
                id,
                number,
                value,
                local_rev,
                kind,
                batch,
            } => {
                write!(
                    f,
                    "request {number} {key} = {value} (local_rev {local_rev}, {}, frame id {id}",
                    send_kind_name(*kind)
                )?;
                match batch {
                    Some(batch) => write!(f, ", in batch {batch})"),
                    None => write!(f, ")"),
                }
            }
            BatchSent { id, keys } => {
                write!(f, "batch {id} sent: {} writes in one frame", keys.len())
            }
            BatchDone { id, count } => write!(f, "batch {id} done: {count} answered"),
            TokenReceived => write!(f, "the token source handed over a new token"),
            TokenExpired => write!(f, "token expired: writes wait for a new one"),
            KeptForToken { key } => write!(
                f,
                "{key} refused: token expired (nothing applied; kept, resent after auth)"
            ),
            AuthSent { id } => write!(f, "auth sent with the new token (frame id {id})"),
            Authed { id } => write!(f, "authed (frame id {id}): the connection goes on"),
            RequestQueued { key } => write!(
                f,
                "request for {key} waits: no connection, or its token expired"
            ),
            FollowUpDecided { key, rev } => {
                write!(
                    f,
                    "ack {key} rev {rev} dropped: a follow-up carries the newer intent"
                )
            }
            ResponseApplied { key, value, rev } => {
                write!(f, "ack applied {key} = {value} rev {rev}")
            }
            ResponseStale { key, rev, known } => {
                write!(f, "ack {key} rev {rev} stale (known {known})")
            }
            PushApplied {
                key,
                value,
                rev,
                local_rev,
                own: true,
                ..
            } => {
                write!(
                    f,
                    "own echo applied {key} = {value} rev {rev} (local_rev {local_rev})"
                )
            }
            PushApplied {
                key,
                value,
                rev,
                from,
                local_rev,
                own: false,
            } => {
                write!(
                    f,
                    "push applied {key} = {value} rev {rev} from {from} (local_rev {local_rev})"
                )
            }
            PushStale { key, rev, known } => {
                write!(f, "push {key} rev {rev} stale (known {known})")
            }
            PushAlreadySeen { key, rev } => write!(f, "push {key} rev {rev} already seen"),
            PushTakenAsAck {
                key,
                rev,
                local_rev,
            } => {
                write!(
                    f,
                    "own echo {key} rev {rev} taken as ack of local_rev {local_rev}"
                )
            }
            OwnEchoIgnored { key, rev } => write!(f, "own echo {key} rev {rev} ignored"),
            Superseded { key } => write!(f, "intent for {key} superseded by another device"),
            Rejected { key, code, message } => write!(f, "rejected {key}: {code} ({message})"),
            RolledBack { key, from, to } => write!(f, "rolled back {key}: {from} -> {to}"),
            Regressed { key, from, to } => {
                write!(f, "screen went back {key}: {from} -> {to}")
            }
            CommandRefused { key } => write!(f, "comment refused: another on {key} is pending"),
            Error {
                code: Some(code),
                message,
            } => write!(f, "error {code}: {message}"),
            Error {
                code: None,
                message,
            } => write!(f, "error: {message}"),
            Connection { state } => write!(f, "connection: {state}"),
            UpgradeRefused { status, in_a_row } => write!(
                f,
                "WebSocket upgrade refused: HTTP {status} ({in_a_row} in a row)"
            ),
            PollSent { id, catch_up } => match catch_up {
                CatchUp::Since(n) => write!(f, "poll {id} sent: changes since rev {n}"),
                CatchUp::SinceTime(ms) => write!(f, "poll {id} sent: changes since time {ms}"),
            },
            PollAnswered {
                id,
                rev,
                changes,
                reset,
            } => write!(
                f,
                "poll {id} answered: rev {rev}, {changes} change(s){}",
                if *reset { ", reset" } else { "" }
            ),
            PollFailed { id, why } => write!(f, "poll {id} failed: {why}"),
            HttpWriteFailed { id, why } => write!(
                f,
                "write {id} over HTTP failed: {why}; resent after the next poll"
            ),
            CaughtUp {
                rev,
                changes,
                reset,
            } => write!(
                f,
                "welcome rev {rev}, {changes} change(s){}",
                if *reset { ", reset" } else { "" }
            ),
        }
    }
}
