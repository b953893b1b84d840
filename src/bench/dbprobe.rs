//! The database's own ceiling for the rows of db mode: `seata-bench db-probe`.
//!
//! The probe writes, straight to the database and with no coordinator in between, exactly the
//! rows an AT global transaction with `branches` branches leaves in Seata's tables
//! (`global_table`, `branch_table`, `lock_table`, one row lock per branch, as `seata-bench`'s
//! AT workload asks for), and removes them again as a finished transaction does. `conns`
//! workers each run one transaction after the other; a transaction counts when its commit step
//! is done inside the measured window. Two shapes:
//!
//! * [`Shape::Seata`]: what seata-server's db mode sends per transaction, one pooled connection
//!   per statement in autocommit mode, the row-lock acquisition as its own local transaction
//!   (check, insert, commit). Per AT transaction with 2 branches: 12 commits.
//!   1. begin: `INSERT global` (status Begin);
//!   2. per branch: `SELECT global` by xid, then `BEGIN`, `SELECT … FROM lock_table WHERE
//!      row_key IN (…) ORDER BY status DESC`, `INSERT lock`, `COMMIT`, then `INSERT branch`;
//!   3. commit: `SELECT global`, `SELECT branches` by xid, `DELETE locks WHERE xid`,
//!      `UPDATE global SET status=AsyncCommitting WHERE xid AND status=Begin`;
//!   4. asynchronous commit: per branch `DELETE branch`, then `UPDATE global SET
//!      status=Committed WHERE xid AND status=AsyncCommitting`, `DELETE locks WHERE xid`,
//!      `DELETE global`.
//! * [`Shape::Batched`]: the same rows, but each step a coordinator must have durable before it
//!   answers (begin; each registration: lock check, lock row and branch row; commit: status and
//!   lock release; end: branch and global rows removed) is handed to a group-commit writer,
//!   which writes every step queued by the concurrent workers in one transaction with one
//!   multi-row statement per kind and one `COMMIT`: the best the database does for these rows.
//!
//! In both shapes step 4 (the end) is off the transaction's critical path, as the asynchronous
//! commit of AT is for the client: a worker starts its next transaction while the previous
//! one's end is written (at most one end outstanding per worker).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

use super::hist::Latency;
use super::proc::{self, Usage};
use super::report::Report;
use super::BenchError;
use crate::config::{DbStoreSettings, DbType};
use crate::store::db::{DbOptions, TableNames};
use crate::store::db::{DbPool, DbUrl, Dialect};

use crate::store::db::conn::{Arg, Failure, Pool};

/// How the probe writes the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One autocommit statement at a time, as seata-server does.
    Seata,
    /// Every worker's pending step in one transaction of multi-row statements per commit.
    Batched,
}

impl Shape {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Seata => "seata",
            Shape::Batched => "batched",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// The database (`mysql://…`, `postgres://…` or a JDBC URL).
    pub url: String,
    /// Workers, one transaction in flight each.
    pub conns: usize,
    /// Measured window.
    pub duration: Duration,
    /// Load before the window, not measured.
    pub warmup: Duration,
    /// Branches (each with one row lock) per transaction.
    pub branches: usize,
    /// How the rows are written.
    pub shape: Shape,
    /// Batched: writer tasks, each with its own connection.
    pub writers: usize,
    /// Batched: most steps per database transaction.
    pub max_batch: usize,
    /// Print progress once a second on stderr.
    pub progress: bool,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            url: "mysql://root@127.0.0.1:3306/seata_bench".into(),
            conns: 32,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            branches: 2,
            shape: Shape::Seata,
            writers: 1,
            max_batch: 256,
            progress: false,
        }
    }
}

/// Counters shared by the workers (and the writers).
#[derive(Default)]
struct Counters {
    /// SQL statements sent, `BEGIN`/`COMMIT` not included.
    statements: AtomicU64,
    /// Commits: write statements in autocommit mode plus explicit `COMMIT`s.
    commits: AtomicU64,
    /// Round trips to the database (statements, `BEGIN`, `COMMIT`).
    round_trips: AtomicU64,
    /// Transactions whose commit step is done.
    done: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
}

