//! The scenario language: SCENARIOS.md's example, the parse errors, run-time failures.

use super::*;

const EXAMPLE: &str = r#"
scenario "Three quick taps cost one request"
devices phone laptop
strategy phone sync
latency 200ms

phone tap like/post-1
wait 10ms
phone tap like/post-1
wait 10ms
phone tap like/post-1
expect phone like/post-1 = true
expect phone inflight like/post-1 = true
settle
expect phone requests like/post-1 = 1   # value-based: the final value equals the one sent
expect laptop like/post-1 = true
expect converged
"#;

fn run(text: &str) -> Verdict {
    let scenario = parse("t.scn", text).unwrap_or_else(|e| panic!("{e}"));
    Runner::new(scenario, 0).run_to_end().clone()
}

#[test]
fn the_example_of_scenarios_md_passes() {
    assert_eq!(run(EXAMPLE), Verdict::Pass);
}

#[test]
fn with_sync_with_push_the_same_taps_cost_two_requests() {
    let text = EXAMPLE
        .replace("strategy phone sync", "strategy phone sync-with-push")
        .replace("requests like/post-1 = 1", "requests like/post-1 = 2");
    assert_eq!(run(&text), Verdict::Pass);
}

#[test]
fn a_failed_expectation_names_its_line_and_values_and_stops() {
    let text =
        "devices phone\nphone tap like/a\nexpect phone like/a = false\nexpect phone like/a = 7\n";
    assert_eq!(
        run(text),
        Verdict::Fail {
            line: 3,
            message: "expected phone like/a = false, got true".into()
        }
    );
}

#[test]
fn run_time_errors_fail_the_file_at_their_line() {
    let text = "devices phone\nhold phone up\nphone tap like/a\nrelease phone up 3\n";
    let Verdict::Fail { line, message } = run(text) else {
        panic!()
    };
    assert_eq!(line, 4);
    assert!(message.contains("no frame 3 on a queue of 1"), "{message}");
}

#[test]
fn a_setup_whose_devices_cannot_connect_fails_at_the_devices_line() {
    let text = "# A link that loses everything.\ndevices phone laptop\nloss phone 100%\nphone tap like/a\n";
    let Verdict::Fail { line, message } = run(text) else {
        panic!()
    };
    assert_eq!(line, 2);
    assert!(message.contains("phone: reconnecting"), "{message}");
}

#[test]
fn comments_titles_and_about_lines() {
    let s = parse(
        "t.scn",
        "# What this teaches.\n# Second line.\nscenario \"A # not a comment\" # a comment\ndevices a\n",
    )
    .unwrap();
    assert_eq!(s.title.as_deref(), Some("A # not a comment"));
    assert_eq!(s.about, ["What this teaches.", "Second line."]);
}

fn err(text: &str) -> String {
    parse("f.scn", text).unwrap_err().to_string()
}

#[test]
fn parse_errors_give_file_line_column_and_what_was_expected() {
    assert_eq!(
        err("devices phone\nphone tap settings/volume\n"),
        "f.scn:2:11: `tap` toggles a boolean key; `settings/volume` is not one"
    );
    assert_eq!(
        err("devices phone\nlaptop tap like/a\n"),
        "f.scn:2:1: unknown device or statement `laptop`: the devices are phone"
    );
    assert!(
        err("devices phone\nphone set settings/volume tru\n")
            .starts_with("f.scn:2:27: `tru` is not a JSON value")
    );
    assert!(err("devices phone\nwait 5 minutes\n").starts_with("f.scn:2:6: expected a duration"));
    assert!(
        err("devices phone\nphone tap like/a\nlatency phone 5ms\nstrategy sync\n")
            .starts_with("f.scn:4:1: `strategy` is a setup statement")
    );
    assert!(err("phone tap like/a\n").contains("no `devices` statement before this line"));
    assert!(err("devices server\n").starts_with("f.scn:1:9: `server` cannot name a device"));
    // `expect converged` would not know a device from the statement.
    assert!(err("devices a converged\n").starts_with("f.scn:1:11: `converged` cannot name"));
    assert!(err("devices a a\n").contains("listed twice"));
    assert!(err("devices a\nexpect a like/b == true\n").contains("expected `=` or `rev`"));
    assert!(err("devices a\na tap like/B\n").starts_with("f.scn:2:7: `like/B` is not a key"));
    assert!(err("devices a\nrelease a sideways 1\n").contains("expected `up` or `down`"));
    assert!(err("devices a\nrelease a up 0\n").contains("positions start at 1"));
    assert!(err("devices a\nloss a 120%\n").contains("0% to 100%"));
    assert!(err("devices a\nstrategy a fast\n").contains("unknown strategy `fast`"));
    assert!(err("devices a\na tap like/b extra\n").contains("unexpected `extra`"));
    assert!(err("devices a\na comment p hi\n").contains("the comment's text in double quotes"));
    assert!(err("devices a\nserver set settings/volume 500\n").contains("cannot store"));
    assert!(err("devices a\na set comments/p []\n").contains("use `comment POST"));
    assert!(err("# only a comment\n").contains("no `devices` statement"));
    assert!(
        err("strategy sync\ndevices a\n").starts_with("f.scn:1:1: `strategy` needs the devices")
    );
    assert!(err("latency 5ms\ndevices a\n").contains("needs the devices"));
}

