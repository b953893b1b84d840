//! The write side of the embedded store: one OS thread owns the only write connection and runs
//! group commits on it.
//!
//! Callers hand `(ops, reply)` to the thread over a bounded queue (a slow disk pushes back on them
//! instead of growing memory). The thread takes the first request, then whatever else is already
//! queued (up to `max_batch`), runs them all in one `BEGIN IMMEDIATE … COMMIT` — one fsync for the
//! batch — and then answers every caller. While a commit is on its way to disk new requests queue
//! up and form the next batch, so batches grow with load without any added delay.
//!
//! Everything between the first request and the replies happens on this thread, synchronously,
//! with statements prepared once and cached: a batch costs two cross-thread wake-ups per caller
//! (its request in, its answer out), not two per statement.
//!
//! Each request is atomic and fails alone, without a savepoint on the happy path: every
//! operation is one guarded statement (`INSERT … ON CONFLICT DO NOTHING`, `INSERT … SELECT …
//! WHERE EXISTS`, `UPDATE … WHERE status = ?`) that either writes or leaves everything as it was;
//! a miss is explained by a read afterwards. A request whose *first* operation misses has
//! written nothing, so it is answered with its error and the batch goes on. Only when a request
//! misses after one of its earlier operations succeeded is the transaction rolled back and the
//! batch run again with a savepoint around each request. A SQLite error (full disk, I/O error)
//! rolls the transaction back, answers that request with the error and runs the rest again
//! without it.
//!
//! The thread never takes the store down with it: a panic while running a batch is caught, the
//! batch and every later request get [`StoreError::WriterStopped`], and a reply channel dropped by
//! a dying thread reads as the same error, so no caller waits forever.

use std::borrow::Cow;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use seata_protocol::GlobalStatus;
use tokio::sync::{mpsc, oneshot};

use super::{SCHEMA, SCHEMA_VERSION};
use crate::store::group_commit::{BatchResult, GroupCommitOptions};
use crate::store::{StoreError, StoreOp, WriteStats};

/// Times a batch is attempted again after a request aborted its transaction, before the whole
/// batch gives up: each retry drops the request that aborted the previous attempt, so a single
/// bad request costs its neighbours a retry, not an error.
const MAX_ABORTS: usize = 4;

/// Prepared statements kept by the writer connection (ours are about 15).
const STATEMENT_CACHE: usize = 32;

// ---------------------------------------------------------------------------------------------
// Errors

/// A SQLite error from the writer connection, carried as the `sqlx::Error` the store's error
/// type holds, and displayed like sqlx's own (`(code: 13) database or disk is full`).
#[derive(Debug)]
pub(super) struct SqliteFailure {
    code: Option<i32>,
    message: String,
}

impl std::fmt::Display for SqliteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(code) => write!(f, "(code: {code}) {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for SqliteFailure {}

impl sqlx::error::DatabaseError for SqliteFailure {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.map(|c| Cow::Owned(c.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        sqlx::error::ErrorKind::Other
    }
}

impl From<rusqlite::Error> for SqliteFailure {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::SqliteFailure(code, message) => {
                SqliteFailure { code: Some(code.extended_code), message: message.unwrap_or_else(|| code.to_string()) }
            }
            other => SqliteFailure { code: None, message: other.to_string() },
        }
    }
}

/// Wraps a rusqlite error as [`StoreError::Unavailable`].
pub(super) fn unavailable(context: &'static str, e: rusqlite::Error) -> StoreError {
    StoreError::unavailable(context, sqlx::Error::Database(Box::new(SqliteFailure::from(e))))
}

fn fail(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| unavailable(context, e)
}

// ---------------------------------------------------------------------------------------------
// Opening

