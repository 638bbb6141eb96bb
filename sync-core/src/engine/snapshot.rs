//! What a device restart keeps (SCENARIOS.md, `DEVICE restart`): the device id, per key the
//! shown and last-confirmed values, known and local revisions, every unacknowledged intent
//! (sent or not), and the cursor. The counters survive too, so scenario expectations count
//! across restarts. What is *not* kept: the connection, request ids, timers.
//!
//! The snapshot is plain serde data; the client runtime writes it as JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cursor::Cursor;
use super::state::{Counters, KeySlot};
use super::strategy::naive::OpenWrite;
use super::{Engine, EngineConfig, PendingCommand, Strategy};
use crate::optimistic::sync_with_push::RevisionEntry;
use crate::protocol::Key;
use crate::protocol::model::comments_from_value;

/// The snapshot format's version; a file of another version is refused with a clear error.
pub const SNAPSHOT_VERSION: u32 = 1;

/// A device's durable state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// [`SNAPSHOT_VERSION`].
    pub version: u32,
    /// The device id.
    pub device_id: String,
    /// The strategy for values.
    pub strategy: Strategy,
    /// The contiguous cursor.
    pub cursor: Cursor,
    /// Every key the device knows.
    pub keys: BTreeMap<Key, KeySlot>,
    /// Unanswered (or unsent) writes: for `sync`/`sync-with-push` one per key, the request
    /// of the open cycle; for `naive` every open write.
    pub open_writes: Vec<OpenWrite>,
    /// The `sync-with-push` revision map (empty for other strategies).
    pub revisions: BTreeMap<Key, RevisionEntry>,
    /// Running comment commands: the command, and the list from before it (what a
    /// rollback restores).
    pub commands: Vec<SavedCommand>,
    /// The counters.
    pub counters: Counters,
    /// The clock cursor (missing in snapshots written before it existed).
    #[serde(default)]
    pub clock_cursor: Option<u64>,
}

/// A comment command waiting for its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedCommand {
    /// The comments key.
    pub key: Key,
    /// The command and its local revision.
    pub command: PendingCommand,
    /// The list from before the command.
    pub before: Value,
    /// The optimistic list.
    pub optimistic: Value,
}

/// Why a snapshot cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// Written by another version of the format.
    #[error("snapshot version {found} is not supported (expected {SNAPSHOT_VERSION})")]
    Version {
        /// The version in the file.
        found: u32,
    },
    /// The snapshot belongs to another device.
    #[error("snapshot is for device `{found}`, not `{expected}`")]
    OtherDevice {
        /// The device in the file.
        found: String,
        /// The device being restored.
        expected: String,
    },
}

impl Engine {
    /// The device's durable state now.
    pub fn snapshot(&self) -> Snapshot {
        let mut open_writes = self.machine.rules().open_writes(&self.state);
        // Hash-map order differs between runs; a snapshot file must not.
        open_writes.sort_by(|a, b| (&a.key, a.local_rev).cmp(&(&b.key, b.local_rev)));
        let revisions = self.machine.rules().revisions();
        let commands = self
            .commands
            .iter()
            .map(|(key, command)| SavedCommand {
                key: key.clone(),
                command: command.clone(),
                before: self.comments.initial(key).map_or(Value::Null, |l| {
                    crate::protocol::model::comments_to_value(l)
                }),
                optimistic: self.comments.running(key).map_or(Value::Null, |l| {
                    crate::protocol::model::comments_to_value(l)
                }),
            })
            .collect();
        Snapshot {
            version: SNAPSHOT_VERSION,
            device_id: self.device_id.clone(),
            strategy: self.strategy,
            cursor: self.cursor.clone(),
            keys: self.state.keys.clone(),
            open_writes,
            revisions,
            commands,
            counters: self.state.counters.clone(),
            clock_cursor: self.clock_cursor,
        }
    }

    /// A device restarted from its snapshot. It connects at once; its unanswered
    /// requests are resolved after the `welcome` (resent, or superseded).
    ///
    /// The strategy is the configuration's, so a device can restart with another one (the
    /// app's strategy selector): open writes carry value and local revision, which every
    /// strategy can resume, and a `sync-with-push` revision map missing from the snapshot
    /// is rebuilt from the keys' local and known revisions.
    pub fn restore(
        config: EngineConfig,
        snapshot: Snapshot,
        now: Duration,
    ) -> Result<Engine, RestoreError> {
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(RestoreError::Version {
                found: snapshot.version,
            });
        }
        if snapshot.device_id != config.device_id {
            return Err(RestoreError::OtherDevice {
                found: snapshot.device_id,
                expected: config.device_id,
            });
        }
        let mut engine = Engine::new(config, now);
        // A revision map written by another strategy is not this one's.
        let revisions = (snapshot.strategy == engine.strategy).then_some(snapshot.revisions);
        engine
            .machine
            .rules_mut()
            .restore(revisions, &snapshot.keys, snapshot.open_writes);
        engine.state.keys = snapshot.keys;
        engine.state.counters = snapshot.counters;
        engine.cursor = snapshot.cursor;
        engine.clock_cursor = snapshot.clock_cursor;
        for saved in snapshot.commands {
            engine.comments.restore_running(
                saved.key.clone(),
                comments_from_value(&saved.before),
                comments_from_value(&saved.optimistic),
            );
            engine.commands.insert(saved.key, saved.command);
        }
        Ok(engine)
    }
}
