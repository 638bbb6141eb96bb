//! One device's sync engine: a sans-IO state machine built on the generic strategies of
//! [`crate::optimistic`].
//!
//! The engine owns its timers (heartbeat, dead connection, reconnect backoff with jitter
//! from the seeded RNG it was given), so a simulator reproduces live behaviour exactly.
//!
//! ## Method kinds, and the order to call them
//!
//! As quinn-proto's `Connection`, and as the server's `Core` (in `mock-server`: the
//! same kinds), an [`Engine`]'s methods fall into kinds; every one that changes
//! state takes `now`:
//!
//! - **Application commands**, what the user does: [`Engine::tap`], [`Engine::set`],
//!   [`Engine::comment`], [`Engine::edit_comment`], [`Engine::delete_comment`],
//!   [`Engine::set_online`], [`Engine::retry`], [`Engine::configure`]; and what its driver
//!   sets up: [`Engine::set_wall_clock`].
//! - **Inputs**, what the world did: the transport opened or failed
//!   ([`Engine::on_connected`], [`Engine::on_disconnected`], or its upgrade was refused:
//!   [`Engine::on_refused`]; the network went down: [`Engine::on_network_down`]), a
//!   polling request was answered or failed ([`Engine::on_http`]), a frame arrived
//!   ([`Engine::on_text`], or [`Engine::on_frame`] already decoded), the token source
//!   handed over a token ([`Engine::set_token`]), and a deadline passed
//!   ([`Engine::on_timeout`]).
//! - **Outputs to poll**, what the shell must do: [`Engine::poll_output`] ([`Output`]:
//!   open or close the transport, send a frame, make a polling request), [`Engine::poll_event`] (observable
//!   [`Event`]s, for panes and traces) and [`Engine::poll_timeout`] (the next deadline).
//! - **Queries**, read-only: [`Engine::view`] (the pane's [`DeviceView`]),
//!   [`Engine::shown`], [`Engine::counters`], [`Engine::connection`] and the rest.
//!
//! The call order: after every command or input, drain [`Engine::poll_output`] until it
//! returns `None` and carry out each output in order (a `Send` after an `Open` waits for
//! [`Engine::on_connected`]); drain [`Engine::poll_event`]; then read
//! [`Engine::poll_timeout`] again and arm one timer for it, calling
//! [`Engine::on_timeout`] when it passes (a deadline that moved is simply re-read next
//! time). The tokio client (`client`, feature `client`) and the simulator (`mock_server::sim`)
//! are exactly this loop.
//!
//! | module | what |
//! |---|---|
//! | [`state`] | per-key values, revisions and counters (the hooks' state) |
//! | [`hooks`] | the strategies' hooks over that state, and the rollback rule |
//! | [`strategy`] | the strategies for values, one module each behind one trait |
//! | [`inbound`] | handling server frames: acks, rejects, pushes, `welcome` |
//! | [`connection`] | connection state, backoff, heartbeat |
//! | [`token`] | re-authenticating when the token is rotated away |
//! | [`polling`] | falling back to polling over HTTP when WebSocket upgrades are refused |
//! | [`settings`] | what a user may change on a running device (reconnect bound, batch size, auth delay, cursor, clock skew, fallback, poll interval) |
//! | [`cursor`] | the contiguous cursor |
//! | [`snapshot`] | what a device restart keeps |
//! | [`events`] | the observable events |
//! | [`view`] | the device view a pane renders, whatever drives the device |
//! | `mutant` (feature `mutants`) | a test-only switch that breaks one rule, to show the invariant checker catches it |
//!
//! This module is long because [`Engine`] owns the state every submodule works on, and
//! its intents, sending, transport and timer handling live here. What differs between
//! the strategies is not: each keeps its rules in its own module of [`strategy`], and the
//! engine reaches them through one dispatch.

pub mod connection;
pub mod cursor;
pub mod events;
pub mod hooks;
pub mod inbound;
#[cfg(feature = "mutants")]
pub mod mutant;
pub mod polling;
pub mod settings;
pub mod snapshot;
pub mod state;
pub mod strategy;
pub mod token;
pub mod view;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::optimistic::SendKind;
use crate::optimistic::command::{CommandEffect, CommandRunner, Dispatched};
use crate::protocol::model::comments_to_value;
use crate::protocol::{
    CatchUp, ClientFrame, CommandOp, Comment, ErrorCode, Key, PROTOCOL_VERSION, ValueKind,
};
use crate::rng::Rng;
pub use settings::{CursorMode, DeviceSettings};
pub use token::TokenState;