/// The setup statements of the seeds' systems: what they accept, how they refuse, and
/// that `write` gives back what `parse` read.
#[test]
fn device_settings_parse_refuse_and_write_back() {
    let text = "devices a b\nbatch size a 2\nauth delay a never\nauth delay b 1.5s\n\
                cursor a clock\nclock a skew -5s\nclock b skew 250ms\na tap like/x\n\
                server rotate token\nexpect a frames up = 1\n";
    let s = parse("f.scn", text).unwrap();
    let (a, b) = (s.devices[0].settings, s.devices[1].settings);
    assert_eq!(a.batch_size, 2);
    assert_eq!(a.auth_delay, None);
    assert_eq!(b.auth_delay, Some(std::time::Duration::from_millis(1500)));
    assert_eq!(a.cursor, sync_core::engine::CursorMode::Clock);
    assert_eq!((a.clock_skew_ms, b.clock_skew_ms), (-5000, 250));
    let again = parse("g.scn", &write(&s)).unwrap();
    assert_eq!(again.devices, s.devices);
    assert_eq!(again.steps.len(), s.steps.len());
    assert!(err("devices a\nbatch size a 65\n").contains("from 1 to 64"));
    assert!(err("devices a\nbatch size a 0\n").contains("from 1 to 64"));
    assert!(err("devices a\nbatch count a 2\n").contains("expected `size`"));
    assert!(err("devices a\ncursor a wall\n").contains("`clock` or `revision`"));
    assert!(err("devices a\nclock a skew -5\n").contains("found `-5`"));
    assert!(err("devices a\nclock a skew 0.0004s\n").contains("whole milliseconds"));
    assert!(err("devices a\nauth delay a soon\n").contains("found `soon`"));
    assert!(err("devices a\nserver rotate key\n").contains("expected `token`"));
    assert!(err("devices a\nexpect a frames down = 1\n").contains("expected `up`"));
    assert!(err("devices a\na tap like/x\nbatch size a 2\n").contains("is a setup statement"));
}

#[test]
fn setup_server_set_arrives_in_welcome_and_mid_run_link_changes_apply() {
    let text = r#"
devices phone
server set settings/display_name "Ana"
expect phone settings/display_name = "Ana"
expect phone settings/display_name rev 1
latency phone up 1s
phone tap like/a
wait 900ms
expect server like/a = false
wait 200ms
expect server like/a = true
expect server writes = 2
"#;
    assert_eq!(run(text), Verdict::Pass);
}

#[test]
fn stepping_event_by_event_ends_as_stepping_statements() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/scenarios");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        let scenario = parse(&name, &text).unwrap();
        let mut whole = Runner::new(scenario.clone(), 3);
        let mut events = Runner::new(scenario, 3);
        whole.run_to_end();
        let mut steps = 0;
        let mut ongoing = false;
        while events.step_event().is_some() {
            steps += 1;
            ongoing |= events.in_progress();
        }
        assert_eq!(events.verdict(), whole.verdict(), "{name}");
        assert_eq!(
            events.world().trace,
            whole.world().trace,
            "{name}: the same events"
        );
        assert!(steps > events.scenario().steps.len() || !ongoing, "{name}");
    }
}

#[test]
fn say_narrates_into_the_trace_and_pause_changes_nothing() {
    let text = "devices a b\nsay \"a taps; b sees it\"\npause\na tap like/p\nsettle\nexpect b like/p = true\n";
    let scenario = parse("t.scn", text).unwrap();
    let mut runner = Runner::new(scenario, 0);
    assert_eq!(runner.run_to_end(), &Verdict::Pass);
    let lines = runner.trace_lines(0);
    assert_eq!(lines[0], "[   0.000s] say      a taps; b sees it");
    assert!(err("devices a\nsay hello\n").contains("the narration in double quotes"));
    assert!(err("devices a\nsay \"x\" \"y\"\n").contains("narration in double quotes"));
    assert!(err("devices a\npause now\n").contains("unexpected `now`"));
    for word in ["say", "pause", "clock", "batch"] {
        assert!(
            err(&format!("devices a {word}\n")).contains("cannot name a device"),
            "{word}"
        );
    }
}

