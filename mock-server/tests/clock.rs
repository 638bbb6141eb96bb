//! Catching up by clock over a real WebSocket on 127.0.0.1 (PROTOCOL.md, "Catching up by
//! clock"): the server stamps each change with its wall-clock time, and `since_time` gets
//! the keys changed after it; `since` and `since_time` together are a bad `hello`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

mod support;
use support::*;

#[tokio::test]
async fn since_time_reads_the_servers_change_times() {
    let s = server(&[]).await;
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut phone = connect(&s).await;
    hello(&mut phone, "demo-token", "phone", 0).await;
    send(
        &mut phone,
        json!({"type":"set","id":1,"key":"like/a","value":true,"local_rev":1}),
    )
    .await;
    recv(&mut phone).await;
    let welcome = |since_time: u64| json!({"type":"hello","protocol":1,"token":"demo-token","device_id":"laptop","since_time":since_time});
    let mut laptop = connect(&s).await;
    send(&mut laptop, welcome(before.saturating_sub(1000))).await;
    let w = recv(&mut laptop).await;
    assert_eq!(w["changes"][0]["key"], "like/a", "{w}");
    assert_eq!(w["reset"], false);
    let mut late = connect(&s).await;
    send(&mut late, welcome(before + 3_600_000)).await;
    let w = recv(&mut late).await;
    assert_eq!(w["changes"], json!([]), "a clock an hour fast sees nothing");
    assert_eq!(w["rev"], 1);
    let mut both = connect(&s).await;
    send(
        &mut both,
        json!({"type":"hello","protocol":1,"token":"demo-token","device_id":"x","since":0,"since_time":1}),
    )
    .await;
    assert_eq!(recv(&mut both).await["code"], "bad_message");
    assert_eq!(close_code(&mut both).await, 4400);
    s.shutdown().await;
}
