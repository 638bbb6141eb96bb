//! The desktop app: a pane per device, side by side, and the server panel. The whole UI
//! is drawn by [`SyncLab::ui_root`], so tests drive it without eframe. Each frame it takes
//! the devices' news (`take_news`), reads the views and the server, notes who
//! agrees, lets the recorder see the moment, then draws the top bar, the server panel, the
//! wire view and the devices, and carries out what the user asked after the frame.
//!
//! This file is long because [`SyncLab`] is the controller every view reports to: its
//! views live in the modules below, its actions (a pane's, a recipe's, the server
//! panel's, the recorder's) are handled here in one place.
//!
//! | module | what |
//! |---|---|
//! | [`broadcast`] | one intent on every ticked device at once, or a burst of them |
//! | [`chart`] | a device's bursts of intents: seconds to agree, requests per intent |
//! | [`convergence`] | whether every device agrees with the server, in the top bar's words |
//! | [`layout`] | what the app remembers between runs: panes, labels, strategies, links |
//! | [`live`] | the embedded server (or an external one) and the devices' client runtimes |
//! | [`pane`] | one device pane |
//! | [`player`] | the scenario player: lessons and files on the simulator, step by step |
//! | [`recipes`] | one-click recipes: an edge case made on the live devices, step by step |
//! | [`recording`] | the record button: a live session saved as a scenario, opened in the player |
//! | [`remote`] | an external server's fault controls, through its admin socket |
//! | [`sections`] | a pane's sections: folded together, aligned across panes |
//! | [`server_panel`] | the server's authoritative table and fault controls |
//! | [`statements`] | a pane's actions in the scenario language (the player does them, the recorder writes them) |
//! | [`style`] | text sizes and the palette every view shares |
//! | [`wire`] | the sequence diagram of frames between devices and server, live and in the player |

pub mod broadcast;
pub mod chart;
pub mod convergence;
pub mod layout;
pub mod live;
pub mod pane;
pub mod player;
pub mod recipes;
pub mod recording;
pub mod remote;
pub mod sections;
pub mod server_panel;
pub mod statements;
pub mod style;
pub mod wire;

use std::time::{Duration, Instant};

use eframe::egui;
use mock_server::link::Pair;
use mock_server::net::Inspection;
use mock_server::scenario::ast::Stmt;
use sync_core::engine::DeviceView;

use convergence::Agreement;
use layout::{DeviceLayout, Layout};
use live::{Live, LiveDevice};
use pane::{Pane, PaneAction};

/// How often a held queue is listed again while a hold is on.
const QUEUE_REFRESH: Duration = Duration::from_millis(200);

/// Device names, in the order devices are added.
pub const NAMES: [&str; 8] = [
    "phone", "laptop", "tablet", "watch", "tv", "car", "desk", "kiosk",
];

/// The app.
pub struct SyncLab {
    live: Live,
    /// The panes, left to right, and the live device behind each, in the same order
    /// (only [`SyncLab::add_device`] and the move/remove actions change either).
    panes: Vec<Pane>,
    devices: Vec<LiveDevice>,
    server: Option<Inspection>,
    /// The sum of the devices' counters when the server was last asked for its state.
    seen: u64,
    reject_key: sync_core::protocol::Key,
    queue_listed: Option<Instant>,
    /// When the last intent happened, and when everyone agreed again after it.
    last_intent: Option<Instant>,
    converged_after: Option<Duration>,
    wire: wire::Wire,
    /// The wire view's time 0.
    started: Instant,
    /// What the main area shows.
    pub mode: Mode,
    player: player::Player,
    broadcast: broadcast::Broadcast,
    sections: sections::Sections,
    recipes: recipes::Recipes,
    recording: recording::Recording,
}

/// The main area: the live devices, or the scenario player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The devices over the embedded (or an external) server, live.
    Live,
    /// A scenario on the simulator (the live devices keep running).
    Player,
}

