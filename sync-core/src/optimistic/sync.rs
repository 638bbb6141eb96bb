//! `OptimisticSync`: every change is shown at once; at most one request per key is in
//! flight; when it completes, a follow-up is sent only if the value shown now differs from
//! the value sent (value-based). The server's answer is applied only when the key is
//! stable, so intermediate answers never make the screen flicker.
//!
//! ```
//! use sync_core::optimistic::sync::{OptimisticSync, SyncEffect, SyncHooks};
//!
//! struct Liked; // hooks over a `bool` state with a single key `()`
//! impl SyncHooks<bool> for Liked {
//!     type Key = ();
//!     type Value = bool;
//!     type Response = bool;
//!     type Error = String;
//!     fn get(&self, s: &bool, _: &()) -> bool { *s }
//!     fn apply_optimistic(&self, s: &mut bool, _: &(), v: bool) { *s = v }
//!     fn apply_response(&self, s: &mut bool, _: &(), r: bool) { *s = r }
//! }
//!
//! let mut liked = false;
//! let mut m = OptimisticSync::new(Liked);
//! let fx = m.dispatch(&mut liked, (), true);          // shown at once, request goes out
//! assert!(matches!(fx[0], SyncEffect::Send { value: true, .. }));
//! assert!(m.dispatch(&mut liked, (), false).is_empty()); // coalesced: no second request
//! m.dispatch(&mut liked, (), true);                     // back to the value sent
//! let fx = m.on_response(&mut liked, &(), Ok(Some(true)));
//! assert!(matches!(fx[0], SyncEffect::Finished { result: Ok(()), .. })); // no follow-up
//! ```

use rustc_hash::FxHashMap as HashMap;
use std::hash::Hash;

use super::{Before, Failure, Finish, SendKind, end_cycle};

/// The reference's overridable methods of `OptimisticSync`, over application state `S`.
pub trait SyncHooks<S> {
    /// Identifies what is synced (the reference's `computeOptimisticSyncKey()`).
    type Key: Clone + Eq + Hash;
    /// The synced value.
    type Value: Clone + PartialEq;
    /// What the server answers.
    type Response;
    /// A failed request.
    type Error: Clone;

    /// `getValueFromState`.
    fn get(&self, state: &S, key: &Self::Key) -> Self::Value;
    /// `applyOptimisticValueToState`.
    fn apply_optimistic(&self, state: &mut S, key: &Self::Key, value: Self::Value);
    /// `applyServerResponseToState`; called only when the key is stable. Leave the state
    /// untouched for the reference's "return null".
    fn apply_response(&self, state: &mut S, key: &Self::Key, response: Self::Response);
    /// `ifShouldSendAnotherRequest` without the limit (the limit is always enforced, so
    /// overriding this cannot lose it, unlike in the reference).
    fn should_send_another(
        &self,
        state_value: &Self::Value,
        sent: &Self::Value,
        _requests: u32,
    ) -> bool {
        state_value != sent
    }
    /// `maxFollowUpRequests`: the most requests in one cycle; `None` for no limit.
    fn max_follow_up_requests(&self) -> Option<u32> {
        Some(10_000)
    }
    /// `onFinish`, run once per cycle after the key was released. An error fails the
    /// cycle (and `on_finish` is not run again).
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

/// What the caller must do after an input.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncEffect<K, V, E> {
    /// Send `value` for `key` to the server, and feed its answer to
    /// [`OptimisticSync::on_response`].
    Send {
        /// The key.
        key: K,
        /// The value to send.
        value: V,
        /// Why this request goes out.
        kind: SendKind,
    },
    /// An answer was not applied because a follow-up was sent instead.
    Dropped {
        /// The key.
        key: K,
    },
    /// The cycle of the dispatch that held the key ended.
    Finished {
        /// The key.
        key: K,
        /// How it ended.
        result: Result<(), Failure<E>>,
    },
}

/// One key's sync cycle: exists while the key is locked (a request is in flight).
#[derive(Debug, Clone)]
struct Cycle<V> {
    optimistic: V,
    sent: V,
    requests: u32,
}

/// The `OptimisticSync` strategy for many keys.
#[derive(Debug, Clone)]
pub struct OptimisticSync<H: SyncHooks<S>, S> {
    /// The hooks.
    pub hooks: H,
    cycles: HashMap<H::Key, Cycle<H::Value>>,
    _state: std::marker::PhantomData<fn(&mut S)>,
}

type Effects<H, S> = Vec<
    SyncEffect<<H as SyncHooks<S>>::Key, <H as SyncHooks<S>>::Value, <H as SyncHooks<S>>::Error>,
>;

impl<H: SyncHooks<S>, S> OptimisticSync<H, S> {
    /// A machine with no key in flight.
    pub fn new(hooks: H) -> Self {
        OptimisticSync {
            hooks,
            cycles: HashMap::default(),
            _state: std::marker::PhantomData,
        }
    }

