//! PROTOCOL.md's "Exposure and resource limits", over real sockets on 127.0.0.1: one
//! client never stalls another, held pushes are not a slow reader and held frames on the
//! way up are bounded, idleness by arrival, the byte bound (and the large `welcome` it
//! lets through), the connection cap, `Origin`, guessing tokens, a malformed upgrade,
//! invalid UTF-8, step 2's strict JSON, the rate limit's two sides (sustained and in
//! bursts), and shutdown.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mock_server::core::store::MemoryStore;
use mock_server::link::{Direction, Fault};
use mock_server::net::{ServerConfig, ServerHandle, StartError, check_exposure, start};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

mod support;
use support::*;

async fn server_with(config: ServerConfig) -> ServerHandle {
    start(config, MemoryStore::default()).await.unwrap()
}

/// Ana's phone, connected to a server whose queues hold `queue_bytes`, with its link held
/// in `dir`.
async fn ana_with_a_held_phone(queue_bytes: usize, dir: Direction) -> (ServerHandle, Ws) {
    let s = server_with(ServerConfig {
        max_queue_bytes: queue_bytes,
        ..users(&[("ana", "ta")])
    })
    .await;
    let mut phone = connect(&s).await;
    hello(&mut phone, "ta", "phone", 0).await;
    s.link("ana", "phone", Fault::Hold(dir, true))
        .await
        .unwrap();
    (s, phone)
}

fn users(list: &[(&str, &str)]) -> ServerConfig {
    ServerConfig {
        tokens: list
            .iter()
            .map(|(user, token)| (token.to_string(), user.to_string()))
            .collect(),
        ..ServerConfig::default()
    }
}

