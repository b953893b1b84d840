//! Property tests and bad-input tests of the frame and body codecs.

use bytes::BytesMut;
use proptest::prelude::*;
use seata_protocol::frame::{msg_type, DEFAULT_MAX_FRAME_LEN};
use seata_protocol::message::*;
use seata_protocol::{
    BranchStatus, BranchType, CodeTable, ExceptionCode, Frame, GlobalStatus, HeadMap, ProtocolError, ProtocolVersion,
    ResultCode, RpcCodec,
};
use tokio_util::codec::{Decoder, Encoder};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-zA-Z0-9:._/-]{1,40}", "\\PC{0,12}"]
}

fn branch_type() -> impl Strategy<Value = BranchType> {
    prop::sample::select(BranchType::ALL)
}

fn branch_status() -> impl Strategy<Value = BranchStatus> {
    prop::sample::select(BranchStatus::ALL)
}

fn global_status() -> impl Strategy<Value = GlobalStatus> {
    prop::sample::select(GlobalStatus::ALL)
}

fn exception_code() -> impl Strategy<Value = ExceptionCode> {
    (0u8..=23).prop_map(|b| ExceptionCode::from_wire(b, CodeTable::V2).unwrap())
}

fn result_head() -> impl Strategy<Value = ResultHead> {
    prop_oneof![
        Just(ResultHead::success()),
        (exception_code(), text()).prop_map(|(c, m)| ResultHead::failed(c, m)),
        exception_code().prop_map(|c| ResultHead { exception_code: c, ..ResultHead::success() }),
    ]
}

fn register_request(rm: bool) -> impl Strategy<Value = RegisterRequest> {
    (text(), text(), text(), text(), text()).prop_map(move |(v, a, g, e, r)| RegisterRequest {
        version: v,
        application_id: a,
        transaction_service_group: g,
        extra_data: e,
        resource_ids: if rm { r } else { String::new() },
    })
}

fn simple_message() -> impl Strategy<Value = Message> {
    let reg = || {
        (text(), branch_type(), text(), text(), text()).prop_map(|(x, t, r, l, a)| BranchRegisterRequest {
            xid: x,
            branch_type: t,
            resource_id: r,
            lock_key: l,
            application_data: a,
        })
    };
    let end_req = || {
        (text(), any::<i64>(), branch_type(), text(), text()).prop_map(|(x, b, t, r, a)| BranchEndRequest {
            xid: x,
            branch_id: b,
            branch_type: t,
            resource_id: r,
            application_data: a,
        })
    };
    let end_resp = || {
        (result_head(), text(), any::<i64>(), branch_status()).prop_map(|(h, x, b, s)| BranchEndResponse {
            result: h,
            xid: x,
            branch_id: b,
            branch_status: s,
        })
    };
    let g_end = || (text(), text()).prop_map(|(x, e)| GlobalEndRequest { xid: x, extra_data: e });
    let g_resp =
        || (result_head(), global_status()).prop_map(|(h, s)| GlobalEndResponse { result: h, global_status: s });
    prop_oneof![
        (any::<i32>(), text())
            .prop_map(|(t, n)| Message::GlobalBeginRequest(GlobalBeginRequest { timeout: t, transaction_name: n })),
        (result_head(), text(), text()).prop_map(|(h, x, e)| Message::GlobalBeginResponse(GlobalBeginResponse {
            result: h,
            xid: x,
            extra_data: e
        })),
        end_req().prop_map(Message::BranchCommitRequest),
        end_req().prop_map(Message::BranchRollbackRequest),
        end_resp().prop_map(Message::BranchCommitResponse),
        end_resp().prop_map(Message::BranchRollbackResponse),
        g_end().prop_map(Message::GlobalCommitRequest),
        g_end().prop_map(Message::GlobalRollbackRequest),
        g_end().prop_map(Message::GlobalStatusRequest),
        g_resp().prop_map(Message::GlobalCommitResponse),
        g_resp().prop_map(Message::GlobalRollbackResponse),
        g_resp().prop_map(Message::GlobalStatusResponse),
        g_resp().prop_map(Message::GlobalReportResponse),
        (text(), text(), prop::option::of(global_status())).prop_map(|(x, e, s)| {
            Message::GlobalReportRequest(GlobalReportRequest { xid: x, extra_data: e, global_status: s })
        }),
        reg().prop_map(Message::BranchRegisterRequest),
        reg().prop_map(Message::GlobalLockQueryRequest),
        (result_head(), any::<i64>())
            .prop_map(|(h, b)| Message::BranchRegisterResponse(BranchRegisterResponse { result: h, branch_id: b })),
        (text(), any::<i64>(), branch_status(), text(), text(), branch_type()).prop_map(|(x, b, s, r, a, t)| {
            Message::BranchReportRequest(BranchReportRequest {
                xid: x,
                branch_id: b,
                status: s,
                resource_id: r,
                application_data: a,
                branch_type: t,
            })
        }),
        result_head().prop_map(|h| Message::BranchReportResponse(BranchReportResponse { result: h })),
        (result_head(), any::<bool>())
            .prop_map(|(h, l)| Message::GlobalLockQueryResponse(GlobalLockQueryResponse { result: h, lockable: l })),
        register_request(false).prop_map(Message::RegisterTmRequest),
        register_request(true).prop_map(Message::RegisterRmRequest),
        (any::<bool>(), text())
            .prop_map(|(i, v)| Message::RegisterTmResponse(RegisterResponse { identified: i, version: v })),
        (any::<bool>(), text())
            .prop_map(|(i, v)| Message::RegisterRmResponse(RegisterResponse { identified: i, version: v })),
        (branch_type(), text(), any::<i16>()).prop_map(|(t, r, d)| Message::UndoLogDeleteRequest(
            UndoLogDeleteRequest { branch_type: t, resource_id: r, save_days: d }
        )),
    ]
}

