//! Every message of PROTOCOL.md §3 and the "seata" body codec (codec id 1, §4).
//!
//! A v1 body is `i16 type code` + payload; containers (59, 60, 121) hold sub-messages written the
//! same way. Decoding is strict (§4.7): every declared length must fit and a body must be consumed
//! exactly, except for the two leniencies real clients need:
//!
//! * seata-go writes the failure message of responses 4, 6, 14 and 22 with a one-byte length
//!   (§8.1): such a body is read in the layout of the context first (Go's when
//!   [`CodecContext::go_short_msg`] is set, else the standard one) and, when that does not consume
//!   it exactly, in the other layout;
//! * clients before 1.5.0 send MergedWarpMessage without the trailing id list (§4.5).

mod branch;
mod container;
mod global;
mod register;
mod result;
pub mod wire;

use bytes::{BufMut, Bytes, BytesMut};

pub use branch::{
    BranchEndRequest, BranchEndResponse, BranchRegisterRequest, BranchRegisterResponse, BranchReportRequest,
    BranchReportResponse, GlobalLockQueryResponse, UndoLogDeleteRequest,
};
pub use container::{BatchResultMessage, MergeResultMessage, MergedWarpMessage};
pub use global::{GlobalBeginRequest, GlobalBeginResponse, GlobalEndRequest, GlobalEndResponse, GlobalReportRequest};
pub use register::{RegisterRequest, RegisterResponse};
pub use result::ResultHead;

use crate::error::ProtocolError;
use crate::model::CodeTable;
use wire::Reader;

/// Body type codes (`core/protocol/MessageType.java`).
pub mod type_code {
    #![allow(missing_docs)]
    pub const GLOBAL_BEGIN: i16 = 1;
    pub const GLOBAL_BEGIN_RESULT: i16 = 2;
    pub const BRANCH_COMMIT: i16 = 3;
    pub const BRANCH_COMMIT_RESULT: i16 = 4;
    pub const BRANCH_ROLLBACK: i16 = 5;
    pub const BRANCH_ROLLBACK_RESULT: i16 = 6;
    pub const GLOBAL_COMMIT: i16 = 7;
    pub const GLOBAL_COMMIT_RESULT: i16 = 8;
    pub const GLOBAL_ROLLBACK: i16 = 9;
    pub const GLOBAL_ROLLBACK_RESULT: i16 = 10;
    pub const BRANCH_REGISTER: i16 = 11;
    pub const BRANCH_REGISTER_RESULT: i16 = 12;
    pub const BRANCH_STATUS_REPORT: i16 = 13;
    pub const BRANCH_STATUS_REPORT_RESULT: i16 = 14;
    pub const GLOBAL_STATUS: i16 = 15;
    pub const GLOBAL_STATUS_RESULT: i16 = 16;
    pub const GLOBAL_REPORT: i16 = 17;
    pub const GLOBAL_REPORT_RESULT: i16 = 18;
    pub const GLOBAL_LOCK_QUERY: i16 = 21;
    pub const GLOBAL_LOCK_QUERY_RESULT: i16 = 22;
    pub const SEATA_MERGE: i16 = 59;
    pub const SEATA_MERGE_RESULT: i16 = 60;
    pub const REG_CLT: i16 = 101;
    pub const REG_CLT_RESULT: i16 = 102;
    pub const REG_RM: i16 = 103;
    pub const REG_RM_RESULT: i16 = 104;
    pub const RM_DELETE_UNDOLOG: i16 = 111;
    pub const HEARTBEAT_MSG: i16 = 120;
    pub const BATCH_RESULT_MSG: i16 = 121;
}

/// How to read and write bodies for one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecContext {
    /// The exception-code numbering the peer uses (PROTOCOL.md §5.5).
    pub code_table: CodeTable,
    /// Write the failure message of responses 4, 6, 14 and 22 with seata-go's one-byte length, and
    /// try that layout first when reading them (a body can be valid in both layouts and mean
    /// different things). Containers, which seata-go does not implement, always hold their
    /// sub-messages in the standard layout.
    pub go_short_msg: bool,
}

impl Default for CodecContext {
    fn default() -> Self {
        CodecContext { code_table: CodeTable::V2, go_short_msg: false }
    }
}

