//! The engine's implementations of the generic strategies' hooks, over [`DeviceState`].
//!
//! This is where the reference algorithms meet the demo's data model: "the state" is the
//! key → value map of the device, a server response is the `(value, rev)` of an ack, and a
//! failure is the server's `reject`.

use serde_json::Value;

use super::events::EventKind;
use super::state::DeviceState;
use crate::optimistic::command::CommandHooks;
use crate::optimistic::sync::SyncHooks;
use crate::optimistic::sync_with_push::PushHooks;
use crate::optimistic::{Failure, Finish};
use crate::protocol::model::{comments_from_value, comments_to_value};
use crate::protocol::{Comment, Current, ErrorCode, Key};

/// A `reject` frame: the failure of a write.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    /// Why.
    pub code: ErrorCode,
    /// The server's message.
    pub message: String,
    /// What is stored for the key.
    pub current: Option<Current>,
}

/// An ack: the stored value and its revision.
pub type Acked = (Value, u64);

/// DESIGN.md's rollback rule for a rejected write: if the device still shows the value it
/// sent (and no newer intent is about to be sent), show `current.value` — the key's default
/// when `current` is null. A rate-limited write has no `current`; rolling back to the
/// default would invent a value, so it returns to the last confirmed value instead.
pub(crate) fn roll_back_rejected(
    state: &mut DeviceState,
    key: &Key,
    sent: &Value,
    rejection: &Rejection,
) {
    let slot = state.slot(key);
    if slot.shown != *sent {
        return;
    }
    let to = match (&rejection.current, rejection.code) {
        (Some(current), _) => current.value.clone(),
        (None, ErrorCode::RateLimited) => slot.confirmed.clone(),
        (None, _) => key.default_value(),
    };
    if to == slot.shown {
        return;
    }
    let from = std::mem::replace(&mut slot.shown, to.clone());
    state.counters.rollbacks += 1;
    state.emit(EventKind::RolledBack {
        key: key.clone(),
        from,
        to,
    });
}

fn finish_write(
    state: &mut DeviceState,
    key: &Key,
    finish: Finish<'_, Value, Rejection>,
) -> Result<(), Failure<Rejection>> {
    match finish.error {
        None => {}
        Some(Failure::Error(rejection)) if !finish.newer_intent_follows => {
            roll_back_rejected(state, key, finish.last_sent, rejection);
        }
        Some(Failure::Error(_)) => {}
        Some(other) => state.emit(EventKind::Error {
            code: None,
            message: format!("{key}: {other}"),
        }),
    }
    Ok(())
}

fn applied(state: &mut DeviceState, key: &Key, value: Value, rev: u64) {
    state.confirm(key, value.clone(), rev);
    state.emit(EventKind::ResponseApplied {
        key: key.clone(),
        value,
        rev,
    });
}

/// Hooks of `OptimisticSyncWithPush` + `ServerPush` (strategy `sync-with-push`).
#[derive(Debug, Clone)]
pub struct PushKeyHooks {
    /// This device's id (to recognise its own echoes).
    pub device_id: String,
}

impl PushHooks<DeviceState> for PushKeyHooks {
    type Key = Key;
    type Value = Value;
    type Response = Value;
    type Push = Value;
    type DeviceId = String;
    type Error = Rejection;

    fn get(&self, state: &DeviceState, key: &Key) -> Value {
        state.shown(key)
    }
    fn apply_optimistic(&self, state: &mut DeviceState, key: &Key, value: Value) {
        state.slot(key).shown = value;
    }
    fn apply_response(&self, state: &mut DeviceState, key: &Key, value: Value, rev: i64) {
        applied(state, key, value, rev as u64);
    }
    fn state_rev(&self, state: &DeviceState, key: &Key) -> i64 {
        state.known_rev(key) as i64
    }
    fn apply_push(&self, state: &mut DeviceState, key: &Key, value: Value, rev: i64) -> bool {
        state.confirm(key, value, rev as u64);
        true
    }
    fn device_id(&self) -> String {
        self.device_id.clone()
    }
    fn on_finish(
        &self,
        state: &mut DeviceState,
        key: &Key,
        finish: Finish<'_, Value, Rejection>,
    ) -> Result<(), Failure<Rejection>> {
        finish_write(state, key, finish)
    }
}

/// Hooks of `OptimisticSync` (strategy `sync`).
#[derive(Debug, Clone, Default)]
pub struct SyncKeyHooks;

impl SyncHooks<DeviceState> for SyncKeyHooks {
    type Key = Key;
    type Value = Value;
    type Response = Acked;
    type Error = Rejection;

    fn get(&self, state: &DeviceState, key: &Key) -> Value {
        state.shown(key)
    }
    fn apply_optimistic(&self, state: &mut DeviceState, key: &Key, value: Value) {
        state.slot(key).shown = value;
    }
    fn apply_response(&self, state: &mut DeviceState, key: &Key, (value, rev): Acked) {
        applied(state, key, value, rev);
    }
    fn on_finish(
        &self,
        state: &mut DeviceState,
        key: &Key,
        finish: Finish<'_, Value, Rejection>,
    ) -> Result<(), Failure<Rejection>> {
        finish_write(state, key, finish)
    }
}

/// Hooks of `OptimisticCommand` for comments (every strategy).
#[derive(Debug, Clone, Default)]
pub struct CommentHooks;

impl CommandHooks<DeviceState> for CommentHooks {
    type Key = Key;
    type Value = Vec<Comment>;
    type Response = Acked;
    type Error = Rejection;

    fn get(&self, state: &DeviceState, key: &Key) -> Vec<Comment> {
        comments_from_value(&state.shown(key))
    }
    fn apply(&self, state: &mut DeviceState, key: &Key, value: Vec<Comment>) {
        state.slot(key).shown = comments_to_value(&value);
    }
    /// The ack's list is applied when its revision is not older than the known one.
    fn apply_response(&self, state: &mut DeviceState, key: &Key, (value, rev): Acked) -> bool {
        let known = state.known_rev(key);
        if rev < known {
            state.stale(EventKind::ResponseStale {
                key: key.clone(),
                rev,
                known,
            });
            return false;
        }
        applied(state, key, value, rev);
        true
    }
    /// Back to what the server holds: its `current` when the rejection carries it, else
    /// the newest list this device confirmed. Before any other change that is `initial`;
    /// after another device's change was applied it is that change (a delete refused
    /// because another device deleted the comment first must not bring the comment back).
    fn rollback(
        &self,
        state: &mut DeviceState,
        key: &Key,
        _initial: &Vec<Comment>,
        _optimistic: &Vec<Comment>,
        error: &Rejection,
    ) -> bool {
        let slot = state.slot(key);
        let to = match &error.current {
            Some(current) if current.rev >= slot.known_rev => current.value.clone(),
            _ => slot.confirmed.clone(),
        };
        if to == slot.shown {
            return false;
        }
        let from = std::mem::replace(&mut slot.shown, to.clone());
        state.counters.rollbacks += 1;
        state.emit(EventKind::RolledBack {
            key: key.clone(),
            from,
            to,
        });
        true
    }
}