use connection::{ConnectionState, Heartbeat, backoff_delay};
use cursor::Cursor;
pub use events::{Event, EventKind};
use hooks::{CommentHooks, Rejection};
use state::{Counters, DeviceState, stamp};
pub use strategy::Strategy;
use strategy::{Effect, Machine};
pub use view::{DeviceView, KeyView};

/// What the engine needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// The device id (1..=64 of `[A-Za-z0-9_-]`, not `server`).
    pub device_id: String,
    /// The user's token.
    pub token: String,
    /// The strategy for values.
    pub strategy: Strategy,
    /// Seed of the RNG used for backoff jitter.
    pub seed: u64,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Open a transport to the server, then call [`Engine::on_connected`] (or
    /// [`Engine::on_disconnected`] if it fails).
    Open,
    /// Close the transport (the engine already treats it as gone).
    Close,
    /// Send this frame on the open transport.
    Send(ClientFrame),
    /// Make this polling request (PROTOCOL.md, "Polling over HTTP") with the token and
    /// the device id in its headers, then call [`Engine::on_http`] with its id.
    Http {
        /// The request's id, to report its answer with.
        id: u64,
        /// The token for `Authorization: Bearer`.
        token: String,
        /// What to ask.
        call: crate::protocol::HttpCall,
    },
}

/// Why an intent was refused before anything happened (a programming or input error, not
/// a sync outcome).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntentError {
    /// `tap` needs a boolean key.
    #[error("`tap` needs a boolean key; `{0}` is not one")]
    NotBoolean(Key),
    /// Comments change only by command.
    #[error("`{0}` holds comments: add one with `comment` instead of `set`")]
    CommentsKey(Key),
}

/// A request of the current connection, waiting for its answer.
#[derive(Debug, Clone)]
enum Request {
    Write {
        key: Key,
        local_rev: u64,
    },
    Command {
        key: Key,
    },
    Ping,
    /// A `batch`: its writes are requests of their own; this waits for `batch_done`.
    Batch,
    /// An `auth`, waiting for `authed`.
    Auth,
}

/// The command running for a comments key, as sent on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingCommand {
    /// What it does.
    pub op: CommandOp,
    /// Its local revision.
    pub local_rev: u64,
}

/// One device's sync engine. See the [module docs](self). `Clone`, so a model checker
/// can branch a world at every choice instead of replaying the path to it.
#[derive(Debug, Clone)]
pub struct Engine {
    device_id: String,
    /// The newest token from the device's token source.
    token: String,
    /// The token the current connection authenticated with (`hello`, then `authed`).
    conn_token: String,
    token_state: TokenState,
    /// The `auth` on its way: its id and the token it carries.
    auth_request: Option<(u64, String)>,
    /// Closed 4401 because the token expired: reconnect once the source has a new one.
    awaiting_token: bool,
    /// The last token an `auth` carried that the server called expired: never sent again.
    refused_token: Option<String>,
    /// The id of the latest `auth` answered `authed`: requests with lower ids were sent
    /// on the token before it (ids only grow).
    reauthed_at: u64,
    strategy: Strategy,
    state: DeviceState,
    machine: Machine,
    /// The strategy's effects of one input, carried out in order; kept to be reused.
    effects: Vec<Effect>,
    comments: CommandRunner<CommentHooks, DeviceState>,
    commands: BTreeMap<Key, PendingCommand>,
    conn: ConnectionState,
    heartbeat: Heartbeat,
    /// Transports lost since the last `welcome`: the backoff's exponent.
    attempt: u32,
    /// Attempts that failed in a row (ended before `welcome`; PROTOCOL.md, "Attempts").
    failed: u32,
    /// Attempts in a row whose upgrade was refused with an HTTP status.
    refused: u32,
    /// Polling over HTTP, once upgrades were refused `fallback after` times in a row.
    polling: Option<polling::Polling>,
    /// The connection state last reported in an event.
    shown_conn: ConnectionState,
    settings: DeviceSettings,
    requests: HashMap<u64, Request>,
    /// While the writes due after a `welcome` are gathered, the requests handed over: they
    /// leave in `batch` frames of at most the batch size (see [`Engine::send_gathered`]).
    gathering: Option<Vec<(EventKind, ClientFrame)>>,
    /// Keys whose open write or command was opened while no connection was up (one is
    /// open per key at a time): its first send is labelled [`SendKind::Queued`]. Not kept
    /// across a restart of the device, where "resend" is the safe word.
    never_sent: BTreeSet<Key>,
    next_id: u64,
    cursor: Cursor,
    /// The clock cursor: the device clock's time (ms since the Unix epoch) when it last
    /// received a change; what a `hello` on [`CursorMode::Clock`] sends as `since_time`.
    clock_cursor: Option<u64>,
    /// The device clock at time zero of `now` (ms since the Unix epoch), before its skew:
    /// the driver gives it ([`Engine::set_wall_clock`]).
    wall_epoch_ms: u64,
    /// How the last `hello` asked to catch up (a `welcome` answering `since_time` does
    /// not move the revision cursor: it may have left changes out).
    hello_catch_up: CatchUp,
    user: Option<String>,
    rng: Rng,
    now: Duration,
    outputs: VecDeque<Output>,
    events: VecDeque<Event>,
}

