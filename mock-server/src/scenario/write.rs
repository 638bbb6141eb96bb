//! Writing a scenario back as text: the parser's inverse. A recorded live session and a
//! branch saved from the player are built as a [`Scenario`] and written here, so every
//! file the app writes is one the parser reads back to the same statements.
//!
//! The text is canonical rather than a copy of what a person typed: `about` lines become
//! the leading comments, setup statements come in a fixed order, durations are written in
//! milliseconds when they are whole milliseconds, values as compact JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;
use sync_core::engine::{CursorMode, DeviceSettings};
use sync_core::protocol::Key;

use super::ast::{DeviceSetup, Expect, LinkChange, Pick, Scenario, Stmt};
use crate::link::Direction;
use crate::link::LinkConfig;

/// The scenario as a file's text.
pub fn write(scenario: &Scenario) -> String {
    let mut out = String::new();
    for line in &scenario.about {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            let _ = writeln!(out, "# {line}");
        }
    }
    if !scenario.about.is_empty() {
        out.push('\n');
    }
    if let Some(title) = &scenario.title {
        let _ = writeln!(out, "scenario {}", string(title));
    }
    let names: Vec<&str> = scenario.devices.iter().map(|d| d.name.as_str()).collect();
    let _ = writeln!(out, "devices {}", names.join(" "));
    for d in &scenario.devices {
        setup(&mut out, d);
    }
    for (_, key, value) in &scenario.server_sets {
        let _ = writeln!(out, "server set {key} {value}");
    }
    out.push('\n');
    // A link change or `server set` first would be read back as setup (before the
    // handshake): a no-op wait marks the start of the run.
    if scenario
        .steps
        .first()
        .is_some_and(|s| matches!(s.stmt, Stmt::Link(..) | Stmt::ServerSet(..)))
    {
        out.push_str("wait 0ms\n");
    }
    for step in &scenario.steps {
        for line in statement(&step.stmt, &names) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// A device's setup lines: what differs from the defaults, for both directions at once
/// where they agree.
fn setup(out: &mut String, d: &DeviceSetup) {
    let name = &d.name;
    if d.strategy != Default::default() {
        let _ = writeln!(out, "strategy {name} {}", d.strategy);
    }
    if let Some(n) = d.settings.reconnect_bound {
        let _ = writeln!(out, "reconnect attempts {name} {n}");
    }
    if d.settings.batch_size != DeviceSettings::default().batch_size {
        let _ = writeln!(out, "batch size {name} {}", d.settings.batch_size);
    }
    if d.settings.fallback_after != DeviceSettings::default().fallback_after {
        let _ = writeln!(out, "fallback after {name} {}", d.settings.fallback_after);
    }
    if d.settings.poll_interval != DeviceSettings::default().poll_interval {
        let _ = writeln!(
            out,
            "poll interval {name} {}",
            duration(d.settings.poll_interval)
        );
    }
    if d.settings.cursor == CursorMode::Clock {
        let _ = writeln!(out, "cursor {name} clock");
    }
    if d.settings.clock_skew_ms != 0 {
        let ms = d.settings.clock_skew_ms;
        let sign = if ms < 0 { "-" } else { "" };
        let skew = duration(Duration::from_millis(ms.unsigned_abs()));
        let _ = writeln!(out, "clock {name} skew {sign}{skew}");
    }
    if d.settings.auth_delay != DeviceSettings::default().auth_delay {
        let delay = d.settings.auth_delay.map_or("never".into(), duration);
        let _ = writeln!(out, "auth delay {name} {delay}");
    }
    let default = LinkConfig::default();
    let both = changes(&default, &d.up, &d.down);
    for change in &both {
        let _ = writeln!(out, "{}", link_line(name, None, *change));
    }
    for (dir, config) in [(Direction::Up, d.up), (Direction::Down, d.down)] {
        for change in changes(&default, &config, &config) {
            if !both.contains(&change) {
                let _ = writeln!(out, "{}", link_line(name, Some(dir), change));
            }
        }
    }
}

/// The changes that turn `from` into `to`, for the fields where `to` and `also` agree
/// (pass the same config twice for one direction's changes).
pub fn changes(from: &LinkConfig, to: &LinkConfig, also: &LinkConfig) -> Vec<LinkChange> {
    let mut out = Vec::new();
    if to.latency != from.latency && to.latency == also.latency {
        out.push(LinkChange::Latency(to.latency));
    }
    if to.jitter != from.jitter && to.jitter == also.jitter {
        out.push(LinkChange::Jitter(to.jitter));
    }
    if to.loss != from.loss && to.loss == also.loss {
        out.push(LinkChange::Loss(to.loss));
    }
    out
}

fn link_line(device: &str, dir: Option<Direction>, change: LinkChange) -> String {
    let dir = dir.map_or(String::new(), |d| format!(" {}", d.name()));
    match change {
        LinkChange::Latency(d) => format!("latency {device}{dir} {}", duration(d)),
        LinkChange::Jitter(d) => format!("jitter {device}{dir} {}", duration(d)),
        LinkChange::Loss(p) => format!("loss {device}{dir} {}", percent(p)),
    }
}

/// A statement's lines (one, except a link change for several devices).
pub fn statement(stmt: &Stmt, names: &[&str]) -> Vec<String> {
    let n = |d: &usize| name(names, *d);
    let dir = |d: &Option<Direction>| d.map_or(String::new(), |d| format!(" {}", d.name()));
    vec![match stmt {
        Stmt::Tap(d, key) => format!("{} tap {key}", n(d)),
        Stmt::Set(d, key, value) => format!("{} set {key} {value}", n(d)),
        Stmt::Comment(d, key, text) => format!("{} comment {} {}", n(d), post(key), string(text)),
        Stmt::EditComment(d, key, id, text) => {
            format!("{} edit comment {} {id} {}", n(d), post(key), string(text))
        }
        Stmt::DeleteComment(d, key, id) => format!("{} delete comment {} {id}", n(d), post(key)),
        Stmt::Offline(d) => format!("{} offline", n(d)),
        Stmt::Online(d) => format!("{} online", n(d)),
        Stmt::Restart(d) => format!("{} restart", n(d)),
        Stmt::Retry(d) => format!("{} retry", n(d)),
        Stmt::Hold(d, to) => format!("hold {}{}", n(d), dir(to)),
        Stmt::Unhold(d, to) => format!("unhold {}{}", n(d), dir(to)),
        Stmt::Release(d, to, pick) => {
            let pick = match pick {
                Pick::Nth(k) => k.to_string(),
                Pick::All => "all".into(),
                Pick::Last => "last".into(),
            };
            format!("release {} {} {pick}", n(d), to.name())
        }
        Stmt::Drop(d, to, k) => format!("drop {} {} {k}", n(d), to.name()),
        // `latency D` alone sets every device's links both ways.
        Stmt::Link(devices, None, LinkChange::Latency(d))
            if devices.len() == names.len() && devices.iter().enumerate().all(|(i, d)| i == *d) =>
        {
            format!("latency {}", duration(*d))
        }
        Stmt::Link(devices, to, change) => {
            return devices
                .iter()
                .map(|d| link_line(n(d), *to, *change))
                .collect();
        }
        Stmt::ServerReject(key) => format!("server reject {key}"),
        Stmt::ServerRestart => "server restart".into(),
        Stmt::ServerRotateToken => "server rotate token".into(),
        Stmt::ServerBlockWebsocket(true) => "server block websocket".into(),
        Stmt::ServerBlockWebsocket(false) => "server unblock websocket".into(),
        Stmt::ServerSet(key, value) => format!("server set {key} {value}"),
        Stmt::Say(text) => format!("say {}", string(text)),
        Stmt::Pause => "pause".into(),
        Stmt::Wait(d) => format!("wait {}", duration(*d)),
        Stmt::Settle => "settle".into(),
        Stmt::Expect(e) => format!("expect {}", expectation(e, names)),
    }]
}

/// A device's name by index (`?` for one the scenario does not have).
fn name<'a>(names: &[&'a str], d: usize) -> &'a str {
    names.get(d).copied().unwrap_or("?")
}

