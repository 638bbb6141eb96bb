//! The desktop app: a pane per device, side by side, and the server panel. The whole UI
//! is drawn by [`SyncLab::ui_root`], so tests drive it without eframe.
//!
//! | module | what |
//! |---|---|
//! | [`live`] | the embedded server and the devices' client runtimes |
//! | [`pane`] | one device pane |
//! | [`server_panel`] | the server's authoritative table and fault controls |

pub mod live;
pub mod pane;
pub mod server_panel;

use std::time::{Duration, Instant};

use eframe::egui;
use mock_server::net::Inspection;
use sync_core::engine::Strategy;

use live::Live;
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
    panes: Vec<Pane>,
    server: Option<Inspection>,
    /// The sum of the devices' counters when the server was last asked for its state.
    seen: u64,
    reject_key: String,
    queue_listed: Option<Instant>,
}

impl SyncLab {
    /// The app with `devices` devices.
    pub fn new(live: Live, devices: usize) -> SyncLab {
        let panes = NAMES
            .iter()
            .take(devices.clamp(1, NAMES.len()))
            .map(|name| Pane::new(name, live.device(name, Strategy::SyncWithPush)))
            .collect();
        SyncLab {
            live,
            panes,
            server: None,
            seen: u64::MAX,
            reject_key: "like/post-1".into(),
            queue_listed: None,
        }
    }

    /// The panes (for tests).
    pub fn panes(&self) -> &[Pane] {
        &self.panes
    }

    /// The server's state as last seen.
    pub fn server(&self) -> Option<&Inspection> {
        self.server.as_ref()
    }

    /// Draws everything.
    pub fn ui_root(&mut self, ui: &mut egui::Ui) {
        for pane in &mut self.panes {
            pane.drain_events();
        }
        self.refresh_server();
        egui::Panel::top("top").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("Sync Lab");
                ui.label(format!(
                    "{} devices · server {}",
                    self.panes.len(),
                    self.live.url()
                ));
                if self.panes.len() < NAMES.len() && ui.button("+ device").clicked() {
                    let name = NAMES[self.panes.len()];
                    let handle = self.live.device(name, Strategy::SyncWithPush);
                    self.panes.push(Pane::new(name, handle));
                }
            });
        });
        egui::Panel::right("server").min_size(280.0).show(ui, |ui| {
            server_panel::ui(ui, &self.live, self.server.as_ref(), &mut self.reject_key);
        });
        let mut actions: Vec<(String, PaneAction)> = Vec::new();
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::both().show(ui, |ui| {
                let n = self.panes.len();
                ui.columns(n, |cols| {
                    for (pane, col) in self.panes.iter_mut().zip(cols.iter_mut()) {
                        let mut mine = Vec::new();
                        pane.ui(col, &mut mine);
                        actions.extend(mine.into_iter().map(|a| (pane.name.clone(), a)));
                    }
                });
            });
        });
        // Commands go out after the frame; a changed link is listed again at once.
        let acted = !actions.is_empty();
        for (device, PaneAction::Link(command)) in actions {
            self.live.link(&device, command);
        }
        self.refresh_queues(ui.ctx(), acted);
    }

    /// Lists the held queues: while a hold is on, every [`QUEUE_REFRESH`] (and right
    /// after an action), so a frame that arrives shows up; otherwise not at all.
    fn refresh_queues(&mut self, ctx: &egui::Context, now: bool) {
        for (device, frames) in self.live.poll_queues() {
            if let Some(p) = self.panes.iter_mut().find(|p| p.name == device) {
                p.queue = frames;
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

    /// Asks the server for its state when a device's counters moved (so an idle app asks
    /// nothing), and takes the answer when it comes.
    fn refresh_server(&mut self) {
        if let Some(i) = self.live.poll_inspection() {
            self.server = Some(i);
        }
        let activity: u64 = self
            .panes
            .iter()
            .map(|p| {
                let v = p.handle.view();
                v.counters.intents + v.counters.requests + v.cursor + v.keys.len() as u64
            })
            .sum();
        if activity != self.seen {
            self.seen = activity;
            self.live.request_inspection();
        }
    }
}

impl eframe::App for SyncLab {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.ui_root(ui);
    }
}
