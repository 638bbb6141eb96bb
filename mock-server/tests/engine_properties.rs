//! Property tests of DESIGN.md's invariants, on the real engines and server core.
//!
//! Random sequences of intents (taps, sets — some invalid — and comments), waits, holds
//! with out-of-order releases (stale pushes), dropped frames, duplicated pushes, offline
//! spells, device and server restarts, forced rejections and server writes, on three
//! devices of random strategies. After every step each device is checked against the
//! invariants its strategy owes:
//!
//! | invariant | sync-with-push | sync | naive |
//! |---|---|---|---|
//! | 1 optimistic | ✔ | ✔ | ✔ |
//! | 2 one in flight | ✔ | ✔ | |
//! | 3 bounded requests | ✔ | ✔ | |
//! | 4 revisions never regress | ✔ | | |
//! | 5 convergence (at the end) | ✔ | | |
//! | 6 nothing applied twice, no revision reused | ✔ | ✔ | ✔ |
//! | 7 intent wins over silence (at the end) | ✔ | | |

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mock_server::link::LinkConfig;
use mock_server::sim::{DeviceSpec, Direction, TraceKind, World};
use proptest::prelude::*;
use serde_json::json;
use sync_core::engine::{EventKind, Strategy as DeviceStrategy};
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

/// What the checker remembers between steps.
#[derive(Default)]
struct Memory {
    known: BTreeMap<(usize, Key), u64>,
    acked_revs: BTreeSet<u64>,
    trace_seen: usize,
}

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

/// Runs one op, checking invariants 1 and 3 around intents.
fn apply(w: &mut World, op: &Op) -> Result<(), TestCaseError> {
    let intent = |w: &mut World, d: usize, k: &Key, run: &dyn Fn(&mut World)| {
        let strategy = w.devices()[d].engine.strategy();
        let was_in_flight = w.devices()[d].engine.in_flight(k).is_some();
        let before = requests(w, d, k);
        run(w);
        let after = requests(w, d, k);
        if strategy != DeviceStrategy::Naive {
            // 3: an intent while a request is in flight costs no request of its own.
            prop_assert!(
                !was_in_flight || after == before,
                "invariant 3: {k} {before}->{after}"
            );
        }
        Ok(())
    };
    match *op {
        Op::Tap(d, k) => {
            let k = key(k);
            let expected = json!(!w.devices()[d].engine.shown(&k).as_bool().unwrap());
            intent(w, d, &k, &|w| w.tap(d, &k).unwrap())?;
            prop_assert_eq!(w.devices()[d].engine.shown(&k), expected, "invariant 1");
        }
        Op::Volume(d, v) => {
            intent(w, d, &Key::Volume, &|w| {
                w.set(d, &Key::Volume, json!(v)).unwrap()
            })?;
            prop_assert_eq!(
                w.devices()[d].engine.shown(&Key::Volume),
                json!(v),
                "invariant 1"
            );
        }
        Op::Comment(d) => w.comment(d, &Key::parse("comments/a").unwrap(), "hi"),
        Op::Wait(ms) => w.wait(Duration::from_millis(ms)),
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
        Op::RejectNext(k) => w.core_mut().reject_next(key(k)),
        Op::ServerSet(v) => w.server_set(&Key::Volume, json!(v)).unwrap(),
    }
    Ok(())
}

fn requests(w: &World, d: usize, k: &Key) -> u64 {
    w.devices()[d]
        .engine
        .counters()
        .requests_by_key
        .get(k)
        .copied()
        .unwrap_or(0)
}

