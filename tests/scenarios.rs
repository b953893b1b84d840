//! End-to-end scenarios: the real server on an ephemeral port, driven by protocol clients.
//!
//! Every scenario where the store matters runs three times (`on_every_store!`): on the file
//! store, and in db mode on MariaDB/MySQL and on PostgreSQL, each test with its own database.
//! The few about the transport alone (registration, requests before it, garbage frames) run on
//! the file store only: they never reach the store.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::stores::{Fixture, StoreKind};
use common::*;
use seata_protocol::frame::msg_type;
use seata_protocol::message::*;
use seata_protocol::{BranchStatus, BranchType, ExceptionCode, Frame, GlobalStatus, HeadMap, Message, ProtocolVersion};
use seata_server::client::RpcClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// Transport only: the store is not involved.
#[tokio::test]
async fn registration_and_heartbeat() {
    let (s, _d) = start().await;
    // A ping before registration is answered.
    let (c, _) = RpcClient::connect(s.addr).await.unwrap();
    c.ping().await.unwrap();
    c.register_tm(APP, GROUP, "2.3.0-SNAPSHOT").await.unwrap();
    let (r, _) = RpcClient::connect(s.addr).await.unwrap();
    r.register_rm(APP, GROUP, "1.1.0", &[DB, "tcc-action"]).await.unwrap();
    // A later registration on the same connection adds resources (Java sends it one-way).
    let more = RegisterRequest { version: "2.2.0".into(), resource_ids: "another-db".into(), ..Default::default() };
    let resp = r.call_as(msg_type::ONEWAY, &Message::RegisterRmRequest(more)).await.unwrap();
    assert!(matches!(resp, Message::RegisterRmResponse(RegisterResponse { identified: true, .. })));
    r.ping().await.unwrap();
    let (tms, rms) = s.node.transport.channels().role_counts();
    assert_eq!((tms, rms), (1, 1));
    s.shutdown().await;
}

async fn at_commit_reaches_the_rm_asynchronously(kind: StoreKind) {
    let Some(f) = Fixture::create(kind).await else { return };
    let s = f.start(|_| {}).await;
    let tm = tm(s.addr).await;
    let (rm, log) = rm(s.addr, &[DB]).await;
    let xid = begin(&tm, 60_000).await;
    let b1 = register(&rm, &xid, BranchType::AT, DB, "stock:1,2").await;
    let b2 = register(&rm, &xid, BranchType::AT, DB, "order:9").await;
    assert!(b1.result.is_success() && b2.result.is_success());
    let r = commit(&tm, &xid).await;
    assert!(r.result.is_success());
    assert_eq!(r.global_status, GlobalStatus::Committed);
    // Locks go at commit start; branch commits follow in the background.
    assert_eq!(f.lock_count(&s).await, 0);
    assert!(eventually(5, || log.commits().len() == 2).await, "{:?}", log.events());
    let mut got = log.commits();
    got.sort_unstable();
    let mut want = vec![b1.branch_id, b2.branch_id];
    want.sort_unstable();
    assert_eq!(got, want);
    assert!(wait_status(&tm, &xid, GlobalStatus::Finished, 5).await);
    // A repeated commit of an ended transaction is Finished, not an error.
    let again = commit(&tm, &xid).await;
    assert_eq!((again.result.is_success(), again.global_status), (true, GlobalStatus::Finished));
    assert_eq!(f.wait_empty(&s, 5).await, vec![], "nothing is left in the store");
    s.shutdown().await;
    f.cleanup().await;
}

async fn at_rollback_in_reverse_order_releases_locks(kind: StoreKind) {
    let Some(f) = Fixture::create(kind).await else { return };
    let s = f.start(|_| {}).await;
    let tm = tm(s.addr).await;
    let (rm, log) = rm(s.addr, &[DB]).await;
    let xid = begin(&tm, 60_000).await;
    let b1 = register(&rm, &xid, BranchType::AT, DB, "stock:1").await.branch_id;
    let b2 = register(&rm, &xid, BranchType::AT, DB, "stock:2").await.branch_id;
    assert_eq!(f.lock_count(&s).await, 2);
    let r = rollback(&tm, &xid).await;
    assert_eq!((r.result.is_success(), r.global_status), (true, GlobalStatus::Rollbacked));
    assert_eq!(log.rollbacks(), vec![b2, b1]);
    assert_eq!(f.lock_count(&s).await, 0);
    assert_eq!(status(&tm, &xid).await, GlobalStatus::Finished);
    assert_eq!(f.wait_empty(&s, 5).await, vec![], "nothing is left in the store");
    s.shutdown().await;
    f.cleanup().await;
}

