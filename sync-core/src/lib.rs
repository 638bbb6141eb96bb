//! Sync Lab's core library (crate doc is completed with the engine).

pub mod engine;
pub mod optimistic;
pub mod protocol;
pub mod rng;
