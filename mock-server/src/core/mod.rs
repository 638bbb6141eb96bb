//! The server as a sans-IO state machine: frames in, frames and closes out.
//!
//! It implements PROTOCOL.md exactly: the `hello` handshake, the write pipeline (rate
//! limit → decode → key → value → idempotency → forced rejection → apply), `batch`es of
//! writes, catch-up with `since` and `reset` or by clock with `since_time`, token rotation
//! with `token_expired` and re-authentication (`auth`), fan-out of pushes with the
//! writer's ack queued *before* its own echo, polling over HTTP ([`http`]), and every limit
//! and close code. The same core runs under the tokio shell and the simulator; neither has
//! any protocol logic of its own.
//!
//! Durability: accepted writes of one call to [`Core::handle`] are committed to the
//! [`Store`] together (group commit), and their acks and pushes are released only after
//! the commit returned.
//!
//! ## Method kinds, and the order to call them
//!
//! The same kinds as a device's `sync_core::engine::Engine`; every method that changes
//! state takes `now` (the server's clock) where time matters:
//!
//! - **Inputs**, what the network did: a connection opened ([`Core::connect`],
//!   [`Core::connect_from`] with its source address), something arrived on it
//!   ([`Core::heard`]), its frames ([`Core::handle`], a batch across connections: one
//!   commit), it closed ([`Core::disconnect`]), a deadline passed ([`Core::on_timeout`]).
//! - **Application commands**, what an operator or a test does: [`Core::server_set`],
//!   [`Core::reject_next`], [`Core::kick`], [`Core::restart`], [`Core::admin_auth`],
//!   [`Core::rotate_token`].
//! - **Outputs**: the [`Action`]s (send a frame, push a change to a user's devices, close a
//!   connection) that [`Core::handle`], [`Core::http`], [`Core::on_timeout`],
//!   [`Core::server_set`], [`Core::kick`], [`Core::rotate_token`] and
//!   [`Core::block_websocket`] return, and the next deadline, [`Core::poll_timeout`].
//!   Unlike the engine's, the actions are returned rather than polled: a batch's actions
//!   must leave together, after its commit.
//! - **Queries**, read-only: [`Core::user`], [`Core::value`], [`Core::writes`],
//!   [`Core::devices_of`], [`Core::device_of`], [`Core::overdue`], [`Core::forced`] and
//!   the rest.
//!
//! The call order: gather the frames that arrived (from any connections) and pass them to
//! [`Core::handle`] in one call; carry out the returned actions in order (each
//! connection's frames stay in order; a `Close` goes after the frames queued before it);
//! then read [`Core::poll_timeout`] again and call [`Core::on_timeout`] when it passes.
//! The live server's core task (`net::core_task`) and the simulator (`sim`) are exactly
//! this loop.
//!
//! This module is long because the write pipeline is one ordered sequence of steps, and
//! reads best beside PROTOCOL.md in one place; authentication failures ([`guard`]), rate
//! limits ([`rate`]) and durability ([`store`]) are split out.

mod deadlines;
pub mod guard;
pub mod http;
pub mod rate;
pub mod store;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;
use sync_core::protocol::model::{SERVER_DEVICE_ID, comments_from_value, comments_to_value};
use sync_core::protocol::{
    CatchUp, Change, ClientFrame, CommandOp, Current, ErrorCode, InvalidValue, Key,
    PROTOCOL_VERSION, Problem, ServerFrame, ValueKind, check_batch, close, decode_client_frame,
};

use deadlines::Deadlines;
use guard::AuthGuard;
use rate::{Refusals, TokenBucket};
use store::{Durable, Record, Store, StoreError, Stored, TokenRecord};

/// `hello` must arrive within this long of the upgrade.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection with no frame from the client for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection whose token was rotated away has this long to `auth` (then 4401).
pub const TOKEN_GRACE: Duration = Duration::from_secs(30);
/// The default user when no token is configured.
pub const DEMO_USER: &str = "demo";
/// The default token.
pub const DEMO_TOKEN: &str = "demo-token";

/// A connection, named by the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Queue this frame on the connection's ordered outbound queue.
    Send(ConnId, ServerFrame),
    /// Queue a `push` of this change on each of these connections' queues, in this order:
    /// one change for all of a user's devices, so a shell can encode it once (and no copy
    /// is made per device).
    Push(Vec<ConnId>, Change),
    /// Close the connection with this code and reason (after the frames queued before).
    Close(ConnId, u16, String),
}

impl Action {
    /// The connections it is for.
    pub fn conns(&self) -> &[ConnId] {
        match self {
            Action::Send(id, _) | Action::Close(id, ..) => std::slice::from_ref(id),
            Action::Push(ids, _) => ids,
        }
    }

    /// The same, one connection per action: a [`Action::Push`] becomes a `Send` of the
    /// push to each of its connections (for a shell that handles connections one by one).
    pub fn per_connection(self) -> Vec<Action> {
        match self {
            Action::Push(ids, change) => ids
                .into_iter()
                .map(|id| Action::Send(id, ServerFrame::Push(change.clone())))
                .collect(),
            other => vec![other],
        }
    }
}

/// What arrived on a connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A text frame.
    Text(String),
    /// A binary frame (not part of the protocol).
    Binary,
    /// A frame over 64 KiB (the shell could not read it).
    TooLarge,
    /// A frame already decoded: the simulator's engines hand the core their frames as
    /// values (the JSON path is the live server's, and is tested there).
    Decoded(ClientFrame),
}

#[derive(Debug, Clone)]
struct Conn {
    opened: Duration,
    /// When the latest frame from the client arrived (see [`Core::heard`]).
    last_frame: Duration,
    /// The address it came from, for [`AuthGuard`] (none in the simulator).
    source: Option<IpAddr>,
    auth: Option<(String, String)>,
    /// The token it authenticated with (`hello`, then each valid `auth`).
    token: String,
    /// When its token was rotated away, until a valid `auth`: its writes are refused
    /// `token_expired`, and [`TOKEN_GRACE`] later it is closed 4401.
    expired_at: Option<Duration>,
    bucket: TokenBucket,
    refusals: Refusals,
    /// The deadline it is filed under in [`Core::deadlines`]: [`Conn::deadline`] when
    /// last filed.
    due: Duration,
}

