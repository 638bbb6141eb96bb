//! The core task: the only owner of the [`Core`], and the only place protocol decisions
//! happen. It takes every message waiting at a moment as one batch, so writes that arrive
//! together share one store commit (group commit), and routes the core's answers onto the
//! connections' outbound queues.
//!
//! It never waits for a client. Putting a frame on a queue either succeeds at once or is an
//! overflow, which closes that connection (4009); so one client that stops reading costs
//! the others nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sync_core::protocol::{ServerFrame, close};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::control::{Control, EndTx, Ending, Inspection, LinkCommand, LinkMessage, Reply, ToCore};
use super::outbound::{Json, Outbound, QueueTx};
use super::sleep_until_opt;
use crate::core::store::Store;
use crate::core::{Action, ConnId, Core, Inbound};
use crate::link::{Direction, Fault, LinkConfig, Pair};

/// The most frames in one batch (one commit). A commit's fsync and B-tree root updates are
/// paid once per batch, so under load the larger the batch, the less each write costs:
/// with `loadgen --users 80`, 2048 against 128 took the server's CPU per write from about
/// 45 µs to 18 µs (BENCHMARKS.md). The bound keeps timers and controls from waiting
/// behind more than a few tens of milliseconds of frames. Under light load a batch is
/// whatever arrived together, often one frame.
pub const MAX_BATCH: usize = 2048;

/// A connection as the core task sees it.
struct Out {
    queue: QueueTx,
    link: mpsc::UnboundedSender<LinkMessage>,
    /// Told once, when the core ends the connection (see [`Ending`]).
    end: EndTx,
    /// When something last arrived (µs since the server started), stamped by the
    /// connection task as it reads.
    activity: Arc<AtomicU64>,
}

type Outs = BTreeMap<ConnId, Out>;

/// A device's link settings, kept across its connections (as the simulator keeps a
/// device's links): latency, jitter, loss and holds per direction.
#[derive(Debug, Clone, Copy, Default)]
struct DeviceLinks {
    config: Pair<Option<LinkConfig>>,
    hold: Pair<bool>,
}

/// The core task's state.
struct Task<S: Store> {
    core: Core<S>,
    outs: Outs,
    links: BTreeMap<(String, String), DeviceLinks>,
    /// The server's clock: the core's `now` is the time since then.
    epoch: Instant,
    /// Connections queued to since the last [`Task::deliver`].
    touched: Vec<ConnId>,
    /// Connections given a close since the last [`Task::deliver`]: told so after it.
    closed: Vec<ConnId>,
    /// Shutting down: connections that open now are closed at once.
    stopping: bool,
    /// The `block_websocket` fault, as the accept loop reads it before an upgrade.
    ws_blocked: Arc<AtomicBool>,
}

