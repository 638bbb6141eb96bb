//! Guessing tokens is slow (PROTOCOL.md, "Exposure"): once more than
//! [`MAX_AUTH_FAILURES`] token checks from one source address failed within
//! [`AUTH_WINDOW`], further attempts from it are not checked at all until the oldest
//! failure leaves the window. So with the default 20, the 21st failed check still
//! happens (`unauthorized`) and the 22nd attempt gets `too_many_attempts`.
//!
//! Sans-IO like the rest of the core: the caller says when. Memory is bounded: an address
//! keeps at most `limit + 1` failure times, and addresses whose failures have all left the
//! window are forgotten.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

/// What an address past the limit is told, whichever way it tried (`hello`, `auth`,
/// HTTP, the admin socket).
pub const TOO_MANY: &str = "too many failed token checks from this address: try again in a minute";

/// Failed token checks per source address within [`AUTH_WINDOW`] beyond which attempts are
/// not checked (default).
pub const MAX_AUTH_FAILURES: usize = 20;
/// The window the failures are counted in.
pub const AUTH_WINDOW: Duration = Duration::from_secs(60);
/// Above this many tracked addresses, every call sweeps out the expired ones.
const SWEEP_ABOVE: usize = 1024;

/// Failed token checks per source address.
#[derive(Debug, Clone)]
pub struct AuthGuard {
    /// 0: no limit.
    limit: usize,
    failures: HashMap<IpAddr, VecDeque<Duration>>,
}

impl AuthGuard {
    /// A guard that stops checking an address after more than `limit` failures in the
    /// window (0: no limit).
    pub fn new(limit: usize) -> Self {
        AuthGuard {
            limit,
            failures: HashMap::new(),
        }
    }

    /// `true` when attempts from `source` are not to be checked now.
    pub fn blocked(&mut self, source: Option<IpAddr>, now: Duration) -> bool {
        let Some(ip) = source else { return false };
        if self.limit == 0 {
            return false;
        }
        self.expire(now);
        self.failures.get(&ip).is_some_and(|f| f.len() > self.limit)
    }

    /// A token check from `source` failed at `now`.
    pub fn failed(&mut self, source: Option<IpAddr>, now: Duration) {
        let Some(ip) = source else { return };
        if self.limit == 0 {
            return;
        }
        let times = self.failures.entry(ip).or_default();
        times.push_back(now);
        while times.len() > self.limit.saturating_add(1) {
            times.pop_front();
        }
    }

    /// Forgets failures older than the window.
    fn expire(&mut self, now: Duration) {
        let live = |t: &Duration| now.saturating_sub(*t) < AUTH_WINDOW;
        if self.failures.len() > SWEEP_ABOVE {
            self.failures.retain(|_, times| times.iter().any(live));
        }
        for times in self.failures.values_mut() {
            while times.front().is_some_and(|t| !live(t)) {
                times.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)));

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn more_than_twenty_failures_in_a_minute_block_that_address_only_until_they_age_out() {
        let mut g = AuthGuard::new(MAX_AUTH_FAILURES);
        for i in 0..21 {
            assert!(!g.blocked(A, s(i)), "attempt {} is checked", i + 1);
            g.failed(A, s(i));
        }
        assert!(
            g.blocked(A, s(21)),
            "after 21 failures, the 22nd attempt is not checked"
        );
        assert!(!g.blocked(B, s(20)), "another address is not affected");
        assert!(g.blocked(A, s(59)));
        // The first failure (at 0 s) leaves the window at 60 s: 20 are left, not more.
        assert!(!g.blocked(A, s(60)));
    }

    #[test]
    fn no_limit_and_no_address_never_block() {
        let mut g = AuthGuard::new(0);
        for i in 0..100 {
            g.failed(A, s(i));
        }
        assert!(!g.blocked(A, s(100)));
        let mut g = AuthGuard::new(1);
        g.failed(None, s(0));
        assert!(!g.blocked(None, s(0)));
    }
}
