//! Polling over HTTP when the WebSocket is unavailable (PROTOCOL.md, "Polling over HTTP,
//! when the WebSocket is unavailable"; DESIGN.md, "Transports").
//!
//! The WebSocket's state machine ([`ConnectionState`] in `conn`) runs on untouched: after
//! `fallback after` attempts in a row whose upgrade was *refused* with an HTTP status
//! ([`Engine::on_refused`]), the device also polls, an overlay on top of it. While the
//! overlay is on and the WebSocket is not live, the device shows
//! [`ConnectionState::Polling`], and:
//!
//! - every poll interval it asks [`HttpCall::Changes`] with its cursor, and applies the
//!   answer as a `welcome`'s changes, by its strategy's push rules;
//! - its writes go out as [`HttpCall::Write`] under the rules they follow on the WebSocket
//!   (one request per key, follow-ups, batches);
//! - it keeps trying the WebSocket with its backoff; a `welcome` ends the overlay.
//!
//! A poll or write that gets no answer fails that request only: what a lost write carried
//! goes out again by the rule after `welcome`, after the next successful poll. A
//! successful poll is, like a `welcome`, the end of a run of failed attempts.
//!
//! Resets and timeouts of the WebSocket never start polling, so every lesson written
//! before polling existed keeps its meaning.

use std::collections::BTreeMap;
use std::time::Duration;

use super::connection::{ConnectionState, DEAD_AFTER};
use super::events::EventKind;
use super::settings::CursorMode;
use super::{Engine, Output};
use crate::protocol::{ClientFrame, ErrorCode, HttpCall, HttpResult, ServerFrame};

/// A polling request with no answer this long has failed (the dead-connection time).
pub const HTTP_TIMEOUT: Duration = DEAD_AFTER;

/// The polling overlay's state.
#[derive(Debug, Clone, Default)]
pub(super) struct Polling {
    /// When the next poll is due; `None` while one is on its way.
    next_poll: Option<Duration>,
    /// Requests on their way, by id: what each is and when it left.
    in_flight: BTreeMap<u64, InFlight>,
    /// A write got no answer: what it carried goes out after the next successful poll.
    resend_after_poll: bool,
    /// When the latest answered poll was sent.
    last_poll: Option<Duration>,
}

#[derive(Debug, Clone)]
struct InFlight {
    sent: Duration,
    /// The token it carried: a refusal of an older token than the device's says nothing
    /// about the one it has now.
    token: String,
    call: Call,
}

#[derive(Debug, Clone)]
enum Call {
    Poll,
    /// A write: the request ids it carries (a batch's, and each of its writes').
    Write(Vec<u64>),
}

impl Engine {
    /// The WebSocket upgrade was refused with an HTTP `status` (503 while the server blocks
    /// WebSockets): a failed attempt, and after `fallback after` of them in a row the
    /// device falls back to polling. Such an attempt is not a failure for the reconnect
    /// bound.
    pub fn on_refused(&mut self, status: u16, now: Duration) {
        self.now = now;
        if self.conn != ConnectionState::Connecting {
            return;
        }
        self.refused += 1;
        self.state.emit(EventKind::UpgradeRefused {
            status,
            in_a_row: self.refused,
        });
        let fall_back = self.polling.is_none() && self.refused >= self.settings.fallback_after;
        if fall_back {
            // What the lost WebSocket left unanswered goes out after the first poll.
            self.polling = Some(Polling {
                resend_after_poll: true,
                ..Polling::default()
            });
        }
        // An attempt that ends with the device polling is not a failure.
        self.attempt_ended(self.polling.is_none(), now);
        if fall_back && self.polling.is_some() {
            self.send_poll();
        }
        self.flush_events();
    }

    /// `true` while the device polls and its WebSocket is not live.
    pub(super) fn is_polling(&self) -> bool {
        self.polling.is_some() && self.conn != ConnectionState::Connected
    }

    /// When the latest answered poll was sent, while polling (the simulator's `settle`
    /// waits for a poll sent after the server's last write).
    pub fn last_poll(&self) -> Option<Duration> {
        self.polling.as_ref().and_then(|p| p.last_poll)
    }

    /// When the next poll is due, while polling and none is on its way.
    pub fn next_poll_at(&self) -> Option<Duration> {
        self.polling.as_ref().and_then(|p| p.next_poll)
    }

    /// The overlay ends (a `welcome`, or a state the device leaves only when asked):
    /// requests still on their way over HTTP are forgotten, their writes resent by the
    /// rule that follows.
    pub(super) fn stop_polling(&mut self) {
        let Some(polling) = self.polling.take() else {
            return;
        };
        // Falling back again takes a new run of refusals.
        self.refused = 0;
        for flight in polling.in_flight.into_values() {
            if let Call::Write(ids) = flight.call {
                for id in ids {
                    self.requests.remove(&id);
                }
            }
        }
    }

