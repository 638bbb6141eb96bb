//! The scenario player: a built-in lesson or a scenario file, played on the simulator one
//! statement or one event at a time, beside the devices and the server as the live panes show them.
//!
//! It is the headless `run` command with a face: the same parser (errors with
//! file:line:column), the same [`Runner`], the same seed. Play runs a statement every
//! `1 / speed` seconds; step runs one; "step event" runs one simulator event (a frame
//! delivered, a timer) inside a `wait` or `settle`; restart builds the world again from the
//! text. Each expectation shows, on its line, whether it held and with what values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eframe::egui::{self, RichText};
use mock_server::core::DEMO_USER;
use mock_server::link::{Direction, Pair};
use mock_server::scenario::ast::{Step, Stmt};
use mock_server::scenario::run::format_trace;
use mock_server::scenario::{Runner, StepOutcome, Verdict, parse};
use mock_server::sim::TraceKind;
use sync_core::engine::{DeviceView, Event};

use super::pane::{Pane, PaneAction};
use super::sections::Sections;
use super::{server_panel, style, wire};

/// A lesson shipped with the app: its file name and text.
macro_rules! lesson {
    ($file:literal) => {
        (
            $file,
            include_str!(concat!("../../../assets/scenarios/", $file)),
        )
    };
}

/// The lessons of `assets/scenarios/`, built in (a test checks the list is complete).
pub const LESSONS: &[(&str, &str)] = &[
    lesson!("01-three-taps-sync.scn"),
    lesson!("02-three-taps-sync-with-push.scn"),
    lesson!("03-follow-up.scn"),
    lesson!("04-normalised-value.scn"),
    lesson!("05-stale-push.scn"),
    lesson!("06-own-echo-as-ack.scn"),
    lesson!("07-newer-push-supersedes.scn"),
    lesson!("08-per-key-independence.scn"),
    lesson!("09-rollback-like.scn"),
    lesson!("10-rollback-comment.scn"),
    lesson!("11-invalid-value.scn"),
    lesson!("12-offline-intents.scn"),
    lesson!("13-lost-ack-resend.scn"),
    lesson!("14-server-restart.scn"),
    lesson!("15-device-restart.scn"),
    lesson!("16-contiguous-cursor.scn"),
    lesson!("17-naive-flicker.scn"),
    lesson!("18-sync-loses-intent.scn"),
    lesson!("19-sync-regresses.scn"),
    lesson!("20-improvement-newer-intent-after-reject.scn"),
    lesson!("21-server-writes.scn"),
    lesson!("22-lossy-network.scn"),
    lesson!("23-offline-superseded.scn"),
    lesson!("24-slider-drag.scn"),
    lesson!("25-one-comment-at-a-time.scn"),
    lesson!("26-arrival-order-wins.scn"),
    lesson!("27-out-of-order-uplink.scn"),
    lesson!("28-jitter-keeps-order.scn"),
    lesson!("29-lost-push-catch-up.scn"),
    lesson!("30-offline-with-held-request.scn"),
];

/// How a lesson is listed: its number and its `scenario` title (the file name if it has
/// none).
pub fn lesson_title(index: usize) -> String {
    let (file, text) = LESSONS[index];
    let title = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("scenario "))
        .map(|t| t.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| file.to_string());
    format!("{:02}  {title}", index + 1)
}

/// The lesson list's width: fixed, so the buttons after it never move when another
/// lesson (a longer title) is chosen.
const LESSON_LIST_WIDTH: f32 = 330.0;

/// Text from a scenario or the trace, drawable with the app's fonts (the terminal's
/// arrows and cross have no glyph in egui's default fonts).
fn drawable(text: &str) -> String {
    text.replace('→', "->").replace('←', "<-").replace('✕', "x")
}

/// Trace lines shown (the newest).
const TRACE_SHOWN: usize = 400;

/// The player's state.
pub struct Player {
    /// The lesson picked in the list.
    lesson: usize,
    /// A scenario file to open instead.
    path: String,
    /// The source being played: `(name, text)`.
    source: (String, String),
    seed: u64,
    run: Result<Run, String>,
    playing: bool,
    /// Statements per second while playing.
    speed: f32,
    last_step: Option<Instant>,
    /// The presenter keys' help overlay is shown.
    help: bool,
    /// Where a branch is saved: the field's text (empty: the next free name in
    /// [`Player::save_dir`]).
    branch_path: String,
    /// The directory branches go to by default.
    save_dir: PathBuf,
    /// What the last save said: where the file went, or why it did not.
    saved: Option<Result<String, String>>,
}

