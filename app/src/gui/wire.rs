//! The wire view: a live sequence diagram. A lane per device and one for the server; each
//! frame an arrow labelled with what it carried, coloured by what the device made of it
//! (ack applied, push, own echo, ignored as stale, follow-up, reject). Hover an arrow for
//! the event as JSON. It is drawn from the devices' engine events, so it shows the same
//! thing whether the devices run live or simulated. Each arrow also shows when it happened
//! (since the app started, or the scenario's virtual time), so the diagram doubles as a
//! timeline.

use std::collections::VecDeque;
use std::time::Duration;

use super::style;
use eframe::egui::{self, Align2, Color32, FontId, Rect, Sense, Stroke, pos2, vec2};
use sync_core::engine::EventKind;

/// Arrows kept.
const KEEP: usize = 400;
/// Height of one arrow's row.
const ROW: f32 = 28.0;

/// Which way an arrow points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    ToServer,
    ToDevice,
}

/// One arrow.
#[derive(Debug, Clone)]
pub struct Arrow {
    /// The device at one end.
    pub device: String,
    way: Way,
    /// What it says.
    pub label: String,
    color: Color32,
    json: String,
    /// When: since the app started (live), or virtual time since the scenario's time 0
    /// (player). `None` draws no time.
    pub at: Option<Duration>,
    /// Applying this frame took the device's screen back (a regression, SCENARIOS.md).
    pub regressed: bool,
}

/// The diagram's state.
pub struct Wire {
    arrows: VecDeque<Arrow>,
    paused: bool,
    /// A replay's diagram (the scenario player's) has no pause or clear: the run is the
    /// player's to pause and restart.
    replay: bool,
    /// Each arrow's time is drawn at the left.
    times: bool,
}

impl Default for Wire {
    fn default() -> Self {
        Wire {
            arrows: VecDeque::new(),
            paused: false,
            replay: false,
            times: true,
        }
    }
}

impl Wire {
    /// A diagram for the scenario player.
    pub fn replay() -> Wire {
        Wire {
            replay: true,
            ..Wire::default()
        }
    }

    /// Adds the arrow an engine event stands for (if it stands for a frame).
    pub fn record(&mut self, device: &str, kind: &EventKind, at: Option<Duration>) {
        if self.paused {
            return;
        }
        if let EventKind::Regressed { .. } = kind {
            // Said right after the frame that caused it: mark that frame's arrow.
            if let Some(a) = self.arrows.iter_mut().rev().find(|a| a.device == device) {
                a.regressed = true;
                a.label.push_str("  << SCREEN WENT BACK");
            }
            return;
        }
        let Some((way, color, label)) = arrow_of(kind) else {
            return;
        };
        self.arrows.push_back(Arrow {
            device: device.to_string(),
            way,
            label,
            color,
            json: serde_json::to_string_pretty(kind).unwrap_or_default(),
            at,
            regressed: false,
        });
        if self.arrows.len() > KEEP {
            self.arrows.pop_front();
        }
    }

    /// The arrows, oldest first.
    pub fn arrows(&self) -> impl Iterator<Item = &Arrow> {
        self.arrows.iter()
    }

    /// Draws the diagram for these devices: `(id, name shown)`, a lane each.
    pub fn ui(&mut self, ui: &mut egui::Ui, devices: &[(String, String)]) {
        ui.horizontal(|ui| {
            ui.label(egui::RichText::new("wire").strong());
            if !self.replay {
                ui.checkbox(&mut self.paused, "pause");
                if ui.button("clear").clicked() {
                    self.arrows.clear();
                }
            }
            ui.checkbox(&mut self.times, "times")
                .on_hover_text("When each frame was handled: seconds since the app started, or the scenario's virtual time");
            for (color, what) in [
                (ACK, "ack"),
                (PUSH, "push"),
                (QUIET, "own echo / already seen"),
                (STALE, "ignored as stale"),
                (FOLLOW, "follow-up"),
                (REJECT, "reject"),
                (REQUEST, "request"),
            ] {
                ui.label(egui::RichText::new(what).small().color(color));
            }
            ui.label(egui::RichText::new("thick: screen went back").small().strong())
                .on_hover_text("The frame whose answer or change took the device's screen back to an older value (a regression)");
        });
        // Lane names stay in view above the scrolling arrows.
        let (header, _) = ui.allocate_exact_size(vec2(ui.available_width(), 18.0), Sense::hover());
        for (x, (_, name)) in lanes(header, devices) {
            ui.painter().text(
                pos2(x, header.center().y),
                Align2::CENTER_CENTER,
                name,
                FontId::proportional(15.0),
                ui.visuals().strong_text_color(),
            );
        }
        // Only the visible rows are laid out and painted, however long the history.
        egui::ScrollArea::vertical()
            .stick_to_bottom(true)
            .auto_shrink([false, false])
            .show_rows(ui, ROW, self.arrows.len(), |ui, rows| {
                let width = ui.available_width();
                let height = rows.len() as f32 * ROW;
                let (rect, _) = ui.allocate_exact_size(vec2(width, height), Sense::hover());
                let lanes = lanes(rect, devices);
                let painter = ui.painter_at(rect);
                for (x, _) in &lanes {
                    painter.line_segment(
                        [pos2(*x, rect.top()), pos2(*x, rect.bottom())],
                        Stroke::new(1.0, style::LANE),
                    );
                }
                let server_x = lanes[0].0;
                for (row, i) in rows.enumerate() {
                    let a = &self.arrows[i];
                    let Some((dx, _)) = lanes.iter().find(|(_, (id, _))| *id == a.device) else {
                        continue;
                    };
                    let y = rect.top() + ROW * (row as f32 + 0.5) + 6.0;
                    if let Some(at) = a.at.filter(|_| self.times) {
                        painter.text(
                            pos2(rect.left() + 4.0, y),
                            Align2::LEFT_CENTER,
                            format!("{:.3} s", at.as_secs_f64()),
                            style::mono(),
                            ui.visuals().weak_text_color(),
                        );
                    }
                    let (from, to) = match a.way {
                        Way::ToServer => (*dx, server_x),
                        Way::ToDevice => (server_x, *dx),
                    };
                    // A regression is drawn thick, so the flicker's cause stands out.
                    let width = if a.regressed { 3.5 } else { 1.5 };
                    let stroke = Stroke::new(width, a.color);
                    painter.line_segment([pos2(from, y), pos2(to, y)], stroke);
                    // A fixed-size head (egui's `arrow` scales it with the length).
                    let back = if to > from { -7.0 } else { 7.0 };
                    painter.line_segment([pos2(to, y), pos2(to + back, y - 4.0)], stroke);
                    painter.line_segment([pos2(to, y), pos2(to + back, y + 4.0)], stroke);
                    painter.text(
                        pos2((from + to) / 2.0, y - 2.0),
                        Align2::CENTER_BOTTOM,
                        &a.label,
                        style::mono(),
                        a.color,
                    );
                    let hit = Rect::from_two_pos(
                        pos2(from.min(to), y - ROW / 2.0),
                        pos2(from.max(to), y + ROW / 2.0),
                    );
                    let id = ui.scope_id().with(("wire-arrow", i));
                    let response = ui.interact(hit, id, Sense::hover());
                    response.on_hover_text(egui::RichText::new(&a.json).monospace());
                }
            });
    }
}

