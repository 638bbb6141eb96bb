//! One device pane: a small feed (likes, comments), the settings, and the sync state of
//! every key — what is shown, what the server confirmed, what is in flight — with the
//! counters and the device's recent events.
//!
//! The pane renders a [`DeviceView`] and never touches the device: what the user does
//! comes back as [`PaneAction`]s for whichever driver is behind it (a live client, or the
//! player's simulator). `intents` draws the feed and settings (the user's intents),
//! `network` the link controls and held frames, `state` the sync table and counters.

mod intents;
mod network;
mod state;

use std::collections::{BTreeMap, VecDeque};

use std::time::Duration;

use eframe::egui::{self, RichText};
use mock_server::link::{Direction, Fault, LinkConfig, Pair};
use mock_server::net::QueuedFrames;
use serde_json::{Value, json};
use sync_core::engine::connection::ConnectionState;
use sync_core::engine::{
    CursorMode, DeviceSettings, DeviceView, Event, EventKind, Strategy, TokenState,
};
use sync_core::protocol::Key;

use super::chart::Chart;
use super::layout::{DeviceLayout, Preset};
use super::sections::{Section, Sections};
use super::style;
use state::{connection_badge, counters, cursors, sync_table};

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
    /// Per post, the id of the comment its draft edits (`None`: the draft is a new one).
    editing: [Option<String>; 3],
    name_draft: String,
    /// Each direction's latency, jitter and loss (up, down).
    links: Pair<LinkConfig>,
    held: Pair<bool>,
    /// The device's settings, as set in its menu's "advanced" part.
    settings: DeviceSettings,
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

