//! Crash under load (reliability): the real binary is killed with SIGKILL at random moments,
//! several times, while TMs and RMs run AT transactions (commits and rollbacks); it is restarted
//! on the same store each time. Afterwards every transaction is checked:
//!
//! * acknowledged Committed: every acknowledged branch was committed at the RM, none rolled back;
//! * acknowledged as rolled back: every acknowledged branch was rolled back, none committed;
//! * anything else (answer lost in the crash): all of its branches went one way, never mixed;
//! * no row lock is left held and no session is left unfinished after the recovery period.
//!
//! Short form in CI (3 kills). Long form: `SEATA_CRASH_KILLS=50 cargo test --release --test crash_loop -- --nocapture`.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::{free_port, wait_listening, ServerProcess};
use common::*;
use rand::Rng;
use seata_protocol::message::*;
use seata_protocol::{BranchType, GlobalStatus, Message};
use seata_server::client::RpcClient;

fn spawn_server(dir: &std::path::Path, port: u16) -> ServerProcess {
    let fast_recovery = "  server:\n    recovery:\n      committing-retry-period: 200\n      async-committing-retry-period: 200\n      rollbacking-retry-period: 200\n      timeout-retry-period: 200\n";
    ServerProcess::spawn(dir, port, fast_recovery)
}

#[derive(Default)]
struct Ledger {
    /// xid → (lock keys, acknowledged branch ids).
    txs: HashMap<String, (Vec<String>, Vec<i64>)>,
    committed: HashSet<String>,
    rolled_back: HashSet<String>,
}

/// One worker: begin, two AT branches, commit (or roll back one in five), until `stop`.
async fn worker(addr: SocketAddr, w: usize, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>, log: RmLog) {
    let Ok((tm, _)) = RpcClient::connect(addr).await else { return };
    if tm.register_tm(APP, GROUP, VERSION).await.is_err() {
        return;
    }
    // The RM that registers the branches answers their phase two, as a real application does.
    let Ok(rm) = rm_logged(addr, APP, &[DB], always_ok(), log).await else { return };
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let begin =
            Message::GlobalBeginRequest(GlobalBeginRequest { timeout: 3_000, transaction_name: "crash".into() });
        let Ok(Message::GlobalBeginResponse(b)) = tm.call(&begin).await else { return };
        let keys: Vec<String> = (0..2).map(|k| format!("t:{w}_{i}_{k}")).collect();
        ledger.lock().unwrap().txs.insert(b.xid.clone(), (keys.clone(), Vec::new()));
        for key in &keys {
            let Ok(Message::BranchRegisterResponse(r)) = rm.call(&register_req(&b.xid, BranchType::AT, DB, key)).await
            else {
                return;
            };
            if !r.result.is_success() {
                break; // e.g. the transaction timed out while the server restarted
            }
            ledger.lock().unwrap().txs.get_mut(&b.xid).unwrap().1.push(r.branch_id);
        }
        let rollback = rand::thread_rng().gen_ratio(1, 5);
        let end = if rollback {
            Message::GlobalRollbackRequest(GlobalEndRequest::new(&b.xid))
        } else {
            Message::GlobalCommitRequest(GlobalEndRequest::new(&b.xid))
        };
        let status = match tm.call(&end).await {
            Ok(Message::GlobalCommitResponse(r) | Message::GlobalRollbackResponse(r)) => r.global_status,
            _ => return,
        };
        let mut l = ledger.lock().unwrap();
        match status {
            GlobalStatus::Committed => {
                l.committed.insert(b.xid);
            }
            GlobalStatus::Rollbacked | GlobalStatus::TimeoutRollbacking | GlobalStatus::TimeoutRollbacked => {
                l.rolled_back.insert(b.xid);
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_kill_9_under_load_loses_nothing() {
    let kills: usize = std::env::var("SEATA_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let log = RmLog::default();

    for _ in 0..kills {
        let server = spawn_server(dir.path(), port);
        wait_listening(addr).await;
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..6)
            .map(|w| tokio::spawn(worker(addr, w, Arc::clone(&ledger), Arc::clone(&stop), log.clone())))
            .collect();
        let ms = rand::thread_rng().gen_range(300..900);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        drop(server); // SIGKILL at a random moment under load
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            let _ = w.await;
        }
    }

    // Final start: let recovery finish everything.
    let _server = spawn_server(dir.path(), port);
    wait_listening(addr).await;
    let _rm = rm_logged(addr, APP, &[DB], always_ok(), log.clone()).await.unwrap();
    let tm = tm(addr).await;
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    for xid in ledger.txs.keys() {
        assert!(wait_status(&tm, xid, GlobalStatus::Finished, 30).await, "{xid} never finished");
    }
    let commits: HashSet<i64> = log.commits().into_iter().collect();
    let rollbacks: HashSet<i64> = log.rollbacks().into_iter().collect();
    let (mut checked, mut unknown) = (0, 0);
    for (xid, (keys, branches)) in &ledger.txs {
        let committed = branches.iter().filter(|b| commits.contains(b)).count();
        let rolled = branches.iter().filter(|b| rollbacks.contains(b)).count();
        if ledger.committed.contains(xid) {
            assert_eq!((committed, rolled), (branches.len(), 0), "{xid} acknowledged Committed");
        } else if ledger.rolled_back.contains(xid) {
            assert_eq!(committed, 0, "{xid} acknowledged rolled back but a branch committed");
        } else {
            unknown += 1;
            assert!(committed == 0 || rolled == 0, "{xid}: branches went both ways");
        }
        // No row lock is left: a pure @GlobalLock query finds every key free.
        for key in keys {
            let q = Message::GlobalLockQueryRequest(BranchRegisterRequest {
                xid: String::new(),
                branch_type: BranchType::AT,
                resource_id: DB.into(),
                lock_key: key.clone(),
                application_data: String::new(),
            });
            let Message::GlobalLockQueryResponse(r) = tm.call(&q).await.unwrap() else { panic!() };
            assert!(r.lockable, "{key} still locked");
        }
        checked += 1;
    }
    println!(
        "crash loop: {kills} kills survived, {checked} transactions checked ({} committed, {} rolled back, {unknown} whose answer was lost), {} branch commits, {} branch rollbacks",
        ledger.committed.len(),
        ledger.rolled_back.len(),
        commits.len(),
        rollbacks.len()
    );
    assert!(ledger.committed.len() > 10, "the load ran");
}
