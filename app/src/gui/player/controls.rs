//! The bars above the player's stage: the lesson list, the file box, the seed, step /
//! back / play, the timeline, saving a branch, and the presenter's keys.

use std::path::PathBuf;

use eframe::egui::{self, RichText};

use super::Player;
use super::lessons::{LESSONS, lesson_title};
use crate::gui::style;

/// The lesson list's width: fixed, so the buttons after it never move when another
/// lesson (a longer title) is chosen.
const LESSON_LIST_WIDTH: f32 = 330.0;

impl Player {
    pub(super) fn controls(&mut self, ui: &mut egui::Ui) {
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
                        .selected_text(
                            self.lesson
                                .map_or("a file is open: pick a lesson".into(), lesson_title),
                        )
                        .show_ui(ui, |ui| {
                            for (i, (file, _)) in LESSONS.iter().enumerate() {
                                ui.selectable_value(&mut self.lesson, Some(i), lesson_title(i))
                                    .on_hover_text(*file);
                            }
                        })
                        .response
                })
                .inner
                .labelled_by(label.id);
            combo.on_hover_text(match self.lesson {
                Some(i) => format!("assets/scenarios/{}", LESSONS[i].0),
                None => "The player shows a file; choose a lesson to open it instead".into(),
            });
            if self.lesson != before
                && let Some(i) = self.lesson
            {
                self.open_lesson(i);
            }
            let label = ui.label("or a file");
            ui.add(
                egui::TextEdit::singleline(&mut self.path)
                    .hint_text("path/to/scenario.scn")
                    .desired_width(150.0),
            )
            .labelled_by(label.id);
            let named = !self.path.trim().is_empty();
            if ui.add_enabled(named, egui::Button::new("open")).clicked() {
                self.open_file();
            }
            if ui
                .add_enabled(named, egui::Button::new("open at failure"))
                .on_hover_text("Open the file and play it to the first broken invariant or failed expectation (a counterexample the tests wrote, say: set the seed its first line names first)")
                .clicked()
                && self.open_file()
            {
                self.to_failure();
            }
        });
        // The run's controls on a row of their own, so the lesson list and the file box
        // never push them off the window's edge.
        ui.horizontal_wrapped(|ui| {
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
            ui.spacing_mut().slider_width = 90.0;
            let label = ui
                .label("speed")
                .on_hover_text("Statements per second while playing");
            ui.add(
                egui::Slider::new(&mut self.speed, 0.5..=20.0)
                    .logarithmic(true)
                    .suffix(" /s"),
            )
            .labelled_by(label.id);
            if ui
                .add_enabled(running, egui::Button::new("to failure"))
                .on_hover_text("Play on to the first broken invariant or failed expectation, and stop there (back shows the moment before)")
                .clicked()
            {
                self.to_failure();
            }
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
            let label = ui.label("save this run as");
            // The free name is looked up on saving, not on every frame.
            ui.add(
                egui::TextEdit::singleline(&mut self.branch_path)
                    .hint_text("branch-N.scn")
                    .desired_width(220.0),
            )
            .labelled_by(label.id)
            .on_hover_text(format!(
                "Empty: the next free branch-N.scn in {}",
                self.save_dir.display()
            ));
            if ui
                .button("save .scn")
                .on_hover_text(
                    "The run so far as a scenario: the script as it ran, your own taps, holds and \
                     deliveries at their times, then an expectation for everything shown now",
                )
                .clicked()
            {
                let path = match self.branch_path.trim() {
                    "" => crate::gui::recording::free_path(&self.save_dir, "branch"),
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
    pub(super) fn presenter_keys(&mut self, ui: &mut egui::Ui) {
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
pub(super) fn help_overlay(ui: &mut egui::Ui, open: &mut bool) {
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
