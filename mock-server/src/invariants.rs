//! DESIGN.md's invariants, checked on a running [`World`].
//!
//! A [`Checker`] watches one world: wrap each intent in [`Checker::before_intent`] and
//! [`Checker::after_intent`] (or make it through [`Checker::intent`]), call
//! [`Checker::after_step`] after anything that moves the world (an intent, one simulator
//! event, a release, a restart), and [`Checker::at_rest`] after a `settle`. It reads the
//! world's trace and the engines' state; it never changes the world, so a checked run is
//! the same run as an unchecked one. The scenario [`Runner`](crate::scenario::Runner)
//! does all of this on every run: a lesson, a recording, a random schedule and a
//! counterexample are checked alike.
//!
//! Each device is held to what its strategy owes:
//!
//! | invariant | sync-with-push | sync | naive | checked by |
//! |---|---|---|---|---|
//! | 1 optimistic | ✔ | ✔ | ✔ | [`Checker::after_intent`] |
//! | 2 one in flight | ✔ | ✔ | | [`Checker::after_step`] |
//! | 3 bounded requests | ✔ | ✔ | | [`Checker::after_intent`] |
//! | 4 revisions never regress | ✔ | | | [`Checker::after_step`] |
//! | 5 convergence | ✔ | | | [`Checker::at_rest`] |
//! | 6 nothing accepted is lost, nothing applied twice | ✔ | ✔ | ✔ | [`Checker::after_step`] |
//! | 7 intent wins over silence | ✔ | | | [`Checker::at_rest`] |
//!
//! Invariant 8 (isolation) needs two users; the simulator has one, so the socket tests
//! check it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sync_core::engine::{CursorMode, EventKind, Strategy};
use sync_core::protocol::{ClientFrame, HttpCall, Key, ServerFrame};

use crate::sim::{TraceKind, World};
use sync_core::engine::connection::ConnectionState;

/// A broken invariant: its number in DESIGN.md and what happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invariant {number} ({}): {message}", name(*number))]
pub struct Violation {
    /// 1 to 7, as numbered in DESIGN.md.
    pub number: u8,
    /// What was seen, naming the device and key.
    pub message: String,
}

/// Invariant `number`'s name, as DESIGN.md gives it.
pub fn name(number: u8) -> &'static str {
    match number {
        1 => "optimistic",
        2 => "one in flight",
        3 => "bounded requests",
        4 => "revisions never regress",
        5 => "convergence",
        6 => "nothing accepted is lost",
        7 => "intent wins over silence",
        _ => "isolation",
    }
}

/// What invariant `number` promises, as DESIGN.md states it (the player shows it beside a
/// broken one).
pub fn statement(number: u8) -> &'static str {
    match number {
        1 => "a user intent changes the device's visible value in the same step, before any I/O",
        2 => "at most one request per key per device is outstanding",
        3 => {
            "a burst of intents on one key while a request is in flight costs at most one follow-up request"
        }
        4 => {
            "a device's known server revision for a key only grows (except after a `welcome` with `reset`); a push or response older than it never changes the visible value"
        }
        5 => {
            "when no intents are pending and the network is quiet, every connected device shows the server's value for every key and knows its revision"
        }
        6 => {
            "every write the server acknowledged is in its store after a restart; a resend after a lost acknowledgement is applied at most once"
        }
        7 => {
            "a user intent that was never acknowledged is retried after reconnect, unless a newer server revision has superseded it"
        }
        _ => "a device sees only its own user's keys",
    }
}

/// Fails with invariant `number` unless `holds`.
fn ensure(holds: bool, number: u8, message: impl FnOnce() -> String) -> Result<(), Violation> {
    if holds {
        Ok(())
    } else {
        Err(Violation {
            number,
            message: message(),
        })
    }
}

/// A user intent, as [`Checker::intent`] makes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent<'a> {
    /// `tap`: toggle a boolean key.
    Tap,
    /// `set`: a value.
    Set(Value),
    /// `comment`: add one with this text (the key is a `comments/<post>` key).
    Comment(&'a str),
}

/// What a device showed just before an intent: [`Checker::after_intent`] compares.
#[derive(Debug, Clone)]
pub struct BeforeIntent {
    d: usize,
    key: Key,
    bounded: bool,
    was_in_flight: bool,
    shown: Value,
    requests: u64,
    now: std::time::Duration,
    frames: u64,
    trace_len: usize,
}

/// What one step did, read from the trace.
#[derive(Default)]
struct Step {
    /// Devices that took a `welcome` with `reset`: they may forget revisions.
    reset: BTreeSet<usize>,
    /// Device and key of each push or ack ignored as stale.
    stale: BTreeSet<(usize, Key)>,
    /// Device and key of each event that may change the value shown.
    changed: BTreeSet<(usize, Key)>,
}

