//! Error codes (in `reject` and `error` frames) and WebSocket close codes of PROTOCOL.md.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Every `code` a `reject` or `error` frame can carry.
///
/// Clients must tolerate codes added by a newer server, so an unknown code decodes as
/// [`ErrorCode::Other`] instead of failing the whole frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Bad or missing token in `hello` (close 4401).
    Unauthorized,
    /// A frame before `hello`, or none within 5 s (close 4400).
    HelloRequired,
    /// `protocol` is not 1 (close 4400).
    UnsupportedProtocol,
    /// A malformed frame (step 2 of the write pipeline); closes with 4400 inside `hello`.
    BadMessage,
    /// The write's key is outside the data model.
    UnknownKey,
    /// The value does not fit the key.
    InvalidValue,
    /// A write with a `local_rev` lower than one already applied for this device and key.
    Superseded,
    /// Fault injection: the server was told to reject the next write to this key.
    Forced,
    /// Over the per-connection rate limit.
    RateLimited,
    /// A frame over 64 KiB (close 1009).
    TooLarge,
    /// No frame for 30 s (close 4408).
    IdleTimeout,
    /// The outbound queue overflowed (close 4009); reconnect and catch up.
    Resync,
    /// A newer connection of the same device took over (close 4010).
    Replaced,
    /// Too many failed token checks from one source address (close 1008).
    TooManyAttempts,
    /// The server could not commit to its store (close 1011).
    StoreFailed,
    /// The connection's token was rotated away: re-authenticate with `auth` within 30 s
    /// (then close 4401); a `hello` with an expired token is closed 4401 at once.
    TokenExpired,
    /// A code this client does not know (sent by a newer server).
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::HelloRequired => "hello_required",
            ErrorCode::UnsupportedProtocol => "unsupported_protocol",
            ErrorCode::BadMessage => "bad_message",
            ErrorCode::UnknownKey => "unknown_key",
            ErrorCode::InvalidValue => "invalid_value",
            ErrorCode::Superseded => "superseded",
            ErrorCode::Forced => "forced",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::IdleTimeout => "idle_timeout",
            ErrorCode::Resync => "resync",
            ErrorCode::Replaced => "replaced",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::StoreFailed => "store_failed",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::Other => "other",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes the server uses (PROTOCOL.md, "Errors and closes").
pub mod close {
    /// The server shuts down (or `/sync` WebSockets are blocked): `going away`.
    pub const GOING_AWAY: u16 = 1001;
    /// A text frame that is not UTF-8 (RFC 6455).
    pub const INVALID_UTF8: u16 = 1007;
    /// Refused frames in each of 5 consecutive seconds, or too many failed token checks.
    pub const POLICY: u16 = 1008;
    /// A frame over 64 KiB.
    pub const TOO_LARGE: u16 = 1009;
    /// `hello_required`, `unsupported_protocol`, or a bad `hello`.
    pub const BAD_HELLO: u16 = 4400;
    /// Bad or missing token.
    pub const UNAUTHORIZED: u16 = 4401;
    /// No frame from the client for 30 s.
    pub const IDLE: u16 = 4408;
    /// The outbound queue overflowed.
    pub const RESYNC: u16 = 4009;
    /// A newer connection of the same device.
    pub const REPLACED: u16 = 4010;
    /// The server could not commit to its store.
    pub const STORE_FAILED: u16 = 1011;

    /// `true` for the closes after which a client must not reconnect by itself: the device
    /// shows why instead (PROTOCOL.md, "Heartbeat and reconnect").
    pub fn forbids_reconnect(code: u16) -> bool {
        matches!(code, POLICY | TOO_LARGE | UNAUTHORIZED | REPLACED)
    }
}
