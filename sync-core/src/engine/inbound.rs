//! Handling what the server sends: acks and rejects (routed to the strategy that sent the
//! request), pushes and catch-up changes (by the push rules of the device's strategy), and
//! `welcome` with the reconnect rule of PROTOCOL.md.

use std::time::Duration;

use serde_json::Value;

use super::connection::ConnectionState;
use super::events::EventKind;
use super::hooks::Rejection;
use super::strategy::PushVerdict;
use super::{Engine, Request};
use crate::optimistic::SendKind;
use crate::optimistic::sync_with_push::RevisionEntry;
use crate::protocol::{CatchUp, Change, Current, ErrorCode, Key, ServerFrame, decode_server_frame};

impl Engine {
    /// A text frame from the server. A frame that does not decode is reported as an
    /// error event and otherwise ignored.
    pub fn on_text(&mut self, text: &str, now: Duration) {
        match decode_server_frame(text) {
            Ok(frame) => self.on_frame(frame, now),
            Err(e) => {
                self.now = now;
                self.heartbeat.last_received = now;
                self.state.emit(EventKind::Error {
                    code: None,
                    message: format!("undecodable frame from the server: {e}"),
                });
                self.flush_events();
            }
        }
    }

    /// A decoded frame from the server.
    pub fn on_frame(&mut self, frame: ServerFrame, now: Duration) {
        self.now = now;
        self.heartbeat.last_received = now;
        self.handle_frame(frame);
        self.flush_events();
    }

    /// A frame from the server, over the WebSocket or in the answer to a write over HTTP.
    pub(super) fn handle_frame(&mut self, frame: ServerFrame) {
        match frame {
            ServerFrame::Welcome {
                user,
                rev,
                changes,
                reset,
            } => self.on_welcome(user, rev, changes, reset),
            ServerFrame::Ack { id, value, rev, .. } => self.on_ack(id, value, rev),
            ServerFrame::Reject {
                id,
                code,
                message,
                current,
                ..
            } => self.on_reject(
                id,
                Rejection {
                    code,
                    message,
                    current,
                },
            ),
            ServerFrame::Push(change) => {
                self.cursor.saw(change.rev);
                self.apply_change(change);
            }
            ServerFrame::Pong { id } => {
                self.requests.remove(&id);
            }
            ServerFrame::Authed { id } => self.on_authed(id),
            ServerFrame::Error {
                code: ErrorCode::TokenExpired,
                id,
                ..
            } => self.on_token_expired(id),
            ServerFrame::BatchDone { id, count } => {
                self.requests.remove(&id);
                self.state.emit(EventKind::BatchDone { id, count });
            }
            ServerFrame::Error { code, message, .. } => self.state.emit(EventKind::Error {
                code: Some(code),
                message,
            }),
        }
    }

    fn on_ack(&mut self, id: u64, value: Value, rev: u64) {
        let Some(request) = self.requests.remove(&id) else {
            self.unknown_answer(id);
            return;
        };
        match request {
            Request::Write { key, local_rev } => {
                let before = self.state.before(&key);
                self.apply_ack(&key, local_rev, value.clone(), rev);
                self.state.server_had(&key, value, rev);
                // An answer to an older request than the newest intent, or with a
                // revision older than the known one, took the screen back.
                let older = local_rev < before.newest_intent || rev < before.known_rev;
                self.state.regressed_if(&key, before, older);
            }
            Request::Command { key } => {
                let fx = self
                    .comments
                    .on_response(&mut self.state, &key, Ok(Some((value, rev))));
                self.run_command_effects(fx);
            }
            Request::Ping | Request::Batch | Request::Auth => {}
        }
    }

    /// An ack of a write, by the rules of the device's strategy.
    fn apply_ack(&mut self, key: &Key, local_rev: u64, value: Value, rev: u64) {
        self.with_rules(|rules, st, fx| rules.acked(st, key, local_rev, value, rev, fx));
    }