impl Engine {
    /// A new device with nothing synced yet. Its first output is [`Output::Open`].
    pub fn new(config: EngineConfig, now: Duration) -> Self {
        let mut engine = Engine {
            machine: Machine::new(config.strategy, &config.device_id),
            effects: Vec::new(),
            device_id: config.device_id,
            conn_token: config.token.clone(),
            token: config.token,
            token_state: TokenState::Valid,
            auth_request: None,
            awaiting_token: false,
            refused_token: None,
            reauthed_at: 0,
            strategy: config.strategy,
            state: DeviceState::default(),
            comments: CommandRunner::new(CommentHooks),
            commands: BTreeMap::new(),
            conn: ConnectionState::Offline,
            heartbeat: Heartbeat::opened(now),
            attempt: 0,
            failed: 0,
            refused: 0,
            polling: None,
            shown_conn: ConnectionState::Offline,
            settings: DeviceSettings::default(),
            requests: HashMap::new(),
            gathering: None,
            never_sent: BTreeSet::new(),
            next_id: 1,
            cursor: Cursor::new(0),
            clock_cursor: None,
            wall_epoch_ms: 0,
            hello_catch_up: CatchUp::Since(0),
            user: None,
            rng: Rng::new(config.seed),
            now,
            outputs: VecDeque::new(),
            events: VecDeque::new(),
        };
        engine.open(now);
        engine
    }

    // ---- intents ------------------------------------------------------------------------

    /// Toggles a boolean key.
    pub fn tap(&mut self, key: &Key, now: Duration) -> Result<(), IntentError> {
        if key.kind() != ValueKind::Bool {
            return Err(IntentError::NotBoolean(key.clone()));
        }
        let value = Value::Bool(!self.state.shown(key).as_bool().unwrap_or(false));
        self.intent(key, value, now);
        Ok(())
    }

    /// Sets a key to a value (the server validates it; a bad value is rejected and rolled
    /// back, which is a lesson, not an error here).
    pub fn set(&mut self, key: &Key, value: Value, now: Duration) -> Result<(), IntentError> {
        if key.kind() == ValueKind::Comments {
            return Err(IntentError::CommentsKey(key.clone()));
        }
        self.intent(key, value, now);
        Ok(())
    }

    fn intent(&mut self, key: &Key, value: Value, now: Duration) {
        self.now = now;
        let slot = self.state.slot(key);
        slot.local_rev += 1;
        slot.superseded_by = None;
        let local_rev = slot.local_rev;
        self.state.counters.intents += 1;
        *self.state.unsent.entry(key.clone()).or_default() += 1;
        self.state.emit(EventKind::OptimisticWrite {
            key: key.clone(),
            value: value.clone(),
            local_rev,
        });
        self.with_rules(|rules, st, fx| rules.intent(st, key, value, local_rev, fx));
        self.flush_events();
    }

