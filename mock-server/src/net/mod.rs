//! The live server: the sans-IO [`Core`] behind real WebSockets (tokio + tokio-tungstenite).
//!
//! Shape (after tokio's mini-redis): one task owns the core and is the only place protocol
//! decisions happen; one task per connection owns its socket and moves bytes. They talk over
//! channels:
//!
//! - a connection task forwards each frame it reads to the core task, and writes what the
//!   core queues on its **bounded, ordered** outbound queue (1024 frames). Acks and pushes
//!   travel the same queue, so a writer always sees its ack before its own echo;
//! - the core task takes every message waiting at that moment as one batch, so writes that
//!   arrive together share one store commit (group commit), and acks leave after it;
//! - a full outbound queue means the client cannot keep up: its connection is closed with
//!   4009 (`resync`) and it catches up when it reconnects — never an unbounded buffer. A
//!   client that reads nothing at all cannot even be told: after [`RESYNC_GRACE`] its
//!   socket is dropped without a goodbye.
//!
//! Connection handlers are generic over `AsyncRead + AsyncWrite`, so the same code runs on
//! TCP and in simulated-network tests.

mod admin;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use sync_core::protocol::{ErrorCode, Key, ServerFrame, close};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::core::store::{Store, StoreError};
use crate::core::{Action, ConnId, Core, Inbound};
use crate::link::{Link, LinkConfig, Sent};
use crate::sim::Direction;
use sync_core::rng::Rng;

/// Largest frame and message a client may send.
pub const MAX_FRAME: usize = 64 << 10;
/// tungstenite's read buffer per connection. Its default, 128 KiB, is zero-filled on every
/// read (tungstenite-rs issue #547): with frames of a few hundred bytes that memset was
/// the server's largest cost in `loadgen`. Larger frames still arrive, over several reads.
pub const READ_BUFFER: usize = 8 << 10;
/// Outbound queue length per connection.
pub const OUTBOUND_QUEUE: usize = 1024;
/// The HTTP upgrade must finish within this long (slowloris).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the core waits for a congested connection to drain before taking more input.
pub const DRAIN_WAIT: Duration = Duration::from_secs(1);
/// After its queue overflowed, how long a connection may take to finish the write it is
/// stuck in and say goodbye (`error resync`, close 4009), in all. A client that reads
/// nothing for this long is dropped without one: its socket is full, and waiting longer
/// would let a client that never reads hold a socket and a task for ever.
pub const RESYNC_GRACE: Duration = Duration::from_secs(10);
/// The most frames in one batch (one commit). Each write in it queues one push per
/// connection, so a batch must fit in the half queue that the congestion check keeps free.
pub const MAX_BATCH: usize = 128;

/// What a connection task sends to the core task.
enum ToCore {
    Open {
        id: ConnId,
        out: mpsc::Sender<Outbound>,
        kill: oneshot::Sender<()>,
        link: mpsc::UnboundedSender<LinkCommand>,
    },
    Frame(ConnId, Inbound),
    Closed(ConnId),
    Control(Control),
}

/// What the core task queues for a connection.
#[derive(Debug)]
enum Outbound {
    /// A frame's JSON; `true` for heartbeat answers (never held).
    Frame(String, bool),
    Close(u16, String),
}

/// A fault-injection command for one connection's link (PROTOCOL's "Links": the same
/// model the simulator uses, applied on real time).
#[derive(Debug)]
pub enum LinkCommand {
    /// New latency / jitter / loss for one direction.
    Configure(Direction, LinkConfig),
    /// Manual mode on (`true`) or off for one direction.
    Hold(Direction, bool),
    /// Deliver the n-th queued frame now (1 = oldest).
    Release(Direction, usize),
    /// Lose the n-th queued frame, and the connection with it.
    Drop(Direction, usize),
    /// The frames waiting in each direction, oldest first, one line each.
    Queued(oneshot::Sender<QueuedFrames>),
}

/// The frames waiting on a connection's links, one line each (oldest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueuedFrames {
    /// Device → server.
    pub up: Vec<String>,
    /// Server → device.
    pub down: Vec<String>,
}

