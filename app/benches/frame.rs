//! CPU time per UI frame with 8 live devices and a full wire view, headless, no GPU:
//! layout and tessellation of the whole window, as a frame costs in the app.
//!
//! Frames run on a plain `egui::Context`, as eframe runs them. The app is built without
//! AccessKit (eframe's `accesskit` feature is off), so the tree egui_kittest builds for
//! its queries is not part of a real frame; the figure with the test harness is printed
//! too, for comparison.
//!
//! Also the scenario player's step back at the end of every lesson (it builds the world
//! again and redoes all but the last step), and the player's wire view holding 10,000
//! arrows: frames while it is scrolled, and a jump along the timeline (which builds the
//! world again, runs it to there and feeds the wire every arrow up to there).
//!
//! `cargo bench -p app --bench frame` — prints the figures recorded in BENCHMARKS.md
//! (`-- wire`: only the wire view at scale).
//! Targets: < 4 ms per frame; a step back (a jump anywhere in a lesson) < 100 ms.

use std::time::{Duration, Instant};

use app::gui::SyncLab;
use app::gui::live::{Live, LiveConfig};
use eframe::egui;
use egui_kittest::Harness;
use sync_core::engine::connection::ConnectionState;

const SIZE: egui::Vec2 = egui::vec2(1600.0, 1000.0);

/// One frame of the app on a plain context: layout, then tessellation.
fn frame(ctx: &egui::Context, app: &mut SyncLab) {
    let input = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, SIZE)),
        ..Default::default()
    };
    let output = ctx.run_ui(input, |ui| app.ui_root(ui));
    let primitives = ctx.tessellate(output.shapes, output.pixels_per_point);
    std::hint::black_box(primitives);
}

