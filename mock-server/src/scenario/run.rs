//! Running a parsed scenario on the simulator, one statement at a time (the GUI player
//! steps; the headless runner runs to the end), with DESIGN.md's invariants checked after
//! every statement and every simulator event: a broken one fails the run where it broke,
//! as a failed `expect` would.

use std::time::Duration;

use serde_json::Value;

use super::ast::{Expect, Pick, Scenario, Step, Stmt};
use super::parse::apply_change;
use crate::invariants::{BeforeIntent, Checker, Intent, Violation};
use crate::link::{Direction, Fault};
use crate::sim::{DeviceSpec, SETTLE_LIMIT, Trace, TraceKind, World};

/// How a scenario ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every expectation held.
    Pass,
    /// A statement failed: its line and why ("expected …, got …").
    Fail {
        /// The line of the failing statement (0 for the setup).
        line: usize,
        /// What was expected and what was found.
        message: String,
    },
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// An action ran.
    Ran,
    /// An expectation held; the text says what was checked.
    Held(String),
    /// The statement failed (the run stops).
    Failed(String),
}

/// A scenario being run.
pub struct Runner {
    scenario: Scenario,
    world: World,
    t0: Duration,
    /// Trace entries before this index belong to the setup.
    setup_trace: usize,
    next: usize,
    verdict: Option<Verdict>,
    /// A `wait` or `settle` part way through, when stepped event by event.
    ongoing: Option<(Step, Ongoing)>,
    /// Every action and held expectation so far, the script's and [`Runner::act`]'s, at
    /// the virtual time it ran (since time 0): what [`Runner::transcript`] writes.
    ran: Vec<(Duration, Stmt)>,
    /// Checks each device against the invariants its strategy owes.
    checker: Checker,
    /// The invariant that broke, if one did (the verdict names it too).
    violation: Option<Violation>,
}

/// A statement that takes virtual time, part way through.
#[derive(Debug, Clone, Copy)]
enum Ongoing {
    /// `wait`, until this time.
    Wait(Duration),
    /// `settle`, with this deadline.
    Settle(Duration),
}