fn any_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        4 => simple_message(),
        1 => (prop::collection::vec(simple_message(), 1..5), any::<bool>()).prop_map(|(msgs, with_ids)| {
            let msg_ids = with_ids.then(|| (1..=u32::try_from(msgs.len()).unwrap()).collect());
            Message::MergedWarpMessage(MergedWarpMessage { msgs, msg_ids })
        }),
        1 => prop::collection::vec(simple_message(), 0..5).prop_map(|msgs| Message::MergeResultMessage(MergeResultMessage { msgs })),
        1 => prop::collection::vec(simple_message(), 0..5).prop_map(|msgs| {
            let msg_ids = (0..u32::try_from(msgs.len()).unwrap()).collect();
            Message::BatchResultMessage(BatchResultMessage { msgs, msg_ids })
        }),
    ]
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let head_map = prop::collection::vec((prop::option::of(text()), prop::option::of(text())), 0..3);
    (any_message(), any::<u32>(), prop::sample::select(vec![0u8, 1, 2, 4, 5, 6, 7]), head_map, 0u8..3).prop_map(
        |(m, id, compressor, hm, t)| {
            let mut f = Frame::with_message(t, id, &m, &CodecContext::default(), compressor).unwrap();
            f.head_map = HeadMap::Entries(hm);
            f
        },
    )
}

fn encode(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    RpcCodec::default().encode(frame, &mut out).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_message_round_trips(m in any_message(), v2 in any::<bool>()) {
        let ctx = CodecContext { code_table: if v2 { CodeTable::V2 } else { CodeTable::V1_7 }, go_short_msg: false };
        // V1_7 cannot express NotRaftLeader: it becomes Unknown there.
        let body = m.encode(&ctx).unwrap();
        let back = Message::decode(&body, &ctx).unwrap();
        if v2 { prop_assert_eq!(back, m); } else { prop_assert_eq!(back.type_code(), m.type_code()); }
    }

    #[test]
    fn every_frame_round_trips(f in arb_frame()) {
        let mut buf = encode(&f);
        let back = RpcCodec::default().decode(&mut buf).unwrap().unwrap();
        prop_assert!(buf.is_empty());
        prop_assert_eq!(&back, &f);
        let a = f.decode_message(&CodecContext::default(), DEFAULT_MAX_FRAME_LEN).unwrap();
        let b = back.decode_message(&CodecContext::default(), DEFAULT_MAX_FRAME_LEN).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn a_frame_fed_one_byte_at_a_time_decodes_exactly_once(f in arb_frame()) {
        let bytes = encode(&f);
        let mut codec = RpcCodec::default();
        let mut buf = BytesMut::new();
        let mut seen = Vec::new();
        for (i, b) in bytes.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            if let Some(frame) = codec.decode(&mut buf).unwrap() {
                seen.push((i, frame));
            }
        }
        prop_assert_eq!(seen.len(), 1);
        prop_assert_eq!(seen[0].0, bytes.len() - 1);
        prop_assert_eq!(&seen[0].1, &f);
    }

    #[test]
    fn random_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Message::decode(&b, &CodecContext::default());
        let mut buf = BytesMut::from(&b[..]);
        let _ = RpcCodec::default().decode(&mut buf);
        // With a valid header in front, the body decoder sees the junk too.
        let mut framed = vec![0xda, 0xda, 1, 0, 0, 0, 0, 0, 16, 0, 1, 0, 0, 0, 0, 1];
        framed.extend_from_slice(&b);
        let len = u32::try_from(framed.len()).unwrap().to_be_bytes();
        framed[3..7].copy_from_slice(&len);
        let mut buf = BytesMut::from(&framed[..]);
        if let Ok(Some(f)) = RpcCodec::default().decode(&mut buf) {
            let _ = f.decode_message(&CodecContext::default(), 1 << 20);
        }
    }

    #[test]
    fn mutated_frames_never_panic(f in arb_frame(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = encode(&f).to_vec();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let mut buf = BytesMut::from(&bytes[..]);
        if let Ok(Some(frame)) = RpcCodec::default().decode(&mut buf) {
            let _ = frame.decode_message(&CodecContext::default(), 1 << 20);
        }
    }
}