/// One run of the source.
struct Run {
    runner: Runner,
    /// What each statement did, by line.
    outcomes: BTreeMap<usize, StepOutcome>,
    /// The sequence diagram of the run, with virtual times.
    wire: wire::Wire,
    /// The simulated devices' panes: the live demo's, driven by the simulator.
    panes: Vec<Pane>,
    sections: Sections,
    /// How much of the world's trace the wire view and the panes have taken.
    seen: usize,
    /// Why the last thing a learner did in a pane was refused (e.g. a frame no longer held).
    notice: Option<String>,
    /// Everything done to the world since it was built, in order: stepping back is
    /// building it again and doing all but the last (the simulator is deterministic).
    history: Vec<Op>,
    /// The path the timeline jumps along: the history as it was before the first jump,
    /// until the learner acts again (a new action starts a new path).
    kept: Option<Vec<Op>>,
    /// Simulator events run so far (a statement is one or more), and in the whole run:
    /// the timeline's position and length.
    events: usize,
    total: usize,
}

/// One thing done to a run.
#[derive(Debug, Clone)]
enum Op {
    /// The next statement.
    Step,
    /// One simulator event.
    StepEvent,
    /// A learner's action in a device's pane, as the statements that do it (one pane
    /// action, one step back).
    Act(Vec<Stmt>),
}