    /// The device's network went down (a simulator's `DEVICE offline`): any transport is
    /// gone and polling ends — it fell back while HTTP worked, and HTTP does not now. The
    /// device waits to try the WebSocket again; what was on its way goes out after the
    /// next `welcome`.
    pub fn on_network_down(&mut self, now: Duration) {
        self.now = now;
        if self.conn.has_transport() {
            self.on_disconnected(None, now);
        }
        if self.polling.is_some() {
            self.stop_polling();
            self.connection_event();
        }
        self.flush_events();
    }

    /// `true` while a WebSocket exists (opening, handshaking or live), polling or not.
    pub fn has_transport(&self) -> bool {
        self.conn.has_transport()
    }

    /// The request ids on their way over HTTP (kept when a WebSocket attempt fails).
    pub(super) fn http_request_ids(&self) -> Vec<u64> {
        let Some(polling) = &self.polling else {
            return Vec::new();
        };
        polling
            .in_flight
            .values()
            .flat_map(|f| match &f.call {
                Call::Write(ids) => ids.clone(),
                Call::Poll => Vec::new(),
            })
            .collect()
    }

    fn send_poll(&mut self) {
        let id = self.take_id();
        let catch_up = self.catch_up_to_ask();
        let now = self.now;
        let Some(polling) = &mut self.polling else {
            return;
        };
        polling.next_poll = None;
        polling.in_flight.insert(
            id,
            InFlight {
                sent: now,
                token: self.token.clone(),
                call: Call::Poll,
            },
        );
        self.state.counters.frames_up += 1;
        self.state.emit(EventKind::PollSent { id, catch_up });
        self.outputs.push_back(Output::Http {
            id,
            token: self.token.clone(),
            call: HttpCall::Changes(catch_up),
        });
    }

    /// A `set`, `command` or `batch` frame goes out as `POST /sync/write`.
    pub(super) fn post(&mut self, frame: ClientFrame) {
        let Some(id) = frame.id() else {
            return;
        };
        let mut ids = vec![id];
        if let ClientFrame::Batch { writes, .. } = &frame {
            ids.extend(writes.iter().filter_map(ClientFrame::id));
        }
        let now = self.now;
        if let Some(polling) = &mut self.polling {
            polling.in_flight.insert(
                id,
                InFlight {
                    sent: now,
                    token: self.token.clone(),
                    call: Call::Write(ids),
                },
            );
        }
        self.state.counters.frames_up += 1;
        self.outputs.push_back(Output::Http {
            id,
            token: self.token.clone(),
            call: HttpCall::Write(frame),
        });
    }

    /// The shell's report on polling request `id`. Answers to requests the device no
    /// longer waits for (it went back to the WebSocket, or gave the request up) are
    /// ignored.
    pub fn on_http(&mut self, id: u64, result: HttpResult, now: Duration) {
        self.now = now;
        let Some(flight) = self.polling.as_mut().and_then(|p| p.in_flight.remove(&id)) else {
            return;
        };
        // Only a request with no answer at all is a transport failure; a refusal is
        // an answer.
        let answered = matches!(result, HttpResult::Answered { .. });
        let result = match result {
            HttpResult::Answered { status, body } if status != 200 => {
                HttpResult::Failed(self.http_refusal(status, &body, &flight.token))
            }
            other => other,
        };
        match flight.call {
            Call::Poll => self.poll_answered(id, flight.sent, result, answered),
            Call::Write(ids) => self.write_answered(id, ids, result),
        }
        self.flush_events();
    }

    fn poll_answered(&mut self, id: u64, sent: Duration, result: HttpResult, answered: bool) {
        let interval = self.settings.poll_interval;
        if let Some(polling) = &mut self.polling {
            polling.next_poll = Some((sent + interval).max(self.now));
        }
        let welcome = match result {
            HttpResult::Answered { body, .. } => crate::protocol::decode_server_frame(&body)
                .map_err(|e| format!("undecodable answer: {e}")),
            HttpResult::Failed(why) => Err(why),
        };
        let Ok(ServerFrame::Welcome {
            user,
            rev,
            changes,
            reset,
        }) = welcome
        else {
            let why = match welcome {
                Err(why) => why,
                Ok(other) => format!("`{}` instead of the changes", other.type_name()),
            };
            self.state.emit(EventKind::PollFailed { id, why });
            if !answered {
                self.poll_failed();
            }
            return;
        };
        self.user = Some(user);
        let count = changes.len();
        let by_revision = self.settings.cursor == CursorMode::Revision;
        self.catch_up(rev, changes, reset, by_revision);
        self.failed = 0;
        self.state.emit(EventKind::PollAnswered {
            id,
            rev,
            changes: count,
            reset,
        });
        let Some(polling) = &mut self.polling else {
            return;
        };
        polling.last_poll = Some(sent);
        if std::mem::take(&mut polling.resend_after_poll) {
            self.gather(|e| e.resend_due(true));
        }
    }

