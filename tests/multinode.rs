//! Several nodes on one shared store: any node answers for any XID, and recovery work moves to
//! the nodes that are alive. The store here is the in-memory stand-in for a shared database (the
//! same compare-and-set and claim rules); the db-mode suite runs the same on MariaDB/PostgreSQL.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use seata_protocol::{BranchStatus, BranchType, GlobalStatus};
use seata_server::lock::{LockStore, LockTable};
use seata_server::store::memory::MemoryStore;
use seata_server::store::SessionStore;

/// One shared "database" (sessions and row locks) and a way to open a connection to it per node.
fn shared_parts() -> (MemoryStore, Arc<dyn LockStore>) {
    (MemoryStore::shared(), Arc::new(LockTable::new()))
}

fn conn(db: &MemoryStore) -> Arc<dyn SessionStore> {
    Arc::new(db.connect())
}

#[tokio::test]
async fn begin_on_one_node_commit_on_another() {
    let (store, locks) = shared_parts();
    let a = start_shared(conn(&store), Arc::clone(&locks), |_| {}).await;
    let b = start_shared(conn(&store), Arc::clone(&locks), |_| {}).await;
    let tm_a = tm(a.addr).await;
    let tm_b = tm(b.addr).await;
    let (rm_a, log_a) = rm(a.addr, &["tcc-a", DB]).await;
    let (_rm_b, log_b) = rm(b.addr, &["tcc-a", DB]).await;
    let xid = begin(&tm_a, 60_000).await;
    // Registered through B although A began it.
    let (rm_b2, log_b2) = rm(b.addr, &["tcc-a"]).await;
    let b1 = register(&rm_b2, &xid, BranchType::TCC, "tcc-a", "").await;
    assert!(b1.result.is_success(), "{b1:?}");
    let b2 = register(&rm_a, &xid, BranchType::AT, DB, "stock:1").await;
    assert!(b2.result.is_success(), "{b2:?}");
    assert_eq!(status(&tm_b, &xid).await, GlobalStatus::Begin);
    // Committed through B; both phase-two requests reach an RM.
    let r = commit(&tm_b, &xid).await;
    assert_eq!((r.result.is_success(), r.global_status), (true, GlobalStatus::Committed), "{r:?}");
    let all = || {
        let mut v = log_a.commits();
        v.extend(log_b.commits());
        v.extend(log_b2.commits());
        v
    };
    assert!(eventually(5, || all().contains(&b1.branch_id) && all().contains(&b2.branch_id)).await, "{:?}", all());
    // A's cached copy is stale; its answers still follow the store.
    assert_eq!(status(&tm_a, &xid).await, GlobalStatus::Finished);
    let again = commit(&tm_a, &xid).await;
    assert!(matches!(again.global_status, GlobalStatus::Finished | GlobalStatus::Committed), "{again:?}");
    // A stale node cannot add a branch to a finished transaction.
    let late = register(&rm_a, &xid, BranchType::TCC, "tcc-a", "").await;
    assert!(!late.result.is_success());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_stopped_nodes_transactions_are_finished_by_another() {
    let (store, locks) = shared_parts();
    let tune = |o: &mut seata_server::app::NodeOptions| {
        o.transport.rpc_tc_request_timeout = Duration::from_millis(300);
        o.coordinator.rpc_timeout = Duration::from_millis(300);
    };
    let a = start_shared(conn(&store), Arc::clone(&locks), tune).await;
    let b = start_shared(conn(&store), Arc::clone(&locks), tune).await;
    let tm_a = tm(a.addr).await;
    // The RM's connection to A never answers; its connection to B does.
    let (rm_a, log_a) = rm_with(a.addr, APP, &["tcc-a"], Arc::new(|_, _, _| None)).await;
    let (_rm_b, log_b) = rm(b.addr, &["tcc-a"]).await;
    let xid = begin(&tm_a, 60_000).await;
    let br = register(&rm_a, &xid, BranchType::TCC, "tcc-a", "").await.branch_id;
    let r = commit(&tm_a, &xid).await;
    assert_eq!(r.global_status, GlobalStatus::CommitRetrying, "{r:?}");
    a.shutdown().await;
    drop(tm_a);
    drop(rm_a);
    // B finds the retrying transaction in the store, claims it and finishes it.
    assert!(eventually(10, || log_b.commits().contains(&br)).await, "A: {:?} B: {:?}", log_a.events(), log_b.events());
    let tm_b = tm(b.addr).await;
    assert!(wait_status(&tm_b, &xid, GlobalStatus::Finished, 5).await);
    b.shutdown().await;
}

#[tokio::test]
async fn timed_out_transactions_of_a_stopped_node_are_rolled_back() {
    let (store, locks) = shared_parts();
    let a = start_shared(conn(&store), Arc::clone(&locks), |_| {}).await;
    let b = start_shared(conn(&store), Arc::clone(&locks), |_| {}).await;
    let (_rm_b, log_b) = rm_with(
        b.addr,
        APP,
        &[DB],
        Arc::new(|code, _, _| {
            Some(if code == 5 { BranchStatus::PhaseTwo_Rollbacked } else { BranchStatus::PhaseTwo_Committed })
        }),
    )
    .await;
    let tm_a = tm(a.addr).await;
    let (rm_a, _) = rm(a.addr, &[DB]).await;
    let xid = begin(&tm_a, 300).await;
    let br = register(&rm_a, &xid, BranchType::AT, DB, "stock:9").await.branch_id;
    a.shutdown().await;
    assert!(eventually(10, || log_b.rollbacks().contains(&br)).await, "{:?}", log_b.events());
    let tm_b = tm(b.addr).await;
    assert!(wait_status(&tm_b, &xid, GlobalStatus::Finished, 5).await);
    assert_eq!(locks.count(), Some(0));
    b.shutdown().await;
}
