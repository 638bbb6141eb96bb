//! The running server's control API: what the app, the admin socket and tests may ask of
//! it, and what the connection tasks tell the core task. Every control goes through the
//! core task, in order with the frames, so a fault lands between two frames exactly.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use serde_json::Value;
use sync_core::protocol::{ErrorCode, Key};
use tokio::sync::{mpsc, oneshot};

use super::outbound::QueueTx;
use crate::core::http::{HttpAnswer, HttpRequest};
use crate::core::{ConnId, Inbound};
use crate::link::{Fault, Pair};

/// The answer to a control: `Err` says what was wrong, in words for a person.
pub type Reply<T = ()> = oneshot::Sender<Result<T, String>>;

/// What a connection task (or the server handle) sends to the core task.
pub(super) enum ToCore {
    /// A device socket was upgraded.
    Open {
        id: ConnId,
        source: IpAddr,
        out: QueueTx,
        /// Why the core task ended the connection, once it does (see [`Ending`]).
        end: EndTx,
        link: mpsc::UnboundedSender<LinkMessage>,
        /// When something last arrived on the socket (µs since the server started).
        activity: Arc<AtomicU64>,
    },
    /// A frame read (frames of a connection arrive in order).
    Frame(ConnId, Inbound),
    Closed(ConnId),
    /// An admin socket's `auth`: may `source` try, and was the token right?
    AdminAuth {
        source: IpAddr,
        ok: bool,
        reply: oneshot::Sender<Result<(), ErrorCode>>,
    },
    Control(Control),
    /// A polling request (`GET /sync/changes`, `POST /sync/write`), and where its answer
    /// goes.
    Http(HttpRequest, oneshot::Sender<HttpAnswer>),
    /// Every connection gets close 1001 after what is queued before it; then the reply.
    Shutdown(oneshot::Sender<()>),
}

/// Why the core task ended a connection, told to its connection task at once: the task may
/// be stuck in a write to a client that reads nothing, and must not wait there for ever.
/// From then on, each write the connection still makes (the frames queued before the end,
/// and the goodbye) has [`GOODBYE_GRACE`]; a client that takes nothing for that long is
/// dropped without one. Frames a tester holds on the down link wait for the tester, as
/// before the end.
///
/// [`GOODBYE_GRACE`]: super::GOODBYE_GRACE
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// The queue overflowed: finish the write in hand, then `error resync` and close 4009.
    Overflow,
    /// The core closed the connection (idle, rate limit, token, admin `disconnect`,
    /// shutdown): its close frame is queued; write what comes before it, then the close.
    Closed,
}

/// The core task's end of a connection's [`Ending`]: told once; let go of without a word
/// on a restart.
pub(super) struct EndTx {
    end: Option<oneshot::Sender<Ending>>,
    /// Never sent: dropped with this, which tells a connection already ended that the
    /// server let go of it too (a restart).
    _held: oneshot::Sender<()>,
}

/// The connection task's end of its [`Ending`].
pub(super) struct EndRx {
    end: oneshot::Receiver<Ending>,
    held: oneshot::Receiver<()>,
    ended: bool,
}

/// A connection's ending signal. Two one-shot channels rather than a watch: they are
/// polled in place in every turn of the connection's loop, where a watch's `changed`
/// registers and unregisters a waiter each time (measured: 10 % more server CPU per
/// write in `loadgen`).
pub(super) fn ending() -> (EndTx, EndRx) {
    let (end_tx, end) = oneshot::channel();
    let (held_tx, held) = oneshot::channel();
    let tx = EndTx {
        end: Some(end_tx),
        _held: held_tx,
    };
    let rx = EndRx {
        end,
        held,
        ended: false,
    };
    (tx, rx)
}

impl EndTx {
    /// Tells the connection why it ended, unless it was told already; `true` if this is
    /// the first ending.
    pub(super) fn send(&mut self, why: Ending) -> bool {
        self.end.take().is_some_and(|end| {
            let _ = end.send(why);
            true
        })
    }
}

impl EndRx {
    /// Why the core ended the connection, the first time it did; `None` once the core
    /// task let go of it without a word (a restart). Cancel-safe.
    pub(super) async fn recv(&mut self) -> Option<Ending> {
        if !self.ended {
            let why = (&mut self.end).await.ok()?;
            self.ended = true;
            return Some(why);
        }
        let _ = (&mut self.held).await;
        None
    }
}

/// A fault command for a connection's links, with the answer to send back.
pub(super) type LinkMessage = (LinkCommand, Option<Reply>);

/// What a device's links are asked: a fault (the simulator's model, applied on real
/// time), or the frames they hold.
#[derive(Debug)]
pub enum LinkCommand {
    /// A fault.
    Fault(Fault),
    /// The frames waiting in each direction, oldest first, one line each.
    Queued(oneshot::Sender<QueuedFrames>),
}

impl From<Fault> for LinkCommand {
    fn from(fault: Fault) -> LinkCommand {
        LinkCommand::Fault(fault)
    }
}

/// The frames waiting on a connection's links, one line each (oldest first), per direction.
pub type QueuedFrames = Pair<Vec<String>>;

/// Controls of the running server (the admin API and the app use them). Each names a
/// user: one the server has no token for is an error.
pub enum Control {
    /// The next write of the user to the key is rejected (`forced`). `user` may be left
    /// out only while the server has one user.
    RejectNext {
        /// The user (optional with one user).
        user: Option<String>,
        /// The key.
        key: Key,
        /// The outcome.
        reply: Reply,
    },
    /// The user's token is rotated: `token` is valid at once, the old ones expire at once
    /// (PROTOCOL.md, "Re-authenticating an open connection").
    RotateToken {
        /// The user.
        user: String,
        /// The new token.
        token: String,
        /// The outcome.
        reply: Reply,
    },
    /// A write by the server itself.
    ServerSet {
        /// The user.
        user: String,
        /// The key.
        key: Key,
        /// The value.
        value: Value,
        /// The outcome.
        reply: Reply,
    },
    /// Close a device's connection.
    Disconnect {
        /// The user.
        user: String,
        /// The device.
        device_id: String,
        /// The outcome (an error if the device is not connected).
        reply: Reply,
    },
    /// A fault on a device's links.
    Link {
        /// The user.
        user: String,
        /// The device.
        device_id: String,
        /// What to do.
        command: LinkCommand,
        /// The outcome.
        reply: Reply,
    },
    /// `block_websocket`: while on, upgrades to `/sync` are answered 503, and turning it
    /// on closes every open device connection with 1001; HTTP and `/admin` stay up.
    BlockWebsocket {
        /// On or off.
        on: bool,
        /// The outcome.
        reply: Reply,
    },
    /// The server restarts as after a crash: every connection drops without a close frame
    /// (devices see a lost connection and reconnect), and the core reloads from the store.
    /// Device link settings survive: they belong to the network, not the server.
    Restart {
        /// The outcome (an error if the store cannot be read back).
        reply: Reply,
    },
    /// A snapshot of the server's state for a user.
    Inspect {
        /// The user.
        user: String,
        /// The answer.
        reply: Reply<Inspection>,
    },
}

/// The server's state for one user, as the server panel shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inspection {
    /// What is stored.
    pub data: crate::core::store::UserData,
    /// Revisions assigned to the user's writes (theirs and the server's), across restarts.
    pub writes: u64,
    /// Connected devices of the user.
    pub devices: Vec<String>,
    /// Keys whose next write of the user is to be rejected (`forced`): armed, not yet fired.
    pub forced: Vec<Key>,
    /// `block_websocket` is on: upgrades are refused, devices poll.
    pub websocket_blocked: bool,
}
