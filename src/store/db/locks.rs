//! [`DbLockStore`]: AT global row locks in Seata's `lock_table`, shared by every node.
//!
//! Acquire is Seata's `LockStoreDataBaseDAO.acquireLock`: in one transaction, read the holders
//! of every requested row key (`… WHERE row_key IN (…) ORDER BY status DESC`, one statement),
//! stop at the first row held by another xid (fail-fast if the requester runs with
//! `autoCommit=false` and that row is Rollbacking — rows are examined Rollbacking first, so the
//! answer is fail-fast whenever any conflicting row is), skip rows the same xid holds
//! (re-entrant), then insert the rest with one multi-row `INSERT`. The primary key on `row_key`
//! is the arbiter: a concurrent acquirer that inserted first makes the insert fail, the
//! transaction is rolled back and the answer is a plain conflict. Two acquirers can never both
//! win a row.
//!
//! On MySQL, deletes by `branch_id` or `xid` take gap locks that can deadlock with concurrent
//! inserts (under Seata's Java server too). A lost deadlock is not a holder: the acquisition
//! (check included) or the release runs again, up to `DbOptions::contention_retries` times.
//!
//! The usual acquisition (up to 1000 rows, nobody holding them) is cheaper than Seata's: the
//! rows are inserted at once with one multi-row `INSERT` in autocommit mode (one round trip, one
//! commit; a statement is all or nothing), and only if it collides is the checked transaction
//! above run, which then gives the answer (conflict, fail-fast, re-entrant rows). The outcome is
//! the same as checking first: a row the check would find held is a row whose insert collides,
//! and the primary key decides races either way. `skipCheckLock=true` requests take the same
//! path, whatever their size.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::DbStoreSettings;
use crate::lock::{
    AcquireOutcome, LockConflict, LockError, LockFilter, LockInfo, LockOptions, LockOwner, LockStore, RowLock,
};
use crate::store::StoreError;

use super::conn::{store_error, Arg, Dialect, Failure, Pool, Row, Tx};
use super::schema::{SeataTable, TableInfo};
use super::{DbOptions, DbPool};

/// Rows per multi-row `INSERT`.
const INSERT_CHUNK: usize = 1000;
/// Row keys per check query on MySQL (one placeholder each); PostgreSQL binds one array.
const MYSQL_KEYS_PER_QUERY: usize = 10_000;

/// Lock status `Rollbacking` (`lock_table.status`).
const ROLLBACKING: i64 = 1;

/// The statements on `lock_table`, rendered once for the dialect and table name. Shared with
/// the session store, which writes lock rows in its own batches when it holds the locks
/// ([`SessionStore::holds_row_locks`](crate::store::SessionStore::holds_row_locks)).
#[derive(Debug)]
pub(crate) struct LockSql {
    dialect: Dialect,
    table: String,
    columns: String,
    release_branch: String,
    release_global: String,
    mark_rollbacking: String,
    /// Column widths, checked before writing.
    widths: TableInfo,
}

impl LockSql {
    fn new(dialect: Dialect, table: &str, widths: TableInfo) -> LockSql {
        let s = |sql: String| dialect.sql(&sql);
        LockSql {
            dialect,
            table: table.to_owned(),
            columns: format!(
                "row_key, xid, transaction_id, branch_id, resource_id, table_name, pk, status, {} AS acquired_ms",
                dialect.epoch_millis("gmt_create")
            ),
            release_branch: s(format!("DELETE FROM {table} WHERE branch_id = ?")),
            release_global: s(format!("DELETE FROM {table} WHERE xid = ?")),
            mark_rollbacking: s(format!("UPDATE {table} SET status = {ROLLBACKING} WHERE xid = ?")),
            widths,
        }
    }

    /// The holders of `count` row keys, Rollbacking rows first.
    fn check(&self, count: usize) -> String {
        self.dialect.sql(&format!(
            "SELECT row_key, xid, branch_id, status FROM {} WHERE {} ORDER BY status DESC",
            self.table,
            self.dialect.in_list("row_key", count)
        ))
    }

