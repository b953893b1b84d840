//! The server in db mode on the real MariaDB and PostgreSQL: Seata's tables, row locks in
//! `lock_table`, recovery claims in `distributed_lock`, several nodes on one database. Each test
//! gets its own throw-away database.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use seata_protocol::{BranchType, ExceptionCode, GlobalStatus};
use seata_server::app::NodeOptions;
use seata_server::lock::LockStore;
use seata_server::store::db::testing::{Backend, TestDb};
use seata_server::store::db::{DbLockStore, DbOptions, DbPool, DbStore};
use seata_server::store::SessionStore;

async fn start_db(db: &TestDb, tune: impl FnOnce(&mut NodeOptions)) -> TestServer {
    let opts = DbOptions { create_missing_tables: true, ..DbOptions::default() };
    let pool = DbPool::connect(&db.settings(), &opts).await.expect("connect");
    let store: Arc<dyn SessionStore> = Arc::new(DbStore::open(pool.clone(), opts.clone()).await.expect("store"));
    let locks: Arc<dyn LockStore> = Arc::new(DbLockStore::open(pool, &opts).await.expect("locks"));
    start_shared(store, locks, tune).await
}

async fn count(db: &TestDb, table: &str) -> usize {
    let sql = format!("SELECT {} FROM {table}", db.text("COUNT(*)"));
    db.query_strings(&sql).await[0][0].as_deref().unwrap_or("0").parse().unwrap()
}

async fn at_and_tcc_flows(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let s = start_db(&db, |_| {}).await;
    let tm = tm(s.addr).await;
    let (rm, log) = rm(s.addr, &[DB, "tcc-a"]).await;

    // AT commit: locks in lock_table while open, gone at commit; branch commits reach the RM.
    let xid = begin(&tm, 60_000).await;
    let b1 = register(&rm, &xid, BranchType::AT, DB, "stock:1,2").await.branch_id;
    let b2 = register(&rm, &xid, BranchType::TCC, "tcc-a", "").await.branch_id;
    assert_eq!(count(&db, "lock_table").await, 2);
    let sql =
        format!("SELECT {}, branch_type FROM branch_table WHERE xid = '{xid}' ORDER BY branch_id", db.text("status"));
    let rows = db.query_strings(&sql).await;
    assert_eq!(rows, vec![vec![Some("1".into()), Some("AT".into())], vec![Some("1".into()), Some("TCC".into())]]);
    // Another transaction conflicts on a held row; a lock query sees it.
    let other = begin(&tm, 60_000).await;
    let r = register(&rm, &other, BranchType::AT, DB, "stock:2").await;
    assert_eq!(r.result.exception_code, ExceptionCode::LockKeyConflict);
    let r = commit(&tm, &xid).await;
    assert_eq!((r.result.is_success(), r.global_status), (true, GlobalStatus::Committed), "{r:?}");
    assert!(eventually(10, || log.commits().contains(&b1) && log.commits().contains(&b2)).await, "{:?}", log.events());
    assert!(wait_status(&tm, &xid, GlobalStatus::Finished, 10).await);
    // Rollback in reverse order frees the rows.
    let b3 = register(&rm, &other, BranchType::AT, DB, "stock:2").await.branch_id;
    assert_ne!(b3, 0);
    let r = rollback(&tm, &other).await;
    assert_eq!(r.global_status, GlobalStatus::Rollbacked, "{r:?}");
    assert!(log.rollbacks().contains(&b3));
    // Timeout rollback.
    let late = begin(&tm, 200).await;
    let b4 = register(&rm, &late, BranchType::AT, DB, "stock:3").await.branch_id;
    assert!(eventually(10, || log.rollbacks().contains(&b4)).await);
    assert!(wait_status(&tm, &late, GlobalStatus::Finished, 10).await);
    // Nothing is left behind in Seata's tables.
    for table in ["global_table", "branch_table", "lock_table"] {
        let mut n = count(&db, table).await;
        for _ in 0..50 {
            if n == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            n = count(&db, table).await;
        }
        assert_eq!(n, 0, "{table} is empty at the end");
    }
    s.shutdown().await;
    db.cleanup().await;
}

async fn restart_resumes_from_the_database(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let s = start_db(&db, |_| {}).await;
    let (xid, b) = {
        let tm = tm(s.addr).await;
        let (rm, _) = rm(s.addr, &["tcc-a", DB]).await;
        let xid = begin(&tm, 60_000).await;
        let b = register(&rm, &xid, BranchType::TCC, "tcc-a", "").await.branch_id;
        assert!(register(&rm, &xid, BranchType::AT, DB, "stock:9").await.result.is_success());
        (xid, b)
    };
    s.shutdown().await;
    let s = start_db(&db, |_| {}).await;
    let tm = tm(s.addr).await;
    let (rm2, log) = rm(s.addr, &["tcc-a", DB]).await;
    assert_eq!(status(&tm, &xid).await, GlobalStatus::Begin);
    // The row lock survived in lock_table.
    let other = begin(&tm, 60_000).await;
    assert_eq!(
        register(&rm2, &other, BranchType::AT, DB, "stock:9").await.result.exception_code,
        ExceptionCode::LockKeyConflict
    );
    assert_eq!(commit(&tm, &xid).await.global_status, GlobalStatus::Committed);
    assert!(eventually(10, || log.commits().contains(&b) && log.commits().len() == 2).await, "{:?}", log.events());
    s.shutdown().await;
    db.cleanup().await;
}