    /// Adds a comment to a `comments/<post>` key (OptimisticCommand): shown at once with a
    /// pending id; refused, with a visible event, while another command on that key runs.
    pub fn comment(&mut self, key: &Key, text: &str, now: Duration) {
        let op = CommandOp::AddComment {
            text: text.to_string(),
        };
        self.command(key, op, now);
    }

    /// Edits the comment with that id (as the server numbered it): its text changes, its
    /// id and author stay. A comment this device does not show is refused here, visibly.
    pub fn edit_comment(&mut self, key: &Key, id: &str, text: &str, now: Duration) {
        let op = CommandOp::EditComment {
            id: id.to_string(),
            text: text.to_string(),
        };
        self.command(key, op, now);
    }

    /// Deletes the comment with that id.
    pub fn delete_comment(&mut self, key: &Key, id: &str, now: Duration) {
        let op = CommandOp::DeleteComment { id: id.to_string() };
        self.command(key, op, now);
    }

    /// One command on a comments key: shown at once, then sent (OptimisticCommand).
    fn command(&mut self, key: &Key, op: CommandOp, now: Duration) {
        self.now = now;
        if key.kind() != ValueKind::Comments {
            self.state.emit(EventKind::Error {
                code: None,
                message: format!("`{key}` is not a comments key"),
            });
            self.flush_events();
            return;
        }
        if self.comments.is_running(key) {
            self.state
                .emit(EventKind::CommandRefused { key: key.clone() });
            self.flush_events();
            return;
        }
        let shown = crate::protocol::model::comments_from_value(&self.state.slot(key).shown);
        let next_rev = self.state.slot(key).local_rev + 1;
        // The list as the server will store it, but for a new comment's id, which the
        // server gives: until then it is pending.
        let list = match &op {
            CommandOp::AddComment { text } => {
                let mut list = shown;
                list.push(Comment {
                    id: format!("pending-{next_rev}"),
                    text: text.trim().to_string(),
                    device_id: self.device_id.clone(),
                });
                list
            }
            other => match other.apply(&shown, 0, &self.device_id) {
                Ok(list) => list,
                Err(e) => {
                    self.state.emit(EventKind::Error {
                        code: None,
                        message: format!("{key}: {e}"),
                    });
                    self.flush_events();
                    return;
                }
            },
        };
        let slot = self.state.slot(key);
        slot.local_rev = next_rev;
        slot.superseded_by = None;
        let local_rev = next_rev;
        self.state.counters.intents += 1;
        *self.state.unsent.entry(key.clone()).or_default() += 1;
        self.state.emit(EventKind::OptimisticWrite {
            key: key.clone(),
            value: comments_to_value(&list),
            local_rev,
        });
        self.commands
            .insert(key.clone(), PendingCommand { op, local_rev });
        if let Dispatched::Started(fx) = self.comments.dispatch(&mut self.state, key.clone(), list)
        {
            self.run_command_effects(fx);
        }
        self.flush_events();
    }

    // ---- connection ---------------------------------------------------------------------

    fn open(&mut self, now: Duration) {
        self.awaiting_token = false;
        self.conn = ConnectionState::Connecting;
        self.heartbeat = Heartbeat::opened(now);
        self.outputs.push_back(Output::Open);
        self.connection_event();
    }

    /// Reports the connection state shown, when it changed (while polling, the
    /// WebSocket's attempts underneath do not change it).
    fn connection_event(&mut self) {
        let state = self.connection();
        if state != self.shown_conn {
            self.shown_conn = state.clone();
            self.state.emit(EventKind::Connection { state });
        }
    }

    /// The transport opened: send `hello` with the cursor.
    pub fn on_connected(&mut self, now: Duration) {
        self.now = now;
        if self.conn != ConnectionState::Connecting {
            return;
        }
        self.heartbeat = Heartbeat::opened(now);
        // The upgrade went through: a run of refusals is broken.
        self.refused = 0;
        self.conn = ConnectionState::Handshaking;
        self.conn_token = self.token.clone();
        self.connection_event();
        self.hello_catch_up = self.catch_up_to_ask();
        self.send_frame(ClientFrame::Hello {
            protocol: PROTOCOL_VERSION,
            token: self.token.clone(),
            device_id: self.device_id.clone(),
            catch_up: self.hello_catch_up,
        });
        self.flush_events();
    }

