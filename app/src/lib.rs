//! Sync Lab's app crate: the desktop GUI and the headless scenario runner, as a library so
//! that tests drive the same UI code the window runs.
//!
//! | module | what |
//! |---|---|
//! | [`gui`] | the egui app: device panes, the scenario player, the wire view, the server panel, the live backend |
//! | [`export`] | a run or session as SVG, Mermaid and JSON lines |
//! | [`present`] | one presentation per event kind: tone, rule, wire arrow, export kind |
//! | [`record`] | a live session written as a scenario: setup, actions, `settle` where quiet, expectations |
//! | [`run`] | `app run FILE...`: scenarios, headless |

pub mod export;
pub mod gui;
pub mod present;
pub mod record;
pub mod run;
