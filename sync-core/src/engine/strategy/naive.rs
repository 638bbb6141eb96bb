//! The `naive` strategy: no lock, no revision check. Every intent is sent at once, every
//! answer and every push is applied as it arrives. It exists to show on screen why the
//! other strategies are needed: flicker, wasted requests, lost intent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Effect, PushVerdict, Rules, say_superseded};
use crate::engine::events::EventKind;
use crate::engine::hooks::{Rejection, roll_back_rejected};
use crate::engine::state::{DeviceState, KeySlot};
use crate::optimistic::SendKind;
use crate::optimistic::sync_with_push::RevisionEntry;
use crate::protocol::{Change, Key};

/// One write of a `naive` device that has not been answered yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenWrite {
    /// The key.
    pub key: Key,
    /// The value sent (or to send).
    pub value: Value,
    /// Its local revision.
    pub local_rev: u64,
}

/// The unanswered writes of a `naive` device, per key, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Naive {
    open: BTreeMap<Key, Vec<OpenWrite>>,
}

impl Naive {
    /// Records a write (sent, or waiting for the connection).
    pub fn opened(&mut self, write: OpenWrite) {
        self.open.entry(write.key.clone()).or_default().push(write);
    }

    /// The write with `local_rev` was answered: returns it.
    pub fn answered(&mut self, key: &Key, local_rev: u64) -> Option<OpenWrite> {
        let list = self.open.get_mut(key)?;
        let pos = list.iter().position(|w| w.local_rev == local_rev)?;
        let write = list.remove(pos);
        if list.is_empty() {
            self.open.remove(key);
        }
        Some(write)
    }

    /// Takes out the open writes of `key` other than those with these local revisions
    /// (the ones still on the wire): they were lost. Oldest first.
    pub fn take_lost(&mut self, key: &Key, on_wire: &[u64]) -> Vec<OpenWrite> {
        let Some(list) = self.open.get_mut(key) else {
            return Vec::new();
        };
        let (kept, lost) = std::mem::take(list)
            .into_iter()
            .partition(|w| on_wire.contains(&w.local_rev));
        *list = kept;
        if list.is_empty() {
            self.open.remove(key);
        }
        lost
    }

    /// A write goes out, and stays open until answered.
    fn send(
        &mut self,
        key: &Key,
        value: Value,
        local_rev: u64,
        kind: SendKind,
        fx: &mut Vec<Effect>,
    ) {
        self.opened(OpenWrite {
            key: key.clone(),
            value: value.clone(),
            local_rev,
        });
        fx.push(Effect::Send {
            key: key.clone(),
            value,
            local_rev,
            kind,
        });
    }

    /// Keys with unanswered writes.
    pub fn keys(&self) -> Vec<Key> {
        self.open.keys().cloned().collect()
    }

    /// The newest unanswered write of `key`.
    pub fn newest(&self, key: &Key) -> Option<&OpenWrite> {
        self.open.get(key).and_then(|l| l.last())
    }

    /// Every unanswered write.
    pub fn all(&self) -> impl Iterator<Item = &OpenWrite> {
        self.open.values().flatten()
    }
}

impl Rules for Naive {
    fn intent(
        &mut self,
        st: &mut DeviceState,
        key: &Key,
        value: Value,
        local_rev: u64,
        fx: &mut Vec<Effect>,
    ) {
        st.slot(key).shown = value.clone();
        self.send(key, value, local_rev, SendKind::First, fx);
    }

    fn acked(
        &mut self,
        st: &mut DeviceState,
        key: &Key,
        local_rev: u64,
        value: Value,
        rev: u64,
        _fx: &mut Vec<Effect>,
    ) {
        self.answered(key, local_rev);
        st.confirm(key, value.clone(), rev);
        st.emit(EventKind::ResponseApplied {
            key: key.clone(),
            value,
            rev,
        });
    }

    fn rejected(
        &mut self,
        st: &mut DeviceState,
        key: &Key,
        local_rev: u64,
        rejection: Rejection,
        _fx: &mut Vec<Effect>,
    ) {
        if let Some(write) = self.answered(key, local_rev) {
            roll_back_rejected(st, key, &write.value, &rejection);
        }
    }

    fn push(
        &mut self,
        st: &mut DeviceState,
        key: &Key,
        change: &Change,
        _from_other: bool,
    ) -> PushVerdict {
        st.confirm(key, change.value.clone(), change.rev);
        PushVerdict::Applied
    }

    /// `naive` keeps every write open: it forgets those that were lost (not on the wire),
    /// and sends the newest intent again if the newest lost one was newer than any on the
    /// wire.
    fn answer_lost(
        &mut self,
        st: &mut DeviceState,
        key: &Key,
        on_wire: &[u64],
        superseded: bool,
        fx: &mut Vec<Effect>,
    ) {
        let lost = self.take_lost(key, on_wire);
        let Some(newest) = lost.last().map(|w| w.local_rev) else {
            return;
        };
        if on_wire.iter().any(|sent| *sent >= newest) {
            return;
        }
        say_superseded(st, key, superseded);
        if superseded {
            return;
        }
        let slot = st.slot(key);
        let (value, local_rev) = (slot.shown.clone(), slot.local_rev);
        let kind = if local_rev == newest {
            SendKind::Resend
        } else {
            SendKind::FollowUp
        };
        self.send(key, value, local_rev, kind, fx);
    }

    fn in_flight(&self, _st: &DeviceState, key: &Key) -> Option<(Value, u64)> {
        self.newest(key).map(|w| (w.value.clone(), w.local_rev))
    }

    fn open_keys(&self) -> Vec<Key> {
        self.keys()
    }

    fn open_writes(&self, _st: &DeviceState) -> Vec<OpenWrite> {
        self.all().cloned().collect()
    }

    fn restore(
        &mut self,
        _revisions: Option<BTreeMap<Key, RevisionEntry>>,
        _keys: &BTreeMap<Key, KeySlot>,
        open: Vec<OpenWrite>,
    ) {
        for write in open {
            self.opened(write);
        }
    }
}
