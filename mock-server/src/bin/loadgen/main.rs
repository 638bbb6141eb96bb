//! `loadgen`: how fast is the live server, and how close to its transport's ceiling?
//!
//! The server runs in a child process (this same binary, `serve` mode) so that its memory
//! can be read on its own from `/proc`, with its redb store in a fresh temporary directory.
//! The load comes from this process, over loopback WebSockets, in five phases:
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
//!
//!    The three servers run side by side and take turns: each round gives each of them
//!    one short slice of load, in a rotating order. The machine's speed drifts (a virtual
//!    machine's host takes a varying share of its cores), and a ratio of two figures
//!    measured minutes apart would carry that drift; slices a second apart share it.
//! 3. **Latency.** 100 devices at 1,000 writes/s in all, on a fixed schedule (open loop):
//!    ack latency measured from each write's *scheduled* time, so a stalled server cannot
//!    hide its stall (no coordinated omission). The echo and relay servers get the same
//!    load, one after the other, for comparison.
//! 4. **Slow readers.** The latency phase again, while another user's K devices read
//!    nothing and a writer of theirs posts long comments (every push carries the post's
//!    whole list): their queues fill to the byte bound and they are closed. The others' ack
//!    latency should not notice (PROTOCOL.md, "Isolation of load"): it is compared with a
//!    run of the same comments pushed to devices that read them, and with the latency
//!    phase. The server's memory stays within its bounds and falls back once they are gone.
//! 5. **Idle devices.** N devices connect, say `hello` and then nothing: the server's
//!    memory per idle connection (read once the allocator gave back what their opening
//!    freed, and only if none of them was closed meanwhile), and the latency phase's load
//!    beside them, whose latency and server CPU per write should not notice them.
//!
//! Frames are told apart by the `type` at their start: answers (`ack`, `reject`, or the
//! echo) come back in the order the writes were sent on a connection, so no id needs
//! matching.
//!
//! Beside each phase it prints what the host did meanwhile (the `host` module): its steal,
//! and its *slow spells*, stretches in which this virtual machine's cores run several
//! times slower with no steal counted. A latency is also given without the writes that
//! overlapped a spell, so that a tail the host made can be told from one the server made.
//!
//! The workloads and reports are in this file, as they share its connection and report
//! code; the server it measures is in the library.

