//! The per-connection rate limit of PROTOCOL.md: a token bucket of 400 frames, full at
//! connect, refilled at 200 per second, one token per client text frame; and the rule that
//! closes a connection (1008) once it has been refused frames in each of 5 consecutive
//! seconds.
//!
//! A few lines on the core's own clock beat a crate here: the simulator's virtual time
//! must drive it too.

use std::time::Duration;

/// Bucket size.
pub const CAPACITY: f64 = 400.0;
/// Tokens per second.
pub const REFILL_PER_SEC: f64 = 200.0;

/// A token bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    at: Duration,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn full(now: Duration) -> Self {
        TokenBucket {
            tokens: CAPACITY,
            at: now,
        }
    }

    /// Takes one token; `false` if the bucket is empty.
    pub fn take(&mut self, now: Duration) -> bool {
        let elapsed = now.saturating_sub(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * REFILL_PER_SEC).min(CAPACITY);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Consecutive seconds with a refusal that close the connection.
pub const CLOSE_AFTER_SECONDS: u64 = 5;

/// Which seconds of a run of refusals had one. Seconds count from the run's first
/// refusal; a whole second without one ends the run, and the next refusal starts a new
/// one. (Counting "refusals less than a second apart" instead made the same burst pattern
/// close in one run and not in the next, depending on where the bucket's refills fell.)
#[derive(Debug, Clone, Default)]
pub struct Refusals {
    /// The run's first refusal, and the latest second (counted from it) with a refusal.
    run: Option<(Duration, u64)>,
}

impl Refusals {
    /// A frame was refused at `now`; `true` when this makes refusals in each of
    /// [`CLOSE_AFTER_SECONDS`] consecutive seconds, so the connection must close.
    pub fn refused(&mut self, now: Duration) -> bool {
        let (start, second) = match self.run {
            Some((start, last)) => {
                let second = now.saturating_sub(start).as_secs();
                if second > last + 1 {
                    (now, 0)
                } else {
                    (start, second)
                }
            }
            None => (now, 0),
        };
        self.run = Some((start, second));
        second + 1 >= CLOSE_AFTER_SECONDS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn refusals_in_five_consecutive_seconds_close_a_gap_second_starts_again() {
        let mut r = Refusals::default();
        // Seconds 0, 1, 2, 3 of the run: not yet.
        for t in [1_000, 1_900, 2_500, 3_999, 4_200] {
            assert!(!r.refused(ms(t)), "{t} ms");
        }
        // Second 4 (5.0 s – 6.0 s, so 4 to 5 s after the first refusal at 1.0 s): closed.
        assert!(r.refused(ms(5_000)));

        let mut r = Refusals::default();
        assert!(!r.refused(ms(0)));
        assert!(!r.refused(ms(1_500)));
        // Nothing in second 2 (2.0–3.0 s): the refusal at 3.1 s starts a new run.
        assert!(!r.refused(ms(3_100)));
        for t in [4_100, 5_100, 6_100] {
            assert!(!r.refused(ms(t)), "{t} ms");
        }
        assert!(r.refused(ms(7_100)));
    }

    #[test]
    fn a_burst_every_two_seconds_never_closes() {
        let mut r = Refusals::default();
        for burst in 0..30 {
            for i in 0..100 {
                assert!(!r.refused(ms(burst * 2_000 + i)));
            }
        }
    }

    #[test]
    fn burst_of_400_then_200_per_second() {
        let t0 = Duration::ZERO;
        let mut b = TokenBucket::full(t0);
        assert!((0..400).all(|_| b.take(t0)));
        assert!(!b.take(t0));
        let later = Duration::from_millis(500);
        assert_eq!((0..200).filter(|_| b.take(later)).count(), 100);
    }
}
