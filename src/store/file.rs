//! The embedded default store (`store.mode: file`): one SQLite database, written by one
//! group-commit writer.
//!
//! Layout: `<dir>/sessions.sqlite` plus SQLite's `-wal` and `-shm` files next to it. The database
//! is ours (nobody else shares it), so the schema is created on open and versioned with
//! `PRAGMA user_version`; a database written by a newer schema version is refused rather than
//! misread.
//!
//! Durability: WAL journal with `synchronous=FULL`, so every commit fsyncs the WAL before it
//! returns; a request is answered only after the commit of its batch, so an acknowledged change
//! survives `kill -9` and power loss. Concurrent requests share a commit through
//! [`GroupCommit`]; each request runs in its own `SAVEPOINT`, so a failed compare-and-set or
//! insert is undone alone and the rest of the batch commits.
//!
//! Reads use a separate pool of read-only connections; in WAL mode they never block the writer
//! and see only committed data.
//!
//! Registration order: both tables have an `INTEGER PRIMARY KEY` sequence (`seq`). SQLite gives
//! a new row a key larger than every key in the table, so ordering by `seq` is insertion order
//! (begin order for globals, registration order for branches), and `VACUUM` keeps it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use seata_protocol::{BranchStatus, BranchType, GlobalStatus};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteLockingMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row};

use super::group_commit::{BatchExecutor, BatchResult, GroupCommit, GroupCommitOptions};
use super::{BranchRecord, GlobalRecord, SessionStore, StoreError, StoreLimits, StoreOp, StoredSession, WriteStats};

/// Version of the schema below, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

/// The tables mirror Seata's `global_table` and `branch_table` (same column names, statuses as
/// codes, branch type by name), plus `seq` for order and `lock_key` on branches. Times are epoch
/// microseconds. `STRICT` makes SQLite refuse a value of the wrong type instead of storing it.
const SCHEMA: &str = "
CREATE TABLE global_table (
    seq                       INTEGER PRIMARY KEY,
    xid                       TEXT    NOT NULL UNIQUE,
    transaction_id            INTEGER NOT NULL,
    status                    INTEGER NOT NULL,
    application_id            TEXT    NOT NULL,
    transaction_service_group TEXT    NOT NULL,
    transaction_name          TEXT    NOT NULL,
    timeout                   INTEGER NOT NULL,
    begin_time                INTEGER NOT NULL,
    application_data          TEXT,
    gmt_create                INTEGER NOT NULL,
    gmt_modified              INTEGER NOT NULL
) STRICT;
CREATE TABLE branch_table (
    seq               INTEGER PRIMARY KEY,
    branch_id         INTEGER NOT NULL UNIQUE,
    xid               TEXT    NOT NULL,
    transaction_id    INTEGER NOT NULL,
    resource_group_id TEXT,
    resource_id       TEXT    NOT NULL,
    branch_type       TEXT    NOT NULL,
    status            INTEGER NOT NULL,
    client_id         TEXT    NOT NULL,
    application_data  TEXT,
    lock_key          TEXT,
    gmt_create        INTEGER NOT NULL,
    gmt_modified      INTEGER NOT NULL
) STRICT;
CREATE INDEX idx_branch_xid ON branch_table (xid, seq);
";

const GLOBAL_COLUMNS: &str = "xid, transaction_id, status, application_id, \
    transaction_service_group, transaction_name, timeout, begin_time, application_data";
const BRANCH_COLUMNS: &str = "branch_id, xid, transaction_id, resource_group_id, resource_id, \
    branch_type, status, client_id, application_data, lock_key";

/// Settings of the embedded store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStoreOptions {
    /// Size limits checked before writing.
    pub limits: StoreLimits,
    /// Writer queue and batch sizes.
    pub group_commit: GroupCommitOptions,
    /// How long a statement waits for a lock held by another connection.
    pub busy_timeout: Duration,
    /// Connections in the read pool.
    pub read_connections: u32,
    /// Cap on the database file size; writes that would grow it further fail with
    /// [`StoreError::Unavailable`] ("database or disk is full"). `None`: no cap but the disk.
    pub max_size_bytes: Option<u64>,
}

