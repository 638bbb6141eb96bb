//! The scenario parser: SCENARIOS.md's syntax, line by line, with errors that give
//! `file:line:col` and say what was expected.
//!
//! Everything that can be found by reading the file is found here, before anything runs:
//! unknown statements and devices, `tap` on a non-boolean key, values that are not JSON,
//! setup statements after the run has started.
//!
//! One file (it is long): it reads like SCENARIOS.md's tables, statement by statement,
//! and every statement shares the same few word readers at the end.

use std::time::Duration;

use serde_json::Value;
use sync_core::engine::settings::MIN_POLL_INTERVAL;
use sync_core::engine::{CursorMode, DeviceSettings, Strategy};
use sync_core::protocol::frames::MAX_BATCH;
use sync_core::protocol::model::{is_valid_device_id, is_valid_post};
use sync_core::protocol::{Key, ValueKind};

use super::ast::{DeviceSetup, Expect, LinkChange, Pick, Scenario, Step, Stmt};
use crate::link::Direction;
use crate::link::LinkConfig;

/// A parse error: where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct ParseError {
    /// The file name as given.
    pub file: String,
    /// Line, 1-based.
    pub line: usize,
    /// Column (in characters), 1-based.
    pub col: usize,
    /// What was wrong, and what was expected.
    pub message: String,
}

/// Words that start statements: they cannot name a device.
const KEYWORDS: [&str; 24] = [
    "scenario",
    "devices",
    "strategy",
    "latency",
    "jitter",
    "loss",
    "server",
    "hold",
    "unhold",
    "release",
    "drop",
    "wait",
    "settle",
    "expect",
    "converged",
    "say",
    "pause",
    "reconnect",
    "fallback",
    "poll",
    "batch",
    "auth",
    "cursor",
    "clock",
];

/// The states `expect DEVICE connection = STATE` names (SCENARIOS.md).
const CONNECTION_STATES: [&str; 8] = [
    "connecting",
    "connected",
    "reconnecting",
    "polling",
    "offline",
    "error",
    "auth-failed",
    "closed",
];

/// Parses a scenario file's text. `file` is used in error messages only.
pub fn parse(file: &str, text: &str) -> Result<Scenario, ParseError> {
    let mut p = Parser {
        file,
        scenario: Scenario {
            title: None,
            about: Vec::new(),
            devices: Vec::new(),
            devices_line: 0,
            server_sets: Vec::new(),
            steps: Vec::new(),
        },
        started: false,
        seen_statement: false,
    };
    for (n, raw) in text.lines().enumerate() {
        let line = Line::new(n + 1, raw);
        if line.words.is_empty() {
            if !p.seen_statement
                && let Some(comment) = raw.trim_start().strip_prefix('#')
            {
                p.scenario.about.push(comment.trim().to_string());
            }
            continue;
        }
        p.seen_statement = true;
        p.statement(&line)?;
    }
    if p.scenario.devices.is_empty() {
        return Err(ParseError {
            file: file.to_string(),
            line: 1,
            col: 1,
            message: "no `devices` statement: a scenario needs at least one device".into(),
        });
    }
    Ok(p.scenario)
}

/// One line, cut into words (with their columns); `#` starts a comment outside a string.
struct Line<'a> {
    number: usize,
    text: &'a str,
    words: Vec<(usize, &'a str)>,
}

impl<'a> Line<'a> {
    fn new(number: usize, raw: &'a str) -> Self {
        let text = strip_comment(raw);
        let mut words = Vec::new();
        let mut start = None;
        let mut in_string = false;
        let mut escaped = false;
        for (i, c) in text.char_indices() {
            if in_string {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            if c.is_whitespace() {
                if let Some(s) = start.take() {
                    words.push((s, &text[s..i]));
                }
            } else {
                start.get_or_insert(i);
                if c == '"' {
                    in_string = true;
                }
            }
        }
        if let Some(s) = start {
            words.push((s, &text[s..]));
        }
        Line {
            number,
            text,
            words,
        }
    }

    fn word(&self, i: usize) -> Option<&'a str> {
        self.words.get(i).map(|w| w.1)
    }

