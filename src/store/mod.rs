//! The durable record of every session state change.
//!
//! Memory is the truth for live sessions; the store is what survives a restart. The coordinator
//! changes its in-memory session, describes the change as a list of [`StoreOp`]s, and calls
//! [`SessionStore::apply`]; it answers the client only when `apply` returned `Ok`, because that
//! means the change is on disk ("acknowledged means durable"). The hot path never reads the store:
//! [`SessionStore::load_all`] runs at start-up and [`SessionStore::load`] serves the rare lookup of
//! a transaction this node does not hold in memory.
//!
//! Backends:
//! * [`file::FileStore`]: the embedded default (`store.mode: file`), one SQLite database in WAL
//!   mode with `synchronous=FULL`.
//! * MySQL/PostgreSQL (`store.mode: db`) plug in later through the same trait; they reuse
//!   [`group_commit`] (one transaction and one durable commit for many concurrent callers),
//!   [`StoreLimits`] and the [`contract`] suite.
//!
//! The store never interprets statuses beyond what it persists: it checks the one thing it must
//! (the compare-and-set of [`StoreOp::UpdateGlobalStatus`]) and leaves the transition rules to the
//! coordinator. See `docs/STORE.md` for the design.

use std::sync::Arc;

use seata_protocol::{BranchStatus, BranchType, GlobalStatus};

pub mod contract;
pub mod db;
pub mod file;
pub mod group_commit;
pub mod memory;

pub use db::{DbLockStore, DbOptions, DbPool, DbStore, DistributedLocker};
pub use file::{FileStore, FileStoreOptions};
pub use group_commit::WriteStats;

/// One row of `global_table`: a global transaction as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalRecord {
    /// The XID, `ip:port:transactionId`; primary key (at most 128 bytes).
    pub xid: String,
    /// The transaction id (the number after the XID's last `:`).
    pub transaction_id: i64,
    /// Current global status.
    pub status: GlobalStatus,
    /// Application id of the TM that began the transaction.
    pub application_id: String,
    /// Transaction service group of the TM.
    pub transaction_service_group: String,
    /// Name given by the TM at begin.
    pub transaction_name: String,
    /// Timeout in milliseconds, as sent by the TM.
    pub timeout_ms: i32,
    /// Begin time, epoch milliseconds.
    pub begin_time_ms: i64,
    /// Application data attached to the global transaction (normally none).
    pub application_data: Option<String>,
}

/// One row of `branch_table`, plus the branch's lock key (AT row locks are re-acquired from it at
/// restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchRecord {
    /// Branch id; primary key, unique across all transactions.
    pub branch_id: i64,
    /// XID of the global transaction this branch belongs to.
    pub xid: String,
    /// Transaction id of the global transaction.
    pub transaction_id: i64,
    /// Resource group id (Seata never sets it).
    pub resource_group_id: Option<String>,
    /// Resource id (AT: JDBC URL; TCC: action name).
    pub resource_id: String,
    /// Branch type (stored by name: `AT`, `TCC`, `SAGA`, `XA`).
    pub branch_type: BranchType,
    /// Current branch status.
    pub status: BranchStatus,
    /// `applicationId:ip:port` of the RM channel that registered the branch.
    pub client_id: String,
    /// Application data from register or report.
    pub application_data: Option<String>,
    /// The AT lock key as registered (`table:pk1,pk2;table2:pk`), if any.
    pub lock_key: Option<String>,
}

