//! Giving memory back. The server's binaries (`mock-server`, `loadgen`) allocate with
//! jemalloc; its background thread purges freed pages (after jemalloc's decay time, 10 s by
//! default) even when nothing else allocates, which is exactly the case after many
//! connections close at once and the server goes quiet. Without it, an idle server would
//! keep its peak.

/// Turns jemalloc's background purging on: call it first thing in a binary whose global
/// allocator is `tikv_jemallocator::Jemalloc`. Logs and goes on where it cannot.
pub fn give_back_freed_memory() {
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(
            "jemalloc's background purging is off ({e}): freed memory stays with the process"
        );
    }
}