/// Runs the core until every sender of `rx` is gone.
pub(super) async fn run<S: Store>(
    core: Core<S>,
    mut rx: mpsc::Receiver<ToCore>,
    epoch: Instant,
    ws_blocked: Arc<AtomicBool>,
) {
    let mut task = Task {
        core,
        outs: Outs::new(),
        links: BTreeMap::new(),
        epoch,
        touched: Vec::new(),
        closed: Vec::new(),
        stopping: false,
        ws_blocked,
    };
    loop {
        let deadline = task.core.poll_timeout().map(|d| epoch + d);
        let first = tokio::select! {
            biased;
            msg = rx.recv() => match msg {
                Some(msg) => msg,
                None => break,
            },
            _ = sleep_until_opt(deadline) => {
                task.timeouts();
                continue;
            }
        };
        // Everything waiting now is one batch: its writes share one commit.
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                ToCore::Frame(id, inbound) => batch.push((id, inbound)),
                other => {
                    task.flush(&mut batch);
                    task.remember_links(&other);
                    task.handle(other);
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        task.flush(&mut batch);
        // Under steady input the sleep above never wins: timers are checked here too.
        if deadline.is_some_and(|d| Instant::now() >= d) {
            task.timeouts();
        }
    }
}

impl<S: Store> Task<S> {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn flush(&mut self, batch: &mut Vec<(ConnId, Inbound)>) {
        if batch.is_empty() {
            return;
        }
        let actions = self.core.handle(std::mem::take(batch), self.now());
        // Before the actions: a connection whose `hello` was just accepted (its `welcome`
        // is among them) gets its device's link settings ahead of that welcome (the
        // connection applies them first). Found by its welcome, the work is per new
        // connection: a scan of every connection, once per batch, made each batch cost
        // more as connections were added.
        for action in &actions {
            if let Action::Send(id, ServerFrame::Welcome { .. }) = action {
                self.configure(*id);
            }
        }
        self.route(actions);
    }

    /// Closes the connections whose `hello` or next frame is overdue, judged by when
    /// their frames arrived, not by when this task got round to them. Only the overdue
    /// ones have their arrivals reported: the others cannot be closed now, and reporting
    /// every connection's at every deadline made thousands of idle connections timing
    /// out together cost a pass over all of them for each.
    fn timeouts(&mut self) {
        let now = self.now();
        for id in self.core.overdue(now) {
            if let Some(out) = self.outs.get(&id) {
                let at = Duration::from_micros(out.activity.load(Ordering::Relaxed));
                self.core.heard(id, at);
            }
        }
        let actions = self.core.on_timeout(now);
        self.route(actions);
    }

    /// Puts the core's actions on the connections' queues. One that does not fit closes
    /// that connection with 4009: the client reconnects and catches up.
    ///
    /// A change is pushed to all its user's connections at once: it is serialized once,
    /// and the connections share the text (with 10 devices a user, the serializing was
    /// most of the core task's work per write).
    fn route(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Push(ids, change) => {
                    let json = Json::new(ServerFrame::Push(change).to_json());
                    for id in ids {
                        self.queue(id, Outbound::Frame(json.clone(), false));
                    }
                }
                Action::Send(id, frame) => {
                    let heartbeat = matches!(frame, ServerFrame::Pong { .. });
                    self.queue(id, Outbound::Frame(Json::new(frame.to_json()), heartbeat));
                }
                Action::Close(id, code, reason) => self.queue(id, Outbound::Close(code, reason)),
            }
        }
        self.deliver();
    }

    /// Queues `item` for connection `id`; it goes out with the next [`Task::deliver`].
    fn queue(&mut self, id: ConnId, item: Outbound) {
        let Some(out) = self.outs.get_mut(&id) else {
            return;
        };
        if !out.queue.has_pending() {
            self.touched.push(id);
        }
        let close = matches!(item, Outbound::Close(..));
        if out.queue.push(item).is_err() {
            if out.end.send(Ending::Overflow) {
                tracing::warn!(id = id.0, "outbound queue overflowed: closing with 4009");
            }
            self.core.disconnect(id);
        } else if close {
            self.closed.push(id);
        }
    }

    /// Hands each connection what was queued for it since the last delivery, together;
    /// then tells those given a close that they are ended, once the close is theirs to
    /// read (a task told first would find no close yet, and wait for it).
    fn deliver(&mut self) {
        for id in self.touched.drain(..) {
            if let Some(out) = self.outs.get_mut(&id) {
                out.queue.deliver();
            }
        }
        for id in self.closed.drain(..) {
            if let Some(out) = self.outs.get_mut(&id) {
                out.end.send(Ending::Closed);
            }
        }
    }

    /// Records link settings given for a device, so its next connections get them too.
    fn remember_links(&mut self, msg: &ToCore) {
        if let ToCore::Control(Control::Link {
            user,
            device_id,
            command,
            ..
        }) = msg
            && self.core.users().contains(user.as_str())
        {
            let entry = self
                .links
                .entry((user.clone(), device_id.clone()))
                .or_default();
            match command {
                LinkCommand::Fault(Fault::Configure(d, c)) => *entry.config.of_mut(*d) = Some(*c),
                LinkCommand::Fault(Fault::Hold(d, on)) => *entry.hold.of_mut(*d) = *on,
                _ => {}
            }
        }
    }

    /// Gives a newly authenticated connection its device's link settings.
    fn configure(&mut self, id: ConnId) {
        let Some((user, device)) = self.core.device_of(id) else {
            return;
        };
        let device = (user.to_string(), device.to_string());
        let (Some(out), Some(settings)) = (self.outs.get(&id), self.links.get(&device)) else {
            return;
        };
        for d in Direction::BOTH {
            if let Some(c) = *settings.config.of(d) {
                let _ = out
                    .link
                    .send((LinkCommand::Fault(Fault::Configure(d, c)), None));
            }
            if *settings.hold.of(d) {
                let _ = out
                    .link
                    .send((LinkCommand::Fault(Fault::Hold(d, true)), None));
            }
        }
    }

    fn handle(&mut self, msg: ToCore) {
        match msg {
            ToCore::Open {
                id,
                source,
                out,
                end,
                link,
                activity,
            } => {
                self.core.connect_from(id, Some(source), self.now());
                self.outs.insert(
                    id,
                    Out {
                        queue: out,
                        link,
                        end,
                        activity,
                    },
                );
                if self.stopping {
                    self.going_away(id);
                }
            }
            ToCore::Closed(id) => {
                self.core.disconnect(id);
                self.outs.remove(&id);
            }
            ToCore::Frame(..) => unreachable!("frames are batched"),
            ToCore::AdminAuth { source, ok, reply } => {
                let now = self.now();
                let _ = reply.send(self.core.admin_auth(Some(source), ok, now));
            }
            ToCore::Shutdown(reply) => {
                self.stopping = true;
                let ids: Vec<ConnId> = self.outs.keys().copied().collect();
                for id in ids {
                    self.going_away(id);
                }
                let _ = reply.send(());
            }
            ToCore::Control(c) => self.control(c),
            ToCore::Http(request, reply) => {
                let (answer, actions) = self.core.http(request, self.now());
                self.route(actions);
                let _ = reply.send(answer);
            }
        }
    }

    /// Close 1001, after what is queued for the connection.
    fn going_away(&mut self, id: ConnId) {
        self.core.disconnect(id);
        self.queue(id, Outbound::Close(close::GOING_AWAY, "going away".into()));
        self.deliver();
    }

    /// `Ok` when the server has a token for `user`.
    fn known(&self, user: &str) -> Result<(), String> {
        if self.core.users().contains(user) {
            Ok(())
        } else {
            Err(format!(
                "unknown user `{user}` (the server has no token for it)"
            ))
        }
    }

    fn control(&mut self, c: Control) {
        match c {
            Control::RejectNext { user, key, reply } => {
                let user = match user {
                    Some(user) => self.known(&user).map(|()| user),
                    None => {
                        let users = self.core.users();
                        match users.iter().next() {
                            Some(only) if users.len() == 1 => Ok(only.to_string()),
                            _ => Err(format!(
                                "name the `user`: the server has {} users",
                                users.len()
                            )),
                        }
                    }
                };
                let _ = reply.send(user.map(|user| self.core.reject_next(&user, key)));
            }
            Control::BlockWebsocket { on, reply } => {
                let actions = self.core.block_websocket(on);
                self.ws_blocked.store(on, Ordering::Relaxed);
                self.route(actions);
                let _ = reply.send(Ok(()));
            }
            Control::RotateToken { user, token, reply } => {
                let now = self.now();
                let result = self
                    .known(&user)
                    .and_then(|()| self.core.rotate_token(&user, &token, now))
                    .map(|actions| self.route(actions));
                let _ = reply.send(result);
            }
            Control::ServerSet {
                user,
                key,
                value,
                reply,
            } => {
                let result = self
                    .known(&user)
                    .and_then(|()| self.core.server_set(&user, &key, value, self.now()))
                    .map(|actions| self.route(actions));
                let _ = reply.send(result);
            }
            Control::Disconnect {
                user,
                device_id,
                reply,
            } => {
                let result = self.known(&user).and_then(|()| {
                    let actions =
                        self.core
                            .kick(&user, &device_id, 4000, "disconnected by the admin");
                    if actions.is_empty() {
                        return Err(format!("`{device_id}` of `{user}` is not connected"));
                    }
                    self.route(actions);
                    Ok(())
                });
                let _ = reply.send(result);
            }
            Control::Link {
                user,
                device_id,
                command,
                reply,
            } => self.link(&user, &device_id, command, reply),
            Control::Restart { reply } => {
                // Dropping a connection's queue and its end signal ends its task, which drops
                // the socket: a crash, not a goodbye.
                self.outs.clear();
                let result = self.core.restart().map_err(|e| e.to_string());
                if let Err(e) = &result {
                    tracing::error!("restart: {e}");
                }
                let _ = reply.send(result);
            }
            Control::Inspect { user, reply } => {
                let result = self.known(&user).map(|()| self.inspect(&user));
                let _ = reply.send(result);
            }
        }
    }

    fn link(&mut self, user: &str, device_id: &str, command: LinkCommand, reply: Reply) {
        if let Err(e) = self.known(user) {
            let _ = reply.send(Err(e));
            return;
        }
        let out = self
            .core
            .conn_of(user, device_id)
            .and_then(|id| self.outs.get(&id));
        match (command, out) {
            // Kept for the device's next connection (see `remember_links`).
            (command @ LinkCommand::Fault(Fault::Configure(..) | Fault::Hold(..)), out) => {
                if let Some(out) = out {
                    let _ = out.link.send((command, None));
                }
                let _ = reply.send(Ok(()));
            }
            // Not connected: no queue (the answer's sender is dropped: empty).
            (LinkCommand::Queued(_), None) => {
                let _ = reply.send(Ok(()));
            }
            (command, Some(out)) => {
                // The connection task answers (is there such a frame?).
                let _ = out.link.send((command, Some(reply)));
            }
            (_, None) => {
                let _ = reply.send(Err(format!("`{device_id}` of `{user}` is not connected")));
            }
        }
    }

    fn inspect(&self, user: &str) -> Inspection {
        let devices = self.core.devices_of(user);
        let data = self.core.user(user).cloned().unwrap_or_default();
        Inspection {
            writes: data.head,
            data,
            devices,
            forced: self.core.forced(user).cloned().collect(),
            websocket_blocked: self.core.websocket_blocked(),
        }
    }
}
