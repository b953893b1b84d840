//! Frames: the v1 header and head map (PROTOCOL.md §1.3, §1.4) and the legacy v0 header (§1.6).
//!
//! A [`Frame`] keeps its body as raw (possibly compressed) bytes; [`Frame::decode_message`] turns
//! it into a [`Message`]. Both protocol versions produce the same `Frame`: for v0 the body is
//! rebuilt as `type code + payload`, so everything above the frame layer sees one shape.

use bytes::{BufMut, Bytes, BytesMut};

use crate::compress;
use crate::error::ProtocolError;
use crate::message::wire::Reader;
use crate::message::{CodecContext, Message};

/// The two magic bytes every frame starts with.
pub const MAGIC: [u8; 2] = [0xda, 0xda];
/// Fixed header length of a v1 frame.
pub const V1_HEAD_LEN: usize = 16;
/// Fixed header length of a v0 frame.
pub const V0_HEAD_LEN: usize = 14;
/// Seata's maximum frame length (`ProtocolConstants.MAX_FRAME_LENGTH`).
pub const DEFAULT_MAX_FRAME_LEN: usize = 8 * 1024 * 1024;
/// The "seata" serializer id; the only codec this crate reads and writes.
pub const CODEC_SEATA: u8 = 1;

/// Frame message types (byte 9 of a v1 frame).
pub mod msg_type {
    /// A request that expects an answer.
    pub const REQUEST: u8 = 0;
    /// An answer.
    pub const RESPONSE: u8 = 1;
    /// A "one-way" request; still answered unless it is an UndoLogDelete (§1.5).
    pub const ONEWAY: u8 = 2;
    /// Heartbeat ping (no body).
    pub const HEARTBEAT_REQUEST: u8 = 3;
    /// Heartbeat pong (no body).
    pub const HEARTBEAT_RESPONSE: u8 = 4;
}

/// Which header layout a frame uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolVersion {
    /// Fescar/Seata ≤ 0.6 clients.
    V0,
    /// Every client since 0.7.0.
    V1,
}

/// The v1 head map: `key → value` pairs in wire order. No known client sends one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadMap {
    /// Decoded entries; `None` is Java's null (length `FFFF`).
    Entries(Vec<(Option<String>, Option<String>)>),
    /// Bytes that do not parse as a head map (seata-python writes character counts for non-ASCII
    /// values). The body's position comes from the head length, so the frame is still usable;
    /// the raw bytes are kept so the frame re-encodes unchanged.
    Malformed(Bytes),
}

impl Default for HeadMap {
    fn default() -> Self {
        HeadMap::Entries(Vec::new())
    }
}

impl HeadMap {
    fn parse(raw: Bytes) -> HeadMap {
        fn entry(r: &mut Reader<'_>) -> Result<Option<String>, ProtocolError> {
            let len = r.i16("head map")?;
            if len == -1 {
                return Ok(None);
            }
            let n = usize::try_from(len).map_err(|_| ProtocolError::BadHeadMap)?;
            let b = r.bytes(n, "head map")?;
            std::str::from_utf8(b).map(|s| Some(s.to_owned())).map_err(|_| ProtocolError::InvalidUtf8("head map"))
        }
        let mut r = Reader::new(&raw);
        let mut entries = Vec::new();
        while r.remaining() > 0 {
            match (entry(&mut r), entry(&mut r)) {
                (Ok(k), Ok(v)) => entries.push((k, v)),
                _ => return HeadMap::Malformed(raw),
            }
        }
        HeadMap::Entries(entries)
    }

    fn encode(&self, buf: &mut BytesMut) -> Result<(), ProtocolError> {
        fn put(buf: &mut BytesMut, s: Option<&str>) -> Result<(), ProtocolError> {
            match s {
                None => buf.put_i16(-1),
                Some(s) => {
                    let len = i16::try_from(s.len())
                        .map_err(|_| ProtocolError::TooLong { field: "head map entry", len: s.len() })?;
                    buf.put_i16(len);
                    buf.put_slice(s.as_bytes());
                }
            }
            Ok(())
        }
        match self {
            HeadMap::Entries(entries) => {
                for (k, v) in entries {
                    put(buf, k.as_deref())?;
                    put(buf, v.as_deref())?;
                }
            }
            HeadMap::Malformed(raw) => buf.put_slice(raw),
        }
        Ok(())
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        match self {
            HeadMap::Entries(e) => e.is_empty(),
            HeadMap::Malformed(raw) => raw.is_empty(),
        }
    }
}

