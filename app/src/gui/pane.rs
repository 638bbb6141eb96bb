//! One device pane: a small feed (likes, comments), the settings, and the sync state of
//! every key — what is shown, what the server confirmed, what is in flight — with the
//! counters and the device's recent events.

use std::collections::{BTreeMap, VecDeque};

use std::time::Duration;

use eframe::egui::{self, Color32, RichText};
use mock_server::link::{Direction, Fault, LinkConfig, Pair};
use mock_server::net::QueuedFrames;
use serde_json::{Value, json};
use sync_core::engine::connection::ConnectionState;
use sync_core::engine::{DeviceView, Event, EventKind, Strategy};
use sync_core::protocol::Key;

use super::chart::Chart;
use super::layout::{DeviceLayout, Preset};
use super::sections::{Section, Sections};
use super::style;

/// The posts of the little feed.
pub const POSTS: [&str; 3] = ["post-1", "post-2", "post-3"];
/// Events kept per pane.
const LOG: usize = 200;

/// A device pane's state on the UI side.
pub struct Pane {
    /// The device's id (fixed: its revisions and the server's watermarks belong to it).
    pub name: String,
    /// The name shown for it, which the user may change.
    pub label: String,
    /// Recent events, newest last.
    pub log: VecDeque<Event>,
    comment_drafts: [String; 3],
    name_draft: String,
    /// Each direction's latency, jitter and loss (up, down).
    links: Pair<LinkConfig>,
    held: Pair<bool>,
    /// The frames waiting on this device's held links, as last listed by the server.
    pub queue: QueuedFrames,
    /// Queue listings received so far (a listing arrives after every link command sent
    /// before it took effect).
    pub queue_listings: u64,
    /// The volume the user set, and the local revision the device reaches once it has
    /// taken that intent.
    volume_pending: Option<(i64, u64)>,
    /// Keys whose last change on this device was a rollback, with its "from → to": shown
    /// beside the key's control until the next intent or push on it, so a rollback is seen
    /// even when it comes a millisecond after the tap.
    rolled_back: BTreeMap<Key, String>,
    /// The device's bursts of intents, charted.
    pub chart: Chart,
    /// Why the network controls are off (an external server without its admin token).
    pub controls_off: Option<&'static str>,
    /// A simulated device (the scenario player's): its name, strategy and place belong
    /// to the script, so the edit menu and the strategy box are not offered.
    pub simulated: bool,
    /// Whether the device's network is down, when its driver says so (the simulator's
    /// `offline`); `None`: read from the connection state (a live device switched off).
    pub network_down: Option<bool>,
}

/// What a pane asks of whatever drives its device (the live client runtime, or the
/// simulator), after the frame: the pane itself never touches the device.
#[derive(Debug)]
pub enum PaneAction {
    /// Toggle a boolean key.
    Tap(Key),
    /// Set a key.
    Set(Key, Value),
    /// Add a comment to a `comments/<post>` key.
    Comment(Key, String),
    /// Take the device's network down (`false`) or back up.
    Online(bool),
    /// A fault on this device's link.
    Link(Fault),
    /// Restart the device with this strategy.
    Strategy(Strategy),
    /// Move the pane left (-1) or right (+1).
    Move(isize),
    /// Stop the device and forget it (its snapshot too).
    Remove,
}

impl Pane {
    /// A pane for a running device, as the user left it: its label, and its network
    /// settings, returned as link commands for the app to send.
    pub fn restore(layout: &DeviceLayout) -> (Pane, Vec<PaneAction>) {
        let mut pane = Pane::new(&layout.id);
        pane.label = layout.label.clone();
        pane.links = layout.links;
        pane.held = layout.held;
        let mut actions = Vec::new();
        for d in Direction::BOTH {
            actions.push(PaneAction::Link(Fault::Configure(d, *pane.links.of(d))));
            actions.push(PaneAction::Link(Fault::Hold(d, *pane.held.of(d))));
        }
        (pane, actions)
    }

