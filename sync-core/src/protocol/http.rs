//! The polling API as a device calls it (PROTOCOL.md, "Polling over HTTP, when the
//! WebSocket is unavailable"): the two requests, and the answer the shell hands back.
//!
//! The engine decides what to ask; its shell (the tokio client, or the simulator's link)
//! carries the request and reports the answer. Both read the method, path and body from
//! here, so the two drivers ask the server the very same thing.

use super::frames::{CatchUp, ClientFrame};

/// The path of the changes request.
pub const CHANGES_PATH: &str = "/sync/changes";
/// The path of the write request.
pub const WRITE_PATH: &str = "/sync/write";

/// One request of a polling device.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpCall {
    /// `GET /sync/changes?since=N` (or `?since_time=MS`): what changed after the cursor.
    Changes(CatchUp),
    /// `POST /sync/write` with one `set`, `command` or `batch` frame.
    Write(ClientFrame),
}

impl HttpCall {
    /// `GET` or `POST`.
    pub fn method(&self) -> &'static str {
        match self {
            HttpCall::Changes(_) => "GET",
            HttpCall::Write(_) => "POST",
        }
    }

    /// The path with its query string.
    pub fn path_and_query(&self) -> String {
        match self {
            HttpCall::Changes(CatchUp::Since(n)) => format!("{CHANGES_PATH}?since={n}"),
            HttpCall::Changes(CatchUp::SinceTime(ms)) => {
                format!("{CHANGES_PATH}?since_time={ms}")
            }
            HttpCall::Write(_) => WRITE_PATH.to_string(),
        }
    }

    /// The query string alone (empty for a write).
    pub fn query(&self) -> String {
        let path = self.path_and_query();
        path.split_once('?')
            .map_or_else(String::new, |(_, q)| q.to_string())
    }

    /// The JSON body of a write (`None` for a `GET`).
    pub fn body(&self) -> Option<String> {
        match self {
            HttpCall::Changes(_) => None,
            HttpCall::Write(frame) => Some(serde_json::to_string(frame).expect("frames serialize")),
        }
    }
}

impl std::fmt::Display for HttpCall {
    /// As a trace line shows it: `GET /sync/changes?since=3`, `POST /sync/write set …`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpCall::Changes(_) => write!(f, "GET {}", self.path_and_query()),
            HttpCall::Write(frame) => write!(f, "POST {WRITE_PATH} {frame}"),
        }
    }
}

/// What became of a request, as the shell reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpResult {
    /// The server answered with this status and body.
    Answered {
        /// The HTTP status.
        status: u16,
        /// The body, as text.
        body: String,
    },
    /// No answer: the request or its answer was lost, the connection failed, or it timed
    /// out. Why, for the event log.
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changes_request_carries_its_cursor_in_the_query() {
        let by_rev = HttpCall::Changes(CatchUp::Since(7));
        assert_eq!(
            (by_rev.method(), by_rev.path_and_query().as_str()),
            ("GET", "/sync/changes?since=7")
        );
        assert_eq!(by_rev.query(), "since=7");
        assert_eq!(by_rev.body(), None);
        let by_clock = HttpCall::Changes(CatchUp::SinceTime(1_000));
        assert_eq!(by_clock.path_and_query(), "/sync/changes?since_time=1000");
    }

    #[test]
    fn a_write_posts_its_frame_as_the_body() {
        let call = HttpCall::Write(ClientFrame::Ping { id: 3 });
        assert_eq!(
            (call.method(), call.path_and_query().as_str()),
            ("POST", "/sync/write")
        );
        assert_eq!(call.query(), "");
        assert_eq!(call.body().as_deref(), Some(r#"{"type":"ping","id":3}"#));
    }
}
