//! The app's shared style: text sizes that read on a projector, and the palette every
//! view colours its meaning with (a colour means the same thing in a pane, the wire view,
//! the player and the top bar).
//!
//! egui's default "small" text is 9 px: table cells, counters and the event log were
//! unreadable across a room. Every text style here is at least 13 px at zoom 100 %, and
//! the top bar has a zoom control for the rest.

use eframe::egui::{self, Color32, FontFamily, FontId, TextStyle};

/// Applied: acks, agreement, a held expectation.
pub const GREEN: Color32 = Color32::from_rgb(0x2a, 0x9a, 0x4a);
/// In flight, waiting, not yet agreed.
pub const AMBER: Color32 = Color32::from_rgb(0xc8, 0x82, 0x10);
/// Stale, rolled back, failed, regressed.
pub const RED: Color32 = Color32::from_rgb(0xd0, 0x40, 0x40);
/// A rejection by the server (darker than [`RED`], so the two read apart on the wire).
pub const REJECT: Color32 = Color32::from_rgb(0xb0, 0x28, 0x28);
/// Follow-ups: the user acted while a request was out.
pub const PURPLE: Color32 = Color32::from_rgb(0xa8, 0x58, 0xc8);
/// Optimistic intents and pushes from elsewhere.
pub const BLUE: Color32 = Color32::from_rgb(0x38, 0x78, 0xc8);
/// Nothing to do: own echoes, already seen, connection chatter.
pub const QUIET: Color32 = Color32::from_gray(128);
/// The wire view's lanes.
pub const LANE: Color32 = Color32::from_gray(170);

/// The colour of a tone: what an event means, the same everywhere.
pub fn color(tone: crate::present::Tone) -> Color32 {
    use crate::present::Tone;
    match tone {
        Tone::Blue => BLUE,
        Tone::Amber => AMBER,
        Tone::Purple => PURPLE,
        Tone::Green => GREEN,
        Tone::Red => RED,
        Tone::Reject => REJECT,
        Tone::Quiet => QUIET,
    }
}

/// Body text, buttons and headings' sizes, in points at zoom 100 %.
const BODY: f32 = 15.0;
/// The smallest text anywhere: table cells, counters, the event log, the wire's labels.
pub const SMALL: f32 = 13.0;
const HEADING: f32 = 21.0;

/// Monospace text at the smallest size (keys, frames, scripts, the wire's labels).
pub fn mono() -> FontId {
    FontId::monospace(SMALL)
}

/// Installs the text sizes (once: called every frame, it changes nothing after the first).
pub fn install(ctx: &egui::Context) {
    if ctx.global_style().text_styles.get(&TextStyle::Small) == Some(&small_font()) {
        return;
    }
    ctx.all_styles_mut(|style| {
        style.text_styles = [
            (TextStyle::Small, small_font()),
            (TextStyle::Body, FontId::new(BODY, FontFamily::Proportional)),
            (
                TextStyle::Button,
                FontId::new(BODY, FontFamily::Proportional),
            ),
            (
                TextStyle::Monospace,
                FontId::new(SMALL + 0.5, FontFamily::Monospace),
            ),
            (
                TextStyle::Heading,
                FontId::new(HEADING, FontFamily::Proportional),
            ),
        ]
        .into();
    });
}

/// The top bar's zoom control: the size in percent between "-" and "+", with the keyboard
/// shortcuts on hover (egui's own: Ctrl/Cmd with +, - and 0).
pub fn zoom_control(ui: &mut egui::Ui) {
    let shortcuts = "Zoom for a projector: Ctrl + and Ctrl - (Cmd on macOS), Ctrl 0 for 100 %";
    let out = ui.small_button(" - ").on_hover_text(shortcuts);
    out.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, "zoom out"));
    if out.clicked() {
        egui::gui_zoom::zoom_out(ui.ctx());
    }
    let percent = (ui.ctx().zoom_factor() * 100.0).round();
    let reset = ui
        .small_button(format!("{percent} %"))
        .on_hover_text(format!("{shortcuts}. Click for 100 %"));
    let label = format!("zoom {percent} %");
    reset.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
    if reset.clicked() {
        ui.ctx().set_zoom_factor(1.0);
    }
    let into = ui.small_button(" + ").on_hover_text(shortcuts);
    into.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, "zoom in"));
    if into.clicked() {
        egui::gui_zoom::zoom_in(ui.ctx());
    }
}

fn small_font() -> FontId {
    FontId::new(SMALL, FontFamily::Proportional)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_text_style_is_below_13_px() {
        let ctx = egui::Context::default();
        install(&ctx);
        for (style, font) in &ctx.global_style().text_styles {
            assert!(font.size >= SMALL, "{style:?} is {} px", font.size);
        }
    }
}
