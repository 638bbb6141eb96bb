//! `OptimisticSyncWithPush` and `ServerPush`: the same coalescing as
//! [`super::sync`], but for several devices writing the same keys.
//!
//! Every local intent bumps the key's *local revision*, and a follow-up is decided by
//! revision, not by value: if the user acted after the request went out, the newest value
//! is sent even when it equals the one in flight (another device may have written in
//! between). Pushes from the server carry the write's revision; a push that is not newer
//! than the known revision is ignored, an echo of an older request of this device is only
//! an acknowledgement, and any other push is applied at once — even while a request is in
//! flight — and supersedes the pending follow-up.
//!
//! ```
//! use sync_core::optimistic::sync_with_push::*;
//!
//! #[derive(Default)]
//! struct Liked { value: bool, rev: i64 }
//! struct Hooks;
//! impl PushHooks<Liked> for Hooks {
//!     type Key = ();
//!     type Value = bool;
//!     type Response = bool;
//!     type Push = bool;
//!     type DeviceId = u32;
//!     type Error = String;
//!     fn get(&self, s: &Liked, _: &()) -> bool { s.value }
//!     fn apply_optimistic(&self, s: &mut Liked, _: &(), v: bool) { s.value = v }
//!     fn apply_response(&self, s: &mut Liked, _: &(), r: bool, rev: i64) { s.value = r; s.rev = rev }
//!     fn state_rev(&self, s: &Liked, _: &()) -> i64 { s.rev }
//!     fn apply_push(&self, s: &mut Liked, _: &(), v: bool, rev: i64) -> bool { s.value = v; s.rev = rev; true }
//!     fn device_id(&self) -> u32 { 1 }
//! }
//!
//! let mut s = Liked { value: false, rev: 10 };
//! let mut m = OptimisticSyncWithPush::new(Hooks);
//! m.dispatch(&mut s, (), true);                      // sends (true, local_rev 1)
//! // Another device writes revision 12 while our request is in flight: applied at once.
//! let push = PushMeta { rev: 12, local_rev: 0, device_id: 2 };
//! assert_eq!(m.push(&mut s, &(), push, false), PushOutcome::Applied);
//! // Our answer (revision 11) is older than what we know: not applied.
//! let fx = m.on_response(&mut s, &(), Ok(Answer { response: Some(true), rev: Some(11) }));
//! assert!(matches!(fx[0], PushEffect::Dropped { reason: DropReason::Stale { rev: 11, known: 12 }, .. }));
//! assert_eq!((s.value, s.rev), (false, 12));
//! ```

use rustc_hash::FxHashMap as HashMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use super::{Before, Failure, Finish, SendKind, end_cycle};

/// The overridable methods of `OptimisticSyncWithPush` and `ServerPush`, over state `S`.
pub trait PushHooks<S> {
    /// Identifies what is synced.
    type Key: Clone + Eq + Hash;
    /// The synced value.
    type Value: Clone + PartialEq;
    /// What a successful request answers (applied when stable and not stale).
    type Response;
    /// What a push carries.
    type Push;
    /// Identifies a device (to recognise its own echoes).
    type DeviceId: PartialEq;
    /// A failed request.
    type Error: Clone;