/// Ana's third device reads nothing while her other two post long comments (each push
/// carries the post's whole list, up to ~30 KB): the stuck device's socket fills, then its
/// queue passes its byte bound (1 MiB here, in far fewer than 1024 frames) and it is
/// closed. All the while Bo, another user, pings: every round trip stays short. (Before,
/// the core waited up to a second for any congested queue, and everyone's pings with it.)
#[tokio::test]
async fn a_client_that_stops_reading_never_slows_another_users_pings() {
    let s = server_with(ServerConfig {
        max_queue_bytes: 1 << 20,
        ..users(&[("ana", "ta"), ("bo", "tb")])
    })
    .await;
    let _stuck = stuck_client(&s, "ta", "stuck").await;
    let mut bo = connect(&s).await;
    hello(&mut bo, "tb", "bo-phone", 0).await;
    let writers: Vec<_> = ["w1", "w2"]
        .into_iter()
        .map(|device| {
            let url = s.url();
            tokio::spawn(async move {
                let mut ws = connect_async(url).await.unwrap().0;
                hello(&mut ws, "ta", device, 0).await;
                let text = "c".repeat(280);
                for i in 1..=300u64 {
                    add_comment(&mut ws, i, &format!("comments/{device}-{}", i % 3), &text).await;
                }
            })
        })
        .collect();
    let mut round_trips = Vec::new();
    let mut id = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut closed = false;
    while !writers.iter().all(|w| w.is_finished()) || !closed {
        assert!(
            Instant::now() < deadline,
            "the stuck device was never closed"
        );
        id += 1;
        let sent = Instant::now();
        send(&mut bo, json!({"type":"ping","id":id})).await;
        assert_eq!(recv(&mut bo).await, json!({"type":"pong","id":id}));
        round_trips.push(sent.elapsed());
        closed = !s
            .inspect("ana")
            .await
            .devices
            .contains(&"stuck".to_string());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for w in writers {
        w.await.unwrap();
    }
    round_trips.sort();
    let p99 = round_trips[round_trips.len() * 99 / 100];
    println!(
        "{} pings while ana's device was stuck: p50 {:?}, p99 {p99:?}, max {:?}",
        round_trips.len(),
        round_trips[round_trips.len() / 2],
        round_trips.last().unwrap()
    );
    assert!(round_trips.len() >= 20, "{round_trips:?}");
    assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");
    assert_eq!(
        s.inspect("ana").await.writes,
        600,
        "every write of ana's was served"
    );
    s.shutdown().await;
}

/// A tester holds the pushes to Ana's phone on its down link while her laptop posts long
/// comments. The held frames count against the phone's byte bound (1 MiB here) but are not
/// the phone's doing: past half the bound it is still read and every ping of its is
/// answered, and when the held frames overflow the bound it is closed `resync` (4009).
/// (Before, it stopped being read at half the bound: its pings went unanswered, and with
/// no more pushes it was closed as idle, 4408, 30 s later.)
#[tokio::test]
async fn a_device_whose_pushes_are_held_is_still_read_until_its_queue_overflows() {
    let (s, mut phone) = ana_with_a_held_phone(1 << 20, Direction::Down).await;
    let mut laptop = connect(&s).await;
    hello(&mut laptop, "ta", "laptop", 0).await;
    let text = "c".repeat(280);
    let mut most_held = 0;
    // Two posts, so that neither reaches its 100 comments before the bound (each push
    // carries its post's whole list: about 120 comments in all fill 1 MiB).
    for id in 1.. {
        assert!(id < 200, "the phone's queue never overflowed");
        add_comment(&mut laptop, id, &format!("comments/post-{}", id % 2), &text).await;
        most_held = most_held.max(s.queued("ana", "phone").await.1);
        send(&mut phone, json!({"type":"ping","id":id})).await;
        let answer = recv(&mut phone).await;
        if answer != json!({"type":"pong","id":id}) {
            assert_eq!(answer["code"], "resync", "{answer}");
            assert_eq!(close_code(&mut phone).await, 4009);
            break;
        }
    }
    // The bound was reached by the held pushes, not by anything else.
    assert!(most_held >= 30, "{most_held} pushes held at most");
    s.shutdown().await;
}

/// A tester holds Ana's phone's up link while the phone sends 200 frames of about 1 KB:
/// the link holds at most the queue's byte bound (64 KiB here) of them, and the rest wait
/// unread in the socket. When the hold ends, every frame is answered: nothing was lost.
/// (Before, the up link held whatever the client sent, with no bound.)
#[tokio::test]
async fn frames_held_on_the_up_link_are_bounded_and_none_is_lost() {
    let (s, mut phone) = ana_with_a_held_phone(64 << 10, Direction::Up).await;
    let name = "n".repeat(1000);
    let frame = |id: u64| {
        json!({"type":"set","id":id,"key":"like/a","value":true,"local_rev":id,"pad":name})
            .to_string()
    };
    for id in 1..=200u64 {
        phone.feed(Message::text(frame(id))).await.unwrap();
    }
    phone.flush().await.unwrap();
    // About 60 frames fill 64 KiB (the frame that crosses it is the last one read); the
    // link never holds more than that.
    let bound = (64 << 10) / frame(1).len() + 1;
    // Until it is (nearly) full, and 100 looks after that, it never holds more.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut reached, mut looks_after) = (0, 0);
    while looks_after < 100 {
        let held = s.queued("ana", "phone").await.0;
        assert!(
            held <= bound,
            "{held} frames held on the up link, over {bound}"
        );
        reached = reached.max(held);
        if reached + 2 >= bound {
            looks_after += 1;
        }
        assert!(Instant::now() < deadline, "the up link held only {reached}");
    }
    s.link("ana", "phone", Fault::Hold(Direction::Up, false))
        .await
        .unwrap();
    let mut answered = std::collections::BTreeSet::new();
    while answered.len() < 200 {
        let f = recv(&mut phone).await;
        // Each is a `bad_message` (its `pad` field is not the protocol's): small answers,
        // so that the phone's own 64 KiB queue takes all 200.
        assert_eq!(
            (&f["type"], &f["code"]),
            (&json!("error"), &json!("bad_message")),
            "{f}"
        );
        answered.insert(f["id"].as_u64().unwrap());
    }
    assert_eq!(answered.last(), Some(&200));
    s.shutdown().await;
}

/// The byte bound does not count the frame being written: a `welcome` larger than the
/// whole bound (64 KiB here) still goes out whole, and the device is served after it.
#[tokio::test]
async fn a_welcome_larger_than_the_byte_bound_still_goes_out() {
    let bound = 64 << 10;
    let s = server_with(ServerConfig {
        max_queue_bytes: bound,
        ..users(&[("ana", "ta")])
    })
    .await;
    let mut laptop = connect(&s).await;
    hello(&mut laptop, "ta", "laptop", 0).await;
    let text = "c".repeat(280);
    for id in 1..=240u64 {
        add_comment(&mut laptop, id, &format!("comments/p{}", id % 4), &text).await;
    }
    let mut phone = connect(&s).await;
    send(
        &mut phone,
        json!({"type":"hello","protocol":1,"token":"ta","device_id":"phone","since":0}),
    )
    .await;
    let welcome = match tokio::time::timeout(Duration::from_secs(5), phone.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => t,
        other => panic!("expected the welcome, got {other:?}"),
    };
    assert!(welcome.len() > bound, "{} bytes", welcome.len());
    let welcome: serde_json::Value = serde_json::from_str(&welcome).unwrap();
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["changes"].as_array().unwrap().len(), 4);
    send(&mut phone, json!({"type":"ping","id":1})).await;
    assert_eq!(recv(&mut phone).await, json!({"type":"pong","id":1}));
    s.shutdown().await;
}

