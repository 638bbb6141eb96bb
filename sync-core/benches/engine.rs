//! Engine throughput and frame encode/decode.
//!
//! `cargo bench -p sync-core --bench engine` — figures are recorded in BENCHMARKS.md.
//! Target: ≥ 1,000,000 engine events per second on one core.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use sync_core::engine::{Engine, EngineConfig, Output, Strategy};
use sync_core::protocol::{
    Change, ClientFrame, Key, ServerFrame, decode_client_frame, decode_server_frame, strict_json,
};

/// A client frame as serde's derive would decode it: the comparison for the strict
/// hand-written decoder (same fields, unknown ones refused).
#[derive(serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[allow(dead_code)] // read only by the decoder
enum Derived {
    Hello {
        protocol: u64,
        token: String,
        device_id: String,
        since: u64,
    },
    Set {
        id: u64,
        key: String,
        value: serde_json::Value,
        local_rev: u64,
    },
    Command {
        id: u64,
        key: String,
        name: String,
        args: serde_json::Value,
        local_rev: u64,
    },
    Ping {
        id: u64,
    },
}

fn connected(strategy: Strategy) -> Engine {
    let now = Duration::ZERO;
    let mut e = Engine::new(
        EngineConfig {
            device_id: "phone".into(),
            token: "demo-token".into(),
            strategy,
            seed: 1,
        },
        now,
    );
    e.on_connected(now);
    e.on_frame(
        ServerFrame::Welcome {
            user: "demo".into(),
            rev: 0,
            changes: vec![],
            reset: false,
        },
        now,
    );
    while e.poll_output().is_some() {}
    while e.poll_event().is_some() {}
    e
}

/// One round on one key: a tap, its ack and its own echo — three engine inputs — plus a
/// push from another device: four inputs.
fn round(e: &mut Engine, keys: &[Key], rev: &mut u64, i: usize) {
    let now = Duration::from_millis(i as u64);
    let key = &keys[i % keys.len()];
    e.tap(key, now).unwrap();
    let Some(Output::Send(ClientFrame::Set {
        id,
        value,
        local_rev,
        ..
    })) = e.poll_output()
    else {
        panic!("expected a set");
    };
    *rev += 1;
    let name = key.to_string();
    e.on_frame(
        ServerFrame::Ack {
            id,
            key: name.clone(),
            value: value.clone(),
            rev: *rev,
            duplicate: false,
        },
        now,
    );
    e.on_frame(
        ServerFrame::Push(Change {
            key: name.clone(),
            value,
            rev: *rev,
            device_id: "phone".into(),
            local_rev,
        }),
        now,
    );
    *rev += 1;
    e.on_frame(
        ServerFrame::Push(Change {
            key: name,
            value: json!(false),
            rev: *rev,
            device_id: "laptop".into(),
            local_rev: 1,
        }),
        now,
    );
    while e.poll_output().is_some() {}
    while e.poll_event().is_some() {}
}

fn engine_events(c: &mut Criterion) {
    let keys: Vec<Key> = (0..16)
        .map(|i| Key::parse(&format!("like/post-{i}")).unwrap())
        .collect();
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(4));
    for strategy in Strategy::ALL {
        group.bench_function(format!("{strategy}: tap+ack+echo+push"), |b| {
            let mut e = connected(strategy);
            let (mut rev, mut i) = (0, 0);
            b.iter(|| {
                round(&mut e, &keys, &mut rev, i);
                i += 1;
            });
        });
    }
    group.finish();
}

fn frames(c: &mut Criterion) {
    let set = ClientFrame::Set {
        id: 42,
        key: "settings/volume".into(),
        value: json!(73),
        local_rev: 9,
    };
    let set_text = set.to_json();
    let push = ServerFrame::Push(Change {
        key: "like/post-1".into(),
        value: json!(true),
        rev: 1234,
        device_id: "laptop".into(),
        local_rev: 5,
    });
    let push_text = push.to_json();
    let mut group = c.benchmark_group("frames");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode set", |b| b.iter(|| black_box(&set).to_json()));
    group.bench_function("decode set (strict)", |b| {
        b.iter(|| decode_client_frame(black_box(&set_text)).unwrap())
    });
    // The alternative #13 asks to measure: serde's derive, with `deny_unknown_fields` and
    // serde_path_to_error naming the failing field. Alone it accepts repeated keys and
    // deep nesting (not PROTOCOL.md's step 2); after the strict parse it does not.
    group.bench_function("decode set (derive + path_to_error)", |b| {
        b.iter(|| {
            let mut de = serde_json::Deserializer::from_str(black_box(&set_text));
            serde_path_to_error::deserialize::<_, Derived>(&mut de).unwrap()
        })
    });
    group.bench_function(
        "decode set (strict parse, then derive + path_to_error)",
        |b| {
            b.iter(|| {
                let value = strict_json::parse(black_box(&set_text)).unwrap();
                serde_path_to_error::deserialize::<_, Derived>(value).unwrap()
            })
        },
    );
    group.bench_function("encode push", |b| b.iter(|| black_box(&push).to_json()));
    group.bench_function("decode push", |b| {
        b.iter(|| decode_server_frame(black_box(&push_text)).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = engine_events, frames
}
criterion_main!(benches);
