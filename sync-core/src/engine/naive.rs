//! The `naive` strategy: no lock, no revision check. Every intent is sent at once, every
//! answer and every push is applied as it arrives. It exists to show on screen why the
//! other strategies are needed: flicker, wasted requests, lost intent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::Key;

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