/// Controls of the running server (the admin API and the app use them).
pub enum Control {
    /// The next write to the key is rejected (`forced`).
    RejectNext(Key),
    /// A write by the server itself.
    ServerSet {
        /// The user.
        user: String,
        /// The key.
        key: Key,
        /// The value.
        value: Value,
        /// The outcome.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Close a device's connection.
    Disconnect {
        /// The user.
        user: String,
        /// The device.
        device_id: String,
    },
    /// A fault on a device's current connection. Ignored if the device is not connected.
    Link {
        /// The user.
        user: String,
        /// The device.
        device_id: String,
        /// What to do.
        command: LinkCommand,
    },
    /// The server restarts as after a crash: every connection drops without a close frame
    /// (devices see a lost connection and reconnect), and the core reloads from the store.
    /// Device link settings survive: they belong to the network, not the server.
    Restart {
        /// The outcome (an error if the store cannot be read back).
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// A snapshot of the server's state for a user.
    Inspect {
        /// The user.
        user: String,
        /// The answer.
        reply: oneshot::Sender<Inspection>,
    },
}

/// The server's state for one user, as the server panel shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inspection {
    /// What is stored.
    pub data: crate::core::store::UserData,
    /// Revisions assigned (all users), across restarts.
    pub writes: u64,
    /// Connected devices of the user.
    pub devices: Vec<String>,
}

/// How to run a server.
pub struct ServerConfig {
    /// Where to listen (127.0.0.1 unless told otherwise).
    pub addr: SocketAddr,
    /// Token → user; empty for the demo user.
    pub tokens: BTreeMap<String, String>,
    /// Enables the admin WebSocket at `/admin` with this token (see [`admin`]).
    pub admin_token: Option<String>,
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

    /// The server's state for a user.
    pub async fn inspect(&self, user: &str) -> Inspection {
        let (reply, rx) = oneshot::channel();
        self.control(Control::Inspect {
            user: user.to_string(),
            reply,
        })
        .await;
        rx.await.unwrap_or_default()
    }

    /// A fault on a device's current connection (ignored if it is not connected).
    pub async fn link(&self, user: &str, device_id: &str, command: LinkCommand) {
        self.control(Control::Link {
            user: user.to_string(),
            device_id: device_id.to_string(),
            command,
        })
        .await;
    }

    /// How many frames wait on a device's links: `(up, down)`; `(0, 0)` if not connected.
    pub async fn queued(&self, user: &str, device_id: &str) -> (usize, usize) {
        let q = self.queued_frames(user, device_id).await;
        (q.up.len(), q.down.len())
    }

    /// The frames waiting on a device's links; empty if it is not connected.
    pub async fn queued_frames(&self, user: &str, device_id: &str) -> QueuedFrames {
        let (reply, rx) = oneshot::channel();
        self.link(user, device_id, LinkCommand::Queued(reply)).await;
        rx.await.unwrap_or_default()
    }

    /// How many sockets are open (device and admin connections, upgraded or not). A
    /// connection counts until its task has ended and its socket is closed.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Restarts the server as after a crash (see [`Control::Restart`]).
    pub async fn restart(&self) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.control(Control::Restart { reply }).await;
        rx.await
            .unwrap_or_else(|_| Err("the server is stopping".into()))
    }

    /// Stops accepting, closes every connection, and waits until the store is released.
    pub async fn shutdown(self) {
        let ServerHandle {
            control,
            shutdown,
            task,
            ..
        } = self;
        // The core task ends when every sender is gone, this one included.
        drop(control);
        if let Some(tx) = shutdown {
            let _ = tx.send(());
        }
        let _ = task.await;
    }
}

