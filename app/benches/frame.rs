//! CPU time per UI frame with 8 live devices and a full wire view, headless (egui_kittest,
//! no GPU): layout and tessellation of the whole window, as a frame costs in the app.
//!
//! `cargo bench -p app --bench frame` — prints the figures recorded in BENCHMARKS.md.
//! Target: < 4 ms per frame.

use std::time::{Duration, Instant};

use app::gui::SyncLab;
use app::gui::live::{Live, LiveConfig};
use egui_kittest::Harness;
use sync_core::engine::connection::ConnectionState;

fn main() {
    let data = std::env::temp_dir().join(format!("sync-lab-frame-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let live = Live::start(
        rt,
        &LiveConfig {
            data: data.clone(),
            server: None,
            port: 0,
        },
        std::sync::Arc::new(|| {}),
    )
    .expect("the embedded server starts");
    let mut h = Harness::builder()
        .with_size(eframe::egui::vec2(1600.0, 1000.0))
        .build_ui_state(
            |ui, app: &mut SyncLab| app.ui_root(ui),
            SyncLab::new(live, 8),
        );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !h
        .state()
        .panes()
        .iter()
        .all(|p| p.handle.view().connection == ConnectionState::Connected)
    {
        assert!(Instant::now() < deadline, "devices did not connect");
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    // Fill the wire view: every device likes every post a few times.
    let posts = ["post-1", "post-2", "post-3"];
    while h.state().wire().arrows().count() < 400 {
        for p in h.state().panes() {
            for post in posts {
                p.handle
                    .tap(sync_core::protocol::Key::Like(post.to_string()));
            }
        }
        for _ in 0..5 {
            h.step();
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(20),
            "the wire did not fill"
        );
    }
    // Let the traffic settle, then time frames.
    for _ in 0..50 {
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut times = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        h.step();
        times.push(start.elapsed());
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    let p50 = times[times.len() / 2];
    let p99 = times[times.len() * 99 / 100];
    println!(
        "frame (8 devices, {} wire arrows, 1600x1000): mean {:.2} ms, p50 {:.2} ms, p99 {:.2} ms (target < 4 ms)",
        h.state().wire().arrows().count(),
        mean.as_secs_f64() * 1e3,
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
    );
    drop(h);
    let _ = std::fs::remove_dir_all(&data);
}