/// One change to the stored sessions. A call to [`SessionStore::apply`] takes a list of them and
/// applies all or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// Inserts a global session. Fails with [`StoreError::Duplicate`] if the xid is stored.
    InsertGlobal(GlobalRecord),
    /// Sets a global status. Compare-and-set when `expected` is `Some`: fails the caller's request
    /// with [`StoreError::Conflict`] if the stored status differs. Fails with
    /// [`StoreError::NotFound`] if the xid is not stored.
    UpdateGlobalStatus {
        /// The global session to update.
        xid: String,
        /// The status the caller believes is stored, if it wants a compare-and-set.
        expected: Option<GlobalStatus>,
        /// The new status.
        status: GlobalStatus,
    },
    /// Deletes the global row and all its branch rows. Removing an absent xid succeeds.
    RemoveGlobal {
        /// The global session to remove.
        xid: String,
    },
    /// Inserts a branch. Fails with [`StoreError::NotFound`] if its global session is not stored
    /// and with [`StoreError::Duplicate`] if the branch id is stored.
    InsertBranch(BranchRecord),
    /// Sets a branch's status. `application_data: None` keeps the stored value. Fails with
    /// [`StoreError::NotFound`] if the branch is not stored under that xid.
    UpdateBranch {
        /// XID of the branch's global session.
        xid: String,
        /// The branch to update.
        branch_id: i64,
        /// The new status.
        status: BranchStatus,
        /// New application data, or `None` to keep the stored value.
        application_data: Option<String>,
    },
    /// Deletes a branch. Removing an absent branch succeeds.
    RemoveBranch {
        /// XID of the branch's global session.
        xid: String,
        /// The branch to remove.
        branch_id: i64,
    },
    /// Checks that the store holds exactly `count` branches of `xid`; fails the request with
    /// [`StoreError::BranchesChanged`] otherwise. Put before a commit's status change by a node
    /// of a shared store, so that a branch another node registered is never missed without
    /// reading the branches first (supported by shared stores; others refuse it with
    /// [`StoreError::Unsupported`]).
    ExpectBranches {
        /// The global transaction.
        xid: String,
        /// The number of branches the caller knows.
        count: u32,
    },
    /// Takes AT row locks for a branch, with the rules of [`crate::lock::LockTable::acquire`]
    /// (all or nothing, re-entrant per xid, fail-fast against a rolling-back holder). Fails the
    /// request with [`StoreError::LockConflict`] when another transaction holds a row. Only for
    /// stores that keep the row locks ([`SessionStore::holds_row_locks`]); others refuse it with
    /// [`StoreError::Unsupported`].
    AcquireLocks(LockRequest),
    /// Releases every row lock of a global transaction (locks-holding stores only).
    ReleaseLocks {
        /// The global transaction.
        xid: String,
    },
    /// Marks every row lock of a global transaction as held by a rollback (locks-holding stores
    /// only).
    MarkLocksRollbacking {
        /// The global transaction.
        xid: String,
    },
}

/// The row locks one branch registration takes ([`StoreOp::AcquireLocks`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    /// The registering branch.
    pub owner: crate::lock::LockOwner,
    /// The rows, as parsed from the lock key (duplicates allowed; taken once).
    pub rows: Vec<crate::lock::RowLock>,
    /// The requester's `autoCommit` option: a conflict with a rolling-back holder is fail-fast
    /// only when it is false.
    pub auto_commit: bool,
}

impl StoreOp {
    /// The xid this operation touches.
    pub fn xid(&self) -> &str {
        match self {
            StoreOp::InsertGlobal(g) => &g.xid,
            StoreOp::InsertBranch(b) => &b.xid,
            StoreOp::AcquireLocks(r) => &r.owner.xid,
            StoreOp::UpdateGlobalStatus { xid, .. }
            | StoreOp::RemoveGlobal { xid }
            | StoreOp::UpdateBranch { xid, .. }
            | StoreOp::RemoveBranch { xid, .. }
            | StoreOp::ReleaseLocks { xid }
            | StoreOp::MarkLocksRollbacking { xid }
            | StoreOp::ExpectBranches { xid, .. } => xid,
        }
    }
}

/// A stored global session with its branches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The global row.
    pub global: GlobalRecord,
    /// The branch rows, in registration order.
    pub branches: Vec<BranchRecord>,
}

/// Why a store call failed.
///
/// `Conflict`, `NotFound`, `Duplicate` and `TooLarge` concern one request only: nothing of that
/// request was written and other callers are unaffected. `Unavailable` means the database or the
/// disk failed; the request was not written and a retry may succeed once the cause is fixed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A compare-and-set status update found another status.
    #[error("global transaction {xid} has status {actual}, expected {expected}")]
    Conflict {
        /// The global session.
        xid: String,
        /// The status the caller expected.
        expected: GlobalStatus,
        /// The status actually stored.
        actual: GlobalStatus,
    },
    /// The global session (or the branch, when `branch_id` is set) is not stored.
    #[error("{} not stored", describe(xid, *branch_id))]
    NotFound {
        /// The global session.
        xid: String,
        /// The branch, when a branch was looked for.
        branch_id: Option<i64>,
    },
    /// An insert found the global session (or the branch, when `branch_id` is set) already stored.
    #[error("{} already stored", describe(xid, *branch_id))]
    Duplicate {
        /// The global session.
        xid: String,
        /// The branch, when a branch was inserted.
        branch_id: Option<i64>,
    },
    /// A field exceeds the store's size limit; nothing was written.
    #[error("{field} is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// The field, e.g. `xid` or `lock_key`.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The database or the disk failed (I/O error, disk full, connection lost).
    #[error("session store unavailable while {context}: {source}")]
    Unavailable {
        /// What the store was doing.
        context: &'static str,
        /// The cause.
        #[source]
        source: Arc<sqlx::Error>,
    },
    /// A stored row cannot be decoded (unknown status code, bad branch type, ...).
    #[error("corrupt stored data in {location}: {reason}")]
    Corrupt {
        /// Where: table and key.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// The store holds another number of branches than [`StoreOp::ExpectBranches`] expected:
    /// another node registered (or removed) one; nothing of the request was written.
    #[error("global transaction {xid} has {actual} branches stored, expected {expected}")]
    BranchesChanged {
        /// The global session.
        xid: String,
        /// The number the caller expected.
        expected: u32,
        /// The number stored.
        actual: u64,
    },
    /// Another global transaction holds one of the rows of a [`StoreOp::AcquireLocks`]; nothing
    /// of the request was written.
    #[error("global lock conflict on {}", .0.row_key)]
    LockConflict(crate::lock::LockConflict),
    /// The store does not keep what the operation names (row locks in a store that does not
    /// hold them); nothing of the request was written.
    #[error("this store does not keep {what}")]
    Unsupported {
        /// What it does not keep.
        what: &'static str,
    },
    /// The writer stopped after an internal fault (logged); nothing more is written until the
    /// store is opened again.
    #[error("session store writer stopped")]
    WriterStopped,
    /// The store was closed.
    #[error("session store closed")]
    Closed,
}

