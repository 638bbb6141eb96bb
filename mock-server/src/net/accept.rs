//! Accepting connections: the listener; HTTP/1 on every socket (hyper), with the checks
//! every request passes (`Origin`, the connection cap, the head's deadline); the polling
//! API (`GET /sync/changes`, `POST /sync/write`, answered by the core); and the hand-over of
//! each upgraded socket to its task — [`connection`](super::connection) for `/sync`,
//! [`admin`](super::admin) for `/admin`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use std::convert::Infallible;
use std::sync::atomic::AtomicBool;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use sync_core::protocol::ErrorCode;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::control::ToCore;
use super::{HANDSHAKE_TIMEOUT, MAX_FRAME, READ_BUFFER, WRITE_BUFFER, admin, connection};
use crate::core::ConnId;
use crate::core::http::{HttpKind, HttpRequest};

/// Sockets accepted past the connection cap only to be told `503`; beyond these, a new
/// socket is closed at once, unanswered.
const REFUSING: usize = 256;
/// After `accept` fails (out of file descriptors, say), wait this long before the next
/// try rather than spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// On shutdown, how long connections get to say goodbye before they are dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Checks an allowed origin (`--allow-origin`): it must be exactly what a browser sends
/// in the `Origin` header, since the header is matched exactly and anything else could
/// never match (a silent mistake). That is a web page's origin as the URL standard
/// serializes it (the `url` crate's): `http` or `https`, the host in lower case (and in
/// punycode), the port only when it is not the scheme's default, nothing after it; or
/// `null`, which browsers send for pages from files and sandboxed frames. A URL whose
/// origin is written differently is refused with the origin to give instead.
pub fn allowed_origin(s: &str) -> Result<String, String> {
    if s == "null" {
        return Ok(s.to_string());
    }
    let example = "e.g. http://localhost:5173";
    let url = url::Url::parse(s).map_err(|e| format!("`{s}` is not an origin ({e}; {example})"))?;
    let origin = url.origin();
    if !origin.is_tuple() {
        return Err(format!(
            "`{s}` is not a web page's origin: an http or https one, or null ({example})"
        ));
    }
    let exact = origin.ascii_serialization();
    if exact != s {
        return Err(format!(
            "`{s}`: browsers send this origin as `{exact}`; give that"
        ));
    }
    Ok(exact)
}

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
    /// The `block_websocket` fault: upgrades to `/sync` are answered 503.
    pub(super) ws_blocked: Arc<AtomicBool>,
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

/// What an upgrade was for.
enum Route {
    Sync,
    Admin,
}

/// Where the service leaves an accepted upgrade for the connection's task to take over.
type UpgradeSlot = Arc<std::sync::Mutex<Option<(Route, OnUpgrade)>>>;

/// Serves one socket: HTTP/1 by hyper, for the polling API and for the WebSocket upgrade
/// (then the socket goes to its task: [`connection`] for `/sync`, [`admin`] for `/admin`,
/// with tokio-tungstenite's tuning as before).
async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    id: ConnId,
    full: bool,
    to_core: mpsc::Sender<ToCore>,
    gate: Arc<Gate>,
    stopping: watch::Receiver<bool>,
) {
    let slot = UpgradeSlot::default();
    let service = {
        let (slot, gate, to_core) = (slot.clone(), gate.clone(), to_core.clone());
        service_fn(move |request| {
            let (slot, gate, to_core) = (slot.clone(), gate.clone(), to_core.clone());
            async move {
                let answer = answer(request, peer, full, &gate, &to_core, &slot).await;
                Ok::<_, Infallible>(answer)
            }
        })
    };
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        // A request's head within the handshake time; an idle kept-alive socket too.
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(e) = served.await {
        tracing::debug!(id = id.0, "http: {e}");
    }
    let upgrade = slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let Some((route, on_upgrade)) = upgrade else {
        return;
    };
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(e) => return tracing::debug!(id = id.0, "upgrade failed: {e}"),
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let ws =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    match (route, &gate.admin_token) {
        (Route::Admin, Some(token)) => admin::serve(ws, token, peer.ip(), to_core, stopping).await,
        (Route::Admin, None) => {}
        (Route::Sync, _) => {
            let conn = connection::Conn {
                id,
                source: peer.ip(),
                to_core,
                epoch: gate.epoch,
                max_queue_bytes: gate.max_queue_bytes,
            };
            connection::serve(ws, conn).await;
        }
    }
}

