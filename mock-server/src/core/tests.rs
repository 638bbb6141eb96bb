//! The core against PROTOCOL.md, frame by frame: the write pipeline in order, every row of
//! the error table, idempotency, catch-up, fan-out order, and the timers.
//! Long because each row of PROTOCOL.md's tables is a test; kept in one file in the
//! protocol's order.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use sync_core::protocol::{ErrorCode, Key, ServerFrame};

use super::http::{HttpAnswer, HttpKind, HttpRequest};
use super::store::{MemoryStore, Store, TokenRecord};
use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

struct T {
    core: Core<MemoryStore>,
    now: Duration,
}

const A: ConnId = ConnId(1);
const B: ConnId = ConnId(2);

impl T {
    fn new() -> Self {
        T {
            core: Core::new(BTreeMap::new(), MemoryStore::default()).unwrap(),
            now: ms(0),
        }
    }

    fn send(&mut self, c: ConnId, text: &str) -> Vec<Action> {
        self.core
            .handle(vec![(c, Inbound::Text(text.into()))], self.now)
    }

    fn hello(&mut self, c: ConnId, device: &str, since: u64) -> ServerFrame {
        self.core.connect(c, self.now);
        let text = format!(
            r#"{{"type":"hello","protocol":1,"token":"demo-token","device_id":"{device}","since":{since}}}"#
        );
        let out = self.send(c, &text);
        frames_to(&out, c).pop().expect("welcome")
    }

    fn set(&mut self, c: ConnId, id: u64, key: &str, value: Value, local_rev: u64) -> Vec<Action> {
        let text = json!({"type":"set","id":id,"key":key,"value":value,"local_rev":local_rev});
        self.send(c, &text.to_string())
    }
}

fn frames_to(out: &[Action], c: ConnId) -> Vec<ServerFrame> {
    out.iter()
        .cloned()
        .flat_map(Action::per_connection)
        .filter_map(|a| match a {
            Action::Send(id, f) if id == c => Some(f),
            _ => None,
        })
        .collect()
}

fn closed(out: &[Action], c: ConnId) -> Option<u16> {
    out.iter().find_map(|a| match a {
        Action::Close(id, code, _) if *id == c => Some(*code),
        _ => None,
    })
}

fn error_code(out: &[Action], c: ConnId) -> Option<ErrorCode> {
    frames_to(out, c).into_iter().find_map(|f| match f {
        ServerFrame::Error { code, .. } => Some(code),
        _ => None,
    })
}

fn reject_code(out: &[Action], c: ConnId) -> Option<ErrorCode> {
    frames_to(out, c).into_iter().find_map(|f| match f {
        ServerFrame::Reject { code, .. } => Some(code),
        _ => None,
    })
}

#[test]
fn hello_welcome_and_second_hello() {
    let mut t = T::new();
    let w = t.hello(A, "phone", 0);
    assert_eq!(
        w,
        ServerFrame::Welcome {
            user: "demo".into(),
            rev: 0,
            changes: vec![],
            reset: false
        }
    );
    let out = t.send(
        A,
        r#"{"type":"hello","protocol":1,"token":"demo-token","device_id":"phone","since":0}"#,
    );
    assert_eq!(error_code(&out, A), Some(ErrorCode::BadMessage));
    assert_eq!(closed(&out, A), None, "a second hello changes nothing");
}

