//! The live backend: the embedded server (or an external one) and one client runtime per
//! device, on the tokio runtime's threads. The UI thread only sends commands and reads
//! snapshots; it never awaits.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::Duration;

use mock_server::link::LinkConfig;
use mock_server::sim::Direction;

use mock_server::net::{Inspection, LinkCommand, QueuedFrames, ServerConfig, ServerHandle, start};
use mock_server::redb_store::RedbStore;
use sync_core::client::{ClientConfig, DeviceHandle, spawn};
use sync_core::engine::{EngineConfig, Strategy};

/// The user every demo device belongs to.
pub const USER: &str = "demo";
/// Its token.
pub const TOKEN: &str = "demo-token";

/// Where things live and which server to use.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// The app's data directory (server store, device snapshots).
    pub data: PathBuf,
    /// An external server instead of the embedded one.
    pub server: Option<String>,
    /// The embedded server's port on 127.0.0.1; 0 for any free one.
    pub port: u16,
}

/// The live world: server and devices.
pub struct Live {
    /// The runtime the server and devices run on; dropped (and its tasks with it) when
    /// the app closes.
    rt: tokio::runtime::Runtime,
    server: Option<Arc<ServerHandle>>,
    url: String,
    data: PathBuf,
    repaint: Arc<dyn Fn() + Send + Sync>,
    inspections: (mpsc::Sender<Inspection>, mpsc::Receiver<Inspection>),
    inspecting: bool,
    queues: (mpsc::Sender<QueueListing>, mpsc::Receiver<QueueListing>),
    restarted: (mpsc::Sender<Restarted>, mpsc::Receiver<Restarted>),
    /// Ids of devices being removed (until their snapshot is deleted).
    removing: Arc<Mutex<BTreeSet<String>>>,
    /// Ids of devices restarting with another strategy (until the new one runs).
    restarting: Arc<Mutex<BTreeSet<String>>>,
}

/// The set stays usable if a task panicked while holding it (it is only ever a set of ids).
fn lock(set: &Mutex<BTreeSet<String>>) -> MutexGuard<'_, BTreeSet<String>> {
    set.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A device restarted with a new handle.
type Restarted = (String, DeviceHandle);

/// A device's held frames, as listed by the server.
type QueueListing = (String, QueuedFrames);

impl Live {
    /// Starts the embedded server on a free loopback port (unless an external one is
    /// given). Blocks briefly, before the window opens.
    pub fn start(
        rt: tokio::runtime::Runtime,
        config: &LiveConfig,
        repaint: Arc<dyn Fn() + Send + Sync>,
    ) -> Result<Live, String> {
        let (server, url) = match &config.server {
            Some(url) => (None, url.clone()),
            None => {
                let store =
                    RedbStore::open(&config.data.join("server")).map_err(|e| e.to_string())?;
                let server_config = ServerConfig {
                    addr: std::net::SocketAddr::from(([127, 0, 0, 1], config.port)),
                    ..ServerConfig::default()
                };
                let server = rt
                    .block_on(start(server_config, store))
                    .map_err(|e| e.to_string())?;
                let url = server.url();
                (Some(Arc::new(server)), url)
            }
        };
        tracing::info!("devices connect to {url}");
        Ok(Live {
            rt,
            server,
            url,
            data: config.data.clone(),
            repaint,
            inspections: mpsc::channel(),
            inspecting: false,
            queues: mpsc::channel(),
            restarted: mpsc::channel(),
            removing: Default::default(),
            restarting: Default::default(),
        })
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn client_config(&self, name: &str, strategy: Strategy, online: bool) -> ClientConfig {
        ClientConfig {
            url: self.url.clone(),
            engine: EngineConfig {
                device_id: name.to_string(),
                token: TOKEN.to_string(),
                strategy,
                seed: name.bytes().map(u64::from).sum(),
            },
            snapshot: Some(self.data.join("devices").join(format!("{name}.json"))),
            online,
        }
    }

    /// Starts a device (restoring its snapshot from the data directory, if any), online
    /// or not.
    pub fn device(&self, name: &str, strategy: Strategy, online: bool) -> DeviceHandle {
        let _guard = self.rt.enter();
        spawn(
            self.client_config(name, strategy, online),
            self.repaint.clone(),
        )
    }

    /// Restarts a device with another strategy: it stops (flushing its snapshot) and
    /// starts again from it, online or not. The new handle arrives through
    /// [`Live::poll_restarted`].
    pub fn restart_device(&self, old: DeviceHandle, name: &str, strategy: Strategy, online: bool) {
        let config = self.client_config(name, strategy, online);
        let repaint = self.repaint.clone();
        let tx = self.restarted.0.clone();
        let name = name.to_string();
        let restarting = self.restarting.clone();
        lock(&restarting).insert(name.clone());
        self.rt.spawn(async move {
            old.shutdown().await;
            let _ = tx.send((name.clone(), spawn(config, repaint.clone())));
            lock(&restarting).remove(&name);
            repaint();
        });
    }

    /// Stops a device and deletes its snapshot: a device added later under this id starts
    /// fresh. Until that is done, [`Live::is_removing`] holds the id back.
    pub fn remove_device(&self, handle: DeviceHandle, name: &str) {
        // The server remembers link settings per device: a device added later under this
        // id starts on a clean network.
        for d in [Direction::Up, Direction::Down] {
            let none = LinkConfig {
                latency: Duration::ZERO,
                jitter: Duration::ZERO,
                loss: 0.0,
            };
            self.link(name, LinkCommand::Configure(d, none));
            self.link(name, LinkCommand::Hold(d, false));
        }
        let snapshot = self.client_config(name, Strategy::default(), true).snapshot;
        let removing = self.removing.clone();
        let repaint = self.repaint.clone();
        let name = name.to_string();
        lock(&removing).insert(name.clone());
        self.rt.spawn(async move {
            handle.shutdown().await;
            if let Some(path) = snapshot
                && let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("cannot delete {}: {e}", path.display());
            }
            lock(&removing).remove(&name);
            repaint();
        });
    }