/// One message of the "seata" codec.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Message {
    GlobalBeginRequest(GlobalBeginRequest),
    GlobalBeginResponse(GlobalBeginResponse),
    BranchCommitRequest(BranchEndRequest),
    BranchCommitResponse(BranchEndResponse),
    BranchRollbackRequest(BranchEndRequest),
    BranchRollbackResponse(BranchEndResponse),
    GlobalCommitRequest(GlobalEndRequest),
    GlobalCommitResponse(GlobalEndResponse),
    GlobalRollbackRequest(GlobalEndRequest),
    GlobalRollbackResponse(GlobalEndResponse),
    BranchRegisterRequest(BranchRegisterRequest),
    BranchRegisterResponse(BranchRegisterResponse),
    BranchReportRequest(BranchReportRequest),
    BranchReportResponse(BranchReportResponse),
    GlobalStatusRequest(GlobalEndRequest),
    GlobalStatusResponse(GlobalEndResponse),
    GlobalReportRequest(GlobalReportRequest),
    GlobalReportResponse(GlobalEndResponse),
    GlobalLockQueryRequest(BranchRegisterRequest),
    GlobalLockQueryResponse(GlobalLockQueryResponse),
    MergedWarpMessage(MergedWarpMessage),
    MergeResultMessage(MergeResultMessage),
    RegisterTmRequest(RegisterRequest),
    RegisterTmResponse(RegisterResponse),
    RegisterRmRequest(RegisterRequest),
    RegisterRmResponse(RegisterResponse),
    UndoLogDeleteRequest(UndoLogDeleteRequest),
    BatchResultMessage(BatchResultMessage),
}

/// Responses whose failure message seata-go writes with a one-byte length.
fn has_go_short_msg(code: i16) -> bool {
    matches!(
        code,
        type_code::BRANCH_COMMIT_RESULT
            | type_code::BRANCH_ROLLBACK_RESULT
            | type_code::BRANCH_STATUS_REPORT_RESULT
            | type_code::GLOBAL_LOCK_QUERY_RESULT
    )
}

impl Message {
    /// The body type code.
    pub fn type_code(&self) -> i16 {
        use type_code as t;
        match self {
            Message::GlobalBeginRequest(_) => t::GLOBAL_BEGIN,
            Message::GlobalBeginResponse(_) => t::GLOBAL_BEGIN_RESULT,
            Message::BranchCommitRequest(_) => t::BRANCH_COMMIT,
            Message::BranchCommitResponse(_) => t::BRANCH_COMMIT_RESULT,
            Message::BranchRollbackRequest(_) => t::BRANCH_ROLLBACK,
            Message::BranchRollbackResponse(_) => t::BRANCH_ROLLBACK_RESULT,
            Message::GlobalCommitRequest(_) => t::GLOBAL_COMMIT,
            Message::GlobalCommitResponse(_) => t::GLOBAL_COMMIT_RESULT,
            Message::GlobalRollbackRequest(_) => t::GLOBAL_ROLLBACK,
            Message::GlobalRollbackResponse(_) => t::GLOBAL_ROLLBACK_RESULT,
            Message::BranchRegisterRequest(_) => t::BRANCH_REGISTER,
            Message::BranchRegisterResponse(_) => t::BRANCH_REGISTER_RESULT,
            Message::BranchReportRequest(_) => t::BRANCH_STATUS_REPORT,
            Message::BranchReportResponse(_) => t::BRANCH_STATUS_REPORT_RESULT,
            Message::GlobalStatusRequest(_) => t::GLOBAL_STATUS,
            Message::GlobalStatusResponse(_) => t::GLOBAL_STATUS_RESULT,
            Message::GlobalReportRequest(_) => t::GLOBAL_REPORT,
            Message::GlobalReportResponse(_) => t::GLOBAL_REPORT_RESULT,
            Message::GlobalLockQueryRequest(_) => t::GLOBAL_LOCK_QUERY,
            Message::GlobalLockQueryResponse(_) => t::GLOBAL_LOCK_QUERY_RESULT,
            Message::MergedWarpMessage(_) => t::SEATA_MERGE,
            Message::MergeResultMessage(_) => t::SEATA_MERGE_RESULT,
            Message::RegisterTmRequest(_) => t::REG_CLT,
            Message::RegisterTmResponse(_) => t::REG_CLT_RESULT,
            Message::RegisterRmRequest(_) => t::REG_RM,
            Message::RegisterRmResponse(_) => t::REG_RM_RESULT,
            Message::UndoLogDeleteRequest(_) => t::RM_DELETE_UNDOLOG,
            Message::BatchResultMessage(_) => t::BATCH_RESULT_MSG,
        }
    }

