//! One-click recipes: the edge cases the lessons teach, made on the live devices through
//! the same controls a person would use — a hold box ticks, a like is tapped, a held
//! frame is delivered or dropped — one step at a time, slowly enough to watch, with what
//! each step does written above the panes. Each links to its lesson in the player.
//!
//! A recipe acts on two chosen devices: the one that writes, and the one that watches
//! (some recipes use only the first). Steps that wait (for a frame to be held, for a
//! device to settle) give up after `WAIT_LIMIT` and say what did not happen.

use std::time::{Duration, Instant};

use eframe::egui::{self, RichText};
use mock_server::link::Direction;
use mock_server::link::Fault;
use serde_json::{Value, json};
use sync_core::engine::DeviceView;
use sync_core::engine::connection::ConnectionState;
use sync_core::protocol::Key;

use super::pane::{Pane, PaneAction};
use super::style;

/// Between two steps: long enough to see each one happen.
const PACE: Duration = Duration::from_millis(700);
/// How long a step may wait for what it needs.
const WAIT_LIMIT: Duration = Duration::from_secs(15);

/// Which chosen device a step is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// The device that writes.
    Writer,
    /// The device that watches.
    Watcher,
}

/// One step of a recipe.
#[derive(Debug, Clone)]
enum Step {
    /// Tick or untick a hold box.
    Hold(Who, Direction, bool),
    /// Tap a like or switch.
    Tap(Who, Key),
    /// Set a value (the volume slider).
    Set(Who, Key, Value),
    /// Deliver a held frame (picked by what it is, so a heartbeat's pong held beside it
    /// never gets in the way).
    Release(Who, Direction, Pick),
    /// Drop a held frame, and the connection with it.
    Drop(Who, Direction, Pick),
    /// The server panel's "reject next write".
    RejectNext(Key),
    /// Wait until N frames of a kind ("push", "ack") are held on that link.
    WaitHeld(Who, Direction, &'static str, usize),
    /// Wait until the device is connected with nothing unconfirmed.
    WaitSettled(Who),
}

/// Which held frame: the oldest or the newest of a kind.
#[derive(Debug, Clone, Copy)]
enum Pick {
    First(&'static str),
    Last(&'static str),
}

impl Pick {
    /// The frame's place in the queue as listed (1 = oldest), if one of its kind is held.
    fn position(self, held: &[String]) -> Option<usize> {
        let of = |kind: &str, f: &String| f.starts_with(kind);
        match self {
            Pick::First(kind) => held.iter().position(|f| of(kind, f)),
            Pick::Last(kind) => held.iter().rposition(|f| of(kind, f)),
        }
        .map(|i| i + 1)
    }
}

/// A recipe: its name, what it shows, its lesson, and its steps with what each does.
struct Recipe {
    name: &'static str,
    shows: &'static str,
    /// Index into the player's lessons.
    lesson: usize,
    steps: Vec<(Step, &'static str)>,
}

fn like() -> Key {
    Key::Like("post-1".into())
}

/// The recipes, in the order they are offered.
fn recipes() -> Vec<Recipe> {
    use Direction::Down;
    use Pick::{First, Last};
    use Step::*;
    use Who::{Watcher, Writer};
    vec![
        Recipe {
            name: "make a stale push",
            shows: "Two pushes reach the watcher out of order: the older one is ignored as stale",
            lesson: 4,
            steps: vec![
                (Hold(Watcher, Down, true), "hold the watcher's downlink"),
                (
                    Tap(Writer, like()),
                    "the writer taps like on post-1 (revision n)",
                ),
                (WaitSettled(Writer), "wait for the writer's answer"),
                (Tap(Writer, like()), "and taps it again (revision n + 1)"),
                (WaitSettled(Writer), "wait for the writer's answer"),
                (
                    WaitHeld(Watcher, Down, "push", 2),
                    "both pushes wait for the watcher",
                ),
                (
                    Release(Watcher, Down, Last("push")),
                    "deliver the newer push first",
                ),
                (
                    Release(Watcher, Down, First("push")),
                    "deliver the older push, late: stale",
                ),
                (Hold(Watcher, Down, false), "release the hold"),
            ],
        },
        Recipe {
            name: "lose an ack",
            shows: "The ack is lost with the connection: the device resends unchanged, and the server applies it once",
            lesson: 12,
            steps: vec![
                (Hold(Writer, Down, true), "hold the writer's downlink"),
                (
                    Set(Writer, Key::Volume, json!(80)),
                    "the writer sets the volume to 80",
                ),
                (
                    WaitHeld(Writer, Down, "ack", 1),
                    "the server applied it; its ack waits",
                ),
                (
                    Drop(Writer, Down, First("ack")),
                    "drop the ack, and the connection with it",
                ),
                (Hold(Writer, Down, false), "release the hold"),
                (
                    WaitSettled(Writer),
                    "the writer reconnects and resends: a duplicate, acked",
                ),
            ],
        },
        Recipe {
            name: "own echo as ack",
            shows: "The echo of an older request arrives before its ack: it is only an acknowledgement, the newer intent stays",
            lesson: 5,
            steps: vec![
                (Hold(Writer, Down, true), "hold the writer's downlink"),
                (
                    Tap(Writer, like()),
                    "the writer taps like on post-1 (request 1)",
                ),
                (
                    Tap(Writer, like()),
                    "and taps it again: a newer intent, waiting",
                ),
                (
                    WaitHeld(Writer, Down, "push", 1),
                    "the ack, then the own echo, wait",
                ),
                (
                    Release(Writer, Down, First("push")),
                    "deliver the echo first: taken as an ack",
                ),
                (
                    Release(Writer, Down, First("ack")),
                    "deliver the ack: a follow-up carries the newer intent",
                ),
                (Hold(Writer, Down, false), "release the hold"),
                (WaitSettled(Writer), "the follow-up is answered"),
            ],
        },
        Recipe {
            name: "reject and roll back",
            shows: "The server refuses a like: the screen goes back to the server's value",
            lesson: 8,
            steps: vec![
                (
                    RejectNext(like()),
                    "the server will reject the next write to like/post-1",
                ),
                (
                    Tap(Writer, like()),
                    "the writer taps like on post-1 (shown at once)",
                ),
                (WaitSettled(Writer), "rejected: rolled back"),
            ],
        },
    ]
}

/// What a recipe step asks of the app (which owns the devices and the server).
pub enum RecipeAction {
    /// What a click in a device's pane would ask.
    Pane(String, PaneAction),
    /// Tick a pane's hold box (the pane then sends the link command, as after a click).
    Hold(String, Direction, bool),
    /// Reject the next write to a key.
    RejectNext(Key),
    /// Open a lesson in the player.
    OpenLesson(usize),
}

/// The recipe bar's state.
pub struct Recipes {
    chosen: usize,
    writer: String,
    watcher: String,
    running: Option<Running>,
    /// How the last run ended.
    ended: Option<Result<&'static str, String>>,
}

struct Running {
    recipe: usize,
    step: usize,
    /// When the current step began (waits count from here; actions wait for [`PACE`]).
    since: Instant,
    writer: String,
    watcher: String,
    /// After a tap or set: the device and the intent count it reaches once it took the
    /// intent (it runs on another thread), so a wait for it to settle cannot pass before.
    intent: Option<(String, u64)>,
}

impl Default for Recipes {
    fn default() -> Self {
        Recipes {
            chosen: 0,
            writer: "phone".into(),
            watcher: "laptop".into(),
            running: None,
            ended: None,
        }
    }
}

impl Recipes {
    /// Draws the bar, and runs the current step; what the app must do is returned.
    /// `controls` is `Err(why)` while the fault controls the recipes use are off.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        panes: &[Pane],
        views: &[DeviceView],
        controls: Result<(), &'static str>,
    ) -> Vec<RecipeAction> {
        let all = recipes();
        let mut actions = Vec::new();
        // A device that went away leaves the choice to the first ones.
        let names: Vec<&str> = panes.iter().map(|p| p.name.as_str()).collect();
        if !names.contains(&self.writer.as_str()) {
            self.writer = names.first().unwrap_or(&"").to_string();
        }
        if !names.contains(&self.watcher.as_str()) || self.watcher == self.writer {
            self.watcher = names
                .iter()
                .find(|n| **n != self.writer)
                .unwrap_or(&"")
                .to_string();
        }
        ui.horizontal_wrapped(|ui| {
            let label = ui.label(RichText::new("recipe").strong());
            egui::ComboBox::from_id_salt("recipe")
                .selected_text(all[self.chosen].name)
                .show_ui(ui, |ui| {
                    for (i, r) in all.iter().enumerate() {
                        ui.selectable_value(&mut self.chosen, i, r.name)
                            .on_hover_text(r.shows);
                    }
                })
                .response
                .labelled_by(label.id)
                .on_hover_text(all[self.chosen].shows);
            for (what, choice) in [("writer", &mut self.writer), ("watcher", &mut self.watcher)] {
                ui.label(what);
                let combo = egui::ComboBox::from_id_salt(format!("recipe-{what}"))
                    .selected_text(choice.as_str())
                    .show_ui(ui, |ui| {
                        for p in panes {
                            ui.selectable_value(choice, p.name.clone(), p.title());
                        }
                    })
                    .response;
                let label = format!("recipe {what}");
                combo.widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, &label));
            }
            let two = panes.len() >= 2 && self.writer != self.watcher;
            if self.running.is_some() {
                if ui.button("stop").clicked() {
                    self.running = None;
                    self.ended = Some(Err("stopped".into()));
                }
            } else {
                let why = controls
                    .err()
                    .or((!two).then_some("A recipe needs two different devices"));
                let mut run = ui.add_enabled(why.is_none(), egui::Button::new("run recipe"));
                if let Some(why) = why {
                    run = run.on_disabled_hover_text(why);
                }
                if run.clicked() {
                    self.ended = None;
                    self.running = Some(Running {
                        recipe: self.chosen,
                        step: 0,
                        since: Instant::now(),
                        writer: self.writer.clone(),
                        watcher: self.watcher.clone(),
                        intent: None,
                    });
                }
            }
            let lesson = all[self.chosen].lesson;
            let open = ui
                .button(format!("lesson {:02}", lesson + 1))
                .on_hover_text("Open the lesson that teaches it, in the scenario player");
            if open.clicked() {
                actions.push(RecipeAction::OpenLesson(lesson));
            }
        });
        if let Some(run) = &self.running {
            let recipe = &all[run.recipe];
            let (_, what) = &recipe.steps[run.step];
            ui.label(
                RichText::new(format!(
                    "{}: step {} of {}: {what}",
                    recipe.name,
                    run.step + 1,
                    recipe.steps.len()
                ))
                .color(style::BLUE)
                .strong(),
            );
            ui.ctx().request_repaint_after(Duration::from_millis(50));
        } else if let Some(ended) = &self.ended {
            let (color, text) = match ended {
                Ok(name) => (style::GREEN, format!("{name}: done")),
                Err(why) => (style::RED, why.clone()),
            };
            ui.label(RichText::new(text).color(color));
        }
        actions.extend(self.tick(&all, panes, views));
        actions
    }

