//! Shrinking a failing scenario to a short counterexample.
//!
//! A random schedule that breaks an invariant is forty statements of noise around the few
//! that matter. [`shrink`] keeps cutting while the run still fails **the same way** (the
//! same invariant, or the same kind of failed statement, or the same panic):
//!
//! 1. everything after the failing statement goes;
//! 2. statements go, in halves, then quarters, down to one at a time (delta debugging);
//! 3. what is left gets simpler: waits shorter, `release`/`drop` of the oldest frame,
//!    links without jitter or loss, no reconnect bound, no setup `server set`, devices no
//!    statement names;
//!
//! and repeats until a whole round changes nothing. Each try is one run on the simulator
//! (a fraction of a millisecond), so a forty-statement schedule shrinks in well under a
//! second. [`counterexample`] writes the result as a file that says what broke where.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use sync_core::engine::DeviceSettings;

use super::ast::{Pick, Scenario, Stmt};
use super::{Runner, Verdict, parse, write};
use crate::link::LinkConfig;

/// How a run failed, as far as shrinking cares: a smaller scenario must fail the same
/// way to replace a larger one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// DESIGN.md's invariant with this number broke.
    Invariant(u8),
    /// A statement failed (an `expect`, a `settle` that never came, a `release` of a
    /// frame that is not there): its message up to the first colon, digit or ", got" —
    /// what failed, not the values it failed with (a smaller run may have others).
    Statement(String),
    /// The run panicked: the message cut the same way.
    Panic(String),
}

/// A failed run: how, at which statement line, and the whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// The kind of failure.
    pub failure: Failure,
    /// The failing statement's line (the scenario's `devices` line for the setup).
    pub line: usize,
    /// What the runner said.
    pub message: String,
}

/// Runs `scenario` with `seed` to the end; how it failed, if it did.
pub fn failure(scenario: &Scenario, seed: u64) -> Option<Failed> {
    let run = catch_unwind(AssertUnwindSafe(|| {
        let mut runner = Runner::new(scenario.clone(), seed);
        let verdict = runner.run_to_end().clone();
        (verdict, runner.violation().map(|v| v.number))
    }));
    let head = |m: &str| {
        let end = [
            m.find(':'),
            m.find(", got"),
            m.find(|c: char| c.is_ascii_digit()),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(m.len());
        m[..end].to_string()
    };
    match run {
        Ok((Verdict::Pass, _)) => None,
        Ok((Verdict::Fail { line, message }, invariant)) => Some(Failed {
            failure: match invariant {
                Some(n) => Failure::Invariant(n),
                None => Failure::Statement(head(&message)),
            },
            line,
            message,
        }),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Some(Failed {
                failure: Failure::Panic(head(&message)),
                line: 0,
                message: format!("panicked: {message}"),
            })
        }
    }
}

/// A shrunk counterexample.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The smallest scenario found that fails the same way.
    pub scenario: Scenario,
    /// How it fails.
    pub failed: Failed,
    /// Statements in the scenario it was shrunk from.
    pub from: usize,
    /// Runs it took.
    pub runs: usize,
}

/// Tries at most this many runs; a schedule of forty statements needs a few hundred.
const BUDGET: usize = 5_000;

/// Shrinks a failing `scenario` (run with `seed`); `None` if it does not fail.
pub fn shrink(scenario: Scenario, seed: u64) -> Option<Shrunk> {
    let failed = failure(&scenario, seed)?;
    let mut s = Shrinker {
        seed,
        want: failed.failure.clone(),
        from: scenario.steps.len(),
        best: scenario,
        failed,
        runs: 0,
    };
    s.cut_after_failure();
    loop {
        let before = s.best.clone();
        s.drop_statements();
        s.simplify_statements();
        s.simplify_setup();
        if s.best == before || s.runs >= BUDGET {
            break;
        }
    }
    Some(Shrunk {
        scenario: s.best,
        failed: s.failed,
        from: s.from,
        runs: s.runs,
    })
}

struct Shrinker {
    seed: u64,
    want: Failure,
    from: usize,
    best: Scenario,
    failed: Failed,
    runs: usize,
}

impl Shrinker {
    /// Keeps `candidate` if it fails the same way; `true` if it did.
    fn try_keep(&mut self, candidate: Scenario) -> bool {
        if self.runs >= BUDGET {
            return false;
        }
        self.runs += 1;
        match failure(&candidate, self.seed) {
            Some(f) if f.failure == self.want => {
                self.best = candidate;
                self.failed = f;
                self.cut_after_failure();
                true
            }
            _ => false,
        }
    }

    /// Nothing after the failing statement matters.
    fn cut_after_failure(&mut self) {
        let line = self.failed.line;
        if let Some(at) = self.best.steps.iter().position(|s| s.line == line) {
            self.best.steps.truncate(at + 1);
        }
    }

