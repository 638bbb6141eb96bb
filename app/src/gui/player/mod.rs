//! The scenario player: a built-in lesson or a scenario file, played on the simulator one
//! statement or one event at a time, beside the devices and the server as the live panes show them.
//!
//! It is the headless `run` command with a face: the same parser (errors with
//! file:line:column), the same [`Runner`](mock_server::scenario::Runner), the same seed. Play runs a statement every
//! `1 / speed` seconds; step runs one; "step event" runs one simulator event (a frame
//! delivered, a timer) inside a `wait` or `settle`; restart builds the world again from the
//! text. Each expectation shows, on its line, whether it held and with what values.
//!
//! | module | what |
//! |---|---|
//! | [`lessons`] | the lessons of `assets/scenarios/`, built in |
//! | `run` | one run of the source: the runner, the simulated devices' panes, the history that step back and the timeline replay, branches |
//! | `controls` | the bars above the stage: lesson, file, seed, step / back / play, the timeline, saving a branch, the presenter keys |
//! | `stage` | below them: the caption, the verdict, the script, the simulated devices |

mod controls;
pub mod lessons;
mod run;
mod stage;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eframe::egui::{self, RichText};
use mock_server::scenario::ast::Stmt;
use mock_server::scenario::{Verdict, parse};

use super::style;
use controls::help_overlay;
pub use lessons::{LESSONS, lesson_title};
use run::Run;
use stage::{broken_invariant, caption_band, drawable, script, verdict_line, world};

/// The player's state.
pub struct Player {
    /// The lesson playing, as the list shows it; `None` while a file is open (the list
    /// must not name a lesson that is not the one playing).
    lesson: Option<usize>,
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
            lesson: LESSONS
                .iter()
                .position(|(file, lesson)| *file == name && *lesson == text),
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
        self.lesson = Some(index);
        self.source = (name.to_string(), text.to_string());
        self.restart();
    }

    /// The lesson playing (`None` while a file is open): what the lesson list shows.
    pub fn lesson(&self) -> Option<usize> {
        self.lesson
    }

    /// Where branches are saved unless the field says otherwise.
    pub fn set_save_dir(&mut self, dir: PathBuf) {
        self.save_dir = dir;
    }

    /// The run so far as a scenario file: what ran (the script's statements and the
    /// learner's own actions, at their virtual times), then an expectation for every value
    /// the world shows now; `None` when the source did not parse.
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
        self.lesson = None;
        self.path = name.to_string();
        self.source = (name.to_string(), text.to_string());
        self.restart();
    }

    /// Runs the next statement; `false` when the run is over.
    pub fn step(&mut self) -> bool {
        self.run.as_mut().is_ok_and(Run::step)
    }

    /// Plays on to the first failure — a broken invariant or a failed expectation — and
    /// stops at the event where it happened (step back shows the moment before); `false`
    /// when the run ends without one.
    pub fn to_failure(&mut self) -> bool {
        self.playing = false;
        while self.verdict().is_none() && self.step() {}
        let failed = matches!(self.verdict(), Some(Verdict::Fail { .. }));
        if let Ok(run) = &mut self.run {
            run.reveal_failure = failed;
        }
        failed
    }

    /// Plays with this seed from now on (the world is built again).
    pub fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
        self.restart();
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

    /// Opens a scenario file; an unreadable file is reported in the player. `false` when
    /// it could not be read.
    fn open_file(&mut self) -> bool {
        let path = self.path.trim().to_string();
        self.lesson = None;
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                self.source = (path, text);
                self.restart();
                true
            }
            Err(e) => {
                self.playing = false;
                self.run = Err(format!("{path}: {e}"));
                false
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
        if let Some(v) = run.runner.violation() {
            broken_invariant(ui, v);
        }
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
            .show(ui, |ui| script(ui, &self.source.1, run));
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
}

/// The player alone in a window, without the live devices or the embedded server: what
/// `app run --open-at-failure FILE` opens.
impl eframe::App for Player {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::CentralPanel::default().show(ui, |ui| Player::ui(self, ui));
    }
}
