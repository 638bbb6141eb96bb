//! The live server: the sans-IO [`Core`] behind real WebSockets (tokio + tokio-tungstenite).
//!
//! Split by job, as tokio's mini-redis splits its server:
//!
//! | module | job |
//! |---|---|
//! | `accept` | the listener; the upgrade's checks (path, `Origin`, connection cap, handshake deadline); shutdown |
//! | `connection` | one task per device socket: reads frames to the core task, writes what the core queued, through the connection's links |
//! | `core_task` | the one task that owns the core: batches input (group commit), routes answers, runs timers and controls |
//! | `outbound` | a connection's outbound queue, bounded in frames and bytes: the only back-pressure |
//! | `links` | a connection's two fault-injection links, on real time |
//! | `control` | the control API: [`Control`], [`LinkCommand`], [`Inspection`] |
//! | `admin` | the admin WebSocket, which speaks [`Control`] as JSON |
//!
//! **One client never hurts another.** The core task never waits for a client: a frame
//! that does not fit in a connection's queue closes that connection with 4009 (`resync`;
//! it catches up when it reconnects), and once the server ended a connection, whatever
//! the reason, a client that reads nothing at all is dropped after [`GOODBYE_GRACE`].
//! Idleness is judged by when frames arrived, stamped by the connection task as it reads,
//! never by when the core got round to them. Memory is bounded by the limits in
//! [`ServerConfig`]: connections, and bytes per connection.
//!
//! Connection handlers are generic over `AsyncRead + AsyncWrite`, so the same code runs on
//! TCP and in simulated-network tests.

mod accept;
mod admin;
mod connection;
mod control;
mod core_task;
mod links;
mod outbound;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use sync_core::protocol::Key;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::core::Core;
use crate::core::guard::MAX_AUTH_FAILURES;
use crate::core::store::{Store, StoreError};
use crate::link::Fault;

pub use accept::{SHUTDOWN_GRACE, allowed_origin};
pub use control::{Control, Inspection, LinkCommand, QueuedFrames, Reply};
pub use core_task::MAX_BATCH;
pub use outbound::{MAX_BYTES as OUTBOUND_BYTES, MAX_FRAMES as OUTBOUND_QUEUE};

use control::ToCore;

/// Largest frame and message a client may send.
pub const MAX_FRAME: usize = 64 << 10;
/// tungstenite's read buffer per connection. Its default, 128 KiB, is zero-filled on every
/// read (tungstenite-rs issue #547): with frames of a few hundred bytes that memset was
/// the server's largest cost in `loadgen`. Larger frames still arrive, over several reads.
/// 4 KiB rather than 8: it is most of what an idle connection costs (14.5 KiB at 4 KiB,
/// 18.5 KiB at 8, under jemalloc), and `loadgen` measured no throughput difference.
pub const READ_BUFFER: usize = 4 << 10;
/// tungstenite's write buffer per connection: frames fed before a flush collect here, and
/// past this size each one is written at once. Its default, 128 KiB, is memory a client
/// that stops reading holds beside its queue's 4 MiB; a batch of the core's answers to one
/// connection is a few KiB, so 16 KiB still writes each in one go.
pub const WRITE_BUFFER: usize = 16 << 10;
/// The HTTP upgrade must finish within this long (slowloris).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Once the core task has ended a connection (closed it, or found its queue overflowed),
/// how long each write the connection still makes may take: the frames sent before the
/// end, then the goodbye (its close frame; after an overflow, `error resync` and close
/// 4009). A client that takes nothing for this long is dropped without a goodbye: its
/// socket is full, and waiting longer would let a client that never reads hold a socket
/// and a task for ever.
pub const GOODBYE_GRACE: Duration = Duration::from_secs(10);
/// Messages waiting for the core task at most; connection tasks wait to hand over more.
/// Long enough that the core always finds a full batch (group commit): at 256, `loadgen`
/// measured 0.54–0.79× the durable writes/s of 4096, interleaved (BENCHMARKS.md).
pub const INPUT_QUEUE: usize = 4096;
/// Open connections at most, by default (PROTOCOL.md, "Memory").
pub const MAX_CONNECTIONS: usize = 10_000;

