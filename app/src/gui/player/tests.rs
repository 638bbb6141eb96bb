//! The player: lessons built in, stepping, the wire, charts, the timeline, branches,
//! failures shown.

use mock_server::link::{Direction, Fault};
use mock_server::scenario::{Runner, StepOutcome};

use super::*;
use crate::gui::pane::PaneAction;

/// Where two held frames could go next, the learner delivers the newer one first;
/// the run saved as a branch replays to the very state the player shows.
#[test]
fn a_branch_taken_in_a_pane_is_saved_and_replays_to_the_same_state() {
    let text = "scenario \"Two pushes\"\ndevices phone laptop\nhold laptop down\n\
                phone tap like/p\nsettle\nphone tap like/p\nsettle\n\
                expect laptop queued down = 2\nrelease laptop down 1\nsettle\n";
    let mut p = Player::new("two.scn", text);
    while p.next_line() != Some(9) {
        assert!(p.step(), "the release is reached");
    }
    let run = p.run.as_mut().expect("parsed");
    assert_eq!(run.branch_points(), ["laptop's down link holds 2 frames"]);
    let newer = Fault::Release(Direction::Down, 2);
    run.act(1, PaneAction::Link(newer)).expect("held");
    while p.step() {}
    assert_eq!(p.verdict(), Some(&Verdict::Pass));
    let branch = p.branch().expect("a run");
    assert!(
        branch.contains("scenario \"Two pushes (a branch)\"\n"),
        "{branch}"
    );
    assert!(
        branch.contains(
            "expect laptop queued down = 2\nrelease laptop down 2\nrelease laptop down 1\n"
        ),
        "{branch}"
    );
    let mut again = Runner::new(parse("branch.scn", &branch).expect("reads back"), 0);
    assert_eq!(again.run_to_end(), &Verdict::Pass, "{branch}");
    let world = p.run.as_ref().expect("parsed").runner.world();
    for (a, b) in again.world().devices().iter().zip(world.devices()) {
        assert_eq!(a.engine.view(), b.engine.view(), "{branch}");
    }
}

#[test]
fn every_lesson_in_assets_is_built_in() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/scenarios");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".scn"))
        .collect();
    files.sort();
    let built_in: Vec<&str> = LESSONS.iter().map(|(n, _)| *n).collect();
    assert_eq!(built_in, files);
}

#[test]
fn stepping_a_lesson_to_the_end_gives_the_headless_verdict() {
    for (name, text) in LESSONS {
        let mut player = Player::new(name, text);
        while player.step() {}
        assert_eq!(player.verdict(), Some(&Verdict::Pass), "{name}");
        let run = player.run.as_ref().unwrap();
        let held = run
            .outcomes
            .values()
            .filter(|o| matches!(o, StepOutcome::Held(_)))
            .count();
        assert!(held > 0, "{name}: every lesson checks something");
    }
}

#[test]
fn the_wire_view_shows_the_run_at_virtual_times() {
    // Lesson 02: three taps under sync-with-push, 50 ms links.
    let (name, text) = LESSONS[1];
    let mut player = Player::new(name, text);
    while player.step() {}
    let run = player.run.as_mut().unwrap();
    run.feed();
    let arrows: Vec<&crate::export::Frame> = run.wire.arrows().collect();
    assert!(!arrows.is_empty());
    let devices: Vec<&str> = run
        .runner
        .world()
        .devices()
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert!(arrows.iter().all(|a| devices.contains(&a.device.as_str())));
    // Every arrow has a time, in order, and the first request leaves at time 0.
    let times: Vec<Duration> = arrows.iter().map(|a| a.at).collect();
    assert!(times.is_sorted(), "{times:?}");
    let first_request = arrows.iter().find(|a| a.label.starts_with("req ")).unwrap();
    assert_eq!(first_request.at, Duration::ZERO, "{}", first_request.label);
    // Fed again, nothing is added twice.
    let n = arrows.len();
    run.feed();
    assert_eq!(run.wire.arrows().count(), n);
}

