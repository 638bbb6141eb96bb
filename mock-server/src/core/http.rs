//! Polling over HTTP (PROTOCOL.md, "Polling over HTTP, when the WebSocket is unavailable"):
//! `GET /sync/changes` and `POST /sync/write` as the core answers them, and the
//! `block_websocket` fault. The shell parses the request (method, path, headers, a body
//! within its limit) into an [`HttpRequest`]; the core answers with a status and a JSON
//! body, and returns the actions (pushes to the user's connected devices) to carry out.
//!
//! A write over HTTP takes exactly the WebSocket's path: it runs through
//! [`Core::handle`] on a connection that lives for this one request — authenticated as
//! the device, but not registered as it (it never replaces the device's WebSocket) — with
//! the device id's HTTP token bucket. Its answers are the body; pushes to it are dropped
//! (HTTP carries no pushes); pushes to everyone else go out as for any write.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Value, json};
use sync_core::protocol::model::is_valid_device_id;
use sync_core::protocol::{CatchUp, ClientFrame, ErrorCode, ServerFrame, decode_client_frame};

use super::rate::TokenBucket;
use super::store::Store;
use super::{Action, Conn, ConnId, Core, Inbound};

/// A request of the polling API, as the shell read it.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    /// The token of `Authorization: Bearer TOKEN`, if the header was there and well formed.
    pub token: Option<String>,
    /// `X-Device-Id`, if present.
    pub device_id: Option<String>,
    /// Where it came from (failed token checks are counted per address).
    pub source: Option<IpAddr>,
    /// What it asks.
    pub kind: HttpKind,
}

/// What a polling request asks.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpKind {
    /// `GET /sync/changes?QUERY`: the query string (`since=N` or `since_time=MS`).
    Changes(String),
    /// `POST /sync/write` with this body.
    Write(String),
}

/// The core's answer: a status and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Value,
}

impl std::fmt::Display for HttpAnswer {
    /// As a trace line shows it: `HTTP 200 {…}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} {}", self.status, self.body)
    }
}

impl HttpAnswer {
    fn error(status: u16, code: ErrorCode, message: &str) -> HttpAnswer {
        HttpAnswer {
            status,
            body: json!({"type": "error", "code": code, "message": message}),
        }
    }
}

/// Device ids with an HTTP bucket kept at most; past it, buckets full again (unused for
/// over 2 s) are forgotten, so a client inventing device ids cannot grow the map.
const HTTP_BUCKETS: usize = 4096;
/// A bucket unused this long is full again: forgetting it changes nothing.
const BUCKET_REFILLED: Duration = Duration::from_secs(2);

/// The HTTP side's state in the core.
#[derive(Debug, Clone, Default)]
pub(super) struct HttpState {
    /// Per `(user, device_id)`: the bucket of its HTTP requests, and when it was last used.
    buckets: HashMap<(String, String), (TokenBucket, Duration)>,
    /// Request-long connections are numbered from the top of the id space down, away from
    /// the shell's.
    next_conn: u64,
    /// `block_websocket`: upgrades to `/sync` are refused.
    pub(super) ws_blocked: bool,
}

impl<S: Store> Core<S> {
    /// Answers one polling request. The actions (pushes of a write to the user's
    /// connected devices) are the shell's to carry out, as [`Core::handle`]'s.
    pub fn http(&mut self, request: HttpRequest, now: Duration) -> (HttpAnswer, Vec<Action>) {
        if let Some(why) = &self.broken {
            let message = format!("store unavailable: {why}");
            return (
                HttpAnswer::error(500, ErrorCode::StoreFailed, &message),
                Vec::new(),
            );
        }
        let user = match self.http_user(&request, now) {
            Ok(user) => user,
            Err(answer) => return (answer, Vec::new()),
        };
        let device = match request.device_id {
            Some(d) if is_valid_device_id(&d) => d,
            _ => {
                let message = "header `X-Device-Id`: 1..=64 of [A-Za-z0-9_-], not `server`";
                return (
                    HttpAnswer::error(400, ErrorCode::BadMessage, message),
                    Vec::new(),
                );
            }
        };
        match request.kind {
            HttpKind::Changes(query) => {
                (self.http_changes(&user, &device, &query, now), Vec::new())
            }
            HttpKind::Write(body) => self.http_write(&user, &device, request.token, &body, now),
        }
    }

    /// The user of the request's token, or the 401 (or 429, past the failed-check limit)
    /// that says why not.
    fn http_user(&mut self, request: &HttpRequest, now: Duration) -> Result<String, HttpAnswer> {
        if self.guard.blocked(request.source, now) {
            return Err(HttpAnswer::error(
                429,
                ErrorCode::TooManyAttempts,
                super::guard::TOO_MANY,
            ));
        }
        let token = request.token.as_deref().unwrap_or_default();
        if let Some(user) = self.tokens.get(token) {
            return Ok(user.clone());
        }
        if self.expired.contains_key(token) {
            let message = "this token was rotated away: ask for the new one";
            return Err(HttpAnswer::error(401, ErrorCode::TokenExpired, message));
        }
        self.guard.failed(request.source, now);
        let message = "header `Authorization: Bearer TOKEN` with a valid token";
        Err(HttpAnswer::error(401, ErrorCode::Unauthorized, message))
    }

