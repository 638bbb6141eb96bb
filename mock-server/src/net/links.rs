//! A connection's two fault-injection links (device → server and server → device), the
//! simulator's [`Link`] model on real time: latency, jitter, loss, hold, release and drop,
//! applied by the connection task to the frames it moves.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::control::{LinkCommand, QueuedFrames};
use super::outbound::Outbound;
use crate::core::Inbound;
use crate::link::{Direction, Fault, Link, LinkConfig, Sent};
use sync_core::rng::Rng;

/// What a link command did to the connection.
pub(super) enum Outcome {
    /// Done; the connection goes on.
    Done,
    /// A frame was dropped, and the connection goes with it.
    Dropped,
    /// There was no such frame: the error, for whoever asked.
    NoSuchFrame(String),
}

/// A connection's two links, on real time (measured from the connection's start).
pub(super) struct Links {
    start: Instant,
    pub(super) up: Link<Inbound>,
    pub(super) down: Link<Outbound>,
    /// Frames to hand over now, ahead of the queue: released by hand, or sent while the
    /// link would have delivered them at once anyway ([`Links::send_down`]).
    pub(super) released_down: Vec<Outbound>,
    pub(super) released_up: Vec<Inbound>,
}

/// Puts a frame on `link`; when the link would deliver it at once anyway (no fault set,
/// as for most connections most of the time), straight into `released`. Queueing every
/// frame and taking it back out again was 5 % of the server's CPU under `loadgen`.
fn send<F>(
    link: &mut Link<F>,
    released: &mut Vec<F>,
    frame: F,
    heartbeat: bool,
    now: Duration,
) -> Sent {
    if link.passes_at_once(now) {
        released.push(frame);
        Sent::Queued
    } else {
        link.send(frame, heartbeat, now)
    }
}

impl Links {
    pub(super) fn new() -> Self {
        // No delay until someone asks for one: a live connection is as fast as its socket.
        let config = LinkConfig {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
        };
        let seed = Instant::now().elapsed().subsec_nanos() as u64;
        Links {
            start: Instant::now(),
            up: Link::new(config, Rng::new(seed)),
            down: Link::new(config, Rng::new(seed ^ 1)),
            released_down: Vec::new(),
            released_up: Vec::new(),
        }
    }

    pub(super) fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// A frame from the client, on the up link.
    pub(super) fn send_up(&mut self, inbound: Inbound, heartbeat: bool, now: Duration) -> Sent {
        send(&mut self.up, &mut self.released_up, inbound, heartbeat, now)
    }

    /// A frame for the client, on the down link.
    pub(super) fn send_down(&mut self, out: Outbound, heartbeat: bool, now: Duration) -> Sent {
        send(&mut self.down, &mut self.released_down, out, heartbeat, now)
    }

    /// The frames the down link holds or delays, and what they weigh (by `weight`, the
    /// queue's own weighing): they count against the connection's queue bound, but not
    /// towards pausing its reading.
    pub(super) fn down_weight(&self, weight: impl Fn(&Outbound) -> usize) -> (usize, usize) {
        self.down.weight(weight)
    }

    /// The up link holds `frames` frames or `bytes` bytes of the client's text already:
    /// the connection reads no more of its client until the link lets some go, so frames a
    /// tester holds or delays on the way up are bounded like those on the way down.
    pub(super) fn up_full(&self, frames: usize, bytes: usize) -> bool {
        let (n, size) = self.up.weight(|inbound| match inbound {
            Inbound::Text(text) => text.capacity(),
            _ => 0,
        });
        n >= frames || size >= bytes
    }

    /// When the next queued frame falls due, if one waits.
    pub(super) fn next_due(&self) -> Option<Instant> {
        let up = self.up.peek().map(|q| q.due);
        let down = self.down.peek().map(|q| q.due);
        up.into_iter().chain(down).min().map(|d| self.start + d)
    }

    /// Carries out a fault command.
    pub(super) fn command(&mut self, command: LinkCommand) -> Outcome {
        let fault = match command {
            LinkCommand::Fault(fault) => fault,
            LinkCommand::Queued(reply) => {
                let up = self.up.queued().map(|q| summary_up(&q.frame)).collect();
                let down = self.down.queued().map(|q| summary_down(&q.frame)).collect();
                let _ = reply.send(QueuedFrames { up, down });
                return Outcome::Done;
            }
        };
        match fault {
            Fault::Configure(Direction::Up, c) => self.up.config = c,
            Fault::Configure(Direction::Down, c) => self.down.config = c,
            Fault::Hold(Direction::Up, on) => set_hold(&mut self.up, on),
            Fault::Hold(Direction::Down, on) => set_hold(&mut self.down, on),
            Fault::Release(Direction::Up, n) => match self.up.release(n) {
                Some(inbound) => self.released_up.push(inbound),
                None => return no_such_frame(Direction::Up, n, self.up.len()),
            },
            Fault::Release(Direction::Down, n) => match self.down.release(n) {
                Some(out) => self.released_down.push(out),
                None => return no_such_frame(Direction::Down, n, self.down.len()),
            },
            Fault::Drop(Direction::Up, n) => {
                return match self.up.drop_nth(n) {
                    Some(_) => Outcome::Dropped,
                    None => no_such_frame(Direction::Up, n, self.up.len()),
                };
            }
            Fault::Drop(Direction::Down, n) => {
                return match self.down.drop_nth(n) {
                    Some(_) => Outcome::Dropped,
                    None => no_such_frame(Direction::Down, n, self.down.len()),
                };
            }
        }
        Outcome::Done
    }
}

fn no_such_frame(d: Direction, n: usize, len: usize) -> Outcome {
    Outcome::NoSuchFrame(format!(
        "there is no frame {n} in the {} queue ({len} queued)",
        d.name()
    ))
}

fn set_hold<F>(link: &mut Link<F>, on: bool) {
    if on { link.hold() } else { link.unhold() }
}

fn summary_up(inbound: &Inbound) -> String {
    match inbound {
        Inbound::Text(t) => sync_core::protocol::decode_client_frame(t)
            .map_or_else(|_| "(malformed frame)".to_string(), |f| f.to_string()),
        Inbound::Decoded(f) => f.to_string(),
        Inbound::Binary => "(binary frame)".into(),
        Inbound::TooLarge => "(oversize frame)".into(),
    }
}

fn summary_down(out: &Outbound) -> String {
    match out {
        Outbound::Frame(json, _) => sync_core::protocol::decode_server_frame(json.as_str())
            .map_or_else(|_| json.as_str().to_string(), |f| f.to_string()),
        Outbound::Close(code, reason) => format!("close {code} {reason}"),
    }
}

/// A client `ping` (heartbeats are never held or lost).
pub(super) fn is_ping(text: &str) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|v| v["type"] == "ping")
}