#[test]
fn a_simulated_devices_chart_ends_a_burst_when_it_agrees() {
    // Lesson 01: the phone taps three times, then everyone settles.
    let (name, text) = LESSONS[0];
    let mut player = Player::new(name, text);
    while player.step() {
        player.run.as_mut().unwrap().feed();
    }
    let run = player.run.as_ref().unwrap();
    let bursts = run.panes[0].chart.bursts();
    assert_eq!(bursts.len(), 1, "{bursts:?}");
    let [_, took, per_intent] = bursts[0];
    assert!(took > 0.0 && per_intent < 1.0, "{bursts:?}");
    assert!(
        run.panes[1].chart.bursts().is_empty(),
        "the laptop made no intent"
    );
}

#[test]
fn the_timeline_jumps_to_any_event_as_stepping_there_would() {
    let (name, text) = LESSONS[4];
    let mut stepped = Player::new(name, text);
    let total = stepped.timeline().unwrap().1;
    let mut n = 0;
    while stepped.step_event() {
        n += 1;
        let mut jumped = Player::new(name, text);
        jumped.scrub_to(stepped.timeline().unwrap().0);
        let (a, b) = (stepped.run.as_ref().unwrap(), jumped.run.as_ref().unwrap());
        assert_eq!(a.runner.world().trace, b.runner.world().trace, "event {n}");
        assert_eq!(stepped.next_line(), jumped.next_line());
    }
    assert_eq!(
        stepped.timeline(),
        Some((total, total)),
        "the whole run counted"
    );
    assert!(total > 10, "{total}");
}

/// A learner's tap survives jumps back and forth on the timeline: it is redone when a
/// jump lands after it, and gone while one lands before.
#[test]
fn the_timeline_keeps_a_learners_action_taken_before_the_jump() {
    let (name, text) = LESSONS[4];
    let mut p = Player::new(name, text);
    for _ in 0..3 {
        p.step_event();
    }
    let run = p.run.as_mut().unwrap();
    let at = run.events;
    run.act(
        1,
        PaneAction::Tap(sync_core::protocol::Key::Like("post-3".into())),
    )
    .unwrap();
    for _ in 0..4 {
        p.step_event();
    }
    let intents = |p: &Player| {
        p.run.as_ref().unwrap().runner.world().devices()[1]
            .engine
            .counters()
            .intents
    };
    assert_eq!(intents(&p), 1);
    let end = p.timeline().unwrap().0;
    p.scrub_to(at - 1);
    assert_eq!(intents(&p), 0, "before the tap");
    assert_eq!(p.timeline().unwrap().0, at - 1);
    p.scrub_to(end);
    assert_eq!(intents(&p), 1, "after it again: redone");
    assert_eq!(p.timeline().unwrap().0, end);

    let mut p = Player::new(name, text);
    for _ in 0..3 {
        p.step_event();
    }
    let run = p.run.as_mut().unwrap();
    run.act(
        1,
        PaneAction::Tap(sync_core::protocol::Key::Like("post-3".into())),
    )
    .unwrap();
    for _ in 0..4 {
        p.step_event();
    }
    let end = p.timeline().unwrap().0;
    p.scrub_to(end - 1);
    assert_eq!(intents(&p), 1, "after the tap: redone");
    assert_eq!(p.timeline().unwrap().0, end - 1);
    p.scrub_to(at + 100);
    assert_eq!(intents(&p), 1, "beyond the branch's end the script goes on");
}