async fn lock_conflict_reentrancy_and_lock_query(kind: StoreKind) {
    let Some(f) = Fixture::create(kind).await else { return };
    let s = f.start(|_| {}).await;
    let tm = tm(s.addr).await;
    let (rm, _log) = rm(s.addr, &[DB]).await;
    let a = begin(&tm, 60_000).await;
    let b = begin(&tm, 60_000).await;
    assert!(register(&rm, &a, BranchType::AT, DB, "stock:1,2").await.result.is_success());
    // Re-entrant: the same transaction takes the same row again.
    assert!(register(&rm, &a, BranchType::AT, DB, "stock:2,3").await.result.is_success());
    assert_eq!(f.lock_count(&s).await, 3);
    // Another transaction conflicts, all or nothing: stock:4 is not left held.
    let r = register(&rm, &b, BranchType::AT, DB, "stock:4,1").await;
    assert_eq!(r.result.result_code, seata_protocol::ResultCode::Failed);
    assert_eq!(r.result.exception_code, ExceptionCode::LockKeyConflict);
    assert_eq!(r.branch_id, 0);
    assert_eq!(f.lock_count(&s).await, 3);
    // Lock query: free rows and own rows are lockable, another holder's are not.
    let q = |xid: &str, key: &str| {
        Message::GlobalLockQueryRequest(BranchRegisterRequest {
            xid: xid.into(),
            branch_type: BranchType::AT,
            resource_id: DB.into(),
            lock_key: key.into(),
            application_data: String::new(),
        })
    };
    for (xid, key, want) in
        [(&b, "stock:4", true), (&b, "stock:1", false), (&a, "stock:1", true), (&String::new(), "stock:3", false)]
    {
        match rm.call(&q(xid, key)).await.unwrap() {
            Message::GlobalLockQueryResponse(r) => assert_eq!(r.lockable, want, "{xid} {key}"),
            other => panic!("{other:?}"),
        }
    }
    // Fail-fast once the holder is rolling back and the requester is not autocommit.
    let (_slow_rm, _l) = rm_with(s.addr, "slow", &["never"], Arc::new(|_, _, _| None)).await;
    let c = begin(&tm, 60_000).await;
    let (rm2, _l2) = rm_with(s.addr, APP, &[DB], Arc::new(|_, _, _| None)).await;
    assert!(register(&rm2, &c, BranchType::AT, DB, "stock:77").await.result.is_success());
    let tm2 = common::tm(s.addr).await;
    let rb = tokio::spawn(async move { rollback(&tm2, &c).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = register(&rm, &b, BranchType::AT, DB, "stock:77").await;
    assert_eq!(r.result.exception_code, ExceptionCode::LockKeyConflictFailFast);
    rb.abort();
    s.shutdown().await;
    f.cleanup().await;
}

async fn tcc_commit_in_registration_order(kind: StoreKind) {
    let Some(f) = Fixture::create(kind).await else { return };
    let s = f.start(|_| {}).await;
    let tm = tm(s.addr).await;
    let (rm, log) = rm(s.addr, &["tcc-a", "tcc-b"]).await;
    let xid = begin(&tm, 60_000).await;
    let b1 = register(&rm, &xid, BranchType::TCC, "tcc-a", "").await.branch_id;
    let b2 = register(&rm, &xid, BranchType::TCC, "tcc-b", "").await.branch_id;
    let r = commit(&tm, &xid).await;
    assert_eq!((r.result.is_success(), r.global_status), (true, GlobalStatus::Committed));
    assert_eq!(log.commits(), vec![b1, b2]);
    assert_eq!(status(&tm, &xid).await, GlobalStatus::Finished);
    // Registering on a finished transaction fails with GlobalTransactionNotExist.
    let r = register(&rm, &xid, BranchType::TCC, "tcc-a", "").await;
    assert_eq!(r.result.exception_code, ExceptionCode::GlobalTransactionNotExist);
    assert_eq!(f.wait_empty(&s, 5).await, vec![], "nothing is left in the store");
    s.shutdown().await;
    f.cleanup().await;
}

async fn tcc_rollback_retries_after_a_retryable_failure(kind: StoreKind) {
    let Some(f) = Fixture::create(kind).await else { return };
    let s = f.start(|_| {}).await;
    let tm = tm(s.addr).await;
    // The first rollback attempt of each branch fails retryably, the second succeeds.
    let policy: Policy = Arc::new(|code, _, n| {
        Some(match (code, n) {
            (5, 1) => BranchStatus::PhaseTwo_RollbackFailed_Retryable,
            (5, _) => BranchStatus::PhaseTwo_Rollbacked,
            _ => BranchStatus::PhaseTwo_Committed,
        })
    });
    let (rm, log) = rm_with(s.addr, APP, &["tcc-a"], policy).await;
    let xid = begin(&tm, 60_000).await;
    let b1 = register(&rm, &xid, BranchType::TCC, "tcc-a", "").await.branch_id;
    let r = rollback(&tm, &xid).await;
    assert_eq!((r.result.is_success(), r.global_status), (true, GlobalStatus::RollbackRetrying));
    assert!(wait_status(&tm, &xid, GlobalStatus::Finished, 10).await);
    assert_eq!(log.rollbacks(), vec![b1, b1]);
    assert_eq!(f.wait_empty(&s, 5).await, vec![], "nothing is left in the store");
    s.shutdown().await;
    f.cleanup().await;
}

async fn timeout_rollback_and_a_late_commit(kind: StoreKind) {
    let Some(f) = Fixture::create(kind).await else { return };
    let s = f.start(|_| {}).await;
    let tm = tm(s.addr).await;
    let (rm, log) = rm(s.addr, &[DB]).await;
    let xid = begin(&tm, 300).await;
    let b = register(&rm, &xid, BranchType::AT, DB, "stock:5").await.branch_id;
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The late commit is told the truth: the transaction is being rolled back.
    let r = commit(&tm, &xid).await;
    assert!(
        matches!(
            r.global_status,
            GlobalStatus::TimeoutRollbacking | GlobalStatus::TimeoutRollbacked | GlobalStatus::Finished
        ),
        "{r:?}"
    );
    assert!(eventually(5, || log.rollbacks() == vec![b]).await, "{:?}", log.events());
    assert!(wait_status(&tm, &xid, GlobalStatus::Finished, 5).await);
    assert!(log.commits().is_empty());
    assert_eq!(f.lock_count(&s).await, 0);
    // A timed-out transaction with no commit attempt is rolled back by the timeout job too.
    let xid2 = begin(&tm, 100).await;
    let b2 = register(&rm, &xid2, BranchType::AT, DB, "stock:6").await.branch_id;
    assert!(eventually(5, || log.rollbacks().contains(&b2)).await);
    assert!(wait_status(&tm, &xid2, GlobalStatus::Finished, 5).await);
    assert_eq!(f.wait_empty(&s, 5).await, vec![], "nothing is left in the store");
    s.shutdown().await;
    f.cleanup().await;
}

async fn global_report_ends_a_saga(kind: StoreKind) {
    let Some(f) = Fixture::create(kind).await else { return };
    let s = f.start(|_| {}).await;
    let tm = tm(s.addr).await;
    let m = Message::GlobalBeginRequest(GlobalBeginRequest { timeout: 60_000, transaction_name: "$Saga_order".into() });
    let Message::GlobalBeginResponse(b) = tm.call(&m).await.unwrap() else { panic!() };
    let report = |st| {
        Message::GlobalReportRequest(GlobalReportRequest {
            xid: b.xid.clone(),
            extra_data: String::new(),
            global_status: Some(st),
        })
    };
    let r = end(&tm, report(GlobalStatus::Committed)).await;
    assert_eq!((r.result.is_success(), r.global_status), (true, GlobalStatus::Committed));
    assert_eq!(status(&tm, &b.xid).await, GlobalStatus::Finished);
    // Unknown XID: the reported status is echoed.
    let r = end(&tm, report(GlobalStatus::Rollbacked)).await;
    assert_eq!(r.global_status, GlobalStatus::Rollbacked);
    // A non-SAGA session: a no-op that returns the current status.
    let xid = begin(&tm, 60_000).await;
    let r = end(
        &tm,
        Message::GlobalReportRequest(GlobalReportRequest {
            xid: xid.clone(),
            extra_data: String::new(),
            global_status: Some(GlobalStatus::Committed),
        }),
    )
    .await;
    assert_eq!(r.global_status, GlobalStatus::Begin);
    s.shutdown().await;
    f.cleanup().await;
}

async fn merged_round_trip(f: &Fixture, batch: bool, version: &str, with_ids: bool) -> Message {
    let s = f.start(|o| o.transport.batch_response = batch).await;
    let tm = tm(s.addr).await;
    let (rm, _) = RpcClient::connect(s.addr).await.unwrap();
    rm.register_rm(APP, GROUP, version, &[DB]).await.unwrap();
    let xid = begin(&tm, 60_000).await;
    let merged = MergedWarpMessage {
        msgs: vec![
            register_req(&xid, BranchType::AT, DB, "stock:1"),
            register_req(&xid, BranchType::AT, DB, "stock:1"),
            Message::GlobalStatusRequest(GlobalEndRequest::new(&xid)),
        ],
        msg_ids: with_ids.then(|| vec![11, 12, 13]),
    };
    let resp = rm.call_as(msg_type::ONEWAY, &Message::MergedWarpMessage(merged)).await.unwrap();
    s.shutdown().await;
    resp
}

async fn merged_requests_answered_in_both_forms(kind: StoreKind) {
    let Some(f) = Fixture::create(kind).await else { return };
    let Message::MergeResultMessage(m) = merged_round_trip(&f, false, "2.2.0", true).await else { panic!() };
    assert_eq!(m.msgs.len(), 3);
    assert!(matches!(&m.msgs[0], Message::BranchRegisterResponse(r) if r.result.is_success()));
    // The same row twice in one transaction: re-entrant.
    assert!(matches!(&m.msgs[1], Message::BranchRegisterResponse(r) if r.result.is_success()));
    assert!(matches!(&m.msgs[2], Message::GlobalStatusResponse(r) if r.global_status == GlobalStatus::Begin));
    let Message::BatchResultMessage(b) = merged_round_trip(&f, true, "2.2.0", true).await else { panic!() };
    assert_eq!(b.msg_ids, vec![11, 12, 13]);
    assert_eq!(b.msgs.len(), 3);
    // Old clients (no ids, < 1.5.0) always get MergeResultMessage.
    assert!(matches!(merged_round_trip(&f, true, "1.4.2", false).await, Message::MergeResultMessage(_)));
    f.cleanup().await;
}

async fn unknown_xids_are_finished_not_errors(kind: StoreKind) {
    let Some(f) = Fixture::create(kind).await else { return };
    let s = f.start(|_| {}).await;
    let tm = tm(s.addr).await;
    for xid in ["127.0.0.1:8091:42", "not-an-xid", ""] {
        for r in [commit(&tm, xid).await, rollback(&tm, xid).await] {
            assert_eq!((r.result.is_success(), r.global_status), (true, GlobalStatus::Finished));
        }
        assert_eq!(status(&tm, xid).await, GlobalStatus::Finished);
    }
    let (rm, _) = rm(s.addr, &[DB]).await;
    let r = register(&rm, "127.0.0.1:8091:42", BranchType::AT, DB, "t:1").await;
    assert_eq!(r.result.exception_code, ExceptionCode::GlobalTransactionNotExist);
    let rep = Message::BranchReportRequest(BranchReportRequest {
        xid: "127.0.0.1:8091:42".into(),
        branch_id: 1,
        status: BranchStatus::PhaseOne_Done,
        resource_id: String::new(),
        application_data: String::new(),
        branch_type: BranchType::AT,
    });
    let Message::BranchReportResponse(r) = rm.call(&rep).await.unwrap() else { panic!() };
    assert_eq!(r.result.exception_code, ExceptionCode::GlobalTransactionNotExist);
    s.shutdown().await;
    f.cleanup().await;
}

async fn phase_two_falls_back_to_another_connection_of_the_application(kind: StoreKind) {
    let Some(f) = Fixture::create(kind).await else { return };
    let s = f.start(|_| {}).await;
    let tm = tm(s.addr).await;
    let (rm1, log1) = rm(s.addr, &["tcc-a"]).await;
    let (_rm2, log2) = rm(s.addr, &["tcc-a"]).await;
    let xid = begin(&tm, 60_000).await;
    let b = register(&rm1, &xid, BranchType::TCC, "tcc-a", "").await.branch_id;
    drop(rm1);
    assert!(eventually(5, || s.node.transport.channels().len() == 2).await);
    let r = commit(&tm, &xid).await;
    assert_eq!(r.global_status, GlobalStatus::Committed);
    assert!(log1.commits().is_empty());
    assert_eq!(log2.commits(), vec![b]);
    assert_eq!(f.wait_empty(&s, 5).await, vec![], "nothing is left in the store");
    s.shutdown().await;
    f.cleanup().await;
}

// Transport only: refused before any store access.
#[tokio::test]
async fn requests_before_registration_close_the_connection() {
    let (s, _d) = start().await;
    let (c, _) = RpcClient::connect(s.addr).await.unwrap();
    let m = Message::GlobalBeginRequest(GlobalBeginRequest { timeout: 1000, transaction_name: "x".into() });
    assert!(c.call(&m).await.is_err());
    s.shutdown().await;
}

async fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), sock.read_to_end(&mut out)).await;
    out
}