    /// A user intent: show `value` at once; send it if no request for `key` is in flight
    /// (otherwise it is coalesced and the dispatch completes at once, as in the reference).
    pub fn dispatch(&mut self, state: &mut S, key: H::Key, value: H::Value) -> Effects<H, S> {
        match self.hooks.before(state, &key) {
            Before::Proceed => {}
            Before::Abort => return Vec::new(),
            Before::Fail(e) => {
                return vec![SyncEffect::Finished {
                    key,
                    result: Err(Failure::Error(e)),
                }];
            }
        }
        self.hooks.apply_optimistic(state, &key, value.clone());
        if self.cycles.contains_key(&key) {
            return Vec::new();
        }
        self.start_cycle(key, value, SendKind::First)
    }

    fn start_cycle(&mut self, key: H::Key, value: H::Value, kind: SendKind) -> Effects<H, S> {
        self.cycles.insert(
            key.clone(),
            Cycle {
                optimistic: value.clone(),
                sent: value.clone(),
                requests: 1,
            },
        );
        vec![SyncEffect::Send { key, value, kind }]
    }

    /// The server's answer to the request in flight for `key`: `Ok(None)` for a success
    /// with nothing to apply. An answer for a key with nothing in flight is ignored.
    pub fn on_response(
        &mut self,
        state: &mut S,
        key: &H::Key,
        answer: Result<Option<H::Response>, H::Error>,
    ) -> Effects<H, S> {
        let Some(cycle) = self.cycles.get_mut(key) else {
            return Vec::new();
        };
        let response = match answer {
            Ok(response) => response,
            Err(e) => return self.fail(state, key, Failure::Error(e)),
        };
        let current = self.hooks.get(state, key);
        if self
            .hooks
            .should_send_another(&current, &cycle.sent, cycle.requests)
        {
            if let Some(limit) = self.hooks.max_follow_up_requests()
                && cycle.requests >= limit
            {
                return self.fail(state, key, Failure::TooManyFollowUps { limit });
            }
            cycle.requests += 1;
            cycle.sent = current.clone();
            return vec![
                SyncEffect::Dropped { key: key.clone() },
                SyncEffect::Send {
                    key: key.clone(),
                    value: current,
                    kind: SendKind::FollowUp,
                },
            ];
        }
        // Stable: apply the answer and release the key in the same step.
        if let Some(response) = response {
            self.hooks.apply_response(state, key, response);
        }
        self.finish_ok(state, key)
    }

    /// The request in flight for `key` lost its answer with the connection, and the device
    /// is connected again (PROTOCOL.md, "Heartbeat and reconnect"). If another device's
    /// change superseded the intent, the cycle ends; otherwise the value shown is sent
    /// again (the same value when the user did nothing since).
    pub fn on_answer_lost(
        &mut self,
        state: &mut S,
        key: &H::Key,
        superseded: bool,
    ) -> Effects<H, S> {
        let Some(cycle) = self.cycles.get_mut(key) else {
            return Vec::new();
        };
        if superseded {
            return self.finish_ok(state, key);
        }
        let current = self.hooks.get(state, key);
        let kind = if current == cycle.sent {
            SendKind::Resend
        } else {
            SendKind::FollowUp
        };
        cycle.sent = current.clone();
        vec![SyncEffect::Send {
            key: key.clone(),
            value: current,
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
        vec![SyncEffect::Finished {
            key: key.clone(),
            result,
        }]
    }

    fn fail(&mut self, state: &mut S, key: &H::Key, failure: Failure<H::Error>) -> Effects<H, S> {
        let cycle = self
            .cycles
            .remove(key)
            .expect("failing a cycle that exists");
        // Improvement 5 is for failed writes; after the follow-up limit a newer intent
        // waits for the next one, or the limit would never stop a runaway.
        let newer =
            matches!(failure, Failure::Error(_)) && self.hooks.get(state, key) != cycle.sent;
        let result = end_cycle(
            &cycle.optimistic,
            &cycle.sent,
            Some(failure),
            newer,
            |finish| self.hooks.on_finish(state, key, finish),
        );
        let mut out = vec![SyncEffect::Finished {
            key: key.clone(),
            result,
        }];
        if newer {
            let value = self.hooks.get(state, key);
            out.extend(self.start_cycle(key.clone(), value, SendKind::AfterFailure));
        }
        out
    }

    /// `true` while a request for `key` is in flight (the key is locked).
    pub fn is_locked(&self, key: &H::Key) -> bool {
        self.cycles.contains_key(key)
    }

    /// The value of the request in flight for `key`.
    pub fn in_flight(&self, key: &H::Key) -> Option<&H::Value> {
        self.cycles.get(key).map(|c| &c.sent)
    }

    /// Every key with a request in flight, and the value sent.
    pub fn open_requests(&self) -> impl Iterator<Item = (&H::Key, &H::Value)> {
        self.cycles.iter().map(|(k, c)| (k, &c.sent))
    }

    /// Restores a request in flight after a restart (its answer is then lost: resolve it
    /// with [`Self::on_answer_lost`] once connected).
    pub fn restore_in_flight(&mut self, key: H::Key, sent: H::Value) {
        self.cycles.insert(
            key,
            Cycle {
                optimistic: sent.clone(),
                sent,
                requests: 1,
            },
        );
    }
}
