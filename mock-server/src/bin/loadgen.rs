//! `loadgen`: how fast is the live server, and how close to its transport's ceiling?
//!
//! The server runs in a child process (this same binary, `serve` mode) so that its memory
//! can be read on its own from `/proc`, with its redb store in a fresh temporary directory.
//! The load comes from this process, over loopback WebSockets, in three phases:
//!
//! 1. **Throughput.** Many devices (several users, several devices each), each keeping a
//!    window of writes in flight, paced under the per-connection rate limit (PROTOCOL.md:
//!    200 frames/s). Counts durable writes acknowledged per second, and pushes delivered
//!    per second to the other devices of each user.
//! 2. **The ceilings.** The same clients, the same frames, against two bare
//!    tokio-tungstenite servers, each printed as a ratio. The *echo* server sends each
//!    frame back and nothing else: one frame out per write, where the sync server sends
//!    an ack and a push to each of the user's devices. The *relay* server sends the same
//!    frames as the sync server (each frame back, and a push of it to every connection of
//!    its user) but decodes, checks and stores nothing: the transport's ceiling for this
//!    traffic, so `sync/relay` is what the server's own work costs.
//! 3. **Latency.** 100 devices at 1,000 writes/s in all, on a fixed schedule (open loop):
//!    ack latency measured from each write's *scheduled* time, so a stalled server cannot
//!    hide its stall (no coordinated omission).
//! 4. **Slow readers.** The latency phase again, while another user's K devices read
//!    nothing and a writer of theirs posts long comments (every push carries the post's
//!    whole list): their queues fill to the byte bound and they are closed. The others' ack
//!    latency should not notice (PROTOCOL.md, "Isolation of load"); the server's memory
//!    stays within its bounds and falls back once they are gone.
//! 5. **Idle devices.** N devices connect, say `hello` and then nothing: the server's
//!    memory per idle connection.
//!
//! Frames are classified by their `type` alone: answers (`ack`, `reject`, or the echo)
//! come back in the order the writes were sent on a connection, so no id needs matching.
//!
//! One file because it is one standalone program whose workloads share its connection
//! and report code; the server it measures is in the library.

/// The server's allocator, as in the `mock-server` binary (see its docs).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use mock_server::net::{READ_BUFFER, ServerConfig, start};
use mock_server::redb_store::RedbStore;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Load generator for the Sync Lab server: durable writes/s, pushes delivered/s, ack
/// latency and server memory, against a bare WebSocket echo server as the ceiling.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    /// Users in the throughput phase.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=1000))]
    users: u32,
    /// Devices (connections) per user; each write is pushed to the user's other devices.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    devices_per_user: u32,
    /// Writes in flight per connection in the throughput phase.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    window: u32,
    /// Writes per second per connection at most: under the server's limit of 200.
    #[arg(long, default_value_t = 190.0, value_parser = pace)]
    pace: f64,
    /// Length of each phase, in seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
    /// Devices in the latency phase (one user).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    latency_devices: u32,
    /// Writes per second in all in the latency phase.
    #[arg(long, default_value_t = 1000.0, value_parser = positive)]
    latency_rate: f64,
    /// Connections that read nothing in the slow-readers phase.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    slow_readers: u32,
    /// Idle devices in the last phase (each takes a file descriptor here and one in the
    /// server: raise `ulimit -n` above it).
    #[arg(long, default_value_t = 8000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    idle_devices: u32,
    /// Seconds to wait after the slow readers and the idle devices left, before reading the
    /// server's memory again. The default outlasts the resync grace (10 s), after which no
    /// connection of theirs can be left.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(0..=600))]
    settle: u64,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// (Internal) serve until stdin closes, printing the address first.
    #[command(hide = true)]
    Serve {
        /// `sync` (the real server, redb store), `echo` or `relay`.
        kind: ServerKind,
        /// The sync server's store directory.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Users to create (`u0`…, tokens `t0`…).
        #[arg(long, default_value_t = 1)]
        users: u32,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ServerKind {
    Sync,
    Echo,
    Relay,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start tokio: {e}")),
    };
    let result = match cli.mode {
        Some(Mode::Serve { kind, data, users }) => rt.block_on(serve(kind, data, users)),
        None => rt.block_on(run(&cli)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// A rate in writes per second: a positive number.
fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("`{s}` is not a positive number")),
    }
}

