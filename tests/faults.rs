//! Faults: RMs that disconnect or are slow, a full disk, and floods of malformed frames.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use seata_protocol::frame::msg_type;
use seata_protocol::{BranchStatus, BranchType, ExceptionCode, Frame, GlobalStatus, HeadMap, Message, ProtocolVersion};
use seata_server::app::Node;
use seata_server::client::RpcClient;
use seata_server::store::{FileStore, FileStoreOptions, SessionStore};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn an_rm_that_disconnects_during_phase_two_gets_it_when_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |o| o.transport.rpc_tc_request_timeout = Duration::from_millis(300)).await;
    let tm = tm(s.addr).await;
    let (rm1, _) = rm_with(s.addr, APP, &["tcc-a"], Arc::new(|_, _, _| None)).await;
    let xid = begin(&tm, 60_000).await;
    let b = register(&rm1, &xid, BranchType::TCC, "tcc-a", "").await.branch_id;
    let r = commit(&tm, &xid).await;
    assert_eq!(r.global_status, GlobalStatus::CommitRetrying);
    drop(rm1); // the RM goes away mid phase two
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status(&tm, &xid).await, GlobalStatus::CommitRetrying, "retried, not given up");
    let (_rm2, log) = rm(s.addr, &["tcc-a"]).await; // and comes back
    assert!(eventually(10, || log.commits().contains(&b)).await);
    assert!(wait_status(&tm, &xid, GlobalStatus::Finished, 5).await);
    s.shutdown().await;
}

