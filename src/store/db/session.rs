//! [`DbStore`]: the session store on Seata's `global_table` and `branch_table`.
//!
//! Writes go through the shared group-commit writer: one database transaction per batch of
//! concurrent requests, one commit (one redo-log / WAL flush) for all of them. A request of
//! several operations runs inside a `SAVEPOINT`, so that it is undone alone when one of its
//! operations fails; a request of one operation needs none (a refused statement changes nothing,
//! and the statements are written so that the usual refusals — a stale compare-and-set, a
//! duplicate, a missing global — are not database errors on PostgreSQL, where an error would
//! abort the whole transaction). Runs of one-operation requests of one kind share a multi-row
//! statement, written first without a savepoint; if one does not do exactly what its requests
//! would have done alone, the batch is rolled back and run again with a savepoint around each
//! multi-row statement, which is then undone and split on a miss (see [`attempt`]).
//!
//! Reads (`load`, `load_all`, the paging queries) run on the pool in autocommit mode, except
//! `load_all`, which reads both tables in one read-only snapshot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use seata_protocol::{BranchStatus, BranchType, GlobalStatus};

use super::conn::{store_error, Arg, Dialect, Failure, Pool, Row, Tx};
use super::locks::{LockSql, Target};
use super::schema::{SeataTable, TableInfo};
use super::{DbOptions, DbPool};
use crate::store::group_commit::{BatchExecutor, BatchResult, GroupCommit};
use crate::store::{
    BranchRecord, GlobalRecord, SessionStore, StoreError, StoreLimits, StoreOp, StoredSession, WriteStats,
};

const GLOBAL_COLUMNS: [&str; 9] = [
    "xid",
    "transaction_id",
    "status",
    "application_id",
    "transaction_service_group",
    "transaction_name",
    "timeout",
    "begin_time",
    "application_data",
];

const BRANCH_COLUMNS: [&str; 9] = [
    "branch_id",
    "xid",
    "transaction_id",
    "resource_group_id",
    "resource_id",
    "branch_type",
    "status",
    "client_id",
    "application_data",
];

/// The statements of the session store, rendered once for the dialect and table names.
#[derive(Debug)]
struct Statements {
    dialect: Dialect,
    insert_global: String,
    update_global_cas: String,
    update_global: String,
    global_status: String,
    branch_count: String,
    delete_branches_of: String,
    delete_global: String,
    insert_branch: String,
    update_branch: String,
    delete_branch: String,
    load_joined: String,
    load_global: String,
    all_globals: String,
    all_branches: String,
    global_columns: String,
    branch_columns: String,
    global_table: String,
    branch_table: String,
    /// `lock_table`'s statements when this store holds the row locks.
    locks: Option<Arc<LockSql>>,
}

impl Statements {
    fn new(dialect: Dialect, global: &str, branch: &str, locks: Option<Arc<LockSql>>) -> Statements {
        let now = dialect.now();
        let now6 = dialect.now_micros();
        let s = |sql: String| dialect.sql(&sql);
        let gcols = GLOBAL_COLUMNS.join(", ");
        let bcols = BRANCH_COLUMNS.join(", ");
        let aliased = |prefix: &str, table: &str, cols: &[&str]| {
            cols.iter().map(|c| format!("{table}.{c} AS {prefix}{c}")).collect::<Vec<_>>().join(", ")
        };
        let (on_conflict_xid, on_conflict_branch) = match dialect {
            Dialect::MySql => ("", ""),
            Dialect::Postgres => (" ON CONFLICT (xid) DO NOTHING", " ON CONFLICT (branch_id) DO NOTHING"),
        };
        Statements {
            dialect,
            insert_global: s(format!(
                "INSERT INTO {global} ({gcols}, gmt_create, gmt_modified) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, {now}, {now}){on_conflict_xid}"
            )),
            update_global_cas: s(format!(
                "UPDATE {global} SET status = ?, gmt_modified = {now} WHERE xid = ? AND status = ?"
            )),
            update_global: s(format!("UPDATE {global} SET status = ?, gmt_modified = {now} WHERE xid = ?")),
            global_status: s(format!("SELECT status FROM {global} WHERE xid = ?")),
            branch_count: s(format!("SELECT COUNT(*) AS n FROM {branch} WHERE xid = ?")),
            delete_branches_of: s(format!("DELETE FROM {branch} WHERE xid = ?")),
            delete_global: s(format!("DELETE FROM {global} WHERE xid = ?")),
            // Inserts only if the global row exists and is in Begin (SAGA branches: any status), so a
            // node with a stale copy cannot add a branch after another node's commit; one statement
            // on the happy path.
            insert_branch: s(format!(
                "INSERT INTO {branch} ({bcols}, gmt_create, gmt_modified) \
                 SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, {now6}, {now6} FROM {global} \
                 WHERE xid = ? AND (status = 1 OR ? = 'SAGA'){on_conflict_branch}"
            )),
            update_branch: s(format!(
                "UPDATE {branch} SET status = ?, application_data = COALESCE(?, application_data), \
                 gmt_modified = {now6} WHERE xid = ? AND branch_id = ?"
            )),
            delete_branch: s(format!("DELETE FROM {branch} WHERE xid = ? AND branch_id = ?")),
            load_joined: s(format!(
                "SELECT {}, {} FROM {global} g LEFT JOIN {branch} b ON b.xid = g.xid \
                 WHERE g.xid = ? ORDER BY b.gmt_create, b.branch_id",
                aliased("g_", "g", &GLOBAL_COLUMNS),
                aliased("b_", "b", &BRANCH_COLUMNS)
            )),
            load_global: s(format!("SELECT {gcols} FROM {global} WHERE xid = ?")),
            // Begin order; begin_time is in milliseconds and gmt_create in seconds, so ties
            // fall back to the xid.
            all_globals: s(format!("SELECT {gcols} FROM {global} ORDER BY begin_time, gmt_create, xid")),
            all_branches: s(format!("SELECT {bcols} FROM {branch} ORDER BY gmt_create, branch_id")),
            global_columns: gcols,
            branch_columns: bcols,
            global_table: global.to_owned(),
            branch_table: branch.to_owned(),
            locks,
        }
    }

    /// Inserts `count` global rows.
    fn insert_globals(&self, count: usize) -> String {
        let now = self.dialect.now();
        let row = format!("(?, ?, ?, ?, ?, ?, ?, ?, ?, {now}, {now})");
        let conflict = match self.dialect {
            Dialect::MySql => "",
            Dialect::Postgres => " ON CONFLICT (xid) DO NOTHING",
        };
        self.dialect.sql(&format!(
            "INSERT INTO {} ({}, gmt_create, gmt_modified) VALUES {}{conflict}",
            self.global_table,
            self.global_columns,
            vec![row; count.max(1)].join(", ")
        ))
    }

    /// Compare-and-set of `count` global statuses from one status to one status: arguments new
    /// status, the xids (one list), the expected status, and with `counted` the number of
    /// branches each must have. Matches one row per xid when every stored status (and branch
    /// count) is the expected one.
    fn set_global_statuses(&self, count: usize, counted: bool) -> String {
        let now = self.dialect.now();
        let counted = if counted {
            format!(" AND (SELECT COUNT(*) FROM {} b WHERE b.xid = g.xid) = ?", self.branch_table)
        } else {
            String::new()
        };
        self.dialect.sql(&format!(
            "UPDATE {} g SET status = ?, gmt_modified = {now} WHERE {} AND g.status = ?{counted}",
            self.global_table,
            self.dialect.in_list("g.xid", count)
        ))
    }

