//! One direction of the network between a device and the server, as a sans-IO queue.
//!
//! A link is first-in-first-out: latency plus seeded jitter delay a frame, but never let it
//! overtake one sent earlier. Loss is modelled the way a WebSocket fails: a lost frame takes
//! its connection with it. A held link keeps frames in its queue until the user (or a
//! scenario) releases one — any one, which is how out-of-order delivery happens — or drops
//! one, which again resets the connection. Heartbeat frames are never held, so a hold may
//! last as long as the user wants.
//!
//! The simulator drives links on virtual time, the live server on real time: the fault a
//! user makes by hand in the app and the one a scenario makes are the same.
//!
//! This module is also the fault vocabulary every other part translates into: a
//! [`Direction`], a [`Pair`] of anything per direction, and the [`Fault`] commands. The
//! scenario runner, the admin socket, the live server's control API and the app's panes
//! each only translate their own words (a statement, a JSON command, a click) into these.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sync_core::rng::Rng;

/// Which way a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Device → server.
    Up,
    /// Server → device.
    Down,
}

impl Direction {
    /// Both, up first: the order of every up/down pair.
    pub const BOTH: [Direction; 2] = [Direction::Up, Direction::Down];

    /// `up` or `down`, as the scenario language, the admin socket and the app say it.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }

    /// `dir`, or both directions when it is `None` (a scenario's `hold phone`).
    pub fn one_or_both(dir: Option<Direction>) -> impl Iterator<Item = Direction> {
        Direction::BOTH
            .into_iter()
            .filter(move |d| dir.is_none_or(|x| x == *d))
    }
}

/// One thing per direction: a device's two link settings, two hold switches, two queue
/// listings. Serialised as `[up, down]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "[T; 2]", into = "[T; 2]")]
#[serde(bound(
    serialize = "T: Clone + Serialize",
    deserialize = "T: Deserialize<'de>"
))]
pub struct Pair<T> {
    /// Device → server.
    pub up: T,
    /// Server → device.
    pub down: T,
}

impl<T> Pair<T> {
    /// The same value both ways.
    pub fn both(value: T) -> Pair<T>
    where
        T: Clone,
    {
        Pair {
            up: value.clone(),
            down: value,
        }
    }

    /// The value for one direction.
    pub fn of(&self, d: Direction) -> &T {
        match d {
            Direction::Up => &self.up,
            Direction::Down => &self.down,
        }
    }

    /// The value for one direction, to change.
    pub fn of_mut(&mut self, d: Direction) -> &mut T {
        match d {
            Direction::Up => &mut self.up,
            Direction::Down => &mut self.down,
        }
    }

    /// Each direction with its value, up first.
    pub fn iter(&self) -> impl Iterator<Item = (Direction, &T)> {
        [(Direction::Up, &self.up), (Direction::Down, &self.down)].into_iter()
    }
}

impl<T> From<[T; 2]> for Pair<T> {
    fn from([up, down]: [T; 2]) -> Pair<T> {
        Pair { up, down }
    }
}

impl<T> From<Pair<T>> for [T; 2] {
    fn from(p: Pair<T>) -> [T; 2] {
        [p.up, p.down]
    }
}

/// A fault on one device's links: what a hold box, a scenario's `hold` / `release` /
/// `drop` / `latency` line and the admin socket's link commands all mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// New latency / jitter / loss for one direction (kept for the device's next
    /// connections too).
    Configure(Direction, LinkConfig),
    /// Manual mode on (`true`) or off for one direction (kept like `Configure`).
    Hold(Direction, bool),
    /// Deliver the n-th queued frame now (1 = oldest). An error if there is none.
    Release(Direction, usize),
    /// Lose the n-th queued frame, and the connection with it. An error if there is none.
    Drop(Direction, usize),
}

/// The default one-way latency.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(50);

/// How a link delays and loses frames.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinkConfig {
    /// One-way latency.
    pub latency: Duration,
    /// Extra delay, uniform in `[0, jitter]`.
    pub jitter: Duration,
    /// Probability (0..=1) that a frame is lost with its connection.
    pub loss: f64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            latency: DEFAULT_LATENCY,
            jitter: Duration::ZERO,
            loss: 0.0,
        }
    }
}

/// A frame on its way.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued<F> {
    /// The frame.
    pub frame: F,
    /// When it was sent.
    pub sent: Duration,
    /// When it is due (if the link is not held).
    pub due: Duration,
    /// Heartbeat frames bypass holds.
    pub heartbeat: bool,
}

