//! Random schedules: 20,000 seeded worlds per run. Random devices and strategies, link
//! latency, jitter and loss (set up, and changed during the run), random intents on random
//! keys, holds and out-of-order releases (of one frame, the newest, or all), dropped
//! frames, offline spells, device and server restarts, forced rejections, `server set`,
//! reconnect bounds and retries, batch sizes, token rotations (with slow token sources, or
//! none), clock cursors with skewed clocks, comment edits and deletions, blocked WebSockets
//! (and the polling they lead to); then everything
//! is released, retried and settled. Each schedule is written as scenario statements and
//! run by the scenario [`Runner`], which checks every device against the invariants its
//! strategy owes (DESIGN.md; the table is in [`mock_server::invariants`]) after every
//! statement and every simulator event. Each seed's virtual time is capped: its waits add
//! up to 20 s at most, and each `settle` fails after [`mock_server::sim::SETTLE_LIMIT`].
//!
//! A failing seed (a broken invariant, a world that does not settle, or a panic) is
//! shrunk to a short counterexample ([`mock_server::scenario::shrink`]) and written to a
//! file the failure names, with a comment saying what broke at which line:
//! `cargo run -p app -- run --seed N --open-at-failure FILE` opens it in the player there.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Duration;

use mock_server::link::{Direction, LinkConfig};
use mock_server::scenario::ast::{DeviceSetup, Expect, LinkChange, Pick, Scenario, Step, Stmt};
use mock_server::scenario::shrink::{Failure, counterexample, shrink};
use mock_server::scenario::{Runner, Verdict, parse, write};
use serde_json::json;
use sync_core::engine::connection::ConnectionState;
use sync_core::engine::mutant::{self, Mutant};
use sync_core::engine::{CursorMode, DeviceSettings, Strategy};
use sync_core::protocol::Key;
use sync_core::protocol::model::comments_from_value;
use sync_core::rng::Rng;

const SEEDS: u64 = 20_000;
const ACTIONS: usize = 40;
const NAMES: [&str; 3] = ["phone", "laptop", "tablet"];
const BOOL_KEYS: [&str; 3] = ["like/a", "like/b", "settings/dark_mode"];

/// One seed's schedule, written as it runs.
struct Schedule {
    rng: Rng,
    runner: Runner,
}

fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[rng.up_to(items.len() as u64 - 1) as usize]
}

impl Schedule {
    fn new(seed: u64) -> Schedule {
        let mut rng = Rng::new(seed);
        // Settings added later draw from a stream of their own, so that the schedules
        // written before them stay as they were.
        let mut polling = rng.fork(1);
        let n = 2 + rng.up_to(1) as usize;
        let mut devices = Vec::new();
        for name in &NAMES[..n] {
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
            let reconnect_bound = rng.chance(0.3).then(|| 1 + rng.up_to(2) as u32);
            // Small batches too, so that the writes due after a `welcome` are split.
            let batch_size = if rng.chance(0.5) {
                1 + rng.up_to(3) as usize
            } else {
                DeviceSettings::default().batch_size
            };
            // The token source: as fast as by default, slower, or never (shut out).
            let auth_delay = match rng.up_to(9) {
                0..=5 => DeviceSettings::default().auth_delay,
                6..=8 => Some(Duration::from_millis(rng.up_to(2000))),
                _ => None,
            };
            // Some devices catch up by their (skewed) clock: they may miss changes, which
            // the invariants they still owe must survive.
            let (cursor, clock_skew_ms) = if rng.chance(0.2) {
                (CursorMode::Clock, rng.up_to(65_000) as i64 - 5_000)
            } else {
                (CursorMode::Revision, 0)
            };
            let link = LinkConfig {
                latency: Duration::from_millis(latency),
                jitter: Duration::from_millis(jitter),
                loss: loss as f64 / 100.0,
            };
            devices.push(DeviceSetup {
                name: name.to_string(),
                strategy,
                up: link,
                down: link,
                settings: DeviceSettings {
                    reconnect_bound,
                    batch_size,
                    auth_delay,
                    cursor,
                    clock_skew_ms,
                    fallback_after: 1 + polling.up_to(2) as u32,
                    poll_interval: Duration::from_millis(500 + polling.up_to(2500)),
                },
            });
        }
        let scenario = Scenario {
            title: Some(format!("random schedule {seed}")),
            about: vec![format!("Random schedule, seed {seed}.")],
            devices,
            devices_line: 0,
            server_sets: Vec::new(),
            steps: Vec::new(),
        };
        Schedule {
            rng,
            runner: Runner::new(scenario, seed),
        }
    }