    fn on_reject(&mut self, id: u64, rejection: Rejection) {
        let Some(request) = self.requests.remove(&id) else {
            self.unknown_answer(id);
            return;
        };
        let key = match &request {
            Request::Write { key, .. } | Request::Command { key } => key.clone(),
            Request::Ping | Request::Batch | Request::Auth => return,
        };
        if rejection.code == ErrorCode::TokenExpired {
            return self.kept_for_token(key, id);
        }
        self.state.emit(EventKind::Rejected {
            key: key.clone(),
            code: rejection.code,
            message: rejection.message.clone(),
        });
        let current = rejection.current.clone();
        match request {
            Request::Write { local_rev, .. } => {
                self.with_rules(|rules, st, fx| {
                    rules.rejected(st, &key, local_rev, rejection, fx);
                });
            }
            Request::Command { .. } => {
                let fx = self
                    .comments
                    .on_response(&mut self.state, &key, Err(rejection));
                self.run_command_effects(fx);
            }
            Request::Ping | Request::Batch | Request::Auth => {}
        }
        if let Some(current) = current {
            self.learn_current(&key, current);
        }
    }

    /// A reject's `current` becomes the known revision if it is newer.
    fn learn_current(&mut self, key: &Key, current: Current) {
        let slot = self.state.slot(key);
        if current.rev > slot.known_rev {
            slot.known_rev = current.rev;
            slot.confirmed = current.value;
        }
    }

    fn unknown_answer(&mut self, id: u64) {
        self.state.emit(EventKind::Error {
            code: None,
            message: format!("answer to request #{id}, which this connection did not send"),
        });
    }

    /// A push or catch-up change, by the push rules of the device's strategy.
    fn apply_change(&mut self, change: Change) {
        let key = match Key::parse(&change.key) {
            Ok(key) => key,
            Err(e) => {
                self.state.emit(EventKind::Error {
                    code: None,
                    message: format!("change ignored: {e}"),
                });
                return;
            }
        };
        self.clock_cursor = Some(self.device_clock());
        let from_other = change.device_id != self.device_id;
        let before = self.state.before(&key);
        let rev = change.rev;
        let verdict = self
            .machine
            .rules_mut()
            .push(&mut self.state, &key, &change, from_other);
        let applied = match verdict {
            PushVerdict::Applied => true,
            PushVerdict::Stale { known } => {
                self.state.stale(EventKind::PushStale {
                    key: key.clone(),
                    rev: change.rev,
                    known,
                });
                false
            }
            PushVerdict::AlreadySeen => {
                self.state.emit(EventKind::PushAlreadySeen {
                    key: key.clone(),
                    rev: change.rev,
                });
                false
            }
            PushVerdict::TakenAsAck => {
                self.state.emit(EventKind::PushTakenAsAck {
                    key: key.clone(),
                    rev: change.rev,
                    local_rev: change.local_rev,
                });
                false
            }
            PushVerdict::OwnEchoIgnored => {
                self.state.emit(EventKind::OwnEchoIgnored {
                    key: key.clone(),
                    rev: change.rev,
                });
                false
            }
        };
        if applied {
            if from_other {
                self.state.slot(&key).superseded_by = Some(change.rev);
            }
            self.state.emit(EventKind::PushApplied {
                key: key.clone(),
                value: change.value,
                rev: change.rev,
                from: change.device_id,
                local_rev: change.local_rev,
                own: !from_other,
            });
            // A revision lower than the known one took the screen back (`sync` and
            // `naive` apply it; `sync-with-push` calls it stale).
            let older = rev < before.known_rev;
            self.state.regressed_if(&key, before, older);
        }
    }

    fn on_welcome(&mut self, user: String, rev: u64, changes: Vec<Change>, reset: bool) {
        if self.conn != ConnectionState::Handshaking {
            self.state.emit(EventKind::Error {
                code: None,
                message: "`welcome` outside the handshake ignored".into(),
            });
            return;
        }
        self.user = Some(user);
        let count = changes.len();
        // A catch-up by clock may have left changes out: the revision cursor stays.
        let by_revision = matches!(self.hello_catch_up, CatchUp::Since(_));
        self.catch_up(rev, changes, reset, by_revision);
        self.conn = ConnectionState::Connected;
        self.attempt = 0;
        self.failed = 0;
        self.refused = 0;
        // Back on the WebSocket: what was on its way over HTTP is resent below.
        self.stop_polling();
        self.connection_event();
        self.state.emit(EventKind::CaughtUp {
            rev,
            changes: count,
            reset,
        });
        self.resolve_open_requests();
    }

