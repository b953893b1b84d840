//! The Apache Seata RPC wire protocol: frames, the "seata" body codec and the compressors.
//!
//! No sockets, no runtime, no database: bytes in, typed values out, and back. The TC, its tests and
//! the load generator all use this crate, so it is a client library as much as a server one.
//!
//! # Frame layout (v1, all integers big-endian)
//!
//! ```text
//!  0     2     3           7     9    10    11    12          16            head len        full len
//!  +-----+-----+-----------+-----+-----+-----+-----+-----------+-------------+---------------+
//!  |DA DA| 01  | full len  |head |type |codec|compr| request id| head map    | body          |
//!  |magic| ver | u32       |len  | u8  | u8  | u8  | u32       | k/v pairs   | i16 type code |
//!  |     |     | (frame)   |u16  |     |     |     |           | (optional)  | + payload     |
//!  +-----+-----+-----------+-----+-----+-----+-----+-----------+-------------+---------------+
//! ```
//!
//! * `full len` counts the whole frame including the 16 header bytes; `head len` is 16 plus the
//!   head map; the body is the rest, compressed by `compr` (PROTOCOL.md §1.3, §2.2).
//! * Message types: 0 request, 1 response, 2 one-way, 3 ping, 4 pong (no body for 3 and 4).
//! * The body starts with the message's type code (PROTOCOL.md §3), then its fields (§4).
//!
//! Layers: [`codec::RpcCodec`] cuts a byte stream into [`frame::Frame`]s (v1 and legacy v0);
//! [`frame::Frame::decode_message`] and [`frame::Frame::with_message`] convert bodies to and from
//! [`message::Message`]; [`model`] holds the enums with their wire numbers per client generation.

pub mod codec;
pub mod compress;
pub mod error;
pub mod frame;
pub mod message;
pub mod model;
pub mod version;

pub use codec::RpcCodec;
pub use error::ProtocolError;
pub use frame::{Frame, HeadMap, ProtocolVersion};
pub use message::{CodecContext, Message};
pub use model::{BranchStatus, BranchType, CodeTable, ExceptionCode, GlobalStatus, ResultCode};
pub use version::Version;
