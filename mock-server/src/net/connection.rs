//! One device connection: a task that owns the upgraded socket and moves frames both ways
//! through the connection's two links, until either side closes. It makes no protocol
//! decision: frames read go to the core task, frames the core queued go out.
//!
//! The task stamps when anything arrives (a text frame, a binary frame, a WebSocket-level
//! ping) into a shared clock the core task reads before judging idleness, so a busy core
//! never mistakes a client waiting in line for a silent one.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{SinkExt, StreamExt};
use sync_core::protocol::{ErrorCode, ServerFrame, close};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::control::{Ending, LinkMessage, ToCore, ending};
use super::links::{Links, Outcome, is_ping};
use super::outbound::{Outbound, QueueRx, queue};
use super::{GOODBYE_GRACE, OUTBOUND_QUEUE, sleep_until_opt};
use crate::core::{ConnId, Inbound};
use crate::link::Sent;

/// What the connection task needs besides its socket.
pub(super) struct Conn {
    pub(super) id: ConnId,
    pub(super) source: IpAddr,
    pub(super) to_core: mpsc::Sender<ToCore>,
    /// The server's clock: activity is stamped in µs since then.
    pub(super) epoch: Instant,
    pub(super) max_queue_bytes: usize,
}

/// What woke a connection task.
enum Step {
    Up(Inbound),
    Down(Outbound),
    Command(LinkMessage),
    Due,
}

/// Serves one device socket until it closes.
pub(super) async fn serve<T>(mut ws: WebSocketStream<T>, conn: Conn)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let Conn {
        id,
        source,
        to_core,
        epoch,
        max_queue_bytes,
    } = conn;
    let (out_tx, mut out_rx) = queue(max_queue_bytes);
    let (end_tx, mut end_rx) = ending();
    let (link_tx, mut link_rx) = mpsc::unbounded_channel();
    let activity = Arc::new(AtomicU64::new(micros_since(epoch)));
    let open = ToCore::Open {
        id,
        source,
        out: out_tx,
        end: end_tx,
        link: link_tx,
        activity: activity.clone(),
    };
    if to_core.send(open).await.is_err() {
        return;
    }
    let mut links = Links::new();
    // Why the core ended the connection, once it did: from then on each write has the
    // grace (see `Ending`).
    let mut ending: Option<Ending> = None;
    loop {
        let due = links.next_due();
        // A queue more than half full, not counting what waits on the down link (a
        // tester's hold or delay): stop reading this client until it drained. So too
        // while the up link holds as much as a queue may.
        let reading = !out_rx.over_half(links.down_weight(|out| out_rx.weight(out)))
            && !links.up_full(OUTBOUND_QUEUE, max_queue_bytes);
        let step = tokio::select! {
            incoming = ws.next(), if reading => {
                if matches!(incoming, Some(Ok(_))) {
                    activity.store(micros_since(epoch), Ordering::Relaxed);
                }
                match incoming {
                    Some(Ok(Message::Text(text))) => Step::Up(Inbound::Text(text.to_string())),
                    Some(Ok(Message::Binary(_))) => Step::Up(Inbound::Binary),
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => continue, // ping/pong: tungstenite answers pings itself
                    Some(Err(e)) => {
                        // Its socket may be full: the goodbye gets the grace, as any.
                        let _ = tokio::time::timeout(GOODBYE_GRACE, refuse(&mut ws, e)).await;
                        break;
                    }
                }
            },
            out = out_rx.recv() => match out {
                Some(out) => Step::Down(out),
                None => break,
            },
            command = link_rx.recv() => match command {
                Some(command) => Step::Command(command),
                None => continue,
            },
            _ = sleep_until_opt(due) => Step::Due,
            ended = end_rx.recv() => match ended {
                // Its close is on the way through the queue: go on until it is written.
                Some(Ending::Closed) => {
                    ending = Some(Ending::Closed);
                    Step::Due
                }
                Some(Ending::Overflow) => {
                    say_resync(&mut ws, Instant::now() + GOODBYE_GRACE).await;
                    break;
                }
                // Let go of without a word: a server restart, no goodbye.
                None => break,
            },
        };
        let now = links.now();
        match step {
            Step::Up(inbound) => {
                // Only a held or lossy link treats heartbeats apart: parse the frame's type
                // only then, not for every frame the core will decode anyway.
                let special = links.up.is_held() || links.up.config.loss > 0.0;
                let heartbeat = special && matches!(&inbound, Inbound::Text(t) if is_ping(t));
                if links.send_up(inbound, heartbeat, now) == Sent::LostWithConnection {
                    break;
                }
            }
            Step::Down(out) => {
                // Link settings the core sent before these frames apply to them: a new
                // connection's remembered latency and holds reach it before its `welcome`.
                let mut goes_on = true;
                while goes_on && let Ok(message) = link_rx.try_recv() {
                    goes_on = apply(&mut links, message);
                }
                if !goes_on {
                    break; // a dropped frame takes the connection with it
                }
                // Take whatever else is queued now too, so a batch is flushed once.
                let mut lost = false;
                let mut next = Some(out);
                while let Some(out) = next {
                    let heartbeat = matches!(out, Outbound::Frame(_, true));
                    lost |= links.send_down(out, heartbeat, now) == Sent::LostWithConnection;
                    next = out_rx.try_recv();
                }
                if lost {
                    break;
                }
            }
            Step::Command(message) => {
                if !apply(&mut links, message) {
                    break; // a dropped frame takes the connection with it
                }
            }
            Step::Due => {}
        }
        // Hand over what is due: frames read go to the core, frames for the client go out.
        let mut ups = std::mem::take(&mut links.released_up);
        while let Some(inbound) = links.up.poll_due(now) {
            ups.push(inbound);
        }
        for inbound in ups {
            if to_core.send(ToCore::Frame(id, inbound)).await.is_err() {
                return;
            }
        }
        let mut released = std::mem::take(&mut links.released_down);
        while let Some(out) = links.down.poll_due(now) {
            released.push(out);
        }
        // The write races the core's ending of the connection: a client that stopped
        // reading blocks it, and then its queue overflows, or the core closes it (it fell
        // silent, say) while this task waits here. Once the connection is ended, the
        // write has the grace; one that finishes in time wins over a grace just over.
        let mut deadline = ending.map(|_| Instant::now() + GOODBYE_GRACE);
        let written = {
            let mut write = std::pin::pin!(write_out(&mut ws, &out_rx, released));
            loop {
                tokio::select! {
                    biased;
                    written = &mut write => break Some(written),
                    ended = end_rx.recv() => match ended {
                        Some(why) => {
                            ending = Some(why);
                            deadline = Some(Instant::now() + GOODBYE_GRACE);
                        }
                        None => break None, // a server restart: no goodbye, no waiting
                    },
                    _ = sleep_until_opt(deadline) => break None,
                }
            }
        };
        match (written, ending, deadline) {
            (Some(true), Some(Ending::Overflow), Some(deadline)) => {
                say_resync(&mut ws, deadline).await;
            }
            // Written; when the core closed the connection, its close comes next.
            (Some(true), ..) => continue,
            _ => {}
        }
        break;
    }
    let _ = to_core.send(ToCore::Closed(id)).await;
}

