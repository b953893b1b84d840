//! [`DistributedLocker`]: Seata's `distributed_lock` protocol (`DataBaseDistributedLocker`),
//! which lets one node at a time run a recovery job, or claim anything else named by a key.
//!
//! * acquire(key, value, ttl), in one transaction: `SELECT … FOR UPDATE` the key's row; no row →
//!   insert `(key, value, now + ttl)`, acquired; a row whose `expire` is not yet past → not
//!   acquired; otherwise update it to `(value, now + ttl)`, acquired.
//! * release(key, value): the same `SELECT … FOR UPDATE`; a row held (unexpired) by another value
//!   is left alone; otherwise it is freed (`lock_value = ' '`, `expire = 0`).
//!
//! `expire` is an absolute time in epoch milliseconds from this machine's clock, so the clocks
//! of the nodes must roughly agree (as with Java nodes). Values are Seata's `ip:port` of the
//! holder; a lock held by a value is not re-entrant for that value until it expires or is
//! released, exactly as in Seata.

use std::time::Duration;

use crate::store::StoreError;

use super::conn::{store_error, Arg, Failure, Pool};
use super::locks::now_millis;
use super::schema::{SeataTable, TableInfo};
use super::{DbOptions, DbPool};

/// `lock_value` of a free lock.
const FREE: &str = " ";

/// Seata's `distributed_lock` protocol on the configured table.
#[derive(Clone)]
pub struct DistributedLocker {
    pool: DbPool,
    widths: TableInfo,
    select: String,
    insert: String,
    update: String,
    renew: String,
    delete: String,
}

impl std::fmt::Debug for DistributedLocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistributedLocker").field("url", &self.pool.url()).finish()
    }
}

/// Who holds a distributed lock, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistributedLockRow {
    /// `lock_value`: the holder, or `" "` when free.
    pub value: String,
    /// `expire`: epoch milliseconds; 0 when free.
    pub expire_ms: i64,
}

impl DistributedLocker {
    /// Opens the locker on `pool`; `None` when `distributed-lock-table` is blank (every node runs
    /// every job, as in Seata). Checks the table, creating it (with Seata's seed rows) if
    /// `options.create_missing_tables` is set.
    pub async fn open(pool: DbPool, options: &DbOptions) -> Result<Option<DistributedLocker>, StoreError> {
        let Some(name) = pool.tables().distributed_lock.clone() else {
            return Ok(None);
        };
        let found =
            super::schema::ensure(pool.raw(), &[(SeataTable::DistributedLock, &name)], options.create_missing_tables)
                .await?;
        let widths = found
            .get(&SeataTable::DistributedLock)
            .cloned()
            .unwrap_or_else(|| TableInfo::seata(SeataTable::DistributedLock));
        let d = pool.dialect();
        Ok(Some(DistributedLocker {
            select: d.sql(&format!("SELECT lock_key, lock_value, expire FROM {name} WHERE lock_key = ? FOR UPDATE")),
            insert: d.sql(&format!("INSERT INTO {name} (lock_key, lock_value, expire) VALUES (?, ?, ?)")),
            update: d.sql(&format!("UPDATE {name} SET lock_value = ?, expire = ? WHERE lock_key = ?")),
            renew: d
                .sql(&format!("UPDATE {name} SET expire = ? WHERE lock_key = ? AND lock_value = ? AND expire >= ?")),
            delete: d.sql(&format!("DELETE FROM {name} WHERE lock_key = ? AND lock_value = ?")),
            pool,
            widths,
        }))
    }

    fn raw(&self) -> &Pool {
        self.pool.raw()
    }

    fn check(&self, key: &str, value: &str) -> Result<(), StoreError> {
        for (field, v) in [("lock_key", key), ("lock_value", value)] {
            let len = v.chars().count();
            if let Some(max) = self.widths.width(SeataTable::DistributedLock, field) {
                if len > max {
                    return Err(StoreError::TooLarge { field, len, max });
                }
            }
        }
        Ok(())
    }

