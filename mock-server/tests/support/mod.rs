//! What the socket tests share: a server on 127.0.0.1, a client, and frames read with a
//! deadline (a missing frame fails the test, never hangs it).

#![allow(dead_code)] // each test binary uses its own part

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mock_server::core::store::MemoryStore;
use mock_server::net::{ServerConfig, ServerHandle, start};
use serde_json::{Value, json};
use sync_core::client::{ClientConfig, DeviceHandle, DeviceView, spawn};
use sync_core::engine::{EngineConfig, Strategy};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn server(tokens: &[(&str, &str)]) -> ServerHandle {
    let tokens: BTreeMap<String, String> = tokens
        .iter()
        .map(|(user, token)| (token.to_string(), user.to_string()))
        .collect();
    let config = ServerConfig {
        tokens,
        ..ServerConfig::default()
    };
    start(config, MemoryStore::default()).await.unwrap()
}

/// A server for the demo user with the admin socket on, admin token `adm`.
pub async fn server_with_admin() -> ServerHandle {
    let config = ServerConfig {
        admin_token: Some("adm".into()),
        ..ServerConfig::default()
    };
    start(config, MemoryStore::default()).await.unwrap()
}

pub async fn connect(s: &ServerHandle) -> Ws {
    connect_async(s.url()).await.unwrap().0
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The next text frame, as JSON (5 s deadline: a missing frame fails, never hangs).
pub async fn recv(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("the connection is open")
            .expect("a valid frame");
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

/// Reads until the close frame and returns its code (5 s deadline).
pub async fn close_code(ws: &mut Ws) -> u16 {
    close_of(ws).await.0
}

/// Reads until the close frame and returns its code and reason (5 s deadline).
pub async fn close_of(ws: &mut Ws) -> (u16, String) {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a close within 5 s");
        match msg {
            Some(Ok(Message::Close(Some(c)))) => return (c.code.into(), c.reason.to_string()),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

pub async fn hello(ws: &mut Ws, token: &str, device: &str, since: u64) -> Value {
    send(
        ws,
        json!({"type":"hello","protocol":1,"token":token,"device_id":device,"since":since}),
    )
    .await;
    recv(ws).await
}

/// A client whose kernel buffer takes 4 KiB and which reads nothing after its `welcome`:
/// long pushes soon fill its socket, and the server's writes to it block.
pub async fn stuck_client(s: &ServerHandle, token: &str, device: &str) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(s.addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(s.url(), MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    hello(&mut ws, token, device, 0).await;
    ws
}

/// Posts a comment (`id` doubles as `local_rev`) and waits for its `ack`; the frames
/// before it must be pushes.
pub async fn add_comment(ws: &mut Ws, id: u64, key: &str, text: &str) {
    send(ws, json!({"type":"command","id":id,"key":key,"name":"add_comment","args":{"text":text},"local_rev":id})).await;
    loop {
        let f = recv(ws).await;
        if f["type"] == "ack" && f["id"] == id {
            return;
        }
        assert_eq!(f["type"], "push", "{f}");
    }
}

/// A live `sync-with-push` device of the demo user (the tokio client runtime) on `s`,
/// nothing persisted.
pub fn live_device(s: &ServerHandle, device_id: &str) -> DeviceHandle {
    let config = ClientConfig {
        url: s.url(),
        engine: EngineConfig {
            device_id: device_id.into(),
            token: "demo-token".into(),
            strategy: Strategy::SyncWithPush,
            seed: 1,
        },
        snapshot: None,
        online: true,
    };
    spawn(config, std::sync::Arc::new(|| {}))
}

/// Waits (on the view's change notifications, 10 s deadline) until `pred` holds.
pub async fn until(d: &DeviceHandle, what: &str, pred: impl Fn(&DeviceView) -> bool) -> DeviceView {
    let mut rx = d.watch();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let view = rx.borrow_and_update().clone();
        if pred(&view) {
            return view;
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            panic!("timed out waiting for {what}; last view: {view:#?}");
        }
    }
}

/// The server's admin socket, authenticated with `adm` (see [`server_with_admin`]).
pub async fn admin(s: &ServerHandle) -> Ws {
    let mut admin = connect_async(format!("ws://{}/admin", s.addr))
        .await
        .unwrap()
        .0;
    send(&mut admin, json!({"cmd":"auth","token":"adm"})).await;
    recv(&mut admin).await;
    admin
}
