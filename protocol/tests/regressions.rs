//! Inputs found by the fuzz targets of `fuzz/` (see docs/FUZZING.md), replayed as plain tests.
//!
//! Each test feeds the crashing input the way its target does and checks the property the target
//! asserts, so the fix stays fixed without cargo-fuzz.

use bytes::BytesMut;
use seata_protocol::compress::{self, id};
use seata_protocol::message::{
    BranchEndResponse, BranchReportResponse, CodecContext, MergeResultMessage, Message, ResultHead,
};
use seata_protocol::{BranchStatus, CodeTable, ExceptionCode, Frame, ProtocolVersion, RpcCodec};
use tokio_util::codec::{Decoder, Encoder};

/// What the `frame` target does with each frame of one input: the first byte is configuration, the
/// rest a byte stream; every frame it holds must re-encode and decode to an equal frame. Returns the
/// frames.
fn frame_round_trip(input: &[u8]) -> Vec<Frame> {
    let mut buf = BytesMut::from(&input[1..]);
    let mut codec = RpcCodec::default();
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode(&mut buf).expect("the input decodes") {
        let mut wire = BytesMut::new();
        RpcCodec::default().encode(&frame, &mut wire).expect("re-encodes");
        let again = RpcCodec::default().decode(&mut wire).expect("re-decodes").expect("a whole frame");
        assert!(wire.is_empty(), "{} bytes left behind", wire.len());
        assert_eq!(again, frame);
        frames.push(frame);
    }
    frames
}

/// What the `body` target does with one input: the first byte picks the codec context, the rest is
/// a body; a body that decodes must re-encode and decode to the same message.
fn body_round_trip(input: &[u8]) -> Message {
    let (config, body) = input.split_first().expect("a configuration byte");
    let code_table = match config & 0b11 {
        0 => CodeTable::V2,
        1 => CodeTable::V1_7,
        2 => CodeTable::V1_5,
        _ => CodeTable::V1_4,
    };
    let ctx = CodecContext { code_table, go_short_msg: config & 0b100 != 0 };
    let msg = Message::decode(body, &ctx).expect("the input decodes");
    let again = Message::decode(&msg.encode(&ctx).expect("re-encodes"), &ctx).expect("re-decodes");
    assert_eq!(again, msg);
    msg
}

/// body crash-3f16cbd0: a GlobalLockQueryResponse from a 1.4 peer carrying exception byte 18. The
/// 1.4 table ends at 17, yet 18 was read as FailedStore, which that table writes as 17
/// (FailedWriteSession): the answer changed meaning on the way back out.
#[test]
fn exception_byte_past_the_1_4_table_reads_as_unknown() {
    let msg = body_round_trip(&[0x27, 0x00, 0x16, 0x00, 0x00, 0x00, 0x12, 0x00, 0x01]);
    let Message::GlobalLockQueryResponse(m) = msg else {
        panic!("not a GlobalLockQueryResponse: {msg:?}");
    };
    assert_eq!(m.result.exception_code, ExceptionCode::Unknown);
    assert!(m.lockable);
}

/// The property behind the case above, for every table and byte: what a table reads, it writes
/// back as the same byte.
#[test]
fn every_code_table_reads_only_what_it_writes() {
    for table in [CodeTable::V2, CodeTable::V1_7, CodeTable::V1_5, CodeTable::V1_4] {
        for byte in 0..=u8::MAX {
            if let Ok(code) = ExceptionCode::from_wire(byte, table) {
                assert_eq!(code.to_wire(table), byte, "{code:?} in {table:?}");
            }
        }
    }
    assert!(ExceptionCode::from_wire(17, CodeTable::V1_4).is_ok());
    assert!(ExceptionCode::from_wire(18, CodeTable::V1_4).is_err());
    assert_eq!(ExceptionCode::from_wire(18, CodeTable::V1_5).unwrap(), ExceptionCode::FailedStore);
}

