//! The deterministic simulator: N device engines, the server core and a pair of links per
//! device, on a virtual clock with a seeded RNG.
//!
//! It runs the very code the live app runs — `sync-core`'s [`Engine`], this crate's
//! [`Core`] and [`Link`] — so a scenario that passes exercises the real thing, and a bug
//! seen live can be replayed bit for bit. Timing rules (SCENARIOS.md): the server handles a
//! frame in 0 ms; events due at the same instant run in the order they were scheduled;
//! links are FIFO; heartbeats are never held or dropped.
//!
//! The world keeps a [`Trace`] of everything observable: engine events and frames on the
//! wire, the same stream the live app shows.
//!
//! One file (it is long) because the event loop, the delivery rules and the fault entry
//! points share one private state — the clock, the queues, the tie-breaking sequence —
//! whose invariants are easier to see together; the link model is in [`crate::link`], the
//! script on top in [`crate::scenario`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use sync_core::engine::connection::ConnectionState;
use sync_core::engine::snapshot::Snapshot;
use sync_core::engine::{DeviceSettings, Engine, EngineConfig, EventKind, Output, Strategy};
use sync_core::protocol::{ClientFrame, HttpCall, HttpResult, Key, ServerFrame};
use sync_core::rng::Rng;

use crate::core::http::{HttpAnswer, HttpKind, HttpRequest};
use crate::core::store::{Difference, MemoryStore};
use crate::core::{Action, ConnId, Core, DEMO_TOKEN, DEMO_USER, Inbound};
use crate::link::{Direction, Fault, Link, LinkConfig, Pair, Sent};

/// The simulated clocks' time zero: 2026-01-01T00:00:00Z, in ms since the Unix epoch
/// (PROTOCOL.md, "Catching up by clock"), so a device clock behind by a skew stays
/// above zero.
pub const SIM_EPOCH_MS: u64 = 1_767_225_600_000;

/// The longest `settle` may take in virtual time before the run fails.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(600);

/// What travels up a link: a frame on the WebSocket, or a polling request (DESIGN.md,
/// "Transports": the simulator models HTTP as messages on the same link).
#[derive(Debug, Clone, PartialEq)]
pub enum Up {
    /// A client frame.
    Frame(ClientFrame),
    /// A polling request: its id, its token, what it asks.
    Http(u64, String, HttpCall),
}

/// What travels down a link: a frame, the server's close (after the frames before it), or
/// the answer to a polling request.
#[derive(Debug, Clone, PartialEq)]
pub enum Down {
    /// A server frame.
    Frame(ServerFrame),
    /// The server closed the connection.
    Close(u16, String),
    /// The answer to polling request `id` (a poll's, or a write's).
    Http(u64, HttpAnswer, Answering),
}

/// What a polling answer answers: a periodic poll, which `settle` does not wait for
/// (like a heartbeat), or a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answering {
    /// A poll or its answer.
    Poll,
    /// A write or its answer.
    Write,
}

impl Up {
    fn is_http(&self) -> bool {
        matches!(self, Up::Http(..))
    }

    fn is_poll(&self) -> bool {
        matches!(self, Up::Http(_, _, HttpCall::Changes(_)))
    }
}

impl Down {
    fn is_http(&self) -> bool {
        matches!(self, Down::Http(..))
    }

    fn is_poll(&self) -> bool {
        matches!(self, Down::Http(_, _, Answering::Poll))
    }
}

impl std::fmt::Display for Up {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Up::Frame(frame) => write!(f, "{frame}"),
            Up::Http(_, _, call) => write!(f, "{call}"),
        }
    }
}

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Down::Frame(frame) => write!(f, "{frame}"),
            Down::Close(code, reason) => write!(f, "close {code} {reason}"),
            Down::Http(_, answer, _) => write!(f, "{answer}"),
        }
    }
}

/// Something on a link, stamped with a global sequence number so that frames due at the
/// same instant are delivered in the order they were sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<T> {
    /// Global send order.
    pub seq: u64,
    /// The item.
    pub item: T,
}

/// What happened, for the trace, the GUI and the headless runner.
#[derive(Debug, Clone, PartialEq)]
pub enum TraceKind {
    /// An engine event of a device.
    Device(EventKind),
    /// A frame handed to the up link.
    Up(ClientFrame),
    /// A frame delivered to a device.
    Down(ServerFrame),
    /// A polling request handed to the up link (the frame a write carries is in it).
    HttpUp(HttpCall),
    /// The answer to a polling request, delivered to the device.
    HttpDown(HttpAnswer),
    /// A frame or connection lost on a link (loss, drop, reset).
    Lost(String),
    /// The server restarted from its store.
    ServerRestart,
    /// The device restarted from its snapshot.
    DeviceRestart,
    /// A scenario's `say`: narration, changing nothing.
    Say(String),
}

/// One line of the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Virtual time.
    pub at: Duration,
    /// The device (its name), or `None` for the server.
    pub device: Option<String>,
    /// What.
    pub kind: TraceKind,
}