#[test]
fn error_table_rows_before_and_during_hello() {
    let cases = [
        (
            r#"{"type":"hello","protocol":1,"token":"nope","device_id":"p","since":0}"#,
            ErrorCode::Unauthorized,
            4401,
        ),
        (r#"{"type":"ping","id":1}"#, ErrorCode::HelloRequired, 4400),
        (r#"not json"#, ErrorCode::HelloRequired, 4400),
        (
            r#"{"type":"hello","protocol":2,"token":"demo-token","device_id":"p","since":0}"#,
            ErrorCode::UnsupportedProtocol,
            4400,
        ),
        (
            r#"{"type":"hello","protocol":1,"token":"demo-token","device_id":"server","since":0}"#,
            ErrorCode::BadMessage,
            4400,
        ),
        (
            r#"{"type":"hello","protocol":1,"token":"demo-token","device_id":"p"}"#,
            ErrorCode::BadMessage,
            4400,
        ),
    ];
    for (text, code, close_code) in cases {
        let mut t = T::new();
        t.core.connect(A, t.now);
        let out = t.send(A, text);
        assert_eq!(error_code(&out, A), Some(code), "{text}");
        assert_eq!(closed(&out, A), Some(close_code), "{text}");
        assert!(
            matches!(out.first(), Some(Action::Send(..))),
            "the error frame comes before the close"
        );
    }
}

#[test]
fn hello_timeout_idle_timeout_binary_and_too_large() {
    let mut t = T::new();
    t.core.connect(A, t.now);
    assert_eq!(t.core.poll_timeout(), Some(ms(5000)));
    let out = t.core.on_timeout(ms(5000));
    assert_eq!(error_code(&out, A), Some(ErrorCode::HelloRequired));
    assert_eq!(closed(&out, A), Some(4400));

    let mut t = T::new();
    t.hello(A, "phone", 0);
    let out = t.core.handle(vec![(A, Inbound::Binary)], t.now);
    assert_eq!(error_code(&out, A), Some(ErrorCode::BadMessage));
    assert_eq!(closed(&out, A), None);
    assert_eq!(t.core.poll_timeout(), Some(ms(30_000)));
    let out = t.core.on_timeout(ms(30_000));
    assert_eq!(error_code(&out, A), Some(ErrorCode::IdleTimeout));
    assert_eq!(closed(&out, A), Some(4408));

    let mut t = T::new();
    t.hello(A, "phone", 0);
    let out = t.core.handle(vec![(A, Inbound::TooLarge)], t.now);
    assert_eq!(error_code(&out, A), Some(ErrorCode::TooLarge));
    assert_eq!(closed(&out, A), Some(1009));
}

/// The deadlines are kept in order (`core::deadlines`): the earliest is the next timeout,
/// every connection due is closed at once, in the order of their ids, and the others keep
/// theirs, each moved by what happened on it.
#[test]
fn every_due_connection_is_closed_in_id_order_and_the_rest_keep_their_deadlines() {
    let mut t = T::new();
    let (c3, c4) = (ConnId(3), ConnId(4));
    t.core.connect(c4, ms(0));
    t.core.connect(c3, ms(1_000));
    t.hello(A, "phone", 0);
    t.core.connect(B, ms(2_000));
    assert_eq!(
        t.core.poll_timeout(),
        Some(ms(5_000)),
        "c4's hello is due first"
    );
    t.core.heard(A, ms(4_000));
    let out = t.core.on_timeout(ms(6_500));
    let closes: Vec<ConnId> = out
        .iter()
        .filter_map(|a| match a {
            Action::Close(id, 4400, _) => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(closes, [c3, c4]);
    assert_eq!(t.core.poll_timeout(), Some(ms(7_000)), "B's hello");
    t.core.disconnect(B);
    assert_eq!(t.core.poll_timeout(), Some(ms(34_000)), "A's silence");
    t.core.heard(A, ms(10_000));
    assert_eq!(t.core.poll_timeout(), Some(ms(40_000)));
    assert!(t.core.on_timeout(ms(39_999)).is_empty());
    assert_eq!(closed(&t.core.on_timeout(ms(40_000)), A), Some(4408));
    assert_eq!(t.core.poll_timeout(), None);
}

#[test]
fn idleness_counts_from_the_latest_arrival_the_shell_reports() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    // A WebSocket-level ping (or a frame still waiting for the core) arrived at 20 s.
    t.core.heard(A, ms(20_000));
    assert_eq!(t.core.poll_timeout(), Some(ms(50_000)));
    assert!(t.core.on_timeout(ms(30_000)).is_empty(), "not idle at 30 s");
    // An older arrival reported late changes nothing.
    t.core.heard(A, ms(1_000));
    let out = t.core.on_timeout(ms(50_000));
    assert_eq!(closed(&out, A), Some(4408));
}

#[test]
fn too_many_failed_token_checks_from_one_address_are_not_checked_any_more() {
    let mut t = T::new();
    let here = Some(IpAddr::from([127, 0, 0, 1]));
    let other = Some(IpAddr::from([127, 0, 0, 2]));
    let hello = |token: &str| {
        format!(r#"{{"type":"hello","protocol":1,"token":"{token}","device_id":"p","since":0}}"#)
    };
    for i in 0..21 {
        let c = ConnId(100 + i);
        t.core.connect_from(c, here, t.now);
        let out = t.send(c, &hello("guess"));
        assert_eq!(
            error_code(&out, c),
            Some(ErrorCode::Unauthorized),
            "try {i}"
        );
        assert_eq!(closed(&out, c), Some(4401));
    }
    // More than 20 failed: the 22nd attempt, even with the right token, is not checked.
    t.core.connect_from(A, here, t.now);
    let out = t.send(A, &hello("demo-token"));
    assert_eq!(error_code(&out, A), Some(ErrorCode::TooManyAttempts));
    assert_eq!(closed(&out, A), Some(1008));
    assert_eq!(
        t.core.admin_auth(here, true, t.now),
        Err(ErrorCode::TooManyAttempts),
        "the admin socket counts with the same guard"
    );
    // Another address is served; so is this one once a minute has passed.
    t.core.connect_from(B, other, t.now);
    assert!(matches!(
        frames_to(&t.send(B, &hello("demo-token")), B)[..],
        [ServerFrame::Welcome { .. }]
    ));
    t.now = ms(60_000);
    let c = ConnId(3);
    t.core.connect_from(c, here, t.now);
    assert!(matches!(
        frames_to(&t.send(c, &hello("demo-token")), c)[..],
        [ServerFrame::Welcome { .. }]
    ));
}

#[test]
fn forced_rejections_belong_to_one_user() {
    let tokens = BTreeMap::from([
        ("ta".to_string(), "ana".to_string()),
        ("tb".to_string(), "bo".to_string()),
    ]);
    let mut core = Core::new(tokens, MemoryStore::default()).unwrap();
    let hello = |token: &str| {
        Inbound::Text(format!(
            r#"{{"type":"hello","protocol":1,"token":"{token}","device_id":"p","since":0}}"#
        ))
    };
    core.connect(A, ms(0));
    core.connect(B, ms(0));
    core.handle(vec![(A, hello("ta")), (B, hello("tb"))], ms(0));
    core.reject_next("ana", Key::DarkMode);
    let set = r#"{"type":"set","id":1,"key":"settings/dark_mode","value":true,"local_rev":1}"#;
    let out = core.handle(vec![(B, Inbound::Text(set.into()))], ms(1));
    assert!(
        matches!(frames_to(&out, B)[0], ServerFrame::Ack { .. }),
        "bo is not ana"
    );
    let out = core.handle(vec![(A, Inbound::Text(set.into()))], ms(2));
    assert!(matches!(
        frames_to(&out, A)[0],
        ServerFrame::Reject {
            code: ErrorCode::Forced,
            ..
        }
    ));
}

#[test]
fn write_pipeline_order() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    // Step 2: malformed → bad_message with the id, connection open.
    let out = t.send(
        A,
        r#"{"type":"set","id":7,"key":"like/a","value":true,"local_rev":0}"#,
    );
    assert!(matches!(
        frames_to(&out, A)[..],
        [ServerFrame::Error {
            code: ErrorCode::BadMessage,
            id: Some(7),
            ..
        }]
    ));
    // Step 3: key.
    let out = t.set(A, 1, "like/A", json!(true), 1);
    assert_eq!(reject_code(&out, A), Some(ErrorCode::UnknownKey));
    // Step 4: value (any JSON is decoded; a misfit is invalid_value).
    let out = t.set(A, 2, "settings/volume", json!("loud"), 1);
    assert_eq!(reject_code(&out, A), Some(ErrorCode::InvalidValue));
    let out = t.set(A, 3, "comments/p", json!([]), 1);
    assert_eq!(reject_code(&out, A), Some(ErrorCode::InvalidValue));
    let out = t.send(
        A,
        r#"{"type":"command","id":4,"key":"like/p","name":"add_comment","args":{"text":"x"},"local_rev":1}"#,
    );
    assert_eq!(reject_code(&out, A), Some(ErrorCode::InvalidValue));
    // Rejected writes record nothing: local_rev 1 is still free.
    let out = t.set(A, 5, "settings/volume", json!(70), 1);
    assert!(matches!(
        frames_to(&out, A)[0],
        ServerFrame::Ack {
            rev: 1,
            duplicate: false,
            ..
        }
    ));
    // Step 6: forced, after idempotency.
    t.core.reject_next("demo", Key::Volume);
    let out = t.set(A, 6, "settings/volume", json!(70), 1);
    assert!(matches!(
        frames_to(&out, A)[0],
        ServerFrame::Ack {
            duplicate: true,
            ..
        }
    ));
    let out = t.set(A, 7, "settings/volume", json!(71), 2);
    assert!(matches!(
        &frames_to(&out, A)[0],
        ServerFrame::Reject { code: ErrorCode::Forced, current: Some(c), .. } if c.rev == 1
    ));
    let out = t.set(A, 8, "settings/volume", json!(71), 2);
    assert!(
        matches!(frames_to(&out, A)[0], ServerFrame::Ack { rev: 2, .. }),
        "only the next one"
    );
}

#[test]
fn idempotent_resend_and_superseded() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    t.set(A, 1, "settings/display_name", json!(" Ana "), 3);
    let out = t.set(A, 9, "settings/display_name", json!("Other"), 3);
    assert_eq!(
        frames_to(&out, A),
        [ServerFrame::Ack {
            id: 9,
            key: "settings/display_name".into(),
            value: json!("Ana"),
            rev: 1,
            duplicate: true
        }],
        "the original rev and stored value; nothing pushed"
    );
    let out = t.set(A, 10, "settings/display_name", json!("Old"), 2);
    assert_eq!(reject_code(&out, A), Some(ErrorCode::Superseded));
    assert_eq!(t.core.writes(), 1);
}

#[test]
fn comments_commands_and_their_idempotency() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    let add = |id: u64, lr: u64| {
        format!(
            r#"{{"type":"command","id":{id},"key":"comments/p","name":"add_comment","args":{{"text":" hi "}},"local_rev":{lr}}}"#
        )
    };
    let out = t.send(A, &add(1, 1));
    let list = json!([{"id":"1","text":"hi","device_id":"phone"}]);
    assert!(matches!(&frames_to(&out, A)[0], ServerFrame::Ack { value, .. } if *value == list));
    let out = t.send(A, &add(2, 1));
    assert!(
        matches!(
            frames_to(&out, A)[0],
            ServerFrame::Ack {
                duplicate: true,
                ..
            }
        ),
        "never posted twice"
    );
    let del = |id: u64, cid: &str, lr: u64| {
        format!(
            r#"{{"type":"command","id":{id},"key":"comments/p","name":"delete_comment","args":{{"id":"{cid}"}},"local_rev":{lr}}}"#
        )
    };
    let out = t.send(A, &del(3, "1", 2));
    assert!(
        matches!(&frames_to(&out, A)[0], ServerFrame::Ack { value, .. } if *value == json!([]))
    );
    let out = t.send(A, &del(4, "1", 2));
    assert!(
        matches!(
            frames_to(&out, A)[0],
            ServerFrame::Ack {
                duplicate: true,
                ..
            }
        ),
        "resending an applied delete is a duplicate, not a missing id"
    );
    let out = t.send(A, &del(5, "1", 3));
    assert_eq!(reject_code(&out, A), Some(ErrorCode::InvalidValue));
    let out = t.send(
        A,
        r#"{"type":"command","id":6,"key":"comments/p","name":"add_comment","args":{"text":"   "},"local_rev":4}"#,
    );
    assert_eq!(reject_code(&out, A), Some(ErrorCode::InvalidValue));
}

#[test]
fn hundred_and_first_comment_is_invalid() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    for i in 1..=101u64 {
        let text = format!(
            r#"{{"type":"command","id":{i},"key":"comments/p","name":"add_comment","args":{{"text":"c{i}"}},"local_rev":{i}}}"#
        );
        let out = t.send(A, &text);
        if i <= 100 {
            assert!(
                matches!(frames_to(&out, A)[0], ServerFrame::Ack { .. }),
                "{i}"
            );
        } else {
            assert_eq!(reject_code(&out, A), Some(ErrorCode::InvalidValue));
        }
    }
}