impl Runner {
    /// Builds the world, applies the setup, and lets every device finish its handshake:
    /// time 0 starts after that.
    pub fn new(scenario: Scenario, seed: u64) -> Runner {
        let specs: Vec<DeviceSpec> = scenario
            .devices
            .iter()
            .map(|d| DeviceSpec {
                name: d.name.clone(),
                strategy: d.strategy,
                up: d.up,
                down: d.down,
            })
            .collect();
        let mut world = World::new(seed, &specs);
        for (i, d) in scenario.devices.iter().enumerate() {
            world.configure(i, d.settings);
        }
        let mut verdict = None;
        for (line, key, value) in &scenario.server_sets {
            if let Err(e) = world.server_set(key, value.clone()) {
                verdict.get_or_insert(fail(*line, format!("server set {key}: {e}")));
            }
        }
        // A link that loses everything, say.
        if let Err(e) = world.settle() {
            let message = format!("the devices did not finish their handshake: {e}");
            verdict.get_or_insert(fail(scenario.devices_line, message));
        }
        let t0 = world.now();
        let setup_trace = world.trace.len();
        let mut runner = Runner {
            scenario,
            world,
            t0,
            setup_trace,
            next: 0,
            verdict,
            ongoing: None,
            ran: Vec::new(),
            checker: Checker::new(),
            violation: None,
        };
        // A setup that already failed (a `server set`, the handshake) fails for that reason.
        if runner.verdict.is_none()
            && let Err(message) = runner.check(false)
        {
            let line = runner.scenario.devices_line;
            runner.verdict = Some(fail(line, message));
        }
        runner
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The world.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The world, to act on between statements (the player's panes do: a learner's tap
    /// enters the world at the current virtual time, as a statement's would).
    pub fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    /// Virtual time since time 0.
    pub fn elapsed(&self) -> Duration {
        self.world.now().saturating_sub(self.t0)
    }

    /// When time 0 was (trace entries before it belong to the setup).
    pub fn t0(&self) -> Duration {
        self.t0
    }

    /// The statement that runs next (or goes on, part way through a `wait` or `settle`).
    pub fn next_step(&self) -> Option<&Step> {
        if self.verdict.is_some() {
            return None;
        }
        match &self.ongoing {
            Some((step, _)) => Some(step),
            None => self.scenario.steps.get(self.next),
        }
    }

    /// `true` while a `wait` or `settle` is part way through.
    pub fn in_progress(&self) -> bool {
        self.ongoing.is_some()
    }

    /// The verdict, once the run ended.
    pub fn verdict(&self) -> Option<&Verdict> {
        self.verdict.as_ref()
    }

    /// The invariant that broke, once one did (the run failed there).
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// Appends a statement to the script and runs it whole: a generator that writes its
    /// script as it goes (the random-schedule tests) runs it this way, deciding each
    /// statement from the world the last one left. `None` once the run has failed.
    pub fn append(&mut self, stmt: Stmt) -> Option<StepOutcome> {
        if matches!(self.verdict, Some(Verdict::Fail { .. })) || self.ongoing.is_some() {
            return None;
        }
        self.verdict = None;
        let line = self.scenario.steps.last().map_or(1, |s| s.line + 1);
        self.scenario.steps.push(Step { line, stmt });
        self.step()
    }

    /// Runs the next statement (or the rest of one part way through). `None` when the
    /// run has ended.
    pub fn step(&mut self) -> Option<StepOutcome> {
        if self.ongoing.is_some() {
            loop {
                let outcome = self.step_event()?;
                if self.ongoing.is_none() {
                    return Some(outcome);
                }
            }
        }
        let step = self.next_step()?.clone();
        self.next += 1;
        let result = self.run(&step.stmt);
        Some(self.finish(&step, result))
    }

    /// Runs one simulator event: inside a `wait` or `settle`, the next frame delivery or
    /// timer; any other statement runs whole (its effects are immediate). `None` when the
    /// run has ended.
    pub fn step_event(&mut self) -> Option<StepOutcome> {
        let (step, ongoing) = match self.ongoing.take() {
            Some(going) => going,
            None => {
                let step = self.next_step()?.clone();
                let ongoing = match step.stmt {
                    Stmt::Wait(d) => Ongoing::Wait(self.world.now() + d),
                    Stmt::Settle => Ongoing::Settle(self.world.now() + SETTLE_LIMIT),
                    _ => return self.step(),
                };
                self.next += 1;
                (step, ongoing)
            }
        };
        let more = match ongoing {
            Ongoing::Wait(until) => Ok(self.world.wait_step(until)),
            Ongoing::Settle(deadline) => self.world.settle_step(deadline),
        };
        // A settle that ended leaves devices at rest: they owe convergence then.
        let more = more.and_then(|more| {
            self.check(!more && matches!(ongoing, Ongoing::Settle(_)))?;
            Ok(more)
        });
        Some(match more {
            Ok(true) => {
                self.ongoing = Some((step, ongoing));
                StepOutcome::Ran
            }
            Ok(false) => self.finish(&step, Ok(None)),
            Err(message) => self.finish(&step, Err(message)),
        })
    }

    /// Records how a statement ended, and the verdict once it is the last or it failed.
    fn finish(&mut self, step: &Step, result: Result<Option<String>, String>) -> StepOutcome {
        let outcome = match result {
            Ok(None) => StepOutcome::Ran,
            Ok(Some(held)) => StepOutcome::Held(held),
            Err(message) => {
                self.verdict = Some(fail(step.line, message.clone()));
                StepOutcome::Failed(message)
            }
        };
        if self.verdict.is_none() && self.next == self.scenario.steps.len() {
            self.verdict = Some(Verdict::Pass);
        }
        outcome
    }

    /// Runs to the end.
    pub fn run_to_end(&mut self) -> &Verdict {
        while self.step().is_some() {}
        self.verdict.get_or_insert(Verdict::Pass)
    }

    /// Does an action between statements, at the current virtual time, as if the script
    /// had it here (the player's panes do: a learner's tap or release). The run goes on
    /// where it was; a refusal (no such frame) is returned and fails nothing. `wait`,
    /// `settle` and expectations are the script's alone.
    pub fn act(&mut self, stmt: &Stmt) -> Result<(), String> {
        if matches!(stmt, Stmt::Wait(_) | Stmt::Settle | Stmt::Expect(_)) {
            return Err("only an action can be done between statements".into());
        }
        let broken_before = self.violation.is_some();
        let result = self.run(stmt).map(|_| ());
        // An action that broke an invariant ends the run, as a statement would — after the
        // script's end too. It is pinned on the statement under way (a `wait` part way
        // through), else the next one, else the last.
        if !broken_before
            && let Some(v) = &self.violation
            && !matches!(self.verdict, Some(Verdict::Fail { .. }))
        {
            let line = self
                .ongoing
                .as_ref()
                .map(|(step, _)| step.line)
                .or_else(|| self.scenario.steps.get(self.next).map(|s| s.line))
                .or_else(|| self.scenario.steps.last().map(|s| s.line))
                .unwrap_or(0);
            self.verdict = Some(fail(line, v.to_string()));
        }
        result
    }

    /// The run so far as a scenario: the same setup, then every action and held
    /// expectation in the order it ran — the learner's too — with a `wait` for the
    /// virtual time between them, up to now. Replayed, it reaches the same state, except
    /// where an action went between two events due at the same instant (a `wait`
    /// delivers both).
    pub fn transcript(&self) -> Scenario {
        let mut steps = Vec::new();
        let mut at = Duration::ZERO;
        let now = self.elapsed();
        for (t, stmt) in self.ran.iter().chain([(now, Stmt::Settle)].iter()) {
            if *t > at {
                steps.push(Step {
                    line: 0,
                    stmt: Stmt::Wait(*t - at),
                });
                at = *t;
            }
            if *stmt != Stmt::Settle {
                steps.push(Step {
                    line: 0,
                    stmt: stmt.clone(),
                });
            }
        }
        Scenario {
            steps,
            ..self.scenario.clone()
        }
    }

    fn run(&mut self, stmt: &Stmt) -> Result<Option<String>, String> {
        let at = self.elapsed();
        let intent = self.before_intent(stmt);
        let result = self.run_inner(stmt);
        if result.is_ok() {
            // It ran, whatever the checks say next: the transcript has it.
            if !matches!(stmt, Stmt::Wait(_) | Stmt::Settle) {
                self.ran.push((at, stmt.clone()));
            }
            if let Some((before, intent)) = intent {
                Checker::after_intent(&self.world, before, intent).map_err(|v| self.broke(v))?;
            }
            self.check(*stmt == Stmt::Settle)?;
        }
        result
    }

    /// For an intent statement, what its device shows before it (invariants 1 and 3).
    fn before_intent<'s>(&self, stmt: &'s Stmt) -> Option<(BeforeIntent, Intent<'s>)> {
        let (d, key, intent) = match stmt {
            Stmt::Tap(d, key) => (d, key, Intent::Tap),
            Stmt::Set(d, key, value) => (d, key, Intent::Set(value.clone())),
            Stmt::Comment(d, key, text) => (d, key, Intent::Comment(text)),
            _ => return None,
        };
        Some((Checker::before_intent(&self.world, *d, key), intent))
    }

    /// Checks the invariants after the world moved; `settled`: after a `settle`, when
    /// devices at rest owe convergence too.
    fn check(&mut self, settled: bool) -> Result<(), String> {
        let checked = if settled {
            self.checker.at_rest(&self.world)
        } else {
            self.checker.after_step(&self.world)
        };
        checked.map_err(|v| self.broke(v))
    }

    /// Remembers a broken invariant (the first: the run ended there); the message the run
    /// fails with.
    fn broke(&mut self, v: Violation) -> String {
        let message = v.to_string();
        self.violation.get_or_insert(v);
        message
    }

    fn run_inner(&mut self, stmt: &Stmt) -> Result<Option<String>, String> {
        // Time passes event by event, each one checked.
        match stmt {
            Stmt::Wait(d) => {
                let until = self.world.now() + *d;
                while self.world.wait_step(until) {
                    self.check(false)?;
                }
                return Ok(None);
            }
            Stmt::Settle => {
                let deadline = self.world.now() + SETTLE_LIMIT;
                while self.world.settle_step(deadline)? {
                    self.check(false)?;
                }
                return Ok(None);
            }
            _ => {}
        }
        let w = &mut self.world;
        match stmt {
            Stmt::Tap(d, key) => w.tap(*d, key)?,
            Stmt::Set(d, key, value) => w.set(*d, key, value.clone())?,
            Stmt::Comment(d, key, text) => w.comment(*d, key, text),
            Stmt::EditComment(d, key, id, text) => w.edit_comment(*d, key, id, text),
            Stmt::DeleteComment(d, key, id) => w.delete_comment(*d, key, id),
            Stmt::Offline(d) => w.set_offline(*d, true),
            Stmt::Online(d) => w.set_offline(*d, false),
            Stmt::Restart(d) => w.restart_device(*d)?,
            Stmt::Retry(d) => w.retry(*d),
            // The faults, translated into the link model's words.
            Stmt::Hold(d, dir) | Stmt::Unhold(d, dir) => {
                let on = matches!(stmt, Stmt::Hold(..));
                for x in Direction::one_or_both(*dir) {
                    w.fault(*d, Fault::Hold(x, on))?;
                }
            }
            Stmt::Release(d, dir, pick) => match pick {
                Pick::Nth(n) => w.fault(*d, Fault::Release(*dir, *n))?,
                Pick::All => {
                    while w.queued(*d, *dir) > 0 {
                        w.fault(*d, Fault::Release(*dir, 1))?;
                    }
                }
                Pick::Last => match w.queued(*d, *dir) {
                    0 => return Err("`release … last` on an empty queue".into()),
                    n => w.fault(*d, Fault::Release(*dir, n))?,
                },
            },
            Stmt::Drop(d, dir, n) => w.fault(*d, Fault::Drop(*dir, *n))?,
            Stmt::Link(devices, dir, change) => {
                for d in devices {
                    for x in Direction::one_or_both(*dir) {
                        let mut config = w.devices()[*d].config(x);
                        apply_change(&mut config, *change);
                        w.fault(*d, Fault::Configure(x, config))?;
                    }
                }
            }
            Stmt::ServerReject(key) => w.reject_next(key.clone()),
            Stmt::ServerRestart => w.restart_server(),
            Stmt::ServerRotateToken => w.rotate_token()?,
            Stmt::ServerBlockWebsocket(on) => w.block_websocket(*on),
            Stmt::ServerSet(key, value) => w.server_set(key, value.clone())?,
            Stmt::Say(text) => w.say(text),
            Stmt::Pause | Stmt::Wait(_) | Stmt::Settle => {}
            Stmt::Expect(e) => return self.expect(e).map(Some),
        }
        Ok(None)
    }

    fn expect(&self, e: &Expect) -> Result<String, String> {
        let w = &self.world;
        let name = |d: &usize| w.devices()[*d].name.clone();
        let engine = |d: &usize| &w.devices()[*d].engine;
        let check = |what: String, expected: String, got: String| {
            if expected == got {
                Ok(format!("{what} = {got}"))
            } else {
                Err(format!("expected {what} = {expected}, got {got}"))
            }
        };
        match e {
            Expect::Value(d, key, v) => check(
                format!("{} {key}", name(d)),
                json(v),
                json(&engine(d).shown(key)),
            ),
            Expect::Rev(d, key, n) => check(
                format!("{} {key} rev", name(d)),
                n.to_string(),
                engine(d).known_rev(key).to_string(),
            ),
            Expect::Requests(d, key, n) => {
                let got = engine(d)
                    .counters()
                    .requests_by_key
                    .get(key)
                    .copied()
                    .unwrap_or(0);
                check(
                    format!("{} requests {key}", name(d)),
                    n.to_string(),
                    got.to_string(),
                )
            }
            Expect::Stale(d, n) => check(
                format!("{} stale", name(d)),
                n.to_string(),
                engine(d).counters().stale.to_string(),
            ),
            Expect::Rollbacks(d, n) => check(
                format!("{} rollbacks", name(d)),
                n.to_string(),
                engine(d).counters().rollbacks.to_string(),
            ),
            Expect::Regressions(d, n) => check(
                format!("{} regressions", name(d)),
                n.to_string(),
                engine(d).counters().regressions.to_string(),
            ),
            Expect::FramesUp(d, n) => check(
                format!("{} frames up", name(d)),
                n.to_string(),
                engine(d).counters().frames_up.to_string(),
            ),
            Expect::Inflight(d, key, b) => check(
                format!("{} inflight {key}", name(d)),
                b.to_string(),
                engine(d).in_flight(key).is_some().to_string(),
            ),
            Expect::Queued(d, dir, n) => check(
                format!("{} queued {}", name(d), dir.name()),
                n.to_string(),
                w.queued(*d, *dir).to_string(),
            ),
            Expect::ServerValue(key, v) => check(
                format!("server {key}"),
                json(v),
                json(&w.core().value(w.user(), key).0),
            ),
            Expect::ServerRev(key, n) => check(
                format!("server {key} rev"),
                n.to_string(),
                w.core().value(w.user(), key).1.to_string(),
            ),
            Expect::ServerWrites(n) => check(
                "server writes".into(),
                n.to_string(),
                w.core().writes().to_string(),
            ),
            Expect::Connection(d, state) => check(
                format!("{} connection", name(d)),
                state.clone(),
                engine(d).connection().scenario_name().to_string(),
            ),
            Expect::DeviceConverged(d) => w
                .device_converged(*d)
                .map(|()| format!("{} converged", name(d)))
                .map_err(|e| format!("expected {} converged, got: {e}", name(d))),
            Expect::Converged => w
                .converged()
                .map(|()| "converged".to_string())
                .map_err(|e| format!("expected converged, got: {e}")),
        }
    }

    /// The trace from time 0 on (the setup's handshake left out), as `run` prints it.
    pub fn trace(&self) -> &[Trace] {
        &self.world.trace[self.setup_trace.min(self.world.trace.len())..]
    }

    /// The trace from entry `from` on as text lines, times relative to time 0 (the
    /// setup's lines are left out).
    pub fn trace_lines(&self, from: usize) -> Vec<String> {
        self.world.trace[from.max(self.setup_trace)..]
            .iter()
            .map(|t| format_trace(t, self.t0))
            .collect()
    }
}

fn fail(line: usize, message: String) -> Verdict {
    Verdict::Fail { line, message }
}

fn json(v: &Value) -> String {
    v.to_string()
}

/// One trace entry as a line: `[  0.100s] phone  intent like/p1 = true (local_rev 1)`.
pub fn format_trace(t: &Trace, t0: Duration) -> String {
    let at = t.at.saturating_sub(t0).as_secs_f64();
    let who = t.device.as_deref().unwrap_or("server");
    let what = match &t.kind {
        TraceKind::Device(e) => e.to_string(),
        TraceKind::Up(f) => format!("→ server: {f}"),
        TraceKind::Down(f) => format!("← server: {f}"),
        TraceKind::HttpUp(call) => format!("→ server: {call}"),
        TraceKind::HttpDown(answer) => format!("← server: {answer}"),
        TraceKind::Lost(why) => format!("✕ {why}"),
        TraceKind::ServerRestart => "server restarted from its store".into(),
        TraceKind::DeviceRestart => "restarted from its snapshot".into(),
        TraceKind::Say(text) => return format!("[{at:8.3}s] say      {text}"),
    };
    format!("[{at:8.3}s] {who:<8} {what}")
}