impl Default for FileStoreOptions {
    fn default() -> Self {
        FileStoreOptions {
            limits: StoreLimits::default(),
            group_commit: GroupCommitOptions::default(),
            busy_timeout: Duration::from_secs(5),
            read_connections: 4,
            max_size_bytes: None,
        }
    }
}

/// The embedded session store: SQLite in WAL mode, one group-commit writer, a read pool.
pub struct FileStore {
    path: PathBuf,
    writer: GroupCommit,
    readers: SqlitePool,
    limits: StoreLimits,
    /// Holds the directory lock until `close` (or drop). A tokio mutex: `close` awaits while
    /// holding it.
    owner: tokio::sync::Mutex<Option<SqliteConnection>>,
}

impl FileStore {
    /// Name of the database file inside the store directory.
    pub const DB_FILE_NAME: &'static str = "sessions.sqlite";

    /// Name of the lock file inside the store directory: held exclusively by the open store, so
    /// that a second server pointed at the same directory fails to start instead of writing
    /// sessions it does not own.
    pub const LOCK_FILE_NAME: &'static str = "sessions.lock";

    /// Opens (creating if needed) the store in `dir`, creating the directory too.
    pub async fn open(dir: &Path, options: FileStoreOptions) -> Result<Self, StoreError> {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| StoreError::unavailable("creating the store directory", sqlx::Error::Io(e)))?;
        let owner = lock_dir(&dir.join(Self::LOCK_FILE_NAME), options.busy_timeout).await?;
        let path = dir.join(Self::DB_FILE_NAME);
        let base =
            SqliteConnectOptions::new().filename(&path).busy_timeout(options.busy_timeout).disable_statement_logging();

        let conn = match open_writer(&base, options.max_size_bytes).await {
            Ok(conn) => conn,
            Err(e) => {
                let _ = owner.close().await;
                return Err(e);
            }
        };
        let readers = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .min_connections(0)
            .connect_lazy_with(base.read_only(true));

        let writer = GroupCommit::spawn(SqliteExecutor { conn: Some(conn) }, options.group_commit);
        tracing::info!(path = %path.display(), "session store opened");
        Ok(FileStore { path, writer, readers, limits: options.limits, owner: tokio::sync::Mutex::new(Some(owner)) })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer's counters (batches, requests, batch sizes).
    pub fn stats(&self) -> WriteStats {
        self.writer.stats()
    }
}

fn read_error(context: &'static str, e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolClosed => StoreError::Closed,
        e => StoreError::unavailable(context, e),
    }
}

/// Takes the directory lock: an exclusive lock on a small SQLite file, kept until the returned
/// connection closes (`locking_mode=EXCLUSIVE` never releases a lock once taken). The operating
/// system drops it when the process dies, so a crash leaves no stale lock behind.
async fn lock_dir(path: &Path, wait: Duration) -> Result<SqliteConnection, StoreError> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .locking_mode(SqliteLockingMode::Exclusive)
        .busy_timeout(wait)
        .disable_statement_logging()
        .connect()
        .await
        .map_err(|e| StoreError::unavailable("opening the store lock file", e))?;
    let locked = sqlx::Executor::execute(&mut conn, "BEGIN EXCLUSIVE; COMMIT").await;
    match locked {
        Ok(_) => Ok(conn),
        Err(e) => {
            let _ = conn.close().await;
            Err(StoreError::unavailable("locking the store directory (is another server using it?)", e))
        }
    }
}

/// Opens the write connection (creating the file), with the durability settings, the schema
/// checked or created and the size cap applied.
async fn open_writer(base: &SqliteConnectOptions, max_size: Option<u64>) -> Result<SqliteConnection, StoreError> {
    let mut conn = base
        .clone()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .connect()
        .await
        .map_err(|e| StoreError::unavailable("opening the database", e))?;
    match prepare(&mut conn, max_size).await {
        Ok(()) => Ok(conn),
        Err(e) => {
            let _ = conn.close().await;
            Err(e)
        }
    }
}