#[test]
fn ack_before_echo_and_fan_out_to_the_users_devices_only() {
    let mut t = T::new();
    t.core = Core::new(
        BTreeMap::from([
            ("ta".to_string(), "ana".to_string()),
            ("tb".to_string(), "bob".to_string()),
        ]),
        MemoryStore::default(),
    )
    .unwrap();
    for (c, token, dev) in [
        (A, "ta", "phone"),
        (B, "ta", "laptop"),
        (ConnId(3), "tb", "phone"),
    ] {
        t.core.connect(c, t.now);
        let text = format!(
            r#"{{"type":"hello","protocol":1,"token":"{token}","device_id":"{dev}","since":0}}"#
        );
        t.send(c, &text);
    }
    let out = t.set(A, 1, "like/p", json!(true), 1);
    let to_a = frames_to(&out, A);
    assert!(
        matches!(to_a[..], [ServerFrame::Ack { .. }, ServerFrame::Push(_)]),
        "ack, then own echo"
    );
    assert!(matches!(frames_to(&out, B)[..], [ServerFrame::Push(_)]));
    assert!(
        frames_to(&out, ConnId(3)).is_empty(),
        "isolation between users"
    );
}

/// A write's ack, then one push action for all its user's devices (the writer's echo
/// included): a shell encodes the change once, and no copy is made per device.
#[test]
fn a_write_is_one_push_to_all_its_users_devices() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    t.hello(B, "laptop", 0);
    let out = t.set(A, 1, "like/p", json!(true), 1);
    assert!(
        matches!(&out[..], [Action::Send(a, ServerFrame::Ack { .. }), Action::Push(ids, _)] if *a == A && ids == &[A, B]),
        "{out:?}"
    );
}

/// The recipients of a write are kept per user beside the connections: a replaced, a
/// closed and a restarted connection leave them, so nothing is pushed to a connection
/// that is gone and nothing is left behind of one.
#[test]
fn a_write_is_pushed_to_the_connections_signed_in_now() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    t.hello(B, "laptop", 0);
    t.hello(ConnId(3), "phone", 0); // replaces A
    t.core.disconnect(B);
    let out = t.set(ConnId(3), 1, "like/p", json!(true), 1);
    let pushed: Vec<ConnId> = out
        .iter()
        .filter(|a| matches!(a, Action::Push(..)))
        .flat_map(|a| a.conns().iter().copied())
        .collect();
    assert_eq!(pushed, [ConnId(3)]);
    assert_eq!(t.core.signed_in.len(), 1);
    assert_eq!(t.core.signed_in["demo"].len(), 1, "{:?}", t.core.signed_in);
    t.core.disconnect(ConnId(3));
    assert!(t.core.signed_in.is_empty(), "{:?}", t.core.signed_in);
    t.hello(A, "phone", 0);
    t.core.restart().unwrap();
    assert!(t.core.signed_in.is_empty(), "{:?}", t.core.signed_in);
}