/// body crash-82917f9c: under a seata-go context, a BranchCommitResponse re-encoded in Go's layout
/// (one-byte failure-message length) decoded as something else, because the standard layout was
/// always tried first and those bytes happen to be valid in it too.
#[test]
fn go_layout_is_read_first_for_go_peers() {
    body_round_trip(&[
        0x05, 0x00, 0x04, 0x00, 0x00, 0x00, 0x04, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x04, 0x5d, 0x00, 0x00,
    ]);

    let go = CodecContext { code_table: CodeTable::V1_7, go_short_msg: true };
    let sent = Message::BranchCommitResponse(BranchEndResponse {
        result: ResultHead::failed(ExceptionCode::BranchRollbackFailedRetriable, ""),
        xid: "\0\0\0\0\u{2}\0\0".into(),
        branch_id: 0x45d00,
        branch_status: BranchStatus::Unknown,
    });
    let body = sent.encode(&go).unwrap();
    assert_eq!(Message::decode(&body, &go).unwrap(), sent);
    // The same bytes in the standard layout: a four-byte message and another xid.
    let standard = Message::decode(&body, &CodecContext::default()).unwrap();
    assert_ne!(standard, sent);
}

/// A MergeResultMessage holding a Failed BranchReportResponse, under a seata-go context: the
/// sub-message was written in Go's one-byte layout, which the container decoder (rightly: seata-go
/// has no container codec) never reads, so the re-encoded body did not decode. Found while writing
/// the body target's round-trip property and confirmed by running the target on this input.
#[test]
fn containers_hold_standard_layout_sub_messages_for_go_peers() {
    body_round_trip(&[0x04, 0x00, 0x3c, 0x00, 0x00, 0x00, 0x08, 0x00, 0x01, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x00]);

    let go = CodecContext { code_table: CodeTable::V2, go_short_msg: true };
    let merged = Message::MergeResultMessage(MergeResultMessage {
        msgs: vec![Message::BranchReportResponse(BranchReportResponse {
            result: ResultHead::failed(ExceptionCode::BranchReportFailed, "no such branch"),
        })],
    });
    let body = merged.encode(&go).unwrap();
    assert_eq!(body, merged.encode(&CodecContext::default()).unwrap());
    assert_eq!(Message::decode(&body, &go).unwrap(), merged);
}

/// decompress oom-eceb7198: a 131-byte zstd body whose frame header declares a 112 MiB window. The
/// decoder allocated the whole window (malloc of 117 833 792 bytes) before reading a block, for a
/// body limited to 64 KiB. The window is now bounded by the limit, so the header alone is refused.
#[test]
fn zstd_window_is_bounded_by_the_limit() {
    let body = hex::decode(concat!(
        "28b52ffd0086310400003b00000080000200575757575757575757575757575757575757575757575757",
        "575757575757575757575757575757575757575757575757575757575757575757010000ea6000087075",
        "726368617365000b0065000b00253338342e3136382e010000746f636b5f277430626c3a370000000000",
        "6600000009",
    ))
    .unwrap();
    assert_eq!(body.len(), 131);
    let err = compress::decompress(id::ZSTD, &body, 64 * 1024).unwrap_err();
    assert!(err.to_string().contains("too much memory"), "not refused for its window: {err}");
    // The same header with a 1 KiB window (the smallest) is read: it is only the size that counts.
    let mut small = body.clone();
    small[5] = 0x00;
    assert!(!compress::decompress(id::ZSTD, &small, 64 * 1024)
        .err()
        .is_some_and(|e| e.to_string().contains("too much memory")));
}

/// frame crash-15fa515c (a seed): a v0 frame with a Hessian body (its length in the header). It was
/// re-encoded as if it used the seata codec, with the body's first two bytes as a type code, so the
/// bytes no longer described one frame.
#[test]
fn v0_hessian_frames_re_encode_with_their_length() {
    let frames = frame_round_trip(&[
        0x00, 0xda, 0xda, 0x00, 0x80, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, b'h', b'e', b's',
        b's', b'i', b'a', b'n',
    ]);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].version, ProtocolVersion::V0);
    assert_eq!(frames[0].codec, 0x16);
    assert_eq!(&frames[0].body[..], b"hessian");
}