impl Counters {
    fn snapshot(&self) -> [u64; 3] {
        [
            self.statements.load(Ordering::Relaxed),
            self.commits.load(Ordering::Relaxed),
            self.round_trips.load(Ordering::Relaxed),
        ]
    }

    fn count(&self, statements: u64, commits: u64, round_trips: u64) {
        self.statements.fetch_add(statements, Ordering::Relaxed);
        self.commits.fetch_add(commits, Ordering::Relaxed);
        self.round_trips.fetch_add(round_trips, Ordering::Relaxed);
    }
}

/// The statements, rendered for the dialect and the table names.
struct Sql {
    dialect: Dialect,
    global: String,
    branch: String,
    lock: String,
}

const GLOBAL_COLUMNS: &str = "xid, transaction_id, status, application_id, transaction_service_group, \
     transaction_name, timeout, begin_time, application_data, gmt_create, gmt_modified";
const BRANCH_COLUMNS: &str = "branch_id, xid, transaction_id, resource_group_id, resource_id, branch_type, status, \
     client_id, application_data, gmt_create, gmt_modified";
const LOCK_COLUMNS: &str =
    "xid, transaction_id, branch_id, resource_id, table_name, pk, row_key, gmt_create, gmt_modified, status";

impl Sql {
    fn new(dialect: Dialect, names: &TableNames) -> Sql {
        Sql {
            dialect,
            global: names.global.to_string(),
            branch: names.branch.to_string(),
            lock: names.lock.to_string(),
        }
    }

    fn s(&self, sql: &str) -> String {
        self.dialect.sql(sql)
    }

    fn insert_globals(&self, n: usize) -> String {
        let now = self.dialect.now();
        let row = format!("(?, ?, ?, ?, ?, ?, ?, ?, ?, {now}, {now})");
        self.s(&format!("INSERT INTO {} ({GLOBAL_COLUMNS}) VALUES {}", self.global, vec![row; n].join(", ")))
    }

    fn insert_branches(&self, n: usize) -> String {
        let now = self.dialect.now_micros();
        let row = format!("(?, ?, ?, ?, ?, ?, ?, ?, ?, {now}, {now})");
        self.s(&format!("INSERT INTO {} ({BRANCH_COLUMNS}) VALUES {}", self.branch, vec![row; n].join(", ")))
    }

    fn insert_locks(&self, n: usize) -> String {
        let now = self.dialect.now();
        let row = format!("(?, ?, ?, ?, ?, ?, ?, {now}, {now}, 0)");
        self.s(&format!("INSERT INTO {} ({LOCK_COLUMNS}) VALUES {}", self.lock, vec![row; n].join(", ")))
    }

    fn check_locks(&self, n: usize) -> String {
        self.s(&format!(
            "SELECT xid, transaction_id, branch_id, resource_id, table_name, pk, row_key, status FROM {} \
             WHERE {} ORDER BY status DESC",
            self.lock,
            self.dialect.in_list("row_key", n)
        ))
    }

    fn select_global(&self) -> String {
        self.s(&format!(
            "SELECT xid, transaction_id, status, application_id, transaction_service_group, transaction_name, \
             timeout, begin_time, application_data, gmt_create, gmt_modified FROM {} WHERE xid = ?",
            self.global
        ))
    }

    fn select_branches(&self) -> String {
        self.s(&format!(
            "SELECT branch_id, xid, transaction_id, resource_group_id, resource_id, branch_type, status, client_id, \
             application_data, gmt_create, gmt_modified FROM {} WHERE xid = ? ORDER BY gmt_create",
            self.branch
        ))
    }

    /// `UPDATE global SET status = to WHERE xid IN (…) AND status = from`.
    fn set_status(&self, n: usize, from: u8, to: u8) -> String {
        let now = self.dialect.now();
        self.s(&format!(
            "UPDATE {} SET status = {to}, gmt_modified = {now} WHERE {} AND status = {from}",
            self.global,
            self.dialect.in_list("xid", n)
        ))
    }

