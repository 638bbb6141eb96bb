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
use crate::export::{self, Drawn, Frame};
use crate::present::{LEGEND, REGRESSED_LEGEND, Way, regressed_label};
use eframe::egui::{self, Align2, FontId, Rect, Sense, Stroke, pos2, vec2};
use sync_core::engine::EventKind;

/// Arrows kept: a whole lesson, a long recording or a long live session (the oldest go
/// first). Only the rows in view are laid out, so a frame costs the same at 10,000 as at
/// 100 (`cargo bench -p app --bench frame`).
const KEEP: usize = 10_000;
/// Where exports go when no path is given (in the working directory).
const DEFAULT_EXPORT: &str = "sync-lab-wire";
/// Height of one arrow's row.
const ROW: f32 = 28.0;

/// One arrow: a frame of the diagram, and the event it stands for (shown on hover,
/// exported as a JSON line).
#[derive(Debug, Clone)]
struct Arrow {
    frame: Frame,
    event: EventKind,
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
    /// The exports' title.
    title: String,
    /// Where exports go (without the extension; empty: [`DEFAULT_EXPORT`]), and what the
    /// last one did.
    export_to: String,
    exported: Option<Result<String, String>>,
}

impl Default for Wire {
    fn default() -> Self {
        Wire {
            arrows: VecDeque::new(),
            paused: false,
            replay: false,
            times: true,
            title: "Sync Lab live session".into(),
            export_to: String::new(),
            exported: None,
        }
    }
}

impl Wire {
    /// A diagram for the scenario player, titled for the exports.
    pub fn replay(title: &str) -> Wire {
        Wire {
            replay: true,
            title: title.to_string(),
            ..Wire::default()
        }
    }

    /// The diagram as SVG, for these devices: `(id, name shown)`.
    pub fn svg(&self, devices: &[(String, String)]) -> String {
        let ids: Vec<String> = devices.iter().map(|(id, _)| id.clone()).collect();
        export::svg(&self.title, &ids, &self.frames())
    }

    /// The diagram as a Mermaid sequenceDiagram.
    pub fn mermaid(&self, devices: &[(String, String)]) -> String {
        let ids: Vec<String> = devices.iter().map(|(id, _)| id.clone()).collect();
        export::mermaid(&ids, &self.frames())
    }

    /// The frames' events as JSON lines.
    pub fn jsonl(&self) -> String {
        self.arrows
            .iter()
            .map(|a| export::event_line(a.frame.at, &a.frame.device, &a.event) + "\n")
            .collect()
    }

    fn frames(&self) -> Vec<Frame> {
        self.arrows().cloned().collect()
    }

    /// The export menu: save as SVG, Mermaid or JSON lines beside `export_to`, or copy
    /// the Mermaid text.
    fn export_menu(&mut self, ui: &mut egui::Ui, devices: &[(String, String)]) {
        // Stays open while the path is typed; closes on a click outside.
        let config = egui::containers::menu::MenuConfig::new()
            .close_behavior(egui::PopupCloseBehavior::CloseOnClickOutside);
        egui::containers::menu::MenuButton::new("export").config(config).ui(ui, |ui| {
            ui.horizontal(|ui| {
                ui.label("file");
                let edit = ui
                    .add(
                        egui::TextEdit::singleline(&mut self.export_to)
                            .hint_text(DEFAULT_EXPORT)
                            .desired_width(220.0),
                    )
                    .on_hover_text("A path without its extension: .svg, .mmd or .jsonl is added (in the working directory unless absolute)");
                edit.widget_info(|| {
                    egui::WidgetInfo::labeled(egui::Role::TextInput, true, "export file")
                });
            });
            let base = match self.export_to.trim() {
                "" => DEFAULT_EXPORT.to_string(),
                path => path.to_string(),
            };
            for (what, ext) in [
                ("save SVG", "svg"),
                ("save Mermaid", "mmd"),
                ("save JSON lines", "jsonl"),
            ] {
                if ui.button(what).clicked() {
                    let text = match ext {
                        "svg" => self.svg(devices),
                        "mmd" => self.mermaid(devices),
                        _ => self.jsonl(),
                    };
                    let path = std::path::PathBuf::from(format!("{base}.{ext}"));
                    self.exported = Some(match std::fs::write(&path, text) {
                        Ok(()) => Ok(format!(
                            "saved {}",
                            std::path::absolute(&path).unwrap_or(path).display()
                        )),
                        Err(e) => Err(format!("cannot write {}: {e}", path.display())),
                    });
                }
            }
            if ui.button("copy as Mermaid").clicked() {
                ui.ctx().copy_text(self.mermaid(devices));
                self.exported = Some(Ok("Mermaid copied to the clipboard".into()));
            }
            match &self.exported {
                Some(Ok(done)) => {
                    ui.label(egui::RichText::new(done).color(style::GREEN));
                }
                Some(Err(why)) => {
                    ui.label(egui::RichText::new(why).color(style::RED));
                }
                None => {}
            }
        });
    }

