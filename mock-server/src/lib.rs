//! The Sync Lab server (crate doc completed as the crate grows).

pub mod core;
pub mod link;
pub mod scenario;
pub mod sim;