    fn http_changes(&mut self, user: &str, device: &str, query: &str, now: Duration) -> HttpAnswer {
        let catch_up = match parse_query(query) {
            Ok(c) => c,
            Err(message) => return HttpAnswer::error(400, ErrorCode::BadMessage, &message),
        };
        let (mut bucket, _) = self.take_bucket(user, device, now);
        let allowed = bucket.take(now);
        self.put_bucket(user, device, bucket, now);
        if !allowed {
            let message = "over the rate limit (400 requests, 200 per second)";
            return HttpAnswer::error(429, ErrorCode::RateLimited, message);
        }
        HttpAnswer {
            status: 200,
            body: serde_json::to_value(self.welcome(user, catch_up)).expect("frames serialize"),
        }
    }

    fn http_write(
        &mut self,
        user: &str,
        device: &str,
        token: Option<String>,
        body: &str,
        now: Duration,
    ) -> (HttpAnswer, Vec<Action>) {
        let frame = match decode_client_frame(body) {
            Ok(frame @ (ClientFrame::Set { .. } | ClientFrame::Command { .. })) => frame,
            Ok(frame @ ClientFrame::Batch { .. }) => frame,
            Ok(other) => {
                let message = format!(
                    "`POST /sync/write` takes one `set`, `command` or `batch` frame, not `{}`",
                    other.type_name()
                );
                return (
                    HttpAnswer::error(400, ErrorCode::BadMessage, &message),
                    Vec::new(),
                );
            }
            Err(e) => {
                let mut answer = HttpAnswer::error(400, ErrorCode::BadMessage, &e.to_string());
                if let Some(id) = e.id {
                    answer.body["id"] = json!(id);
                }
                return (answer, Vec::new());
            }
        };
        self.http.next_conn += 1;
        let id = ConnId(u64::MAX - self.http.next_conn);
        let (bucket, _) = self.take_bucket(user, device, now);
        self.insert_conn(id, Conn::new(now, None, token.unwrap_or_default(), bucket));
        self.sign_in(id, (user.to_string(), device.to_string()));
        let actions = self.handle(vec![(id, Inbound::Decoded(frame))], now);
        if let Some(conn) = self.remove_conn(id) {
            self.put_bucket(user, device, conn.bucket, now);
        }
        let mut answers = Vec::new();
        let mut status = 200;
        let mut rest = Vec::new();
        for action in actions {
            match action {
                // HTTP carries no pushes: a polling device reads changes with `GET`.
                Action::Push(mut to, change) => {
                    to.retain(|to| *to != id);
                    if !to.is_empty() {
                        rest.push(Action::Push(to, change));
                    }
                }
                Action::Send(to, frame) if to == id => {
                    if matches!(
                        frame,
                        ServerFrame::Error {
                            code: ErrorCode::StoreFailed,
                            ..
                        }
                    ) {
                        status = 500;
                    }
                    answers.push(frame);
                }
                // A request-long connection has nothing to close.
                Action::Close(to, ..) if to == id => {}
                other => rest.push(other),
            }
        }
        let body = serde_json::to_value(&answers).expect("frames serialize");
        (HttpAnswer { status, body }, rest)
    }

    fn take_bucket(&mut self, user: &str, device: &str, now: Duration) -> (TokenBucket, Duration) {
        self.http
            .buckets
            .remove(&(user.to_string(), device.to_string()))
            .unwrap_or_else(|| (TokenBucket::full(now), now))
    }

    fn put_bucket(&mut self, user: &str, device: &str, bucket: TokenBucket, now: Duration) {
        let buckets = &mut self.http.buckets;
        if buckets.len() >= HTTP_BUCKETS {
            buckets.retain(|_, (_, used)| now.saturating_sub(*used) < BUCKET_REFILLED);
        }
        buckets.insert((user.to_string(), device.to_string()), (bucket, now));
    }

    /// `block_websocket`: while on, the shell refuses upgrades to `/sync` (503). Turning it
    /// on closes every open device connection with 1001 (`going away`); HTTP and the
    /// admin socket stay up. Returns the closes.
    pub fn block_websocket(&mut self, on: bool) -> Vec<Action> {
        self.http.ws_blocked = on;
        if !on {
            return Vec::new();
        }
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        ids.into_iter()
            .map(|id| {
                self.disconnect(id);
                Action::Close(
                    id,
                    sync_core::protocol::close::GOING_AWAY,
                    "going away".into(),
                )
            })
            .collect()
    }

    /// Whether upgrades to `/sync` are refused (`block_websocket`).
    pub fn websocket_blocked(&self) -> bool {
        self.http.ws_blocked
    }
}

/// `since=N` or `since_time=MS`: exactly one.
fn parse_query(query: &str) -> Result<CatchUp, String> {
    let mut found = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("query `{name}`: expected an unsigned integer, got `{value}`"))
        };
        let catch_up = match name {
            "since" => CatchUp::Since(number()?),
            "since_time" => CatchUp::SinceTime(number()?),
            other => {
                return Err(format!(
                    "unknown query parameter `{other}`: expected `since` or `since_time`"
                ));
            }
        };
        if found.replace(catch_up).is_some() {
            return Err("give one of `since` and `since_time`, once".into());
        }
    }
    found.ok_or_else(|| "missing query `since` (or `since_time`)".to_string())
}