/// Creates or checks the schema and applies per-connection settings of the writer.
async fn prepare(conn: &mut SqliteConnection, max_size: Option<u64>) -> Result<(), StoreError> {
    let fail = |context| move |e| StoreError::unavailable(context, e);
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .map_err(fail("reading the journal mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Still durable (rollback journal, synchronous=FULL), only slower.
        tracing::warn!(journal_mode = %mode, "the file system does not support WAL");
    }
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *conn)
        .await
        .map_err(fail("reading the schema version"))?;
    match version {
        0 => {
            let mut tx = conn.begin().await.map_err(fail("creating the schema"))?;
            sqlx::raw_sql(SCHEMA).execute(&mut *tx).await.map_err(fail("creating the schema"))?;
            sqlx::raw_sql(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
                .execute(&mut *tx)
                .await
                .map_err(fail("creating the schema"))?;
            tx.commit().await.map_err(fail("creating the schema"))?;
        }
        SCHEMA_VERSION => {}
        other => {
            return Err(StoreError::Corrupt {
                location: "the database header".to_owned(),
                reason: format!("schema version {other}; this server knows version {SCHEMA_VERSION}"),
            });
        }
    }
    if let Some(bytes) = max_size {
        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&mut *conn)
            .await
            .map_err(fail("reading the page size"))?;
        let page_size = u64::try_from(page_size).unwrap_or(4096).max(1);
        let pages = (bytes / page_size).max(1);
        sqlx::raw_sql(&format!("PRAGMA max_page_count = {pages}"))
            .execute(&mut *conn)
            .await
            .map_err(fail("limiting the database size"))?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl SessionStore for FileStore {
    async fn apply(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        self.writer.ensure_open()?;
        self.limits.check(&ops)?;
        if ops.is_empty() {
            return Ok(());
        }
        self.writer.submit(ops).await
    }

    async fn load_all(&self) -> Result<Vec<StoredSession>, StoreError> {
        let mut tx = self.readers.begin().await.map_err(|e| read_error("starting a read", e))?;
        let globals = sqlx::query(&format!("SELECT {GLOBAL_COLUMNS} FROM global_table ORDER BY seq"))
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| read_error("reading global sessions", e))?;
        let branches = sqlx::query(&format!("SELECT {BRANCH_COLUMNS} FROM branch_table ORDER BY seq"))
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| read_error("reading branch sessions", e))?;
        tx.commit().await.map_err(|e| read_error("ending a read", e))?;

        let mut by_xid: std::collections::HashMap<String, Vec<BranchRecord>> = std::collections::HashMap::new();
        for row in &branches {
            let branch = decode_branch(row)?;
            by_xid.entry(branch.xid.clone()).or_default().push(branch);
        }
        let mut sessions = Vec::with_capacity(globals.len());
        for row in &globals {
            let global = decode_global(row)?;
            let branches = by_xid.remove(&global.xid).unwrap_or_default();
            sessions.push(StoredSession { global, branches });
        }
        if !by_xid.is_empty() {
            tracing::warn!(globals = by_xid.len(), "branch rows without a global row ignored");
        }
        Ok(sessions)
    }

    async fn load(&self, xid: &str) -> Result<Option<StoredSession>, StoreError> {
        let mut tx = self.readers.begin().await.map_err(|e| read_error("starting a read", e))?;
        let global = sqlx::query(&format!("SELECT {GLOBAL_COLUMNS} FROM global_table WHERE xid = ?"))
            .bind(xid)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| read_error("reading a global session", e))?;
        let Some(global) = global else {
            return Ok(None);
        };
        let branches = sqlx::query(&format!("SELECT {BRANCH_COLUMNS} FROM branch_table WHERE xid = ? ORDER BY seq"))
            .bind(xid)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| read_error("reading branch sessions", e))?;
        tx.commit().await.map_err(|e| read_error("ending a read", e))?;
        Ok(Some(StoredSession {
            global: decode_global(&global)?,
            branches: branches.iter().map(decode_branch).collect::<Result<_, _>>()?,
        }))
    }

    async fn close(&self) -> Result<(), StoreError> {
        let result = self.writer.close().await;
        self.readers.close().await;
        if let Some(owner) = self.owner.lock().await.take() {
            if let Err(e) = owner.close().await {
                tracing::warn!(error = %e, "releasing the store lock failed");
            }
        }
        if result.is_ok() {
            tracing::info!(path = %self.path.display(), "session store closed");
        }
        result
    }

    fn write_stats(&self) -> Option<WriteStats> {
        Some(self.writer.stats())
    }
}

