//! The database goes away under load (reliability, db mode): the real binary runs on a private
//! MariaDB (`common::mariadb`) while TMs and RMs run AT and TCC transactions; the database is
//! killed with SIGKILL, stays down for a while, and is started again on the same data. Checked:
//!
//! * the server process stays up, and requests during the outage are answered with errors
//!   (FailedStore and friends), counted;
//! * work resumes by itself once the database is back (no restart, no operator);
//! * nothing acknowledged is lost (`common::load::check`: acknowledged commits committed at the
//!   RM, acknowledged rollbacks rolled back, the others all one way), every transaction ends, no
//!   row lock is left, and `global_table`, `branch_table` and `lock_table` end up empty.
//!
//! Short forms in CI: the database killed and restarted at once, and down for
//! `SEATA_DB_OUTAGE_SECS` (default 5) seconds. Long form (30 s):
//! `SEATA_DB_OUTAGE_SECS=30 cargo test --release --test db_outage -- --nocapture down`.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::load::{check, spawn_workers, steady_rm, Ledger};
use common::mariadb::PrivateMariaDb;
use common::process::{free_port, wait_listening, ServerProcess, Store, FAST_RECOVERY};
use common::*;
use seata_protocol::GlobalStatus;
use seata_server::config::{DbStoreSettings, Secret};
use seata_server::store::db::{DbOptions, DbStore};
use seata_server::store::{GlobalRecord, SessionStore, StoreError, StoreOp};

/// Runs the load, kills the database for `outage`, restarts it, and checks everything.
async fn outage_under_load(outage: Duration, expect_errors: bool, label: &str) {
    let Some(mut db) = PrivateMariaDb::create().await else { return };
    db.create_database("seata", "seata", "seata-pw").await;
    let store = Store::Db {
        db_type: "mysql",
        url: db.jdbc_url("seata"),
        user: Some("seata".into()),
        password: Some("seata-pw".into()),
        extra: "      min-conn: 2\n      max-conn: 16\n".to_owned(),
    };
    let extra =
        format!("{FAST_RECOVERY}    retry-dead-threshold: 2000\n  transport:\n    rpc-tc-request-timeout: 1000\n");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut server = ServerProcess::spawn_on(dir.path(), port, &extra, &store);
    wait_listening(addr).await;

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let log = RmLog::default();
    // An RM that stays connected throughout, for phase two after the workers are gone.
    let _rm = steady_rm(addr, &log).await;
    let stop = Arc::new(AtomicBool::new(false));
    let workers = spawn_workers(addr, 6, &ledger, &stop, &log);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = ledger.lock().unwrap().committed.len();
    assert!(before > 10, "the load ran before the outage: {before} commits");

    db.kill9();
    let down = Instant::now();
    while down.elapsed() < outage {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(server.is_running(), "the server died while the database was down");
    }
    db.start().await;
    let up = Instant::now();

    // Work resumes by itself: commits are acknowledged again.
    let resumed = eventually(60, || ledger.lock().unwrap().commits_since(up).0 >= 20).await;
    let (commits_after, first_after) = ledger.lock().unwrap().commits_since(up);
    assert!(resumed, "work did not resume after the database came back: {commits_after} commits");
    let resume = first_after.map(|t| t.duration_since(up)).unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    assert!(server.is_running(), "the server stayed up");

    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    let (during, longest) = ledger.errors_between(down, up);
    if expect_errors {
        assert!(during > 0, "requests during the outage got errors: {:?}", ledger.errors);
    }
    let summary = check(addr, &ledger, &log, 60).await;
    for table in ["global_table", "branch_table", "lock_table"] {
        let mut n = db.count("seata", table).await;
        for _ in 0..50 {
            if n == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            n = db.count("seata", table).await;
        }
        assert_eq!(n, 0, "{table} is empty at the end");
    }
    assert!(server.is_running(), "the server stayed up");
    println!(
        "{label}: database down {:.1} s (SIGKILL, restart); {before} commits before; {} failed requests in all, {during} answered during the outage (longest wait {:.1} s): {:?}; first commit {:.2} s after the database was back; {summary}",
        up.duration_since(down).as_secs_f64(),
        ledger.error_count(),
        longest.as_secs_f64(),
        ledger.errors,
        resume.as_secs_f64(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_killed_and_restarted_under_load() {
    outage_under_load(Duration::ZERO, false, "database kill -9").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_for_a_while_under_load() {
    let secs: u64 = std::env::var("SEATA_DB_OUTAGE_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    outage_under_load(Duration::from_secs(secs), true, "database outage").await;
}

fn global(n: u64) -> GlobalRecord {
    GlobalRecord {
        xid: format!("127.0.0.1:8091:{n}"),
        transaction_id: i64::try_from(n).unwrap(),
        status: GlobalStatus::Begin,
        application_id: APP.into(),
        transaction_service_group: GROUP.into(),
        transaction_name: "outage".into(),
        timeout_ms: 60_000,
        begin_time_ms: 1,
        application_data: None,
    }
}

/// A write while the database is down fails after about `max-wait` (the pool's wait for a
/// connection), not after several of them: the writer gives up when no connection comes, so the
/// callers queued behind the batch get FailedStore instead of waiting for the outage to end.
/// When the database is back, the same store writes again by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_fails_within_max_wait_while_the_database_is_down() {
    let Some(mut db) = PrivateMariaDb::create().await else { return };
    db.create_database("seata", "seata", "seata-pw").await;
    let settings = DbStoreSettings {
        url: format!("mysql://127.0.0.1:{}/seata", db.port),
        user: Some("seata".into()),
        password: Some(Secret::new("seata-pw")),
        min_conn: 1,
        max_conn: 4,
        max_wait: Duration::from_secs(2),
        ..DbStoreSettings::default()
    };
    let options = DbOptions { create_missing_tables: true, ..DbOptions::default() };
    let store = DbStore::connect(&settings, options).await.expect("store");
    store.apply(vec![StoreOp::InsertGlobal(global(1))]).await.expect("written while up");

    db.kill9();
    for n in 2..4 {
        let started = Instant::now();
        let err = store.apply(vec![StoreOp::InsertGlobal(global(n))]).await.expect_err("the database is down");
        let waited = started.elapsed();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        assert!(waited < Duration::from_millis(3500), "write {n} failed only after {waited:?} (max-wait 2 s)");
    }

    db.start().await;
    store.apply(vec![StoreOp::InsertGlobal(global(4))]).await.expect("written again once the database is back");
    for n in [1, 4] {
        assert!(store.load(&global(n).xid).await.unwrap().is_some(), "global {n} is there");
    }
    for n in [2, 3] {
        assert!(store.load(&global(n).xid).await.unwrap().is_none(), "failed global {n} is not there");
    }
    store.close().await.unwrap();
}