/// A per-connection rate that the server's rate limit (200 frames/s) lets through.
fn pace(s: &str) -> Result<f64, String> {
    positive(s).and_then(|r| {
        if r <= 200.0 {
            Ok(r)
        } else {
            Err(format!(
                "{r}/s is over the server's limit of 200 frames/s per connection"
            ))
        }
    })
}

fn fail(message: &str) -> ExitCode {
    println!("loadgen: {message}");
    ExitCode::FAILURE
}

// ---------------------------------------------------------------------------------------
// The child: a server that lives until its parent closes stdin.

async fn serve(kind: ServerKind, data: Option<PathBuf>, users: u32) -> Result<(), String> {
    mock_server::memory::give_back_freed_memory();
    let addr: std::net::SocketAddr = "127.0.0.1:0".parse().expect("a literal address");
    let mut stop_sync = None;
    let bound = match kind {
        ServerKind::Sync => {
            let dir = data.ok_or("the sync server needs --data")?;
            let store = RedbStore::open(&dir).map_err(|e| e.to_string())?;
            let tokens = (0..users).map(|u| (format!("t{u}"), format!("u{u}")));
            let config = ServerConfig {
                addr,
                tokens: tokens.collect(),
                ..ServerConfig::default()
            };
            let server = start(config, store).await.map_err(|e| e.to_string())?;
            let bound = server.addr;
            stop_sync = Some(server);
            bound
        }
        ServerKind::Echo | ServerKind::Relay => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| e.to_string())?;
            let bound = listener.local_addr().map_err(|e| e.to_string())?;
            match kind {
                ServerKind::Relay => tokio::spawn(relay(listener)),
                _ => tokio::spawn(echo(listener)),
            };
            bound
        }
    };
    println!("{bound}");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    // The parent closes our stdin when it is done (or dies).
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
    })
    .await
    .map_err(|e| e.to_string())?;
    if let Some(server) = stop_sync {
        server.shutdown().await;
    }
    Ok(())
}

/// The transport's ceiling: every text frame straight back, nothing else.
async fn echo(listener: tokio::net::TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let Ok(ws) =
                tokio_tungstenite::accept_async_with_config(stream, Some(ws_config())).await
            else {
                return;
            };
            let (mut tx, mut rx) = ws.split();
            while let Some(Ok(msg)) = rx.next().await {
                if msg.is_text() && tx.send(msg).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// The connections of each user (by token) in the relay server: where a frame's pushes go.
type Members = HashMap<String, Vec<(u64, mpsc::UnboundedSender<Message>)>>;
type Relayed = Arc<Mutex<Members>>;

/// The transport's ceiling for the sync server's traffic: the same frames in and out,
/// nothing else. A connection's first frame (its `hello`) names its user and is answered
/// with a `welcome`; every later text frame goes straight back to its sender (the answer)
/// and, retyped as a `push`, to each connection of its user, the sender included, as the
/// sync server pushes a write to all its user's devices. Nothing is decoded after the
/// `hello`, nothing checked, nothing stored.
async fn relay(listener: tokio::net::TcpListener) {
    let users = Relayed::default();
    let mut next_id = 0;
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        next_id += 1;
        tokio::spawn(relay_connection(stream, next_id, users.clone()));
    }
}

async fn relay_connection(stream: tokio::net::TcpStream, id: u64, users: Relayed) {
    #[derive(Deserialize)]
    struct Hello {
        token: String,
    }
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(ws_config())).await
    else {
        return;
    };
    let (mut tx, mut rx) = ws.split();
    let Some(Ok(Message::Text(hello))) = rx.next().await else {
        return;
    };
    let Ok(Hello { token }) = serde_json::from_str(&hello) else {
        return;
    };
    let (out, mut queue) = mpsc::unbounded_channel();
    let _ = out.send(Message::text(r#"{"type":"welcome"}"#.to_string()));
    let member = (id, out.clone());
    lock(&users).entry(token.clone()).or_default().push(member);
    // The writer feeds whatever is waiting and flushes once, as the sync server does.
    let writer = tokio::spawn(async move {
        while let Some(first) = queue.recv().await {
            let mut next = Some(first);
            while let Some(message) = next {
                if tx.feed(message).await.is_err() {
                    return;
                }
                next = queue.try_recv().ok();
            }
            if tx.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(message)) = rx.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let push = Message::text(text.replacen(r#""type":"set""#, r#""type":"push""#, 1));
        let _ = out.send(Message::Text(text));
        for (_, to) in lock(&users).get(&token).into_iter().flatten() {
            let _ = to.send(push.clone());
        }
    }
    if let Some(members) = lock(&users).get_mut(&token) {
        members.retain(|(other, _)| *other != id);
    }
    writer.abort();
}

fn lock(users: &Relayed) -> std::sync::MutexGuard<'_, Members> {
    users
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Both ends read with the server's buffer size (see [`READ_BUFFER`]), so the echo server
/// is the ceiling of the transport as the sync server uses it.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER)
}

/// A server child process; killed when dropped.
struct ServerProcess {
    child: Child,
    addr: String,
}

impl ServerProcess {
    fn spawn(kind: &str, data: &std::path::Path, users: u32) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(["serve", kind, "--users", &users.to_string(), "--data"])
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the server process: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let addr = line.trim().to_string();
        if addr.is_empty() {
            return Err(format!("the {kind} server did not start"));
        }
        Ok(ServerProcess { child, addr })
    }

    /// CPU time the server has used so far.
    fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(self.child.id())
    }

    /// `(peak, current)` resident memory in KiB, from `/proc`.
    fn rss_kib(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        };
        Some((field("VmHWM:")?, field("VmRSS:")?))
    }
}

/// CPU time process `pid` has used so far (user and system), from `/proc`: with the
/// machine's speed drifting from run to run, CPU per write says more about a process's
/// own cost than writes per second do.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces:
    // utime and stime are the 14th and 15th fields, in clock ticks (100 a second).
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // asks it to stop cleanly
        if self.child.wait().is_err() {
            let _ = self.child.kill();
        }
    }
}

