//! A connection's outbound queue: every frame the core queues for one client, in order,
//! bounded in frames **and** bytes.
//!
//! This queue is the server's only back-pressure, and it is per connection: the core task
//! never waits for a client. A frame that does not fit is an overflow — the client cannot
//! keep up — and the connection is closed `resync` (4009); until then the other
//! connections do not notice it. The bound covers every frame from the moment the core
//! queues it until the connection task starts writing it (frames waiting on a held or slow
//! link included), not the frame being written: so a single frame larger than the byte
//! bound, such as a big `welcome`, still goes out. Such a frame enters only a queue that
//! holds no bytes and no other such frame, and then weighs nothing against the bound,
//! as if it were already being written: the pushes queued right behind a big `welcome`
//! are bounded as usual, rather than each one overflowing the queue (a user whose store
//! outgrew the bound would otherwise be closed 4009 at every busy reconnect). At worst a
//! connection holds the bound, one such frame queued, and the frame being written.
//!
//! A connection whose queue is more than half full stops reading its own client until it
//! drained below half: a device that cannot take what it is sent should not send more.
//! Frames waiting on the connection's down link (held or delayed by a tester) are left out
//! of that half, not of the bound: the device is not the one holding them.
//! This pauses only that connection: the core task and every other connection go on. It
//! cannot save a reader from the fan-out of *other* devices' writes: a user whose devices
//! all send without bound is sent more than any queue holds, and the ones that fall behind
//! are closed 4009 and catch up, as PROTOCOL.md says.
//!
//! The channel itself is unbounded; the two counters bound it. The core task is the only
//! producer, so its check-then-add cannot race another producer; the connection task only
//! subtracts, which can only make a check conservative.
//!
//! The core task gathers a connection's frames and hands them over together
//! ([`QueueTx::deliver`], once a batch): one message on the channel and one wake-up of
//! the connection task for all of them, where one per frame cost the core task more than
//! serializing the frames did (with ten devices a user, a write is eleven frames).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Frames a queue holds at most (PROTOCOL.md).
pub const MAX_FRAMES: usize = 1024;
/// Bytes a queue holds at most, by default (PROTOCOL.md, "Memory").
pub const MAX_BYTES: usize = 4 << 20;

/// The most frames a delivery reserves room for before they come: after a large
/// delivery (a backlog), the next, often a single `pong`, does not set aside as much.
const RESERVE_MAX: usize = 128;

/// What the core task queues for a connection.
#[derive(Debug)]
pub(super) enum Outbound {
    /// A frame's JSON; `true` for heartbeat answers (never held).
    Frame(Json, bool),
    /// Close with this code and reason, after the frames before it.
    Close(u16, String),
}

impl Outbound {
    /// What the frame weighs against the byte bound.
    pub(super) fn bytes(&self) -> usize {
        match self {
            Outbound::Frame(json, _) => json.held,
            Outbound::Close(_, reason) => allocation(reason.capacity()),
        }
    }
}

/// A frame's text, shared: a push goes on the queue of every device of its user as one
/// text, not a copy each (a clone costs a reference count), so devices that fall behind
/// together hold it once.
#[derive(Debug, Clone)]
pub(super) struct Json {
    text: Utf8Bytes,
    /// The memory the text holds: its capacity (serialization may leave up to twice its
    /// length) as the allocator rounds it up. Each queue counts all of it, so the byte
    /// bound is a bound on memory, whoever else holds the text too.
    held: usize,
}

impl Json {
    pub(super) fn new(text: String) -> Self {
        let held = allocation(text.capacity());
        Json {
            text: text.into(),
            held,
        }
    }

    pub(super) fn as_str(&self) -> &str {
        &self.text
    }

    /// The text, for the socket (no copy).
    pub(super) fn into_text(self) -> Utf8Bytes {
        self.text
    }
}

/// What the allocator sets aside for `n` bytes. The server's binaries allocate with
/// jemalloc, whose size classes are multiples of 16 up to 128 bytes and then four to each
/// power of two: a 30,000-byte frame holds 32 KiB. (glibc's rounding is finer, so this is
/// a bound there too.)
fn allocation(n: usize) -> usize {
    if n <= 128 {
        return n.next_multiple_of(16);
    }
    let below = usize::BITS - 1 - (n - 1).leading_zeros(); // 2^below < n <= 2^(below+1)
    n.next_multiple_of(1 << (below - 2))
}

/// A frame of `size` bytes is larger than the byte bound: it enters only an empty queue,
/// and weighs nothing there (see the module docs).
fn is_large(size: usize, max_bytes: usize) -> bool {
    size > max_bytes
}

/// How full a queue is.
#[derive(Debug, Default)]
struct Level {
    frames: AtomicUsize,
    /// The frames' bytes, but for a frame larger than the bound.
    bytes: AtomicUsize,
    /// A frame larger than the bound is queued (at most one is, see the module docs).
    large: AtomicBool,
}

