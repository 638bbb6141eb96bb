//! A pane's sync state: the table of keys (shown, confirmed, revisions, in flight), the
//! counters, the connection badge.

use eframe::egui::{self, Color32, RichText};
use sync_core::engine::connection::ConnectionState;
use sync_core::engine::{CursorMode, DeviceView};
use sync_core::protocol::Key;

use crate::gui::style;

/// A one-line note beside a control, truncated (in full on hover) with why on hover: a
/// row that grew a line would move every aligned section below it, in every pane.
pub(super) fn badge(ui: &mut egui::Ui, text: RichText, why: &str) {
    ui.add(egui::Label::new(text).truncate()).on_hover_text(why);
}

/// How the device will catch up: its revision cursor, and on the clock cursor the time
/// (UTC, on its own skewed clock) it will ask `since_time` from, side by side.
pub(super) fn cursors(ui: &mut egui::Ui, view: &DeviceView) {
    let revision = format!("cursor rev {}", view.cursor);
    let (text, why) = match view.settings.cursor {
        CursorMode::Revision => (
            revision,
            "The revision up to which the device has seen every change: its next hello asks for everything after it (since), and misses nothing",
        ),
        CursorMode::Clock => {
            let at = view.clock_cursor.map_or("never".to_string(), time_of_day);
            let skew = view.settings.clock_skew_ms as f64 / 1000.0;
            (
                format!("{revision} · catches up by clock from {at} (clock {skew:+} s)"),
                "The device asks since_time: its own clock's time of the last change it received. A clock that runs fast asks from a moment the server has not reached, and misses what changed meanwhile; the revision cursor beside it would not",
            )
        }
    };
    badge(ui, RichText::new(text).small(), why);
}

/// `HH:MM:SS.mmm` (UTC) of a time in ms since the Unix epoch.
fn time_of_day(ms: u64) -> String {
    let day_ms = ms % 86_400_000;
    let (h, m, s) = (day_ms / 3_600_000, day_ms / 60_000 % 60, day_ms / 1000 % 60);
    format!("{h:02}:{m:02}:{s:02}.{:03}", day_ms % 1000)
}

/// Per key: shown, confirmed and its revision, local revision.
pub(super) fn sync_table(ui: &mut egui::Ui, name: &str, view: &DeviceView) {
    egui::Grid::new(format!("{name}-keys"))
        .striped(true)
        .num_columns(4)
        .show(ui, |ui| {
            ui.label(RichText::new("key").small().strong());
            ui.label(RichText::new("shown").small().strong());
            ui.label(RichText::new("confirmed (rev)").small().strong());
            ui.label(RichText::new("local rev").small().strong());
            ui.end_row();
            for kv in view.keys.iter().filter(|k| !matches!(k.key, Key::Comments(_))) {
                ui.label(RichText::new(kv.key.to_string()).font(style::mono()));
                let differs = kv.slot.shown != kv.slot.confirmed;
                let mut shown = RichText::new(kv.slot.shown.to_string()).small();
                if differs {
                    shown = shown.color(style::AMBER);
                }
                ui.label(shown).on_hover_text("The value on screen (optimistic)");
                // The slot's own pair: a value and the revision the server stored it at.
                let confirmed = format!("{} ({})", kv.slot.confirmed, kv.slot.known_rev);
                ui.label(RichText::new(confirmed).small())
                    .on_hover_text("The last value the server confirmed, and the newest server revision known for the key");
                ui.label(RichText::new(kv.slot.local_rev.to_string()).small())
                    .on_hover_text("Local intents so far; every request carries the newest one");
                ui.end_row();
            }
        });
}

/// The device's counters, each with what it counts on hover.
pub(super) fn counters(ui: &mut egui::Ui, view: &DeviceView) {
    let c = &view.counters;
    ui.horizontal_wrapped(|ui| {
        for (label, n, why) in [
            ("intents", c.intents, "Taps, sets and comments"),
            (
                "requests",
                c.requests,
                "Writes (set/command) sent, alone or in a batch, resends included",
            ),
            (
                "frames up",
                c.frames_up,
                "Frames handed to the link (hello, writes, batches; heartbeats left out): a batch of 50 writes is one frame",
            ),
            (
                "saved",
                c.saved_by_coalescing(),
                "Intents a request carried beside its newest one (coalesced), counted when that request goes out",
            ),
            (
                "stale",
                c.stale,
                "Answers or pushes ignored because an older revision arrived late",
            ),
            (
                "rollbacks",
                c.rollbacks,
                "Optimistic changes undone after the server refused them",
            ),
            (
                "regressions",
                c.regressions,
                "Times the screen went back to an older value: an answer to an older request, or a lower revision, applied over a newer one (the wire view marks the frame)",
            ),
        ] {
            ui.label(RichText::new(format!("{label} {n}")).small())
                .on_hover_text(why);
        }
    });
}

/// The connection state's colour and words.
pub(super) fn connection_badge(state: &ConnectionState) -> (Color32, String) {
    let green = style::GREEN;
    let amber = style::AMBER;
    let red = style::RED;
    match state {
        ConnectionState::Connected => (green, "connected".into()),
        ConnectionState::Offline => (style::QUIET, "offline".into()),
        s if s.needs_retry() => (red, format!("{state}")),
        other => (amber, format!("{other}")),
    }
}