#[tokio::test]
async fn a_slow_rm_does_not_hold_up_other_transactions() {
    let (s, _d) = start().await;
    let tm = tm(s.addr).await;
    // An RM that takes 1.5 s to answer each phase two (without blocking anything else).
    let (slow_rm, mut requests) = RpcClient::connect(s.addr).await.unwrap();
    slow_rm.register_rm("slow-app", GROUP, VERSION, &["tcc-slow"]).await.unwrap();
    let replier = slow_rm.replier();
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&answered);
    tokio::spawn(async move {
        while let Some(req) = requests.recv().await {
            let (replier, count) = (replier.clone(), Arc::clone(&count));
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                if let Message::BranchCommitRequest(r) = req.message {
                    let resp = seata_protocol::message::BranchEndResponse {
                        result: seata_protocol::message::ResultHead::success(),
                        xid: r.xid,
                        branch_id: r.branch_id,
                        branch_status: BranchStatus::PhaseTwo_Committed,
                    };
                    let _ = replier.reply(&req.frame, &Message::BranchCommitResponse(resp)).await;
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    let (fast_rm, _) = rm(s.addr, &["tcc-fast"]).await;
    let xid_slow = begin(&tm, 60_000).await;
    register(&slow_rm, &xid_slow, BranchType::TCC, "tcc-slow", "").await;
    let tm2 = common::tm(s.addr).await;
    let slow_commit = tokio::spawn(async move { commit(&tm2, &xid_slow).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    for _ in 0..20 {
        let xid = begin(&tm, 60_000).await;
        register(&fast_rm, &xid, BranchType::TCC, "tcc-fast", "").await;
        assert_eq!(commit(&tm, &xid).await.global_status, GlobalStatus::Committed);
    }
    let fast = started.elapsed();
    assert!(!slow_commit.is_finished(), "the slow commit was still under way");
    assert!(fast < Duration::from_millis(1400), "other transactions waited: {fast:?}");
    assert_eq!(slow_commit.await.unwrap().global_status, GlobalStatus::Committed);
    assert_eq!(answered.load(std::sync::atomic::Ordering::Relaxed), 1);
    s.shutdown().await;
}

#[tokio::test]
async fn a_full_disk_fails_requests_clearly_and_corrupts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = FileStoreOptions { max_size_bytes: Some(256 * 1024), ..FileStoreOptions::default() };
    let store: Arc<dyn SessionStore> = Arc::new(FileStore::open(dir.path(), opts).await.unwrap());
    let node = Node::start(options(addr.port()), store).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let n = node.clone();
    let task = tokio::spawn(async move {
        let _ = n.serve(listener, async move { drop(stopped.await) }).await;
    });
    let tm = tm(addr).await;
    let (rm, _) = rm(addr, &[DB]).await;
    // A begin is answered once queued; a branch registration once on disk. So what must survive
    // is every transaction whose branch was acknowledged.
    let mut acked = Vec::new();
    let mut failed = false;
    for i in 0..5000 {
        let m = Message::GlobalBeginRequest(seata_protocol::message::GlobalBeginRequest {
            timeout: 600_000,
            transaction_name: format!("fill-{i}-{}", "x".repeat(100)),
        });
        let xid = match tm.call(&m).await.unwrap() {
            Message::GlobalBeginResponse(r) if r.result.is_success() => r.xid,
            Message::GlobalBeginResponse(r) => {
                assert_eq!(r.result.exception_code, ExceptionCode::FailedStore, "{r:?}");
                failed = true;
                break;
            }
            other => panic!("{other:?}"),
        };
        let r = register(&rm, &xid, BranchType::AT, DB, &format!("fill:{i}{}", "y".repeat(100))).await;
        if !r.result.is_success() {
            failed = true;
            break;
        }
        acked.push(xid);
    }
    assert!(failed, "the disk filled up");
    assert!(acked.len() > 10, "{} transactions stored before the disk filled", acked.len());
    // Once the disk has failed a write, a begin waits for its write and fails clearly.
    let m = Message::GlobalBeginRequest(seata_protocol::message::GlobalBeginRequest {
        timeout: 600_000,
        transaction_name: "after".into(),
    });
    match tm.call(&m).await.unwrap() {
        Message::GlobalBeginResponse(r) => {
            assert_eq!(r.result.exception_code, ExceptionCode::FailedStore, "{r:?}");
            assert!(r.xid.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // The server stays up and keeps answering what needs no write.
    assert_eq!(status(&tm, &acked[0]).await, GlobalStatus::Begin);
    let _ = stop.send(());
    let _ = task.await;
    // Restarted with room to spare: every acknowledged transaction is there with its branch.
    let s = start_on(dir.path(), |_| {}).await;
    let tm = common::tm(s.addr).await;
    for xid in acked.iter().step_by(97).chain(acked.last()) {
        assert_eq!(status(&tm, xid).await, GlobalStatus::Begin, "{xid}");
        let entry = s.node.coordinator.session(xid).expect("stored");
        assert_eq!(entry.lock().await.branches.len(), 1, "{xid}");
    }
    assert!(s.node.coordinator.session_count() >= acked.len());
    s.shutdown().await;
}

#[tokio::test]
async fn floods_of_malformed_frames_from_many_connections() {
    let (s, _d) = start().await;
    let mut tasks = Vec::new();
    for c in 0..40u32 {
        let addr = s.addr;
        tasks.push(tokio::spawn(async move {
            let Ok(mut sock) = TcpStream::connect(addr).await else { return 0 };
            let mut sent = 0;
            for i in 0..100u32 {
                // Valid headers with junk bodies (kept open), then a lying header (closed).
                let body: Vec<u8> = (0..(i % 40)).map(|b| u8::try_from((b * 7 + c) % 256).unwrap()).collect();
                let f = Frame {
                    version: ProtocolVersion::V1,
                    message_type: msg_type::REQUEST,
                    codec: if i % 7 == 0 { 0x16 } else { 1 },
                    compressor: u8::try_from(i % 9).unwrap(),
                    request_id: i,
                    head_map: HeadMap::default(),
                    body: Bytes::from(body),
                };
                let mut out = bytes::BytesMut::new();
                f.encode(&mut out).unwrap();
                if sock.write_all(&out).await.is_err() {
                    break;
                }
                sent += 1;
            }
            let _ = sock.write_all(&[0xda, 0xda, 1, 0x7f, 0xff, 0xff, 0xff, 0, 16]).await;
            sent
        }));
    }
    let mut frames = 0;
    for t in tasks {
        frames += t.await.unwrap();
    }
    assert!(frames >= 1000, "{frames} frames sent");
    // The server is still fully serving.
    let tm = tm(s.addr).await;
    let (rm, log) = rm(s.addr, &[DB]).await;
    let xid = begin(&tm, 60_000).await;
    let b = register(&rm, &xid, BranchType::AT, DB, "t:1").await.branch_id;
    assert_eq!(commit(&tm, &xid).await.global_status, GlobalStatus::Committed);
    assert!(eventually(5, || log.commits() == vec![b]).await);
    drop(RpcClient::connect(s.addr).await.unwrap());
    s.shutdown().await;
}

/// A store whose GlobalBegin writes are answered early and then fail, as a disk failing right
/// after a begin was answered would.
struct BeginsFailLater(seata_server::store::memory::MemoryStore);

#[async_trait::async_trait]
impl SessionStore for BeginsFailLater {
    async fn apply(&self, ops: Vec<seata_server::store::StoreOp>) -> Result<(), seata_server::store::StoreError> {
        self.0.apply(ops).await
    }
    async fn apply_ordered(
        &self,
        _ops: Vec<seata_server::store::StoreOp>,
    ) -> Result<seata_server::store::PendingWrite, seata_server::store::StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let e = seata_server::store::StoreError::unavailable("writing", sqlx::Error::Protocol("disk failed".into()));
        tx.send(Err(e)).unwrap();
        Ok(seata_server::store::PendingWrite::waiting(rx))
    }
    async fn load_all(&self) -> Result<Vec<seata_server::store::StoredSession>, seata_server::store::StoreError> {
        self.0.load_all().await
    }
    async fn load(
        &self,
        xid: &str,
    ) -> Result<Option<seata_server::store::StoredSession>, seata_server::store::StoreError> {
        self.0.load(xid).await
    }
    async fn close(&self) -> Result<(), seata_server::store::StoreError> {
        self.0.close().await
    }
}

#[tokio::test]
async fn a_begin_whose_write_fails_after_the_answer_is_dropped_at_its_next_request() {
    let store = Arc::new(BeginsFailLater(seata_server::store::memory::MemoryStore::new()));
    let s = start_shared(store, Arc::new(seata_server::lock::LockTable::new()), |_| {}).await;
    let tm = tm(s.addr).await;
    let (rm, log) = rm(s.addr, &[DB]).await;
    let xid = begin(&tm, 60_000).await;
    let r = register(&rm, &xid, BranchType::AT, DB, "t:1").await;
    assert_eq!(r.result.exception_code, ExceptionCode::FailedStore, "{r:?}");
    assert_eq!(s.node.coordinator.session_count(), 0, "the session is forgotten");
    assert_eq!(s.node.coordinator.locks().count(), Some(0));
    // The transaction never existed: the TM's commit finds nothing to do.
    let c = commit(&tm, &xid).await;
    assert_eq!((c.result.is_success(), c.global_status), (true, GlobalStatus::Finished), "{c:?}");
    assert!(log.events().is_empty());
    s.shutdown().await;
}