/// The server's allocator, as in the `mock-server` binary (see its docs).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod host;

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, Subcommand};
use futures_util::{FutureExt, SinkExt, StreamExt};
use host::{Spells, Ticks};
use mock_server::net::{READ_BUFFER, ServerConfig, start};
use mock_server::redb_store::RedbStore;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Load generator for the Sync Lab server: durable writes/s, pushes delivered/s, ack
/// latency and server memory, against a bare WebSocket echo server and a relay of the
/// same frames as the ceilings.
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
    /// Length of each phase, in seconds (in the throughput phase, each server's share).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
    /// Rounds in the throughput phase: each server's share comes in this many slices,
    /// taken in turn with the other servers'. A slice lasts at most 5 s: a device waits
    /// out up to four slices of the others, and the sync server closes a device idle
    /// for 30 s.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=600))]
    rounds: u32,
    /// Devices in the latency phase (as many users as it takes, with the throughput
    /// phase's devices per user).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    latency_devices: u32,
    /// Writes per second in all in the latency phase.
    #[arg(long, default_value_t = 1000.0, value_parser = positive)]
    latency_rate: f64,
    /// Connections that read nothing in the slow-readers phase (and that read everything
    /// in its baseline run).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    slow_readers: u32,
    /// Idle devices in the last phase (each takes a file descriptor here and one in the
    /// server: raise `ulimit -n` above it).
    #[arg(long, default_value_t = 8000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    idle_devices: u32,
    /// Seconds to wait after the slow readers and the idle devices left, before reading the
    /// server's memory again. The default outlasts the resync grace (10 s), after which no
    /// connection of theirs can be left, and the allocator's decay time (10 s), after which
    /// it gives back what was freed. The idle devices' memory is also read this long after
    /// they connected, or 25 s after the first of them connected if that comes sooner (the
    /// server closes a device silent for 30 s).
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
    host::start_pace();
    let result = phases(cli, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn phases(cli: &Cli, dir: &std::path::Path) -> Result<(), String> {
    let conns = cli.users * cli.devices_per_user;
    let phase = Duration::from_secs(cli.seconds);
    let throughput = Load {
        users: cli.users,
        devices_per_user: cli.devices_per_user,
        window: cli.window as usize,
        rate: cli.pace,
        length: phase / cli.rounds,
    };
    if throughput.length > MAX_SLICE {
        return Err(format!(
            "{} s in {} slices makes slices of {:.1} s, over {} s: a device would wait out up to four of them, and the sync server closes a device idle for 30 s; raise --rounds",
            cli.seconds,
            cli.rounds,
            throughput.length.as_secs_f64(),
            MAX_SLICE.as_secs()
        ));
    }
    println!(
        "loadgen: {conns} connections ({} users x {} devices), window {}, at most {}/s each, {} s per phase ({} slices a server in the first, taken in turns)",
        cli.users, cli.devices_per_user, cli.window, cli.pace, cli.seconds, cli.rounds
    );

    let [sync, echo, relay] = in_turns(&throughput, cli.rounds, dir).await?;
    let (t, e, r) = (&sync.tally, &echo.tally, &relay.tally);
    let peak = sync.peak_kib;
    let writes = t.answers as f64 / t.elapsed;
    let pushes = t.pushes as f64 / t.elapsed;
    println!(
        "sync server   {writes:>9.0} durable writes/s   {pushes:>9.0} pushes delivered/s   ({} rejected)",
        t.rejects
    );

    let echoes = e.answers as f64 / e.elapsed;
    println!(
        "echo server   {echoes:>9.0} round trips/s      sync/echo = {:.2}   (one frame back per write)",
        writes / echoes
    );
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
        "server CPU    {} per write in the sync server, {} in the relay (over the slices)",
        per_write(sync.server_cpu, t),
        per_write(relay.server_cpu, r)
    );
    println!(
        "client CPU    {} per write against the sync server, {} against the relay (loadgen's own, on the same cores)",
        per_write(t.client_cpu, t),
        per_write(r.client_cpu, r)
    );
    println!(
        "host steal    {} of the cores while the sync server was measured, {} the echo, {} the relay",
        t.steal(),
        e.steal(),
        r.steal()
    );
    println!(
        "host pace     the sync server's slices: {}; the echo's: {}; the relay's: {}",
        t.spells.summary(),
        e.spells.summary(),
        r.spells.summary()
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
    let l = latency.run(&sync, true).await?;
    let (peak2, now) = sync.rss_kib().unwrap_or_default();
    drop(sync);
    let echo = ServerProcess::spawn("echo", &dir.join("echo"), 1)?;
    let e = latency.run(&echo, false).await?;
    drop(echo);
    let relay = ServerProcess::spawn("relay", &dir.join("relay"), 1)?;
    let r = latency.run(&relay, true).await?;
    drop(relay);
    println!(
        "ack latency   {} devices ({per_user} per user) at {:.0} writes/s: {}; server CPU {} per write",
        latency.users * per_user,
        l.answers as f64 / l.elapsed,
        l.latency_summary(),
        l.server_cpu_per_write()
    );
    println!("              {}", l.outside_spells());
    println!("echo latency  the same load: {}", e.latency_summary());
    println!("              {}", e.outside_spells());
    println!(
        "relay latency the same load, its pushes sent: {}",
        r.latency_summary()
    );
    println!("              {}", r.outside_spells());
    println!(
        "              host steal {} while the sync server's latency was measured, {} the echo's, {} the relay's",
        l.steal(),
        e.steal(),
        r.steal()
    );
    println!(
        "server RSS    peak {:.1} MiB under throughput, {:.1} MiB peak / {:.1} MiB after the latency phase",
        mib(peak),
        mib(peak2),
        mib(now)
    );
    slow_readers(cli, dir, &latency, &l).await?;
    idle_devices(cli, dir, &latency, &l).await
}

/// The longest slice of the throughput phase: four of them, and the drains after them,
/// stay well within the sync server's idle timeout (30 s).
const MAX_SLICE: Duration = Duration::from_secs(5);

/// One server's share of the throughput phase.
struct Measured {
    tally: Tally,
    /// CPU seconds the server used over its slices (and idle between them).
    server_cpu: Option<f64>,
    /// The server's peak resident memory, in KiB.
    peak_kib: u64,
}

/// A throughput-phase server and its connected devices, between slices.
struct Contender {
    // Declared first, so dropped first: the devices close before the server is stopped.
    devices: Vec<Conn>,
    slices: Vec<Tally>,
    server: ServerProcess,
}

/// Phases 1 and 2: the sync, echo and relay servers side by side, each given `rounds`
/// slices of `load`, one server at a time, the order rotating from round to round.
async fn in_turns(
    load: &Load,
    rounds: u32,
    dir: &std::path::Path,
) -> Result<[Measured; 3], String> {
    let mut contenders = Vec::new();
    for (kind, says_hello) in [("sync", true), ("echo", false), ("relay", true)] {
        let server = ServerProcess::spawn(kind, &dir.join(kind), load.users)?;
        let devices = load.connect(&server.addr, says_hello).await?;
        contenders.push(Contender {
            devices,
            slices: Vec::new(),
            server,
        });
    }
    let cpu_before: Vec<_> = contenders.iter().map(|c| c.server.cpu_seconds()).collect();
    for round in 0..rounds as usize {
        for turn in 0..contenders.len() {
            let n = contenders.len();
            let contender = &mut contenders[(round + turn) % n];
            let (devices, slice) = load.drive(std::mem::take(&mut contender.devices)).await?;
            contender.devices = devices;
            contender.slices.push(slice);
        }
    }
    let measured: Vec<_> = contenders
        .into_iter()
        .zip(cpu_before)
        .map(|(c, before)| Measured {
            server_cpu: c
                .server
                .cpu_seconds()
                .zip(before)
                .map(|(after, before)| after - before),
            peak_kib: c.server.rss_kib().map_or(0, |(peak, _)| peak),
            tally: Tally::sum(c.slices),
        })
        .collect();
    measured
        .try_into()
        .map_err(|_| "the throughput phase measures three servers".to_string())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Phase 4: the latency load beside a user whose K devices are pushed long comments, first
/// while they read them and then while they read nothing. The first run is the baseline:
/// the same writes and pushes, so the second differs only in the devices not reading.
async fn slow_readers(
    cli: &Cli,
    dir: &std::path::Path,
    latency: &Load,
    without: &Tally,
) -> Result<(), String> {
    let reading = beside_long_comments(cli, &dir.join("readers"), latency, true).await?;
    let stuck = beside_long_comments(cli, &dir.join("slow"), latency, false).await?;
    println!(
        "long comments {} devices reading them, {} posted, {} pushes read: ack latency of the others {} (host steal {})",
        cli.slow_readers,
        reading.posted,
        reading.read,
        reading.others.latency_summary(),
        reading.others.steal()
    );
    println!(
        "slow readers  {} devices reading nothing, {} long comments pushed to them: ack latency of the others {}; p99 {:.2} ms vs {:.2} ms with them reading = {}, vs {:.2} ms without them = {} (host steal {})",
        cli.slow_readers,
        stuck.posted,
        stuck.others.latency_summary(),
        stuck.others.p99_ms(),
        reading.others.p99_ms(),
        times(stuck.others.p99_ms(), reading.others.p99_ms()),
        without.p99_ms(),
        times(stuck.others.p99_ms(), without.p99_ms()),
        stuck.others.steal()
    );
    println!(
        "              outside the host's slow spells: p99 {:.2} ms, vs {:.2} ms with them reading = {}, vs {:.2} ms without them = {} ({}; reading: {}; without them: {})",
        stuck.others.p99_ms_outside_spells(),
        reading.others.p99_ms_outside_spells(),
        times(
            stuck.others.p99_ms_outside_spells(),
            reading.others.p99_ms_outside_spells()
        ),
        without.p99_ms_outside_spells(),
        times(
            stuck.others.p99_ms_outside_spells(),
            without.p99_ms_outside_spells()
        ),
        stuck.others.spells.summary(),
        reading.others.spells.summary(),
        without.spells.summary()
    );
    let [before, peak, during, after] = stuck.rss_kib;
    let bound = f64::from(cli.slow_readers) * mock_server::net::OUTBOUND_BYTES as f64 / 1048576.0;
    println!(
        "              server RSS {:.1} MiB before, peak {:.1} MiB (queue bounds: {bound:.0} MiB), {:.1} MiB at the end, {:.1} MiB {} s after they left",
        mib(before),
        mib(peak),
        mib(during),
        mib(after),
        cli.settle
    );
    Ok(())
}

/// What the latency load saw beside the long comments.
struct Beside {
    /// The latency load's devices.
    others: Tally,
    /// Comments posted.
    posted: u64,
    /// Frames the comments' devices read (none when they are stuck).
    read: u64,
    /// The server's resident memory in KiB: before, peak, at the end, and after the
    /// devices left and `--settle` seconds passed.
    rss_kib: [u64; 4],
}

/// The latency load on a fresh server, while another user's devices are pushed long
/// comments and read them (`reading`) or read nothing.
async fn beside_long_comments(
    cli: &Cli,
    dir: &std::path::Path,
    latency: &Load,
    reading: bool,
) -> Result<Beside, String> {
    // The comments' user is the one after the latency phase's users.
    let slow_user = latency.users;
    let sync = ServerProcess::spawn("sync", dir, slow_user + 1)?;
    let (_, before) = sync.rss_kib().unwrap_or_default();
    let url = format!("ws://{}/sync", sync.addr);
    // Each device holds its connection until told to stop, reading every frame or none.
    let (stop, stopped) = tokio::sync::watch::channel(());
    let mut devices = Vec::new();
    for d in 0..cli.slow_readers {
        let mut ws = stuck_device(&url, slow_user, d).await?;
        let mut stopped = stopped.clone();
        devices.push(tokio::spawn(async move {
            let mut read = 0u64;
            loop {
                tokio::select! {
                    _ = stopped.changed() => return Ok(read),
                    frame = ws.next(), if reading => match frame {
                        Some(Ok(_)) => read += 1,
                        other => return Err(format!("reading device {d} was cut off: {other:?}")),
                    },
                }
            }
        }));
    }
    let conns = latency.connect(&sync.addr, true).await?;
    // The comments start with the latency load and last as long.
    let filler = tokio::spawn(post_long_comments(
        url.clone(),
        slow_user,
        Instant::now() + latency.length,
    ));
    let (_, others) = latency.drive(conns).await?;
    let (peak, during) = sync.rss_kib().unwrap_or_default();
    let posted = filler.await.map_err(|e| e.to_string())??;
    drop(stop);
    let mut read = 0;
    for device in devices {
        read += device.await.map_err(|e| e.to_string())??;
    }
    let mut after = during;
    if !reading {
        tokio::time::sleep(Duration::from_secs(cli.settle)).await;
        (_, after) = sync.rss_kib().unwrap_or_default();
    }
    Ok(Beside {
        others,
        posted,
        read,
        rss_kib: [before, peak, during, after],
    })
}

/// A device of `user`, connected and welcomed, whose kernel buffer takes 4 KiB: one that
/// stops reading fills it fast. (The baseline's reading devices have the same buffer.)
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

/// How soon after the first idle device connected its memory is read at the latest: the
/// server closes a device silent for 30 s.
const IDLE_READ_BY: Duration = Duration::from_secs(25);

/// Phase 5: memory per idle connection; then, on a fresh server, the latency load beside
/// as many idle devices, compared with the latency phase (`without`): the core task's work
/// per batch must not grow with the connections it holds. Two servers, so that neither
/// figure carries the other's leftovers, and so that the idle devices need be silent only
/// as long as one of the two takes.
async fn idle_devices(
    cli: &Cli,
    dir: &std::path::Path,
    latency: &Load,
    without: &Tally,
) -> Result<(), String> {
    let sync = ServerProcess::spawn("sync", &dir.join("idle"), 1)?;
    let (_, before) = sync.rss_kib().unwrap_or_default();
    let started = Instant::now();
    let mut devices = connect_idle(&sync, 0, cli.idle_devices).await?;
    let connected = started.elapsed();
    let (_, just_connected) = sync.rss_kib().unwrap_or_default();
    // What the connections hold, without what their opening freed and the allocator has
    // not yet given back (its decay time, 10 s): read once `--settle` passed, while the
    // first of them is still within the server's idle timeout.
    let settle = Duration::from_secs(cli.settle);
    tokio::time::sleep_until((started + connected + settle).min(started + IDLE_READ_BY)).await;
    let waited = started.elapsed() - connected;
    let (_, with) = sync.rss_kib().unwrap_or_default();
    let closed = closed_idle(&mut devices);
    if closed > 0 {
        return Err(format!(
            "{closed} of the {} idle devices were closed before their memory was read: connecting them took {:.1} s, and the server closes a device silent for 30 s",
            cli.idle_devices,
            connected.as_secs_f64()
        ));
    }
    drop(devices);
    tokio::time::sleep(settle).await;
    let (_, after) = sync.rss_kib().unwrap_or_default();
    drop(sync);
    let per = (with.saturating_sub(before)) as f64 / f64::from(cli.idle_devices);
    println!(
        "idle devices  {} connected in {:.1} s: server RSS {:.1} MiB before, {:.1} MiB just after, {:.1} MiB {:.0} s after = {per:.1} KiB per idle connection; {:.1} MiB {} s after they left",
        cli.idle_devices,
        connected.as_secs_f64(),
        mib(before),
        mib(just_connected),
        mib(with),
        waited.as_secs_f64(),
        mib(after),
        settle.as_secs()
    );

    let sync = ServerProcess::spawn("sync", &dir.join("beside-idle"), latency.users + 1)?;
    let started = Instant::now();
    let mut devices = connect_idle(&sync, latency.users, cli.idle_devices).await?;
    let beside = latency.run(&sync, true).await?;
    let closed = closed_idle(&mut devices);
    if closed > 0 {
        return Err(format!(
            "{closed} of the {} idle devices were closed while the latency load ran beside them: connecting them and the load took {:.1} s, and the server closes a device silent for 30 s; lower --seconds",
            cli.idle_devices,
            started.elapsed().as_secs_f64()
        ));
    }
    drop(devices);
    drop(sync);
    println!(
        "              the latency load beside them: ack latency {}; p99 {:.2} ms vs {:.2} ms without them = {}, outside the host's slow spells {:.2} ms vs {:.2} ms = {} ({}); server CPU {} per write vs {} without them",
        beside.latency_summary(),
        beside.p99_ms(),
        without.p99_ms(),
        times(beside.p99_ms(), without.p99_ms()),
        beside.p99_ms_outside_spells(),
        without.p99_ms_outside_spells(),
        times(
            beside.p99_ms_outside_spells(),
            without.p99_ms_outside_spells()
        ),
        beside.spells.summary(),
        beside.server_cpu_per_write(),
        without.server_cpu_per_write()
    );
    Ok(())
}

/// `n` devices of user `u{user}`, connected and welcomed, that then say nothing.
async fn connect_idle(server: &ServerProcess, user: u32, n: u32) -> Result<Vec<Ws>, String> {
    let url = format!("ws://{}/sync", server.addr);
    let mut devices = Vec::with_capacity(n as usize);
    for d in 0..n {
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(&url, Some(ws_config()), true)
                .await
                .map_err(|e| {
                    format!(
                        "idle device {d}: {e} (each takes a file descriptor: raise `ulimit -n`)"
                    )
                })?;
        hello(&mut ws, user, &format!("idle{d}")).await?;
        devices.push(ws);
    }
    Ok(devices)
}

/// How many of the idle devices the server closed. Each was sent its welcome and nothing
/// since, so anything waiting is the server closing it. (Polled unconstrained: tokio's
/// budget would call all but the first hundred or so polls pending.)
fn closed_idle(devices: &mut [Ws]) -> usize {
    devices
        .iter_mut()
        .map(|ws| tokio::task::unconstrained(ws.next()).now_or_never())
        .filter(Option::is_some)
        .count()
}

/// `a / b` as a ratio for a report, or "n/a" where `b` is zero (no latencies to compare).
fn times(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "n/a".into()
    }
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
    /// Each answered write's scheduled time and latency.
    latencies: Vec<(std::time::Instant, Duration)>,
    /// When the last answer came.
    last_answer: Option<Instant>,
    /// Seconds from the start until the last answer.
    elapsed: f64,
    /// CPU seconds this process (the clients) used.
    client_cpu: Option<f64>,
    /// CPU seconds the server used, where measured ([`Load::run`]).
    server_cpu: Option<f64>,
    /// The machine's CPU time, and the share the host took (`/proc/stat`).
    ticks: Option<Ticks>,
    /// The host's slow spells from the start until the last answer.
    spells: Spells,
}

impl Tally {
    /// The slices' tallies added up.
    fn sum(slices: Vec<Tally>) -> Tally {
        let mut sum = Tally {
            client_cpu: slices.iter().map(|s| s.client_cpu).sum(),
            last_answer: slices.iter().filter_map(|s| s.last_answer).max(),
            ticks: slices.iter().map(|s| s.ticks).sum(),
            ..Tally::default()
        };
        for mut slice in slices {
            sum.spells = [
                std::mem::take(&mut sum.spells),
                std::mem::take(&mut slice.spells),
            ]
            .into_iter()
            .sum();
            sum.answers += slice.answers;
            sum.rejects += slice.rejects;
            sum.pushes += slice.pushes;
            sum.latencies.extend(slice.latencies);
            sum.elapsed += slice.elapsed;
        }
        sum
    }

    /// The `q`-quantile of the answers' latencies (zero with none).
    fn quantile(&self, q: f64) -> Duration {
        quantile(self.latencies.iter().map(|&(_, took)| took).collect(), q)
    }

    /// The `q`-quantile of the latencies of the writes that did not overlap a slow
    /// spell of the host, and how many they were.
    fn quantile_outside_spells(&self, q: f64) -> (Duration, usize) {
        let clear: Vec<Duration> = self
            .latencies
            .iter()
            .filter(|&&(scheduled, took)| !self.spells.touch(scheduled, scheduled + took))
            .map(|&(_, took)| took)
            .collect();
        let n = clear.len();
        (quantile(clear, q), n)
    }

    /// The server's CPU time per answered write, where it was measured.
    fn server_cpu_per_write(&self) -> String {
        match self.server_cpu {
            Some(s) => format!("{:.1} µs", s * 1e6 / self.answers.max(1) as f64),
            None => "unknown".into(),
        }
    }

    /// The host's steal over the measured time, as a share of the machine's cores.
    fn steal(&self) -> String {
        match self.ticks {
            Some(t) if t.all > 0 => format!("{:.0} %", 100.0 * t.steal as f64 / t.all as f64),
            _ => "unknown".into(),
        }
    }

    /// The p99 latency, in milliseconds.
    fn p99_ms(&self) -> f64 {
        self.quantile(0.99).as_secs_f64() * 1000.0
    }

    /// The p99 latency of the writes that missed the host's slow spells, in milliseconds.
    fn p99_ms_outside_spells(&self) -> f64 {
        self.quantile_outside_spells(0.99).0.as_secs_f64() * 1000.0
    }

    /// The p99 of the writes that missed the host's slow spells, for a report.
    fn outside_spells(&self) -> String {
        let (p99, n) = self.quantile_outside_spells(0.99);
        format!(
            "p99 {:.2} ms outside the host's slow spells (n = {n}; {})",
            p99.as_secs_f64() * 1000.0,
            self.spells.summary()
        )
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

/// The `q`-quantile of `latencies` (zero with none).
fn quantile(mut latencies: Vec<Duration>, q: f64) -> Duration {
    latencies.sort_unstable();
    match latencies.len() {
        0 => Duration::ZERO,
        n => latencies[((n - 1) as f64 * q).round() as usize],
    }
}

impl Load {
    /// Connects to `server`, drives the devices once, and closes; with the server's CPU
    /// time over the drive.
    async fn run(&self, server: &ServerProcess, says_hello: bool) -> Result<Tally, String> {
        let conns = self.connect(&server.addr, says_hello).await?;
        let before = server.cpu_seconds();
        let mut tally = self.drive(conns).await?.1;
        tally.server_cpu = server
            .cpu_seconds()
            .zip(before)
            .map(|(after, before)| after - before);
        Ok(tally)
    }

    /// Connects every device, with `hello` first where the server expects one (the sync
    /// and relay servers).
    async fn connect(&self, addr: &str, says_hello: bool) -> Result<Vec<Conn>, String> {
        let url = format!("ws://{addr}/sync");
        let mut conns = Vec::new();
        for u in 0..self.users {
            for d in 0..self.devices_per_user {
                let (mut ws, _) =
                    tokio_tungstenite::connect_async_with_config(&url, Some(ws_config()), true)
                        .await
                        .map_err(|e| format!("connect to {url}: {e}"))?;
                if says_hello {
                    hello(&mut ws, u, &format!("d{d}")).await?;
                }
                conns.push(Conn {
                    ws,
                    key: format!("like/d{d}"),
                    sent: 0,
                });
            }
        }
        Ok(conns)
    }

    /// Starts every device together, for [`Load::length`]; waits for the answers still
    /// owed after that, and gives the connections back for another slice.
    ///
    /// The tally's time runs from the start to the last answer, and it counts every write
    /// sent: the work done over the time it took. Counting only the answers before the
    /// end would miss the writes a saturated server still owes then (a window's worth per
    /// connection), and that loss would grow as the slices shorten.
    async fn drive(&self, conns: Vec<Conn>) -> Result<(Vec<Conn>, Tally), String> {
        let cpu_before = cpu_seconds(std::process::id());
        let ticks_before = Ticks::now();
        let start = Instant::now() + Duration::from_millis(50);
        let tasks: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, conn)| {
                // Spread the schedules so the devices do not all fire on the same tick.
                let offset =
                    Duration::from_secs_f64(i as f64 / self.rate / 97.0 % (1.0 / self.rate));
                let device = Device {
                    window: self.window,
                    interval: Duration::from_secs_f64(1.0 / self.rate),
                    start: start + offset,
                    end: start + self.length,
                };
                tokio::spawn(device.run(conn))
            })
            .collect();
        let mut conns = Vec::with_capacity(tasks.len());
        let mut tallies = Vec::with_capacity(tasks.len());
        for task in tasks {
            let (conn, tally) = task.await.map_err(|e| e.to_string())??;
            conns.push(conn);
            tallies.push(tally);
        }
        let mut tally = Tally::sum(tallies);
        let end = tally.last_answer.unwrap_or(start + self.length);
        tally.elapsed = (end - start).as_secs_f64();
        tally.spells = Spells::between(start.into_std(), end.into_std());
        tally.client_cpu = cpu_seconds(std::process::id())
            .zip(cpu_before)
            .map(|(after, before)| after - before);
        tally.ticks = Ticks::now().zip(ticks_before).map(|(after, before)| Ticks {
            // The kernel's counters can step back a little (its iowait does).
            steal: after.steal.saturating_sub(before.steal),
            all: after.all.saturating_sub(before.all),
        });
        Ok((conns, tally))
    }
}

/// A device's connection, between slices.
struct Conn {
    ws: Ws,
    /// The key it writes.
    key: String,
    /// Writes sent so far: ids and local revisions go on rising from slice to slice.
    sent: u64,
}

/// How long a device waits, after its slice, for the answers it is still owed.
const DRAIN: Duration = Duration::from_secs(10);

/// One connection's writer and reader, for one slice.
struct Device {
    window: usize,
    interval: Duration,
    start: Instant,
    end: Instant,
}

/// What came back, told from a frame's first bytes: every server here writes `type` first
/// (serde's internally tagged frames; the echo server's answer is the client's own `set`),
/// so the client decodes nothing.
enum Answer {
    Push,
    Written,
    Rejected,
}

impl Answer {
    fn of(text: &str) -> Result<Answer, String> {
        const KINDS: [(&str, Answer); 4] = [
            (r#"{"type":"push""#, Answer::Push),
            (r#"{"type":"ack""#, Answer::Written),
            (r#"{"type":"set""#, Answer::Written),
            (r#"{"type":"reject""#, Answer::Rejected),
        ];
        KINDS
            .into_iter()
            .find(|(prefix, _)| text.starts_with(prefix))
            .map(|(_, kind)| kind)
            .ok_or_else(|| format!("unexpected frame: {text}"))
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Device {
    /// Writes on schedule and reads whatever comes back, in one task. The client shares
    /// the machine's cores with the server it measures, and receives ten frames for each
    /// write it sends, so what it spends per frame is kept small: no split of the socket
    /// (its lock), one timer moved rather than one made per frame, every frame told by
    /// its first bytes without decoding it, and the clock not read for a push while the
    /// window is full.
    ///
    /// After the slice's end the device sends nothing and reads until every write has
    /// its answer, so that the next slice starts with none in flight.
    async fn run(self, conn: Conn) -> Result<(Conn, Tally), String> {
        let Conn {
            mut ws,
            key,
            mut sent,
        } = conn;
        let mut tally = Tally::default();
        // The scheduled time of each write in flight, oldest first.
        let mut in_flight: VecDeque<Instant> = VecDeque::new();
        let mut next = self.start;
        let timer = tokio::time::sleep_until(self.start);
        tokio::pin!(timer);
        let mut now = Instant::now();
        loop {
            // Send what is due, as far as the window allows.
            let mut fed = false;
            // Nothing after the slice's end, though writes scheduled before it may be
            // waiting for room in the window: the drain is then one window at most.
            while next <= now && now < self.end && in_flight.len() < self.window {
                sent += 1;
                let frame = format!(
                    r#"{{"type":"set","id":{sent},"key":"{key}","value":{},"local_rev":{sent}}}"#,
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
            let ended = now >= self.end;
            if ended && in_flight.is_empty() {
                return Ok((Conn { ws, key, sent }, tally));
            }
            if now >= self.end + DRAIN {
                return Err(format!(
                    "{} writes still unanswered {} s after the slice",
                    in_flight.len(),
                    DRAIN.as_secs()
                ));
            }
            let wake = if ended {
                self.end + DRAIN
            } else if in_flight.len() < self.window {
                next.min(self.end)
            } else {
                self.end
            };
            if timer.deadline() != wake {
                timer.as_mut().reset(wake);
            }
            // Read until a write may be due: the timer fired, an answer freed the window,
            // or the window has room and the clock may have passed the next write's time.
            // The clock is read then, once; a push into a full window does not read it.
            now = loop {
                let msg = tokio::select! {
                    msg = ws.next() => msg,
                    () = &mut timer => break Instant::now(),
                };
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(format!("connection failed: {e}")),
                    None => return Err("the server closed a connection".into()),
                };
                match Answer::of(&text)? {
                    Answer::Push if in_flight.len() < self.window => {
                        // A write may be due before the timer (ms-grained) fires.
                        tally.pushes += 1;
                        break Instant::now();
                    }
                    Answer::Push => {
                        tally.pushes += 1;
                        continue;
                    }
                    Answer::Written => tally.answers += 1,
                    Answer::Rejected => tally.rejects += 1,
                }
                let at = Instant::now();
                if let Some(scheduled) = in_flight.pop_front() {
                    tally.latencies.push((scheduled.into_std(), at - scheduled));
                    tally.last_answer = Some(at);
                }
                break at;
            };
        }
    }
}