    /// Inserts `count` rows, each with its own owner.
    fn insert(&self, count: usize) -> String {
        let columns =
            "xid, transaction_id, branch_id, resource_id, table_name, pk, row_key, gmt_create, gmt_modified, status";
        let now = self.dialect.now();
        match self.dialect {
            Dialect::MySql => {
                let row = format!("(?, ?, ?, ?, ?, ?, ?, {now}, {now}, 0)");
                format!("INSERT INTO {} ({columns}) VALUES {}", self.table, vec![row; count.max(1)].join(", "))
            }
            Dialect::Postgres => self.dialect.sql(&format!(
                "INSERT INTO {} ({columns}) SELECT x, t, b, r, n, p, k, {now}, {now}, 0 \
                 FROM UNNEST(CAST(? AS VARCHAR[]), CAST(? AS BIGINT[]), CAST(? AS BIGINT[]), \
                 CAST(? AS VARCHAR[]), CAST(? AS VARCHAR[]), CAST(? AS VARCHAR[]), CAST(? AS VARCHAR[])) \
                 AS u(x, t, b, r, n, p, k)",
                self.table
            )),
        }
    }

    /// Deletes the rows of `count` xids.
    pub(crate) fn release_globals(&self, count: usize) -> String {
        self.dialect.sql(&format!("DELETE FROM {} WHERE {}", self.table, self.dialect.in_list("xid", count)))
    }

    /// Deletes the rows of one xid.
    pub(crate) fn release_global(&self) -> &str {
        &self.release_global
    }

    /// Marks the rows of one xid as held by a rollback.
    pub(crate) fn mark_rollbacking(&self) -> &str {
        &self.mark_rollbacking
    }

    /// Checks the widths of an acquisition's fields against the columns.
    pub(crate) fn check_widths<'r>(
        &self,
        owner: &LockOwner,
        rows: impl IntoIterator<Item = &'r RowLock>,
    ) -> Result<(), StoreError> {
        let bound = |field: &'static str, value: &str| {
            let len = value.chars().count();
            match self.widths.width(SeataTable::Lock, field) {
                Some(max) if len > max => Err(StoreError::TooLarge { field, len, max }),
                _ => Ok(()),
            }
        };
        bound("xid", &owner.xid)?;
        for row in rows {
            bound("row_key", row.row_key())?;
            bound("resource_id", row.resource_id())?;
            bound("table_name", row.table_name())?;
            bound("pk", row.pk())?;
        }
        Ok(())
    }

    /// Inserts `rows` (each with its owner), in chunks of at most [`INSERT_CHUNK`] rows.
    pub(crate) async fn insert_rows(
        &self,
        on: &mut Target<'_>,
        rows: &[(&LockOwner, &RowLock)],
    ) -> Result<u64, sqlx::Error> {
        let mut inserted = 0;
        for chunk in rows.chunks(INSERT_CHUNK) {
            let sql = self.insert(chunk.len());
            let n = match self.dialect {
                Dialect::MySql => {
                    let mut args = Vec::with_capacity(chunk.len() * 7);
                    for (owner, row) in chunk {
                        args.extend([
                            Arg::Str(&owner.xid),
                            Arg::I64(owner.transaction_id),
                            Arg::I64(owner.branch_id),
                            Arg::Str(row.resource_id()),
                            Arg::Str(row.table_name()),
                            Arg::Str(row.pk()),
                            Arg::Str(row.row_key()),
                        ]);
                    }
                    on.execute(&sql, &args).await?
                }
                Dialect::Postgres => {
                    let n = chunk.len();
                    let (mut xids, mut tids, mut bids) =
                        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
                    let (mut resources, mut tables, mut pks, mut keys) =
                        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
                    for (owner, row) in chunk {
                        xids.push(owner.xid.as_str());
                        tids.push(owner.transaction_id);
                        bids.push(owner.branch_id);
                        resources.push(row.resource_id());
                        tables.push(row.table_name());
                        pks.push(row.pk());
                        keys.push(row.row_key());
                    }
                    let args = [
                        Arg::StrList(&xids),
                        Arg::I64List(&tids),
                        Arg::I64List(&bids),
                        Arg::StrList(&resources),
                        Arg::StrList(&tables),
                        Arg::StrList(&pks),
                        Arg::StrList(&keys),
                    ];
                    on.execute(&sql, &args).await?
                }
            };
            inserted += n;
        }
        Ok(inserted)
    }

    /// The check: holders of `keys`, Rollbacking rows first.
    async fn holders(&self, on: &mut Target<'_>, keys: &[&str]) -> Result<Vec<Holder>, sqlx::Error> {
        let chunks: Vec<Vec<&str>> = match self.dialect {
            Dialect::Postgres => vec![keys.to_vec()],
            Dialect::MySql => keys.chunks(MYSQL_KEYS_PER_QUERY).map(pad).collect(),
        };
        let mut holders = Vec::new();
        for chunk in &chunks {
            let query = self.check(chunk.len());
            let args = [Arg::StrList(chunk)];
            for row in &on.fetch_all(&query, &args).await? {
                holders.push(Holder::decode(row)?);
            }
        }
        if chunks.len() > 1 {
            holders.sort_by_key(|h| std::cmp::Reverse(h.status));
        }
        Ok(holders)
    }

    /// Seata's checked acquisition inside a transaction the caller owns (the session store's
    /// batch): read the holders, refuse on a row held by another xid (fail-fast when the
    /// requester runs with `autoCommit=false` and that row is Rollbacking), skip the xid's own
    /// rows, insert the rest. `Ok(Err(_))` is a conflict: the caller undoes whatever this wrote
    /// (its savepoint). A duplicate key on insert (another node inserted a row since the check)
    /// is a conflict too; on PostgreSQL it has aborted the transaction up to that savepoint.
    pub(crate) async fn acquire_in(
        &self,
        tx: &mut Tx,
        owner: &LockOwner,
        rows: &[RowLock],
        auto_commit: bool,
    ) -> Result<Result<AcquireOutcome, LockConflict>, sqlx::Error> {
        let wanted = distinct(rows);
        if wanted.is_empty() {
            return Ok(Ok(AcquireOutcome::default()));
        }
        let keys: Vec<&str> = wanted.iter().map(|r| r.row_key()).collect();
        let mut on = Target::Tx(tx);
        let holders = self.holders(&mut on, &keys).await?;
        if let Some(foreign) = holders.iter().find(|h| h.xid != owner.xid) {
            return Ok(Err(conflict(foreign, !auto_commit && foreign.status == ROLLBACKING)));
        }
        let ours: HashSet<&str> = holders.iter().map(|h| h.row_key.as_str()).collect();
        let mut fresh: Vec<(&LockOwner, &RowLock)> =
            wanted.iter().filter(|r| !ours.contains(r.row_key())).map(|r| (owner, *r)).collect();
        let reentrant = wanted.len() - fresh.len();
        fresh.sort_by(|a, b| a.1.row_key().cmp(b.1.row_key()));
        match self.insert_rows(&mut on, &fresh).await {
            Ok(_) => Ok(Ok(AcquireOutcome { acquired: fresh.len(), reentrant })),
            Err(e) if Failure::of(&e) == Failure::Duplicate => {
                let key = fresh.first().map(|(_, r)| r.row_key().to_owned()).unwrap_or_default();
                Ok(Err(LockConflict { row_key: key, holder_xid: String::new(), holder_branch_id: 0, fail_fast: false }))
            }
            Err(e) => Err(e),
        }
    }
}