/// The feed's index of a `comments/<post>` key.
fn post_of(key: &Key) -> Option<usize> {
    POSTS
        .iter()
        .position(|p| *key == Key::Comments((*p).into()))
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
    /// Edit a comment: the key, the comment's id, its new text.
    EditComment(Key, String, String),
    /// Delete a comment: the key and the comment's id.
    DeleteComment(Key, String),
    /// Take the device's network down (`false`) or back up.
    Online(bool),
    /// Connect now, out of `error`, `auth-failed` or `closed`.
    Retry,
    /// Change the device's settings (reconnect bound, batch size).
    Settings(DeviceSettings),
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
        pane.settings = layout.settings();
        let mut actions = vec![PaneAction::Settings(pane.settings)];
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
            reconnect: self.settings.reconnect_bound,
            batch_size: self.settings.batch_size,
            auth_delay_ms: self.settings.auth_delay.map(|d| d.as_millis() as u64),
            clock_cursor: self.settings.cursor == CursorMode::Clock,
            clock_skew_ms: self.settings.clock_skew_ms,
            fallback_after: self.settings.fallback_after,
            poll_interval_ms: self.settings.poll_interval.as_millis() as u64,
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
            editing: Default::default(),
            name_draft: String::new(),
            links: Pair::both(Preset::None.link()),
            held: Pair::both(false),
            settings: DeviceSettings::default(),
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

    /// The device's settings, as the pane shows them.
    pub fn device_settings(&self) -> DeviceSettings {
        self.settings
    }

    /// The settings the app gave the device.
    pub fn set_settings(&mut self, settings: DeviceSettings) {
        self.settings = settings;
    }

    /// The app did not do what the pane asked (a recording refused it): undo what the
    /// pane already changed on its side — a hold box, a comment's draft.
    pub fn refused(&mut self, action: PaneAction) {
        match action {
            PaneAction::Link(Fault::Hold(d, on)) => *self.held.of_mut(d) = !on,
            PaneAction::Comment(key, text) => {
                if let Some(i) = post_of(&key) {
                    self.comment_drafts[i] = text;
                }
            }
            PaneAction::EditComment(key, id, text) => {
                if let Some(i) = post_of(&key) {
                    self.comment_drafts[i] = text;
                    self.editing[i] = Some(id);
                }
            }
            _ => {}
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
                        cursors(ui, view);
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
        let token_note = match view.token {
            TokenState::Valid => None,
            TokenState::Expired => Some(
                "The server rotated the user's token: writes wait (kept on screen, no rollback) until the token source hands over the new one; 30 s after the rotation the server closes the connection",
            ),
            TokenState::Reauthenticating => Some(
                "auth with the new token is on its way, on the same connection: what waited goes out after authed",
            ),
        };
        if token_note.is_some() {
            text = format!("{text} · {}", view.token.name());
        }
        if let Some(at) = view.next_poll_at {
            let left = at.saturating_sub(clock);
            text = format!("{text} · next poll in {:.1} s", left.as_secs_f64());
            ui.ctx().request_repaint_after(Duration::from_millis(100));
        }
        if let Some(at) = view.next_try_at() {
            // Count down to the next attempt (repainting until it starts).
            let left = at.saturating_sub(clock);
            let what = if view.connection == ConnectionState::Polling {
                "WebSocket try"
            } else {
                "try"
            };
            text = format!("{text}, next {what} in {:.1} s", left.as_secs_f64());
            ui.ctx().request_repaint_after(Duration::from_millis(100));
        }
        ui.horizontal(|ui| {
            if view.connection.needs_retry() {
                let retry = ui.small_button("retry now").on_hover_text(
                    "The device stopped trying (its reconnect bound, a refused token, or a close that forbids reconnecting): connect now",
                );
                let label = format!("{} retry now", self.name);
                retry.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
                if retry.clicked() {
                    actions.push(PaneAction::Retry);
                }
            }
            let color = if token_note.is_some() { style::AMBER } else { color };
            let badge =
                ui.add(egui::Label::new(RichText::new(text).color(color).strong()).truncate());
            let polling = (view.connection == ConnectionState::Polling).then_some(
                "WebSocket upgrades were refused (a proxy, or the server's block): the device polls over HTTP — GET /sync/changes every poll interval, its writes by POST /sync/write. HTTP carries no pushes: other devices' changes show at the next poll. It keeps trying the WebSocket and goes back after a welcome",
            );
            if let Some(note) = token_note.or(polling) {
                badge.on_hover_text(note);
            }
        });
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
            ui.separator();
            ui.label(RichText::new("advanced").small().strong());
            ui.label("reconnect attempts").on_hover_text(
                "After this many failed attempts in a row (a connection that ends before its welcome) the device stops in `error` until you retry",
            );
            // The pane shows a new setting once the app has done it (it may refuse, while
            // recording): see [`Pane::set_settings`].
            let mut chosen = self.settings;
            let choices = [None, Some(1), Some(2), Some(3), Some(5), Some(10)];
            self.choice_row(ui, "reconnect attempts", &mut chosen.reconnect_bound, &choices, |c| {
                c.map_or("no bound".into(), |n| n.to_string())
            });
            ui.label("batch size").on_hover_text(
                "After a welcome, the writes due at once (resends, intents made offline) leave in batch frames of at most this many writes; 1 never batches",
            );
            self.choice_row(ui, "batch size", &mut chosen.batch_size, &[1, 2, 8, 64], |n| {
                n.to_string()
            });
            ui.label("auth delay").on_hover_text(
                "How long the token source (the account the user's devices share) takes to hand this device a rotated token; never: it is shut out 30 s after a rotation",
            );
            let delays = [
                Some(Duration::from_millis(100)),
                Some(Duration::from_secs(2)),
                Some(Duration::from_secs(10)),
                None,
            ];
            self.choice_row(ui, "auth delay", &mut chosen.auth_delay, &delays, |d| {
                d.map_or("never".into(), |d| format!("{} ms", d.as_millis()))
            });
            ui.label("catch up by").on_hover_text(
                "After reconnecting, the device asks for what it missed: by its revision cursor (never misses a change), or by its own clock's time of the last change it received (since_time, as local_first_websocket does: a fast clock misses changes)",
            );
            let modes = [CursorMode::Revision, CursorMode::Clock];
            self.choice_row(ui, "catch up by", &mut chosen.cursor, &modes, |m| {
                m.name().to_string()
            });
            ui.label("clock skew").on_hover_text(
                "How far the device's clock runs ahead of the server's (or behind): only the clock cursor reads it",
            );
            let skews = [-5_000, 0, 5_000, 60_000];
            self.choice_row(ui, "clock skew", &mut chosen.clock_skew_ms, &skews, |ms| {
                format!("{:+} s", ms / 1000)
            });
            ui.label("fallback after").on_hover_text(
                "After this many attempts in a row whose WebSocket upgrade was refused with an HTTP status (while HTTP works), the device polls over HTTP; resets and timeouts never count",
            );
            self.choice_row(ui, "fallback after", &mut chosen.fallback_after, &[1, 2, 3, 5, 10], |n| {
                n.to_string()
            });
            ui.label("poll interval").on_hover_text(
                "How often a polling device asks GET /sync/changes for what changed since its cursor",
            );
            let intervals = [500, 1_000, 2_000, 5_000].map(Duration::from_millis);
            self.choice_row(ui, "poll interval", &mut chosen.poll_interval, &intervals, |d| {
                format!("{} s", d.as_secs_f64())
            });
            if chosen != self.settings {
                actions.push(PaneAction::Settings(chosen));
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

    /// One setting's choices in a row, not a box: a box's list would open over the menu.
    /// Each is named "DEVICE SETTING CHOICE" for tests and screen readers.
    fn choice_row<T: PartialEq + Copy>(
        &self,
        ui: &mut egui::Ui,
        setting: &str,
        chosen: &mut T,
        choices: &[T],
        text: impl Fn(T) -> String,
    ) {
        let now = *chosen;
        ui.horizontal(|ui| {
            for &choice in choices {
                let text = text(choice);
                let r = ui.selectable_value(chosen, choice, &text);
                let label = format!("{} {setting} {text}", self.name);
                let on = now == choice;
                r.widget_info(|| egui::WidgetInfo::selected(egui::Role::Button, true, on, &label));
            }
        });
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
