//! Sync Lab: the desktop app and the headless scenario runner.
//!
//! `cargo run -p app` opens the window: devices of one user sync through the embedded
//! server over real WebSockets on 127.0.0.1. `cargo run -p app -- run FILE...` runs
//! scenarios headless.

use app::{gui, run};

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

/// Sync Lab makes multi-device optimistic sync visible.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Start with this many fresh devices (1..=8) instead of the devices, names,
    /// strategies and network settings of the last run (2 on the first run).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=8))]
    devices: Option<u8>,
    /// Use this server (ws://HOST:PORT/sync) instead of the embedded one.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// With --server: the user the devices sign in as.
    #[arg(long, requires = "server", default_value = "demo")]
    user: String,
    /// With --server: that user's token.
    #[arg(long, requires = "server", default_value = "demo-token")]
    token: String,
    /// With --server: the server's admin token (its --admin-token). The holds, link
    /// settings, held frames, restart, reject next and the server's table go through its
    /// admin socket; without it they are shown off, saying why.
    #[arg(long, requires = "server", value_name = "TOKEN")]
    admin_token: Option<String>,
    /// The embedded server's port on 127.0.0.1 (default: any free port), so other clients
    /// and test tools can reach it at a known address.
    #[arg(long, default_value_t = 0, conflicts_with = "server")]
    port: u16,
    /// The app's data directory (server store, device snapshots). Default:
    /// $XDG_DATA_HOME/sync-lab/app (or ~/.local/share/sync-lab/app).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Start from nothing: delete the data directory first (store, snapshots, layout).
    #[arg(long)]
    reset: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run scenario files headless: prints the trace and PASS / FAIL per file.
    /// Exit code 0 when every expectation held, 1 when one failed, 2 when a file could
    /// not be read or parsed.
    Run {
        /// Scenario files (`*.scn`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Seed of the simulator's RNG (jitter, loss, backoff).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print only the verdicts.
        #[arg(long)]
        quiet: bool,
        /// Also write the run's wire diagram as SVG (one FILE only).
        #[arg(long, value_name = "OUT.svg")]
        svg: Option<PathBuf>,
        /// Also write it as a Mermaid sequenceDiagram (one FILE only).
        #[arg(long, value_name = "OUT.mmd")]
        mermaid: Option<PathBuf>,
        /// Also write the trace as JSON lines (one FILE only).
        #[arg(long, value_name = "OUT.jsonl")]
        trace_json: Option<PathBuf>,
        /// Open FILE in the player instead, played to its first broken invariant or
        /// failed expectation (a counterexample the random-schedule tests wrote, say).
        /// Exits as `run` would (0 or 1) once the window is closed.
        #[arg(long, conflicts_with_all = ["svg", "mermaid", "trace_json", "quiet"])]
        open_at_failure: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Run {
        files,
        seed,
        quiet,
        svg,
        mermaid,
        trace_json,
        open_at_failure,
    }) = cli.command
    {
        if open_at_failure {
            return open_at_failure_in_player(&files, seed);
        }
        let exports = run::Exports {
            svg,
            mermaid,
            trace_json,
        };
        return ExitCode::from(run::run_files(&files, seed, quiet, &exports));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,app=info".into()),
        )
        .init();
    let data = cli
        .data
        .unwrap_or_else(|| mock_server::paths::data_home().join("app"));
    if cli.reset
        && data.exists()
        && let Err(e) = std::fs::remove_dir_all(&data)
    {
        tracing::error!("cannot reset {}: {e}", data.display());
        return ExitCode::from(1);
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let config = gui::live::LiveConfig {
        data,
        server: cli.server.map(|url| gui::live::External {
            url,
            user: cli.user,
            token: cli.token,
            admin_token: cli.admin_token,
        }),
        port: cli.port,
    };
    let devices = cli.devices.map(usize::from);
    let options = eframe::NativeOptions {
        // In the data directory, so `--data` and `--reset` cover it too.
        persistence_path: Some(config.data.join("app.ron")),
        ..window("Sync Lab")
    };
    let result = eframe::run_native(
        "Sync Lab",
        options,
        Box::new(move |cc| {
            // A light frame around the panes, so a pane in its synced dark mode stands out.
            cc.egui_ctx.set_theme(eframe::egui::Theme::Light);
            let ctx = cc.egui_ctx.clone();
            let repaint = Arc::new(move || ctx.request_repaint());
            let live = gui::live::Live::start(rt, &config, repaint)?;
            let layout = match devices {
                Some(n) => gui::layout::Layout::first(n),
                None => saved_layout(cc.storage),
            };
            Ok(Box::new(gui::SyncLab::with_layout(live, &layout)))
        }),
    );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("Sync Lab could not open its window: {e}");
            ExitCode::from(1)
        }
    }
}

/// The app's window: its size and title.
fn window(title: &str) -> eframe::NativeOptions {
    eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_inner_size([1400.0, 900.0])
            .with_title(title),
        ..Default::default()
    }
}

/// `run --open-at-failure FILE`: the player alone in a window, played to the file's first
/// failure. Says on stdout what it found, as `run` would.
fn open_at_failure_in_player(files: &[PathBuf], seed: u64) -> ExitCode {
    let [path] = files else {
        println!(
            "ERROR --open-at-failure opens one FILE, not {}",
            files.len()
        );
        return ExitCode::from(run::BROKEN);
    };
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            println!("ERROR {name}: cannot read: {e}");
            return ExitCode::from(run::BROKEN);
        }
    };
    if let Err(e) = mock_server::scenario::parse(&name, &text) {
        println!("ERROR {e}");
        return ExitCode::from(run::BROKEN);
    }
    // Opened as the file box opens a file: its path stays in the box.
    let mut player = gui::player::Player::default();
    player.set_seed(seed);
    player.open(&name, &text);
    // The exit code is `run`'s for the same file, once the window is closed.
    let failed = player.to_failure();
    let code = match player.verdict().cloned() {
        Some(mock_server::scenario::Verdict::Fail { line, message }) if failed => {
            println!("FAIL {name}:{line}: {message} (the player opens there)");
            run::FAIL
        }
        _ => {
            println!("PASS {name} (nothing fails: the player opens at the end)");
            run::PASS
        }
    };
    let result = eframe::run_native(
        "Sync Lab player",
        window(&format!("Sync Lab player: {name}")),
        Box::new(move |cc| {
            cc.egui_ctx.set_theme(eframe::egui::Theme::Light);
            Ok(Box::new(player))
        }),
    );
    match result {
        Ok(()) => ExitCode::from(code),
        Err(e) => {
            println!("ERROR the player could not open its window: {e}");
            ExitCode::from(run::BROKEN)
        }
    }
}

/// The devices as the last run left them; two fresh ones on the first run, or when the
/// saved layout is damaged (with a warning saying what was wrong).
fn saved_layout(storage: Option<&dyn eframe::Storage>) -> gui::layout::Layout {
    let saved = storage.and_then(|s| s.get_string(gui::layout::STORAGE_KEY));
    match saved.map(|text| gui::layout::Layout::from_json(&text)) {
        Some(Ok(layout)) => layout,
        Some(Err(e)) => {
            tracing::warn!("ignoring the saved layout ({e}): starting with two devices");
            gui::layout::Layout::first(2)
        }
        None => gui::layout::Layout::first(2),
    }
}
