//! Simulated frames per second, and the wall time of a batch of random-schedule seeds.
//!
//! `cargo bench -p mock-server --bench sim` — figures in BENCHMARKS.md. Target: ≥ 500,000
//! simulated frames per second on one core.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mock_server::link::LinkConfig;
use mock_server::sim::{DeviceSpec, World};
use sync_core::engine::Strategy;
use sync_core::protocol::Key;

/// Four devices tapping 64 keys in turn, 1 ms apart: nearly every tap makes a request,
/// an ack and four pushes (one per device).
fn busy_world() -> (World, Vec<Key>) {
    let specs: Vec<DeviceSpec> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| DeviceSpec {
            name: n.to_string(),
            strategy: Strategy::SyncWithPush,
            up: LinkConfig::default(),
            down: LinkConfig::default(),
        })
        .collect();
    let mut w = World::new(1, &specs);
    w.settle().unwrap();
    let keys = (0..64)
        .map(|i| Key::parse(&format!("like/p{i}")).unwrap())
        .collect();
    (w, keys)
}

fn frames_per_second(c: &mut Criterion) {
    let mut group = c.benchmark_group("sim");
    // Measure how many frames one batch of 200 taps delivers, to report frames/s.
    let (mut w, keys) = busy_world();
    let before = w.frames_delivered;
    for i in 0..200 {
        w.tap(i % 4, &keys[i % keys.len()]).unwrap();
        w.wait(Duration::from_millis(1));
    }
    w.settle().unwrap();
    let per_batch = w.frames_delivered - before;
    group.throughput(Throughput::Elements(per_batch));
    group.bench_function(format!("200 taps, 4 devices ({per_batch} frames)"), |b| {
        b.iter_batched(
            busy_world,
            |(mut w, keys)| {
                for i in 0..200 {
                    w.tap(i % 4, &keys[i % keys.len()]).unwrap();
                    w.wait(Duration::from_millis(1));
                }
                w.settle().unwrap();
                w
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = frames_per_second
}
criterion_main!(benches);
