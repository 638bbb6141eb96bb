//! The scenario player: a built-in lesson or a scenario file, played on the simulator one
//! statement or one event at a time, beside the devices and the server as the live panes show them.
//!
//! It is the headless `run` command with a face: the same parser (errors with
//! file:line:column), the same [`Runner`], the same seed. Play runs a statement every
//! `1 / speed` seconds; step runs one; "step event" runs one simulator event (a frame
//! delivered, a timer) inside a `wait` or `settle`; restart builds the world again from the
//! text. Each expectation shows, on its line, whether it held and with what values.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use eframe::egui::{self, RichText};
use mock_server::core::DEMO_USER;
use mock_server::net::LinkCommand;
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

/// The script's and the trace's font: columns line up.
fn mono() -> egui::FontId {
    style::mono()
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
}

impl Run {
    fn new(runner: Runner) -> Run {
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
        }
    }

    /// Gives the wire view and the panes the engine events the world traced since the
    /// last frame, each at its virtual time (the scenario's time 0 is the end of the
    /// handshake), and the panes their links as the world has them.
    fn feed(&mut self) {
        let world = self.runner.world();
        let t0 = self.runner.t0();
        for t in &world.trace[self.seen..] {
            if let (TraceKind::Device(kind), Some(device)) = (&t.kind, &t.device) {
                let since = t.at.saturating_sub(t0);
                self.wire.record(device, kind, since);
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
        for (i, (pane, d)) in self.panes.iter_mut().zip(world.devices()).enumerate() {
            pane.show_links(
                [d.up.config, d.down.config],
                [d.up.is_held(), d.down.is_held()],
            );
            pane.network_down = Some(d.offline);
            pane.queue = world.queued_frames(i);
        }
    }

    /// Does what a simulated device's pane asked, in the world at the current virtual
    /// time, as the matching statement would; a refusal (no such frame) is said.
    fn act(&mut self, i: usize, action: PaneAction) -> Result<(), String> {
        let world = self.runner.world_mut();
        match action {
            PaneAction::Tap(key) => world.tap(i, &key),
            PaneAction::Set(key, value) => world.set(i, &key, value),
            PaneAction::Comment(key, text) => {
                world.comment(i, &key, &text);
                Ok(())
            }
            PaneAction::Online(on) => {
                world.set_offline(i, !on);
                Ok(())
            }
            PaneAction::Link(LinkCommand::Configure(dir, config)) => {
                world.set_link(i, dir, |c| *c = config);
                Ok(())
            }
            PaneAction::Link(LinkCommand::Hold(dir, on)) => {
                world.hold(i, Some(dir), on);
                Ok(())
            }
            PaneAction::Link(LinkCommand::Release(dir, n)) => world.release(i, dir, n),
            PaneAction::Link(LinkCommand::Drop(dir, n)) => world.drop_frame(i, dir, n),
            // Not offered for a simulated device: the script owns its strategy and place.
            PaneAction::Link(LinkCommand::Queued(_))
            | PaneAction::Strategy(_)
            | PaneAction::Move(_)
            | PaneAction::Remove => Ok(()),
        }
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
        };
        p.restart();
        p
    }

    /// Builds the world again from the source (parse errors are shown, not panicked on).
    pub fn restart(&mut self) {
        self.playing = false;
        self.run = parse(&self.source.0, &self.source.1)
            .map(|scenario| Run::new(Runner::new(scenario, self.seed)))
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

    /// Runs the next statement; `false` when the run is over.
    pub fn step(&mut self) -> bool {
        let Ok(run) = &mut self.run else {
            return false;
        };
        let Some(line) = run.runner.next_step().map(|s| s.line) else {
            return false;
        };
        if let Some(outcome) = run.runner.step() {
            run.outcomes.insert(line, outcome);
        }
        true
    }

    /// Runs one simulator event (inside a `wait` or `settle`; other statements whole);
    /// `false` when the run is over.
    pub fn step_event(&mut self) -> bool {
        let Ok(run) = &mut self.run else {
            return false;
        };
        let Some(line) = run.runner.next_step().map(|s| s.line) else {
            return false;
        };
        if let Some(outcome) = run.runner.step_event()
            && !run.runner.in_progress()
        {
            run.outcomes.insert(line, outcome);
        }
        true
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
        self.controls(ui);
        if self.playing {
            let every = Duration::from_secs_f32(1.0 / self.speed);
            if self.last_step.is_none_or(|t| t.elapsed() >= every) {
                self.last_step = Some(Instant::now());
                self.playing = self.step();
            }
            ui.ctx().request_repaint_after(every);
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
    }
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
            ui.label(RichText::new(n.to_string()).font(mono()).weak());
            let mut rt = RichText::new(drawable(line)).font(mono());
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
                    .font(mono())
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
        ui.label(RichText::new(drawable(&format_trace(t, t0))).font(mono()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lesson_in_assets_is_built_in() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/scenarios");
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
