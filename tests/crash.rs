//! `kill -9` of the real binary under load: nothing acknowledged is lost.
//!
//! Workers run begin → AT branch register → commit against a `seata-server` process while an RM
//! answers phase two. The process is killed with SIGKILL mid-run and started again on the same
//! store. Then every transaction whose begin was acknowledged is committed (again); each must
//! answer Committed or, if its commit had already happened (or it was begun without a branch and
//! its begin had not reached the disk, docs/STORE.md), Finished, and every acknowledged branch
//! must reach the RM as a BranchCommit.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::{free_port, wait_listening, ServerProcess};
use common::*;
use seata_protocol::{BranchType, GlobalStatus};
use seata_server::client::RpcClient;

fn spawn_server(dir: &std::path::Path, port: u16) -> ServerProcess {
    ServerProcess::spawn(dir, port, "")
}

#[derive(Default)]
struct Acked {
    /// xid → acknowledged branch ids.
    branches: HashMap<String, Vec<i64>>,
    committed: HashSet<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = spawn_server(dir.path(), port);
    wait_listening(addr).await;

    let (_rm, log1) = rm(addr, &[DB]).await;
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut workers = Vec::new();
    for w in 0..8 {
        let acked = Arc::clone(&acked);
        workers.push(tokio::spawn(async move {
            let Ok((tm, _)) = RpcClient::connect(addr).await else { return };
            if tm.register_tm(APP, GROUP, VERSION).await.is_err() {
                return;
            }
            let Ok((rm, _)) = RpcClient::connect(addr).await else { return };
            if rm.register_rm(APP, GROUP, VERSION, &[DB]).await.is_err() {
                return;
            }
            for i in 0.. {
                let m = seata_protocol::Message::GlobalBeginRequest(seata_protocol::message::GlobalBeginRequest {
                    timeout: 120_000,
                    transaction_name: "crash".into(),
                });
                let Ok(seata_protocol::Message::GlobalBeginResponse(b)) = tm.call(&m).await else { return };
                acked.lock().unwrap().branches.insert(b.xid.clone(), Vec::new());
                let key = format!("t:{w}_{i}");
                let Ok(seata_protocol::Message::BranchRegisterResponse(r)) =
                    rm.call(&register_req(&b.xid, BranchType::AT, DB, &key)).await
                else {
                    return;
                };
                assert!(r.result.is_success(), "{r:?}");
                acked.lock().unwrap().branches.get_mut(&b.xid).unwrap().push(r.branch_id);
                let m = seata_protocol::Message::GlobalCommitRequest(seata_protocol::message::GlobalEndRequest::new(
                    &b.xid,
                ));
                let Ok(seata_protocol::Message::GlobalCommitResponse(c)) = tm.call(&m).await else { return };
                assert_eq!(c.global_status, GlobalStatus::Committed);
                acked.lock().unwrap().committed.insert(b.xid);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill9();
    for w in workers {
        let _ = w.await;
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let total_branches: usize = acked.branches.values().map(Vec::len).sum();
    assert!(acked.committed.len() > 10, "the load ran: {} commits", acked.committed.len());

    let child = spawn_server(dir.path(), port);
    wait_listening(addr).await;
    let (_rm2, log2) = rm(addr, &[DB]).await;
    let tm = tm(addr).await;
    for (xid, _) in acked.branches.iter() {
        let r = commit(&tm, xid).await;
        assert!(r.result.is_success(), "{xid}: {r:?}");
        match r.global_status {
            GlobalStatus::Committed => {}
            GlobalStatus::Finished => {}
            other => panic!("{xid}: {other}"),
        }
    }
    let want: HashSet<i64> = acked.branches.values().flatten().copied().collect();
    let done = eventually(20, || {
        let got: HashSet<i64> = log1.commits().into_iter().chain(log2.commits()).collect();
        want.is_subset(&got)
    })
    .await;
    let got: HashSet<i64> = log1.commits().into_iter().chain(log2.commits()).collect();
    let missing: Vec<_> = want.difference(&got).collect();
    assert!(done, "acknowledged branches never committed: {missing:?}");
    // Nothing is left: every session ended.
    for xid in acked.branches.keys() {
        assert!(wait_status(&tm, xid, GlobalStatus::Finished, 10).await, "{xid} not finished");
    }
    println!(
        "kill -9 survived: {} transactions acknowledged ({} committed before the kill), {} branches checked",
        acked.branches.len(),
        acked.committed.len(),
        total_branches
    );
    drop(child);
}

#[tokio::test]
async fn sigterm_finishes_requests_flushes_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut server = spawn_server(dir.path(), port);
    wait_listening(addr).await;
    let tm = tm(addr).await;
    let xid = begin(&tm, 60_000).await;
    let pid = server.pid().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || server.wait_exit().unwrap()).await.unwrap();
    assert_eq!(status.code(), Some(0), "graceful exit");
    // The begun transaction is still there after a restart.
    let _server = spawn_server(dir.path(), port);
    wait_listening(addr).await;
    let tm = common::tm(addr).await;
    assert_eq!(status_of(&tm, &xid).await, GlobalStatus::Begin);
}

async fn status_of(c: &RpcClient, xid: &str) -> GlobalStatus {
    common::status(c, xid).await
}
