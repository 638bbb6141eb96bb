//! Random schedules: 20,000 seeded worlds per run. Random devices and strategies, link
//! latency, jitter and loss, random intents on random keys, holds and out-of-order
//! releases, dropped frames, offline spells, device and server restarts, forced
//! rejections, reconnect bounds and retries, comment edits and deletions; then everything is released, retried and
//! settled. Each device is checked against
//! the invariants its strategy owes (DESIGN.md; the table is in
//! [`mock_server::invariants`]) around every intent and after every simulator event.
//! Each seed's virtual time is capped: its waits add up to 20 s at most, and its final
//! settle fails after [`SETTLE_LIMIT`].
//!
//! Every action is recorded as a scenario line, so a failing seed (a broken invariant, a
//! world that does not settle, or a panic) prints a scenario file that reproduces the
//! run: save it and run `cargo run -p app -- run --seed N FILE`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use mock_server::invariants::{Checker, Intent};
use mock_server::link::Direction;
use mock_server::link::LinkConfig;
use mock_server::scenario::{Runner, Verdict, parse};
use mock_server::sim::{DeviceSpec, SETTLE_LIMIT, World};
use serde_json::json;
use sync_core::engine::Strategy;
use sync_core::engine::connection::ConnectionState;
use sync_core::protocol::Key;
use sync_core::protocol::model::comments_from_value;
use sync_core::rng::Rng;

const SEEDS: u64 = 20_000;
const ACTIONS: usize = 40;
const NAMES: [&str; 3] = ["phone", "laptop", "tablet"];
const BOOL_KEYS: [&str; 3] = ["like/a", "like/b", "settings/dark_mode"];

/// Why a seed failed: a broken invariant, a world that would not settle, a panic.
type Failure = Box<dyn std::error::Error>;

struct Recorder {
    rng: Rng,
    lines: Vec<String>,
    world: World,
    checker: Checker,
    names: Vec<&'static str>,
}

fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[rng.up_to(items.len() as u64 - 1) as usize]
}

impl Recorder {
    fn new(seed: u64) -> Recorder {
        let mut rng = Rng::new(seed);
        let n = 2 + rng.up_to(1) as usize;
        let names: Vec<&'static str> = NAMES[..n].to_vec();
        let mut lines = vec![
            format!("# Random schedule, seed {seed}."),
            "# Reproduce: cargo run -p app -- run --seed SEED THIS-FILE".into(),
            format!("scenario \"random schedule {seed}\""),
            format!("devices {}", names.join(" ")),
        ];
        let mut specs = Vec::new();
        let mut bounds = Vec::new();
        for name in &names {
            let strategy = *pick(
                &mut rng,
                &[
                    Strategy::SyncWithPush,
                    Strategy::SyncWithPush,
                    Strategy::Sync,
                    Strategy::Naive,
                ],
            );
            let latency = 10 + rng.up_to(190);
            let jitter = if rng.chance(0.5) { rng.up_to(60) } else { 0 };
            let loss = if rng.chance(0.3) { rng.up_to(10) } else { 0 };
            lines.push(format!("strategy {name} {strategy}"));
            lines.push(format!("latency {name} {latency}ms"));
            lines.push(format!("jitter {name} {jitter}ms"));
            lines.push(format!("loss {name} {loss}%"));
            let bound = rng.chance(0.3).then(|| 1 + rng.up_to(2) as u32);
            if let Some(n) = bound {
                lines.push(format!("reconnect attempts {name} {n}"));
            }
            bounds.push(bound);
            let link = LinkConfig {
                latency: Duration::from_millis(latency),
                jitter: Duration::from_millis(jitter),
                loss: loss as f64 / 100.0,
            };
            specs.push(DeviceSpec {
                name: name.to_string(),
                strategy,
                up: link,
                down: link,
            });
        }
        let mut world = World::new(seed, &specs);
        for (i, bound) in bounds.into_iter().enumerate() {
            world.set_reconnect_bound(i, bound);
        }
        world.settle().expect("the handshake settles");
        Recorder {
            rng,
            lines,
            world,
            checker: Checker::new(),
            names,
        }
    }

