//! The live view's record button: a session written as a scenario while it happens
//! ([`crate::record`]), then saved (a path field, or the desktop's own file dialog) and
//! opened in the player.
//!
//! Starting and stopping each read the server's state first (the values a recording
//! starts from, the values it expects at the end), so both pass through a short
//! "reading the server" step; everything else is synchronous.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Duration;

use eframe::egui::{self, RichText};
use mock_server::link::Pair;
use mock_server::net::Inspection;
use mock_server::scenario::ast::Stmt;
use mock_server::scenario::write;
use sync_core::engine::DeviceView;

use super::layout::DeviceLayout;
use super::live::Live;
use super::pane::PaneAction;
use super::style;
use crate::record::{Quiet, Recorder, Start, device_quiet};

/// The world this frame, as the recorder needs it.
pub struct Moment<'a> {
    /// Time since the live view's time 0.
    pub now: Duration,
    /// Every device's state, left to right.
    pub views: &'a [DeviceView],
    /// Every device's pane settings (id, strategy, links, holds), in the same order.
    pub layouts: Vec<DeviceLayout>,
    /// Frames waiting on each device's held links (up, down).
    pub queued: Vec<Pair<usize>>,
    /// A device had an event this frame.
    pub events: bool,
    /// Every device agrees with the server.
    pub converged: bool,
}

/// The recorder's state in the live view.
#[derive(Default)]
pub struct Recording {
    state: State,
    quiet: Quiet,
    /// The settle window for the links as they are now.
    window: Duration,
    /// What the recorder last said, in its colour.
    notice: Option<(String, egui::Color32)>,
}

type Answer = Receiver<Result<Inspection, String>>;

#[derive(Default)]
enum State {
    #[default]
    Idle,
    /// Waiting for the server's state to start from.
    Starting(Answer),
    On(Recorder),
    /// Waiting for the server's state to write the last expectations.
    Stopping(Box<Stopping>),
    Saving(Save),
}

struct Stopping {
    recorder: Recorder,
    at: Duration,
    quiet: bool,
    views: Vec<DeviceView>,
    /// Frames on each held link (`None`: not held).
    queued: Vec<Pair<Option<usize>>>,
    converged: bool,
    answer: Answer,
}

/// A finished recording, waiting to be saved.
struct Save {
    text: String,
    statements: usize,
    path: String,
    chooser: Option<Receiver<Option<PathBuf>>>,
    saved: Option<PathBuf>,
}

/// What the save window asks of the app.
pub enum SaveAction {
    /// Open the recording in the player: `(name, text)`.
    Play(String, String),
}

impl Recording {
    /// Whether a session is being recorded (or is about to be).
    pub fn is_on(&self) -> bool {
        matches!(self.state, State::Starting(_) | State::On(_))
    }

    /// Whether a finished recording waits in the save window.
    pub fn is_saving(&self) -> bool {
        matches!(self.state, State::Saving(_))
    }

    /// Takes this frame's world: whether it is quiet, and the server's answers a start or
    /// a stop waits for.
    pub fn frame(&mut self, live: &Live, m: &Moment<'_>) {
        let busy = m.events || !m.views.iter().all(device_quiet);
        self.quiet.observe(m.now, busy);
        self.window = Quiet::window(m.layouts.iter().map(|l| l.links));
        match std::mem::take(&mut self.state) {
            State::Starting(answer) => {
                let server = match answer.try_recv() {
                    Ok(Ok(inspection)) => Ok(inspection.data),
                    Ok(Err(e)) => Err(format!("the server's state cannot be read: {e}")),
                    Err(TryRecvError::Disconnected) => {
                        Err("the server's state never came".to_string())
                    }
                    Err(TryRecvError::Empty) => {
                        self.state = State::Starting(answer);
                        return;
                    }
                };
                let starts: Vec<Start<'_>> = m
                    .layouts
                    .iter()
                    .zip(m.views)
                    .zip(&m.queued)
                    .map(|((layout, view), queued)| Start {
                        layout: layout.clone(),
                        view,
                        queued: *queued,
                    })
                    .collect();
                let started = server.and_then(|data| {
                    Recorder::start(m.now, &starts, &data, "Recorded live session")
                });
                match started {
                    Ok(rec) => {
                        self.notice = None;
                        self.state = State::On(rec);
                    }
                    Err(why) => self.notice = Some((format!("Not recording: {why}"), style::RED)),
                }
            }
            State::Stopping(stop) => {
                let server = match stop.answer.try_recv() {
                    Ok(Ok(inspection)) => Some(inspection.data),
                    Ok(Err(e)) => {
                        tracing::warn!("the recording ends without the server's values: {e}");
                        None
                    }
                    Err(TryRecvError::Disconnected) => None,
                    Err(TryRecvError::Empty) => {
                        self.state = State::Stopping(stop);
                        return;
                    }
                };
                let Stopping {
                    recorder,
                    at,
                    quiet,
                    views,
                    queued,
                    converged,
                    ..
                } = *stop;
                let scenario =
                    recorder.stop(at, quiet, &views, server.as_ref(), &queued, converged);
                // Saved at once where the desktop offers a file dialog; the path field
                // otherwise.
                let path = free_path(&live.data().join("recordings"), "session");
                self.state = State::Saving(Save {
                    statements: scenario.steps.len(),
                    text: write(&scenario),
                    chooser: Some(live.choose_save_path(&path)),
                    path: path.display().to_string(),
                    saved: None,
                });
            }
            other => self.state = other,
        }
    }