    /// Decides one random action from the world as it is, and runs it.
    fn act(&mut self) {
        let w = self.runner.world();
        let devices = w.devices().len();
        let d = self.rng.up_to(devices as u64 - 1) as usize;
        let dir = if self.rng.chance(0.5) {
            Direction::Up
        } else {
            Direction::Down
        };
        let queued = w.queued(d, dir);
        let key = |k: &str| Key::parse(k).unwrap();
        let stmt = match self.rng.up_to(99) {
            0..=24 => Stmt::Tap(d, key(pick::<&str>(&mut self.rng, &BOOL_KEYS))),
            25..=34 => Stmt::Set(d, Key::Volume, json!(self.rng.up_to(110) as i64 - 5)),
            35 | 36 => Stmt::Comment(d, key("comments/p"), "hi".into()),
            37 => {
                // Edit or delete the first comment the device shows (or one it does not).
                let shown = comments_from_value(&w.devices()[d].engine.shown(&key("comments/p")));
                let id = shown.first().map_or("1".to_string(), |c| c.id.clone());
                if self.rng.chance(0.5) {
                    Stmt::EditComment(d, key("comments/p"), id, "edited".into())
                } else {
                    Stmt::DeleteComment(d, key("comments/p"), id)
                }
            }
            38 => Stmt::Settle,
            39..=59 => Stmt::Wait(Duration::from_millis(self.rng.up_to(500))),
            // One direction or both, held and let go.
            60..=62 => Stmt::Hold(d, Some(dir)),
            63 => Stmt::Hold(d, None),
            64..=66 => Stmt::Unhold(d, None),
            67 | 68 => Stmt::Unhold(d, Some(dir)),
            69..=72 if queued > 0 => {
                let n = 1 + self.rng.up_to(queued as u64 - 1) as usize;
                Stmt::Release(d, dir, Pick::Nth(n))
            }
            73 if queued > 0 => Stmt::Release(d, dir, Pick::Last),
            74 if queued > 0 => Stmt::Release(d, dir, Pick::All),
            75..=77 if queued > 0 => {
                Stmt::Drop(d, dir, 1 + self.rng.up_to(queued as u64 - 1) as usize)
            }
            78..=83 if self.rng.chance(0.5) => Stmt::Offline(d),
            78..=83 => Stmt::Online(d),
            84..=87 => Stmt::Restart(d),
            88..=91 => Stmt::ServerReject(key(pick::<&str>(
                &mut self.rng,
                &["like/a", "settings/volume", "comments/p"],
            ))),
            92..=93 => Stmt::ServerRestart,
            94 => Stmt::ServerRotateToken,
            95 | 96 => Stmt::ServerSet(Key::Volume, json!(self.rng.up_to(100))),
            97 => Stmt::Retry(d),
            98 => {
                let dirs = *pick(
                    &mut self.rng,
                    &[None, Some(Direction::Up), Some(Direction::Down)],
                );
                let change = match self.rng.up_to(2) {
                    0 => LinkChange::Latency(Duration::from_millis(10 + self.rng.up_to(190))),
                    1 => LinkChange::Jitter(Duration::from_millis(self.rng.up_to(60))),
                    _ => LinkChange::Loss(self.rng.up_to(10) as f64 / 100.0),
                };
                // One device, or all of them at once.
                let which = if self.rng.chance(0.5) {
                    vec![d]
                } else {
                    (0..devices).collect()
                };
                Stmt::Link(which, dirs, change)
            }
            99 => Stmt::ServerBlockWebsocket(self.rng.chance(0.6)),
            _ => Stmt::Wait(Duration::from_millis(50)),
        };
        self.runner.append(stmt);
    }

    /// Releases everything, settles, and checks what each device owes (the runner checks
    /// convergence after each `settle`; the `expect` lines say so in the file too).
    fn finish(&mut self) {
        let devices = self.runner.world().devices().len();
        for d in 0..devices {
            self.runner.append(Stmt::Unhold(d, None));
            self.runner.append(Stmt::Online(d));
            // A device in `error` waits for the user: ask it, so everything can settle.
            self.runner.append(Stmt::Retry(d));
        }
        // A lossy link can stop a bounded device in `error` again while settling: ask it
        // again (as a user would) until every device has come back.
        for _ in 0..50 {
            self.runner.append(Stmt::Settle);
            let stopped: Vec<usize> = (0..devices)
                .filter(|d| {
                    matches!(
                        self.runner.world().devices()[*d].engine.connection(),
                        ConnectionState::Error { .. }
                    )
                })
                .collect();
            if stopped.is_empty() {
                break;
            }
            for d in stopped {
                self.runner.append(Stmt::Retry(d));
            }
        }
        for d in 0..devices {
            let engine = &self.runner.world().devices()[d].engine;
            // A device on the clock cursor owes no convergence: it may have missed changes.
            if engine.strategy() == Strategy::SyncWithPush
                && engine.settings().cursor == CursorMode::Revision
            {
                self.runner.append(Stmt::Expect(Expect::DeviceConverged(d)));
            }
        }
    }

