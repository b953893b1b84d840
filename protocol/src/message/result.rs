//! The result block every transaction response starts with (PROTOCOL.md §4.3): result code, a
//! failure message present only when the code is Failed, and the exception code.

use bytes::{BufMut, BytesMut};

use super::wire::{put_str16, put_str8, truncate_utf8, Reader, MAX_STR16};
use super::CodecContext;
use crate::error::ProtocolError;
use crate::model::{ExceptionCode, ResultCode};

/// The longest failure message seata-go reads without misparsing: it writes and reads a one-byte
/// length and cuts at 127 bytes itself.
const MAX_GO_MSG: usize = 127;

/// `ResultCode`, `msg` and `TransactionExceptionCode` of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultHead {
    /// Success or Failed.
    pub result_code: ResultCode,
    /// The failure message; only on the wire when `result_code` is Failed. Empty means none.
    pub msg: String,
    /// Why it failed; Unknown on success.
    pub exception_code: ExceptionCode,
}

impl Default for ResultHead {
    fn default() -> Self {
        ResultHead::success()
    }
}

impl ResultHead {
    /// A successful result.
    pub fn success() -> Self {
        ResultHead { result_code: ResultCode::Success, msg: String::new(), exception_code: ExceptionCode::Unknown }
    }

    /// A failed result with Seata's `TransactionException[...]`-style message.
    pub fn failed(code: ExceptionCode, msg: impl Into<String>) -> Self {
        ResultHead { result_code: ResultCode::Failed, msg: msg.into(), exception_code: code }
    }

    /// True when the result code is Success.
    pub fn is_success(&self) -> bool {
        self.result_code == ResultCode::Success
    }

    pub(crate) fn decode(r: &mut Reader<'_>, ctx: &CodecContext, short_msg: bool) -> Result<Self, ProtocolError> {
        let result_code = ResultCode::try_from(r.u8("resultCode")?)?;
        let msg = if result_code == ResultCode::Failed {
            if short_msg {
                r.str8("msg")?
            } else {
                r.str16("msg")?
            }
        } else {
            String::new()
        };
        let byte = r.u8("transactionExceptionCode")?;
        // Lenient on purpose: an exception code outside the table (seata-go numbers client-local
        // errors past 19) must not make a phase-two answer undecodable; the TC acts on the status.
        let exception_code = ExceptionCode::from_wire(byte, ctx.code_table).unwrap_or(ExceptionCode::Unknown);
        Ok(ResultHead { result_code, msg, exception_code })
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut, ctx: &CodecContext, short_msg: bool) -> Result<(), ProtocolError> {
        buf.put_u8(self.result_code.code());
        if self.result_code == ResultCode::Failed {
            if short_msg {
                put_str8(buf, truncate_utf8(&self.msg, MAX_GO_MSG), "msg")?;
            } else {
                put_str16(buf, truncate_utf8(&self.msg, MAX_STR16), "msg")?;
            }
        }
        buf.put_u8(self.exception_code.to_wire(ctx.code_table));
        Ok(())
    }
}