/// Where a statement runs: in autocommit mode on the pool, or in a transaction.
pub(crate) enum Target<'a> {
    Pool(&'a Pool),
    Tx(&'a mut Tx),
}

impl Target<'_> {
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, sqlx::Error> {
        match self {
            Target::Pool(pool) => pool.execute(sql, args).await,
            Target::Tx(tx) => tx.execute(sql, args).await,
        }
    }

    async fn fetch_all(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, sqlx::Error> {
        match self {
            Target::Pool(pool) => pool.fetch_all(sql, args).await,
            Target::Tx(tx) => tx.fetch_all(sql, args).await,
        }
    }
}

/// The AT lock store of db mode, on `lock_table`. Cheap to clone.
#[derive(Clone)]
pub struct DbLockStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: DbPool,
    sql: Arc<LockSql>,
    max_rows_per_acquire: usize,
    contention_retries: u32,
}

impl std::fmt::Debug for DbLockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbLockStore")
            .field("url", &self.inner.pool.url())
            .field("table", &self.inner.sql.table)
            .finish()
    }
}

impl DbLockStore {
    /// Connects with `seata.store.db.*` and opens the lock store on a pool of its own.
    pub async fn connect(settings: &DbStoreSettings, options: &DbOptions) -> Result<DbLockStore, StoreError> {
        let pool = DbPool::connect(settings, options).await?;
        DbLockStore::open(pool, options).await
    }