#[test]
fn catch_up_since_and_reset() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    t.set(A, 1, "like/a", json!(true), 1);
    t.set(A, 2, "like/b", json!(true), 1);
    t.set(A, 3, "like/a", json!(false), 2);
    let ServerFrame::Welcome {
        changes,
        rev,
        reset,
        ..
    } = t.hello(B, "laptop", 1)
    else {
        panic!()
    };
    assert_eq!((rev, reset), (3, false));
    let revs: Vec<u64> = changes.iter().map(|c| c.rev).collect();
    assert_eq!(
        revs,
        [2, 3],
        "every key whose rev > since, in revision order"
    );
    let ServerFrame::Welcome { changes, reset, .. } = t.hello(ConnId(3), "tablet", 99) else {
        panic!()
    };
    assert!(reset);
    assert_eq!(changes.len(), 2, "the full state");
}

#[test]
fn duplicate_device_replaces_the_older_connection() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    t.core.connect(B, t.now);
    let out = t.send(
        B,
        r#"{"type":"hello","protocol":1,"token":"demo-token","device_id":"phone","since":0}"#,
    );
    assert_eq!(error_code(&out, A), Some(ErrorCode::Replaced));
    assert_eq!(closed(&out, A), Some(4010));
    assert!(matches!(
        frames_to(&out, B)[..],
        [ServerFrame::Welcome { .. }]
    ));
}

