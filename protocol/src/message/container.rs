//! The three containers (PROTOCOL.md §4.5): `MergedWarpMessage` (59) from clients, and the TC's
//! answers `MergeResultMessage` (60, positional) and `BatchResultMessage` (121, with ids).

use bytes::{BufMut, BytesMut};

use super::wire::Reader;
use super::{type_code, CodecContext, Message};
use crate::error::ProtocolError;

/// `MergedWarpMessage` (59): several requests in one frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MergedWarpMessage {
    /// The sub-requests, answered in this order by a MergeResultMessage.
    pub msgs: Vec<Message>,
    /// The request id each sub-request would have had; absent from clients before 1.5.0.
    pub msg_ids: Option<Vec<u32>>,
}

/// `MergeResultMessage` (60): the i-th result answers the i-th sub-request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MergeResultMessage {
    /// The results, in request order.
    pub msgs: Vec<Message>,
}

/// `BatchResultMessage` (121): results paired with the sub-request ids (clients ≥ 1.5.0 only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchResultMessage {
    /// The results.
    pub msgs: Vec<Message>,
    /// The sub-request id each result answers.
    pub msg_ids: Vec<u32>,
}

/// Reads `contentLength`, checks it against what is left, and returns a reader over the content.
fn content<'a>(r: &mut Reader<'a>) -> Result<Reader<'a>, ProtocolError> {
    let len = r.i32("contentLength")?;
    let n = usize::try_from(len).map_err(|_| ProtocolError::BadLength { field: "contentLength", len: len.into() })?;
    if n > r.remaining() {
        return Err(ProtocolError::BadLength { field: "contentLength", len: len.into() });
    }
    Ok(Reader::new(r.bytes(n, "content")?))
}

fn decode_msgs(c: &mut Reader<'_>, ctx: &CodecContext) -> Result<Vec<Message>, ProtocolError> {
    let count = c.i16("count")?;
    let n = usize::try_from(count).map_err(|_| ProtocolError::BadCount(0))?;
    // Each sub-message takes at least its two-byte type code: never reserve more than that allows.
    let mut msgs = Vec::with_capacity(n.min(c.remaining() / 2));
    for _ in 0..n {
        let code = c.i16("sub-message type code")?;
        if matches!(code, type_code::SEATA_MERGE | type_code::SEATA_MERGE_RESULT | type_code::BATCH_RESULT_MSG) {
            return Err(ProtocolError::UnexpectedTypeCode(code)); // containers never nest
        }
        msgs.push(Message::decode_payload(code, c, ctx, false)?);
    }
    Ok(msgs)
}

fn decode_ids(c: &mut Reader<'_>, n: usize) -> Result<Vec<u32>, ProtocolError> {
    (0..n).map(|_| c.u32("msgId")).collect()
}

fn encode_container(
    buf: &mut BytesMut,
    ctx: &CodecContext,
    msgs: &[Message],
    ids: Option<&[u32]>,
) -> Result<(), ProtocolError> {
    let count = i16::try_from(msgs.len()).map_err(|_| ProtocolError::BadCount(msgs.len()))?;
    if let Some(ids) = ids {
        if ids.len() != msgs.len() {
            return Err(ProtocolError::BadCount(ids.len()));
        }
    }
    // Sub-messages always use the standard layout, which is how `decode_msgs` reads them: seata-go
    // has no container codec, so its one-byte failure-message layout never occurs inside one.
    let ctx = CodecContext { go_short_msg: false, ..*ctx };
    let len_at = buf.len();
    buf.put_i32(0);
    buf.put_i16(count);
    for m in msgs {
        if m.is_container() {
            return Err(ProtocolError::UnexpectedTypeCode(m.type_code()));
        }
        m.encode_into(buf, &ctx)?;
    }
    for id in ids.unwrap_or_default() {
        buf.put_u32(*id);
    }
    let content = buf.len() - len_at - 4;
    let content = i32::try_from(content).map_err(|_| ProtocolError::TooLong { field: "content", len: content })?;
    buf[len_at..len_at + 4].copy_from_slice(&content.to_be_bytes());
    Ok(())
}

impl MergedWarpMessage {
    pub(crate) fn decode(r: &mut Reader<'_>, ctx: &CodecContext) -> Result<Self, ProtocolError> {
        let mut c = content(r)?;
        let msgs = decode_msgs(&mut c, ctx)?;
        // Ids are present iff exactly 4·n bytes remain (PROTOCOL.md §4.5 recommendation).
        let msg_ids = match c.remaining() {
            0 => None,
            rest if rest == 4 * msgs.len() => Some(decode_ids(&mut c, msgs.len())?),
            rest => return Err(ProtocolError::TrailingBytes(rest)),
        };
        Ok(MergedWarpMessage { msgs, msg_ids })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut, ctx: &CodecContext) -> Result<(), ProtocolError> {
        encode_container(buf, ctx, &self.msgs, self.msg_ids.as_deref())
    }
}

impl MergeResultMessage {
    pub(crate) fn decode(r: &mut Reader<'_>, ctx: &CodecContext) -> Result<Self, ProtocolError> {
        let mut c = content(r)?;
        let msgs = decode_msgs(&mut c, ctx)?;
        c.finish()?;
        Ok(MergeResultMessage { msgs })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut, ctx: &CodecContext) -> Result<(), ProtocolError> {
        encode_container(buf, ctx, &self.msgs, None)
    }
}

impl BatchResultMessage {
    pub(crate) fn decode(r: &mut Reader<'_>, ctx: &CodecContext) -> Result<Self, ProtocolError> {
        let mut c = content(r)?;
        let msgs = decode_msgs(&mut c, ctx)?;
        let msg_ids = decode_ids(&mut c, msgs.len())?;
        c.finish()?;
        Ok(BatchResultMessage { msgs, msg_ids })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut, ctx: &CodecContext) -> Result<(), ProtocolError> {
        encode_container(buf, ctx, &self.msgs, Some(&self.msg_ids))
    }
}