async fn two_nodes_share_the_work(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let tune = |o: &mut NodeOptions| {
        o.transport.rpc_tc_request_timeout = Duration::from_millis(300);
        o.coordinator.rpc_timeout = Duration::from_millis(300);
    };
    let a = start_db(&db, tune).await;
    let b = start_db(&db, tune).await;
    let tm_a = tm(a.addr).await;
    let tm_b = tm(b.addr).await;
    // Begin on A, register and commit on B.
    let (rm_b, log_b) = rm(b.addr, &["tcc-a", DB]).await;
    let xid = begin(&tm_a, 60_000).await;
    let b1 = register(&rm_b, &xid, BranchType::TCC, "tcc-a", "").await.branch_id;
    assert_ne!(b1, 0);
    assert_eq!(commit(&tm_b, &xid).await.global_status, GlobalStatus::Committed);
    assert!(log_b.commits().contains(&b1));
    assert_eq!(status(&tm_a, &xid).await, GlobalStatus::Finished);
    // A stops during phase two (its RM connection never answers); B finishes the transaction.
    let (rm_a, _) = rm_with(a.addr, APP, &["tcc-a"], Arc::new(|_, _, _| None)).await;
    let xid2 = begin(&tm_a, 60_000).await;
    let b2 = register(&rm_a, &xid2, BranchType::TCC, "tcc-a", "").await.branch_id;
    assert_eq!(commit(&tm_a, &xid2).await.global_status, GlobalStatus::CommitRetrying);
    a.shutdown().await;
    drop(rm_a);
    assert!(eventually(20, || log_b.commits().contains(&b2)).await, "{:?}", log_b.events());
    assert!(wait_status(&tm_b, &xid2, GlobalStatus::Finished, 10).await);
    b.shutdown().await;
    db.cleanup().await;
}

/// The TM talks to one node, the RM to the other: the node that decides phase two cannot reach
/// the RM, so the node holding the RM's connection (which still has its own copy of the session
/// from the begin, in Begin) must deliver it, long before the transaction's timeout.
async fn phase_two_reaches_an_rm_connected_to_the_other_node(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let tune = |o: &mut NodeOptions| {
        o.transport.rpc_tc_request_timeout = Duration::from_millis(300);
        o.coordinator.rpc_timeout = Duration::from_millis(300);
    };
    let a = start_db(&db, tune).await;
    let b = start_db(&db, tune).await;
    let tm_a = tm(a.addr).await;
    let tm_b = tm(b.addr).await;
    let (rm_a, log_a) = rm(a.addr, &["tcc-a", DB]).await;
    for (end_on_b, want) in [(true, GlobalStatus::Committed), (false, GlobalStatus::Rollbacked)] {
        let xid = begin(&tm_a, 60_000).await;
        let t = register(&rm_a, &xid, BranchType::TCC, "tcc-a", "").await.branch_id;
        let at = register(&rm_a, &xid, BranchType::AT, DB, "stock:1").await.branch_id;
        assert!(t != 0 && at != 0);
        let r = if end_on_b { commit(&tm_b, &xid).await } else { rollback(&tm_b, &xid).await };
        assert!(r.result.is_success() || r.global_status != GlobalStatus::Begin, "{r:?}");
        let delivered = || {
            let got = if want == GlobalStatus::Committed { log_a.commits() } else { log_a.rollbacks() };
            got.contains(&t) && got.contains(&at)
        };
        assert!(eventually(10, delivered).await, "{want:?} not delivered: {:?}", log_a.events());
        assert!(wait_status(&tm_a, &xid, GlobalStatus::Finished, 10).await);
        assert!(wait_status(&tm_b, &xid, GlobalStatus::Finished, 10).await);
    }
    for table in ["global_table", "branch_table", "lock_table"] {
        assert_eq!(count(&db, table).await, 0, "{table}");
    }
    a.shutdown().await;
    b.shutdown().await;
    db.cleanup().await;
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql() { super::$name(Backend::MySql).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { super::$name(Backend::Postgres).await }
        }
    )*};
}

on_both!(
    at_and_tcc_flows,
    restart_resumes_from_the_database,
    two_nodes_share_the_work,
    phase_two_reaches_an_rm_connected_to_the_other_node,
);
