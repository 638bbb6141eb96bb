//! The recorder: what it writes for each kind of action, where it says `settle`, and that
//! what it writes reads back.

use std::time::Duration;

use mock_server::link::Direction;
use mock_server::link::Fault;
use mock_server::scenario::write::duration;
use mock_server::scenario::{parse, write};
use sync_core::engine::Strategy;
use sync_core::engine::state::KeySlot;
use sync_core::engine::view::KeyView;

use super::*;
use crate::gui::layout::Preset;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn view(id: &str) -> DeviceView {
    DeviceView {
        device_id: id.into(),
        strategy: Strategy::SyncWithPush,
        connection: ConnectionState::Connected,
        token: Default::default(),
        keys: Vec::new(),
        counters: Counters::default(),
        cursor: 0,
        clock_cursor: None,
        settings: Default::default(),
        retry_at: None,
        next_poll_at: None,
    }
}

fn like(post: &str) -> Key {
    Key::Like(post.into())
}

fn start<'a>(views: &'a [DeviceView], server: &UserData) -> Recorder {
    let devices: Vec<Start<'a>> = views
        .iter()
        .map(|v| Start {
            layout: DeviceLayout::new(&v.device_id),
            view: v,
            queued: [0, 0].into(),
        })
        .collect();
    Recorder::start(ms(1000), &devices, server, "A session").expect("starts")
}