/// Binds and starts serving. The store is loaded first: a store that cannot be read is an
/// error here, before anything listens.
pub async fn start<S: Store + Send + 'static>(
    config: ServerConfig,
    store: S,
) -> Result<ServerHandle, StartError> {
    let core = Core::new(config.tokens, store)?;
    let listener = bind(config.addr).map_err(|e| StartError::Bind(config.addr, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Bind(config.addr, e))?;
    let admin_token = config.admin_token.map(Arc::<str>::from);
    let (to_core, from_conns) = mpsc::channel(4096);
    let (shutdown_tx, shutdown_rx) = oneshot::channel();
    let control = to_core.clone();
    let open = Arc::new(AtomicUsize::new(0));
    let counted = open.clone();
    let task = tokio::spawn(async move {
        let core_task = tokio::spawn(run_core(core, from_conns));
        accept_loop(listener, to_core, admin_token, counted, shutdown_rx).await;
        let _ = core_task.await;
    });
    tracing::info!(%addr, "listening on ws://{addr}/sync");
    Ok(ServerHandle {
        addr,
        control,
        shutdown: Some(shutdown_tx),
        task,
        open,
    })
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
}

/// Accepts connections until shutdown, one task each; `open` counts the tasks not yet
/// ended ([`ServerHandle::open_connections`]).
async fn accept_loop(
    listener: TcpListener,
    to_core: mpsc::Sender<ToCore>,
    admin_token: Option<Arc<str>>,
    open: Arc<AtomicUsize>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut next_id = 1;
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let id = ConnId(next_id);
                    next_id += 1;
                    tracing::debug!(%peer, id = id.0, "connection");
                    conns.spawn(connection(stream, id, to_core.clone(), admin_token.clone()));
                }
                Err(e) => tracing::warn!("accept failed: {e}"),
            },
            // Reap ended tasks: a JoinSet keeps each one until it is joined.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = &mut shutdown => break,
        }
        open.store(conns.len(), Ordering::Relaxed);
    }
    // Dropping the connection tasks closes their sockets; then the core task ends when
    // every sender is gone.
    conns.shutdown().await;
    open.store(0, Ordering::Relaxed);
    drop(to_core);
}