    /// Records and runs one random action, then checks the world.
    fn act(&mut self) -> Result<(), Failure> {
        let d = self.rng.up_to(self.names.len() as u64 - 1) as usize;
        let name = self.names[d];
        let dir = if self.rng.chance(0.5) {
            Direction::Up
        } else {
            Direction::Down
        };
        let dir_name = if dir == Direction::Up { "up" } else { "down" };
        let queued = self.world.queued(d, dir);
        // Each line is recorded before it runs, so a failing action ends the reproducer.
        let checker = &mut self.checker;
        let lines = &mut self.lines;
        let w = &mut self.world;
        match self.rng.up_to(99) {
            0..=24 => {
                let key = *pick(&mut self.rng, &BOOL_KEYS);
                lines.push(format!("{name} tap {key}"));
                let key = Key::parse(key).unwrap();
                checker.intent(w, d, &key, Intent::Tap)??;
            }
            25..=34 => {
                let v = self.rng.up_to(110) as i64 - 5;
                lines.push(format!("{name} set settings/volume {v}"));
                checker.intent(w, d, &Key::Volume, Intent::Set(json!(v)))??;
            }
            35 | 36 => {
                lines.push(format!("{name} comment p \"hi\""));
                let key = Key::parse("comments/p").unwrap();
                checker.intent(w, d, &key, Intent::Comment("hi"))??;
            }
            37 => {
                // Edit or delete the first comment the device shows (or one it does not).
                let key = Key::parse("comments/p").unwrap();
                let shown = comments_from_value(&w.devices()[d].engine.shown(&key));
                let id = shown.first().map_or("1".to_string(), |c| c.id.clone());
                if self.rng.chance(0.5) {
                    lines.push(format!("{name} edit comment p {id} \"edited\""));
                    w.edit_comment(d, &key, &id, "edited");
                } else {
                    lines.push(format!("{name} delete comment p {id}"));
                    w.delete_comment(d, &key, &id);
                }
            }
            38..=59 => {
                let ms = self.rng.up_to(500);
                lines.push(format!("wait {ms}ms"));
                let until = w.now() + Duration::from_millis(ms);
                while w.wait_step(until) {
                    checker.after_step(w)?;
                }
            }
            60..=63 => {
                lines.push(format!("hold {name} {dir_name}"));
                w.hold(d, Some(dir), true);
            }
            64..=68 => {
                lines.push(format!("unhold {name}"));
                w.hold(d, None, false);
            }
            69..=74 if queued > 0 => {
                let n = 1 + self.rng.up_to(queued as u64 - 1) as usize;
                lines.push(format!("release {name} {dir_name} {n}"));
                w.release(d, dir, n)?;
            }
            75..=77 if queued > 0 => {
                let n = 1 + self.rng.up_to(queued as u64 - 1) as usize;
                lines.push(format!("drop {name} {dir_name} {n}"));
                w.drop_frame(d, dir, n)?;
            }
            78..=83 => {
                let offline = self.rng.chance(0.5);
                lines.push(format!(
                    "{name} {}",
                    if offline { "offline" } else { "online" }
                ));
                w.set_offline(d, offline);
            }
            84..=87 => {
                lines.push(format!("{name} restart"));
                w.restart_device(d)?;
            }
            88..=91 => {
                let key = *pick(&mut self.rng, &["like/a", "settings/volume", "comments/p"]);
                lines.push(format!("server reject {key}"));
                w.reject_next(Key::parse(key).unwrap());
            }
            92..=93 => {
                lines.push("server restart".into());
                w.restart_server();
            }
            94..=96 => {
                let v = self.rng.up_to(100);
                lines.push(format!("server set settings/volume {v}"));
                w.server_set(&Key::Volume, json!(v))?;
            }
            97 => {
                lines.push(format!("{name} retry"));
                w.retry(d);
            }
            _ => {
                lines.push("wait 50ms".into());
                let until = w.now() + Duration::from_millis(50);
                while w.wait_step(until) {
                    checker.after_step(w)?;
                }
            }
        }
        Ok(checker.after_step(w)?)
    }

