//! A polling device's HTTP requests (PROTOCOL.md, "Polling over HTTP"), made with
//! hyper's HTTP/1 client.
//!
//! One connection per request: a device polls every couple of seconds, so a pool would
//! save little, and a request that fails takes nothing else down with it — PROTOCOL.md
//! says a lost poll or write fails that request only.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::engine::polling::HTTP_TIMEOUT;
use crate::protocol::{HttpCall, HttpResult};

/// The largest answer body read (a changes answer holds at most the user's keys: a few
/// hundred KiB at the server's limits).
pub const MAX_ANSWER: usize = 4 << 20;

/// Where a device's polling requests go: the WebSocket URL's host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `HOST:PORT`.
    pub authority: String,
}

impl Endpoint {
    /// The endpoint of `ws://HOST:PORT/PATH`; `None` for any other kind of URL.
    pub fn of_websocket(url: &str) -> Option<Endpoint> {
        let rest = url.strip_prefix("ws://")?;
        let authority = rest.split('/').next().filter(|a| !a.is_empty())?;
        Some(Endpoint {
            authority: authority.to_string(),
        })
    }
}

/// Makes one request and reports what became of it; never longer than [`HTTP_TIMEOUT`].
pub async fn call(
    endpoint: Endpoint,
    device_id: String,
    token: String,
    call: HttpCall,
) -> HttpResult {
    match tokio::time::timeout(HTTP_TIMEOUT, request(&endpoint, &device_id, &token, &call)).await {
        Ok(Ok((status, body))) => HttpResult::Answered { status, body },
        Ok(Err(why)) => HttpResult::Failed(why),
        Err(_) => HttpResult::Failed(format!("no answer within {} s", HTTP_TIMEOUT.as_secs())),
    }
}

async fn request(
    endpoint: &Endpoint,
    device_id: &str,
    token: &str,
    call: &HttpCall,
) -> Result<(u16, String), String> {
    let stream = TcpStream::connect(&endpoint.authority)
        .await
        .map_err(|e| format!("connect to {}: {e}", endpoint.authority))?;
    // As for the WebSocket: a small request must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let body = call.body();
    let mut builder = hyper::Request::builder()
        .method(call.method())
        .uri(call.path_and_query())
        .header(hyper::header::HOST, &endpoint.authority)
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
        .header("X-Device-Id", device_id);
    if body.is_some() {
        builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let request = builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| format!("request: {e}"))?;
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = answer.status().as_u16();
    let bytes = Limited::new(answer.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    let text =
        String::from_utf8(bytes.to_vec()).map_err(|_| "the answer is not UTF-8".to_string())?;
    Ok((status, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_the_websocket_urls_host_and_port() {
        assert_eq!(
            Endpoint::of_websocket("ws://127.0.0.1:8787/sync"),
            Some(Endpoint {
                authority: "127.0.0.1:8787".into()
            })
        );
        assert_eq!(Endpoint::of_websocket("wss://host/sync"), None);
        assert_eq!(Endpoint::of_websocket("ws:///sync"), None);
    }
}