    /// Delta debugging over the statements: remove chunks while the failure stays.
    fn drop_statements(&mut self) {
        let mut chunk = self.best.steps.len().div_ceil(2).max(1);
        loop {
            let mut i = 0;
            while i < self.best.steps.len() {
                let mut candidate = self.best.clone();
                let end = (i + chunk).min(candidate.steps.len());
                candidate.steps.drain(i..end);
                if !self.try_keep(candidate) {
                    i += chunk;
                }
            }
            if chunk == 1 {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
    }

    /// Each statement made simpler, one at a time: a shorter wait, the oldest frame.
    fn simplify_statements(&mut self) {
        for i in 0..self.best.steps.len() {
            loop {
                let Some(step) = self.best.steps.get(i) else {
                    return;
                };
                let simpler = match &step.stmt {
                    // Whole milliseconds, as a file writes them.
                    Stmt::Wait(d) if d.as_millis() > 0 => {
                        Stmt::Wait(Duration::from_millis((d.as_millis() / 2) as u64))
                    }
                    Stmt::Release(d, dir, Pick::Nth(n)) if *n > 1 => {
                        Stmt::Release(*d, *dir, Pick::Nth(n - 1))
                    }
                    Stmt::Drop(d, dir, n) if *n > 1 => Stmt::Drop(*d, *dir, n - 1),
                    _ => break,
                };
                let mut candidate = self.best.clone();
                candidate.steps[i].stmt = simpler;
                if !self.try_keep(candidate) {
                    break;
                }
            }
        }
    }

    /// The setup made plainer: default links, no bounds, no `server set`, fewer devices.
    fn simplify_setup(&mut self) {
        for d in 0..self.best.devices.len() {
            for change in 0..3 {
                let mut candidate = self.best.clone();
                let setup = &mut candidate.devices[d];
                // Its own latency, without jitter or loss; then the default link.
                let plain = LinkConfig {
                    latency: setup.up.latency,
                    ..LinkConfig::default()
                };
                match change {
                    0 => (setup.up, setup.down) = (plain, plain),
                    1 => (setup.up, setup.down) = (LinkConfig::default(), LinkConfig::default()),
                    _ => setup.settings = DeviceSettings::default(),
                }
                if candidate != self.best {
                    self.try_keep(candidate);
                }
            }
        }
        while !self.best.server_sets.is_empty() {
            let mut candidate = self.best.clone();
            candidate.server_sets.pop();
            if !self.try_keep(candidate) {
                break;
            }
        }
        self.drop_unnamed_devices();
    }

    /// Removes a device no statement names (the last one first, so no index moves).
    fn drop_unnamed_devices(&mut self) {
        while self.best.devices.len() > 1 {
            let last = self.best.devices.len() - 1;
            if self.best.steps.iter().any(|s| names(&s.stmt, last)) {
                return;
            }
            let mut candidate = self.best.clone();
            candidate.devices.pop();
            if !self.try_keep(candidate) {
                return;
            }
        }
    }
}

/// `true` if the statement acts on or checks device `d`.
fn names(stmt: &Stmt, d: usize) -> bool {
    use super::ast::Expect as E;
    match stmt {
        Stmt::Tap(x, ..)
        | Stmt::Set(x, ..)
        | Stmt::Comment(x, ..)
        | Stmt::EditComment(x, ..)
        | Stmt::DeleteComment(x, ..)
        | Stmt::Offline(x)
        | Stmt::Online(x)
        | Stmt::Restart(x)
        | Stmt::Retry(x)
        | Stmt::Hold(x, _)
        | Stmt::Unhold(x, _)
        | Stmt::Release(x, ..)
        | Stmt::Drop(x, ..) => *x == d,
        Stmt::Link(xs, ..) => xs.contains(&d),
        Stmt::Expect(e) => match e {
            E::Value(x, ..)
            | E::Rev(x, ..)
            | E::Requests(x, ..)
            | E::Stale(x, _)
            | E::Rollbacks(x, _)
            | E::Regressions(x, _)
            | E::Inflight(x, ..)
            | E::Queued(x, ..)
            | E::FramesUp(x, _)
            | E::DeviceConverged(x)
            | E::Connection(x, _) => *x == d,
            E::ServerValue(..) | E::ServerRev(..) | E::ServerWrites(_) | E::Converged => false,
        },
        Stmt::ServerReject(_)
        | Stmt::ServerRestart
        | Stmt::ServerRotateToken
        | Stmt::ServerBlockWebsocket(_)
        | Stmt::ServerSet(..)
        | Stmt::Say(_)
        | Stmt::Pause
        | Stmt::Wait(_)
        | Stmt::Settle => false,
    }
}

/// The counterexample as a file: comment lines saying where it came from, what breaks at
/// which line, and how to open it at that line; then the scenario. The line named is the
/// file's own (the text is parsed and run again to find it).
pub fn counterexample(shrunk: &Shrunk, seed: u64, origin: &str) -> String {
    let text = |line: &str, message: &str, statements: usize| {
        let scenario = Scenario {
            about: vec![
                format!(
                    "Counterexample: {origin}, seed {seed}, shrunk from {} statements to {statements}.",
                    shrunk.from,
                ),
                format!("Line {line} fails: {}", message.replace('\n', " ")),
                format!(
                    "Open it there: cargo run -p app -- run --seed {seed} --open-at-failure FILE"
                ),
            ],
            ..shrunk.scenario.clone()
        };
        write(&scenario)
    };
    // The comments' lengths do not depend on the numbers they give: write the file once
    // to find the failing line (and the statements, a leading `wait 0ms` included), then
    // with them, and with the message of that very run.
    let draft = text("?", &shrunk.failed.message, shrunk.scenario.steps.len());
    let Ok(file) = parse("counterexample.scn", &draft) else {
        return draft;
    };
    match failure(&file, seed) {
        Some(f) => text(&f.line.to_string(), &f.message, file.steps.len()),
        None => draft,
    }
}