/// A branch saved between two deliveries due at the same instant (stepping event by
/// event) still replays to the state the player shows: the instant is finished first.
#[test]
fn a_branch_saved_inside_an_instant_replays_to_the_same_state() {
    let (name, text) = LESSONS[23];
    assert!(name.starts_with("24-"), "{name}");
    let mut p = Player::new(name, text);
    // Into the `settle` after the drag, to the first delivery at 0.200 s.
    loop {
        assert!(p.step_event());
        let run = p.run.as_ref().unwrap();
        let world = run.runner.world();
        if run.runner.elapsed() >= Duration::from_millis(200)
            && world.next_event_at() == Some(world.now())
        {
            break;
        }
    }
    let branch = p.branch().unwrap();
    let mut again = Runner::new(parse("b.scn", &branch).unwrap(), 0);
    assert_eq!(again.run_to_end(), &Verdict::Pass, "{branch}");
    let world = p.run.as_ref().unwrap().runner.world();
    for (a, b) in again.world().devices().iter().zip(world.devices()) {
        assert_eq!(a.engine.view(), b.engine.view(), "{branch}");
    }
}

/// The timeline's length grows with a learner's own events, so the position never
/// runs past its end.
#[test]
fn the_timeline_holds_a_learners_extra_events() {
    let (name, text) = LESSONS[0];
    let mut p = Player::new(name, text);
    let run = p.run.as_mut().unwrap();
    run.act(
        1,
        PaneAction::Tap(sync_core::protocol::Key::Like("post-2".into())),
    )
    .unwrap();
    while run.step_event() {}
    assert!(
        run.events > run.total,
        "the tap added events to the script's"
    );
    let (at, total) = p.timeline().unwrap();
    assert!(at <= total, "{at} of {total}");
}

#[test]
fn a_failing_expectation_and_a_parse_error_are_shown() {
    let text = "devices a\na tap like/p\nsettle\nexpect a like/p = false\n";
    let mut player = Player::new("mine.scn", text);
    while player.step() {}
    assert!(
        matches!(player.verdict(), Some(Verdict::Fail { line: 4, .. })),
        "{:?}",
        player.verdict()
    );
    let player = Player::new("bad.scn", "devices a\na jump\n");
    let err = player.run.as_ref().err().unwrap();
    assert!(err.starts_with("bad.scn:2:"), "{err}");
}

/// Two pushes of the volume delivered newest first: the second one is stale. An engine
/// that applies stale pushes (a test-only mutant) breaks invariant 4 at the `wait` that
/// delivers it.
const STALE_PUSH: &str = "scenario \"Stale push\"\ndevices phone\n\nwait 0ms\n\
                          server set settings/volume 8\nserver set settings/volume 70\n\
                          release phone down 2\nwait 50ms\n";

/// Opened at its failure, a counterexample stops at the event that breaks the invariant,
/// named; one step back is the moment before, when the device still showed the newer value.
#[test]
fn to_failure_stops_where_the_invariant_breaks_and_back_is_the_moment_before() {
    use sync_core::engine::mutant::{Mutant, during};
    use sync_core::protocol::Key;
    let volume = |p: &Player| {
        let run = p.run.as_ref().expect("parsed");
        run.runner.world().devices()[0].engine.shown(&Key::Volume)
    };
    during(Mutant::ApplyStalePushes, || {
        let mut p = Player::new("stale.scn", STALE_PUSH);
        assert!(p.to_failure(), "the mutant breaks an invariant");
        let Some(Verdict::Fail { line, message }) = p.verdict().cloned() else {
            panic!("a failure");
        };
        assert_eq!(line, 8, "{message}");
        assert!(
            message.starts_with("invariant 4 (revisions never regress)"),
            "{message}"
        );
        let run = p.run.as_ref().expect("parsed");
        assert_eq!(run.runner.violation().map(|v| v.number), Some(4));
        assert_eq!(volume(&p), serde_json::json!(8), "the stale value is shown");
        assert!(p.step_back());
        assert_eq!(p.verdict(), None);
        assert_eq!(volume(&p), serde_json::json!(70), "the moment before");
    });
    // The sound engine ignores the stale push: nothing to stop at.
    let mut p = Player::new("stale.scn", STALE_PUSH);
    assert!(!p.to_failure());
    assert_eq!(p.verdict(), Some(&Verdict::Pass));
}
