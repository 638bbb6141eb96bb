//! `OptimisticCommand`: a one-shot command (add a comment) that shows its result at once
//! and rolls back if the server refuses — but only if the screen still shows this
//! command's optimistic value, so another change made meanwhile survives.
//!
//! The command is non-reentrant per key: a second dispatch while one runs is aborted (no
//! write, no send). An optional retry policy (the reference's `Retry` mixin) resends after
//! a failure, with timer effects for the delays; an optional reload fetches the truth
//! afterwards.
//!
//! ```
//! use sync_core::optimistic::command::*;
//!
//! struct Items;
//! impl CommandHooks<Vec<&'static str>> for Items {
//!     type Key = ();
//!     type Value = Vec<&'static str>;
//!     type Response = ();
//!     type Error = String;
//!     fn get(&self, s: &Vec<&'static str>, _: &()) -> Self::Value { s.clone() }
//!     fn apply(&self, s: &mut Vec<&'static str>, _: &(), v: Self::Value) { *s = v }
//! }
//!
//! let mut items = vec!["initial"];
//! let mut m = CommandRunner::new(Items);
//! let Dispatched::Started(fx) = m.dispatch(&mut items, (), vec!["initial", "new"]) else { panic!() };
//! assert!(matches!(fx[0], CommandEffect::Send { .. }));
//! assert_eq!(items, ["initial", "new"]);                         // shown at once
//! m.on_response(&mut items, &(), Err("refused".to_string()));
//! assert_eq!(items, ["initial"]);                                // rolled back
//! ```

use rustc_hash::FxHashMap as HashMap;
use std::hash::Hash;
use std::time::Duration;

use super::{Before, Failure};

/// The reference's `Retry` mixin as used inside a command: resend after a failure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    /// The first delay (350 ms).
    pub initial_delay: Duration,
    /// Each later delay is the previous one times this (2; a value ≤ 1 counts as 2).
    pub multiplier: f64,
    /// The longest delay (5 s).
    pub max_delay: Duration,
    /// Retries after the first failure (3); `None` for no limit.
    pub max_retries: Option<u32>,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            initial_delay: Duration::from_millis(350),
            multiplier: 2.0,
            max_delay: Duration::from_secs(5),
            max_retries: Some(3),
        }
    }
}

impl Retry {
    /// The delay before the next retry, given the previous one (`None` before the first).
    pub fn next_delay(&self, previous: Option<Duration>) -> Duration {
        let multiplier = if self.multiplier <= 1.0 {
            2.0
        } else {
            self.multiplier
        };
        match previous {
            None => self.initial_delay,
            Some(d) => d.mul_f64(multiplier),
        }
        .min(self.max_delay)
    }
}

/// The reference's overridable methods of `OptimisticCommand`, over state `S`.
#[allow(unused_variables)]
pub trait CommandHooks<S> {
    /// The non-reentrancy key (`computeNonReentrantKey()`).
    type Key: Clone + Eq + Hash;
    /// The slice of state the command changes.
    type Value: Clone + PartialEq;
    /// What the server answers.
    type Response;
    /// A failed command.
    type Error: Clone;

    /// `getValueFromState`.
    fn get(&self, state: &S, key: &Self::Key) -> Self::Value;
    /// `applyValueToState`.
    fn apply(&self, state: &mut S, key: &Self::Key, value: Self::Value);
    /// `applyServerResponseToState`: return `true` if it changed the state (the
    /// reference's non-null result). Default: not applied.
    fn apply_response(&self, state: &mut S, key: &Self::Key, response: Self::Response) -> bool {
        false
    }
    /// Whether a `reloadFromServer` exists (the reference's "not implemented" sentinel,
    /// as an explicit flag).
    fn has_reload(&self) -> bool {
        false
    }
    /// `shouldRollback`: default, only if the state still holds this command's value.
    fn should_rollback(
        &self,
        current: &Self::Value,
        initial: &Self::Value,
        optimistic: &Self::Value,
        error: &Self::Error,
    ) -> bool {
        current == optimistic
    }
    /// `rollbackState`: return `false` to skip (the reference's null). Default: write the
    /// value from before the command.
    fn rollback(
        &self,
        state: &mut S,
        key: &Self::Key,
        initial: &Self::Value,
        optimistic: &Self::Value,
        error: &Self::Error,
    ) -> bool {
        self.apply(state, key, initial.clone());
        true
    }
    /// `shouldReload`: default, on failure only.
    fn should_reload(
        &self,
        current: &Self::Value,
        last_applied: &Self::Value,
        optimistic: &Self::Value,
        rollback: Option<&Self::Value>,
        error: Option<&Self::Error>,
    ) -> bool {
        error.is_some()
    }
    /// `shouldApplyReload`: default true.
    fn should_apply_reload(
        &self,
        current: &Self::Value,
        last_applied: &Self::Value,
        optimistic: &Self::Value,
        rollback: Option<&Self::Value>,
        reloaded: &Self::Value,
        error: Option<&Self::Error>,
    ) -> bool {
        true
    }
    /// `applyReloadResultToState`: return `false` to skip. Default: write it.
    fn apply_reload(&self, state: &mut S, key: &Self::Key, reloaded: Self::Value) -> bool {
        self.apply(state, key, reloaded);
        true
    }
    /// The retry policy, if the command retries.
    fn retry(&self) -> Option<Retry> {
        None
    }
    /// `before` (`CheckInternet`, `AbortWhenNoInternet`).
    fn before(&self, state: &S, key: &Self::Key) -> Before<Self::Error> {
        Before::Proceed
    }
}

