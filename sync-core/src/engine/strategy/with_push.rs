//! `sync-with-push`: the reference `OptimisticSyncWithPush` with `ServerPush`. One request
//! per key in flight, a follow-up for the newest intent, and a revision map that tells a
//! push or ack older than what the device knows from one it must apply.

use std::collections::BTreeMap;

use serde_json::Value;

use super::naive::OpenWrite;
use super::{Effect, PushVerdict, Rules, say_superseded};
use crate::engine::hooks::{PushKeyHooks, Rejection};
use crate::engine::state::{DeviceState, KeySlot};
use crate::optimistic::sync_with_push::{
    Answer, DropReason, OpenRequest, OptimisticSyncWithPush, PushEffect, PushMeta, PushOutcome,
    RevisionEntry,
};
use crate::protocol::{Change, Key};

/// The `sync-with-push` rules of one device.
#[derive(Debug, Clone)]
pub struct WithPush {
    machine: OptimisticSyncWithPush<PushKeyHooks, DeviceState>,
}

impl WithPush {
    /// The rules for the device `device_id` (its own echoes are told apart by it).
    pub fn new(device_id: &str) -> WithPush {
        WithPush {
            machine: OptimisticSyncWithPush::new(PushKeyHooks {
                device_id: device_id.to_string(),
            }),
        }
    }
}

/// The machine's effects as the engine's; `ack_rev` is the revision of the ack being
/// handled (for a follow-up's event).
fn effects(fx: Vec<PushEffect<Key, Value, Rejection>>, ack_rev: u64, out: &mut Vec<Effect>) {
    out.extend(fx.into_iter().filter_map(|effect| match effect {
        PushEffect::Send {
            key,
            value,
            local_rev,
            kind,
        } => Some(Effect::Send {
            key,
            value,
            local_rev: local_rev as u64,
            kind,
        }),
        PushEffect::Dropped {
            key,
            reason: DropReason::FollowUp,
        } => Some(Effect::FollowUp { key, rev: ack_rev }),
        PushEffect::Dropped {
            key,
            reason: DropReason::Stale { rev, known },
        } => Some(Effect::Stale {
            key,
            rev: rev as u64,
            known: known as u64,
        }),
        PushEffect::Applied { .. } | PushEffect::Finished { .. } => None,
    }));
}

impl Rules for WithPush {
    fn intent(
        &mut self,
        st: &mut DeviceState,
        key: &Key,
        value: Value,
        _local_rev: u64,
        out: &mut Vec<Effect>,
    ) {
        effects(self.machine.dispatch(st, key.clone(), value), 0, out);
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
        let answer = Answer {
            response: Some(value),
            rev: Some(rev as i64),
        };
        effects(self.machine.on_response(st, key, Ok(answer)), rev, out);
    }

    fn rejected(
        &mut self,
        st: &mut DeviceState,
        key: &Key,
        _local_rev: u64,
        rejection: Rejection,
        out: &mut Vec<Effect>,
    ) {
        effects(self.machine.on_response(st, key, Err(rejection)), 0, out);
    }

    fn push(
        &mut self,
        st: &mut DeviceState,
        key: &Key,
        change: &Change,
        _from_other: bool,
    ) -> PushVerdict {
        let meta = PushMeta {
            rev: change.rev as i64,
            local_rev: change.local_rev as i64,
            device_id: change.device_id.clone(),
        };
        match self.machine.push(st, key, meta, change.value.clone()) {
            #[cfg(feature = "mutants")]
            PushOutcome::Stale { .. }
                if crate::engine::mutant::breaks(
                    crate::engine::mutant::Mutant::ApplyStalePushes,
                ) =>
            {
                st.confirm(key, change.value.clone(), change.rev);
                PushVerdict::Applied
            }
            PushOutcome::Stale { known } => PushVerdict::Stale {
                known: known as u64,
            },
            PushOutcome::AlreadySeen => PushVerdict::AlreadySeen,
            PushOutcome::TakenAsAck => {
                // Not shown (a newer intent is), but it is what the server stores at that
                // revision: the confirmed pair must be one it had.
                let slot = st.slot(key);
                slot.confirmed = change.value.clone();
                slot.known_rev = slot.known_rev.max(change.rev);
                PushVerdict::TakenAsAck
            }
            PushOutcome::Applied | PushOutcome::Declined => PushVerdict::Applied,
        }
    }

    fn answer_lost(
        &mut self,
        st: &mut DeviceState,
        key: &Key,
        on_wire: &[u64],
        superseded: bool,
        out: &mut Vec<Effect>,
    ) {
        // One request per key: while one is on the wire, its answer decides.
        if !on_wire.is_empty() {
            return;
        }
        say_superseded(st, key, superseded);
        effects(self.machine.on_answer_lost(st, key, superseded), 0, out);
    }

    fn known_rev(&self, st: &DeviceState, key: &Key) -> u64 {
        // Also the revisions learned from acks dropped for a follow-up.
        let from_state = st.known_rev(key);
        self.machine.entry(key).map_or(from_state, |e| {
            from_state.max(u64::try_from(e.server).unwrap_or(0))
        })
    }

    fn in_flight(&self, _st: &DeviceState, key: &Key) -> Option<(Value, u64)> {
        self.machine
            .in_flight(key)
            .map(|r| (r.value, r.local_rev as u64))
    }

    fn open_keys(&self) -> Vec<Key> {
        self.machine
            .open_requests()
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn open_writes(&self, _st: &DeviceState) -> Vec<OpenWrite> {
        self.machine
            .open_requests()
            .map(|(k, r)| OpenWrite {
                key: k.clone(),
                value: r.value,
                local_rev: r.local_rev as u64,
            })
            .collect()
    }

    fn revisions(&self) -> BTreeMap<Key, RevisionEntry> {
        self.machine
            .entries()
            .map(|(k, e)| (k.clone(), *e))
            .collect()
    }

    fn set_revision(&mut self, key: Key, entry: RevisionEntry) {
        self.machine.set_entry(key, entry);
    }

    fn restore(
        &mut self,
        revisions: Option<BTreeMap<Key, RevisionEntry>>,
        keys: &BTreeMap<Key, KeySlot>,
        open: Vec<OpenWrite>,
    ) {
        match revisions {
            Some(revisions) => {
                for (key, entry) in revisions {
                    self.machine.set_entry(key, entry);
                }
            }
            // Another strategy wrote the snapshot: rebuild the map from the keys' local
            // and known revisions.
            None => {
                for (key, slot) in keys {
                    let entry = RevisionEntry {
                        local: slot.local_rev as i64,
                        server: slot.known_rev as i64,
                        is_push: false,
                    };
                    self.machine.set_entry(key.clone(), entry);
                }
            }
        }
        for write in open {
            self.machine.restore_in_flight(
                write.key,
                OpenRequest {
                    value: write.value,
                    local_rev: write.local_rev as i64,
                },
            );
        }
    }
}
