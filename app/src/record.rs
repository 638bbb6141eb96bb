//! Recording a live session as a scenario (SCENARIOS.md, "Recording a live session"): the
//! setup from the devices as they are when recording starts, then every action at the
//! time it happened, then, at stop, an expectation for every value each device shows and
//! the server holds.
//!
//! Live timing cannot be replayed exactly: backoff jitter and scheduling differ on the
//! simulator. So where the live world had been quiet for a while before an action, the
//! recording says `settle` instead of the time that passed; a replay then reaches the same
//! quiet state whatever its timing. Elsewhere it says `wait` with the real time, rounded
//! to the millisecond. Before a `release` or `drop` it writes how many frames the live
//! queue held, so if a replay's queue differs, that expectation fails first and marks
//! where the runs part.
//!
//! Pure: times come in as durations since the session's time 0, so tests drive it without
//! a clock.

use std::time::Duration;

use mock_server::core::store::UserData;
use mock_server::link::{Fault, LinkConfig, Pair};
use mock_server::scenario::ast::{DeviceSetup, Expect, Scenario, Step, Stmt};
use serde_json::Value;
use sync_core::engine::connection::ConnectionState;
use sync_core::engine::{DeviceView, state::Counters};
use sync_core::protocol::{Key, ValueKind};

use crate::gui::layout::DeviceLayout;
use crate::gui::pane::PaneAction;
use crate::gui::statements;

/// A device as recording starts.
pub struct Start<'a> {
    /// Its id, strategy and links as the pane has them.
    pub layout: DeviceLayout,
    /// Its state.
    pub view: &'a DeviceView,
    /// Frames waiting on its held links (up, down).
    pub queued: Pair<usize>,
}

/// A session being recorded.
#[derive(Debug, Clone)]
pub struct Recorder {
    scenario: Scenario,
    /// Each device's links as the recording has set them (a link change writes what
    /// changed).
    links: Vec<Pair<LinkConfig>>,
    /// Each device's counters at the start: the expectations count from there, as a
    /// replay's devices count from their creation.
    counters: Vec<Counters>,
    /// When the last statement was written (time since the session's time 0).
    last: Duration,
    /// When recording started.
    started: Duration,
}