    /// Inserts `count` branch rows, each only if its global row exists.
    fn insert_branches(&self, count: usize) -> String {
        let now6 = self.dialect.now_micros();
        let first =
            format!("SELECT {}", BRANCH_COLUMNS.iter().map(|c| format!("? AS {c}")).collect::<Vec<_>>().join(", "));
        let other = format!("SELECT {}", vec!["?"; BRANCH_COLUMNS.len()].join(", "));
        let mut rows = vec![first];
        rows.extend(std::iter::repeat_n(other, count.saturating_sub(1)));
        let conflict = match self.dialect {
            Dialect::MySql => "",
            Dialect::Postgres => " ON CONFLICT (branch_id) DO NOTHING",
        };
        let values = BRANCH_COLUMNS.iter().map(|c| format!("v.{c}")).collect::<Vec<_>>().join(", ");
        self.dialect.sql(&format!(
            "INSERT INTO {branch} ({}, gmt_create, gmt_modified) SELECT {values}, {now6}, {now6} \
             FROM ({}) v WHERE EXISTS (SELECT 1 FROM {global} g WHERE g.xid = v.xid \
             AND (g.status = 1 OR v.branch_type = 'SAGA')){conflict}",
            self.branch_columns,
            rows.join(" UNION ALL "),
            branch = self.branch_table,
            global = self.global_table,
        ))
    }

    /// Deletes the branch rows, then the global rows, of `count` xids.
    fn remove_globals(&self, count: usize) -> (String, String) {
        let condition = self.dialect.in_list("xid", count);
        (
            self.dialect.sql(&format!("DELETE FROM {} WHERE {condition}", self.branch_table)),
            self.dialect.sql(&format!("DELETE FROM {} WHERE {condition}", self.global_table)),
        )
    }

    /// Deletes `count` branch rows by (xid, branch id).
    fn remove_branches(&self, count: usize) -> String {
        self.dialect.sql(&format!(
            "DELETE FROM {} WHERE (xid, branch_id) IN ({})",
            self.branch_table,
            vec!["(?, ?)"; count.max(1)].join(", ")
        ))
    }

    fn snapshot(&self) -> &'static str {
        match self.dialect {
            Dialect::MySql => "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        }
    }
}

/// Text columns whose width is checked before writing, and the width of
/// `transaction_name` (truncated, as Seata does).
#[derive(Debug, Clone)]
struct Widths {
    global: TableInfo,
    branch: TableInfo,
}

impl Widths {
    fn check(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        let bound = |info: &TableInfo, table: SeataTable, field: &'static str, value: &str| {
            let max = info.width(table, field);
            let len = value.chars().count();
            match max {
                Some(max) if len > max => Err(StoreError::TooLarge { field, len, max }),
                _ => Ok(()),
            }
        };
        let g = |field, value: &str| bound(&self.global, SeataTable::Global, field, value);
        let b = |field, value: &str| bound(&self.branch, SeataTable::Branch, field, value);
        for op in ops {
            match op {
                StoreOp::InsertGlobal(r) => {
                    g("xid", &r.xid)?;
                    g("application_id", &r.application_id)?;
                    g("transaction_service_group", &r.transaction_service_group)?;
                    if let Some(data) = &r.application_data {
                        g("application_data", data)?;
                    }
                }
                StoreOp::InsertBranch(r) => {
                    b("xid", &r.xid)?;
                    if let Some(group) = &r.resource_group_id {
                        b("resource_group_id", group)?;
                    }
                    b("resource_id", &r.resource_id)?;
                    b("branch_type", r.branch_type.name())?;
                    b("client_id", &r.client_id)?;
                    if let Some(data) = &r.application_data {
                        b("application_data", data)?;
                    }
                }
                StoreOp::UpdateBranch { application_data: Some(data), .. } => b("application_data", data)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn transaction_name_width(&self) -> Option<usize> {
        self.global.width(SeataTable::Global, "transaction_name")
    }
}

/// `value` cut to at most `max` characters.
fn truncate(value: &str, max: Option<usize>) -> &str {
    match max.and_then(|max| value.char_indices().nth(max)) {
        Some((end, _)) => value.get(..end).unwrap_or(value),
        None => value,
    }
}

/// The session store on MySQL, MariaDB or PostgreSQL, on Seata's tables.
///
/// Rows are what seata-server writes: statuses as numbers, the branch type by name,
/// `gmt_create`/`gmt_modified` from the database clock, `begin_time` in epoch milliseconds.
/// `branch_table` has no lock-key column, so [`BranchRecord::lock_key`] is not stored: loaded
/// branches have `lock_key: None` (in db mode the locks themselves live in `lock_table`).
pub struct DbStore {
    pool: DbPool,
    owns_pool: bool,
    writer: GroupCommit,
    sql: Arc<Statements>,
    limits: StoreLimits,
    widths: Arc<Widths>,
    merged: Arc<AtomicU64>,
    /// Per-transaction recovery claims (`distributed_lock`); `None` when its table is disabled.
    claims: Option<Arc<super::DistributedLocker>>,
}

impl std::fmt::Debug for DbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbStore").field("url", &self.pool.url()).field("stats", &self.writer.stats()).finish()
    }
}

impl DbStore {
    /// Connects with `seata.store.db.*` and opens the store on a pool of its own, closed by
    /// [`close`](SessionStore::close).
    pub async fn connect(settings: &crate::config::DbStoreSettings, options: DbOptions) -> Result<DbStore, StoreError> {
        let pool = DbPool::connect(settings, &options).await?;
        match DbStore::open(pool.clone(), options).await {
            Ok(mut store) => {
                store.owns_pool = true;
                Ok(store)
            }
            Err(e) => {
                pool.close().await;
                Err(e)
            }
        }
    }

    /// Opens the store on a shared pool (which `close` leaves open). Checks that
    /// `global_table` and `branch_table` exist with Seata's columns, creating them if
    /// `options.create_missing_tables` is set.
    pub async fn open(pool: DbPool, options: DbOptions) -> Result<DbStore, StoreError> {
        DbStore::open_inner(pool, options, None).await
    }

    /// Opens the store on the pool of `locks` holding the row locks too: registrations take their
    /// lock rows and commits release them in the same group-committed transaction as the session
    /// change ([`SessionStore::holds_row_locks`]). `locks` keeps serving the reads (lock queries,
    /// the console) and the rare writes outside a request (recovery, the console's deletes).
    pub async fn open_with_locks(
        pool: DbPool,
        options: DbOptions,
        locks: &super::DbLockStore,
    ) -> Result<DbStore, StoreError> {
        if pool.url() != locks.pool().url() || pool.tables() != locks.pool().tables() {
            return Err(super::conn::config_error(
                "opening the session store",
                "the lock store is on another database; it cannot share the session store's transactions",
            ));
        }
        DbStore::open_inner(pool, options, Some(locks.statements())).await
    }

    async fn open_inner(pool: DbPool, options: DbOptions, locks: Option<Arc<LockSql>>) -> Result<DbStore, StoreError> {
        let names = pool.tables();
        let found = super::schema::ensure(
            pool.raw(),
            &[(SeataTable::Global, &names.global), (SeataTable::Branch, &names.branch)],
            options.create_missing_tables,
        )
        .await?;
        let info = |t: SeataTable| found.get(&t).cloned().unwrap_or_else(|| TableInfo::seata(t));
        let widths = Arc::new(Widths { global: info(SeataTable::Global), branch: info(SeataTable::Branch) });
        let sql =
            Arc::new(Statements::new(pool.dialect(), &names.global.to_string(), &names.branch.to_string(), locks));
        let merged = Arc::new(AtomicU64::new(0));
        let executor = DbExecutor {
            pool: pool.raw().clone(),
            sql: Arc::clone(&sql),
            contention_retries: options.contention_retries,
            merged: Arc::clone(&merged),
        };
        let claims = super::DistributedLocker::open(pool.clone(), &options).await?.map(Arc::new);
        let writer = GroupCommit::spawn(executor, options.group_commit);
        tracing::info!(url = %pool.url(), global_table = %names.global, branch_table = %names.branch, "db session store opened");
        Ok(DbStore { pool, owns_pool: false, writer, sql, limits: options.limits, widths, merged, claims })
    }