    /// Opens the lock store on `pool`. Checks that `lock_table` exists with Seata's columns,
    /// creating it if `options.create_missing_tables` is set.
    pub async fn open(pool: DbPool, options: &DbOptions) -> Result<DbLockStore, StoreError> {
        let name = pool.tables().lock.clone();
        let found =
            super::schema::ensure(pool.raw(), &[(SeataTable::Lock, &name)], options.create_missing_tables).await?;
        let widths = found.get(&SeataTable::Lock).cloned().unwrap_or_else(|| TableInfo::seata(SeataTable::Lock));
        let sql = Arc::new(LockSql::new(pool.dialect(), &name.to_string(), widths));
        tracing::info!(url = %pool.url(), table = %name, "db lock store opened");
        Ok(DbLockStore {
            inner: Arc::new(Inner {
                pool,
                sql,
                max_rows_per_acquire: options.max_rows_per_acquire,
                contention_retries: options.contention_retries,
            }),
        })
    }

    /// The pool.
    pub fn pool(&self) -> &DbPool {
        &self.inner.pool
    }

    fn raw(&self) -> &Pool {
        self.inner.pool.raw()
    }

    /// Runs one autocommit statement, again after a lost deadlock or lock wait (on MySQL a
    /// delete by `branch_id` or `xid` takes gap locks that concurrent inserts can deadlock
    /// with; the statements are idempotent).
    async fn execute_retrying(&self, sql: &str, args: &[Arg<'_>], context: &'static str) -> Result<u64, LockError> {
        let mut attempt = 0;
        loop {
            match self.raw().execute(sql, args).await {
                Ok(n) => return Ok(n),
                Err(e) if Failure::of(&e) == Failure::Contention && attempt < self.inner.contention_retries => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "{context}: lost a lock race; retrying");
                    tokio::time::sleep(Duration::from_millis(2u64 << attempt.min(6))).await;
                }
                Err(e) => return Err(fail(context)(e)),
            }
        }
    }

    /// Locks matching `filter`, newest first, skipping `offset` and returning at most `limit`
    /// (the console's paged query).
    pub async fn query_page(&self, filter: &LockFilter, limit: u32, offset: u64) -> Result<Vec<LockInfo>, LockError> {
        self.select(filter, Some((limit, offset))).await
    }

    /// The holder of one row key, if any.
    pub async fn holder(&self, row_key: &str) -> Result<Option<LockInfo>, LockError> {
        let sql = self
            .inner
            .sql
            .dialect
            .sql(&format!("SELECT {} FROM {} WHERE row_key = ?", self.inner.sql.columns, self.inner.sql.table));
        let rows = self.raw().fetch_all(&sql, &[Arg::Str(row_key)]).await.map_err(fail("reading a lock"))?;
        rows.first().map(decode_info).transpose()
    }

    async fn select(&self, filter: &LockFilter, page: Option<(u32, u64)>) -> Result<Vec<LockInfo>, LockError> {
        let mut conditions = Vec::new();
        let mut args = Vec::new();
        let texts = [
            ("xid", &filter.xid),
            ("resource_id", &filter.resource_id),
            ("table_name", &filter.table_name),
            ("pk", &filter.pk),
        ];
        for (column, value) in texts {
            if let Some(v) = value {
                conditions.push(format!("{column} = ?"));
                args.push(Arg::Str(v.as_str()));
            }
        }
        for (column, value) in [("transaction_id", filter.transaction_id), ("branch_id", filter.branch_id)] {
            if let Some(v) = value {
                conditions.push(format!("{column} = ?"));
                args.push(Arg::I64(v));
            }
        }
        let mut sql = format!("SELECT {} FROM {}", self.inner.sql.columns, self.inner.sql.table);
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(" ORDER BY gmt_create DESC, row_key");
        if let Some((limit, offset)) = page {
            sql.push_str(" LIMIT ? OFFSET ?");
            args.push(Arg::I64(i64::from(limit)));
            args.push(Arg::I64(i64::try_from(offset).unwrap_or(i64::MAX)));
        }
        let sql = self.inner.sql.dialect.sql(&sql);
        let rows = self.raw().fetch_all(&sql, &args).await.map_err(fail("querying locks"))?;
        rows.iter().map(decode_info).collect()
    }

    /// The statements, for the session store when it holds the locks.
    pub(crate) fn statements(&self) -> Arc<LockSql> {
        Arc::clone(&self.inner.sql)
    }

    async fn holders(&self, tx: Option<&mut Tx>, keys: &[&str]) -> Result<Vec<Holder>, sqlx::Error> {
        let mut on = match tx {
            Some(tx) => Target::Tx(tx),
            None => Target::Pool(self.raw()),
        };
        self.inner.sql.holders(&mut on, keys).await
    }

    /// One attempt: check (unless `skip_check`), insert, commit.
    async fn try_acquire(
        &self,
        owner: &LockOwner,
        wanted: &[&RowLock],
        opts: LockOptions,
        skip_check: bool,
    ) -> Result<Result<AcquireOutcome, Denied>, sqlx::Error> {
        if skip_check && wanted.len() <= INSERT_CHUNK {
            // One statement in autocommit mode: all of its rows or none.
            let mut fresh: Vec<&RowLock> = wanted.to_vec();
            fresh.sort_by(|a, b| a.row_key().cmp(b.row_key()));
            return match self.insert(None, owner, &fresh).await {
                Ok(_) => Ok(Ok(AcquireOutcome { acquired: fresh.len(), reentrant: 0 })),
                Err(e) => match Failure::of(&e) {
                    failure @ (Failure::Duplicate | Failure::Contention) => {
                        let keys = fresh.iter().map(|r| r.row_key().to_owned()).collect();
                        Ok(Err(Denied::Collision(Collision { keys, deadlock: failure == Failure::Contention })))
                    }
                    _ => Err(e),
                },
            };
        }
        let mut tx = self.raw().begin(None).await?;
        let mut fresh: Vec<&RowLock> = wanted.to_vec();
        let mut reentrant = 0;
        if !skip_check {
            let keys: Vec<&str> = wanted.iter().map(|r| r.row_key()).collect();
            let holders = self.holders(Some(&mut tx), &keys).await?;
            if let Some(foreign) = holders.iter().find(|h| h.xid != owner.xid) {
                tx.rollback().await?;
                return Ok(Err(Denied::Conflict(conflict_error(
                    foreign,
                    !opts.auto_commit && foreign.status == ROLLBACKING,
                ))));
            }
            let ours: HashSet<&str> = holders.iter().map(|h| h.row_key.as_str()).collect();
            fresh.retain(|r| !ours.contains(r.row_key()));
            reentrant = wanted.len() - fresh.len();
        }
        if fresh.is_empty() {
            tx.rollback().await?;
            return Ok(Ok(AcquireOutcome { acquired: 0, reentrant }));
        }
        // One order for every acquirer makes deadlocks between overlapping inserts rarer.
        fresh.sort_by(|a, b| a.row_key().cmp(b.row_key()));
        for chunk in fresh.chunks(INSERT_CHUNK) {
            if let Err(e) = self.insert(Some(&mut tx), owner, chunk).await {
                return match Failure::of(&e) {
                    failure @ (Failure::Duplicate | Failure::Contention) => {
                        if let Err(rollback) = tx.rollback().await {
                            tracing::debug!(error = %rollback, "rollback after a lock collision");
                        }
                        let keys = fresh.iter().map(|r| r.row_key().to_owned()).collect();
                        let deadlock = failure == Failure::Contention;
                        Ok(Err(Denied::Collision(Collision { keys, deadlock })))
                    }
                    _ => Err(e),
                };
            }
        }
        tx.commit().await?;
        Ok(Ok(AcquireOutcome { acquired: fresh.len(), reentrant }))
    }

    async fn insert(&self, tx: Option<&mut Tx>, owner: &LockOwner, rows: &[&RowLock]) -> Result<u64, sqlx::Error> {
        let owned: Vec<(&LockOwner, &RowLock)> = rows.iter().map(|r| (owner, *r)).collect();
        let mut on = match tx {
            Some(tx) => Target::Tx(tx),
            None => Target::Pool(self.raw()),
        };
        self.inner.sql.insert_rows(&mut on, &owned).await
    }

    /// After a collision: who holds the contested rows now (best effort, for the answer).
    async fn collision_conflict(&self, owner: &LockOwner, collision: Collision) -> LockError {
        let keys: Vec<&str> = collision.keys.iter().map(String::as_str).collect();
        let holder = match self.holders(None, &keys).await {
            Ok(holders) => holders.into_iter().find(|h| h.xid != owner.xid),
            Err(e) => {
                tracing::debug!(error = %e, "reading the holder after a lock collision");
                None
            }
        };
        let holder = holder.unwrap_or_else(|| Holder {
            row_key: collision.keys.into_iter().next().unwrap_or_default(),
            xid: String::new(),
            branch_id: 0,
            status: 0,
        });
        // Never fail-fast on this path (as in Seata).
        conflict_error(&holder, false)
    }
}

