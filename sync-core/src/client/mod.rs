//! The client runtime: one [`Engine`] as a live device over a real WebSocket (feature
//! `client`).
//!
//! All decisions stay in the engine; this shell only moves frames, opens and closes the
//! socket when the engine says so, makes the polling requests it asks for ([`http`]),
//! fires the engine's timers, and persists its snapshot.
//! One tokio task per device owns the engine and the socket; the rest of the program talks
//! to it through a cheap, cloneable [`DeviceHandle`] that never blocks:
//!
//! - commands (intents, online/offline) go in over an unbounded channel (user-paced);
//! - a [`DeviceView`] comes out over a `watch` channel (always the latest; a slow UI skips
//!   frames instead of queueing them), and every engine [`Event`] over a `broadcast`
//!   channel (a slow subscriber loses the oldest events, never blocks the device).
//!
//! Persistence: the snapshot is written when the device's state changed, coalesced to at
//! most ~10 writes per second, always before a request goes out (so an intent the server
//! may apply is on disk first) and on shutdown.

pub mod http;
pub mod persist;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use crate::engine::DeviceView;
use crate::engine::{DeviceSettings, Engine, EngineConfig, Event, EventKind, Output};
use crate::protocol::{ClientFrame, HttpResult, Key};
use http::Endpoint;

/// At most this many snapshot writes per second (one per this interval).
pub const PERSIST_INTERVAL: Duration = Duration::from_millis(100);
/// Events kept for slow subscribers.
pub const EVENT_BUFFER: usize = 4096;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How to run a device.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `ws://HOST:PORT/sync`.
    pub url: String,
    /// The engine's configuration.
    pub engine: EngineConfig,
    /// Where the device's snapshot lives (`None`: nothing persists).
    pub snapshot: Option<PathBuf>,
    /// `false`: the device starts offline (as the user left it), before any attempt to
    /// connect.
    pub online: bool,
}

/// What a device can be told.
#[derive(Debug)]
enum Command {
    Tap(Key),
    Set(Key, Value),
    Comment(Key, String),
    EditComment(Key, String, String),
    DeleteComment(Key, String),
    Online(bool),
    Retry,
    Configure(DeviceSettings),
    Token(String),
    Shutdown(oneshot::Sender<()>),
}

/// A live device. Cheap to clone; no method blocks.
#[derive(Clone)]
pub struct DeviceHandle {
    commands: mpsc::UnboundedSender<Command>,
    view: watch::Receiver<DeviceView>,
    events: broadcast::Sender<Event>,
    /// Subscribed before the device started, for the first subscriber: it sees every
    /// event, the first ones included (a device may connect before anyone subscribes).
    from_start: Arc<std::sync::Mutex<Option<broadcast::Receiver<Event>>>>,
    /// The wall-clock instant the engine's clock counts from.
    start: Instant,
}

impl DeviceHandle {
    /// Toggles a boolean key.
    pub fn tap(&self, key: Key) {
        let _ = self.commands.send(Command::Tap(key));
    }

    /// Sets a key.
    pub fn set(&self, key: Key, value: Value) {
        let _ = self.commands.send(Command::Set(key, value));
    }

    /// Adds a comment to a `comments/<post>` key.
    pub fn comment(&self, key: Key, text: impl Into<String>) {
        let _ = self.commands.send(Command::Comment(key, text.into()));
    }

    /// Edits the comment with that id on a `comments/<post>` key.
    pub fn edit_comment(&self, key: Key, id: impl Into<String>, text: impl Into<String>) {
        let _ = self
            .commands
            .send(Command::EditComment(key, id.into(), text.into()));
    }

    /// Deletes the comment with that id on a `comments/<post>` key.
    pub fn delete_comment(&self, key: Key, id: impl Into<String>) {
        let _ = self.commands.send(Command::DeleteComment(key, id.into()));
    }

    /// Takes the device offline (`false`) or back online (`true`).
    pub fn set_online(&self, online: bool) {
        let _ = self.commands.send(Command::Online(online));
    }