/// Invariants 2, 4 and 6 after a step.
fn check(w: &World, mem: &mut Memory) -> Result<(), TestCaseError> {
    let new = &w.trace[mem.trace_seen..];
    mem.trace_seen = w.trace.len();
    let mut reset_seen = BTreeSet::new();
    for t in new {
        match &t.kind {
            TraceKind::Device(EventKind::CaughtUp { reset: true, .. }) => {
                reset_seen.insert(t.device.clone().unwrap());
            }
            TraceKind::Down(ServerFrame::Ack {
                rev,
                duplicate: false,
                ..
            }) => {
                // 6: a revision is acknowledged (as new) once.
                prop_assert!(
                    mem.acked_revs.insert(*rev),
                    "invariant 6: rev {rev} acked twice"
                );
            }
            _ => {}
        }
    }
    // 6: revisions are gap-free and never reused, across restarts.
    let head = w.core().user("demo").map_or(0, |u| u.head);
    prop_assert_eq!(
        head,
        w.core().writes(),
        "invariant 6: head vs revisions assigned"
    );
    for (d, dev) in w.devices().iter().enumerate() {
        let strategy = dev.engine.strategy();
        if strategy != DeviceStrategy::Naive {
            // 2: one request per key.
            let mut seen = BTreeSet::new();
            for k in dev.engine.unanswered() {
                prop_assert!(
                    seen.insert(k.clone()),
                    "invariant 2: {} has two requests for {k}",
                    dev.name
                );
            }
        }
        if strategy == DeviceStrategy::SyncWithPush {
            // 4: known revisions only grow (except after a reset welcome).
            for view in dev.engine.keys() {
                let prev = mem.known.insert((d, view.key.clone()), view.known_rev);
                if let Some(prev) = prev
                    && !reset_seen.contains(&dev.name)
                {
                    prop_assert!(
                        view.known_rev >= prev,
                        "invariant 4: {} {} {} -> {}",
                        dev.name,
                        view.key,
                        prev,
                        view.known_rev
                    );
                }
            }
        }
    }
    Ok(())
}

/// Invariants 5 and 7 once everything is released, online and settled.
fn check_end(w: &mut World) -> Result<(), TestCaseError> {
    for d in 0..w.devices().len() {
        w.hold(d, None, false);
        w.set_offline(d, false);
    }
    w.settle().map_err(TestCaseError::fail)?;
    let user = w.core().user("demo").cloned().unwrap_or_default();
    for dev in w.devices() {
        if dev.engine.strategy() != DeviceStrategy::SyncWithPush {
            continue;
        }
        // 5: convergence.
        prop_assert!(
            !dev.engine.has_pending(),
            "invariant 5: {} has pending requests",
            dev.name
        );
        for (k, stored) in &user.keys {
            prop_assert_eq!(
                &dev.engine.shown(k),
                &stored.value,
                "invariant 5: {} {}",
                dev.name,
                k
            );
            prop_assert_eq!(
                dev.engine.known_rev(k),
                stored.rev,
                "invariant 5: {} {} rev",
                dev.name,
                k
            );
        }
        // 7: the newest intent reached the server, unless something newer superseded it or
        // it was rejected.
        for view in dev.engine.keys() {
            if view.slot.local_rev == 0 || matches!(view.key, Key::Comments(_)) {
                continue;
            }
            let last_intent = w.trace.iter().rposition(|t| {
                t.device.as_deref() == Some(&dev.name)
                    && matches!(&t.kind, TraceKind::Device(EventKind::OptimisticWrite { key, .. }) if *key == view.key)
            });
            let Some(last_intent) = last_intent else {
                continue;
            };
            let overtaken = w.trace[last_intent..].iter().any(|t| {
                t.device.as_deref() == Some(&dev.name)
                    && match &t.kind {
                        TraceKind::Device(
                            EventKind::Rejected { key, .. } | EventKind::Superseded { key },
                        ) => *key == view.key,
                        TraceKind::Device(EventKind::PushApplied { key, from, .. }) => {
                            *key == view.key && *from != dev.name
                        }
                        _ => false,
                    }
            });
            if overtaken {
                continue;
            }
            let mark = user.marks.get(&dev.name).and_then(|m| m.get(&view.key));
            prop_assert_eq!(
                mark.map(|m| m.local_rev),
                Some(view.slot.local_rev),
                "invariant 7: {}'s newest intent for {} never reached the server",
                dev.name,
                view.key
            );
        }
    }
    Ok(())
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
        let mut mem = Memory::default();
        check(&w, &mut mem)?;
        for op in &ops {
            apply(&mut w, op)?;
            check(&w, &mut mem)?;
        }
        check_end(&mut w)?;
    }
}
