//! Where Sync Lab keeps its files by default.

use std::path::PathBuf;

/// `$XDG_DATA_HOME/sync-lab`, or `~/.local/share/sync-lab` (or `./sync-lab` with no home).
pub fn data_home() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("sync-lab")
}