    /// `getValueFromState`.
    fn get(&self, state: &S, key: &Self::Key) -> Self::Value;
    /// `applyOptimisticValueToState`.
    fn apply_optimistic(&self, state: &mut S, key: &Self::Key, value: Self::Value);
    /// `applyServerResponseToState`, with the revision the write got (the reference makes
    /// the app stash it; here it is passed).
    fn apply_response(&self, state: &mut S, key: &Self::Key, response: Self::Response, rev: i64);
    /// `getServerRevisionFromState`: the revision persisted in the state, -1 if unknown.
    fn state_rev(&self, state: &S, key: &Self::Key) -> i64;
    /// `applyServerPushToState`; return `false` for the reference's "return null" (the
    /// revision is still recorded).
    fn apply_push(&self, state: &mut S, key: &Self::Key, push: Self::Push, rev: i64) -> bool;
    /// This device's id.
    fn device_id(&self) -> Self::DeviceId;
    /// `maxFollowUpRequests`: the most requests in one cycle; `None` for no limit.
    fn max_follow_up_requests(&self) -> Option<u32> {
        Some(10_000)
    }
    /// `onFinish`, run once per cycle after the key was released.
    fn on_finish(
        &self,
        _state: &mut S,
        _key: &Self::Key,
        _finish: Finish<'_, Self::Value, Self::Error>,
    ) -> Result<(), Failure<Self::Error>> {
        Ok(())
    }
    /// `before` (`CheckInternet`, `AbortWhenNoInternet`).
    fn before(&self, _state: &S, _key: &Self::Key) -> Before<Self::Error> {
        Before::Proceed
    }
}

/// The per-key revision entry of the reference (`OptimisticSyncWithPushRevisionEntry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionEntry {
    /// Local intents so far for the key (pushes never bump it).
    pub local: i64,
    /// The newest known server revision (-1 unknown); only moves forward.
    pub server: i64,
    /// `true` when the last thing recorded for the key was an applied push.
    pub is_push: bool,
}

/// A successful answer: the response to apply and the revision the write got (`None` is
/// the reference's "informServerRevision() was not called", a failure).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<R> {
    /// What to apply when stable (`None`: nothing).
    pub response: Option<R>,
    /// The revision the write got.
    pub rev: Option<i64>,
}

/// The metadata of a push (`pushMetadata()`).
#[derive(Debug, Clone, PartialEq)]
pub struct PushMeta<D> {
    /// The revision of the write.
    pub rev: i64,
    /// The writer's local revision.
    pub local_rev: i64,
    /// The writer.
    pub device_id: D,
}

/// What [`OptimisticSyncWithPush::push`] did with a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Older than the known revision: ignored.
    Stale {
        /// The known revision it lost to.
        known: i64,
    },
    /// Equal to the known revision (typically the own echo after its ack): ignored.
    AlreadySeen,
    /// The echo of an older request of this device: recorded as an acknowledgement only.
    TakenAsAck,
    /// Applied to the state (and recorded).
    Applied,
    /// Newer, but the hook declined to apply it; the revision is recorded anyway.
    Declined,
}

/// Why an answer was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The user acted after the request was sent: a follow-up goes out instead.
    FollowUp,
    /// A push with a newer revision was applied meanwhile.
    Stale {
        /// The answer's revision.
        rev: i64,
        /// The known revision.
        known: i64,
    },
}

/// What the caller must do after an input.
#[derive(Debug, Clone, PartialEq)]
pub enum PushEffect<K, V, E> {
    /// Send `value` with `local_rev` for `key`; feed the answer to
    /// [`OptimisticSyncWithPush::on_response`].
    Send {
        /// The key.
        key: K,
        /// The value.
        value: V,
        /// The local revision of the newest intent this request carries.
        local_rev: i64,
        /// Why it goes out.
        kind: SendKind,
    },
    /// A successful answer was not applied.
    Dropped {
        /// The key.
        key: K,
        /// Why.
        reason: DropReason,
    },
    /// The answer was applied (with this revision).
    Applied {
        /// The key.
        key: K,
        /// The revision.
        rev: i64,
    },
    /// The cycle of the dispatch that held the key ended.
    Finished {
        /// The key.
        key: K,
        /// How.
        result: Result<(), Failure<E>>,
    },
}

#[derive(Debug, Clone)]
struct Cycle<V> {
    optimistic: V,
    sent: V,
    my_local: i64,
    requests: u32,
}

/// A request in flight, as kept across a device restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenRequest<V> {
    /// The value sent.
    pub value: V,
    /// Its local revision.
    pub local_rev: i64,
}