    /// All the actions, then the finish; `false` if the run failed (or panicked).
    fn run(&mut self) -> bool {
        let ran = catch_unwind(AssertUnwindSafe(|| {
            for _ in 0..ACTIONS {
                self.act();
            }
            self.finish();
        }));
        ran.is_ok() && self.runner.verdict() == Some(&Verdict::Pass)
    }

    /// The schedule so far, as a scenario.
    fn scenario(&self) -> Scenario {
        self.runner.scenario().clone()
    }
}

/// Shrinks a failing seed's schedule and writes the counterexample where the failure
/// message says; its path and text.
fn write_counterexample(seed: u64, scenario: Scenario) -> (PathBuf, String) {
    let shrunk = shrink(scenario, seed).expect("a failing schedule fails again when replayed");
    let text = counterexample(&shrunk, seed, "random_schedules");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("counterexamples");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("random-schedule-{seed}.scn"));
    std::fs::write(&path, &text).unwrap();
    (path, text)
}

#[test]
fn random_schedules_keep_the_invariants() {
    let started = std::time::Instant::now();
    let mut frames = 0;
    for seed in 0..SEEDS {
        let mut schedule = Schedule::new(seed);
        let passed = schedule.run();
        frames += schedule.runner.world().frames_delivered;
        if !passed {
            let (path, text) = write_counterexample(seed, schedule.scenario());
            panic!("seed {seed} failed; shrunk to {}:\n{text}", path.display());
        }
    }
    println!(
        "random schedules: {SEEDS} seeds, {frames} frames, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn the_written_schedule_replays_the_same_run() {
    // A counterexample is only useful if writing, parsing and running it gives the same
    // world.
    for seed in [3, 17, 123] {
        let mut schedule = Schedule::new(seed);
        assert!(schedule.run(), "seed {seed}");
        let text = write(&schedule.scenario());
        let mut runner = Runner::new(parse("replay.scn", &text).unwrap(), seed);
        assert_eq!(runner.run_to_end(), &Verdict::Pass, "seed {seed}:\n{text}");
        // Same frames, same events, same order: the whole trace (hash-map order must not
        // leak into behaviour).
        assert_eq!(
            format!("{:?}", schedule.runner.world().trace),
            format!("{:?}", runner.world().trace),
            "seed {seed}"
        );
    }
}

/// The checker and the shrinker together, against an engine broken on purpose: with
/// stale pushes applied, some schedule breaks invariant 4, and it shrinks to at most ten
/// statements that break it at the line the file names — and pass on the sound engine.
#[test]
fn a_broken_rule_is_caught_and_shrunk_to_a_short_counterexample() {
    let (seed, scenario) = mutant::during(Mutant::ApplyStalePushes, || {
        (0..2_000)
            .find_map(|seed| {
                let mut schedule = Schedule::new(seed);
                (!schedule.run()).then(|| (seed, schedule.scenario()))
            })
            .expect("applying stale pushes breaks some schedule within 2,000 seeds")
    });
    let steps = scenario.steps.len();
    let (path, text) = mutant::during(Mutant::ApplyStalePushes, || {
        write_counterexample(seed, scenario)
    });
    let file = parse("counterexample.scn", &text).unwrap();
    assert!(
        file.steps.len() <= 10,
        "seed {seed}: {steps} statements shrunk to {}:\n{text}",
        file.steps.len()
    );
    let broken = mutant::during(Mutant::ApplyStalePushes, || {
        mock_server::scenario::shrink::failure(&file, seed)
    })
    .expect("the counterexample fails");
    assert_eq!(broken.failure, Failure::Invariant(4), "{text}");
    let named = format!("Line {} fails: invariant 4 ", broken.line);
    assert!(
        text.contains(&named),
        "the file names line {}:\n{text}",
        broken.line
    );
    assert!(
        matches!(
            file.steps.iter().find(|s| s.line == broken.line),
            Some(Step {
                stmt: Stmt::Release(..) | Stmt::Wait(_) | Stmt::Settle | Stmt::Unhold(..),
                ..
            })
        ),
        "it breaks where a stale push arrives:\n{text}"
    );
    assert_eq!(
        Runner::new(file, seed).run_to_end(),
        &Verdict::Pass,
        "the sound engine passes {}",
        path.display()
    );
}
