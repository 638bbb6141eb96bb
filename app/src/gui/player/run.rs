//! One run of the player's source: the runner, the simulated devices' panes and wire, and
//! everything done to the world in order — so step back and the timeline can build it again
//! and redo all or part of it (the simulator is deterministic) — and the run saved as a
//! branch.

use std::collections::BTreeMap;

use mock_server::core::DEMO_USER;
use mock_server::link::{Direction, Pair};
use mock_server::scenario::ast::{Step, Stmt};
use mock_server::scenario::{Runner, StepOutcome};
use mock_server::sim::TraceKind;
use sync_core::engine::{DeviceView, Event};

use crate::gui::pane::{Pane, PaneAction};
use crate::gui::sections::Sections;
use crate::gui::wire;

/// One run of the source.
pub(super) struct Run {
    pub(super) runner: Runner,
    /// What each statement did, by line.
    pub(super) outcomes: BTreeMap<usize, StepOutcome>,
    /// The sequence diagram of the run, with virtual times.
    pub(super) wire: wire::Wire,
    /// The simulated devices' panes: the live demo's, driven by the simulator.
    pub(super) panes: Vec<Pane>,
    pub(super) sections: Sections,
    /// How much of the world's trace the wire view and the panes have taken.
    pub(super) seen: usize,
    /// Why the last thing a learner did in a pane was refused (e.g. a frame no longer held).
    pub(super) notice: Option<String>,
    /// The script scrolls to the failing line on the next frame (after "to failure").
    pub(super) reveal_failure: bool,
    /// Everything done to the world since it was built, in order: stepping back is
    /// building it again and doing all but the last (the simulator is deterministic).
    pub(super) history: Vec<Op>,
    /// The path the timeline jumps along: the history as it was before the first jump,
    /// until the learner acts again (a new action starts a new path).
    pub(super) kept: Option<Vec<Op>>,
    /// Simulator events run so far (a statement is one or more), and in the whole run:
    /// the timeline's position and length.
    pub(super) events: usize,
    pub(super) total: usize,
}

/// One thing done to a run.
#[derive(Debug, Clone)]
pub(super) enum Op {
    /// The next statement.
    Step,
    /// One simulator event.
    StepEvent,
    /// A learner's action in a device's pane, as the statements that do it (one pane
    /// action, one step back).
    Act(Vec<Stmt>),
}

impl Run {
    pub(super) fn new(scenario: mock_server::scenario::ast::Scenario, seed: u64) -> Run {
        // The whole run's length, in simulator events, for the timeline: the simulator is
        // deterministic, so a throwaway run of the same scenario and seed counts them.
        let mut count = Runner::new(scenario.clone(), seed);
        let mut total = 0;
        while count.step_event().is_some() {
            total += 1;
        }
        let runner = Runner::new(scenario, seed);
        let title = runner
            .scenario()
            .title
            .clone()
            .unwrap_or_else(|| "Sync Lab scenario".into());
        let panes = runner
            .world()
            .devices()
            .iter()
            .map(|d| {
                let mut pane = Pane::new(&d.name);
                pane.simulated = true;
                pane
            })
            .collect();
        Run {
            runner,
            outcomes: BTreeMap::new(),
            wire: wire::Wire::replay(&title),
            panes,
            sections: Sections::default(),
            seen: 0,
            notice: None,
            reveal_failure: false,
            history: Vec::new(),
            kept: None,
            events: 0,
            total,
        }
    }

    /// Gives the wire view and the panes the engine events the world traced since the
    /// last frame, each at its virtual time (the scenario's time 0 is the end of the
    /// handshake), and the panes their links as the world has them.
    pub(super) fn feed(&mut self) {
        let world = self.runner.world();
        let t0 = self.runner.t0();
        // The wire, like `run --svg`, starts at time 0 (after the setup's handshake); the
        // panes' logs have the handshake too.
        let setup = world.trace.len() - self.runner.trace().len();
        for (n, t) in world.trace.iter().enumerate().skip(self.seen) {
            if let (TraceKind::Device(kind), Some(device)) = (&t.kind, &t.device) {
                let since = t.at.saturating_sub(t0);
                if n >= setup {
                    self.wire.record(device, kind, since);
                }
                if let Some(i) = world.index(device) {
                    let event = Event {
                        at: t.at,
                        kind: kind.clone(),
                    };
                    self.panes[i].take_events([(since, event)]);
                }
            }
        }
        self.seen = world.trace.len();
        let stored = world.core().user(DEMO_USER).cloned().unwrap_or_default();
        let now = world.now().saturating_sub(t0);
        for (i, (pane, d)) in self.panes.iter_mut().zip(world.devices()).enumerate() {
            // A burst on a device's chart ends when it agrees with the server, as live.
            if crate::gui::convergence::agrees(&stored, &d.engine.view()) {
                pane.chart.agreed(now);
            }
            let (links, held) = d.links();
            pane.show_links(links, held);
            pane.network_down = Some(d.offline);
            pane.queue = world.queued_frames(i);
        }
    }

    /// Does what a simulated device's pane asked, in the world at the current virtual
    /// time, as the matching statements would; a refusal (no such frame) is said.
    pub(super) fn act(&mut self, i: usize, action: PaneAction) -> Result<(), String> {
        let Some(d) = self.runner.world().devices().get(i) else {
            return Ok(());
        };
        let (links, _) = d.links();
        let stmts = crate::gui::statements::of(&action, i, links).unwrap_or_default();
        if stmts.is_empty() {
            return Ok(());
        }
        self.finish_instant();
        let done = self.push_act(stmts);
        // An action that broke an invariant was done too (the run ended there).
        if done.is_ok() || self.runner.violation().is_some() {
            // A new path: the timeline's kept one is no longer what happened.
            self.kept = None;
        }
        done
    }