fn micros_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

/// Answers a frame tungstenite could not read: an oversize frame (1009) or text that is
/// not UTF-8 (1007) get an `error` frame first; a protocol error, 1002.
async fn refuse<T>(ws: &mut WebSocketStream<T>, e: WsError)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let (code, close_code, message, reason) = match e {
        // tungstenite sends no close for an oversize frame: do it ourselves.
        WsError::Capacity(_) => (
            ErrorCode::TooLarge,
            close::TOO_LARGE,
            "frame over 64 KiB",
            "too_large",
        ),
        WsError::Utf8(_) => (
            ErrorCode::BadMessage,
            close::INVALID_UTF8,
            "a text frame that is not UTF-8",
            "invalid UTF-8",
        ),
        WsError::Protocol(_) => {
            let _ = close_with(ws, 1002, "protocol error").await;
            return;
        }
        _ => return,
    };
    let _ = ws.send(Message::text(error_json(code, message))).await;
    let _ = close_with(ws, close_code, reason).await;
}

/// Tells a client its queue overflowed: `error resync`, then close 4009. Given up at
/// `deadline` (the end of [`GOODBYE_GRACE`]), as its socket may be full.
async fn say_resync<T>(ws: &mut WebSocketStream<T>, deadline: Instant)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout_at(deadline, async {
        let error = error_json(
            ErrorCode::Resync,
            "outbound queue overflowed: reconnect and catch up",
        );
        ws.send(Message::text(error)).await?;
        close_with(ws, close::RESYNC, "resync").await
    })
    .await;
}

/// Writes frames (feed each, flush once); a close ends the connection. `false` when the
/// connection is done. Each frame leaves the queue's bound as its write starts.
async fn write_out<T>(ws: &mut WebSocketStream<T>, queue: &QueueRx, items: Vec<Outbound>) -> bool
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    if items.is_empty() {
        return true;
    }
    for item in items {
        queue.leaving(&item);
        match item {
            Outbound::Frame(json, _) => {
                if ws.feed(Message::Text(json.into_text())).await.is_err() {
                    return false;
                }
            }
            Outbound::Close(code, reason) => {
                let _ = ws.flush().await;
                let _ = close_with(ws, code, &reason).await;
                return false;
            }
        }
    }
    ws.flush().await.is_ok()
}

pub(super) fn error_json(code: ErrorCode, message: &str) -> String {
    ServerFrame::Error {
        code,
        message: message.to_string(),
        id: None,
    }
    .to_json()
}

/// Sends a close frame, then drains briefly so the close handshake can finish.
pub(super) async fn close_with<T>(
    ws: &mut WebSocketStream<T>,
    code: u16,
    reason: &str,
) -> Result<(), WsError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    ws.close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_string().into(),
    }))
    .await?;
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    Ok(())
}

/// Carries out a link command and answers it; `false` when it dropped a frame, and the
/// connection goes with it.
fn apply(links: &mut Links, (command, reply): LinkMessage) -> bool {
    let (result, goes_on) = match links.command(command) {
        Outcome::Done => (Ok(()), true),
        Outcome::Dropped => (Ok(()), false),
        Outcome::NoSuchFrame(e) => (Err(e), true),
    };
    if let Some(reply) = reply {
        let _ = reply.send(result);
    }
    goes_on
}