/// Opens the write connection (creating the file), with the durability settings, the schema
/// checked or created and the size cap applied. Blocking.
pub(super) fn open_writer(
    path: &Path,
    busy_timeout: Duration,
    max_size: Option<u64>,
) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(fail("opening the database"))?;
    conn.busy_timeout(busy_timeout).map_err(fail("opening the database"))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let mode: String =
        conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(fail("setting the journal mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Still durable (rollback journal, synchronous=FULL), only slower.
        tracing::warn!(journal_mode = %mode, "the file system does not support WAL");
    }
    conn.execute_batch("PRAGMA synchronous = FULL").map_err(fail("setting the synchronous mode"))?;
    let version: i64 =
        conn.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(fail("reading the schema version"))?;
    match version {
        0 => conn
            .execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"))
            .map_err(fail("creating the schema"))?,
        SCHEMA_VERSION => {}
        other => {
            return Err(StoreError::Corrupt {
                location: "the database header".to_owned(),
                reason: format!("schema version {other}; this server knows version {SCHEMA_VERSION}"),
            });
        }
    }
    if let Some(bytes) = max_size {
        let page_size: i64 =
            conn.query_row("PRAGMA page_size", [], |row| row.get(0)).map_err(fail("reading the page size"))?;
        let page_size = u64::try_from(page_size).unwrap_or(4096).max(1);
        let pages = (bytes / page_size).max(1);
        // Returns the new maximum as a row.
        conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .map_err(fail("limiting the database size"))?;
    }
    Ok(conn)
}

// ---------------------------------------------------------------------------------------------
// The thread and its handle

// The handle/writer protocol is the generic group-commit writer's.
use crate::store::group_commit::{settle, Command, Reply, Shared, CLOSED, OPEN, STOPPED};

/// Handle to the writer thread: submit requests, read counters, close.
pub(super) struct Writer {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    /// Taken by the first `close` to wait for the thread to finish; a second `close` waits for
    /// the first one.
    thread: tokio::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub(super) fn spawn(conn: Connection, options: GroupCommitOptions) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let shared = Arc::new(Shared::default());
        let worker = Worker {
            batcher: Batcher { conn: Some(conn) },
            rx,
            shared: Arc::clone(&shared),
            max_batch: options.max_batch.max(1),
        };
        let thread = std::thread::Builder::new()
            .name("store-writer".to_owned())
            .spawn(move || worker.run())
            .map_err(|e| StoreError::unavailable("starting the store writer", sqlx::Error::Io(e)))?;
        Ok(Writer { tx, shared, thread: tokio::sync::Mutex::new(Some(thread)) })
    }

    /// Hands `ops` to the writer and waits until they are committed (or failed).
    pub(super) async fn submit(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        self.ensure_open()?;
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Command::Apply { ops, reply }).await.is_err() {
            return Err(self.gone());
        }
        answer.await.unwrap_or_else(|_| Err(self.gone()))
    }

    /// True while the store is failing writes (see `Shared::degraded`).
    pub(super) fn degraded(&self) -> bool {
        self.shared.degraded.load(Ordering::Acquire)
    }

    /// Queues `ops` and returns once they are in the writer's queue, with the receiver of their
    /// outcome.
    pub(super) async fn submit_ordered(
        &self,
        ops: Vec<StoreOp>,
    ) -> Result<oneshot::Receiver<Result<(), StoreError>>, StoreError> {
        self.ensure_open()?;
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Command::Apply { ops, reply }).await.is_err() {
            return Err(self.gone());
        }
        Ok(answer)
    }

    /// `Ok` while requests are accepted; otherwise [`StoreError::Closed`] or
    /// [`StoreError::WriterStopped`].
    pub(super) fn ensure_open(&self) -> Result<(), StoreError> {
        self.shared.refusal().map_or(Ok(()), Err)
    }

    /// Refuses new requests, lets the thread finish the queued ones, closes the connection and
    /// waits for the thread to end. Closing twice succeeds.
    pub(super) async fn close(&self) -> Result<(), StoreError> {
        let mut thread = self.thread.lock().await;
        let Some(handle) = thread.take() else {
            return Ok(());
        };
        // Refuse new submissions; one racing with this is answered `Closed` by the thread, which
        // drains its queue after the close command.
        let _ = self.shared.state.compare_exchange(OPEN, CLOSED, Ordering::AcqRel, Ordering::Acquire);
        let (reply, answer) = oneshot::channel();
        let result =
            if self.tx.send(Command::Close { reply }).await.is_ok() { answer.await.unwrap_or(Ok(())) } else { Ok(()) };
        // The thread has answered (or is gone): joining takes no time, but is blocking.
        match tokio::task::spawn_blocking(move || handle.join()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => tracing::error!("store writer thread panicked"),
            Err(e) => tracing::error!(error = %e, "waiting for the store writer failed"),
        }
        result
    }

    /// The writer's counters.
    pub(super) fn stats(&self) -> WriteStats {
        let s = &self.shared;
        WriteStats {
            batches: s.batches.load(Ordering::Relaxed),
            requests: s.requests.load(Ordering::Relaxed),
            last_batch_size: s.last_batch_size.load(Ordering::Relaxed),
            max_batch_size: s.max_batch_size.load(Ordering::Relaxed),
            failed_batches: s.failed_batches.load(Ordering::Relaxed),
        }
    }

    /// The error for a request the writer can no longer answer.
    fn gone(&self) -> StoreError {
        self.shared.refusal().unwrap_or(StoreError::WriterStopped)
    }
}