    /// The column of word `i` (or of the end of the line).
    fn col(&self, i: usize) -> usize {
        let byte = self
            .words
            .get(i)
            .map_or(self.text.trim_end().len(), |w| w.0);
        self.text[..byte].chars().count() + 1
    }

    /// The text from word `i` to the end of the line.
    fn rest(&self, i: usize) -> Option<&'a str> {
        self.words.get(i).map(|w| self.text[w.0..].trim_end())
    }
}

fn strip_comment(raw: &str) -> &str {
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in raw.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c == '#' {
            return &raw[..i];
        }
    }
    raw
}

struct Parser<'f> {
    file: &'f str,
    scenario: Scenario,
    /// The run has started (an action or expectation was seen): setup is over.
    started: bool,
    seen_statement: bool,
}

type R<T> = Result<T, ParseError>;

impl Parser<'_> {
    fn err<T>(&self, line: &Line<'_>, word: usize, message: impl Into<String>) -> R<T> {
        Err(ParseError {
            file: self.file.to_string(),
            line: line.number,
            col: line.col(word),
            message: message.into(),
        })
    }

    /// A setup statement `FIRST second DEVICE N` with N from 1 to `u32::MAX`
    /// (`reconnect attempts`, `fallback after`): the device and N. `what` names N in the
    /// error.
    fn device_count(&self, line: &Line<'_>, second: &str, what: &str) -> R<(usize, u32)> {
        self.setup_only(line)?;
        self.keyword(line, 1, second)?;
        let d = self.device(line, 2)?;
        let n = self.number(line, 3)?;
        self.end(line, 4)?;
        match u32::try_from(n) {
            Ok(n) if n > 0 => Ok((d, n)),
            _ => self.err(line, 3, format!("expected {what} from 1 to 4294967295")),
        }
    }

    /// The word at `i` must be `word`: the second word of `batch size`, `auth delay`, ….
    fn keyword(&self, line: &Line<'_>, i: usize, word: &str) -> R<()> {
        match self.need(line, i, &format!("`{word}`"))? {
            w if w == word => Ok(()),
            other => self.err(line, i, format!("expected `{word}`, found `{other}`")),
        }
    }

    fn need<'a>(&self, line: &Line<'a>, i: usize, what: &str) -> R<&'a str> {
        match line.word(i) {
            Some(w) => Ok(w),
            None => self.err(
                line,
                i,
                format!("expected {what}, found the end of the line"),
            ),
        }
    }

    fn end(&self, line: &Line<'_>, i: usize) -> R<()> {
        match line.word(i) {
            None => Ok(()),
            Some(w) => self.err(
                line,
                i,
                format!("unexpected `{w}`: expected the end of the line"),
            ),
        }
    }

    fn step(&mut self, line: &Line<'_>, stmt: Stmt) {
        self.started = true;
        self.scenario.steps.push(Step {
            line: line.number,
            stmt,
        });
    }

    /// Settings for "all devices" need the devices first (else they would apply to none).
    fn devices_first(&self, line: &Line<'_>) -> R<()> {
        if self.scenario.devices.is_empty() {
            let w = line.word(0).unwrap_or_default();
            return self.err(
                line,
                0,
                format!("`{w}` needs the devices: put `devices …` before it"),
            );
        }
        Ok(())
    }

    fn setup_only(&self, line: &Line<'_>) -> R<()> {
        if self.started {
            let w = line.word(0).unwrap_or_default();
            return self.err(
                line,
                0,
                format!("`{w}` is a setup statement: put it before the first action"),
            );
        }
        Ok(())
    }

    fn statement(&mut self, line: &Line<'_>) -> R<()> {
        let first = line.word(0).expect("non-empty line");
        match first {
            "scenario" => {
                self.setup_only(line)?;
                let title = self.string(line, 1, "a title in double quotes")?;
                self.scenario.title = Some(title);
                Ok(())
            }
            "devices" => self.devices(line),
            "strategy" => {
                self.setup_only(line)?;
                self.devices_first(line)?;
                let (devices, i) = match line.words.len() {
                    2 => ((0..self.scenario.devices.len()).collect(), 1),
                    _ => (vec![self.device(line, 1)?], 2),
                };
                let w = self.need(line, i, "a strategy")?;
                let strategy: Strategy = w.parse().or_else(|e: String| self.err(line, i, e))?;
                self.end(line, i + 1)?;
                for d in devices {
                    self.scenario.devices[d].strategy = strategy;
                }
                Ok(())
            }
            "latency" | "jitter" | "loss" => self.link(line, first),
            "reconnect" => {
                let (d, n) = self.device_count(line, "attempts", "a bound")?;
                self.scenario.devices[d].settings.reconnect_bound = Some(n);
                Ok(())
            }
            "batch" => {
                self.setup_only(line)?;
                self.keyword(line, 1, "size")?;
                let d = self.device(line, 2)?;
                let n = self.number(line, 3)?;
                self.end(line, 4)?;
                if !(1..=MAX_BATCH as u64).contains(&n) {
                    return self.err(
                        line,
                        3,
                        format!("expected a batch size from 1 to {MAX_BATCH} (1: never batch)"),
                    );
                }
                self.scenario.devices[d].settings.batch_size = n as usize;
                Ok(())
            }
            "fallback" => {
                let (d, n) = self.device_count(line, "after", "a count")?;
                self.scenario.devices[d].settings.fallback_after = n;
                Ok(())
            }
            "poll" => {
                self.setup_only(line)?;
                self.keyword(line, 1, "interval")?;
                let d = self.device(line, 2)?;
                let interval = self.duration(line, 3)?;
                self.end(line, 4)?;
                if interval < MIN_POLL_INTERVAL {
                    let ms = MIN_POLL_INTERVAL.as_millis();
                    return self.err(line, 3, format!("a poll interval is at least {ms}ms"));
                }
                self.scenario.devices[d].settings.poll_interval = interval;
                Ok(())
            }
            "cursor" => {
                self.setup_only(line)?;
                let d = self.device(line, 1)?;
                let mode = match self.need(line, 2, "`clock` or `revision`")? {
                    "clock" => CursorMode::Clock,
                    "revision" => CursorMode::Revision,
                    other => {
                        return self.err(
                            line,
                            2,
                            format!("expected `clock` or `revision`, found `{other}`"),
                        );
                    }
                };
                self.end(line, 3)?;
                self.scenario.devices[d].settings.cursor = mode;
                Ok(())
            }
            "clock" => {
                self.setup_only(line)?;
                let d = self.device(line, 1)?;
                self.keyword(line, 2, "skew")?;
                let behind = line.word(3).is_some_and(|w| w.starts_with('-'));
                let skew = self.duration_at(line, 3, behind)?;
                if skew.subsec_nanos() % 1_000_000 != 0 {
                    return self.err(line, 3, "a clock skew is whole milliseconds");
                }
                self.end(line, 4)?;
                let ms = i64::try_from(skew.as_millis()).unwrap_or(i64::MAX);
                self.scenario.devices[d].settings.clock_skew_ms = if behind { -ms } else { ms };
                Ok(())
            }
            "auth" => {
                self.setup_only(line)?;
                self.keyword(line, 1, "delay")?;
                let d = self.device(line, 2)?;
                let delay = match line.word(3) {
                    Some("never") => None,
                    _ => Some(self.duration(line, 3)?),
                };
                self.end(line, 4)?;
                self.scenario.devices[d].settings.auth_delay = delay;
                Ok(())
            }
            "server" => self.server(line),
            "hold" | "unhold" => {
                let d = self.device(line, 1)?;
                let dir = match line.word(2) {
                    None => None,
                    Some(_) => Some(self.direction(line, 2)?),
                };
                self.end(line, if dir.is_some() { 3 } else { 2 })?;
                let stmt = if first == "hold" {
                    Stmt::Hold(d, dir)
                } else {
                    Stmt::Unhold(d, dir)
                };
                self.step(line, stmt);
                Ok(())
            }
            "release" => {
                let d = self.device(line, 1)?;
                let dir = self.direction(line, 2)?;
                let pick = match self.need(line, 3, "a position, `all` or `last`")? {
                    "all" => Pick::All,
                    "last" => Pick::Last,
                    _ => Pick::Nth(self.position(line, 3)?),
                };
                self.end(line, 4)?;
                self.step(line, Stmt::Release(d, dir, pick));
                Ok(())
            }
            "drop" => {
                let d = self.device(line, 1)?;
                let dir = self.direction(line, 2)?;
                let n = self.position(line, 3)?;
                self.end(line, 4)?;
                self.step(line, Stmt::Drop(d, dir, n));
                Ok(())
            }
            "wait" => {
                let d = self.duration(line, 1)?;
                self.end(line, 2)?;
                self.step(line, Stmt::Wait(d));
                Ok(())
            }
            "settle" => {
                self.end(line, 1)?;
                self.step(line, Stmt::Settle);
                Ok(())
            }
            "say" => {
                let text = self.string(line, 1, "the narration in double quotes")?;
                self.end(line, 2)?;
                self.step(line, Stmt::Say(text));
                Ok(())
            }
            "pause" => {
                self.end(line, 1)?;
                self.step(line, Stmt::Pause);
                Ok(())
            }
            "expect" => {
                let e = self.expect(line)?;
                self.step(line, Stmt::Expect(e));
                Ok(())
            }
            _ => self.device_action(line),
        }
    }

    fn devices(&mut self, line: &Line<'_>) -> R<()> {
        self.setup_only(line)?;
        if !self.scenario.devices.is_empty() {
            return self.err(line, 0, "`devices` was already given");
        }
        if line.words.len() < 2 {
            return self.err(line, 1, "expected one or more device names");
        }
        self.scenario.devices_line = line.number;
        for i in 1..line.words.len() {
            let name = line.word(i).expect("in range");
            let word_like = name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            if !word_like || !is_valid_device_id(name) || KEYWORDS.contains(&name) {
                return self.err(line, i, format!(
                    "`{name}` cannot name a device: use a lowercase word (not `server` or a statement's name)"
                ));
            }
            if self.scenario.devices.iter().any(|d| d.name == name) {
                return self.err(line, i, format!("device `{name}` is listed twice"));
            }
            self.scenario.devices.push(DeviceSetup {
                name: name.to_string(),
                strategy: Strategy::default(),
                up: LinkConfig::default(),
                down: LinkConfig::default(),
                settings: DeviceSettings::default(),
            });
        }
        Ok(())
    }

    /// `latency D` / `latency DEV D` / `latency DEV up|down D`; `jitter DEV [up|down] D`;
    /// `loss DEV [up|down] P%`.
    fn link(&mut self, line: &Line<'_>, what: &str) -> R<()> {
        self.devices_first(line)?;
        let all = (0..self.scenario.devices.len()).collect::<Vec<_>>();
        let (devices, mut i) = if what == "latency" && line.words.len() == 2 {
            (all, 1)
        } else {
            (vec![self.device(line, 1)?], 2)
        };
        let mut dir = None;
        if matches!(line.word(i), Some("up" | "down")) {
            dir = Some(self.direction(line, i)?);
            i += 1;
        }
        let change = match what {
            "latency" => LinkChange::Latency(self.duration(line, i)?),
            "jitter" => LinkChange::Jitter(self.duration(line, i)?),
            _ => LinkChange::Loss(self.percent(line, i)?),
        };
        self.end(line, i + 1)?;
        if self.started {
            self.step(line, Stmt::Link(devices, dir, change));
            return Ok(());
        }
        for d in devices {
            let setup = &mut self.scenario.devices[d];
            for config in match dir {
                Some(Direction::Up) => vec![&mut setup.up],
                Some(Direction::Down) => vec![&mut setup.down],
                None => vec![&mut setup.up, &mut setup.down],
            } {
                apply_change(config, change);
            }
        }
        Ok(())
    }

    fn server(&mut self, line: &Line<'_>) -> R<()> {
        const WHAT: &str =
            "`set`, `reject`, `restart`, `rotate token`, `block websocket` or `unblock websocket`";
        match self.need(line, 1, WHAT)? {
            "set" => {
                let key = self.key(line, 2)?;
                let value = self.value(line, 3)?;
                if key.kind() == ValueKind::Comments {
                    return self.err(line, 2, format!("`{key}` changes only by comment commands"));
                }
                if let Err(e) = key.validate_set(&value) {
                    return self.err(line, 3, format!("the server cannot store this: {e}"));
                }
                if self.started {
                    self.step(line, Stmt::ServerSet(key, value));
                } else {
                    self.scenario.server_sets.push((line.number, key, value));
                }
                Ok(())
            }
            "reject" => {
                let key = self.key(line, 2)?;
                self.end(line, 3)?;
                self.step(line, Stmt::ServerReject(key));
                Ok(())
            }
            "restart" => {
                self.end(line, 2)?;
                self.step(line, Stmt::ServerRestart);
                Ok(())
            }
            "rotate" => {
                self.keyword(line, 2, "token")?;
                self.end(line, 3)?;
                self.step(line, Stmt::ServerRotateToken);
                Ok(())
            }
            word @ ("block" | "unblock") => {
                self.keyword(line, 2, "websocket")?;
                self.end(line, 3)?;
                self.step(line, Stmt::ServerBlockWebsocket(word == "block"));
                Ok(())
            }
            other => self.err(
                line,
                1,
                format!("unknown server statement `{other}`: expected {WHAT}"),
            ),
        }
    }

    fn device_action(&mut self, line: &Line<'_>) -> R<()> {
        let d = self.device(line, 0)?;
        let verb = self.need(
            line,
            1,
            "`tap`, `set`, `comment`, `edit comment`, `delete comment`, `offline`, `online`, `restart` or `retry`",
        )?;
        let stmt = match verb {
            "tap" => {
                let key = self.key(line, 2)?;
                if key.kind() != ValueKind::Bool {
                    return self.err(
                        line,
                        2,
                        format!("`tap` toggles a boolean key; `{key}` is not one"),
                    );
                }
                self.end(line, 3)?;
                Stmt::Tap(d, key)
            }
            "set" => {
                let key = self.key(line, 2)?;
                if key.kind() == ValueKind::Comments {
                    return self.err(
                        line,
                        2,
                        format!("`{key}` holds comments: use `comment POST \"text\"`"),
                    );
                }
                Stmt::Set(d, key, self.value(line, 3)?)
            }
            "comment" => {
                let key = self.comments_key(line, 2)?;
                Stmt::Comment(
                    d,
                    key,
                    self.string(line, 3, "the comment's text in double quotes")?,
                )
            }
            verb @ ("edit" | "delete") => {
                self.keyword(line, 2, "comment")?;
                let key = self.comments_key(line, 3)?;
                let id = self.need(line, 4, "the comment's id")?.to_string();
                if verb == "edit" {
                    let text = self.string(line, 5, "the comment's new text in double quotes")?;
                    Stmt::EditComment(d, key, id, text)
                } else {
                    self.end(line, 5)?;
                    Stmt::DeleteComment(d, key, id)
                }
            }
            "offline" | "online" | "restart" | "retry" => {
                self.end(line, 2)?;
                match verb {
                    "offline" => Stmt::Offline(d),
                    "online" => Stmt::Online(d),
                    "retry" => Stmt::Retry(d),
                    _ => Stmt::Restart(d),
                }
            }
            other => {
                return self.err(line, 1, format!(
                    "unknown action `{other}`: expected `tap`, `set`, `comment`, `edit comment`, `delete comment`, `offline`, `online`, `restart` or `retry`"
                ));
            }
        };
        self.step(line, stmt);
        Ok(())
    }

    fn expect(&self, line: &Line<'_>) -> R<Expect> {
        let subject = self.need(line, 1, "a device, `server` or `converged`")?;
        if subject == "converged" {
            self.end(line, 2)?;
            return Ok(Expect::Converged);
        }
        if subject == "server" {
            if line.word(2) == Some("writes") {
                self.equals(line, 3)?;
                let n = self.number(line, 4)?;
                self.end(line, 5)?;
                return Ok(Expect::ServerWrites(n));
            }
            let key = self.key(line, 2)?;
            return match self.need(line, 3, "`=` or `rev`")? {
                "=" => Ok(Expect::ServerValue(key, self.value(line, 4)?)),
                "rev" => {
                    let n = self.number(line, 4)?;
                    self.end(line, 5)?;
                    Ok(Expect::ServerRev(key, n))
                }
                other => self.err(
                    line,
                    3,
                    format!("unexpected `{other}`: expected `=` or `rev`"),
                ),
            };
        }
        let d = self.device(line, 1)?;
        match self.need(
            line,
            2,
            "a key, `converged`, `connection`, `requests`, `stale`, `rollbacks`, `regressions`, `inflight`, `queued` or `frames`",
        )? {
            "converged" => {
                self.end(line, 3)?;
                Ok(Expect::DeviceConverged(d))
            }
            "connection" => {
                self.equals(line, 3)?;
                let state = self.need(line, 4, "a connection state")?;
                if !CONNECTION_STATES.contains(&state) {
                    return self.err(
                        line,
                        4,
                        format!(
                            "unknown connection state `{state}`: expected one of {}",
                            CONNECTION_STATES.join(", ")
                        ),
                    );
                }
                self.end(line, 5)?;
                Ok(Expect::Connection(d, state.to_string()))
            }
            counter @ ("stale" | "rollbacks" | "regressions") => {
                self.equals(line, 3)?;
                let n = self.number(line, 4)?;
                self.end(line, 5)?;
                Ok(match counter {
                    "stale" => Expect::Stale(d, n),
                    "rollbacks" => Expect::Rollbacks(d, n),
                    _ => Expect::Regressions(d, n),
                })
            }
            "requests" => {
                let key = self.key(line, 3)?;
                self.equals(line, 4)?;
                let n = self.number(line, 5)?;
                self.end(line, 6)?;
                Ok(Expect::Requests(d, key, n))
            }
            "inflight" => {
                let key = self.key(line, 3)?;
                self.equals(line, 4)?;
                let b = match self.need(line, 5, "`true` or `false`")? {
                    "true" => true,
                    "false" => false,
                    other => {
                        return self.err(
                            line,
                            5,
                            format!("expected `true` or `false`, found `{other}`"),
                        );
                    }
                };
                self.end(line, 6)?;
                Ok(Expect::Inflight(d, key, b))
            }
            "queued" => {
                let dir = self.direction(line, 3)?;
                self.equals(line, 4)?;
                let n = self.number(line, 5)?;
                self.end(line, 6)?;
                Ok(Expect::Queued(d, dir, n))
            }
            "frames" => {
                match self.need(line, 3, "`up`")? {
                    "up" => {}
                    other => {
                        return self.err(
                            line,
                            3,
                            format!("expected `up` (frames are counted device → server), found `{other}`"),
                        );
                    }
                }
                self.equals(line, 4)?;
                let n = self.number(line, 5)?;
                self.end(line, 6)?;
                Ok(Expect::FramesUp(d, n))
            }
            _ => {
                let key = self.key(line, 2)?;
                match self.need(line, 3, "`=` or `rev`")? {
                    "=" => Ok(Expect::Value(d, key, self.value(line, 4)?)),
                    "rev" => {
                        let n = self.number(line, 4)?;
                        self.end(line, 5)?;
                        Ok(Expect::Rev(d, key, n))
                    }
                    other => self.err(
                        line,
                        3,
                        format!("unexpected `{other}`: expected `=` or `rev`"),
                    ),
                }
            }
        }
    }

    // ---- pieces ---------------------------------------------------------------------------

    fn device(&self, line: &Line<'_>, i: usize) -> R<usize> {
        let name = self.need(line, i, "a device name")?;
        if let Some(d) = self.scenario.devices.iter().position(|d| d.name == name) {
            return Ok(d);
        }
        if self.scenario.devices.is_empty() {
            return self.err(
                line,
                i,
                format!(
                    "unknown statement or device `{name}` (no `devices` statement before this line)"
                ),
            );
        }
        let known: Vec<&str> = self
            .scenario
            .devices
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        self.err(
            line,
            i,
            format!(
                "unknown device or statement `{name}`: the devices are {}",
                known.join(", ")
            ),
        )
    }

    /// A post name, as the `comments/POST` key it names.
    fn comments_key(&self, line: &Line<'_>, i: usize) -> R<Key> {
        let post = self.need(line, i, "a post name")?;
        if !is_valid_post(post) {
            return self.err(
                line,
                i,
                format!("`{post}` is not a post name (1..=64 of [a-z0-9_-])"),
            );
        }
        Ok(Key::Comments(post.into()))
    }

    fn direction(&self, line: &Line<'_>, i: usize) -> R<Direction> {
        match self.need(line, i, "`up` or `down`")? {
            "up" => Ok(Direction::Up),
            "down" => Ok(Direction::Down),
            other => self.err(line, i, format!("expected `up` or `down`, found `{other}`")),
        }
    }

    fn key(&self, line: &Line<'_>, i: usize) -> R<Key> {
        let w = self.need(line, i, "a key such as `like/post-1` or `settings/volume`")?;
        Key::parse(w).or_else(|e| self.err(line, i, e.to_string()))
    }

    /// A JSON value: the rest of the line.
    fn value(&self, line: &Line<'_>, i: usize) -> R<Value> {
        let Some(text) = line.rest(i) else {
            return self.err(line, i, "expected a JSON value such as `true`, `42` or `\"Ana\"`, found the end of the line");
        };
        serde_json::from_str(text)
            .or_else(|e| self.err(line, i, format!("`{text}` is not a JSON value: {e}")))
    }

    /// A JSON string: the rest of the line.
    fn string(&self, line: &Line<'_>, i: usize, what: &str) -> R<String> {
        match self.value(line, i) {
            Ok(Value::String(s)) => Ok(s),
            Ok(_) | Err(_) => self.err(line, i, format!("expected {what}")),
        }
    }

    fn equals(&self, line: &Line<'_>, i: usize) -> R<()> {
        match self.need(line, i, "`=`")? {
            "=" => Ok(()),
            other => self.err(line, i, format!("expected `=`, found `{other}`")),
        }
    }

    fn number(&self, line: &Line<'_>, i: usize) -> R<u64> {
        let w = self.need(line, i, "a number")?;
        w.parse()
            .or_else(|_| self.err(line, i, format!("expected a whole number, found `{w}`")))
    }

    fn position(&self, line: &Line<'_>, i: usize) -> R<usize> {
        match self.number(line, i)? {
            0 => self.err(line, i, "positions start at 1 (the oldest queued frame)"),
            n => Ok(n as usize),
        }
    }

    fn duration(&self, line: &Line<'_>, i: usize) -> R<Duration> {
        self.duration_at(line, i, false)
    }

    /// A duration, after a leading `-` when `signed` (the caller keeps the sign).
    fn duration_at(&self, line: &Line<'_>, i: usize, signed: bool) -> R<Duration> {
        let word = self.need(line, i, "a duration such as `250ms` or `2s`")?;
        let w = if signed { &word[1..] } else { word };
        let parsed = if let Some(n) = w.strip_suffix("ms") {
            n.parse::<u64>().ok().map(Duration::from_millis)
        } else if let Some(n) = w.strip_suffix('s') {
            n.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
                .map(Duration::from_secs_f64)
        } else {
            None
        };
        parsed.map_or_else(
            || {
                self.err(
                    line,
                    i,
                    format!("expected a duration such as `250ms` or `2s`, found `{word}`"),
                )
            },
            Ok,
        )
    }

    fn percent(&self, line: &Line<'_>, i: usize) -> R<f64> {
        let w = self.need(line, i, "a percentage such as `5%`")?;
        match w.strip_suffix('%').and_then(|n| n.parse::<f64>().ok()) {
            Some(p) if (0.0..=100.0).contains(&p) => Ok(p / 100.0),
            _ => self.err(
                line,
                i,
                format!("expected a percentage from 0% to 100%, found `{w}`"),
            ),
        }
    }
}

/// Applies a link change to a link's settings.
pub fn apply_change(config: &mut LinkConfig, change: LinkChange) {
    match change {
        LinkChange::Latency(d) => config.latency = d,
        LinkChange::Jitter(d) => config.jitter = d,
        LinkChange::Loss(p) => config.loss = p,
    }
}