/// 200 connections, one user each, each sending 100 writes at once and reading what it
/// is sent: every write is answered and no connection is closed, in particular none as
/// idle (4408) while the core was busy with the others.
#[tokio::test]
async fn two_hundred_connections_writing_at_once_are_all_answered_none_idles_out() {
    const USERS: usize = 200;
    const DEVICES: usize = 1;
    const WRITES: u64 = 100;
    let names: Vec<(String, String)> = (0..USERS)
        .map(|u| (format!("u{u}"), format!("t{u}")))
        .collect();
    let list: Vec<(&str, &str)> = names
        .iter()
        .map(|(u, t)| (u.as_str(), t.as_str()))
        .collect();
    let s = server_with(users(&list)).await;
    let mut clients = Vec::new();
    for (_, token) in &names {
        for d in 0..DEVICES {
            let mut ws = connect(&s).await;
            hello(&mut ws, token, &format!("d{d}"), 0).await;
            clients.push(ws);
        }
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|ws| {
            tokio::spawn(async move {
                let (mut tx, mut rx) = ws.split();
                let frames: Vec<Message> = (1..=WRITES)
                    .map(|i| {
                        let v = json!({"type":"set","id":i,"key":format!("like/p{}", i % 10),"value":i % 2 == 0,"local_rev":i});
                        Message::text(v.to_string())
                    })
                    .collect();
                let mut answered = 0;
                let mut pushes = 0;
                let reading = async {
                    while answered < WRITES || pushes < WRITES * DEVICES as u64 {
                        let msg = tokio::time::timeout(Duration::from_secs(30), rx.next())
                            .await
                            .expect("a frame within 30 s");
                        match msg {
                            Some(Ok(Message::Text(t))) => {
                                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                                match v["type"].as_str() {
                                    Some("ack") => answered += 1,
                                    Some("reject") if v["code"] == "rate_limited" => answered += 1,
                                    Some("push") => pushes += 1,
                                    _ => panic!("unexpected {v}"),
                                }
                            }
                            Some(Ok(Message::Close(c))) => panic!("closed: {c:?}"),
                            Some(Ok(_)) => {}
                            other => panic!("ended: {other:?}"),
                        }
                    }
                };
                let writing = async {
                    for f in frames {
                        tx.feed(f).await.unwrap();
                    }
                    tx.flush().await.unwrap();
                };
                tokio::join!(reading, writing);
                (tx, rx)
            })
        })
        .collect();
    // The sockets stay open (the halves are kept) until every device has been checked.
    let mut kept = Vec::new();
    for t in tasks {
        kept.push(t.await.unwrap());
    }
    for (user, _) in &names {
        assert_eq!(
            s.inspect(user).await.devices.len(),
            DEVICES,
            "{user}'s devices still connected"
        );
    }
    drop(kept);
    s.shutdown().await;
}