    fn delete_by_xid(&self, table: &str, n: usize) -> String {
        self.s(&format!("DELETE FROM {table} WHERE {}", self.dialect.in_list("xid", n)))
    }

    fn delete_branch(&self) -> String {
        self.s(&format!("DELETE FROM {} WHERE xid = ? AND branch_id = ?", self.branch))
    }
}

/// Status codes (Seata's `GlobalStatus`).
const BEGIN: u8 = 1;
const ASYNC_COMMITTING: u8 = 8;
const COMMITTED: u8 = 9;

/// One transaction's identities and texts.
struct Tx {
    xid: String,
    transaction_id: i64,
    branches: Vec<BranchRows>,
}

struct BranchRows {
    branch_id: i64,
    resource_id: String,
    table: String,
    pk: String,
    row_key: String,
}

const APPLICATION_ID: &str = "seata-bench";
const GROUP: &str = "default_tx_group";
const CLIENT_ID: &str = "seata-bench:127.0.0.1:40000";

impl Tx {
    fn new(ids: &AtomicI64, worker: usize, seq: u64, branches: usize) -> Tx {
        let transaction_id = ids.fetch_add(1 + i64::try_from(branches).unwrap_or(0), Ordering::Relaxed);
        let branches = (0..branches)
            .map(|b| {
                let resource_id = format!("jdbc:mysql://127.0.0.1:3306/bench_{b}");
                let table = format!("bench_t{b}");
                // Unique across runs on the same tables (ids start from the clock).
                let branch_id = transaction_id + 1 + i64::try_from(b).unwrap_or(0);
                let pk = format!("w{worker}r{seq}i{branch_id}");
                let row_key = format!("{resource_id}^^^{table}^^^{pk}");
                BranchRows { branch_id, resource_id, table, pk, row_key }
            })
            .collect();
        Tx { xid: format!("127.0.0.1:8091:{transaction_id}"), transaction_id, branches }
    }

    fn global_args(&self) -> [Arg<'_>; 9] {
        [
            Arg::Str(&self.xid),
            Arg::I64(self.transaction_id),
            Arg::I16(i16::from(BEGIN)),
            Arg::Str(APPLICATION_ID),
            Arg::Str(GROUP),
            Arg::Str("bench"),
            Arg::I32(60_000),
            Arg::I64(now_ms()),
            Arg::OptStr(None),
        ]
    }

    fn branch_args<'a>(&'a self, b: &'a BranchRows) -> [Arg<'a>; 9] {
        [
            Arg::I64(b.branch_id),
            Arg::Str(&self.xid),
            Arg::I64(self.transaction_id),
            Arg::OptStr(None),
            Arg::Str(&b.resource_id),
            Arg::Str("AT"),
            Arg::I16(1), // Registered
            Arg::Str(CLIENT_ID),
            Arg::Str("{\"autoCommit\":false}"),
        ]
    }

    fn lock_args<'a>(&'a self, b: &'a BranchRows) -> [Arg<'a>; 7] {
        [
            Arg::Str(&self.xid),
            Arg::I64(self.transaction_id),
            Arg::I64(b.branch_id),
            Arg::Str(&b.resource_id),
            Arg::Str(&b.table),
            Arg::Str(&b.pk),
            Arg::Str(&b.row_key),
        ]
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What one worker measured.
#[derive(Default)]
struct WorkerResult {
    tx: Latency,
    steps: [Latency; 4],
    completed: u64,
    errors: u64,
}

const STEP_NAMES: [&str; 4] = ["begin", "register", "commit", "end"];

/// The measured window.
#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    to: Instant,
}

