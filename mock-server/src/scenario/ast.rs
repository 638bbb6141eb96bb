//! A parsed scenario: setup, then numbered steps (actions and expectations).

use std::time::Duration;

use serde_json::Value;
use sync_core::engine::{DeviceSettings, Strategy};
use sync_core::protocol::Key;

use crate::link::Direction;
use crate::link::LinkConfig;

/// A scenario file, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// `scenario "Title"`.
    pub title: Option<String>,
    /// The comment lines at the top of the file (the lesson's explanation).
    pub about: Vec<String>,
    /// `devices …`, with their setup.
    pub devices: Vec<DeviceSetup>,
    /// The line of `devices`: a setup whose devices cannot connect fails there.
    pub devices_line: usize,
    /// `server set` statements of the setup (they arrive in `welcome`), with their lines.
    pub server_sets: Vec<(usize, Key, Value)>,
    /// What runs from time 0.
    pub steps: Vec<Step>,
}

/// One device's setup.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSetup {
    /// Name (and device id).
    pub name: String,
    /// Strategy.
    pub strategy: Strategy,
    /// Device → server.
    pub up: LinkConfig,
    /// Server → device.
    pub down: LinkConfig,
    /// `reconnect attempts DEVICE N` (the bound on failed attempts in a row),
    /// `batch size DEVICE N`, `auth delay DEVICE D|never`, `cursor`, `clock … skew`,
    /// `fallback after DEVICE N` and `poll interval DEVICE D`.
    pub settings: DeviceSettings,
}

/// A statement with its line number (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Line in the file.
    pub line: usize,
    /// What it does.
    pub stmt: Stmt,
}

/// Which queued frame `release` delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The n-th, 1 = oldest.
    Nth(usize),
    /// Every frame, in order.
    All,
    /// The newest.
    Last,
}

/// A link setting changed during the run (or in the setup).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinkChange {
    /// `latency`.
    Latency(Duration),
    /// `jitter`.
    Jitter(Duration),
    /// `loss`, as a probability.
    Loss(f64),
}

/// An action or an expectation. Devices are indices into [`Scenario::devices`].
#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    /// `DEVICE tap KEY`.
    Tap(usize, Key),
    /// `DEVICE set KEY VALUE`.
    Set(usize, Key, Value),
    /// `DEVICE comment POST "text"`.
    Comment(usize, Key, String),
    /// `DEVICE edit comment POST ID "text"`: device, `comments/POST`, id, new text.
    EditComment(usize, Key, String, String),
    /// `DEVICE delete comment POST ID`.
    DeleteComment(usize, Key, String),
    /// `DEVICE offline`.
    Offline(usize),
    /// `DEVICE online`.
    Online(usize),
    /// `DEVICE restart`.
    Restart(usize),
    /// `DEVICE retry`: connect now, out of `error`, `auth-failed` or `closed`.
    Retry(usize),
    /// `hold DEVICE [up|down]`.
    Hold(usize, Option<Direction>),
    /// `unhold DEVICE [up|down]`.
    Unhold(usize, Option<Direction>),
    /// `release DEVICE up|down N|all|last`.
    Release(usize, Direction, Pick),
    /// `drop DEVICE up|down N`.
    Drop(usize, Direction, usize),
    /// `latency …`, `jitter …`, `loss …` during the run: devices, directions, change.
    Link(Vec<usize>, Option<Direction>, LinkChange),
    /// `server reject KEY`.
    ServerReject(Key),
    /// `server restart`.
    ServerRestart,
    /// `server rotate token`.
    ServerRotateToken,
    /// `server block websocket` (`true`) / `server unblock websocket`.
    ServerBlockWebsocket(bool),
    /// `server set KEY VALUE` during the run.
    ServerSet(Key, Value),
    /// `say "text"`: narration.
    Say(String),
    /// `pause`: the player stops playing here; `run` ignores it.
    Pause,
    /// `wait D`.
    Wait(Duration),
    /// `settle`.
    Settle,
    /// `expect …`.
    Expect(Expect),
}

/// What an `expect` checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// `expect DEVICE KEY = VALUE`.
    Value(usize, Key, Value),
    /// `expect DEVICE KEY rev N`.
    Rev(usize, Key, u64),
    /// `expect DEVICE requests KEY = N`.
    Requests(usize, Key, u64),
    /// `expect DEVICE stale = N`.
    Stale(usize, u64),
    /// `expect DEVICE rollbacks = N`.
    Rollbacks(usize, u64),
    /// `expect DEVICE regressions = N`.
    Regressions(usize, u64),
    /// `expect DEVICE inflight KEY = true|false`.
    Inflight(usize, Key, bool),
    /// `expect DEVICE queued up|down = N`.
    Queued(usize, Direction, u64),
    /// `expect DEVICE frames up = N`: frames handed to the link, heartbeats left out.
    FramesUp(usize, u64),
    /// `expect server KEY = VALUE`.
    ServerValue(Key, Value),
    /// `expect server KEY rev N`.
    ServerRev(Key, u64),
    /// `expect server writes = N`.
    ServerWrites(u64),
    /// `expect converged`.
    Converged,
    /// `expect DEVICE converged`: the same for one device.
    DeviceConverged(usize),
    /// `expect DEVICE connection = STATE` (a name of `ConnectionState::scenario_name`).
    Connection(usize, String),
}
