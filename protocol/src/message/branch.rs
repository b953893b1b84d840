//! Branch messages: register, report, lock query, phase-two commit/rollback, undo-log delete
//! (PROTOCOL.md §4.4).

use bytes::{BufMut, BytesMut};

use super::result::ResultHead;
use super::wire::{put_str16, put_str32, Reader};
use super::CodecContext;
use crate::error::ProtocolError;
use crate::model::{BranchStatus, BranchType};

/// `BranchRegisterRequest` (11) and `GlobalLockQueryRequest` (21): the same layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchRegisterRequest {
    /// The global transaction.
    pub xid: String,
    /// AT, TCC, SAGA or XA.
    pub branch_type: BranchType,
    /// AT: JDBC URL without parameters; TCC: action name.
    pub resource_id: String,
    /// AT row locks, `table:pk1,pk2;table2:pk` (str32); empty for other types.
    pub lock_key: String,
    /// JSON or empty (str32).
    pub application_data: String,
}

impl BranchRegisterRequest {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, ProtocolError> {
        Ok(BranchRegisterRequest {
            xid: r.str16("xid")?,
            branch_type: BranchType::try_from(r.u8("branchType")?)?,
            resource_id: r.str16("resourceId")?,
            lock_key: r.str32("lockKey")?,
            application_data: r.str32("applicationData")?,
        })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), ProtocolError> {
        put_str16(buf, &self.xid, "xid")?;
        buf.put_u8(self.branch_type.code());
        put_str16(buf, &self.resource_id, "resourceId")?;
        put_str32(buf, &self.lock_key, "lockKey")?;
        put_str32(buf, &self.application_data, "applicationData")
    }
}

/// `BranchRegisterResponse` (12).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BranchRegisterResponse {
    /// Result, message and exception code.
    pub result: ResultHead,
    /// The new branch id; 0 on failure.
    pub branch_id: i64,
}

impl BranchRegisterResponse {
    pub(crate) fn decode(r: &mut Reader<'_>, ctx: &CodecContext) -> Result<Self, ProtocolError> {
        Ok(BranchRegisterResponse { result: ResultHead::decode(r, ctx, false)?, branch_id: r.i64("branchId")? })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut, ctx: &CodecContext) -> Result<(), ProtocolError> {
        self.result.encode(buf, ctx, false)?;
        buf.put_i64(self.branch_id);
        Ok(())
    }
}

/// `BranchReportRequest` (13). Note the field order differs from registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchReportRequest {
    /// The global transaction.
    pub xid: String,
    /// The branch.
    pub branch_id: i64,
    /// The reported status.
    pub status: BranchStatus,
    /// Often empty (Java RMs send null).
    pub resource_id: String,
    /// Replaces the stored data when not empty.
    pub application_data: String,
    /// Java RMs send AT even for TCC branches: do not rely on it.
    pub branch_type: BranchType,
}

impl BranchReportRequest {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, ProtocolError> {
        Ok(BranchReportRequest {
            xid: r.str16("xid")?,
            branch_id: r.i64("branchId")?,
            status: BranchStatus::try_from(r.u8("status")?)?,
            resource_id: r.str16("resourceId")?,
            application_data: r.str32("applicationData")?,
            branch_type: BranchType::try_from(r.u8("branchType")?)?,
        })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), ProtocolError> {
        put_str16(buf, &self.xid, "xid")?;
        buf.put_i64(self.branch_id);
        buf.put_u8(self.status.code());
        put_str16(buf, &self.resource_id, "resourceId")?;
        put_str32(buf, &self.application_data, "applicationData")?;
        buf.put_u8(self.branch_type.code());
        Ok(())
    }
}

/// `BranchReportResponse` (14): the result block only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BranchReportResponse {
    /// Result, message and exception code.
    pub result: ResultHead,
}