impl Conn {
    /// A connection opened at `now`, with its deadline (to be filed by the caller).
    fn new(now: Duration, source: Option<IpAddr>, token: String, bucket: TokenBucket) -> Conn {
        let mut conn = Conn {
            opened: now,
            last_frame: now,
            source,
            auth: None,
            token,
            expired_at: None,
            bucket,
            refusals: Refusals::default(),
            due: now,
        };
        conn.due = conn.deadline();
        conn
    }

    /// When it is closed unless something changes: its `hello` is due 5 s after it
    /// opened, a rotated-away token's `auth` 30 s after the rotation, and a frame 30 s
    /// after the last.
    fn deadline(&self) -> Duration {
        let idle = self.last_frame + IDLE_TIMEOUT;
        let expiry = self.expired_at.map_or(idle, |at| at + TOKEN_GRACE);
        if self.auth.is_none() {
            idle.min(self.opened + HELLO_TIMEOUT)
        } else {
            idle.min(expiry)
        }
    }

    /// Files it again under its deadline, after something the deadline depends on changed.
    fn refile(&mut self, id: ConnId, deadlines: &mut Deadlines) {
        let due = self.deadline();
        deadlines.file(id, Some(self.due), due);
        self.due = due;
    }
}

/// A write accepted in memory, waiting for the commit of the frames handled together.
struct Staged {
    record: Record,
    release: Release,
}

/// What a staged write sends once it is committed, and where among the other answers.
struct Release {
    ack: Action,
    /// How many immediate answers came before it: its ack goes in at that place, so every
    /// connection's answers keep the order of its frames.
    at: usize,
    /// Where its pushes go in: right after its ack, or for a write in a `batch`, after the
    /// batch's `batch_done` (PROTOCOL.md: every answer, `batch_done`, then the pushes).
    push_at: usize,
    /// The connections of the user when the write arrived: they get its push. A device
    /// whose `hello` comes later in the same batch gets the change in its `welcome`
    /// instead, never as a push ahead of it.
    recipients: Vec<ConnId>,
}

/// The server core. See the [module docs](self).
#[derive(Clone)]
pub struct Core<S: Store> {
    /// The tokens the server was started with (token → user).
    configured: BTreeMap<String, String>,
    /// Valid tokens (token → user): the configured ones and those rotations made, less
    /// those rotations retired.
    tokens: BTreeMap<String, String>,
    /// Tokens rotations retired (token → user): they get `token_expired`, not
    /// `unauthorized`, so a client knows to refresh rather than give up.
    expired: BTreeMap<String, String>,
    store: S,
    data: Durable,
    conns: BTreeMap<ConnId, Conn>,
    /// The connections by deadline, for [`Core::poll_timeout`] and [`Core::on_timeout`].
    deadlines: Deadlines,
    /// Each user's authenticated connections, the ones a write of theirs is pushed to:
    /// kept beside `conns` so a write finds its recipients without looking at every
    /// connection of every user.
    signed_in: HashMap<String, BTreeSet<ConnId>>,
    devices: HashMap<(String, String), ConnId>,
    /// Pending forced rejections: `(user, key)`.
    forced: BTreeSet<(String, Key)>,
    guard: AuthGuard,
    /// The server's clock: ms since the Unix epoch at the shell's time zero (the `now`
    /// every call takes counts from there), for the change times `since_time` reads.
    clock_epoch_ms: u64,
    /// Polling over HTTP: its buckets, and the `block_websocket` fault.
    http: http::HttpState,
    /// Set when a commit failed and the store could not be read back either: the state in
    /// memory may hold writes that were never stored, so nothing is served (every frame
    /// is answered with a 1011 close) until the server restarts.
    broken: Option<String>,
}

impl<S: Store> Core<S> {
    /// A core serving `tokens` (token → user; empty for the demo user), with what `store`
    /// holds.
    pub fn new(tokens: BTreeMap<String, String>, mut store: S) -> Result<Self, StoreError> {
        let configured = if tokens.is_empty() {
            BTreeMap::from([(DEMO_TOKEN.to_string(), DEMO_USER.to_string())])
        } else {
            tokens
        };
        let data = store.load()?;
        let (tokens, expired) = token_tables(&configured, &data);
        Ok(Core {
            configured,
            tokens,
            expired,
            store,
            data,
            conns: BTreeMap::new(),
            deadlines: Deadlines::default(),
            signed_in: HashMap::new(),
            devices: HashMap::new(),
            forced: BTreeSet::new(),
            guard: AuthGuard::new(guard::MAX_AUTH_FAILURES),
            clock_epoch_ms: 0,
            http: http::HttpState::default(),
            broken: None,
        })
    }

    /// Sets the server's clock: `epoch_ms` (ms since the Unix epoch) is the time at the
    /// shell's time zero. The live shell gives the wall clock; the simulator a fixed date.
    pub fn with_clock_epoch(mut self, epoch_ms: u64) -> Self {
        self.clock_epoch_ms = epoch_ms;
        self
    }

    /// The server's time at `now`, in ms since the Unix epoch.
    fn time_ms(&self, now: Duration) -> u64 {
        self.clock_epoch_ms + now.as_millis() as u64
    }

    /// Stops checking an address after more than `limit` failed token checks within a
    /// minute, instead of [`guard::MAX_AUTH_FAILURES`] (0: no limit), for QA setups that
    /// test failures in bulk.
    pub fn with_max_auth_failures(mut self, limit: usize) -> Self {
        self.guard = AuthGuard::new(limit);
        self
    }