/// One frame: header fields, head map and the raw body as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Header layout.
    pub version: ProtocolVersion,
    /// See [`msg_type`]; unknown values are kept (Java dispatches on the body anyway).
    pub message_type: u8,
    /// Serializer id (1 = seata).
    pub codec: u8,
    /// Compressor id of the body (see [`crate::compress::id`]).
    pub compressor: u8,
    /// Correlation id.
    pub request_id: u32,
    /// v1 head map (always empty for v0).
    pub head_map: HeadMap,
    /// The body as sent: `type code + payload`, compressed when `compressor` ≠ 0. Empty for
    /// heartbeats.
    pub body: Bytes,
}

impl Frame {
    /// True for heartbeat pings and pongs.
    pub fn is_heartbeat(&self) -> bool {
        matches!(self.message_type, msg_type::HEARTBEAT_REQUEST | msg_type::HEARTBEAT_RESPONSE)
    }

    /// A v1 heartbeat frame.
    pub fn heartbeat(request_id: u32, ping: bool) -> Frame {
        Frame {
            version: ProtocolVersion::V1,
            message_type: if ping { msg_type::HEARTBEAT_REQUEST } else { msg_type::HEARTBEAT_RESPONSE },
            codec: CODEC_SEATA,
            compressor: compress::id::NONE,
            request_id,
            head_map: HeadMap::default(),
            body: Bytes::new(),
        }
    }

    /// The pong for a ping: same version, id, codec and compressor (`buildResponseMessage`).
    pub fn pong(&self) -> Frame {
        Frame {
            version: self.version,
            message_type: msg_type::HEARTBEAT_RESPONSE,
            codec: self.codec,
            compressor: self.compressor,
            request_id: self.request_id,
            head_map: HeadMap::default(),
            body: Bytes::new(),
        }
    }

    /// A v1 frame carrying `msg`, serialized with the seata codec and compressed with `compressor`.
    pub fn with_message(
        message_type: u8,
        request_id: u32,
        msg: &Message,
        ctx: &CodecContext,
        compressor: u8,
    ) -> Result<Frame, ProtocolError> {
        let body = msg.encode(ctx)?;
        let body = match compressor {
            compress::id::NONE => body,
            c => Bytes::from(compress::compress(c, &body)?),
        };
        Ok(Frame {
            version: ProtocolVersion::V1,
            message_type,
            codec: CODEC_SEATA,
            compressor,
            request_id,
            head_map: HeadMap::default(),
            body,
        })
    }

    /// The answer to `self` carrying `msg`: type 1, same version, id, codec and compressor, no head
    /// map (PROTOCOL.md §6.5).
    pub fn response(&self, msg: &Message, ctx: &CodecContext) -> Result<Frame, ProtocolError> {
        let mut f = Frame::with_message(msg_type::RESPONSE, self.request_id, msg, ctx, self.compressor)?;
        f.version = self.version;
        Ok(f)
    }

    /// Decompresses and decodes the body. `limit` bounds the decompressed size.
    pub fn decode_message(&self, ctx: &CodecContext, limit: usize) -> Result<Message, ProtocolError> {
        if self.codec != CODEC_SEATA {
            return Err(ProtocolError::UnsupportedCodec(self.codec));
        }
        if self.compressor == compress::id::NONE {
            return Message::decode(&self.body, ctx);
        }
        let plain = compress::decompress(self.compressor, &self.body, limit)?;
        Message::decode(&plain, ctx)
    }