/// Mean, p50 and p99 of 200 timed frames, in ms.
fn time(mut one: impl FnMut()) -> (f64, f64, f64) {
    let mut times: Vec<Duration> = (0..200)
        .map(|_| {
            let start = Instant::now();
            one();
            start.elapsed()
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    (
        ms(mean),
        ms(times[times.len() / 2]),
        ms(times[times.len() * 99 / 100]),
    )
}

fn main() {
    // `cargo bench -p app --bench frame -- wire`: the player's wire at scale alone.
    if std::env::args().any(|a| a == "wire") {
        wire_at_scale();
        return;
    }
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
    let mut app = SyncLab::new(live, 8);
    let ctx = egui::Context::default();
    ctx.set_theme(egui::Theme::Light);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app
        .views()
        .iter()
        .all(|v| v.connection == ConnectionState::Connected)
    {
        assert!(Instant::now() < deadline, "devices did not connect");
        frame(&ctx, &mut app);
        std::thread::sleep(Duration::from_millis(5));
    }
    // Fill the wire view: every device likes every post a few times.
    let posts = ["post-1", "post-2", "post-3"];
    while app.wire().arrows().count() < 400 {
        let names: Vec<String> = app.panes().iter().map(|p| p.name.clone()).collect();
        for name in &names {
            for post in posts {
                let like = sync_core::protocol::Key::Like(post.into());
                app.act(name, app::gui::pane::PaneAction::Tap(like));
            }
        }
        for _ in 0..5 {
            frame(&ctx, &mut app);
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(20),
            "the wire did not fill"
        );
    }
    // Let the traffic settle, then time frames.
    for _ in 0..50 {
        frame(&ctx, &mut app);
        std::thread::sleep(Duration::from_millis(5));
    }
    let arrows = app.wire().arrows().count();
    let (mean, p50, p99) = time(|| frame(&ctx, &mut app));
    println!(
        "frame (8 devices, {arrows} wire arrows, 1600x1000): mean {mean:.2} ms, p50 {p50:.2} ms, p99 {p99:.2} ms (target < 4 ms)"
    );
    // The same app in the test harness, which also builds and diffs the AccessKit tree.
    let mut h = Harness::builder()
        .with_size(SIZE)
        .build_ui_state(|ui, app: &mut SyncLab| app.ui_root(ui), app);
    h.run_steps(5);
    let (mean, p50, p99) = time(|| h.step());
    println!(
        "  in egui_kittest's harness (with AccessKit): mean {mean:.2} ms, p50 {p50:.2} ms, p99 {p99:.2} ms"
    );
    drop(h);
    let _ = std::fs::remove_dir_all(&data);
    step_back();
    wire_at_scale();
}

/// The player with a run whose wire holds 10,000 arrows: frames at rest and while the
/// wire scrolls, and timeline jumps (each followed by the frame that shows it).
fn wire_at_scale() {
    use app::gui::player::Player;
    // A tap is a request, its ack and a push to each other device, fewer where taps on
    // one key coalesce: 3,500 taps fill the wire's 10,000 arrows.
    let mut text = String::from("scenario \"Ten thousand arrows\"\ndevices phone laptop tablet\n");
    for i in 0..3_500 {
        text.push_str(&format!("phone tap like/p{}\nwait 20ms\n", i % 3));
    }
    let mut player = Player::new("arrows.scn", &text);
    while player.step() {}
    let ctx = egui::Context::default();
    ctx.set_theme(egui::Theme::Light);
    let screen = egui::Rect::from_min_size(egui::Pos2::ZERO, SIZE);
    // Over the wire panel, at the bottom of the window.
    let over_wire = egui::pos2(SIZE.x / 2.0, SIZE.y - 80.0);
    // Frames at 60 a second, so a wheel's smooth scrolling moves on between them.
    let clock = std::cell::Cell::new(0.0);
    let frame = |player: &mut Player, events: Vec<egui::Event>| {
        clock.set(clock.get() + 1.0 / 60.0);
        let input = egui::RawInput {
            screen_rect: Some(screen),
            time: Some(clock.get()),
            events,
            ..Default::default()
        };
        let output = ctx.run_ui(input, |ui| {
            egui::CentralPanel::default().show(ui, |ui| player.ui(ui));
        });
        std::hint::black_box(ctx.tessellate(output.shapes, output.pixels_per_point));
    };
    let player = &mut player;
    for _ in 0..5 {
        frame(player, vec![egui::Event::PointerMoved(over_wire)]);
    }
    let arrows = player.wire_labels().len();
    let (mean, p50, p99) = time(|| frame(player, Vec::new()));
    println!(
        "player, wire of {arrows} arrows at rest: mean {mean:.2} ms, p50 {p50:.2} ms, p99 {p99:.2} ms (target < 4 ms)"
    );
    let mut up = true;
    let mut n = 0;
    let (mean, p50, p99) = time(|| {
        // Up for a while, then down again: every frame shows other rows.
        n += 1;
        if n % 100 == 0 {
            up = !up;
        }
        let delta = egui::vec2(0.0, if up { 3.0 } else { -3.0 });
        frame(
            player,
            vec![
                egui::Event::PointerMoved(over_wire),
                egui::Event::MouseWheel {
                    unit: egui::MouseWheelUnit::Line,
                    delta,
                    phase: egui::TouchPhase::Move,
                    source: egui::MouseWheelSource::Wheel,
                    modifiers: egui::Modifiers::NONE,
                },
            ],
        );
    });
    println!(
        "  while it scrolls: mean {mean:.2} ms, p50 {p50:.2} ms, p99 {p99:.2} ms (target < 4 ms)"
    );
    let Some((_, total)) = player.timeline() else {
        return;
    };
    let mut jumps = Vec::new();
    for i in 1..=20 {
        let start = Instant::now();
        player.scrub_to(total * (i % 10) / 10);
        frame(player, Vec::new());
        jumps.push(start.elapsed());
    }
    let (mean, worst) = mean_and_worst(&jumps);
    println!(
        "  a timeline jump over its {total} events, and the frame that shows it: mean {mean:.1} ms, worst {worst:.1} ms (target < 100 ms)"
    );
}

/// The player's step back at the end of each built-in lesson: mean and worst, in ms.
fn step_back() {
    use app::gui::player::{LESSONS, Player};
    let mut times = Vec::new();
    for _ in 0..10 {
        for (name, text) in LESSONS {
            let mut player = Player::new(name, text);
            while player.step() {}
            let start = Instant::now();
            assert!(player.step_back());
            times.push(start.elapsed());
        }
    }
    let (mean, worst) = mean_and_worst(&times);
    println!(
        "player step back at the end of each of {} lessons: mean {mean:.3} ms, worst {worst:.3} ms (target < 100 ms)",
        LESSONS.len()
    );
}

/// The mean and the worst of some timings, in ms.
fn mean_and_worst(times: &[Duration]) -> (f64, f64) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    (
        ms(mean),
        ms(times.iter().max().copied().unwrap_or_default()),
    )
}
