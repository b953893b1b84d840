//! Helpers shared by the fuzz targets: the codec context an input selects, and the round-trip
//! check of a decoded message.
//!
//! The round trip is exact except for the two places where the encoder is lossy on purpose, which
//! [`after_encode`] applies to the expected value:
//!
//! * a failure message is cut at a character boundary to what its length prefix can carry: 127
//!   bytes in seata-go's one-byte layout of responses 4, 6, 14 and 22 (PROTOCOL.md §8.1; never
//!   inside a container), 32 767 bytes in the standard `str16` layout (a Java peer reads the
//!   length as a signed short);
//! * any other string longer than 32 767 bytes is refused with [`ProtocolError::TooLong`] (the
//!   decoder reads the length unsigned and accepts up to 65 535 bytes).

use seata_protocol::message::wire::{truncate_utf8, MAX_STR16};
use seata_protocol::message::{CodecContext, Message, ResultHead};
use seata_protocol::{CodeTable, ProtocolError, ResultCode};

/// The codec context selected by the low three bits of a configuration byte: bits 0-1 pick the
/// exception-code table, bit 2 sets seata-go's one-byte failure-message layout.
pub fn context(config: u8) -> CodecContext {
    let code_table = match config & 0b11 {
        0 => CodeTable::V2,
        1 => CodeTable::V1_7,
        2 => CodeTable::V1_5,
        _ => CodeTable::V1_4,
    };
    CodecContext {
        code_table,
        go_short_msg: config & 0b100 != 0,
    }
}

/// Whether the failure message of responses with this type code is written with seata-go's
/// one-byte length when the context asks for it.
fn short_msg_type(msg: &Message) -> bool {
    matches!(
        msg,
        Message::BranchCommitResponse(_)
            | Message::BranchRollbackResponse(_)
            | Message::BranchReportResponse(_)
            | Message::GlobalLockQueryResponse(_)
    )
}

fn result_head(msg: &mut Message) -> Option<&mut ResultHead> {
    match msg {
        Message::GlobalBeginResponse(m) => Some(&mut m.result),
        Message::BranchCommitResponse(m) | Message::BranchRollbackResponse(m) => {
            Some(&mut m.result)
        }
        Message::GlobalCommitResponse(m)
        | Message::GlobalRollbackResponse(m)
        | Message::GlobalStatusResponse(m)
        | Message::GlobalReportResponse(m) => Some(&mut m.result),
        Message::BranchRegisterResponse(m) => Some(&mut m.result),
        Message::BranchReportResponse(m) => Some(&mut m.result),
        Message::GlobalLockQueryResponse(m) => Some(&mut m.result),
        _ => None,
    }
}

/// What `msg` reads back as after being written with `ctx`: failure messages cut to what their
/// length prefix carries (see the crate docs).
pub fn after_encode(msg: &Message, ctx: &CodecContext) -> Message {
    let mut out = msg.clone();
    let short = ctx.go_short_msg && short_msg_type(msg);
    if let Some(head) = result_head(&mut out) {
        if head.result_code == ResultCode::Failed {
            let max = if short { 127 } else { MAX_STR16 };
            head.msg = truncate_utf8(&head.msg, max).to_owned();
        }
    }
    // Containers hold their sub-messages in the standard layout whatever the context.
    let sub = CodecContext {
        go_short_msg: false,
        ..*ctx
    };
    let subs = |msgs: &[Message]| msgs.iter().map(|m| after_encode(m, &sub)).collect();
    match &mut out {
        Message::MergedWarpMessage(m) => m.msgs = subs(&m.msgs),
        Message::MergeResultMessage(m) => m.msgs = subs(&m.msgs),
        Message::BatchResultMessage(m) => m.msgs = subs(&m.msgs),
        _ => {}
    }
    out
}

/// Encodes `msg` with `ctx`, or `None` when it holds a string too long to write (only possible
/// when the bytes it was decoded from were longer than [`MAX_STR16`]).
pub fn encode(msg: &Message, ctx: &CodecContext, decoded_from: usize) -> Option<bytes::Bytes> {
    match msg.encode(ctx) {
        Ok(b) => Some(b),
        Err(ProtocolError::TooLong { .. }) if decoded_from > MAX_STR16 => None,
        Err(e) => panic!("a decoded message does not re-encode: {e}\n{msg:?}"),
    }
}

/// Re-encodes a message decoded (from `decoded_from` bytes) with `ctx` and checks that it decodes
/// back to the same value.
pub fn check_body_round_trip(msg: &Message, ctx: &CodecContext, decoded_from: usize) {
    let Some(body) = encode(msg, ctx, decoded_from) else {
        return;
    };
    let again = Message::decode(&body, ctx).unwrap_or_else(|e| {
        panic!("a re-encoded message does not decode: {e}\n{msg:?}\nbody {body:02x?}")
    });
    assert_eq!(again, after_encode(msg, ctx), "body {body:02x?}");
}