fn describe(xid: &str, branch_id: Option<i64>) -> String {
    match branch_id {
        Some(id) => format!("branch {id} of global transaction {xid}"),
        None => format!("global transaction {xid}"),
    }
}

impl StoreError {
    /// Wraps a database or I/O error as [`StoreError::Unavailable`].
    pub fn unavailable(context: &'static str, source: sqlx::Error) -> Self {
        StoreError::Unavailable { context, source: Arc::new(source) }
    }

    /// Whether the error concerns only the caller's request (bad input or a lost race) rather
    /// than the store as a whole.
    pub fn is_request_error(&self) -> bool {
        matches!(
            self,
            StoreError::Conflict { .. }
                | StoreError::NotFound { .. }
                | StoreError::Duplicate { .. }
                | StoreError::TooLarge { .. }
                | StoreError::LockConflict(_)
                | StoreError::BranchesChanged { .. }
                | StoreError::Unsupported { .. }
        )
    }
}

/// Size limits checked before anything is written, so that a client cannot make the store hold
/// unbounded or truncated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Maximum xid length in bytes (Seata's column is `VARCHAR(128)`).
    pub max_xid_len: usize,
    /// Maximum application data length in bytes (global and branch).
    pub max_application_data_len: usize,
    /// Maximum lock key length in bytes.
    pub max_lock_key_len: usize,
    /// Maximum length of every other text field (names, resource id, client id).
    pub max_text_len: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_xid_len: 128,
            max_application_data_len: 64_000,
            max_lock_key_len: 1 << 20,
            max_text_len: 4096,
        }
    }
}

impl StoreLimits {
    /// Checks every field of every operation; the first field over its limit is the error.
    pub fn check(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        ops.iter().try_for_each(|op| self.check_op(op))
    }

    fn check_op(&self, op: &StoreOp) -> Result<(), StoreError> {
        let xid = |x: &str| bound("xid", x, self.max_xid_len);
        let text = |field, v: &str| bound(field, v, self.max_text_len);
        let data = |v: &Option<String>| {
            v.as_deref().map_or(Ok(()), |v| bound("application_data", v, self.max_application_data_len))
        };
        match op {
            StoreOp::InsertGlobal(g) => {
                xid(&g.xid)?;
                text("application_id", &g.application_id)?;
                text("transaction_service_group", &g.transaction_service_group)?;
                text("transaction_name", &g.transaction_name)?;
                data(&g.application_data)
            }
            StoreOp::InsertBranch(b) => {
                xid(&b.xid)?;
                if let Some(group) = &b.resource_group_id {
                    text("resource_group_id", group)?;
                }
                text("resource_id", &b.resource_id)?;
                text("client_id", &b.client_id)?;
                data(&b.application_data)?;
                b.lock_key.as_deref().map_or(Ok(()), |k| bound("lock_key", k, self.max_lock_key_len))
            }
            StoreOp::UpdateBranch { xid: x, application_data, .. } => {
                xid(x)?;
                data(application_data)
            }
            StoreOp::AcquireLocks(r) => xid(&r.owner.xid),
            StoreOp::UpdateGlobalStatus { xid: x, .. }
            | StoreOp::RemoveGlobal { xid: x }
            | StoreOp::RemoveBranch { xid: x, .. }
            | StoreOp::ReleaseLocks { xid: x }
            | StoreOp::MarkLocksRollbacking { xid: x }
            | StoreOp::ExpectBranches { xid: x, .. } => xid(x),
        }
    }
}

