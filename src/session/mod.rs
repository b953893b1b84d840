//! Global and branch sessions: plain data and the rules Seata applies to them. No I/O.
//!
//! A live global session is its stored row ([`GlobalRecord`]) plus its branch rows in
//! registration order, and the in-memory `active` flag Seata uses to refuse late branch
//! registrations once a commit or rollback began (TC-BEHAVIOR §2.1).

mod ids;

pub use ids::{transaction_id_of, xid_of, IdGenerator};

use seata_protocol::{BranchStatus, BranchType, GlobalStatus};

use crate::store::{BranchRecord, GlobalRecord, StoredSession};

/// A live global transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalSession {
    /// The stored global row (status included).
    pub global: GlobalRecord,
    /// Branches in registration order.
    pub branches: Vec<BranchRecord>,
    /// False once a commit or rollback started: no more branches (except SAGA ones).
    pub active: bool,
}

impl GlobalSession {
    /// A new session in `Begin`.
    pub fn new(global: GlobalRecord) -> Self {
        GlobalSession { global, branches: Vec::new(), active: true }
    }

    /// A session read back from the store.
    pub fn from_stored(stored: StoredSession) -> Self {
        let active = stored.global.status == GlobalStatus::Begin;
        GlobalSession { global: stored.global, branches: stored.branches, active }
    }

    /// The XID.
    pub fn xid(&self) -> &str {
        &self.global.xid
    }

    /// The current status.
    pub fn status(&self) -> GlobalStatus {
        self.global.status
    }

    /// True when every branch can be committed in the background: AT branches and branches whose
    /// phase one failed (`GlobalSession.canBeCommittedAsync`). Also true with no branches.
    pub fn can_be_committed_async(&self) -> bool {
        self.branches.iter().all(branch_commits_async)
    }

    /// A SAGA session: its first branch is SAGA, or it has none and its name starts with
    /// `$Saga_` (`SagaCore`).
    pub fn is_saga(&self) -> bool {
        match self.branches.first() {
            Some(b) => b.branch_type == BranchType::SAGA,
            None => self.global.transaction_name.starts_with("$Saga_"),
        }
    }

    /// True when `now_ms` is past the begin time plus the timeout.
    pub fn is_timed_out(&self, now_ms: i64) -> bool {
        now_ms - self.global.begin_time_ms > i64::from(self.global.timeout_ms)
    }

    /// The branch with `branch_id`.
    pub fn branch(&self, branch_id: i64) -> Option<&BranchRecord> {
        self.branches.iter().find(|b| b.branch_id == branch_id)
    }

    /// Removes the branch with `branch_id`; returns whether it was there.
    pub fn remove_branch(&mut self, branch_id: i64) -> bool {
        let before = self.branches.len();
        self.branches.retain(|b| b.branch_id != branch_id);
        self.branches.len() != before
    }
}

/// A branch the async-commit job may finish: AT, or phase one failed.
pub fn branch_commits_async(b: &BranchRecord) -> bool {
    b.branch_type == BranchType::AT || b.status == BranchStatus::PhaseOne_Failed
}

/// Statuses that end a transaction successfully: the session and all its locks go.
pub fn is_success_end(status: GlobalStatus) -> bool {
    matches!(status, GlobalStatus::Committed | GlobalStatus::Rollbacked | GlobalStatus::TimeoutRollbacked)
}

/// Statuses after which a stored session is dropped at restart (TC-BEHAVIOR §5.6): it is over
/// and nothing is left to do or to show.
pub fn is_discarded_at_restart(status: GlobalStatus) -> bool {
    matches!(
        status,
        GlobalStatus::UnKnown
            | GlobalStatus::Committed
            | GlobalStatus::Rollbacked
            | GlobalStatus::TimeoutRollbacked
            | GlobalStatus::Finished
            | GlobalStatus::Deleting
    )
}

/// Failure-final statuses whose AT locks stay held to protect the data (TC-BEHAVIOR §2.3).
pub fn keeps_locks_when_failed(status: GlobalStatus, unlock_on_retry_timeout: bool) -> bool {
    match status {
        GlobalStatus::RollbackFailed | GlobalStatus::TimeoutRollbackFailed => true,
        GlobalStatus::RollbackRetryTimeout => !unlock_on_retry_timeout,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn branch(t: BranchType, s: BranchStatus) -> BranchRecord {
        BranchRecord {
            branch_id: 1,
            xid: "x".into(),
            transaction_id: 1,
            resource_group_id: None,
            resource_id: "r".into(),
            branch_type: t,
            status: s,
            client_id: "app:127.0.0.1:1".into(),
            application_data: None,
            lock_key: None,
        }
    }

    fn session(name: &str) -> GlobalSession {
        GlobalSession::new(GlobalRecord {
            xid: "127.0.0.1:8091:1".into(),
            transaction_id: 1,
            status: GlobalStatus::Begin,
            application_id: "app".into(),
            transaction_service_group: "g".into(),
            transaction_name: name.into(),
            timeout_ms: 1000,
            begin_time_ms: 10_000,
            application_data: None,
        })
    }

    #[test]
    fn async_commit_needs_only_at_or_failed_branches() {
        let mut s = session("tx");
        assert!(s.can_be_committed_async());
        s.branches.push(branch(BranchType::AT, BranchStatus::Registered));
        s.branches.push(branch(BranchType::TCC, BranchStatus::PhaseOne_Failed));
        assert!(s.can_be_committed_async());
        s.branches.push(branch(BranchType::TCC, BranchStatus::Registered));
        assert!(!s.can_be_committed_async());
    }

    #[test]
    fn saga_is_decided_by_first_branch_or_name() {
        assert!(session("$Saga_order").is_saga());
        assert!(!session("order").is_saga());
        let mut s = session("order");
        s.branches.push(branch(BranchType::SAGA, BranchStatus::Registered));
        assert!(s.is_saga());
    }

    #[test]
    fn timeout_is_strictly_after_begin_plus_timeout() {
        let s = session("tx");
        assert!(!s.is_timed_out(11_000));
        assert!(s.is_timed_out(11_001));
    }
}