    /// Connects now, out of `error`, `auth-failed` or `closed` (a pane's "retry now").
    pub fn retry(&self) {
        let _ = self.commands.send(Command::Retry);
    }

    /// The token source has a new token for the device (after a rotation): it
    /// re-authenticates its open connection, or reconnects after an expiry's 4401.
    pub fn set_token(&self, token: impl Into<String>) {
        let _ = self.commands.send(Command::Token(token.into()));
    }

    /// Changes the device's settings (reconnect bound, batch size).
    pub fn configure(&self, settings: DeviceSettings) {
        let _ = self.commands.send(Command::Configure(settings));
    }

    /// The latest view.
    pub fn view(&self) -> DeviceView {
        self.view.borrow().clone()
    }

    /// A receiver that wakes on every new view.
    pub fn watch(&self) -> watch::Receiver<DeviceView> {
        self.view.clone()
    }

    /// The engine's clock now (it counts from the device's start): what a view's times
    /// are measured against.
    pub fn clock(&self) -> Duration {
        self.start.elapsed()
    }

    /// When, on the wall clock, an event happened: the engine's clock counts from the
    /// device's start, so events of different devices compare only through this.
    pub fn wall_time(&self, event: &Event) -> std::time::Instant {
        (self.start + event.at).into_std()
    }

    /// Engine events: the first subscriber gets every event since the device started
    /// (up to the buffer of the channel); later ones, every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        let first = self
            .from_start
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        first.unwrap_or_else(|| self.events.subscribe())
    }

    /// Stops the device: the snapshot is flushed and the socket closed. Waits until done.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Starts a device. It restores its snapshot if there is one; a snapshot that cannot be
