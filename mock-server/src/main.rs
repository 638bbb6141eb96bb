//! `mock-server`: the Sync Lab server, standalone, for QA of any client that speaks
//! PROTOCOL.md (the app's devices, a script, a real mobile app).

/// jemalloc, not glibc's allocator: after a burst of slow readers or thousands of idle
/// devices leave, glibc kept every byte of the peak in its arenas; jemalloc (with its
/// background purging, [`mock_server::memory`]) gives it back within seconds, and was
/// 1.26–1.37× as fast in `loadgen` (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mock_server::core::{DEMO_TOKEN, DEMO_USER};
use mock_server::net::{ServerConfig, check_exposure, start};
use mock_server::redb_store::RedbStore;

/// The Sync Lab mock server: PROTOCOL.md over WebSocket at ws://ADDR/sync, with every
/// acknowledged write kept in a redb store.
///
/// With no --token or --tokens-file it serves one user, `demo`, with token `demo-token`
/// (and then only on a loopback address). Logs go to stderr; set RUST_LOG (e.g.
/// RUST_LOG=debug) for more. Ctrl-C or SIGTERM stops it cleanly: every connection gets
/// close 1001, pending commits finish, exit 0.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    /// Address to listen on. Loopback by default: the server is for testing. Any other
    /// address is logged as a risk, and refused with the default token.
    #[arg(long, default_value = "127.0.0.1:8787")]
    addr: SocketAddr,
    /// Directory of the store (created if missing). Default: $XDG_DATA_HOME/sync-lab/server
    /// (or ~/.local/share/sync-lab/server).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// A user and its token, as USER=TOKEN. Repeat for more users.
    #[arg(long = "token", value_name = "USER=TOKEN", value_parser = mock_server::tokens::parse_pair)]
    tokens: Vec<(String, String)>,
    /// A file of users and tokens, one USER=TOKEN a line (# starts a comment line): they
    /// stay out of the process list. Taken together with any --token.
    #[arg(long, value_name = "PATH")]
    tokens_file: Option<PathBuf>,
    /// Enables fault control at ws://ADDR/admin with this token: link latency, hold,
    /// release and drop per device, forced rejections, disconnects, server writes (JSON
    /// commands; see the README). Without it /admin does not exist.
    #[arg(long, value_name = "TOKEN")]
    admin_token: Option<String>,
    /// A web page origin allowed to connect, exactly as browsers send it (e.g.
    /// http://localhost:5173). Repeat for more. Requests with any other Origin header get
    /// 403; native clients send none and are always allowed.
    #[arg(long = "allow-origin", value_name = "ORIGIN", value_parser = mock_server::net::allowed_origin)]
    allow_origins: Vec<String>,
    /// A connection's outbound queue holds this many KiB at most (besides 1024 frames);
    /// a client that falls further behind is closed `resync` (4009). Smaller values make
    /// a slow reader overflow sooner, for QA.
    #[arg(long, value_name = "KIB", default_value_t = (mock_server::net::OUTBOUND_BYTES >> 10) as u64,
          value_parser = clap::value_parser!(u64).range(64..=1 << 20))]
    max_queue_kib: u64,
    /// Open connections at most; beyond, upgrades are answered 503.
    #[arg(long, value_name = "N", default_value_t = mock_server::net::MAX_CONNECTIONS)]
    max_connections: usize,
    /// Once more than N token checks from one source address failed within a minute, its
    /// further attempts get `too_many_attempts` (0: no limit, for QA setups that test
    /// failures in bulk).
    #[arg(long, value_name = "N", default_value_t = mock_server::core::guard::MAX_AUTH_FAILURES)]
    max_auth_failures: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    mock_server::memory::give_back_freed_memory();
    let tokens = match mock_server::tokens::gather(cli.tokens, cli.tokens_file.as_deref()) {
        Ok(tokens) => tokens,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let config = ServerConfig {
        addr: cli.addr,
        tokens,
        admin_token: cli.admin_token,
        allow_origins: cli.allow_origins,
        max_connections: cli.max_connections,
        max_queue_bytes: (cli.max_queue_kib << 10) as usize,
        max_auth_failures: cli.max_auth_failures,
    };
    // Before anything is opened: a refused address leaves no store behind.
    if let Err(e) = check_exposure(&config) {
        tracing::error!("{e}");
        return ExitCode::from(2);
    }
    let dir = cli
        .data
        .unwrap_or_else(|| mock_server::paths::data_home().join("server"));
    let store = match RedbStore::open(&dir) {
        Ok(store) => store,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
    };
    if config.tokens.is_empty() {
        tracing::info!("no token given: serving user `{DEMO_USER}` with token `{DEMO_TOKEN}`");
    }
    let server = match start(config, store).await {
        Ok(server) => server,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
    };
    println!("listening on {} (store in {})", server.url(), dir.display());
    let signal = stop_signal().await;
    tracing::info!("{signal}: shutting down");
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM, and names it.
async fn stop_signal() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