    /// Runs the current step if it is due: an action after [`PACE`], a wait once what it
    /// waits for holds.
    fn tick(&mut self, all: &[Recipe], panes: &[Pane], views: &[DeviceView]) -> Vec<RecipeAction> {
        let Some(run) = &mut self.running else {
            return Vec::new();
        };
        let recipe = &all[run.recipe];
        let (step, what) = &recipe.steps[run.step];
        let device = |who: Who| match who {
            Who::Writer => run.writer.clone(),
            Who::Watcher => run.watcher.clone(),
        };
        let index = |who: Who| panes.iter().position(|p| p.name == device(who));
        let elapsed = run.since.elapsed();
        let held = |who: Who, dir: Direction| -> &[String] {
            index(who).map_or(&[], |i| panes[i].queue.of(dir))
        };
        let mut actions = Vec::new();
        let mut intent = None;
        let done = match step {
            Step::WaitHeld(who, dir, kind, n) => {
                held(*who, *dir)
                    .iter()
                    .filter(|f| f.starts_with(kind))
                    .count()
                    >= *n
            }
            Step::WaitSettled(who) => index(*who).is_some_and(|i| {
                let v = &views[i];
                let took = run
                    .intent
                    .as_ref()
                    .is_none_or(|(d, n)| *d != device(*who) || v.counters.intents >= *n);
                took && v.connection == ConnectionState::Connected && !v.has_pending()
            }),
            _ if elapsed < PACE => false,
            Step::Hold(who, dir, on) => {
                actions.push(RecipeAction::Hold(device(*who), *dir, *on));
                true
            }
            Step::Tap(who, key) | Step::Set(who, key, _) => {
                let Some(i) = index(*who) else {
                    return self.give_up(recipe.name, "the device is gone");
                };
                intent = Some((device(*who), views[i].counters.intents + 1));
                let action = match step {
                    Step::Set(_, _, value) => PaneAction::Set(key.clone(), value.clone()),
                    _ => PaneAction::Tap(key.clone()),
                };
                actions.push(RecipeAction::Pane(device(*who), action));
                true
            }
            Step::Release(who, dir, pick) | Step::Drop(who, dir, pick) => {
                let Some(n) = pick.position(held(*who, *dir)) else {
                    return self.give_up(recipe.name, "the frame to deliver is not held");
                };
                let command = match step {
                    Step::Drop(..) => Fault::Drop(*dir, n),
                    _ => Fault::Release(*dir, n),
                };
                actions.push(RecipeAction::Pane(device(*who), PaneAction::Link(command)));
                true
            }
            Step::RejectNext(key) => {
                actions.push(RecipeAction::RejectNext(key.clone()));
                true
            }
        };
        if intent.is_some() {
            run.intent = intent;
        }
        if done {
            run.step += 1;
            run.since = Instant::now();
            if run.step == recipe.steps.len() {
                self.running = None;
                self.ended = Some(Ok(recipe.name));
            }
        } else if elapsed > WAIT_LIMIT {
            let why = format!(
                "step {} ({what}) did not happen within {} s",
                run.step + 1,
                WAIT_LIMIT.as_secs()
            );
            return self.give_up(recipe.name, &why);
        }
        actions
    }

    /// Ends the run, saying why.
    fn give_up(&mut self, recipe: &str, why: &str) -> Vec<RecipeAction> {
        self.running = None;
        self.ended = Some(Err(format!("{recipe}: gave up: {why}")));
        Vec::new()
    }
}