    /// Adds the arrow an engine event stands for (if it stands for a frame).
    pub fn record(&mut self, device: &str, kind: &EventKind, at: Duration) {
        if self.paused {
            return;
        }
        match export::draw(device, kind, at) {
            Some(Drawn::Frame(frame)) => {
                // In time order: devices are drained one after the other, so an event of
                // one may reach the view a frame after a later event of another.
                let at = self
                    .arrows
                    .iter()
                    .rposition(|a| a.frame.at <= frame.at)
                    .map_or(0, |i| i + 1);
                let arrow = Arrow {
                    frame,
                    event: kind.clone(),
                };
                self.arrows.insert(at, arrow);
            }
            Some(Drawn::Regression) => {
                let mine = self
                    .arrows
                    .iter_mut()
                    .rev()
                    .find(|a| a.frame.device == device);
                if let Some(a) = mine {
                    a.frame.regressed = true;
                }
                return;
            }
            None => return,
        }
        if self.arrows.len() > KEEP {
            self.arrows.pop_front();
        }
    }

    /// The arrows, oldest first.
    pub fn arrows(&self) -> impl Iterator<Item = &Frame> {
        self.arrows.iter().map(|a| &a.frame)
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
            self.export_menu(ui, devices);
            ui.checkbox(&mut self.times, "times")
                .on_hover_text("When each frame was handled: seconds since the app started, or the scenario's virtual time");
            for (tone, what) in LEGEND {
                ui.label(egui::RichText::new(what).small().color(style::color(tone)));
            }
            ui.label(egui::RichText::new(REGRESSED_LEGEND.1).small().strong())
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
                    let a = &self.arrows[i].frame;
                    let event = &self.arrows[i].event;
                    let Some((dx, _)) = lanes.iter().find(|(_, (id, _))| *id == a.device) else {
                        continue;
                    };
                    let y = rect.top() + ROW * (row as f32 + 0.5) + 6.0;
                    if self.times {
                        let at = a.at;
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
                    let color = style::color(a.tone);
                    let stroke = Stroke::new(width, color);
                    painter.line_segment([pos2(from, y), pos2(to, y)], stroke);
                    // A fixed-size head (egui's `arrow` scales it with the length).
                    let back = if to > from { -7.0 } else { 7.0 };
                    painter.line_segment([pos2(to, y), pos2(to + back, y - 4.0)], stroke);
                    painter.line_segment([pos2(to, y), pos2(to + back, y + 4.0)], stroke);
                    let label = if a.regressed {
                        regressed_label(&a.label)
                    } else {
                        a.label.clone()
                    };
                    painter.text(
                        pos2((from + to) / 2.0, y - 2.0),
                        Align2::CENTER_BOTTOM,
                        label,
                        style::mono(),
                        color,
                    );
                    let hit = Rect::from_two_pos(
                        pos2(from.min(to), y - ROW / 2.0),
                        pos2(from.max(to), y + ROW / 2.0),
                    );
                    let id = ui.scope_id().with(("wire-arrow", i));
                    let response = ui.interact(hit, id, Sense::hover());
                    response.on_hover_ui(|ui| {
                        let json = serde_json::to_string_pretty(event).unwrap_or_default();
                        ui.label(egui::RichText::new(json).monospace());
                    });
                }
            });
    }
}

/// Each lane's x and its `(id, name shown)`: the server's lane first, then the devices',
/// evenly spaced.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrows_stay_in_time_order_when_events_reach_the_view_late() {
        let welcome = EventKind::CaughtUp {
            rev: 0,
            changes: 0,
            reset: false,
        };
        let mut wire = Wire::default();
        wire.record("phone", &welcome, Duration::from_millis(3));
        wire.record("laptop", &welcome, Duration::from_millis(2));
        wire.record("tablet", &welcome, Duration::from_millis(4));
        let order: Vec<&str> = wire.arrows().map(|f| f.device.as_str()).collect();
        assert_eq!(order, ["laptop", "phone", "tablet"]);
    }
}