    /// Records a learner's action and does it.
    pub(super) fn push_act(&mut self, stmts: Vec<Stmt>) -> Result<(), String> {
        self.history.push(Op::Act(stmts.clone()));
        stmts.iter().try_for_each(|stmt| self.runner.act(stmt))
    }

    /// Runs the events still due at the current instant, part way through a `wait` or
    /// `settle`: a file can only say "wait until then", which delivers all of them, so an
    /// action (or a saved branch) must not fall between two.
    pub(super) fn finish_instant(&mut self) {
        while self.runner.in_progress()
            && self.runner.world().next_event_at() == Some(self.runner.world().now())
        {
            self.step_event();
        }
    }

    /// Runs the next statement, recording what each expectation did.
    pub(super) fn step(&mut self) -> bool {
        let Some(line) = self.runner.next_step().map(|s| s.line) else {
            return false;
        };
        self.history.push(Op::Step);
        // Event by event, so the timeline counts every one.
        while let Some(outcome) = self.runner.step_event() {
            self.events += 1;
            if !self.runner.in_progress() {
                self.outcomes.insert(line, outcome);
                break;
            }
        }
        true
    }

    /// Runs one simulator event.
    pub(super) fn step_event(&mut self) -> bool {
        let Some(line) = self.runner.next_step().map(|s| s.line) else {
            return false;
        };
        self.history.push(Op::StepEvent);
        let outcome = self.runner.step_event();
        self.events += usize::from(outcome.is_some());
        if let Some(outcome) = outcome
            && !self.runner.in_progress()
        {
            self.outcomes.insert(line, outcome);
        }
        true
    }

    /// Does `ops` in order up to simulator event `k` — statements event by event, so one
    /// can stop part way; a learner's action taken at event `k` or before is redone — then
    /// runs on to event `k` if the ops ended before it.
    pub(super) fn replay_to(&mut self, ops: Vec<Op>, k: usize) {
        'ops: for op in ops {
            match op {
                Op::Act(stmts) if self.events <= k => {
                    let _ = self.push_act(stmts);
                }
                Op::Act(_) => break,
                Op::StepEvent | Op::Step => loop {
                    if self.events >= k || !self.step_event() {
                        break 'ops;
                    }
                    if matches!(op, Op::StepEvent) || !self.runner.in_progress() {
                        break;
                    }
                },
            }
        }
        while self.events < k && self.step_event() {}
    }

    /// Does `ops` in order, as they were done.
    pub(super) fn replay(&mut self, ops: Vec<Op>) {
        for op in ops {
            match op {
                Op::Step => {
                    self.step();
                }
                Op::StepEvent => {
                    self.step_event();
                }
                Op::Act(stmts) => {
                    let _ = self.push_act(stmts);
                }
            }
        }
    }

    /// The run so far as a scenario file: what ran — the script's statements and the
    /// learner's own actions, at their virtual times — then an expectation for every
    /// value the world shows now. Played, it reaches this very state: the branch the
    /// learner took, as a file to keep or hand over.
    pub(super) fn branch(&mut self, source: &str, seed: u64) -> String {
        self.finish_instant();
        let world = self.runner.world();
        let mut scenario = self.runner.transcript();
        let title = scenario.title.take().unwrap_or_else(|| source.to_string());
        scenario.title = Some(format!("{title} (a branch)"));
        scenario.about = vec![
            format!(
                "A branch of {source}, saved from the player at {:.3} s: the script as it ran,",
                self.runner.elapsed().as_secs_f64()
            ),
            "the actions taken in the panes in between, then what the world showed.".into(),
        ];
        if seed != 0 {
            scenario.about.push(format!(
                "Played with seed {seed}: replay it with `app run --seed {seed}`."
            ));
        }
        let views: Vec<DeviceView> = world.devices().iter().map(|d| d.engine.view()).collect();
        // Held links only: frames on an automatic link are on their way.
        let queued: Vec<Pair<Option<usize>>> = world
            .devices()
            .iter()
            .enumerate()
            .map(|(i, d)| Pair {
                up: d.up.is_held().then(|| world.queued(i, Direction::Up)),
                down: d.down.is_held().then(|| world.queued(i, Direction::Down)),
            })
            .collect();
        let server = world.core().user(DEMO_USER);
        let converged = world.converged().is_ok();
        for e in crate::record::expectations(&views, &[], &queued, server, converged) {
            scenario.steps.push(Step {
                line: 0,
                stmt: Stmt::Expect(e),
            });
        }
        mock_server::scenario::write(&scenario)
    }

    /// Where the learner can branch now: a held link with more than one frame, any of
    /// which could go next.
    pub(super) fn branch_points(&self) -> Vec<String> {
        let world = self.runner.world();
        let mut points = Vec::new();
        for (i, d) in world.devices().iter().enumerate() {
            for dir in Direction::BOTH {
                let n = world.queued(i, dir);
                if n > 1 {
                    points.push(format!("{}'s {} link holds {n} frames", d.name, dir.name()));
                }
            }
        }
        points
    }

    /// The narration shown now: the last `say` that ran.
    pub(super) fn caption(&self) -> Option<&str> {
        self.runner
            .trace()
            .iter()
            .rev()
            .find_map(|t| match &t.kind {
                TraceKind::Say(text) => Some(text.as_str()),
                _ => None,
            })
    }
}