// Transport only: the frames never decode into requests that reach the store.
#[tokio::test]
async fn garbage_and_lying_frames_do_not_hurt_the_server() {
    let (s, _d) = start().await;
    // Wrong magic, a lying length, an HTTP request: the connection is closed, nothing answered.
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0xda, 0xda, 1, 0xff, 0xff, 0xff, 0xff, 0, 16, 0, 1, 0, 0, 0, 0, 1],
        &[0xda, 0xda, 7, 0, 0],
    ] {
        assert!(raw_exchange(s.addr, junk).await.is_empty());
    }
    // A body that does not decode is dropped; the connection and the server go on.
    let (c, _) = RpcClient::connect(s.addr).await.unwrap();
    c.register_tm(APP, GROUP, VERSION).await.unwrap();
    let bad = Frame {
        version: ProtocolVersion::V1,
        message_type: msg_type::REQUEST,
        codec: 1,
        compressor: 0,
        request_id: 99,
        head_map: HeadMap::default(),
        body: Bytes::from_static(&[0, 1, 0, 0]),
    };
    c.send_frame(bad).await.unwrap();
    let xid = begin(&c, 60_000).await;
    assert_eq!(status(&c, &xid).await, GlobalStatus::Begin);
    // A new client is served as usual.
    let c2 = tm(s.addr).await;
    assert_eq!(status(&c2, &xid).await, GlobalStatus::Begin);
    s.shutdown().await;
}