/// Why recording cannot start now.
pub fn cannot_start(devices: &[Start<'_>]) -> Option<String> {
    devices.iter().find_map(|d| {
        let n = d.queued.up + d.queued.down;
        (n > 0).then(|| {
            format!(
                "{} holds {n} frame(s): release or drop them first (a recording starts with every queue empty)",
                d.layout.id
            )
        })
    })
}

impl Recorder {
    /// Starts recording at `at`: the devices' setup, the values the server holds as
    /// `server set` lines, and at time 0 what is already so (holds, a device switched
    /// off, intents still pending). `Err` says why not (see [`cannot_start`]).
    pub fn start(
        at: Duration,
        devices: &[Start<'_>],
        server: &UserData,
        title: &str,
    ) -> Result<Recorder, String> {
        if let Some(why) = cannot_start(devices) {
            return Err(why);
        }
        let mut about = vec![
            "Recorded live in Sync Lab. Played back, it runs on the simulator: where live timing".into(),
            "differed from the simulator's, the first `expect` that fails marks where the runs part.".into(),
        ];
        let mut server_sets = Vec::new();
        let mut by_rev: Vec<(&Key, &Value, u64)> = server
            .keys
            .iter()
            .map(|(k, s)| (k, &s.value, s.rev))
            .collect();
        by_rev.sort_by_key(|(_, _, rev)| *rev);
        for (key, value, _) in by_rev {
            if key.kind() == ValueKind::Comments {
                about.push(format!(
                    "{key} held comments already: comments are written only by devices, so the setup cannot give them back"
                ));
                continue;
            }
            server_sets.push((0, key.clone(), value.clone()));
        }
        let mut steps = Vec::new();
        let step = |stmt| Step { line: 0, stmt };
        // A device switched off first (its pending intents then queue, as they had live);
        // holds last (a pending request had left before the hold, live).
        for (d, start) in devices.iter().enumerate() {
            if start.view.connection == ConnectionState::Offline {
                steps.push(step(Stmt::Offline(d)));
            }
            // Intents not yet answered: the device's intents at time 0.
            for k in start.view.keys.iter().filter(|k| k.in_flight.is_some()) {
                if k.key.kind() == ValueKind::Comments {
                    about.push(format!(
                        "{} had a comment pending on {}: not replayed",
                        start.layout.id, k.key
                    ));
                } else {
                    steps.push(step(Stmt::Set(d, k.key.clone(), k.slot.shown.clone())));
                }
            }
        }
        for (d, start) in devices.iter().enumerate() {
            for (dir, held) in start.layout.held.iter() {
                if *held {
                    steps.push(step(Stmt::Hold(d, Some(dir))));
                }
            }
        }
        let scenario = Scenario {
            title: Some(title.to_string()),
            about,
            devices: devices
                .iter()
                .map(|d| DeviceSetup {
                    name: d.layout.id.clone(),
                    strategy: d.layout.strategy,
                    up: d.layout.links.up,
                    down: d.layout.links.down,
                    settings: d.layout.settings(),
                })
                .collect(),
            devices_line: 0,
            server_sets,
            steps,
        };
        Ok(Recorder {
            scenario,
            links: devices.iter().map(|d| d.layout.links).collect(),
            counters: devices.iter().map(|d| d.view.counters.clone()).collect(),
            last: at,
            started: at,
        })
    }

    /// The devices' names, in the recording's order.
    fn index(&self, device: &str) -> Option<usize> {
        self.scenario.devices.iter().position(|d| d.name == device)
    }

    /// How long it has been recording, at `now`.
    pub fn length(&self, now: Duration) -> Duration {
        now.saturating_sub(self.started)
    }

    /// Statements written so far.
    pub fn statements(&self) -> usize {
        self.scenario.steps.len()
    }

    /// Writes the time between the last statement and `at`: `settle` when the live world
    /// was quiet then, else a `wait`.
    fn advance(&mut self, at: Duration, quiet: bool) {
        let stmt = if quiet {
            self.last = at;
            Stmt::Settle
        } else {
            // Rounded to the millisecond, as the language writes it; `last` moves by what
            // was written, so rounding never adds up over many quick actions.
            let elapsed = at.saturating_sub(self.last);
            let ms = (elapsed.as_micros() + 500) / 1000;
            let wait = Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX));
            self.last += wait;
            if wait.is_zero() {
                return;
            }
            Stmt::Wait(wait)
        };
        // Two settles in a row say no more than one.
        if stmt == Stmt::Settle
            && self
                .scenario
                .steps
                .last()
                .is_some_and(|s| s.stmt == Stmt::Settle)
        {
            return;
        }
        self.push(stmt);
    }

    fn push(&mut self, stmt: Stmt) {
        self.scenario.steps.push(Step { line: 0, stmt });
    }

    /// Records what a pane asked of its device at `at`; `queued` is how many frames the
    /// device's held queues (up, down) listed then. `Err` for an action a scenario cannot
    /// say (a strategy change, removing a device) or a device not in the recording.
    pub fn action(
        &mut self,
        at: Duration,
        quiet: bool,
        device: &str,
        action: &PaneAction,
        queued: Pair<usize>,
    ) -> Result<(), String> {
        let d = self
            .index(device)
            .ok_or_else(|| format!("{device} was added after recording started"))?;
        if matches!(action, PaneAction::Move(_)) {
            return Ok(());
        }
        if matches!(
            action,
            PaneAction::EditComment(..) | PaneAction::DeleteComment(..)
        ) {
            return Err("a comment's id is the live server's revision, which a replay numbers from 1: editing or deleting a comment cannot be recorded yet".into());
        }
        let stmts = statements::of(action, d, self.links[d])
            .ok_or_else(|| format!("a recording cannot change {device}'s strategy or settings, or remove it: those are a scenario's setup"))?;
        if stmts.is_empty() {
            return Ok(());
        }
        self.advance(at, quiet);
        if let PaneAction::Link(Fault::Release(dir, _) | Fault::Drop(dir, _)) = action {
            let n = *queued.of(*dir) as u64;
            self.push(Stmt::Expect(Expect::Queued(d, *dir, n)));
        }
        if let PaneAction::Link(Fault::Configure(dir, to)) = action {
            *self.links[d].of_mut(*dir) = *to;
        }
        for stmt in stmts {
            self.push(stmt);
        }
        Ok(())
    }

    /// Records a server fault at `at`: `server reject KEY`, `server restart`.
    pub fn server(&mut self, at: Duration, quiet: bool, stmt: Stmt) {
        self.advance(at, quiet);
        self.push(stmt);
    }

    /// Stops at `at`: an expectation for every value each device shows and the server
    /// holds, each device's counters since the start, the lengths of the links held now
    /// (`queued`: `None` for a link not held), and `expect converged` when every device
    /// agreed. `views` and `queued` go together, in any order (panes may have moved):
    /// each view is matched to its device by id. The finished scenario.
    pub fn stop(
        mut self,
        at: Duration,
        quiet: bool,
        views: &[DeviceView],
        server: Option<&UserData>,
        queued: &[Pair<Option<usize>>],
        converged: bool,
    ) -> Scenario {
        self.advance(at, quiet);
        let mut pairs: Vec<(DeviceView, Pair<Option<usize>>)> = Vec::new();
        for device in &self.scenario.devices {
            if let Some(i) = views.iter().position(|v| v.device_id == device.name) {
                pairs.push((views[i].clone(), queued.get(i).copied().unwrap_or_default()));
            }
        }
        let (views, queued): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        let expects = expectations(&views, &self.counters, &queued, server, converged);
        for e in expects {
            self.push(Stmt::Expect(e));
        }
        self.scenario
    }
}