    /// The pool, to share with [`DbLockStore`](super::DbLockStore) and
    /// [`DistributedLocker`](super::DistributedLocker).
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// The writer's counters (batches, requests, batch sizes).
    pub fn stats(&self) -> WriteStats {
        self.writer.stats()
    }

    /// Requests written by multi-row statements shared with other requests of their batch.
    pub fn merged_requests(&self) -> u64 {
        self.merged.load(Ordering::Relaxed)
    }

    fn reader(&self) -> Result<&Pool, StoreError> {
        self.writer.ensure_open()?;
        Ok(self.pool.raw())
    }

    /// The global row of `xid` without its branches.
    pub async fn load_global(&self, xid: &str) -> Result<Option<GlobalRecord>, StoreError> {
        let rows = self
            .reader()?
            .fetch_all(&self.sql.load_global, &[Arg::Str(xid)])
            .await
            .map_err(|e| store_error("reading a global session", e))?;
        rows.first().map(|row| decode_global(row, "")).transpose()
    }

    /// Global rows whose status is one of `statuses` (all rows when empty), oldest
    /// `gmt_modified` first (then by xid), skipping `offset` rows and returning at most `limit`:
    /// Seata's status query (`… ORDER BY gmt_modified LIMIT ?`), with paging.
    pub async fn query_globals(
        &self,
        statuses: &[GlobalStatus],
        limit: u32,
        offset: u64,
    ) -> Result<Vec<GlobalRecord>, StoreError> {
        let pool = self.reader()?;
        let filter = status_filter(statuses);
        let sql = self.sql.dialect.sql(&format!(
            "SELECT {} FROM {}{filter} ORDER BY gmt_modified, xid LIMIT ? OFFSET ?",
            self.sql.global_columns, self.sql.global_table
        ));
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let rows = pool
            .fetch_all(&sql, &[Arg::I64(i64::from(limit)), Arg::I64(offset)])
            .await
            .map_err(|e| store_error("querying global sessions", e))?;
        rows.iter().map(|row| decode_global(row, "")).collect()
    }

