//! The live backend: the embedded server (or an external one) and one client runtime per
//! device, on the tokio runtime's threads. The UI thread only sends commands and reads
//! snapshots; it never awaits.
//!
//! The fault controls reach the embedded server through its handle, and an external one
//! through its admin socket ([`Remote`]) when the app was given its admin token; without
//! one, [`Live::controls`] says why the controls are off.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::Instant;

use mock_server::link::Direction;

use mock_server::core::{DEMO_TOKEN, DEMO_USER};
use mock_server::link::Fault;
use mock_server::net::{Inspection, QueuedFrames, ServerConfig, ServerHandle, start};
use mock_server::redb_store::RedbStore;
use sync_core::client::{ClientConfig, DeviceHandle, spawn};
use sync_core::engine::{DeviceView, Event};
use sync_core::engine::{EngineConfig, Strategy};
use sync_core::protocol::Key;
use tokio::sync::broadcast;

use super::pane::PaneAction;
use super::remote::Remote;

/// Where things live and which server to use.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// The app's data directory (server store, device snapshots).
    pub data: PathBuf,
    /// An external server instead of the embedded one.
    pub server: Option<External>,
    /// The embedded server's port on 127.0.0.1; 0 for any free one.
    pub port: u16,
}

/// An external server, and who the devices are on it.
#[derive(Debug, Clone)]
pub struct External {
    /// Its sync endpoint, `ws://HOST:PORT/sync`.
    pub url: String,
    /// The user the devices sign in as.
    pub user: String,
    /// That user's token.
    pub token: String,
    /// The server's admin token, for the fault controls; `None` turns them off.
    pub admin_token: Option<String>,
}

/// Where the fault controls go.
#[derive(Clone)]
enum Server {
    Embedded(Arc<ServerHandle>),
    Remote(Arc<Remote>),
}

impl Server {
    async fn inspect(&self, user: &str) -> Result<Inspection, String> {
        match self {
            Server::Embedded(s) => Ok(s.inspect(user).await),
            Server::Remote(r) => r.inspect(user).await,
        }
    }

    async fn link(&self, user: &str, device: &str, fault: Fault) -> Result<(), String> {
        match self {
            Server::Embedded(s) => s.link(user, device, fault).await,
            Server::Remote(r) => r.link(user, device, fault).await,
        }
    }

    async fn queued_frames(&self, user: &str, device: &str) -> Result<QueuedFrames, String> {
        match self {
            Server::Embedded(s) => Ok(s.queued_frames(user, device).await),
            Server::Remote(r) => r.queued_frames(user, device).await,
        }
    }

    async fn reject_next(&self, user: &str, key: &Key) -> Result<(), String> {
        match self {
            Server::Embedded(s) => s.reject_next(Some(user), key.clone()).await,
            Server::Remote(r) => r.reject_next(user, key).await,
        }
    }

    async fn restart(&self) -> Result<(), String> {
        match self {
            Server::Embedded(s) => s.restart().await,
            Server::Remote(r) => r.restart().await,
        }
    }

    async fn rotate_token(&self, user: &str, token: &str) -> Result<(), String> {
        match self {
            Server::Embedded(s) => s.rotate_token(user, token).await,
            Server::Remote(r) => r.rotate_token(user, token).await,
        }
    }

    async fn block_websocket(&self, on: bool) -> Result<(), String> {
        match self {
            Server::Embedded(s) => s.block_websocket(on).await,
            Server::Remote(r) => r.block_websocket(on).await,
        }
    }
}

/// The file in the data directory that keeps the account's token after a rotation.
const ACCOUNT_FILE: &str = "account-token";

/// The live world: server and devices.
pub struct Live {
    /// The runtime the server and devices run on; dropped (and its tasks with it) when
    /// the app closes.
    rt: tokio::runtime::Runtime,
    /// Where the fault controls go; `None` for an external server without an admin token.
    server: Option<Server>,
    url: String,
    user: String,
    /// The account the user's devices share: their token source. A rotation changes it;
    /// for the embedded server it is kept in the data directory (the server keeps the
    /// rotation in its store), so a device started later uses the valid token.
    account: Arc<Mutex<String>>,
    data: PathBuf,
    repaint: Arc<dyn Fn() + Send + Sync>,
    inspections: (mpsc::Sender<Inspected>, mpsc::Receiver<Inspected>),
    inspecting: bool,
    /// Why the server's state could not be read last time (an external server's admin
    /// socket), until it can.
    inspect_error: Option<String>,
    queues: (mpsc::Sender<QueueListing>, mpsc::Receiver<QueueListing>),
    restarted: (mpsc::Sender<Restarted>, mpsc::Receiver<Restarted>),
    /// Ids of devices being removed (until their snapshot is deleted).
    removing: Arc<Mutex<BTreeSet<String>>>,
    /// Ids of devices restarting with another strategy (until the new one runs).
    restarting: Arc<Mutex<BTreeSet<String>>>,
}