/// used is reported as an error event (the file is kept aside) and the device starts
/// fresh. `on_change` runs after every change (a UI passes its repaint request).
pub fn spawn(config: ClientConfig, on_change: Arc<dyn Fn() + Send + Sync>) -> DeviceHandle {
    let start = Instant::now();
    let mut problem = None;
    let mut engine = match config.snapshot.as_deref().map(persist::load) {
        Some(Ok(Some(snapshot))) => {
            Engine::restore(config.engine.clone(), snapshot, Duration::ZERO).unwrap_or_else(|e| {
                problem = Some(format!("snapshot not used: {e}; starting fresh"));
                Engine::new(config.engine.clone(), Duration::ZERO)
            })
        }
        Some(Err(e)) => {
            problem = Some(e.to_string());
            Engine::new(config.engine.clone(), Duration::ZERO)
        }
        Some(Ok(None)) | None => Engine::new(config.engine.clone(), Duration::ZERO),
    };
    // The device's clock (for the clock cursor) is the wall clock; its time zero is now.
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    engine.set_wall_clock(wall.as_millis() as u64);
    if !config.online {
        engine.set_online(false, Duration::ZERO);
    }
    let (commands, rx) = mpsc::unbounded_channel();
    let (view_tx, view) = watch::channel(engine.view());
    let (events, from_start) = broadcast::channel(EVENT_BUFFER);
    let (http_done, http_results) = mpsc::unbounded_channel();
    let device = Device {
        engine,
        endpoint: Endpoint::of_websocket(&config.url),
        url: config.url,
        http_done,
        snapshot: config.snapshot,
        start,
        ws: None,
        connecting: None,
        dirty: false,
        last_persist: None,
        view: view_tx,
        events: events.clone(),
        on_change,
    };
    if let Some(problem) = problem {
        tracing::warn!("{problem}");
        let _ = device.events.send(Event {
            at: Duration::ZERO,
            kind: EventKind::Error {
                code: None,
                message: problem,
            },
        });
    }
    tokio::spawn(device.run(rx, http_results));
    DeviceHandle {
        commands,
        view,
        events,
        from_start: Arc::new(std::sync::Mutex::new(Some(from_start))),
        start,
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<Ws, Refused>> + Send>>;

/// Why a WebSocket did not open.
enum Refused {
    /// The server answered the upgrade with this HTTP status.
    Status(u16),
    /// No answer: the connection failed or was reset.
    Failed(String),
}

struct Device {
    engine: Engine,
    url: String,
    /// Where polling requests go (`None` for a URL that is not `ws://`: no polling).
    endpoint: Option<Endpoint>,
    /// The polling requests' results come back here.
    http_done: mpsc::UnboundedSender<(u64, HttpResult)>,
    snapshot: Option<PathBuf>,
    start: Instant,
    ws: Option<Ws>,
    connecting: Option<Connecting>,
    dirty: bool,
    last_persist: Option<Instant>,
    view: watch::Sender<DeviceView>,
    events: broadcast::Sender<Event>,
    on_change: Arc<dyn Fn() + Send + Sync>,
}

/// What woke the device.
enum Wake {
    Command(Option<Command>),
    Frame(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Connected(Result<Box<Ws>, Refused>),
    Http(Option<(u64, HttpResult)>),
    Timer,
    Persist,
}

/// The socket's settings: tungstenite's default 128 KiB read buffer is zero-filled on
/// every read (tungstenite-rs issue #547), a waste for frames of a few hundred bytes.
fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(8 << 10)
}

impl Device {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut http_results: mpsc::UnboundedReceiver<(u64, HttpResult)>,
    ) {
        self.apply_outputs().await;
        self.publish();
        loop {
            let timer = self.engine.poll_timeout().map(|d| self.start + d);
            let persist_at = self.dirty.then(|| {
                self.last_persist
                    .map_or(Instant::now(), |t| t + PERSIST_INTERVAL)
            });
            let wake = tokio::select! {
                c = commands.recv() => Wake::Command(c),
                f = next_frame(&mut self.ws) => Wake::Frame(f),
                r = connect_done(&mut self.connecting) => Wake::Connected(r),
                h = http_results.recv() => Wake::Http(h),
                _ = sleep_until(timer) => Wake::Timer,
                _ = sleep_until(persist_at) => Wake::Persist,
            };
            let now = self.now();
            match wake {
                Wake::Command(None) => break,
                Wake::Command(Some(Command::Shutdown(done))) => {
                    self.persist();
                    if let Some(mut ws) = self.ws.take() {
                        let _ = ws.close(None).await;
                    }
                    let _ = done.send(());
                    return;
                }
                Wake::Command(Some(c)) => self.command(c, now),
                Wake::Frame(Some(Ok(Message::Text(text)))) => self.engine.on_text(&text, now),
                Wake::Frame(Some(Ok(Message::Close(frame)))) => {
                    self.ws = None;
                    let close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    self.engine.on_disconnected(close, now);
                }
                Wake::Frame(Some(Ok(_))) => {}
                Wake::Frame(Some(Err(_)) | None) => {
                    self.ws = None;
                    self.engine.on_disconnected(None, now);
                }
                Wake::Connected(Ok(ws)) => {
                    self.ws = Some(*ws);
                    self.engine.on_connected(now);
                }
                Wake::Connected(Err(Refused::Status(status))) => {
                    self.engine.on_refused(status, now);
                }
                Wake::Connected(Err(Refused::Failed(e))) => {
                    tracing::debug!("connect failed: {e}");
                    self.engine.on_disconnected(None, now);
                }
                Wake::Http(Some((id, result))) => self.engine.on_http(id, result, now),
                // The device holds a sender itself: never closed while it runs.
                Wake::Http(None) => {}
                Wake::Timer => self.engine.on_timeout(now),
                Wake::Persist => {
                    self.persist();
                    continue;
                }
            }
            self.dirty = true;
            self.apply_outputs().await;
            self.publish();
        }
        self.persist();
    }

    fn command(&mut self, c: Command, now: Duration) {
        // Intents on the wrong kind of key are refused by the engine; report them.
        let refused = match c {
            Command::Tap(key) => self.engine.tap(&key, now).err(),
            Command::Set(key, value) => self.engine.set(&key, value, now).err(),
            Command::Comment(key, text) => {
                self.engine.comment(&key, &text, now);
                None
            }
            Command::EditComment(key, id, text) => {
                self.engine.edit_comment(&key, &id, &text, now);
                None
            }
            Command::DeleteComment(key, id) => {
                self.engine.delete_comment(&key, &id, now);
                None
            }
            Command::Online(online) => {
                self.engine.set_online(online, now);
                None
            }
            Command::Retry => {
                self.engine.retry(now);
                None
            }
            Command::Configure(settings) => {
                self.engine.configure(settings);
                None
            }
            Command::Token(token) => {
                self.engine.set_token(&token, now);
                None
            }
            Command::Shutdown(_) => unreachable!("handled by the caller"),
        };
        if let Some(e) = refused {
            let _ = self.events.send(Event {
                at: now,
                kind: EventKind::Error {
                    code: None,
                    message: e.to_string(),
                },
            });
        }
    }

    /// Carries out the engine's outputs: open, close, send.
    async fn apply_outputs(&mut self) {
        while let Some(output) = self.engine.poll_output() {
            match output {
                Output::Open => {
                    let url = self.url.clone();
                    self.connecting = Some(Box::pin(async move {
                        // Nagle off: an intent is one small frame, and it must not wait
                        // for the ack of the previous one (Nagle + delayed ACK = ~40 ms).
                        tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true)
                            .await
                            .map(|(ws, _)| ws)
                            .map_err(|e| match e {
                                tokio_tungstenite::tungstenite::Error::Http(answer) => {
                                    Refused::Status(answer.status().as_u16())
                                }
                                other => Refused::Failed(other.to_string()),
                            })
                    }));
                }
                Output::Close => {
                    self.connecting = None;
                    if let Some(mut ws) = self.ws.take() {
                        let _ = ws.close(None).await;
                    }
                }
                Output::Send(frame) => {
                    if matches!(frame, ClientFrame::Set { .. } | ClientFrame::Command { .. }) {
                        // The intent is on disk before the server can apply it.
                        self.persist();
                    }
                    let failed = match self.ws.as_mut() {
                        Some(ws) => ws.send(Message::text(frame.to_json())).await.is_err(),
                        None => false,
                    };
                    if failed {
                        self.ws = None;
                        let now = self.now();
                        self.engine.on_disconnected(None, now);
                    }
                }
                Output::Http { id, token, call } => {
                    if matches!(call, crate::protocol::HttpCall::Write(_)) {
                        // As for a frame: the intent is on disk before the server can
                        // apply it.
                        self.persist();
                    }
                    let done = self.http_done.clone();
                    let Some(endpoint) = self.endpoint.clone() else {
                        let why = format!("cannot poll `{}`: not a ws:// URL", self.url);
                        let _ = done.send((id, HttpResult::Failed(why)));
                        continue;
                    };
                    let device_id = self.engine.device_id().to_string();
                    tokio::spawn(async move {
                        let result = http::call(endpoint, device_id, token, call).await;
                        let _ = done.send((id, result));
                    });
                }
            }
        }
    }

    fn publish(&mut self) {
        let mut changed = false;
        while let Some(event) = self.engine.poll_event() {
            let _ = self.events.send(event);
            changed = true;
        }
        let view = self.engine.view();
        changed |= self.view.send_if_modified(|v| {
            if *v == view {
                false
            } else {
                *v = view;
                true
            }
        });
        if changed {
            (self.on_change)();
        }
    }

    fn persist(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        self.last_persist = Some(Instant::now());
        if let Some(path) = &self.snapshot
            && let Err(e) = persist::save(path, &self.engine.snapshot())
        {
            tracing::warn!("cannot write the snapshot {}: {e}", path.display());
        }
    }
}

async fn next_frame(
    ws: &mut Option<Ws>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match ws {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

async fn connect_done(connecting: &mut Option<Connecting>) -> Result<Box<Ws>, Refused> {
    match connecting {
        Some(fut) => {
            let result = fut.await.map(Box::new);
            *connecting = None;
            result
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