/// What became of a frame handed to [`Link::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// On its way.
    Queued,
    /// Lost — and the connection with it: the caller resets the connection.
    LostWithConnection,
}

/// One direction of one device's link.
#[derive(Debug, Clone)]
pub struct Link<F> {
    /// Delay and loss.
    pub config: LinkConfig,
    rng: Rng,
    queue: VecDeque<Queued<F>>,
    held: bool,
    last_due: Duration,
}

impl<F> Link<F> {
    /// An empty, automatic link.
    pub fn new(config: LinkConfig, rng: Rng) -> Self {
        Link {
            config,
            rng,
            queue: VecDeque::new(),
            held: false,
            last_due: Duration::ZERO,
        }
    }

    /// Puts a frame on the link at `now`.
    pub fn send(&mut self, frame: F, heartbeat: bool, now: Duration) -> Sent {
        if !heartbeat && self.config.loss > 0.0 && self.rng.chance(self.config.loss) {
            return Sent::LostWithConnection;
        }
        let jitter = Duration::from_millis(self.rng.up_to(self.config.jitter.as_millis() as u64));
        let due = (now + self.config.latency + jitter).max(self.last_due);
        self.last_due = due;
        self.queue.push_back(Queued {
            frame,
            sent: now,
            due,
            heartbeat,
        });
        Sent::Queued
    }

    /// `true` when a frame sent at `now` would be due at once and delivered next: no delay,
    /// no loss, not held, nothing waiting. A shell may then hand the frame on without
    /// queueing it (see `net::links`).
    pub fn passes_at_once(&self, now: Duration) -> bool {
        !self.held
            && self.queue.is_empty()
            && self.last_due <= now
            && self.config.latency.is_zero()
            && self.config.jitter.is_zero()
            && self.config.loss == 0.0
    }

    /// The next frame due at or before `now`, in order; while held, only heartbeats.
    pub fn poll_due(&mut self, now: Duration) -> Option<F> {
        let pos = if self.held {
            self.queue
                .iter()
                .position(|q| q.heartbeat && q.due <= now)?
        } else {
            match self.queue.front() {
                Some(q) if q.due <= now => 0,
                _ => return None,
            }
        };
        self.queue.remove(pos).map(|q| q.frame)
    }

    /// The frame [`Link::poll_due`] would deliver next, whenever it falls due.
    pub fn peek(&self) -> Option<&Queued<F>> {
        if self.held {
            self.queue
                .iter()
                .filter(|q| q.heartbeat)
                .min_by_key(|q| q.due)
        } else {
            self.queue.front()
        }
    }

    /// Manual mode: frames wait in the queue.
    pub fn hold(&mut self) {
        self.held = true;
    }

    /// Automatic mode again: what waits goes out in order, at once if overdue.
    pub fn unhold(&mut self) {
        self.held = false;
    }

    /// `true` in manual mode.
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Takes the `n`-th queued frame (1 = oldest) to deliver now, ahead of the others.
    pub fn release(&mut self, n: usize) -> Option<F> {
        let index = self.position(n)?;
        self.queue.remove(index).map(|q| q.frame)
    }

    /// Takes every queued frame, oldest first.
    pub fn release_all(&mut self) -> Vec<F> {
        self.queue.drain(..).map(|q| q.frame).collect()
    }

    /// Loses the `n`-th queued frame: the caller resets the connection (which discards
    /// the rest). `None` if there is no such frame.
    pub fn drop_nth(&mut self, n: usize) -> Option<F> {
        self.release(n)
    }

    fn position(&self, n: usize) -> Option<usize> {
        // Heartbeats never wait in a held queue for long and are not the user's to pick:
        // numbering counts the other frames only.
        self.queue
            .iter()
            .enumerate()
            .filter(|(_, q)| !q.heartbeat)
            .nth(n.checked_sub(1)?)
            .map(|(i, _)| i)
    }

    /// Frames waiting (heartbeats excluded), oldest first.
    pub fn queued(&self) -> impl Iterator<Item = &Queued<F>> {
        self.queue.iter().filter(|q| !q.heartbeat)
    }