/// Sockets past `--max-connections` are answered 503; once one closes, there is room.
#[tokio::test]
async fn upgrades_beyond_the_connection_cap_get_503() {
    let s = server_with(ServerConfig {
        max_connections: 3,
        ..ServerConfig::default()
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(connect(&s).await);
    }
    match connect_async(s.url()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("expected 503, got {other:?}"),
    }
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.open_connections() >= 3 {
        assert!(
            Instant::now() < deadline,
            "the closed socket was not counted out"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut ws = connect(&s).await;
    hello(&mut ws, "demo-token", "p", 0).await;
    s.shutdown().await;
}

/// A browser page's `Origin` must be allowed; native clients send none.
#[tokio::test]
async fn an_origin_not_allowed_gets_403_and_no_connection() {
    let s = server_with(ServerConfig {
        allow_origins: vec!["http://localhost:5173".into()],
        admin_token: Some("adm".into()),
        ..ServerConfig::default()
    })
    .await;
    let with_origin = |path: &str, origin: &str| {
        let mut req = format!("ws://{}{path}", s.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Origin", HeaderValue::from_str(origin).unwrap());
        req
    };
    for path in ["/sync", "/admin"] {
        match connect_async(with_origin(path, "http://evil.example")).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 403, "{path}")
            }
            other => panic!("{path}: expected 403, got {other:?}"),
        }
    }
    let (mut ws, _) = connect_async(with_origin("/sync", "http://localhost:5173"))
        .await
        .unwrap();
    hello(&mut ws, "demo-token", "web", 0).await;
    let mut native = connect(&s).await;
    hello(&mut native, "demo-token", "native", 0).await;
    s.shutdown().await;
}

/// Guessing: past the limit, an address's `hello` — even with the right token —, an
/// `auth` frame on a connection that was already open, and its admin `auth` are answered
/// `too_many_attempts` and closed 1008.
#[tokio::test]
async fn too_many_failed_token_checks_close_1008_without_checking() {
    let s = server_with(ServerConfig {
        max_auth_failures: 3,
        admin_token: Some("adm".into()),
        ..ServerConfig::default()
    })
    .await;
    let mut early = connect(&s).await;
    hello(&mut early, "demo-token", "early", 0).await;
    // More than 3 failures: the fourth is still checked, the fifth attempt is not.
    for _ in 0..4 {
        let mut ws = connect(&s).await;
        assert_eq!(
            hello(&mut ws, "guess", "p", 0).await["code"],
            "unauthorized"
        );
        assert_eq!(close_code(&mut ws).await, 4401);
    }
    let mut ws = connect(&s).await;
    assert_eq!(
        hello(&mut ws, "demo-token", "p", 0).await["code"],
        "too_many_attempts"
    );
    assert_eq!(close_code(&mut ws).await, 1008);
    send(
        &mut early,
        json!({"type":"auth","id":1,"token":"demo-token"}),
    )
    .await;
    let answer = recv(&mut early).await;
    assert_eq!(answer["code"], "too_many_attempts", "{answer}");
    assert_eq!(close_code(&mut early).await, 1008);
    let (mut admin, _) = connect_async(format!("ws://{}/admin", s.addr))
        .await
        .unwrap();
    send(&mut admin, json!({"cmd":"auth","token":"adm"})).await;
    let answer = recv(&mut admin).await;
    assert_eq!(answer["ok"], false);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("too_many_attempts"),
        "{answer}"
    );
    assert_eq!(
        close_of(&mut admin).await,
        (1008, "too_many_attempts".to_string())
    );
    s.shutdown().await;
}