impl SyncLab {
    /// The app with the first `devices` devices, fresh.
    pub fn new(live: Live, devices: usize) -> SyncLab {
        SyncLab::with_layout(live, &Layout::first(devices))
    }

    /// The app with its devices as a layout describes them (as the user left them).
    pub fn with_layout(live: Live, layout: &Layout) -> SyncLab {
        // Before the devices start: their first events come after time 0.
        let started = Instant::now();
        let mut app = SyncLab {
            live,
            panes: Vec::new(),
            devices: Vec::new(),
            server: None,
            seen: u64::MAX,
            reject_key: sync_core::protocol::Key::Like("post-1".into()),
            queue_listed: None,
            last_intent: None,
            converged_after: None,
            wire: wire::Wire::default(),
            started,
            mode: Mode::Live,
            player: player::Player::default(),
            broadcast: broadcast::Broadcast::default(),
            sections: sections::Sections::default(),
            recipes: recipes::Recipes::default(),
            recording: recording::Recording::default(),
        };
        app.player.set_save_dir(app.live.data().join("branches"));
        for d in &layout.devices {
            app.add_device(d);
        }
        app
    }

    /// Starts a device as `layout` describes it, its links set up as they say, and adds
    /// its pane on the right.
    fn add_device(&mut self, layout: &DeviceLayout) {
        let handle = self.live.device(&layout.id, layout.strategy, layout.online);
        let device = LiveDevice::new(handle);
        let mut layout = layout.clone();
        if self.live.controls().is_err() {
            // Nothing can set the server's links: show them as they are, with no fault.
            layout.links = Pair::both(layout::Preset::None.link());
            layout.held = Pair::both(false);
        }
        let (mut pane, actions) = Pane::restore(&layout);
        pane.controls_off = self.live.controls().err();
        if pane.controls_off.is_some() {
            // The server's state cannot be read: a burst ends when the device settles.
            pane.chart.basis = chart::Basis::Settled;
        }
        for action in actions {
            match action {
                PaneAction::Link(fault) => self.live.link(&layout.id, fault),
                other => {
                    device.act(&other);
                }
            }
        }
        self.panes.push(pane);
        self.devices.push(device);
    }

    /// The devices as they are now, to be restored next time.
    pub fn layout(&self) -> Layout {
        Layout {
            devices: self
                .panes
                .iter()
                .zip(&self.devices)
                .map(|(p, d)| p.layout(&d.view()))
                .collect(),
        }
    }

    /// The scenario player.
    pub fn player(&self) -> &player::Player {
        &self.player
    }

    /// The scenario player, to drive (for tests).
    pub fn player_mut(&mut self) -> &mut player::Player {
        &mut self.player
    }

    /// Whether the live world has been quiet long enough for a recording to say `settle`
    /// now (for tests).
    pub fn quiet_for_a_settle(&self) -> bool {
        self.recording.settled(self.started.elapsed())
    }

    /// The recorder (for tests).
    pub fn recording(&self) -> &recording::Recording {
        &self.recording
    }

    /// The panes (for tests).
    pub fn panes(&self) -> &[Pane] {
        &self.panes
    }

    /// The view of the `i`-th device (for tests).
    pub fn view(&self, i: usize) -> DeviceView {
        self.devices[i].view()
    }

    /// The wire view.
    pub fn wire(&self) -> &wire::Wire {
        &self.wire
    }

    /// The server's state as last seen.
    pub fn server(&self) -> Option<&Inspection> {
        self.server.as_ref()
    }

