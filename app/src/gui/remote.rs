//! An external mock-server's fault controls, through its admin socket (README, "Fault
//! control for QA"): the operations the embedded server's handle offers — inspect, link
//! faults, held frames, reject next, restart — as JSON commands over
//! `ws://HOST:PORT/admin`, one at a time on one authenticated socket. A socket that
//! failed (the server restarted, the network dropped) is opened again on the next
//! command.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mock_server::core::store::{Stored, UserData};
use mock_server::link::Fault;
use mock_server::net::{Inspection, QueuedFrames};
use serde::Deserialize;
use serde_json::{Value, json};
use sync_core::protocol::Key;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// How long one command may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(5);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The admin socket of an external server.
pub struct Remote {
    url: String,
    token: String,
    socket: Mutex<Option<Socket>>,
}

/// `inspect`'s answer, as the admin socket writes it.
#[derive(Deserialize)]
struct Inspected {
    head: u64,
    writes: u64,
    devices: Vec<String>,
    keys: BTreeMap<String, Stored>,
    forced: Vec<String>,
    /// Missing from servers older than `block_websocket`: off.
    #[serde(default)]
    websocket_blocked: bool,
}

/// `queued`'s answer.
#[derive(Deserialize)]
struct Queued {
    frames: Frames,
}

#[derive(Deserialize)]
struct Frames {
    up: Vec<String>,
    down: Vec<String>,
}

impl Remote {
    /// The admin socket beside a server's sync endpoint (`ws://HOST:PORT/sync` →
    /// `ws://HOST:PORT/admin`), with its admin token. Nothing is opened yet.
    pub fn new(sync_url: &str, token: String) -> Result<Remote, String> {
        let base = sync_url
            .strip_suffix("/sync")
            .ok_or_else(|| format!("--server {sync_url}: expected ws://HOST:PORT/sync"))?;
        Ok(Remote {
            url: format!("{base}/admin"),
            token,
            socket: Mutex::new(None),
        })
    }

    /// Sends one command and returns its answer (`ok: false` is an error with the
    /// server's words). A broken socket is replaced once.
    async fn call(&self, command: Value) -> Result<Value, String> {
        let mut socket = self.socket.lock().await;
        let mut last = String::new();
        for _ in 0..2 {
            if socket.is_none() {
                *socket = Some(self.open().await?);
            }
            let Some(ws) = socket.as_mut() else {
                continue;
            };
            match tokio::time::timeout(TIMEOUT, round_trip(ws, &command)).await {
                Ok(Ok(answer)) => return ok(answer),
                Ok(Err(e)) => last = e,
                Err(_) => last = "no answer within 5 s".into(),
            }
            *socket = None;
        }
        Err(format!("admin socket {}: {last}", self.url))
    }

    /// Opens the socket and authenticates.
    async fn open(&self) -> Result<Socket, String> {
        let connect = tokio::time::timeout(TIMEOUT, connect_async(self.url.as_str()));
        let (mut ws, _) = connect
            .await
            .map_err(|_| format!("admin socket {}: no connection within 5 s", self.url))?
            .map_err(|e| format!("admin socket {}: {e}", self.url))?;
        let auth = json!({"cmd": "auth", "token": self.token});
        let answer = round_trip(&mut ws, &auth)
            .await
            .map_err(|e| format!("admin socket {}: {e}", self.url))?;
        ok(answer).map_err(|e| format!("admin socket {}: {e}", self.url))?;
        Ok(ws)
    }

    /// The user's stored state, devices and armed rejections.
    pub async fn inspect(&self, user: &str) -> Result<Inspection, String> {
        let answer = self.call(json!({"cmd": "inspect", "user": user})).await?;
        let i: Inspected = serde_json::from_value(answer)
            .map_err(|e| format!("admin socket {}: inspect: {e}", self.url))?;
        let keys = i
            .keys
            .into_iter()
            .filter_map(|(k, s)| Key::parse(&k).ok().map(|k| (k, s)))
            .collect();
        Ok(Inspection {
            data: UserData {
                head: i.head,
                keys,
                marks: BTreeMap::new(),
            },
            writes: i.writes,
            devices: i.devices,
            forced: i.forced.iter().filter_map(|k| Key::parse(k).ok()).collect(),
            websocket_blocked: i.websocket_blocked,
        })
    }

    /// A fault on a device's link, as the admin socket's JSON command.
    pub async fn link(&self, user: &str, device: &str, fault: Fault) -> Result<(), String> {
        let command = match fault {
            Fault::Configure(d, link) => json!({
                "cmd": "link", "user": user, "device": device, "dir": d.name(),
                "latency_ms": link.latency.as_millis() as u64,
                "jitter_ms": link.jitter.as_millis() as u64,
                "loss": link.loss,
            }),
            Fault::Hold(d, on) => {
                json!({"cmd": "hold", "user": user, "device": device, "dir": d.name(), "on": on})
            }
            Fault::Release(d, n) => {
                json!({"cmd": "release", "user": user, "device": device, "dir": d.name(), "n": n})
            }
            Fault::Drop(d, n) => {
                json!({"cmd": "drop", "user": user, "device": device, "dir": d.name(), "n": n})
            }
        };
        self.call(command).await.map(drop)
    }

    /// The frames waiting on a device's links.
    pub async fn queued_frames(&self, user: &str, device: &str) -> Result<QueuedFrames, String> {
        let answer = self
            .call(json!({"cmd": "queued", "user": user, "device": device}))
            .await?;
        let q: Queued = serde_json::from_value(answer)
            .map_err(|e| format!("admin socket {}: queued: {e}", self.url))?;
        Ok(QueuedFrames {
            up: q.frames.up,
            down: q.frames.down,
        })
    }

    /// Rejects the user's next write to a key.
    pub async fn reject_next(&self, user: &str, key: &Key) -> Result<(), String> {
        self.call(json!({"cmd": "reject_next", "user": user, "key": key.to_string()}))
            .await
            .map(drop)
    }

    /// Restarts the server as after a crash.
    pub async fn restart(&self) -> Result<(), String> {
        self.call(json!({"cmd": "restart"})).await.map(drop)
    }

    /// Blocks WebSocket upgrades (`true`) or ends the block.
    pub async fn block_websocket(&self, on: bool) -> Result<(), String> {
        self.call(json!({"cmd": "block_websocket", "on": on}))
            .await
            .map(drop)
    }

    /// Rotates a user's token.
    pub async fn rotate_token(&self, user: &str, token: &str) -> Result<(), String> {
        self.call(json!({"cmd": "rotate_token", "user": user, "token": token}))
            .await
            .map(drop)
    }
}

/// Sends a command and reads the next text frame as its answer.
async fn round_trip(ws: &mut Socket, command: &Value) -> Result<Value, String> {
    ws.send(Message::text(command.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    while let Some(message) = ws.next().await {
        match message.map_err(|e| e.to_string())? {
            Message::Text(text) => {
                return serde_json::from_str(&text).map_err(|e| format!("bad answer: {e}"));
            }
            Message::Close(frame) => {
                return Err(match frame {
                    Some(f) => format!("closed {} ({})", u16::from(f.code), f.reason),
                    None => "closed".into(),
                });
            }
            _ => {}
        }
    }
    Err("closed".into())
}

/// The answer itself, or its `error` when `ok` is false.
fn ok(answer: Value) -> Result<Value, String> {
    if answer["ok"] == json!(true) {
        Ok(answer)
    } else {
        Err(answer["error"]
            .as_str()
            .unwrap_or("an answer without ok")
            .to_string())
    }
}