/// The `OptimisticSyncWithPush` strategy and its `ServerPush` companion, for many keys.
#[derive(Debug, Clone)]
pub struct OptimisticSyncWithPush<H: PushHooks<S>, S> {
    /// The hooks.
    pub hooks: H,
    map: HashMap<H::Key, RevisionEntry>,
    cycles: HashMap<H::Key, Cycle<H::Value>>,
    _state: std::marker::PhantomData<fn(&mut S)>,
}

type Effects<H, S> = Vec<
    PushEffect<<H as PushHooks<S>>::Key, <H as PushHooks<S>>::Value, <H as PushHooks<S>>::Error>,
>;

impl<H: PushHooks<S>, S> OptimisticSyncWithPush<H, S> {
    /// A machine with an empty revision map.
    pub fn new(hooks: H) -> Self {
        OptimisticSyncWithPush {
            hooks,
            map: HashMap::default(),
            cycles: HashMap::default(),
            _state: std::marker::PhantomData,
        }
    }

    fn entry_or_seed(&self, state: &S, key: &H::Key) -> RevisionEntry {
        self.map.get(key).copied().unwrap_or(RevisionEntry {
            local: 0,
            server: self.hooks.state_rev(state, key),
            is_push: false,
        })
    }

    /// The newest known server revision: `max(map, state)`.
    pub fn known_rev(&self, state: &S, key: &H::Key) -> i64 {
        let from_map = self.map.get(key).map_or(-1, |e| e.server);
        from_map.max(self.hooks.state_rev(state, key))
    }

    /// A user intent: bump the local revision, show `value`, send it unless a request is
    /// in flight (then the holder's follow-up will carry it).
    pub fn dispatch(&mut self, state: &mut S, key: H::Key, value: H::Value) -> Effects<H, S> {
        match self.hooks.before(state, &key) {
            Before::Proceed => {}
            Before::Abort => return Vec::new(),
            Before::Fail(e) => {
                return vec![PushEffect::Finished {
                    key,
                    result: Err(Failure::Error(e)),
                }];
            }
        }
        let local = self.map.get(&key).map_or(0, |e| e.local) + 1;
        let server = self.known_rev(state, &key);
        self.map.insert(
            key.clone(),
            RevisionEntry {
                local,
                server,
                is_push: false,
            },
        );
        self.hooks.apply_optimistic(state, &key, value.clone());
        if self.cycles.contains_key(&key) {
            return Vec::new();
        }
        self.start_cycle(key, value, local, SendKind::First)
    }

    fn start_cycle(
        &mut self,
        key: H::Key,
        value: H::Value,
        local: i64,
        kind: SendKind,
    ) -> Effects<H, S> {
        self.cycles.insert(
            key.clone(),
            Cycle {
                optimistic: value.clone(),
                sent: value.clone(),
                my_local: local,
                requests: 1,
            },
        );
        vec![PushEffect::Send {
            key,
            value,
            local_rev: local,
            kind,
        }]
    }

    /// The reference's `informServerRevision(rev)`: record a revision learned from a
    /// successful write (forward only; clears `is_push` when it raises the revision).
    fn inform(&mut self, state: &S, key: &H::Key, rev: i64) {
        if rev > self.known_rev(state, key) {
            let local = self.map.get(key).map_or(0, |e| e.local);
            self.map.insert(
                key.clone(),
                RevisionEntry {
                    local,
                    server: rev,
                    is_push: false,
                },
            );
        }
    }

