//! The embedded default store (`store.mode: file`): one SQLite database, written by one
//! group-commit writer thread.
//!
//! Layout: `<dir>/sessions.sqlite` plus SQLite's `-wal` and `-shm` files next to it. The database
//! is ours (nobody else shares it), so the schema is created on open and versioned with
//! `PRAGMA user_version`; a database written by a newer schema version is refused rather than
//! misread.
//!
//! Durability: WAL journal with `synchronous=FULL`, so every commit fsyncs the WAL before it
//! returns; a request is answered only after the commit of its batch, so an acknowledged change
//! survives `kill -9` and power loss. Concurrent requests share a commit: the writer
//! ([`writer`]) is a dedicated thread owning the only write connection, which runs a whole batch
//! in one transaction without leaving the thread. A failed compare-and-set or insert is undone
//! alone and the rest of the batch commits.
//!
//! Reads use a separate pool of read-only connections; in WAL mode they never block the writer
//! and see only committed data.
//!
//! Registration order: both tables have an `INTEGER PRIMARY KEY` sequence (`seq`). SQLite gives
//! a new row a key larger than every key in the table, so ordering by `seq` is insertion order
//! (begin order for globals, registration order for branches), and `VACUUM` keeps it.

mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use seata_protocol::{BranchStatus, BranchType, GlobalStatus};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteLockingMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use sqlx::{ConnectOptions, Connection, Row};

use super::group_commit::GroupCommitOptions;
use super::{
    BranchRecord, GlobalRecord, PendingWrite, SessionStore, StoreError, StoreLimits, StoreOp, StoredSession, WriteStats,
};

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

/// The embedded session store: SQLite in WAL mode, one group-commit writer thread, a read pool.
pub struct FileStore {
    path: PathBuf,
    writer: writer::Writer,
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

        let writer = {
            let path = path.clone();
            let (busy_timeout, max_size) = (options.busy_timeout, options.max_size_bytes);
            tokio::task::spawn_blocking(move || writer::open_writer(&path, busy_timeout, max_size))
                .await
                .unwrap_or_else(|e| {
                    Err(StoreError::unavailable("opening the database", sqlx::Error::Io(std::io::Error::other(e))))
                })
                .and_then(|conn| writer::Writer::spawn(conn, options.group_commit))
        };
        let writer = match writer {
            Ok(writer) => writer,
            Err(e) => {
                let _ = owner.close().await;
                return Err(e);
            }
        };
        let readers = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .min_connections(0)
            .connect_lazy_with(base.read_only(true));

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