impl Run {
    fn new(scenario: mock_server::scenario::ast::Scenario, seed: u64) -> Run {
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
            history: Vec::new(),
            kept: None,
            events: 0,
            total,
        }
    }

    /// Gives the wire view and the panes the engine events the world traced since the
    /// last frame, each at its virtual time (the scenario's time 0 is the end of the
    /// handshake), and the panes their links as the world has them.
    fn feed(&mut self) {
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
            if super::convergence::agrees(&stored, &d.engine.view()) {
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
    fn act(&mut self, i: usize, action: PaneAction) -> Result<(), String> {
        let Some(d) = self.runner.world().devices().get(i) else {
            return Ok(());
        };
        let (links, _) = d.links();
        let stmts = super::statements::of(&action, i, links).unwrap_or_default();
        if stmts.is_empty() {
            return Ok(());
        }
        self.finish_instant();
        let done = self.push_act(stmts);
        if done.is_ok() {
            // A new path: the timeline's kept one is no longer what happened.
            self.kept = None;
        }
        done
    }

    /// Records a learner's action and does it.
    fn push_act(&mut self, stmts: Vec<Stmt>) -> Result<(), String> {
        self.history.push(Op::Act(stmts.clone()));
        stmts.iter().try_for_each(|stmt| self.runner.act(stmt))
    }

    /// Runs the events still due at the current instant, part way through a `wait` or
    /// `settle`: a file can only say "wait until then", which delivers all of them, so an
    /// action (or a saved branch) must not fall between two.
    fn finish_instant(&mut self) {
        while self.runner.in_progress()
            && self.runner.world().next_event_at() == Some(self.runner.world().now())
        {
            self.step_event();
        }
    }

    /// Runs the next statement, recording what each expectation did.
    fn step(&mut self) -> bool {
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
    fn step_event(&mut self) -> bool {
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
    fn replay_to(&mut self, ops: Vec<Op>, k: usize) {
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
    fn replay(&mut self, ops: Vec<Op>) {
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
    fn branch(&mut self, source: &str, seed: u64) -> String {
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
        let queued: Vec<Pair<usize>> = (0..views.len())
            .map(|i| Pair {
                up: world.queued(i, Direction::Up),
                down: world.queued(i, Direction::Down),
            })
            .collect();
        let held: Vec<bool> = world
            .devices()
            .iter()
            .map(|d| d.up.is_held() || d.down.is_held())
            .collect();
        let server = world.core().user(DEMO_USER);
        let converged = world.converged().is_ok();
        for e in crate::record::expectations(&views, &[], &queued, &held, server, converged) {
            scenario.steps.push(Step {
                line: 0,
                stmt: Stmt::Expect(e),
            });
        }
        mock_server::scenario::write(&scenario)
    }

    /// Where the learner can branch now: a held link with more than one frame, any of
    /// which could go next.
    fn branch_points(&self) -> Vec<String> {
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
    fn caption(&self) -> Option<&str> {
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

impl Default for Player {
    fn default() -> Self {
        let (name, text) = LESSONS[0];
        Player::new(name, text)
    }
}

impl Player {
    /// A player loaded with this source (not started).
    pub fn new(name: &str, text: &str) -> Player {
        let mut p = Player {
            lesson: 0,
            path: String::new(),
            source: (name.to_string(), text.to_string()),
            seed: 0,
            run: Err(String::new()),
            playing: false,
            speed: 2.0,
            last_step: None,
            help: false,
            branch_path: String::new(),
            save_dir: std::env::temp_dir().join("sync-lab-branches"),
            saved: None,
        };
        p.restart();
        p
    }

    /// Builds the world again from the source (parse errors are shown, not panicked on).
    pub fn restart(&mut self) {
        self.playing = false;
        self.run = parse(&self.source.0, &self.source.1)
            .map(|scenario| Run::new(scenario, self.seed))
            .map_err(|e| e.to_string());
    }

    /// Loads one of the built-in lessons, from its start.
    pub fn open_lesson(&mut self, index: usize) {
        let Some((name, text)) = LESSONS.get(index) else {
            return;
        };
        self.lesson = index;
        self.source = (name.to_string(), text.to_string());
        self.restart();
    }

    /// Where branches are saved unless the field says otherwise.
    pub fn set_save_dir(&mut self, dir: PathBuf) {
        self.save_dir = dir;
    }

    /// The run so far as a scenario file (see [`Run::branch`]); `None` when the source
    /// did not parse.
    pub fn branch(&mut self) -> Option<String> {
        let run = self.run.as_mut().ok()?;
        Some(run.branch(&self.source.0, self.seed))
    }

    /// Saves the run so far as a scenario file at `path`; the path it went to.
    pub fn save_branch(&mut self, path: &Path) -> Result<PathBuf, String> {
        let text = self
            .branch()
            .ok_or("nothing to save: the scenario did not parse")?;
        super::recording::write_file(path, &text)?;
        Ok(path.to_path_buf())
    }

    /// Loads a scenario's text (a saved recording, say) under `name`, from its start.
    pub fn open(&mut self, name: &str, text: &str) {
        self.path = name.to_string();
        self.source = (name.to_string(), text.to_string());
        self.restart();
    }

    /// Runs the next statement; `false` when the run is over.
    pub fn step(&mut self) -> bool {
        self.run.as_mut().is_ok_and(Run::step)
    }

    /// Runs one simulator event (inside a `wait` or `settle`; other statements whole);
    /// `false` when the run is over.
    pub fn step_event(&mut self) -> bool {
        self.run.as_mut().is_ok_and(Run::step_event)
    }

    /// Goes back one step: the last statement, event or pane action is undone by
    /// building the world again and doing everything before it. `false` at the start.
    pub fn step_back(&mut self) -> bool {
        let Ok(run) = &mut self.run else {
            return false;
        };
        let mut ops = std::mem::take(&mut run.history);
        if ops.pop().is_none() {
            return false;
        }
        self.restart();
        if let Ok(run) = &mut self.run {
            run.replay(ops);
        }
        true
    }

    /// Jumps to simulator event `k` of the run (a timeline position): the world is built
    /// again and run `k` events, redoing the learner's own actions taken up to there. The
    /// path jumped along is kept until the learner acts again, so jumping back before an
    /// action and forward past it redoes it; beyond the path's end the script goes on.
    pub fn scrub_to(&mut self, k: usize) {
        self.playing = false;
        let ops = self
            .run
            .as_mut()
            .map(|r| {
                r.kept
                    .take()
                    .unwrap_or_else(|| std::mem::take(&mut r.history))
            })
            .unwrap_or_default();
        self.restart();
        if let Ok(run) = &mut self.run {
            run.replay_to(ops.clone(), k);
            run.kept = Some(ops);
        }
    }

    /// The timeline: events run so far, and in the whole run. A learner's own actions add
    /// events, so the run grows to hold them (a position past the bar's end would be
    /// clamped, and the clamp taken for a jump).
    pub fn timeline(&self) -> Option<(usize, usize)> {
        self.run
            .as_ref()
            .ok()
            .map(|r| (r.events, r.total.max(r.events)))
    }

    /// Whether the player is playing (for tests).
    pub fn is_playing(&self) -> bool {
        self.playing
    }

    /// The narration shown now (for tests).
    pub fn caption(&self) -> Option<String> {
        self.run.as_ref().ok()?.caption().map(String::from)
    }

    /// The line of the statement that runs next.
    pub fn next_line(&self) -> Option<usize> {
        self.run.as_ref().ok()?.runner.next_step().map(|s| s.line)
    }

    /// The wire view's arrows as `(device, label)` (for tests).
    pub fn wire_labels(&self) -> Vec<(String, String)> {
        self.run.as_ref().map_or_else(
            |_| Vec::new(),
            |r| {
                r.wire
                    .arrows()
                    .map(|a| (a.device.clone(), a.label.clone()))
                    .collect()
            },
        )
    }

    /// Whether a simulated device's downlink is held (for tests).
    pub fn held(&self, device: &str) -> bool {
        self.run.as_ref().ok().is_some_and(|r| {
            let world = r.runner.world();
            world.device(device).is_some_and(|d| d.down.is_held())
        })
    }

    /// The verdict, once the run ended.
    pub fn verdict(&self) -> Option<&Verdict> {
        self.run.as_ref().ok().and_then(|r| r.runner.verdict())
    }

    /// Opens a scenario file; an unreadable file is reported in the player.
    fn open_file(&mut self) {
        let path = self.path.trim().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                self.source = (path, text);
                self.restart();
            }
            Err(e) => {
                self.playing = false;
                self.run = Err(format!("{path}: {e}"));
            }
        }
    }

    /// Draws the player, and plays on while playing.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.presenter_keys(ui);
        self.controls(ui);
        if self.playing {
            let every = Duration::from_secs_f32(1.0 / self.speed);
            if self.last_step.is_none_or(|t| t.elapsed() >= every) {
                self.last_step = Some(Instant::now());
                // A `pause` stops play there: the moment to ask the audience. A `say`
                // stays up long enough to be read before play goes on.
                let next = self
                    .run
                    .as_ref()
                    .ok()
                    .and_then(|r| r.runner.next_step())
                    .map(|s| s.stmt.clone());
                self.playing = self.step() && next != Some(Stmt::Pause);
                if let Some(Stmt::Say(text)) = next {
                    let reading = Duration::from_secs_f32(
                        (1.0 + text.len() as f32 / 20.0) * 2.0 / self.speed,
                    );
                    self.last_step = Some(Instant::now() + reading.saturating_sub(every));
                }
            }
            ui.ctx().request_repaint_after(every);
        }
        if self.help {
            help_overlay(ui, &mut self.help);
        }
        ui.separator();
        let run = match &mut self.run {
            Ok(run) => run,
            Err(e) => {
                ui.label(RichText::new(drawable(e)).color(style::RED).monospace());
                return;
            }
        };
        verdict_line(ui, &run.runner);
        if let Some(caption) = run.caption() {
            caption_band(ui, caption);
        }
        run.feed();
        let wire_height = (ui.available_height() * 0.3).clamp(140.0, 240.0);
        egui::Panel::bottom("player-wire")
            .resizable(true)
            .default_size(wire_height)
            .show(ui, |ui| {
                let lanes: Vec<(String, String)> = run
                    .runner
                    .world()
                    .devices()
                    .iter()
                    .map(|d| (d.name.clone(), d.name.clone()))
                    .collect();
                run.wire.ui(ui, &lanes);
            });
        // The script on the left (resizable), the world beside it, above the wire panel.
        let script_width = (ui.available_width() * 0.36).clamp(300.0, 560.0);
        egui::Panel::left("player-script")
            .resizable(true)
            .default_size(script_width)
            .show(ui, |ui| {
                // Both ways: a long line scrolls inside its panel instead of running into
                // the devices beside it.
                egui::ScrollArea::both()
                    .id_salt("script")
                    .auto_shrink([false, false])
                    .show(ui, |ui| script(ui, &self.source.1, run));
            });
        egui::CentralPanel::default()
            .frame(egui::Frame::NONE)
            .show(ui, |ui| {
                if let Some(notice) = &run.notice {
                    ui.label(RichText::new(drawable(notice)).color(style::RED));
                }
                egui::ScrollArea::both()
                    .id_salt("world")
                    .auto_shrink([false, false])
                    .show(ui, |ui| world(ui, run));
            });
    }

    fn controls(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            let label = ui.label("lesson");
            let before = self.lesson;
            // An exact space for the list: a long title is truncated inside it.
            let (space, _) = ui.allocate_exact_size(
                egui::vec2(LESSON_LIST_WIDTH, ui.spacing().interact_size.y),
                egui::Sense::hover(),
            );
            let combo = ui
                .scope_builder(egui::UiBuilder::new().max_rect(space), |ui| {
                    egui::ComboBox::from_id_salt("lesson")
                        .width(LESSON_LIST_WIDTH)
                        .truncate()
                        .selected_text(lesson_title(self.lesson))
                        .show_ui(ui, |ui| {
                            for (i, (file, _)) in LESSONS.iter().enumerate() {
                                ui.selectable_value(&mut self.lesson, i, lesson_title(i))
                                    .on_hover_text(*file);
                            }
                        })
                        .response
                })
                .inner
                .labelled_by(label.id);
            combo.on_hover_text(format!(
                "assets/scenarios/{}",
                LESSONS[self.lesson].0
            ));
            if self.lesson != before {
                self.open_lesson(self.lesson);
            }
            let label = ui.label("or a file");
            ui.add(
                egui::TextEdit::singleline(&mut self.path)
                    .hint_text("path/to/scenario.scn")
                    .desired_width(150.0),
            )
            .labelled_by(label.id);
            if ui
                .add_enabled(!self.path.trim().is_empty(), egui::Button::new("open"))
                .clicked()
            {
                self.open_file();
            }
            ui.separator();
            let label = ui.label("seed");
            if ui
                .add(egui::DragValue::new(&mut self.seed))
                .labelled_by(label.id)
                .changed()
            {
                self.restart();
            }
            if ui.button("restart").clicked() {
                self.restart();
            }
            let started = self.run.as_ref().is_ok_and(|r| !r.history.is_empty());
            if ui
                .add_enabled(started, egui::Button::new("back"))
                .on_hover_text("Undo the last statement, event or action of yours (key: left arrow)")
                .clicked()
            {
                self.playing = false;
                self.step_back();
            }
            let running = self.verdict().is_none() && self.run.is_ok();
            if ui
                .add_enabled(running, egui::Button::new("step"))
                .on_hover_text("Run the next statement")
                .clicked()
            {
                self.playing = false;
                self.step();
            }
            if ui
                .add_enabled(running, egui::Button::new("step event"))
                .on_hover_text(
                    "Run one simulator event: a frame delivered or a timer, inside a `wait` or `settle`",
                )
                .clicked()
            {
                self.playing = false;
                self.step_event();
            }
            let play = if self.playing { "pause" } else { "play" };
            if ui.add_enabled(running, egui::Button::new(play)).clicked() {
                self.playing = !self.playing;
                self.last_step = None;
            }
            let label = ui
                .label("speed")
                .on_hover_text("Statements per second while playing");
            ui.spacing_mut().slider_width = 90.0;
            ui.add(
                egui::Slider::new(&mut self.speed, 0.5..=20.0)
                    .logarithmic(true)
                    .suffix(" /s"),
            )
            .labelled_by(label.id);
        });
        self.timeline_bar(ui);
    }

    /// The timeline: a scrubber over the run's simulator events; dragging it jumps there.
    fn timeline_bar(&mut self, ui: &mut egui::Ui) {
        let Some((mut at, total)) = self.timeline() else {
            return;
        };
        ui.horizontal(|ui| {
            ui.label("timeline");
            ui.spacing_mut().slider_width = (ui.available_width() - 200.0).max(120.0);
            let r = ui
                .add(
                    egui::Slider::new(&mut at, 0..=total)
                        .step_by(1.0)
                        .show_value(false),
                )
                .on_hover_text(
                    "Every frame delivered and every timer of the run: drag to jump anywhere (the world is run again to there, your own actions up to there with it)",
                );
            r.widget_info(|| egui::WidgetInfo::slider(true, at as f64, "timeline position"));
            if r.changed() {
                self.scrub_to(at);
            }
            ui.label(format!("event {at} of {total}"));
        });
        self.branch_bar(ui);
    }

    /// Branching: where more than one held frame could go next, and saving the run so
    /// far (the learner's choices in it) as a scenario file.
    fn branch_bar(&mut self, ui: &mut egui::Ui) {
        let Ok(run) = &self.run else {
            return;
        };
        let points = run.branch_points();
        ui.horizontal_wrapped(|ui| {
            if !points.is_empty() {
                ui.label(
                    RichText::new(format!(
                        "{}: deliver any of them in the pane to choose what comes next",
                        points.join(", ")
                    ))
                    .color(style::AMBER),
                );
            }
            let suggested = super::recording::free_path(&self.save_dir, "branch");
            let label = ui.label("save this run as");
            // The name only: the directory is the app's data directory.
            let name = suggested.file_name().unwrap_or_default().to_string_lossy();
            ui.add(
                egui::TextEdit::singleline(&mut self.branch_path)
                    .hint_text(name.as_ref())
                    .desired_width(220.0),
            )
            .labelled_by(label.id)
            .on_hover_text(format!("Empty: {}", suggested.display()));
            if ui
                .button("save .scn")
                .on_hover_text(
                    "The run so far as a scenario: the script as it ran, your own taps, holds and \
                     deliveries at their times, then an expectation for everything shown now",
                )
                .clicked()
            {
                let path = match self.branch_path.trim() {
                    "" => suggested,
                    typed => PathBuf::from(typed),
                };
                self.saved = Some(
                    self.save_branch(&path)
                        .map(|p| format!("saved {}", p.display())),
                );
            }
            match &self.saved {
                Some(Ok(text)) => {
                    ui.label(RichText::new(text).color(style::GREEN));
                }
                Some(Err(text)) => {
                    ui.label(RichText::new(text).color(style::RED));
                }
                None => {}
            }
        });
    }
}

/// The presenter's keys: they work while no text field has the keyboard.
const KEYS: [(&str, &str); 6] = [
    ("space", "play / pause"),
    ("right arrow", "step one statement"),
    ("left arrow", "step back"),
    ("+ / -", "zoom in / out"),
    ("?", "this help"),
    ("Esc", "close this help"),
];

impl Player {
    /// Space plays or pauses, the arrows step forward and back, + and - zoom, ? shows
    /// the keys. Not while a text field (the file path, a comment) has the keyboard.
    fn presenter_keys(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        if ctx.memory(|m| m.focused().is_some()) {
            return;
        }
        use egui::Key;
        let pressed = |key| ctx.input_mut(|i| i.consume_key(egui::Modifiers::NONE, key));
        if pressed(Key::Space) {
            self.playing = !self.playing && self.verdict().is_none();
            self.last_step = None;
        }
        if pressed(Key::ArrowRight) {
            self.playing = false;
            self.step();
        }
        if pressed(Key::ArrowLeft) {
            self.playing = false;
            self.step_back();
        }
        if pressed(Key::Plus) || pressed(Key::Equals) {
            egui::gui_zoom::zoom_in(&ctx);
        }
        if pressed(Key::Minus) {
            egui::gui_zoom::zoom_out(&ctx);
        }
        // `?` is Shift and / on most keyboards: take the key whatever the modifiers.
        let question = ctx.input(|i| {
            i.events.iter().any(|e| {
                matches!(
                    e,
                    egui::Event::Key {
                        key: Key::Questionmark,
                        pressed: true,
                        ..
                    }
                )
            })
        });
        if question {
            self.help = !self.help;
        }
        if pressed(Key::Escape) {
            self.help = false;
        }
    }
}

/// The presenter keys, listed over the player.
fn help_overlay(ui: &mut egui::Ui, open: &mut bool) {
    egui::Window::new("presenter keys")
        .open(open)
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, egui::vec2(0.0, 0.0))
        .show(ui.ctx(), |ui| {
            egui::Grid::new("keys").num_columns(2).show(ui, |ui| {
                for (key, what) in KEYS {
                    ui.label(RichText::new(key).strong().size(20.0));
                    ui.label(RichText::new(what).size(20.0));
                    ui.end_row();
                }
            });
        });
}

/// The narration (`say`) in large type, until the next one.
fn caption_band(ui: &mut egui::Ui, caption: &str) {
    egui::Frame::new()
        .fill(ui.visuals().selection.bg_fill.gamma_multiply(0.35))
        .inner_margin(egui::Margin::symmetric(12, 8))
        .corner_radius(6.0)
        .show(ui, |ui| {
            ui.set_min_width(ui.available_width());
            ui.label(RichText::new(drawable(caption)).size(24.0).strong());
        });
}

fn verdict_line(ui: &mut egui::Ui, runner: &Runner) {
    let title = runner.scenario().title.clone().unwrap_or_default();
    let (color, text) = match runner.verdict() {
        Some(Verdict::Pass) => (style::GREEN, "PASS".to_string()),
        Some(Verdict::Fail { line, message }) => (
            style::RED,
            drawable(&format!("FAIL at line {line}: {message}")),
        ),
        None => (
            style::QUIET,
            match runner.next_step() {
                Some(step) if runner.in_progress() => format!("running line {}", step.line),
                Some(step) => format!("next: line {}", step.line),
                None => "ready".into(),
            },
        ),
    };
    ui.horizontal_wrapped(|ui| {
        ui.heading(drawable(&title));
        ui.label(RichText::new(text).color(color).strong());
        ui.label(format!("t = {:.3} s", runner.elapsed().as_secs_f64()));
        // The player's own convergence indicator, for its simulated world.
        let (color, agreement) = match runner.world().converged() {
            Ok(()) => (style::GREEN, "the devices agree with the server".to_string()),
            Err(why) => (style::AMBER, format!("not converged: {}", drawable(&why))),
        };
        ui.label(RichText::new(agreement).color(color))
            .on_hover_text("As `expect converged` judges it: every connected device shows the server's value and knows its revision for every key, with nothing in flight");
    });
}

/// The source, line by line: what ran is dimmed, the next statement is marked, and each
/// expectation shows whether it held and with what values.
fn script(ui: &mut egui::Ui, text: &str, run: &Run) {
    let next = run.runner.next_step().map(|s| s.line);
    egui::Grid::new("script").num_columns(2).show(ui, |ui| {
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            ui.label(RichText::new(n.to_string()).font(style::mono()).weak());
            let mut rt = RichText::new(drawable(line)).font(style::mono());
            if Some(n) == next {
                rt = rt.strong().background_color(ui.visuals().selection.bg_fill);
            } else if run.outcomes.contains_key(&n) {
                rt = rt.weak();
            }
            ui.label(rt);
            ui.end_row();
            let (text, color) = match run.outcomes.get(&n) {
                Some(StepOutcome::Held(what)) => (format!("held: {what}"), style::GREEN),
                Some(StepOutcome::Failed(why)) => (format!("FAILED: {why}"), style::RED),
                _ => continue,
            };
            ui.label("");
            ui.label(
                RichText::new(drawable(&text))
                    .font(style::mono())
                    .strong()
                    .color(color),
            );
            ui.end_row();
        }
    });
}

/// The simulated devices in the live demo's panes, the server, and the trace so far.
/// What a learner does in a pane goes into the world at once.
fn world(ui: &mut egui::Ui, run: &mut Run) {
    let views: Vec<DeviceView> = run
        .runner
        .world()
        .devices()
        .iter()
        .map(|d| d.engine.view())
        .collect();
    let clock = run.runner.world().now();
    let mut actions = Vec::new();
    ui.columns(run.panes.len().max(1), |cols| {
        for (i, ((pane, view), col)) in run
            .panes
            .iter_mut()
            .zip(&views)
            .zip(cols.iter_mut())
            .enumerate()
        {
            let mut mine = Vec::new();
            pane.ui(col, view, clock, &mut run.sections, &mut mine);
            actions.extend(mine.into_iter().map(|a| (i, a)));
        }
    });
    run.sections.end_frame(ui.ctx());
    for (i, action) in actions {
        run.notice = run.act(i, action).err();
    }
    let world = run.runner.world();
    egui::Frame::group(ui.style()).show(ui, |ui| {
        let data = world.core().user(DEMO_USER).cloned().unwrap_or_default();
        ui.strong(format!(
            "server · head revision {} · accepted writes {}",
            data.head,
            world.core().writes()
        ));
        server_panel::table(ui, &data);
    });
    ui.label(RichText::new("trace").strong());
    let t0 = run.runner.t0();
    let skip = world.trace.len().saturating_sub(TRACE_SHOWN);
    for t in &world.trace[skip..] {
        ui.label(RichText::new(drawable(&format_trace(t, t0))).font(style::mono()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mock_server::link::Fault;

    /// Where two held frames could go next, the learner delivers the newer one first;
    /// the run saved as a branch replays to the very state the player shows.
    #[test]
    fn a_branch_taken_in_a_pane_is_saved_and_replays_to_the_same_state() {
        let text = "scenario \"Two pushes\"\ndevices phone laptop\nhold laptop down\n\
                    phone tap like/p\nsettle\nphone tap like/p\nsettle\n\
                    expect laptop queued down = 2\nrelease laptop down 1\nsettle\n";
        let mut p = Player::new("two.scn", text);
        while p.next_line() != Some(9) {
            assert!(p.step(), "the release is reached");
        }
        let run = p.run.as_mut().expect("parsed");
        assert_eq!(run.branch_points(), ["laptop's down link holds 2 frames"]);
        let newer = Fault::Release(Direction::Down, 2);
        run.act(1, PaneAction::Link(newer)).expect("held");
        while p.step() {}
        assert_eq!(p.verdict(), Some(&Verdict::Pass));
        let branch = p.branch().expect("a run");
        assert!(
            branch.contains("scenario \"Two pushes (a branch)\"\n"),
            "{branch}"
        );
        assert!(
            branch.contains(
                "expect laptop queued down = 2\nrelease laptop down 2\nrelease laptop down 1\n"
            ),
            "{branch}"
        );
        let mut again = Runner::new(parse("branch.scn", &branch).expect("reads back"), 0);
        assert_eq!(again.run_to_end(), &Verdict::Pass, "{branch}");
        let world = p.run.as_ref().expect("parsed").runner.world();
        for (a, b) in again.world().devices().iter().zip(world.devices()) {
            assert_eq!(a.engine.view(), b.engine.view(), "{branch}");
        }
    }

    #[test]
    fn every_lesson_in_assets_is_built_in() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/scenarios");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".scn"))
            .collect();
        files.sort();
        let built_in: Vec<&str> = LESSONS.iter().map(|(n, _)| *n).collect();
        assert_eq!(built_in, files);
    }

    #[test]
    fn stepping_a_lesson_to_the_end_gives_the_headless_verdict() {
        for (name, text) in LESSONS {
            let mut player = Player::new(name, text);
            while player.step() {}
            assert_eq!(player.verdict(), Some(&Verdict::Pass), "{name}");
            let run = player.run.as_ref().unwrap();
            let held = run
                .outcomes
                .values()
                .filter(|o| matches!(o, StepOutcome::Held(_)))
                .count();
            assert!(held > 0, "{name}: every lesson checks something");
        }
    }

    #[test]
    fn the_wire_view_shows_the_run_at_virtual_times() {
        // Lesson 02: three taps under sync-with-push, 50 ms links.
        let (name, text) = LESSONS[1];
        let mut player = Player::new(name, text);
        while player.step() {}
        let run = player.run.as_mut().unwrap();
        run.feed();
        let arrows: Vec<&crate::export::Frame> = run.wire.arrows().collect();
        assert!(!arrows.is_empty());
        let devices: Vec<&str> = run
            .runner
            .world()
            .devices()
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        assert!(arrows.iter().all(|a| devices.contains(&a.device.as_str())));
        // Every arrow has a time, in order, and the first request leaves at time 0.
        let times: Vec<Duration> = arrows.iter().map(|a| a.at).collect();
        assert!(times.is_sorted(), "{times:?}");
        let first_request = arrows.iter().find(|a| a.label.starts_with("req ")).unwrap();
        assert_eq!(first_request.at, Duration::ZERO, "{}", first_request.label);
        // Fed again, nothing is added twice.
        let n = arrows.len();
        run.feed();
        assert_eq!(run.wire.arrows().count(), n);
    }

    #[test]
    fn a_simulated_devices_chart_ends_a_burst_when_it_agrees() {
        // Lesson 01: the phone taps three times, then everyone settles.
        let (name, text) = LESSONS[0];
        let mut player = Player::new(name, text);
        while player.step() {
            player.run.as_mut().unwrap().feed();
        }
        let run = player.run.as_ref().unwrap();
        let bursts = run.panes[0].chart.bursts();
        assert_eq!(bursts.len(), 1, "{bursts:?}");
        let [_, took, per_intent] = bursts[0];
        assert!(took > 0.0 && per_intent < 1.0, "{bursts:?}");
        assert!(
            run.panes[1].chart.bursts().is_empty(),
            "the laptop made no intent"
        );
    }

    #[test]
    fn the_timeline_jumps_to_any_event_as_stepping_there_would() {
        let (name, text) = LESSONS[4];
        let mut stepped = Player::new(name, text);
        let total = stepped.timeline().unwrap().1;
        let mut n = 0;
        while stepped.step_event() {
            n += 1;
            let mut jumped = Player::new(name, text);
            jumped.scrub_to(stepped.timeline().unwrap().0);
            let (a, b) = (stepped.run.as_ref().unwrap(), jumped.run.as_ref().unwrap());
            assert_eq!(a.runner.world().trace, b.runner.world().trace, "event {n}");
            assert_eq!(stepped.next_line(), jumped.next_line());
        }
        assert_eq!(
            stepped.timeline(),
            Some((total, total)),
            "the whole run counted"
        );
        assert!(total > 10, "{total}");
    }

    /// A learner's tap survives jumps back and forth on the timeline: it is redone when a
    /// jump lands after it, and gone while one lands before.
    #[test]
    fn the_timeline_keeps_a_learners_action_taken_before_the_jump() {
        let (name, text) = LESSONS[4];
        let mut p = Player::new(name, text);
        for _ in 0..3 {
            p.step_event();
        }
        let run = p.run.as_mut().unwrap();
        let at = run.events;
        run.act(
            1,
            PaneAction::Tap(sync_core::protocol::Key::Like("post-3".into())),
        )
        .unwrap();
        for _ in 0..4 {
            p.step_event();
        }
        let intents = |p: &Player| {
            p.run.as_ref().unwrap().runner.world().devices()[1]
                .engine
                .counters()
                .intents
        };
        assert_eq!(intents(&p), 1);
        let end = p.timeline().unwrap().0;
        p.scrub_to(at - 1);
        assert_eq!(intents(&p), 0, "before the tap");
        assert_eq!(p.timeline().unwrap().0, at - 1);
        p.scrub_to(end);
        assert_eq!(intents(&p), 1, "after it again: redone");
        assert_eq!(p.timeline().unwrap().0, end);

        let mut p = Player::new(name, text);
        for _ in 0..3 {
            p.step_event();
        }
        let run = p.run.as_mut().unwrap();
        run.act(
            1,
            PaneAction::Tap(sync_core::protocol::Key::Like("post-3".into())),
        )
        .unwrap();
        for _ in 0..4 {
            p.step_event();
        }
        let end = p.timeline().unwrap().0;
        p.scrub_to(end - 1);
        assert_eq!(intents(&p), 1, "after the tap: redone");
        assert_eq!(p.timeline().unwrap().0, end - 1);
        p.scrub_to(at + 100);
        assert_eq!(intents(&p), 1, "beyond the branch's end the script goes on");
    }

    /// A branch saved between two deliveries due at the same instant (stepping event by
    /// event) still replays to the state the player shows: the instant is finished first.
    #[test]
    fn a_branch_saved_inside_an_instant_replays_to_the_same_state() {
        let (name, text) = LESSONS[23];
        assert!(name.starts_with("24-"), "{name}");
        let mut p = Player::new(name, text);
        // Into the `settle` after the drag, to the first delivery at 0.200 s.
        loop {
            assert!(p.step_event());
            let run = p.run.as_ref().unwrap();
            let world = run.runner.world();
            if run.runner.elapsed() >= Duration::from_millis(200)
                && world.next_event_at() == Some(world.now())
            {
                break;
            }
        }
        let branch = p.branch().unwrap();
        let mut again = Runner::new(parse("b.scn", &branch).unwrap(), 0);
        assert_eq!(again.run_to_end(), &Verdict::Pass, "{branch}");
        let world = p.run.as_ref().unwrap().runner.world();
        for (a, b) in again.world().devices().iter().zip(world.devices()) {
            assert_eq!(a.engine.view(), b.engine.view(), "{branch}");
        }
    }

    /// The timeline's length grows with a learner's own events, so the position never
    /// runs past its end.
    #[test]
    fn the_timeline_holds_a_learners_extra_events() {
        let (name, text) = LESSONS[0];
        let mut p = Player::new(name, text);
        let run = p.run.as_mut().unwrap();
        run.act(
            1,
            PaneAction::Tap(sync_core::protocol::Key::Like("post-2".into())),
        )
        .unwrap();
        while run.step_event() {}
        assert!(
            run.events > run.total,
            "the tap added events to the script's"
        );
        let (at, total) = p.timeline().unwrap();
        assert!(at <= total, "{at} of {total}");
    }

    #[test]
    fn a_failing_expectation_and_a_parse_error_are_shown() {
        let text = "devices a\na tap like/p\nsettle\nexpect a like/p = false\n";
        let mut player = Player::new("mine.scn", text);
        while player.step() {}
        assert!(
            matches!(player.verdict(), Some(Verdict::Fail { line: 4, .. })),
            "{:?}",
            player.verdict()
        );
        let player = Player::new("bad.scn", "devices a\na jump\n");
        let err = player.run.as_ref().err().unwrap();
        assert!(err.starts_with("bad.scn:2:"), "{err}");
    }
}