fn bound(field: &'static str, value: &str, max: usize) -> Result<(), StoreError> {
    if value.len() > max {
        Err(StoreError::TooLarge { field, len: value.len(), max })
    } else {
        Ok(())
    }
}

/// The outcome of a write handed over with [`SessionStore::apply_ordered`], known once its batch
/// has committed or failed.
#[derive(Debug)]
pub struct PendingWrite(Pending);

#[derive(Debug)]
enum Pending {
    Known(Result<(), StoreError>),
    Waiting(tokio::sync::oneshot::Receiver<Result<(), StoreError>>),
}

impl PendingWrite {
    /// A write already committed.
    pub fn committed() -> Self {
        PendingWrite(Pending::Known(Ok(())))
    }

    /// A write whose outcome `answer` will carry; a dropped sender counts as
    /// [`StoreError::WriterStopped`].
    pub fn waiting(answer: tokio::sync::oneshot::Receiver<Result<(), StoreError>>) -> Self {
        PendingWrite(Pending::Waiting(answer))
    }

    /// The outcome if it is known, without waiting: `None` while the write is in flight.
    pub fn outcome(&mut self) -> Option<Result<(), StoreError>> {
        match &mut self.0 {
            Pending::Known(r) => Some(r.clone()),
            Pending::Waiting(rx) => {
                let r = match rx.try_recv() {
                    Ok(r) => r,
                    Err(tokio::sync::oneshot::error::TryRecvError::Empty) => return None,
                    Err(tokio::sync::oneshot::error::TryRecvError::Closed) => Err(StoreError::WriterStopped),
                };
                self.0 = Pending::Known(r.clone());
                Some(r)
            }
        }
    }

    /// Waits for the outcome.
    pub async fn wait(self) -> Result<(), StoreError> {
        match self.0 {
            Pending::Known(r) => r,
            Pending::Waiting(rx) => rx.await.unwrap_or(Err(StoreError::WriterStopped)),
        }
    }
}

/// The durable record of sessions. Implementations are cheap to share behind an `Arc` and safe
/// to call from many tasks at once.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Applies `ops` atomically (all or none) and durably; returns only once they are on disk.
    ///
    /// Requests from concurrent callers may share one database transaction and one commit, but
    /// each request succeeds or fails on its own. If the caller's future is dropped after the
    /// request was handed to the writer, the request may still be written.
    async fn apply(&self, ops: Vec<StoreOp>) -> Result<(), StoreError>;

    /// Hands `ops` over like [`apply`](Self::apply) but returns once they are *ordered*: written
    /// before anything any caller hands over later, in the same or an earlier commit. It does not
    /// wait for the disk; the returned [`PendingWrite`] tells later whether the write committed.
    ///
    /// For a write nothing depends on until a later write of the same session, which is awaited
    /// and so makes both durable (the GlobalBegin: its session matters only once a branch is
    /// registered, and [`StoreOp::InsertBranch`] fails if the global row is not stored). The
    /// default waits for durability; a store shared by several TC nodes must keep it, since
    /// another node may look the session up as soon as the XID is answered.
    async fn apply_ordered(&self, ops: Vec<StoreOp>) -> Result<PendingWrite, StoreError> {
        self.apply(ops).await.map(|()| PendingWrite::committed())
    }

    /// Every stored session with its branches (for recovery at start-up), in begin order.
    async fn load_all(&self) -> Result<Vec<StoredSession>, StoreError>;

    /// One session by xid, or `None` if it is not stored.
    async fn load(&self, xid: &str) -> Result<Option<StoredSession>, StoreError>;

    /// Flushes and closes; later calls fail with [`StoreError::Closed`]. Closing twice succeeds.
    async fn close(&self) -> Result<(), StoreError>;

    /// Counters of the writer, for metrics; `None` if the backend keeps none.
    fn write_stats(&self) -> Option<WriteStats> {
        None
    }

    /// True when the store also keeps the AT row locks in the same database, so that
    /// [`StoreOp::AcquireLocks`], [`StoreOp::ReleaseLocks`] and [`StoreOp::MarkLocksRollbacking`]
    /// commit together with the session changes of their request (db mode: one durable write per
    /// registration and per commit instead of two).
    fn holds_row_locks(&self) -> bool {
        false
    }

    /// True when other processes (other TC nodes, a Java TC) write the same store, so the
    /// coordinator must not trust its memory alone (db mode).
    fn is_shared(&self) -> bool {
        false
    }

    /// Global sessions another node may need to take over at `now_ms`: Begin sessions past their
    /// timeout, phase-two and retry statuses of sessions that began more than `grace_ms` ago, and
    /// Committing/Rollbacking sessions that began more than `dead_ms` ago. At most `limit`, least
    /// recently modified first, skipping `offset`. Only shared stores are asked; the default reads
    /// everything.
    async fn scan_due(
        &self,
        now_ms: i64,
        grace_ms: i64,
        dead_ms: i64,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<GlobalRecord>, StoreError> {
        let all = self.load_all().await?;
        let due = all.into_iter().map(|s| s.global).filter(|g| is_due(g, now_ms, grace_ms, dead_ms));
        Ok(due.skip(offset).take(limit).collect())
    }

    /// Claims `key` for `owner` until `ttl` from now, with Seata's `distributed_lock` protocol
    /// (TC-BEHAVIOR §5.4); true when this caller holds it. Stores used by one node always grant.
    async fn try_claim(&self, key: &str, owner: &str, ttl: std::time::Duration) -> Result<bool, StoreError> {
        let _ = (key, owner, ttl);
        Ok(true)
    }

    /// Gives a claim back (only if `owner` still holds it).
    async fn release_claim(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let _ = (key, owner);
        Ok(())
    }
}