/// One request's answer: the checks every request passes (the `Origin` rule, the
/// connection cap), then by path — an upgrade to `/sync` or `/admin`, the polling API,
/// or 404 (and 405 for another method on a known path).
async fn answer(
    mut request: Request<Incoming>,
    peer: SocketAddr,
    full: bool,
    gate: &Gate,
    to_core: &mpsc::Sender<ToCore>,
    slot: &UpgradeSlot,
) -> Response<Full<Bytes>> {
    if let Some(origin) = request.headers().get(header::ORIGIN)
        && !gate
            .allow_origins
            .iter()
            .any(|o| o.as_bytes() == origin.as_bytes())
    {
        let message = "this Origin is not allowed (see --allow-origin)";
        return plain(StatusCode::FORBIDDEN, message);
    }
    if full {
        let message = "too many connections (see --max-connections)";
        return plain(StatusCode::SERVICE_UNAVAILABLE, message);
    }
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let route = match path.as_str() {
        "/sync" => Route::Sync,
        "/admin" if gate.admin_token.is_some() => Route::Admin,
        "/sync/changes" if method == Method::GET => {
            let query = request.uri().query().unwrap_or_default().to_string();
            return poll(&request, peer, HttpKind::Changes(query), to_core).await;
        }
        "/sync/write" if method == Method::POST => {
            return match read_body(&mut request).await {
                Ok(body) => poll(&request, peer, HttpKind::Write(body), to_core).await,
                Err(refused) => refused,
            };
        }
        "/sync/changes" | "/sync/write" => {
            let message = "GET /sync/changes, POST /sync/write";
            return refusal(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::BadMessage,
                message,
            );
        }
        _ => {
            let message =
                "Sync Lab speaks WebSocket at /sync, and HTTP at /sync/changes and /sync/write";
            return refusal(StatusCode::NOT_FOUND, ErrorCode::BadMessage, message);
        }
    };
    if method != Method::GET {
        return refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BadMessage,
            "an upgrade is a GET",
        );
    }
    if matches!(route, Route::Sync) && gate.ws_blocked.load(Ordering::Relaxed) {
        let message = "WebSocket upgrades are blocked (fault block_websocket): poll over HTTP";
        return plain(StatusCode::SERVICE_UNAVAILABLE, message);
    }
    let key = match websocket_key(&request) {
        Ok(key) => key,
        Err(why) => {
            let message = format!("not a WebSocket upgrade: {why}");
            return refusal(StatusCode::BAD_REQUEST, ErrorCode::BadMessage, &message);
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    *slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((route, on_upgrade));
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// The `Sec-WebSocket-Key` of a valid upgrade request (RFC 6455, 4.2.1), or what is
/// wrong with it.
fn websocket_key(request: &Request<Incoming>) -> Result<String, &'static str> {
    let headers = request.headers();
    let has = |name, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    if !has(header::UPGRADE, "websocket") {
        return Err("no `Upgrade: websocket` header");
    }
    if !has(header::CONNECTION, "upgrade") {
        return Err("no `Connection: Upgrade` header");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err("`Sec-WebSocket-Version` is not 13");
    }
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or("no `Sec-WebSocket-Key` header")
}

/// A polling request to the core, with its `Authorization` and `X-Device-Id`.
async fn poll(
    request: &Request<Incoming>,
    peer: SocketAddr,
    kind: HttpKind,
    to_core: &mpsc::Sender<ToCore>,
) -> Response<Full<Bytes>> {
    let headers = request.headers();
    // HTTP's auth schemes are case-insensitive (RFC 9110, 11.1): `bearer` is `Bearer`.
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let device_id = headers
        .get("x-device-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let request = HttpRequest {
        token,
        device_id,
        source: Some(peer.ip()),
        kind,
    };
    let (reply, answered) = oneshot::channel();
    if to_core.send(ToCore::Http(request, reply)).await.is_err() {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Other,
            "the server is stopping",
        );
    }
    match answered.await {
        Ok(answer) => json_response(
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            answer.body.to_string(),
        ),
        Err(_) => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Other,
            "the server is stopping",
        ),
    }
}

/// A `POST` body of at most 64 KiB, as UTF-8: a `Content-Length` over it is refused
/// before anything is read, a body that runs over it while read too.
async fn read_body(request: &mut Request<Incoming>) -> Result<String, Response<Full<Bytes>>> {
    let too_large = || {
        refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            "a body over 64 KiB",
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_FRAME as u64) {
        return Err(too_large());
    }
    let body = Limited::new(request.body_mut(), MAX_FRAME)
        .collect()
        .await
        .map_err(|_| too_large())?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| {
        refusal(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadMessage,
            "the body is not UTF-8",
        )
    })
}

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A refusal before any protocol is spoken (the `Origin` rule, the connection cap, a
/// blocked WebSocket, a server stopping): plain text, and the socket closed after it.
fn plain(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A refusal of the protocol's HTTP side (PROTOCOL.md: "Errors are an `error` object as
/// the body"), and the socket closed after it (a refused client gets no second request
/// on it).
fn refusal(status: StatusCode, code: ErrorCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"type": "error", "code": code, "message": message});
    let mut response = json_response(status, body.to_string());
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::allowed_origin;

    #[test]
    fn an_allowed_origin_is_what_a_browser_sends_and_nothing_else() {
        for ok in [
            "http://localhost:5173",
            "https://qa.example.com",
            "http://127.0.0.1:8080",
            "http://[::1]:3000",
            "https://xn--bcher-kva.example",
            "null",
        ] {
            assert_eq!(allowed_origin(ok).as_deref(), Ok(ok));
        }
        for (bad, why) in [
            ("localhost:5173", "is not a web page's origin"),
            ("http://", "is not an origin"),
            ("http://host:abc", "is not an origin"),
            ("file:///tmp/page.html", "is not a web page's origin"),
            ("http://localhost:5173/", "as `http://localhost:5173`"),
            (
                "https://qa.example.com/app?x=1",
                "as `https://qa.example.com`",
            ),
            ("http://LocalHost", "as `http://localhost`"),
            ("http://localhost:80", "as `http://localhost`"),
            ("https://x.example:443", "as `https://x.example`"),
            ("http://user@host", "as `http://host`"),
            (
                "https://bücher.example",
                "as `https://xn--bcher-kva.example`",
            ),
        ] {
            let e = allowed_origin(bad).unwrap_err();
            assert!(
                e.starts_with(&format!("`{bad}`")) && e.contains(why),
                "{bad}: {e}"
            );
        }
    }
}
