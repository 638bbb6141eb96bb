//! The client runtime (sync-core, feature `client`) against the real server on 127.0.0.1:
//! live devices that converge, survive a server restart, coalesce offline intents (and send
//! them in one batch), stop on
//! a bad token, and keep unacknowledged intents across a device restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mock_server::core::store::MemoryStore;
use mock_server::link::{Direction, Fault};
use mock_server::net::{Inspection, ServerConfig, ServerHandle, start};
use mock_server::redb_store::RedbStore;
use serde_json::json;
use sync_core::client::{ClientConfig, DeviceHandle, DeviceView, spawn};
use sync_core::engine::connection::ConnectionState;
use sync_core::engine::{EngineConfig, Strategy};
use sync_core::protocol::Key;

mod support;
use support::until;

fn key(s: &str) -> Key {
    Key::parse(s).unwrap()
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sync-lab-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(addr: &str) -> ServerConfig {
    ServerConfig {
        addr: addr.parse().unwrap(),
        ..ServerConfig::default()
    }
}

fn device(server_url: &str, name: &str, token: &str, snapshot: Option<PathBuf>) -> DeviceHandle {
    spawn(
        ClientConfig {
            url: server_url.to_string(),
            engine: EngineConfig {
                device_id: name.into(),
                token: token.into(),
                strategy: Strategy::SyncWithPush,
                seed: 1,
            },
            snapshot,
            online: true,
        },
        Arc::new(|| {}),
    )
}

/// A server in memory and a connected `phone` without a snapshot.
async fn server_and_connected_phone() -> (ServerHandle, DeviceHandle) {
    let server = start(config("127.0.0.1:0"), MemoryStore::default())
        .await
        .unwrap();
    let phone = device(&server.url(), "phone", "demo-token", None);
    until(&phone, "connected", |v| {
        v.connection == ConnectionState::Connected
    })
    .await;
    (server, phone)
}

/// The device shows the server's value and revision for every stored key, with nothing
/// pending.
fn agrees(view: &DeviceView, server: &Inspection) -> bool {
    view.connection == ConnectionState::Connected
        && !view.has_pending()
        && server.data.keys.iter().all(|(k, s)| {
            view.key(k)
                .is_some_and(|kv| kv.slot.shown == s.value && kv.known_rev == s.rev)
        })
}

async fn converge(server: &ServerHandle, devices: &[&DeviceHandle]) -> Inspection {
    // The server's state stops changing once every device is quiet; check both.
    for _ in 0..50 {
        let state = server.inspect("demo").await;
        let mut all = true;
        for d in devices {
            let mut rx = d.watch();
            let view = rx.borrow_and_update().clone();
            if !agrees(&view, &state) {
                all = false;
                // Wait for the device to change (or for the server to, at most 200 ms).
                let _ = tokio::time::timeout(Duration::from_millis(200), rx.changed()).await;
            }
        }
        if all && server.inspect("demo").await == state {
            return state;
        }
    }
    panic!("the devices did not converge");
}

#[tokio::test]
async fn three_devices_edit_the_same_keys_and_converge() {
    let server = start(config("127.0.0.1:0"), MemoryStore::default())
        .await
        .unwrap();
    let url = server.url();
    let devs: Vec<DeviceHandle> = ["phone", "laptop", "tablet"]
        .iter()
        .map(|n| device(&url, n, "demo-token", None))
        .collect();
    for d in &devs {
        until(d, "connected", |v| {
            v.connection == ConnectionState::Connected
        })
        .await;
    }
    for i in 0..30 {
        let d = &devs[i % 3];
        d.tap(key("like/post-1"));
        d.set(key("settings/volume"), json!(i));
        if i % 10 == 0 {
            d.comment(key("comments/post-1"), format!("comment {i}"));
        }
    }
    let state = converge(&server, &devs.iter().collect::<Vec<_>>()).await;
    assert!(state.writes >= 3, "writes reached the server");
    assert!(state.data.keys.contains_key(&key("comments/post-1")));
    for d in &devs {
        d.shutdown().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn server_restart_mid_burst_loses_nothing_and_applies_nothing_twice() {
    let dir = tempdir("client-restart");
    let server = start(config("127.0.0.1:0"), RedbStore::open(&dir).unwrap())
        .await
        .unwrap();
    let addr = server.addr;
    let url = server.url();
    let phone = device(&url, "phone", "demo-token", None);
    let laptop = device(&url, "laptop", "demo-token", None);
    until(&phone, "connected", |v| {
        v.connection == ConnectionState::Connected
    })
    .await;
    until(&laptop, "connected", |v| {
        v.connection == ConnectionState::Connected
    })
    .await;
    for i in 0..20 {
        phone.set(key(&format!("like/p{}", i % 5)), json!(i % 2 == 0));
        laptop.set(key("settings/volume"), json!(i));
    }
    server.shutdown().await;
    for i in 20..30 {
        phone.set(key(&format!("like/p{}", i % 5)), json!(i % 2 == 0));
    }
    let server = start(config(&addr.to_string()), RedbStore::open(&dir).unwrap())
        .await
        .unwrap();
    let state = converge(&server, &[&phone, &laptop]).await;
    // The newest intent of every key reached the server (intent wins over silence) and
    // every write was applied once: per device and key, the watermark is the newest
    // local revision.
    for (dev, handle) in [("phone", &phone), ("laptop", &laptop)] {
        let view = handle.view();
        for kv in view.keys.iter().filter(|k| k.slot.local_rev > 0) {
            let mark = &state.data.marks[dev][&kv.key];
            assert_eq!(mark.local_rev, kv.slot.local_rev, "{dev} {}", kv.key);
        }
    }
    assert_eq!(
        state.data.head, state.writes,
        "revisions gap-free across the restart"
    );
    phone.shutdown().await;
    laptop.shutdown().await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn offline_intents_coalesce_into_one_request_per_key() {
    let (server, phone) = server_and_connected_phone().await;
    phone.set_online(false);
    until(&phone, "offline", |v| {
        v.connection == ConnectionState::Offline
    })
    .await;
    let frames_before = phone.view().counters.frames_up;
    for _ in 0..5 {
        phone.tap(key("like/post-1"));
    }
    for v in 0..5 {
        phone.set(key("settings/volume"), json!(v));
    }
    until(&phone, "intents shown", |v| {
        v.shown(&key("settings/volume")) == json!(4)
    })
    .await;
    phone.set_online(true);
    let state = converge(&server, &[&phone]).await;
    let view = phone.view();
    assert_eq!(view.counters.requests_by_key[&key("like/post-1")], 1);
    assert_eq!(view.counters.requests_by_key[&key("settings/volume")], 1);
    assert_eq!(state.writes, 2);
    assert_eq!(
        view.counters.frames_up,
        frames_before + 2,
        "a hello, then both writes in one batch"
    );
    phone.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_token_ends_in_auth_failed_without_a_retry_loop() {
    let server = start(config("127.0.0.1:0"), MemoryStore::default())
        .await
        .unwrap();
    let phone = device(&server.url(), "phone", "wrong-token", None);
    let view = until(&phone, "auth failed", |v| {
        v.connection == ConnectionState::AuthFailed
    })
    .await;
    assert_eq!(view.connection, ConnectionState::AuthFailed);
    phone.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_device_restart_keeps_unacknowledged_intents_and_sends_them() {
    let dir = tempdir("client-device-restart");
    let file = dir.join("phone.json");
    let server = start(config("127.0.0.1:0"), MemoryStore::default())
        .await
        .unwrap();
    let phone = device(&server.url(), "phone", "demo-token", Some(file.clone()));
    until(&phone, "connected", |v| {
        v.connection == ConnectionState::Connected
    })
    .await;
    phone.set_online(false);
    phone.set(key("settings/display_name"), json!("Ana"));
    phone.tap(key("like/post-1"));
    until(&phone, "intents shown", |v| {
        v.shown(&key("like/post-1")) == json!(true)
    })
    .await;
    phone.shutdown().await; // the process ends with both intents unsent
    assert!(file.exists(), "the snapshot was written");
    assert_eq!(server.inspect("demo").await.writes, 0);

    let phone = device(&server.url(), "phone", "demo-token", Some(file.clone()));
    let state = converge(&server, &[&phone]).await;
    assert_eq!(
        state.data.keys[&key("settings/display_name")].value,
        json!("Ana")
    );
    assert_eq!(state.data.keys[&key("like/post-1")].value, json!(true));
    phone.shutdown().await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_corrupt_snapshot_is_kept_aside_and_the_device_starts_fresh() {
    let dir = tempdir("client-corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("phone.json");
    std::fs::write(&file, "{ not a snapshot").unwrap();
    let server = start(config("127.0.0.1:0"), MemoryStore::default())
        .await
        .unwrap();
    let phone = device(&server.url(), "phone", "demo-token", Some(file.clone()));
    until(&phone, "connected", |v| {
        v.connection == ConnectionState::Connected
    })
    .await;
    assert!(
        dir.join("phone.json.corrupt").exists(),
        "the old file is kept"
    );
    phone.shutdown().await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_connection_lost_after_the_commit_but_before_the_ack_applies_the_write_once() {
    let (server, phone) = server_and_connected_phone().await;
    server
        .link("demo", "phone", Fault::Hold(Direction::Down, true))
        .await
        .unwrap();
    phone.set(Key::Volume, json!(80));
    // The server commits and queues the ack and the echo on the held link.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.queued("demo", "phone").await.1 < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ack never queued"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(
        server.inspect("demo").await.writes,
        1,
        "committed before the ack left"
    );
    // The ack is lost, and the connection with it.
    server
        .link("demo", "phone", Fault::Drop(Direction::Down, 1))
        .await
        .unwrap();
    // Holds belong to the device and would hold its next connection too: lift it.
    server
        .link("demo", "phone", Fault::Hold(Direction::Down, false))
        .await
        .unwrap();
    let state = converge(&server, &[&phone]).await;
    let view = phone.view();
    assert_eq!(state.writes, 1, "applied once");
    assert_eq!(
        view.counters.requests_by_key[&Key::Volume],
        2,
        "resent after reconnecting"
    );
    let kv = view.key(&Key::Volume).unwrap();
    assert_eq!(
        (kv.slot.shown.clone(), kv.known_rev),
        (json!(80), 1),
        "confirmed"
    );
    phone.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_reconnecting_device_says_when_it_tries_next() {
    // Nothing listens on this port (the server is stopped).
    let server = start(config("127.0.0.1:0"), MemoryStore::default())
        .await
        .unwrap();
    let url = server.url();
    server.shutdown().await;
    let phone = device(&url, "phone", "demo-token", None);
    let view = until(&phone, "reconnecting", |v| {
        matches!(v.connection, ConnectionState::Reconnecting { .. })
    })
    .await;
    let next = view.next_try_at().expect("a next attempt is scheduled");
    let ahead = next.saturating_sub(phone.clock());
    assert!(
        ahead <= Duration::from_secs(10),
        "backoff is capped at 10 s: {ahead:?}"
    );
    phone.shutdown().await;
}

#[tokio::test]
async fn the_first_subscriber_sees_every_event_from_the_start() {
    let server = start(config("127.0.0.1:0"), MemoryStore::default())
        .await
        .unwrap();
    let d = device(&server.url(), "phone", "demo-token", None);
    until(&d, "connected", |v| {
        v.connection == ConnectionState::Connected
    })
    .await;
    // Subscribed only now, after the device connected.
    let mut events = d.subscribe();
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e.kind.to_string());
    }
    assert_eq!(
        seen[..3],
        [
            "connection: connecting",
            "connection: handshaking",
            "connection: connected"
        ],
        "{seen:?}"
    );
    // A later subscriber starts from now.
    assert!(d.subscribe().try_recv().is_err());
    d.shutdown().await;
    server.shutdown().await;
}