    /// Releases everything, settles, and checks what each device owes.
    fn finish(&mut self) -> Result<(), Failure> {
        for (d, name) in self.names.iter().enumerate() {
            self.world.hold(d, None, false);
            self.world.set_offline(d, false);
            // A device in `error` waits for the user: ask it, so everything can settle.
            self.world.retry(d);
            self.lines.push(format!("unhold {name}"));
            self.lines.push(format!("{name} online"));
            self.lines.push(format!("{name} retry"));
        }
        // A lossy link can stop a bounded device in `error` again while settling: ask it
        // again (as a user would) until every device has come back.
        for _ in 0..50 {
            self.lines.push("settle".into());
            let w = &mut self.world;
            // The same limit as the reproducer's `settle`, so a seed fails the same way there.
            let deadline = w.now() + SETTLE_LIMIT;
            while w.settle_step(deadline)? {
                self.checker.after_step(w)?;
            }
            let stopped: Vec<usize> = (0..self.names.len())
                .filter(|d| {
                    matches!(
                        w.devices()[*d].engine.connection(),
                        ConnectionState::Error { .. }
                    )
                })
                .collect();
            if stopped.is_empty() {
                break;
            }
            for d in stopped {
                self.lines.push(format!("{} retry", self.names[d]));
                self.world.retry(d);
            }
        }
        let w = &mut self.world;
        // What `at_rest` checks of convergence, as a line the replay checks too.
        for (d, name) in self.names.iter().enumerate() {
            if w.devices()[d].engine.strategy() == Strategy::SyncWithPush {
                self.lines.push(format!("expect {name} converged"));
            }
        }
        Ok(self.checker.at_rest(w)?)
    }

    /// All the actions, then the finish; a panic is a failure too.
    fn run(&mut self) -> Result<(), Failure> {
        catch_unwind(AssertUnwindSafe(|| {
            for _ in 0..ACTIONS {
                self.act()?;
            }
            self.finish()
        }))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {what}").into())
        })
    }
}

#[test]
fn random_schedules_keep_the_invariants() {
    let started = std::time::Instant::now();
    let mut frames = 0;
    for seed in 0..SEEDS {
        let mut r = Recorder::new(seed);
        let result = r.run();
        frames += r.world.frames_delivered;
        if let Err(e) = result {
            let text = r.lines.join("\n") + "\n";
            let replay = match parse("replay.scn", &text) {
                Ok(s) => format!("{:?}", Runner::new(s, seed).run_to_end()),
                Err(e) => format!("the reproducer does not parse: {e}"),
            };
            panic!(
                "seed {seed} failed: {e}\n\
                 replaying the scenario below gives: {replay} (it replays the same run, but \
                 its `expect` lines check convergence only: look for the failure above in \
                 its trace)\n\
                 ---- save as a .scn file and run with --seed {seed} ----\n{text}"
            );
        }
    }
    println!(
        "random schedules: {SEEDS} seeds, {frames} frames, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn the_recorded_scenario_replays_the_same_run() {
    // The reproducer is only useful if parsing and running it gives the same world.
    for seed in [3, 17, 123] {
        let mut r = Recorder::new(seed);
        r.run().unwrap();
        let text = r.lines.join("\n") + "\n";
        let mut runner = Runner::new(parse("replay.scn", &text).unwrap(), seed);
        assert_eq!(runner.run_to_end(), &Verdict::Pass, "seed {seed}:\n{text}");
        // Same frames, same events, same order: the whole trace (hash-map order must not
        // leak into behaviour).
        assert_eq!(
            format!("{:?}", r.world.trace),
            format!("{:?}", runner.world().trace),
            "seed {seed}"
        );
    }
}
