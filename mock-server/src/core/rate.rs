//! The per-connection rate limit of PROTOCOL.md: a token bucket of 400 frames, full at
//! connect, refilled at 200 per second, one token per client text frame.
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

#[cfg(test)]
mod tests {
    use super::*;

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