fn expectation(e: &Expect, names: &[&str]) -> String {
    let n = |d: &usize| name(names, *d);
    match e {
        Expect::Value(d, key, v) => format!("{} {key} = {v}", n(d)),
        Expect::Rev(d, key, r) => format!("{} {key} rev {r}", n(d)),
        Expect::Requests(d, key, k) => format!("{} requests {key} = {k}", n(d)),
        Expect::Stale(d, k) => format!("{} stale = {k}", n(d)),
        Expect::Rollbacks(d, k) => format!("{} rollbacks = {k}", n(d)),
        Expect::Regressions(d, k) => format!("{} regressions = {k}", n(d)),
        Expect::Inflight(d, key, b) => format!("{} inflight {key} = {b}", n(d)),
        Expect::Queued(d, dir, k) => format!("{} queued {} = {k}", n(d), dir.name()),
        Expect::FramesUp(d, k) => format!("{} frames up = {k}", n(d)),
        Expect::ServerValue(key, v) => format!("server {key} = {v}"),
        Expect::ServerRev(key, r) => format!("server {key} rev {r}"),
        Expect::ServerWrites(k) => format!("server writes = {k}"),
        Expect::Converged => "converged".into(),
        Expect::DeviceConverged(d) => format!("{} converged", n(d)),
        Expect::Connection(d, state) => format!("{} connection = {state}", n(d)),
    }
}

