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
    Change, ClientFrame, Key, ServerFrame, decode_client_frame, decode_server_frame,
};

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
