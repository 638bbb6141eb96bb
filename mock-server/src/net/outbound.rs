//! A connection's outbound queue: every frame the core queues for one client, in order,
//! bounded in frames **and** bytes.
//!
//! This queue is the server's only back-pressure, and it is per connection: the core task
//! never waits for a client. A frame that does not fit is an overflow — the client cannot
//! keep up — and the connection is closed `resync` (4009); until then the other
//! connections do not notice it. The bound covers every frame from the moment the core
//! queues it until the connection task starts writing it (frames waiting on a held or slow
//! link included), not the frame being written: so a single frame larger than the byte
//! bound, such as a big `welcome`, still goes out when the queue is empty.
//!
//! A connection whose queue is more than half full stops reading its own client until it
//! drained below half: a device that cannot take what it is sent should not send more.
//! This pauses only that connection: the core task and every other connection go on. It
//! cannot save a reader from the fan-out of *other* devices' writes: a user whose devices
//! all send without bound is sent more than any queue holds, and the ones that fall behind
//! are closed 4009 and catch up, as PROTOCOL.md says.
//!
//! The channel itself is unbounded; the two counters bound it. The core task is the only
//! producer, so its check-then-add cannot race another producer; the connection task only
//! subtracts, which can only make a check conservative.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

/// Frames a queue holds at most (PROTOCOL.md).
pub const MAX_FRAMES: usize = 1024;
/// Bytes a queue holds at most, by default (PROTOCOL.md, "Memory").
pub const MAX_BYTES: usize = 4 << 20;

/// What the core task queues for a connection.
#[derive(Debug)]
pub(super) enum Outbound {
    /// A frame's JSON; `true` for heartbeat answers (never held).
    Frame(String, bool),
    /// Close with this code and reason, after the frames before it.
    Close(u16, String),
}

impl Outbound {
    /// What the frame weighs against the byte bound: the memory its text holds, which
    /// serialization may leave up to twice its length.
    fn bytes(&self) -> usize {
        match self {
            Outbound::Frame(json, _) => json.capacity(),
            Outbound::Close(_, reason) => reason.capacity(),
        }
    }
}

/// How full a queue is.
#[derive(Debug, Default)]
struct Level {
    frames: AtomicUsize,
    bytes: AtomicUsize,
}

/// The core task's end.
pub(super) struct QueueTx {
    tx: mpsc::UnboundedSender<Outbound>,
    level: Arc<Level>,
    max_bytes: usize,
}

/// The connection task's end. Frames count against the bound until [`QueueRx::leaving`].
pub(super) struct QueueRx {
    rx: mpsc::UnboundedReceiver<Outbound>,
    level: Arc<Level>,
    max_bytes: usize,
}

/// The frame did not fit: the client is not keeping up.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Overflow;

/// A queue holding at most [`MAX_FRAMES`] frames and `max_bytes` bytes.
pub(super) fn queue(max_bytes: usize) -> (QueueTx, QueueRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let level = Arc::new(Level::default());
    (
        QueueTx {
            tx,
            level: level.clone(),
            max_bytes,
        },
        QueueRx {
            rx,
            level,
            max_bytes,
        },
    )
}

impl QueueTx {
    /// Queues `item`, or says it does not fit. A closed connection takes anything (it
    /// is dropped with the receiver).
    pub(super) fn push(&self, item: Outbound) -> Result<(), Overflow> {
        let size = item.bytes();
        let frames = self.level.frames.load(Ordering::Acquire);
        let bytes = self.level.bytes.load(Ordering::Acquire);
        if frames >= MAX_FRAMES || (bytes > 0 && bytes + size > self.max_bytes) {
            return Err(Overflow);
        }
        self.level.frames.fetch_add(1, Ordering::AcqRel);
        self.level.bytes.fetch_add(size, Ordering::AcqRel);
        let _ = self.tx.send(item);
        Ok(())
    }
}

impl QueueRx {
    /// The next frame; `None` once the core task let go of the connection.
    pub(super) async fn recv(&mut self) -> Option<Outbound> {
        self.rx.recv().await
    }

    /// The next frame, if one is waiting.
    pub(super) fn try_recv(&mut self) -> Option<Outbound> {
        self.rx.try_recv().ok()
    }

    /// More than half full, in frames or bytes: the connection task stops reading its
    /// client until it drained (see the [module docs](self)).
    pub(super) fn over_half(&self) -> bool {
        self.level.frames.load(Ordering::Acquire) > MAX_FRAMES / 2
            || self.level.bytes.load(Ordering::Acquire) > self.max_bytes / 2
    }

    /// `item` leaves the queue: it is about to be written, or it was lost with a link.
    pub(super) fn leaving(&self, item: &Outbound) {
        self.level.frames.fetch_sub(1, Ordering::AcqRel);
        self.level.bytes.fetch_sub(item.bytes(), Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(bytes: usize) -> Outbound {
        Outbound::Frame("x".repeat(bytes), false)
    }

    #[tokio::test]
    async fn bounded_in_bytes_and_frames_and_a_lone_large_frame_fits() {
        let (tx, mut rx) = queue(1000);
        assert_eq!(tx.push(frame(5000)), Ok(()), "alone, a large frame fits");
        assert_eq!(tx.push(frame(1)), Err(Overflow), "nothing after it");
        let big = rx.recv().await.unwrap();
        rx.leaving(&big);
        assert_eq!(tx.push(frame(600)), Ok(()));
        assert_eq!(tx.push(frame(400)), Ok(()), "exactly the bound");
        assert_eq!(tx.push(frame(1)), Err(Overflow));

        let (tx, _rx) = queue(usize::MAX);
        for _ in 0..MAX_FRAMES {
            tx.push(frame(1)).unwrap();
        }
        assert_eq!(tx.push(frame(1)), Err(Overflow), "frame 1025");
    }
}