/// The write side: owns the only write connection; driven by the group-commit writer.
struct SqliteExecutor {
    /// `None` once closed.
    conn: Option<SqliteConnection>,
}

#[async_trait::async_trait]
impl BatchExecutor for SqliteExecutor {
    async fn execute(&mut self, batch: &[Vec<StoreOp>]) -> BatchResult {
        let conn = self.conn.as_mut().ok_or(StoreError::Closed)?;
        let now = now_micros();
        // Requests already answered: those that aborted an earlier attempt of this batch.
        let mut settled: Vec<Option<Result<(), StoreError>>> = vec![None; batch.len()];
        let mut attempts = 0;
        loop {
            attempts += 1;
            match attempt(conn, batch, &settled, now).await? {
                Attempt::Committed(results) => {
                    for (slot, result) in settled.iter_mut().filter(|s| s.is_none()).zip(results) {
                        *slot = Some(result);
                    }
                    return Ok(settled.into_iter().map(|r| r.unwrap_or(Err(StoreError::WriterStopped))).collect());
                }
                Attempt::Aborted { request, error } => {
                    // That request took the whole transaction down (SQLite rolls back the
                    // transaction on some errors, e.g. a full disk): answer it, redo the rest.
                    if attempts >= MAX_ATTEMPTS {
                        return Err(error);
                    }
                    tracing::warn!(error = %error, "a request aborted its batch; retrying without it");
                    if let Some(slot) = settled.get_mut(request) {
                        *slot = Some(Err(error));
                    }
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), StoreError> {
        match self.conn.take() {
            Some(conn) => conn.close().await.map_err(|e| StoreError::unavailable("closing the database", e)),
            None => Ok(()),
        }
    }
}

/// Attempts to run one batch before giving up on the rest: each attempt drops the request that
/// aborted the previous one, so a single bad request costs its neighbours a retry, not an error.
const MAX_ATTEMPTS: usize = 4;

/// How one attempt at a batch ended.
enum Attempt {
    /// Committed: one result per request that was not settled before, in order.
    Committed(Vec<Result<(), StoreError>>),
    /// Request `request` failed with `error` and could not be undone alone; the transaction was
    /// rolled back and nothing of this attempt is written.
    Aborted { request: usize, error: StoreError },
}

/// Runs the requests of `batch` not yet `settled` in one transaction, each in a savepoint.
/// `Err`: the transaction could not be begun or committed; nothing of it is written.
async fn attempt(
    conn: &mut SqliteConnection,
    batch: &[Vec<StoreOp>],
    settled: &[Option<Result<(), StoreError>>],
    now: i64,
) -> Result<Attempt, StoreError> {
    // IMMEDIATE takes the write lock now rather than at the first write.
    exec(conn, "BEGIN IMMEDIATE", "starting a transaction").await?;
    let mut results = Vec::with_capacity(batch.len());
    for (index, request) in batch.iter().enumerate() {
        if settled.get(index).is_some_and(Option::is_some) {
            continue;
        }
        match run_request(conn, request, now).await {
            Ok(Ok(result)) => results.push(result),
            Ok(Err(error)) => {
                rollback(conn).await;
                return Ok(Attempt::Aborted { request: index, error });
            }
            Err(e) => {
                rollback(conn).await;
                return Err(e);
            }
        }
    }
    if let Err(e) = exec(conn, "COMMIT", "committing").await {
        // A failed COMMIT can leave the transaction open.
        rollback(conn).await;
        return Err(e);
    }
    Ok(Attempt::Committed(results))
}

/// Runs one request inside a savepoint.
///
/// * `Ok(Ok(result))`: the request's own result; if it failed, it was undone alone.
/// * `Ok(Err(error))`: the request failed with `error` and could not be undone alone (SQLite had
///   already rolled back the whole transaction, e.g. after a full disk).
/// * `Err`: the savepoint itself failed; the whole batch fails.
async fn run_request(
    conn: &mut SqliteConnection,
    ops: &[StoreOp],
    now: i64,
) -> Result<Result<Result<(), StoreError>, StoreError>, StoreError> {
    exec(conn, "SAVEPOINT request", "starting a request").await?;
    let mut outcome = Ok(());
    for op in ops {
        outcome = apply_op(conn, op, now).await;
        if outcome.is_err() {
            break;
        }
    }
    match outcome {
        Ok(()) => {
            exec(conn, "RELEASE request", "finishing a request").await?;
            Ok(Ok(Ok(())))
        }
        Err(error) => {
            let mut undone = exec(conn, "ROLLBACK TO request", "undoing a request").await;
            if undone.is_ok() {
                undone = exec(conn, "RELEASE request", "undoing a request").await;
            }
            match undone {
                Ok(()) => Ok(Ok(Err(error))),
                Err(_) => Ok(Err(error)),
            }
        }
    }
}

async fn apply_op(conn: &mut SqliteConnection, op: &StoreOp, now: i64) -> Result<(), StoreError> {
    let write = |context| move |e| StoreError::unavailable(context, e);
    match op {
        StoreOp::InsertGlobal(g) => {
            let done = sqlx::query(
                "INSERT INTO global_table (xid, transaction_id, status, application_id, \
                 transaction_service_group, transaction_name, timeout, begin_time, \
                 application_data, gmt_create, gmt_modified) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (xid) DO NOTHING",
            )
            .bind(&g.xid)
            .bind(g.transaction_id)
            .bind(i64::from(g.status.code()))
            .bind(&g.application_id)
            .bind(&g.transaction_service_group)
            .bind(&g.transaction_name)
            .bind(g.timeout_ms)
            .bind(g.begin_time_ms)
            .bind(g.application_data.as_deref())
            .bind(now)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(write("inserting a global session"))?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Duplicate { xid: g.xid.clone(), branch_id: None });
            }
        }
        StoreOp::UpdateGlobalStatus { xid, expected, status } => {
            let done = match expected {
                Some(expected) => sqlx::query(
                    "UPDATE global_table SET status = ?, gmt_modified = ? \
                     WHERE xid = ? AND status = ?",
                )
                .bind(i64::from(status.code()))
                .bind(now)
                .bind(xid)
                .bind(i64::from(expected.code())),
                None => sqlx::query("UPDATE global_table SET status = ?, gmt_modified = ? WHERE xid = ?")
                    .bind(i64::from(status.code()))
                    .bind(now)
                    .bind(xid),
            }
            .execute(&mut *conn)
            .await
            .map_err(write("updating a global status"))?;
            if done.rows_affected() == 0 {
                return Err(global_miss(conn, xid, *expected).await);
            }
        }
        StoreOp::RemoveGlobal { xid } => {
            sqlx::query("DELETE FROM branch_table WHERE xid = ?")
                .bind(xid)
                .execute(&mut *conn)
                .await
                .map_err(write("removing branch sessions"))?;
            sqlx::query("DELETE FROM global_table WHERE xid = ?")
                .bind(xid)
                .execute(&mut *conn)
                .await
                .map_err(write("removing a global session"))?;
        }
        StoreOp::InsertBranch(b) => {
            // One statement on the happy path: inserts only if the global row exists and the
            // branch id is free; a miss is explained afterwards.
            let done = sqlx::query(
                "INSERT INTO branch_table (branch_id, xid, transaction_id, resource_group_id, \
                 resource_id, branch_type, status, client_id, application_data, lock_key, \
                 gmt_create, gmt_modified) \
                 SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? \
                 WHERE EXISTS (SELECT 1 FROM global_table WHERE xid = ?) \
                 ON CONFLICT (branch_id) DO NOTHING",
            )
            .bind(b.branch_id)
            .bind(&b.xid)
            .bind(b.transaction_id)
            .bind(b.resource_group_id.as_deref())
            .bind(&b.resource_id)
            .bind(b.branch_type.name())
            .bind(i64::from(b.status.code()))
            .bind(&b.client_id)
            .bind(b.application_data.as_deref())
            .bind(b.lock_key.as_deref())
            .bind(now)
            .bind(now)
            .bind(&b.xid)
            .execute(&mut *conn)
            .await
            .map_err(write("inserting a branch session"))?;
            if done.rows_affected() == 0 {
                let global: Option<i64> = sqlx::query_scalar("SELECT 1 FROM global_table WHERE xid = ?")
                    .bind(&b.xid)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(write("reading a global session"))?;
                return Err(match global {
                    None => StoreError::NotFound { xid: b.xid.clone(), branch_id: None },
                    Some(_) => StoreError::Duplicate { xid: b.xid.clone(), branch_id: Some(b.branch_id) },
                });
            }
        }
        StoreOp::UpdateBranch { xid, branch_id, status, application_data } => {
            let done = sqlx::query(
                "UPDATE branch_table SET status = ?, \
                 application_data = COALESCE(?, application_data), gmt_modified = ? \
                 WHERE xid = ? AND branch_id = ?",
            )
            .bind(i64::from(status.code()))
            .bind(application_data.as_deref())
            .bind(now)
            .bind(xid)
            .bind(*branch_id)
            .execute(&mut *conn)
            .await
            .map_err(write("updating a branch session"))?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound { xid: xid.clone(), branch_id: Some(*branch_id) });
            }
        }
        StoreOp::RemoveBranch { xid, branch_id } => {
            sqlx::query("DELETE FROM branch_table WHERE xid = ? AND branch_id = ?")
                .bind(xid)
                .bind(*branch_id)
                .execute(&mut *conn)
                .await
                .map_err(write("removing a branch session"))?;
        }
    }
    Ok(())
}