    /// Whether the world has been quiet long enough, at `now`, for a replay to `settle`
    /// here.
    pub fn settled(&self, now: Duration) -> bool {
        self.quiet.settled(now, self.window)
    }

    /// Records what a pane asked, before the app does it. `Err` (also kept as the notice):
    /// the recording cannot say it, and the app should not do it.
    pub fn action(
        &mut self,
        now: Duration,
        device: &str,
        action: &PaneAction,
        queued: Pair<usize>,
    ) -> Result<(), String> {
        let quiet = self.settled(now);
        let Some(rec) = self.recorder()? else {
            return Ok(());
        };
        rec.action(now, quiet, device, action, queued)
            .inspect_err(|why| {
                self.notice = Some((format!("Not done while recording: {why}"), style::RED));
            })
    }

    /// The recorder while recording (`None` when not recording); `Err` (also the notice)
    /// while it starts or stops: an action done then would be in the world and not in the
    /// file.
    fn recorder(&mut self) -> Result<Option<&mut Recorder>, String> {
        match &mut self.state {
            State::On(rec) => Ok(Some(rec)),
            State::Starting(_) | State::Stopping(_) => {
                let why = "the recording is starting or stopping: a moment".to_string();
                self.notice = Some((format!("Not done: {why}"), style::RED));
                Err(why)
            }
            State::Idle | State::Saving(_) => Ok(None),
        }
    }

    /// Records a server fault, before the app does it; `Err` (also the notice) while the
    /// recording is starting or stopping, when the app should not do it.
    pub fn server(&mut self, now: Duration, stmt: Stmt) -> Result<(), String> {
        let quiet = self.settled(now);
        if let Some(rec) = self.recorder()? {
            rec.server(now, quiet, stmt);
        }
        Ok(())
    }

    /// The top bar's record / stop button and what the recorder says.
    pub fn top_bar(&mut self, ui: &mut egui::Ui, live: &Live, m: &Moment<'_>) {
        match &self.state {
            State::Idle | State::Saving(_) => {
                let idle = matches!(self.state, State::Idle);
                let button = ui
                    .add_enabled(
                        idle,
                        egui::Button::new(RichText::new("record").color(style::RED)),
                    )
                    .on_hover_text(
                        "Record this session as a scenario: the devices as they are now, then \
                         every action you take. Stop saves it; it replays in the player and \
                         with `app run`.",
                    );
                if button.clicked() {
                    // The setup's `server set` lines need the server's values.
                    match live.inspect_once() {
                        Some(answer) => {
                            self.notice = None;
                            self.state = State::Starting(answer);
                        }
                        None => {
                            let why = live.controls().err().unwrap_or("no server state");
                            self.notice = Some((
                                format!(
                                    "Not recording: the server's values cannot be read ({why})"
                                ),
                                style::RED,
                            ));
                        }
                    }
                }
            }
            State::Starting(_) => {
                ui.label("starting to record: reading the server");
            }
            State::On(rec) => {
                let secs = rec.length(m.now).as_secs();
                let stop = ui
                    .button(RichText::new(format!(
                        "stop recording ({}:{:02}, {} statements)",
                        secs / 60,
                        secs % 60,
                        rec.statements()
                    ))
                    .color(style::RED))
                    .on_hover_text("Stop: the recording gets an expectation for every value each device shows and the server holds, then you save it");
                if stop.clicked()
                    && let Some(answer) = live.inspect_once()
                    && let State::On(recorder) = std::mem::take(&mut self.state)
                {
                    self.state = State::Stopping(Box::new(Stopping {
                        recorder,
                        at: m.now,
                        quiet: self.settled(m.now),
                        views: m.views.to_vec(),
                        queued: m
                            .layouts
                            .iter()
                            .zip(&m.queued)
                            .map(|(l, q)| Pair {
                                up: l.held.up.then_some(q.up),
                                down: l.held.down.then_some(q.down),
                            })
                            .collect(),
                        converged: m.converged,
                        answer,
                    }));
                }
                // The length ticks while recording.
                ui.ctx().request_repaint_after(Duration::from_millis(500));
            }
            State::Stopping(_) => {
                ui.label("stopping: reading the server");
            }
        }
        if let Some((text, color)) = &self.notice {
            ui.label(RichText::new(text).color(*color));
        }
    }