    /// The news since the last frame: devices restarted with another strategy get their
    /// pane's settings, and every device's new events go to its pane and, in the order
    /// they happened, to the wire view. `true` if there were events.
    fn take_news(&mut self) -> bool {
        for (name, handle) in self.live.poll_restarted() {
            if let Some(i) = self.panes.iter().position(|p| p.name == name) {
                self.devices[i] = LiveDevice::new(handle);
                // The new client starts with the default settings: give it the pane's.
                let settings = PaneAction::Settings(self.panes[i].device_settings());
                self.devices[i].act(&settings);
            }
        }
        // Every device's new events, to its pane, and to the wire view in the order they
        // happened (the devices are drained one after the other).
        let mut new = Vec::new();
        let started = self.started;
        for (pane, device) in self.panes.iter_mut().zip(&mut self.devices) {
            let events = device.drain();
            let since = |at: Instant| at.saturating_duration_since(started);
            pane.take_events(events.iter().map(|(at, e)| (since(*at), e.clone())));
            new.extend(
                events
                    .into_iter()
                    .map(|(at, e)| (at, pane.name.clone(), e.kind)),
            );
        }
        new.sort_by_key(|(at, _, _)| *at);
        let had_events = !new.is_empty();
        for (at, device, kind) in new {
            if matches!(kind, sync_core::engine::EventKind::OptimisticWrite { .. }) {
                // When the device made it, not when this frame saw it.
                self.last_intent = Some(at);
                self.converged_after = None;
            }
            let since = at.saturating_duration_since(self.started);
            self.wire.record(&device, &kind, since);
        }
        had_events
    }

    /// Each pane's chart learns when its device agrees with the server again, and the top
    /// bar when the last of them did after the last intent.
    fn note_agreement(
        &mut self,
        views: &[DeviceView],
        agreement: &Result<Agreement, String>,
        now: Duration,
    ) {
        for (pane, view) in self.panes.iter_mut().zip(views) {
            // Against the server's state when it can be read; without it (an external
            // server and no admin token), when the device settled: connected, nothing
            // in flight. The chart says which.
            let done = match &self.server {
                Some(server) => convergence::agrees(&server.data, view),
                None if self.live.controls().is_err() => {
                    view.connection == sync_core::engine::connection::ConnectionState::Connected
                        && !view.has_pending()
                }
                None => false,
            };
            if done {
                pane.chart.agreed(now);
            }
        }
        // Every device counts, so this is when the last of them came to agree.
        if agreement.as_ref().is_ok_and(Agreement::all)
            && self.converged_after.is_none()
            && let Some(t) = self.last_intent
        {
            self.converged_after = Some(t.elapsed());
        }
    }