    /// The server restarts: every connection is gone, forced rejections are forgotten, and
    /// everything is loaded again from the store, as a new process would. Anything not
    /// committed is lost (nothing is: acks follow the commit).
    pub fn restart(&mut self) -> Result<(), StoreError> {
        self.conns.clear();
        self.deadlines = Deadlines::default();
        self.signed_in.clear();
        self.devices.clear();
        self.forced.clear();
        match self.store.load() {
            Ok(data) => {
                (self.tokens, self.expired) = token_tables(&self.configured, &data);
                self.data = data;
                self.broken = None;
                Ok(())
            }
            Err(e) => {
                // Nothing read back: serve nothing rather than the old memory.
                self.broken = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// The store (to take it back when the server stops).
    pub fn into_store(self) -> S {
        self.store
    }

    /// A new connection (the WebSocket upgrade succeeded), of unknown origin.
    pub fn connect(&mut self, id: ConnId, now: Duration) {
        self.connect_from(id, None, now);
    }

    /// A new connection from `source`: failed token checks are counted per source address.
    pub fn connect_from(&mut self, id: ConnId, source: Option<IpAddr>, now: Duration) {
        let conn = Conn::new(now, source, String::new(), TokenBucket::full(now));
        self.insert_conn(id, conn);
    }

    /// Takes in a new connection, filed under its deadline (an earlier one of the same id
    /// is forgotten first).
    fn insert_conn(&mut self, id: ConnId, conn: Conn) {
        self.remove_conn(id);
        self.deadlines.file(id, None, conn.due);
        self.conns.insert(id, conn);
    }

    /// Something arrived from the client at `at` (a frame, or a WebSocket-level ping).
    ///
    /// Idleness (4408) is judged by arrival: a shell whose core task falls behind reports
    /// arrivals here before [`Core::on_timeout`] (those of the [`Core::overdue`]
    /// connections are enough), so a frame still waiting to be handled never counts as
    /// silence. [`Core::handle`] counts each frame as heard at its `now`.
    pub fn heard(&mut self, id: ConnId, at: Duration) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.last_frame = conn.last_frame.max(at);
            conn.refile(id, &mut self.deadlines);
        }
    }

    /// An admin socket's token check from `source`: `Ok` when `ok` and the address may
    /// still try; a wrong token counts as a failed check, like a wrong `hello` token.
    pub fn admin_auth(
        &mut self,
        source: Option<IpAddr>,
        ok: bool,
        now: Duration,
    ) -> Result<(), ErrorCode> {
        if self.guard.blocked(source, now) {
            return Err(ErrorCode::TooManyAttempts);
        }
        if !ok {
            self.guard.failed(source, now);
            return Err(ErrorCode::Unauthorized);
        }
        Ok(())
    }

    /// The connection is gone (closed by either side). Idempotent.
    pub fn disconnect(&mut self, id: ConnId) {
        if let Some(conn) = self.remove_conn(id)
            && let Some(device) = conn.auth
            && self.devices.get(&device) == Some(&id)
        {
            self.devices.remove(&device);
        }
    }

    /// Frames that arrived together, in order. Accepted writes among them share one
    /// commit; their acks and pushes follow it.
    pub fn handle(&mut self, frames: Vec<(ConnId, Inbound)>, now: Duration) -> Vec<Action> {
        // Sized for the batch at once: growing these a step at a time moved their large
        // elements again and again (2 % of the server's CPU under `loadgen`).
        let mut out = Vec::with_capacity(frames.len());
        let mut staged: Vec<Staged> = Vec::with_capacity(frames.len());
        for (id, frame) in frames {
            if !self.conns.contains_key(&id) {
                continue;
            }
            if let Some(why) = &self.broken {
                let message = format!("store unavailable: {why}");
                self.store_failed(id, message, &mut out);
                continue;
            }
            self.frame(id, frame, now, &mut out, &mut staged);
        }
        self.commit(staged, &mut out);
        out
    }

    /// Commits the batch's writes, then puts their acks and pushes back among the batch's
    /// other answers in arrival order: nothing of the batch leaves before the commit, and
    /// no answer overtakes an earlier one (a `pong` never before the `ack` of the `set`
    /// sent before it).
    fn commit(&mut self, staged: Vec<Staged>, out: &mut Vec<Action>) {
        if staged.is_empty() {
            return;
        }
        // The records go to the store as they are: split off, not copied.
        let (records, releases): (Vec<Record>, Vec<Release>) =
            staged.into_iter().map(|s| (s.record, s.release)).unzip();
        if let Err(e) = self.store.commit(&records) {
            // Nothing is acknowledged. The in-memory state is rebuilt from the store, and
            // the writers are disconnected: they reconnect and resend (idempotently). So is
            // every connection answered after the first write of the batch: a `welcome` or
            // a reject's `current` may show a value that was never stored.
            let first = releases.first().map_or(0, |s| s.at);
            let tainted: BTreeSet<ConnId> = releases
                .iter()
                .map(|s| &s.ack)
                .chain(&out[first.min(out.len())..])
                .flat_map(|a| a.conns().iter().copied())
                .collect();
            out.retain_mut(|a| match a {
                Action::Send(id, _) => !tainted.contains(id),
                Action::Push(ids, _) => {
                    ids.retain(|id| !tainted.contains(id));
                    !ids.is_empty()
                }
                Action::Close(..) => true,
            });
            for id in tainted {
                self.store_failed(id, e.to_string(), out);
            }
            match self.store.load() {
                Ok(data) => self.data = data,
                Err(reload) => {
                    // Memory may now hold writes the store never got: answering from it
                    // could acknowledge a resend of a lost write as a duplicate.
                    let why = format!("{e}; then {reload}");
                    tracing::error!("the store failed twice, serving nothing: {why}");
                    for id in self.conns.keys().copied().collect::<Vec<_>>() {
                        self.store_failed(id, format!("store unavailable: {why}"), out);
                    }
                    self.broken = Some(why);
                }
            }
            return;
        }
        // Each ack and push with the place it goes in; a stable sort keeps, at one place,
        // the order of the writes (their revisions) and every ack before its pushes.
        let mut released: Vec<(usize, Action)> = Vec::with_capacity(2 * releases.len());
        for (record, s) in records.iter().zip(releases) {
            released.push((s.at, s.ack));
            // Those still connected (one replaced later among these frames is gone).
            let mut recipients = s.recipients;
            recipients.retain(|id| self.conns.contains_key(id));
            if !recipients.is_empty() {
                released.push((s.push_at, Action::Push(recipients, change_of(record))));
            }
        }
        released.sort_by_key(|(at, _)| *at);
        let immediate = std::mem::replace(out, Vec::with_capacity(out.len() + released.len()));
        let mut released = released.into_iter().peekable();
        for (i, action) in immediate.into_iter().enumerate() {
            while let Some((_, r)) = released.next_if(|(at, _)| *at <= i) {
                out.push(r);
            }
            out.push(action);
        }
        out.extend(released.map(|(_, r)| r));
    }

    /// The user's authenticated connections, which a write of theirs is pushed to.
    fn recipients(&self, user: &str) -> Vec<ConnId> {
        self.signed_in
            .get(user)
            .map_or_else(Vec::new, |ids| ids.iter().copied().collect())
    }

    /// The connection `id` is `device` from now on: its user's writes are pushed to it.
    fn sign_in(&mut self, id: ConnId, device: (String, String)) {
        if let Some(conn) = self.conns.get_mut(&id) {
            self.signed_in
                .entry(device.0.clone())
                .or_default()
                .insert(id);
            conn.auth = Some(device);
            conn.refile(id, &mut self.deadlines);
        }
    }

    /// Forgets the connection `id`, and it among its user's recipients.
    fn remove_conn(&mut self, id: ConnId) -> Option<Conn> {
        let conn = self.conns.remove(&id)?;
        self.deadlines.remove(id, conn.due);
        if let Some((user, _)) = &conn.auth
            && let Some(ids) = self.signed_in.get_mut(user)
        {
            ids.remove(&id);
            if ids.is_empty() {
                self.signed_in.remove(user);
            }
        }
        Some(conn)
    }

    fn fan_out(&self, user: &str, change: Change, out: &mut Vec<Action>) {
        let recipients = self.recipients(user);
        if !recipients.is_empty() {
            out.push(Action::Push(recipients, change));
        }
    }

    fn frame(
        &mut self,
        id: ConnId,
        frame: Inbound,
        now: Duration,
        out: &mut Vec<Action>,
        staged: &mut Vec<Staged>,
    ) {
        let conn = self.conns.get_mut(&id).expect("checked by the caller");
        conn.last_frame = conn.last_frame.max(now);
        conn.refile(id, &mut self.deadlines);
        let text = match frame {
            Inbound::TooLarge => {
                return self.close_with(
                    id,
                    ErrorCode::TooLarge,
                    "frame over 64 KiB",
                    None,
                    close::TOO_LARGE,
                    out,
                );
            }
            Inbound::Binary if conn.auth.is_none() => {
                return self.close_with(
                    id,
                    ErrorCode::HelloRequired,
                    "send `hello` first",
                    None,
                    close::BAD_HELLO,
                    out,
                );
            }
            Inbound::Binary => {
                let message = Problem::Binary.to_string();
                return out.push(error(id, ErrorCode::BadMessage, message, None));
            }
            Inbound::Text(text) => Ok(text),
            Inbound::Decoded(frame) => Err(frame),
        };
        // Step 2, decoding, comes first only to tell a `batch`, which costs no token of its
        // own (its writes cost one each, see [`Core::batch`]).
        let (decoded, text) = match text {
            Ok(text) => (decode_client_frame(&text), Some(text)),
            Err(frame) => (Ok(frame), None),
        };
        let batch = conn.auth.is_some() && matches!(decoded, Ok(ClientFrame::Batch { .. }));
        // Step 1: rate limit; a refused frame is not processed.
        if !batch && !conn.bucket.take(now) {
            if conn.refusals.refused(now) {
                return self.refused_too_long(id, out);
            }
            // Answered in kind from what was read of it: decoded already, or a glance at
            // the text of one that did not decode.
            let answer = match (&decoded, text) {
                (Ok(frame), _) => rate_limited(id, frame),
                (Err(_), Some(text)) => rate_limited_text(id, &text),
                (Err(_), None) => unreachable!("a decoded frame has no decoding error"),
            };
            return out.push(answer);
        }
        let Some((user, device)) = conn.auth.clone() else {
            return self.before_hello(id, decoded, now, out);
        };
        let frame = match decoded {
            Ok(frame) => frame,
            Err(e) => return out.push(error(id, ErrorCode::BadMessage, e.to_string(), e.id)),
        };
        match frame {
            ClientFrame::Hello { .. } => out.push(error(
                id,
                ErrorCode::BadMessage,
                "already authenticated: a second `hello` changes nothing".into(),
                None,
            )),
            ClientFrame::Ping { id: rid } => {
                out.push(Action::Send(id, ServerFrame::Pong { id: rid }))
            }
            ClientFrame::Batch { id: rid, writes } => {
                self.batch(id, (&user, &device), rid, writes, now, out, staged)
            }
            ClientFrame::Auth { id: rid, token } => self.auth(id, &user, rid, token, now, out),
            write => self.write_frame(id, (&user, &device), write, now, out, staged),
        }
    }

    /// A `batch`: each write through the pipeline as if sent alone, each costing one
    /// token (over the limit, that write and every later one are `reject rate_limited`);
    /// then `batch_done`, then the pushes of its accepted writes, in revision order. Its
    /// accepted writes are staged with the other frames', so they share one commit.
    #[allow(clippy::too_many_arguments)]
    fn batch(
        &mut self,
        id: ConnId,
        who: (&str, &str),
        rid: u64,
        writes: Vec<ClientFrame>,
        now: Duration,
        out: &mut Vec<Action>,
        staged: &mut Vec<Staged>,
    ) {
        // A text frame was checked by the decoder; one handed over decoded is checked here.
        if let Err(problem) = check_batch(&writes) {
            return out.push(error(
                id,
                ErrorCode::BadMessage,
                problem.to_string(),
                Some(rid),
            ));
        }
        let first = staged.len();
        let count = writes.len() as u64;
        let mut limited = false;
        for write in writes {
            let conn = self
                .conns
                .get_mut(&id)
                .expect("open while its frame is handled");
            limited = limited || !conn.bucket.take(now);
            if limited {
                out.push(rate_limited(id, &write));
            } else {
                self.write_frame(id, who, write, now, out, staged);
            }
        }
        out.push(Action::Send(id, ServerFrame::BatchDone { id: rid, count }));
        let after_done = out.len();
        for s in &mut staged[first..] {
            s.release.push_at = after_done;
        }
        let conn = self
            .conns
            .get_mut(&id)
            .expect("open while its frame is handled");
        if limited && conn.refusals.refused(now) {
            self.refused_too_long(id, out);
        }
    }

    /// `auth`: a valid token of the same user ends an expiry; an expired one changes
    /// nothing; an unknown one, or another user's, is `unauthorized` and closes 4401 (and
    /// counts as a failed token check of the address).
    fn auth(
        &mut self,
        id: ConnId,
        user: &str,
        rid: u64,
        token: String,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let source = self.conns.get(&id).and_then(|c| c.source);
        if self.guard.blocked(source, now) {
            return self.too_many_attempts(id, Some(rid), out);
        }
        if self.tokens.get(&token).is_some_and(|u| u == user) {
            let conn = self
                .conns
                .get_mut(&id)
                .expect("open while its frame is handled");
            conn.token = token;
            conn.expired_at = None;
            conn.refile(id, &mut self.deadlines);
            return out.push(Action::Send(id, ServerFrame::Authed { id: rid }));
        }
        if self.expired.get(&token).is_some_and(|u| u == user) {
            let message = "this token was rotated away: ask for the new one".to_string();
            return out.push(error(id, ErrorCode::TokenExpired, message, Some(rid)));
        }
        if !self.tokens.contains_key(&token) && !self.expired.contains_key(&token) {
            self.guard.failed(source, now);
        }
        self.close_with(
            id,
            ErrorCode::Unauthorized,
            "unknown token, or another user's",
            Some(rid),
            close::UNAUTHORIZED,
            out,
        );
    }

    /// A `set` or `command` (alone or from a batch) into the write pipeline. On a
    /// connection whose token expired it is refused before any step (nothing applied).
    fn write_frame(
        &mut self,
        id: ConnId,
        (user, device): (&str, &str),
        frame: ClientFrame,
        now: Duration,
        out: &mut Vec<Action>,
        staged: &mut Vec<Staged>,
    ) {
        if self.conns.get(&id).is_some_and(|c| c.expired_at.is_some()) {
            let (rid, key) = match &frame {
                ClientFrame::Set { id, key, .. } | ClientFrame::Command { id, key, .. } => {
                    (*id, key.as_str())
                }
                other => unreachable!("only writes reach the pipeline, not {other}"),
            };
            let message = "the token expired: nothing applied; send `auth` with the new one";
            return out.push(reject(
                id,
                rid,
                key,
                ErrorCode::TokenExpired,
                message.into(),
                None,
            ));
        }
        let (rid, key, write, local_rev) = match frame {
            ClientFrame::Set {
                id,
                key,
                value,
                local_rev,
            } => (id, key, Write::Set(value), local_rev),
            ClientFrame::Command {
                id,
                key,
                op,
                local_rev,
            } => (id, key, Write::Command(op), local_rev),
            other => unreachable!("only writes reach the pipeline, not {other}"),
        };
        let at = (rid, local_rev, now);
        self.write(id, user, device, &key, write, at, out, staged);
    }

    fn before_hello(
        &mut self,
        id: ConnId,
        decoded: Result<ClientFrame, sync_core::protocol::DecodeError>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let (protocol, token, device_id, catch_up) = match decoded {
            Ok(ClientFrame::Hello {
                protocol,
                token,
                device_id,
                catch_up,
            }) => (protocol, token, device_id, catch_up),
            Err(e) if e.in_hello && is_token_problem(&e.problem) => {
                return self.close_with(
                    id,
                    ErrorCode::Unauthorized,
                    &e.to_string(),
                    None,
                    close::UNAUTHORIZED,
                    out,
                );
            }
            Err(e) if e.in_hello => {
                return self.close_with(
                    id,
                    ErrorCode::BadMessage,
                    &e.to_string(),
                    None,
                    close::BAD_HELLO,
                    out,
                );
            }
            _ => {
                return self.close_with(
                    id,
                    ErrorCode::HelloRequired,
                    "the first frame must be `hello`",
                    None,
                    close::BAD_HELLO,
                    out,
                );
            }
        };
        if protocol != PROTOCOL_VERSION {
            let message = format!(
                "protocol {protocol} is not supported; this server speaks {PROTOCOL_VERSION}"
            );
            return self.close_with(
                id,
                ErrorCode::UnsupportedProtocol,
                &message,
                None,
                close::BAD_HELLO,
                out,
            );
        }
        let source = self.conns.get(&id).and_then(|c| c.source);
        if self.guard.blocked(source, now) {
            return self.too_many_attempts(id, None, out);
        }
        if self.expired.contains_key(&token) {
            return self.close_with(
                id,
                ErrorCode::TokenExpired,
                "this token was rotated away: ask for the new one",
                None,
                close::UNAUTHORIZED,
                out,
            );
        }
        let Some(user) = self.tokens.get(&token).cloned() else {
            self.guard.failed(source, now);
            return self.close_with(
                id,
                ErrorCode::Unauthorized,
                "unknown token",
                None,
                close::UNAUTHORIZED,
                out,
            );
        };
        let device = (user.clone(), device_id);
        if let Some(old) = self.devices.insert(device.clone(), id)
            && old != id
        {
            self.close_with(
                old,
                ErrorCode::Replaced,
                "a newer connection of this device took over",
                None,
                close::REPLACED,
                out,
            );
        }
        self.sign_in(id, device);
        self.conns.get_mut(&id).expect("open").token = token;
        let welcome = self.welcome(&user, catch_up);
        out.push(Action::Send(id, welcome));
    }

    /// `welcome`: every change after `since`, or the whole state with `reset` when `since`
    /// is ahead of the server (it lost history); or, by clock, every key whose last change
    /// is later than `since_time` (never `reset`: times cannot tell a lost history).
    fn welcome(&self, user: &str, catch_up: CatchUp) -> ServerFrame {
        let data = self.data.users.get(user);
        let head = data.map_or(0, |d| d.head);
        let (reset, newer): (bool, &dyn Fn(&Stored) -> bool) = match catch_up {
            CatchUp::Since(since) if since > head => (true, &|_| true),
            CatchUp::Since(since) => (false, &move |s: &Stored| s.rev > since),
            CatchUp::SinceTime(t) => (false, &move |s: &Stored| s.time_ms > t),
        };
        let mut changes: Vec<Change> = data
            .into_iter()
            .flat_map(|d| d.keys.iter())
            .filter(|(_, s)| newer(s))
            .map(|(key, stored)| change_of_parts(key, stored))
            .collect();
        changes.sort_by_key(|c| c.rev);
        ServerFrame::Welcome {
            user: user.to_string(),
            rev: head,
            changes,
            reset,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        conn: ConnId,
        user: &str,
        device: &str,
        key_text: &str,
        write: Write,
        (rid, local_rev, now): (u64, u64, Duration),
        out: &mut Vec<Action>,
        staged: &mut Vec<Staged>,
    ) {
        // Step 3: the key.
        let key = match Key::parse(key_text) {
            Ok(key) => key,
            Err(e) => {
                return out.push(reject(
                    conn,
                    rid,
                    key_text,
                    ErrorCode::UnknownKey,
                    e.to_string(),
                    None,
                ));
            }
        };
        let current = self.current(user, &key);
        let refuse =
            |code, message: String| reject(conn, rid, key_text, code, message, current.clone());
        // Step 4: the value (what can be judged without the stored list).
        if let Err(InvalidValue(message)) = write.check(&key) {
            return out.push(refuse(ErrorCode::InvalidValue, message));
        }
        // Step 5: idempotency.
        let mark = self
            .data
            .users
            .get(user)
            .and_then(|d| d.marks.get(device))
            .and_then(|m| m.get(&key));
        if let Some(mark) = mark {
            if local_rev == mark.local_rev {
                let ack = ServerFrame::Ack {
                    id: rid,
                    key: key_text.to_string(),
                    value: mark.value.clone(),
                    rev: mark.rev,
                    duplicate: true,
                };
                return out.push(Action::Send(conn, ack));
            }
            if local_rev < mark.local_rev {
                let message = format!(
                    "local_rev {local_rev} is older than {} already applied for this device and key",
                    mark.local_rev
                );
                return out.push(refuse(ErrorCode::Superseded, message));
            }
        }
        // Step 4, continued: a command's effect on the stored list (a missing id, a 101st
        // comment). Judged after idempotency so that resending an applied command is a
        // duplicate, not an error.
        let rev = self.data.users.get(user).map_or(0, |d| d.head) + 1;
        let value = match write.value_to_store(&key, current.as_ref(), rev, device) {
            Ok(value) => value,
            Err(InvalidValue(message)) => {
                return out.push(refuse(ErrorCode::InvalidValue, message));
            }
        };
        // Step 6: fault injection.
        if self.forced.remove(&(user.to_string(), key.clone())) {
            return out.push(refuse(
                ErrorCode::Forced,
                "rejected on purpose (fault injection)".into(),
            ));
        }
        // Step 7: apply (in memory now; durable with the batch's commit, before the ack).
        let stored = Stored {
            value: value.clone(),
            rev,
            device_id: device.to_string(),
            local_rev,
            time_ms: self.time_ms(now),
        };
        let record = Record {
            user: user.to_string(),
            key,
            stored,
        };
        self.data.apply(&record);
        let ack = ServerFrame::Ack {
            id: rid,
            key: key_text.to_string(),
            value,
            rev,
            duplicate: false,
        };
        staged.push(Staged {
            release: Release {
                recipients: self.recipients(&record.user),
                ack: Action::Send(conn, ack),
                at: out.len(),
                push_at: out.len(),
            },
            record,
        });
    }

    fn current(&self, user: &str, key: &Key) -> Option<Current> {
        self.data
            .users
            .get(user)
            .and_then(|d| d.keys.get(key))
            .map(|s| Current {
                value: s.value.clone(),
                rev: s.rev,
            })
    }

    fn close_with(
        &mut self,
        id: ConnId,
        code: ErrorCode,
        message: &str,
        rid: Option<u64>,
        close_code: u16,
        out: &mut Vec<Action>,
    ) {
        out.push(error(id, code, message.to_string(), rid));
        out.push(Action::Close(id, close_code, code.to_string()));
        self.disconnect(id);
    }

    /// `error rate_limited`, then close 1008: the connection was refused frames in each of
    /// 5 consecutive seconds.
    fn refused_too_long(&mut self, id: ConnId, out: &mut Vec<Action>) {
        self.close_with(
            id,
            ErrorCode::RateLimited,
            "refused frames in each of 5 consecutive seconds",
            None,
            close::POLICY,
            out,
        );
    }

    /// `error too_many_attempts`, then close 1008: the address is past its failed token
    /// checks (a `hello` or an `auth`, `rid` its id).
    fn too_many_attempts(&mut self, id: ConnId, rid: Option<u64>, out: &mut Vec<Action>) {
        self.close_with(
            id,
            ErrorCode::TooManyAttempts,
            guard::TOO_MANY,
            rid,
            close::POLICY,
            out,
        );
    }

    /// `error store_failed`, then close 1011.
    fn store_failed(&mut self, id: ConnId, message: String, out: &mut Vec<Action>) {
        self.close_with(
            id,
            ErrorCode::StoreFailed,
            &message,
            None,
            close::STORE_FAILED,
            out,
        );
    }

    // ---- timers -------------------------------------------------------------------------

    /// When [`Core::on_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let first = self.deadlines.first();
        debug_assert_eq!(
            first,
            self.conns.values().map(Conn::deadline).min(),
            "every connection is filed under its deadline"
        );
        first
    }

    /// The connections whose deadline has passed at `now`, as far as the core knows: the
    /// ones [`Core::on_timeout`] would close unless something arrived on them that the
    /// shell has not reported yet (see [`Core::heard`]). Any other connection's deadline
    /// is later still, whatever arrived on it.
    pub fn overdue(&self, now: Duration) -> Vec<ConnId> {
        self.deadlines.due(now)
    }

    /// Closes connections whose `hello`, whose next frame, or whose `auth` after an
    /// expiry is overdue.
    pub fn on_timeout(&mut self, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        let due: Vec<(ConnId, ErrorCode)> = self
            .deadlines
            .due(now)
            .into_iter()
            .filter_map(|id| {
                let c = self.conns.get(&id)?;
                if c.auth.is_none() && now >= c.opened + HELLO_TIMEOUT {
                    Some((id, ErrorCode::HelloRequired))
                } else if c.expired_at.is_some_and(|at| now >= at + TOKEN_GRACE) {
                    Some((id, ErrorCode::TokenExpired))
                } else if now >= c.last_frame + IDLE_TIMEOUT {
                    Some((id, ErrorCode::IdleTimeout))
                } else {
                    None
                }
            })
            .collect();
        for (id, code) in due {
            let (message, close_code) = match code {
                ErrorCode::HelloRequired => ("no `hello` within 5 s", close::BAD_HELLO),
                ErrorCode::TokenExpired => (
                    "the token expired 30 s ago and no `auth` came",
                    close::UNAUTHORIZED,
                ),
                _ => ("no frame for 30 s", close::IDLE),
            };
            self.close_with(id, code, message, None, close_code, &mut out);
        }
        out
    }

    // ---- the server's own controls (admin API, scenarios) --------------------------------

    /// A write by the server itself (`device_id` `server`, `local_rev` 0), validated like
    /// any `set`, committed, and pushed to every device of the user.
    pub fn server_set(
        &mut self,
        user: &str,
        key: &Key,
        value: Value,
        now: Duration,
    ) -> Result<Vec<Action>, String> {
        if let Some(why) = &self.broken {
            return Err(format!("store unavailable: {why}"));
        }
        let value = key.validate_set(&value).map_err(|e| e.to_string())?;
        let rev = self.data.users.get(user).map_or(0, |d| d.head) + 1;
        let record = Record {
            user: user.to_string(),
            key: key.clone(),
            stored: Stored {
                value,
                rev,
                device_id: SERVER_DEVICE_ID.to_string(),
                local_rev: 0,
                time_ms: self.time_ms(now),
            },
        };
        self.store
            .commit(std::slice::from_ref(&record))
            .map_err(|e| e.to_string())?;
        self.data.apply(&record);
        let mut out = Vec::new();
        self.fan_out(user, change_of(&record), &mut out);
        Ok(out)
    }

    /// Rotates `user`'s token (admin `rotate_token`, scenario `server rotate token`): `new`
    /// is valid at once and every token the user had expires at once, durably. Each
    /// connection on an expired token gets `error token_expired` and [`TOKEN_GRACE`] to
    /// `auth`. An error for a user with no token, an empty or overlong token, or one that
    /// is or was in use.
    pub fn rotate_token(
        &mut self,
        user: &str,
        new: &str,
        now: Duration,
    ) -> Result<Vec<Action>, String> {
        if !self.users().contains(user) {
            return Err(format!("no user `{user}`"));
        }
        if new.is_empty() || new.len() > 256 || new.chars().any(char::is_control) {
            return Err("a token is 1 to 256 bytes, no control characters".into());
        }
        if self.tokens.contains_key(new) || self.expired.contains_key(new) {
            return Err("that token is (or was) in use: choose a new one".into());
        }
        let old: Vec<String> = self
            .tokens
            .iter()
            .filter(|(_, u)| *u == user)
            .map(|(t, _)| t.clone())
            .collect();
        let record = |expired| TokenRecord {
            user: user.to_string(),
            expired,
        };
        let mut changes = vec![(new.to_string(), record(false))];
        changes.extend(old.iter().map(|t| (t.clone(), record(true))));
        self.store
            .commit_tokens(&changes)
            .map_err(|e| e.to_string())?;
        for token in &old {
            self.tokens.remove(token);
            self.expired.insert(token.clone(), user.to_string());
        }
        self.tokens.insert(new.to_string(), user.to_string());
        let mut out = Vec::new();
        for (id, conn) in &mut self.conns {
            let on_old =
                conn.auth.as_ref().is_some_and(|(u, _)| u == user) && old.contains(&conn.token);
            if on_old && conn.expired_at.is_none() {
                conn.expired_at = Some(now);
                conn.refile(*id, &mut self.deadlines);
                let message =
                    "the token was rotated: send `auth` with the new one within 30 s".into();
                out.push(error(*id, ErrorCode::TokenExpired, message, None));
            }
        }
        Ok(out)
    }

    /// The next write of `user` to `key` is rejected with `forced`.
    pub fn reject_next(&mut self, user: &str, key: Key) {
        self.forced.insert((user.to_string(), key));
    }

    /// Closes a device's connection (fault injection). Returns the actions, empty if the
    /// device is not connected.
    pub fn kick(&mut self, user: &str, device_id: &str, code: u16, reason: &str) -> Vec<Action> {
        let Some(&id) = self.devices.get(&(user.to_string(), device_id.to_string())) else {
            return Vec::new();
        };
        self.disconnect(id);
        vec![Action::Close(id, code, reason.to_string())]
    }

    // ---- views --------------------------------------------------------------------------

    /// What is stored for a user (for the server panel and expectations).
    pub fn user(&self, user: &str) -> Option<&store::UserData> {
        self.data.users.get(user)
    }

    /// The stored value of a key, or its default.
    pub fn value(&self, user: &str, key: &Key) -> (Value, u64) {
        self.current(user, key)
            .map_or_else(|| (key.default_value(), 0), |c| (c.value, c.rev))
    }

    /// Revisions assigned so far (accepted, non-duplicate writes), across restarts.
    pub fn writes(&self) -> u64 {
        self.data.writes
    }

    /// The devices of `user` connected and signed in, by name.
    pub fn devices_of(&self, user: &str) -> Vec<String> {
        let ids = self.signed_in.get(user).into_iter().flatten();
        let mut devices: Vec<String> = ids
            .filter_map(|id| self.device_of(*id))
            .map(|(_, device)| device.to_string())
            .collect();
        devices.sort();
        devices
    }

    /// The device a connection signed in as, `(user, device_id)`: none before its
    /// `hello` is accepted, or once the connection is closed.
    pub fn device_of(&self, id: ConnId) -> Option<(&str, &str)> {
        let (user, device) = self.conns.get(&id)?.auth.as_ref()?;
        Some((user, device))
    }

    /// The connection of a device, if it is connected.
    pub fn conn_of(&self, user: &str, device_id: &str) -> Option<ConnId> {
        self.devices
            .get(&(user.to_string(), device_id.to_string()))
            .copied()
    }

    /// Keys of `user` with a pending forced rejection.
    pub fn forced(&self, user: &str) -> impl Iterator<Item = &Key> {
        self.forced
            .iter()
            .filter(move |(u, _)| u == user)
            .map(|(_, k)| k)
    }

    /// The user a token belongs to.
    pub fn user_of_token(&self, token: &str) -> Option<&str> {
        self.tokens.get(token).map(String::as_str)
    }

    /// The users the server has tokens for.
    pub fn users(&self) -> BTreeSet<&str> {
        self.tokens.values().map(String::as_str).collect()
    }
}

/// The valid and the expired tokens (token → user): the configured ones, with what
/// rotations made and retired applied over them.
fn token_tables(
    configured: &BTreeMap<String, String>,
    data: &Durable,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut valid = configured.clone();
    let mut expired = BTreeMap::new();
    for (token, record) in &data.tokens {
        if record.expired {
            valid.remove(token);
            expired.insert(token.clone(), record.user.clone());
        } else {
            valid.insert(token.clone(), record.user.clone());
        }
    }
    (valid, expired)
}

/// A `set` or a `command`.
enum Write {
    Set(Value),
    Command(CommandOp),
}

impl Write {
    /// Step 4's checks that do not depend on the stored value.
    fn check(&self, key: &Key) -> Result<(), InvalidValue> {
        match (self, key.kind()) {
            (Write::Set(value), _) => key.validate_set(value).map(drop),
            (Write::Command(op), ValueKind::Comments) => match op {
                CommandOp::AddComment { text } => CommandOp::AddComment { text: text.clone() }
                    .apply(&[], 0, "")
                    .map(drop),
                CommandOp::EditComment { text, .. } => CommandOp::AddComment { text: text.clone() }
                    .apply(&[], 0, "")
                    .map(drop),
                CommandOp::DeleteComment { .. } => Ok(()),
            },
            (Write::Command(_), _) => Err(InvalidValue(format!(
                "`{key}` is not a comments key: commands work only on `comments/<post>`"
            ))),
        }
    }

