//! Arbitrary bytes as a connection's byte stream.
//!
//! Input: one configuration byte, then the stream. Bits 0-2 of the configuration pick the codec
//! context (see `seata_protocol_fuzz::context`); bits 3-7 give a chunk size (0: the whole stream
//! at once). The stream is decoded by `RpcCodec::default()` in one piece and, when a chunk size is
//! given, again in chunks of that size: both must give the same frames and the same kind of error
//! (its details may differ: a bad first byte is reported before the second one has arrived).
//!
//! Every frame must re-encode and decode to an equal frame; every body that decodes (1 MiB limit)
//! must re-encode into a frame of the same version and compressor and decode to an equal message.

#![no_main]

use std::mem::{discriminant, Discriminant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use seata_protocol::message::CodecContext;
use seata_protocol::{Frame, Message, ProtocolError, ProtocolVersion, RpcCodec};
use seata_protocol_fuzz::{after_encode, context, encode};
use tokio_util::codec::{Decoder, Encoder};

/// Decompression limit of a body.
const BODY_LIMIT: usize = 1024 * 1024;

/// What a stream decodes to.
#[derive(Debug, PartialEq)]
struct Outcome {
    frames: Vec<Frame>,
    /// The kind of (fatal) error that ended the stream.
    error: Option<Discriminant<ProtocolError>>,
    /// Bytes left in the buffer when the stream ended without an error.
    left: usize,
}

/// Feeds `stream` to a fresh codec `chunk` bytes at a time, decoding as many frames as each chunk
/// completes, as `FramedRead` does.
fn decode_stream(stream: &[u8], chunk: usize) -> Outcome {
    let mut codec = RpcCodec::default();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        frames,
                        error: Some(discriminant(&e)),
                        left: 0,
                    }
                }
            }
        }
    }
    Outcome {
        frames,
        error: None,
        left: buf.len(),
    }
}

/// Decodes bytes that must hold exactly one frame.
fn decode_one(wire: &[u8]) -> Frame {
    let mut buf = BytesMut::from(wire);
    let frame = RpcCodec::default()
        .decode(&mut buf)
        .unwrap_or_else(|e| panic!("a re-encoded frame does not decode: {e}\n{wire:02x?}"))
        .unwrap_or_else(|| panic!("a re-encoded frame is incomplete: {wire:02x?}"));
    assert!(
        buf.is_empty(),
        "a re-encoded frame leaves {} bytes behind: {wire:02x?}",
        buf.len()
    );
    frame
}

fn check_frame(frame: &Frame) {
    let mut wire = BytesMut::new();
    RpcCodec::default()
        .encode(frame, &mut wire)
        .unwrap_or_else(|e| panic!("a decoded frame does not re-encode: {e}\n{frame:?}"));
    assert_eq!(&decode_one(&wire), frame, "wire {wire:02x?}");
}

/// The context a frame's body is read and written with. v0 peers are Java clients before 0.7,
/// never seata-go, whose layout a v0 header could not delimit.
fn frame_context(frame: &Frame, ctx: &CodecContext) -> CodecContext {
    match frame.version {
        ProtocolVersion::V0 => CodecContext {
            go_short_msg: false,
            ..*ctx
        },
        ProtocolVersion::V1 => *ctx,
    }
}

fn check_message(frame: &Frame, msg: &Message, ctx: &CodecContext) {
    let Some(body) = encode(msg, ctx, BODY_LIMIT) else {
        return;
    };
    let mut reply = Frame::with_message(
        frame.message_type,
        frame.request_id,
        msg,
        ctx,
        frame.compressor,
    )
    .unwrap_or_else(|e| panic!("a decoded message does not re-encode into a frame: {e}\n{msg:?}"));
    reply.version = frame.version;
    let mut wire = BytesMut::new();
    RpcCodec::default()
        .encode(&reply, &mut wire)
        .unwrap_or_else(|e| panic!("a re-encoded message frame does not encode: {e}\n{reply:?}"));
    let again = decode_one(&wire)
        .decode_message(ctx, 2 * BODY_LIMIT)
        .unwrap_or_else(|e| panic!("a re-encoded message does not decode: {e}\nbody {body:02x?}"));
    assert_eq!(again, after_encode(msg, ctx), "body {body:02x?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&config, stream)) = data.split_first() else {
        return;
    };
    let ctx = context(config);
    let whole = decode_stream(stream, stream.len());
    let chunk = usize::from(config >> 3);
    if chunk > 0 {
        let chunked = decode_stream(stream, chunk);
        assert_eq!(
            whole.frames, chunked.frames,
            "chunks of {chunk} give other frames"
        );
        assert_eq!(
            whole.error, chunked.error,
            "chunks of {chunk} give another error"
        );
        assert_eq!(
            whole.left, chunked.left,
            "chunks of {chunk} leave other bytes"
        );
    }
    for frame in &whole.frames {
        check_frame(frame);
        let ctx = frame_context(frame, &ctx);
        if let Ok(msg) = frame.decode_message(&ctx, BODY_LIMIT) {
            check_message(frame, &msg, &ctx);
        }
    }
});