    /// How the device asks to catch up (a `hello`, a poll): from its revision cursor, or
    /// from its clock cursor.
    fn catch_up_to_ask(&self) -> CatchUp {
        match self.settings.cursor {
            CursorMode::Revision => CatchUp::Since(self.cursor.at()),
            CursorMode::Clock => CatchUp::SinceTime(self.clock_cursor.unwrap_or(0)),
        }
    }

    /// The transport closed or failed to open; `close` is the server's close code and
    /// reason, when there was one. Requests in flight stay open until the next `welcome`.
    pub fn on_disconnected(&mut self, close: Option<(u16, String)>, now: Duration) {
        self.now = now;
        if !self.conn.has_transport() {
            return;
        }
        // Requests over HTTP go on while polling: only the WebSocket's are gone.
        let http = self.http_request_ids();
        self.requests.retain(|id, _| http.contains(id));
        // The server said `token_expired` before closing (or gave it as the reason).
        let expired = self.token_state == TokenState::Expired;
        self.token_state = TokenState::Valid;
        self.auth_request = None;
        match close {
            Some((crate::protocol::close::UNAUTHORIZED, reason)) => {
                self.conn = ConnectionState::AuthFailed;
                // An expired token is refreshed by the token source, not by the user.
                self.awaiting_token = expired || reason == ErrorCode::TokenExpired.as_str();
            }
            Some((code, reason)) if crate::protocol::close::forbids_reconnect(code) => {
                self.conn = ConnectionState::ClosedByServer { code, reason };
            }
            _ => {
                // A reset or a timeout breaks a run of refused upgrades. Losing a live
                // connection is not a failed attempt; ending before `welcome` is, unless
                // the device polls meanwhile (its polls count instead).
                self.refused = 0;
                let failed = self.conn != ConnectionState::Connected && self.polling.is_none();
                self.attempt_ended(failed, now);
                return self.flush_events();
            }
        }
        self.stop_polling();
        self.connection_event();
        if self.awaiting_token
            && self.token != self.conn_token
            && self.refused_token.as_deref() != Some(self.token.as_str())
        {
            // The source already had a newer token: use it.
            self.open(now);
        }
        self.flush_events();
    }

    /// The transport is gone without a close that decides what follows: counted as a
    /// failed attempt when `failed`, then the next attempt after the backoff, or `error`
    /// once the reconnect bound is reached (which ends polling too).
    fn attempt_ended(&mut self, failed: bool, now: Duration) {
        if failed {
            self.failed += 1;
        }
        self.attempt += 1;
        self.conn = match self.settings.reconnect_bound {
            Some(bound) if self.failed >= bound => ConnectionState::Error {
                failed: self.failed,
            },
            _ => ConnectionState::Reconnecting {
                attempt: self.attempt,
                retry_at: now + backoff_delay(self.attempt - 1, &mut self.rng),
            },
        };
        if self.conn.needs_retry() {
            self.stop_polling();
        }
        self.connection_event();
    }

    /// Changes the device's settings (taken [sanitized](DeviceSettings::sanitized)). A
    /// reconnect bound (SyncLayer's `maxReconnectAttempts`) stops the device in
    /// [`ConnectionState::Error`] after that many failed attempts in a row; the batch size
    /// applies to the next writes gathered after a `welcome`.
    pub fn configure(&mut self, settings: DeviceSettings) {
        self.settings = settings.sanitized();
    }

    /// The device's settings.
    pub fn settings(&self) -> DeviceSettings {
        self.settings
    }

    /// The user asks to connect now (a pane's "retry now", a scenario's `retry`): out of
    /// `error`, `auth-failed` or `closed` the device opens a transport at once, its count
    /// of failed attempts back at zero. `false` (and nothing happens) in any other state.
    pub fn retry(&mut self, now: Duration) -> bool {
        self.now = now;
        if !self.conn.needs_retry() {
            return false;
        }
        self.attempt = 0;
        self.failed = 0;
        self.refused = 0;
        self.open(now);
        self.flush_events();
        true
    }