    /// Whether a device with this id is restarting with another strategy.
    pub fn is_restarting(&self, name: &str) -> bool {
        lock(&self.restarting).contains(name)
    }

    /// Whether a device with this id is still being removed.
    pub fn is_removing(&self, name: &str) -> bool {
        lock(&self.removing).contains(name)
    }

    /// Devices restarted since the last call: `(name, new handle)`.
    pub fn poll_restarted(&self) -> Vec<(String, DeviceHandle)> {
        self.restarted.1.try_iter().collect()
    }

    /// Asks the embedded server for its state (answered later through
    /// [`Live::poll_inspection`]); at most one request at a time.
    pub fn request_inspection(&mut self) {
        let Some(server) = self.server.clone() else {
            return;
        };
        if self.inspecting {
            return;
        }
        self.inspecting = true;
        let tx = self.inspections.0.clone();
        let repaint = self.repaint.clone();
        self.rt.spawn(async move {
            let _ = tx.send(server.inspect(USER).await);
            repaint();
        });
    }

    /// The newest answer to [`Live::request_inspection`], if one arrived.
    pub fn poll_inspection(&mut self) -> Option<Inspection> {
        let mut latest = None;
        while let Ok(i) = self.inspections.1.try_recv() {
            latest = Some(i);
            self.inspecting = false;
        }
        latest
    }

    /// Whether the server runs inside the app.
    pub fn embedded(&self) -> bool {
        self.server.is_some()
    }

    /// Runs `job` on the embedded server in the background; nothing with an external one.
    fn with_server<F>(&self, job: impl FnOnce(Arc<ServerHandle>) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if let Some(server) = self.server.clone() {
            self.rt.spawn(job(server));
        }
    }

    /// A fault on a device's link (embedded server only; kept across its reconnects).
    pub fn link(&self, device: &str, command: LinkCommand) {
        let device = device.to_string();
        self.with_server(|server| async move {
            if let Err(e) = server.link(USER, &device, command).await {
                tracing::warn!("{device}: {e}");
            }
        });
    }

    /// Asks for the frames waiting on a device's links (answered through
    /// [`Live::poll_queues`]).
    pub fn request_queue(&self, device: &str) {
        let Some(server) = self.server.clone() else {
            return;
        };
        let device = device.to_string();
        let tx = self.queues.0.clone();
        let repaint = self.repaint.clone();
        self.rt.spawn(async move {
            let frames = server.queued_frames(USER, &device).await;
            let _ = tx.send((device, frames));
            repaint();
        });
    }

    /// Queue listings that arrived: `(device, frames)`.
    pub fn poll_queues(&self) -> Vec<(String, QueuedFrames)> {
        self.queues.1.try_iter().collect()
    }

    /// Rejects the next write to a key (embedded server only).
    /// The server's state follows, so the panel shows the rejection armed at once.
    pub fn reject_next(&self, key: sync_core::protocol::Key) {
        let tx = self.inspections.0.clone();
        let repaint = self.repaint.clone();
        self.with_server(|server| async move {
            if let Err(e) = server.reject_next(Some(USER), key).await {
                tracing::warn!("reject next: {e}");
            }
            let _ = tx.send(server.inspect(USER).await);
            repaint();
        });
    }

    /// Restarts the embedded server as after a crash: every device loses its connection
    /// and reconnects; what was acknowledged is read back from the store.
    pub fn restart_server(&self) {
        let repaint = self.repaint.clone();
        self.with_server(|server| async move {
            if let Err(e) = server.restart().await {
                tracing::error!("server restart failed: {e}");
            }
            repaint();
        });
    }
}