    /// Sessions that may need recovery work at `now_ms` (see [`SessionStore::scan_due`]): one
    /// indexed query, least recently modified first.
    pub async fn due_globals(
        &self,
        now_ms: i64,
        grace_ms: i64,
        dead_ms: i64,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<GlobalRecord>, StoreError> {
        let pool = self.reader()?;
        let sql = self.sql.dialect.sql(&format!(
            "SELECT {} FROM {} WHERE (status = 1 AND begin_time + timeout < ?) \
             OR (status IN (3, 5, 6, 7, 8) AND begin_time + ? <= ?) \
             OR (status IN (2, 4) AND begin_time + ? <= ?) ORDER BY gmt_modified, xid LIMIT ? OFFSET ?",
            self.sql.global_columns, self.sql.global_table
        ));
        let args = [
            Arg::I64(now_ms),
            Arg::I64(grace_ms),
            Arg::I64(now_ms),
            Arg::I64(dead_ms),
            Arg::I64(now_ms),
            Arg::I64(i64::try_from(limit).unwrap_or(i64::MAX)),
            Arg::I64(i64::try_from(offset).unwrap_or(i64::MAX)),
        ];
        let rows = pool.fetch_all(&sql, &args).await.map_err(|e| store_error("querying due sessions", e))?;
        rows.iter().map(|row| decode_global(row, "")).collect()
    }

    /// Like [`query_globals`](Self::query_globals) from the first row, with each session's
    /// branches (read with one `xid IN (…)` query, in registration order).
    pub async fn load_by_status(
        &self,
        statuses: &[GlobalStatus],
        limit: u32,
    ) -> Result<Vec<StoredSession>, StoreError> {
        let globals = self.query_globals(statuses, limit, 0).await?;
        if globals.is_empty() {
            return Ok(Vec::new());
        }
        let xids: Vec<&str> = globals.iter().map(|g| g.xid.as_str()).collect();
        let dialect = self.sql.dialect;
        let sql = dialect.sql(&format!(
            "SELECT {} FROM {} WHERE {} ORDER BY gmt_create, branch_id",
            self.sql.branch_columns,
            self.sql.branch_table,
            dialect.in_list("xid", xids.len())
        ));
        let rows = self
            .reader()?
            .fetch_all(&sql, &[Arg::StrList(&xids)])
            .await
            .map_err(|e| store_error("reading branch sessions", e))?;
        let mut by_xid: HashMap<String, Vec<BranchRecord>> = HashMap::new();
        for row in &rows {
            let branch = decode_branch(row, "")?;
            by_xid.entry(branch.xid.clone()).or_default().push(branch);
        }
        Ok(globals
            .into_iter()
            .map(|global| {
                let branches = by_xid.remove(&global.xid).unwrap_or_default();
                StoredSession { global, branches }
            })
            .collect())
    }

    /// The configured `query-limit`: rows per status query of the recovery jobs.
    pub fn query_limit(&self) -> u32 {
        self.pool.query_limit()
    }
}

fn status_filter(statuses: &[GlobalStatus]) -> String {
    if statuses.is_empty() {
        return String::new();
    }
    let codes: Vec<String> = statuses.iter().map(|s| s.code().to_string()).collect();
    format!(" WHERE status IN ({})", codes.join(", "))
}

#[async_trait::async_trait]
impl SessionStore for DbStore {
    async fn apply(&self, mut ops: Vec<StoreOp>) -> Result<(), StoreError> {
        self.writer.ensure_open()?;
        self.limits.check(&ops)?;
        self.widths.check(&ops)?;
        for op in &ops {
            match (op, &self.sql.locks) {
                (StoreOp::AcquireLocks(r), Some(locks)) => locks.check_widths(&r.owner, &r.rows)?,
                (
                    StoreOp::AcquireLocks(_) | StoreOp::ReleaseLocks { .. } | StoreOp::MarkLocksRollbacking { .. },
                    None,
                ) => return Err(StoreError::Unsupported { what: "row locks" }),
                _ => {}
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        let width = self.widths.transaction_name_width();
        for op in &mut ops {
            if let StoreOp::InsertGlobal(g) = op {
                let cut = truncate(&g.transaction_name, width);
                if cut.len() < g.transaction_name.len() {
                    g.transaction_name = cut.to_owned();
                }
            }
        }
        self.writer.submit(ops).await
    }

    async fn load_all(&self) -> Result<Vec<StoredSession>, StoreError> {
        let pool = self.reader()?;
        let read = |e| store_error("reading all sessions", e);
        let mut tx = pool.begin(Some(self.sql.snapshot())).await.map_err(read)?;
        let globals = tx.fetch_all(&self.sql.all_globals, &[]).await.map_err(read)?;
        let branches = tx.fetch_all(&self.sql.all_branches, &[]).await.map_err(read)?;
        tx.commit().await.map_err(read)?;

        let mut by_xid: HashMap<String, Vec<BranchRecord>> = HashMap::new();
        for row in &branches {
            let branch = decode_branch(row, "")?;
            by_xid.entry(branch.xid.clone()).or_default().push(branch);
        }
        let mut sessions = Vec::with_capacity(globals.len());
        for row in &globals {
            let global = decode_global(row, "")?;
            let branches = by_xid.remove(&global.xid).unwrap_or_default();
            sessions.push(StoredSession { global, branches });
        }
        if !by_xid.is_empty() {
            tracing::warn!(globals = by_xid.len(), "branch rows without a global row ignored");
        }
        Ok(sessions)
    }

    async fn load(&self, xid: &str) -> Result<Option<StoredSession>, StoreError> {
        let rows = self
            .reader()?
            .fetch_all(&self.sql.load_joined, &[Arg::Str(xid)])
            .await
            .map_err(|e| store_error("reading a session", e))?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let global = decode_global(first, "g_")?;
        let mut branches = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.int("b_branch_id").map_err(|e| corrupt_global(xid, &e))?.is_some() {
                branches.push(decode_branch(row, "b_")?);
            }
        }
        Ok(Some(StoredSession { global, branches }))
    }

    async fn close(&self) -> Result<(), StoreError> {
        let result = self.writer.close().await;
        if self.owns_pool && !self.pool.raw().is_closed() {
            self.pool.close().await;
            tracing::info!(url = %self.pool.url(), "db session store closed");
        }
        result
    }

    fn write_stats(&self) -> Option<WriteStats> {
        Some(self.writer.stats())
    }

    /// A database may be written by other TC nodes (or a Java TC) at any time.
    fn is_shared(&self) -> bool {
        true
    }

    fn holds_row_locks(&self) -> bool {
        self.sql.locks.is_some()
    }

    async fn scan_due(
        &self,
        now_ms: i64,
        grace_ms: i64,
        dead_ms: i64,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<GlobalRecord>, StoreError> {
        self.due_globals(now_ms, grace_ms, dead_ms, limit, offset).await
    }

    async fn try_claim(&self, key: &str, owner: &str, ttl: std::time::Duration) -> Result<bool, StoreError> {
        match &self.claims {
            Some(c) => c.acquire(key, owner, ttl).await,
            None => Ok(true), // distributed locking disabled: every node works on everything
        }
    }

    async fn release_claim(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        match &self.claims {
            Some(c) => c.release_and_forget(key, owner).await.map(|_| ()),
            None => Ok(()),
        }
    }
}

/// The write side, driven by the group-commit writer: takes a pooled connection per batch.
struct DbExecutor {
    pool: Pool,
    sql: Arc<Statements>,
    contention_retries: u32,
    /// Requests written by multi-row statements.
    merged: Arc<AtomicU64>,
}

/// Times a batch whose connection was lost before the commit is run again on another
/// connection (safe: nothing of it was committed).
const MAX_RECONNECTS: u32 = 3;

/// Attempts at a batch that drop a request which aborted the transaction (see
/// [`Attempt::Aborted`]) before the whole batch is failed.
const MAX_ABORTS: usize = 4;

/// How one attempt at a batch ended.
enum Attempt {
    /// Committed: one result per request that was not settled before, in order.
    Committed(Vec<Result<(), StoreError>>),
    /// Request `request` failed with `error` and could not be undone alone (PostgreSQL aborts
    /// the whole transaction on an error); nothing of this attempt is written.
    Aborted { request: usize, error: StoreError },
    /// A multi-row statement written without a savepoint did not do exactly what its requests
    /// would have done one by one; rolled back, nothing written: run again with savepoints.
    NeedsSavepoints,
}

/// Why an attempt failed as a whole: the database error and whether it happened while
/// committing (then the outcome is unknown and the batch is not run again).
struct BatchFailure {
    error: sqlx::Error,
    context: &'static str,
    committing: bool,
}

#[async_trait::async_trait]
impl BatchExecutor for DbExecutor {
    async fn execute(&mut self, batch: &[Vec<StoreOp>]) -> BatchResult {
        let mut settled: Vec<Option<Result<(), StoreError>>> = vec![None; batch.len()];
        let (mut aborts, mut contention, mut reconnects) = (0, 0, 0);
        // Multi-row statements run without savepoints until one of them misses (module docs).
        let mut savepoints = false;
        loop {
            match attempt(&self.pool, &self.sql, batch, &settled, &self.merged, savepoints).await {
                Ok(Attempt::NeedsSavepoints) => savepoints = true,
                Ok(Attempt::Committed(results)) => {
                    for (slot, result) in settled.iter_mut().filter(|s| s.is_none()).zip(results) {
                        *slot = Some(result);
                    }
                    return Ok(settled.into_iter().map(|r| r.unwrap_or(Err(StoreError::WriterStopped))).collect());
                }
                Ok(Attempt::Aborted { request, error }) => {
                    aborts += 1;
                    if aborts >= MAX_ABORTS {
                        return Err(error);
                    }
                    tracing::warn!(error = %error, "a request aborted its batch; retrying without it");
                    if let Some(slot) = settled.get_mut(request) {
                        *slot = Some(Err(error));
                    }
                }
                Err(failure) => match Failure::of(&failure.error) {
                    Failure::Contention if contention < self.contention_retries => {
                        contention += 1;
                        tracing::debug!(error = %failure.error, attempt = contention, "batch lost a lock race; retrying");
                        tokio::time::sleep(backoff(contention)).await;
                    }
                    // Nothing was committed: run the batch again on a fresh connection. Not
                    // when the pool could not give one within `max-wait`: the database is down,
                    // and waiting again would hold every caller queued behind this batch for
                    // several times `max-wait` instead of answering FailedStore.
                    Failure::Connection
                        if !failure.committing
                            && reconnects < MAX_RECONNECTS
                            && !matches!(failure.error, sqlx::Error::PoolTimedOut) =>
                    {
                        reconnects += 1;
                        tracing::warn!(error = %failure.error, attempt = reconnects, "connection lost during a batch; retrying");
                    }
                    _ => return Err(store_error(failure.context, failure.error)),
                },
            }
        }
    }

    async fn close(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A growing, jittered pause between attempts after a deadlock.
fn backoff(attempt: u32) -> Duration {
    let base = 5u64.saturating_mul(1 << attempt.min(6));
    Duration::from_millis(base + rand::random::<u64>() % base.max(1))
}

/// Runs the requests of `batch` not yet `settled` in one transaction.
///
/// A run of consecutive requests of one [`MergeKind`] is written with multi-row statements, in
/// pieces of power-of-two sizes. Without `savepoints` (the first attempt) every piece is
/// merged, down to one request: a piece of one is the request's own statements, minus the
/// savepoint a request of several operations would need. With `savepoints`, pieces of at least
/// [`MIN_MERGE`] requests are merged inside a savepoint; if one does not do exactly what its
/// requests would have done one by one (a duplicate, a missing global, a held row lock), it is
/// undone and written again in halves (down to single requests, each in its own savepoint), so
/// every request still gets its own answer.
async fn attempt(
    pool: &Pool,
    sql: &Statements,
    batch: &[Vec<StoreOp>],
    settled: &[Option<Result<(), StoreError>>],
    merged: &AtomicU64,
    savepoints: bool,
) -> Result<Attempt, BatchFailure> {
    let fail = |context: &'static str| move |error| BatchFailure { error, context, committing: false };
    let mut tx = pool.begin(None).await.map_err(fail("starting a transaction"))?;
    let mut pending: Vec<usize> = (0..batch.len()).filter(|&i| settled.get(i).is_some_and(Option::is_none)).collect();
    // Requests of one kind together, so that they share multi-row statements: arriving from
    // many connections, a batch interleaves begins, registrations and commits, and in arrival
    // order its runs of one kind are short. Reordering is safe because the requests of one
    // session never share a batch (the coordinator writes a session's changes one at a time,
    // under the session's lock, waiting for each); the order chosen is a session's lifecycle
    // order anyway.
    pending.sort_by_key(|&i| (kind_rank(&batch[i]), merge_kind(&batch[i])));
    let mut results: Vec<(usize, Result<(), StoreError>)> = Vec::with_capacity(pending.len());
    let mut start = 0;
    while start < pending.len() {
        let kind = pending.get(start).and_then(|&i| merge_kind(&batch[i]));
        let mut end = start + 1;
        while kind.is_some()
            && end < pending.len()
            && end - start < MAX_MERGE
            && pending.get(end).and_then(|&i| merge_kind(&batch[i])) == kind
        {
            end += 1;
        }
        // Sub-runs still to write, first on top. A merged write that fails is split in halves,
        // so one refused request costs a few extra statements, not one per request.
        let min_merge = if savepoints { MIN_MERGE } else { 1 };
        let mut todo = pow2_chunks(pending.get(start..end).unwrap_or_default(), min_merge);
        todo.reverse();
        while let Some(run) = todo.pop() {
            if let (Some(kind), true) = (kind, run.len() >= min_merge) {
                let requests: Vec<&[StoreOp]> = run.iter().map(|&i| batch[i].as_slice()).collect();
                match run_merged(&mut tx, sql, kind, &requests, savepoints).await? {
                    Merged::Written => {
                        merged.fetch_add(u64::try_from(requests.len()).unwrap_or(u64::MAX), Ordering::Relaxed);
                        results.extend(run.iter().map(|&i| (i, Ok(()))));
                    }
                    Merged::Undone => {
                        let (left, right) = run.split_at(run.len() / 2);
                        todo.push(right);
                        todo.push(left);
                    }
                    Merged::Missed => {
                        if let Err(e) = tx.rollback().await {
                            tracing::debug!(error = %e, "rollback after a missed multi-row write");
                        }
                        return Ok(Attempt::NeedsSavepoints);
                    }
                }
                continue;
            }
            for &index in run {
                match run_request(&mut tx, sql, &batch[index]).await? {
                    Outcome::Done(result) => results.push((index, result)),
                    Outcome::Poisoned(error) => {
                        if let Err(e) = tx.rollback().await {
                            tracing::debug!(error = %e, "rollback after an aborted request");
                        }
                        return Ok(Attempt::Aborted { request: index, error });
                    }
                }
            }
        }
        start = end;
    }
    tx.commit().await.map_err(|error| BatchFailure { error, context: "committing", committing: true })?;
    // Back to the batch's order, the order the caller matches answers in.
    results.sort_by_key(|(index, _)| *index);
    Ok(Attempt::Committed(results.into_iter().map(|(_, result)| result).collect()))
}

/// Where a request goes in a batch (see [`attempt`]): a session's lifecycle order, requests
/// that cannot share a statement after the inserts; the ones that release row locks before the
/// ones that take them, so that a row freed in a batch can be taken in the same batch.
fn kind_rank(request: &[StoreOp]) -> u8 {
    match merge_kind(request) {
        Some(MergeKind::InsertGlobal) => 0,
        Some(MergeKind::SetGlobalStatus { releasing: true, .. }) => 1,
        Some(MergeKind::RemoveGlobal { releasing: true }) => 2,
        Some(MergeKind::InsertBranch { locked: _ }) => 3,
        None => 4,
        Some(MergeKind::SetGlobalStatus { releasing: false, .. }) => 5,
        Some(MergeKind::RemoveBranch) => 6,
        Some(MergeKind::RemoveGlobal { releasing: false }) => 7,
    }
}

/// `run` cut into pieces of power-of-two lengths (largest first) while at least `min` long,
/// then the rest: few distinct statement shapes, so the prepared-statement caches stay useful.
/// Halving a failed piece keeps the lengths powers of two.
fn pow2_chunks(run: &[usize], min: usize) -> Vec<&[usize]> {
    let mut chunks = Vec::new();
    let mut rest = run;
    while rest.len() >= min.max(1) {
        let n = 1usize << (usize::BITS - 1 - rest.len().leading_zeros());
        let (chunk, tail) = rest.split_at(n);
        chunks.push(chunk);
        rest = tail;
    }
    if !rest.is_empty() {
        chunks.push(rest);
    }
    chunks
}

/// Fewest requests written with one multi-row statement when savepoints are on (below it, the
/// savepoint around the statement costs more round trips than it saves).
const MIN_MERGE: usize = 4;
/// Most requests in one multi-row statement (a power of two).
const MAX_MERGE: usize = 256;

/// Kinds of requests that can share multi-row statements: one operation, or (when the store
/// holds the row locks) one operation with the lock change of the same transaction that goes
/// with it, written before it as the coordinator sends them (and with a commit's branch count
/// first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum MergeKind {
    InsertGlobal,
    /// Compare-and-set status updates from `from` to `to`; `releasing`: each also releases its
    /// xid's row locks (a commit); `branches`: each expects that many stored branches.
    SetGlobalStatus {
        releasing: bool,
        from: GlobalStatus,
        to: GlobalStatus,
        branches: Option<u32>,
    },
    /// Branch inserts; `locked`: each takes its row locks first (an AT registration).
    InsertBranch {
        locked: bool,
    },
    /// Session removals; `releasing`: each also releases its xid's row locks.
    RemoveGlobal {
        releasing: bool,
    },
    RemoveBranch,
}

fn merge_kind(request: &[StoreOp]) -> Option<MergeKind> {
    use StoreOp::{AcquireLocks, ExpectBranches, InsertBranch, ReleaseLocks, RemoveGlobal, UpdateGlobalStatus};
    let set = |releasing, from: &GlobalStatus, to: &GlobalStatus, branches| {
        Some(MergeKind::SetGlobalStatus { releasing, from: *from, to: *to, branches })
    };
    match request {
        [StoreOp::InsertGlobal(_)] => Some(MergeKind::InsertGlobal),
        [UpdateGlobalStatus { expected: Some(from), status, .. }] => set(false, from, status, None),
        [ReleaseLocks { xid: released }, UpdateGlobalStatus { expected: Some(from), status, xid }]
            if xid == released =>
        {
            set(true, from, status, None)
        }
        [ExpectBranches { xid: counted, count }, UpdateGlobalStatus { expected: Some(from), status, xid }]
            if xid == counted =>
        {
            set(false, from, status, Some(*count))
        }
        [ExpectBranches { xid: counted, count }, ReleaseLocks { xid: released }, UpdateGlobalStatus { expected: Some(from), status, xid }]
            if xid == counted && xid == released =>
        {
            set(true, from, status, Some(*count))
        }
        [InsertBranch(_)] => Some(MergeKind::InsertBranch { locked: false }),
        [AcquireLocks(locks), InsertBranch(b)] if locks.owner.xid == b.xid && locks.owner.branch_id == b.branch_id => {
            Some(MergeKind::InsertBranch { locked: true })
        }
        [RemoveGlobal { .. }] => Some(MergeKind::RemoveGlobal { releasing: false }),
        [ReleaseLocks { xid: released }, RemoveGlobal { xid }] if xid == released => {
            Some(MergeKind::RemoveGlobal { releasing: true })
        }
        [StoreOp::RemoveBranch { .. }] => Some(MergeKind::RemoveBranch),
        _ => None,
    }
}

/// The operation of `request` other than its lock change and branch count (see [`merge_kind`]).
fn main_op(request: &[StoreOp]) -> Option<&StoreOp> {
    request.iter().find(|op| {
        !matches!(op, StoreOp::AcquireLocks(_) | StoreOp::ReleaseLocks { .. } | StoreOp::ExpectBranches { .. })
    })
}

/// Writes `ops` (all of `kind`) with multi-row statements in a savepoint. `Ok(false)`: the
/// statements did not write exactly one row per insert (or failed); they were undone.
/// How a multi-row write ended.
enum Merged {
    /// Every request written as it would have been alone.
    Written,
    /// Missed and undone to its savepoint: write the requests in smaller runs.
    Undone,
    /// Missed without a savepoint: the transaction must be rolled back.
    Missed,
}

/// Writes `ops` (all of `kind`) with one multi-row statement, in a savepoint when `savepoint`.
/// The statement usually does exactly what the requests would have done one by one; a miss (a
/// duplicate, a stale status, a missing global) is rare, so by default the two round trips of a
/// savepoint are saved and a miss costs the batch one more attempt, with savepoints.
async fn run_merged(
    tx: &mut Tx,
    sql: &Statements,
    kind: MergeKind,
    requests: &[&[StoreOp]],
    savepoint: bool,
) -> Result<Merged, BatchFailure> {
    let batch_level = |context: &'static str| move |error| BatchFailure { error, context, committing: false };
    if savepoint {
        tx.raw("SAVEPOINT merged").await.map_err(batch_level("starting a multi-row write"))?;
    }
    let done = merged_statements(tx, sql, kind, requests).await;
    match done {
        Ok(true) => {
            if savepoint {
                tx.raw("RELEASE SAVEPOINT merged").await.map_err(batch_level("finishing a multi-row write"))?;
            }
            Ok(Merged::Written)
        }
        Err(error) if matches!(Failure::of(&error), Failure::Connection | Failure::Closed | Failure::Contention) => {
            Err(BatchFailure { error, context: "writing several requests", committing: false })
        }
        other => {
            if let Err(error) = &other {
                tracing::debug!(error = %error, "multi-row write failed; writing request by request");
            }
            if !savepoint {
                return Ok(Merged::Missed);
            }
            tx.raw("ROLLBACK TO SAVEPOINT merged").await.map_err(batch_level("undoing a multi-row write"))?;
            tx.raw("RELEASE SAVEPOINT merged").await.map_err(batch_level("undoing a multi-row write"))?;
            Ok(Merged::Undone)
        }
    }
}

/// The multi-row statements of a merged run; `Ok(true)` when they did exactly what the requests
/// would have done one by one.
async fn merged_statements(
    tx: &mut Tx,
    sql: &Statements,
    kind: MergeKind,
    requests: &[&[StoreOp]],
) -> Result<bool, sqlx::Error> {
    let ops: Vec<&StoreOp> = requests.iter().filter_map(|r| main_op(r)).collect();
    let expected = u64::try_from(ops.len()).unwrap_or(u64::MAX);
    let xids = || ops.iter().map(|op| op.xid()).collect::<Vec<&str>>();
    let locks = match kind {
        MergeKind::SetGlobalStatus { releasing: true, .. }
        | MergeKind::RemoveGlobal { releasing: true }
        | MergeKind::InsertBranch { locked: true } => match &sql.locks {
            Some(locks) => Some(locks),
            None => return Ok(false), // written one by one, each refused as unsupported
        },
        _ => None,
    };
    match kind {
        MergeKind::InsertGlobal => {
            let mut args = Vec::with_capacity(ops.len() * 9);
            for op in &ops {
                if let StoreOp::InsertGlobal(g) = op {
                    args.extend(global_args(g));
                }
            }
            Ok(tx.execute(&sql.insert_globals(ops.len()), &args).await? == expected)
        }
        MergeKind::SetGlobalStatus { from, to, branches, .. } => {
            let xids = xids();
            let mut args = vec![Arg::I16(i16::from(to.code())), Arg::StrList(&xids), Arg::I16(i16::from(from.code()))];
            if let Some(count) = branches {
                args.push(Arg::I64(i64::from(count)));
            }
            if tx.execute(&sql.set_global_statuses(xids.len(), branches.is_some()), &args).await? != expected {
                return Ok(false);
            }
            if let Some(locks) = locks {
                tx.execute(&locks.release_globals(xids.len()), &[Arg::StrList(&xids)]).await?;
            }
            Ok(true)
        }
        MergeKind::InsertBranch { .. } => {
            if let Some(locks) = locks {
                // Every row of every request in one order (fewer deadlocks with other nodes); a
                // row held by anyone, or wanted by two requests, makes the insert fail: the run is
                // then written one by one, with Seata's check.
                let mut rows: Vec<(&crate::lock::LockOwner, &crate::lock::RowLock)> = Vec::new();
                for request in requests {
                    if let Some(StoreOp::AcquireLocks(r)) = request.first() {
                        let mut seen = std::collections::HashSet::with_capacity(r.rows.len());
                        rows.extend(r.rows.iter().filter(|row| seen.insert(row.row_key())).map(|row| (&r.owner, row)));
                    }
                }
                rows.sort_by(|a, b| a.1.row_key().cmp(b.1.row_key()));
                let wanted = u64::try_from(rows.len()).unwrap_or(u64::MAX);
                if locks.insert_rows(&mut Target::Tx(tx), &rows).await? != wanted {
                    return Ok(false);
                }
            }
            let mut args = Vec::with_capacity(ops.len() * 9);
            for op in &ops {
                if let StoreOp::InsertBranch(b) = op {
                    args.extend(branch_args(b));
                }
            }
            Ok(tx.execute(&sql.insert_branches(ops.len()), &args).await? == expected)
        }
        MergeKind::RemoveGlobal { .. } => {
            let xids = xids();
            if let Some(locks) = locks {
                tx.execute(&locks.release_globals(xids.len()), &[Arg::StrList(&xids)]).await?;
            }
            let (branches, globals) = sql.remove_globals(xids.len());
            tx.execute(&branches, &[Arg::StrList(&xids)]).await?;
            tx.execute(&globals, &[Arg::StrList(&xids)]).await?;
            Ok(true)
        }
        MergeKind::RemoveBranch => {
            let mut args = Vec::with_capacity(ops.len() * 2);
            for op in &ops {
                if let StoreOp::RemoveBranch { xid, branch_id } = op {
                    args.extend([Arg::Str(xid), Arg::I64(*branch_id)]);
                }
            }
            tx.execute(&sql.remove_branches(ops.len()), &args).await?;
            Ok(true)
        }
    }
}

fn global_args(g: &GlobalRecord) -> [Arg<'_>; 9] {
    [
        Arg::Str(&g.xid),
        Arg::I64(g.transaction_id),
        Arg::I16(i16::from(g.status.code())),
        Arg::Str(&g.application_id),
        Arg::Str(&g.transaction_service_group),
        Arg::Str(&g.transaction_name),
        Arg::I32(g.timeout_ms),
        Arg::I64(g.begin_time_ms),
        Arg::OptStr(g.application_data.as_deref()),
    ]
}

fn branch_args(b: &BranchRecord) -> [Arg<'_>; 9] {
    [
        Arg::I64(b.branch_id),
        Arg::Str(&b.xid),
        Arg::I64(b.transaction_id),
        Arg::OptStr(b.resource_group_id.as_deref()),
        Arg::Str(&b.resource_id),
        Arg::Str(b.branch_type.name()),
        Arg::I16(i16::from(b.status.code())),
        Arg::Str(&b.client_id),
        Arg::OptStr(b.application_data.as_deref()),
    ]
}

enum Outcome {
    /// The request's own result; a failed request left nothing behind.
    Done(Result<(), StoreError>),
    /// The request failed and took the transaction with it.
    Poisoned(StoreError),
}

/// Why one operation failed.
enum OpError {
    /// Refused without a database error, or by an error that undid only its statement (MySQL).
    Refused(StoreError),
    /// A database error.
    Db(sqlx::Error, &'static str),
}

/// Runs one request, in a savepoint if it has several operations.
async fn run_request(tx: &mut Tx, sql: &Statements, ops: &[StoreOp]) -> Result<Outcome, BatchFailure> {
    let batch_level = |context: &'static str| move |error| BatchFailure { error, context, committing: false };
    // An acquisition may write some of its rows before it finds a conflict: always undone alone.
    let savepoint = ops.len() > 1 || ops.iter().any(|op| matches!(op, StoreOp::AcquireLocks(_)));
    if savepoint {
        tx.raw("SAVEPOINT request").await.map_err(batch_level("starting a request"))?;
    }
    let mut failure = None;
    for op in ops {
        match apply_op(tx, sql, op).await {
            Ok(()) => {}
            Err(OpError::Refused(e)) => {
                failure = Some((e, false));
                break;
            }
            Err(OpError::Db(error, context)) => match Failure::of(&error) {
                Failure::Connection | Failure::Closed | Failure::Contention => {
                    return Err(BatchFailure { error, context, committing: false });
                }
                Failure::Duplicate | Failure::Other => {
                    failure = Some((StoreError::unavailable(context, error), true));
                    break;
                }
            },
        }
    }
    match failure {
        None => {
            if savepoint {
                tx.raw("RELEASE SAVEPOINT request").await.map_err(batch_level("finishing a request"))?;
            }
            Ok(Outcome::Done(Ok(())))
        }
        Some((error, db_error)) => {
            if savepoint {
                let undone = match tx.raw("ROLLBACK TO SAVEPOINT request").await {
                    Ok(()) => tx.raw("RELEASE SAVEPOINT request").await,
                    Err(e) => Err(e),
                };
                return match undone {
                    Ok(()) => Ok(Outcome::Done(Err(error))),
                    Err(e) if matches!(Failure::of(&e), Failure::Connection | Failure::Closed) => {
                        Err(BatchFailure { error: e, context: "undoing a request", committing: false })
                    }
                    Err(_) => Ok(Outcome::Poisoned(error)),
                };
            }
            // One statement: MySQL undid just that statement; PostgreSQL aborted the transaction.
            if db_error && sql.dialect == Dialect::Postgres {
                Ok(Outcome::Poisoned(error))
            } else {
                Ok(Outcome::Done(Err(error)))
            }
        }
    }
}

async fn apply_op(tx: &mut Tx, sql: &Statements, op: &StoreOp) -> Result<(), OpError> {
    let db = |context: &'static str| move |e| OpError::Db(e, context);
    match op {
        StoreOp::InsertGlobal(g) => {
            let args = global_args(g);
            let duplicate = || OpError::Refused(StoreError::Duplicate { xid: g.xid.clone(), branch_id: None });
            match tx.execute(&sql.insert_global, &args).await {
                Ok(0) => return Err(duplicate()),
                Ok(_) => {}
                Err(e) if sql.dialect == Dialect::MySql && Failure::of(&e) == Failure::Duplicate => {
                    return Err(duplicate())
                }
                Err(e) => return Err(OpError::Db(e, "inserting a global session")),
            }
        }
        StoreOp::UpdateGlobalStatus { xid, expected, status } => {
            let new = Arg::I16(i16::from(status.code()));
            let matched = match expected {
                Some(expected) => {
                    tx.execute(&sql.update_global_cas, &[new, Arg::Str(xid), Arg::I16(i16::from(expected.code()))])
                        .await
                }
                None => tx.execute(&sql.update_global, &[new, Arg::Str(xid)]).await,
            }
            .map_err(db("updating a global status"))?;
            if matched == 0 {
                return Err(global_miss(tx, sql, xid, *expected).await);
            }
        }
        StoreOp::RemoveGlobal { xid } => {
            tx.execute(&sql.delete_branches_of, &[Arg::Str(xid)]).await.map_err(db("removing branch sessions"))?;
            tx.execute(&sql.delete_global, &[Arg::Str(xid)]).await.map_err(db("removing a global session"))?;
        }
        StoreOp::InsertBranch(b) => {
            let mut args = branch_args(b).to_vec();
            args.push(Arg::Str(&b.xid));
            args.push(Arg::Str(b.branch_type.name()));
            let duplicate =
                || OpError::Refused(StoreError::Duplicate { xid: b.xid.clone(), branch_id: Some(b.branch_id) });
            let inserted = match tx.execute(&sql.insert_branch, &args).await {
                Ok(n) => n,
                Err(e) if sql.dialect == Dialect::MySql && Failure::of(&e) == Failure::Duplicate => {
                    return Err(duplicate())
                }
                Err(e) => return Err(OpError::Db(e, "inserting a branch session")),
            };
            if inserted == 0 {
                // No global row (both dialects), or (PostgreSQL) the branch id is taken.
                let global = match sql.dialect {
                    Dialect::MySql => Vec::new(),
                    Dialect::Postgres => tx
                        .fetch_all(&sql.global_status, &[Arg::Str(&b.xid)])
                        .await
                        .map_err(db("reading a global session"))?,
                };
                return Err(if global.is_empty() {
                    OpError::Refused(StoreError::NotFound { xid: b.xid.clone(), branch_id: None })
                } else {
                    duplicate()
                });
            }
        }
        StoreOp::UpdateBranch { xid, branch_id, status, application_data } => {
            let args = [
                Arg::I16(i16::from(status.code())),
                Arg::OptStr(application_data.as_deref()),
                Arg::Str(xid),
                Arg::I64(*branch_id),
            ];
            let matched = tx.execute(&sql.update_branch, &args).await.map_err(db("updating a branch session"))?;
            if matched == 0 {
                return Err(OpError::Refused(StoreError::NotFound { xid: xid.clone(), branch_id: Some(*branch_id) }));
            }
        }
        StoreOp::RemoveBranch { xid, branch_id } => {
            tx.execute(&sql.delete_branch, &[Arg::Str(xid), Arg::I64(*branch_id)])
                .await
                .map_err(db("removing a branch session"))?;
        }
        StoreOp::AcquireLocks(r) => {
            let locks = sql.locks.as_ref().ok_or(OpError::Refused(StoreError::Unsupported { what: "row locks" }))?;
            match locks.acquire_in(tx, &r.owner, &r.rows, r.auto_commit).await {
                Ok(Ok(_)) => {}
                Ok(Err(conflict)) => return Err(OpError::Refused(StoreError::LockConflict(conflict))),
                Err(e) => return Err(OpError::Db(e, "acquiring row locks")),
            }
        }
        StoreOp::ExpectBranches { xid, count } => {
            let rows = tx.fetch_all(&sql.branch_count, &[Arg::Str(xid)]).await.map_err(db("counting branches"))?;
            let actual = rows.first().map(|r| r.int("n")).transpose().map_err(db("counting branches"))?.flatten();
            let actual = u64::try_from(actual.unwrap_or(0)).unwrap_or(0);
            if actual != u64::from(*count) {
                return Err(OpError::Refused(StoreError::BranchesChanged {
                    xid: xid.clone(),
                    expected: *count,
                    actual,
                }));
            }
        }
        StoreOp::ReleaseLocks { xid } => {
            let locks = sql.locks.as_ref().ok_or(OpError::Refused(StoreError::Unsupported { what: "row locks" }))?;
            tx.execute(locks.release_global(), &[Arg::Str(xid)]).await.map_err(db("releasing row locks"))?;
        }
        StoreOp::MarkLocksRollbacking { xid } => {
            let locks = sql.locks.as_ref().ok_or(OpError::Refused(StoreError::Unsupported { what: "row locks" }))?;
            tx.execute(locks.mark_rollbacking(), &[Arg::Str(xid)])
                .await
                .map_err(db("marking row locks as rolling back"))?;
        }
    }
    Ok(())
}

/// Why an update of a global status matched no row: the xid is absent, or (compare-and-set)
/// another status is stored.
async fn global_miss(tx: &mut Tx, sql: &Statements, xid: &str, expected: Option<GlobalStatus>) -> OpError {
    let rows = match tx.fetch_all(&sql.global_status, &[Arg::Str(xid)]).await {
        Ok(rows) => rows,
        Err(e) => return OpError::Db(e, "reading a global status"),
    };
    let not_found = || OpError::Refused(StoreError::NotFound { xid: xid.to_owned(), branch_id: None });
    let (Some(row), Some(expected)) = (rows.first(), expected) else {
        return not_found();
    };
    match row.int("status") {
        Ok(Some(code)) => match decode_status::<GlobalStatus>(code) {
            Some(actual) => OpError::Refused(StoreError::Conflict { xid: xid.to_owned(), expected, actual }),
            None => OpError::Refused(corrupt_global_reason(xid, format!("unknown global status {code}"))),
        },
        Ok(None) => OpError::Refused(corrupt_global_reason(xid, "status is NULL".to_owned())),
        Err(e) => OpError::Refused(corrupt_global(xid, &e)),
    }
}

fn decode_status<T: TryFrom<u8>>(code: i64) -> Option<T> {
    u8::try_from(code).ok().and_then(|c| T::try_from(c).ok())
}

fn corrupt_global_reason(xid: &str, reason: String) -> StoreError {
    StoreError::Corrupt { location: format!("global_table xid={xid}"), reason }
}

fn corrupt_global(xid: &str, e: &sqlx::Error) -> StoreError {
    corrupt_global_reason(xid, e.to_string())
}

/// Decodes a global row whose columns carry `prefix`. `NULL` numbers read as 0 and `NULL`
/// texts as empty, as Seata's JDBC code reads them.
fn decode_global(row: &Row, prefix: &str) -> Result<GlobalRecord, StoreError> {
    let col = |name: &str| format!("{prefix}{name}");
    let xid = row
        .text(&col("xid"))
        .map_err(|e| StoreError::Corrupt { location: "global_table".to_owned(), reason: e.to_string() })?
        .unwrap_or_default();
    let bad = |e: sqlx::Error| corrupt_global(&xid, &e);
    let int = |name: &str| row.int(&col(name)).map_err(bad).map(Option::unwrap_or_default);
    let text = |name: &str| row.text(&col(name)).map_err(bad);
    let code = int("status")?;
    let status = decode_status::<GlobalStatus>(code)
        .ok_or_else(|| corrupt_global_reason(&xid, format!("unknown global status {code}")))?;
    let timeout = int("timeout")?;
    let timeout_ms =
        i32::try_from(timeout).map_err(|_| corrupt_global_reason(&xid, format!("timeout {timeout} out of range")))?;
    Ok(GlobalRecord {
        transaction_id: int("transaction_id")?,
        status,
        application_id: text("application_id")?.unwrap_or_default(),
        transaction_service_group: text("transaction_service_group")?.unwrap_or_default(),
        transaction_name: text("transaction_name")?.unwrap_or_default(),
        timeout_ms,
        begin_time_ms: int("begin_time")?,
        application_data: text("application_data")?,
        xid,
    })
}

/// Decodes a branch row whose columns carry `prefix`; `lock_key` is always `None`.
fn decode_branch(row: &Row, prefix: &str) -> Result<BranchRecord, StoreError> {
    let col = |name: &str| format!("{prefix}{name}");
    let branch_id = row
        .int(&col("branch_id"))
        .map_err(|e| StoreError::Corrupt { location: "branch_table".to_owned(), reason: e.to_string() })?
        .unwrap_or_default();
    let corrupt =
        |reason: String| StoreError::Corrupt { location: format!("branch_table branch_id={branch_id}"), reason };
    let bad = |e: sqlx::Error| corrupt(e.to_string());
    let int = |name: &str| row.int(&col(name)).map_err(bad).map(Option::unwrap_or_default);
    let text = |name: &str| row.text(&col(name)).map_err(bad);
    let code = int("status")?;
    let status = decode_status::<BranchStatus>(code).ok_or_else(|| corrupt(format!("unknown branch status {code}")))?;
    let type_name = text("branch_type")?.unwrap_or_default();
    let branch_type =
        BranchType::from_name(&type_name).ok_or_else(|| corrupt(format!("unknown branch type {type_name:?}")))?;
    Ok(BranchRecord {
        branch_id,
        xid: text("xid")?.unwrap_or_default(),
        transaction_id: int("transaction_id")?,
        resource_group_id: text("resource_group_id")?,
        resource_id: text("resource_id")?.unwrap_or_default(),
        branch_type,
        status,
        client_id: text("client_id")?.unwrap_or_default(),
        application_data: text("application_data")?,
        lock_key: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_cut_in_powers_of_two() {
        let run: Vec<usize> = (0..39).collect();
        let lengths: Vec<usize> = pow2_chunks(&run, MIN_MERGE).iter().map(|c| c.len()).collect();
        assert_eq!(lengths, vec![32, 4, 3]);
        assert_eq!(pow2_chunks(&run[..3], MIN_MERGE).iter().map(|c| c.len()).collect::<Vec<_>>(), vec![3]);
        assert!(pow2_chunks(&[], MIN_MERGE).is_empty());
        let ones: Vec<usize> = pow2_chunks(&run[..7], 1).iter().map(|c| c.len()).collect();
        assert_eq!(ones, vec![4, 2, 1], "without savepoints every piece is merged");
        let flat: Vec<usize> = pow2_chunks(&run, MIN_MERGE).concat();
        assert_eq!(flat, run, "order is kept");
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("abc", Some(5)), "abc");
        assert_eq!(truncate("abcdef", Some(3)), "abc");
        assert_eq!(truncate("事务事务", Some(2)), "事务");
        assert_eq!(truncate("abc", None), "abc");
        assert_eq!(truncate("abc", Some(0)), "");
    }

    #[test]
    fn widths_name_the_field() {
        let widths =
            Widths { global: TableInfo::seata(SeataTable::Global), branch: TableInfo::seata(SeataTable::Branch) };
        let mut branch = crate::store::contract::sample_branch("x", 1);
        branch.client_id = "c".repeat(65);
        let err = widths.check(&[StoreOp::InsertBranch(branch)]);
        assert!(matches!(err, Err(StoreError::TooLarge { field: "client_id", len: 65, max: 64 })), "{err:?}");
        let mut global = crate::store::contract::sample_global("x");
        global.transaction_service_group = "组".repeat(32);
        assert!(widths.check(&[StoreOp::InsertGlobal(global.clone())]).is_ok(), "counted in characters");
        global.application_data = Some("d".repeat(2001));
        let err = widths.check(&[StoreOp::InsertGlobal(global)]);
        assert!(matches!(err, Err(StoreError::TooLarge { field: "application_data", .. })), "{err:?}");
    }

    #[test]
    fn statements_use_the_configured_tables_and_dialect() {
        let pg = Statements::new(Dialect::Postgres, "tc.g", "tc.b", None);
        assert_eq!(
            pg.update_global_cas,
            "UPDATE tc.g SET status = $1, gmt_modified = clock_timestamp() WHERE xid = $2 AND status = $3"
        );
        assert!(pg.insert_branch.ends_with(
            "FROM tc.g WHERE xid = $10 AND (status = 1 OR $11 = 'SAGA') ON CONFLICT (branch_id) DO NOTHING"
        ));
        let my = Statements::new(Dialect::MySql, "global_table", "branch_table", None);
        assert_eq!(
            my.update_global_cas,
            "UPDATE global_table SET status = ?, gmt_modified = NOW() WHERE xid = ? AND status = ?"
        );
        assert!(my.insert_branch.contains("NOW(6), NOW(6) FROM global_table WHERE xid = ?"));
    }
}
