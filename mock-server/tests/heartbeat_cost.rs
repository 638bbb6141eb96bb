//! The idle cost of a device: one idle device for an hour of virtual time, its heartbeat
//! counted frame by frame. Prints the bytes per hour for BENCHMARKS.md (`cargo test -p
//! mock-server --test heartbeat_cost -- --nocapture`); checks the cadence, since the bytes
//! follow from it.

use std::time::Duration;

use mock_server::link::LinkConfig;
use mock_server::sim::{DeviceSpec, TraceKind, World};
use sync_core::engine::Strategy;
use sync_core::protocol::{ClientFrame, ServerFrame};

/// A WebSocket frame's header for a payload under 126 bytes: 2 bytes, and a client's
/// frames add a 4-byte mask (RFC 6455, 5.2).
const CLIENT_HEADER: usize = 6;
const SERVER_HEADER: usize = 2;

#[test]
fn an_idle_device_pings_every_10_s_and_costs_so_many_bytes_an_hour() {
    let spec = DeviceSpec {
        name: "phone".into(),
        strategy: Strategy::SyncWithPush,
        up: LinkConfig::default(),
        down: LinkConfig::default(),
    };
    let mut world = World::new(0, &[spec]);
    world.settle().expect("the handshake settles");
    let from = world.trace.len();
    let hour = Duration::from_secs(3600);
    world.wait(hour);
    let (mut pings, mut pongs, mut up, mut down) = (0usize, 0usize, 0usize, 0usize);
    for t in &world.trace[from..] {
        match &t.kind {
            TraceKind::Up(f @ ClientFrame::Ping { .. }) => {
                pings += 1;
                up += f.to_json().len() + CLIENT_HEADER;
            }
            TraceKind::Down(f @ ServerFrame::Pong { .. }) => {
                pongs += 1;
                down += f.to_json().len() + SERVER_HEADER;
            }
            TraceKind::Up(f) => panic!("an idle device sent {f:?}"),
            TraceKind::Down(f) => panic!("an idle device received {f:?}"),
            _ => {}
        }
    }
    // One ping every 10 s of silence, each answered.
    assert!((359..=361).contains(&pings), "{pings} pings in an hour");
    assert_eq!(pongs, pings);
    println!(
        "heartbeat: {pings} pings and {pongs} pongs an hour; {up} B up + {down} B down = {} B \
         an hour in WebSocket frames (TCP/IP headers and acks not counted)",
        up + down
    );
}
