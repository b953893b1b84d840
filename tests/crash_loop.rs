//! Crash under load (reliability): the real binary is killed with SIGKILL at random moments,
//! several times, while TMs and RMs run AT and TCC transactions (commits and rollbacks); it is
//! restarted on the same store each time. Afterwards every transaction is checked
//! (`common::load::check`):
//!
//! * acknowledged as committed: every acknowledged branch was committed at the RM, none rolled back;
//! * acknowledged as rolled back: every acknowledged branch was rolled back, none committed;
//! * anything else (answer lost in the crash): all of its branches went one way, never mixed;
//! * no row lock is left held and no session is left unfinished after the recovery period.
//!
//! Once on the embedded store, once in db mode (a throw-away database on the MariaDB of the db
//! tests, where the server also leaves `global_table`, `branch_table` and `lock_table` empty).
//! Short form in CI (3 kills). Long form:
//! `SEATA_CRASH_KILLS=30 cargo test --release --test crash_loop -- --nocapture`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::load::{check, spawn_workers, steady_rm, Ledger};
use common::process::{free_port, wait_listening, ServerProcess, Store, FAST_RECOVERY};
use common::stores::table_rows;
use common::*;
use rand::Rng;
use seata_server::store::db::testing::{Backend, TestDb};

/// Kills the server `kills` times under load, restarts it, and checks the ledger.
async fn crash_loop(dir: &Path, store: &Store, seata_extra: &str) -> (usize, load::Summary) {
    let kills: usize = std::env::var("SEATA_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let log = RmLog::default();

    for _ in 0..kills {
        let server = ServerProcess::spawn_on(dir, port, seata_extra, store);
        wait_listening(addr).await;
        let stop = Arc::new(AtomicBool::new(false));
        let workers = spawn_workers(addr, 6, &ledger, &stop, &log);
        let ms = rand::thread_rng().gen_range(300..900);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        drop(server); // SIGKILL at a random moment under load
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            let _ = w.await;
        }
    }

    // Final start: let recovery finish everything.
    let _server = ServerProcess::spawn_on(dir, port, seata_extra, store);
    wait_listening(addr).await;
    let _rm = steady_rm(addr, &log).await;
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    let summary = check(addr, &ledger, &log, 60).await;
    assert!(ledger.committed.len() > 10, "the load ran: {summary}");
    (kills, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_kill_9_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (kills, summary) = crash_loop(dir.path(), &Store::File, FAST_RECOVERY).await;
    println!("crash loop (file store): {kills} kills survived, {summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_kill_9_in_db_mode_loses_nothing() {
    let Some(db) = TestDb::create(Backend::MySql).await else { return };
    let store = Store::test_db(&db);
    // Sessions a killed node left mid phase two are adopted after the grace period (twice the RM
    // timeout) or the dead threshold: both short here.
    let extra =
        format!("{FAST_RECOVERY}    retry-dead-threshold: 2000\n  transport:\n    rpc-tc-request-timeout: 1000\n");
    let dir = tempfile::tempdir().unwrap();
    let (kills, summary) = crash_loop(dir.path(), &store, &extra).await;
    // Nothing is left in Seata's tables.
    for table in ["global_table", "branch_table", "lock_table"] {
        assert_eq!(table_rows(&db, table).await, 0, "{table} is empty at the end");
    }
    println!("crash loop (db mode): {kills} kills survived, {summary}");
    db.cleanup().await;
}
