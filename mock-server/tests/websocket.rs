//! The live server over real WebSockets on 127.0.0.1: the handshake and its timeouts,
//! every row of the error table and every step of the write pipeline, ack-before-echo,
//! idempotent resends, catch-up and `reset`, isolation, a concurrent load, a flood, the
//! admin socket and a server restart.
//! Long because each protocol rule is a test over real sockets, in PROTOCOL.md's order.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mock_server::core::store::MemoryStore;
use mock_server::link::{Direction, Fault};
use mock_server::net::{ServerConfig, ServerHandle, start};
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

mod support;
use support::*;

#[tokio::test]
async fn handshake_write_ack_before_echo_and_push_to_the_other_device() {
    let s = server(&[]).await;
    let mut phone = connect(&s).await;
    let mut laptop = connect(&s).await;
    let w = hello(&mut phone, "demo-token", "phone", 0).await;
    assert_eq!(
        w,
        json!({"type":"welcome","user":"demo","rev":0,"changes":[],"reset":false})
    );
    hello(&mut laptop, "demo-token", "laptop", 0).await;
    send(
        &mut phone,
        json!({"type":"set","id":1,"key":"settings/display_name","value":" Ana ","local_rev":1}),
    )
    .await;
    let ack = recv(&mut phone).await;
    assert_eq!(
        ack,
        json!({"type":"ack","id":1,"key":"settings/display_name","value":"Ana","rev":1,"duplicate":false})
    );
    let echo = recv(&mut phone).await;
    assert_eq!(echo["type"], "push", "the ack comes before the own echo");
    let push = recv(&mut laptop).await;
    assert_eq!(
        push,
        json!({"type":"push","key":"settings/display_name","value":"Ana","rev":1,"device_id":"phone","local_rev":1})
    );
    send(&mut phone, json!({"type":"ping","id":2})).await;
    assert_eq!(recv(&mut phone).await, json!({"type":"pong","id":2}));
    s.shutdown().await;
}