    /// The user takes the device offline (`false`) or back online (`true`: it reconnects
    /// at once, also after an auth failure or a server close).
    pub fn set_online(&mut self, online: bool, now: Duration) {
        self.now = now;
        match (online, self.conn.has_transport()) {
            (false, _) if self.conn == ConnectionState::Offline => {}
            (false, had_transport) => {
                if had_transport {
                    self.outputs.push_back(Output::Close);
                }
                self.stop_polling();
                self.requests.clear();
                self.conn = ConnectionState::Offline;
                self.connection_event();
            }
            (true, false) => {
                self.attempt = 0;
                self.failed = 0;
                self.refused = 0;
                self.open(now);
            }
            (true, true) => {}
        }
        self.flush_events();
    }

    /// The next time [`Engine::on_timeout`] must be called, if any.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let polling = self.polling_timeout();
        let websocket = match &self.conn {
            ConnectionState::Reconnecting { retry_at, .. } => Some(*retry_at),
            ConnectionState::Connecting => Some(self.heartbeat.dead_at()),
            ConnectionState::Handshaking | ConnectionState::Connected => {
                Some(self.heartbeat.ping_at().min(self.heartbeat.dead_at()))
            }
            _ => None,
        };
        [websocket, polling].into_iter().flatten().min()
    }

    /// Timers: reconnect when the backoff ran out; `ping` when idle; give up on a silent
    /// connection; poll when due, and give up on an unanswered polling request.
    pub fn on_timeout(&mut self, now: Duration) {
        self.now = now;
        self.polling_on_timeout();
        match self.conn.clone() {
            ConnectionState::Reconnecting { retry_at, .. } if now >= retry_at => self.open(now),
            ConnectionState::Connecting
            | ConnectionState::Handshaking
            | ConnectionState::Connected
                if now >= self.heartbeat.dead_at() =>
            {
                self.state.emit(EventKind::Error {
                    code: None,
                    message: "nothing received for 25 s: connection treated as dead".into(),
                });
                self.outputs.push_back(Output::Close);
                self.on_disconnected(None, now);
            }
            ConnectionState::Handshaking | ConnectionState::Connected
                if now >= self.heartbeat.ping_at() =>
            {
                let id = self.take_id();
                self.requests.insert(id, Request::Ping);
                self.send_frame(ClientFrame::Ping { id });
            }
            _ => {}
        }
        self.flush_events();
    }

    // ---- sending ------------------------------------------------------------------------

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn send_frame(&mut self, frame: ClientFrame) {
        if self.is_polling() && !frame.writes().is_empty() {
            return self.post(frame);
        }
        self.heartbeat.last_sent = self.now;
        if !matches!(frame, ClientFrame::Ping { .. }) {
            self.state.counters.frames_up += 1;
        }
        self.outputs.push_back(Output::Send(frame));
    }

    /// A request goes out: its `RequestSent` event and its frame, now, or gathered for a
    /// batch while [`Engine::gather`] runs.
    fn hand_over(&mut self, event: EventKind, frame: ClientFrame) {
        match &mut self.gathering {
            Some(gathered) => gathered.push((event, frame)),
            None => {
                self.state.emit(event);
                self.send_frame(frame);
            }
        }
    }

    /// Runs `f` with the requests it sends gathered, then sends them in `batch` frames of
    /// at most the batch size (PROTOCOL.md: a device batches when two or more writes are
    /// due at once after `welcome`). A single write, and a last chunk of one, go alone.
    fn gather(&mut self, f: impl FnOnce(&mut Self)) {
        self.gathering = Some(Vec::new());
        f(self);
        let gathered = self.gathering.take().unwrap_or_default();
        self.send_gathered(gathered);
    }

    fn send_gathered(&mut self, gathered: Vec<(EventKind, ClientFrame)>) {
        let mut rest = gathered.into_iter().peekable();
        while rest.peek().is_some() {
            let chunk: Vec<_> = rest.by_ref().take(self.settings.batch_size).collect();
            if chunk.len() == 1 {
                for (event, frame) in chunk {
                    self.state.emit(event);
                    self.send_frame(frame);
                }
                continue;
            }
            let id = self.take_id();
            self.requests.insert(id, Request::Batch);
            let mut writes = Vec::with_capacity(chunk.len());
            let mut keys = Vec::with_capacity(chunk.len());
            for (mut event, frame) in chunk {
                if let EventKind::RequestSent { batch, key, .. } = &mut event {
                    *batch = Some(id);
                    keys.push(key.clone());
                }
                self.state.emit(event);
                writes.push(frame);
            }
            self.state.emit(EventKind::BatchSent { id, keys });
            self.send_frame(ClientFrame::Batch { id, writes });
        }
    }

    /// Hands a write to the link if connected; otherwise it waits for the next `welcome`
    /// (the strategy keeps it open).
    fn send_write(&mut self, key: Key, value: Value, local_rev: u64, kind: SendKind) {
        let Some(kind) = self.on_the_wire(&key, kind) else {
            return;
        };
        let id = self.take_id();
        let number = self.count_request(&key);
        let event = EventKind::RequestSent {
            key: key.clone(),
            id,
            number,
            value: value.clone(),
            local_rev,
            kind,
            batch: None,
        };
        self.requests.insert(
            id,
            Request::Write {
                key: key.clone(),
                local_rev,
            },
        );
        let frame = ClientFrame::Set {
            id,
            key: key.to_string(),
            value,
            local_rev,
        };
        self.hand_over(event, frame);
    }

    /// Counts a request going out; returns its number (the `requests` counter with it).
    fn count_request(&mut self, key: &Key) -> u64 {
        let carried = self.state.unsent.remove(key).unwrap_or(0);
        let c = &mut self.state.counters;
        c.saved += carried.saturating_sub(1);
        c.requests += 1;
        match c.requests_by_key.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                c.requests_by_key.insert(key.clone(), 1);
            }
        }
        c.requests
    }

    /// Whether a request can go out now, and as what: `None` (and `RequestQueued`) while
    /// no connection is up; a "resend" or "follow-up" of a request that never went out is
    /// `Queued`.
    fn on_the_wire(&mut self, key: &Key, kind: SendKind) -> Option<SendKind> {
        // While the token is expired a write would be refused: it waits for `authed`.
        let live = self.conn == ConnectionState::Connected || self.is_polling();
        if !live || self.token_state != TokenState::Valid {
            self.never_sent.insert(key.clone());
            self.state
                .emit(EventKind::RequestQueued { key: key.clone() });
            return None;
        }
        // The strategy sees the open request as unanswered, and sends it (or the newest
        // intent, as a follow-up) after `welcome`; but it never reached the wire.
        let never_sent = self.never_sent.remove(key);
        Some(match kind {
            SendKind::Resend | SendKind::FollowUp if never_sent => SendKind::Queued,
            kind => kind,
        })
    }

    fn send_command(&mut self, key: &Key, kind: SendKind) {
        let Some(cmd) = self.commands.get(key).cloned() else {
            return;
        };
        let Some(kind) = self.on_the_wire(key, kind) else {
            return;
        };
        let id = self.take_id();
        let number = self.count_request(key);
        let value = self
            .comments
            .running(key)
            .map_or(Value::Null, |l| comments_to_value(l));
        let event = EventKind::RequestSent {
            key: key.clone(),
            id,
            number,
            value,
            local_rev: cmd.local_rev,
            kind,
            batch: None,
        };
        self.requests
            .insert(id, Request::Command { key: key.clone() });
        let frame = ClientFrame::Command {
            id,
            key: key.to_string(),
            op: cmd.op,
            local_rev: cmd.local_rev,
        };
        self.hand_over(event, frame);
    }

    // ---- effects of the generic machines -------------------------------------------------

    /// Asks the device's strategy (`f` gets its rules, the device state and the effects
    /// buffer), then carries out what it asked, in order.
    fn with_rules(
        &mut self,
        f: impl FnOnce(&mut dyn strategy::Rules, &mut DeviceState, &mut Vec<Effect>),
    ) {
        let mut fx = std::mem::take(&mut self.effects);
        f(self.machine.rules_mut(), &mut self.state, &mut fx);
        for effect in fx.drain(..) {
            match effect {
                Effect::Send {
                    key,
                    value,
                    local_rev,
                    kind,
                } => self.send_write(key, value, local_rev, kind),
                Effect::FollowUp { key, rev } => {
                    self.state.emit(EventKind::FollowUpDecided { key, rev });
                }
                Effect::Stale { key, rev, known } => {
                    self.state
                        .stale(EventKind::ResponseStale { key, rev, known });
                }
            }
        }
        self.effects = fx;
    }

    fn run_command_effects(&mut self, fx: Vec<CommandEffect<Key, Vec<Comment>, Rejection>>) {
        for effect in fx {
            match effect {
                CommandEffect::Send { key, .. } => self.send_command(&key, SendKind::First),
                CommandEffect::Finished { key, .. } => {
                    self.commands.remove(&key);
                }
                // The engine's commands have no retry policy and no reload.
                CommandEffect::Wait { .. } | CommandEffect::Reload { .. } => {}
            }
        }
    }

    fn flush_events(&mut self) {
        stamp(&mut self.state.events, self.now, &mut self.events);
    }

    // ---- outputs and views --------------------------------------------------------------

    /// The next thing the shell must do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The next observable event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The device id.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The strategy for values.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The connection state: the WebSocket's, or [`ConnectionState::Polling`] while the
    /// device polls and its WebSocket is not live.
    pub fn connection(&self) -> ConnectionState {
        if self.is_polling() {
            ConnectionState::Polling
        } else {
            self.conn.clone()
        }
    }

    /// The user named by the last `welcome`.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The contiguous cursor (the `since` of the next `hello`).
    pub fn cursor(&self) -> u64 {
        self.cursor.at()
    }

    /// The clock cursor: the device clock's time when it last received a change (the
    /// `since_time` of the next `hello` on the clock cursor).
    pub fn clock_cursor(&self) -> Option<u64> {
        self.clock_cursor
    }

    /// Where the device's clock is: `epoch_ms` (ms since the Unix epoch) is its time at
    /// time zero of the `now` its driver passes, before the skew of its settings.
    pub fn set_wall_clock(&mut self, epoch_ms: u64) {
        self.wall_epoch_ms = epoch_ms;
    }

    /// The device clock now, skew included (never below zero).
    fn device_clock(&self) -> u64 {
        let ms = self.wall_epoch_ms as i128 + self.now.as_millis() as i128;
        (ms + self.settings.clock_skew_ms as i128).max(0) as u64
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.state.counters
    }

    /// The value shown for `key` (its default if never seen).
    pub fn shown(&self, key: &Key) -> Value {
        self.state.shown(key)
    }

    /// The known server revision of `key` (0 if never seen).
    pub fn known_rev(&self, key: &Key) -> u64 {
        self.machine.rules().known_rev(&self.state, key)
    }

    /// The request in flight (or waiting for the connection) for `key`: value and local
    /// revision.
    pub fn in_flight(&self, key: &Key) -> Option<(Value, u64)> {
        if let Some(cmd) = self.commands.get(key) {
            let list = self.comments.running(key).map(|l| comments_to_value(l));
            return Some((list.unwrap_or(Value::Null), cmd.local_rev));
        }
        self.machine.rules().in_flight(&self.state, key)
    }

    /// `true` when any request is outstanding (sent and unanswered, or waiting to be sent).
    pub fn has_pending(&self) -> bool {
        !self.commands.is_empty() || !self.pending_keys().is_empty()
    }

    /// Keys of the requests sent on this connection and not answered yet, one entry per
    /// request (so a key appears twice if two requests for it are outstanding).
    pub fn unanswered(&self) -> Vec<Key> {
        self.requests
            .values()
            .filter_map(|r| match r {
                Request::Write { key, .. } | Request::Command { key } => Some(key.clone()),
                Request::Ping | Request::Batch | Request::Auth => None,
            })
            .collect()
    }

    /// Keys with a write outstanding, in key order: the machines keep them in hash maps,
    /// whose order differs between runs, and the order of resends must not.
    fn pending_keys(&self) -> Vec<Key> {
        let mut keys = self.machine.rules().open_keys();
        keys.sort();
        keys
    }

    /// Every key the device knows, with its sync state.
    pub fn keys(&self) -> Vec<KeyView> {
        self.state
            .keys
            .iter()
            .map(|(key, slot)| {
                let in_flight = self.in_flight(key);
                let follow_up_pending = in_flight
                    .as_ref()
                    .is_some_and(|(_, sent_local)| slot.local_rev > *sent_local);
                KeyView {
                    key: key.clone(),
                    slot: slot.clone(),
                    known_rev: self.known_rev(key),
                    in_flight,
                    follow_up_pending,
                }
            })
            .collect()
    }
}
