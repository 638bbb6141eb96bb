//! Helpers shared by the UI tests: an app on a live backend, stepped until something holds,
//! clicked as a person clicks.

// Each test file uses some of them.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use app::gui::SyncLab;
use app::gui::live::{Live, LiveConfig};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use sync_core::engine::connection::ConnectionState;

/// A data directory of this test process.
pub fn data_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("sync-lab-ui-{name}-{}", std::process::id()))
}

/// An embedded server and a runtime for devices, on a fresh data directory.
pub fn live(name: &str) -> Live {
    live_on(name, 0)
}

/// The same, with the embedded server on a given port (0: any free one).
pub fn live_on(name: &str, port: u16) -> Live {
    let data = data_dir(name);
    let _ = std::fs::remove_dir_all(&data);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = LiveConfig {
        data,
        server: None,
        port,
    };
    Live::start(rt, &config, std::sync::Arc::new(|| {})).unwrap()
}

pub fn app(devices: usize, name: &str) -> SyncLab {
    SyncLab::new(live(name), devices)
}

/// Steps the UI until `done` holds (the devices run on other threads). The deadline is
/// generous: a reconnect after a server restart backs off with jitter, and CI renders the
/// snapshot tests on the CPU at the same time.
pub fn step_until(h: &mut Harness<'_, SyncLab>, what: &str, done: impl Fn(&SyncLab) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(h.state()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    h.step();
}

/// Clicks the widget labelled `label` as a person would: kittest moves the pointer, presses
/// and releases in three frames (a widget that moved in between under the pointer misses
/// the click, so click while nothing is about to change the layout), then the pointer
/// leaves. A pointer left resting on a widget keeps it hovered: its
/// highlight would show in later snapshots, and its tooltip would open over whatever
/// lies beneath.
pub fn click(h: &mut Harness<'_, SyncLab>, label: &str) {
    h.get_by_label(label).click();
    h.step();
    h.remove_cursor();
}

/// Steps until every device is connected.
pub fn until_connected(h: &mut Harness<'_, SyncLab>) {
    step_until(h, "every device connected", |a| {
        a.views()
            .iter()
            .all(|v| v.connection == ConnectionState::Connected)
    });
}

/// The app in a 1400×900 window, in the light theme `main` gives it.
pub fn harness(app: SyncLab) -> Harness<'static, SyncLab> {
    let h = Harness::builder()
        .with_size(eframe::egui::vec2(1400.0, 900.0))
        .build_ui_state(|ui, app: &mut SyncLab| app.ui_root(ui), app);
    h.ctx.set_theme(eframe::egui::Theme::Light);
    h
}

/// The standalone `mock-server` binary, running on a free loopback port; killed on drop.
pub struct StandaloneServer {
    child: std::process::Child,
    /// Its sync endpoint.
    pub url: String,
}

impl StandaloneServer {
    /// Starts the binary with these extra arguments, on a fresh data directory. The binary
    /// is the workspace's own (`cargo test` builds it for mock-server's tests; a run of
    /// the app's tests alone builds it first).
    pub fn start(name: &str, args: &[&str]) -> StandaloneServer {
        use std::io::BufRead;
        let data = data_dir(name);
        let _ = std::fs::remove_dir_all(&data);
        let mut child = std::process::Command::new(mock_server_binary())
            .args(["--addr", "127.0.0.1:0", "--data"])
            .arg(&data)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the mock-server binary starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("its stdout"))
            .read_line(&mut line)
            .expect("it prints its address");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("ws://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_string();
        StandaloneServer { child, url }
    }
}

impl Drop for StandaloneServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target/<profile>/mock-server`, beside this test's own directory; built if missing.
fn mock_server_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let binary = dir.join("mock-server");
    if !binary.exists() {
        let built = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "mock-server", "--bin", "mock-server"])
            .status()
            .expect("cargo runs");
        assert!(built.success(), "cargo build -p mock-server failed");
    }
    binary
}