    /// How many frames wait, heartbeats included, and what they weigh by `size`: what a
    /// shell bounds a link's memory by.
    pub fn weight(&self, size: impl Fn(&F) -> usize) -> (usize, usize) {
        (
            self.queue.len(),
            self.queue.iter().map(|q| size(&q.frame)).sum(),
        )
    }

    /// How many frames wait (heartbeats excluded).
    pub fn len(&self) -> usize {
        self.queued().count()
    }

    /// `true` when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The connection reset: everything on the link is gone.
    pub fn clear(&mut self) {
        self.queue.clear();
    }

    /// Keeps only what `keep` says survives (a WebSocket reset leaves a polling
    /// device's HTTP requests on their way).
    pub fn retain(&mut self, mut keep: impl FnMut(&F) -> bool) {
        self.queue.retain(|q| keep(&q.frame));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn link(latency: u64, jitter: u64, loss: f64) -> Link<u32> {
        let config = LinkConfig {
            latency: ms(latency),
            jitter: ms(jitter),
            loss,
        };
        Link::new(config, Rng::new(3))
    }

    #[test]
    fn latency_and_fifo_under_jitter() {
        let mut l = link(50, 200, 0.0);
        for i in 0..50 {
            l.send(i, false, ms(i as u64));
        }
        let mut got = vec![];
        for t in 0..2000 {
            while let Some(f) = l.poll_due(ms(t)) {
                got.push(f);
            }
        }
        assert_eq!(got, (0..50).collect::<Vec<_>>(), "jitter never reorders");
        let mut l = link(50, 0, 0.0);
        l.send(1, false, ms(0));
        assert_eq!(l.poll_due(ms(49)), None);
        assert_eq!(l.poll_due(ms(50)), Some(1));
    }

    /// A frame may skip the queue only where the queue would hand it over at once, next.
    #[test]
    fn a_frame_passes_at_once_only_on_a_clear_idle_link() {
        let mut l = link(0, 0, 0.0);
        assert!(l.passes_at_once(ms(0)));
        l.send(1, false, ms(0));
        assert!(
            !l.passes_at_once(ms(0)),
            "a frame waits: the next goes behind it"
        );
        assert_eq!(l.poll_due(ms(0)), Some(1));
        assert!(l.passes_at_once(ms(0)));
        l.hold();
        assert!(!l.passes_at_once(ms(0)), "held");
        l.unhold();
        for (latency, jitter, loss) in [(50, 0, 0.0), (0, 20, 0.0), (0, 0, 0.1)] {
            let l = link(latency, jitter, loss);
            assert!(!l.passes_at_once(ms(0)), "{latency} {jitter} {loss}");
        }
        // A frame taken out by hand before it was due: later ones keep its order.
        let mut l = link(50, 0, 0.0);
        l.send(1, false, ms(0));
        assert_eq!(l.release(1), Some(1));
        l.config.latency = Duration::ZERO;
        assert!(!l.passes_at_once(ms(10)));
        assert!(l.passes_at_once(ms(50)));
    }

    #[test]
    fn hold_release_any_and_heartbeats_pass() {
        let mut l = link(10, 0, 0.0);
        l.hold();
        l.send(1, false, ms(0));
        l.send(2, false, ms(0));
        l.send(99, true, ms(0));
        l.send(3, false, ms(0));
        assert_eq!(l.poll_due(ms(100)), Some(99), "heartbeats are never held");
        assert_eq!(l.poll_due(ms(100)), None);
        assert_eq!(l.len(), 3);
        assert_eq!(l.release(2), Some(2), "out of order");
        assert_eq!(l.release(5), None);
        l.unhold();
        assert_eq!(l.poll_due(ms(100)), Some(1));
        assert_eq!(l.poll_due(ms(100)), Some(3));
    }

    #[test]
    fn loss_is_seeded_and_never_hits_heartbeats() {
        let mut a = link(1, 0, 0.3);
        let mut b = link(1, 0, 0.3);
        let ra: Vec<Sent> = (0..100).map(|i| a.send(i, false, ms(0))).collect();
        let rb: Vec<Sent> = (0..100).map(|i| b.send(i, false, ms(0))).collect();
        assert_eq!(ra, rb);
        let lost = ra
            .iter()
            .filter(|s| **s == Sent::LostWithConnection)
            .count();
        assert!((15..=45).contains(&lost), "{lost}");
        let mut c = link(1, 0, 1.0);
        assert_eq!(c.send(0, true, ms(0)), Sent::Queued);
    }
}
