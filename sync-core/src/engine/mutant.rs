//! A test-only switch that breaks one of the engine's rules on purpose (feature `mutants`,
//! never on in the app or the server).
//!
//! A checker is only worth what it catches. The random-schedule tests turn a rule off
//! here, expect DESIGN.md's invariant checker to catch the broken engine, and expect the
//! shrinker to cut the failing schedule down to a short counterexample; the player's tests
//! open that counterexample at the step where the invariant breaks. Without the feature
//! this module does not exist and the engine has no switch to read.
//!
//! The switch is per thread: engines on the thread running [`during`]'s closure break the
//! rule while it runs, so tests running in parallel do not see each other's mutants.

use std::cell::Cell;

/// A rule the engine can be made to break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutant {
    /// `sync-with-push` applies a push older than the revision it knows, instead of
    /// ignoring it as stale (reference, vectors on stale pushes; DESIGN.md invariant 4).
    ApplyStalePushes,
}

thread_local! {
    static ACTIVE: Cell<Option<Mutant>> = const { Cell::new(None) };
}

/// Runs `f` with `mutant` on for engines on this thread; off again afterwards, even if
/// `f` panics.
pub fn during<R>(mutant: Mutant, f: impl FnOnce() -> R) -> R {
    struct Off(Option<Mutant>);
    impl Drop for Off {
        fn drop(&mut self) {
            ACTIVE.with(|a| a.set(self.0));
        }
    }
    let _off = Off(ACTIVE.with(|a| a.replace(Some(mutant))));
    f()
}

/// `true` while `mutant` is on for this thread.
pub(crate) fn breaks(mutant: Mutant) -> bool {
    ACTIVE.with(|a| a.get()) == Some(mutant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mutant_is_on_only_inside_its_closure() {
        assert!(!breaks(Mutant::ApplyStalePushes));
        assert!(during(Mutant::ApplyStalePushes, || breaks(
            Mutant::ApplyStalePushes
        )));
        assert!(!breaks(Mutant::ApplyStalePushes));
        let other = std::thread::spawn(|| breaks(Mutant::ApplyStalePushes));
        during(Mutant::ApplyStalePushes, || {
            assert!(!other.join().unwrap(), "another thread's engines are sound");
        });
    }
}