/// The core task's end.
pub(super) struct QueueTx {
    tx: mpsc::UnboundedSender<Vec<Outbound>>,
    /// Queued, not yet delivered.
    pending: Vec<Outbound>,
    /// How many frames the last delivery held: the next one is sized for as many (up to
    /// [`RESERVE_MAX`]) when its first frame is queued, rather than grown a step at a time
    /// (1.6 % of the server's CPU under `loadgen`). Nothing is kept allocated between
    /// deliveries.
    last: usize,
    level: Arc<Level>,
    max_bytes: usize,
}

/// The connection task's end. Frames count against the bound until [`QueueRx::leaving`].
pub(super) struct QueueRx {
    rx: mpsc::UnboundedReceiver<Vec<Outbound>>,
    /// The rest of the last delivery.
    delivered: VecDeque<Outbound>,
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
            pending: Vec::new(),
            last: 0,
            level: level.clone(),
            max_bytes,
        },
        QueueRx {
            rx,
            delivered: VecDeque::new(),
            level,
            max_bytes,
        },
    )
}

impl QueueTx {
    /// Queues `item` (it counts against the bound at once, and reaches the connection
    /// task with the next [`deliver`](Self::deliver)), or says it does not fit.
    pub(super) fn push(&mut self, item: Outbound) -> Result<(), Overflow> {
        let size = item.bytes();
        let frames = self.level.frames.load(Ordering::Acquire);
        let bytes = self.level.bytes.load(Ordering::Acquire);
        let large = is_large(size, self.max_bytes);
        let fits = if large {
            bytes == 0 && !self.level.large.load(Ordering::Acquire)
        } else {
            bytes + size <= self.max_bytes
        };
        if frames >= MAX_FRAMES || !fits {
            return Err(Overflow);
        }
        self.level.frames.fetch_add(1, Ordering::AcqRel);
        if large {
            self.level.large.store(true, Ordering::Release);
        } else {
            self.level.bytes.fetch_add(size, Ordering::AcqRel);
        }
        if self.pending.capacity() == 0 {
            self.pending.reserve(self.last.min(RESERVE_MAX));
        }
        self.pending.push(item);
        Ok(())
    }

    /// Something was queued since the last delivery.
    pub(super) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Hands what was queued to the connection task. A closed connection takes anything
    /// (it is dropped with the receiver).
    pub(super) fn deliver(&mut self) {
        if self.has_pending() {
            self.last = self.pending.len();
            let _ = self.tx.send(std::mem::take(&mut self.pending));
        }
    }
}

impl QueueRx {
    /// The next frame; `None` once the core task let go of the connection. Cancel-safe:
    /// a delivery is kept as soon as it is taken off the channel.
    pub(super) async fn recv(&mut self) -> Option<Outbound> {
        loop {
            if let Some(item) = self.try_recv() {
                return Some(item);
            }
            self.delivered = self.rx.recv().await?.into();
        }
    }

    /// The next frame, if one was delivered.
    pub(super) fn try_recv(&mut self) -> Option<Outbound> {
        loop {
            if let Some(item) = self.next_delivered() {
                return Some(item);
            }
            self.delivered = self.rx.try_recv().ok()?.into();
        }
    }

    /// The next frame of the last delivery. Once that is used up its buffer is let go: a
    /// connection that falls quiet should not keep the memory of its largest delivery
    /// (up to [`MAX_FRAMES`] frames).
    fn next_delivered(&mut self) -> Option<Outbound> {
        let item = self.delivered.pop_front();
        if item.is_none() {
            self.delivered = VecDeque::new();
        }
        item
    }

    /// More than half full, in frames or bytes, not counting `on_link` (frames the
    /// connection's down link holds or delays, with their bytes): the connection task
    /// stops reading its client until it drained (see the [module docs](self)). Frames a
    /// tester holds on the link still count against the bound, but they are not the
    /// client's doing: a device whose pushes are held is still read, its pings are still
    /// answered, and only an overflow closes it.
    pub(super) fn over_half(&self, on_link: (usize, usize)) -> bool {
        let frames = self.level.frames.load(Ordering::Acquire);
        let bytes = self.level.bytes.load(Ordering::Acquire);
        frames.saturating_sub(on_link.0) > MAX_FRAMES / 2
            || bytes.saturating_sub(on_link.1) > self.max_bytes / 2
    }

    /// `item` leaves the queue: it is about to be written, or it was lost with a link.
    pub(super) fn leaving(&self, item: &Outbound) {
        self.level.frames.fetch_sub(1, Ordering::AcqRel);
        let size = item.bytes();
        if is_large(size, self.max_bytes) {
            self.level.large.store(false, Ordering::Release);
        } else {
            self.level.bytes.fetch_sub(size, Ordering::AcqRel);
        }
    }