/// The core task: the only owner of the core.
async fn run_core<S: Store>(mut core: Core<S>, mut rx: mpsc::Receiver<ToCore>) {
    let start = Instant::now();
    let mut outs = Outs::new();
    let mut links: BTreeMap<(String, String), DeviceLinks> = BTreeMap::new();
    loop {
        wait_for_congested(&mut outs).await;
        let deadline = core.poll_timeout().map(|d| start + d);
        let first = tokio::select! {
            msg = rx.recv() => match msg {
                Some(msg) => msg,
                None => break,
            },
            _ = sleep_until_opt(deadline) => {
                let actions = core.on_timeout(start.elapsed());
                route(&mut core, &mut outs, actions);
                continue;
            }
        };
        // Everything waiting now is one batch: its writes share one commit.
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                ToCore::Frame(id, inbound) => batch.push((id, inbound)),
                other => {
                    flush(&mut core, &mut outs, &mut batch, start);
                    remember_links(&other, &mut links);
                    handle_other(&mut core, &mut outs, other, start);
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        flush(&mut core, &mut outs, &mut batch, start);
        configure_new_connections(&core, &mut outs, &links);
    }
}

/// Records link settings given for a device, so its next connections get them too.
fn remember_links(msg: &ToCore, links: &mut BTreeMap<(String, String), DeviceLinks>) {
    if let ToCore::Control(Control::Link {
        user,
        device_id,
        command,
    }) = msg
    {
        let entry = links.entry((user.clone(), device_id.clone())).or_default();
        match command {
            LinkCommand::Configure(d, c) => entry.config[dir_index(*d)] = Some(*c),
            LinkCommand::Hold(d, on) => entry.hold[dir_index(*d)] = *on,
            _ => {}
        }
    }
}

/// Gives each newly authenticated connection its device's link settings.
fn configure_new_connections<S: Store>(
    core: &Core<S>,
    outs: &mut Outs,
    links: &BTreeMap<(String, String), DeviceLinks>,
) {
    if outs.values().all(|o| o.configured) {
        return;
    }
    for (user, device) in core.devices() {
        let Some(out) = core
            .conn_of(&user, &device)
            .and_then(|id| outs.get_mut(&id))
        else {
            continue;
        };
        if out.configured {
            continue;
        }
        out.configured = true;
        let Some(settings) = links.get(&(user, device)) else {
            continue;
        };
        for d in DIRECTIONS {
            if let Some(c) = settings.config[dir_index(d)] {
                let _ = out.link.send(LinkCommand::Configure(d, c));
            }
            if settings.hold[dir_index(d)] {
                let _ = out.link.send(LinkCommand::Hold(d, true));
            }
        }
    }
}

/// Back-pressure before the 4009 cliff: while a connection's outbound queue is more than
/// half full, take no more input (senders then slow down through TCP) until it drained to
/// half. A connection gets [`DRAIN_WAIT`] per congestion episode, not per batch, so a
/// client that stays stuck delays the others once, then overflows and is closed.
async fn wait_for_congested(outs: &mut Outs) {
    let now = Instant::now();
    for out in outs.values_mut() {
        if out.tx.capacity() >= OUTBOUND_QUEUE / 2 {
            out.congested_since = None;
            continue;
        }
        let deadline = *out.congested_since.get_or_insert(now) + DRAIN_WAIT;
        // The permits are released as soon as they are granted: this only waits.
        if let Ok(Ok(_)) =
            tokio::time::timeout_at(deadline, out.tx.reserve_many(OUTBOUND_QUEUE / 2)).await
        {
            out.congested_since = None;
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A connection as the core task sees it.
struct Out {
    tx: mpsc::Sender<Outbound>,
    link: mpsc::UnboundedSender<LinkCommand>,
    /// Fired when the queue overflows: the connection task closes with 4009.
    kill: Option<oneshot::Sender<()>>,
    /// Since when the queue has been more than half full.
    congested_since: Option<Instant>,
    /// The device's link settings were applied to this connection (after its hello).
    configured: bool,
}

/// A device's link settings, kept across its connections (as the simulator keeps a
/// device's links): latency, jitter, loss and holds per direction.
#[derive(Debug, Clone, Copy, Default)]
struct DeviceLinks {
    config: [Option<LinkConfig>; 2],
    hold: [bool; 2],
}

fn dir_index(d: Direction) -> usize {
    match d {
        Direction::Up => 0,
        Direction::Down => 1,
    }
}

const DIRECTIONS: [Direction; 2] = [Direction::Up, Direction::Down];

type Outs = BTreeMap<ConnId, Out>;

fn flush<S: Store>(
    core: &mut Core<S>,
    outs: &mut Outs,
    batch: &mut Vec<(ConnId, Inbound)>,
    start: Instant,
) {
    if batch.is_empty() {
        return;
    }
    let actions = core.handle(std::mem::take(batch), start.elapsed());
    route(core, outs, actions);
}

fn handle_other<S: Store>(core: &mut Core<S>, outs: &mut Outs, msg: ToCore, start: Instant) {
    match msg {
        ToCore::Open {
            id,
            out,
            kill,
            link,
        } => {
            core.connect(id, start.elapsed());
            outs.insert(
                id,
                Out {
                    tx: out,
                    link,
                    kill: Some(kill),
                    congested_since: None,
                    configured: false,
                },
            );
        }
        ToCore::Closed(id) => {
            core.disconnect(id);
            outs.remove(&id);
        }
        ToCore::Frame(..) => unreachable!("frames are batched"),
        ToCore::Control(c) => match c {
            Control::RejectNext(key) => core.reject_next(key),
            Control::ServerSet {
                user,
                key,
                value,
                reply,
            } => {
                let result = core
                    .server_set(&user, &key, value)
                    .map(|actions| route(core, outs, actions));
                let _ = reply.send(result);
            }
            Control::Disconnect { user, device_id } => {
                let actions = core.kick(&user, &device_id, 4000, "disconnected by the admin");
                route(core, outs, actions);
            }
            Control::Link {
                user,
                device_id,
                command,
            } => {
                if let Some(out) = core.conn_of(&user, &device_id).and_then(|id| outs.get(&id)) {
                    let _ = out.link.send(command);
                }
            }
            Control::Restart { reply } => {
                // Dropping a connection's queue and kill switch ends its task, which drops
                // the socket: a crash, not a goodbye.
                outs.clear();
                let result = core.restart().map_err(|e| e.to_string());
                if let Err(e) = &result {
                    tracing::error!("restart: {e}");
                }
                let _ = reply.send(result);
            }
            Control::Inspect { user, reply } => {
                let mut devices: Vec<String> = core
                    .devices()
                    .into_iter()
                    .filter(|(u, _)| *u == user)
                    .map(|(_, d)| d)
                    .collect();
                devices.sort();
                let _ = reply.send(Inspection {
                    data: core.user(&user).cloned().unwrap_or_default(),
                    writes: core.writes(),
                    devices,
                });
            }
        },
    }
}

/// Puts the core's actions on the connections' queues. A full queue closes that
/// connection with 4009: the client reconnects and catches up.
fn route<S: Store>(core: &mut Core<S>, outs: &mut Outs, actions: Vec<Action>) {
    for action in actions {
        let (id, item) = match action {
            Action::Send(id, frame) => {
                let heartbeat = matches!(frame, ServerFrame::Pong { .. });
                (id, Outbound::Frame(frame.to_json(), heartbeat))
            }
            Action::Close(id, code, reason) => (id, Outbound::Close(code, reason)),
        };
        let Some(out) = outs.get_mut(&id) else {
            continue;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = out.tx.try_send(item) {
            tracing::warn!(id = id.0, "outbound queue full: closing with 4009");
            if let Some(kill) = out.kill.take() {
                let _ = kill.send(());
            }
            core.disconnect(id);
        }
    }
}

/// One connection: upgrade, then move frames both ways, through this connection's two
/// links, until either side closes.
async fn connection<T>(
    stream: T,
    id: ConnId,
    to_core: mpsc::Sender<ToCore>,
    admin_token: Option<Arc<str>>,
) where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let mut path = String::new();
    let admin = admin_token.is_some();
    // The signature is tungstenite's callback type; its error type is not ours to shrink.
    #[allow(clippy::result_large_err)]
    let check_path = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        path = req.uri().path().to_string();
        if path == "/sync" || (admin && path == "/admin") {
            Ok(resp)
        } else {
            let mut e = ErrorResponse::new(Some("Sync Lab speaks WebSocket at /sync".into()));
            *e.status_mut() = StatusCode::NOT_FOUND;
            Err(e)
        }
    };
    let upgrade = tokio_tungstenite::accept_hdr_async_with_config(stream, check_path, Some(config));
    let mut ws = match tokio::time::timeout(HANDSHAKE_TIMEOUT, upgrade).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => return tracing::debug!(id = id.0, "upgrade failed: {e}"),
        Err(_) => return tracing::debug!(id = id.0, "upgrade timed out"),
    };
    if path == "/admin"
        && let Some(token) = admin_token
    {
        return admin::serve(ws, &token, to_core).await;
    }
    let (out_tx, mut out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let (kill_tx, mut kill_rx) = oneshot::channel();
    let (link_tx, mut link_rx) = mpsc::unbounded_channel();
    let open = ToCore::Open {
        id,
        out: out_tx,
        kill: kill_tx,
        link: link_tx,
    };
    if to_core.send(open).await.is_err() {
        return;
    }
    let mut links = Links::new();
    loop {
        let due = links.next_due();
        let step = tokio::select! {
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(text))) => Step::Up(Inbound::Text(text.to_string())),
                Some(Ok(Message::Binary(_))) => Step::Up(Inbound::Binary),
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => continue, // ping/pong: tungstenite answers pings itself
                Some(Err(WsError::Capacity(_))) => {
                    // tungstenite sends no close for an oversize frame: do it ourselves.
                    let error = error_json(ErrorCode::TooLarge, "frame over 64 KiB");
                    let _ = ws.send(Message::text(error)).await;
                    let _ = close_with(&mut ws, close::TOO_LARGE, "too_large").await;
                    break;
                }
                Some(Err(WsError::Protocol(_))) => {
                    let _ = close_with(&mut ws, 1002, "protocol error").await;
                    break;
                }
                Some(Err(WsError::Utf8(_))) => {
                    let _ = close_with(&mut ws, 1007, "invalid UTF-8").await;
                    break;
                }
                Some(Err(_)) => break,
            },
            out = out_rx.recv() => match out {
                Some(out) => Step::Down(out),
                None => break,
            },
            command = link_rx.recv() => match command {
                Some(command) => Step::Command(command),
                None => continue,
            },
            _ = sleep_until_opt(due) => Step::Due,
            killed = &mut kill_rx => {
                // The sender dropped without firing: a server restart, no goodbye.
                if killed.is_ok() {
                    say_resync(&mut ws, Instant::now() + RESYNC_GRACE).await;
                }
                break;
            }
        };
        let now = links.now();
        match step {
            Step::Up(inbound) => {
                // Only a held or lossy link treats heartbeats apart: parse the frame's type
                // only then, not for every frame the core will decode anyway.
                let special = links.up.is_held() || links.up.config.loss > 0.0;
                let heartbeat = special && matches!(&inbound, Inbound::Text(t) if is_ping(t));
                if links.up.send(inbound, heartbeat, now) == Sent::LostWithConnection {
                    break;
                }
            }
            Step::Down(out) => {
                // Take whatever else is queued now too, so a batch is flushed once.
                let mut lost = false;
                for out in std::iter::once(out).chain(std::iter::from_fn(|| out_rx.try_recv().ok()))
                {
                    let heartbeat = matches!(out, Outbound::Frame(_, true));
                    lost |= links.down.send(out, heartbeat, now) == Sent::LostWithConnection;
                }
                if lost {
                    break;
                }
            }
            Step::Command(command) => {
                if !links.command(command) {
                    break; // a dropped frame takes the connection with it
                }
            }
            Step::Due => {}
        }
        // Hand over what is due: frames read go to the core, frames for the client go out.
        let mut ups = std::mem::take(&mut links.released_up);
        while let Some(inbound) = links.up.poll_due(now) {
            ups.push(inbound);
        }
        for inbound in ups {
            if to_core.send(ToCore::Frame(id, inbound)).await.is_err() {
                return;
            }
        }
        let mut released = std::mem::take(&mut links.released);
        while let Some(out) = links.down.poll_due(now) {
            released.push(out);
        }
        // The write races the kill switch: a client that stopped reading blocks it, and
        // its queue then overflows while this task waits here.
        let goodbye = {
            let mut write = std::pin::pin!(write_out(&mut ws, released));
            tokio::select! {
                written = &mut write => if written { continue } else { None },
                killed = &mut kill_rx => match killed {
                    // Dropped without firing: a server restart, no goodbye and no waiting.
                    Err(_) => None,
                    Ok(()) => {
                        let deadline = Instant::now() + RESYNC_GRACE;
                        let finished = tokio::time::timeout_at(deadline, &mut write).await;
                        matches!(finished, Ok(true)).then_some(deadline)
                    }
                },
            }
        };
        if let Some(deadline) = goodbye {
            say_resync(&mut ws, deadline).await;
        }
        break;
    }
    let _ = to_core.send(ToCore::Closed(id)).await;
}