/// One simulated device.
#[derive(Clone)]
pub struct SimDevice {
    /// Its name (also its device id).
    pub name: String,
    /// Its engine.
    pub engine: Engine,
    /// Device → server.
    pub up: Link<Envelope<Up>>,
    /// Server → device.
    pub down: Link<Envelope<Down>>,
    conn: Option<ConnId>,
    /// The network is down (set by `offline`; survives a device restart).
    pub offline: bool,
    seed: u64,
}

impl SimDevice {
    /// A direction's latency, jitter and loss.
    pub fn config(&self, dir: Direction) -> LinkConfig {
        match dir {
            Direction::Up => self.up.config,
            Direction::Down => self.down.config,
        }
    }

    /// Both directions' settings and holds, as a pane shows them.
    pub fn links(&self) -> (Pair<LinkConfig>, Pair<bool>) {
        (
            Pair {
                up: self.up.config,
                down: self.down.config,
            },
            Pair {
                up: self.up.is_held(),
                down: self.down.is_held(),
            },
        )
    }
}

/// The simulated world.
#[derive(Clone)]
pub struct World {
    now: Duration,
    core: Core<MemoryStore>,
    devices: Vec<SimDevice>,
    next_conn: u64,
    next_seq: u64,
    /// Each timer as last seen (the engines', then the core's): when it is due, and the
    /// sequence number it got when it was set. Frames get theirs when they are sent, so a
    /// timer and a frame due at the same instant run in the order they were scheduled.
    timers: Vec<Option<(Duration, u64)>>,
    /// Everything observable, in order.
    pub trace: Vec<Trace>,
    /// Frames delivered (both directions), for the benchmark.
    pub frames_delivered: u64,
    /// Token rotations so far (each new token is named after its number).
    rotations: u64,
    /// Tokens on their way from a token source to a device: when, tie-break, device,
    /// token.
    tokens: Vec<(Duration, u64, usize, String)>,
}

/// A device to put in the world.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    /// Name and device id.
    pub name: String,
    /// Strategy for values.
    pub strategy: Strategy,
    /// Device → server link.
    pub up: LinkConfig,
    /// Server → device link.
    pub down: LinkConfig,
}

