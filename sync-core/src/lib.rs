//! # sync-core: optimistic sync, without I/O
//!
//! Sync Lab's library: the wire protocol shared by devices and the server, the four
//! optimistic strategies of the reference library as sans-IO state machines, and one
//! device's sync engine built on them. Nothing here reads a clock, sleeps, awaits or owns
//! a socket: every input carries `now`, every output is a value for a shell to carry out.
//! That is what lets the same code run in a unit test, in the deterministic simulator and
//! behind a real WebSocket.
//!
//! ## Modules
//!
//! | module | what it holds |
//! |---|---|
//! | [`protocol`] | PROTOCOL.md as types: keys and their rules ([`protocol::model`]), frames, codes, strict decoding |
//! | [`optimistic`] | the generic strategies: [`optimistic::command`], [`optimistic::sync`], [`optimistic::sync_with_push`] |
//! | [`engine`] | one device: intents, frames, timers, reconnect, polling, persistence — on top of [`optimistic`], each strategy's rules in [`engine::strategy`] |
//! | [`rng`] | the seeded RNG engines take their randomness from |
//! | `client` (feature `client`) | the tokio shell: one engine as a live device over a real WebSocket (or HTTP while polling) |
//!
//! ## The four strategies
//!
//! **OptimisticCommand** — a one-shot command (add a comment). Its result is shown at once;
//! if the server refuses, it is rolled back *only if the screen still shows this command's
//! value* (a change made meanwhile survives). A second command on the same key while one
//! runs is aborted.
//!
//! ```
//! # use sync_core::optimistic::command::*;
//! # struct H;
//! # impl CommandHooks<Vec<u8>> for H {
//! #     type Key = (); type Value = Vec<u8>; type Response = (); type Error = ();
//! #     fn get(&self, s: &Vec<u8>, _: &()) -> Vec<u8> { s.clone() }
//! #     fn apply(&self, s: &mut Vec<u8>, _: &(), v: Vec<u8>) { *s = v }
//! # }
//! let mut comments = vec![1];
//! let mut runner = CommandRunner::new(H);
//! runner.dispatch(&mut comments, (), vec![1, 2]);                // shown at once
//! assert_eq!(runner.dispatch(&mut comments, (), vec![1, 2, 3]), Dispatched::Aborted);
//! runner.on_response(&mut comments, &(), Err(()));              // refused: rolled back
//! assert_eq!(comments, [1]);
//! ```
//!
//! **OptimisticSync** — last-value-wins saves. Every tap is shown at once; at most one
//! request per key is in flight; when it completes, a follow-up goes out only if the value
//! shown now *differs* from the value sent. Three quick taps cost one request.
//!
//! ```
//! # use sync_core::optimistic::sync::*;
//! # struct H;
//! # impl SyncHooks<bool> for H {
//! #     type Key = (); type Value = bool; type Response = bool; type Error = ();
//! #     fn get(&self, s: &bool, _: &()) -> bool { *s }
//! #     fn apply_optimistic(&self, s: &mut bool, _: &(), v: bool) { *s = v }
//! #     fn apply_response(&self, s: &mut bool, _: &(), r: bool) { *s = r }
//! # }
//! let (mut liked, mut m) = (false, OptimisticSync::new(H));
//! assert_eq!(m.dispatch(&mut liked, (), true).len(), 1);  // request 1: true
//! m.dispatch(&mut liked, (), false);                      // coalesced
//! m.dispatch(&mut liked, (), true);                       // coalesced
//! let fx = m.on_response(&mut liked, &(), Ok(None));
//! assert!(matches!(fx[..], [SyncEffect::Finished { .. }])); // same value: no follow-up
//! ```
//!
//! **OptimisticSyncWithPush** — the same, for several devices. Every intent bumps the key's
//! *local revision*, and the follow-up is decided by revision, not by value: if the user
//! acted after the request went out, the newest value is sent even when it equals the one
//! in flight, because another device may have written in between. A server answer older
//! than the newest known revision is not applied.
//!
//! ```
//! # use sync_core::optimistic::sync_with_push::*;
//! # #[derive(Default)] struct S { v: bool, rev: i64 }
//! # struct H;
//! # impl PushHooks<S> for H {
//! #     type Key = (); type Value = bool; type Response = bool; type Push = bool;
//! #     type DeviceId = u8; type Error = ();
//! #     fn get(&self, s: &S, _: &()) -> bool { s.v }
//! #     fn apply_optimistic(&self, s: &mut S, _: &(), v: bool) { s.v = v }
//! #     fn apply_response(&self, s: &mut S, _: &(), r: bool, rev: i64) { s.v = r; s.rev = rev }
//! #     fn state_rev(&self, s: &S, _: &()) -> i64 { s.rev }
//! #     fn apply_push(&self, s: &mut S, _: &(), v: bool, rev: i64) -> bool { s.v = v; s.rev = rev; true }
//! #     fn device_id(&self) -> u8 { 1 }
//! # }
//! let (mut s, mut m) = (S::default(), OptimisticSyncWithPush::new(H));
//! m.dispatch(&mut s, (), true);                 // send (true, local_rev 1)
//! m.dispatch(&mut s, (), false);
//! m.dispatch(&mut s, (), true);                 // back to true, local_rev 3
//! let fx = m.on_response(&mut s, &(), Ok(Answer { response: Some(true), rev: Some(1) }));
//! assert!(fx.iter().any(|e| matches!(e, PushEffect::Send { local_rev: 3, .. })));
//! ```
//!
//! **ServerPush** — applying what other devices wrote. A push whose revision is not newer
//! than the known one is ignored (*stale* when lower); the echo of an older request of this
//! device is only an acknowledgement; any other push is applied at once — even while a
//! request is in flight — and supersedes the pending follow-up.
//!
//! ```
//! # use sync_core::optimistic::sync_with_push::*;
//! # #[derive(Default)] struct S { v: bool, rev: i64 }
//! # struct H;
//! # impl PushHooks<S> for H {
//! #     type Key = (); type Value = bool; type Response = bool; type Push = bool;
//! #     type DeviceId = u8; type Error = ();
//! #     fn get(&self, s: &S, _: &()) -> bool { s.v }
//! #     fn apply_optimistic(&self, s: &mut S, _: &(), v: bool) { s.v = v }
//! #     fn apply_response(&self, s: &mut S, _: &(), r: bool, rev: i64) { s.v = r; s.rev = rev }
//! #     fn state_rev(&self, s: &S, _: &()) -> i64 { s.rev }
//! #     fn apply_push(&self, s: &mut S, _: &(), v: bool, rev: i64) -> bool { s.v = v; s.rev = rev; true }
//! #     fn device_id(&self) -> u8 { 1 }
//! # }
//! let (mut s, mut m) = (S { v: false, rev: 20 }, OptimisticSyncWithPush::new(H));
//! let other = |rev| PushMeta { rev, local_rev: 0, device_id: 2 };
//! assert_eq!(m.push(&mut s, &(), other(19), true), PushOutcome::Stale { known: 20 });
//! assert_eq!(m.push(&mut s, &(), other(21), true), PushOutcome::Applied);
//! assert!(s.v);
//! ```
//!
//! ## The device engine
//!
//! [`engine::Engine`] puts these together for one device of the demo: `sync-with-push`
//! (default), `sync` or `naive` for values, OptimisticCommand for comments, plus what the
//! reference leaves to the app: the connection, heartbeat, reconnect backoff, the
//! reconnect rule, the contiguous cursor and a snapshot for restarts.
//!
//! ```
//! use std::time::Duration;
//! use sync_core::engine::{Engine, EngineConfig, Output, Strategy};
//! use sync_core::protocol::{ClientFrame, Key, ServerFrame};
//!
//! let now = Duration::ZERO;
//! let config = EngineConfig {
//!     device_id: "phone".into(), token: "demo-token".into(),
//!     strategy: Strategy::SyncWithPush, seed: 1,
//! };
//! let mut phone = Engine::new(config, now);
//! assert_eq!(phone.poll_output(), Some(Output::Open));     // the shell opens a socket…
//! phone.on_connected(now);                                  // …and says so
//! assert!(matches!(phone.poll_output(), Some(Output::Send(ClientFrame::Hello { .. }))));
//! phone.on_frame(ServerFrame::Welcome { user: "demo".into(), rev: 0, changes: vec![], reset: false }, now);
//!
//! let like = Key::parse("like/post-1").unwrap();
//! phone.tap(&like, now).unwrap();
//! assert_eq!(phone.shown(&like), serde_json::json!(true)); // optimistic
//! assert!(matches!(phone.poll_output(), Some(Output::Send(ClientFrame::Set { local_rev: 1, .. }))));
//! ```

#[cfg(feature = "client")]
pub mod client;
pub mod engine;
pub mod optimistic;
pub mod protocol;
pub mod rng;
