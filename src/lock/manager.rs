//! Where AT row locks live: in memory ([`LockTable`], file mode, re-acquired from the stored lock
//! keys at restart) or in Seata's `lock_table` (db mode, shared by every node). The coordinator
//! only sees this trait.

use super::{AcquireOutcome, LockError, LockFilter, LockInfo, LockOptions, LockOwner, LockTable, RowLock};

/// A store of AT global row locks. Every method is all-or-nothing and never waits for another
/// transaction's locks.
#[async_trait::async_trait]
pub trait LockStore: Send + Sync + 'static {
    /// Takes `rows` for `owner` (see [`LockTable::acquire`] for the rules).
    async fn acquire(&self, owner: LockOwner, rows: &[RowLock], opts: LockOptions)
        -> Result<AcquireOutcome, LockError>;
    /// Releases the rows one branch inserted; returns how many.
    async fn release_branch(&self, xid: &str, branch_id: i64) -> Result<usize, LockError>;
    /// Releases every row of a global transaction; returns how many.
    async fn release_global(&self, xid: &str) -> Result<usize, LockError>;
    /// Marks the transaction's rows as held by a rollback (drives fail-fast answers).
    async fn mark_rollbacking(&self, xid: &str) -> Result<(), LockError>;
    /// False if any row is held by another transaction (any holder when `xid` is `None`).
    async fn is_lockable(&self, xid: Option<&str>, rows: &[RowLock]) -> Result<bool, LockError>;
    /// Held locks matching `filter`, newest first (console).
    async fn query(&self, filter: &LockFilter) -> Result<Vec<LockInfo>, LockError>;
    /// Rows currently held, when cheap to know (metrics).
    fn count(&self) -> Option<usize>;
    /// Most rows one acquire may ask for.
    fn max_rows_per_acquire(&self) -> usize;
    /// True when locks live only in this process and must be re-acquired after a restart.
    fn is_volatile(&self) -> bool;
}

#[async_trait::async_trait]
impl LockStore for LockTable {
    async fn acquire(
        &self,
        owner: LockOwner,
        rows: &[RowLock],
        opts: LockOptions,
    ) -> Result<AcquireOutcome, LockError> {
        LockTable::acquire(self, owner, rows, opts)
    }
    async fn release_branch(&self, xid: &str, branch_id: i64) -> Result<usize, LockError> {
        Ok(LockTable::release_branch(self, xid, branch_id))
    }
    async fn release_global(&self, xid: &str) -> Result<usize, LockError> {
        Ok(LockTable::release_global(self, xid))
    }
    async fn mark_rollbacking(&self, xid: &str) -> Result<(), LockError> {
        LockTable::mark_rollbacking(self, xid);
        Ok(())
    }
    async fn is_lockable(&self, xid: Option<&str>, rows: &[RowLock]) -> Result<bool, LockError> {
        Ok(LockTable::is_lockable(self, xid, rows))
    }
    async fn query(&self, filter: &LockFilter) -> Result<Vec<LockInfo>, LockError> {
        Ok(self.snapshot(filter))
    }
    fn count(&self) -> Option<usize> {
        Some(LockTable::count(self))
    }
    fn max_rows_per_acquire(&self) -> usize {
        LockTable::max_rows_per_acquire(self)
    }
    fn is_volatile(&self) -> bool {
        true
    }
}
