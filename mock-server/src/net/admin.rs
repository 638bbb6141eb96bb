//! The admin WebSocket at `/admin`: fault control for QA of any client, as JSON commands.
//! Enabled only when the server has an admin token (`--admin-token`).
//!
//! The first frame authenticates: `{"cmd":"auth","token":"T"}`. A wrong token is answered
//! `{"ok":false,"error":"wrong admin token"}` and close 4401, and counts as a failed token
//! check of its address (PROTOCOL.md, "Exposure"): past the limit, the answer is
//! `{"ok":false,"error":"too_many_attempts: …"}` and close 1008. Then each command gets one
//! answer, `{"ok":true,…}` or `{"ok":false,"error":"…"}`. Every command that names a
//! `user` fails for a user the server has no token for.
//!
//! | command | fields | does |
//! |---|---|---|
//! | `link` | `user`, `device`, `dir` (`up`/`down`), `latency_ms`, `jitter_ms`, `loss` (0..=1) | sets one direction of the device's current connection |
//! | `hold` | `user`, `device`, `dir`, `on` | manual mode on/off: frames wait in the queue |
//! | `release` | `user`, `device`, `dir`, `n` | delivers the n-th queued frame now (1 = oldest); an error if the device is not connected or has no such frame |
//! | `drop` | `user`, `device`, `dir`, `n` | loses the n-th queued frame and the connection with it; errors as `release` |
//! | `queued` | `user`, `device` | answers `up` and `down` (how many frames wait) and `frames` (one line each) |
//! | `reject_next` | `key`, `user` (optional while the server has one user) | the user's next write to the key is rejected (`forced`) |
//! | `disconnect` | `user`, `device` | closes the device's connection (4000); an error if it is not connected |
//! | `server_set` | `user`, `key`, `value` | a write by the server itself, pushed to every device |
//! | `block_websocket` | `on` | while on, upgrades to `/sync` are refused (503) and open device connections are closed 1001; HTTP polling and `/admin` stay up |
//! | `rotate_token` | `user`, `token` | the user's token becomes `token`; the old one expires now (its connections get `token_expired` and 30 s to `auth`); an error for a token that is or was in use |
//! | `restart` | | the server restarts as after a crash: connections drop, the store is reloaded |
//! | `inspect` | `user` | answers the user's `head`, `writes` (revisions assigned to the user), `devices`, `keys`, `forced` (keys whose next write will be rejected) and `websocket_blocked` |
//!
//! `link` and `hold` are kept for the device's next connections too, so they may be given
//! before it connects.

use std::net::IpAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use sync_core::protocol::{ErrorCode, Key, close};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::connection::close_with;
use super::control::{Control, LinkCommand, Reply, ToCore};
use crate::link::{Direction, Fault, LinkConfig};

/// How long a new admin socket has to authenticate.
const AUTH_TIMEOUT: Duration = Duration::from_secs(5);

/// One admin command.
#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
enum AdminCommand {
    Auth {
        token: String,
    },
    Link {
        user: String,
        device: String,
        dir: Direction,
        #[serde(default)]
        latency_ms: u64,
        #[serde(default)]
        jitter_ms: u64,
        #[serde(default)]
        loss: f64,
    },
    Hold {
        user: String,
        device: String,
        dir: Direction,
        on: bool,
    },
    Release {
        user: String,
        device: String,
        dir: Direction,
        n: usize,
    },
    Drop {
        user: String,
        device: String,
        dir: Direction,
        n: usize,
    },
    Queued {
        user: String,
        device: String,
    },
    RejectNext {
        #[serde(default)]
        user: Option<String>,
        key: String,
    },
    Disconnect {
        user: String,
        device: String,
    },
    ServerSet {
        user: String,
        key: String,
        value: Value,
    },
    RotateToken {
        user: String,
        token: String,
    },
    BlockWebsocket {
        on: bool,
    },
    Restart,
    Inspect {
        user: String,
    },
}

fn error(message: impl Into<String>) -> Value {
    json!({"ok": false, "error": message.into()})
}

const STOPPING: &str = "the server is stopping";

/// Serves one admin connection until it closes, or the server stops (1001).
pub(super) async fn serve<T>(
    mut ws: WebSocketStream<T>,
    token: &str,
    source: IpAddr,
    to_core: mpsc::Sender<ToCore>,
    mut stopping: watch::Receiver<bool>,
) where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut authed = false;
    let deadline = tokio::time::Instant::now() + AUTH_TIMEOUT;
    loop {
        let next = tokio::select! {
            next = ws.next() => next,
            _ = tokio::time::sleep_until(deadline), if !authed => {
                let _ = close_with(&mut ws, 4400, "auth first").await;
                return;
            }
            _ = async { stopping.wait_for(|stop| *stop).await.map(drop) } => {
                let _ = close_with(&mut ws, close::GOING_AWAY, "going away").await;
                return;
            }
        };
        let text = match next {
            Some(Ok(Message::Text(t))) => t.to_string(),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
            Some(Ok(_)) => continue,
        };
        let reply = match serde_json::from_str::<AdminCommand>(&text) {
            Err(e) => error(format!("bad command: {e}")),
            Ok(AdminCommand::Auth { token: given }) => {
                let (reply, answer) = oneshot::channel();
                let ok = given == token;
                let check = ToCore::AdminAuth { source, ok, reply };
                let verdict = match to_core.send(check).await {
                    Ok(()) => answer.await.unwrap_or(Err(ErrorCode::Other)),
                    Err(_) => Err(ErrorCode::Other),
                };
                let refusal = match verdict {
                    Ok(()) => None,
                    Err(ErrorCode::TooManyAttempts) => Some((
                        "too_many_attempts: too many failed token checks from this address; try again in a minute",
                        close::POLICY,
                        "too_many_attempts",
                    )),
                    Err(ErrorCode::Unauthorized) => {
                        Some(("wrong admin token", close::UNAUTHORIZED, "unauthorized"))
                    }
                    Err(_) => Some((STOPPING, close::GOING_AWAY, "going away")),
                };
                if let Some((message, code, reason)) = refusal {
                    let _ = ws.send(Message::text(error(message).to_string())).await;
                    let _ = close_with(&mut ws, code, reason).await;
                    return;
                }
                authed = true;
                json!({"ok": true})
            }
            Ok(_) if !authed => {
                let first = error("send {\"cmd\":\"auth\",\"token\":…} first").to_string();
                let _ = ws.send(Message::text(first)).await;
                let _ = close_with(&mut ws, close::UNAUTHORIZED, "unauthorized").await;
                return;
            }
            Ok(cmd) => run(cmd, &to_core).await,
        };
        if ws.send(Message::text(reply.to_string())).await.is_err() {
            return;
        }
    }
}