    /// The changes of a `welcome` (or of a poll's answer, which is one) up to the user's
    /// revision `rev`: applied by the push rules, or with `reset` taken as the whole
    /// truth. The revision cursor moves to `rev` only when they were asked `by_revision`.
    pub(super) fn catch_up(
        &mut self,
        rev: u64,
        changes: Vec<Change>,
        reset: bool,
        by_revision: bool,
    ) {
        if reset {
            self.apply_reset(changes);
            self.cursor.reset(rev);
        } else {
            for change in changes {
                self.apply_change(change);
            }
            if by_revision {
                self.cursor.caught_up(rev);
            }
        }
    }

    /// `welcome` with `reset`: the server lost history. Forget known revisions, take every
    /// change as the truth, return missing keys to their defaults (rev 0) — but keep what
    /// the user intends for keys with unacknowledged intents, which are resent next.
    fn apply_reset(&mut self, changes: Vec<Change>) {
        let mut truth: std::collections::BTreeMap<Key, Change> = changes
            .into_iter()
            .filter_map(|c| Key::parse(&c.key).ok().map(|k| (k, c)))
            .collect();
        let pending = self.pending_keys();
        let mut keys: Vec<Key> = self.state.keys.keys().cloned().collect();
        keys.extend(truth.keys().cloned());
        keys.sort();
        keys.dedup();
        for key in keys {
            let (value, rev) = match truth.remove(&key) {
                Some(c) => (c.value, c.rev),
                None => (key.default_value(), 0),
            };
            let keep_shown = pending.contains(&key) || self.commands.contains_key(&key);
            let slot = self.state.slot(&key);
            slot.confirmed = value.clone();
            slot.known_rev = rev;
            slot.superseded_by = None;
            if !keep_shown {
                slot.shown = value;
            }
            let local = slot.local_rev as i64;
            let entry = RevisionEntry {
                local,
                server: rev as i64,
                is_push: false,
            };
            self.machine.rules_mut().set_revision(key, entry);
        }
    }

    /// PROTOCOL.md's reconnect rule, per key with an unanswered or unsent write: superseded
    /// by another device's newer change → nothing is sent; else the unanswered request is
    /// resent unchanged, or the newest intent is sent. Commands are always resent unchanged
    /// (the server's idempotency makes that safe; a comment is not last-value-wins).
    ///
    /// What is due goes out gathered: two or more writes leave in `batch` frames.
    fn resolve_open_requests(&mut self) {
        self.gather(|e| e.resend_due(false));
    }

    /// Whether another device's newer change superseded the unanswered intent for `key`
    /// (then nothing is sent: PROTOCOL.md's reconnect rule).
    fn is_superseded(&self, key: &Key) -> bool {
        let known = self.known_rev(key);
        self.state
            .keys
            .get(key)
            .and_then(|slot| slot.superseded_by)
            .is_some_and(|rev| rev >= known)
    }

    /// The rule after `welcome` for every key with an open write or command; with
    /// `idle_only` (after `authed`, on a connection that stayed up) only for keys with no
    /// request on the wire: the others are still answered as usual.
    pub(super) fn resend_due(&mut self, idle_only: bool) {
        let on_wire = if idle_only {
            self.unanswered()
        } else {
            Vec::new()
        };
        for key in self.pending_keys() {
            // The local revisions of the key's writes still on the wire.
            let sent: Vec<u64> = if idle_only {
                self.requests
                    .values()
                    .filter_map(|r| match r {
                        Request::Write { key: k, local_rev } if *k == key => Some(*local_rev),
                        _ => None,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let superseded = self.is_superseded(&key);
            self.with_rules(|rules, st, fx| rules.answer_lost(st, &key, &sent, superseded, fx));
        }
        let commands: Vec<Key> = self
            .commands
            .keys()
            .filter(|k| !on_wire.contains(k))
            .cloned()
            .collect();
        for key in commands {
            self.send_command(&key, SendKind::Resend);
        }
    }
}
