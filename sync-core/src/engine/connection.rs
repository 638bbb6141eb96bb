//! The connection half of the engine: its state, the reconnect backoff and the heartbeat
//! (PROTOCOL.md, "Heartbeat and reconnect"). Pure bookkeeping over `now`; the engine turns
//! due deadlines into outputs.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// Send a `ping` after this long without sending anything.
pub const PING_AFTER: Duration = Duration::from_secs(10);
/// Treat the connection as dead after this long without receiving anything.
pub const DEAD_AFTER: Duration = Duration::from_secs(25);
/// The first reconnect delay's cap.
pub const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// The largest reconnect delay's cap.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// What the connection is doing, as a pane shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnectionState {
    /// The transport is being opened.
    Connecting,
    /// `hello` sent, waiting for `welcome`.
    Handshaking,
    /// Past `welcome`: live.
    Connected,
    /// Waiting to try again.
    Reconnecting {
        /// Attempts so far since the last `welcome` (1 for the first retry).
        attempt: u32,
        /// When the next attempt starts.
        retry_at: Duration,
    },
    /// Offline by the user's choice.
    Offline,
    /// The token was refused (close 4401): no automatic retry.
    AuthFailed,
    /// The server closed with a code that forbids reconnecting (1008, 1009, 4010).
    ClosedByServer {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// Polling over HTTP (PROTOCOL.md, "Polling over HTTP"): upgrades were refused; the
    /// device still tries the WebSocket with its backoff underneath.
    Polling,
    /// The device's reconnect bound was reached: that many attempts in a row failed
    /// (PROTOCOL.md, "Attempts"). No automatic retry: the user retries, or goes online.
    Error {
        /// Failed attempts in a row.
        failed: u32,
    },
}

impl ConnectionState {
    /// The state's name in the scenario language (`expect DEVICE connection = STATE`):
    /// `connecting` (opening or handshaking), `connected`, `reconnecting`, `offline`,
    /// `polling`, `error`, `auth-failed`, `closed`.
    pub fn scenario_name(&self) -> &'static str {
        match self {
            ConnectionState::Connecting | ConnectionState::Handshaking => "connecting",
            ConnectionState::Connected => "connected",
            ConnectionState::Reconnecting { .. } => "reconnecting",
            ConnectionState::Offline => "offline",
            ConnectionState::Polling => "polling",
            ConnectionState::AuthFailed => "auth-failed",
            ConnectionState::ClosedByServer { .. } => "closed",
            ConnectionState::Error { .. } => "error",
        }
    }

    /// `true` in a state the device leaves only when asked ([`super::Engine::retry`], or
    /// going online): `error`, `auth-failed`, `closed`.
    pub fn needs_retry(&self) -> bool {
        matches!(
            self,
            ConnectionState::Error { .. }
                | ConnectionState::AuthFailed
                | ConnectionState::ClosedByServer { .. }
        )
    }

    /// `true` while a transport exists (opening, handshaking or live).
    pub fn has_transport(&self) -> bool {
        matches!(
            self,
            ConnectionState::Connecting | ConnectionState::Handshaking | ConnectionState::Connected
        )
    }
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionState::Connecting => f.write_str("connecting"),
            ConnectionState::Handshaking => f.write_str("handshaking"),
            ConnectionState::Connected => f.write_str("connected"),
            ConnectionState::Reconnecting { attempt, .. } => {
                write!(f, "reconnecting (attempt {attempt})")
            }
            ConnectionState::Offline => f.write_str("offline"),
            ConnectionState::Polling => f.write_str("polling over HTTP"),
            ConnectionState::AuthFailed => f.write_str("auth failed"),
            ConnectionState::ClosedByServer { code, reason } => {
                write!(f, "closed by server ({code} {reason})")
            }
            ConnectionState::Error { failed } => {
                write!(f, "error: {failed} attempts failed in a row")
            }
        }
    }
}

/// Exponential backoff with full jitter: attempt n waits a uniform time in
/// `0..=min(250 ms · 2ⁿ, 10 s)`.
pub fn backoff_delay(attempt: u32, rng: &mut Rng) -> Duration {
    let cap = BACKOFF_BASE
        .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
        .min(BACKOFF_MAX);
    Duration::from_millis(rng.up_to(cap.as_millis() as u64))
}

/// Liveness bookkeeping of one transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct Heartbeat {
    /// When something was last sent.
    pub last_sent: Duration,
    /// When something was last received (or the transport opened).
    pub last_received: Duration,
}

impl Heartbeat {
    /// A fresh transport opened at `now`.
    pub fn opened(now: Duration) -> Self {
        Heartbeat {
            last_sent: now,
            last_received: now,
        }
    }

    /// When a `ping` is due.
    pub fn ping_at(&self) -> Duration {
        self.last_sent + PING_AFTER
    }

    /// When the connection counts as dead.
    pub fn dead_at(&self) -> Duration {
        self.last_received + DEAD_AFTER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered() {
        let mut rng = Rng::new(1);
        for attempt in 0..40 {
            let cap = (250u64 << attempt.min(20)).min(10_000);
            for _ in 0..20 {
                assert!(backoff_delay(attempt, &mut rng).as_millis() as u64 <= cap);
            }
        }
        let spread: std::collections::BTreeSet<_> =
            (0..50).map(|_| backoff_delay(5, &mut rng)).collect();
        assert!(spread.len() > 10, "full jitter spreads the retries");
    }
}