/// What a checker remembers between steps.
#[derive(Debug, Default, Clone)]
pub struct Checker {
    /// How much of the trace has been read.
    trace_seen: usize,
    /// The known revision per device and key, for 4.
    known: BTreeMap<(usize, Key), u64>,
    /// The value shown per device and key, for 4: a stale frame must not change it.
    shown: BTreeMap<(usize, Key), Value>,
    /// Per device and request id, the key and local revision of the frame last sent with
    /// that id (ids are unique per connection, and answers never cross connections).
    sent: BTreeMap<(usize, u64), (String, u64)>,
    /// Writes acknowledged as new: device, key, local revision. A second one would be a
    /// resend applied twice.
    applied: BTreeSet<(usize, String, u64)>,
    /// Revisions acknowledged as new: each belongs to one write.
    acked_revs: BTreeSet<u64>,
    /// The highest revision acknowledged per key: the store must hold at least it, across
    /// server restarts.
    acked_per_key: BTreeMap<String, u64>,
}

impl Checker {
    /// A checker for a world; it reads the trace from the start.
    pub fn new() -> Checker {
        Checker::default()
    }

    /// Makes device `d`'s intent on `key` and checks it: [`Checker::before_intent`], the
    /// intent, [`Checker::after_intent`].
    ///
    /// The outer `Result` is the check; the inner one is the world's answer to the intent
    /// (a `tap` on a key that is not boolean is refused, and nothing is checked). Call
    /// [`Checker::after_step`] after it, as after anything else that moves the world.
    pub fn intent(
        &self,
        w: &mut World,
        d: usize,
        key: &Key,
        intent: Intent<'_>,
    ) -> Result<Result<(), String>, Violation> {
        let before = Checker::before_intent(w, d, key);
        let answer = match &intent {
            Intent::Tap => w.tap(d, key),
            Intent::Set(value) => w.set(d, key, value.clone()),
            Intent::Comment(text) => {
                w.comment(d, key, text);
                Ok(())
            }
        };
        if answer.is_ok() {
            Checker::after_intent(w, before, intent)?;
        }
        Ok(answer)
    }

    /// What device `d` shows of `key` and has sent for it, just before an intent on it.
    pub fn before_intent(w: &World, d: usize, key: &Key) -> BeforeIntent {
        let engine = &w.devices()[d].engine;
        BeforeIntent {
            d,
            key: key.clone(),
            bounded: engine.strategy() != Strategy::Naive,
            was_in_flight: engine.in_flight(key).is_some(),
            shown: engine.shown(key),
            requests: requests(w, d, key),
            now: w.now(),
            frames: w.frames_delivered,
            trace_len: w.trace.len(),
        }
    }

    /// Checks an intent the world accepted, against what [`Checker::before_intent`] saw:
    /// - 1: as soon as the intent returns, with no virtual time passing and no frame
    ///   delivered, the device shows the intended value: a tap the opposite of what it
    ///   showed, a set its value, a comment one more comment in the list (or, if the
    ///   engine refused it because another comment on the post is pending, no change);
    /// - 3: under `sync` and `sync-with-push`, an intent made while a request for the key is
    ///   in flight sends no request of its own (so a burst costs one follow-up at most).
    pub fn after_intent(w: &World, b: BeforeIntent, intent: Intent<'_>) -> Result<(), Violation> {
        let (d, key, before) = (b.d, &b.key, &b.shown);
        let dev = &w.devices()[d];
        ensure(
            w.now() == b.now && w.frames_delivered == b.frames,
            1,
            || format!("{}'s intent on {key} waited for the network", dev.name),
        )?;
        let shown = dev.engine.shown(key);
        let expected = match intent {
            Intent::Tap => Value::Bool(!before.as_bool().unwrap_or(false)),
            Intent::Set(value) => value,
            Intent::Comment(_) => {
                let written = w.trace[b.trace_len..].iter().any(|t| {
                    t.device.as_deref() == Some(&dev.name)
                        && matches!(&t.kind, TraceKind::Device(EventKind::OptimisticWrite { key: k, .. }) if k == key)
                });
                let len = |v: &Value| v.as_array().map_or(0, Vec::len);
                let grew = len(&shown) == len(before) + usize::from(written);
                ensure(grew, 1, || {
                    format!(
                        "{}'s comment on {key}: {} comments shown before, {} after",
                        dev.name,
                        len(before),
                        len(&shown)
                    )
                })?;
                shown.clone()
            }
        };
        ensure(shown == expected, 1, || {
            format!(
                "{}'s intent on {key}: shows {shown}, expected {expected}",
                dev.name
            )
        })?;
        let requests_after = requests(w, d, key);
        ensure(
            !b.bounded || !b.was_in_flight || requests_after == b.requests,
            3,
            || {
                format!(
                    "{}'s intent on {key} while a request was in flight sent one \
                     ({} → {requests_after} requests)",
                    dev.name, b.requests
                )
            },
        )
    }