/// Connects, creates the tables if missing, runs the probe and reports.
pub async fn run(opts: ProbeOptions) -> Result<Report, BenchError> {
    if opts.conns == 0 || opts.writers == 0 || opts.max_batch == 0 {
        return Err(BenchError::Options("--conns, --writers and --max-batch must be at least 1".into()));
    }
    let url = DbUrl::parse(&opts.url).map_err(|e| BenchError::Options(format!("--url: {e}")))?;
    let settings = DbStoreSettings {
        db_type: match url.dialect {
            Dialect::MySql => DbType::MySql,
            Dialect::Postgres => DbType::PostgreSql,
        },
        url: opts.url.clone(),
        min_conn: 1,
        max_conn: u32::try_from(2 * opts.conns + opts.writers + 2).unwrap_or(u32::MAX),
        max_wait: Duration::from_secs(30),
        ..DbStoreSettings::default()
    };
    let db = |e: crate::store::StoreError| BenchError::Db(e.to_string());
    let pool = DbPool::connect(&settings, &DbOptions::default()).await.map_err(db)?;
    pool.ensure_schema(true).await.map_err(db)?;
    let result = run_on(&pool, &opts).await;
    pool.close().await;
    result
}

async fn run_on(pool: &DbPool, opts: &ProbeOptions) -> Result<Report, BenchError> {
    let sql = Arc::new(Sql::new(pool.dialect(), pool.tables()));
    let raw = pool.raw().clone();
    let counters = Arc::new(Counters::default());
    // Ids unique across runs on the same tables: milliseconds since the epoch, shifted.
    let ids = Arc::new(AtomicI64::new(now_ms().saturating_mul(1000)));
    let start = Instant::now();
    let window = Window { from: start + opts.warmup, to: start + opts.warmup + opts.duration };

    let (queue, writers) = match opts.shape {
        Shape::Seata => (None, Vec::new()),
        Shape::Batched => {
            let (tx, rx) = mpsc::channel::<Request>(opts.conns * 2 + 16);
            let rx = Arc::new(Mutex::new(rx));
            let writers: Vec<JoinHandle<()>> = (0..opts.writers)
                .map(|_| {
                    let w = Writer {
                        pool: raw.clone(),
                        sql: Arc::clone(&sql),
                        counters: Arc::clone(&counters),
                        max_batch: opts.max_batch,
                    };
                    let rx = Arc::clone(&rx);
                    tokio::spawn(async move { w.run(rx).await })
                })
                .collect();
            (Some(tx), writers)
        }
    };

    let progress = opts.progress.then(|| spawn_progress(Arc::clone(&counters), start, opts.warmup));
    let mut workers = Vec::new();
    for id in 0..opts.conns {
        let w = ProbeWorker {
            id,
            branches: opts.branches,
            pool: raw.clone(),
            sql: Arc::clone(&sql),
            counters: Arc::clone(&counters),
            ids: Arc::clone(&ids),
            queue: queue.clone(),
            window,
        };
        workers.push(tokio::spawn(w.run()));
    }
    drop(queue);

    tokio::time::sleep_until(window.from.into()).await;
    let (counts_a, usage_a, from) = (counters.snapshot(), proc::sample(None), Instant::now());
    tokio::time::sleep_until(window.to.into()).await;
    let (counts_b, usage_b, to) = (counters.snapshot(), proc::sample(None), Instant::now());
    let load_avg = proc::load_average();

    let mut tx = Latency::new();
    let mut steps: [Latency; 4] = Default::default();
    let mut report = Report {
        scenario: format!("db-probe-{}", opts.shape.name()),
        conns: opts.conns,
        branches: opts.branches,
        load: "closed loop".into(),
        warmup_s: opts.warmup.as_secs_f64(),
        ..Report::default()
    };
    for w in workers {
        let r = w.await.map_err(|e| BenchError::Task(e.to_string()))?;
        tx.merge(&r.tx);
        for (all, one) in steps.iter_mut().zip(&r.steps) {
            all.merge(one);
        }
        report.completed += r.completed;
        report.errors_total += r.errors;
    }
    counters.stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.await;
    }
    if let Some(p) = progress {
        p.abort();
    }
    if report.errors_total > 0 {
        report.errors.insert("db".into(), report.errors_total);
    }
    report.committed = report.completed;
    let window_len = to - from;
    report.window_s = proc::round2(window_len.as_secs_f64());
    report.tx_per_s = Some(proc::round2(report.completed as f64 / window_len.as_secs_f64().max(1e-9)));
    let s = tx.summary();
    (report.p50_us, report.p99_us, report.p999_us) = (s.p50_us, s.p99_us, s.p999_us);
    report.latency_us.insert("tx".into(), s);
    for (name, h) in STEP_NAMES.iter().zip(&steps) {
        if h.count() > 0 {
            report.latency_us.insert((*name).into(), h.summary());
        }
    }
    let per_tx = |i: usize| {
        let n = counts_b[i].saturating_sub(counts_a[i]) as f64;
        proc::round2(n / report.completed.max(1) as f64)
    };
    report.statements_per_tx = Some(per_tx(0));
    report.commits_per_tx = Some(per_tx(1));
    report.round_trips_per_tx = Some(per_tx(2));
    if let (Some(a), Some(b)) = (usage_a, usage_b) {
        report.client = Some(Usage::between(&a, &b, window_len, report.completed));
    }
    report.load_avg = load_avg;
    Ok(report)
}