// ---------------------------------------------------------------------------------------
// The parent: the phases.

async fn run(cli: &Cli) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("sync-lab-loadgen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = phases(cli, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn phases(cli: &Cli, dir: &std::path::Path) -> Result<(), String> {
    let conns = cli.users * cli.devices_per_user;
    let phase = Duration::from_secs(cli.seconds);
    println!(
        "loadgen: {conns} connections ({} users x {} devices), window {}, at most {}/s each, {} s per phase",
        cli.users, cli.devices_per_user, cli.window, cli.pace, cli.seconds
    );
    let throughput = Load {
        users: cli.users,
        devices_per_user: cli.devices_per_user,
        window: cli.window as usize,
        rate: cli.pace,
        length: phase,
    };

    let sync = ServerProcess::spawn("sync", &dir.join("throughput"), cli.users)?;
    let t = throughput.run(&sync.addr, true).await?;
    let (peak, _) = sync.rss_kib().unwrap_or_default();
    let sync_cpu = sync.cpu_seconds();
    drop(sync);
    let writes = t.answers as f64 / t.elapsed;
    let pushes = t.pushes as f64 / t.elapsed;
    println!(
        "sync server   {writes:>9.0} durable writes/s   {pushes:>9.0} pushes delivered/s   ({} rejected)",
        t.rejects
    );

    let echo = ServerProcess::spawn("echo", &dir.join("echo"), 1)?;
    let e = throughput.run(&echo.addr, false).await?;
    drop(echo);
    let echoes = e.answers as f64 / e.elapsed;
    println!(
        "echo server   {echoes:>9.0} round trips/s      sync/echo = {:.2}   (one frame back per write)",
        writes / echoes
    );
    let relay = ServerProcess::spawn("relay", &dir.join("relay"), 1)?;
    let r = throughput.run(&relay.addr, true).await?;
    let relay_cpu = relay.cpu_seconds();
    drop(relay);
    let relayed = r.answers as f64 / r.elapsed;
    println!(
        "relay server  {relayed:>9.0} writes/s     {:>9.0} pushes delivered/s   sync/relay = {:.2}   (the same frames, no store: this traffic's ceiling)",
        r.pushes as f64 / r.elapsed,
        writes / relayed
    );
    let per_write = |cpu: Option<f64>, t: &Tally| match cpu {
        Some(s) => format!("{:.1} µs", s * 1e6 / t.answers.max(1) as f64),
        None => "unknown".into(),
    };
    println!(
        "server CPU    {} per write in the sync server, {} in the relay (the whole phase, connecting included)",
        per_write(sync_cpu, &t),
        per_write(relay_cpu, &r)
    );
    println!(
        "client CPU    {} per write against the sync server, {} against the relay (loadgen's own, on the same cores)",
        per_write(t.client_cpu, &t),
        per_write(r.client_cpu, &r)
    );
    let offered = cli.pace * f64::from(conns);
    if writes.max(echoes).max(relayed) > 0.95 * offered {
        println!(
            "  (the offered load, {offered:.0}/s, was a limit: add --users for more connections)"
        );
    }

    // The latency phase keeps the throughput phase's devices per user (each write fans out
    // to the user's other devices), with as many users as it takes.
    let per_user = cli.devices_per_user.min(cli.latency_devices);
    let latency = Load {
        users: cli.latency_devices.div_ceil(per_user),
        devices_per_user: per_user,
        window: usize::MAX,
        rate: cli.latency_rate / f64::from(cli.latency_devices.div_ceil(per_user) * per_user),
        length: phase,
    };
    let sync = ServerProcess::spawn("sync", &dir.join("latency"), latency.users)?;
    let l = latency.run(&sync.addr, true).await?;
    let (peak2, now) = sync.rss_kib().unwrap_or_default();
    drop(sync);
    let echo = ServerProcess::spawn("echo", &dir.join("echo"), 1)?;
    let e = latency.run(&echo.addr, false).await?;
    drop(echo);
    println!(
        "ack latency   {} devices ({per_user} per user) at {:.0} writes/s: {}",
        latency.users * per_user,
        l.answers as f64 / l.elapsed,
        l.latency_summary()
    );
    println!("echo latency  the same load: {}", e.latency_summary());
    println!(
        "server RSS    peak {:.1} MiB under throughput, {:.1} MiB peak / {:.1} MiB after the latency phase",
        mib(peak),
        mib(peak2),
        mib(now)
    );
    slow_readers(cli, dir, &latency, &l).await?;
    idle_devices(cli, dir).await
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Phase 4: the latency load beside a user whose devices read nothing.
async fn slow_readers(
    cli: &Cli,
    dir: &std::path::Path,
    latency: &Load,
    without: &Tally,
) -> Result<(), String> {
    // The slow user is the one after the latency phase's users.
    let slow_user = latency.users;
    let sync = ServerProcess::spawn("sync", &dir.join("slow"), slow_user + 1)?;
    let (_, before) = sync.rss_kib().unwrap_or_default();
    let url = format!("ws://{}/sync", sync.addr);
    let mut stuck = Vec::new();
    for d in 0..cli.slow_readers {
        stuck.push(stuck_device(&url, slow_user, d).await?);
    }
    let filler = tokio::spawn(post_long_comments(
        url.clone(),
        slow_user,
        Instant::now() + latency.length,
    ));
    let with = latency.run(&sync.addr, true).await?;
    let (peak, during) = sync.rss_kib().unwrap_or_default();
    let posted = filler.await.map_err(|e| e.to_string())??;
    drop(stuck);
    let settle = Duration::from_secs(cli.settle);
    tokio::time::sleep(settle).await;
    let (_, after) = sync.rss_kib().unwrap_or_default();
    drop(sync);
    let p99 = |t: &Tally| t.quantile(0.99).as_secs_f64() * 1000.0;
    println!(
        "slow readers  {} devices reading nothing, {posted} long comments pushed to them: ack latency of the others {}; p99 {:.2} ms vs {:.2} ms without = {:.2}x",
        cli.slow_readers,
        with.latency_summary(),
        p99(&with),
        p99(without),
        p99(&with) / p99(without)
    );
    let bound = f64::from(cli.slow_readers) * mock_server::net::OUTBOUND_BYTES as f64 / 1048576.0;
    println!(
        "              server RSS {:.1} MiB before, peak {:.1} MiB (queue bounds: {bound:.0} MiB), {:.1} MiB at the end, {:.1} MiB {} s after they left",
        mib(before),
        mib(peak),
        mib(during),
        mib(after),
        settle.as_secs()
    );
    Ok(())
}

/// A device of `user` whose kernel buffer takes 4 KiB and which reads nothing after its
/// `welcome`.
async fn stuck_device(url: &str, user: u32, d: u32) -> Result<Ws, String> {
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches("/sync")
        .parse()
        .map_err(|e| format!("{url}: {e}"))?;
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .set_recv_buffer_size(4096)
        .map_err(|e| e.to_string())?;
    let stream = socket.connect(addr).await.map_err(|e| e.to_string())?;
    let (mut ws, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .map_err(|e| e.to_string())?;
    hello(&mut ws, user, &format!("slow{d}")).await?;
    Ok(ws)
}

/// Posts 280-character comments as `user` until `end`, 150 a second (under the rate
/// limit), 100 to a post and then the next post; returns how many it posted.
async fn post_long_comments(url: String, user: u32, end: Instant) -> Result<u64, String> {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(&url, Some(ws_config()), true)
        .await
        .map_err(|e| e.to_string())?;
    hello(&mut ws, user, "writer").await?;
    let text = "c".repeat(280);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / 150.0));
    let mut posted = 0u64;
    while Instant::now() < end {
        tick.tick().await;
        posted += 1;
        let frame = format!(
            r#"{{"type":"command","id":{posted},"key":"comments/p{}","name":"add_comment","args":{{"text":"{text}"}},"local_rev":{posted}}}"#,
            posted / 100
        );
        ws.send(Message::text(frame))
            .await
            .map_err(|e| e.to_string())?;
        // Its answer, after its echo of the last post (pushes of its own user).
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.contains(r#""type":"ack""#) => break,
                Some(Ok(Message::Text(t))) if t.contains(r#""type":"reject""#) => {
                    return Err(format!("a long comment was rejected: {t}"));
                }
                Some(Ok(_)) => {}
                other => return Err(format!("the writer's connection ended: {other:?}")),
            }
        }
    }
    Ok(posted)
}