/// An HTTP request that is not a WebSocket upgrade is answered 400, not hung up on.
#[tokio::test]
async fn a_malformed_upgrade_request_is_answered_400() {
    let s = server_with(ServerConfig::default()).await;
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    tcp.write_all(b"GET /sync HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut answer))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    s.shutdown().await;
}

/// A text frame that is not UTF-8: `error bad_message`, then close 1007.
#[tokio::test]
async fn invalid_utf8_gets_an_error_frame_then_1007() {
    let s = server_with(ServerConfig::default()).await;
    let mut ws = connect(&s).await;
    hello(&mut ws, "demo-token", "p", 0).await;
    // A hand-made frame under tungstenite's feet (which would refuse to send it): FIN and
    // the text opcode, masked as a client's must be, two bytes that are not UTF-8.
    let mask = [1u8, 2, 3, 4];
    let payload = [0xffu8, 0xfe];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    ws.get_mut().write_all(&frame).await.unwrap();
    let error = recv(&mut ws).await;
    assert_eq!(error["code"], "bad_message", "{error}");
    assert_eq!(close_code(&mut ws).await, 1007);
    s.shutdown().await;
}

/// Step 2 over a socket: a repeated key (last-one-wins would make this `ping` a `set`),
/// nesting over 64 levels, a number beyond an f64 and a lone surrogate are each answered
/// `error bad_message` with the frame's `id` and the field named; nothing is written and
/// the connection stays open. A `hello` that repeats a key is a malformed `hello`:
/// `bad_message` and close 4400 (it was `hello_required`).
#[tokio::test]
async fn json_that_step_2_refuses_is_answered_bad_message_naming_the_field() {
    let s = server_with(ServerConfig::default()).await;
    let mut ws = connect(&s).await;
    hello(&mut ws, "demo-token", "p", 0).await;
    let deep = format!("{}true{}", "[".repeat(70), "]".repeat(70));
    for (id, text, field) in [
        (
            1,
            r#"{"type":"ping","id":1,"type":"set","key":"like/a","value":true,"local_rev":1}"#
                .to_string(),
            "key `type` repeated",
        ),
        (
            2,
            format!(r#"{{"type":"set","id":2,"key":"like/a","value":{deep},"local_rev":1}}"#),
            "in `value[0]",
        ),
        (
            3,
            r#"{"type":"set","id":3,"key":"settings/volume","value":1e999,"local_rev":1}"#
                .to_string(),
            "in `value`: number out of range",
        ),
        (
            4,
            r#"{"type":"set","id":4,"key":"settings/display_name","value":"\udead","local_rev":1}"#
                .to_string(),
            "in `value`: lone leading surrogate",
        ),
    ] {
        ws.send(Message::text(text)).await.unwrap();
        let error = recv(&mut ws).await;
        assert_eq!(
            (&error["type"], &error["code"], &error["id"]),
            (&json!("error"), &json!("bad_message"), &json!(id)),
            "{error}"
        );
        assert!(
            error["message"].as_str().unwrap().contains(field),
            "{error}"
        );
    }
    send(&mut ws, json!({"type":"ping","id":5})).await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"type":"pong","id":5}),
        "still open"
    );
    assert_eq!(s.inspect("demo").await.writes, 0, "nothing was written");

    let mut ws = connect(&s).await;
    let repeated = r#"{"type":"hello","protocol":1,"protocol":1,"token":"demo-token","device_id":"q","since":0}"#;
    ws.send(Message::text(repeated)).await.unwrap();
    let error = recv(&mut ws).await;
    assert_eq!(error["code"], "bad_message", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("key `protocol` repeated"),
        "{error}"
    );
    assert_eq!(close_code(&mut ws).await, 4400);
    s.shutdown().await;
}

/// The rate limit's other side: a burst of 600 frames every 2 s is refused in part, but
/// never in 5 consecutive seconds, so the connection is never closed.
#[tokio::test]
async fn bursts_two_seconds_apart_are_limited_but_never_closed() {
    let s = server_with(ServerConfig::default()).await;
    let mut ws = connect(&s).await;
    hello(&mut ws, "demo-token", "p", 0).await;
    let mut limited = 0;
    for burst in 0..5u64 {
        for i in 0..600u64 {
            let id = burst * 1000 + i;
            ws.feed(Message::text(json!({"type":"ping","id":id}).to_string()))
                .await
                .unwrap();
        }
        ws.flush().await.unwrap();
        for _ in 0..600 {
            let f = recv(&mut ws).await;
            match f["type"].as_str() {
                Some("pong") => {}
                Some("error") if f["code"] == "rate_limited" => limited += 1,
                _ => panic!("unexpected {f}"),
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(limited >= 500, "each burst was refused in part ({limited})");
    send(&mut ws, json!({"type":"ping","id":1})).await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"type":"pong","id":1}),
        "still open"
    );
    s.shutdown().await;
}