/// What a dispatch did.
#[derive(Debug, Clone, PartialEq)]
pub enum Dispatched<K, V, E> {
    /// The command runs: its optimistic value is shown; carry out the effects.
    Started(Vec<CommandEffect<K, V, E>>),
    /// Aborted: the key is busy (non-reentrant) or `before` aborted. Nothing changed.
    Aborted,
    /// `before` failed: nothing changed, the dispatch fails with this error.
    Failed(E),
}

/// What the caller must do after an input.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandEffect<K, V, E> {
    /// Send the command with its optimistic value; feed the answer to
    /// [`CommandRunner::on_response`].
    Send {
        /// The key.
        key: K,
        /// The optimistic value (the very value the dispatch was given).
        value: V,
    },
    /// Wake [`CommandRunner::on_timer`] for `key` after `delay` (a retry).
    Wait {
        /// The key.
        key: K,
        /// How long.
        delay: Duration,
    },
    /// Fetch the truth and feed it to [`CommandRunner::on_reload`].
    Reload {
        /// The key.
        key: K,
    },
    /// The command ended; the key is free again.
    Finished {
        /// The key.
        key: K,
        /// How it ended (the command's error wins over a reload error).
        result: Result<(), Failure<E>>,
        /// Failed sends (the reference's `attempts`).
        attempts: u32,
        /// The value written by the rollback, if one happened.
        rolled_back_to: Option<V>,
    },
}

#[derive(Debug, Clone)]
enum Phase {
    Sending,
    Waiting,
    Reloading,
}

#[derive(Debug, Clone)]
struct Op<V, E> {
    initial: V,
    optimistic: V,
    phase: Phase,
    attempts: u32,
    last_delay: Option<Duration>,
    error: Option<E>,
    last_applied: V,
    rollback_value: Option<V>,
}

/// Runs `OptimisticCommand`s: at most one per key at a time.
#[derive(Debug, Clone)]
pub struct CommandRunner<H: CommandHooks<S>, S> {
    /// The hooks.
    pub hooks: H,
    ops: HashMap<H::Key, Op<H::Value, H::Error>>,
    _state: std::marker::PhantomData<fn(&mut S)>,
}

type Effects<H, S> = Vec<
    CommandEffect<
        <H as CommandHooks<S>>::Key,
        <H as CommandHooks<S>>::Value,
        <H as CommandHooks<S>>::Error,
    >,
>;

impl<H: CommandHooks<S>, S> CommandRunner<H, S> {
    /// A runner with no command running.
    pub fn new(hooks: H) -> Self {
        CommandRunner {
            hooks,
            ops: HashMap::default(),
            _state: std::marker::PhantomData,
        }
    }

    /// Runs a command whose optimistic value is `optimistic` (the reference's
    /// `optimisticValue()`, computed once by the caller).
    pub fn dispatch(
        &mut self,
        state: &mut S,
        key: H::Key,
        optimistic: H::Value,
    ) -> Dispatched<H::Key, H::Value, H::Error> {
        if self.ops.contains_key(&key) {
            return Dispatched::Aborted;
        }
        match self.hooks.before(state, &key) {
            Before::Proceed => {}
            Before::Abort => return Dispatched::Aborted,
            Before::Fail(e) => return Dispatched::Failed(e),
        }
        let initial = self.hooks.get(state, &key);
        self.hooks.apply(state, &key, optimistic.clone());
        self.ops.insert(
            key.clone(),
            Op {
                initial,
                optimistic: optimistic.clone(),
                phase: Phase::Sending,
                attempts: 0,
                last_delay: None,
                error: None,
                last_applied: optimistic.clone(),
                rollback_value: None,
            },
        );
        Dispatched::Started(vec![CommandEffect::Send {
            key,
            value: optimistic,
        }])
    }

