//! Starts real TC nodes on ephemeral ports and drives them with `seata-protocol` clients.
#![allow(dead_code)]

pub mod load;
pub mod mariadb;
pub mod process;
pub mod stores;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seata_protocol::message::*;
use seata_protocol::{BranchStatus, BranchType, GlobalStatus, Message};
use seata_server::app::{Node, NodeOptions};
use seata_server::client::{RpcClient, ServerRequest};
use seata_server::store::{FileStore, FileStoreOptions, SessionStore};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const APP: &str = "order-service";
pub const GROUP: &str = "default_tx_group";
pub const VERSION: &str = "2.2.0";
pub const DB: &str = "jdbc:mysql://127.0.0.1:3306/seata_order";

/// A node under test.
pub struct TestServer {
    pub addr: SocketAddr,
    pub node: Node,
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Stops the node gracefully and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

pub fn options(port: u16) -> NodeOptions {
    let mut o = NodeOptions::default();
    o.coordinator.port = port;
    o.coordinator.recovery_period = Duration::from_millis(100);
    o.coordinator.max_retry_backoff = Duration::from_millis(400);
    o.transport.rpc_tc_request_timeout = Duration::from_secs(2);
    o.drain = Some(Duration::from_secs(2));
    o
}

/// Starts a node on `dir` (a file store there) with `tune` applied to its options.
pub async fn start_on(dir: &Path, tune: impl FnOnce(&mut NodeOptions)) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut opts = options(addr.port());
    tune(&mut opts);
    let store: Arc<dyn SessionStore> = Arc::new(FileStore::open(dir, FileStoreOptions::default()).await.unwrap());
    let node = Node::start(opts, store).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let n = node.clone();
    let task = tokio::spawn(async move {
        n.serve(listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    TestServer { addr, node, dir: dir.to_path_buf(), stop: Some(stop), task: Some(task) }
}

/// Starts a node over `store` and `locks` (several nodes may share them).
pub async fn start_shared(
    store: Arc<dyn SessionStore>,
    locks: Arc<dyn seata_server::lock::LockStore>,
    tune: impl FnOnce(&mut NodeOptions),
) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut opts = options(addr.port());
    tune(&mut opts);
    let node = Node::start_with(opts, store, locks).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let n = node.clone();
    let task = tokio::spawn(async move {
        let _ = n
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await;
    });
    TestServer { addr, node, dir: PathBuf::new(), stop: Some(stop), task: Some(task) }
}

pub async fn start() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let s = start_on(dir.path(), |_| {}).await;
    (s, dir)
}

pub async fn tm(addr: SocketAddr) -> RpcClient {
    let (c, _) = RpcClient::connect(addr).await.unwrap();
    c.register_tm(APP, GROUP, VERSION).await.unwrap();
    c
}

/// What a fake RM answers, and what it received.
#[derive(Clone, Default)]
pub struct RmLog(pub Arc<Mutex<Vec<(i16, String, i64)>>>);

impl RmLog {
    pub fn events(&self) -> Vec<(i16, String, i64)> {
        self.0.lock().unwrap().clone()
    }
    pub fn commits(&self) -> Vec<i64> {
        self.events().into_iter().filter(|e| e.0 == 3).map(|e| e.2).collect()
    }
    pub fn rollbacks(&self) -> Vec<i64> {
        self.events().into_iter().filter(|e| e.0 == 5).map(|e| e.2).collect()
    }
}

/// A policy: (type code 3 or 5, branch id, how many times this branch was asked) → status to
/// answer, or None to stay silent.
pub type Policy = Arc<dyn Fn(i16, i64, usize) -> Option<BranchStatus> + Send + Sync>;

pub fn always_ok() -> Policy {
    Arc::new(|code, _, _| {
        Some(if code == 3 { BranchStatus::PhaseTwo_Committed } else { BranchStatus::PhaseTwo_Rollbacked })
    })
}

/// Connects an RM for `resources` that answers phase two with `policy`.
pub async fn rm_with(addr: SocketAddr, app: &str, resources: &[&str], policy: Policy) -> (RpcClient, RmLog) {
    let log = RmLog::default();
    let c = rm_logged(addr, app, resources, policy, log.clone()).await.unwrap();
    (c, log)
}

/// Connects an RM that answers with `policy` and records into `log` (several RMs may share one).
pub async fn rm_logged(
    addr: SocketAddr,
    app: &str,
    resources: &[&str],
    policy: Policy,
    log: RmLog,
) -> Result<RpcClient, seata_server::client::ClientError> {
    let (c, mut rx) = RpcClient::connect(addr).await?;
    c.register_rm(app, GROUP, VERSION, resources).await?;
    let l = log;
    let replier = c.replier();
    tokio::spawn(async move {
        while let Some(ServerRequest { frame, message }) = rx.recv().await {
            let (code, req) = match &message {
                Message::BranchCommitRequest(r) => (3, r.clone()),
                Message::BranchRollbackRequest(r) => (5, r.clone()),
                _ => continue,
            };
            let n = {
                let mut v = l.0.lock().unwrap();
                v.push((code, req.xid.clone(), req.branch_id));
                v.iter().filter(|e| e.2 == req.branch_id && e.0 == code).count()
            };
            let Some(status) = policy(code, req.branch_id, n) else {
                continue;
            };
            let resp = BranchEndResponse {
                result: ResultHead::success(),
                xid: req.xid,
                branch_id: req.branch_id,
                branch_status: status,
            };
            let msg =
                if code == 3 { Message::BranchCommitResponse(resp) } else { Message::BranchRollbackResponse(resp) };
            let _ = replier.reply(&frame, &msg).await;
        }
    });
    Ok(c)
}

pub async fn rm(addr: SocketAddr, resources: &[&str]) -> (RpcClient, RmLog) {
    rm_with(addr, APP, resources, always_ok()).await
}

pub async fn begin(c: &RpcClient, timeout_ms: i32) -> String {
    let m =
        Message::GlobalBeginRequest(GlobalBeginRequest { timeout: timeout_ms, transaction_name: "purchase".into() });
    match c.call(&m).await.unwrap() {
        Message::GlobalBeginResponse(r) => {
            assert!(r.result.is_success(), "{r:?}");
            r.xid
        }
        other => panic!("{other:?}"),
    }
}

pub fn register_req(xid: &str, t: BranchType, resource: &str, lock_key: &str) -> Message {
    Message::BranchRegisterRequest(BranchRegisterRequest {
        xid: xid.into(),
        branch_type: t,
        resource_id: resource.into(),
        lock_key: lock_key.into(),
        application_data: if t == BranchType::AT { "{\"autoCommit\":false}".into() } else { String::new() },
    })
}

pub async fn register(
    c: &RpcClient,
    xid: &str,
    t: BranchType,
    resource: &str,
    lock_key: &str,
) -> BranchRegisterResponse {
    match c.call(&register_req(xid, t, resource, lock_key)).await.unwrap() {
        Message::BranchRegisterResponse(r) => r,
        other => panic!("{other:?}"),
    }
}

pub async fn end(c: &RpcClient, msg: Message) -> GlobalEndResponse {
    match c.call(&msg).await.unwrap() {
        Message::GlobalCommitResponse(r)
        | Message::GlobalRollbackResponse(r)
        | Message::GlobalStatusResponse(r)
        | Message::GlobalReportResponse(r) => r,
        other => panic!("{other:?}"),
    }
}

pub async fn commit(c: &RpcClient, xid: &str) -> GlobalEndResponse {
    end(c, Message::GlobalCommitRequest(GlobalEndRequest::new(xid))).await
}

pub async fn rollback(c: &RpcClient, xid: &str) -> GlobalEndResponse {
    end(c, Message::GlobalRollbackRequest(GlobalEndRequest::new(xid))).await
}

pub async fn status(c: &RpcClient, xid: &str) -> GlobalStatus {
    end(c, Message::GlobalStatusRequest(GlobalEndRequest::new(xid))).await.global_status
}

/// Polls `f` every 20 ms until it is true or `secs` pass.
pub async fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// Polls the server's status of `xid` until it equals `want`.
pub async fn wait_status(c: &RpcClient, xid: &str, want: GlobalStatus, secs: u64) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if status(c, xid).await == want {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