#[test]
fn a_session_is_written_as_a_scenario_that_reads_back() {
    let views = [view("phone"), view("laptop")];
    let mut server = UserData::default();
    server.keys.insert(
        Key::Volume,
        mock_server::core::store::Stored {
            value: 40.into(),
            rev: 3,
            device_id: "server".into(),
            local_rev: 0,
            time_ms: 0,
        },
    );
    let mut rec = start(&views, &server);
    let tap = PaneAction::Tap(like("post-1"));
    let hold = PaneAction::Link(Fault::Hold(Direction::Down, true));
    rec.action(ms(1500), true, "laptop", &hold, [0, 0].into())
        .expect("hold");
    rec.action(ms(1600), true, "phone", &tap, [0, 0].into())
        .expect("tap");
    rec.action(ms(1612), false, "phone", &tap, [0, 0].into())
        .expect("tap");
    let release = PaneAction::Link(Fault::Release(Direction::Down, 2));
    rec.action(ms(2500), false, "laptop", &release, [0, 2].into())
        .expect("release");
    let drop = PaneAction::Link(Fault::Drop(Direction::Down, 1));
    rec.action(ms(2600), false, "laptop", &drop, [0, 1].into())
        .expect("drop");
    rec.server(ms(5000), true, Stmt::ServerRestart);
    // Moving a pane is not the world's business.
    rec.action(
        ms(5100),
        false,
        "phone",
        &PaneAction::Move(1),
        [0, 0].into(),
    )
    .expect("move");
    let mut end = views.clone();
    end[0].keys.push(KeyView {
        key: like("post-1"),
        slot: KeySlot {
            shown: false.into(),
            ..KeySlot::new(&like("post-1"))
        },
        known_rev: 5,
        in_flight: None,
        follow_up_pending: false,
    });
    end[0].counters.stale = 1;
    let scenario = rec.stop(
        ms(9000),
        true,
        &end,
        Some(&server),
        &[
            Pair::both(None),
            Pair {
                up: None,
                down: Some(0),
            },
        ],
        true,
    );
    let text = write(&scenario);
    let expected_steps = "\
hold laptop down
settle
phone tap like/post-1
wait 12ms
phone tap like/post-1
wait 888ms
expect laptop queued down = 2
release laptop down 2
wait 100ms
expect laptop queued down = 1
drop laptop down 1
settle
server restart
settle
expect phone like/post-1 = false
expect phone stale = 1
expect phone rollbacks = 0
expect phone regressions = 0
expect laptop stale = 0
expect laptop rollbacks = 0
expect laptop regressions = 0
expect laptop queued down = 0
expect server settings/volume = 40
expect converged
";
    assert!(text.ends_with(expected_steps), "{text}");
    assert!(text.contains("devices phone laptop\n"), "{text}");
    let slow = duration(Preset::DEFAULT.link().latency);
    assert!(
        text.contains(&format!("latency phone {slow}\n")),
        "the pane's links: {text}"
    );
    assert!(text.contains("server set settings/volume 40\n"), "{text}");
    let back = parse("recorded.scn", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(write(&back), text);
}

#[test]
fn what_a_scenario_cannot_say_is_refused_and_a_held_frame_stops_the_start() {
    let views = [view("phone")];
    let mut rec = start(&views, &UserData::default());
    let strategy = PaneAction::Strategy(Strategy::Naive);
    assert!(
        rec.action(ms(1100), true, "phone", &strategy, [0, 0].into())
            .is_err()
    );
    let tap = PaneAction::Tap(like("p"));
    assert!(
        rec.action(ms(1100), true, "tablet", &tap, [0, 0].into())
            .is_err()
    );
    assert_eq!(rec.statements(), 0);

    let busy = [Start {
        layout: DeviceLayout::new("phone"),
        view: &views[0],
        queued: [1, 0].into(),
    }];
    let why = Recorder::start(ms(0), &busy, &UserData::default(), "x").expect_err("held");
    assert!(why.contains("phone holds 1 frame"), "{why}");
}

#[test]
fn pending_intents_offline_devices_and_holds_are_the_first_statements() {
    let mut phone = view("phone");
    phone.connection = ConnectionState::Offline;
    phone.keys.push(KeyView {
        key: Key::Volume,
        slot: KeySlot {
            shown: 70.into(),
            ..KeySlot::new(&Key::Volume)
        },
        known_rev: 0,
        in_flight: Some((70.into(), 1)),
        follow_up_pending: false,
    });
    let mut layout = DeviceLayout::new("phone");
    layout.held = [true, false].into();
    let devices = [Start {
        layout,
        view: &phone,
        queued: [0, 0].into(),
    }];
    let rec = Recorder::start(ms(0), &devices, &UserData::default(), "x").expect("starts");
    let text = write(&rec.stop(
        ms(0),
        true,
        &[phone.clone()],
        None,
        &[Pair::both(None)],
        false,
    ));
    assert!(
        text.contains("\nphone offline\nphone set settings/volume 70\nhold phone up\n"),
        "{text}"
    );
}

#[test]
fn the_world_is_quiet_only_after_the_slowest_round_trip() {
    let slow = LinkConfig {
        latency: ms(400),
        jitter: ms(50),
        loss: 0.0,
    };
    let window = Quiet::window([[LinkConfig::default(), slow].into()]);
    assert_eq!(window, ms(1000));
    let mut q = Quiet::default();
    q.observe(ms(0), false);
    assert!(!q.settled(ms(999), window));
    assert!(q.settled(ms(1000), window));
    q.observe(ms(1100), true);
    assert!(!q.settled(ms(5000), window), "busy since");
    q.observe(ms(5000), false);
    assert!(q.settled(ms(6000), window));
}

#[test]
fn expectations_follow_the_devices_when_the_panes_moved() {
    let views = [view("phone"), view("laptop")];
    let rec = start(&views, &UserData::default());
    let mut end = views.clone();
    end[1].counters.rollbacks = 2; // the laptop's
    end.reverse(); // the laptop's pane moved left of the phone's
    let queued: [Pair<Option<usize>>; 2] = [Pair::both(None), Pair::both(None)];
    let text = write(&rec.stop(ms(2000), true, &end, None, &queued, false));
    assert!(text.contains("expect laptop rollbacks = 2\n"), "{text}");
    assert!(text.contains("expect phone rollbacks = 0\n"), "{text}");
}

#[test]
fn quick_waits_are_rounded_without_drifting() {
    let views = [view("phone")];
    let mut rec = start(&views, &UserData::default());
    let tap = PaneAction::Tap(like("p"));
    for n in 1..=10 {
        let at = ms(1000) + Duration::from_micros(1400 * n);
        rec.action(at, false, "phone", &tap, [0, 0].into())
            .expect("tap");
    }
    let scenario = rec.stop(ms(1014), false, &views, None, &[Pair::both(None)], false);
    let waited: Duration = scenario
        .steps
        .iter()
        .filter_map(|s| match s.stmt {
            Stmt::Wait(d) => Some(d),
            _ => None,
        })
        .sum();
    assert_eq!(waited, ms(14), "{}", write(&scenario));
}