    /// Takes `key` for `value` until now + `ttl`. `Ok(false)`: someone holds it (or won a race
    /// for it). An error means the database failed; treat it as not acquired.
    pub async fn acquire(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.check(key, value)?;
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let result = async {
            let mut tx = self.raw().begin(None).await?;
            let rows = tx.fetch_all(&self.select, &[Arg::Str(key)]).await?;
            let now = now_millis();
            let expire = now.saturating_add(ttl);
            match rows.first() {
                None => {
                    tx.execute(&self.insert, &[Arg::Str(key), Arg::Str(value), Arg::I64(expire)]).await?;
                }
                Some(row) if row.int("expire")?.unwrap_or(0) >= now => {
                    tx.commit().await?;
                    return Ok(false);
                }
                Some(_) => {
                    tx.execute(&self.update, &[Arg::Str(value), Arg::I64(expire), Arg::Str(key)]).await?;
                }
            }
            tx.commit().await?;
            Ok(true)
        }
        .await;
        lost_race_is_no(result, "acquiring a distributed lock")
    }

    /// Frees `key` unless another value holds it unexpired. `Ok(true)`: the row is now free;
    /// `Ok(false)`: another value holds it, or there is no such key.
    pub async fn release(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        self.check(key, value)?;
        let result = async {
            let mut tx = self.raw().begin(None).await?;
            let rows = tx.fetch_all(&self.select, &[Arg::Str(key)]).await?;
            let Some(row) = rows.first() else {
                tx.commit().await?;
                tracing::warn!(key, "release of a distributed lock that has no row");
                return Ok(false);
            };
            let held_by = row.text("lock_value")?.unwrap_or_default();
            if row.int("expire")?.unwrap_or(0) >= now_millis() && held_by != value {
                tx.commit().await?;
                return Ok(false);
            }
            tx.execute(&self.update, &[Arg::Str(FREE), Arg::I64(0), Arg::Str(key)]).await?;
            tx.commit().await?;
            Ok(true)
        }
        .await;
        lost_race_is_no(result, "releasing a distributed lock")
    }

    /// Deletes `key` if `value` holds it (expired or not): for short-lived keys such as the
    /// per-transaction recovery claims, which would otherwise leave one free row per transaction.
    /// Seata's job keys are released with [`release`](Self::release) instead and keep their rows.
    pub async fn release_and_forget(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        self.check(key, value)?;
        let n = self.raw().execute(&self.delete, &[Arg::Str(key), Arg::Str(value)]).await;
        lost_race_is_no(n.map(|n| n > 0), "deleting a distributed lock")
    }

    /// Extends `key` to now + `ttl` if `value` holds it unexpired (an extension of Seata's
    /// protocol for long claims). `Ok(false)`: it does not hold it any more.
    pub async fn renew(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.check(key, value)?;
        let now = now_millis();
        let expire = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let n =
            self.raw().execute(&self.renew, &[Arg::I64(expire), Arg::Str(key), Arg::Str(value), Arg::I64(now)]).await;
        lost_race_is_no(n.map(|n| n > 0), "renewing a distributed lock")
    }

    /// The stored row of `key`, if any (diagnostics and tests).
    pub async fn get(&self, key: &str) -> Result<Option<DistributedLockRow>, StoreError> {
        let sql = self.select.replace(" FOR UPDATE", "");
        let rows = self
            .raw()
            .fetch_all(&sql, &[Arg::Str(key)])
            .await
            .map_err(|e| store_error("reading a distributed lock", e))?;
        let read = |e| store_error("reading a distributed lock", e);
        match rows.first() {
            None => Ok(None),
            Some(row) => Ok(Some(DistributedLockRow {
                value: row.text("lock_value").map_err(read)?.unwrap_or_default(),
                expire_ms: row.int("expire").map_err(read)?.unwrap_or(0),
            })),
        }
    }
}

/// A lost race (duplicate insert, lock-wait timeout, deadlock) means "not acquired"; other
/// failures are errors.
fn lost_race_is_no(result: Result<bool, sqlx::Error>, context: &'static str) -> Result<bool, StoreError> {
    match result {
        Ok(done) => Ok(done),
        Err(e) if matches!(Failure::of(&e), Failure::Duplicate | Failure::Contention) => {
            tracing::debug!(error = %e, "{context}: lost a race");
            Ok(false)
        }
        Err(e) => Err(store_error(context, e)),
    }
}
