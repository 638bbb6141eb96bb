//! The device's snapshot on disk: one JSON file per device, written atomically (write a
//! temporary file, then rename over the old one), so a crash leaves the old snapshot or the
//! new one, never half of either.

use std::path::{Path, PathBuf};

use crate::engine::snapshot::Snapshot;

/// Why a snapshot file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a snapshot; it was moved aside to `kept`.
    #[error(
        "{path} is not a device snapshot ({reason}); it was kept as {kept} and the device starts fresh"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
        /// Where the old file is now.
        kept: PathBuf,
    },
}

/// Reads the snapshot in `path`. `Ok(None)` when there is none yet. A file that is not a
/// snapshot is renamed to `*.corrupt` (kept, never deleted) and reported.
pub fn load(path: &Path) -> Result<Option<Snapshot>, LoadError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LoadError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    match serde_json::from_str(&text) {
        Ok(snapshot) => Ok(Some(snapshot)),
        Err(e) => {
            let kept = path.with_extension("json.corrupt");
            let _ = std::fs::rename(path, &kept);
            Err(LoadError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
                kept,
            })
        }
    }
}

/// Writes the snapshot atomically.
pub fn save(path: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(snapshot).expect("snapshots serialize");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
