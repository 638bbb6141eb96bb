//! The contiguous cursor (PROTOCOL.md, "Heartbeat and reconnect").
//!
//! The cursor is the revision up to which the device has seen *every* change of its user.
//! It advances through pushes only while they are contiguous; a push that arrives ahead of
//! a gap is remembered until the gap is filled. Using "the highest revision seen" instead
//! would lose a key written once whose push was overtaken by a later one and then lost
//! with the connection: the catch-up would start after it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The contiguous cursor and the revisions seen beyond it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    at: u64,
    ahead: BTreeSet<u64>,
}

impl Cursor {
    /// A cursor at `at` (0: nothing seen).
    pub fn new(at: u64) -> Self {
        Cursor {
            at,
            ahead: BTreeSet::new(),
        }
    }

    /// The revision up to which every change was seen: the `since` of the next `hello`.
    pub fn at(&self) -> u64 {
        self.at
    }

    /// A push with revision `rev` was received (applied or not: it was *seen*).
    pub fn saw(&mut self, rev: u64) {
        if rev <= self.at {
            return;
        }
        self.ahead.insert(rev);
        self.advance();
    }

    /// Moves past every revision seen right after the cursor. (Revisions come from the
    /// server: one at `u64::MAX` must not overflow.)
    fn advance(&mut self) {
        while let Some(next) = self.at.checked_add(1)
            && self.ahead.remove(&next)
        {
            self.at = next;
        }
    }

    /// A catch-up brought everything up to `rev`.
    pub fn caught_up(&mut self, rev: u64) {
        self.at = rev;
        self.ahead = match rev.checked_add(1) {
            Some(next) => self.ahead.split_off(&next),
            None => Default::default(),
        };
        self.advance();
    }

    /// The server lost history: start again from its revision.
    pub fn reset(&mut self, rev: u64) {
        *self = Cursor::new(rev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_revision_does_not_overflow() {
        let mut c = Cursor::new(0);
        c.caught_up(u64::MAX);
        c.saw(u64::MAX);
        assert_eq!(c.at(), u64::MAX);
        let mut c = Cursor::new(u64::MAX - 1);
        c.saw(u64::MAX);
        assert_eq!(c.at(), u64::MAX);
    }

    #[test]
    fn advances_only_while_contiguous() {
        let mut c = Cursor::new(0);
        c.saw(1);
        assert_eq!(c.at(), 1);
        c.saw(3); // 2 was overtaken
        assert_eq!(c.at(), 1, "a gap holds the cursor");
        c.saw(2);
        assert_eq!(c.at(), 3, "filling the gap takes in what was seen after it");
        c.saw(2);
        assert_eq!(c.at(), 3);
    }

    #[test]
    fn catch_up_jumps_and_keeps_what_is_beyond() {
        let mut c = Cursor::new(0);
        c.saw(7);
        c.caught_up(5);
        assert_eq!(c.at(), 5);
        c.saw(6);
        assert_eq!(c.at(), 7);
        c.reset(2);
        assert_eq!(c.at(), 2);
    }
}