    /// The top bar: mode, zoom, and in live mode the recording controls, the devices, the
    /// server, "+ device" and the convergence verdict.
    fn top_bar(
        &mut self,
        ui: &mut egui::Ui,
        agreement: &Result<Agreement, String>,
        moment: &recording::Moment<'_>,
    ) {
        egui::Panel::top("top").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("Sync Lab");
                ui.selectable_value(&mut self.mode, Mode::Live, "live devices");
                ui.selectable_value(&mut self.mode, Mode::Player, "scenario player");
                ui.separator();
                style::zoom_control(ui);
                if self.mode == Mode::Player {
                    // The player speaks for its simulated world, beside its script.
                    return;
                }
                ui.separator();
                // Early in the bar: it must stay in view on a narrow window.
                self.recording.top_bar(ui, &self.live, moment);
                ui.separator();
                let n = self.panes.len();
                let devices = if n == 1 { "device" } else { "devices" };
                ui.label(format!(
                    "{n} {devices} · server {} · user {}",
                    self.live.url(),
                    self.live.user()
                ));
                // A device being removed keeps its id until its snapshot is gone.
                let free = NAMES.iter().copied().find(|id| {
                    self.panes.iter().all(|p| p.name != *id) && !self.live.is_removing(id)
                });
                let recording = self.recording.is_on();
                let add = ui
                    .add_enabled(free.is_some() && !recording, egui::Button::new("+ device"))
                    .on_disabled_hover_text(if recording {
                        "Not while recording: a scenario's devices are its setup"
                    } else {
                        "Every device name is in use"
                    });
                if add.clicked()
                    && let Some(id) = free
                {
                    self.add_device(&DeviceLayout::new(id));
                }
                ui.separator();
                let green = style::GREEN;
                let amber = style::AMBER;
                let (color, text) = match (agreement, self.converged_after) {
                    (Ok(a), Some(after)) if a.all() => (
                        green,
                        format!("{}, {:.2} s after the last intent", a.summary(), after.as_secs_f64()),
                    ),
                    (Ok(a), _) if a.all() => (green, a.summary()),
                    (Ok(a), _) => (amber, a.summary()),
                    (Err(why), _) => (amber, why.clone()),
                };
                ui.label(egui::RichText::new(text).color(color).strong())
                    .on_hover_text("Convergence: a device agrees when it is connected, has nothing in flight, and shows the server's value and knows its revision for every key. An offline or reconnecting device never agrees: it cannot know what it missed");
            });
        });
    }

    /// The central panel: the broadcast bar, the recipes and the device panes. What the
    /// user asked of the devices, and of the recipes, for after the frame.
    fn devices_ui(
        &mut self,
        ui: &mut egui::Ui,
        views: &[DeviceView],
    ) -> (Vec<(String, PaneAction)>, Vec<recipes::RecipeAction>) {
        let mut actions: Vec<(String, PaneAction)> = Vec::new();
        let mut recipe_actions = Vec::new();
        egui::CentralPanel::default().show(ui, |ui| {
            actions.extend(self.broadcast.ui(ui, &self.panes));
            recipe_actions = self
                .recipes
                .ui(ui, &self.panes, views, self.live.controls());
            ui.separator();
            // Scroll bars always shown: on a small screen the panes go on below the fold,
            // and a floating bar that appears only on hover hides that.
            egui::ScrollArea::both()
                .scroll_bar_visibility(egui::scroll_area::ScrollBarVisibility::AlwaysVisible)
                .show(ui, |ui| {
                    let n = self.panes.len();
                    ui.columns(n, |cols| {
                        for (((pane, device), view), col) in self
                            .panes
                            .iter_mut()
                            .zip(&self.devices)
                            .zip(views)
                            .zip(cols.iter_mut())
                        {
                            let mut mine = Vec::new();
                            let clock = device.handle().clock();
                            pane.ui(col, view, clock, &mut self.sections, &mut mine);
                            actions.extend(mine.into_iter().map(|a| (pane.name.clone(), a)));
                        }
                    });
                });
        });
        (actions, recipe_actions)
    }

    /// Draws everything.
    pub fn ui_root(&mut self, ui: &mut egui::Ui) {
        style::install(ui.ctx());
        let had_events = self.take_news();
        let views = self.views();
        self.refresh_server(&views);
        let agreement = self.agreement_of(&views);
        let now = self.started.elapsed();
        self.note_agreement(&views, &agreement, now);
        let moment = recording::Moment {
            now,
            views: &views,
            layouts: self
                .panes
                .iter()
                .zip(&views)
                .map(|(p, v)| p.layout(v))
                .collect(),
            queued: self.panes.iter().map(queued).collect(),
            events: had_events,
            converged: agreement.as_ref().is_ok_and(Agreement::all),
        };
        self.recording.frame(&self.live, &moment);
        if self.mode == Mode::Live
            && let Some(recording::SaveAction::Play(name, text)) =
                self.recording.save_window(ui.ctx(), &self.live)
        {
            self.player.open(&name, &text);
            self.mode = Mode::Player;
        }
        self.top_bar(ui, &agreement, &moment);
        if self.mode == Mode::Player {
            egui::CentralPanel::default().show(ui, |ui| self.player.ui(ui));
            return;
        }
        let mut server_action = None;
        egui::Panel::right("server").min_size(280.0).show(ui, |ui| {
            server_action =
                server_panel::ui(ui, &self.live, self.server.as_ref(), &mut self.reject_key);
        });
        // A quarter of the window at most by default: on a 720 px screen the panes need
        // the room.
        let wire_height = (ui.available_height() * 0.25).clamp(140.0, 260.0);
        egui::Panel::bottom("wire")
            .resizable(true)
            .default_size(wire_height)
            .show(ui, |ui| {
                let lanes: Vec<(String, String)> = self
                    .panes
                    .iter()
                    .map(|p| (p.name.clone(), p.title().to_string()))
                    .collect();
                self.wire.ui(ui, &lanes);
            });
        let (mut actions, recipe_actions) = self.devices_ui(ui, &views);
        self.sections.end_frame(ui.ctx());
        // Commands go out after the frame; a changed link is listed again at once.
        let acted = !actions.is_empty() || !recipe_actions.is_empty();
        for action in recipe_actions {
            match action {
                recipes::RecipeAction::Pane(device, action) => actions.push((device, action)),
                recipes::RecipeAction::Hold(device, dir, on) => {
                    // As a click on the hold box: the box ticks, the command goes out.
                    if let Some(p) = self.panes.iter_mut().find(|p| p.name == device) {
                        let command = p.hold(dir, on);
                        actions.push((device, PaneAction::Link(command)));
                    }
                }
                recipes::RecipeAction::RejectNext(key) => {
                    self.reject_key = key.clone();
                    server_action = Some(server_panel::ServerAction::RejectNext(key));
                }
                recipes::RecipeAction::OpenLesson(i) => {
                    self.player.open_lesson(i);
                    self.mode = Mode::Player;
                }
            }
        }
        if let Some(action) = server_action {
            self.server_action(action);
        }
        for (device, action) in actions {
            self.act(&device, action);
        }
        self.refresh_queues(ui.ctx(), acted);
    }

    /// Does a server fault the server panel (or a recipe) asked for, recording it first.
    pub fn server_action(&mut self, action: server_panel::ServerAction) {
        let now = self.started.elapsed();
        match action {
            server_panel::ServerAction::Restart => {
                if self.recording.server(now, Stmt::ServerRestart).is_ok() {
                    self.live.restart_server();
                }
            }
            server_panel::ServerAction::RotateToken => {
                if self.recording.server(now, Stmt::ServerRotateToken).is_ok() {
                    let devices = self
                        .panes
                        .iter()
                        .zip(&self.devices)
                        .map(|(p, d)| (d.handle().clone(), p.device_settings().auth_delay))
                        .collect();
                    self.live.rotate_token(devices);
                }
            }
            server_panel::ServerAction::BlockWebsocket(on) => {
                if self
                    .recording
                    .server(now, Stmt::ServerBlockWebsocket(on))
                    .is_ok()
                {
                    self.live.block_websocket(on);
                }
            }
            server_panel::ServerAction::RejectNext(key) => {
                if self
                    .recording
                    .server(now, Stmt::ServerReject(key.clone()))
                    .is_ok()
                {
                    self.live.reject_next(key);
                }
            }
        }
    }

    /// Does what a pane (or the broadcast bar, or a recipe) asked of a device.
    pub fn act(&mut self, device: &str, action: PaneAction) {
        let Some(i) = self.panes.iter().position(|p| p.name == device) else {
            return;
        };
        let now = self.started.elapsed();
        if self
            .recording
            .action(now, device, &action, queued(&self.panes[i]))
            .is_err()
        {
            // Said in the top bar; the recording stays true to what happened, and the
            // pane goes back to what the device has.
            self.panes[i].refused(action);
            return;
        }
        if let PaneAction::Settings(settings) = action {
            self.panes[i].set_settings(settings);
        }
        if self.devices[i].act(&action) {
            return;
        }
        match action {
            PaneAction::Link(command) => self.live.link(device, command),
            PaneAction::Strategy(strategy) => {
                // The device comes back as the user left it: offline stays offline.
                let handle = self.devices[i].handle().clone();
                let online = handle.view().connection
                    != sync_core::engine::connection::ConnectionState::Offline;
                self.live.restart_device(handle, device, strategy, online);
            }
            PaneAction::Move(step) => {
                let j = i.saturating_add_signed(step).min(self.panes.len() - 1);
                self.panes.swap(i, j);
                self.devices.swap(i, j);
            }
            PaneAction::Remove => {
                // Not the last device, and not one whose strategy restart is under way
                // (its new handle would outlive the removal).
                if self.panes.len() > 1 && !self.live.is_restarting(device) {
                    self.panes.remove(i);
                    let gone = self.devices.remove(i);
                    self.live.remove_device(gone.handle().clone(), device);
                }
            }
            PaneAction::Tap(_)
            | PaneAction::Set(..)
            | PaneAction::Comment(..)
            | PaneAction::EditComment(..)
            | PaneAction::DeleteComment(..)
            | PaneAction::Online(_)
            | PaneAction::Retry
            | PaneAction::Settings(_) => {}
        }
    }

    /// Lists the held queues: while a hold is on, every [`QUEUE_REFRESH`] (and right
    /// after an action), so a frame that arrives shows up; otherwise not at all.
    fn refresh_queues(&mut self, ctx: &egui::Context, now: bool) {
        for (device, frames) in self.live.poll_queues() {
            if let Some(p) = self.panes.iter_mut().find(|p| p.name == device) {
                p.queue = frames;
                p.queue_listings += 1;
            }
        }
        let holding: Vec<String> = self
            .panes
            .iter_mut()
            .filter_map(|p| {
                if !p.holding() {
                    p.queue = Default::default();
                }
                p.holding().then(|| p.name.clone())
            })
            .collect();
        if holding.is_empty() {
            return;
        }
        let due = self
            .queue_listed
            .is_none_or(|t| t.elapsed() >= QUEUE_REFRESH);
        if now || due {
            self.queue_listed = Some(Instant::now());
            for device in &holding {
                self.live.request_queue(device);
            }
        }
        ctx.request_repaint_after(QUEUE_REFRESH);
    }

    /// `Ok` when every device agrees with the server (see [`convergence`]); else the top
    /// bar's text, which says how many agree and why the first one that does not.
    pub fn agreement(&self) -> Result<(), String> {
        match self.agreement_of(&self.views())? {
            a if a.all() => Ok(()),
            a => Err(a.summary()),
        }
    }

    /// Every device's view, taken once per frame (each is a copy of the device's state).
    pub fn views(&self) -> Vec<DeviceView> {
        self.devices.iter().map(LiveDevice::view).collect()
    }

    /// Every device judged against the server's state; `Err` until that state arrived.
    fn agreement_of(&self, views: &[DeviceView]) -> Result<Agreement, String> {
        let Some(server) = &self.server else {
            return Err(match self.live.controls() {
                // Nothing can read it: say so, rather than wait for ever.
                Err(_) => {
                    "agreement unknown: reading the server's state needs its admin token".into()
                }
                Ok(()) => "waiting for the server's state".into(),
            });
        };
        let names = self.panes.iter().map(|p| p.title());
        Ok(convergence::judge(&server.data, names.zip(views)))
    }

    /// Asks the server for its state when a device's counters or connection moved (so an
    /// idle app asks nothing), and takes the answer when it comes.
    fn refresh_server(&mut self, views: &[DeviceView]) {
        use std::hash::{Hash, Hasher};
        if let Some(i) = self.live.poll_inspection() {
            self.server = Some(i);
        }
        let mut hasher = std::hash::DefaultHasher::new();
        for v in views {
            let connected =
                v.connection == sync_core::engine::connection::ConnectionState::Connected;
            // Rollbacks too: a rejection changes no other counter, and the server panel
            // must see the forced rejection spent.
            (
                v.counters.intents,
                v.counters.requests,
                v.counters.rollbacks,
                v.cursor,
                v.keys.len(),
                connected,
            )
                .hash(&mut hasher);
        }
        let activity = hasher.finish();
        if activity != self.seen {
            self.seen = activity;
            self.live.request_inspection();
        }
    }
}

/// How many frames a pane's held links list (up, down).
fn queued(pane: &Pane) -> Pair<usize> {
    Pair {
        up: pane.queue.up.len(),
        down: pane.queue.down.len(),
    }
}

impl eframe::App for SyncLab {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.ui_root(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        storage.set_string(layout::STORAGE_KEY, self.layout().to_json());
    }
}
