//! Smoke test of the load generator: the bench library against a node started in this process
//! (embedded file store on a temp dir; db mode on a throw-away MariaDB database), and the
//! database probe. It asserts that transactions complete without errors, and nothing about speed.
//! The db-mode tests are skipped when MariaDB cannot be reached, unless `CI=true`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use seata_server::app::{Node, NodeOptions};
use seata_server::bench::dbprobe::{ProbeOptions, Shape};
use seata_server::bench::{self, Options, Report, TxMode};
use seata_server::lock::LockStore;
use seata_server::store::db::testing::{Backend, TestDb};
use seata_server::store::db::{DbLockStore, DbOptions, DbPool, DbStore};
use seata_server::store::{FileStore, FileStoreOptions, SessionStore};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Server {
    addr: SocketAddr,
    node: Node,
    store: Arc<dyn SessionStore>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn SessionStore> =
        Arc::new(FileStore::open(dir.path(), FileStoreOptions::default()).await.unwrap());
    start_on(store, None, dir, 0).await
}

/// A node in db mode on `db` (node id `node`), sharing the tables with any other node on it.
async fn start_db(db: &TestDb, node: u16) -> Server {
    let opts = DbOptions { create_missing_tables: true, ..DbOptions::default() };
    let pool = DbPool::connect(&db.settings(), &opts).await.expect("connect");
    let store: Arc<dyn SessionStore> = Arc::new(DbStore::open(pool.clone(), opts.clone()).await.expect("store"));
    let locks: Arc<dyn LockStore> = Arc::new(DbLockStore::open(pool, &opts).await.expect("locks"));
    start_on(store, Some(locks), tempfile::tempdir().unwrap(), node).await
}