    /// The answer to the request in flight for `key`. An answer for a key with nothing in
    /// flight is ignored.
    pub fn on_response(
        &mut self,
        state: &mut S,
        key: &H::Key,
        answer: Result<Answer<H::Response>, H::Error>,
    ) -> Effects<H, S> {
        if !self.cycles.contains_key(key) {
            return Vec::new();
        }
        let answer = match answer {
            Ok(a) => a,
            Err(e) => return self.fail(state, key, Failure::Error(e)),
        };
        let Some(informed) = answer.rev else {
            return self.fail(state, key, Failure::RevisionNotInformed);
        };
        self.inform(state, key, informed);
        let e = self.entry_or_seed(state, key);
        let cycle = self.cycles.get_mut(key).expect("checked above");
        if !e.is_push && e.local > cycle.my_local {
            if let Some(limit) = self.hooks.max_follow_up_requests()
                && cycle.requests >= limit
            {
                return self.fail(state, key, Failure::TooManyFollowUps { limit });
            }
            let value = self.hooks.get(state, key);
            cycle.requests += 1;
            cycle.my_local = e.local;
            cycle.sent = value.clone();
            return vec![
                PushEffect::Dropped {
                    key: key.clone(),
                    reason: DropReason::FollowUp,
                },
                PushEffect::Send {
                    key: key.clone(),
                    value,
                    local_rev: e.local,
                    kind: SendKind::FollowUp,
                },
            ];
        }
        // Stable: apply unless stale, and release the key, in one step.
        let mut out = Vec::new();
        if let Some(response) = answer.response {
            if informed >= e.server {
                self.map.insert(
                    key.clone(),
                    RevisionEntry {
                        local: e.local,
                        server: informed,
                        is_push: false,
                    },
                );
                self.hooks.apply_response(state, key, response, informed);
                out.push(PushEffect::Applied {
                    key: key.clone(),
                    rev: informed,
                });
            } else {
                out.push(PushEffect::Dropped {
                    key: key.clone(),
                    reason: DropReason::Stale {
                        rev: informed,
                        known: e.server,
                    },
                });
            }
        }
        out.extend(self.finish_ok(state, key));
        out
    }

    /// The request in flight for `key` lost its answer with the connection, and the device
    /// is connected again. `superseded`: another device's change was applied after the
    /// newest intent — the cycle ends and nothing is sent. Otherwise the request is sent
    /// again unchanged, or the newest intent is sent if the user acted since.
    pub fn on_answer_lost(
        &mut self,
        state: &mut S,
        key: &H::Key,
        superseded: bool,
    ) -> Effects<H, S> {
        if !self.cycles.contains_key(key) {
            return Vec::new();
        }
        if superseded {
            return self.finish_ok(state, key);
        }
        let e = self.entry_or_seed(state, key);
        let cycle = self.cycles.get_mut(key).expect("checked above");
        let kind = if e.local > cycle.my_local {
            cycle.my_local = e.local;
            cycle.sent = self.hooks.get(state, key);
            SendKind::FollowUp
        } else {
            SendKind::Resend
        };
        vec![PushEffect::Send {
            key: key.clone(),
            value: cycle.sent.clone(),
            local_rev: cycle.my_local,
            kind,
        }]
    }

    fn finish_ok(&mut self, state: &mut S, key: &H::Key) -> Effects<H, S> {
        let cycle = self
            .cycles
            .remove(key)
            .expect("finishing a cycle that exists");
        let result = end_cycle(&cycle.optimistic, &cycle.sent, None, false, |finish| {
            self.hooks.on_finish(state, key, finish)
        });
        vec![PushEffect::Finished {
            key: key.clone(),
            result,
        }]
    }

    fn fail(&mut self, state: &mut S, key: &H::Key, failure: Failure<H::Error>) -> Effects<H, S> {
        let cycle = self
            .cycles
            .remove(key)
            .expect("failing a cycle that exists");
        let e = self.entry_or_seed(state, key);
        // Improvement 5 is for failed writes; after the follow-up limit a newer intent
        // waits for the next one, or the limit would never stop a runaway.
        let newer = matches!(failure, Failure::Error(_)) && !e.is_push && e.local > cycle.my_local;
        let result = end_cycle(
            &cycle.optimistic,
            &cycle.sent,
            Some(failure),
            newer,
            |finish| self.hooks.on_finish(state, key, finish),
        );
        let mut out = vec![PushEffect::Finished {
            key: key.clone(),
            result,
        }];
        if newer {
            let value = self.hooks.get(state, key);
            out.extend(self.start_cycle(key.clone(), value, e.local, SendKind::AfterFailure));
        }
        out
    }

