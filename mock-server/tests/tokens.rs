//! Token rotation over real sockets on 127.0.0.1 (PROTOCOL.md, "Re-authenticating an open
//! connection"): the admin socket's `rotate_token`, `token_expired` and the refusals it
//! brings, `auth`/`authed`, the grace period's 4401, a rotation that survives a restart of
//! the process, and a live device that re-authenticates from its token source and loses
//! nothing.

use mock_server::core::store::MemoryStore;
use mock_server::net::{ServerConfig, start};
use mock_server::redb_store::RedbStore;
use serde_json::{Value, json};
use sync_core::engine::TokenState;
use sync_core::protocol::Key;

mod support;
use support::*;

#[tokio::test]
async fn a_rotation_refuses_writes_until_auth_with_the_new_token() {
    let s = server_with_admin().await;
    let mut admin = admin(&s).await;
    let mut phone = connect(&s).await;
    hello(&mut phone, "demo-token", "phone", 0).await;
    send(
        &mut admin,
        json!({"cmd":"rotate_token","user":"demo","token":"t2"}),
    )
    .await;
    assert_eq!(recv(&mut admin).await, json!({"ok":true}));
    let e = recv(&mut phone).await;
    assert_eq!(
        (&e["type"], &e["code"]),
        (&json!("error"), &json!("token_expired"))
    );
    assert!(e.get("id").is_none());
    send(
        &mut phone,
        json!({"type":"set","id":1,"key":"like/a","value":true,"local_rev":1}),
    )
    .await;
    let r = recv(&mut phone).await;
    assert_eq!(
        (&r["type"], &r["code"], &r["current"]),
        (&json!("reject"), &json!("token_expired"), &Value::Null)
    );
    send(&mut phone, json!({"type":"auth","id":2,"token":"t2"})).await;
    assert_eq!(recv(&mut phone).await, json!({"type":"authed","id":2}));
    send(
        &mut phone,
        json!({"type":"set","id":3,"key":"like/a","value":true,"local_rev":1}),
    )
    .await;
    let ack = recv(&mut phone).await;
    assert_eq!((&ack["type"], &ack["rev"]), (&json!("ack"), &json!(1)));
    // The same token again is refused; an unknown one closes the connection 4401.
    send(
        &mut admin,
        json!({"cmd":"rotate_token","user":"demo","token":"demo-token"}),
    )
    .await;
    assert_eq!(recv(&mut admin).await["ok"], false);
    recv(&mut phone).await; // the own echo
    send(&mut phone, json!({"type":"auth","id":4,"token":"nope"})).await;
    assert_eq!(recv(&mut phone).await["code"], "unauthorized");
    assert_eq!(close_code(&mut phone).await, 4401);
    s.shutdown().await;
}

#[tokio::test]
async fn a_rotation_survives_a_restart_of_the_process() {
    let dir = std::env::temp_dir().join(format!("sync-lab-rotation-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = || ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    let s = start(config(), RedbStore::open(&dir).unwrap())
        .await
        .unwrap();
    s.rotate_token("demo", "t2").await.unwrap();
    s.shutdown().await;
    let s = start(config(), RedbStore::open(&dir).unwrap())
        .await
        .unwrap();
    let mut old = connect(&s).await;
    let e = hello(&mut old, "demo-token", "phone", 0).await;
    assert_eq!(
        e["code"], "token_expired",
        "not `unauthorized`: refresh, don't give up"
    );
    assert_eq!(close_code(&mut old).await, 4401);
    let mut new = connect(&s).await;
    assert_eq!(hello(&mut new, "t2", "phone", 0).await["type"], "welcome");
    s.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_live_device_reauthenticates_from_its_token_source_and_loses_nothing() {
    let s = start(ServerConfig::default(), MemoryStore::default())
        .await
        .unwrap();
    let phone = live_device(&s, "phone");
    until(&phone, "connected", |v| {
        v.connection == sync_core::engine::connection::ConnectionState::Connected
    })
    .await;
    s.rotate_token("demo", "t2").await.unwrap();
    until(&phone, "the expiry", |v| v.token == TokenState::Expired).await;
    let like = Key::parse("like/post-1").unwrap();
    phone.tap(like.clone());
    let view = until(&phone, "the tap shown", |v| v.shown(&like) == json!(true)).await;
    assert!(view.has_pending(), "it waits for a token");
    phone.set_token("t2");
    until(&phone, "the write stored", |v| {
        v.token == TokenState::Valid
            && !v.has_pending()
            && v.key(&like).is_some_and(|k| k.known_rev == 1)
    })
    .await;
    let state = s.inspect("demo").await;
    assert_eq!(state.writes, 1);
    assert_eq!(phone.view().counters.rollbacks, 0);
    phone.shutdown().await;
    s.shutdown().await;
}
