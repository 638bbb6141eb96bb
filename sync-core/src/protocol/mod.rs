//! The wire protocol of PROTOCOL.md, shared by client and server so both agree by
//! construction.
//!
//! - [`model`]: keys, defaults and the server's value rules.
//! - [`frames`]: the client and server frames as Rust types.
//! - [`codes`]: error and close codes.
//! - [`decode`]: strict decoding of client frames, lenient decoding of server frames.
//! - [`http`]: the polling API's requests, as a device makes them.

pub mod codes;
pub mod decode;
pub mod frames;
pub mod http;
pub mod model;
pub mod strict_json;

pub use codes::{ErrorCode, close};
pub use decode::{DecodeError, Problem, check_batch, decode_client_frame, decode_server_frame};
pub use frames::{CatchUp, Change, ClientFrame, Current, PROTOCOL_VERSION, ServerFrame};
pub use http::{HttpCall, HttpResult};
pub use model::{CommandOp, Comment, InvalidValue, Key, UnknownKey, ValueKind};
