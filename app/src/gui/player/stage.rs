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

/// Trace lines shown (the newest).
const TRACE_SHOWN: usize = 400;

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

/// The source, line by line: what ran is dimmed, the next statement is marked, and each
/// expectation shows whether it held and with what values.
pub(super) fn script(ui: &mut egui::Ui, text: &str, run: &Run) {
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
    let t0 = run.runner.t0();
    let skip = world.trace.len().saturating_sub(TRACE_SHOWN);
    for t in &world.trace[skip..] {
        ui.label(RichText::new(drawable(&format_trace(t, t0))).font(style::mono()));
    }
}
