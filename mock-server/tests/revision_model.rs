//! A stateright model of the revision protocol, checked exhaustively: two
//! `sync-with-push` devices of one user, three taps on one key, and every order in which
//! the network can deliver their frames, out of order within a link included.
//!
//! It is not a second implementation of the protocol: the states are the simulator's, with
//! the real engines and the real server core. Every link is held, so each delivery is a
//! choice the checker makes (`release DEVICE DIR N`), as a scenario would. A state is the
//! path of choices that leads to it, identified by what the world looks like after it
//! (every device's keys, connection and intents, the frames on each link, the server's
//! data), so the checker visits each situation once however it was reached.

use std::hash::{DefaultHasher, Hash, Hasher};

use mock_server::core::DEMO_USER;
use mock_server::link::Direction;
use mock_server::link::LinkConfig;
use mock_server::sim::{DeviceSpec, World};
use stateright::{Checker, Model, Property};
use sync_core::engine::Strategy;
use sync_core::protocol::Key;

/// How many taps each device may make.
const TAPS: [u64; 2] = [2, 1];

/// One choice: a device taps, or one queued frame is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Choice {
    Tap(usize),
    /// Device, `true` for its uplink, and which queued frame (1 = oldest).
    Deliver(usize, bool, usize),
}

/// A path of choices and what the world looks like after it.
#[derive(Debug, Clone)]
struct State {
    path: Vec<Choice>,
    digest: u64,
    /// Every device's known revision is at most the server's head.
    known_within_head: bool,
    /// Nothing left to do (taps made, links empty) and the devices disagree with the server.
    quiet_but_diverged: Option<String>,
    /// A push arrived after a newer revision and was ignored as stale.
    stale_seen: bool,
}

impl PartialEq for State {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
    }
}

impl Eq for State {}

impl Hash for State {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.digest.hash(h);
    }
}

/// The model, for devices of one strategy.
struct Revisions(Strategy);

fn key() -> Key {
    Key::parse("like/p").expect("a valid key")
}

fn dir(up: bool) -> Direction {
    if up { Direction::Up } else { Direction::Down }
}

/// The world after `path`, from two connected devices with every link held.
fn world(strategy: Strategy, path: &[Choice]) -> World {
    let specs: Vec<DeviceSpec> = ["a", "b"]
        .iter()
        .map(|name| DeviceSpec {
            name: name.to_string(),
            strategy,
            up: LinkConfig::default(),
            down: LinkConfig::default(),
        })
        .collect();
    let mut w = World::new(0, &specs);
    w.settle().expect("the devices connect");
    for i in 0..specs.len() {
        w.hold(i, None, true);
    }
    for choice in path {
        match *choice {
            Choice::Tap(i) => w.tap(i, &key()).expect("a like can be tapped"),
            Choice::Deliver(i, up, n) => w.release(i, dir(up), n).expect("a queued frame"),
        }
    }
    w
}

fn choices(w: &World) -> Vec<Choice> {
    let mut out = Vec::new();
    for (i, d) in w.devices().iter().enumerate() {
        if d.engine.counters().intents < TAPS[i] {
            out.push(Choice::Tap(i));
        }
        for up in [true, false] {
            for n in 1..=w.queued(i, dir(up)) {
                out.push(Choice::Deliver(i, up, n));
            }
        }
    }
    out
}

fn state(strategy: Strategy, path: Vec<Choice>) -> State {
    let w = world(strategy, &path);
    let mut h = DefaultHasher::new();
    for d in w.devices() {
        format!("{:?}{:?}", d.engine.keys(), d.engine.connection()).hash(&mut h);
        d.engine.counters().intents.hash(&mut h);
        for q in d.up.queued() {
            format!("{:?}", q.frame.item).hash(&mut h);
        }
        for q in d.down.queued() {
            format!("{:?}", q.frame.item).hash(&mut h);
        }
    }
    let server = w.core().user(DEMO_USER).cloned().unwrap_or_default();
    format!("{server:?}").hash(&mut h);
    let known_within_head = w
        .devices()
        .iter()
        .all(|d| d.engine.keys().iter().all(|k| k.known_rev <= server.head));
    let quiet_but_diverged = if choices(&w).is_empty() {
        w.converged().err()
    } else {
        None
    };
    State {
        digest: h.finish(),
        known_within_head,
        quiet_but_diverged,
        stale_seen: w.devices().iter().any(|d| d.engine.counters().stale > 0),
        path,
    }
}

impl Model for Revisions {
    type State = State;
    type Action = Choice;

    fn init_states(&self) -> Vec<State> {
        vec![state(self.0, Vec::new())]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Choice>) {
        actions.extend(choices(&world(self.0, &s.path)));
    }

    fn next_state(&self, s: &State, action: Choice) -> Option<State> {
        let mut path = s.path.clone();
        path.push(action);
        Some(state(self.0, path))
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(
                "no device knows a revision the server has not assigned",
                |_, s: &State| s.known_within_head,
            ),
            Property::always(
                "once everything is delivered, every device agrees",
                |_, s: &State| s.quiet_but_diverged.is_none(),
            ),
            Property::sometimes(
                "a push arrives late and is ignored as stale",
                |_, s: &State| s.stale_seen,
            ),
        ]
    }
}

#[test]
fn every_delivery_order_of_three_taps_on_two_devices_converges() {
    let checker = Revisions(Strategy::SyncWithPush)
        .checker()
        .spawn_bfs()
        .join();
    checker.assert_properties();
    let states = checker.unique_state_count();
    println!("{states} distinct states, every one checked");
    assert!(
        states > 100,
        "the exploration went somewhere ({states} states)"
    );
}

/// The checker can fail: `naive` applies every push in arrival order, so a late push leaves
/// a device showing an old value, and the model finds the delivery order that does it.
#[test]
fn naive_devices_can_end_up_disagreeing_and_the_model_finds_how() {
    let checker = Revisions(Strategy::Naive).checker().spawn_bfs().join();
    let path = checker
        .discovery("once everything is delivered, every device agrees")
        .expect("a counterexample");
    let last = path.last_state();
    println!(
        "naive diverges after {:?}: {}",
        last.path,
        last.quiet_but_diverged.as_deref().unwrap_or_default()
    );
    assert!(last.quiet_but_diverged.is_some());
}