/// Why an attempt took nothing.
enum Denied {
    /// The check found a row held by another transaction.
    Conflict(LockError),
    /// The insert collided with a concurrent acquirer.
    Collision(Collision),
}

/// A collision on insert: another acquirer inserted one of these rows first (a duplicate key),
/// or the insert lost a deadlock or a lock wait against another transaction.
struct Collision {
    keys: Vec<String>,
    deadlock: bool,
}

/// A row found by the check.
struct Holder {
    row_key: String,
    xid: String,
    branch_id: i64,
    status: i64,
}

impl Holder {
    fn decode(row: &Row) -> Result<Holder, sqlx::Error> {
        Ok(Holder {
            row_key: row.text("row_key")?.unwrap_or_default(),
            xid: row.text("xid")?.unwrap_or_default(),
            branch_id: row.int("branch_id")?.unwrap_or_default(),
            status: row.int("status")?.unwrap_or_default(),
        })
    }
}

fn conflict(holder: &Holder, fail_fast: bool) -> LockConflict {
    LockConflict {
        row_key: holder.row_key.clone(),
        holder_xid: holder.xid.clone(),
        holder_branch_id: holder.branch_id,
        fail_fast,
    }
}

fn conflict_error(holder: &Holder, fail_fast: bool) -> LockError {
    LockError::Conflict(conflict(holder, fail_fast))
}