/// `GlobalLockQueryResponse` (22).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobalLockQueryResponse {
    /// Result, message and exception code.
    pub result: ResultHead,
    /// Two bytes on the wire: `00 01` is true, anything else false.
    pub lockable: bool,
}

impl GlobalLockQueryResponse {
    pub(crate) fn decode(r: &mut Reader<'_>, ctx: &CodecContext, short_msg: bool) -> Result<Self, ProtocolError> {
        Ok(GlobalLockQueryResponse {
            result: ResultHead::decode(r, ctx, short_msg)?,
            lockable: r.i16("lockable")? == 1,
        })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut, ctx: &CodecContext, short_msg: bool) -> Result<(), ProtocolError> {
        self.result.encode(buf, ctx, short_msg)?;
        buf.put_i16(i16::from(self.lockable));
        Ok(())
    }
}

/// `BranchCommitRequest` (3) and `BranchRollbackRequest` (5), sent by the TC to an RM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchEndRequest {
    /// The global transaction.
    pub xid: String,
    /// The branch (-1 for a SAGA phase two).
    pub branch_id: i64,
    /// The branch's type.
    pub branch_type: BranchType,
    /// The resource that owns the branch.
    pub resource_id: String,
    /// The data stored at registration or report (str32).
    pub application_data: String,
}

impl BranchEndRequest {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, ProtocolError> {
        Ok(BranchEndRequest {
            xid: r.str16("xid")?,
            branch_id: r.i64("branchId")?,
            branch_type: BranchType::try_from(r.u8("branchType")?)?,
            resource_id: r.str16("resourceId")?,
            application_data: r.str32("applicationData")?,
        })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), ProtocolError> {
        put_str16(buf, &self.xid, "xid")?;
        buf.put_i64(self.branch_id);
        buf.put_u8(self.branch_type.code());
        put_str16(buf, &self.resource_id, "resourceId")?;
        put_str32(buf, &self.application_data, "applicationData")
    }
}

/// `BranchCommitResponse` (4) and `BranchRollbackResponse` (6), from an RM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchEndResponse {
    /// Result, message and exception code (informational: the TC acts on `branch_status`).
    pub result: ResultHead,
    /// The global transaction.
    pub xid: String,
    /// The branch.
    pub branch_id: i64,
    /// What the TC acts on.
    pub branch_status: BranchStatus,
}

impl BranchEndResponse {
    pub(crate) fn decode(r: &mut Reader<'_>, ctx: &CodecContext, short_msg: bool) -> Result<Self, ProtocolError> {
        Ok(BranchEndResponse {
            result: ResultHead::decode(r, ctx, short_msg)?,
            xid: r.str16("xid")?,
            branch_id: r.i64("branchId")?,
            branch_status: BranchStatus::try_from(r.u8("branchStatus")?)?,
        })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut, ctx: &CodecContext, short_msg: bool) -> Result<(), ProtocolError> {
        self.result.encode(buf, ctx, short_msg)?;
        put_str16(buf, &self.xid, "xid")?;
        buf.put_i64(self.branch_id);
        buf.put_u8(self.branch_status.code());
        Ok(())
    }
}

/// `UndoLogDeleteRequest` (111): one-way AT housekeeping sent by the TC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoLogDeleteRequest {
    /// Always AT from the Java server.
    pub branch_type: BranchType,
    /// The resource whose undo log to trim.
    pub resource_id: String,
    /// Keep this many days of undo log.
    pub save_days: i16,
}

impl UndoLogDeleteRequest {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, ProtocolError> {
        Ok(UndoLogDeleteRequest {
            branch_type: BranchType::try_from(r.u8("branchType")?)?,
            resource_id: r.str16("resourceId")?,
            save_days: r.i16("saveDays")?,
        })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), ProtocolError> {
        buf.put_u8(self.branch_type.code());
        put_str16(buf, &self.resource_id, "resourceId")?;
        buf.put_i16(self.save_days);
        Ok(())
    }
}