/// Phase 5: memory per idle connection.
async fn idle_devices(cli: &Cli, dir: &std::path::Path) -> Result<(), String> {
    let sync = ServerProcess::spawn("sync", &dir.join("idle"), 1)?;
    let url = format!("ws://{}/sync", sync.addr);
    let (_, before) = sync.rss_kib().unwrap_or_default();
    let started = Instant::now();
    let mut devices = Vec::with_capacity(cli.idle_devices as usize);
    for d in 0..cli.idle_devices {
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(&url, Some(ws_config()), true)
                .await
                .map_err(|e| {
                    format!(
                        "idle device {d}: {e} (each takes a file descriptor: raise `ulimit -n`)"
                    )
                })?;
        hello(&mut ws, 0, &format!("idle{d}")).await?;
        devices.push(ws);
    }
    let connected = started.elapsed();
    let (_, with) = sync.rss_kib().unwrap_or_default();
    drop(devices);
    let settle = Duration::from_secs(cli.settle);
    tokio::time::sleep(settle).await;
    let (_, after) = sync.rss_kib().unwrap_or_default();
    drop(sync);
    let per = (with.saturating_sub(before)) as f64 / f64::from(cli.idle_devices);
    println!(
        "idle devices  {} connected in {:.1} s: server RSS {:.1} MiB before, {:.1} MiB with them = {per:.1} KiB per idle connection; {:.1} MiB {} s after they left",
        cli.idle_devices,
        connected.as_secs_f64(),
        mib(before),
        mib(with),
        mib(after),
        settle.as_secs()
    );
    Ok(())
}