/// The keys padded to a bucket size (powers of two up to 1024, then multiples of 1000) by
/// repeating the last one, so that MySQL sees few distinct statements and its prepared-statement
/// cache stays useful.
fn pad<'a>(keys: &[&'a str]) -> Vec<&'a str> {
    let n = keys.len();
    let target = if n <= 1024 { n.next_power_of_two() } else { n.div_ceil(1000) * 1000 };
    let mut padded = keys.to_vec();
    if let Some(&last) = keys.last() {
        padded.resize(target, last);
    }
    padded
}

fn fail(context: &'static str) -> impl Fn(sqlx::Error) -> LockError {
    move |e| LockError::Store(store_error(context, e))
}

fn decode_info(row: &Row) -> Result<LockInfo, LockError> {
    let bad = |e: sqlx::Error| {
        LockError::Store(StoreError::Corrupt { location: "lock_table".to_owned(), reason: e.to_string() })
    };
    let text = |c: &str| row.text(c).map_err(bad).map(Option::unwrap_or_default);
    let int = |c: &str| row.int(c).map_err(bad).map(Option::unwrap_or_default);
    let millis = u64::try_from(int("acquired_ms")?).unwrap_or(0);
    Ok(LockInfo {
        xid: text("xid")?,
        transaction_id: int("transaction_id")?,
        branch_id: int("branch_id")?,
        resource_id: text("resource_id")?,
        table_name: text("table_name")?,
        pk: text("pk")?,
        row_key: text("row_key")?,
        acquired_at: UNIX_EPOCH + Duration::from_millis(millis),
    })
}

/// The first occurrence of each row key, in request order.
fn distinct(rows: &[RowLock]) -> Vec<&RowLock> {
    let mut seen = HashSet::with_capacity(rows.len());
    rows.iter().filter(|r| seen.insert(r.row_key())).collect()
}

