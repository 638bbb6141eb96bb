//! The four optimistic strategies of the reference library (`async_redux`), as generic,
//! sans-IO state machines.
//!
//! Each machine owns only its bookkeeping (locks, revision map). The application's state is
//! passed into every call as `&mut S` and read and written through the strategy's *hooks*
//! trait — the reference's overridable methods. "Send to the server" is an output (an
//! effect), and its answer comes back as an input, so the same machine runs under a unit
//! test, a simulator or a tokio shell. Nothing here reads a clock or awaits.
//!
//! | module | reference | for |
//! |---|---|---|
//! | [`command`] | `OptimisticCommand` (+ `Retry`) | one-shot commands with rollback |
//! | [`sync`] | `OptimisticSync` | last-value-wins saves, value-based follow-ups |
//! | [`sync_with_push`] | `OptimisticSyncWithPush` + `ServerPush` | revision-based follow-ups and pushes from other devices |
//!
//! Deliberate departures from the reference (DESIGN.md, "The algorithms"):
//! 1. exceeding the follow-up limit releases the key and reports the error, and both sync
//!    variants allow at most N requests per cycle for a limit of N;
//! 2. the completion hook (`on_finish`) runs exactly once per cycle;
//! 3. "decide stable, apply the response, release the key" is one step (free here: every
//!    input is handled to the end before the next);
//! 5. after a failed write, a newer local intent is sent at once;
//! 6. a lost answer is not a failure: [`sync::OptimisticSync::on_answer_lost`] and
//!    [`sync_with_push::OptimisticSyncWithPush::on_answer_lost`] decide what to resend.
//!
//! (Improvement 4, persisted revisions, belongs to the device engine.)

pub mod command;
pub mod sync;
pub mod sync_with_push;

#[cfg(test)]
mod tests;

/// What a strategy's `before` hook decides before anything else happens — the reference's
/// `CheckInternet` (fail) and `AbortWhenNoInternet` (abort silently) mixins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Before<E> {
    /// Go on with the dispatch.
    Proceed,
    /// Fail the dispatch with this error: no optimistic write, no lock, no send.
    Fail(E),
    /// Drop the dispatch silently: no optimistic write, no lock, no send.
    Abort,
}

/// Why a cycle (or a command) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure<E> {
    /// The hook's own error: a failed send, a rejected write, a failed `before`.
    #[error("{0}")]
    Error(E),
    /// The key needed more requests in one cycle than the limit allows.
    #[error("Too many follow-up requests (> {limit}).")]
    TooManyFollowUps {
        /// The limit that was hit.
        limit: u32,
    },
    /// A successful answer of the push variant did not say which revision the write got
    /// (the reference's `informServerRevision()` was not called).
    #[error(
        "OptimisticSyncWithPush requires calling informServerRevision() with the revision of a successful write"
    )]
    RevisionNotInformed,
}

/// Why a request was sent: the first of a cycle, a follow-up for a newer intent, a resend
/// after a lost answer, or the newer intent sent at once after a failure (improvement 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendKind {
    /// The first request of a cycle.
    First,
    /// A follow-up: the user changed their intent while a request was in flight.
    FollowUp,
    /// The same request again, because its answer was lost with the connection.
    Resend,
    /// A newer intent, sent at once after the cycle's request failed.
    AfterFailure,
    /// Made while no connection was up, and sent for the first time after `welcome`. (The
    /// strategies see it as a resend of an open request; the device engine knows it
    /// never reached the wire.)
    Queued,
}

/// What the completion hook (`on_finish`) is told about the cycle that ended.
#[derive(Debug, Clone, Copy)]
pub struct Finish<'a, V, E> {
    /// The first value of the cycle (the reference's `optimisticValue` in the lock holder).
    pub optimistic: &'a V,
    /// The value of the cycle's last request (the reference's `lastSentValue`).
    pub last_sent: &'a V,
    /// `None` on success.
    pub error: Option<&'a Failure<E>>,
    /// `true` when a newer local intent will be sent right after this failed cycle
    /// (improvement 5): a rollback would undo the user's newer choice.
    pub newer_intent_follows: bool,
}

/// Ends a sync cycle: runs the completion hook exactly once (improvement 2) and returns
/// the cycle's result — the failure if there was one, else whatever the hook returned (an
/// error of the hook fails a successful cycle; the cycle's own failure wins otherwise,
/// unless the hook replaced it with its own).
pub(crate) fn end_cycle<V, E>(
    optimistic: &V,
    last_sent: &V,
    failure: Option<Failure<E>>,
    newer_intent_follows: bool,
    on_finish: impl FnOnce(Finish<'_, V, E>) -> Result<(), Failure<E>>,
) -> Result<(), Failure<E>> {
    let hook = on_finish(Finish {
        optimistic,
        last_sent,
        error: failure.as_ref(),
        newer_intent_follows,
    });
    match (hook, failure) {
        (Err(e), _) => Err(e),
        (Ok(()), Some(failure)) => Err(failure),
        (Ok(()), None) => Ok(()),
    }
}