    /// True for the containers 59, 60 and 121.
    pub fn is_container(&self) -> bool {
        matches!(self, Message::MergedWarpMessage(_) | Message::MergeResultMessage(_) | Message::BatchResultMessage(_))
    }

    /// True for the answers a TC receives from RMs and matches against its own requests (4, 6).
    pub fn is_branch_end_response(&self) -> bool {
        matches!(self, Message::BranchCommitResponse(_) | Message::BranchRollbackResponse(_))
    }

    /// Encodes the body: type code, then payload.
    pub fn encode(&self, ctx: &CodecContext) -> Result<Bytes, ProtocolError> {
        let mut buf = BytesMut::with_capacity(64);
        self.encode_into(&mut buf, ctx)?;
        Ok(buf.freeze())
    }

    /// Appends the body (type code and payload) to `buf`.
    pub fn encode_into(&self, buf: &mut BytesMut, ctx: &CodecContext) -> Result<(), ProtocolError> {
        buf.put_i16(self.type_code());
        self.encode_payload(buf, ctx)
    }

    /// Appends the payload without the type code (v0 frames carry the code in their header).
    pub fn encode_payload(&self, buf: &mut BytesMut, ctx: &CodecContext) -> Result<(), ProtocolError> {
        let short = ctx.go_short_msg;
        match self {
            Message::GlobalBeginRequest(m) => m.encode(buf),
            Message::GlobalBeginResponse(m) => m.encode(buf, ctx),
            Message::BranchCommitRequest(m) | Message::BranchRollbackRequest(m) => m.encode(buf),
            Message::BranchCommitResponse(m) | Message::BranchRollbackResponse(m) => m.encode(buf, ctx, short),
            Message::GlobalCommitRequest(m) | Message::GlobalRollbackRequest(m) | Message::GlobalStatusRequest(m) => {
                m.encode(buf)
            }
            Message::GlobalCommitResponse(m)
            | Message::GlobalRollbackResponse(m)
            | Message::GlobalStatusResponse(m)
            | Message::GlobalReportResponse(m) => m.encode(buf, ctx),
            Message::BranchRegisterRequest(m) | Message::GlobalLockQueryRequest(m) => m.encode(buf),
            Message::BranchRegisterResponse(m) => m.encode(buf, ctx),
            Message::BranchReportRequest(m) => m.encode(buf),
            Message::BranchReportResponse(m) => m.result.encode(buf, ctx, short),
            Message::GlobalReportRequest(m) => m.encode(buf),
            Message::GlobalLockQueryResponse(m) => m.encode(buf, ctx, short),
            Message::MergedWarpMessage(m) => m.encode(buf, ctx),
            Message::MergeResultMessage(m) => m.encode(buf, ctx),
            Message::BatchResultMessage(m) => m.encode(buf, ctx),
            Message::RegisterTmRequest(m) => m.encode(buf, false),
            Message::RegisterRmRequest(m) => m.encode(buf, true),
            Message::RegisterTmResponse(m) | Message::RegisterRmResponse(m) => m.encode(buf),
            Message::UndoLogDeleteRequest(m) => m.encode(buf),
        }
    }

    /// Decodes a whole v1 body (type code and payload); the body must be consumed exactly.
    pub fn decode(body: &[u8], ctx: &CodecContext) -> Result<Message, ProtocolError> {
        let mut r = Reader::new(body);
        let code = r.i16("type code")?;
        // The peer's own layout first: the same bytes can be valid in both and differ in every
        // field after the failure message.
        let go_first = ctx.go_short_msg;
        let first = Self::decode_payload(code, &mut r, ctx, go_first).and_then(|m| r.finish().map(|()| m));
        match first {
            Err(e) if has_go_short_msg(code) => {
                // The other layout of the failure message length (one byte in seata-go's),
                // PROTOCOL.md §8.1.
                let mut r = Reader::new(&body[2..]);
                Self::decode_payload(code, &mut r, ctx, !go_first).and_then(|m| r.finish().map(|()| m)).map_err(|_| e)
            }
            other => other,
        }
    }