#[tokio::test]
async fn bad_token_bad_first_frame_and_bad_protocol_close_the_connection() {
    let s = server(&[]).await;
    let mut ws = connect(&s).await;
    let e = hello(&mut ws, "wrong", "phone", 0).await;
    assert_eq!(e["code"], "unauthorized");
    assert_eq!(close_code(&mut ws).await, 4401);

    let mut ws = connect(&s).await;
    send(&mut ws, json!({"type":"ping","id":1})).await;
    assert_eq!(recv(&mut ws).await["code"], "hello_required");
    assert_eq!(close_code(&mut ws).await, 4400);

    let mut ws = connect(&s).await;
    send(
        &mut ws,
        json!({"type":"hello","protocol":9,"token":"demo-token","device_id":"p","since":0}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["code"], "unsupported_protocol");
    assert_eq!(close_code(&mut ws).await, 4400);
    s.shutdown().await;
}

#[tokio::test]
async fn oversize_frame_is_closed_with_1009_and_binary_is_bad_message() {
    let s = server(&[]).await;
    let mut ws = connect(&s).await;
    hello(&mut ws, "demo-token", "phone", 0).await;
    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    let e = recv(&mut ws).await;
    assert_eq!(e["code"], "bad_message");
    send(&mut ws, json!({"type":"ping","id":1})).await;
    assert_eq!(recv(&mut ws).await["type"], "pong", "still open");
    let big = "x".repeat(70 * 1024);
    let _ = ws
        .send(Message::text(format!(
            r#"{{"type":"ping","id":1,"pad":"{big}"}}"#
        )))
        .await;
    let e = recv(&mut ws).await;
    assert_eq!(e["code"], "too_large");
    assert_eq!(close_code(&mut ws).await, 1009);
    s.shutdown().await;
}

#[tokio::test]
async fn a_newer_connection_of_the_same_device_replaces_the_older() {
    let s = server(&[]).await;
    let mut old = connect(&s).await;
    hello(&mut old, "demo-token", "phone", 0).await;
    let mut new = connect(&s).await;
    assert_eq!(
        hello(&mut new, "demo-token", "phone", 0).await["type"],
        "welcome"
    );
    assert_eq!(recv(&mut old).await["code"], "replaced");
    assert_eq!(close_code(&mut old).await, 4010);
    s.shutdown().await;
}

#[tokio::test]
async fn idempotent_resend_over_a_new_connection_and_isolation() {
    let s = server(&[("ana", "ta"), ("bob", "tb")]).await;
    let mut ana = connect(&s).await;
    let mut bob = connect(&s).await;
    hello(&mut ana, "ta", "phone", 0).await;
    hello(&mut bob, "tb", "phone", 0).await;
    send(&mut ana, json!({"type":"command","id":1,"key":"comments/p","name":"add_comment","args":{"text":"hi"},"local_rev":1})).await;
    let ack = recv(&mut ana).await;
    assert_eq!(ack["rev"], 1);
    drop(ana);
    let mut ana = connect(&s).await;
    let w = hello(&mut ana, "ta", "phone", 0).await;
    assert_eq!(w["changes"].as_array().unwrap().len(), 1, "catch-up");
    send(&mut ana, json!({"type":"command","id":7,"key":"comments/p","name":"add_comment","args":{"text":"hi"},"local_rev":1})).await;
    let dup = recv(&mut ana).await;
    assert_eq!(
        (
            dup["id"].clone(),
            dup["duplicate"].clone(),
            dup["rev"].clone()
        ),
        (json!(7), json!(true), json!(1))
    );
    assert_eq!(dup["value"].as_array().unwrap().len(), 1, "posted once");
    // Bob (another user) saw nothing, and his own writes start at revision 1.
    send(
        &mut bob,
        json!({"type":"set","id":1,"key":"like/x","value":true,"local_rev":1}),
    )
    .await;
    let ack = recv(&mut bob).await;
    assert_eq!(
        (ack["type"].clone(), ack["rev"].clone()),
        (json!("ack"), json!(1))
    );
    s.shutdown().await;
}

#[tokio::test]
async fn load_16_devices_150_writes_each_all_answered_gap_free_and_converged() {
    const DEVICES: usize = 16;
    const WRITES: u64 = 150;
    const WINDOW: usize = 8;
    const TOTAL: u64 = DEVICES as u64 * WRITES;
    let s = server(&[]).await;
    let mut tasks = Vec::new();
    for d in 0..DEVICES {
        let url = s.url();
        tasks.push(tokio::spawn(async move {
            let mut ws = connect_async(url).await.unwrap().0;
            hello(&mut ws, "demo-token", &format!("dev{d}"), 0).await;
            let (mut sink, mut stream) = ws.split();
            // Write while reading, as a real client does: a client that stops reading is
            // closed with 4009 by design. And with at most WINDOW writes unanswered, as a
            // device has (one per key): a client that sends without bound while its user's
            // other devices do the same is sent more than any queue holds, and the server
            // no longer pauses everyone to let it catch up (PROTOCOL.md, "Isolation").
            let window = std::sync::Arc::new(tokio::sync::Semaphore::new(WINDOW));
            let credit = window.clone();
            let writer = tokio::spawn(async move {
                for i in 1..=WRITES {
                    credit.acquire().await.unwrap().forget();
                    let key = format!("like/k{}", i % 8);
                    let v = json!({"type":"set","id":i,"key":key,"value":(i + d as u64).is_multiple_of(2),"local_rev":i});
                    sink.send(Message::text(v.to_string())).await.unwrap();
                }
                sink
            });
            let mut acks = BTreeSet::new();
            let mut latest: BTreeMap<String, (u64, Value)> = BTreeMap::new();
            let mut last_push = 0;
            // Pushes arrive in revision order on each connection: the device has seen
            // every change once it has seen revision TOTAL.
            while acks.len() < WRITES as usize || last_push < TOTAL {
                let msg = tokio::time::timeout(Duration::from_secs(10), stream.next())
                    .await
                    .expect("a frame within 10 s")
                    .expect("open")
                    .expect("valid");
                let Message::Text(t) = msg else { continue };
                let f: Value = serde_json::from_str(&t).unwrap();
                match f["type"].as_str().unwrap() {
                    "ack" => {
                        assert!(acks.insert(f["rev"].as_u64().unwrap()));
                        window.add_permits(1);
                    }
                    "push" => {
                        let rev = f["rev"].as_u64().unwrap();
                        assert!(rev > last_push, "pushes in revision order");
                        last_push = rev;
                        latest.insert(f["key"].as_str().unwrap().to_string(), (rev, f["value"].clone()));
                    }
                    other => panic!("unexpected {other}: {f}"),
                }
            }
            let _sink = writer.await.unwrap();
            (acks, latest)
        }));
    }
    let mut all = BTreeSet::new();
    let mut views = Vec::new();
    for t in tasks {
        let (acks, latest) = t.await.unwrap();
        for rev in &acks {
            assert!(all.insert(*rev), "revision {rev} acknowledged twice");
        }
        views.push(latest);
    }
    assert_eq!(
        all,
        (1..=TOTAL).collect(),
        "every write answered; revisions unique and gap-free"
    );
    let state = s.inspect("demo").await;
    assert_eq!((state.writes, state.data.head), (TOTAL, TOTAL));
    for latest in views {
        for (key, stored) in &state.data.keys {
            assert_eq!(
                latest[&key.to_string()],
                (stored.rev, stored.value.clone()),
                "{key}: converged"
            );
        }
    }
    s.shutdown().await;
}

/// Six writers add long comments (every push carries the post's whole list) while the
/// `stuck` devices, connected before them, read nothing: their socket buffers fill and
/// then their queues overflow (by bytes: pushes this long pass 4 MiB long before 1024
/// frames). Each writer stays under the rate limit's burst
/// (400) and reads everything it is sent. Once the server has forgotten every stuck
/// device, each writer makes 10 more writes (the others go on) and stops. Returns then,
/// with the writers' tasks, each giving how many writes it made.
async fn overflow(s: &ServerHandle, stuck: &[&str]) -> Vec<tokio::task::JoinHandle<u64>> {
    let text = "c".repeat(280);
    let overflowed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..6 {
        let url = s.url();
        let text = text.clone();
        let overflowed = overflowed.clone();
        writers.push(tokio::spawn(async move {
            let mut ws = connect_async(url).await.unwrap().0;
            hello(&mut ws, "demo-token", &format!("w{w}"), 0).await;
            let mut written = 0;
            let mut after_overflow = 0;
            for i in 1..=380u64 {
                if overflowed.load(std::sync::atomic::Ordering::Relaxed) {
                    after_overflow += 1;
                    if after_overflow > 10 {
                        break;
                    }
                }
                add_comment(&mut ws, i, &format!("comments/w{w}-{}", i % 4), &text).await;
                written = i;
            }
            written
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let connected = s.inspect("demo").await.devices;
        if stuck.iter().all(|d| !connected.contains(&d.to_string())) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a stuck device's queue never overflowed: {connected:?} connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    overflowed.store(true, std::sync::atomic::Ordering::Relaxed);
    writers
}

/// Two devices stop reading while others write; both queues overflow. The one that reads
/// again within the grace period is told why (`error resync`, close 4009) after what it
/// had not read; the one that never reads is dropped without a goodbye once the grace
/// period ends (before, its task waited in a blocked write for ever). The others go on.
#[tokio::test]
async fn a_client_that_stops_reading_is_closed_with_4009_or_dropped_and_others_go_on() {
    let s = server(&[]).await;
    let mut slow = connect(&s).await;
    hello(&mut slow, "demo-token", "slow", 0).await;
    let mut mute = connect(&s).await;
    hello(&mut mute, "demo-token", "mute", 0).await;
    let writers = overflow(&s, &["slow", "mute"]).await;
    let mut saw_resync = false;
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(5), slow.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => saw_resync |= t.contains("\"resync\""),
            Ok(Some(Ok(Message::Close(Some(c))))) => break Some(u16::from(c.code)),
            Ok(Some(Ok(_))) => {}
            other => panic!("expected frames then a close, got {other:?}"),
        }
    };
    assert!(saw_resync);
    assert_eq!(code, Some(4009));
    let mut written = 0;
    for w in writers {
        written += w.await.unwrap();
    }
    assert_eq!(
        s.inspect("demo").await.writes,
        written,
        "every write of the others went through"
    );
    drop(slow);
    // Only the mute socket is left, until the grace period ends.
    let limit = mock_server::net::GOODBYE_GRACE + Duration::from_secs(10);
    until_open_connections(&s, 0, limit, "after the grace").await;
    // What the kernel had buffered still arrives, then the end, with no close frame.
    loop {
        match tokio::time::timeout(Duration::from_secs(5), mute.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => assert!(!t.contains("\"resync\""), "{t}"),
            Ok(Some(Ok(Message::Close(c)))) => panic!("no goodbye expected, got {c:?}"),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => break,
            Err(_) => panic!("the dropped socket did not end"),
        }
    }
    s.shutdown().await;
}

/// A server whose device `stuck` reads nothing, and whose write to it is stuck with its
/// queue far from full (a byte bound above what is sent); `writer`, the other device,
/// made the pushes and is still connected. `stuck` pings now and then (it is read, though
/// it reads nothing), so that it is not closed as idle however slow the machine. Returns
/// the server and both sockets.
async fn a_write_stuck_on_a_device_that_reads_nothing() -> (ServerHandle, Ws, Ws) {
    let config = ServerConfig {
        max_queue_bytes: 64 << 20,
        ..ServerConfig::default()
    };
    let s = start(config, MemoryStore::default()).await.unwrap();
    let mut stuck = stuck_client(&s, "demo-token", "stuck").await;
    let mut writer = connect(&s).await;
    hello(&mut writer, "demo-token", "writer", 0).await;
    // Each push carries the post's whole list: 5 posts of 100 comments of 280 characters
    // make about 7 MB of pushes, more than the server's socket buffer can take (4 MiB at
    // most), in 500 frames (the queue holds 1024).
    let text = "c".repeat(280);
    for i in 1..=500u64 {
        add_comment(&mut writer, i, &format!("comments/p{}", i % 5), &text).await;
        if i % 50 == 0 {
            send(&mut stuck, json!({"type":"ping","id":i})).await;
        }
    }
    let state = s.inspect("demo").await;
    assert!(state.devices.contains(&"stuck".to_string()), "no overflow");
    assert_eq!(s.open_connections(), 2);
    (s, stuck, writer)
}

/// Waits until the server holds `n` sockets, failing after `limit`.
async fn until_open_connections(s: &ServerHandle, n: usize, limit: Duration, after: &str) {
    let deadline = tokio::time::Instant::now() + limit;
    while s.open_connections() > n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} socket(s) still open {after}",
            s.open_connections()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A restart is a crash: every socket goes at once, even one stuck writing to a client
/// that reads nothing (no [`GOODBYE_GRACE`]: a restart ends no connection in words).
///
/// [`GOODBYE_GRACE`]: mock_server::net::GOODBYE_GRACE
#[tokio::test]
async fn a_restart_drops_a_connection_stuck_in_a_write_at_once() {
    // Also when the server had closed it, and its grace had begun.
    for closed_first in [false, true] {
        let (s, _stuck, _writer) = a_write_stuck_on_a_device_that_reads_nothing().await;
        if closed_first {
            s.disconnect("demo", "stuck").await.unwrap();
        }
        s.restart().await.unwrap();
        let limit = mock_server::net::GOODBYE_GRACE / 2;
        let after = format!("after the restart (closed first: {closed_first})");
        until_open_connections(&s, 0, limit, &after).await;
        s.shutdown().await;
    }
}

/// When the server closes a connection whose write is stuck (here the admin's
/// `disconnect`; an idle timeout or the rate limit are the same close), the close waits
/// behind frames the client never reads: the socket is dropped once [`GOODBYE_GRACE`] is
/// over. (Before, only a queue overflow ended such a wait: the socket, its task and its
/// place under `--max-connections` were held for as long as the client stayed.)
///
/// [`GOODBYE_GRACE`]: mock_server::net::GOODBYE_GRACE
#[tokio::test]
async fn a_connection_the_server_closed_is_dropped_after_the_grace_if_its_write_is_stuck() {
    let (s, _stuck, _writer) = a_write_stuck_on_a_device_that_reads_nothing().await;
    s.disconnect("demo", "stuck").await.unwrap();
    let t0 = std::time::Instant::now();
    let grace = mock_server::net::GOODBYE_GRACE;
    until_open_connections(
        &s,
        1,
        grace + Duration::from_secs(10),
        "after the disconnect",
    )
    .await;
    // Not before: the grace is what ended it, not the write.
    let waited = t0.elapsed();
    assert!(
        waited >= grace - Duration::from_secs(1),
        "gone after {waited:?}"
    );
    assert_eq!(s.inspect("demo").await.devices, ["writer"]);
    s.shutdown().await;
}

#[tokio::test]
async fn a_held_link_releases_frames_out_of_order() {
    let s = server(&[]).await;
    let mut phone = connect(&s).await;
    let mut laptop = connect(&s).await;
    hello(&mut phone, "demo-token", "phone", 0).await;
    hello(&mut laptop, "demo-token", "laptop", 0).await;
    s.link("demo", "laptop", Fault::Hold(Direction::Down, true))
        .await
        .unwrap();
    for (id, v) in [(1, true), (2, false)] {
        send(
            &mut phone,
            json!({"type":"set","id":id,"key":"like/a","value":v,"local_rev":id}),
        )
        .await;
        assert_eq!(recv(&mut phone).await["type"], "ack");
        recv(&mut phone).await; // own echo
    }
    assert_eq!(s.queued("demo", "laptop").await, (0, 2));
    s.link("demo", "laptop", Fault::Release(Direction::Down, 2))
        .await
        .unwrap();
    assert_eq!(recv(&mut laptop).await["rev"], 2, "the newer push first");
    s.link("demo", "laptop", Fault::Hold(Direction::Down, false))
        .await
        .unwrap();
    assert_eq!(recv(&mut laptop).await["rev"], 1, "then the older one");
    s.shutdown().await;
}

#[tokio::test]
async fn the_admin_socket_controls_faults_for_any_client() {
    let s = server_with_admin().await;
    let admin_url = format!("ws://{}/admin", s.addr);
    // A wrong admin token is refused.
    let mut bad = connect_async(&admin_url).await.unwrap().0;
    send(&mut bad, json!({"cmd":"auth","token":"nope"})).await;
    assert_eq!(recv(&mut bad).await["ok"], false);
    assert_eq!(close_code(&mut bad).await, 4401);

    let mut admin = connect_async(&admin_url).await.unwrap().0;
    send(&mut admin, json!({"cmd":"auth","token":"adm"})).await;
    assert_eq!(recv(&mut admin).await, json!({"ok": true}));
    let mut phone = connect(&s).await;
    hello(&mut phone, "demo-token", "phone", 0).await;

    // What does not exist is an error, not a silent `ok`: a user without a token, a
    // device not connected, a frame not queued.
    for (cmd, says) in [
        (
            json!({"cmd":"inspect","user":"nobody"}),
            "unknown user `nobody`",
        ),
        (
            json!({"cmd":"server_set","user":"nobody","key":"like/a","value":true}),
            "unknown user",
        ),
        (
            json!({"cmd":"reject_next","user":"nobody","key":"like/a"}),
            "unknown user",
        ),
        (
            json!({"cmd":"disconnect","user":"demo","device":"tablet"}),
            "not connected",
        ),
        (
            json!({"cmd":"release","user":"demo","device":"tablet","dir":"down","n":1}),
            "not connected",
        ),
        (
            json!({"cmd":"release","user":"demo","device":"phone","dir":"down","n":1}),
            "no frame 1 in the down queue (0 queued)",
        ),
        (
            json!({"cmd":"drop","user":"demo","device":"phone","dir":"up","n":3}),
            "no frame 3 in the up queue",
        ),
    ] {
        send(&mut admin, cmd.clone()).await;
        let answer = recv(&mut admin).await;
        assert_eq!(answer["ok"], false, "{cmd}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(says),
            "{cmd}: {answer}"
        );
    }

    // Forced rejection (`user` may be left out: the server has one user).
    send(&mut admin, json!({"cmd":"reject_next","key":"like/a"})).await;
    assert_eq!(recv(&mut admin).await["ok"], true);
    send(
        &mut phone,
        json!({"type":"set","id":1,"key":"like/a","value":true,"local_rev":1}),
    )
    .await;
    assert_eq!(recv(&mut phone).await["code"], "forced");

    // Hold the phone's downlink, write, see the queue, release.
    send(
        &mut admin,
        json!({"cmd":"hold","user":"demo","device":"phone","dir":"down","on":true}),
    )
    .await;
    recv(&mut admin).await;
    send(
        &mut phone,
        json!({"type":"set","id":2,"key":"like/a","value":true,"local_rev":2}),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        send(
            &mut admin,
            json!({"cmd":"queued","user":"demo","device":"phone"}),
        )
        .await;
        let q = recv(&mut admin).await;
        if q["down"] == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the ack never queued: {q}"
        );
    }
    send(
        &mut admin,
        json!({"cmd":"release","user":"demo","device":"phone","dir":"down","n":1}),
    )
    .await;
    recv(&mut admin).await;
    assert_eq!(recv(&mut phone).await["type"], "ack");

    // Inspect, and a bad command gets a clear error.
    send(&mut admin, json!({"cmd":"inspect","user":"demo"})).await;
    let state = recv(&mut admin).await;
    assert_eq!(
        (
            state["head"].clone(),
            state["keys"]["like/a"]["value"].clone()
        ),
        (json!(1), json!(true))
    );
    send(&mut admin, json!({"cmd":"explode"})).await;
    let e = recv(&mut admin).await;
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("unknown variant `explode`"),
        "{e}"
    );
    s.shutdown().await;

    // Without an admin token there is no /admin.
    let s = server(&[]).await;
    assert!(
        connect_async(format!("ws://{}/admin", s.addr))
            .await
            .is_err()
    );
    s.shutdown().await;
}

/// With two users, the admin's `reject_next` must name the `user` (left out, it would hit
/// whoever writes the key next), and `inspect` counts each user's writes apart.
#[tokio::test]
async fn with_two_users_reject_next_needs_a_user_and_inspect_counts_each_apart() {
    let config = ServerConfig {
        tokens: [("ta", "ana"), ("tb", "bo")]
            .into_iter()
            .map(|(t, u)| (t.to_string(), u.to_string()))
            .collect(),
        admin_token: Some("adm".into()),
        ..ServerConfig::default()
    };
    let s = start(config, MemoryStore::default()).await.unwrap();
    let mut admin = connect_async(format!("ws://{}/admin", s.addr))
        .await
        .unwrap()
        .0;
    send(&mut admin, json!({"cmd":"auth","token":"adm"})).await;
    assert_eq!(recv(&mut admin).await, json!({"ok": true}));
    send(&mut admin, json!({"cmd":"reject_next","key":"like/a"})).await;
    let answer = recv(&mut admin).await;
    assert_eq!(answer["ok"], false, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("name the `user`: the server has 2 users"),
        "{answer}"
    );
    send(
        &mut admin,
        json!({"cmd":"reject_next","user":"bo","key":"like/a"}),
    )
    .await;
    assert_eq!(recv(&mut admin).await["ok"], true);

    let mut ana = connect(&s).await;
    hello(&mut ana, "ta", "phone", 0).await;
    let mut bo = connect(&s).await;
    hello(&mut bo, "tb", "phone", 0).await;
    for local_rev in 1..=3u64 {
        send(&mut ana, json!({"type":"set","id":local_rev,"key":"like/a","value":local_rev % 2 == 1,"local_rev":local_rev})).await;
        assert_eq!(
            recv(&mut ana).await["type"],
            "ack",
            "ana's writes are not bo's to reject"
        );
        assert_eq!(recv(&mut ana).await["type"], "push", "the ack's echo");
    }
    send(
        &mut bo,
        json!({"type":"set","id":1,"key":"like/a","value":true,"local_rev":1}),
    )
    .await;
    assert_eq!(recv(&mut bo).await["code"], "forced");
    send(
        &mut bo,
        json!({"type":"set","id":2,"key":"like/b","value":true,"local_rev":2}),
    )
    .await;
    assert_eq!(recv(&mut bo).await["type"], "ack");
    for (user, writes) in [("ana", 3), ("bo", 1)] {
        send(&mut admin, json!({"cmd":"inspect","user":user})).await;
        let state = recv(&mut admin).await;
        assert_eq!(state["writes"], writes, "{user}: {state}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn link_settings_belong_to_the_device_and_survive_its_reconnects() {
    let s = server(&[]).await;
    let mut phone = connect(&s).await;
    hello(&mut phone, "demo-token", "phone", 0).await;
    s.link("demo", "phone", Fault::Hold(Direction::Down, true))
        .await
        .unwrap();
    drop(phone);
    let mut phone = connect(&s).await;
    send(
        &mut phone,
        json!({"type":"hello","protocol":1,"token":"demo-token","device_id":"phone","since":0}),
    )
    .await;
    // The remembered hold reaches the new connection before its `welcome`, as in the
    // simulator: the welcome waits in the queue.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let q = s.queued_frames("demo", "phone").await;
        if q.down.first().is_some_and(|f| f.starts_with("welcome")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the welcome was not held: {q:?}"
        );
    }
    s.link("demo", "phone", Fault::Release(Direction::Down, 1))
        .await
        .unwrap();
    assert_eq!(recv(&mut phone).await["type"], "welcome");
    send(
        &mut phone,
        json!({"type":"set","id":1,"key":"like/a","value":true,"local_rev":1}),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let q = s.queued_frames("demo", "phone").await;
        if q.down.iter().any(|f| f.starts_with("ack #1")) {
            assert!(q.down.iter().any(|f| f.starts_with("push like/a")), "{q:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new connection is not held: {q:?}"
        );
    }
    s.shutdown().await;
}

#[tokio::test]
async fn a_flooding_device_is_limited_then_closed_with_1008_and_others_go_on() {
    let s = server(&[]).await;
    let mut laptop = connect(&s).await;
    hello(&mut laptop, "demo-token", "laptop", 0).await;
    let mut flooder = connect(&s).await;
    hello(&mut flooder, "demo-token", "phone", 0).await;
    let (mut tx, mut rx) = flooder.split();
    // The flooder reads everything it is sent (so its queue never overflows: this is about
    // the rate limit, not 4009) and reports what it got until the close.
    let reader = tokio::spawn(async move {
        let (mut acks, mut limited) = (0u64, 0u64);
        let mut last = Value::Null;
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), rx.next())
                .await
                .expect("the flood is closed within 10 s");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    last = v.clone();
                    match (v["type"].as_str(), v["code"].as_str()) {
                        (Some("ack"), _) => acks += 1,
                        (Some("reject"), Some("rate_limited")) => {
                            assert_eq!(v["current"], Value::Null, "{v}");
                            limited += 1;
                        }
                        (Some("error"), Some("rate_limited")) | (Some("push"), _) => {}
                        _ => panic!("unexpected frame {v}"),
                    }
                }
                Some(Ok(Message::Close(Some(c)))) => {
                    // An `error` frame goes before every close.
                    assert_eq!(
                        (last["type"].as_str(), last["id"].as_u64()),
                        (Some("error"), None),
                        "{last}"
                    );
                    assert_eq!(last["code"], "rate_limited");
                    return (acks, limited, u16::from(c.code));
                }
                Some(Ok(_)) => {}
                other => panic!("the connection ended without a close: {other:?}"),
            }
        }
    });
    // About 2,000 frames a second, ten times the refill rate, until the server gives up.
    let writer = tokio::spawn(async move {
        let mut local_rev = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tick.tick().await;
            for _ in 0..20 {
                local_rev += 1;
                let frame = json!({"type":"set","id":local_rev,"key":"like/f","value":local_rev.is_multiple_of(2),"local_rev":local_rev});
                if tx.send(Message::text(frame.to_string())).await.is_err() {
                    return;
                }
            }
        }
    });
    // Meanwhile the laptop's writes are all answered.
    let mut laptop_acks = 0;
    for i in 1..=20u64 {
        send(
            &mut laptop,
            json!({"type":"set","id":i,"key":"settings/volume","value":i,"local_rev":i}),
        )
        .await;
        loop {
            let v = recv(&mut laptop).await;
            if v["type"] == "ack" && v["id"] == i {
                laptop_acks += 1;
                break;
            }
            assert_eq!(v["type"], "push", "the laptop only sees pushes: {v}");
        }
    }
    let (acks, limited, code) = reader.await.unwrap();
    writer.abort();
    assert_eq!(code, 1008, "closed after 5 s of continuous limiting");
    assert!(limited > 1000, "most of the flood was limited ({limited})");
    assert!(
        acks >= 400,
        "the full bucket was served first ({acks} acks)"
    );
    // Nothing acknowledged is lost, and nothing limited was applied.
    let state = s.inspect("demo").await;
    assert_eq!(state.writes, acks + laptop_acks);
    assert_eq!(state.data.head, acks + laptop_acks);
    // The laptop is still connected and served.
    send(&mut laptop, json!({"type":"ping","id":99})).await;
    loop {
        let v = recv(&mut laptop).await;
        if v["type"] == "pong" {
            break;
        }
    }
    s.shutdown().await;
}