#[test]
fn rate_limit_rejects_writes_errors_others_and_closes_after_5s() {
    let mut t = T::new();
    t.hello(A, "phone", 0); // the hello took one token
    let frames: Vec<_> = (0..399)
        .map(|i| (A, Inbound::Text(format!(r#"{{"type":"ping","id":{i}}}"#))))
        .collect();
    t.core.handle(frames, t.now);
    let out = t.set(A, 1000, "like/a", json!(true), 1);
    assert!(matches!(
        frames_to(&out, A)[..],
        [ServerFrame::Reject {
            code: ErrorCode::RateLimited,
            current: None,
            id: 1000,
            ..
        }]
    ));
    let out = t.send(A, r#"{"type":"ping","id":1001}"#);
    assert!(matches!(
        frames_to(&out, A)[..],
        [ServerFrame::Error {
            code: ErrorCode::RateLimited,
            id: Some(1001),
            ..
        }]
    ));
    // Keep it limited: a frame every 4 ms is faster than the refill (5 ms), so frames are
    // refused in every second from the first refusal (at 0 s). The fifth such second,
    // 4.0–5.0 s, closes it.
    let mut closed_at = None;
    for step in 1..=1500u64 {
        t.now = ms(step * 4);
        let out = t.send(A, r#"{"type":"ping","id":1}"#);
        if let Some(code) = closed(&out, A) {
            closed_at = Some((t.now, code));
            break;
        }
    }
    let (at, code) = closed_at.expect("closed");
    assert_eq!(code, 1008);
    assert!(at >= ms(4000) && at < ms(5000), "{at:?}");
}

#[test]
fn group_commit_one_transaction_acks_after() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    let before = t.core.store.commits;
    let frames = (1..=10)
        .map(|i| {
            let text =
                json!({"type":"set","id":i,"key":format!("like/p{i}"),"value":true,"local_rev":1});
            (A, Inbound::Text(text.to_string()))
        })
        .collect();
    let out = t.core.handle(frames, t.now);
    assert_eq!(
        t.core.store.commits - before,
        1,
        "writes that arrive together share one commit"
    );
    assert_eq!(frames_to(&out, A).len(), 20, "10 acks and 10 echoes");
}

#[test]
fn a_hello_in_the_same_batch_as_a_write_gets_the_change_in_its_welcome_not_a_push() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    t.core.connect(B, t.now);
    let set = json!({"type":"set","id":1,"key":"like/a","value":true,"local_rev":1});
    let hello =
        r#"{"type":"hello","protocol":1,"token":"demo-token","device_id":"laptop","since":0}"#;
    let out = t.core.handle(
        vec![
            (A, Inbound::Text(set.to_string())),
            (B, Inbound::Text(hello.into())),
        ],
        t.now,
    );
    let to_b = frames_to(&out, B);
    assert!(
        matches!(&to_b[..], [ServerFrame::Welcome { rev: 1, changes, .. }] if changes.len() == 1),
        "only the welcome, carrying the write: {to_b:?}"
    );
    // A device connected when the write arrived gets its push, as always.
    let out = t.set(A, 2, "like/a", json!(false), 2);
    assert!(matches!(frames_to(&out, B)[..], [ServerFrame::Push(_)]));
}

/// The connection got `error store_failed` and nothing else (before its 1011 close).
fn only_store_failed(out: &[Action], id: ConnId) -> bool {
    matches!(
        frames_to(out, id)[..],
        [ServerFrame::Error {
            code: ErrorCode::StoreFailed,
            ..
        }]
    )
}

/// A store whose commits fail: nothing may be acknowledged.
#[derive(Default)]
struct FailingStore;

impl Store for FailingStore {
    fn load(&mut self) -> Result<Durable, StoreError> {
        Ok(Durable::default())
    }
    fn commit(&mut self, _: &[Record]) -> Result<(), StoreError> {
        Err(StoreError("disk full".into()))
    }
    fn commit_tokens(&mut self, _: &[(String, TokenRecord)]) -> Result<(), StoreError> {
        Err(StoreError("disk full".into()))
    }
}

#[test]
fn store_failure_acks_nothing_and_forgets_the_write() {
    let mut core = Core::new(BTreeMap::new(), FailingStore).unwrap();
    core.connect(A, ms(0));
    core.handle(
        vec![(
            A,
            Inbound::Text(
                r#"{"type":"hello","protocol":1,"token":"demo-token","device_id":"p","since":0}"#
                    .into(),
            ),
        )],
        ms(0),
    );
    let out = core.handle(
        vec![(
            A,
            Inbound::Text(
                r#"{"type":"set","id":1,"key":"like/a","value":true,"local_rev":1}"#.into(),
            ),
        )],
        ms(0),
    );
    assert!(only_store_failed(&out, A), "no ack: {out:?}");
    assert_eq!(closed(&out, A), Some(1011));
    assert_eq!(core.value("demo", &Key::parse("like/a").unwrap()).1, 0);
}

#[test]
fn a_failed_commit_takes_back_the_welcome_that_showed_its_write() {
    let mut core = Core::new(BTreeMap::new(), FailingStore).unwrap();
    let hello = |device: &str| {
        Inbound::Text(format!(
            r#"{{"type":"hello","protocol":1,"token":"demo-token","device_id":"{device}","since":0}}"#
        ))
    };
    core.connect(A, ms(0));
    core.handle(vec![(A, hello("p"))], ms(0));
    core.connect(B, ms(0));
    let set = r#"{"type":"set","id":1,"key":"like/a","value":true,"local_rev":1}"#;
    let out = core.handle(vec![(A, Inbound::Text(set.into())), (B, hello("q"))], ms(0));
    // B's welcome would have carried like/a = true, which was never stored.
    assert!(only_store_failed(&out, B), "{out:?}");
    assert_eq!((closed(&out, A), closed(&out, B)), (Some(1011), Some(1011)));
}

/// A store that loads once, then fails to commit and to load: a disk gone bad.
#[derive(Default)]
struct DeadStore {
    loaded: bool,
}

impl Store for DeadStore {
    fn load(&mut self) -> Result<Durable, StoreError> {
        if std::mem::replace(&mut self.loaded, true) {
            return Err(StoreError("cannot read".into()));
        }
        Ok(Durable::default())
    }
    fn commit(&mut self, _: &[Record]) -> Result<(), StoreError> {
        Err(StoreError("disk full".into()))
    }
    fn commit_tokens(&mut self, _: &[(String, TokenRecord)]) -> Result<(), StoreError> {
        Err(StoreError("disk full".into()))
    }
}

#[test]
fn a_store_that_cannot_be_read_back_after_a_failed_commit_stops_serving() {
    let mut core = Core::new(BTreeMap::new(), DeadStore::default()).unwrap();
    let hello = |device: &str| {
        Inbound::Text(format!(
            r#"{{"type":"hello","protocol":1,"token":"demo-token","device_id":"{device}","since":0}}"#
        ))
    };
    core.connect(A, ms(0));
    core.connect(B, ms(0));
    core.handle(vec![(A, hello("p")), (B, hello("q"))], ms(0));
    let set = r#"{"type":"set","id":1,"key":"like/a","value":true,"local_rev":1}"#;
    let out = core.handle(vec![(A, Inbound::Text(set.into()))], ms(0));
    // Both connections go: the memory may hold the write that was never stored.
    assert_eq!((closed(&out, A), closed(&out, B)), (Some(1011), Some(1011)));
    // A resend on a new connection is not acknowledged as a duplicate: nothing is served.
    let c = ConnId(3);
    core.connect(c, ms(1));
    let out = core.handle(vec![(c, hello("p")), (c, Inbound::Text(set.into()))], ms(1));
    assert!(only_store_failed(&out, c), "{out:?}");
    assert_eq!(closed(&out, c), Some(1011));
    // Nor does the server write, nor a restart that cannot read the store.
    assert!(
        core.server_set("demo", &Key::DarkMode, json!(true), ms(0))
            .is_err()
    );
    assert!(core.restart().is_err());
    let c = ConnId(4);
    core.connect(c, ms(2));
    let out = core.handle(vec![(c, hello("p"))], ms(2));
    assert_eq!(closed(&out, c), Some(1011));
}

#[test]
fn restart_from_the_store_keeps_writes_revisions_and_watermarks() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    t.set(A, 1, "like/a", json!(true), 1);
    let store = std::mem::replace(
        &mut t.core,
        Core::new(BTreeMap::new(), MemoryStore::default()).unwrap(),
    )
    .into_store();
    t.core = Core::new(BTreeMap::new(), store).unwrap();
    t.hello(A, "phone", 0);
    let out = t.set(A, 2, "like/a", json!(true), 1);
    assert!(matches!(
        frames_to(&out, A)[0],
        ServerFrame::Ack {
            duplicate: true,
            rev: 1,
            ..
        }
    ));
    let out = t.set(A, 3, "like/b", json!(true), 1);
    assert!(
        matches!(frames_to(&out, A)[0], ServerFrame::Ack { rev: 2, .. }),
        "no reuse"
    );
}

#[test]
fn server_set_is_validated_and_pushed() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    let out = t
        .core
        .server_set("demo", &Key::Volume, json!(20), t.now)
        .unwrap();
    assert!(matches!(
        &frames_to(&out, A)[..],
        [ServerFrame::Push(c)] if c.device_id == "server" && c.local_rev == 0 && c.rev == 1
    ));
    assert!(
        t.core
            .server_set("demo", &Key::Volume, json!(200), t.now)
            .is_err()
    );
}

#[test]
fn answers_keep_arrival_order_across_a_group_commit() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    let frames = vec![
        (
            A,
            Inbound::Text(
                r#"{"type":"set","id":1,"key":"like/a","value":true,"local_rev":1}"#.into(),
            ),
        ),
        (A, Inbound::Text(r#"{"type":"ping","id":2}"#.into())),
        (
            A,
            Inbound::Text(
                r#"{"type":"set","id":3,"key":"like/A","value":true,"local_rev":1}"#.into(),
            ),
        ),
        (
            A,
            Inbound::Text(
                r#"{"type":"set","id":4,"key":"like/a","value":true,"local_rev":1}"#.into(),
            ),
        ),
    ];
    let out = t.core.handle(frames, t.now);
    let kinds: Vec<String> = frames_to(&out, A)
        .iter()
        .map(|f| match f {
            ServerFrame::Ack { id, duplicate, .. } => {
                format!("ack {id}{}", if *duplicate { " dup" } else { "" })
            }
            ServerFrame::Pong { id } => format!("pong {id}"),
            ServerFrame::Reject { id, .. } => format!("reject {id}"),
            ServerFrame::Push(c) => format!("push {}", c.rev),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        ["ack 1", "push 1", "pong 2", "reject 3", "ack 4 dup"]
    );
}

#[test]
fn a_hello_without_a_token_is_unauthorized() {
    let mut t = T::new();
    t.core.connect(A, t.now);
    let out = t.send(
        A,
        r#"{"type":"hello","protocol":1,"device_id":"p","since":0}"#,
    );
    assert_eq!(error_code(&out, A), Some(ErrorCode::Unauthorized));
    assert_eq!(closed(&out, A), Some(4401));
}

/// Short names for frames, to compare whole answer sequences.
fn names(frames: &[ServerFrame]) -> Vec<String> {
    frames
        .iter()
        .map(|f| match f {
            ServerFrame::Ack { id, duplicate, .. } => {
                format!("ack {id}{}", if *duplicate { " dup" } else { "" })
            }
            ServerFrame::Reject { id, code, .. } => format!("reject {id} {code}"),
            ServerFrame::BatchDone { id, count } => format!("done {id} {count}"),
            ServerFrame::Push(c) => format!("push {} {}", c.key, c.rev),
            ServerFrame::Pong { id } => format!("pong {id}"),
            other => format!("{other:?}"),
        })
        .collect()
}

fn batch_text(id: u64, writes: &[Value]) -> String {
    json!({"type":"batch","id":id,"writes":writes}).to_string()
}

fn set_json(id: u64, key: &str, value: Value, local_rev: u64) -> Value {
    json!({"type":"set","id":id,"key":key,"value":value,"local_rev":local_rev})
}

/// PROTOCOL.md, "Several writes in one frame": every write's answer in list order (a
/// rejected one rejected alone, a repeated `local_rev` a duplicate), `batch_done`, then the
/// pushes in revision order, to the writer and the user's other devices; one commit.
#[test]
fn a_batch_answers_in_list_order_then_batch_done_then_pushes_in_one_commit() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    t.hello(B, "laptop", 0);
    let before = t.core.store.commits;
    let text = batch_text(
        9,
        &[
            set_json(1, "like/a", json!(true), 1),
            set_json(2, "like/A", json!(true), 1),
            set_json(3, "settings/volume", json!(7), 1),
            set_json(4, "settings/volume", json!(500), 2),
            json!({"type":"command","id":5,"key":"comments/p","name":"add_comment","args":{"text":"hi"},"local_rev":1}),
            set_json(6, "like/a", json!(true), 1),
        ],
    );
    let out = t.send(A, &text);
    assert_eq!(t.core.store.commits - before, 1, "one transaction");
    assert_eq!(
        names(&frames_to(&out, A)),
        [
            "ack 1",
            "reject 2 unknown_key",
            "ack 3",
            "reject 4 invalid_value",
            "ack 5",
            "ack 6 dup",
            "done 9 6",
            "push like/a 1",
            "push settings/volume 2",
            "push comments/p 3",
        ]
    );
    assert_eq!(
        names(&frames_to(&out, B)),
        [
            "push like/a 1",
            "push settings/volume 2",
            "push comments/p 3"
        ]
    );
    assert_eq!(t.core.writes(), 3);
}

/// A batch malformed as a whole is one `error bad_message` with its id, and nothing in it
/// is applied — not even its well-formed writes.
#[test]
fn a_malformed_batch_applies_nothing() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    let bad_item = json!({"type":"set","id":2,"key":"like/b","value":true,"local_rev":0});
    let out = t.send(
        A,
        &batch_text(4, &[set_json(1, "like/a", json!(true), 1), bad_item]),
    );
    match &frames_to(&out, A)[..] {
        [ServerFrame::Error { code, id, message }] => {
            assert_eq!((*code, *id), (ErrorCode::BadMessage, Some(4)));
            assert!(message.contains("writes[1]"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(closed(&out, A), None);
    assert_eq!(t.core.writes(), 0);
    assert_eq!(t.core.store.commits, 0);
}

/// Each write of a batch costs one token and the batch itself none: with 3 tokens left, a
/// batch of 5 gets 3 answers and 2 `reject rate_limited`, then `batch_done`.
#[test]
fn each_write_of_a_batch_costs_a_token_and_the_rest_is_rate_limited() {
    let mut t = T::new();
    t.hello(A, "phone", 0); // 1 token
    let pings: Vec<_> = (0..396)
        .map(|i| (A, Inbound::Text(format!(r#"{{"type":"ping","id":{i}}}"#))))
        .collect();
    t.core.handle(pings, t.now); // 3 left
    let writes: Vec<Value> = (1..=5)
        .map(|i| set_json(i, &format!("like/p{i}"), json!(true), 1))
        .collect();
    let out = t.send(A, &batch_text(10, &writes));
    assert_eq!(
        names(&frames_to(&out, A)),
        [
            "ack 1",
            "ack 2",
            "ack 3",
            "reject 4 rate_limited",
            "reject 5 rate_limited",
            "done 10 5",
            "push like/p1 1",
            "push like/p2 2",
            "push like/p3 3",
        ]
    );
}

/// A batch between other frames of the same delivery keeps their order: what came before
/// it is answered before, what came after after its pushes.
#[test]
fn a_batch_keeps_its_place_among_the_frames_around_it() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    let frames = vec![
        (
            A,
            Inbound::Text(set_json(1, "like/x", json!(true), 1).to_string()),
        ),
        (
            A,
            Inbound::Text(batch_text(
                2,
                &[
                    set_json(3, "like/y", json!(true), 1),
                    set_json(4, "like/z", json!(true), 1),
                ],
            )),
        ),
        (A, Inbound::Text(r#"{"type":"ping","id":5}"#.into())),
    ];
    let out = t.core.handle(frames, t.now);
    assert_eq!(
        names(&frames_to(&out, A)),
        [
            "ack 1",
            "push like/x 1",
            "ack 3",
            "ack 4",
            "done 2 2",
            "push like/y 2",
            "push like/z 3",
            "pong 5",
        ]
    );
}

/// PROTOCOL.md, "Re-authenticating": a rotation expires the old token at once; each
/// connection on it gets `error token_expired`, then its writes `reject token_expired`
/// (nothing applied, not even a duplicate ack), pings still answered and pushes still
/// delivered; `auth` with the expired token changes nothing; with the new one, `authed`.
#[test]
fn a_rotation_expires_the_connection_until_a_valid_auth() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    t.hello(B, "laptop", 0);
    t.set(A, 1, "like/a", json!(true), 1);
    let out = t.core.rotate_token("demo", "t2", t.now).unwrap();
    for c in [A, B] {
        assert_eq!(error_code(&out, c), Some(ErrorCode::TokenExpired));
    }
    // A resend of an applied write: refused all the same (no duplicate ack).
    let out = t.set(A, 2, "like/a", json!(true), 1);
    assert_eq!(names(&frames_to(&out, A)), ["reject 2 token_expired"]);
    assert!(matches!(
        frames_to(&out, A)[0],
        ServerFrame::Reject { current: None, .. }
    ));
    let out = t.send(A, r#"{"type":"ping","id":3}"#);
    assert_eq!(names(&frames_to(&out, A)), ["pong 3"]);
    let out = t.send(A, r#"{"type":"auth","id":4,"token":"demo-token"}"#);
    match &frames_to(&out, A)[..] {
        [ServerFrame::Error { code, id, .. }] => {
            assert_eq!((*code, *id), (ErrorCode::TokenExpired, Some(4)))
        }
        other => panic!("{other:?}"),
    }
    let out = t.send(A, r#"{"type":"auth","id":5,"token":"t2"}"#);
    assert_eq!(frames_to(&out, A), [ServerFrame::Authed { id: 5 }]);
    let out = t.set(A, 6, "like/b", json!(true), 1);
    assert_eq!(names(&frames_to(&out, A)), ["ack 6", "push like/b 2"]);
    assert_eq!(
        names(&frames_to(&out, B)),
        ["push like/b 2"],
        "an expired connection still gets pushes"
    );
    // The laptop never re-authenticates: 30 s after the expiry it is closed 4401 (the
    // phone pings meanwhile, so it is not idle).
    t.now = ms(20_000);
    t.send(A, r#"{"type":"ping","id":7}"#);
    t.now = ms(29_999);
    assert_eq!(closed(&t.core.on_timeout(t.now), B), None);
    t.now = ms(30_000);
    let out = t.core.on_timeout(t.now);
    assert_eq!(error_code(&out, B), Some(ErrorCode::TokenExpired));
    assert_eq!(closed(&out, B), Some(4401));
    assert_eq!(closed(&out, A), None, "the phone re-authenticated");
}

/// A `hello` with an expired token is `token_expired` and 4401 (with the reason the
/// device reads to wait for a new token); an unknown token is still `unauthorized`; an
/// `auth` with an unknown token closes 4401; the rotation survives a restart.
#[test]
fn an_expired_token_is_told_apart_from_an_unknown_one_and_survives_a_restart() {
    let mut t = T::new();
    t.core.rotate_token("demo", "t2", t.now).unwrap();
    t.core.restart().unwrap();
    t.core.connect(A, t.now);
    let out = t.send(
        A,
        r#"{"type":"hello","protocol":1,"token":"demo-token","device_id":"p","since":0}"#,
    );
    assert_eq!(error_code(&out, A), Some(ErrorCode::TokenExpired));
    assert!(out.contains(&Action::Close(A, 4401, "token_expired".into())));
    t.core.connect(B, t.now);
    let out = t.send(
        B,
        r#"{"type":"hello","protocol":1,"token":"nope","device_id":"q","since":0}"#,
    );
    assert_eq!(error_code(&out, B), Some(ErrorCode::Unauthorized));
    let mut t2 = T::new();
    t2.core.rotate_token("demo", "t2", t2.now).unwrap();
    assert!(matches!(
        {
            t2.core.connect(B, t2.now);
            frames_to(
                &t2.send(
                    B,
                    r#"{"type":"hello","protocol":1,"token":"t2","device_id":"q","since":0}"#,
                ),
                B,
            )
            .pop()
        },
        Some(ServerFrame::Welcome { .. })
    ));
    let out = t2.send(B, r#"{"type":"auth","id":1,"token":"nope"}"#);
    assert_eq!(error_code(&out, B), Some(ErrorCode::Unauthorized));
    assert_eq!(closed(&out, B), Some(4401));
    assert!(
        t2.core.rotate_token("demo", "t2", t2.now).is_err(),
        "in use"
    );
    assert!(
        t2.core.rotate_token("demo", "demo-token", t2.now).is_err(),
        "was in use"
    );
    assert!(t2.core.rotate_token("nobody", "t9", t2.now).is_err());
    assert!(t2.core.rotate_token("demo", "", t2.now).is_err());
}

/// PROTOCOL.md, "Catching up by clock": the server keeps each change's time, and a `hello`
/// with `since_time` gets every key whose last change is later than it (never `reset`).
#[test]
fn since_time_returns_the_keys_changed_after_it() {
    let mut t = T::new();
    t.core = Core::new(BTreeMap::new(), MemoryStore::default())
        .unwrap()
        .with_clock_epoch(1_000_000);
    t.hello(A, "phone", 0);
    t.set(A, 1, "like/a", json!(true), 1); // at 1,000,000 ms
    t.now = ms(500);
    t.set(A, 2, "like/b", json!(true), 1); // at 1,000,500 ms
    t.now = ms(900);
    t.core
        .server_set("demo", &Key::Volume, json!(7), t.now)
        .unwrap(); // at 1,000,900 ms
    assert_eq!(
        t.core.user("demo").unwrap().keys[&Key::Volume].time_ms,
        1_000_900
    );
    let keys = |w: ServerFrame| match w {
        ServerFrame::Welcome {
            changes,
            reset,
            rev,
            ..
        } => {
            assert!(!reset);
            assert_eq!(rev, 3);
            changes.into_iter().map(|c| c.key).collect::<Vec<_>>()
        }
        other => panic!("{other:?}"),
    };
    let hello = |t: &mut T, c: ConnId, since_time: u64| {
        t.core.connect(c, t.now);
        let text = json!({"type":"hello","protocol":1,"token":"demo-token","device_id":"q","since_time":since_time});
        frames_to(&t.send(c, &text.to_string()), c).pop().unwrap()
    };
    assert_eq!(
        keys(hello(&mut t, B, 1_000_000)),
        ["like/b", "settings/volume"]
    );
    assert_eq!(
        keys(hello(&mut t, ConnId(3), 1_000_900)),
        Vec::<String>::new()
    );
    assert_eq!(keys(hello(&mut t, ConnId(4), 0)).len(), 3);
}

/// A batch handed over already decoded (the simulator's path) is checked as the decoder
/// checks a text one: a `ping` inside is `bad_message` with the batch's id, not a panic.
#[test]
fn a_decoded_batch_is_checked_like_a_text_one() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    let batch = ClientFrame::Batch {
        id: 9,
        writes: vec![ClientFrame::Ping { id: 1 }],
    };
    let out = t.core.handle(vec![(A, Inbound::Decoded(batch))], t.now);
    match &frames_to(&out, A)[..] {
        [ServerFrame::Error { code, id, message }] => {
            assert_eq!((*code, *id), (ErrorCode::BadMessage, Some(9)));
            assert!(message.contains("writes[0]"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

fn http(
    t: &mut T,
    token: Option<&str>,
    device: Option<&str>,
    kind: HttpKind,
) -> (HttpAnswer, Vec<Action>) {
    let request = HttpRequest {
        token: token.map(str::to_string),
        device_id: device.map(str::to_string),
        source: None,
        kind,
    };
    t.core.http(request, t.now)
}

/// PROTOCOL.md, "Polling over HTTP": `GET /sync/changes` is a `welcome` as for `hello`
/// with that cursor; `POST /sync/write` answers what the WebSocket would (pushes left
/// out) and pushes to the user's connected devices; the statuses of the error rows.
#[test]
fn polling_reads_changes_and_writes_through_the_same_pipeline() {
    let mut t = T::new();
    t.hello(A, "laptop", 0);
    let write = json!({"type":"set","id":1,"key":"like/a","value":true,"local_rev":1}).to_string();
    let (answer, actions) = http(
        &mut t,
        Some("demo-token"),
        Some("phone"),
        HttpKind::Write(write.clone()),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body[0]["type"], "ack");
    assert_eq!(
        answer.body.as_array().unwrap().len(),
        1,
        "no push in the answer"
    );
    assert_eq!(names(&frames_to(&actions, A)), ["push like/a 1"]);
    // Resent: a duplicate, as over the WebSocket.
    let (answer, actions) = http(
        &mut t,
        Some("demo-token"),
        Some("phone"),
        HttpKind::Write(write),
    );
    assert_eq!(answer.body[0]["duplicate"], true);
    assert!(actions.is_empty());
    let (answer, _) = http(
        &mut t,
        Some("demo-token"),
        Some("phone"),
        HttpKind::Changes("since=0".into()),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(
        (answer.body["rev"].clone(), answer.body["reset"].clone()),
        (json!(1), json!(false))
    );
    assert_eq!(answer.body["changes"][0]["key"], "like/a");
    let (answer, _) = http(
        &mut t,
        Some("demo-token"),
        Some("phone"),
        HttpKind::Changes("since=1".into()),
    );
    assert_eq!(answer.body["changes"], json!([]));
    let status = |t: &mut T, token, device, kind| http(t, token, device, kind).0;
    let get = |q: &str| HttpKind::Changes(q.to_string());
    let a = status(&mut t, None, Some("phone"), get("since=0"));
    assert_eq!(
        (a.status, a.body["code"].clone()),
        (401, json!("unauthorized"))
    );
    let a = status(&mut t, Some("demo-token"), Some("bad id"), get("since=0"));
    assert_eq!(
        (a.status, a.body["code"].clone()),
        (400, json!("bad_message"))
    );
    let a = status(&mut t, Some("demo-token"), Some("phone"), get("since=x"));
    assert_eq!(a.status, 400);
    let a = status(
        &mut t,
        Some("demo-token"),
        Some("phone"),
        get("since=1&since_time=2"),
    );
    assert_eq!(a.status, 400);
    let a = status(
        &mut t,
        Some("demo-token"),
        Some("phone"),
        HttpKind::Write(r#"{"type":"ping","id":1}"#.into()),
    );
    assert_eq!(
        (a.status, a.body["code"].clone()),
        (400, json!("bad_message"))
    );
    t.core.rotate_token("demo", "t2", t.now).unwrap();
    let a = status(&mut t, Some("demo-token"), Some("phone"), get("since=0"));
    assert_eq!(
        (a.status, a.body["code"].clone()),
        (401, json!("token_expired"))
    );
    assert_eq!(
        status(&mut t, Some("t2"), Some("phone"), get("since=0")).status,
        200
    );
}

/// Each device id has one bucket for its HTTP requests: past it a `GET` is 429, a `POST`
/// 200 with `reject rate_limited` for each write.
#[test]
fn polling_has_one_bucket_per_device_id() {
    let mut t = T::new();
    for _ in 0..400 {
        let (a, _) = http(
            &mut t,
            Some("demo-token"),
            Some("phone"),
            HttpKind::Changes("since=0".into()),
        );
        assert_eq!(a.status, 200);
    }
    let (a, _) = http(
        &mut t,
        Some("demo-token"),
        Some("phone"),
        HttpKind::Changes("since=0".into()),
    );
    assert_eq!(
        (a.status, a.body["code"].clone()),
        (429, json!("rate_limited"))
    );
    let write = json!({"type":"set","id":1,"key":"like/a","value":true,"local_rev":1}).to_string();
    let (a, _) = http(
        &mut t,
        Some("demo-token"),
        Some("phone"),
        HttpKind::Write(write.clone()),
    );
    assert_eq!(
        (a.status, a.body[0]["code"].clone()),
        (200, json!("rate_limited"))
    );
    let (a, _) = http(
        &mut t,
        Some("demo-token"),
        Some("tablet"),
        HttpKind::Write(write),
    );
    assert_eq!(
        a.body[0]["type"], "ack",
        "another device id has its own bucket"
    );
}

/// `block_websocket` closes every device connection 1001 and says upgrades are refused
/// until it is turned off; HTTP goes on.
#[test]
fn blocking_websockets_closes_them_and_polling_goes_on() {
    let mut t = T::new();
    t.hello(A, "phone", 0);
    let out = t.core.block_websocket(true);
    assert_eq!(out, [Action::Close(A, 1001, "going away".into())]);
    assert!(t.core.websocket_blocked());
    assert_eq!(t.core.device_of(A), None);
    let (a, _) = http(
        &mut t,
        Some("demo-token"),
        Some("phone"),
        HttpKind::Changes("since=0".into()),
    );
    assert_eq!(a.status, 200);
    assert!(t.core.block_websocket(false).is_empty());
    assert!(!t.core.websocket_blocked());
}