/// The server's lane first, then the devices', evenly spaced.
/// Each lane's x and its `(id, name shown)`; the server's lane first.
fn lanes(rect: Rect, devices: &[(String, String)]) -> Vec<(f32, (&str, &str))> {
    let n = devices.len() + 1;
    let step = rect.width() / n as f32;
    std::iter::once(("server", "server"))
        .chain(
            devices
                .iter()
                .map(|(id, name)| (id.as_str(), name.as_str())),
        )
        .enumerate()
        .map(|(i, lane)| (rect.left() + step * (i as f32 + 0.5), lane))
        .collect()
}

const ACK: Color32 = style::GREEN;
const PUSH: Color32 = style::BLUE;
const QUIET: Color32 = style::QUIET;
const STALE: Color32 = style::RED;
const FOLLOW: Color32 = style::PURPLE;
const REJECT: Color32 = style::REJECT;
const REQUEST: Color32 = style::AMBER;

/// The arrow an event stands for: direction, colour and label.
fn arrow_of(kind: &EventKind) -> Option<(Way, Color32, String)> {
    use EventKind::*;
    Some(match kind {
        RequestSent {
            key,
            number,
            value,
            local_rev,
            kind,
            ..
        } => {
            let what = if matches!(key, sync_core::protocol::Key::Comments(_)) {
                "command".to_string()
            } else {
                format!("= {value}")
            };
            let color = if *kind == sync_core::optimistic::SendKind::FollowUp {
                FOLLOW
            } else {
                REQUEST
            };
            let kind = sync_core::engine::events::send_kind_name(*kind);
            (
                Way::ToServer,
                color,
                format!("req {number} {key} {what} lr{local_rev} ({kind})"),
            )
        }
        ResponseApplied { key, value, rev } => {
            (Way::ToDevice, ACK, format!("ack {key} = {value} rev {rev}"))
        }
        ResponseStale { key, rev, known } => (
            Way::ToDevice,
            STALE,
            format!("ack {key} rev {rev} STALE (known {known})"),
        ),
        FollowUpDecided { key, rev } => (
            Way::ToDevice,
            FOLLOW,
            format!("ack {key} rev {rev} dropped: follow-up"),
        ),
        Rejected { key, code, .. } => (Way::ToDevice, REJECT, format!("reject {key} {code}")),
        PushApplied {
            key,
            value,
            rev,
            local_rev,
            own: true,
            ..
        } => (
            Way::ToDevice,
            QUIET,
            format!("own echo {key} = {value} rev {rev} lr{local_rev} (applied)"),
        ),
        PushApplied {
            key,
            value,
            rev,
            from,
            local_rev,
            own: false,
        } => (
            Way::ToDevice,
            PUSH,
            format!("push {key} = {value} rev {rev} from {from} lr{local_rev}"),
        ),
        PushStale { key, rev, known } => (
            Way::ToDevice,
            STALE,
            format!("push {key} rev {rev} STALE (known {known})"),
        ),
        PushAlreadySeen { key, rev } => (
            Way::ToDevice,
            QUIET,
            format!("push {key} rev {rev} (already seen)"),
        ),
        PushTakenAsAck {
            key,
            rev,
            local_rev,
        } => (
            Way::ToDevice,
            QUIET,
            format!("own echo {key} rev {rev} = ack of lr{local_rev}"),
        ),
        OwnEchoIgnored { key, rev } => (
            Way::ToDevice,
            QUIET,
            format!("own echo {key} rev {rev} ignored"),
        ),
        CaughtUp {
            rev,
            changes,
            reset,
        } => (
            Way::ToDevice,
            QUIET,
            format!(
                "welcome rev {rev}, {changes} change(s){}",
                if *reset { ", reset" } else { "" }
            ),
        ),
        _ => return None,
    })
}