    /// Parses one complete v1 frame (`buf` holds exactly `full length` bytes).
    pub fn parse_v1(buf: Bytes) -> Result<Frame, ProtocolError> {
        if buf.len() < V1_HEAD_LEN {
            return Err(ProtocolError::Truncated("frame header"));
        }
        if buf[..2] != MAGIC {
            return Err(ProtocolError::BadMagic([buf[0], buf[1]]));
        }
        if buf[2] != 1 {
            return Err(ProtocolError::BadVersion(buf[2]));
        }
        let full = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]);
        let head = u16::from_be_bytes([buf[7], buf[8]]);
        if usize::try_from(full).ok() != Some(buf.len()) {
            return Err(ProtocolError::BadFrameLength { len: u64::from(full), max: buf.len() });
        }
        let head_len = usize::from(head);
        if head_len < V1_HEAD_LEN || head_len > buf.len() {
            return Err(ProtocolError::BadHeadLength { head, full });
        }
        let head_map =
            if head_len == V1_HEAD_LEN { HeadMap::default() } else { HeadMap::parse(buf.slice(V1_HEAD_LEN..head_len)) };
        Ok(Frame {
            version: ProtocolVersion::V1,
            message_type: buf[9],
            codec: buf[10],
            compressor: buf[11],
            request_id: u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]),
            head_map,
            body: if matches!(buf[9], msg_type::HEARTBEAT_REQUEST | msg_type::HEARTBEAT_RESPONSE) {
                Bytes::new() // decoders ignore any body bytes of heartbeats (§1.5)
            } else {
                buf.slice(head_len..)
            },
        })
    }

    /// Appends the frame's bytes to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        match self.version {
            ProtocolVersion::V1 => self.encode_v1(dst),
            ProtocolVersion::V0 => self.encode_v0(dst),
        }
    }

    fn encode_v1(&self, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        let start = dst.len();
        dst.put_slice(&MAGIC);
        dst.put_u8(1);
        dst.put_u32(0); // full length, patched below
        dst.put_u16(0); // head length, patched below
        dst.put_u8(self.message_type);
        dst.put_u8(self.codec);
        dst.put_u8(self.compressor);
        dst.put_u32(self.request_id);
        self.head_map.encode(dst)?;
        let head = dst.len() - start;
        if !self.is_heartbeat() {
            dst.put_slice(&self.body);
        }
        let full = dst.len() - start;
        let head16 = u16::try_from(head).map_err(|_| ProtocolError::TooLong { field: "head map", len: head })?;
        let full32 = u32::try_from(full).map_err(|_| ProtocolError::TooLong { field: "frame", len: full })?;
        dst[start + 3..start + 7].copy_from_slice(&full32.to_be_bytes());
        dst[start + 7..start + 9].copy_from_slice(&head16.to_be_bytes());
        Ok(())
    }

    fn encode_v0(&self, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        let mut flag: u16 = 0;
        let mut code: i16 = 0;
        match self.message_type {
            msg_type::HEARTBEAT_REQUEST => flag |= v0_flag::HEARTBEAT | v0_flag::REQUEST,
            msg_type::HEARTBEAT_RESPONSE => flag |= v0_flag::HEARTBEAT,
            msg_type::REQUEST => flag |= v0_flag::REQUEST,
            msg_type::ONEWAY => flag |= v0_flag::REQUEST | v0_flag::ASYNC,
            _ => {}
        }
        if self.codec == CODEC_SEATA {
            flag |= v0_flag::SEATA_CODEC;
        }
        let payload = if self.is_heartbeat() {
            Bytes::new()
        } else {
            if self.compressor != compress::id::NONE {
                return Err(ProtocolError::UnsupportedCompressor(self.compressor));
            }
            if self.codec == CODEC_SEATA {
                // The type code moves into the header; the payload follows it.
                let mut r = Reader::new(&self.body);
                code = r.i16("type code")?;
                self.body.slice(2..)
            } else {
                // Any other codec (Hessian) has the body length in the header (PROTOCOL.md §1.6).
                code = i16::try_from(self.body.len())
                    .map_err(|_| ProtocolError::TooLong { field: "v0 body", len: self.body.len() })?;
                self.body.clone()
            }
        };
        dst.put_slice(&MAGIC);
        dst.put_u16(flag);
        dst.put_i16(code);
        dst.put_i64(i64::from(self.request_id));
        dst.put_slice(&payload);
        Ok(())
    }
}

/// Flag bits of a v0 header.
pub mod v0_flag {
    /// A request (else a response).
    pub const REQUEST: u16 = 0x80;
    /// A one-way request.
    pub const ASYNC: u16 = 0x40;
    /// A heartbeat.
    pub const HEARTBEAT: u16 = 0x20;
    /// The body uses the seata codec (else Hessian, with the body length at offset 4).
    pub const SEATA_CODEC: u16 = 0x10;
}
