//! A pane's network controls: latency presets, latency / jitter / loss per direction, the
//! hold boxes, and the held frames, each to deliver or drop.

use std::time::Duration;

use eframe::egui::{self, RichText};
use mock_server::link::{Direction, Fault, LinkConfig, Pair};

use super::{Pane, PaneAction};
use crate::gui::layout::Preset;
use crate::gui::style;

impl Pane {
    /// Each direction's latency, jitter and loss, by hand (the presets set both).
    fn link_details(&mut self, ui: &mut egui::Ui, actions: &mut Vec<PaneAction>) {
        let header = egui::CollapsingHeader::new(RichText::new("latency, jitter, loss").small())
            .id_salt(format!("{}-links", self.name))
            .show(ui, |ui| {
                egui::Grid::new(format!("{}-link-grid", self.name))
                    .num_columns(4)
                    .show(ui, |ui| {
                        for h in ["", "latency ms", "jitter ms", "loss %"] {
                            ui.label(RichText::new(h).small());
                        }
                        ui.end_row();
                        for d in Direction::BOTH {
                            let dir = d.name();
                            ui.label(RichText::new(dir).small());
                            let link = self.links.of_mut(d);
                            let mut latency = link.latency.as_millis() as u64;
                            let mut jitter = link.jitter.as_millis() as u64;
                            let mut loss = link.loss * 100.0;
                            let mut changed = false;
                            for (value, what, max) in [
                                (&mut latency, "latency", 60_000),
                                (&mut jitter, "jitter", 10_000),
                            ] {
                                let r = ui.add(egui::DragValue::new(value).range(0..=max));
                                let label = format!("{} {dir} {what}", self.name);
                                r.widget_info(|| {
                                    egui::WidgetInfo::labeled(egui::Role::SpinButton, true, &label)
                                });
                                changed |= r.changed();
                            }
                            let r = ui
                                .add(egui::DragValue::new(&mut loss).range(0.0..=100.0).speed(0.1))
                                .on_hover_text(
                                    "Each frame is lost with this probability, and takes the connection with it (as on a real WebSocket)",
                                );
                            let label = format!("{} {dir} loss", self.name);
                            r.widget_info(|| {
                                egui::WidgetInfo::labeled(egui::Role::SpinButton, true, &label)
                            });
                            changed |= r.changed();
                            ui.end_row();
                            if changed {
                                *link = LinkConfig {
                                    latency: Duration::from_millis(latency),
                                    jitter: Duration::from_millis(jitter),
                                    loss: loss / 100.0,
                                };
                                actions.push(PaneAction::Link(Fault::Configure(d, *link)));
                            }
                        }
                    });
            });
        let label = format!("{} link details", self.name);
        header
            .header_response
            .widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
    }

    /// The network controls, or the same controls off and the reason why.
    pub(super) fn network(&mut self, ui: &mut egui::Ui, actions: &mut Vec<PaneAction>) {
        match self.controls_off {
            None => self.network_controls(ui, actions),
            Some(why) => {
                ui.label(
                    RichText::new("off: needs the admin token")
                        .small()
                        .color(style::AMBER),
                )
                .on_hover_text(why);
                ui.add_enabled_ui(false, |ui| self.network_controls(ui, actions));
            }
        }
    }

    fn network_controls(&mut self, ui: &mut egui::Ui, actions: &mut Vec<PaneAction>) {
        ui.horizontal_wrapped(|ui| {
            let label = ui.label(RichText::new("network").strong());
            // The preset whose settings both directions have, if any.
            let current = Preset::ALL
                .into_iter()
                .find(|p| self.links == Pair::both(p.link()));
            let mut chosen = current;
            egui::ComboBox::from_id_salt(format!("{}-preset", self.name))
                .selected_text(chosen.map_or("custom", Preset::name))
                .show_ui(ui, |ui| {
                    for p in Preset::ALL {
                        ui.selectable_value(&mut chosen, Some(p), p.name());
                    }
                })
                .response
                .labelled_by(label.id)
                .on_hover_text("Added latency, half of the round trip each way");
            if chosen != current
                && let Some(p) = chosen
            {
                for d in Direction::BOTH {
                    *self.links.of_mut(d) = p.link();
                    actions.push(PaneAction::Link(Fault::Configure(d, p.link())));
                }
            }
            for (d, text) in [(Direction::Up, "hold up"), (Direction::Down, "hold down")] {
                let r = ui.checkbox(self.held.of_mut(d), text).on_hover_text(
                    "Frames stop in a queue: deliver any of them (out of order), or drop one — which, as on a real network, takes the connection with it",
                );
                let label = format!("{} {text}", self.name);
                let held = *self.held.of(d);
                r.widget_info(|| egui::WidgetInfo::selected(egui::Role::CheckBox, true, held, &label));
                if r.changed() {
                    actions.push(PaneAction::Link(Fault::Hold(d, held)));
                }
            }
        });
        self.link_details(ui, actions);
        for (d, frames, arrow) in [
            (Direction::Up, &self.queue.up, "to server"),
            (Direction::Down, &self.queue.down, "from server"),
        ] {
            for (i, frame) in frames.iter().enumerate() {
                let n = i + 1;
                let dir = d.name();
                ui.horizontal(|ui| {
                    // Buttons first: a long frame must not push them out of the pane.
                    let deliver = ui.small_button("deliver");
                    let label = format!("{} deliver {dir} {n}", self.name);
                    deliver.widget_info(|| {
                        egui::WidgetInfo::labeled(egui::Role::Button, true, &label)
                    });
                    if deliver.clicked() {
                        actions.push(PaneAction::Link(Fault::Release(d, n)));
                    }
                    let drop = ui
                        .small_button("drop")
                        .on_hover_text("Lose it, and the connection with it");
                    let label = format!("{} drop {dir} {n}", self.name);
                    drop.widget_info(|| {
                        egui::WidgetInfo::labeled(egui::Role::Button, true, &label)
                    });
                    if drop.clicked() {
                        actions.push(PaneAction::Link(Fault::Drop(d, n)));
                    }
                    let text = format!("{n}. {arrow}: {frame}");
                    ui.add(egui::Label::new(RichText::new(&text).small().monospace()).truncate())
                        .on_hover_text(text);
                });
            }
        }
    }
}