async fn restart_resumes_phase_two(kind: StoreKind) {
    let Some(f) = Fixture::create(kind).await else { return };
    let s = f.start(|_| {}).await;
    let (xid, b) = {
        let tm = tm(s.addr).await;
        let (rm, _) = rm(s.addr, &["tcc-a"]).await;
        let xid = begin(&tm, 60_000).await;
        let b = register(&rm, &xid, BranchType::TCC, "tcc-a", "").await.branch_id;
        let b2 = register(&rm, &xid, BranchType::AT, DB, "stock:1").await;
        assert!(b2.result.is_success());
        (xid, b)
    };
    s.shutdown().await;
    let s = f.start(|_| {}).await;
    // The session and its row locks are back.
    assert_eq!(f.lock_count(&s).await, 1);
    let tm = tm(s.addr).await;
    let (_rm, log) = rm(s.addr, &["tcc-a", DB]).await;
    assert_eq!(status(&tm, &xid).await, GlobalStatus::Begin);
    let r = commit(&tm, &xid).await;
    assert_eq!(r.global_status, GlobalStatus::Committed);
    assert!(log.commits().contains(&b));
    assert!(eventually(5, || log.commits().len() == 2).await);
    assert_eq!(f.wait_empty(&s, 5).await, vec![], "nothing is left in the store");
    s.shutdown().await;
    f.cleanup().await;
}

on_every_store!(
    at_commit_reaches_the_rm_asynchronously,
    at_rollback_in_reverse_order_releases_locks,
    lock_conflict_reentrancy_and_lock_query,
    tcc_commit_in_registration_order,
    tcc_rollback_retries_after_a_retryable_failure,
    timeout_rollback_and_a_late_commit,
    global_report_ends_a_saga,
    merged_requests_answered_in_both_forms,
    unknown_xids_are_finished_not_errors,
    phase_two_falls_back_to_another_connection_of_the_application,
    restart_resumes_phase_two,
);