/// Why an update of a global status touched no row: the xid is absent, or (compare-and-set)
/// another status is stored.
async fn global_miss(conn: &mut SqliteConnection, xid: &str, expected: Option<GlobalStatus>) -> StoreError {
    let stored: Result<Option<i64>, _> =
        sqlx::query_scalar("SELECT status FROM global_table WHERE xid = ?").bind(xid).fetch_optional(&mut *conn).await;
    match (stored, expected) {
        (Err(e), _) => StoreError::unavailable("reading a global status", e),
        (Ok(None), _) | (Ok(Some(_)), None) => StoreError::NotFound { xid: xid.to_owned(), branch_id: None },
        (Ok(Some(code)), Some(expected)) => match decode_code(code).and_then(|c| GlobalStatus::try_from(c).ok()) {
            Some(actual) => StoreError::Conflict { xid: xid.to_owned(), expected, actual },
            None => corrupt_global(xid, format!("unknown global status {code}")),
        },
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str, context: &'static str) -> Result<(), StoreError> {
    // `Executor::execute` returns a boxed future; `raw_sql(..).execute(..)` would make the
    // callers' futures fail the `Send` check (rust-lang/rust#102211).
    sqlx::Executor::execute(conn, sql).await.map(drop).map_err(|e| StoreError::unavailable(context, e))
}

/// Ends a failed transaction. Errors are only logged: SQLite may already have rolled it back.
async fn rollback(conn: &mut SqliteConnection) {
    if let Err(e) = sqlx::Executor::execute(conn, "ROLLBACK").await {
        tracing::debug!(error = %e, "rollback after a failed batch");
    }
}

fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn decode_code(code: i64) -> Option<u8> {
    u8::try_from(code).ok()
}

fn corrupt_global(xid: &str, reason: String) -> StoreError {
    StoreError::Corrupt { location: format!("global_table xid={xid}"), reason }
}

fn decode_global(row: &SqliteRow) -> Result<GlobalRecord, StoreError> {
    let xid: String = row
        .try_get("xid")
        .map_err(|e| StoreError::Corrupt { location: "global_table".to_owned(), reason: e.to_string() })?;
    let bad = |e: sqlx::Error| corrupt_global(&xid, e.to_string());
    let code: i64 = row.try_get("status").map_err(bad)?;
    let status = decode_code(code)
        .and_then(|c| GlobalStatus::try_from(c).ok())
        .ok_or_else(|| corrupt_global(&xid, format!("unknown global status {code}")))?;
    let timeout: i64 = row.try_get("timeout").map_err(bad)?;
    let timeout_ms =
        i32::try_from(timeout).map_err(|_| corrupt_global(&xid, format!("timeout {timeout} out of range")))?;
    Ok(GlobalRecord {
        transaction_id: row.try_get("transaction_id").map_err(bad)?,
        status,
        application_id: row.try_get("application_id").map_err(bad)?,
        transaction_service_group: row.try_get("transaction_service_group").map_err(bad)?,
        transaction_name: row.try_get("transaction_name").map_err(bad)?,
        timeout_ms,
        begin_time_ms: row.try_get("begin_time").map_err(bad)?,
        application_data: row.try_get("application_data").map_err(bad)?,
        xid,
    })
}

fn decode_branch(row: &SqliteRow) -> Result<BranchRecord, StoreError> {
    let branch_id: i64 = row
        .try_get("branch_id")
        .map_err(|e| StoreError::Corrupt { location: "branch_table".to_owned(), reason: e.to_string() })?;
    let corrupt =
        |reason: String| StoreError::Corrupt { location: format!("branch_table branch_id={branch_id}"), reason };
    let bad = |e: sqlx::Error| corrupt(e.to_string());
    let code: i64 = row.try_get("status").map_err(bad)?;
    let status = decode_code(code)
        .and_then(|c| BranchStatus::try_from(c).ok())
        .ok_or_else(|| corrupt(format!("unknown branch status {code}")))?;
    let type_name: String = row.try_get("branch_type").map_err(bad)?;
    let branch_type =
        BranchType::from_name(&type_name).ok_or_else(|| corrupt(format!("unknown branch type {type_name:?}")))?;
    Ok(BranchRecord {
        branch_id,
        xid: row.try_get("xid").map_err(bad)?,
        transaction_id: row.try_get("transaction_id").map_err(bad)?,
        resource_group_id: row.try_get("resource_group_id").map_err(bad)?,
        resource_id: row.try_get("resource_id").map_err(bad)?,
        branch_type,
        status,
        client_id: row.try_get("client_id").map_err(bad)?,
        application_data: row.try_get("application_data").map_err(bad)?,
        lock_key: row.try_get("lock_key").map_err(bad)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract::{new_branch_id, new_xid, sample_branch, sample_global};

    /// An executor on a fresh database, driven directly so that the batch is known exactly.
    async fn executor(dir: &Path, max_size: Option<u64>) -> SqliteExecutor {
        let base = SqliteConnectOptions::new().filename(dir.join(FileStore::DB_FILE_NAME));
        let conn = open_writer(&base, max_size).await.expect("open");
        SqliteExecutor { conn: Some(conn) }
    }

    async fn run(exec: &mut SqliteExecutor, batch: &[Vec<StoreOp>]) -> Vec<Result<(), StoreError>> {
        exec.execute(batch).await.expect("batch commits")
    }

    fn set_status(xid: &str, expected: GlobalStatus, status: GlobalStatus) -> Vec<StoreOp> {
        vec![StoreOp::UpdateGlobalStatus { xid: xid.to_owned(), expected: Some(expected), status }]
    }

    #[tokio::test]
    async fn a_refused_request_is_undone_alone_and_its_neighbours_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut exec = executor(dir.path(), None).await;
        let [a, b, c] = [new_xid("a"), new_xid("b"), new_xid("c")];
        let inserts: Vec<_> = [&a, &b, &c].iter().map(|x| vec![StoreOp::InsertGlobal(sample_global(x))]).collect();
        assert!(run(&mut exec, &inserts).await.iter().all(Result::is_ok));

        let orphan = new_xid("orphan");
        let batch = vec![
            set_status(&a, GlobalStatus::Begin, GlobalStatus::Committing),
            // Its first op succeeds, its second conflicts: the first must be undone too.
            vec![
                StoreOp::InsertBranch(sample_branch(&b, new_branch_id())),
                StoreOp::UpdateGlobalStatus {
                    xid: b.clone(),
                    expected: Some(GlobalStatus::Rollbacking),
                    status: GlobalStatus::Rollbacked,
                },
            ],
            vec![StoreOp::InsertBranch(sample_branch(&orphan, new_branch_id()))],
            set_status(&c, GlobalStatus::Begin, GlobalStatus::Rollbacking),
        ];
        let results = run(&mut exec, &batch).await;
        assert!(results[0].is_ok(), "{results:?}");
        assert!(matches!(results[1], Err(StoreError::Conflict { .. })), "{results:?}");
        assert!(matches!(results[2], Err(StoreError::NotFound { .. })), "{results:?}");
        assert!(results[3].is_ok(), "{results:?}");

        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM branch_table")
            .fetch_one(exec.conn.as_mut().expect("open"))
            .await
            .expect("count");
        assert_eq!(count, 0);
        let statuses: Vec<i64> = sqlx::query_scalar("SELECT status FROM global_table ORDER BY seq")
            .fetch_all(exec.conn.as_mut().expect("open"))
            .await
            .expect("statuses");
        assert_eq!(statuses, vec![2, 1, 4]);
        exec.close().await.expect("close");
    }

    #[tokio::test]
    async fn a_request_that_aborts_the_transaction_is_dropped_and_the_rest_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut exec = executor(dir.path(), Some(256 * 1024)).await;
        let small: Vec<String> = (0..4).map(|i| new_xid(&format!("s{i}"))).collect();
        let inserts: Vec<_> = small.iter().map(|x| vec![StoreOp::InsertGlobal(sample_global(x))]).collect();
        assert!(run(&mut exec, &inserts).await.iter().all(Result::is_ok));
        let big = |label: &str| {
            let mut global = sample_global(&new_xid(label));
            global.application_data = Some("x".repeat(60_000));
            vec![StoreOp::InsertGlobal(global)]
        };
        // Fill the database up.
        while run(&mut exec, &[big("fill")]).await[0].is_ok() {}

        // SQLite rolls back the whole transaction when the disk is full.
        let batch = vec![
            set_status(&small[0], GlobalStatus::Begin, GlobalStatus::Committing),
            big("big1"),
            set_status(&small[1], GlobalStatus::Begin, GlobalStatus::Committing),
            set_status(&small[2], GlobalStatus::Rollbacking, GlobalStatus::Committing),
            big("big2"),
            set_status(&small[3], GlobalStatus::Begin, GlobalStatus::Committing),
        ];
        let results = run(&mut exec, &batch).await;
        assert!(results[0].is_ok(), "{results:?}");
        assert!(matches!(results[1], Err(StoreError::Unavailable { .. })), "{results:?}");
        assert!(results[2].is_ok(), "{results:?}");
        assert!(matches!(results[3], Err(StoreError::Conflict { .. })), "{results:?}");
        assert!(matches!(results[4], Err(StoreError::Unavailable { .. })), "{results:?}");
        assert!(results[5].is_ok(), "{results:?}");

        let committing: i64 = sqlx::query_scalar("SELECT count(*) FROM global_table WHERE status = 2")
            .fetch_one(exec.conn.as_mut().expect("open"))
            .await
            .expect("count");
        assert_eq!(committing, 3);
        exec.close().await.expect("close");
    }

    #[tokio::test]
    async fn a_batch_of_failing_requests_gives_up_after_a_few_attempts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut exec = executor(dir.path(), Some(128 * 1024)).await;
        let big = || {
            let mut global = sample_global(&new_xid("big"));
            global.application_data = Some("x".repeat(60_000));
            vec![StoreOp::InsertGlobal(global)]
        };
        while run(&mut exec, &[big()]).await[0].is_ok() {}
        let batch: Vec<_> = (0..10).map(|_| big()).collect();
        let result = exec.execute(&batch).await;
        assert!(matches!(result, Err(StoreError::Unavailable { .. })), "{result:?}");
        exec.close().await.expect("close");
    }
}