/// A learner's release out of order, done between statements, is in the transcript at its
/// virtual time: written out and run again, the transcript ends in the same state.
#[test]
fn a_transcript_with_a_learners_action_replays_to_the_same_state() {
    use crate::link::Direction;
    use ast::{Pick, Stmt};
    use sync_core::protocol::Key;

    let text = "devices phone laptop\nstrategy phone sync\nlatency 100ms\nhold laptop down\n\
                phone tap like/a\nwait 30ms\nphone tap like/a\nwait 400ms\n\
                expect laptop queued down = 2\nwait 50ms\n";
    let mut runner = Runner::new(parse("t.scn", text).expect("parses"), 0);
    // Up to the expectation, then the learner releases the newest push first.
    for _ in 0..6 {
        runner.step();
    }
    let lesson = Stmt::Release(1, Direction::Down, Pick::Nth(2));
    runner.act(&lesson).expect("two frames are held");
    assert!(runner.act(&Stmt::Settle).is_err(), "only actions");
    assert!(
        runner
            .act(&Stmt::Release(1, Direction::Down, Pick::Nth(5)))
            .is_err()
    );
    runner.run_to_end();
    runner
        .act(&Stmt::Tap(0, Key::Like("b".into())))
        .expect("taps");
    runner
        .world_mut()
        .wait(std::time::Duration::from_millis(500));

    let written = write(&runner.transcript());
    assert!(written.contains("release laptop down 2\n"), "{written}");
    assert!(
        written.contains("expect laptop queued down = 2\n"),
        "{written}"
    );
    let mut again = Runner::new(parse("branch.scn", &written).expect("reads back"), 0);
    assert_eq!(again.run_to_end(), &Verdict::Pass);
    assert_eq!(again.elapsed(), runner.elapsed(), "{written}");
    for (a, b) in again.world().devices().iter().zip(runner.world().devices()) {
        assert_eq!(a.engine.view(), b.engine.view(), "{written}");
    }
    assert_eq!(
        again.world().core().writes(),
        runner.world().core().writes()
    );
}

/// Shrinking keeps only what the failure needs: twenty statements of noise around a
/// failing expectation go, and the expectation stays.
#[test]
fn shrinking_drops_what_the_failure_does_not_need() {
    let mut text = String::from("devices phone laptop\njitter phone 30ms\nloss laptop 5%\n");
    for i in 0..10 {
        text.push_str(&format!("laptop tap like/n{i}\nwait {}ms\n", 40 + i));
    }
    text.push_str("expect phone settings/volume = 7\n");
    let scenario = parse("noise.scn", &text).unwrap();
    let shrunk = shrink::shrink(scenario, 3).expect("it fails");
    assert_eq!(shrunk.from, 21);
    assert_eq!(
        shrunk.failed.failure,
        shrink::Failure::Statement("expected phone settings/volume = ".into())
    );
    let written = write(&shrunk.scenario);
    assert_eq!(
        written, "devices phone\n\nexpect phone settings/volume = 7\n",
        "{written}"
    );
    assert!(shrink::shrink(parse("ok.scn", "devices phone\n").unwrap(), 0).is_none());
}

/// A broken invariant ends the run where it broke, and what broke it stays in the
/// transcript; a learner's action that breaks one after the script passed turns the
/// verdict to a failure (an engine broken on purpose: stale pushes applied).
#[test]
fn a_broken_invariant_fails_the_run_and_stays_in_its_transcript() {
    use super::ast::{Pick, Stmt};
    use crate::link::Direction;
    use sync_core::engine::mutant::{Mutant, during};
    let two_pushes = "devices phone\nwait 0ms\nserver set settings/volume 8\n\
                      server set settings/volume 70\n";
    during(Mutant::ApplyStalePushes, || {
        let text = format!("{two_pushes}release phone down 2\nrelease phone down 1\n");
        let mut runner = Runner::new(parse("s.scn", &text).unwrap(), 0);
        let Verdict::Fail { line, message } = runner.run_to_end().clone() else {
            panic!("the stale push breaks invariant 4");
        };
        assert_eq!((line, runner.violation().map(|v| v.number)), (6, Some(4)));
        assert!(message.starts_with("invariant 4"), "{message}");
        let transcript = write(&runner.transcript());
        assert!(
            transcript.ends_with("release phone down 2\nrelease phone down 1\n"),
            "{transcript}"
        );
        let mut runner = Runner::new(parse("s.scn", two_pushes).unwrap(), 0);
        assert_eq!(runner.run_to_end(), &Verdict::Pass);
        runner
            .act(&Stmt::Release(0, Direction::Down, Pick::Nth(2)))
            .unwrap();
        assert_eq!(runner.verdict(), Some(&Verdict::Pass));
        let _ = runner.act(&Stmt::Release(0, Direction::Down, Pick::Nth(1)));
        assert!(
            matches!(runner.verdict(), Some(Verdict::Fail { line: 4, .. })),
            "{:?}",
            runner.verdict()
        );
    });
}