/// Sends a control to the core task and waits for its answer.
async fn ask<T>(
    to_core: &mpsc::Sender<ToCore>,
    make: impl FnOnce(Reply<T>) -> Control,
) -> Result<T, String> {
    let (reply, answer) = oneshot::channel();
    if to_core.send(ToCore::Control(make(reply))).await.is_err() {
        return Err(STOPPING.into());
    }
    answer.await.unwrap_or_else(|_| Err(STOPPING.into()))
}

/// A link command for a device.
async fn link(
    to_core: &mpsc::Sender<ToCore>,
    user: String,
    device_id: String,
    command: LinkCommand,
) -> Result<(), String> {
    ask(to_core, |reply| Control::Link {
        user,
        device_id,
        command,
        reply,
    })
    .await
}

fn done(result: Result<(), String>) -> Value {
    match result {
        Ok(()) => json!({"ok": true}),
        Err(e) => error(e),
    }
}

async fn run(cmd: AdminCommand, to_core: &mpsc::Sender<ToCore>) -> Value {
    let key = |k: &str| Key::parse(k).map_err(|e| error(e.to_string()));
    match cmd {
        AdminCommand::Auth { .. } => unreachable!("handled by the caller"),
        AdminCommand::Link {
            user,
            device,
            dir,
            latency_ms,
            jitter_ms,
            loss,
        } => {
            if !(0.0..=1.0).contains(&loss) {
                return error("`loss` is a probability in 0..=1");
            }
            let config = LinkConfig {
                latency: Duration::from_millis(latency_ms),
                jitter: Duration::from_millis(jitter_ms),
                loss,
            };
            done(link(to_core, user, device, Fault::Configure(dir, config).into()).await)
        }
        AdminCommand::Hold {
            user,
            device,
            dir,
            on,
        } => done(link(to_core, user, device, Fault::Hold(dir, on).into()).await),
        AdminCommand::Release {
            user,
            device,
            dir,
            n,
        } => done(link(to_core, user, device, Fault::Release(dir, n).into()).await),
        AdminCommand::Drop {
            user,
            device,
            dir,
            n,
        } => done(link(to_core, user, device, Fault::Drop(dir, n).into()).await),
        AdminCommand::Queued { user, device } => {
            let (frames, answer) = oneshot::channel();
            if let Err(e) = link(to_core, user, device, LinkCommand::Queued(frames)).await {
                return error(e);
            }
            // No answer: the device is not connected, and nothing waits.
            let q = answer.await.unwrap_or_default();
            json!({"ok": true, "up": q.up.len(), "down": q.down.len(), "frames": {"up": q.up, "down": q.down}})
        }
        AdminCommand::RejectNext { user, key: k } => match key(&k) {
            Ok(key) => done(ask(to_core, |reply| Control::RejectNext { user, key, reply }).await),
            Err(e) => e,
        },
        AdminCommand::Disconnect { user, device } => done(
            ask(to_core, |reply| Control::Disconnect {
                user,
                device_id: device,
                reply,
            })
            .await,
        ),
        AdminCommand::ServerSet {
            user,
            key: k,
            value,
        } => match key(&k) {
            Ok(key) => done(
                ask(to_core, |reply| Control::ServerSet {
                    user,
                    key,
                    value,
                    reply,
                })
                .await,
            ),
            Err(e) => e,
        },
        AdminCommand::BlockWebsocket { on } => {
            done(ask(to_core, |reply| Control::BlockWebsocket { on, reply }).await)
        }
        AdminCommand::RotateToken { user, token } => {
            done(ask(to_core, |reply| Control::RotateToken { user, token, reply }).await)
        }
        AdminCommand::Restart => done(ask(to_core, |reply| Control::Restart { reply }).await),
        AdminCommand::Inspect { user } => {
            match ask(to_core, |reply| Control::Inspect { user, reply }).await {
                Ok(i) => {
                    let keys: serde_json::Map<String, Value> = i
                        .data
                        .keys
                        .iter()
                        .map(|(k, s)| {
                            (
                                k.to_string(),
                                serde_json::to_value(s).unwrap_or(Value::Null),
                            )
                        })
                        .collect();
                    let forced: Vec<String> = i.forced.iter().map(Key::to_string).collect();
                    json!({"ok": true, "head": i.data.head, "writes": i.writes, "devices": i.devices, "keys": keys, "forced": forced, "websocket_blocked": i.websocket_blocked})
                }
                Err(e) => error(e),
            }
        }
    }
}
