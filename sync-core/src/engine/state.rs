//! What a device knows per key, and its counters: the application state `S` that the
//! strategy hooks read and write.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::events::{Event, EventKind};
use crate::protocol::Key;

/// One key as the device sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeySlot {
    /// The value on screen (optimistic).
    pub shown: Value,
    /// The last value the server confirmed (ack, push or catch-up applied).
    pub confirmed: Value,
    /// The highest server revision applied for this key (0: never seen).
    pub known_rev: u64,
    /// Local intents so far (persisted; every `tap`/`set`/command bumps it).
    pub local_rev: u64,
    /// The revision of another device's change applied after the newest local intent.
    /// At the next `welcome` an unanswered request for this key is superseded if that
    /// change is still the newest revision known for the key — not if this device's own
    /// write turned out to be newer (its ack lost, its echo then taken as an ack).
    pub superseded_by: Option<u64>,
}

impl KeySlot {
    /// A key never seen: its default value, revision 0.
    pub fn new(key: &Key) -> Self {
        KeySlot {
            shown: key.default_value(),
            confirmed: key.default_value(),
            known_rev: 0,
            local_rev: 0,
            superseded_by: None,
        }
    }
}

/// The counters a device pane and the scenario expectations show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// User intents (`tap`, `set`, comments).
    pub intents: u64,
    /// `set`/`command` frames handed to the link, resends included.
    pub requests: u64,
    /// `requests` per key.
    pub requests_by_key: BTreeMap<Key, u64>,
    /// Acks, pushes and catch-up changes not applied because their revision was lower
    /// than the known one.
    pub stale: u64,
    /// Optimistic changes rolled back after a rejection.
    pub rollbacks: u64,
    /// Intents a request carried beside its newest one: coalesced, never sent on their
    /// own. Counted when that request goes out, so it never goes down. (Intents minus
    /// requests went down when a follow-up was sent, and counted resends against it.)
    #[serde(default)]
    pub saved: u64,
    /// Times the screen went back (SCENARIOS.md, `regressions`): a key's shown value
    /// changed to an answer to an older request than the newest intent, or to a change
    /// with a lower revision than the one known. `naive` and `sync` do it; never
    /// `sync-with-push`.
    #[serde(default)]
    pub regressions: u64,
    /// Frames handed to the link since the device was created, heartbeats (`ping`) left
    /// out: the setup `hello` counts, a `batch` counts once (SCENARIOS.md, `frames up`).
    #[serde(default)]
    pub frames_up: u64,
}

impl Counters {
    /// Intents that did not need a request of their own (coalesced).
    pub fn saved_by_coalescing(&self) -> u64 {
        self.saved
    }
}

/// The device's state: values per key, counters, and the events produced while handling
/// the current input (drained by the engine).
#[derive(Debug, Clone, Default)]
pub struct DeviceState {
    /// Every key the device has seen or written.
    pub keys: BTreeMap<Key, KeySlot>,
    /// The counters.
    pub counters: Counters,
    /// Per key, intents made since its last request (what the next one will carry).
    pub(crate) unsent: BTreeMap<Key, u64>,
    /// Events of the current step, in order.
    pub(crate) events: Vec<EventKind>,
}

impl DeviceState {
    /// The slot of `key`, created with the key's default if never seen.
    pub fn slot(&mut self, key: &Key) -> &mut KeySlot {
        // One tree search: cloning a key is a reference-count increment, not an allocation.
        self.keys
            .entry(key.clone())
            .or_insert_with(|| KeySlot::new(key))
    }

    /// The value shown for `key` (its default if never seen).
    pub fn shown(&self, key: &Key) -> Value {
        self.keys
            .get(key)
            .map_or_else(|| key.default_value(), |s| s.shown.clone())
    }

    /// The known revision of `key` (0 if never seen).
    pub fn known_rev(&self, key: &Key) -> u64 {
        self.keys.get(key).map_or(0, |s| s.known_rev)
    }

    pub(crate) fn emit(&mut self, kind: EventKind) {
        self.events.push(kind);
    }

    /// Records a change confirmed by the server (applied ack, push or catch-up change):
    /// shows a value the server sent. It becomes the confirmed pair only if its revision
    /// is not older than the known one: an older one (what `sync` and `naive` apply, a
    /// regression) is shown, but the confirmed pair stays one the server had.
    pub(crate) fn confirm(&mut self, key: &Key, value: Value, rev: u64) {
        let slot = self.slot(key);
        slot.shown = value.clone();
        if rev >= slot.known_rev {
            slot.confirmed = value;
            slot.known_rev = rev;
        }
    }

    /// The server stored `value` at `rev` (an ack the strategy did not apply, because a
    /// follow-up carries a newer intent): if newer than the known pair, it is the
    /// confirmed pair now. Nothing on screen changes.
    pub(crate) fn server_had(&mut self, key: &Key, value: Value, rev: u64) {
        let slot = self.slot(key);
        if rev > slot.known_rev {
            slot.confirmed = value;
            slot.known_rev = rev;
        }
    }

    pub(crate) fn stale(&mut self, kind: EventKind) {
        self.counters.stale += 1;
        self.emit(kind);
    }

    /// What `key` shows and knows before an answer or change is applied, for
    /// [`DeviceState::regressed_if`].
    pub(crate) fn before(&mut self, key: &Key) -> Before {
        let slot = self.slot(key);
        Before {
            shown: slot.shown.clone(),
            newest_intent: slot.local_rev,
            known_rev: slot.known_rev,
        }
    }

    /// Counts a regression (and says so) when what was just applied changed the value
    /// shown and was `older` than what the device had, as [`Before`] recorded it.
    pub(crate) fn regressed_if(&mut self, key: &Key, before: Before, older: bool) {
        let now = self.slot(key).shown.clone();
        if now != before.shown && older {
            self.counters.regressions += 1;
            self.emit(EventKind::Regressed {
                key: key.clone(),
                from: before.shown,
                to: now,
            });
        }
    }
}

/// A key as it was before an answer or change was applied.
pub(crate) struct Before {
    shown: Value,
    /// The local revision of the newest intent.
    pub(crate) newest_intent: u64,
    /// The newest server revision known.
    pub(crate) known_rev: u64,
}

/// Moves the step's events, timestamped, to the engine's event queue.
pub(crate) fn stamp(
    events: &mut Vec<EventKind>,
    at: std::time::Duration,
    into: &mut std::collections::VecDeque<Event>,
) {
    into.extend(events.drain(..).map(|kind| Event { at, kind }));
}
