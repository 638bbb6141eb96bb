//! `sync`: the reference `OptimisticSync`. One request per key in flight and a follow-up
//! for the newest intent, but no revision map: other devices' pushes are applied as plain
//! writes (so a late one can take the screen back), and its own echoes are ignored.

use std::collections::BTreeMap;

use serde_json::Value;

use super::naive::OpenWrite;
use super::{Effect, PushVerdict, Rules, say_superseded};
use crate::engine::hooks::{Rejection, SyncKeyHooks};
use crate::engine::state::{DeviceState, KeySlot};
use crate::optimistic::sync::{OptimisticSync, SyncEffect};
use crate::optimistic::sync_with_push::RevisionEntry;
use crate::protocol::{Change, Key};

/// The `sync` rules of one device.
#[derive(Debug, Clone)]
pub struct Sync {
    machine: OptimisticSync<SyncKeyHooks, DeviceState>,
}

impl Default for Sync {
    fn default() -> Self {
        Sync {
            machine: OptimisticSync::new(SyncKeyHooks),
        }
    }
}

/// The machine's effects as the engine's. `OptimisticSync` sends the value alone: the
/// local revision is the key's newest; `ack_rev` is the revision of the ack being handled.
fn effects(
    st: &mut DeviceState,
    fx: Vec<SyncEffect<Key, Value, Rejection>>,
    ack_rev: u64,
    out: &mut Vec<Effect>,
) {
    out.extend(fx.into_iter().filter_map(|effect| match effect {
        SyncEffect::Send { key, value, kind } => Some(Effect::Send {
            local_rev: st.slot(&key).local_rev,
            key,
            value,
            kind,
        }),
        SyncEffect::Dropped { key } => Some(Effect::FollowUp { key, rev: ack_rev }),
        SyncEffect::Finished { .. } => None,
    }));
}

impl Rules for Sync {
    fn intent(
        &mut self,
        st: &mut DeviceState,
        key: &Key,
        value: Value,
        _local_rev: u64,
        out: &mut Vec<Effect>,
    ) {
        let fx = self.machine.dispatch(st, key.clone(), value);
        effects(st, fx, 0, out);
    }

    fn acked(
        &mut self,
        st: &mut DeviceState,
        key: &Key,
        _local_rev: u64,
        value: Value,
        rev: u64,
        out: &mut Vec<Effect>,
    ) {
        let fx = self.machine.on_response(st, key, Ok(Some((value, rev))));
        effects(st, fx, rev, out);
    }

    fn rejected(
        &mut self,
        st: &mut DeviceState,
        key: &Key,
        _local_rev: u64,
        rejection: Rejection,
        out: &mut Vec<Effect>,
    ) {
        let fx = self.machine.on_response(st, key, Err(rejection));
        effects(st, fx, 0, out);
    }

    fn push(
        &mut self,
        st: &mut DeviceState,
        key: &Key,
        change: &Change,
        from_other: bool,
    ) -> PushVerdict {
        if !from_other {
            return PushVerdict::OwnEchoIgnored;
        }
        st.confirm(key, change.value.clone(), change.rev);
        PushVerdict::Applied
    }

    fn answer_lost(
        &mut self,
        st: &mut DeviceState,
        key: &Key,
        on_wire: &[u64],
        superseded: bool,
        out: &mut Vec<Effect>,
    ) {
        if !on_wire.is_empty() {
            return;
        }
        say_superseded(st, key, superseded);
        let fx = self.machine.on_answer_lost(st, key, superseded);
        effects(st, fx, 0, out);
    }

    fn in_flight(&self, st: &DeviceState, key: &Key) -> Option<(Value, u64)> {
        let local_rev = st.keys.get(key).map_or(0, |s| s.local_rev);
        self.machine.in_flight(key).map(|v| (v.clone(), local_rev))
    }

    fn open_keys(&self) -> Vec<Key> {
        self.machine
            .open_requests()
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn open_writes(&self, st: &DeviceState) -> Vec<OpenWrite> {
        self.machine
            .open_requests()
            .map(|(k, v)| OpenWrite {
                key: k.clone(),
                value: v.clone(),
                local_rev: st.keys.get(k).map_or(0, |s| s.local_rev),
            })
            .collect()
    }

    fn restore(
        &mut self,
        _revisions: Option<BTreeMap<Key, RevisionEntry>>,
        _keys: &BTreeMap<Key, KeySlot>,
        open: Vec<OpenWrite>,
    ) {
        for write in open {
            self.machine.restore_in_flight(write.key, write.value);
        }
    }
}
