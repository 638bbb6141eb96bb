//! # mock-server: the server every Sync Lab device talks to
//!
//! The server of PROTOCOL.md, built like `sync-core`: a sans-IO core that takes frames and
//! returns frames, and thin shells around it — a tokio WebSocket server for live use, and a
//! deterministic simulator for scenarios and tests. Both use the same link model for
//! network faults, so a fault made by hand in the app and one written in a scenario are
//! the same fault.
//!
//! | module | what |
//! |---|---|
//! | [`core`] | the server as a state machine: hello, the write pipeline, batches, idempotency, catch-up (by revision or clock), token rotation, fan-out, limits ([`core::store`]: the durable-store interface and the in-memory store; [`core::rate`]: the token bucket) |
//! | [`redb_store`] | the live server's durable store (redb) |
//! | [`net`] | the live server: tokio + tokio-tungstenite, one task owning the core, one per connection, group commit, back-pressure, fault injection per connection |
//! | [`link`] | one direction of a device's network: latency, jitter, loss, hold / release / drop; and the fault vocabulary everything translates into ([`link::Direction`], [`link::Pair`], [`link::Fault`]) |
//! | [`sim`] | the simulator: engines + core + links on a virtual clock with a seeded RNG |
//! | [`scenario`] | the scenario language of SCENARIOS.md: parser and runner |
//! | [`invariants`] | DESIGN.md's invariants, checked on a running simulated world (each device against what its strategy owes): the scenario runner checks them on every run |
//! | [`tokens`] | the users and tokens the binary starts with: `--token`, and the tokens file |
//! | [`paths`] | default locations of data |
//! | [`memory`] | jemalloc's background purging, which the binaries turn on so that memory freed when connections close goes back to the system |
//! | `fuzz` | one fuzz input through the decoder and the core, with its checks (the cargo-fuzz target's body); behind `test-oracles` |
//!
//! The `mock-server` binary (`src/main.rs`) runs the live server standalone; `--help`
//! explains its options.

pub mod core;
#[cfg(feature = "test-oracles")]
pub mod fuzz;
pub mod invariants;
pub mod link;
pub mod memory;
pub mod net;
pub mod paths;
pub mod redb_store;
pub mod scenario;
pub mod sim;
pub mod tokens;