    /// The pane as [`Pane::restore`] takes it back.
    pub fn layout(&self, view: &DeviceView) -> DeviceLayout {
        DeviceLayout {
            id: self.name.clone(),
            label: self.title().to_string(),
            strategy: view.strategy,
            links: self.links,
            held: self.held,
            online: view.connection != ConnectionState::Offline,
        }
    }

    /// The name shown: the label, or the id while the label is blank.
    pub fn title(&self) -> &str {
        match self.label.trim() {
            "" => &self.name,
            label => label,
        }
    }

    /// A pane for a running device.
    pub fn new(name: &str) -> Pane {
        Pane {
            name: name.to_string(),
            label: name.to_string(),
            log: VecDeque::new(),
            comment_drafts: Default::default(),
            name_draft: String::new(),
            links: Pair::both(Preset::None.link()),
            held: Pair::both(false),
            queue: QueuedFrames::default(),
            queue_listings: 0,
            volume_pending: None,
            rolled_back: BTreeMap::new(),
            chart: Chart::default(),
            controls_off: None,
            simulated: false,
            network_down: None,
        }
    }

    /// Takes the device's new events, each with when it happened since the session's
    /// time 0 (the app's start, or the scenario's).
    pub fn take_events(&mut self, events: impl IntoIterator<Item = (Duration, Event)>) {
        for (at, e) in events {
            match &e.kind {
                EventKind::RolledBack { key, from, to } => {
                    self.rolled_back
                        .insert(key.clone(), format!("{from} -> {to}"));
                }
                EventKind::OptimisticWrite { key, .. } | EventKind::PushApplied { key, .. } => {
                    self.rolled_back.remove(key);
                }
                _ => {}
            }
            self.chart.event(&e.kind, at);
            self.log.push_back(e);
            if self.log.len() > LOG {
                self.log.pop_front();
            }
        }
    }

    /// The rollback that was `key`'s last change on this device ("from -> to"), if it was.
    pub fn rolled_back(&self, key: &Key) -> Option<&str> {
        self.rolled_back.get(key).map(String::as_str)
    }

    /// What is happening to `key` beside its control: a request in flight, a follow-up,
    /// or the rollback that was the key's last change.
    fn key_badge(&self, ui: &mut egui::Ui, view: &DeviceView, key: &Key) {
        if let Some(kv) = view.key(key)
            && let Some((value, local_rev)) = &kv.in_flight
        {
            let shown = if key.kind() == sync_core::protocol::ValueKind::Comments {
                "comment".to_string()
            } else {
                value.to_string()
            };
            badge(
                ui,
                RichText::new(format!("sending {shown} (local rev {local_rev})"))
                    .small()
                    .color(style::AMBER),
                "A request is in flight with this value and local revision",
            );
            if kv.follow_up_pending {
                badge(
                    ui,
                    RichText::new("+ follow-up").small().color(style::PURPLE),
                    "The user acted after the request went out: the newest intent follows when the answer arrives",
                );
            }
        }
        if let Some(change) = self.rolled_back.get(key) {
            badge(
                ui,
                RichText::new(format!("rolled back {change}"))
                    .strong()
                    .color(style::RED),
                "The server refused the write, and this device still showed the value it had sent: it went back to the server's value",
            );
        }
    }

    /// Ticks or unticks a hold box, as a click would; returns the command to send.
    pub fn hold(&mut self, d: Direction, on: bool) -> Fault {
        *self.held.of_mut(d) = on;
        Fault::Hold(d, on)
    }

    /// Shows the links as the driver has them (a script's holds and latencies), so the
    /// pane's controls start from the truth.
    pub fn show_links(&mut self, links: Pair<LinkConfig>, held: Pair<bool>) {
        self.links = links;
        self.held = held;
    }

    /// `true` while one of the device's links is held (its queue is worth listing).
    pub fn holding(&self) -> bool {
        self.held.up || self.held.down
    }

