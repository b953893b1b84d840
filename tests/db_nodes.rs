//! Two `seata-server` processes (the real binary, different `-n` node ids and ports) on one
//! database, in db mode on MariaDB and on PostgreSQL: a transaction begun on one node is ended
//! on the other; a node killed with SIGKILL in the middle of phase two leaves its transactions
//! to the other node, which finishes them as decided once the dead threshold has passed.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::process::{free_port, wait_listening, ServerProcess};
use common::stores::table_rows;
use common::*;
use seata_protocol::message::GlobalEndRequest;
use seata_protocol::{BranchType, ExceptionCode, GlobalStatus, Message};
use seata_server::store::db::testing::{Backend, TestDb};

/// Short recovery periods, a dead threshold of 3 s (well after the kill below, even on a busy
/// machine), a 1 s phase-two timeout.
const FAST_RECOVERY: &str = "  server:
    retry-dead-threshold: 3000
    recovery:
      committing-retry-period: 100
      async-committing-retry-period: 100
      rollbacking-retry-period: 100
      timeout-retry-period: 100
  transport:
    rpc-tc-request-timeout: 1000
";

/// A node process and its RPC address.
struct NodeProcess {
    process: ServerProcess,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

async fn spawn_node(db: &TestDb, node: u16) -> NodeProcess {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let process = ServerProcess::spawn_db(dir.path(), port, node, db, FAST_RECOVERY);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(addr).await;
    NodeProcess { process, addr, _dir: dir }
}

/// Waits until Seata's tables hold no session, branch or row lock any more.
async fn assert_tables_empty(db: &TestDb, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let mut left = Vec::new();
        for table in ["global_table", "branch_table", "lock_table"] {
            let n = table_rows(db, table).await;
            if n > 0 {
                left.push((table, n));
            }
        }
        if left.is_empty() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "rows left: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn begin_on_one_node_end_on_the_other(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let a = spawn_node(&db, 1).await;
    let b = spawn_node(&db, 2).await;
    let tm_a = tm(a.addr).await;
    let tm_b = tm(b.addr).await;
    let (rm_a, log_a) = rm(a.addr, &[DB]).await;
    let (rm_b, log_b) = rm(b.addr, &["tcc-a", DB]).await;

    // Begun on A, branches registered on B (a TCC one and an AT one with row locks).
    let xid = begin(&tm_a, 60_000).await;
    assert!(xid.starts_with(&format!("{}:", a.addr)), "{xid}");
    let b1 = register(&rm_b, &xid, BranchType::TCC, "tcc-a", "").await.branch_id;
    let b2 = register(&rm_b, &xid, BranchType::AT, DB, "stock:1,2").await.branch_id;
    assert!(b1 != 0 && b2 != 0);
    // The row locks are seen by A too.
    let other = begin(&tm_a, 60_000).await;
    let r = register(&rm_a, &other, BranchType::AT, DB, "stock:2").await;
    assert_eq!(r.result.exception_code, ExceptionCode::LockKeyConflict);
    // Committed on B; both branches committed, once each.
    let r = commit(&tm_b, &xid).await;
    assert_eq!((r.result.is_success(), r.global_status), (true, GlobalStatus::Committed), "{r:?}");
    assert!(eventually(10, || log_b.commits().len() == 2).await, "{:?}", log_b.events());
    let mut got = log_b.commits();
    got.sort_unstable();
    let mut want = vec![b1, b2];
    want.sort_unstable();
    assert_eq!(got, want);
    assert!(wait_status(&tm_a, &xid, GlobalStatus::Finished, 10).await);
    // The rows are free again: the other transaction takes them on A and is rolled back on B.
    let b3 = register(&rm_a, &other, BranchType::AT, DB, "stock:2").await.branch_id;
    assert_ne!(b3, 0);
    let r = rollback(&tm_b, &other).await;
    assert_eq!(r.global_status, GlobalStatus::Rollbacked, "{r:?}");
    assert!(eventually(5, || log_a.rollbacks() == vec![b3] || log_b.rollbacks() == vec![b3]).await);
    assert_tables_empty(&db, 10).await;
    drop((a, b));
    db.cleanup().await;
}

async fn node_killed_in_phase_two_is_taken_over(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let mut a = spawn_node(&db, 1).await;
    let b = spawn_node(&db, 2).await;
    let tm_a = tm(a.addr).await;
    let tm_b = tm(b.addr).await;
    // The RM on A receives phase two and never answers; the RM of the same application on B
    // answers at once.
    let (rm_a, log_a) = rm_with(a.addr, APP, &["tcc-a", DB], Arc::new(|_, _, _| None)).await;
    let (_rm_b, log_b) = rm(b.addr, &["tcc-a", DB]).await;

    // 1. TCC commit in progress (Committing) when A dies.
    let committing = begin(&tm_a, 60_000).await;
    let t1 = register(&rm_a, &committing, BranchType::TCC, "tcc-a", "").await.branch_id;
    let t2 = register(&rm_a, &committing, BranchType::AT, DB, "stock:1").await.branch_id;
    // 2. AT asynchronous commit in progress (AsyncCommitting).
    let async_committing = begin(&tm_a, 60_000).await;
    let at = register(&rm_a, &async_committing, BranchType::AT, DB, "stock:2").await.branch_id;
    // 3. TCC rollback in progress (Rollbacking).
    let rollbacking = begin(&tm_a, 60_000).await;
    let r1 = register(&rm_a, &rollbacking, BranchType::TCC, "tcc-a", "").await.branch_id;
    let r2 = register(&rm_a, &rollbacking, BranchType::AT, DB, "stock:3").await.branch_id;
    assert!([t1, t2, at, r1, r2].iter().all(|b| *b != 0));

    let r = commit(&tm_a, &async_committing).await;
    assert_eq!(r.global_status, GlobalStatus::Committed, "{r:?}");
    // The callers of A wait for phase two (the TCC branches hold it up).
    let pending = {
        let tm_c = tm(a.addr).await;
        let tm_r = tm(a.addr).await;
        let c = Message::GlobalCommitRequest(GlobalEndRequest::new(&committing));
        let r = Message::GlobalRollbackRequest(GlobalEndRequest::new(&rollbacking));
        (tokio::spawn(async move { tm_c.call(&c).await }), tokio::spawn(async move { tm_r.call(&r).await }))
    };
    // A has sent phase two to its RM (rollbacks go in reverse order, r2 first), which keeps
    // silent: kill A now.
    assert!(
        eventually(10, || {
            let (c, r) = (log_a.commits(), log_a.rollbacks());
            c.contains(&t1) && c.contains(&at) && r.contains(&r2)
        })
        .await,
        "{:?}",
        log_a.events()
    );
    // Phase two is under way in the database: Committing (or CommitRetrying after A's 1 s
    // timeout), AsyncCommitting, Rollbacking (or RollbackRetrying).
    for (xid, allowed) in [(&committing, [2, 5]), (&async_committing, [8, 8]), (&rollbacking, [4, 6])] {
        let sql = format!("SELECT {} FROM global_table WHERE xid = '{xid}'", db.text("status"));
        let rows = db.query_strings(&sql).await;
        let status: i32 = rows.first().and_then(|r| r[0].as_deref()).expect("still in global_table").parse().unwrap();
        assert!(allowed.contains(&status), "{xid}: status {status}");
    }
    a.process.kill9();
    drop(rm_a);
    drop(tm_a);
    // The callers of A lose their connection (or got the retrying status just before).
    for p in [pending.0, pending.1] {
        match p.await.unwrap() {
            Ok(Message::GlobalCommitResponse(r)) => assert_eq!(r.global_status, GlobalStatus::CommitRetrying, "{r:?}"),
            Ok(Message::GlobalRollbackResponse(r)) => {
                assert_eq!(r.global_status, GlobalStatus::RollbackRetrying, "{r:?}")
            }
            Ok(other) => panic!("{other:?}"),
            Err(_) => {} // A died first
        }
    }

    // B adopts all three and ends each as decided: the commits committed, the rollback rolled
    // back, each branch once at B's RM, never the opposite decision anywhere.
    for xid in [&committing, &async_committing, &rollbacking] {
        assert!(wait_status(&tm_b, xid, GlobalStatus::Finished, 20).await, "{xid} not finished by B");
    }
    let mut commits = log_b.commits();
    commits.sort_unstable();
    let mut want = vec![t1, t2, at];
    want.sort_unstable();
    assert_eq!(commits, want, "{:?}", log_b.events());
    let mut rollbacks = log_b.rollbacks();
    rollbacks.sort_unstable();
    let mut want = vec![r1, r2];
    want.sort_unstable();
    assert_eq!(rollbacks, want, "{:?}", log_b.events());
    for branch in [t1, t2, at] {
        assert!(!log_a.rollbacks().contains(&branch), "{branch} rolled back at A's RM");
    }
    for branch in [r1, r2] {
        assert!(!log_a.commits().contains(&branch), "{branch} committed at A's RM");
    }
    assert_tables_empty(&db, 10).await;
    // Nothing more arrives later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(log_b.events().len(), 5, "{:?}", log_b.events());
    drop(b);
    db.cleanup().await;
}

/// A node commits a transaction it knows only part of: one branch was registered on it, one on
/// the other node. Its commit (which does not read the branches first when it knows some) is
/// refused by the store's branch count, re-read, and decided again: both branches get their
/// commit, through the AsyncCommitting path (AT only) and the Committing path (AT + TCC).
async fn a_commit_learns_branches_registered_on_the_other_node(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let a = spawn_node(&db, 1).await;
    let b = spawn_node(&db, 2).await;
    let tm_a = tm(a.addr).await;
    let (rm_a, log_a) = rm(a.addr, &[DB]).await;
    let (rm_b, log_b) = rm(b.addr, &["tcc-a", DB]).await;

    let at_only = begin(&tm_a, 60_000).await;
    let a1 = register(&rm_a, &at_only, BranchType::AT, DB, "stock:10").await.branch_id;
    let b1 = register(&rm_b, &at_only, BranchType::AT, DB, "stock:11").await.branch_id;
    let mixed = begin(&tm_a, 60_000).await;
    let a2 = register(&rm_a, &mixed, BranchType::AT, DB, "stock:20").await.branch_id;
    let b2 = register(&rm_b, &mixed, BranchType::TCC, "tcc-a", "").await.branch_id;
    assert!([a1, b1, a2, b2].iter().all(|&id| id != 0));

    for xid in [&at_only, &mixed] {
        let r = commit(&tm_a, xid).await;
        assert_eq!((r.result.is_success(), r.global_status), (true, GlobalStatus::Committed), "{r:?}");
    }
    // Phase two goes to any channel of the RM's application (Seata's routing), so the branches
    // registered on B may be committed through A's RM: what counts is that each of the four
    // gets its commit exactly once.
    let all = || {
        let mut v = log_a.commits();
        v.extend(log_b.commits());
        v.sort_unstable();
        v
    };
    let mut want = vec![a1, b1, a2, b2];
    want.sort_unstable();
    let done = eventually(15, || all().len() >= 4).await;
    assert!(done, "A: {:?}, B: {:?}", log_a.events(), log_b.events());
    assert_eq!(all(), want);
    assert!(log_a.rollbacks().is_empty() && log_b.rollbacks().is_empty());
    assert_tables_empty(&db, 10).await;
    drop((a, b));
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
    begin_on_one_node_end_on_the_other,
    a_commit_learns_branches_registered_on_the_other_node,
    node_killed_in_phase_two_is_taken_over
);