/// How to run a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen (127.0.0.1 unless told otherwise).
    pub addr: SocketAddr,
    /// Token → user; empty for the demo user.
    pub tokens: BTreeMap<String, String>,
    /// Enables the admin WebSocket at `/admin` with this token (its JSON commands are documented in `net/admin.rs`).
    pub admin_token: Option<String>,
    /// Origins a browser may connect from, exactly as it sends them
    /// (`http://localhost:5173`). Requests without `Origin` (native clients) are allowed.
    pub allow_origins: Vec<String>,
    /// Open sockets at most; beyond, upgrades are answered `503`.
    pub max_connections: usize,
    /// Once more than this many token checks from one source address failed within a
    /// minute, its further attempts are not checked (0: no limit).
    pub max_auth_failures: usize,
    /// A connection's outbound queue, in bytes (besides [`OUTBOUND_QUEUE`] frames).
    pub max_queue_bytes: usize,
}

impl Default for ServerConfig {
    /// Any free port on loopback, the demo user, no admin socket, the default limits.
    fn default() -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tokens: BTreeMap::new(),
            admin_token: None,
            allow_origins: Vec::new(),
            max_connections: MAX_CONNECTIONS,
            max_auth_failures: MAX_AUTH_FAILURES,
            max_queue_bytes: OUTBOUND_BYTES,
        }
    }
}

/// A running server.
pub struct ServerHandle {
    /// The address it listens on (with the real port when `:0` was asked).
    pub addr: SocketAddr,
    control: mpsc::Sender<ToCore>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    open: Arc<AtomicUsize>,
}

impl ServerHandle {
    /// `ws://ADDR/sync`.
    pub fn url(&self) -> String {
        format!("ws://{}/sync", self.addr)
    }

    /// Sends a control command to the core.
    pub async fn control(&self, c: Control) {
        let _ = self.control.send(ToCore::Control(c)).await;
    }

    /// Sends a control command and waits for its answer.
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Control) -> Result<T, String> {
        let (reply, answer) = oneshot::channel();
        self.control(make(reply)).await;
        answer
            .await
            .unwrap_or_else(|_| Err("the server is stopping".into()))
    }

    /// The server's state for a user (empty for a user it has no token for).
    pub async fn inspect(&self, user: &str) -> Inspection {
        let user = user.to_string();
        self.ask(|reply| Control::Inspect { user, reply })
            .await
            .unwrap_or_default()
    }

    /// A fault on a device's links. Latency and holds are kept for its next connections;
    /// releasing or dropping a frame that does not exist is an error.
    pub async fn link(&self, user: &str, device_id: &str, fault: Fault) -> Result<(), String> {
        self.link_command(user, device_id, LinkCommand::Fault(fault))
            .await
    }

    async fn link_command(
        &self,
        user: &str,
        device_id: &str,
        command: LinkCommand,
    ) -> Result<(), String> {
        let (user, device_id) = (user.to_string(), device_id.to_string());
        self.ask(|reply| Control::Link {
            user,
            device_id,
            command,
            reply,
        })
        .await
    }

    /// The user's next write to `key` is rejected (`forced`); `user` may be left out while
    /// the server has one user.
    pub async fn reject_next(&self, user: Option<&str>, key: Key) -> Result<(), String> {
        let user = user.map(str::to_string);
        self.ask(|reply| Control::RejectNext { user, key, reply })
            .await
    }

    /// Closes a device's connection with 4000, as the admin `disconnect` does.
    pub async fn disconnect(&self, user: &str, device_id: &str) -> Result<(), String> {
        let (user, device_id) = (user.to_string(), device_id.to_string());
        self.ask(|reply| Control::Disconnect {
            user,
            device_id,
            reply,
        })
        .await
    }

    /// Rotates `user`'s token to `token`: valid at once; the old one expires at once, and
    /// its connections have 30 s to `auth` with the new one.
    pub async fn rotate_token(&self, user: &str, token: &str) -> Result<(), String> {
        let (user, token) = (user.to_string(), token.to_string());
        self.ask(|reply| Control::RotateToken { user, token, reply })
            .await
    }

    /// `block_websocket`: upgrades to `/sync` are refused (503) while on, and turning it
    /// on closes every device connection 1001; HTTP polling and `/admin` stay up.
    pub async fn block_websocket(&self, on: bool) -> Result<(), String> {
        self.ask(|reply| Control::BlockWebsocket { on, reply })
            .await
    }

    /// How many frames wait on a device's links: `(up, down)`; `(0, 0)` if not connected.
    pub async fn queued(&self, user: &str, device_id: &str) -> (usize, usize) {
        let q = self.queued_frames(user, device_id).await;
        (q.up.len(), q.down.len())
    }

    /// The frames waiting on a device's links; empty if it is not connected.
    pub async fn queued_frames(&self, user: &str, device_id: &str) -> QueuedFrames {
        let (reply, frames) = oneshot::channel();
        let _ = self
            .link_command(user, device_id, LinkCommand::Queued(reply))
            .await;
        frames.await.unwrap_or_default()
    }

    /// How many sockets are open (device and admin connections, upgraded or not). A
    /// connection counts until its task has ended and its socket is closed.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Restarts the server as after a crash (see [`Control::Restart`]).
    pub async fn restart(&self) -> Result<(), String> {
        self.ask(|reply| Control::Restart { reply }).await
    }

    /// Stops as PROTOCOL.md's "Shutdown" says: no new connections; every connection gets
    /// close 1001 (`going away`) after what was queued for it, so writes being committed
    /// are answered; after [`SHUTDOWN_GRACE`] the sockets still open are dropped. Returns
    /// once the store is released.
    pub async fn shutdown(self) {
        let ServerHandle {
            control,
            shutdown,
            task,
            ..
        } = self;
        if let Some(tx) = shutdown {
            let _ = tx.send(());
        }
        // The core task ends when every sender is gone, this one included.
        drop(control);
        let _ = task.await;
    }
}