/// Tells a client its queue overflowed: `error resync`, then close 4009. Given up at
/// `deadline` (the end of [`RESYNC_GRACE`]), as its socket may be full.
async fn say_resync<T>(ws: &mut tokio_tungstenite::WebSocketStream<T>, deadline: Instant)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout_at(deadline, async {
        let error = error_json(
            ErrorCode::Resync,
            "outbound queue overflowed: reconnect and catch up",
        );
        ws.send(Message::text(error)).await?;
        close_with(ws, close::RESYNC, "resync").await
    })
    .await;
}

/// What woke a connection task.
enum Step {
    Up(Inbound),
    Down(Outbound),
    Command(LinkCommand),
    Due,
}

/// Writes frames (feed each, flush once); a close ends the connection. `false` when the
/// connection is done.
async fn write_out<T>(ws: &mut tokio_tungstenite::WebSocketStream<T>, items: Vec<Outbound>) -> bool
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    if items.is_empty() {
        return true;
    }
    for item in items {
        match item {
            Outbound::Frame(json, _) => {
                if ws.feed(Message::text(json)).await.is_err() {
                    return false;
                }
            }
            Outbound::Close(code, reason) => {
                let _ = ws.flush().await;
                let _ = close_with(ws, code, &reason).await;
                return false;
            }
        }
    }
    ws.flush().await.is_ok()
}