/// `hello` as device `device` of user `u{user}`, and its `welcome`.
async fn hello(ws: &mut Ws, user: u32, device: &str) -> Result<(), String> {
    let hello = format!(
        r#"{{"type":"hello","protocol":1,"token":"t{user}","device_id":"{device}","since":0}}"#
    );
    ws.send(Message::text(hello))
        .await
        .map_err(|e| e.to_string())?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.contains(r#""type":"welcome""#) => Ok(()),
        other => Err(format!("expected welcome, got {other:?}")),
    }
}

/// One phase's load.
struct Load {
    users: u32,
    devices_per_user: u32,
    /// Writes in flight per connection at most.
    window: usize,
    /// Writes per second per connection.
    rate: f64,
    length: Duration,
}

/// What the connections saw, summed.
#[derive(Default)]
struct Tally {
    answers: u64,
    rejects: u64,
    pushes: u64,
    latencies: Vec<Duration>,
    /// Seconds the phase lasted.
    elapsed: f64,
    /// CPU seconds this process (the clients) used in the phase, connecting included.
    client_cpu: Option<f64>,
}

impl Tally {
    /// The `q`-quantile of the answers' latencies (zero with none).
    fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        match sorted.len() {
            0 => Duration::ZERO,
            n => sorted[((n - 1) as f64 * q).round() as usize],
        }
    }

    /// p50, p99 and max of the answers' latencies.
    fn latency_summary(&self) -> String {
        let ms = |q: f64| self.quantile(q).as_secs_f64() * 1000.0;
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (n = {})",
            ms(0.5),
            ms(0.99),
            ms(1.0),
            self.latencies.len()
        )
    }
}