    /// A poll got no answer: while polling, polls are the transport that counts, so this
    /// is a failed attempt, and at the reconnect bound the device stops in `error`.
    fn poll_failed(&mut self) {
        self.failed += 1;
        let Some(bound) = self.settings.reconnect_bound else {
            return;
        };
        if self.failed >= bound && self.polling.is_some() {
            self.give_up_polling(ConnectionState::Error {
                failed: self.failed,
            });
        }
    }

    /// Polling ends in a state the device leaves only when asked (or, after an expiry,
    /// when its token source has a new token); a WebSocket attempt under way is closed.
    fn give_up_polling(&mut self, state: ConnectionState) {
        self.stop_polling();
        if self.conn.has_transport() {
            self.outputs.push_back(Output::Close);
        }
        self.requests.clear();
        self.conn = state;
        self.connection_event();
    }

    fn write_answered(&mut self, id: u64, ids: Vec<u64>, result: HttpResult) {
        let answers = match result {
            HttpResult::Answered { body, .. } => serde_json::from_str::<Vec<ServerFrame>>(&body)
                .map_err(|e| format!("undecodable answer: {e}")),
            HttpResult::Failed(why) => Err(why),
        };
        let why = match answers {
            Ok(frames) => {
                for frame in frames {
                    match frame {
                        ServerFrame::Ack { .. }
                        | ServerFrame::Reject { .. }
                        | ServerFrame::BatchDone { .. } => self.handle_frame(frame),
                        // Only a write's answers belong here: anything else is reported,
                        // never taken for the WebSocket's.
                        other => self.state.emit(EventKind::Error {
                            code: None,
                            message: format!("`{}` in the answer to write {id}", other.type_name()),
                        }),
                    }
                }
                // A write the answer left out is as good as lost.
                let missing = ids.iter().any(|i| self.requests.contains_key(i));
                if !missing {
                    return;
                }
                format!("the answer left out part of write {id}")
            }
            Err(why) => why,
        };
        // Unanswered: nothing on the wire for these keys any more; what they carried goes
        // out again after the next successful poll.
        for id in ids {
            self.requests.remove(&id);
        }
        if let Some(polling) = &mut self.polling {
            polling.resend_after_poll = true;
        }
        self.state.emit(EventKind::HttpWriteFailed { id, why });
    }

    /// What a non-200 answer means for the device: a refused token ends polling in
    /// `auth-failed` — an expired one until the token source has a new one, as after a
    /// WebSocket's 4401 — unless the device already holds a newer token than the request
    /// carried. Returns why, for the event.
    fn http_refusal(&mut self, status: u16, body: &str, carried: &str) -> String {
        let code = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("code")?.as_str().map(str::to_string));
        match code.as_deref() {
            _ if carried != self.token => {}
            Some(c) if c == ErrorCode::TokenExpired.as_str() && self.polling.is_some() => {
                self.state.emit(EventKind::TokenExpired);
                self.give_up_polling(ConnectionState::AuthFailed);
                self.awaiting_token = true;
            }
            Some(c) if c == ErrorCode::Unauthorized.as_str() && self.polling.is_some() => {
                self.give_up_polling(ConnectionState::AuthFailed);
            }
            _ => {}
        }
        format!(
            "HTTP {status}{}",
            code.map(|c| format!(" {c}")).unwrap_or_default()
        )
    }

    /// The polling deadlines: the next poll, and the oldest request's timeout.
    pub(super) fn polling_timeout(&self) -> Option<Duration> {
        let polling = self.polling.as_ref()?;
        let oldest = polling
            .in_flight
            .values()
            .map(|f| f.sent + HTTP_TIMEOUT)
            .min();
        [polling.next_poll, oldest].into_iter().flatten().min()
    }

    /// Polls that are due go out; requests past their timeout fail.
    pub(super) fn polling_on_timeout(&mut self) {
        let now = self.now;
        let Some(polling) = &self.polling else {
            return;
        };
        let late: Vec<u64> = polling
            .in_flight
            .iter()
            .filter(|(_, f)| now >= f.sent + HTTP_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        let due = polling.next_poll.is_some_and(|t| now >= t);
        for id in late {
            let why = format!("no answer within {} s", HTTP_TIMEOUT.as_secs());
            self.on_http(id, HttpResult::Failed(why), now);
        }
        if due && self.polling.is_some() {
            self.send_poll();
        }
    }
}