fn spawn_progress(counters: Arc<Counters>, start: Instant, warmup: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at((start + Duration::from_secs(1)).into(), Duration::from_secs(1));
        let mut last = 0;
        while !counters.stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let now = counters.done.load(Ordering::Relaxed);
            let t = start.elapsed();
            let phase = if t < warmup { "warm-up" } else { "measuring" };
            eprintln!(
                "[{:>4.0}s] {phase:<9} {:>7} tx/s  errors {}",
                t.as_secs_f64(),
                now - last,
                counters.errors.load(Ordering::Relaxed)
            );
            last = now;
        }
    })
}

/// One step of a transaction, as the batched writer receives it.
enum Step {
    Begin(Arc<Tx>),
    Register(Arc<Tx>, usize),
    Commit(Arc<Tx>),
    End(Arc<Tx>),
}

type Request = (Step, oneshot::Sender<Result<(), String>>);

struct ProbeWorker {
    id: usize,
    branches: usize,
    pool: Pool,
    sql: Arc<Sql>,
    counters: Arc<Counters>,
    ids: Arc<AtomicI64>,
    queue: Option<mpsc::Sender<Request>>,
    window: Window,
}

/// The end of a transaction, written while the next one runs.
type Pending = JoinHandle<Result<Duration, String>>;

impl ProbeWorker {
    async fn run(self) -> WorkerResult {
        let mut res = WorkerResult::default();
        let mut seq = 0u64;
        let mut pending: Option<Pending> = None;
        let me = Arc::new(self);
        while Instant::now() < me.window.to {
            seq += 1;
            let tx = Arc::new(Tx::new(&me.ids, me.id, seq, me.branches));
            let started = Instant::now();
            let mut samples = [Duration::ZERO; 3];
            let mut registers = Vec::new();
            let outcome = match &me.queue {
                None => me.seata_critical(&tx, &mut samples, &mut registers).await,
                Some(q) => me.batched_critical(q, &tx, &mut samples, &mut registers).await,
            };
            let finished = Instant::now();
            // At most one end outstanding: wait for the previous one first.
            if let Some(p) = pending.take() {
                me.settle(p, &mut res).await;
            }
            if let Err(e) = outcome {
                me.failed(&mut res, &e);
                continue;
            }
            me.counters.done.fetch_add(1, Ordering::Relaxed);
            if finished >= me.window.from && finished <= me.window.to {
                res.completed += 1;
                res.tx.record(finished - started);
                res.steps[0].record(samples[0]);
                for r in &registers {
                    res.steps[1].record(*r);
                }
                res.steps[2].record(samples[2]);
            }
            let this = Arc::clone(&me);
            pending = Some(tokio::spawn(async move {
                let t = Instant::now();
                match &this.queue {
                    None => this.seata_end(&tx).await,
                    Some(q) => submit(q, Step::End(tx)).await,
                }
                .map(|()| t.elapsed())
            }));
        }
        if let Some(p) = pending.take() {
            me.settle(p, &mut res).await;
        }
        res
    }