impl Load {
    /// Connects every device (with `hello` on the sync server), then starts them together.
    async fn run(&self, addr: &str, sync: bool) -> Result<Tally, String> {
        let cpu_before = cpu_seconds(std::process::id());
        let url = format!("ws://{addr}/sync");
        let mut sockets = Vec::new();
        for u in 0..self.users {
            for d in 0..self.devices_per_user {
                let (mut ws, _) =
                    tokio_tungstenite::connect_async_with_config(&url, Some(ws_config()), true)
                        .await
                        .map_err(|e| format!("connect to {url}: {e}"))?;
                if sync {
                    hello(&mut ws, u, &format!("d{d}")).await?;
                }
                sockets.push((d, ws));
            }
        }
        let start = Instant::now() + Duration::from_millis(50);
        let tasks: Vec<_> = sockets
            .into_iter()
            .enumerate()
            .map(|(i, (d, ws))| {
                // Spread the schedules so the devices do not all fire on the same tick.
                let offset =
                    Duration::from_secs_f64(i as f64 / self.rate / 97.0 % (1.0 / self.rate));
                let device = Device {
                    key: format!("like/d{d}"),
                    window: self.window,
                    interval: Duration::from_secs_f64(1.0 / self.rate),
                    start: start + offset,
                    end: start + self.length,
                };
                tokio::spawn(device.run(ws))
            })
            .collect();
        let mut tally = Tally::default();
        for task in tasks {
            let t = task.await.map_err(|e| e.to_string())??;
            tally.answers += t.answers;
            tally.rejects += t.rejects;
            tally.pushes += t.pushes;
            tally.latencies.extend(t.latencies);
        }
        tally.elapsed = self.length.as_secs_f64();
        tally.client_cpu = cpu_seconds(std::process::id())
            .zip(cpu_before)
            .map(|(after, before)| after - before);
        Ok(tally)
    }
}

/// One connection's writer and reader.
struct Device {
    key: String,
    window: usize,
    interval: Duration,
    start: Instant,
    end: Instant,
}

/// Just enough of a server frame to classify it.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Device {
    /// Writes on schedule and reads whatever comes back, in one task. The client shares
    /// the machine's cores with the server it measures, and receives ten frames for each
    /// write it sends, so what it spends per frame is kept small: no split of the socket
    /// (its lock), one timer moved rather than one made per frame, and a push recognised
    /// by its first bytes without decoding it.
    async fn run(self, mut ws: Ws) -> Result<Tally, String> {
        let mut tally = Tally::default();
        // The scheduled time of each write in flight, oldest first.
        let mut in_flight: VecDeque<Instant> = VecDeque::new();
        let mut sent = 0u64;
        let mut next = self.start;
        let timer = tokio::time::sleep_until(self.start);
        tokio::pin!(timer);
        loop {
            let now = Instant::now();
            // Send what is due, as far as the window allows.
            let mut fed = false;
            while next <= now && next < self.end && in_flight.len() < self.window {
                sent += 1;
                let frame = format!(
                    r#"{{"type":"set","id":{sent},"key":"{}","value":{},"local_rev":{sent}}}"#,
                    self.key,
                    sent % 2 == 1
                );
                ws.feed(Message::text(frame))
                    .await
                    .map_err(|e| e.to_string())?;
                in_flight.push_back(next);
                next += self.interval;
                fed = true;
            }
            if fed {
                ws.flush().await.map_err(|e| e.to_string())?;
            }
            if now >= self.end {
                return Ok(tally);
            }
            let wake = if in_flight.len() < self.window {
                next.min(self.end)
            } else {
                self.end
            };
            if timer.deadline() != wake {
                timer.as_mut().reset(wake);
            }
            let msg = tokio::select! {
                msg = ws.next() => msg,
                () = &mut timer => continue,
            };
            let text = match msg {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("connection failed: {e}")),
                None => return Err("the server closed a connection".into()),
            };
            // Both servers write `type` first (serde's internally tagged frames).
            if text.starts_with(r#"{"type":"push""#) {
                tally.pushes += 1;
                continue;
            }
            let head: Head<'_> = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            match head.kind {
                "push" => tally.pushes += 1,
                "ack" | "reject" | "set" => {
                    if head.kind == "reject" {
                        tally.rejects += 1;
                    } else {
                        tally.answers += 1;
                    }
                    if let Some(scheduled) = in_flight.pop_front() {
                        tally.latencies.push(Instant::now() - scheduled);
                    }
                }
                other => return Err(format!("unexpected `{other}` frame: {text}")),
            }
        }
    }
}
