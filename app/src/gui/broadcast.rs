//! Broadcast: one control that makes the same intent on every ticked device at the same
//! moment, so strategies run side by side on the same input. A burst repeats it at human
//! speed (taps 150 ms apart), which is where the strategies differ: coalescing,
//! follow-ups, flicker.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use eframe::egui;
use sync_core::protocol::Key;

use super::pane::{POSTS, Pane, PaneAction};

/// Between two taps of a burst: a quick human double-tap.
const BURST_GAP: Duration = Duration::from_millis(150);

/// The burst sizes offered.
const BURSTS: [u32; 3] = [1, 3, 5];

/// The broadcast bar's state.
pub struct Broadcast {
    /// Devices left out (ids); a new device takes part.
    left_out: BTreeSet<String>,
    /// Taps per press.
    burst: u32,
    /// Taps still to make: when, on which devices, which key.
    due: VecDeque<(Instant, Vec<String>, Key)>,
}

impl Default for Broadcast {
    fn default() -> Self {
        Broadcast {
            left_out: BTreeSet::new(),
            burst: 1,
            due: VecDeque::new(),
        }
    }
}

impl Broadcast {
    /// Draws the bar; returns the taps that are due, each on all its devices in the same
    /// frame, as the devices' panes would ask for them.
    pub fn ui(&mut self, ui: &mut egui::Ui, panes: &[Pane]) -> Vec<(String, PaneAction)> {
        ui.horizontal_wrapped(|ui| {
            ui.label(egui::RichText::new("broadcast").strong())
                .on_hover_text("The same intent on every ticked device at the same moment: compare strategies on the same input");
            for pane in panes {
                let mut on = !self.left_out.contains(&pane.name);
                let label = format!("broadcast to {}", pane.name);
                let r = ui.checkbox(&mut on, pane.title());
                r.widget_info(|| egui::WidgetInfo::selected(egui::Role::CheckBox, true, on, &label));
                if r.changed() {
                    if on {
                        self.left_out.remove(&pane.name);
                    } else {
                        self.left_out.insert(pane.name.clone());
                    }
                }
            }
            ui.separator();
            let mut keys: Vec<(Key, String)> = POSTS
                .iter()
                .map(|p| (Key::Like((*p).into()), format!("like {p}")))
                .collect();
            keys.push((Key::DarkMode, "dark mode".into()));
            keys.push((Key::Notifications, "notifications".into()));
            for (key, text) in keys {
                let b = ui.button(&text).on_hover_text(format!(
                    "Tap it on every ticked device at once, {} time(s), {} ms apart",
                    self.burst,
                    BURST_GAP.as_millis()
                ));
                let label = format!("broadcast {text}");
                b.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
                if b.clicked() {
                    self.press(panes, key);
                }
            }
            for n in BURSTS {
                let text = if n == 1 { "1 tap".to_string() } else { format!("{n} taps") };
                ui.selectable_value(&mut self.burst, n, text)
                    .on_hover_text("Taps per press, 150 ms apart: a burst at human speed");
            }
        });
        self.fire(ui.ctx())
    }

    /// Schedules a burst of taps on `key` on the ticked devices, the first now.
    fn press(&mut self, panes: &[Pane], key: Key) {
        let devices: Vec<String> = panes
            .iter()
            .map(|p| p.name.clone())
            .filter(|n| !self.left_out.contains(n))
            .collect();
        let now = Instant::now();
        for i in 0..self.burst {
            self.due
                .push_back((now + BURST_GAP * i, devices.clone(), key.clone()));
        }
    }

    /// The taps that are due, each on all its devices.
    fn fire(&mut self, ctx: &egui::Context) -> Vec<(String, PaneAction)> {
        let mut taps = Vec::new();
        while let Some((at, devices, key)) = self.due.front() {
            if *at > Instant::now() {
                ctx.request_repaint_after(at.saturating_duration_since(Instant::now()));
                break;
            }
            taps.extend(
                devices
                    .iter()
                    .map(|d| (d.clone(), PaneAction::Tap(key.clone()))),
            );
            self.due.pop_front();
        }
        taps
    }
}