    async fn settle(&self, p: Pending, res: &mut WorkerResult) {
        match p.await {
            Ok(Ok(d)) => res.steps[3].record(d),
            Ok(Err(e)) => self.failed(res, &e),
            Err(e) => self.failed(res, &e.to_string()),
        }
    }

    fn failed(&self, res: &mut WorkerResult, error: &str) {
        res.errors += 1;
        if self.counters.errors.fetch_add(1, Ordering::Relaxed) < 5 {
            eprintln!("db-probe: {error}");
        }
    }

    /// Seata: begin, registrations and commit, one autocommit statement at a time.
    async fn seata_critical(
        &self,
        tx: &Tx,
        samples: &mut [Duration; 3],
        registers: &mut Vec<Duration>,
    ) -> Result<(), String> {
        let (sql, pool, c) = (&self.sql, &self.pool, &self.counters);
        let e = |what: &str| {
            let what = what.to_owned();
            move |err: sqlx::Error| format!("{what}: {err}")
        };
        let t = Instant::now();
        pool.execute(&sql.insert_globals(1), &tx.global_args()).await.map_err(e("insert global"))?;
        c.count(1, 1, 1);
        samples[0] = t.elapsed();
        for b in &tx.branches {
            let t = Instant::now();
            // AbstractCore.branchRegister: the global session (without branches) first.
            pool.fetch_all(&sql.select_global(), &[Arg::Str(&tx.xid)]).await.map_err(e("select global"))?;
            // LockStoreDataBaseDAO.acquireLock: check and insert in one local transaction.
            let mut db = pool.begin(None).await.map_err(e("begin"))?;
            let keys = [b.row_key.as_str()];
            db.fetch_all(&sql.check_locks(1), &[Arg::StrList(&keys)]).await.map_err(e("check locks"))?;
            db.execute(&sql.insert_locks(1), &tx.lock_args(b)).await.map_err(e("insert lock"))?;
            db.commit().await.map_err(e("commit"))?;
            pool.execute(&sql.insert_branches(1), &tx.branch_args(b)).await.map_err(e("insert branch"))?;
            c.count(4, 2, 6);
            registers.push(t.elapsed());
        }
        let t = Instant::now();
        // DefaultCore.commit: the session with its branches, then closeAndClean (locks) and
        // the status change to AsyncCommitting.
        let xid = [tx.xid.as_str()];
        pool.fetch_all(&sql.select_global(), &[Arg::Str(&tx.xid)]).await.map_err(e("select global"))?;
        pool.fetch_all(&sql.select_branches(), &[Arg::Str(&tx.xid)]).await.map_err(e("select branches"))?;
        pool.execute(&sql.delete_by_xid(&sql.lock, 1), &[Arg::StrList(&xid)]).await.map_err(e("release locks"))?;
        let n = pool
            .execute(&sql.set_status(1, BEGIN, ASYNC_COMMITTING), &[Arg::StrList(&xid)])
            .await
            .map_err(e("update status"))?;
        c.count(4, 2, 4);
        samples[2] = t.elapsed();
        if n != 1 {
            return Err(format!("status update matched {n} rows"));
        }
        Ok(())
    }