/// `comments/POST` → `POST`.
fn post(key: &Key) -> String {
    match key {
        Key::Comments(post) => post.to_string(),
        other => other.to_string(),
    }
}

/// A JSON string literal: the parser reads strings as JSON.
fn string(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

/// `250ms` when whole milliseconds, else seconds.
pub fn duration(d: Duration) -> String {
    if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// `5%`: the probability as a percentage, without float noise (`5%`, not
/// `5.000000000000001%`).
fn percent(p: f64) -> String {
    let pct = (p * 100.0 * 1e6).round() / 1e6;
    format!("{pct}%")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse;

    /// Every lesson, written and parsed again, is the same scenario (line numbers aside),
    /// and writing is stable.
    #[test]
    fn every_lesson_reads_back_as_written() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("assets/scenarios") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "scn") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable");
            let first = parse(&path.display().to_string(), &text).expect("parses");
            let written = write(&first);
            let second =
                parse("written.scn", &written).unwrap_or_else(|e| panic!("{e}\n{written}"));
            assert_eq!(
                strip_lines(&first),
                strip_lines(&second),
                "{}",
                path.display()
            );
            assert_eq!(write(&second), written, "{}", path.display());
            n += 1;
        }
        assert!(n >= 20, "only {n} lessons found");
    }

    /// Every statement's form, including the ones no lesson uses yet.
    #[test]
    fn every_statement_reads_back_as_written() {
        let text = r#"# A comment line.
#
# Another.
scenario "Quotes \" and # inside"
devices phone laptop
strategy phone naive
reconnect attempts laptop 3
latency phone up 120ms
latency phone down 80ms
jitter laptop 15ms
loss laptop down 2.5%
server set settings/volume 40
phone tap like/p1
phone set settings/display_name "Ana # not a comment"
laptop comment p1 "hi \"there\""
laptop edit comment p1 3 "edited # not a comment"
phone delete comment p1 3
phone offline
phone online
laptop restart
phone retry
hold phone
hold laptop down
release laptop down 2
release laptop down all
release laptop down last
drop phone up 1
unhold phone up
unhold laptop
latency laptop up 1500ms
loss phone 10%
server reject like/p1
server restart
server set settings/dark_mode true
say "Watch the phone."
pause
wait 250ms
wait 0.0005s
settle
expect phone like/p1 = true
expect phone like/p1 rev 3
expect phone requests like/p1 = 2
expect phone stale = 0
expect phone rollbacks = 1
expect phone regressions = 0
expect phone inflight like/p1 = false
expect laptop queued down = 0
expect server settings/volume = 40
expect server like/p1 rev 2
expect server writes = 4
expect converged
expect laptop converged
expect laptop connection = auth-failed
"#;
        let first = parse("all.scn", text).unwrap_or_else(|e| panic!("{e}"));
        let written = write(&first);
        let second = parse("written.scn", &written).unwrap_or_else(|e| panic!("{e}\n{written}"));
        assert_eq!(strip_lines(&first), strip_lines(&second), "{written}");
        assert_eq!(first.about, vec!["A comment line.", "", "Another."]);
    }

    fn strip_lines(s: &Scenario) -> Scenario {
        let mut s = s.clone();
        s.devices_line = 0;
        for (line, _, _) in &mut s.server_sets {
            *line = 0;
        }
        for step in &mut s.steps {
            step.line = 0;
        }
        s
    }
}