fn decode(bytes: &[u8]) -> Result<Option<Frame>, ProtocolError> {
    RpcCodec::default().decode(&mut BytesMut::from(bytes))
}

fn begin_frame() -> Vec<u8> {
    let m = Message::GlobalBeginRequest(GlobalBeginRequest { timeout: 60000, transaction_name: "test".into() });
    encode(&Frame::with_message(msg_type::REQUEST, 2, &m, &CodecContext::default(), 0).unwrap()).to_vec()
}

#[test]
fn worked_example_of_the_reference_encodes_exactly() {
    // PROTOCOL.md §7.1.
    let expected = hex::decode("dada010000001c001000010000000002000100 00ea6000047465 7374".replace(' ', "")).unwrap();
    assert_eq!(begin_frame(), expected);
}

#[test]
fn wrong_magic_is_fatal() {
    let mut b = begin_frame();
    b[1] = 0xdb;
    let e = decode(&b).unwrap_err();
    assert!(matches!(e, ProtocolError::BadMagic([0xda, 0xdb])) && e.is_fatal());
    assert!(matches!(decode(b"PRI * HTTP/2.0"), Err(ProtocolError::BadMagic(_))));
    assert!(matches!(decode(b"G"), Err(ProtocolError::BadMagic(_))));
}

#[test]
fn bad_versions_are_fatal_and_sticky() {
    let mut b = begin_frame();
    b[2] = 2;
    assert!(matches!(decode(&b), Err(ProtocolError::BadVersion(2))));
    // A v0 frame on a connection that spoke v1 is refused.
    let mut codec = RpcCodec::default();
    let mut buf = BytesMut::from(&begin_frame()[..]);
    codec.decode(&mut buf).unwrap().unwrap();
    buf.extend_from_slice(&[0xda, 0xda, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert!(matches!(codec.decode(&mut buf), Err(ProtocolError::BadVersion(0))));
}

#[test]
fn lying_length_fields_are_rejected_before_allocating() {
    let mut b = begin_frame();
    b[3..7].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(decode(&b), Err(ProtocolError::BadFrameLength { .. })));
    b[3..7].copy_from_slice(&15u32.to_be_bytes());
    assert!(matches!(decode(&b), Err(ProtocolError::BadFrameLength { .. })));
    let mut b = begin_frame();
    b[7..9].copy_from_slice(&15u16.to_be_bytes());
    assert!(matches!(decode(&b), Err(ProtocolError::BadHeadLength { .. })));
    b[7..9].copy_from_slice(&100u16.to_be_bytes());
    assert!(matches!(decode(&b), Err(ProtocolError::BadHeadLength { .. })));
    // A frame larger than the configured maximum is refused from its header alone.
    let mut big = begin_frame();
    big[3..7].copy_from_slice(&(1024u32 * 1024).to_be_bytes());
    let mut buf = BytesMut::from(&big[..]);
    assert!(matches!(RpcCodec::new(4096).decode(&mut buf), Err(ProtocolError::BadFrameLength { .. })));
    // A partial frame below the maximum waits, reserving at most the frame's own length.
    let mut buf = BytesMut::from(&big[..]);
    assert!(RpcCodec::default().decode(&mut buf).unwrap().is_none());
    assert!(buf.capacity() <= 1024 * 1024 + 64);
}

#[test]
fn body_errors_are_typed_and_not_fatal() {
    let ctx = CodecContext::default();
    type Check = fn(&ProtocolError) -> bool;
    let cases: Vec<(Vec<u8>, Check)> = vec![
        (vec![0, 99], |e| matches!(e, ProtocolError::UnknownTypeCode(99))),
        (vec![0, 120], |e| matches!(e, ProtocolError::UnexpectedTypeCode(120))),
        (vec![0, 1, 0, 0], |e| matches!(e, ProtocolError::Truncated(_))),
        (vec![0, 1, 0, 0, 0, 1, 0, 9, b'a'], |e| matches!(e, ProtocolError::Truncated(_))),
        (vec![0, 1, 0, 0, 0, 1, 0, 2, 0xff, 0xfe], |e| matches!(e, ProtocolError::InvalidUtf8(_))),
        (vec![0, 1, 0, 0, 0, 1, 0, 0, 7], |e| matches!(e, ProtocolError::TrailingBytes(1))),
        (vec![0, 11, 0, 0, 9], |e| matches!(e, ProtocolError::UnknownEnum { .. })),
        (vec![0, 59, 0x7f, 0xff, 0xff, 0xff], |e| matches!(e, ProtocolError::BadLength { .. })),
        // A container inside a container.
        (vec![0, 59, 0, 0, 0, 4, 0, 1, 0, 59], |e| matches!(e, ProtocolError::UnexpectedTypeCode(59))),
        // Ids neither absent nor one per message.
        (vec![0, 59, 0, 0, 0, 17, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], |e| {
            matches!(e, ProtocolError::TrailingBytes(7))
        }),
    ];
    for (body, check) in cases {
        let e = Message::decode(&body, &ctx).unwrap_err();
        assert!(check(&e), "{body:?}: {e:?}");
        assert!(!e.is_fatal(), "{body:?}: {e:?}");
    }
}

#[test]
fn unsupported_codec_and_compressor_are_reported() {
    let mut f = decode(&begin_frame()).unwrap().unwrap();
    f.codec = 0x16;
    assert!(matches!(f.decode_message(&CodecContext::default(), 1 << 20), Err(ProtocolError::UnsupportedCodec(0x16))));
    f.codec = 1;
    f.compressor = 3;
    assert!(matches!(
        f.decode_message(&CodecContext::default(), 1 << 20),
        Err(ProtocolError::UnsupportedCompressor(3))
    ));
}

#[test]
fn merged_requests_without_ids_are_read() {
    // A pre-1.5 client: count 1, a GlobalStatusRequest, no id trailer.
    let body = [0, 59, 0, 0, 0, 8, 0, 1, 0, 15, 0, 0, 0, 0];
    let Message::MergedWarpMessage(m) = Message::decode(&body, &CodecContext::default()).unwrap() else { panic!() };
    assert_eq!(m.msg_ids, None);
    assert_eq!(m.msgs, vec![Message::GlobalStatusRequest(GlobalEndRequest::default())]);
}

#[test]
fn exception_codes_follow_the_peer_generation() {
    let m = Message::BranchRegisterResponse(BranchRegisterResponse {
        result: ResultHead::failed(ExceptionCode::LockKeyConflictFailFast, "conflict"),
        branch_id: 0,
    });
    let code_byte = |t| m.encode(&CodecContext { code_table: t, go_short_msg: false }).unwrap()[2 + 1 + 2 + 8];
    assert_eq!(code_byte(CodeTable::V2), 20);
    assert_eq!(code_byte(CodeTable::V1_7), 19);
    assert_eq!(code_byte(CodeTable::V1_5), 2);
    let _ = ResultCode::Failed;
}

#[test]
fn v0_frames_are_read_and_written() {
    // A v0 heartbeat ping (14 bytes) and a GlobalBegin request with the seata codec.
    let ping = [0xda, 0xda, 0x00, 0xa0 | 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
    let mut codec = RpcCodec::default();
    let mut buf = BytesMut::from(&ping[..]);
    let f = codec.decode(&mut buf).unwrap().unwrap();
    assert!(f.is_heartbeat() && f.version == ProtocolVersion::V0 && f.request_id == 9);
    let mut pong = BytesMut::new();
    codec.encode(f.pong(), &mut pong).unwrap();
    assert_eq!(&pong[..], &[0xda, 0xda, 0, 0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);

    let mut req = vec![0xda, 0xda, 0x00, 0x90, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 3];
    req.extend_from_slice(&[0, 0, 0xea, 0x60, 0, 4, b't', b'e', b's', b't']);
    // Fed byte by byte it decodes once, when the body is complete.
    let mut codec = RpcCodec::default();
    let mut buf = BytesMut::new();
    let mut got = None;
    for (i, b) in req.iter().enumerate() {
        buf.extend_from_slice(&[*b]);
        if let Some(f) = codec.decode(&mut buf).unwrap() {
            assert_eq!(i, req.len() - 1);
            got = Some(f);
        }
    }
    let f = got.unwrap();
    let m = f.decode_message(&CodecContext::default(), 1 << 20).unwrap();
    assert_eq!(m, Message::GlobalBeginRequest(GlobalBeginRequest { timeout: 60000, transaction_name: "test".into() }));
    let mut out = BytesMut::new();
    codec.encode(&f, &mut out).unwrap();
    assert_eq!(&out[..], &req[..]);
}
