//! Sync Lab's app crate: the desktop GUI and the headless scenario runner, as a library so
//! that tests drive the same UI code the window runs.
//!
//! | module | what |
//! |---|---|
//! | [`gui`] | the egui app: device panes, server panel, the live backend |
//! | [`run`] | `app run FILE...`: scenarios, headless |

pub mod gui;
pub mod run;