    /// Seata's asynchronous commit of one session: branches removed one by one, the final
    /// status, the locks of the xid, the global row.
    async fn seata_end(&self, tx: &Tx) -> Result<(), String> {
        let (sql, pool, c) = (&self.sql, &self.pool, &self.counters);
        let e = |what: &'static str| move |err: sqlx::Error| format!("{what}: {err}");
        for b in &tx.branches {
            pool.execute(&sql.delete_branch(), &[Arg::Str(&tx.xid), Arg::I64(b.branch_id)])
                .await
                .map_err(e("delete branch"))?;
            c.count(1, 1, 1);
        }
        let xid = [tx.xid.as_str()];
        pool.execute(&sql.set_status(1, ASYNC_COMMITTING, COMMITTED), &[Arg::StrList(&xid)])
            .await
            .map_err(e("update status"))?;
        pool.execute(&sql.delete_by_xid(&sql.lock, 1), &[Arg::StrList(&xid)]).await.map_err(e("release locks"))?;
        pool.execute(&sql.delete_by_xid(&sql.global, 1), &[Arg::StrList(&xid)]).await.map_err(e("delete global"))?;
        c.count(3, 3, 3);
        Ok(())
    }

    async fn batched_critical(
        &self,
        q: &mpsc::Sender<Request>,
        tx: &Arc<Tx>,
        samples: &mut [Duration; 3],
        registers: &mut Vec<Duration>,
    ) -> Result<(), String> {
        let t = Instant::now();
        submit(q, Step::Begin(Arc::clone(tx))).await?;
        samples[0] = t.elapsed();
        for b in 0..tx.branches.len() {
            let t = Instant::now();
            submit(q, Step::Register(Arc::clone(tx), b)).await?;
            registers.push(t.elapsed());
        }
        let t = Instant::now();
        submit(q, Step::Commit(Arc::clone(tx))).await?;
        samples[2] = t.elapsed();
        Ok(())
    }
}

async fn submit(q: &mpsc::Sender<Request>, step: Step) -> Result<(), String> {
    let (tx, rx) = oneshot::channel();
    q.send((step, tx)).await.map_err(|_| "writer stopped".to_owned())?;
    rx.await.map_err(|_| "writer stopped".to_owned())?
}

/// The batched shape's group-commit writer.
struct Writer {
    pool: Pool,
    sql: Arc<Sql>,
    counters: Arc<Counters>,
    max_batch: usize,
}