impl World {
    /// A world with these devices (not yet connected) and an empty server.
    pub fn new(seed: u64, specs: &[DeviceSpec]) -> World {
        let core = Core::new(BTreeMap::new(), MemoryStore::default())
            .expect("a memory store always loads")
            .with_clock_epoch(SIM_EPOCH_MS);
        let rng = Rng::new(seed);
        let devices = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let stream = i as u64 * 3;
                let seed = rng.fork(stream).next_u64();
                let mut engine =
                    Engine::new(config(&spec.name, spec.strategy, seed), Duration::ZERO);
                engine.set_wall_clock(SIM_EPOCH_MS);
                SimDevice {
                    name: spec.name.clone(),
                    engine,
                    up: Link::new(spec.up, rng.fork(stream + 1)),
                    down: Link::new(spec.down, rng.fork(stream + 2)),
                    conn: None,
                    offline: false,
                    seed,
                }
            })
            .collect();
        let mut world = World {
            now: Duration::ZERO,
            core,
            devices,
            next_conn: 1,
            next_seq: 0,
            timers: vec![None; specs.len() + 1],
            trace: Vec::new(),
            frames_delivered: 0,
            rotations: 0,
            tokens: Vec::new(),
        };
        for i in 0..world.devices.len() {
            world.pump(i);
        }
        world
    }

    /// Virtual time now.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The devices.
    pub fn devices(&self) -> &[SimDevice] {
        &self.devices
    }

    /// A device by name.
    pub fn device(&self, name: &str) -> Option<&SimDevice> {
        self.devices.iter().find(|d| d.name == name)
    }

    /// The index of a device by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.devices.iter().position(|d| d.name == name)
    }

    /// The server core.
    pub fn core(&self) -> &Core<MemoryStore> {
        &self.core
    }

    /// The server core, to change it (fault controls).
    pub fn core_mut(&mut self) -> &mut Core<MemoryStore> {
        &mut self.core
    }

    /// The user every simulated device belongs to.
    pub fn user(&self) -> &'static str {
        DEMO_USER
    }

    /// The next write to `key` (of the simulated user) is rejected with `forced`.
    pub fn reject_next(&mut self, key: Key) {
        self.core.reject_next(DEMO_USER, key);
    }

    /// A device's link in one direction, to change its settings or hold it.
    pub fn set_link(&mut self, i: usize, dir: Direction, f: impl FnOnce(&mut LinkConfig)) {
        let d = &mut self.devices[i];
        match dir {
            Direction::Up => f(&mut d.up.config),
            Direction::Down => f(&mut d.down.config),
        }
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Narration (`say`): into the trace at the current time; nothing else changes.
    pub fn say(&mut self, text: &str) {
        self.record(None, TraceKind::Say(text.to_string()));
    }

    fn record(&mut self, device: Option<usize>, kind: TraceKind) {
        let device = device.map(|i| self.devices[i].name.clone());
        self.trace.push(Trace {
            at: self.now,
            device,
            kind,
        });
    }

    // ---- moving things along -------------------------------------------------------------

    /// Carries out a device engine's outputs and records its events.
    fn pump(&mut self, i: usize) {
        while let Some(event) = self.devices[i].engine.poll_event() {
            self.record(Some(i), TraceKind::Device(event.kind));
        }
        while let Some(output) = self.devices[i].engine.poll_output() {
            match output {
                Output::Open => self.open(i),
                Output::Close => self.reset(i, None),
                Output::Send(frame) => self.send_up(i, frame),
                Output::Http { id, token, call } => self.send_http(i, id, token, call),
            }
            while let Some(event) = self.devices[i].engine.poll_event() {
                self.record(Some(i), TraceKind::Device(event.kind));
            }
        }
        self.note_timers();
    }

    fn open(&mut self, i: usize) {
        let now = self.now;
        if self.devices[i].offline {
            self.devices[i].engine.on_disconnected(None, now);
            return;
        }
        if self.core.websocket_blocked() {
            // `server block websocket`: the upgrade is answered 503.
            self.devices[i].engine.on_refused(503, now);
            return;
        }
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.core.connect(id, now);
        self.devices[i].conn = Some(id);
        self.devices[i].engine.on_connected(now);
    }

    /// The connection of device `i` is gone: links cleared, server told; the engine is
    /// told too unless it closed the connection itself (`close_from_engine`).
    fn reset(&mut self, i: usize, tell_engine: Option<Option<(u16, String)>>) {
        let d = &mut self.devices[i];
        // Polling requests are not the WebSocket's: they stay on their way.
        d.up.retain(|e| e.item.is_http());
        d.down.retain(|e| e.item.is_http());
        if let Some(id) = d.conn.take() {
            self.core.disconnect(id);
        }
        if let Some(close) = tell_engine {
            let now = self.now;
            self.devices[i].engine.on_disconnected(close, now);
        }
    }

    fn send_up(&mut self, i: usize, frame: ClientFrame) {
        let heartbeat = matches!(frame, ClientFrame::Ping { .. });
        let seq = self.seq();
        self.record(Some(i), TraceKind::Up(frame.clone()));
        let now = self.now;
        if self.devices[i].conn.is_none() {
            return;
        }
        let envelope = Envelope {
            seq,
            item: Up::Frame(frame),
        };
        if self.devices[i].up.send(envelope, heartbeat, now) == Sent::LostWithConnection {
            self.record(
                Some(i),
                TraceKind::Lost("up frame lost with its connection".into()),
            );
            self.reset(i, Some(None));
        }
    }

    /// A polling request goes up the link. Lost (the link's loss, or no network), it
    /// fails that request only: the device hears so at once, as from a reset socket.
    fn send_http(&mut self, i: usize, id: u64, token: String, call: HttpCall) {
        let seq = self.seq();
        self.record(Some(i), TraceKind::HttpUp(call.clone()));
        let now = self.now;
        let lost = self.devices[i].offline || {
            let envelope = Envelope {
                seq,
                item: Up::Http(id, token, call),
            };
            self.devices[i].up.send(envelope, false, now) == Sent::LostWithConnection
        };
        if lost {
            self.http_lost(i, id, "request lost");
        }
    }

    /// Polling request `id` of device `i` is lost on the link (or dropped).
    fn http_lost(&mut self, i: usize, id: u64, why: &str) {
        self.record(Some(i), TraceKind::Lost(format!("HTTP {why}")));
        let now = self.now;
        self.devices[i]
            .engine
            .on_http(id, HttpResult::Failed(why.to_string()), now);
        self.pump(i);
    }

    fn apply_actions(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send(conn, frame) => self.send_down(conn, Down::Frame(frame)),
                Action::Close(conn, code, reason) => {
                    self.send_down(conn, Down::Close(code, reason));
                }
                // Each device's link gets its own copy: links delay and lose frames apart.
                Action::Push(conns, change) => {
                    for conn in conns {
                        self.send_down(conn, Down::Frame(ServerFrame::Push(change.clone())));
                    }
                }
            }
        }
        self.note_timers();
    }

    /// Puts `item` on the down link of the device connected as `conn`, if one is.
    fn send_down(&mut self, conn: ConnId, item: Down) {
        let Some(i) = self.devices.iter().position(|d| d.conn == Some(conn)) else {
            return;
        };
        let heartbeat = matches!(item, Down::Frame(ServerFrame::Pong { .. }));
        let seq = self.seq();
        let now = self.now;
        let envelope = Envelope { seq, item };
        if self.devices[i].down.send(envelope, heartbeat, now) == Sent::LostWithConnection {
            self.record(
                Some(i),
                TraceKind::Lost("down frame lost with its connection".into()),
            );
            self.reset(i, Some(None));
            self.pump(i);
        }
    }

    fn deliver_up(&mut self, i: usize, item: Up) {
        self.frames_delivered += 1;
        let frame = match item {
            Up::Frame(frame) => frame,
            Up::Http(id, token, call) => return self.serve_http(i, id, token, call),
        };
        let Some(conn) = self.devices[i].conn else {
            return;
        };
        let actions = self
            .core
            .handle(vec![(conn, Inbound::Decoded(frame))], self.now);
        self.apply_actions(actions);
    }

    /// The server answers a polling request; the answer goes down the link.
    fn serve_http(&mut self, i: usize, id: u64, token: String, call: HttpCall) {
        let (kind, answering) = match &call {
            HttpCall::Changes(_) => (HttpKind::Changes(call.query()), Answering::Poll),
            HttpCall::Write(_) => (
                HttpKind::Write(call.body().unwrap_or_default()),
                Answering::Write,
            ),
        };
        let request = HttpRequest {
            token: Some(token),
            device_id: Some(self.devices[i].name.clone()),
            source: None,
            kind,
        };
        let (answer, actions) = self.core.http(request, self.now);
        self.apply_actions(actions);
        let seq = self.seq();
        let now = self.now;
        let envelope = Envelope {
            seq,
            item: Down::Http(id, answer, answering),
        };
        if self.devices[i].down.send(envelope, false, now) == Sent::LostWithConnection {
            self.http_lost(i, id, "answer lost");
        }
        self.note_timers();
    }

    fn deliver_down(&mut self, i: usize, item: Down) {
        self.frames_delivered += 1;
        let now = self.now;
        match item {
            Down::Http(id, answer, _) => {
                self.record(Some(i), TraceKind::HttpDown(answer.clone()));
                let result = HttpResult::Answered {
                    status: answer.status,
                    body: answer.body.to_string(),
                };
                self.devices[i].engine.on_http(id, result, now);
            }
            Down::Frame(frame) => {
                self.record(Some(i), TraceKind::Down(frame.clone()));
                self.devices[i].engine.on_frame(frame, now);
            }
            Down::Close(code, reason) => {
                self.record(
                    Some(i),
                    TraceKind::Lost(format!("server closed the connection: {code} {reason}")),
                );
                self.reset(i, Some(Some((code, reason))));
            }
        }
        self.pump(i);
    }

    /// Gives each timer set or moved since the last look the next sequence number. It runs
    /// whenever an engine or the core has taken an input (the end of [`World::pump`] and
    /// of [`World::apply_actions`]) and before every event, so a timer is ordered after the
    /// frames sent by the same input, and before anything sent later. (One exception: when
    /// a down frame is lost with its connection, the device's reset is pumped in the middle
    /// of the server's answers, and the timers are numbered there.)
    ///
    /// A slot is the earliest of its owner's deadlines (an engine's heartbeat and
    /// liveness, every connection's at the server). When the earliest moves later and
    /// another becomes the earliest, that one is numbered as if set then: an approximation
    /// that matters only when it ties with a frame to the microsecond.
    fn note_timers(&mut self) {
        let n = self.devices.len();
        for i in 0..=n {
            let due = match self.devices.get(i) {
                Some(d) => d.engine.poll_timeout(),
                None => self.core.poll_timeout(),
            };
            if due != self.timers[i].map(|(t, _)| t) {
                self.timers[i] = due.map(|t| (t, self.seq()));
            }
        }
    }

    /// When the next frame delivery or timer is due, if one is (held frames wait for the
    /// script and are not due).
    pub fn next_event_at(&self) -> Option<Duration> {
        self.next_event().map(|(at, _, _)| at)
    }

    /// The earliest pending event: (time, tie-break, what). Events due at the same instant
    /// run in the order they were scheduled (SCENARIOS.md).
    fn next_event(&self) -> Option<(Duration, u64, Next)> {
        let mut best: Option<(Duration, u64, Next)> = None;
        let mut consider = |t: Duration, tie: u64, n: Next| {
            if best
                .as_ref()
                .is_none_or(|(bt, btie, _)| (t, tie) < (*bt, *btie))
            {
                best = Some((t, tie, n));
            }
        };
        for (i, d) in self.devices.iter().enumerate() {
            if let Some(q) = d.up.peek() {
                consider(q.due, q.frame.seq, Next::Up(i));
            }
            if let Some(q) = d.down.peek() {
                consider(q.due, q.frame.seq, Next::Down(i));
            }
            if let Some((t, seq)) = self.timers[i] {
                consider(t, seq, Next::Engine(i));
            }
        }
        if let Some((t, seq)) = self.timers[self.devices.len()] {
            consider(t, seq, Next::Core);
        }
        for (k, (t, seq, ..)) in self.tokens.iter().enumerate() {
            consider(*t, *seq, Next::Token(k));
        }
        best
    }

    /// Runs the next event if it is due at or before `limit`.
    fn fire_next(&mut self, limit: Duration) -> bool {
        self.note_timers();
        let Some((t, _, next)) = self.next_event() else {
            return false;
        };
        if t > limit {
            return false;
        }
        self.now = self.now.max(t);
        let now = self.now;
        match next {
            Next::Up(i) => {
                if let Some(env) = self.devices[i].up.poll_due(now) {
                    self.deliver_up(i, env.item);
                }
            }
            Next::Down(i) => {
                if let Some(env) = self.devices[i].down.poll_due(now) {
                    self.deliver_down(i, env.item);
                }
            }
            Next::Engine(i) => {
                self.devices[i].engine.on_timeout(now);
                self.pump(i);
            }
            Next::Core => {
                let actions = self.core.on_timeout(now);
                self.apply_actions(actions);
            }
            Next::Token(k) => {
                let (_, _, i, token) = self.tokens.remove(k);
                self.devices[i].engine.set_token(&token, now);
                self.pump(i);
            }
        }
        true
    }

    /// `wait D`: delivers everything due at or before now + D.
    pub fn wait(&mut self, d: Duration) {
        let until = self.now + d;
        while self.wait_step(until) {}
    }

    /// One event of a `wait` that ends at `until`: `true` after running the next event due
    /// by then; `false` when none is left (the clock is then at `until`). The scenario
    /// player steps a `wait` this way, event by event.
    pub fn wait_step(&mut self, until: Duration) -> bool {
        if self.fire_next(until) {
            return true;
        }
        self.now = self.now.max(until);
        false
    }

    /// `settle`: runs until the world is quiet (see [`World::is_quiet`]). Fails after
    /// [`SETTLE_LIMIT`] of virtual time.
    pub fn settle(&mut self) -> Result<(), String> {
        let deadline = self.now + SETTLE_LIMIT;
        while self.settle_step(deadline)? {}
        Ok(())
    }

    /// One event of a `settle` with this deadline: `Ok(true)` after running an event,
    /// `Ok(false)` once the world is quiet, an error when it is not quiet by the deadline.
    pub fn settle_step(&mut self, deadline: Duration) -> Result<bool, String> {
        if self.is_quiet() {
            return Ok(false);
        }
        if self.fire_next(deadline) {
            return Ok(true);
        }
        if self.is_quiet() {
            return Ok(false);
        }
        self.now = deadline;
        Err(format!(
            "the world is not quiet after {} s of virtual time: {}",
            SETTLE_LIMIT.as_secs(),
            self.why_not_quiet().unwrap_or_default()
        ))
    }

    /// Quiet: no non-heartbeat frame in flight on an automatic link, every online device
    /// connected and past its handshake, no request awaiting an answer. Frames on a held
    /// link, and an offline device, count as quiet. A polling device is quiet once no
    /// write of it awaits an answer and it has had the answer to a poll sent after the
    /// server's last change (SCENARIOS.md, `settle`).
    pub fn is_quiet(&self) -> bool {
        self.why_not_quiet().is_none()
    }

    /// Why the world is not quiet, for error messages.
    pub fn why_not_quiet(&self) -> Option<String> {
        use sync_core::engine::connection::ConnectionState as C;
        for d in &self.devices {
            if d.offline {
                continue;
            }
            let held = d.up.is_held() || d.down.is_held();
            // Periodic polls are not waited for, like heartbeats.
            if !d.up.is_held() && d.up.queued().any(|q| !q.frame.item.is_poll()) {
                return Some(format!("{}: frames on the up link", d.name));
            }
            if !d.down.is_held() && d.down.queued().any(|q| !q.frame.item.is_poll()) {
                return Some(format!("{}: frames on the down link", d.name));
            }
            match d.engine.connection() {
                C::Connected => {}
                C::Polling if held => continue,
                C::Polling => {
                    let last_change = self.last_change();
                    let polled = d
                        .engine
                        .last_poll()
                        .is_some_and(|at| last_change.is_none_or(|c| at > c));
                    if !polled {
                        return Some(format!("{}: polling, not caught up yet", d.name));
                    }
                }
                // These never reconnect by themselves: nothing left to wait for.
                C::AuthFailed | C::ClosedByServer { .. } | C::Error { .. } | C::Offline => continue,
                // A handshake whose frames wait on a held link waits for the script.
                _ if held => continue,
                other => return Some(format!("{}: {other}", d.name)),
            }
            if d.engine.has_pending() && !held {
                return Some(format!("{}: a request awaits its answer", d.name));
            }
        }
        None
    }

    /// When the server last changed a value (virtual time), if it ever did.
    fn last_change(&self) -> Option<Duration> {
        let user = self.core.user(DEMO_USER)?;
        let ms = user.last_change_ms()?;
        Some(Duration::from_millis(ms.saturating_sub(SIM_EPOCH_MS)))
    }

    // ---- actions --------------------------------------------------------------------------

    /// A device's intent: `tap`.
    pub fn tap(&mut self, i: usize, key: &Key) -> Result<(), String> {
        let now = self.now;
        self.devices[i]
            .engine
            .tap(key, now)
            .map_err(|e| e.to_string())?;
        self.pump(i);
        Ok(())
    }

    /// A device's intent: `set`.
    pub fn set(&mut self, i: usize, key: &Key, value: Value) -> Result<(), String> {
        let now = self.now;
        self.devices[i]
            .engine
            .set(key, value, now)
            .map_err(|e| e.to_string())?;
        self.pump(i);
        Ok(())
    }

    /// A device's intent: add a comment.
    pub fn comment(&mut self, i: usize, key: &Key, text: &str) {
        let now = self.now;
        self.devices[i].engine.comment(key, text, now);
        self.pump(i);
    }

    /// A device edits the comment with that id (`DEVICE edit comment POST ID "text"`).
    pub fn edit_comment(&mut self, i: usize, key: &Key, id: &str, text: &str) {
        let now = self.now;
        self.devices[i].engine.edit_comment(key, id, text, now);
        self.pump(i);
    }

    /// A device deletes the comment with that id (`DEVICE delete comment POST ID`).
    pub fn delete_comment(&mut self, i: usize, key: &Key, id: &str) {
        let now = self.now;
        self.devices[i].engine.delete_comment(key, id, now);
        self.pump(i);
    }

    /// The device's network goes down (`true`) or comes back (`false`; it reconnects at
    /// once).
    pub fn set_offline(&mut self, i: usize, offline: bool) {
        if self.devices[i].offline == offline {
            return;
        }
        self.devices[i].offline = offline;
        let now = self.now;
        if offline {
            let polling = self.devices[i].engine.connection() == ConnectionState::Polling;
            if self.devices[i].engine.has_transport() || polling {
                self.record(Some(i), TraceKind::Lost("network down".into()));
                self.reset(i, None);
                // What was on its way over HTTP is lost with the network.
                self.devices[i].up.clear();
                self.devices[i].down.clear();
                self.devices[i].engine.on_network_down(now);
            }
        } else {
            self.devices[i].engine.set_online(true, now);
        }
        self.pump(i);
    }

    /// The device process restarts from its snapshot.
    pub fn restart_device(&mut self, i: usize) -> Result<(), String> {
        let snapshot: Snapshot = self.devices[i].engine.snapshot();
        self.reset(i, None);
        // The process's HTTP connections die with it: their requests and answers too.
        self.devices[i].up.clear();
        self.devices[i].down.clear();
        let d = &mut self.devices[i];
        d.seed = Rng::new(d.seed).next_u64();
        let mut config = config(&d.name, d.engine.strategy(), d.seed);
        // The token source's token, not the one the device was created with.
        config.token = d.engine.token().to_string();
        let settings = d.engine.settings();
        d.engine = Engine::restore(config, snapshot, self.now).map_err(|e| e.to_string())?;
        d.engine.configure(settings);
        d.engine.set_wall_clock(SIM_EPOCH_MS);
        self.record(Some(i), TraceKind::DeviceRestart);
        self.pump(i);
        Ok(())
    }

    /// Device `i`'s settings (the scenario's `reconnect attempts`, `batch size`); kept
    /// across a device restart.
    pub fn configure(&mut self, i: usize, settings: DeviceSettings) {
        self.devices[i].engine.configure(settings);
    }

    /// The device is asked to connect now (`DEVICE retry`): out of `error`, `auth-failed`
    /// or `closed` it opens a transport; in any other state nothing happens.
    pub fn retry(&mut self, i: usize) {
        let now = self.now;
        if self.devices[i].engine.retry(now) {
            self.pump(i);
        }
    }

    /// The server stops and starts again from its store: every connection drops.
    pub fn restart_server(&mut self) {
        self.core.restart().expect("a memory store always loads");
        self.record(None, TraceKind::ServerRestart);
        for i in 0..self.devices.len() {
            if self.devices[i].conn.is_some() {
                self.reset(i, Some(None));
                self.pump(i);
            }
        }
    }

    /// A write by the server itself.
    pub fn server_set(&mut self, key: &Key, value: Value) -> Result<(), String> {
        let actions = self.core.server_set(DEMO_USER, key, value, self.now)?;
        self.apply_actions(actions);
        Ok(())
    }

    /// `server rotate token`: the user gets a new token and the old one expires now; each
    /// device's token source hands it the new one after its `auth delay` (never, with
    /// `never`).
    pub fn rotate_token(&mut self) -> Result<(), String> {
        self.rotations += 1;
        let token = format!("{DEMO_TOKEN}-{}", self.rotations + 1);
        let actions = self.core.rotate_token(DEMO_USER, &token, self.now)?;
        self.apply_actions(actions);
        for i in 0..self.devices.len() {
            if let Some(delay) = self.devices[i].engine.settings().auth_delay {
                let seq = self.seq();
                self.tokens.push((self.now + delay, seq, i, token.clone()));
            }
        }
        Ok(())
    }

    /// `server block websocket` (`true`): upgrades are refused (503) and open WebSockets
    /// closed 1001; `false` ends it.
    pub fn block_websocket(&mut self, on: bool) {
        let actions = self.core.block_websocket(on);
        self.apply_actions(actions);
    }

    /// Holds a device's link(s).
    pub fn hold(&mut self, i: usize, dir: Option<Direction>, hold: bool) {
        let d = &mut self.devices[i];
        for dir in Direction::one_or_both(dir) {
            match (dir, hold) {
                (Direction::Up, true) => d.up.hold(),
                (Direction::Up, false) => d.up.unhold(),
                (Direction::Down, true) => d.down.hold(),
                (Direction::Down, false) => d.down.unhold(),
            }
        }
    }

    /// A fault on device `i`'s links, as the live server's connection task applies one:
    /// the one entry point for the scenario runner and the player's panes.
    pub fn fault(&mut self, i: usize, fault: Fault) -> Result<(), String> {
        match fault {
            Fault::Configure(dir, config) => self.set_link(i, dir, |c| *c = config),
            Fault::Hold(dir, on) => self.hold(i, Some(dir), on),
            Fault::Release(dir, n) => return self.release(i, dir, n),
            Fault::Drop(dir, n) => return self.drop_frame(i, dir, n),
        }
        Ok(())
    }

    /// How many frames wait on a link.
    pub fn queued(&self, i: usize, dir: Direction) -> usize {
        let d = &self.devices[i];
        match dir {
            Direction::Up => d.up.len(),
            Direction::Down => d.down.len(),
        }
    }

    /// The frames waiting on a device's links, one line each (oldest first), as the live
    /// server lists them: a pane shows a simulated device's queue like a live one's.
    pub fn queued_frames(&self, i: usize) -> crate::net::QueuedFrames {
        let d = &self.devices[i];
        crate::net::QueuedFrames {
            up: d.up.queued().map(|q| q.frame.item.to_string()).collect(),
            down: d.down.queued().map(|q| q.frame.item.to_string()).collect(),
        }
    }

    /// Delivers the `n`-th queued frame now (out of order). `Err` if there is none.
    pub fn release(&mut self, i: usize, dir: Direction, n: usize) -> Result<(), String> {
        let len = self.queued(i, dir);
        match dir {
            Direction::Up => {
                let env = self.devices[i]
                    .up
                    .release(n)
                    .ok_or_else(|| no_frame(n, len))?;
                self.deliver_up(i, env.item);
            }
            Direction::Down => {
                let env = self.devices[i]
                    .down
                    .release(n)
                    .ok_or_else(|| no_frame(n, len))?;
                self.deliver_down(i, env.item);
            }
        }
        Ok(())
    }

    /// Delivers a copy of `frame` to device `i` now, as a faulty transport that
    /// duplicates frames would (a test's fault; a WebSocket never does this).
    pub fn duplicate_down(&mut self, i: usize, frame: ServerFrame) {
        if self.devices[i].conn.is_some() {
            self.deliver_down(i, Down::Frame(frame));
        }
    }

    /// Loses the `n`-th queued frame and, with it, the connection; a polling request (or
    /// its answer) is lost alone.
    pub fn drop_frame(&mut self, i: usize, dir: Direction, n: usize) -> Result<(), String> {
        let len = self.queued(i, dir);
        let http = match dir {
            Direction::Up => self.devices[i].up.drop_nth(n).map(|e| match e.item {
                Up::Http(id, ..) => Some(id),
                Up::Frame(_) => None,
            }),
            Direction::Down => self.devices[i].down.drop_nth(n).map(|e| match e.item {
                Down::Http(id, ..) => Some(id),
                Down::Frame(_) | Down::Close(..) => None,
            }),
        };
        let Some(http) = http else {
            return Err(no_frame(n, len));
        };
        if let Some(id) = http {
            self.http_lost(i, id, &format!("message {n} dropped"));
            return Ok(());
        }
        self.record(
            Some(i),
            TraceKind::Lost(format!("frame {n} dropped: connection reset")),
        );
        self.reset(i, Some(None));
        self.pump(i);
        Ok(())
    }

    /// `expect converged`: every connected device shows the server's value, and knows its
    /// revision, for every key the server holds, and has no request outstanding. `Err`
    /// names the first difference.
    pub fn converged(&self) -> Result<(), String> {
        (0..self.devices.len()).try_for_each(|i| self.device_converged(i))
    }

    /// `expect DEVICE converged`: [`World::converged`] for one device (true of a device
    /// that is neither connected nor polling: it owes nothing until it is).
    pub fn device_converged(&self, i: usize) -> Result<(), String> {
        use sync_core::engine::connection::ConnectionState as C;
        let d = &self.devices[i];
        if !matches!(d.engine.connection(), C::Connected | C::Polling) {
            return Ok(());
        }
        let nothing = crate::core::store::UserData::default();
        let stored = self.core.user(DEMO_USER).unwrap_or(&nothing);
        let e = &d.engine;
        let difference = stored.difference(e.has_pending(), |k| e.shown(k), |k| e.known_rev(k));
        match difference {
            None => Ok(()),
            Some(Difference::Pending) => Err(format!("{} has a request outstanding", d.name)),
            Some(Difference::Value { key, shown, stored }) => Err(format!(
                "{} shows {key} = {shown}, the server has {stored}",
                d.name
            )),
            Some(Difference::Rev { key, known, stored }) => Err(format!(
                "{} knows {key} rev {known}, the server has rev {stored}",
                d.name
            )),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Next {
    Up(usize),
    Down(usize),
    Engine(usize),
    Core,
    /// A token source hands a device its token.
    Token(usize),
}

fn no_frame(n: usize, len: usize) -> String {
    format!("there is no frame {n} on a queue of {len}")
}

fn config(name: &str, strategy: Strategy, seed: u64) -> EngineConfig {
    EngineConfig {
        device_id: name.to_string(),
        token: DEMO_TOKEN.to_string(),
        strategy,
        seed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(name: &str, strategy: Strategy) -> DeviceSpec {
        DeviceSpec {
            name: name.into(),
            strategy,
            up: LinkConfig::default(),
            down: LinkConfig::default(),
        }
    }

    fn two(strategy: Strategy) -> World {
        let mut w = World::new(0, &[spec("phone", strategy), spec("laptop", strategy)]);
        w.settle().unwrap();
        w
    }

    #[test]
    fn a_like_reaches_the_other_device_and_everyone_converges() {
        let mut w = two(Strategy::SyncWithPush);
        let like = Key::parse("like/post-1").unwrap();
        w.tap(0, &like).unwrap();
        assert_eq!(w.devices()[0].engine.shown(&like), json!(true));
        w.wait(Duration::from_millis(99));
        assert_eq!(
            w.devices()[1].engine.shown(&like),
            json!(false),
            "not yet: 100 ms away"
        );
        w.wait(Duration::from_millis(1));
        assert_eq!(w.devices()[1].engine.shown(&like), json!(true));
        w.settle().unwrap();
        w.converged().unwrap();
    }

    #[test]
    fn a_timer_and_a_frame_due_together_run_in_the_order_they_were_scheduled() {
        // The phone's last send is its tap at time 0 (links: 50 ms each way), so its
        // heartbeat is due at 10 s. The laptop's tap at 9.9 s makes a push that reaches
        // the phone at 10 s too, but it was scheduled later: the ping goes first.
        let mut w = two(Strategy::SyncWithPush);
        let start = w.now();
        w.tap(0, &Key::parse("like/a").unwrap()).unwrap();
        w.wait(Duration::from_millis(9_900));
        w.tap(1, &Key::parse("like/b").unwrap()).unwrap();
        w.wait(Duration::from_millis(100));
        let due = start + Duration::from_secs(10);
        let at_due: Vec<&TraceKind> = w
            .trace
            .iter()
            .filter(|t| t.at == due && t.device.as_deref() == Some("phone"))
            .map(|t| &t.kind)
            .collect();
        let ping = at_due
            .iter()
            .position(|k| matches!(k, TraceKind::Up(ClientFrame::Ping { .. })));
        let push = at_due
            .iter()
            .position(|k| matches!(k, TraceKind::Down(ServerFrame::Push(_))));
        assert!(
            matches!((ping, push), (Some(p), Some(q)) if p < q),
            "at 10 s the phone should ping, then get the push: {at_due:#?}"
        );
    }

    #[test]
    fn same_seed_same_trace() {
        let run = |seed| {
            let mut w = World::new(
                seed,
                &[spec("a", Strategy::SyncWithPush), spec("b", Strategy::Sync)],
            );
            w.set_link(0, Direction::Up, |c| c.jitter = Duration::from_millis(80));
            w.settle().unwrap();
            for i in 0..20 {
                w.tap(i % 2, &Key::parse("like/x").unwrap()).unwrap();
                w.wait(Duration::from_millis(7));
            }
            w.settle().unwrap();
            format!("{:?}", w.trace)
        };
        assert_eq!(run(5), run(5));
    }

    #[test]
    fn held_push_released_out_of_order_is_stale() {
        let mut w = two(Strategy::SyncWithPush);
        let like = Key::parse("like/p").unwrap();
        w.hold(1, Some(Direction::Down), true);
        w.tap(0, &like).unwrap(); // rev 1: true
        w.settle().unwrap();
        w.tap(0, &like).unwrap(); // rev 2: false
        w.settle().unwrap();
        assert_eq!(w.queued(1, Direction::Down), 2);
        w.release(1, Direction::Down, 2).unwrap();
        w.release(1, Direction::Down, 1).unwrap();
        assert_eq!(w.devices()[1].engine.shown(&like), json!(false));
        assert_eq!(w.devices()[1].engine.counters().stale, 1);
        w.hold(1, None, false);
        w.settle().unwrap();
        w.converged().unwrap();
    }

    #[test]
    fn server_restart_and_device_restart_lose_nothing() {
        let mut w = two(Strategy::SyncWithPush);
        let vol = Key::Volume;
        w.set(0, &vol, json!(10)).unwrap();
        w.settle().unwrap();
        w.restart_server();
        w.set(1, &vol, json!(20)).unwrap();
        w.restart_device(1).unwrap();
        w.settle().unwrap();
        w.converged().unwrap();
        assert_eq!(w.core().value("demo", &vol), (json!(20), 2));
    }

    #[test]
    fn offline_device_is_quiet_and_catches_up() {
        let mut w = two(Strategy::SyncWithPush);
        let like = Key::parse("like/p").unwrap();
        w.set_offline(1, true);
        w.tap(0, &like).unwrap();
        w.tap(1, &Key::DarkMode).unwrap();
        w.settle().unwrap();
        w.set_offline(1, false);
        w.settle().unwrap();
        w.converged().unwrap();
        assert_eq!(w.devices()[1].engine.shown(&like), json!(true));
        assert_eq!(w.devices()[0].engine.shown(&Key::DarkMode), json!(true));
    }
}