/// The value stays usable if a task panicked while holding it (a set of ids, a token:
/// nothing a panic can leave half-written).
fn lock<T>(value: &Mutex<T>) -> MutexGuard<'_, T> {
    value
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A live device: its client runtime, and its events as they come. The live driver of a
/// pane: it takes the pane's intents and gives the view and events the pane shows.
pub struct LiveDevice {
    handle: DeviceHandle,
    events: broadcast::Receiver<Event>,
}

impl LiveDevice {
    /// Follows a running device.
    pub fn new(handle: DeviceHandle) -> LiveDevice {
        LiveDevice {
            events: handle.subscribe(),
            handle,
        }
    }

    /// Its client runtime.
    pub fn handle(&self) -> &DeviceHandle {
        &self.handle
    }

    /// The device as a pane shows it.
    pub fn view(&self) -> DeviceView {
        self.handle.view()
    }

    /// The events since the last call, each with when it happened on the wall clock
    /// (devices' engine clocks start at different moments: only this compares them).
    pub fn drain(&mut self) -> Vec<(Instant, Event)> {
        let mut new = Vec::new();
        loop {
            match self.events.try_recv() {
                Ok(e) => new.push((self.handle.wall_time(&e), e)),
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => return new,
            }
        }
    }

    /// Does an intent or an online switch a pane asked for; `false` for any other action
    /// (link faults and the rest are the app's).
    pub fn act(&self, action: &PaneAction) -> bool {
        match action {
            PaneAction::Tap(key) => self.handle.tap(key.clone()),
            PaneAction::Set(key, value) => self.handle.set(key.clone(), value.clone()),
            PaneAction::Comment(key, text) => self.handle.comment(key.clone(), text.clone()),
            PaneAction::Online(on) => self.handle.set_online(*on),
            PaneAction::EditComment(key, id, text) => {
                self.handle
                    .edit_comment(key.clone(), id.clone(), text.clone())
            }
            PaneAction::DeleteComment(key, id) => {
                self.handle.delete_comment(key.clone(), id.clone())
            }
            PaneAction::Retry => self.handle.retry(),
            PaneAction::Settings(settings) => self.handle.configure(*settings),
            _ => return false,
        }
        true
    }
}

