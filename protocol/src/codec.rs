//! A tokio-util [`Decoder`]/[`Encoder`] for Seata frames.
//!
//! The first bytes of a connection decide its protocol version once (PROTOCOL.md §1.2): `DA DA 01`
//! is v1, `DA DA 00` is v0; anything else is a fatal error. The choice is sticky, and every later
//! v1 frame must still carry version 1. Cheap checks come first and every length is bounded by
//! `max_frame_len` before any allocation; an incomplete frame stays in the buffer (`Ok(None)`).

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::ProtocolError;
use crate::frame::{
    msg_type, v0_flag, Frame, HeadMap, ProtocolVersion, DEFAULT_MAX_FRAME_LEN, MAGIC, V0_HEAD_LEN, V1_HEAD_LEN,
};
use crate::message::wire::Reader;
use crate::message::{CodecContext, Message};

/// Most buffer space reserved ahead of the bytes that have arrived.
const RESERVE_STEP: usize = 64 * 1024;

/// Frame codec for one connection.
#[derive(Debug, Clone)]
pub struct RpcCodec {
    max_frame_len: usize,
    version: Option<ProtocolVersion>,
}

impl Default for RpcCodec {
    fn default() -> Self {
        RpcCodec::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl RpcCodec {
    /// A codec that refuses frames longer than `max_frame_len` bytes (at least the header).
    pub fn new(max_frame_len: usize) -> Self {
        RpcCodec { max_frame_len: max_frame_len.max(V1_HEAD_LEN), version: None }
    }

    /// The protocol version this connection speaks, once known.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// The configured maximum frame length.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    fn decode_v1(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if src.len() < V1_HEAD_LEN {
            return Ok(None);
        }
        let raw = u32::from_be_bytes([src[3], src[4], src[5], src[6]]);
        let full = usize::try_from(raw).unwrap_or(usize::MAX);
        if !(V1_HEAD_LEN..=self.max_frame_len).contains(&full) {
            return Err(ProtocolError::BadFrameLength { len: u64::from(raw), max: self.max_frame_len });
        }
        let head = u16::from_be_bytes([src[7], src[8]]);
        if usize::from(head) < V1_HEAD_LEN || usize::from(head) > full {
            return Err(ProtocolError::BadHeadLength { head, full: raw });
        }
        if src.len() < full {
            // Grow with the bytes that arrive, not with what the header claims: a peer that sends
            // a header for an 8 MiB frame and then stalls must not cost 8 MiB.
            src.reserve((full - src.len()).min(RESERVE_STEP));
            return Ok(None);
        }
        Frame::parse_v1(src.split_to(full).freeze()).map(Some)
    }

    fn decode_v0(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if src.len() < V0_HEAD_LEN {
            return Ok(None);
        }
        let flag = u16::from_be_bytes([src[2], src[3]]);
        let code_or_len = i16::from_be_bytes([src[4], src[5]]);
        let id = i64::from_be_bytes([src[6], src[7], src[8], src[9], src[10], src[11], src[12], src[13]]);
        let request_id = u32::try_from(id).map_err(|_| ProtocolError::BadLength { field: "v0 message id", len: id })?;
        let message_type = match (flag & v0_flag::HEARTBEAT != 0, flag & v0_flag::REQUEST != 0) {
            (true, true) => msg_type::HEARTBEAT_REQUEST,
            (true, false) => msg_type::HEARTBEAT_RESPONSE,
            (false, true) if flag & v0_flag::ASYNC != 0 => msg_type::ONEWAY,
            (false, true) => msg_type::REQUEST,
            (false, false) => msg_type::RESPONSE,
        };
        let mut frame = Frame {
            version: ProtocolVersion::V0,
            message_type,
            codec: crate::frame::CODEC_SEATA,
            compressor: 0,
            request_id,
            head_map: HeadMap::default(),
            body: Bytes::new(),
        };
        if flag & v0_flag::HEARTBEAT != 0 {
            src.advance(V0_HEAD_LEN);
            return Ok(Some(frame));
        }
        if flag & v0_flag::SEATA_CODEC == 0 {
            // A Hessian body with its length in the header: consume it, report the codec.
            let len = usize::try_from(code_or_len)
                .map_err(|_| ProtocolError::BadLength { field: "v0 body length", len: i64::from(code_or_len) })?;
            if src.len() < V0_HEAD_LEN + len {
                return Ok(None);
            }
            let all = src.split_to(V0_HEAD_LEN + len).freeze();
            frame.codec = 0x16;
            frame.body = all.slice(V0_HEAD_LEN..);
            return Ok(Some(frame));
        }
        // The seata codec gives no body length: parse the payload to find where it ends, and wait
        // for more bytes while it is incomplete (PROTOCOL.md §1.6 recommendation).
        let payload = &src[V0_HEAD_LEN..];
        let mut r = Reader::new(payload);
        match Message::decode_payload(code_or_len, &mut r, &CodecContext::default(), false) {
            Ok(_) => {
                let n = r.position();
                let all = src.split_to(V0_HEAD_LEN + n);
                let mut body = BytesMut::with_capacity(n + 2);
                body.extend_from_slice(&code_or_len.to_be_bytes());
                body.extend_from_slice(&all[V0_HEAD_LEN..]);
                frame.body = body.freeze();
                Ok(Some(frame))
            }
            Err(ProtocolError::Truncated(_)) | Err(ProtocolError::BadLength { len: 0.., .. })
                if src.len() < self.max_frame_len =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

impl Decoder for RpcCodec {
    type Item = Frame;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if src.is_empty() {
            return Ok(None);
        }
        if src[0] != MAGIC[0] || (src.len() >= 2 && src[1] != MAGIC[1]) {
            return Err(ProtocolError::BadMagic([src[0], src.get(1).copied().unwrap_or(0)]));
        }
        if src.len() < 3 {
            return Ok(None);
        }
        let seen = match src[2] {
            1 => ProtocolVersion::V1,
            0 => ProtocolVersion::V0,
            other => return Err(ProtocolError::BadVersion(other)),
        };
        match self.version {
            None => self.version = Some(seen),
            Some(v) if v != seen => return Err(ProtocolError::BadVersion(src[2])),
            Some(_) => {}
        }
        match seen {
            ProtocolVersion::V1 => self.decode_v1(src),
            ProtocolVersion::V0 => self.decode_v0(src),
        }
    }
}

impl Encoder<Frame> for RpcCodec {
    type Error = ProtocolError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        self.encode(&frame, dst)
    }
}

impl Encoder<&Frame> for RpcCodec {
    type Error = ProtocolError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        let start = dst.len();
        frame.encode(dst)?;
        let len = dst.len() - start;
        if len > self.max_frame_len {
            dst.truncate(start);
            return Err(ProtocolError::BadFrameLength {
                len: u64::try_from(len).unwrap_or(u64::MAX),
                max: self.max_frame_len,
            });
        }
        Ok(())
    }
}