async fn start_on(
    store: Arc<dyn SessionStore>,
    locks: Option<Arc<dyn LockStore>>,
    dir: tempfile::TempDir,
    node: u16,
) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut opts = NodeOptions::default();
    opts.coordinator.port = addr.port();
    if node > 0 {
        opts.coordinator.server_node = node;
    }
    opts.drain = Some(Duration::from_secs(2));
    let node = match locks {
        Some(locks) => Node::start_with(opts, Arc::clone(&store), locks).await.unwrap(),
        None => Node::start(opts, Arc::clone(&store)).await.unwrap(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let n = node.clone();
    let task = tokio::spawn(async move {
        n.serve(listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Server { addr, node, store, stop, task, _dir: dir }
}

impl Server {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

fn options(addr: SocketAddr) -> Options {
    Options {
        addr: addr.to_string(),
        conns: 3,
        duration: Duration::from_millis(1500),
        warmup: Duration::from_millis(300),
        ..Options::default()
    }
}

fn assert_clean(r: &Report) {
    assert!(r.completed > 0, "no transaction completed: {}", r.table());
    assert_eq!(r.errors_total, 0, "{}", r.table());
    assert_eq!(r.phase2_unmatched + r.phase2_duplicates + r.phase2_missing, 0, "{}", r.table());
    assert_eq!(r.tx_per_s.map(|t| t > 0.0), Some(true));
    assert!(r.latency_us.contains_key("tx"));
    // The JSON line parses and carries the headline figure.
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert!(v["tx_per_s"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_two_branches_commit_and_phase_two_arrives() {
    let s = start().await;
    let r = bench::run(Options { branches: 2, mode: TxMode::At, ..options(s.addr) }).await.unwrap();
    assert_clean(&r);
    assert_eq!(r.committed, r.completed);
    for k in ["begin", "register", "commit", "branch_commit", "commit_to_branches", "tx_complete"] {
        assert!(r.latency_us[k].count > 0, "{k}: {}", r.table());
    }
    assert_eq!(r.latency_us["register"].count, 2 * r.completed);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcc_two_branches_with_rollbacks() {
    let s = start().await;
    let opts = Options { branches: 2, mode: TxMode::Tcc, rollback_percent: 30.0, ..options(s.addr) };
    let r = bench::run(opts).await.unwrap();
    assert_clean(&r);
    assert!(r.committed > 0 && r.rolled_back > 0, "{}", r.table());
    assert!(r.latency_us["branch_commit"].count > 0 && r.latency_us["branch_rollback"].count > 0);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_only() {
    let s = start().await;
    let r = bench::run(Options { branches: 0, ..options(s.addr) }).await.unwrap();
    assert_clean(&r);
    assert!(!r.latency_us.contains_key("register"));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_keys_conflict_and_are_retried_not_errors() {
    let s = start().await;
    let opts =
        Options { conns: 4, hot_keys: Some(2), lock_retry_interval: Duration::from_millis(2), ..options(s.addr) };
    let r = bench::run(opts).await.unwrap();
    assert!(r.completed > 0, "{}", r.table());
    assert_eq!(r.errors_total, 0, "{}", r.table());
    assert!(r.conflicts > 0, "two hot keys and four workers must conflict: {}", r.table());
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_only_leaves_transactions_open() {
    let s = start().await;
    let opts = Options { open_only: Some(40), ..options(s.addr) };
    let r = bench::run(opts).await.unwrap();
    assert_eq!((r.completed, r.errors_total), (40, 0), "{}", r.table());
    assert_eq!(s.node.coordinator.session_count(), 40);
    assert_eq!(s.node.coordinator.locks().count(), Some(80));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_ceiling_in_process() {
    let opts = Options { conns: 2, duration: Duration::from_millis(500), warmup: Duration::ZERO, ..Options::default() };
    let r = bench::echo::run(opts, false).await.unwrap();
    assert!(r.completed > 0 && r.errors_total == 0, "{}", r.table());
    assert!(r.rt_per_s.unwrap() > 0.0);
    assert_eq!(r.frame_bytes.len(), 4); // begin, 2 registers, commit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_mode_at_two_branches_on_two_nodes() {
    let Some(db) = TestDb::create(Backend::MySql).await else { return };
    let (a, b) = (start_db(&db, 1).await, start_db(&db, 2).await);
    // One node, then the workers spread over both nodes of the same database.
    let r = bench::run(Options { branches: 2, mode: TxMode::At, ..options(a.addr) }).await.unwrap();
    assert_clean(&r);
    assert_eq!(r.committed, r.completed);
    let addr = format!("{},{}", a.addr, b.addr);
    let r = bench::run(Options { addr, conns: 4, branches: 2, mode: TxMode::At, ..options(a.addr) }).await.unwrap();
    assert_clean(&r);
    assert_eq!(r.committed, r.completed);
    a.shutdown().await;
    b.shutdown().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_probe_both_shapes() {
    let Some(db) = TestDb::create(Backend::MySql).await else { return };
    for shape in [Shape::Seata, Shape::Batched] {
        let opts = ProbeOptions {
            url: db.settings().url,
            conns: 3,
            duration: Duration::from_millis(1000),
            warmup: Duration::from_millis(200),
            shape,
            writers: 2,
            ..ProbeOptions::default()
        };
        let r = bench::dbprobe::run(opts).await.unwrap();
        assert!(r.completed > 0, "{shape:?}: {}", r.table());
        assert_eq!(r.errors_total, 0, "{shape:?}: {}", r.table());
        assert!(r.statements_per_tx.is_some_and(|s| s > 0.0) && r.commits_per_tx.is_some_and(|c| c > 0.0));
    }
    // Every transaction's rows were removed again.
    for table in ["global_table", "branch_table", "lock_table"] {
        let rows = db.query_strings(&format!("SELECT {} FROM {table}", db.text("COUNT(*)"))).await;
        assert_eq!(rows[0][0].as_deref(), Some("0"), "{table}");
    }
    db.cleanup().await;
}

/// Not a test: shows how the store's group commit behaves under the AT scenario (batches and
/// requests per batch), which an external run cannot see.
/// `cargo test --release --test bench_smoke -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, prints figures"]
async fn group_commit_under_load() {
    for (conns, branches) in [(32, 2), (32, 0), (128, 2)] {
        let s = start().await;
        let before = s.store.write_stats().unwrap_or_default();
        let opts =
            Options { conns, branches, duration: Duration::from_secs(5), warmup: Duration::ZERO, ..options(s.addr) };
        let r = bench::run(opts).await.unwrap();
        let after = s.store.write_stats().unwrap_or_default();
        let (batches, requests) = (after.batches - before.batches, after.requests - before.requests);
        println!(
            "conns {conns} branches {branches}: {:.0} tx/s, {} tx, {requests} store requests ({:.2}/tx) in {batches} \
             batches: {:.1} requests/batch (max {}), {:.0} batches/s",
            r.tx_per_s.unwrap_or(0.0),
            r.completed,
            requests as f64 / r.completed.max(1) as f64,
            requests as f64 / batches.max(1) as f64,
            after.max_batch_size,
            batches as f64 / r.window_s.max(0.001),
        );
        s.shutdown().await;
    }
}