    /// `ServerPush`: a change the server pushed (or sent in a catch-up).
    pub fn push(
        &mut self,
        state: &mut S,
        key: &H::Key,
        meta: PushMeta<H::DeviceId>,
        push: H::Push,
    ) -> PushOutcome {
        let from_map = self.map.get(key).map_or(-1, |e| e.server);
        let from_state = self.hooks.state_rev(state, key);
        let known = from_map.max(from_state);
        if from_map == -1 && from_state >= 0 {
            // Seed from the persisted state. Like the reference this resets `local` to 0
            // when an entry with an unknown revision existed (its quirk 7.6).
            self.map.insert(
                key.clone(),
                RevisionEntry {
                    local: 0,
                    server: from_state,
                    is_push: true,
                },
            );
        }
        if meta.rev < known {
            return PushOutcome::Stale { known };
        }
        if meta.rev == known {
            return PushOutcome::AlreadySeen;
        }
        let cur_local = self.map.get(key).map_or(0, |e| e.local);
        let is_self = meta.device_id == self.hooks.device_id();
        if is_self && meta.local_rev < cur_local {
            self.map.insert(
                key.clone(),
                RevisionEntry {
                    local: cur_local,
                    server: meta.rev,
                    is_push: false,
                },
            );
            return PushOutcome::TakenAsAck;
        }
        let applied = self.hooks.apply_push(state, key, push, meta.rev);
        self.map.insert(
            key.clone(),
            RevisionEntry {
                local: if is_self {
                    cur_local.max(meta.local_rev)
                } else {
                    cur_local
                },
                server: meta.rev,
                is_push: true,
            },
        );
        if applied {
            PushOutcome::Applied
        } else {
            PushOutcome::Declined
        }
    }

    /// The revision entry of `key`, if any.
    pub fn entry(&self, key: &H::Key) -> Option<RevisionEntry> {
        self.map.get(key).copied()
    }

    /// Every revision entry (for a snapshot).
    pub fn entries(&self) -> impl Iterator<Item = (&H::Key, &RevisionEntry)> {
        self.map.iter()
    }

    /// Restores or overwrites a revision entry (after a restart, or a catch-up `reset`).
    pub fn set_entry(&mut self, key: H::Key, entry: RevisionEntry) {
        self.map.insert(key, entry);
    }

    /// `true` while a request for `key` is in flight.
    pub fn is_locked(&self, key: &H::Key) -> bool {
        self.cycles.contains_key(key)
    }

    /// The request in flight for `key`.
    pub fn in_flight(&self, key: &H::Key) -> Option<OpenRequest<H::Value>> {
        self.cycles.get(key).map(|c| OpenRequest {
            value: c.sent.clone(),
            local_rev: c.my_local,
        })
    }

    /// Every request in flight.
    pub fn open_requests(&self) -> impl Iterator<Item = (&H::Key, OpenRequest<H::Value>)> {
        self.cycles.iter().map(|(k, c)| {
            (
                k,
                OpenRequest {
                    value: c.sent.clone(),
                    local_rev: c.my_local,
                },
            )
        })
    }

    /// Restores a request in flight after a restart (its answer is lost: resolve it with
    /// [`Self::on_answer_lost`] once connected).
    pub fn restore_in_flight(&mut self, key: H::Key, request: OpenRequest<H::Value>) {
        self.cycles.insert(
            key,
            Cycle {
                optimistic: request.value.clone(),
                sent: request.value,
                my_local: request.local_rev,
                requests: 1,
            },
        );
    }
}