#[tokio::test]
async fn admin_restart_drops_every_connection_and_keeps_what_was_acknowledged() {
    let s = server_with_admin().await;
    let mut admin = admin(&s).await;
    let mut phone = connect(&s).await;
    hello(&mut phone, "demo-token", "phone", 0).await;
    send(
        &mut phone,
        json!({"type":"set","id":1,"key":"like/a","value":true,"local_rev":1}),
    )
    .await;
    assert_eq!(recv(&mut phone).await["rev"], 1);
    send(&mut admin, json!({"cmd":"reject_next","key":"like/b"})).await;
    recv(&mut admin).await;

    send(&mut admin, json!({"cmd":"restart"})).await;
    assert_eq!(recv(&mut admin).await, json!({"ok": true}));
    // A crash, not a goodbye: the socket ends with no close frame.
    let end = tokio::time::timeout(Duration::from_secs(5), phone.next())
        .await
        .expect("the connection ends within 5 s");
    assert!(
        !matches!(end, Some(Ok(Message::Close(Some(_))))),
        "no close frame on a restart: {end:?}"
    );

    let mut phone = connect(&s).await;
    let welcome = hello(&mut phone, "demo-token", "phone", 0).await;
    assert_eq!(welcome["rev"], 1, "the acknowledged write survived");
    // The resend is still a duplicate; the forced rejection was forgotten; revisions go on.
    send(
        &mut phone,
        json!({"type":"set","id":2,"key":"like/a","value":true,"local_rev":1}),
    )
    .await;
    let dup = recv(&mut phone).await;
    assert_eq!(
        (
            dup["duplicate"].clone(),
            dup["rev"].clone(),
            dup["value"].clone()
        ),
        (json!(true), json!(1), json!(true))
    );
    send(
        &mut phone,
        json!({"type":"set","id":3,"key":"like/b","value":true,"local_rev":2}),
    )
    .await;
    let ack = recv(&mut phone).await;
    assert_eq!(
        (ack["type"].clone(), ack["rev"].clone()),
        (json!("ack"), json!(2))
    );
    s.shutdown().await;
}