/// Whether a stored global session needs recovery work (see [`SessionStore::scan_due`]).
pub fn is_due(g: &GlobalRecord, now_ms: i64, grace_ms: i64, dead_ms: i64) -> bool {
    match g.status {
        GlobalStatus::Begin => now_ms - g.begin_time_ms > i64::from(g.timeout_ms),
        GlobalStatus::AsyncCommitting
        | GlobalStatus::CommitRetrying
        | GlobalStatus::TimeoutRollbacking
        | GlobalStatus::TimeoutRollbackRetrying
        | GlobalStatus::RollbackRetrying => now_ms - g.begin_time_ms >= grace_ms,
        GlobalStatus::Committing | GlobalStatus::Rollbacking => now_ms - g.begin_time_ms >= dead_ms,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(xid: &str) -> GlobalRecord {
        GlobalRecord {
            xid: xid.to_owned(),
            transaction_id: 1,
            status: GlobalStatus::Begin,
            application_id: "app".to_owned(),
            transaction_service_group: "group".to_owned(),
            transaction_name: "tx".to_owned(),
            timeout_ms: 60_000,
            begin_time_ms: 0,
            application_data: None,
        }
    }

    #[test]
    fn limits_accept_fields_at_the_limit() {
        let limits = StoreLimits::default();
        let ok = StoreOp::InsertGlobal(global(&"x".repeat(128)));
        assert!(limits.check(&[ok]).is_ok());
    }

    #[test]
    fn limits_reject_long_xid_and_name_the_field() {
        let limits = StoreLimits::default();
        let op = StoreOp::RemoveGlobal { xid: "x".repeat(129) };
        match limits.check(&[op]) {
            Err(StoreError::TooLarge { field, len, max }) => {
                assert_eq!((field, len, max), ("xid", 129, 128));
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn limits_reject_long_lock_key_and_application_data() {
        let limits = StoreLimits { max_lock_key_len: 8, max_application_data_len: 4, ..StoreLimits::default() };
        let branch = BranchRecord {
            branch_id: 1,
            xid: "x".to_owned(),
            transaction_id: 1,
            resource_group_id: None,
            resource_id: "r".to_owned(),
            branch_type: BranchType::AT,
            status: BranchStatus::Registered,
            client_id: "c".to_owned(),
            application_data: None,
            lock_key: Some("t:1,2,3,4".to_owned()),
        };
        let err = limits.check(&[StoreOp::InsertBranch(branch)]);
        assert!(matches!(err, Err(StoreError::TooLarge { field: "lock_key", .. })));
        let update = StoreOp::UpdateBranch {
            xid: "x".to_owned(),
            branch_id: 1,
            status: BranchStatus::PhaseOne_Done,
            application_data: Some("12345".to_owned()),
        };
        let err = limits.check(&[update]);
        assert!(matches!(err, Err(StoreError::TooLarge { field: "application_data", .. })));
    }

    #[test]
    fn request_errors_are_told_apart_from_store_failures() {
        assert!(StoreError::NotFound { xid: "x".into(), branch_id: None }.is_request_error());
        assert!(!StoreError::Closed.is_request_error());
        let e = StoreError::unavailable("committing", sqlx::Error::PoolClosed);
        assert!(!e.is_request_error());
        assert!(std::error::Error::source(&e).is_some());
    }
}
