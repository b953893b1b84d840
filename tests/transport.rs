//! Transport behaviour: idle close, connection cap, compressed requests, v0 clients, old and Go
//! clients' numbering, RMs that do not answer.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use seata_protocol::frame::msg_type;
use seata_protocol::message::*;
use seata_protocol::{
    compress, BranchStatus, BranchType, CodeTable, CodecContext, ExceptionCode, Frame, GlobalStatus, Message, RpcCodec,
};
use seata_server::client::RpcClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

#[tokio::test]
async fn silent_connections_are_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |o| o.transport.idle_timeout = Duration::from_millis(300)).await;
    let mut sock = TcpStream::connect(s.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(3), sock.read(&mut buf)).await.unwrap().unwrap();
    assert_eq!(n, 0, "closed without a byte");
    // A client that pings stays connected.
    let c = tm(s.addr).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        c.ping().await.unwrap();
    }
    s.shutdown().await;
}

#[tokio::test]
async fn the_connection_cap_holds_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |o| o.transport.max_connections = 2).await;
    let a = tm(s.addr).await;
    let _b = tm(s.addr).await;
    let mut extra = TcpStream::connect(s.addr).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(3), extra.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "the third connection is closed");
    let xid = begin(&a, 60_000).await;
    assert_eq!(status(&a, &xid).await, GlobalStatus::Begin);
    s.shutdown().await;
}

#[tokio::test]
async fn answers_use_the_request_codec_and_compressor() {
    let (s, _d) = start().await;
    let c = tm(s.addr).await;
    for compressor in [compress::id::GZIP, compress::id::ZSTD, compress::id::LZ4, compress::id::BZIP2] {
        let m = Message::GlobalBeginRequest(GlobalBeginRequest { timeout: 60_000, transaction_name: "gz".into() });
        let f = Frame::with_message(
            msg_type::REQUEST,
            1000 + u32::from(compressor),
            &m,
            &CodecContext::default(),
            compressor,
        )
        .unwrap();
        // The client decodes the compressed answer; check the compressor byte on the raw frame too.
        let resp = c.call_frame(f).await.unwrap();
        assert!(matches!(resp, Message::GlobalBeginResponse(r) if r.result.is_success()));
    }
    // Raw check of the answer's header.
    let mut sock = TcpStream::connect(s.addr).await.unwrap();
    let reg = Message::RegisterTmRequest(RegisterRequest { version: "2.2.0".into(), ..Default::default() });
    let f = Frame::with_message(msg_type::REQUEST, 7, &reg, &CodecContext::default(), compress::id::GZIP).unwrap();
    let mut out = bytes::BytesMut::new();
    f.encode(&mut out).unwrap();
    sock.write_all(&out).await.unwrap();
    let mut codec = RpcCodec::default();
    let mut buf = bytes::BytesMut::new();
    let frame = loop {
        if let Some(f) = codec.decode(&mut buf).unwrap() {
            break f;
        }
        let n = sock.read_buf(&mut buf).await.unwrap();
        assert!(n > 0);
    };
    assert_eq!((frame.request_id, frame.compressor, frame.message_type), (7, compress::id::GZIP, msg_type::RESPONSE));
    s.shutdown().await;
}

#[tokio::test]
async fn v0_clients_get_v0_answers() {
    let (s, _d) = start().await;
    let mut sock = TcpStream::connect(s.addr).await.unwrap();
    // v0 ping: flag = request | heartbeat | seata codec, id 5.
    sock.write_all(&[0xda, 0xda, 0x00, 0xb0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]).await.unwrap();
    let mut pong = [0u8; 14];
    tokio::time::timeout(Duration::from_secs(3), sock.read_exact(&mut pong)).await.unwrap().unwrap();
    assert_eq!(&pong[..4], &[0xda, 0xda, 0x00, 0x30]);
    assert_eq!(pong[13], 5);
    s.shutdown().await;
}