    // One writer thread fed by one FIFO queue: a request queued now is written before, or in the
    // same transaction as, every request queued after it. While the disk is failing writes the
    // caller waits, so that it gets the error (a full disk fails GlobalBegin, not only the
    // first BranchRegister).
    async fn apply_ordered(&self, ops: Vec<StoreOp>) -> Result<PendingWrite, StoreError> {
        self.writer.ensure_open()?;
        self.limits.check(&ops)?;
        if ops.is_empty() {
            return Ok(PendingWrite::committed());
        }
        if self.writer.degraded() {
            return self.writer.submit(ops).await.map(|()| PendingWrite::committed());
        }
        self.writer.submit_ordered(ops).await.map(PendingWrite::waiting)
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
    use super::writer::{open_writer, Batcher};
    use super::*;
    use crate::store::contract::{new_branch_id, new_xid, sample_branch, sample_global};

    /// A batcher on a fresh database, driven directly so that the batch is known exactly.
    fn batcher(dir: &Path, max_size: Option<u64>) -> Batcher {
        let conn = open_writer(&dir.join(FileStore::DB_FILE_NAME), Duration::from_secs(5), max_size).expect("open");
        Batcher { conn: Some(conn) }
    }

    fn run(batcher: &mut Batcher, batch: &[Vec<StoreOp>]) -> Vec<Result<(), StoreError>> {
        batcher.execute(batch).expect("batch commits")
    }

    fn query_i64s(batcher: &Batcher, sql: &str) -> Vec<i64> {
        let conn = batcher.conn.as_ref().expect("open");
        let mut stmt = conn.prepare(sql).expect("prepare");
        let rows = stmt.query_map([], |row| row.get(0)).expect("query");
        rows.collect::<Result<_, _>>().expect("rows")
    }

    fn set_status(xid: &str, expected: GlobalStatus, status: GlobalStatus) -> Vec<StoreOp> {
        vec![StoreOp::UpdateGlobalStatus { xid: xid.to_owned(), expected: Some(expected), status }]
    }

    #[test]
    fn the_writer_connection_is_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exec = batcher(dir.path(), None);
        let conn = exec.conn.as_ref().expect("open");
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0)).expect("journal_mode");
        assert_eq!(mode, "wal");
        assert_eq!(query_i64s(&exec, "PRAGMA synchronous"), vec![2], "synchronous=FULL");
        assert_eq!(query_i64s(&exec, "PRAGMA user_version"), vec![SCHEMA_VERSION]);
    }

    #[test]
    fn a_refused_request_is_undone_alone_and_its_neighbours_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut exec = batcher(dir.path(), None);
        let [a, b, c] = [new_xid("a"), new_xid("b"), new_xid("c")];
        let inserts: Vec<_> = [&a, &b, &c].iter().map(|x| vec![StoreOp::InsertGlobal(sample_global(x))]).collect();
        assert!(run(&mut exec, &inserts).iter().all(Result::is_ok));

        let orphan = new_xid("orphan");
        let kept = new_branch_id();
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
            vec![StoreOp::InsertBranch(sample_branch(&c, kept))],
        ];
        let results = run(&mut exec, &batch);
        assert!(results[0].is_ok(), "{results:?}");
        assert!(matches!(results[1], Err(StoreError::Conflict { .. })), "{results:?}");
        assert!(matches!(results[2], Err(StoreError::NotFound { .. })), "{results:?}");
        assert!(results[3].is_ok(), "{results:?}");
        assert!(results[4].is_ok(), "{results:?}");

        assert_eq!(query_i64s(&exec, "SELECT branch_id FROM branch_table"), vec![kept]);
        assert_eq!(query_i64s(&exec, "SELECT status FROM global_table ORDER BY seq"), vec![2, 1, 4]);
        exec.close().expect("close");
    }

    #[test]
    fn requests_see_the_effects_of_earlier_requests_in_the_same_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut exec = batcher(dir.path(), None);
        let x = new_xid("x");
        let branch = new_branch_id();
        let batch = vec![
            vec![StoreOp::InsertGlobal(sample_global(&x))],
            vec![StoreOp::InsertBranch(sample_branch(&x, branch))],
            vec![StoreOp::InsertGlobal(sample_global(&x))],
            vec![StoreOp::InsertBranch(sample_branch(&x, branch))],
            set_status(&x, GlobalStatus::Begin, GlobalStatus::Committing),
            set_status(&x, GlobalStatus::Begin, GlobalStatus::Committing),
            vec![StoreOp::RemoveGlobal { xid: x.clone() }],
            vec![StoreOp::UpdateGlobalStatus { xid: x.clone(), expected: None, status: GlobalStatus::Committed }],
        ];
        let results = run(&mut exec, &batch);
        assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
        assert!(matches!(results[2], Err(StoreError::Duplicate { branch_id: None, .. })), "{results:?}");
        assert!(matches!(results[3], Err(StoreError::Duplicate { branch_id: Some(_), .. })), "{results:?}");
        assert!(results[4].is_ok(), "{results:?}");
        assert!(
            matches!(results[5], Err(StoreError::Conflict { actual: GlobalStatus::Committing, .. })),
            "{results:?}"
        );
        assert!(results[6].is_ok(), "{results:?}");
        assert!(matches!(results[7], Err(StoreError::NotFound { .. })), "{results:?}");
        assert!(query_i64s(&exec, "SELECT count(*) FROM global_table UNION ALL SELECT count(*) FROM branch_table")
            .iter()
            .all(|&n| n == 0));
        exec.close().expect("close");
    }

    #[test]
    fn a_request_that_aborts_the_transaction_is_dropped_and_the_rest_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut exec = batcher(dir.path(), Some(256 * 1024));
        let small: Vec<String> = (0..4).map(|i| new_xid(&format!("s{i}"))).collect();
        let inserts: Vec<_> = small.iter().map(|x| vec![StoreOp::InsertGlobal(sample_global(x))]).collect();
        assert!(run(&mut exec, &inserts).iter().all(Result::is_ok));
        let big = |label: &str| {
            let mut global = sample_global(&new_xid(label));
            global.application_data = Some("x".repeat(60_000));
            vec![StoreOp::InsertGlobal(global)]
        };
        // Fill the database up.
        while run(&mut exec, &[big("fill")])[0].is_ok() {}

        let batch = vec![
            set_status(&small[0], GlobalStatus::Begin, GlobalStatus::Committing),
            big("big1"),
            set_status(&small[1], GlobalStatus::Begin, GlobalStatus::Committing),
            set_status(&small[2], GlobalStatus::Rollbacking, GlobalStatus::Committing),
            big("big2"),
            set_status(&small[3], GlobalStatus::Begin, GlobalStatus::Committing),
        ];
        let results = run(&mut exec, &batch);
        assert!(results[0].is_ok(), "{results:?}");
        assert!(matches!(results[1], Err(StoreError::Unavailable { .. })), "{results:?}");
        let text = results[1].as_ref().map_err(|e| format!("{e}")).expect_err("full");
        assert!(text.contains("(code: 13)"), "{text}");
        assert!(results[2].is_ok(), "{results:?}");
        assert!(matches!(results[3], Err(StoreError::Conflict { .. })), "{results:?}");
        assert!(matches!(results[4], Err(StoreError::Unavailable { .. })), "{results:?}");
        assert!(results[5].is_ok(), "{results:?}");

        assert_eq!(query_i64s(&exec, "SELECT count(*) FROM global_table WHERE status = 2"), vec![3]);
        exec.close().expect("close");
    }

    #[test]
    fn a_batch_of_failing_requests_gives_up_after_a_few_attempts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut exec = batcher(dir.path(), Some(128 * 1024));
        let big = || {
            let mut global = sample_global(&new_xid("big"));
            global.application_data = Some("x".repeat(60_000));
            vec![StoreOp::InsertGlobal(global)]
        };
        while run(&mut exec, &[big()])[0].is_ok() {}
        let batch: Vec<_> = (0..10).map(|_| big()).collect();
        let result = exec.execute(&batch);
        assert!(matches!(result, Err(StoreError::Unavailable { .. })), "{result:?}");
        exec.close().expect("close");
    }
}