    /// What `item` weighs against the byte bound while queued: its bytes, or nothing for
    /// a frame larger than the bound (see the [module docs](self)).
    pub(super) fn weight(&self, item: &Outbound) -> usize {
        let size = item.bytes();
        if is_large(size, self.max_bytes) {
            0
        } else {
            size
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(bytes: usize) -> Outbound {
        Outbound::Frame(Json::new("x".repeat(bytes)), false)
    }

    #[test]
    fn a_frame_weighs_what_the_allocator_sets_aside_for_it() {
        for (n, held) in [
            (0, 0),
            (1, 16),
            (100, 112),
            (128, 128),
            (129, 160),
            (600, 640),
            (30_000, 32 << 10),
            (1 << 20, 1 << 20),
            ((1 << 20) + 1, 1280 << 10),
        ] {
            assert_eq!(allocation(n), held, "{n} bytes");
        }
    }

    #[test]
    fn a_delivery_is_sized_like_the_last_and_nothing_is_kept_between() {
        let (mut tx, _rx) = queue(usize::MAX);
        for _ in 0..40 {
            tx.push(frame(1)).unwrap();
        }
        tx.deliver();
        assert_eq!(tx.pending.capacity(), 0, "nothing kept between deliveries");
        tx.push(frame(1)).unwrap();
        assert!(tx.pending.capacity() >= 40, "{}", tx.pending.capacity());
        // After a backlog, no more than RESERVE_MAX ahead.
        for _ in 0..500 {
            tx.push(frame(1)).unwrap();
        }
        tx.deliver();
        tx.push(frame(1)).unwrap();
        assert!(
            tx.pending.capacity() < 2 * RESERVE_MAX,
            "{}",
            tx.pending.capacity()
        );
    }

    #[test]
    fn over_half_leaves_out_what_waits_on_the_link() {
        let (mut tx, rx) = queue(usize::MAX);
        for _ in 0..=MAX_FRAMES / 2 {
            tx.push(frame(1)).unwrap();
        }
        assert!(rx.over_half((0, 0)), "more than half the frames");
        assert!(!rx.over_half((1, 16)), "half, once one waits on the link");
        let (mut tx, rx) = queue(4096);
        tx.push(frame(3000)).unwrap();
        assert!(rx.over_half((0, 0)), "more than half the bytes");
        assert!(!rx.over_half((1, 3072)), "none, once it waits on the link");
    }

    #[tokio::test]
    async fn bounded_in_bytes_and_frames_and_a_lone_large_frame_fits() {
        let (mut tx, mut rx) = queue(1024);
        assert_eq!(tx.push(frame(5000)), Ok(()), "alone, a large frame fits");
        assert_eq!(tx.push(frame(1000)), Ok(()), "and weighs nothing");
        assert_eq!(
            (rx.weight(&frame(5000)), rx.weight(&frame(1000))),
            (0, 1024)
        );
        assert!(
            rx.over_half((1, 0)),
            "the small one is over half, the large one on a link"
        );
        assert_eq!(
            tx.push(frame(5000)),
            Err(Overflow),
            "one large frame at a time"
        );
        assert!(rx.try_recv().is_none(), "queued, not yet delivered");
        tx.deliver();
        let big = rx.recv().await.unwrap();
        rx.leaving(&big);
        assert_eq!(
            tx.push(frame(5000)),
            Err(Overflow),
            "only into an empty queue"
        );
        let small = rx.recv().await.unwrap();
        rx.leaving(&small);
        assert_eq!(tx.push(frame(5000)), Ok(()), "again, once it is empty");
        tx.deliver();
        let big = rx.recv().await.unwrap();
        rx.leaving(&big);
        assert_eq!(tx.push(frame(640)), Ok(()));
        assert_eq!(tx.push(frame(384)), Ok(()), "exactly the bound");
        assert_eq!(tx.push(frame(1)), Err(Overflow));
        let (mut tx, _rx) = queue(1024);
        assert_eq!(tx.push(frame(600)), Ok(()), "640 bytes set aside");
        assert_eq!(tx.push(frame(400)), Err(Overflow), "448 more do not fit");

        let (mut tx, mut rx) = queue(usize::MAX);
        for _ in 0..MAX_FRAMES {
            tx.push(frame(1)).unwrap();
        }
        assert_eq!(tx.push(frame(1)), Err(Overflow), "frame 1025");

        // One delivery; once it is read, its buffer is not kept.
        tx.deliver();
        for _ in 0..MAX_FRAMES {
            let item = rx.try_recv().expect("delivered together");
            rx.leaving(&item);
        }
        assert!(rx.try_recv().is_none());
        assert_eq!(
            rx.delivered.capacity(),
            0,
            "the delivery's buffer is let go"
        );
    }
}