/// The rate limit's sustained side: 300 frames a second drain the bucket (400 tokens,
/// refilled at 200 a second) in about 4 s, and from then on frames are refused in every
/// second, so the connection is closed 1008 as soon as a fifth consecutive second has
/// one: about 4 s after its first refusal. The margins are a second wide either way.
#[tokio::test]
async fn three_hundred_frames_a_second_are_closed_about_four_seconds_after_the_first_refusal() {
    let s = server_with(ServerConfig::default()).await;
    let mut ws = connect(&s).await;
    hello(&mut ws, "demo-token", "p", 0).await;
    let (mut tx, mut rx) = ws.split();
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        for id in (0u64..).step_by(3) {
            tick.tick().await;
            for id in id..id + 3 {
                let ping = json!({"type":"ping","id":id}).to_string();
                if tx.send(Message::text(ping)).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut first_refusal = None;
    let closed = loop {
        let msg = tokio::time::timeout(Duration::from_secs(15), rx.next())
            .await
            .expect("closed within 15 s");
        match msg {
            Some(Ok(Message::Text(t))) => {
                let f: serde_json::Value = serde_json::from_str(&t).unwrap();
                if f["type"] == "error" && f["code"] == "rate_limited" {
                    first_refusal.get_or_insert_with(Instant::now);
                } else {
                    assert_eq!(f["type"], "pong", "{f}");
                }
            }
            Some(Ok(Message::Close(Some(c)))) => {
                assert_eq!(u16::from(c.code), 1008);
                break Instant::now();
            }
            Some(Ok(_)) => {}
            other => panic!("the connection ended without a close: {other:?}"),
        }
    };
    writer.abort();
    let first_refusal = first_refusal.expect("frames were refused before the close");
    let (drained, limited) = (first_refusal - start, closed - first_refusal);
    println!("first refusal after {drained:?}, closed {limited:?} later");
    let second = Duration::from_secs(1);
    assert!(drained > 3 * second && drained < 5 * second, "{drained:?}");
    assert!(limited > 3 * second && limited < 5 * second, "{limited:?}");
    s.shutdown().await;
}

/// Shutdown: a write sent just before is answered, then every connection gets 1001.
#[tokio::test]
async fn shutdown_answers_what_was_sent_then_closes_1001() {
    let s = server_with(ServerConfig::default()).await;
    let mut phone = connect(&s).await;
    hello(&mut phone, "demo-token", "phone", 0).await;
    let mut laptop = connect(&s).await;
    hello(&mut laptop, "demo-token", "laptop", 0).await;
    send(
        &mut phone,
        json!({"type":"set","id":1,"key":"like/a","value":true,"local_rev":1}),
    )
    .await;
    // The frame is read before the shutdown starts; its commit is answered.
    assert_eq!(recv(&mut laptop).await["type"], "push");
    let stopping = tokio::spawn(s.shutdown());
    assert_eq!(recv(&mut phone).await["type"], "ack");
    assert_eq!(recv(&mut phone).await["type"], "push");
    assert_eq!(close_code(&mut phone).await, 1001);
    assert_eq!(close_code(&mut laptop).await, 1001);
    stopping.await.unwrap();
}

/// Beyond loopback the demo token, which anyone can guess, is refused; loopback written
/// as an IPv6-mapped IPv4 address is still loopback.
#[tokio::test]
async fn the_demo_token_is_refused_beyond_loopback() {
    for loopback in ["127.0.0.1:0", "[::1]:0", "[::ffff:127.0.0.1]:0"] {
        let config = ServerConfig {
            addr: loopback.parse().unwrap(),
            ..ServerConfig::default()
        };
        assert!(check_exposure(&config).is_ok(), "{loopback}");
    }
    let config = ServerConfig {
        addr: "0.0.0.0:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    match start(config, MemoryStore::default()).await {
        Err(e @ StartError::DemoTokenExposed(_)) => {
            assert!(e.to_string().contains("--token"), "{e}")
        }
        Ok(_) => panic!("started on 0.0.0.0 with the demo token"),
        Err(e) => panic!("{e}"),
    }
}
