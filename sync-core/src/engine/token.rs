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

use super::connection::ConnectionState;
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
            self.try_auth();
        } else if self.awaiting_token && self.conn == ConnectionState::AuthFailed {
            // Only out of `auth-failed`: a device the user took offline stays offline.
            self.attempt = 0;
            self.failed = 0;
            self.refused = 0;
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

    /// `error token_expired`. With the id of our `auth`: the token it carried had expired
    /// too, and is not sent again. Without an id: the connection's token was rotated away
    /// (in the handshake, a 4401 follows and [`Engine::on_disconnected`] waits for a new
    /// token). Either way the device waits for a newer token, and sends `auth` at once if
    /// it already has one.
    pub(super) fn on_token_expired(&mut self, id: Option<u64>) {
        match id {
            Some(id)
                if self
                    .auth_request
                    .as_ref()
                    .is_some_and(|(sent, _)| *sent == id) =>
            {
                self.requests.remove(&id);
                self.refused_token = self.auth_request.take().map(|(_, token)| token);
            }
            Some(_) => return,
            // Rotated again while an `auth` is on its way: its answer decides.
            None if self.auth_request.is_some() => {
                self.state.emit(EventKind::TokenExpired);
                return;
            }
            None => {}
        }
        self.token_state = TokenState::Expired;
        self.state.emit(EventKind::TokenExpired);
        self.try_auth();
    }

    /// Sends `auth` if it can help: on a connection past its `welcome`, with no `auth` on
    /// its way already (its answer decides), and with a token that is neither the
    /// connection's nor one the server already called expired.
    fn try_auth(&mut self) {
        let fresh = self.token != self.conn_token
            && self.refused_token.as_deref() != Some(self.token.as_str());
        if self.conn == ConnectionState::Connected && self.auth_request.is_none() && fresh {
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