    /// The server's answer to the command for `key`.
    pub fn on_response(
        &mut self,
        state: &mut S,
        key: &H::Key,
        answer: Result<Option<H::Response>, H::Error>,
    ) -> Effects<H, S> {
        let hooks = &self.hooks;
        let Some(op) = self.ops.get_mut(key) else {
            return Vec::new();
        };
        if !matches!(op.phase, Phase::Sending) {
            return Vec::new();
        }
        match answer {
            Ok(response) => {
                if let Some(r) = response
                    && hooks.apply_response(state, key, r)
                {
                    op.last_applied = hooks.get(state, key);
                }
            }
            Err(error) => {
                op.attempts += 1;
                if let Some(retry) = hooks.retry()
                    && retry.max_retries.is_none_or(|max| op.attempts <= max)
                {
                    let delay = retry.next_delay(op.last_delay);
                    op.last_delay = Some(delay);
                    op.phase = Phase::Waiting;
                    return vec![CommandEffect::Wait {
                        key: key.clone(),
                        delay,
                    }];
                }
                let current = hooks.get(state, key);
                if hooks.should_rollback(&current, &op.initial, &op.optimistic, &error)
                    && hooks.rollback(state, key, &op.initial, &op.optimistic, &error)
                {
                    let value = hooks.get(state, key);
                    op.last_applied = value.clone();
                    op.rollback_value = Some(value);
                }
                op.error = Some(error);
            }
        }
        self.reload_or_finish(state, key)
    }

    /// A retry delay armed by [`CommandEffect::Wait`] ran out: send again.
    pub fn on_timer(&mut self, key: &H::Key) -> Effects<H, S> {
        match self.ops.get_mut(key) {
            Some(op) if matches!(op.phase, Phase::Waiting) => {
                op.phase = Phase::Sending;
                vec![CommandEffect::Send {
                    key: key.clone(),
                    value: op.optimistic.clone(),
                }]
            }
            _ => Vec::new(),
        }
    }

    fn reload_or_finish(&mut self, state: &mut S, key: &H::Key) -> Effects<H, S> {
        let op = self.ops.get_mut(key).expect("an op in progress");
        let current = self.hooks.get(state, key);
        // Like the reference, the policy is asked even when there is no reload (its
        // "not implemented" sentinel is only hit afterwards).
        if self.hooks.should_reload(
            &current,
            &op.last_applied,
            &op.optimistic,
            op.rollback_value.as_ref(),
            op.error.as_ref(),
        ) && self.hooks.has_reload()
        {
            op.phase = Phase::Reloading;
            return vec![CommandEffect::Reload { key: key.clone() }];
        }
        self.finish(key, None)
    }

    /// The result of the reload asked for by [`CommandEffect::Reload`].
    pub fn on_reload(
        &mut self,
        state: &mut S,
        key: &H::Key,
        result: Result<H::Value, H::Error>,
    ) -> Effects<H, S> {
        let Some(op) = self.ops.get(key) else {
            return Vec::new();
        };
        if !matches!(op.phase, Phase::Reloading) {
            return Vec::new();
        }
        match result {
            Ok(reloaded) => {
                let current = self.hooks.get(state, key);
                if self.hooks.should_apply_reload(
                    &current,
                    &op.last_applied,
                    &op.optimistic,
                    op.rollback_value.as_ref(),
                    &reloaded,
                    op.error.as_ref(),
                ) {
                    self.hooks.apply_reload(state, key, reloaded);
                }
                self.finish(key, None)
            }
            // A reload error fails an otherwise successful command; the command's own
            // error wins otherwise.
            Err(reload_error) => self.finish(key, Some(reload_error)),
        }
    }

    fn finish(&mut self, key: &H::Key, reload_error: Option<H::Error>) -> Effects<H, S> {
        let op = self.ops.remove(key).expect("an op in progress");
        let result = match op.error.or(reload_error) {
            None => Ok(()),
            Some(e) => Err(Failure::Error(e)),
        };
        vec![CommandEffect::Finished {
            key: key.clone(),
            result,
            attempts: op.attempts,
            rolled_back_to: op.rollback_value,
        }]
    }

    /// Restores a command that was waiting for its answer when the process stopped: its
    /// optimistic value is already in the state; the caller resends it.
    pub fn restore_running(&mut self, key: H::Key, initial: H::Value, optimistic: H::Value) {
        self.ops.insert(
            key,
            Op {
                initial,
                last_applied: optimistic.clone(),
                optimistic,
                phase: Phase::Sending,
                attempts: 0,
                last_delay: None,
                error: None,
                rollback_value: None,
            },
        );
    }

    /// The value from before the command running for `key` (what a rollback restores).
    pub fn initial(&self, key: &H::Key) -> Option<&H::Value> {
        self.ops.get(key).map(|op| &op.initial)
    }

    /// `true` while a command for `key` runs (the reference's `isWaiting`).
    pub fn is_running(&self, key: &H::Key) -> bool {
        self.ops.contains_key(key)
    }

    /// The optimistic value of the command running for `key`.
    pub fn running(&self, key: &H::Key) -> Option<&H::Value> {
        self.ops.get(key).map(|op| &op.optimistic)
    }
}
