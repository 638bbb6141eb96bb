//! Accepting connections: the listener, the checks made on the HTTP upgrade request (path,
//! `Origin`, the connection cap, the handshake deadline), and the hand-over of each
//! upgraded socket to its task — [`connection`](super::connection) for `/sync`,
//! [`admin`](super::admin) for `/admin`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::control::ToCore;
use super::{HANDSHAKE_TIMEOUT, MAX_FRAME, READ_BUFFER, admin, connection};
use crate::core::ConnId;

/// Sockets accepted past the connection cap only to be told `503`; beyond these, a new
/// socket is closed at once, unanswered.
const REFUSING: usize = 256;
/// After `accept` fails (out of file descriptors, say), wait this long before the next
/// try rather than spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// On shutdown, how long connections get to say goodbye before they are dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// What every connection is checked against.
pub(super) struct Gate {
    /// Enables `/admin` with this token.
    pub(super) admin_token: Option<Arc<str>>,
    /// Origins allowed to connect (requests without `Origin` always are).
    pub(super) allow_origins: Vec<String>,
    /// Open sockets at most (upgraded or not).
    pub(super) max_connections: usize,
    /// A device connection's outbound byte bound.
    pub(super) max_queue_bytes: usize,
    /// The server's clock.
    pub(super) epoch: Instant,
}

/// Accepts connections until `shutdown` fires, one task each; `open` counts the tasks not
/// yet ended. Then shuts down: see [`ServerHandle::shutdown`](super::ServerHandle::shutdown).
pub(super) async fn run(
    listener: TcpListener,
    to_core: mpsc::Sender<ToCore>,
    gate: Arc<Gate>,
    open: Arc<AtomicUsize>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let (stopping, _) = watch::channel(false);
    let mut next_id = 1;
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if conns.len() >= gate.max_connections + REFUSING {
                        drop(stream);
                        continue;
                    }
                    let full = conns.len() >= gate.max_connections;
                    let _ = stream.set_nodelay(true);
                    let id = ConnId(next_id);
                    next_id += 1;
                    tracing::debug!(%peer, id = id.0, "connection");
                    let task = handle(stream, peer, id, full, to_core.clone(), gate.clone(), stopping.subscribe());
                    conns.spawn(task);
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            // Reap ended tasks: a JoinSet keeps each one until it is joined.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = &mut shutdown => break,
        }
        open.store(conns.len(), Ordering::Relaxed);
    }
    drop(listener);
    // Admin sockets close 1001 themselves; device connections get 1001 from the core task
    // after everything queued before it, so the commits in flight finish and are answered.
    let _ = stopping.send(true);
    let (done, finished) = oneshot::channel();
    if to_core.send(ToCore::Shutdown(done)).await.is_ok() {
        let _ = finished.await;
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {
            open.store(conns.len(), Ordering::Relaxed);
        }
    })
    .await;
    // A client that reads nothing cannot be told: drop it.
    conns.shutdown().await;
    open.store(0, Ordering::Relaxed);
}

/// Upgrades one socket and serves it.
async fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    id: ConnId,
    full: bool,
    to_core: mpsc::Sender<ToCore>,
    gate: Arc<Gate>,
    stopping: watch::Receiver<bool>,
) {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let mut path = String::new();
    let admin_on = gate.admin_token.is_some();
    // The signature is tungstenite's callback type; its error type is not ours to shrink.
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        path = req.uri().path().to_string();
        if path != "/sync" && !(admin_on && path == "/admin") {
            return Err(refusal(
                StatusCode::NOT_FOUND,
                "Sync Lab speaks WebSocket at /sync",
            ));
        }
        if let Some(origin) = req.headers().get("origin")
            && !gate
                .allow_origins
                .iter()
                .any(|o| o.as_bytes() == origin.as_bytes())
        {
            return Err(refusal(
                StatusCode::FORBIDDEN,
                "this Origin is not allowed (see --allow-origin)",
            ));
        }
        if full {
            return Err(refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many connections (see --max-connections)",
            ));
        }
        Ok(resp)
    };
    // The socket is lent, not given: after a malformed request it is still ours to answer.
    let upgrade = tokio_tungstenite::accept_hdr_async_with_config(&mut stream, check, Some(config));
    let ws = match tokio::time::timeout(HANDSHAKE_TIMEOUT, upgrade).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(id = id.0, "upgrade failed: {e}");
            // `Http`: refused by the check above, and answered. Other protocol errors are
            // a malformed request: answer it rather than hang up without a word.
            if !matches!(
                e,
                WsError::Http(_) | WsError::Io(_) | WsError::ConnectionClosed
            ) {
                let _ = bad_request(&mut stream, &e.to_string()).await;
            }
            return;
        }
        Err(_) => return tracing::debug!(id = id.0, "upgrade timed out"),
    };
    if path == "/admin"
        && let Some(token) = &gate.admin_token
    {
        return admin::serve(ws, token, peer.ip(), to_core, stopping).await;
    }
    let conn = connection::Conn {
        id,
        source: peer.ip(),
        to_core,
        epoch: gate.epoch,
        max_queue_bytes: gate.max_queue_bytes,
    };
    connection::serve(ws, conn).await;
}

fn refusal(status: StatusCode, message: &str) -> ErrorResponse {
    let mut e = ErrorResponse::new(Some(message.to_string()));
    *e.status_mut() = status;
    e
}

/// `400 Bad Request`, with what was wrong.
async fn bad_request(stream: &mut TcpStream, why: &str) -> std::io::Result<()> {
    let body = format!("not a WebSocket upgrade: {why}\n");
    let head = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