/// A connection's two links, on real time (measured from the connection's start).
struct Links {
    start: Instant,
    up: Link<Inbound>,
    down: Link<Outbound>,
    /// Frames released by hand, to hand over now (ahead of the queue).
    released: Vec<Outbound>,
    released_up: Vec<Inbound>,
}

impl Links {
    fn new() -> Self {
        // No delay until someone asks for one: a live connection is as fast as its socket.
        let config = LinkConfig {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
        };
        let seed = Instant::now().elapsed().subsec_nanos() as u64;
        Links {
            start: Instant::now(),
            up: Link::new(config, Rng::new(seed)),
            down: Link::new(config, Rng::new(seed ^ 1)),
            released: Vec::new(),
            released_up: Vec::new(),
        }
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn next_due(&self) -> Option<Instant> {
        let up = self.up.peek().map(|q| q.due);
        let down = self.down.peek().map(|q| q.due);
        up.into_iter().chain(down).min().map(|d| self.start + d)
    }

    /// Carries out a fault command; `false` if the connection must end (a drop).
    fn command(&mut self, command: LinkCommand) -> bool {
        match command {
            LinkCommand::Configure(Direction::Up, c) => self.up.config = c,
            LinkCommand::Configure(Direction::Down, c) => self.down.config = c,
            LinkCommand::Hold(Direction::Up, on) => set_hold(&mut self.up, on),
            LinkCommand::Hold(Direction::Down, on) => set_hold(&mut self.down, on),
            LinkCommand::Release(Direction::Up, n) => {
                if let Some(inbound) = self.up.release(n) {
                    self.released_up.push(inbound);
                }
            }
            LinkCommand::Release(Direction::Down, n) => {
                if let Some(out) = self.down.release(n) {
                    self.released.push(out);
                }
            }
            LinkCommand::Drop(Direction::Up, n) => return self.up.drop_nth(n).is_none(),
            LinkCommand::Drop(Direction::Down, n) => return self.down.drop_nth(n).is_none(),
            LinkCommand::Queued(reply) => {
                let up = self.up.queued().map(|q| summary_up(&q.frame)).collect();
                let down = self.down.queued().map(|q| summary_down(&q.frame)).collect();
                let _ = reply.send(QueuedFrames { up, down });
            }
        }
        true
    }
}

fn summary_up(inbound: &Inbound) -> String {
    match inbound {
        Inbound::Text(t) => sync_core::protocol::decode_client_frame(t)
            .map_or_else(|_| "(malformed frame)".to_string(), |f| f.to_string()),
        Inbound::Decoded(f) => f.to_string(),
        Inbound::Binary => "(binary frame)".into(),
        Inbound::TooLarge => "(oversize frame)".into(),
    }
}

fn summary_down(out: &Outbound) -> String {
    match out {
        Outbound::Frame(json, _) => sync_core::protocol::decode_server_frame(json)
            .map_or_else(|_| json.clone(), |f| f.to_string()),
        Outbound::Close(code, reason) => format!("close {code} {reason}"),
    }
}

/// A client `ping` (heartbeats are never held or lost).
fn is_ping(text: &str) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|v| v["type"] == "ping")
}

fn set_hold<F>(link: &mut Link<F>, on: bool) {
    if on { link.hold() } else { link.unhold() }
}

fn error_json(code: ErrorCode, message: &str) -> String {
    ServerFrame::Error {
        code,
        message: message.to_string(),
        id: None,
    }
    .to_json()
}

async fn close_with<T>(
    ws: &mut tokio_tungstenite::WebSocketStream<T>,
    code: u16,
    reason: &str,
) -> Result<(), WsError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    ws.close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_string().into(),
    }))
    .await?;
    // Drain briefly so the close handshake can finish.
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    Ok(())
}