#[tokio::test]
async fn old_and_go_clients_get_codes_they_can_read() {
    let (s, _d) = start().await;
    // A 1.7-era RM reads LockKeyConflictFailFast as 19; a Go TM registers as 1.1.0 (frame type 2).
    let tm1 = tm(s.addr).await;
    let (holder, _) = rm_with(s.addr, APP, &[DB], Arc::new(|_, _, _| None)).await;
    let xid_a = begin(&tm1, 60_000).await;
    assert!(register(&holder, &xid_a, BranchType::AT, DB, "t:1").await.result.is_success());
    let tm_bg = tm(s.addr).await;
    let xa = xid_a.clone();
    let rb = tokio::spawn(async move { rollback(&tm_bg, &xa).await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (old_rm, _) = RpcClient::connect(s.addr).await.unwrap();
    old_rm.register_rm(APP, GROUP, "1.8.0", &[DB]).await.unwrap();
    let xid_b = begin(&tm1, 60_000).await;
    let Message::BranchRegisterResponse(r) =
        old_rm.call(&register_req(&xid_b, BranchType::AT, DB, "t:1")).await.unwrap()
    else {
        panic!()
    };
    // The client decodes with the 2.x table; byte 19 reads as NotRaftLeader there, which is how we
    // see that 19 was sent.
    assert_eq!(r.result.exception_code.to_wire(CodeTable::V2), 19);

    let (go, _) = RpcClient::connect(s.addr).await.unwrap();
    let reg = RegisterRequest {
        version: "1.1.0".into(),
        application_id: "go-app".into(),
        transaction_service_group: GROUP.into(),
        ..Default::default()
    };
    let resp = go.call_as(msg_type::ONEWAY, &Message::RegisterTmRequest(reg)).await.unwrap();
    assert!(matches!(resp, Message::RegisterTmResponse(RegisterResponse { identified: true, .. })));
    // A failed BranchReport answer to Go carries its one-byte message length.
    let rep = Message::BranchReportRequest(BranchReportRequest {
        xid: "127.0.0.1:1:1".into(),
        branch_id: 1,
        status: BranchStatus::PhaseOne_Done,
        resource_id: String::new(),
        application_data: String::new(),
        branch_type: BranchType::AT,
    });
    let Message::BranchReportResponse(r) = go.call(&rep).await.unwrap() else { panic!() };
    assert_eq!(r.result.exception_code, ExceptionCode::GlobalTransactionNotExist);
    rb.abort();
    s.shutdown().await;
}

#[tokio::test]
async fn an_rm_that_never_answers_is_retried_until_it_does() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |o| o.transport.rpc_tc_request_timeout = Duration::from_millis(300)).await;
    let tm = tm(s.addr).await;
    // Silent for the first two attempts, then commits.
    let policy: Policy = Arc::new(|_, _, n| (n > 2).then_some(BranchStatus::PhaseTwo_Committed));
    let (rm, log) = rm_with(s.addr, APP, &["tcc-a"], policy).await;
    let xid = begin(&tm, 60_000).await;
    let b = register(&rm, &xid, BranchType::TCC, "tcc-a", "").await.branch_id;
    let r = commit(&tm, &xid).await;
    // The TM is told the commit failed for now, and that it is being retried.
    assert_eq!(r.result.result_code, seata_protocol::ResultCode::Failed);
    assert_eq!(r.global_status, GlobalStatus::CommitRetrying);
    assert!(wait_status(&tm, &xid, GlobalStatus::Finished, 10).await);
    assert_eq!(log.commits(), vec![b, b, b]);
    s.shutdown().await;
}

#[tokio::test]
async fn registration_auth_refuses_unsigned_tms_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |o| {
        o.transport.auth = seata_server::transport::AuthConfig {
            enabled: true,
            access_key: Some("ak1".into()),
            secret_key: Some("sk1".into()),
            max_clock_skew: Duration::from_secs(300),
        }
    })
    .await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let digest = seata_server::transport::ram_sign(&format!("{GROUP},10.1.1.1,{now}"), "sk1").unwrap();
    let reg = |extra: String| {
        Message::RegisterTmRequest(RegisterRequest {
            version: "2.2.0".into(),
            application_id: APP.into(),
            transaction_service_group: GROUP.into(),
            extra_data: extra,
            resource_ids: String::new(),
        })
    };
    let signed = format!("ak=ak1\ndigest={digest}\ntimestamp={now}\nauthVersion=V4\nvgroup={GROUP}\nip=10.1.1.1\n");
    let (good, _) = RpcClient::connect(s.addr).await.unwrap();
    assert!(matches!(good.call(&reg(signed.clone())).await.unwrap(), Message::RegisterTmResponse(r) if r.identified));
    let xid = begin(&good, 60_000).await;
    assert_eq!(status(&good, &xid).await, GlobalStatus::Begin);

    let (bad, _) = RpcClient::connect(s.addr).await.unwrap();
    let forged = signed.replace("ip=10.1.1.1", "ip=10.9.9.9");
    assert!(matches!(bad.call(&reg(forged)).await.unwrap(), Message::RegisterTmResponse(r) if !r.identified));
    // Still unregistered: a transaction request closes the connection.
    let m = Message::GlobalBeginRequest(GlobalBeginRequest { timeout: 1000, transaction_name: "x".into() });
    assert!(bad.call(&m).await.is_err());
    // RMs carry no auth data and are accepted.
    let (_rm, _) = rm(s.addr, &[DB]).await;
    s.shutdown().await;
}

#[tokio::test]
async fn open_transactions_per_application_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |o| o.coordinator.max_sessions_per_application = 2).await;
    let c = tm(s.addr).await;
    let a = begin(&c, 60_000).await;
    let _b = begin(&c, 60_000).await;
    let m = Message::GlobalBeginRequest(GlobalBeginRequest { timeout: 60_000, transaction_name: "x".into() });
    let Message::GlobalBeginResponse(r) = c.call(&m).await.unwrap() else { panic!() };
    assert_eq!(r.result.exception_code, ExceptionCode::BeginFailed);
    assert!(r.xid.is_empty());
    // Another application is not affected; ending one frees a place.
    let (other, _) = RpcClient::connect(s.addr).await.unwrap();
    other.register_tm("other-app", GROUP, VERSION).await.unwrap();
    begin(&other, 60_000).await;
    assert_eq!(commit(&c, &a).await.global_status, GlobalStatus::Committed);
    assert!(wait_status(&c, &a, GlobalStatus::Finished, 5).await);
    begin(&c, 60_000).await;
    s.shutdown().await;
}
