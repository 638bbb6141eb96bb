//! Durability with the real binary: write, SIGKILL at a seeded point, restart on the same
//! data directory; every acknowledged write must be there, revisions must continue
//! without reuse, and resends must still be recognised as duplicates.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sync_core::rng::Rng;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

const ROUNDS: u64 = 20;
const BUDGET: Duration = Duration::from_secs(30);

/// Starts the binary on a free port and returns it with its URL.
fn start(dir: &std::path::Path) -> (Child, String) {
    start_with(dir, &[])
}

/// [`start`], with more arguments.
fn start_with(dir: &std::path::Path, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-server"))
        .args(["--addr", "127.0.0.1:0", "--data"])
        .arg(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the mock-server binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    (child, url)
}

/// An acknowledged write: key, local_rev, rev, stored value.
type Acked = (String, u64, u64, Value);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let seed: u64 = std::env::var("DURABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(42);
    let dir = std::env::temp_dir().join(format!("sync-lab-durability-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut acked: Vec<Acked> = Vec::new();
    let mut local_rev = 0u64;
    let mut max_rev = 0u64;
    let mut last_sent: std::collections::HashMap<String, u64> = Default::default();
    for round in 0..ROUNDS {
        assert!(
            started.elapsed() < BUDGET,
            "seed {seed}: over the time budget"
        );
        let (mut child, url) = start(&dir);
        let mut ws = connect_async(&url).await.unwrap().0;
        ws.send(Message::text(
            json!({"type":"hello","protocol":1,"token":"demo-token","device_id":"phone","since":0})
                .to_string(),
        ))
        .await
        .unwrap();
        let welcome = next_json(&mut ws).await;
        // Everything acknowledged before is there, with at least its revision.
        let head = welcome["rev"].as_u64().unwrap();
        assert!(
            head >= max_rev,
            "seed {seed} round {round}: head {head} < acked {max_rev}"
        );
        let changes = welcome["changes"].as_array().unwrap();
        for (key, _, rev, _) in &acked {
            let c = changes.iter().find(|c| c["key"] == *key.as_str());
            let c = c.unwrap_or_else(|| panic!("seed {seed} round {round}: {key} lost"));
            assert!(
                c["rev"].as_u64().unwrap() >= *rev,
                "seed {seed}: {key} went back"
            );
        }
        // A resend of an acknowledged write is still a duplicate — for a write that is the
        // newest sent for its key (a later, unacknowledged one may have been committed
        // before the kill, and then `superseded` is the right answer).
        let newest = acked
            .iter()
            .rev()
            .find(|(key, lr, ..)| last_sent.get(key) == Some(lr))
            .cloned();
        if let Some((key, lr, rev, value)) = newest {
            ws.send(Message::text(
                json!({"type":"set","id":1,"key":key,"value":value,"local_rev":lr}).to_string(),
            ))
            .await
            .unwrap();
            let dup = next_answer(&mut ws, 1).await;
            assert_eq!(dup["duplicate"], true, "seed {seed} round {round}: {dup}");
            assert_eq!(dup["rev"].as_u64(), Some(rev));
        }
        // Write a seeded number of times, then kill at a seeded point — sometimes with
        // writes still in flight.
        let writes = 1 + rng.up_to(30);
        let pipelined = rng.chance(0.5);
        let mut sent = Vec::new();
        for i in 0..writes {
            local_rev += 1;
            let key = format!("like/k{}", rng.up_to(5));
            let value = json!(local_rev.is_multiple_of(2));
            let id = 100 + i;
            ws.send(Message::text(
                json!({"type":"set","id":id,"key":key,"value":value,"local_rev":local_rev})
                    .to_string(),
            ))
            .await
            .unwrap();
            last_sent.insert(key.clone(), local_rev);
            sent.push((id, key, local_rev, value));
            if !pipelined {
                let (id, key, lr, value) = sent.pop().unwrap();
                let ack = next_answer(&mut ws, id).await;
                let rev = ack["rev"].as_u64().unwrap();
                assert!(
                    rev > max_rev,
                    "seed {seed}: revision {rev} reused (max {max_rev})"
                );
                max_rev = rev;
                acked.push((key, lr, rev, value));
            }
        }
        if pipelined {
            // Read a seeded number of acks, then kill with the rest in flight.
            let read = rng.up_to(sent.len() as u64) as usize;
            for (id, key, lr, value) in sent.drain(..read) {
                let ack = next_answer(&mut ws, id).await;
                let rev = ack["rev"].as_u64().unwrap();
                assert!(rev > max_rev, "seed {seed}: revision {rev} reused");
                max_rev = rev;
                acked.push((key, lr, rev, value));
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Unacknowledged writes may or may not have been committed; either is fine, but
        // their revisions count: the next round's head is checked against acked ones only.
        if let Some(last) = sent.last() {
            local_rev = local_rev.max(last.2);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "seed {seed}: {} acknowledged writes over {ROUNDS} kills in {:.1?}",
        acked.len(),
        started.elapsed()
    );
}

async fn next_json<S>(ws: &mut S) -> Value
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("open")
            .expect("valid");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// The ack (or reject) with this id, skipping pushes.
async fn next_answer<S>(ws: &mut S, id: u64) -> Value
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let f = next_json(ws).await;
        if f["id"] == id {
            assert_eq!(f["type"], "ack", "{f}");
            return f;
        }
    }
}

/// SIGTERM and Ctrl-C (SIGINT): the binary closes every connection with 1001, then exits
/// 0. A write sent just before the signal is acknowledged or not, but if it was, it is
/// there after a restart.
#[tokio::test]
async fn sigterm_and_ctrl_c_close_every_connection_1001_and_exit_0() {
    for signal in ["TERM", "INT"] {
        let dir = std::env::temp_dir().join(format!("sync-lab-sig{signal}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut child, url) = start(&dir);
        let hello =
            json!({"type":"hello","protocol":1,"token":"demo-token","device_id":"p","since":0});
        let mut ws = connect_async(&url).await.unwrap().0;
        ws.send(Message::text(hello.to_string())).await.unwrap();
        assert_eq!(next_json(&mut ws).await["type"], "welcome");
        let write = json!({"type":"set","id":1,"key":"like/a","value":true,"local_rev":1});
        ws.send(Message::text(write.to_string())).await.unwrap();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let (close, acked) = tokio::time::timeout(Duration::from_secs(5), async {
            let mut acked = false;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(Some(c)))) => return (u16::from(c.code), acked),
                    Some(Ok(Message::Text(t))) => acked |= t.contains(r#""type":"ack""#),
                    Some(Ok(_)) => continue,
                    other => panic!("SIG{signal}: expected a close frame, got {other:?}"),
                }
            }
        })
        .await
        .expect("a close within 5 s");
        assert_eq!(close, 1001, "SIG{signal}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let code = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status.code();
            }
            assert!(
                Instant::now() < deadline,
                "still running 10 s after SIG{signal}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(code, Some(0), "SIG{signal}");
        if acked {
            let (mut child, url) = start(&dir);
            let mut ws = connect_async(&url).await.unwrap().0;
            ws.send(Message::text(hello.to_string())).await.unwrap();
            let welcome = next_json(&mut ws).await;
            assert_eq!(
                welcome["rev"], 1,
                "SIG{signal}: the acknowledged write: {welcome}"
            );
            child.kill().unwrap();
            child.wait().unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// An empty store file is refused by name (exit 1), and so is the demo token beyond
/// loopback (exit 2).
#[test]
fn an_empty_store_file_exits_1_and_the_demo_token_beyond_loopback_exits_2() {
    let dir = std::env::temp_dir().join(format!("sync-lab-empty-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(mock_server::redb_store::FILE_NAME), b"").unwrap();
    let out = exit_of(&["--addr", "127.0.0.1:0"], &dir);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(mock_server::redb_store::FILE_NAME) && stderr.contains("empty"),
        "{stderr}"
    );
    let other = dir.join("other");
    let out = exit_of(&["--addr", "0.0.0.0:0"], &other);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`demo-token`, which anyone can guess"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the binary with `args` and `--data dir` to its exit (killed, and the test failed,
/// if it is still running after 10 s: a server that started when it should have refused).
fn exit_of(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-server"))
        .args(args)
        .arg("--data")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after 10 s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// `--max-queue-kib` outside 64 KiB ..= 1 GiB is refused by name before anything opens.
#[test]
fn a_queue_bound_out_of_range_is_refused_by_name() {
    let dir = std::env::temp_dir().join(format!("sync-lab-queue-{}", std::process::id()));
    for kib in ["10", "2000000", "lots"] {
        let out = exit_of(&["--addr", "127.0.0.1:0", "--max-queue-kib", kib], &dir);
        assert_eq!(out.status.code(), Some(2), "{kib}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--max-queue-kib"), "{kib}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The users and tokens of a tokens file are served, and only they (no demo user); a
/// tokens file with a bad line, or none at all, and an allowed origin that no browser
/// could send, are refused by name (exit 2) before anything opens.
#[test]
fn a_tokens_file_is_served_and_bad_files_and_origins_are_refused_by_name() {
    let dir = std::env::temp_dir().join(format!("sync-lab-tokens-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tokens");
    std::fs::write(
        &file,
        "# QA users
ana=t-ana

bo=t-bo
",
    )
    .unwrap();
    let file_arg = file.to_str().unwrap();
    let (mut child, url) = start_with(&dir.join("store"), &["--tokens-file", file_arg]);
    let addr = url.trim_start_matches("ws://").trim_end_matches("/sync");
    for (token, status) in [("t-ana", 200), ("t-bo", 200), ("demo-token", 401)] {
        assert_eq!(poll_status(addr, token), status, "{token}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let cases: [(&str, &[&str], String); 4] = [
        (
            "ana=t\nbo t-bo\n",
            &[],
            format!("tokens file {file_arg}: line 2: not USER=TOKEN"),
        ),
        (
            "# none yet\n",
            &[],
            format!("tokens file {file_arg}: no USER=TOKEN line"),
        ),
        (
            "ana=t\n",
            &["--token", "bo=t"],
            "`bo` and `ana` are given the same token".into(),
        ),
        (
            "ana=t\n",
            &["--allow-origin", "http://localhost:5173/"],
            "browsers send this origin as `http://localhost:5173`".into(),
        ),
    ];
    for (text, more, expected) in cases {
        std::fs::write(&file, text).unwrap();
        let mut args = vec!["--addr", "127.0.0.1:0", "--tokens-file", file_arg];
        args.extend(more);
        let out = exit_of(&args, &dir.join("store"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text:?} {more:?}: {stderr}");
        assert!(stderr.contains(&expected), "{text:?} {more:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The status of `GET /sync/changes?since=0` with `token`, over a plain socket.
fn poll_status(addr: &str, token: &str) -> u16 {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    let request = format!(
        "GET /sync/changes?since=0 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nX-Device-Id: phone\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

/// A damaged store on which redb itself panics is refused like any other: exit 1, the
/// file and the problem named, and no panic message (the panic is caught, and it is the
/// store library's, not the server's).
#[test]
fn a_store_that_makes_redb_panic_exits_1_without_a_panic_message() {
    use mock_server::core::store::{Record, Store, Stored};
    use mock_server::redb_store::{FILE_NAME, RedbStore};
    let dir = std::env::temp_dir().join(format!("sync-lab-panicky-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let mut store = RedbStore::open(&dir).unwrap();
        for rev in 1..=300u64 {
            let record = Record {
                user: "demo".into(),
                key: sync_core::protocol::Key::parse(&format!("like/p{}", rev % 40)).unwrap(),
                stored: Stored {
                    value: json!(true),
                    rev,
                    device_id: "phone".into(),
                    local_rev: rev,
                    time_ms: 0,
                },
            };
            store.commit(&[record]).unwrap();
        }
    }
    let good = std::fs::read(dir.join(FILE_NAME)).unwrap();
    // A page of the B-tree zeroed: find one that makes redb panic (the library's error
    // says so), then start the binary on it.
    let panicky = (4096..good.len()).step_by(4096).find(|&at| {
        let mut bytes = good.clone();
        bytes[at..at + 512].fill(0);
        std::fs::write(dir.join(FILE_NAME), &bytes).unwrap();
        RedbStore::open(&dir)
            .and_then(|mut s| s.load())
            .is_err_and(|e| e.to_string().contains("the store library failed"))
    });
    let at = panicky.expect("no zeroed page made redb panic");
    // Written again: opening the file above may have changed it.
    let mut bytes = good.clone();
    bytes[at..at + 512].fill(0);
    std::fs::write(dir.join(FILE_NAME), &bytes).unwrap();
    let out = exit_of(&["--addr", "127.0.0.1:0"], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(FILE_NAME) && stderr.contains("corrupt store"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("internal error"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Beyond loopback with a token given, the server starts and warns once, naming the risk.
#[test]
fn beyond_loopback_with_a_token_the_server_warns_once() {
    let dir = std::env::temp_dir().join(format!("sync-lab-exposed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-server"))
        .args([
            "--addr",
            "0.0.0.0:0",
            "--token",
            "ana=a-long-token",
            "--data",
        ])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr
            .matches("listening beyond loopback: anyone who can reach")
            .count(),
        1,
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