/// An expectation for every value each device shows (comments aside: their ids are
/// revisions, which a replay numbers from 1), each device's counters since `base`, the
/// length of each held link (`queued`: `None` for a link not held, whose frames are on
/// their way and depend on timing), every value the server holds, and `expect converged`
/// when every device agreed.
pub fn expectations(
    views: &[DeviceView],
    base: &[Counters],
    queued: &[Pair<Option<usize>>],
    server: Option<&UserData>,
    converged: bool,
) -> Vec<Expect> {
    let mut expects = Vec::new();
    for (d, view) in views.iter().enumerate() {
        for k in &view.keys {
            if k.key.kind() != ValueKind::Comments {
                expects.push(Expect::Value(d, k.key.clone(), k.slot.shown.clone()));
            }
        }
        let base = base.get(d).cloned().unwrap_or_default();
        let c = &view.counters;
        expects.push(Expect::Stale(d, c.stale.saturating_sub(base.stale)));
        expects.push(Expect::Rollbacks(
            d,
            c.rollbacks.saturating_sub(base.rollbacks),
        ));
        expects.push(Expect::Regressions(
            d,
            c.regressions.saturating_sub(base.regressions),
        ));
        for (dir, n) in queued.get(d).copied().unwrap_or_default().iter() {
            if let Some(n) = n {
                expects.push(Expect::Queued(d, dir, *n as u64));
            }
        }
    }
    if let Some(server) = server {
        for (key, stored) in &server.keys {
            if key.kind() != ValueKind::Comments {
                expects.push(Expect::ServerValue(key.clone(), stored.value.clone()));
            }
        }
    }
    if converged {
        expects.push(Expect::Converged);
    }
    expects
}

/// Whether the live world was quiet long enough before `now` for a replay to `settle`
/// there: every device quiet (connected with nothing in flight, or switched off) and no
/// device event for `window` — long enough for a frame already on its way to arrive.
#[derive(Debug, Clone, Default)]
pub struct Quiet {
    since: Option<Duration>,
}

impl Quiet {
    /// Takes the world as it is at `now`: `busy` when a device is not quiet or had an
    /// event since the last call.
    pub fn observe(&mut self, now: Duration, busy: bool) {
        if busy {
            self.since = None;
        } else if self.since.is_none() {
            self.since = Some(now);
        }
    }

    /// Quiet for at least `window` at `now`.
    pub fn settled(&self, now: Duration, window: Duration) -> bool {
        self.since.is_some_and(|s| now.saturating_sub(s) >= window)
    }

    /// How long to wait before calling the world quiet: one round trip of the slowest
    /// link, and 100 ms for scheduling. A request sent just before the last event seen
    /// is answered within one round trip; a push sent with an ack arrives within one way.
    pub fn window(links: impl IntoIterator<Item = Pair<LinkConfig>>) -> Duration {
        let slowest = links
            .into_iter()
            .flat_map(|pair| [pair.up, pair.down])
            .map(|l| l.latency + l.jitter)
            .max()
            .unwrap_or_default();
        slowest * 2 + Duration::from_millis(100)
    }
}

/// Whether a device has nothing under way: connected with no request outstanding,
/// switched off by the user, or stopped until asked (`error`, `auth-failed`, `closed`: as
/// a scenario's `settle` counts them).
pub fn device_quiet(view: &DeviceView) -> bool {
    match view.connection {
        ConnectionState::Offline => true,
        ConnectionState::Connected => !view.has_pending(),
        ref other => other.needs_retry(),
    }
}

#[cfg(test)]
mod tests;