#[async_trait::async_trait]
impl LockStore for DbLockStore {
    async fn acquire(
        &self,
        owner: LockOwner,
        rows: &[RowLock],
        opts: LockOptions,
    ) -> Result<AcquireOutcome, LockError> {
        let limit = self.inner.max_rows_per_acquire;
        if rows.len() > limit {
            return Err(LockError::TooManyRows { requested: Some(rows.len()), limit });
        }
        let wanted = distinct(rows);
        if wanted.is_empty() {
            return Ok(AcquireOutcome::default());
        }
        self.inner.sql.check_widths(&owner, wanted.iter().copied()).map_err(LockError::Store)?;
        // The usual case inserts at once and checks only after a collision (module docs).
        let mut skip_check = opts.skip_check_lock || wanted.len() <= INSERT_CHUNK;
        let mut deadlocks = 0;
        loop {
            match self.try_acquire(&owner, &wanted, opts, skip_check).await {
                Ok(Ok(outcome)) => return Ok(outcome),
                Ok(Err(Denied::Conflict(conflict))) => return Err(conflict),
                // Inserted blindly and collided: check properly (the row may be our own).
                Ok(Err(Denied::Collision(_))) if skip_check => skip_check = false,
                // A lost deadlock is not a holder: look again (a holder shows up in the check).
                Ok(Err(Denied::Collision(c))) if c.deadlock && deadlocks < self.inner.contention_retries => {
                    deadlocks += 1;
                    tokio::time::sleep(Duration::from_millis(1u64 << deadlocks.min(6))).await;
                }
                Ok(Err(Denied::Collision(collision))) => return Err(self.collision_conflict(&owner, collision).await),
                Err(e) if Failure::of(&e) == Failure::Contention && deadlocks < self.inner.contention_retries => {
                    deadlocks += 1;
                    tokio::time::sleep(Duration::from_millis(1u64 << deadlocks.min(6))).await;
                }
                Err(e) => return Err(fail("acquiring row locks")(e)),
            }
        }
    }

    async fn release_branch(&self, _xid: &str, branch_id: i64) -> Result<usize, LockError> {
        let n = self
            .execute_retrying(&self.inner.sql.release_branch, &[Arg::I64(branch_id)], "releasing a branch's locks")
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn release_global(&self, xid: &str) -> Result<usize, LockError> {
        let n = self
            .execute_retrying(&self.inner.sql.release_global, &[Arg::Str(xid)], "releasing a transaction's locks")
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn mark_rollbacking(&self, xid: &str) -> Result<(), LockError> {
        self.execute_retrying(&self.inner.sql.mark_rollbacking, &[Arg::Str(xid)], "marking locks as rolling back")
            .await?;
        Ok(())
    }

    async fn is_lockable(&self, xid: Option<&str>, rows: &[RowLock]) -> Result<bool, LockError> {
        let wanted = distinct(rows);
        if wanted.is_empty() {
            return Ok(true);
        }
        let keys: Vec<&str> = wanted.iter().map(|r| r.row_key()).collect();
        let holders = self.holders(None, &keys).await.map_err(fail("checking row locks"))?;
        Ok(holders.iter().all(|h| xid.is_some_and(|x| !x.is_empty() && x == h.xid)))
    }

    async fn query(&self, filter: &LockFilter) -> Result<Vec<LockInfo>, LockError> {
        self.select(filter, None).await
    }

    fn count(&self) -> Option<usize> {
        None
    }

    fn max_rows_per_acquire(&self) -> usize {
        self.inner.max_rows_per_acquire
    }

    fn is_volatile(&self) -> bool {
        false
    }
}

/// Milliseconds since the epoch, for `distributed_lock.expire`.
pub(crate) fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_keeps_statement_shapes_few() {
        let keys: Vec<String> = (0..1500).map(|i| i.to_string()).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        assert_eq!(pad(&keys[..1]).len(), 1);
        assert_eq!(pad(&keys[..3]), vec!["0", "1", "2", "2"]);
        assert_eq!(pad(&keys[..1000]).len(), 1024);
        assert_eq!(pad(&keys[..1025]).len(), 2000);
        assert!(pad(&[]).is_empty());
    }

    #[test]
    fn insert_statements() {
        let info = || TableInfo::seata(SeataTable::Lock);
        let my = LockSql::new(Dialect::MySql, "lock_table", info());
        let sql = my.insert(2);
        assert_eq!(sql.matches("NOW(), NOW(), 0)").count(), 2);
        assert_eq!(sql.matches('?').count(), 14);
        let pg = LockSql::new(Dialect::Postgres, "lock_table", info());
        assert!(pg.insert(500).contains("UNNEST(CAST($1 AS VARCHAR[]), CAST($2 AS BIGINT[])"), "{}", pg.insert(1));
        assert_eq!(
            pg.check(3),
            "SELECT row_key, xid, branch_id, status FROM lock_table WHERE row_key = ANY($1) ORDER BY status DESC"
        );
    }
}
