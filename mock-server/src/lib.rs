//! The Sync Lab server (crate doc completed as the crate grows).

pub mod core;
pub mod link;
pub mod net;
pub mod redb_store;
pub mod scenario;
pub mod sim;
