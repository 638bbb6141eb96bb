//! The strategies for values, each in its own module behind one trait, [`Rules`].
//!
//! The engine owns everything the strategies share — the connection, the requests on the
//! wire, the cursor, the events — and asks the device's strategy only what differs between
//! them: what an intent, an ack, a reject, a push and a lost answer do to the device's
//! state, and what must be sent. It reaches the strategy through one dispatch,
//! [`Machine::rules`] / [`Machine::rules_mut`]; everywhere else it calls the trait.
//!
//! | module | strategy |
//! |---|---|
//! | [`with_push`] | `sync-with-push`: `OptimisticSyncWithPush` + `ServerPush` (the default) |
//! | [`sync`] | `sync`: `OptimisticSync`, other devices' pushes applied as plain writes |
//! | [`naive`] | `naive`: every change sent at once, everything applied as it arrives |
//!
//! Adding a strategy is one new module implementing [`Rules`], plus its registration
//! here: a [`Strategy`] variant with its name, and a [`Machine`] variant.

pub mod naive;
pub mod sync;
pub mod with_push;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::hooks::Rejection;
use super::state::{DeviceState, KeySlot};
use crate::optimistic::SendKind;
use crate::optimistic::sync_with_push::RevisionEntry;
use crate::protocol::{Change, Key};
use naive::OpenWrite;

/// How a device syncs its values (comments always use `OptimisticCommand`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// `OptimisticSyncWithPush` + `ServerPush` (the default).
    #[default]
    SyncWithPush,
    /// `OptimisticSync`; other devices' pushes applied as plain writes.
    Sync,
    /// Every change sent at once, everything applied as it arrives.
    Naive,
}

impl Strategy {
    /// Every strategy, in the order the UI lists them.
    pub const ALL: [Strategy; 3] = [Strategy::SyncWithPush, Strategy::Sync, Strategy::Naive];

    /// The name used in scenarios and the UI.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::SyncWithPush => "sync-with-push",
            Strategy::Sync => "sync",
            Strategy::Naive => "naive",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Strategy::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| {
                format!("unknown strategy `{s}`, expected sync-with-push, sync or naive")
            })
    }
}

/// What a strategy asks of the engine: one effect type for every strategy.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send a write of `key` (the engine sends it now, or keeps it for the next `welcome`).
    Send {
        /// The key.
        key: Key,
        /// The value.
        value: Value,
        /// Its local revision.
        local_rev: u64,
        /// First, follow-up, resend, after a failure.
        kind: SendKind,
    },
    /// An ack was dropped: the user acted since, and a follow-up carries the newer intent.
    FollowUp {
        /// The key.
        key: Key,
        /// The dropped ack's revision.
        rev: u64,
    },
    /// An ack older than the known revision was ignored.
    Stale {
        /// The key.
        key: Key,
        /// The ack's revision.
        rev: u64,
        /// The known revision.
        known: u64,
    },
}

/// What a strategy made of a push or catch-up change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushVerdict {
    /// Applied: the device's state took the change.
    Applied,
    /// Older than the known revision: ignored.
    Stale {
        /// The known revision.
        known: u64,
    },
    /// The known revision again (the own echo after its ack): nothing to do.
    AlreadySeen,
    /// The echo of an older request of this device: only an acknowledgement (the
    /// confirmed value and known revision take it; the screen keeps the newer intent).
    TakenAsAck,
    /// `sync` ignores its own echoes.
    OwnEchoIgnored,
}

/// A strategy's rules for values: everything in which the strategies differ. Every method
/// that changes state gets the device's state and may emit events into it, and pushes
/// what it asks for onto `fx`; the engine carries those [`Effect`]s out, in order. (One
/// buffer the engine reuses: no allocation per input on this hot path.)
pub trait Rules: fmt::Debug {
    /// A new intent for `key` (the engine has counted it and raised its local revision).
    fn intent(
        &mut self,
        st: &mut DeviceState,
        key: &Key,
        value: Value,
        local_rev: u64,
        fx: &mut Vec<Effect>,
    );

