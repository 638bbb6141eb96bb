//! Polling over HTTP on the WebSocket's port, over real sockets on 127.0.0.1 (PROTOCOL.md,
//! "Polling over HTTP, when the WebSocket is unavailable"): `GET /sync/changes`, `POST
//! /sync/write` and every status of its error rows, and the `block_websocket` fault.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::connect_async;

mod support;
use support::*;

/// One HTTP/1.1 request (the socket closed after it): the status and the body.
async fn request(addr: SocketAddr, head: &str, body: &str) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let text = format!(
        "{head}\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(text.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut answer))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

const AUTH: &str = "Authorization: Bearer demo-token\r\nX-Device-Id: phone";

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn changes_and_writes_over_http_and_the_pushes_they_make() {
    let s = server(&[]).await;
    let mut laptop = connect(&s).await;
    hello(&mut laptop, "demo-token", "laptop", 0).await;
    let write = json!({"type":"set","id":1,"key":"like/a","value":true,"local_rev":1});
    let (status, body) = request(
        s.addr,
        &format!("POST /sync/write HTTP/1.1\r\n{AUTH}"),
        &write.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answers = json_of(&body);
    assert_eq!(answers[0]["type"], "ack");
    assert_eq!(
        answers.as_array().unwrap().len(),
        1,
        "HTTP carries no pushes"
    );
    let push = recv(&mut laptop).await;
    assert_eq!(
        (&push["type"], &push["device_id"]),
        (&json!("push"), &json!("phone"))
    );
    let (status, body) = request(
        s.addr,
        &format!("GET /sync/changes?since=0 HTTP/1.1\r\n{AUTH}"),
        "",
    )
    .await;
    assert_eq!(status, 200);
    let welcome = json_of(&body);
    assert_eq!(
        (&welcome["rev"], &welcome["changes"][0]["key"]),
        (&json!(1), &json!("like/a"))
    );
    s.shutdown().await;
}

#[tokio::test]
async fn every_error_row_has_its_status_and_an_error_object() {
    let s = server(&[]).await;
    let cases = [
        (
            "GET /sync/changes?since=0 HTTP/1.1\r\nX-Device-Id: phone",
            401,
            "unauthorized",
        ),
        (
            "GET /sync/changes?since=0 HTTP/1.1\r\nAuthorization: Bearer demo-token\r\nX-Device-Id: no way",
            400,
            "bad_message",
        ),
        (
            &format!("GET /sync/changes?since=x HTTP/1.1\r\n{AUTH}"),
            400,
            "bad_message",
        ),
        (
            &format!("GET /elsewhere HTTP/1.1\r\n{AUTH}"),
            404,
            "bad_message",
        ),
        (
            &format!("PUT /sync/write HTTP/1.1\r\n{AUTH}"),
            405,
            "bad_message",
        ),
        (
            &format!("GET /sync/write HTTP/1.1\r\n{AUTH}"),
            405,
            "bad_message",
        ),
    ];
    for (head, status, code) in cases {
        let (got, body) = request(s.addr, head, "").await;
        assert_eq!(got, status, "{head}: {body}");
        assert_eq!(json_of(&body)["code"], code, "{head}");
    }
    let (status, body) = request(
        s.addr,
        &format!("POST /sync/write HTTP/1.1\r\n{AUTH}"),
        r#"{"type":"ping","id":1}"#,
    )
    .await;
    assert_eq!(
        (status, json_of(&body)["code"].clone()),
        (400, json!("bad_message"))
    );
    // Refused on its `Content-Length`, before a byte of the body is read.
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head =
        format!("POST /sync/write HTTP/1.1\r\nHost: x\r\n{AUTH}\r\nContent-Length: 70000\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut answer))
        .await
        .expect("an answer without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("too_large"), "{answer}");
    s.shutdown().await;
}

/// HTTP's auth schemes are case-insensitive: `bearer` and `BEARER` are `Bearer`; any
/// other scheme is no token at all.
#[tokio::test]
async fn the_bearer_scheme_is_taken_in_any_case() {
    let s = server(&[]).await;
    for (scheme, status) in [("bearer", 200), ("BEARER", 200), ("Basic", 401)] {
        let head = format!(
            "GET /sync/changes?since=0 HTTP/1.1\r\nAuthorization: {scheme} demo-token\r\nX-Device-Id: phone"
        );
        let (got, body) = request(s.addr, &head, "").await;
        assert_eq!(got, status, "{scheme}: {body}");
    }
    s.shutdown().await;
}

/// PROTOCOL.md's "Exposure" rules hold for polling requests too: a request with an
/// `Origin` not allowed gets 403; past the failed-token limit (more than 3 failures
/// here), a request from the same address gets 429 `too_many_attempts` even with the right
/// token.
#[tokio::test]
async fn polling_refuses_a_foreign_origin_403_and_a_guessing_address_429() {
    let config = mock_server::net::ServerConfig {
        max_auth_failures: 3,
        ..Default::default()
    };
    let s = mock_server::net::start(config, mock_server::core::store::MemoryStore::default())
        .await
        .unwrap();
    let changes = format!("GET /sync/changes?since=0 HTTP/1.1\r\n{AUTH}");
    let (status, body) = request(
        s.addr,
        &format!("{changes}\r\nOrigin: http://evil.example"),
        "",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--allow-origin"), "{body}");
    assert_eq!(request(s.addr, &changes, "").await.0, 200);
    for _ in 0..4 {
        let guess = changes.replace("demo-token", "guess");
        let (status, body) = request(s.addr, &guess, "").await;
        assert_eq!(
            (status, json_of(&body)["code"].clone()),
            (401, json!("unauthorized"))
        );
    }
    let (status, body) = request(s.addr, &changes, "").await;
    assert_eq!(
        (status, json_of(&body)["code"].clone()),
        (429, json!("too_many_attempts")),
        "{body}"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn a_device_id_over_its_http_rate_limit_gets_429() {
    // 600 requests pipelined on one connection, written at once: a bucket of 400 that
    // refills 200 a second would need a whole second of serving to answer them all 200,
    // so the test does not depend on how fast this machine opens connections.
    let s = server(&[]).await;
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let one = format!("GET /sync/changes?since=0 HTTP/1.1\r\n{AUTH}\r\nHost: localhost\r\n\r\n");
    let mut all = one.repeat(599);
    all.push_str(&one.replace("Host: localhost", "Host: localhost\r\nConnection: close"));
    tcp.write_all(all.as_bytes()).await.unwrap();
    let mut answers = String::new();
    tokio::time::timeout(Duration::from_secs(20), tcp.read_to_string(&mut answers))
        .await
        .expect("the answers within 20 s")
        .unwrap();
    let statuses: Vec<&str> = answers
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &answers[i + 9..i + 12])
        .collect();
    assert_eq!(statuses.len(), 600);
    assert_eq!(statuses[0], "200");
    assert!(statuses.contains(&"429"), "{:?}", &statuses[390..]);
    assert!(answers.contains("rate_limited"));
    s.shutdown().await;
}

#[tokio::test]
async fn a_blocked_websocket_is_refused_503_and_polling_goes_on() {
    let s = server(&[]).await;
    let mut phone = connect(&s).await;
    hello(&mut phone, "demo-token", "phone", 0).await;
    s.block_websocket(true).await.unwrap();
    assert_eq!(close_code(&mut phone).await, 1001);
    match connect_async(s.url()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("expected 503, got {other:?}"),
    }
    let (status, _) = request(
        s.addr,
        &format!("GET /sync/changes?since=0 HTTP/1.1\r\n{AUTH}"),
        "",
    )
    .await;
    assert_eq!(status, 200, "HTTP stays up");
    s.block_websocket(false).await.unwrap();
    let mut again = connect(&s).await;
    assert_eq!(
        hello(&mut again, "demo-token", "phone", 0).await["type"],
        "welcome"
    );
    s.shutdown().await;
}

/// A live device (the tokio client runtime) behind a blocked WebSocket: it falls back to
/// polling after three refused upgrades, writes with `POST`, learns another device's
/// change from its next `GET`, and goes back to the WebSocket once upgrades work again.
#[tokio::test]
async fn a_live_device_polls_while_the_websocket_is_blocked_and_comes_back() {
    use sync_core::engine::DeviceSettings;
    use sync_core::engine::connection::ConnectionState;
    use sync_core::protocol::Key;

    let s = server(&[]).await;
    s.block_websocket(true).await.unwrap();
    let phone = live_device(&s, "phone");
    phone.configure(DeviceSettings {
        poll_interval: Duration::from_millis(200),
        ..DeviceSettings::default()
    });
    until(&phone, "polling", |v| {
        v.connection == ConnectionState::Polling
    })
    .await;
    let like = Key::parse("like/post-1").unwrap();
    phone.tap(like.clone());
    until(&phone, "the write acknowledged over HTTP", |v| {
        !v.has_pending() && v.key(&like).is_some_and(|k| k.known_rev == 1)
    })
    .await;
    assert_eq!(s.inspect("demo").await.writes, 1);
    // Another device writes over HTTP: the phone learns it from a poll.
    let write = json!({"type":"set","id":1,"key":"settings/volume","value":7,"local_rev":1});
    let laptop = "Authorization: Bearer demo-token\r\nX-Device-Id: laptop";
    let (status, body) = request(
        s.addr,
        &format!("POST /sync/write HTTP/1.1\r\n{laptop}"),
        &write.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    until(&phone, "the laptop's change polled", |v| {
        v.shown(&Key::Volume) == json!(7) && v.cursor == 2
    })
    .await;
    assert!(phone.view().counters.frames_up >= 3, "polls and a write");
    // The way back: the next WebSocket attempt (at most 10 s of backoff away) succeeds.
    s.block_websocket(false).await.unwrap();
    let mut views = phone.watch();
    tokio::time::timeout(Duration::from_secs(30), async {
        while views.borrow_and_update().connection != ConnectionState::Connected {
            views.changed().await.unwrap();
        }
    })
    .await
    .expect("back on the WebSocket within 30 s");
    phone.shutdown().await;
    s.shutdown().await;
}
