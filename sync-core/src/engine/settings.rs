//! The settings a user may change on a running device: the "advanced" part of a pane's
//! menu, the scenario language's per-device setup statements, and what a layout keeps.
//!
//! They are one value so that a new setting is one new field here: the pane, the layout,
//! the simulator and the client runtime pass the whole value along. Some belong to what
//! drives the device rather than to its engine (the token source's delay): the engine
//! keeps them so that a driver can read them back.

use std::time::Duration;

use crate::protocol::frames::MAX_BATCH;

/// How a device catches up after reconnecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CursorMode {
    /// `since`: its contiguous revision cursor. Never misses a change.
    #[default]
    Revision,
    /// `since_time`: its own clock's time of the last change it received
    /// (local_first_websocket's `request_events`). A skewed clock misses changes.
    Clock,
}

impl CursorMode {
    /// The name in scenarios and the UI.
    pub fn name(self) -> &'static str {
        match self {
            CursorMode::Revision => "revision",
            CursorMode::Clock => "clock",
        }
    }
}

/// Refused upgrades in a row after which a device polls, by default.
pub const FALLBACK_AFTER: u32 = 3;

/// How often a polling device fetches changes, by default.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The shortest poll interval a device takes (a shorter one would spend the device's
/// HTTP rate limit on polls).
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long a token source takes to hand a device a rotated token, by default.
pub const AUTH_DELAY: Duration = Duration::from_millis(100);

/// A device's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceSettings {
    /// After this many failed attempts in a row (PROTOCOL.md, "Attempts") the device stops
    /// in `error` until the user retries. `None`: it keeps trying.
    pub reconnect_bound: Option<u32>,
    /// The most writes one `batch` frame carries, 1..=[`MAX_BATCH`] (1: never batch).
    pub batch_size: usize,
    /// How long the device's token source takes to hand it a rotated token (`None`: never,
    /// so the device is shut out 30 s after the rotation).
    pub auth_delay: Option<Duration>,
    /// How it catches up after reconnecting.
    pub cursor: CursorMode,
    /// How far its clock runs ahead of (positive) or behind (negative) the server's, in
    /// ms: it matters only to the clock cursor.
    pub clock_skew_ms: i64,
    /// After this many attempts in a row whose upgrade was refused, the device polls
    /// (PROTOCOL.md, "Polling over HTTP").
    pub fallback_after: u32,
    /// How often a polling device fetches changes.
    pub poll_interval: Duration,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        DeviceSettings {
            reconnect_bound: None,
            batch_size: MAX_BATCH,
            auth_delay: Some(AUTH_DELAY),
            cursor: CursorMode::Revision,
            clock_skew_ms: 0,
            fallback_after: FALLBACK_AFTER,
            poll_interval: POLL_INTERVAL,
        }
    }
}

impl DeviceSettings {
    /// The settings with every value in its range: a bound of 0 (which would stop the
    /// device after losing a live connection) is no bound; a batch size is clamped to
    /// 1..=[`MAX_BATCH`]; falling back takes at least one refusal; a poll interval is at
    /// least [`MIN_POLL_INTERVAL`].
    pub fn sanitized(self) -> DeviceSettings {
        DeviceSettings {
            reconnect_bound: self.reconnect_bound.filter(|n| *n > 0),
            batch_size: self.batch_size.clamp(1, MAX_BATCH),
            fallback_after: self.fallback_after.max(1),
            poll_interval: self.poll_interval.max(MIN_POLL_INTERVAL),
            ..self
        }
    }
}
