//! AT global row locks: which branch of which global transaction holds which database row.
//!
//! * [`parse_lock_key`] turns a BranchRegister's `lockKey` into [`RowLock`]s exactly as Seata
//!   does (early exits included); [`row_key`] is the unit of mutual exclusion.
//! * [`LockOptions`] reads `autoCommit` / `skipCheckLock` from the branch's `applicationData`.
//! * [`LockTable`] holds the locks: all-or-nothing acquire that never waits, re-entrant per xid,
//!   fail-fast when the holder is rolling back, release by branch or by xid.
//!
//! Everything here is plain in-memory logic: no I/O, no `.await`. The design (data structure,
//! lock order, differences from Seata) is in `docs/LOCKS.md`.

mod key;
mod manager;
mod options;
mod table;

use seata_protocol::ExceptionCode;

pub use key::{parse_lock_key, parse_lock_key_limited, row_key, RowLock, ROW_KEY_SEPARATOR};
pub use manager::LockStore;
pub use options::LockOptions;
pub use table::{
    AcquireOutcome, LockFilter, LockInfo, LockOwner, LockTable, LockTableConfig, DEFAULT_MAX_ROWS_PER_ACQUIRE,
    DEFAULT_SHARDS,
};

/// A row another global transaction holds, found while acquiring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockConflict {
    /// The contested row key.
    pub row_key: String,
    /// The XID holding it.
    pub holder_xid: String,
    /// The branch that inserted the holder's lock.
    pub holder_branch_id: i64,
    /// The requester runs with `autoCommit=false` and the holder is rolling back: the client
    /// must stop retrying at once (`LockKeyConflictFailFast`).
    pub fail_fast: bool,
}

/// Why row locks were not acquired.
///
/// The `Display` text is safe to send to clients: it names only the row key (which the client
/// sent) and never the holder's XID; log the fields for that.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LockError {
    /// Another global transaction holds one of the rows.
    #[error("global lock conflict on {}{}", .0.row_key, if .0.fail_fast { " (holder is rolling back)" } else { "" })]
    Conflict(LockConflict),
    /// The request names more rows than one acquire may take.
    #[error("lock key names {} row locks, more than the limit of {limit}", requested.map_or_else(|| "too many".to_owned(), |n| n.to_string()))]
    TooManyRows {
        /// How many rows were asked for, when known (parsing stops counting at the limit).
        requested: Option<usize>,
        /// The configured maximum.
        limit: usize,
    },
    /// The lock store (the database, in db mode) failed; nothing was taken.
    #[error("global lock store failed")]
    Store(#[source] crate::store::StoreError),
}

impl PartialEq for LockError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (LockError::Conflict(a), LockError::Conflict(b)) => a == b,
            (
                LockError::TooManyRows { requested: r1, limit: l1 },
                LockError::TooManyRows { requested: r2, limit: l2 },
            ) => r1 == r2 && l1 == l2,
            // Store failures compare by what they say: the causes are not comparable.
            (LockError::Store(a), LockError::Store(b)) => a.to_string() == b.to_string(),
            _ => false,
        }
    }
}

impl Eq for LockError {}

impl LockError {
    /// The exception code for the BranchRegister response: `LockKeyConflict`,
    /// `LockKeyConflictFailFast`, or `FailedToAddBranch` for an oversized request (the code
    /// Seata uses for an oversized `applicationData`, so clients do not retry it).
    pub fn code(&self) -> ExceptionCode {
        match self {
            LockError::Conflict(c) if c.fail_fast => ExceptionCode::LockKeyConflictFailFast,
            LockError::Conflict(_) => ExceptionCode::LockKeyConflict,
            LockError::TooManyRows { .. } => ExceptionCode::FailedToAddBranch,
            LockError::Store(_) => ExceptionCode::FailedStore,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_fail_fast() {
        let mut conflict = LockConflict {
            row_key: "r^^^t^^^1".to_owned(),
            holder_xid: "10.0.0.1:8091:42".to_owned(),
            holder_branch_id: 7,
            fail_fast: false,
        };
        let plain = LockError::Conflict(conflict.clone());
        assert_eq!(plain.code(), ExceptionCode::LockKeyConflict);
        assert_eq!(plain.to_string(), "global lock conflict on r^^^t^^^1");
        conflict.fail_fast = true;
        let fast = LockError::Conflict(conflict);
        assert_eq!(fast.code(), ExceptionCode::LockKeyConflictFailFast);
        assert!(!fast.to_string().contains("8091"), "holder xid must not leak");
        let big = LockError::TooManyRows { requested: Some(11), limit: 10 };
        assert_eq!(big.code(), ExceptionCode::FailedToAddBranch);
        assert_eq!(big.to_string(), "lock key names 11 row locks, more than the limit of 10");
    }
}