    /// The ack of the write of `key` with `local_rev`: the server stored `value` at `rev`.
    fn acked(
        &mut self,
        st: &mut DeviceState,
        key: &Key,
        local_rev: u64,
        value: Value,
        rev: u64,
        fx: &mut Vec<Effect>,
    );

    /// The server refused the write of `key` with `local_rev`.
    fn rejected(
        &mut self,
        st: &mut DeviceState,
        key: &Key,
        local_rev: u64,
        rejection: Rejection,
        fx: &mut Vec<Effect>,
    );

    /// A push or catch-up change of `key` (`from_other`: written by another device).
    fn push(
        &mut self,
        st: &mut DeviceState,
        key: &Key,
        change: &Change,
        from_other: bool,
    ) -> PushVerdict;

    /// PROTOCOL.md's reconnect rule for `key`, whose writes went unanswered: after a
    /// `welcome` (`on_wire` empty), or while a connection stays up (after `authed`, or a
    /// poll) with the local revisions of its writes still on the wire in `on_wire`.
    /// `superseded`: another device's newer change superseded the intent (the strategy
    /// says so with a [`super::EventKind::Superseded`] when it matters).
    fn answer_lost(
        &mut self,
        st: &mut DeviceState,
        key: &Key,
        on_wire: &[u64],
        superseded: bool,
        fx: &mut Vec<Effect>,
    );

    /// The known server revision of `key` the strategy goes by.
    fn known_rev(&self, st: &DeviceState, key: &Key) -> u64 {
        st.known_rev(key)
    }

    /// The write of `key` in flight (or waiting for the connection): value and local
    /// revision.
    fn in_flight(&self, st: &DeviceState, key: &Key) -> Option<(Value, u64)>;

    /// Keys with a write outstanding, in any order.
    fn open_keys(&self) -> Vec<Key>;

    /// Every outstanding write, for the snapshot.
    fn open_writes(&self, st: &DeviceState) -> Vec<OpenWrite>;

    /// The revision map the strategy keeps, for the snapshot (only `sync-with-push` has one).
    fn revisions(&self) -> BTreeMap<Key, RevisionEntry> {
        BTreeMap::new()
    }

    /// Sets `key`'s revision entry (a `welcome` with `reset`: the server lost history).
    fn set_revision(&mut self, _key: Key, _entry: RevisionEntry) {}

    /// A restart from a snapshot: the snapshot's revision map (`None` when another
    /// strategy wrote it), the keys, and the outstanding writes to resume.
    fn restore(
        &mut self,
        revisions: Option<BTreeMap<Key, RevisionEntry>>,
        keys: &BTreeMap<Key, KeySlot>,
        open: Vec<OpenWrite>,
    );
}

/// The device's strategy: the one place the engine dispatches on it.
#[derive(Debug, Clone)]
pub enum Machine {
    /// `sync-with-push`.
    WithPush(with_push::WithPush),
    /// `sync`.
    Sync(sync::Sync),
    /// `naive`.
    Naive(naive::Naive),
}

impl Machine {
    /// The rules of `strategy` for the device `device_id`.
    pub fn new(strategy: Strategy, device_id: &str) -> Machine {
        match strategy {
            Strategy::SyncWithPush => Machine::WithPush(with_push::WithPush::new(device_id)),
            Strategy::Sync => Machine::Sync(sync::Sync::default()),
            Strategy::Naive => Machine::Naive(naive::Naive::default()),
        }
    }

    /// The strategy's rules.
    pub fn rules(&self) -> &dyn Rules {
        match self {
            Machine::WithPush(m) => m,
            Machine::Sync(m) => m,
            Machine::Naive(m) => m,
        }
    }

    /// The strategy's rules, to change the state.
    pub fn rules_mut(&mut self) -> &mut dyn Rules {
        match self {
            Machine::WithPush(m) => m,
            Machine::Sync(m) => m,
            Machine::Naive(m) => m,
        }
    }
}

/// Says that `key`'s intent was superseded, when it was.
fn say_superseded(st: &mut DeviceState, key: &Key, superseded: bool) {
    if superseded {
        st.emit(super::EventKind::Superseded { key: key.clone() });
    }
}
