//! What the server keeps across restarts, and the interface of a durable store.
//!
//! The core never writes a file itself: it hands each batch of accepted writes to a
//! [`Store`] and acknowledges them only after `commit` returned. The simulator uses the
//! [`MemoryStore`] (which survives a simulated `server restart`); the live server uses redb.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sync_core::protocol::Key;

/// One key's stored state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// The value.
    pub value: Value,
    /// The revision of the write that stored it.
    pub rev: u64,
    /// Who wrote it (`server` for the server itself).
    pub device_id: String,
    /// The writer's `local_rev` (0 for the server).
    pub local_rev: u64,
    /// When the server stored it, in ms since the Unix epoch (for `since_time`). 0 in
    /// stores written before change times were kept.
    #[serde(default)]
    pub time_ms: u64,
}

/// The idempotency watermark of one `(device, key)`: the highest `local_rev` applied, the
/// revision that write got and the value it stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// The highest `local_rev` applied.
    pub local_rev: u64,
    /// The revision that write got.
    pub rev: u64,
    /// The value it stored.
    pub value: Value,
}

/// Everything the server keeps for one user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserData {
    /// The user's revision counter: the last revision assigned.
    pub head: u64,
    /// Key → stored state.
    pub keys: BTreeMap<Key, Stored>,
    /// `device_id` → key → watermark.
    pub marks: BTreeMap<String, BTreeMap<Key, Mark>>,
}

/// The first way a connected device's screen differs from what the server holds: the one
/// comparison behind `expect converged` (the simulator) and the app's convergence bar.
#[derive(Debug, Clone, PartialEq)]
pub enum Difference {
    /// A request is outstanding.
    Pending,
    /// The device shows another value for a stored key.
    Value {
        /// The key.
        key: Key,
        /// What the device shows.
        shown: Value,
        /// What the server holds.
        stored: Value,
    },
    /// The device knows another revision for a stored key.
    Rev {
        /// The key.
        key: Key,
        /// The revision the device knows.
        known: u64,
        /// The server's.
        stored: u64,
    },
}

impl UserData {
    /// The server time (ms since the Unix epoch) of the user's latest change, if any.
    pub fn last_change_ms(&self) -> Option<u64> {
        self.keys.values().map(|s| s.time_ms).max()
    }

    /// How a device differs from this user's stored state, given whether it has a request
    /// outstanding and what it shows and knows per key; `None` when it agrees on every
    /// stored key. Whether a disconnected device counts is the caller's policy.
    pub fn difference(
        &self,
        pending: bool,
        shown: impl Fn(&Key) -> Value,
        known_rev: impl Fn(&Key) -> u64,
    ) -> Option<Difference> {
        if pending {
            return Some(Difference::Pending);
        }
        self.keys.iter().find_map(|(key, stored)| {
            let value = shown(key);
            if value != stored.value {
                return Some(Difference::Value {
                    key: key.clone(),
                    shown: value,
                    stored: stored.value.clone(),
                });
            }
            let known = known_rev(key);
            (known != stored.rev).then(|| Difference::Rev {
                key: key.clone(),
                known,
                stored: stored.rev,
            })
        })
    }
}

/// One accepted write, as committed: it updates the key, the user's head and the writer's
/// watermark in one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The user.
    pub user: String,
    /// The key.
    pub key: Key,
    /// What the key now holds (and who wrote it).
    pub stored: Stored,
}

/// A token a rotation made or retired (PROTOCOL.md: rotations are persisted, so after a
/// restart the old token is still expired and the new one valid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Whose token it is.
    pub user: String,
    /// Rotated away: it no longer authenticates, and says so (`token_expired`).
    pub expired: bool,
}

/// The whole durable state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Durable {
    /// Per user.
    pub users: BTreeMap<String, UserData>,
    /// Accepted, non-duplicate writes ever (revisions assigned), across restarts.
    pub writes: u64,
    /// Tokens made or retired by rotations (the configured ones are not stored).
    #[serde(default)]
    pub tokens: BTreeMap<String, TokenRecord>,
}

impl Durable {
    /// Applies one committed record.
    pub fn apply(&mut self, record: &Record) {
        let user = self.users.entry(record.user.clone()).or_default();
        let stored = &record.stored;
        user.head = user.head.max(stored.rev);
        if stored.device_id != sync_core::protocol::model::SERVER_DEVICE_ID {
            user.marks
                .entry(stored.device_id.clone())
                .or_default()
                .insert(
                    record.key.clone(),
                    Mark {
                        local_rev: stored.local_rev,
                        rev: stored.rev,
                        value: stored.value.clone(),
                    },
                );
        }
        user.keys.insert(record.key.clone(), stored.clone());
        self.writes += 1;
    }
}

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

/// A durable store.
pub trait Store {
    /// Everything committed so far.
    fn load(&mut self) -> Result<Durable, StoreError>;
    /// Makes a batch durable, all or nothing. Returns only once it is durable.
    fn commit(&mut self, batch: &[Record]) -> Result<(), StoreError>;
    /// Makes a rotation durable, all or nothing: the new token and the retired ones.
    fn commit_tokens(&mut self, tokens: &[(String, TokenRecord)]) -> Result<(), StoreError>;
}

/// A store in memory: durable across a simulated server restart (the simulator keeps it
/// while it rebuilds the core), not across the process.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    data: Durable,
    /// Batches committed (for tests of group commit).
    pub commits: u64,
}

impl Store for MemoryStore {
    fn load(&mut self) -> Result<Durable, StoreError> {
        Ok(self.data.clone())
    }

    fn commit(&mut self, batch: &[Record]) -> Result<(), StoreError> {
        for record in batch {
            self.data.apply(record);
        }
        self.commits += 1;
        Ok(())
    }

    fn commit_tokens(&mut self, tokens: &[(String, TokenRecord)]) -> Result<(), StoreError> {
        self.data.tokens.extend(tokens.iter().cloned());
        Ok(())
    }
}