/// The next frame's `(type, code)`, and its `id`.
async fn answer(ws: &mut Ws) -> (String, String, Value) {
    let v = recv(ws).await;
    let code = v["code"].as_str().unwrap_or("").to_string();
    (
        v["type"].as_str().unwrap().to_string(),
        code,
        v["id"].clone(),
    )
}

#[tokio::test]
async fn the_write_pipeline_over_a_socket_rejects_each_step_and_stays_open() {
    let s = server(&[]).await;
    let mut ws = connect(&s).await;
    hello(&mut ws, "demo-token", "phone", 0).await;
    let frames = [
        // Step 2, decoding: every malformed frame is `error bad_message`, with its id when
        // one can be read.
        (r#"not json"#, ("error", "bad_message", Value::Null)),
        (r#"[1,2]"#, ("error", "bad_message", Value::Null)),
        (
            r#"{"type":"shout","id":4}"#,
            ("error", "bad_message", json!(4)),
        ),
        (
            r#"{"type":"set","id":5,"key":"like/a","value":true,"local_rev":1,"extra":1}"#,
            ("error", "bad_message", json!(5)),
        ),
        (
            r#"{"type":"set","id":6,"key":"like/a","value":true,"local_rev":0}"#,
            ("error", "bad_message", json!(6)),
        ),
        (
            r#"{"type":"command","id":7,"key":"comments/p","name":"shout","args":{},"local_rev":1}"#,
            ("error", "bad_message", json!(7)),
        ),
        // Step 3, the key.
        (
            r#"{"type":"set","id":8,"key":"likes/a","value":true,"local_rev":1}"#,
            ("reject", "unknown_key", json!(8)),
        ),
        // Step 4, the value: a wrong type, out of range, a set on a comments key.
        (
            r#"{"type":"set","id":9,"key":"like/a","value":"yes","local_rev":1}"#,
            ("reject", "invalid_value", json!(9)),
        ),
        (
            r#"{"type":"set","id":10,"key":"settings/volume","value":101,"local_rev":1}"#,
            ("reject", "invalid_value", json!(10)),
        ),
        (
            r#"{"type":"set","id":11,"key":"comments/p","value":[],"local_rev":1}"#,
            ("reject", "invalid_value", json!(11)),
        ),
        // Step 5, idempotency: a write applied, then an older local_rev.
        (
            r#"{"type":"set","id":12,"key":"like/a","value":true,"local_rev":5}"#,
            ("ack", "", json!(12)),
        ),
        (
            r#"{"type":"set","id":13,"key":"like/a","value":false,"local_rev":4}"#,
            ("reject", "superseded", json!(13)),
        ),
    ];
    for (frame, (kind, code, id)) in frames {
        ws.send(Message::text(frame)).await.unwrap();
        let got = answer(&mut ws).await;
        assert_eq!(got, (kind.to_string(), code.to_string(), id), "for {frame}");
        if kind == "ack" {
            assert_eq!(recv(&mut ws).await["type"], "push", "own echo");
        }
    }
    // A second hello changes nothing; the connection is still open and the same device.
    send(
        &mut ws,
        json!({"type":"hello","protocol":1,"token":"demo-token","device_id":"other","since":0}),
    )
    .await;
    assert_eq!(
        answer(&mut ws).await,
        ("error".into(), "bad_message".into(), Value::Null)
    );
    send(&mut ws, json!({"type":"ping","id":14})).await;
    assert_eq!(
        answer(&mut ws).await,
        ("pong".into(), String::new(), json!(14))
    );
    assert_eq!(s.inspect("demo").await.devices, ["phone"]);
    s.shutdown().await;
}

#[tokio::test]
async fn a_bad_hello_and_a_late_hello_are_closed_with_4400() {
    let s = server(&[]).await;
    for device in ["server", "has space", ""] {
        let mut ws = connect(&s).await;
        let w = hello(&mut ws, "demo-token", device, 0).await;
        assert_eq!(w["code"], "bad_message", "device id {device:?}");
        assert_eq!(close_code(&mut ws).await, 4400);
    }
    let mut ws = connect(&s).await;
    send(
        &mut ws,
        json!({"type":"hello","protocol":1,"token":"demo-token"}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["code"], "bad_message");
    assert_eq!(close_code(&mut ws).await, 4400);
    // Nothing within 5 s: hello_required, 4400 (the deadline in `recv` is 5 s after this).
    let mut ws = connect(&s).await;
    let v = tokio::time::timeout(Duration::from_secs(8), ws.next())
        .await
        .expect("the server gives up within 5 s")
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(v.to_text().unwrap()).unwrap();
    assert_eq!(v["code"], "hello_required");
    assert_eq!(close_code(&mut ws).await, 4400);
    s.shutdown().await;
}

#[tokio::test]
async fn catch_up_since_a_cursor_and_reset_when_the_cursor_is_ahead() {
    let s = server(&[]).await;
    let mut ws = connect(&s).await;
    hello(&mut ws, "demo-token", "phone", 0).await;
    for (i, key) in ["like/a", "like/b", "like/a"].iter().enumerate() {
        let n = i as u64 + 1;
        send(
            &mut ws,
            json!({"type":"set","id":n,"key":key,"value":n % 2 == 1,"local_rev":n}),
        )
        .await;
        assert_eq!(recv(&mut ws).await["rev"], n);
        recv(&mut ws).await; // own echo
    }
    drop(ws);
    // Since 2: only keys whose rev is above 2 (like/a at 3); like/b (rev 2) is known.
    let mut ws = connect(&s).await;
    let w = hello(&mut ws, "demo-token", "laptop", 2).await;
    assert_eq!(
        (w["rev"].clone(), w["reset"].clone()),
        (json!(3), json!(false))
    );
    let keys: Vec<&str> = w["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["like/a"]);
    drop(ws);
    // A cursor ahead of the server (it lost history): the full state, and `reset`.
    let mut ws = connect(&s).await;
    let w = hello(&mut ws, "demo-token", "laptop", 99).await;
    assert_eq!(w["reset"], true);
    assert_eq!(w["changes"].as_array().unwrap().len(), 2);
    s.shutdown().await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_30_s_with_4408_one_that_pings_is_not() {
    let s = server(&[]).await;
    let mut ws = connect(&s).await;
    hello(&mut ws, "demo-token", "phone", 0).await;
    // WebSocket-level pings are activity too (PROTOCOL.md, "Errors and closes"): a
    // client that sends nothing else outlives the idle timeout.
    let mut pinging = connect(&s).await;
    hello(&mut pinging, "demo-token", "laptop", 0).await;
    let pinger = tokio::spawn(async move {
        let until = tokio::time::Instant::now() + Duration::from_secs(36);
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        while tokio::time::Instant::now() < until {
            tokio::select! {
                _ = tick.tick() => pinging.send(Message::Ping(b"here".to_vec().into())).await.unwrap(),
                msg = pinging.next() => match msg {
                    Some(Ok(Message::Pong(_))) => {}
                    other => panic!("only pongs expected, got {other:?}"),
                },
            }
        }
        send(&mut pinging, json!({"type":"ping","id":1})).await;
        assert_eq!(recv(&mut pinging).await, json!({"type":"pong","id":1}));
    });
    let started = std::time::Instant::now();
    let v = tokio::time::timeout(Duration::from_secs(40), ws.next())
        .await
        .expect("closed within 40 s")
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(v.to_text().unwrap()).unwrap();
    assert_eq!(v["code"], "idle_timeout");
    assert_eq!(close_code(&mut ws).await, 4408);
    assert!(
        started.elapsed() >= Duration::from_secs(29),
        "not before 30 s of silence ({:?})",
        started.elapsed()
    );
    pinger.await.unwrap();
    s.shutdown().await;
}
