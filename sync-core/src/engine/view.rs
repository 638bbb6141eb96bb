//! The device view: what a pane renders — per key shown / confirmed / revision / in flight /
//! follow-up, the counters, the connection — as a plain value the engine builds. It holds
//! no clock: the next reconnect attempt is a time on the engine's clock, so the same view
//! serves a live device (wall clock) and a simulated one (virtual clock); whoever drives
//! the device says what time it is now.

use std::time::Duration;

use serde_json::Value;

use super::Engine;
use super::Strategy;
use super::connection::ConnectionState;
use super::state::{Counters, KeySlot};
use super::token::TokenState;
use crate::protocol::Key;

/// A device's view of one key, for panes and expectations.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyView {
    /// The key.
    pub key: Key,
    /// Value, revisions, superseded flag.
    pub slot: KeySlot,
    /// The known revision the strategy uses (for `sync-with-push`, also counts revisions
    /// learned from acks dropped for a follow-up).
    pub known_rev: u64,
    /// The request in flight: value and local revision.
    pub in_flight: Option<(Value, u64)>,
    /// The user acted after the request in flight was sent: a follow-up is pending.
    pub follow_up_pending: bool,
}

/// What a device is doing, for a pane.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceView {
    /// The device id.
    pub device_id: String,
    /// Its strategy.
    pub strategy: Strategy,
    /// The connection state.
    pub connection: ConnectionState,
    /// Where the connection stands with its token.
    pub token: TokenState,
    /// Every key it knows.
    pub keys: Vec<KeyView>,
    /// Its counters.
    pub counters: Counters,
    /// Its contiguous cursor.
    pub cursor: u64,
    /// Its clock cursor (device clock, ms since the Unix epoch), if it received a change.
    pub clock_cursor: Option<u64>,
    /// Its settings (how it catches up, its clock's skew, …).
    pub settings: super::DeviceSettings,
    /// When its next WebSocket attempt starts, while it waits for one (also while it
    /// polls), on the engine's clock.
    pub retry_at: Option<Duration>,
    /// When it polls next, while polling and no poll is on its way.
    pub next_poll_at: Option<Duration>,
}

impl Engine {
    /// The device as a pane shows it.
    pub fn view(&self) -> DeviceView {
        DeviceView {
            device_id: self.device_id().to_string(),
            strategy: self.strategy(),
            connection: self.connection().clone(),
            token: self.token_state(),
            keys: self.keys(),
            counters: self.counters().clone(),
            cursor: self.cursor(),
            clock_cursor: self.clock_cursor(),
            settings: self.settings(),
            retry_at: match &self.conn {
                ConnectionState::Reconnecting { retry_at, .. } => Some(*retry_at),
                _ => None,
            },
            next_poll_at: self.next_poll_at(),
        }
    }
}

impl DeviceView {
    /// The value shown for `key` (its default if the device never saw it).
    pub fn shown(&self, key: &Key) -> Value {
        self.keys
            .iter()
            .find(|k| k.key == *key)
            .map_or_else(|| key.default_value(), |k| k.slot.shown.clone())
    }

    /// The key's view, if the device knows the key.
    pub fn key(&self, key: &Key) -> Option<&KeyView> {
        self.keys.iter().find(|k| k.key == *key)
    }

    /// When the next reconnect attempt starts, on the engine's clock (while reconnecting,
    /// or polling), so a pane can count down.
    pub fn next_try_at(&self) -> Option<Duration> {
        self.retry_at
    }

    /// `true` when any request is outstanding.
    pub fn has_pending(&self) -> bool {
        self.keys.iter().any(|k| k.in_flight.is_some())
    }
}
