//! The admin WebSocket at `/admin`: fault control for QA of any client, as JSON commands.
//! Enabled only when the server has an admin token (`--admin-token`).
//!
//! The first frame authenticates: `{"cmd":"auth","token":"T"}`. Then each command gets one
//! answer, `{"ok":true,…}` or `{"ok":false,"error":"…"}`:
//!
//! | command | fields | does |
//! |---|---|---|
//! | `link` | `user`, `device`, `dir` (`up`/`down`), `latency_ms`, `jitter_ms`, `loss` (0..=1) | sets one direction of the device's current connection |
//! | `hold` | `user`, `device`, `dir`, `on` | manual mode on/off: frames wait in the queue |
//! | `release` | `user`, `device`, `dir`, `n` | delivers the n-th queued frame now (1 = oldest) |
//! | `drop` | `user`, `device`, `dir`, `n` | loses the n-th queued frame and the connection with it |
//! | `queued` | `user`, `device` | answers `up` and `down` (how many frames wait) and `frames` (one line each) |
//! | `reject_next` | `key` | the next write to the key is rejected (`forced`) |
//! | `disconnect` | `user`, `device` | closes the device's connection |
//! | `server_set` | `user`, `key`, `value` | a write by the server itself, pushed to every device |
//! | `restart` | | the server restarts as after a crash: connections drop, the store is reloaded |
//! | `inspect` | `user` | answers the user's `head`, `writes`, `devices` and `keys` |

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use sync_core::protocol::Key;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::{Control, LinkCommand, ToCore, close_with};
use crate::link::LinkConfig;
use crate::sim::Direction;

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
        dir: Dir,
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
        dir: Dir,
        on: bool,
    },
    Release {
        user: String,
        device: String,
        dir: Dir,
        n: usize,
    },
    Drop {
        user: String,
        device: String,
        dir: Dir,
        n: usize,
    },
    Queued {
        user: String,
        device: String,
    },
    RejectNext {
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
    Restart,
    Inspect {
        user: String,
    },
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Dir {
    Up,
    Down,
}

impl From<Dir> for Direction {
    fn from(d: Dir) -> Direction {
        match d {
            Dir::Up => Direction::Up,
            Dir::Down => Direction::Down,
        }
    }
}

fn error(message: impl Into<String>) -> Value {
    json!({"ok": false, "error": message.into()})
}

/// The answer to a command the core carried out.
fn answer(outcome: Result<Result<(), String>, oneshot::error::RecvError>) -> Value {
    match outcome {
        Ok(Ok(())) => json!({"ok": true}),
        Ok(Err(e)) => error(e),
        Err(_) => error("the server is stopping"),
    }
}

/// Serves one admin connection until it closes.
pub(super) async fn serve<T>(mut ws: WebSocketStream<T>, token: &str, to_core: mpsc::Sender<ToCore>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut authed = false;
    let first = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    let mut pending = match first {
        Ok(Some(Ok(m))) => Some(m),
        _ => {
            let _ = close_with(&mut ws, 4400, "auth first").await;
            return;
        }
    };
    loop {
        let msg = match pending.take() {
            Some(m) => m,
            None => match ws.next().await {
                Some(Ok(m)) => m,
                _ => return,
            },
        };
        let text = match msg {
            Message::Text(t) => t.to_string(),
            Message::Close(_) => return,
            _ => continue,
        };
        let reply = match serde_json::from_str::<AdminCommand>(&text) {
            Err(e) => error(format!("bad command: {e}")),
            Ok(AdminCommand::Auth { token: given }) => {
                authed = given == token;
                if !authed {
                    let _ = ws
                        .send(Message::text(error("wrong admin token").to_string()))
                        .await;
                    let _ = close_with(&mut ws, 4401, "unauthorized").await;
                    return;
                }
                json!({"ok": true})
            }
            Ok(_) if !authed => {
                let _ = ws
                    .send(Message::text(
                        error("send {\"cmd\":\"auth\",\"token\":…} first").to_string(),
                    ))
                    .await;
                let _ = close_with(&mut ws, 4401, "unauthorized").await;
                return;
            }
            Ok(cmd) => run(cmd, &to_core).await,
        };
        if ws.send(Message::text(reply.to_string())).await.is_err() {
            return;
        }
    }
}

async fn control(to_core: &mpsc::Sender<ToCore>, c: Control) -> bool {
    to_core.send(ToCore::Control(c)).await.is_ok()
}

async fn link(
    to_core: &mpsc::Sender<ToCore>,
    user: String,
    device_id: String,
    command: LinkCommand,
) -> bool {
    control(
        to_core,
        Control::Link {
            user,
            device_id,
            command,
        },
    )
    .await
}

async fn run(cmd: AdminCommand, to_core: &mpsc::Sender<ToCore>) -> Value {
    let key = |k: &str| Key::parse(k).map_err(|e| error(e.to_string()));
    let sent = match cmd {
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
            link(
                to_core,
                user,
                device,
                LinkCommand::Configure(dir.into(), config),
            )
            .await
        }
        AdminCommand::Hold {
            user,
            device,
            dir,
            on,
        } => link(to_core, user, device, LinkCommand::Hold(dir.into(), on)).await,
        AdminCommand::Release {
            user,
            device,
            dir,
            n,
        } => link(to_core, user, device, LinkCommand::Release(dir.into(), n)).await,
        AdminCommand::Drop {
            user,
            device,
            dir,
            n,
        } => link(to_core, user, device, LinkCommand::Drop(dir.into(), n)).await,
        AdminCommand::Queued { user, device } => {
            let (reply, rx) = oneshot::channel();
            link(to_core, user, device, LinkCommand::Queued(reply)).await;
            // No answer: the device is not connected.
            let q = tokio::time::timeout(Duration::from_secs(1), rx)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            return json!({"ok": true, "up": q.up.len(), "down": q.down.len(), "frames": {"up": q.up, "down": q.down}});
        }
        AdminCommand::RejectNext { key: k } => match key(&k) {
            Ok(k) => control(to_core, Control::RejectNext(k)).await,
            Err(e) => return e,
        },
        AdminCommand::Disconnect { user, device } => {
            control(
                to_core,
                Control::Disconnect {
                    user,
                    device_id: device,
                },
            )
            .await
        }
        AdminCommand::ServerSet {
            user,
            key: k,
            value,
        } => {
            let k = match key(&k) {
                Ok(k) => k,
                Err(e) => return e,
            };
            let (reply, rx) = oneshot::channel();
            control(
                to_core,
                Control::ServerSet {
                    user,
                    key: k,
                    value,
                    reply,
                },
            )
            .await;
            return answer(rx.await);
        }
        AdminCommand::Restart => {
            let (reply, rx) = oneshot::channel();
            control(to_core, Control::Restart { reply }).await;
            return answer(rx.await);
        }
        AdminCommand::Inspect { user } => {
            let (reply, rx) = oneshot::channel();
            control(to_core, Control::Inspect { user, reply }).await;
            return match rx.await {
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
                    json!({"ok": true, "head": i.data.head, "writes": i.writes, "devices": i.devices, "keys": keys})
                }
                Err(_) => error("the server is stopping"),
            };
        }
    };
    if sent {
        json!({"ok": true})
    } else {
        error("the server is stopping")
    }
}