    /// Decodes the payload of a message of type `code` from `r`, leaving the reader after it.
    pub fn decode_payload(
        code: i16,
        r: &mut Reader<'_>,
        ctx: &CodecContext,
        short_msg: bool,
    ) -> Result<Message, ProtocolError> {
        use type_code as t;
        Ok(match code {
            t::GLOBAL_BEGIN => Message::GlobalBeginRequest(GlobalBeginRequest::decode(r)?),
            t::GLOBAL_BEGIN_RESULT => Message::GlobalBeginResponse(GlobalBeginResponse::decode(r, ctx)?),
            t::BRANCH_COMMIT => Message::BranchCommitRequest(BranchEndRequest::decode(r)?),
            t::BRANCH_COMMIT_RESULT => Message::BranchCommitResponse(BranchEndResponse::decode(r, ctx, short_msg)?),
            t::BRANCH_ROLLBACK => Message::BranchRollbackRequest(BranchEndRequest::decode(r)?),
            t::BRANCH_ROLLBACK_RESULT => Message::BranchRollbackResponse(BranchEndResponse::decode(r, ctx, short_msg)?),
            t::GLOBAL_COMMIT => Message::GlobalCommitRequest(GlobalEndRequest::decode(r)?),
            t::GLOBAL_COMMIT_RESULT => Message::GlobalCommitResponse(GlobalEndResponse::decode(r, ctx)?),
            t::GLOBAL_ROLLBACK => Message::GlobalRollbackRequest(GlobalEndRequest::decode(r)?),
            t::GLOBAL_ROLLBACK_RESULT => Message::GlobalRollbackResponse(GlobalEndResponse::decode(r, ctx)?),
            t::BRANCH_REGISTER => Message::BranchRegisterRequest(BranchRegisterRequest::decode(r)?),
            t::BRANCH_REGISTER_RESULT => Message::BranchRegisterResponse(BranchRegisterResponse::decode(r, ctx)?),
            t::BRANCH_STATUS_REPORT => Message::BranchReportRequest(BranchReportRequest::decode(r)?),
            t::BRANCH_STATUS_REPORT_RESULT => {
                Message::BranchReportResponse(BranchReportResponse { result: ResultHead::decode(r, ctx, short_msg)? })
            }
            t::GLOBAL_STATUS => Message::GlobalStatusRequest(GlobalEndRequest::decode(r)?),
            t::GLOBAL_STATUS_RESULT => Message::GlobalStatusResponse(GlobalEndResponse::decode(r, ctx)?),
            t::GLOBAL_REPORT => Message::GlobalReportRequest(GlobalReportRequest::decode(r)?),
            t::GLOBAL_REPORT_RESULT => Message::GlobalReportResponse(GlobalEndResponse::decode(r, ctx)?),
            t::GLOBAL_LOCK_QUERY => Message::GlobalLockQueryRequest(BranchRegisterRequest::decode(r)?),
            t::GLOBAL_LOCK_QUERY_RESULT => {
                Message::GlobalLockQueryResponse(GlobalLockQueryResponse::decode(r, ctx, short_msg)?)
            }
            t::SEATA_MERGE => Message::MergedWarpMessage(MergedWarpMessage::decode(r, ctx)?),
            t::SEATA_MERGE_RESULT => Message::MergeResultMessage(MergeResultMessage::decode(r, ctx)?),
            t::BATCH_RESULT_MSG => Message::BatchResultMessage(BatchResultMessage::decode(r, ctx)?),
            t::REG_CLT => Message::RegisterTmRequest(RegisterRequest::decode(r, false)?),
            t::REG_CLT_RESULT => Message::RegisterTmResponse(RegisterResponse::decode(r)?),
            t::REG_RM => Message::RegisterRmRequest(RegisterRequest::decode(r, true)?),
            t::REG_RM_RESULT => Message::RegisterRmResponse(RegisterResponse::decode(r)?),
            t::RM_DELETE_UNDOLOG => Message::UndoLogDeleteRequest(UndoLogDeleteRequest::decode(r)?),
            t::HEARTBEAT_MSG => return Err(ProtocolError::UnexpectedTypeCode(code)),
            other => return Err(ProtocolError::UnknownTypeCode(other)),
        })
    }
}