/// Marks the writer stopped if its thread ends while the store is still open (a panic outside a
/// batch), so that later calls fail at once instead of queueing for nobody.
struct StopOnExit(Arc<Shared>);

impl Drop for StopOnExit {
    fn drop(&mut self) {
        let _ = self.0.state.compare_exchange(OPEN, STOPPED, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// The writer thread's side.
struct Worker {
    batcher: Batcher,
    rx: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
    max_batch: usize,
}

impl Worker {
    fn run(mut self) {
        let _stop = StopOnExit(Arc::clone(&self.shared));
        let mut ops = Vec::with_capacity(self.max_batch);
        let mut replies: Vec<Reply> = Vec::with_capacity(self.max_batch);
        loop {
            let mut close = None;
            match self.rx.blocking_recv() {
                Some(Command::Apply { ops: o, reply }) => {
                    ops.push(o);
                    replies.push(reply);
                }
                Some(Command::Close { reply }) => close = Some(reply),
                None => break,
            }
            while close.is_none() && ops.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(Command::Apply { ops: o, reply }) => {
                        ops.push(o);
                        replies.push(reply);
                    }
                    Ok(Command::Close { reply }) => close = Some(reply),
                    Err(_) => break,
                }
            }
            if !ops.is_empty() && !self.run_batch(&mut ops, &mut replies) {
                self.stop(StoreError::WriterStopped, close);
                return;
            }
            if let Some(reply) = close {
                let result = self.batcher.close();
                self.stop(StoreError::Closed, None);
                let _ = reply.send(result);
                return;
            }
        }
        // Every handle is gone without an explicit close: flush and end.
        if let Err(e) = self.batcher.close() {
            tracing::warn!(error = %e, "closing the store writer failed");
        }
    }

    /// Runs one batch and answers its callers. Returns false if running it panicked; the writer
    /// must then stop.
    fn run_batch(&mut self, ops: &mut Vec<Vec<StoreOp>>, replies: &mut Vec<Reply>) -> bool {
        let started = Instant::now();
        let batcher = &mut self.batcher;
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| batcher.execute(ops)));
        let size = ops.len();
        ops.clear();
        let ok = settle(&self.shared, outcome, size, replies, started);
        if !ok {
            // The connection may be inside a transaction: drop it (SQLite rolls back).
            self.batcher.conn = None;
        }
        ok
    }

    /// Marks the writer as ended and answers everything still queued with `error`; a pending
    /// close request is answered `Ok`.
    fn stop(&mut self, error: StoreError, close: Option<Reply>) {
        let state = if matches!(error, StoreError::WriterStopped) { STOPPED } else { CLOSED };
        self.shared.state.store(state, Ordering::Release);
        if let Some(reply) = close {
            let _ = reply.send(Ok(()));
        }
        self.rx.close();
        while let Some(command) = self.rx.blocking_recv() {
            match command {
                Command::Apply { reply, .. } => {
                    let _ = reply.send(Err(error.clone()));
                }
                Command::Close { reply } => {
                    let _ = reply.send(Ok(()));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running a batch

/// Runs batches on the write connection.
pub(super) struct Batcher {
    /// `None` once closed.
    pub(super) conn: Option<Connection>,
}

/// How one attempt at a batch ended.
enum Attempt {
    /// Committed: one result per request that was not settled before, in order.
    Committed(Vec<Result<(), StoreError>>),
    /// A request failed after some of its operations had been applied, and the attempt ran
    /// without savepoints: rolled back, nothing written; run again with savepoints.
    NeedsSavepoints,
    /// Request `request` failed with a SQLite error (full disk, I/O error); the transaction was
    /// rolled back and nothing of this attempt is written.
    Aborted { request: usize, error: StoreError },
}

/// Why an operation failed.
enum OpError {
    /// The operation's precondition failed (conflict, duplicate, not found, undecodable status);
    /// its statement wrote nothing and the transaction is intact.
    Miss(StoreError),
    /// SQLite failed; the transaction must be rolled back.
    Fatal(StoreError),
}

impl Batcher {
    /// Applies every request of `batch` in one transaction, each request all or none, and
    /// commits durably. One result per request, in order, or `Err` if the batch as a whole failed
    /// (nothing of it was written).
    pub(super) fn execute(&mut self, batch: &[Vec<StoreOp>]) -> BatchResult {
        let conn = self.conn.as_ref().ok_or(StoreError::Closed)?;
        let now = now_micros();
        // Requests already answered: those that aborted an earlier attempt of this batch.
        let mut settled: Vec<Option<Result<(), StoreError>>> = vec![None; batch.len()];
        let mut aborts = 0;
        let mut savepoints = false;
        loop {
            match attempt(conn, batch, &settled, now, savepoints)? {
                Attempt::Committed(results) => {
                    for (slot, result) in settled.iter_mut().filter(|s| s.is_none()).zip(results) {
                        *slot = Some(result);
                    }
                    return Ok(settled.into_iter().map(|r| r.unwrap_or(Err(StoreError::WriterStopped))).collect());
                }
                Attempt::NeedsSavepoints => savepoints = true,
                Attempt::Aborted { request, error } => {
                    aborts += 1;
                    if aborts >= MAX_ABORTS {
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

    /// Closes the connection (SQLite checkpoints the WAL when the last connection closes).
    pub(super) fn close(&mut self) -> Result<(), StoreError> {
        match self.conn.take() {
            Some(conn) => conn.close().map_err(|(_, e)| unavailable("closing the database", e)),
            None => Ok(()),
        }
    }
}

/// Runs a statement without parameters or result rows (transaction control), prepared once.
fn run(conn: &Connection, sql: &str, context: &'static str) -> Result<(), StoreError> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(drop).map_err(fail(context))
}

/// Ends a failed transaction. Errors are only logged: SQLite may already have rolled it back.
fn rollback(conn: &Connection) {
    if conn.is_autocommit() {
        return;
    }
    if let Err(e) = run(conn, "ROLLBACK", "rolling back") {
        tracing::debug!(error = %e, "rollback after a failed batch");
    }
}

/// Runs the requests of `batch` not yet `settled` in one transaction (each in a savepoint if
/// `savepoints`). `Err`: the transaction could not be begun or committed; nothing is written.
fn attempt(
    conn: &Connection,
    batch: &[Vec<StoreOp>],
    settled: &[Option<Result<(), StoreError>>],
    now: i64,
    savepoints: bool,
) -> Result<Attempt, StoreError> {
    // IMMEDIATE takes the write lock now rather than at the first write.
    run(conn, "BEGIN IMMEDIATE", "starting a transaction")?;
    match requests(conn, batch, settled, now, savepoints) {
        Ok(Attempt::Committed(results)) => match run(conn, "COMMIT", "committing") {
            Ok(()) => Ok(Attempt::Committed(results)),
            Err(e) => {
                // A failed COMMIT can leave the transaction open.
                rollback(conn);
                Err(e)
            }
        },
        other => {
            rollback(conn);
            other
        }
    }
}

/// The body of [`attempt`]: `Committed` means "ready to commit".
fn requests(
    conn: &Connection,
    batch: &[Vec<StoreOp>],
    settled: &[Option<Result<(), StoreError>>],
    now: i64,
    savepoints: bool,
) -> Result<Attempt, StoreError> {
    let mut results = Vec::with_capacity(batch.len());
    for (index, request) in batch.iter().enumerate() {
        if settled.get(index).is_some_and(Option::is_some) {
            continue;
        }
        if savepoints {
            run(conn, "SAVEPOINT request", "starting a request")?;
        }
        let mut applied = 0;
        let mut outcome = Ok(());
        for op in request {
            outcome = apply_op(conn, op, now);
            if outcome.is_err() {
                break;
            }
            applied += 1;
        }
        match outcome {
            Ok(()) => {
                if savepoints {
                    run(conn, "RELEASE request", "finishing a request")?;
                }
                results.push(Ok(()));
            }
            Err(OpError::Miss(error)) if savepoints => {
                run(conn, "ROLLBACK TO request", "undoing a request")?;
                run(conn, "RELEASE request", "undoing a request")?;
                results.push(Err(error));
            }
            // Nothing of this request was written: it fails alone.
            Err(OpError::Miss(error)) if applied == 0 => results.push(Err(error)),
            Err(OpError::Miss(_)) => return Ok(Attempt::NeedsSavepoints),
            Err(OpError::Fatal(error)) => return Ok(Attempt::Aborted { request: index, error }),
        }
    }
    Ok(Attempt::Committed(results))
}

fn apply_op(conn: &Connection, op: &StoreOp, now: i64) -> Result<(), OpError> {
    let fatal = |context| move |e| OpError::Fatal(unavailable(context, e));
    let execute = |sql: &str, params: &[&dyn rusqlite::ToSql], context| {
        conn.prepare_cached(sql).and_then(|mut s| s.execute(params)).map_err(fatal(context))
    };
    match op {
        StoreOp::InsertGlobal(g) => {
            let changed = execute(
                "INSERT INTO global_table (xid, transaction_id, status, application_id, \
                 transaction_service_group, transaction_name, timeout, begin_time, \
                 application_data, gmt_create, gmt_modified) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (xid) DO NOTHING",
                params![
                    g.xid,
                    g.transaction_id,
                    i64::from(g.status.code()),
                    g.application_id,
                    g.transaction_service_group,
                    g.transaction_name,
                    g.timeout_ms,
                    g.begin_time_ms,
                    g.application_data,
                    now,
                    now
                ],
                "inserting a global session",
            )?;
            if changed == 0 {
                return Err(OpError::Miss(StoreError::Duplicate { xid: g.xid.clone(), branch_id: None }));
            }
        }
        StoreOp::UpdateGlobalStatus { xid, expected, status } => {
            let changed = match expected {
                Some(expected) => execute(
                    "UPDATE global_table SET status = ?, gmt_modified = ? WHERE xid = ? AND status = ?",
                    params![i64::from(status.code()), now, xid, i64::from(expected.code())],
                    "updating a global status",
                ),
                None => execute(
                    "UPDATE global_table SET status = ?, gmt_modified = ? WHERE xid = ?",
                    params![i64::from(status.code()), now, xid],
                    "updating a global status",
                ),
            }?;
            if changed == 0 {
                return Err(global_miss(conn, xid, *expected));
            }
        }
        StoreOp::RemoveGlobal { xid } => {
            execute("DELETE FROM branch_table WHERE xid = ?", params![xid], "removing branch sessions")?;
            execute("DELETE FROM global_table WHERE xid = ?", params![xid], "removing a global session")?;
        }
        StoreOp::InsertBranch(b) => {
            // One statement on the happy path: inserts only if the global row exists and the
            // branch id is free; a miss is explained afterwards.
            let changed = execute(
                "INSERT INTO branch_table (branch_id, xid, transaction_id, resource_group_id, \
                 resource_id, branch_type, status, client_id, application_data, lock_key, \
                 gmt_create, gmt_modified) \
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11 \
                 WHERE EXISTS (SELECT 1 FROM global_table WHERE xid = ?2) \
                 ON CONFLICT (branch_id) DO NOTHING",
                params![
                    b.branch_id,
                    b.xid,
                    b.transaction_id,
                    b.resource_group_id,
                    b.resource_id,
                    b.branch_type.name(),
                    i64::from(b.status.code()),
                    b.client_id,
                    b.application_data,
                    b.lock_key,
                    now
                ],
                "inserting a branch session",
            )?;
            if changed == 0 {
                let global = conn
                    .prepare_cached("SELECT 1 FROM global_table WHERE xid = ?")
                    .and_then(|mut s| s.query_row(params![b.xid], |_| Ok(())).optional())
                    .map_err(fatal("reading a global session"))?;
                return Err(OpError::Miss(match global {
                    None => StoreError::NotFound { xid: b.xid.clone(), branch_id: None },
                    Some(()) => StoreError::Duplicate { xid: b.xid.clone(), branch_id: Some(b.branch_id) },
                }));
            }
        }
        StoreOp::UpdateBranch { xid, branch_id, status, application_data } => {
            let changed = execute(
                "UPDATE branch_table SET status = ?, application_data = COALESCE(?, application_data), \
                 gmt_modified = ? WHERE xid = ? AND branch_id = ?",
                params![i64::from(status.code()), application_data, now, xid, branch_id],
                "updating a branch session",
            )?;
            if changed == 0 {
                return Err(OpError::Miss(StoreError::NotFound { xid: xid.clone(), branch_id: Some(*branch_id) }));
            }
        }
        StoreOp::RemoveBranch { xid, branch_id } => {
            execute(
                "DELETE FROM branch_table WHERE xid = ? AND branch_id = ?",
                params![xid, branch_id],
                "removing a branch session",
            )?;
        } // Row locks live in memory in file mode (the coordinator never sends these here).
        StoreOp::AcquireLocks(_) | StoreOp::ReleaseLocks { .. } | StoreOp::MarkLocksRollbacking { .. } => {
            return Err(OpError::Miss(StoreError::Unsupported { what: "row locks" }));
        }
        // One node per file store: its memory is complete, nothing to check against.
        StoreOp::ExpectBranches { .. } => {
            return Err(OpError::Miss(StoreError::Unsupported { what: "branch counts" }));
        }
    }
    Ok(())
}

/// Why an update of a global status touched no row: the xid is absent, or (compare-and-set)
/// another status is stored.
fn global_miss(conn: &Connection, xid: &str, expected: Option<GlobalStatus>) -> OpError {
    let stored = conn
        .prepare_cached("SELECT status FROM global_table WHERE xid = ?")
        .and_then(|mut s| s.query_row(params![xid], |row| row.get::<_, rusqlite::types::Value>(0)).optional());
    let stored = match stored {
        Ok(stored) => stored,
        Err(e) => return OpError::Fatal(unavailable("reading a global status", e)),
    };
    OpError::Miss(match (stored, expected) {
        (None, _) | (Some(_), None) => StoreError::NotFound { xid: xid.to_owned(), branch_id: None },
        (Some(rusqlite::types::Value::Integer(code)), Some(expected)) => {
            match u8::try_from(code).ok().and_then(|c| GlobalStatus::try_from(c).ok()) {
                Some(actual) => StoreError::Conflict { xid: xid.to_owned(), expected, actual },
                None => super::corrupt_global(xid, format!("unknown global status {code}")),
            }
        }
        (Some(other), Some(_)) => super::corrupt_global(xid, format!("global status of type {:?}", other.data_type())),
    })
}

fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