    /// The save window of a finished recording: a path field, the desktop's dialog,
    /// save, open in the player, discard.
    pub fn save_window(&mut self, ctx: &egui::Context, live: &Live) -> Option<SaveAction> {
        let State::Saving(save) = &mut self.state else {
            return None;
        };
        if let Some(chooser) = &save.chooser
            && let Ok(chosen) = chooser.try_recv()
        {
            save.chooser = None;
            match chosen {
                Some(path) => {
                    save.path = path.display().to_string();
                    self.notice = Some(save.write());
                }
                None => {
                    self.notice = Some((
                        "No file chosen (or no file dialog on this desktop): save it to the path below".into(),
                        style::AMBER,
                    ));
                }
            }
        }
        let mut action = None;
        let mut close = false;
        egui::Window::new("Save the recording")
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
            .show(ctx, |ui| {
                ui.label(format!("{} statements, ready to save.", save.statements));
                ui.horizontal(|ui| {
                    let label = ui.label("file");
                    ui.add(
                        egui::TextEdit::singleline(&mut save.path)
                            .desired_width(420.0)
                            .font(egui::TextStyle::Monospace),
                    )
                    .labelled_by(label.id);
                    let choose =
                        ui.add_enabled(save.chooser.is_none(), egui::Button::new("choose…"));
                    if choose
                        .on_hover_text("The desktop's own file dialog, where it offers one")
                        .clicked()
                    {
                        save.chooser = Some(live.choose_save_path(Path::new(&save.path)));
                    }
                });
                ui.horizontal(|ui| {
                    if ui.button("save").clicked() {
                        self.notice = Some(save.write());
                    }
                    if ui.button("open in the player").clicked() {
                        let name = save
                            .saved
                            .as_ref()
                            .map_or_else(|| "recording.scn".into(), |p| p.display().to_string());
                        action = Some(SaveAction::Play(name, save.text.clone()));
                        // Saved, it is done with; unsaved, it waits for the user's return.
                        close = save.saved.is_some();
                    }
                    let done = if save.saved.is_some() {
                        "close"
                    } else {
                        "discard"
                    };
                    if ui.button(done).clicked() {
                        close = true;
                    }
                });
                if let Some((text, color)) = &self.notice {
                    ui.label(RichText::new(text).color(*color));
                }
            });
        if close {
            self.state = State::Idle;
        }
        action
    }
}

impl Save {
    /// Writes the recording to the path in the field; what to say about it.
    fn write(&mut self) -> (String, egui::Color32) {
        let path = PathBuf::from(self.path.trim());
        match write_file(&path, &self.text) {
            Ok(()) => {
                let said = format!("saved {}", path.display());
                self.saved = Some(path);
                (said, style::GREEN)
            }
            Err(e) => (e, style::RED),
        }
    }
}

/// `DIR/STEM-N.scn` for the first N not taken.
pub fn free_path(dir: &Path, stem: &str) -> PathBuf {
    (1..)
        .map(|n| dir.join(format!("{stem}-{n}.scn")))
        .find(|p| !p.exists())
        .unwrap_or_else(|| dir.join(format!("{stem}.scn")))
}

/// Writes the file, making its directory; the error names the file.
pub fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if path.as_os_str().is_empty() {
        return Err("Not saved: give the file a path".into());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("Not saved: cannot make {}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("Not saved: {}: {e}", path.display()))
}