    /// The value to store: the normalised `set` value, or the command applied to the list.
    fn value_to_store(
        &self,
        key: &Key,
        current: Option<&Current>,
        rev: u64,
        device: &str,
    ) -> Result<Value, InvalidValue> {
        match self {
            Write::Set(value) => key.validate_set(value),
            Write::Command(op) => {
                let list = current.map_or_else(Vec::new, |c| comments_from_value(&c.value));
                op.apply(&list, rev, device).map(|l| comments_to_value(&l))
            }
        }
    }
}

/// A `hello` whose token is missing or not a string: that is `unauthorized` (4401, no
/// retry), not a malformed frame.
fn is_token_problem(problem: &Problem) -> bool {
    matches!(
        problem,
        Problem::MissingField("token") | Problem::BadField { field: "token", .. }
    )
}

fn change_of(record: &Record) -> Change {
    change_of_parts(&record.key, &record.stored)
}

fn change_of_parts(key: &Key, stored: &Stored) -> Change {
    Change {
        key: key.to_string(),
        value: stored.value.clone(),
        rev: stored.rev,
        device_id: stored.device_id.clone(),
        local_rev: stored.local_rev,
    }
}

fn error(id: ConnId, code: ErrorCode, message: String, rid: Option<u64>) -> Action {
    Action::Send(
        id,
        ServerFrame::Error {
            code,
            message,
            id: rid,
        },
    )
}

fn reject(
    conn: ConnId,
    rid: u64,
    key: &str,
    code: ErrorCode,
    message: String,
    current: Option<Current>,
) -> Action {
    Action::Send(
        conn,
        ServerFrame::Reject {
            id: rid,
            key: key.to_string(),
            code,
            message,
            current,
        },
    )
}

/// The answer to a frame that found the bucket empty: it is not processed, only answered
/// in kind (a write gets a `reject`, anything else an `error`).
fn rate_limited(conn: ConnId, frame: &ClientFrame) -> Action {
    match frame {
        ClientFrame::Set { id, key, .. } | ClientFrame::Command { id, key, .. } => reject(
            conn,
            *id,
            key,
            ErrorCode::RateLimited,
            RATE_LIMITED.into(),
            None,
        ),
        other => error(
            conn,
            ErrorCode::RateLimited,
            RATE_LIMITED.into(),
            other.id(),
        ),
    }
}

/// [`rate_limited`] for a frame that did not decode: its `type`, `id` and `key`, if a
/// glance at the JSON finds them.
fn rate_limited_text(conn: ConnId, text: &str) -> Action {
    let peek: Option<serde_json::Map<String, Value>> = serde_json::from_str(text).ok();
    let field = |name: &str| peek.as_ref().and_then(|m| m.get(name));
    let rid = field("id").and_then(Value::as_u64);
    let kind = field("type").and_then(Value::as_str);
    match (kind, rid) {
        (Some("set" | "command"), Some(rid)) => {
            let key = field("key").and_then(Value::as_str).unwrap_or_default();
            reject(
                conn,
                rid,
                key,
                ErrorCode::RateLimited,
                RATE_LIMITED.into(),
                None,
            )
        }
        _ => error(conn, ErrorCode::RateLimited, RATE_LIMITED.into(), rid),
    }
}

/// What a refused frame is told.
const RATE_LIMITED: &str = "over the rate limit (400 frames, 200 per second)";
