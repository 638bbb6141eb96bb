//! The player's stage: the caption band, the verdict line, the script with each
//! statement's outcome, and the simulated devices in the live demo's panes.

use eframe::egui::{self, RichText};
use mock_server::core::DEMO_USER;
use mock_server::invariants::{self, Violation};
use mock_server::scenario::run::format_trace;
use mock_server::scenario::{Runner, StepOutcome, Verdict};
use sync_core::engine::DeviceView;

use super::run::Run;
use crate::gui::{server_panel, style};

/// The trace's height: the newest lines, scrolling back to the first.
const TRACE_HEIGHT: f32 = 260.0;

/// Text from a scenario or the trace, drawable with the app's fonts (the terminal's
/// arrows and cross have no glyph in egui's default fonts).
pub(super) fn drawable(text: &str) -> String {
    text.replace('→', "->").replace('←', "<-").replace('✕', "x")
}

/// The narration (`say`) in large type, until the next one.
pub(super) fn caption_band(ui: &mut egui::Ui, caption: &str) {
    egui::Frame::new()
        .fill(ui.visuals().selection.bg_fill.gamma_multiply(0.35))
        .inner_margin(egui::Margin::symmetric(12, 8))
        .corner_radius(6.0)
        .show(ui, |ui| {
            ui.set_min_width(ui.available_width());
            ui.label(RichText::new(drawable(caption)).size(24.0).strong());
        });
}

pub(super) fn verdict_line(ui: &mut egui::Ui, runner: &Runner) {
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

/// A broken invariant, named, with what it promises: the run stopped where it broke.
pub(super) fn broken_invariant(ui: &mut egui::Ui, v: &Violation) {
    egui::Frame::new()
        .fill(style::RED.gamma_multiply(0.15))
        .stroke(egui::Stroke::new(1.0, style::RED))
        .inner_margin(egui::Margin::symmetric(12, 8))
        .corner_radius(6.0)
        .show(ui, |ui| {
            ui.set_min_width(ui.available_width());
            ui.label(
                RichText::new(format!(
                    "Invariant {} broke: {}",
                    v.number,
                    invariants::name(v.number)
                ))
                .size(20.0)
                .strong()
                .color(style::RED),
            );
            ui.label(RichText::new(drawable(&v.message)).strong());
            ui.label(format!("It promises: {}.", invariants::statement(v.number)));
        });
}

/// One row of the script: a source line, or what its statement did (under it).
enum Row<'a> {
    Line(usize, &'a str),
    Outcome(String, egui::Color32),
}

/// The source, line by line: what ran is dimmed, the next statement is marked, and each
/// expectation shows whether it held and with what values. Only the rows in view are laid
/// out, so a script of thousands of lines costs a frame no more than a short one.
pub(super) fn script(ui: &mut egui::Ui, text: &str, run: &mut Run) {
    let next = run.runner.next_step().map(|s| s.line);
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        rows.push(Row::Line(n, line));
        match run.outcomes.get(&n) {
            Some(StepOutcome::Held(what)) => {
                rows.push(Row::Outcome(format!("held: {what}"), style::GREEN))
            }
            Some(StepOutcome::Failed(why)) => {
                rows.push(Row::Outcome(format!("FAILED: {why}"), style::RED))
            }
            _ => {}
        }
    }
    let font = style::mono();
    // A row is a horizontal layout: at least the interaction height tall.
    let height = ui
        .fonts_mut(|f| f.row_height(&font))
        .max(ui.spacing().interact_size.y);
    // Line numbers in a column as wide as the largest.
    let numbers = ui.fonts_mut(|f| {
        f.layout_no_wrap(
            rows.len().to_string(),
            font.clone(),
            egui::Color32::PLACEHOLDER,
        )
        .size()
        .x
    }) + 12.0;
    // Both ways: a long line scrolls inside its panel instead of running into the devices
    // beside it. Opened at a failure, it jumps near the failing line (rows out of view are
    // not laid out, so there is nothing to scroll to yet), then scrolls it into the middle.
    let mut area = egui::ScrollArea::both()
        .id_salt("script")
        .auto_shrink([false, false]);
    let reveal = run
        .reveal_failure
        .then(|| {
            rows.iter()
                .position(|r| matches!(r, Row::Outcome(_, c) if *c == style::RED))
        })
        .flatten();
    if let Some(at) = reveal {
        let row = height + ui.spacing().item_spacing.y;
        area =
            area.vertical_scroll_offset((at as f32 * row - ui.available_height() / 2.0).max(0.0));
    }
    let mut revealed = reveal.is_none();
    let shown = &*run;
    area.show_rows(ui, height, rows.len(), |ui, range| {
        let run = shown;
        let first = range.start;
        for (k, row) in rows[range].iter().enumerate() {
            let drawn = ui.horizontal(|ui| {
                let (n, rt) = match row {
                    Row::Line(n, line) => {
                        let mut rt = RichText::new(drawable(line)).font(font.clone());
                        if Some(*n) == next {
                            rt = rt.strong().background_color(ui.visuals().selection.bg_fill);
                        } else if run.outcomes.contains_key(n) {
                            rt = rt.weak();
                        }
                        (n.to_string(), rt)
                    }
                    Row::Outcome(text, color) => (
                        String::new(),
                        RichText::new(drawable(text))
                            .font(font.clone())
                            .strong()
                            .color(*color),
                    ),
                };
                let (space, _) =
                    ui.allocate_exact_size(egui::vec2(numbers, height), egui::Sense::hover());
                ui.painter().text(
                    space.left_center(),
                    egui::Align2::LEFT_CENTER,
                    n,
                    font.clone(),
                    ui.visuals().weak_text_color(),
                );
                ui.label(rt);
            });
            // Drawn at last: egui keeps it in view from here on.
            if reveal == Some(first + k) {
                drawn.response.scroll_to_me(Some(egui::Align::Center));
                revealed = true;
            }
        }
    });
    if revealed {
        run.reveal_failure = false;
    }
}

/// The simulated devices in the live demo's panes, the server, and the trace so far.
/// What a learner does in a pane goes into the world at once.
pub(super) fn world(ui: &mut egui::Ui, run: &mut Run) {
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
    // The whole trace, newest at the bottom; only the lines in view are laid out.
    let t0 = run.runner.t0();
    let font = style::mono();
    let height = ui.fonts_mut(|f| f.row_height(&font));
    egui::ScrollArea::vertical()
        .id_salt("trace")
        .max_height(TRACE_HEIGHT)
        .stick_to_bottom(true)
        .auto_shrink([false, true])
        .show_rows(ui, height, world.trace.len(), |ui, range| {
            for t in &world.trace[range] {
                ui.label(RichText::new(drawable(&format_trace(t, t0))).font(font.clone()));
            }
        });
}
