//! Re-authenticating an open connection (PROTOCOL.md, "Token refresh"): what the device
//! does when its token is rotated away, and when its token source hands it a new one.
//!
//! The server says `error token_expired` and from then refuses the connection's writes
//! `reject token_expired`, applying nothing. Such a refusal is not a verdict on the value:
//! the intent is kept (no rollback, no rejection counted), and while the token is expired
//! new requests wait as if offline. Once the token source has a new token
//! ([`Engine::set_token`]) the device sends `auth`; on `authed` it sends what waited by the
//! rule after a `welcome`. A 4401 caused by an expiry leaves the device `auth-failed` until
//! the source has a new token, then it reconnects with it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::events::EventKind;
use super::{Engine, Request};
use crate::protocol::{ClientFrame, Key};

/// Where the connection stands with its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenState {
    /// The connection's token is valid (or there is no connection).
    #[default]
    Valid,
    /// The server said the token expired: writes wait for a new one.
    Expired,
    /// An `auth` with a new token is on its way.
    Reauthenticating,
}

impl TokenState {
    /// How a pane says it.
    pub fn name(self) -> &'static str {
        match self {
            TokenState::Valid => "valid",
            TokenState::Expired => "token expired",
            TokenState::Reauthenticating => "re-authenticating",
        }
    }
}

impl Engine {
    /// The token source has a token for the device (it changed, typically after a
    /// rotation). While its connection's token is expired the device re-authenticates with
    /// it; after a 4401 caused by an expiry it reconnects with it; otherwise its next
    /// `hello` uses it.
    pub fn set_token(&mut self, token: &str, now: Duration) {
        self.now = now;
        if token == self.token {
            return;
        }
        self.token = token.to_string();
        self.state.emit(EventKind::TokenReceived);
        if self.token_state == TokenState::Expired {
            self.send_auth();
        } else if self.awaiting_token {
            self.awaiting_token = false;
            self.attempt = 0;
            self.failed = 0;
            self.open(now);
        }
        self.flush_events();
    }

    /// The token the device holds now (its next `hello` or `auth` carries it).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Where the connection stands with its token.
    pub fn token_state(&self) -> TokenState {
        self.token_state
    }

    /// `error token_expired`: without an id, the connection's token was rotated away; with
    /// the id of our `auth`, the token it carried had expired too. Either way the device
    /// waits for a newer token (and sends `auth` at once if it already has one).
    pub(super) fn on_token_expired(&mut self, id: Option<u64>) {
        if id.is_some() && id != self.auth_request.as_ref().map(|(id, _)| *id) {
            return;
        }
        if let Some((id, _)) = self.auth_request.take() {
            self.requests.remove(&id);
        }
        self.token_state = TokenState::Expired;
        self.state.emit(EventKind::TokenExpired);
        if self.token != self.conn_token {
            self.send_auth();
        }
    }

    /// A write (request `id`) refused `token_expired`: nothing was applied, so it counts as
    /// never sent, and its key has no request on the wire any more. Sent before the latest
    /// `authed` (its refusal overtaken by the re-authentication), it goes out again now;
    /// otherwise the connection's token is expired and it waits for `authed`.
    pub(super) fn kept_for_token(&mut self, key: Key, id: u64) {
        self.state.emit(EventKind::KeptForToken { key });
        if id < self.reauthed_at {
            self.gather(|e| e.resend_due(true));
        } else if self.token_state == TokenState::Valid {
            self.token_state = TokenState::Expired;
        }
    }

    /// `authed`: the connection runs on the new token; what waited goes out.
    pub(super) fn on_authed(&mut self, id: u64) {
        let Some((sent, token)) = self.auth_request.take() else {
            return;
        };
        if sent != id {
            self.auth_request = Some((sent, token));
            return;
        }
        self.requests.remove(&id);
        self.conn_token = token;
        self.token_state = TokenState::Valid;
        self.reauthed_at = id;
        self.state.emit(EventKind::Authed { id });
        self.gather(|e| e.resend_due(true));
    }

    fn send_auth(&mut self) {
        let id = self.take_id();
        self.requests.insert(id, Request::Auth);
        self.auth_request = Some((id, self.token.clone()));
        self.token_state = TokenState::Reauthenticating;
        self.state.emit(EventKind::AuthSent { id });
        self.send_frame(ClientFrame::Auth {
            id,
            token: self.token.clone(),
        });
    }
}