/// Binds and starts serving. The store is loaded first: a store that cannot be read is an
/// error here, before anything listens.
pub async fn start<S: Store + Send + 'static>(
    config: ServerConfig,
    store: S,
) -> Result<ServerHandle, StartError> {
    check_exposure(&config)?;
    // The core's clock counts from `epoch`, below; change times are on the wall clock.
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let core = Core::new(config.tokens, store)?
        .with_max_auth_failures(config.max_auth_failures)
        .with_clock_epoch(wall.as_millis() as u64);
    let listener = bind(config.addr).map_err(|e| StartError::Bind(config.addr, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Bind(config.addr, e))?;
    let epoch = Instant::now();
    let ws_blocked = Arc::new(AtomicBool::new(false));
    let gate = Arc::new(accept::Gate {
        admin_token: config.admin_token.map(Arc::<str>::from),
        allow_origins: config.allow_origins,
        max_connections: config.max_connections,
        max_queue_bytes: config.max_queue_bytes,
        epoch,
        ws_blocked: ws_blocked.clone(),
    });
    let (to_core, from_conns) = mpsc::channel(INPUT_QUEUE);
    let (shutdown_tx, shutdown_rx) = oneshot::channel();
    let control = to_core.clone();
    let open = Arc::new(AtomicUsize::new(0));
    let counted = open.clone();
    let task = tokio::spawn(async move {
        let core_task = tokio::spawn(core_task::run(core, from_conns, epoch, ws_blocked));
        accept::run(listener, to_core, gate, counted, shutdown_rx).await;
        let _ = core_task.await;
    });
    if !is_loopback(addr) {
        tracing::warn!(
            %addr,
            "listening beyond loopback: anyone who can reach {addr} can try tokens and, with the admin token, control the server"
        );
    }
    tracing::info!(%addr, "listening on ws://{addr}/sync");
    Ok(ServerHandle {
        addr,
        control,
        shutdown: Some(shutdown_tx),
        task,
        open,
    })
}

/// PROTOCOL.md's "Address" rule, which [`start`] applies: with the demo token (no token
/// given) a non-loopback address is refused. (The warning for any non-loopback address
/// is [`start`]'s, once it listens.) Public so that a binary can check before it opens
/// anything.
pub fn check_exposure(config: &ServerConfig) -> Result<(), StartError> {
    if !is_loopback(config.addr) && config.tokens.is_empty() {
        return Err(StartError::DemoTokenExposed(config.addr));
    }
    Ok(())
}

/// A loopback address, an IPv6-mapped IPv4 one (`::ffff:127.0.0.1`) included.
fn is_loopback(addr: SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

/// Binds with `SO_REUSEADDR`, so a restarted server gets its port back at once (the
/// app's devices keep their URL across a server restart).
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// A non-loopback address with the well-known demo token.
    #[error(
        "refusing to listen on {0} with the default token `demo-token`, which anyone can guess: give --token USER=TOKEN or --tokens-file PATH, or listen on 127.0.0.1"
    )]
    DemoTokenExposed(SocketAddr),
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