    /// Draws the pane, section by section (each aligned with the other panes' and folded
    /// with them); what it asks of the app goes into `actions`.
    /// `clock` is the device's engine clock now (for the reconnect countdown).
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        view: &DeviceView,
        clock: Duration,
        sections: &mut Sections,
        actions: &mut Vec<PaneAction>,
    ) {
        let dark = view.shown(&Key::DarkMode) == json!(true);
        // The pane renders in its own synced theme.
        ui.scope(|ui| {
            // A fresh style for this pane only (`ui.set_visuals` would deref to the Context
            // and restyle the whole app).
            let mut style = (**ui.style()).clone();
            style.visuals = if dark {
                egui::Visuals::dark()
            } else {
                egui::Visuals::light()
            };
            // A pane's labels are read, not copied: text selection on every label was a
            // seventh of a frame's time with 8 panes (see BENCHMARKS.md).
            style.interaction.selectable_labels = false;
            ui.set_style(style);
            egui::Frame::group(ui.style())
                .fill(ui.visuals().panel_fill)
                .show(ui, |ui| {
                    ui.set_min_width(ui.available_width());
                    let name = self.name.clone();
                    sections.show(ui, &name, Section::Header, |ui| {
                        self.header(ui, view, clock, actions);
                    });
                    sections.show(ui, &name, Section::Feed, |ui| self.feed(ui, view, actions));
                    sections.show(ui, &name, Section::Settings, |ui| {
                        self.settings(ui, view, actions);
                    });
                    sections.show(ui, &name, Section::Network, |ui| {
                        self.network(ui, actions);
                    });
                    sections.show(ui, &name, Section::SyncState, |ui| {
                        sync_table(ui, &name, view);
                        counters(ui, view);
                    });
                    sections.show(ui, &name, Section::Charts, |ui| {
                        self.chart.ui(ui, &name);
                    });
                    sections.show(ui, &name, Section::Events, |ui| self.recent(ui));
                });
        });
    }

    fn header(
        &mut self,
        ui: &mut egui::Ui,
        view: &DeviceView,
        clock: Duration,
        actions: &mut Vec<PaneAction>,
    ) {
        // Wrapped: with many devices a pane is narrow, and nothing may spill into the next.
        // What changes by the moment (the connection's state and countdown) is not on this
        // line but on one of its own below, truncated: a status growing longer must never
        // wrap this line and move every widget of the pane under the user's pointer.
        ui.horizontal_wrapped(|ui| {
            ui.heading(self.title());
            if self.simulated {
                // The script's device: its strategy is shown, not offered.
                ui.label(RichText::new(view.strategy.name()).monospace());
            } else {
                self.manage_menu(ui, actions);
                self.strategy_box(ui, view, actions);
            }
            let mut online = match self.network_down {
                Some(down) => !down,
                None => view.connection != ConnectionState::Offline,
            };
            let label = format!("{} online", self.name);
            let r = ui.checkbox(&mut online, "online");
            if r.changed() {
                actions.push(PaneAction::Online(online));
            }
            r.widget_info(|| {
                egui::WidgetInfo::selected(egui::Role::CheckBox, true, online, &label)
            });
        });
        let (color, mut text) = connection_badge(&view.connection);
        if let Some(at) = view.next_try_at() {
            // Count down to the next attempt (repainting until it starts).
            let left = at.saturating_sub(clock);
            text = format!("{text}, next try in {:.1} s", left.as_secs_f64());
            ui.ctx().request_repaint_after(Duration::from_millis(100));
        }
        ui.add(egui::Label::new(RichText::new(text).color(color).strong()).truncate());
    }

    /// The strategy box: changing it restarts the device with the new strategy.
    fn strategy_box(&self, ui: &mut egui::Ui, view: &DeviceView, actions: &mut Vec<PaneAction>) {
        let mut strategy = view.strategy;
        let combo = egui::ComboBox::from_id_salt(format!("{}-strategy", self.name))
            .selected_text(RichText::new(strategy.name()).monospace())
            .show_ui(ui, |ui| {
                for s in Strategy::ALL {
                    ui.selectable_value(&mut strategy, s, s.name());
                }
            })
            .response
            .on_hover_text(
                "How this device syncs values. Changing it restarts the device from its snapshot: compare the same actions side by side",
            );
        let label = format!("{} strategy", self.name);
        combo.widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, &label));
        if strategy != view.strategy {
            actions.push(PaneAction::Strategy(strategy));
        }
    }

    /// Rename, move, remove.
    fn manage_menu(&mut self, ui: &mut egui::Ui, actions: &mut Vec<PaneAction>) {
        let menu = ui.menu_button("edit", |ui| {
            ui.horizontal(|ui| {
                ui.label("name");
                let edit = ui.add(
                    egui::TextEdit::singleline(&mut self.label)
                        .char_limit(32)
                        .desired_width(120.0),
                );
                let id = format!("{} label", self.name);
                edit.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, &id));
            });
            ui.label(
                RichText::new(format!(
                    "device id `{}` stays: its revisions belong to it",
                    self.name
                ))
                .small()
                .weak(),
            );
            for (text, step) in [("move left", -1), ("move right", 1)] {
                let b = ui.button(text);
                let label = format!("{} {text}", self.name);
                b.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
                if b.clicked() {
                    actions.push(PaneAction::Move(step));
                    ui.close();
                }
            }
            let b = ui.button("remove device").on_hover_text(
                "Stops the device and forgets it, snapshot and unsent intents included",
            );
            let label = format!("{} remove", self.name);
            b.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
            if b.clicked() {
                actions.push(PaneAction::Remove);
                ui.close();
            }
        });
        let label = format!("{} edit", self.name);
        menu.response
            .widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
    }

    fn feed(&mut self, ui: &mut egui::Ui, view: &DeviceView, actions: &mut Vec<PaneAction>) {
        for (i, post) in POSTS.iter().enumerate() {
            let like = Key::Like((*post).into());
            let liked = view.shown(&like) == json!(true);
            // One line whatever the badges say (they truncate, in full on hover): a row
            // that grew a line would move every section below, in every pane, under the
            // user's pointer.
            ui.horizontal(|ui| {
                ui.label(RichText::new(*post).strong());
                let text = if liked { "Liked" } else { "Like" };
                let button = ui
                    .add(egui::Button::new(text).selected(liked))
                    .on_hover_text("Shown at once (optimistic); synced in the background");
                let label = format!("{} like {post}", self.name);
                button.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
                if button.clicked() {
                    actions.push(PaneAction::Tap(like.clone()));
                }
                self.key_badge(ui, view, &like);
            });
            let comments = Key::Comments((*post).into());
            if let Value::Array(list) = view.shown(&comments) {
                for c in list.iter().rev().take(3).rev() {
                    let pending = c["id"].as_str().is_some_and(|id| id.starts_with("pending"));
                    let text = format!(
                        "  {}: {}",
                        c["device_id"].as_str().unwrap_or("?"),
                        c["text"].as_str().unwrap_or("")
                    );
                    let mut rt = RichText::new(text).small();
                    if pending {
                        rt = rt.italics().weak();
                    }
                    ui.label(rt);
                }
            }
            ui.horizontal(|ui| {
                let label = format!("{} comment on {post}", self.name);
                let edit = ui.add(
                    egui::TextEdit::singleline(&mut self.comment_drafts[i])
                        .hint_text("add a comment")
                        .desired_width(140.0),
                );
                edit.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, &label));
                let send = ui.button("Send");
                let send_label = format!("{} send comment on {post}", self.name);
                send.widget_info(|| {
                    egui::WidgetInfo::labeled(egui::Role::Button, true, &send_label)
                });
                let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                if (send.clicked() || enter) && !self.comment_drafts[i].trim().is_empty() {
                    actions.push(PaneAction::Comment(
                        comments.clone(),
                        std::mem::take(&mut self.comment_drafts[i]),
                    ));
                }
            });
        }
    }

    fn settings(&mut self, ui: &mut egui::Ui, view: &DeviceView, actions: &mut Vec<PaneAction>) {
        ui.horizontal_wrapped(|ui| {
            for (key, text) in [
                (Key::DarkMode, "dark mode"),
                (Key::Notifications, "notifications"),
            ] {
                let mut on = view.shown(&key) == json!(true);
                let r = ui.checkbox(&mut on, text);
                let label = format!("{} {text}", self.name);
                r.widget_info(|| {
                    egui::WidgetInfo::selected(egui::Role::CheckBox, true, on, &label)
                });
                if r.changed() {
                    actions.push(PaneAction::Tap(key.clone()));
                }
                self.key_badge(ui, view, &key);
            }
        });
        ui.horizontal(|ui| {
            // The device runs on another thread: until its view has taken the last intent
            // (its local revision caught up), show what the user set, so a fast drag does
            // not start its next step from a stale value.
            let local_rev = view.key(&Key::Volume).map_or(0, |k| k.slot.local_rev);
            if self
                .volume_pending
                .is_some_and(|(_, expected)| local_rev >= expected)
            {
                self.volume_pending = None;
            }
            let mut volume = self.volume_pending.map_or_else(
                || view.shown(&Key::Volume).as_i64().unwrap_or(50),
                |(v, _)| v,
            );
            ui.label("volume");
            let r = ui.add(egui::Slider::new(&mut volume, 0..=100));
            let label = format!("{} volume", self.name);
            r.widget_info(|| egui::WidgetInfo::slider(true, volume as f64, &label));
            if r.changed() {
                // Every step of a drag is an intent: watch them coalesce.
                let expected = self.volume_pending.map_or(local_rev, |(_, e)| e) + 1;
                self.volume_pending = Some((volume, expected));
                actions.push(PaneAction::Set(Key::Volume, json!(volume)));
            }
            self.key_badge(ui, view, &Key::Volume);
        });
        ui.horizontal(|ui| {
            ui.label("name");
            let edit = ui.add(
                egui::TextEdit::singleline(&mut self.name_draft)
                    .hint_text(
                        view.shown(&Key::DisplayName)
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                    )
                    .desired_width(120.0),
            );
            let label = format!("{} display name", self.name);
            edit.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, &label));
            let save = ui.button("Save");
            if save.clicked()
                || (edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)))
            {
                actions.push(PaneAction::Set(
                    Key::DisplayName,
                    json!(std::mem::take(&mut self.name_draft)),
                ));
            }
            ui.label(
                RichText::new(
                    view.shown(&Key::DisplayName)
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
                .strong(),
            );
            self.key_badge(ui, view, &Key::DisplayName);
        });
    }

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
    fn network(&mut self, ui: &mut egui::Ui, actions: &mut Vec<PaneAction>) {
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

    fn recent(&self, ui: &mut egui::Ui) {
        for e in self.log.iter().rev().take(6) {
            let p = crate::present::present(&e.kind);
            let (color, why) = (style::color(p.tone), p.rule);
            ui.label(RichText::new(e.kind.to_string()).small().color(color))
                .on_hover_text(why);
        }
    }
}

/// A one-line note beside a control, truncated (in full on hover) with why on hover: a
/// row that grew a line would move every aligned section below it, in every pane.
fn badge(ui: &mut egui::Ui, text: RichText, why: &str) {
    ui.add(egui::Label::new(text).truncate()).on_hover_text(why);
}

/// Per key: shown, confirmed and its revision, local revision.
fn sync_table(ui: &mut egui::Ui, name: &str, view: &DeviceView) {
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
fn counters(ui: &mut egui::Ui, view: &DeviceView) {
    let c = &view.counters;
    ui.horizontal_wrapped(|ui| {
        for (label, n, why) in [
            ("intents", c.intents, "Taps, sets and comments"),
            (
                "requests",
                c.requests,
                "set/command frames sent, resends included",
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
fn connection_badge(state: &ConnectionState) -> (Color32, String) {
    let green = style::GREEN;
    let amber = style::AMBER;
    let red = style::RED;
    match state {
        ConnectionState::Connected => (green, "connected".into()),
        ConnectionState::Offline => (style::QUIET, "offline".into()),
        ConnectionState::AuthFailed | ConnectionState::ClosedByServer { .. } => {
            (red, format!("{state}"))
        }
        other => (amber, format!("{other}")),
    }
}