    /// Checks 2, 4 and 6 after the world moved.
    pub fn after_step(&mut self, w: &World) -> Result<(), Violation> {
        let step = self.read_trace(w)?;
        // 6: revisions are gap-free and never reused, across restarts (one user: its head
        // is the number of revisions assigned).
        let user = w.core().user(crate::core::DEMO_USER);
        let head = user.map_or(0, |u| u.head);
        ensure(head == w.core().writes(), 6, || {
            format!(
                "the user's head is {head} but {} revisions were assigned",
                w.core().writes()
            )
        })?;
        // 6: what was acknowledged is stored (a later write may have replaced it).
        for (key, &acked) in &self.acked_per_key {
            let stored = Key::parse(key)
                .ok()
                .and_then(|k| user.and_then(|u| u.keys.get(&k)))
                .map_or(0, |s| s.rev);
            ensure(stored >= acked, 6, || {
                format!("{key} rev {acked} was acknowledged, the store has rev {stored}")
            })?;
        }
        for (d, dev) in w.devices().iter().enumerate() {
            let strategy = dev.engine.strategy();
            if strategy != Strategy::Naive {
                let mut seen = BTreeSet::new();
                for k in dev.engine.unanswered() {
                    ensure(seen.insert(k.clone()), 2, || {
                        format!("{} has two requests for {k} unanswered", dev.name)
                    })?;
                }
            }
            if strategy == Strategy::SyncWithPush {
                // 4: the screen never goes back to an older answer or revision.
                let regressions = dev.engine.counters().regressions;
                ensure(regressions == 0, 4, || {
                    format!("{}'s screen went back {regressions} time(s)", dev.name)
                })?;
                let reset = step.reset.contains(&d);
                for view in dev.engine.keys() {
                    let at = (d, view.key.clone());
                    let prev = self.known.insert(at.clone(), view.known_rev);
                    if let Some(prev) = prev
                        && !reset
                    {
                        ensure(view.known_rev >= prev, 4, || {
                            format!(
                                "{} knew {} rev {prev}, now rev {}",
                                dev.name, view.key, view.known_rev
                            )
                        })?;
                    }
                    let prev = self.shown.insert(at.clone(), view.slot.shown.clone());
                    if let Some(prev) = prev
                        && step.stale.contains(&at)
                        && !step.changed.contains(&at)
                        && !reset
                    {
                        ensure(view.slot.shown == prev, 4, || {
                            format!(
                                "{} ignored a stale frame for {} but its value went {prev} → {}",
                                dev.name, view.key, view.slot.shown
                            )
                        })?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads the trace since the last step: the frames sent and the acks received (6),
    /// and what the step did to each device's keys (4).
    fn read_trace(&mut self, w: &World) -> Result<Step, Violation> {
        let mut step = Step::default();
        let new = &w.trace[self.trace_seen..];
        self.trace_seen = w.trace.len();
        for t in new {
            let Some(d) = t.device.as_deref().and_then(|name| w.index(name)) else {
                continue;
            };
            match &t.kind {
                TraceKind::Device(EventKind::CaughtUp { reset: true, .. }) => {
                    step.reset.insert(d);
                }
                TraceKind::Device(
                    EventKind::PushStale { key, .. } | EventKind::ResponseStale { key, .. },
                ) => {
                    step.stale.insert((d, key.clone()));
                }
                TraceKind::Device(
                    EventKind::OptimisticWrite { key, .. }
                    | EventKind::ResponseApplied { key, .. }
                    | EventKind::PushApplied { key, .. }
                    | EventKind::PushTakenAsAck { key, .. }
                    | EventKind::Rejected { key, .. },
                ) => {
                    step.changed.insert((d, key.clone()));
                }
                TraceKind::Up(frame) | TraceKind::HttpUp(HttpCall::Write(frame)) => {
                    for write in frame.writes() {
                        if let ClientFrame::Set {
                            id, key, local_rev, ..
                        }
                        | ClientFrame::Command {
                            id, key, local_rev, ..
                        } = write
                        {
                            self.sent.insert((d, *id), (key.clone(), *local_rev));
                        }
                    }
                }
                TraceKind::Down(frame) => self.read_answer(w, d, frame)?,
                TraceKind::HttpDown(answer) => {
                    let frames: Vec<ServerFrame> =
                        serde_json::from_value(answer.body.clone()).unwrap_or_default();
                    for frame in &frames {
                        self.read_answer(w, d, frame)?;
                    }
                }
                _ => {}
            }
        }
        Ok(step)
    }

    /// A frame device `d` received, over the WebSocket or in an HTTP answer: a new ack
    /// (6).
    fn read_answer(&mut self, w: &World, d: usize, frame: &ServerFrame) -> Result<(), Violation> {
        let ServerFrame::Ack {
            id,
            key,
            rev,
            duplicate: false,
            ..
        } = frame
        else {
            return Ok(());
        };
        let name = &w.devices()[d].name;
        ensure(self.acked_revs.insert(*rev), 6, || {
            format!("rev {rev} was acknowledged as new twice (to {name})")
        })?;
        let top = self.acked_per_key.entry(key.clone()).or_default();
        *top = (*top).max(*rev);
        if let Some((_, local_rev)) = self.sent.get(&(d, *id)) {
            let write = (d, key.clone(), *local_rev);
            ensure(self.applied.insert(write), 6, || {
                format!("{name}'s {key} local_rev {local_rev} was applied twice")
            })?;
        }
        Ok(())
    }

    /// Checks 5 and 7 for each `sync-with-push` device at rest: online, connected, its
    /// links neither held nor carrying a frame. Call it once the world has settled. A
    /// device that is not at rest (offline, held, or in `error`, `auth-failed` or
    /// `closed`, waiting for the user) owes neither yet (DESIGN.md).
    pub fn at_rest(&mut self, w: &World) -> Result<(), Violation> {
        self.after_step(w)?;
        let user = w.core().user(crate::core::DEMO_USER);
        for (d, dev) in w.devices().iter().enumerate() {
            // As `World::is_quiet` reads a link: held, or carrying frames.
            let (_, held) = dev.links();
            let resting = !dev.offline
                && dev.engine.connection() == ConnectionState::Connected
                && !held.up
                && !held.down
                && dev.up.queued().next().is_none()
                && dev.down.queued().next().is_none();
            // A device on the clock cursor owes neither (DESIGN.md): it can miss changes.
            let clock = dev.engine.settings().cursor == CursorMode::Clock;
            if dev.engine.strategy() != Strategy::SyncWithPush || !resting || clock {
                continue;
            }
            w.device_converged(d)
                .map_err(|message| Violation { number: 5, message })?;
            // 7: the newest intent reached the server, unless it was rejected or a newer
            // change from elsewhere superseded it.
            for view in dev.engine.keys() {
                if view.slot.local_rev == 0 || matches!(view.key, Key::Comments(_)) {
                    continue;
                }
                if overtaken(w, &dev.name, &view.key, view.slot.local_rev) {
                    continue;
                }
                let mark = user
                    .and_then(|u| u.marks.get(&dev.name))
                    .and_then(|m| m.get(&view.key))
                    .map(|m| m.local_rev);
                ensure(mark == Some(view.slot.local_rev), 7, || {
                    format!(
                        "{}'s newest intent for {} (local_rev {}) never reached the server \
                         (it has {mark:?})",
                        dev.name, view.key, view.slot.local_rev
                    )
                })?;
            }
        }
        Ok(())
    }
}

/// `true` when `device`'s newest intent on `key` (local revision `newest`) had an answer
/// other than being stored: the request that carried it was rejected, it was superseded
/// after a reconnect, or another device's change was applied over it. A rejection of an
/// older request does not count: the newest intent is then sent at once (DESIGN.md,
/// improvement 5), and must reach the server.
fn overtaken(w: &World, device: &str, key: &Key, newest: u64) -> bool {
    let mut made = false;
    let mut carried = None;
    for t in w
        .trace
        .iter()
        .filter(|t| t.device.as_deref() == Some(device))
    {
        let TraceKind::Device(event) = &t.kind else {
            continue;
        };
        match event {
            EventKind::OptimisticWrite {
                key: k, local_rev, ..
            } if k == key => {
                made |= *local_rev == newest;
            }
            EventKind::RequestSent {
                key: k, local_rev, ..
            } if k == key => {
                carried = Some(*local_rev);
            }
            EventKind::Rejected { key: k, .. } if k == key && made && carried == Some(newest) => {
                return true;
            }
            EventKind::Superseded { key: k } if k == key && made => return true,
            EventKind::PushApplied { key: k, from, .. } if k == key && made && from != device => {
                return true;
            }
            _ => {}
        }
    }
    // No intent in the trace (a restored snapshot's, say): nothing to hold it to.
    !made
}

/// Requests device `d` has sent for `key`.
fn requests(w: &World, d: usize, key: &Key) -> u64 {
    w.devices()[d]
        .engine
        .counters()
        .requests_by_key
        .get(key)
        .copied()
        .unwrap_or(0)
}
