//! Global-transaction messages: begin, commit, rollback, status, report (PROTOCOL.md §4.4).

use bytes::{BufMut, BytesMut};

use super::result::ResultHead;
use super::wire::{put_str16, Reader};
use super::CodecContext;
use crate::error::ProtocolError;
use crate::model::GlobalStatus;

/// `GlobalBeginRequest` (1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobalBeginRequest {
    /// Transaction timeout in milliseconds (Java default 60 000).
    pub timeout: i32,
    /// The transaction name; may be empty.
    pub transaction_name: String,
}

impl GlobalBeginRequest {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, ProtocolError> {
        Ok(GlobalBeginRequest { timeout: r.i32("timeout")?, transaction_name: r.str16("transactionName")? })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), ProtocolError> {
        buf.put_i32(self.timeout);
        put_str16(buf, &self.transaction_name, "transactionName")
    }
}

/// `GlobalBeginResponse` (2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobalBeginResponse {
    /// Result, message and exception code.
    pub result: ResultHead,
    /// The new XID; empty on failure.
    pub xid: String,
    /// Never set by the Java server.
    pub extra_data: String,
}

impl GlobalBeginResponse {
    pub(crate) fn decode(r: &mut Reader<'_>, ctx: &CodecContext) -> Result<Self, ProtocolError> {
        Ok(GlobalBeginResponse {
            result: ResultHead::decode(r, ctx, false)?,
            xid: r.str16("xid")?,
            extra_data: r.str16("extraData")?,
        })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut, ctx: &CodecContext) -> Result<(), ProtocolError> {
        self.result.encode(buf, ctx, false)?;
        put_str16(buf, &self.xid, "xid")?;
        put_str16(buf, &self.extra_data, "extraData")
    }
}

/// `GlobalCommitRequest` (7), `GlobalRollbackRequest` (9), `GlobalStatusRequest` (15).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobalEndRequest {
    /// The transaction.
    pub xid: String,
    /// Empty from every known client.
    pub extra_data: String,
}

impl GlobalEndRequest {
    /// A request for `xid` with no extra data.
    pub fn new(xid: impl Into<String>) -> Self {
        GlobalEndRequest { xid: xid.into(), extra_data: String::new() }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, ProtocolError> {
        Ok(GlobalEndRequest { xid: r.str16("xid")?, extra_data: r.str16("extraData")? })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), ProtocolError> {
        put_str16(buf, &self.xid, "xid")?;
        put_str16(buf, &self.extra_data, "extraData")
    }
}

/// `GlobalReportRequest` (17): the Saga engine reports its own outcome.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobalReportRequest {
    /// The transaction.
    pub xid: String,
    /// Empty from every known client.
    pub extra_data: String,
    /// The reported status; `None` is written as `FF`.
    pub global_status: Option<GlobalStatus>,
}

impl GlobalReportRequest {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, ProtocolError> {
        let xid = r.str16("xid")?;
        let extra_data = r.str16("extraData")?;
        let byte = r.u8("globalStatus")?;
        // Java keeps null for any negative byte.
        let global_status = if byte >= 0x80 { None } else { Some(GlobalStatus::try_from(byte)?) };
        Ok(GlobalReportRequest { xid, extra_data, global_status })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), ProtocolError> {
        put_str16(buf, &self.xid, "xid")?;
        put_str16(buf, &self.extra_data, "extraData")?;
        buf.put_u8(self.global_status.map_or(0xff, GlobalStatus::code));
        Ok(())
    }
}

/// `GlobalCommitResponse` (8), `GlobalRollbackResponse` (10), `GlobalStatusResponse` (16),
/// `GlobalReportResponse` (18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalEndResponse {
    /// Result, message and exception code.
    pub result: ResultHead,
    /// The status the TM acts on (Java TMs ignore the result code for commit and rollback).
    pub global_status: GlobalStatus,
}

impl GlobalEndResponse {
    /// A successful answer with `status`.
    pub fn success(status: GlobalStatus) -> Self {
        GlobalEndResponse { result: ResultHead::success(), global_status: status }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, ctx: &CodecContext) -> Result<Self, ProtocolError> {
        Ok(GlobalEndResponse {
            result: ResultHead::decode(r, ctx, false)?,
            global_status: GlobalStatus::try_from(r.u8("globalStatus")?)?,
        })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut, ctx: &CodecContext) -> Result<(), ProtocolError> {
        self.result.encode(buf, ctx, false)?;
        buf.put_u8(self.global_status.code());
        Ok(())
    }
}