impl Writer {
    async fn run(self, rx: Arc<Mutex<mpsc::Receiver<Request>>>) {
        loop {
            let mut batch = Vec::new();
            {
                let mut rx = rx.lock().await;
                match rx.recv().await {
                    Some(r) => batch.push(r),
                    None => return,
                }
                while batch.len() < self.max_batch {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
            }
            let (steps, answers): (Vec<Step>, Vec<_>) = batch.into_iter().unzip();
            // Several writers can deadlock on the indexes (gap locks): such a batch is run again.
            let mut attempt = 0;
            let result = loop {
                match self.write(&steps).await {
                    Err(e) if Failure::of(&e) == Failure::Contention && attempt < 10 => attempt += 1,
                    other => break other.map_err(|e| e.to_string()),
                }
            };
            for a in answers {
                let _ = a.send(result.clone());
            }
        }
    }

    /// Every step of the batch in one transaction: one multi-row statement per kind (in pieces
    /// of power-of-two sizes, so few statement shapes are prepared), one commit.
    async fn write(&self, steps: &[Step]) -> Result<(), sqlx::Error> {
        let sql = &self.sql;
        let mut begins = Vec::new();
        let mut registers = Vec::new();
        let mut commits = Vec::new();
        let mut ends = Vec::new();
        for s in steps {
            match s {
                Step::Begin(t) => begins.push(&**t),
                Step::Register(t, b) => {
                    if let Some(rows) = t.branches.get(*b) {
                        registers.push((&**t, rows));
                    }
                }
                Step::Commit(t) => commits.push(t.xid.as_str()),
                Step::End(t) => ends.push(t.xid.as_str()),
            }
        }
        let mut db = self.pool.begin(None).await?;
        let mut statements = 0u64;
        for chunk in pow2_chunks(&begins) {
            let args: Vec<Arg<'_>> = chunk.iter().flat_map(|t| t.global_args()).collect();
            db.execute(&sql.insert_globals(chunk.len()), &args).await?;
            statements += 1;
        }
        for chunk in pow2_chunks(&registers) {
            // The check of every requested row, then the lock rows and the branch rows.
            let keys: Vec<&str> = chunk.iter().map(|(_, b)| b.row_key.as_str()).collect();
            let held = db.fetch_all(&sql.check_locks(keys.len()), &[Arg::StrList(&keys)]).await?;
            if !held.is_empty() {
                return Err(sqlx::Error::Protocol(format!("{} requested row locks are held", held.len())));
            }
            let args: Vec<Arg<'_>> = chunk.iter().flat_map(|(t, b)| t.lock_args(b)).collect();
            db.execute(&sql.insert_locks(chunk.len()), &args).await?;
            let args: Vec<Arg<'_>> = chunk.iter().flat_map(|(t, b)| t.branch_args(b)).collect();
            db.execute(&sql.insert_branches(chunk.len()), &args).await?;
            statements += 3;
        }
        for chunk in pow2_chunks(&commits) {
            let n = db.execute(&sql.set_status(chunk.len(), BEGIN, ASYNC_COMMITTING), &[Arg::StrList(chunk)]).await?;
            if n != chunk.len() as u64 {
                return Err(sqlx::Error::Protocol(format!("status update matched {n} of {} rows", chunk.len())));
            }
            db.execute(&sql.delete_by_xid(&sql.lock, chunk.len()), &[Arg::StrList(chunk)]).await?;
            statements += 2;
        }
        for chunk in pow2_chunks(&ends) {
            db.execute(&sql.delete_by_xid(&sql.branch, chunk.len()), &[Arg::StrList(chunk)]).await?;
            db.execute(&sql.delete_by_xid(&sql.global, chunk.len()), &[Arg::StrList(chunk)]).await?;
            statements += 2;
        }
        db.commit().await?;
        self.counters.count(statements, 1, statements + 2);
        Ok(())
    }
}

/// `items` cut into pieces of power-of-two lengths, largest first (at most 256).
fn pow2_chunks<T>(items: &[T]) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let n = (1usize << (usize::BITS - 1 - rest.len().leading_zeros())).min(256);
        let (chunk, tail) = rest.split_at(n);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two() {
        let items: Vec<usize> = (0..300).collect();
        let lens: Vec<usize> = pow2_chunks(&items).iter().map(|c| c.len()).collect();
        assert_eq!(lens, vec![256, 32, 8, 4]);
        assert!(pow2_chunks::<u8>(&[]).is_empty());
    }

    #[test]
    fn rows_look_like_the_at_workload() {
        let ids = AtomicI64::new(100);
        let tx = Tx::new(&ids, 3, 7, 2);
        assert_eq!(tx.xid, "127.0.0.1:8091:100");
        assert_eq!(tx.branches.len(), 2);
        assert_eq!(tx.branches[1].branch_id, 102);
        assert_eq!(tx.branches[0].row_key, "jdbc:mysql://127.0.0.1:3306/bench_0^^^bench_t0^^^w3r7i101");
        assert_eq!(ids.load(Ordering::Relaxed), 103);
    }

    #[test]
    fn statements_render_for_both_dialects() {
        let names = TableNames::default();
        let my = Sql::new(Dialect::MySql, &names);
        assert_eq!(my.insert_locks(2).matches("NOW(), NOW(), 0)").count(), 2);
        assert_eq!(
            my.set_status(2, BEGIN, ASYNC_COMMITTING),
            "UPDATE global_table SET status = 8, gmt_modified = NOW() WHERE xid IN (?, ?) AND status = 1"
        );
        let pg = Sql::new(Dialect::Postgres, &names);
        assert_eq!(pg.delete_by_xid("lock_table", 4), "DELETE FROM lock_table WHERE xid = ANY($1)");
        assert!(pg
            .insert_branches(2)
            .ends_with("($10, $11, $12, $13, $14, $15, $16, $17, $18, clock_timestamp(), clock_timestamp())"));
    }
}
