//! Property tests of DESIGN.md's invariants, on the real engines and server core.
//!
//! Random sequences of intents (taps, sets — some invalid — and comments), waits, holds
//! with out-of-order releases (stale pushes), dropped frames, duplicated pushes, offline
//! spells, device and server restarts, forced rejections and server writes, on three
//! devices of random strategies. After every simulator event each device is checked
//! against the invariants its strategy owes ([`mock_server::invariants`] has the table).
//! Proptest shrinks a failure to a short sequence of ops; `random_schedules.rs` runs
//! more seeds and prints a failure as a scenario file.

use std::time::Duration;

use mock_server::invariants::{Checker, Intent, Violation};
use mock_server::link::Direction;
use mock_server::link::LinkConfig;
use mock_server::sim::{DeviceSpec, TraceKind, World};
use proptest::prelude::*;
use serde_json::json;
use sync_core::engine::Strategy as DeviceStrategy;
use sync_core::protocol::{Key, ServerFrame};

const KEYS: [&str; 4] = ["like/a", "like/b", "settings/dark_mode", "settings/volume"];

#[derive(Debug, Clone)]
enum Op {
    Tap(usize, usize),
    Volume(usize, i64),
    Comment(usize),
    Wait(u64),
    Hold(usize, bool),
    Unhold(usize),
    Release(usize, bool, usize),
    Drop(usize, bool, usize),
    DuplicateLastPush(usize),
    Offline(usize, bool),
    RestartDevice(usize),
    RestartServer,
    RejectNext(usize),
    ServerSet(i64),
}

fn op() -> impl Strategy<Value = Op> {
    let dev = 0..3usize;
    prop_oneof![
        6 => (dev.clone(), 0..3usize).prop_map(|(d, k)| Op::Tap(d, k)),
        3 => (dev.clone(), -10..120i64).prop_map(|(d, v)| Op::Volume(d, v)),
        1 => dev.clone().prop_map(Op::Comment),
        6 => (0..400u64).prop_map(Op::Wait),
        1 => (dev.clone(), any::<bool>()).prop_map(|(d, up)| Op::Hold(d, up)),
        1 => dev.clone().prop_map(Op::Unhold),
        2 => (dev.clone(), any::<bool>(), 1..4usize).prop_map(|(d, up, n)| Op::Release(d, up, n)),
        1 => (dev.clone(), any::<bool>(), 1..3usize).prop_map(|(d, up, n)| Op::Drop(d, up, n)),
        1 => dev.clone().prop_map(Op::DuplicateLastPush),
        1 => (dev.clone(), any::<bool>()).prop_map(|(d, off)| Op::Offline(d, off)),
        1 => dev.clone().prop_map(Op::RestartDevice),
        1 => Just(Op::RestartServer),
        1 => (0..4usize).prop_map(Op::RejectNext),
        1 => (0..100i64).prop_map(Op::ServerSet),
    ]
}

fn strategy() -> impl Strategy<Value = DeviceStrategy> {
    prop_oneof![
        2 => Just(DeviceStrategy::SyncWithPush),
        1 => Just(DeviceStrategy::Sync),
        1 => Just(DeviceStrategy::Naive),
    ]
}

fn key(i: usize) -> Key {
    Key::parse(KEYS[i]).unwrap()
}

fn dir(up: bool) -> Direction {
    if up { Direction::Up } else { Direction::Down }
}

/// Three devices of these strategies, with jittery links, connected.
fn world(strategies: &[DeviceStrategy], seed: u64) -> World {
    let names = ["phone", "laptop", "tablet"];
    let specs: Vec<DeviceSpec> = strategies
        .iter()
        .zip(names)
        .map(|(s, n)| DeviceSpec {
            name: n.into(),
            strategy: *s,
            up: LinkConfig {
                jitter: Duration::from_millis(30),
                ..LinkConfig::default()
            },
            down: LinkConfig {
                jitter: Duration::from_millis(30),
                ..LinkConfig::default()
            },
        })
        .collect();
    let mut w = World::new(seed, &specs);
    w.settle().unwrap();
    w
}

/// Runs one op; intents go through the checker (invariants 1 and 3), and every op is
/// followed by the per-step checks (2, 4 and 6).
fn apply(w: &mut World, checker: &mut Checker, op: &Op) -> Result<(), Violation> {
    match *op {
        Op::Tap(d, k) => checker.intent(w, d, &key(k), Intent::Tap)?.unwrap(),
        Op::Volume(d, v) => checker
            .intent(w, d, &Key::Volume, Intent::Set(json!(v)))?
            .unwrap(),
        Op::Comment(d) => {
            let k = Key::parse("comments/a").unwrap();
            checker.intent(w, d, &k, Intent::Comment("hi"))?.unwrap()
        }
        Op::Wait(ms) => {
            let until = w.now() + Duration::from_millis(ms);
            while w.wait_step(until) {
                checker.after_step(w)?;
            }
        }
        Op::Hold(d, up) => w.hold(d, Some(dir(up)), true),
        Op::Unhold(d) => w.hold(d, None, false),
        Op::Release(d, up, n) => {
            let _ = w.release(d, dir(up), n);
        }
        Op::Drop(d, up, n) => {
            let _ = w.drop_frame(d, dir(up), n);
        }
        Op::DuplicateLastPush(d) => {
            let name = w.devices()[d].name.clone();
            let last = w.trace.iter().rev().find_map(|t| match &t.kind {
                TraceKind::Down(f @ ServerFrame::Push(_)) if t.device.as_deref() == Some(&name) => {
                    Some(f.clone())
                }
                _ => None,
            });
            if let Some(frame) = last {
                w.duplicate_down(d, frame);
            }
        }
        Op::Offline(d, off) => w.set_offline(d, off),
        Op::RestartDevice(d) => w.restart_device(d).unwrap(),
        Op::RestartServer => w.restart_server(),
        Op::RejectNext(k) => w.reject_next(key(k)),
        Op::ServerSet(v) => w.server_set(&Key::Volume, json!(v)).unwrap(),
    }
    checker.after_step(w)
}

/// Runs the ops, checked after every simulator event, then finishes.
fn run(w: &mut World, ops: &[Op]) -> Result<(), Violation> {
    let mut checker = Checker::new();
    checker.after_step(w)?;
    for op in ops {
        apply(w, &mut checker, op)?;
    }
    finish(w, &mut checker)
}

/// Releases everything, brings every device online, settles (checking each event), then
/// checks invariants 5 and 7.
fn finish(w: &mut World, checker: &mut Checker) -> Result<(), Violation> {
    for d in 0..w.devices().len() {
        w.hold(d, None, false);
        w.set_offline(d, false);
    }
    let deadline = w.now() + Duration::from_secs(600);
    while w
        .settle_step(deadline)
        .map_err(|message| Violation { number: 5, message })?
    {
        checker.after_step(w)?;
    }
    checker.at_rest(w)
}

proptest! {
    // A fixed seed keeps CI reproducible; explore more with PROPTEST_CASES=5000. A failure
    // found this way becomes a scenario in tests/regressions/.
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn invariants_hold_under_random_schedules(
        strategies in prop::collection::vec(strategy(), 3),
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut w = world(&strategies, seed);
        run(&mut w, &ops).map_err(|v| TestCaseError::fail(v.to_string()))?;
    }
}