/// The server's state, or why it could not be read.
type Inspected = Result<Inspection, String>;

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
        let (server, url, user, token) = match &config.server {
            Some(external) => {
                let remote = match &external.admin_token {
                    Some(admin) => Some(Server::Remote(Arc::new(Remote::new(
                        &external.url,
                        admin.clone(),
                    )?))),
                    None => None,
                };
                (
                    remote,
                    external.url.clone(),
                    external.user.clone(),
                    external.token.clone(),
                )
            }
            None => {
                let store =
                    RedbStore::open(&config.data.join("server")).map_err(|e| e.to_string())?;
                let token = std::fs::read_to_string(config.data.join(ACCOUNT_FILE))
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| DEMO_TOKEN.to_string());
                let server_config = ServerConfig {
                    addr: std::net::SocketAddr::from(([127, 0, 0, 1], config.port)),
                    ..ServerConfig::default()
                };
                let server = rt
                    .block_on(start(server_config, store))
                    .map_err(|e| e.to_string())?;
                let url = server.url();
                (
                    Some(Server::Embedded(Arc::new(server))),
                    url,
                    DEMO_USER.to_string(),
                    token,
                )
            }
        };
        tracing::info!("devices connect to {url}");
        Ok(Live {
            rt,
            server,
            url,
            user,
            account: Arc::new(Mutex::new(token)),
            data: config.data.clone(),
            repaint,
            inspections: mpsc::channel(),
            inspecting: false,
            inspect_error: None,
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

    /// The user the devices sign in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    fn client_config(&self, name: &str, strategy: Strategy, online: bool) -> ClientConfig {
        ClientConfig {
            url: self.url.clone(),
            engine: EngineConfig {
                device_id: name.to_string(),
                token: lock(&self.account).clone(),
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
        for d in Direction::BOTH {
            let none = super::layout::Preset::None.link();
            self.link(name, Fault::Configure(d, none));
            self.link(name, Fault::Hold(d, false));
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

    /// Asks the server (embedded, or external through its admin socket) for its state (answered later through
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
        let user = self.user.clone();
        self.rt.spawn(async move {
            let _ = tx.send(server.inspect(&user).await);
            repaint();
        });
    }

    /// Asks the server for its state now, beside the periodic inspections: the answer
    /// comes on the returned channel, and reflects everything done before this call.
    /// `None` without the server's controls.
    pub fn inspect_once(&self) -> Option<mpsc::Receiver<Inspected>> {
        let server = self.server.clone()?;
        let (tx, rx) = mpsc::channel();
        let repaint = self.repaint.clone();
        let user = self.user.clone();
        self.rt.spawn(async move {
            let _ = tx.send(server.inspect(&user).await);
            repaint();
        });
        Some(rx)
    }

    /// Asks the desktop for a place to save a file (its native dialog, through the XDG
    /// portal), suggesting `suggested`. The answer comes on the returned channel: `None`
    /// when the user cancelled or the desktop has no dialog to offer.
    pub fn choose_save_path(&self, suggested: &std::path::Path) -> mpsc::Receiver<Option<PathBuf>> {
        let (tx, rx) = mpsc::channel();
        let mut dialog = rfd::AsyncFileDialog::new().add_filter("Sync Lab scenario", &["scn"]);
        if let Some(dir) = suggested.parent() {
            dialog = dialog.set_directory(dir);
        }
        if let Some(name) = suggested.file_name() {
            dialog = dialog.set_file_name(name.to_string_lossy());
        }
        let repaint = self.repaint.clone();
        self.rt.spawn(async move {
            let chosen = dialog.save_file().await.map(|f| f.path().to_path_buf());
            let _ = tx.send(chosen);
            repaint();
        });
        rx
    }

    /// The app's data directory.
    pub fn data(&self) -> &std::path::Path {
        &self.data
    }

    /// The newest answer to [`Live::request_inspection`], if one arrived.
    pub fn poll_inspection(&mut self) -> Option<Inspection> {
        let mut latest = None;
        while let Ok(answer) = self.inspections.1.try_recv() {
            self.inspecting = false;
            match answer {
                Ok(i) => {
                    latest = Some(i);
                    self.inspect_error = None;
                }
                Err(e) => self.inspect_error = Some(e),
            }
        }
        latest
    }

    /// Why the server's state could not be read the last time, if it could not.
    pub fn inspect_error(&self) -> Option<&str> {
        self.inspect_error.as_deref()
    }

    /// Whether the fault controls and the server's table work: `Err` says why not (an
    /// external server without its admin token).
    pub fn controls(&self) -> Result<(), &'static str> {
        match self.server {
            Some(_) => Ok(()),
            None => Err(
                "Needs the server's admin token (--admin-token): an external server's fault controls and table are on its admin socket",
            ),
        }
    }

    /// Runs `job` on the server's controls in the background; nothing without them.
    fn with_server<F>(&self, job: impl FnOnce(Server) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if let Some(server) = self.server.clone() {
            self.rt.spawn(job(server));
        }
    }

    /// A fault on a device's link (kept across its reconnects).
    pub fn link(&self, device: &str, fault: Fault) {
        let device = device.to_string();
        let user = self.user.clone();
        self.with_server(|server| async move {
            if let Err(e) = server.link(&user, &device, fault).await {
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
        let user = self.user.clone();
        let tx = self.queues.0.clone();
        let repaint = self.repaint.clone();
        self.rt.spawn(async move {
            match server.queued_frames(&user, &device).await {
                Ok(frames) => {
                    let _ = tx.send((device, frames));
                }
                Err(e) => tracing::warn!("{device}: {e}"),
            }
            repaint();
        });
    }

    /// Queue listings that arrived: `(device, frames)`.
    pub fn poll_queues(&self) -> Vec<(String, QueuedFrames)> {
        self.queues.1.try_iter().collect()
    }

    /// Rejects the next write to a key. The server's state follows, so the panel shows
    /// the rejection armed at once.
    pub fn reject_next(&self, key: Key) {
        let tx = self.inspections.0.clone();
        let repaint = self.repaint.clone();
        let user = self.user.clone();
        self.with_server(|server| async move {
            if let Err(e) = server.reject_next(&user, &key).await {
                tracing::warn!("reject next: {e}");
            }
            let _ = tx.send(server.inspect(&user).await);
            repaint();
        });
    }

    /// Rotates the user's token to a new one; once the server has it, the account keeps it
    /// and hands it to each device after that device's delay (`None`: never).
    pub fn rotate_token(&self, devices: Vec<(DeviceHandle, Option<std::time::Duration>)>) {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let user = self.user.clone();
        let token = format!("{user}-token-{}", since_epoch.as_millis());
        let account = self.account.clone();
        let file =
            matches!(self.server, Some(Server::Embedded(_))).then(|| self.data.join(ACCOUNT_FILE));
        let repaint = self.repaint.clone();
        self.with_server(|server| async move {
            if let Err(e) = server.rotate_token(&user, &token).await {
                tracing::error!("token rotation failed: {e}");
                return;
            }
            *lock(&account) = token.clone();
            if let Some(file) = file
                && let Err(e) = std::fs::write(&file, &token)
            {
                tracing::warn!("cannot keep the new token in {}: {e}", file.display());
            }
            for (handle, delay) in devices {
                let Some(delay) = delay else { continue };
                let token = token.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    handle.set_token(token);
                });
            }
            repaint();
        });
    }

    /// Restarts the server (embedded, or external through its admin socket) as after a crash: every device loses its connection
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

    /// Blocks WebSocket upgrades (`true`) or ends the block. The server's state follows,
    /// so the panel's switch shows it at once.
    pub fn block_websocket(&self, on: bool) {
        let tx = self.inspections.0.clone();
        let repaint = self.repaint.clone();
        let user = self.user.clone();
        self.with_server(|server| async move {
            if let Err(e) = server.block_websocket(on).await {
                tracing::warn!("block websocket: {e}");
            }
            let _ = tx.send(server.inspect(&user).await);
            repaint();
        });
    }
}
