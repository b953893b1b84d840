//! Operator actions on stuck transactions: the console's later-version endpoints (TC-BEHAVIOR
//! §9.2) — retry now, stop and restart retrying, force the commit or the rollback, delete.
//!
//! They follow the rules of the TM path and the recovery jobs: every status change goes through
//! [`Coordinator::transition`] (or an end) and is stored before the answer; phase two runs only
//! under the session's `driving` claim, without the session mutex; lock order is session mutex,
//! then the row-lock table. An action that would lose data or contradict work already done is
//! refused with a message that says why and what to do instead:
//!
//! * a transaction in Begin belongs to its TM: it is never committed or deleted from here, only
//!   rolled back (exactly as the TM's GlobalRollback);
//! * a commit that began (row locks released, branches possibly committed) is never rolled back,
//!   and a rollback that began is never committed;
//! * a session the TC still retries, or whose row locks protect data that was not rolled back, is
//!   deleted only by the explicit force delete, which says what it released.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use seata_protocol::{BranchType, GlobalStatus};
use tracing::{info, warn};

use super::entry::{DriveGuard, SessionEntry};
use super::phase2::Outcome;
use super::Coordinator;
use crate::console::actions::{ActionError, ActionOutcome, ForceTarget};
use crate::lock::{parse_lock_key, LockFilter, LockOptions, LockOwner};
use crate::store::StoreOp;

/// Statuses in which a commit is under way or waits for a retry.
fn commit_family(s: GlobalStatus) -> bool {
    s.is_committing() || s == GlobalStatus::StopCommitOrCommitRetry
}

/// Statuses in which a rollback is under way or waits for a retry.
fn rollback_family(s: GlobalStatus) -> bool {
    s.is_rollbacking() || s == GlobalStatus::StopRollbackOrRollbackRetry
}

/// Failure-final statuses of a commit.
fn commit_failed(s: GlobalStatus) -> bool {
    matches!(s, GlobalStatus::CommitFailed | GlobalStatus::CommitRetryTimeout)
}

/// Failure-final statuses of a rollback.
fn rollback_failed(s: GlobalStatus) -> bool {
    matches!(s, GlobalStatus::RollbackFailed | GlobalStatus::TimeoutRollbackFailed | GlobalStatus::RollbackRetryTimeout)
}

fn busy(xid: &str) -> ActionError {
    ActionError::Busy(format!(
        "phase two of global transaction {xid} is being sent to its RMs right now; try again in a moment"
    ))
}

impl Coordinator {
    fn admin_entry(&self, xid: &str) -> Result<Arc<SessionEntry>, ActionError> {
        self.session(xid).ok_or_else(|| ActionError::NotFound(xid.to_owned()))
    }

    fn admin_claim<'a>(&self, entry: &'a SessionEntry) -> Result<DriveGuard<'a>, ActionError> {
        entry.try_drive().ok_or_else(|| busy(&entry.xid))
    }

    /// `sendCommitOrRollback`: one phase-two round now, for a transaction whose commit or
    /// rollback is under way, waiting for a retry, or stopped.
    pub async fn admin_retry_now(&self, xid: &str) -> Result<ActionOutcome, ActionError> {
        let entry = self.admin_entry(xid)?;
        let _guard = self.admin_claim(&entry)?;
        let status = entry.status();
        let target = if commit_family(status) {
            ForceTarget::Commit
        } else if rollback_family(status) {
            ForceTarget::Rollback
        } else {
            return Err(ActionError::Refused(format!(
                "global transaction {xid} is {status}: there is no commit or rollback to send. This acts on \
                 transactions whose commit or rollback is under way, retrying or stopped; for a failed one use \
                 changeGlobalStatus"
            )));
        };
        info!(xid, %status, "operator: phase two now");
        self.admin_round(&entry, target).await
    }

    /// `stopGlobalSession`: the recovery jobs stop retrying the transaction
    /// (StopCommitOrCommitRetry / StopRollbackOrRollbackRetry) until `startGlobalSession`. Its
    /// row locks stay as they are.
    pub async fn admin_stop_retry(&self, xid: &str) -> Result<ActionOutcome, ActionError> {
        let entry = self.admin_entry(xid)?;
        let _guard = self.admin_claim(&entry)?;
        let mut s = self.lock_entry(&entry).await?;
        let status = s.status();
        let to = match status {
            GlobalStatus::StopCommitOrCommitRetry | GlobalStatus::StopRollbackOrRollbackRetry => {
                return Ok(ActionOutcome::new(xid, status, "retrying was already stopped"));
            }
            s if s.is_committing() => GlobalStatus::StopCommitOrCommitRetry,
            s if s.is_rollbacking() => GlobalStatus::StopRollbackOrRollbackRetry,
            GlobalStatus::Begin => {
                return Err(ActionError::Refused(format!(
                    "global transaction {xid} is still open (Begin): nothing is being retried. Roll it back with \
                     changeGlobalStatus (status=RollbackRetrying) or let its timeout roll it back"
                )))
            }
            other => {
                return Err(ActionError::Refused(format!(
                    "global transaction {xid} is {other}: the TC does not retry it, so there is nothing to stop"
                )))
            }
        };
        self.transition(&entry, &mut s, to, vec![]).await?;
        warn!(xid, from = %status, to = %to, "operator: retrying stopped");
        Ok(ActionOutcome::new(xid, to, format!("retrying stopped ({status} -> {to}); start it again to resume")))
    }

    /// `startGlobalSession`: a stopped transaction is retried again (CommitRetrying /
    /// RollbackRetrying), at the next recovery round.
    pub async fn admin_start_retry(&self, xid: &str) -> Result<ActionOutcome, ActionError> {
        let entry = self.admin_entry(xid)?;
        let _guard = self.admin_claim(&entry)?;
        let mut s = self.lock_entry(&entry).await?;
        let status = s.status();
        let to = match status {
            GlobalStatus::StopCommitOrCommitRetry => GlobalStatus::CommitRetrying,
            GlobalStatus::StopRollbackOrRollbackRetry => GlobalStatus::RollbackRetrying,
            other => {
                return Err(ActionError::Refused(format!(
                    "global transaction {xid} is {other}, not stopped: only a stopped transaction can be started \
                     again"
                )))
            }
        };
        self.transition(&entry, &mut s, to, vec![]).await?;
        entry.failures.store(0, Ordering::Relaxed);
        entry.next_retry_ms.store(0, Ordering::Relaxed);
        info!(xid, from = %status, to = %to, "operator: retrying started");
        Ok(ActionOutcome::new(xid, to, format!("retrying started again ({status} -> {to})")))
    }

    /// `changeGlobalStatus`: drive a transaction to the end of its commit or of its rollback,
    /// now (one phase-two round; if it does not finish the recovery jobs go on retrying).
    ///
    /// Without a target, a failed commit is committed again and a failed rollback rolled back
    /// again (Seata's behaviour). A rollback of a transaction in Begin is its TM's GlobalRollback.
    /// A commit is never forced on a transaction in Begin or on one whose rollback began; a
    /// rollback never on one whose commit began.
    pub async fn admin_change_status(
        &self,
        xid: &str,
        target: Option<ForceTarget>,
    ) -> Result<ActionOutcome, ActionError> {
        let entry = self.admin_entry(xid)?;
        let status = entry.status();
        let target = match target {
            Some(t) => t,
            None if commit_failed(status) => ForceTarget::Commit,
            None if rollback_failed(status) => ForceTarget::Rollback,
            None => {
                return Err(ActionError::Refused(format!(
                    "global transaction {xid} is {status}, not failed: without a target status, changeGlobalStatus \
                     only retries failed transactions (CommitFailed, CommitRetryTimeout, RollbackFailed, \
                     TimeoutRollbackFailed, RollbackRetryTimeout). Pass status=RollbackRetrying to roll back"
                )))
            }
        };
        if target == ForceTarget::Rollback && status == GlobalStatus::Begin {
            info!(xid, "operator: rollback of an open transaction");
            let resp = self.rollback(xid).await;
            let status = resp.global_status;
            let message = if matches!(status, GlobalStatus::Rollbacked | GlobalStatus::TimeoutRollbacked) {
                "rolled back: every branch rolled back".to_owned()
            } else if status.is_rollbacking() && !resp.result.is_success() {
                format!("rollback started; phase two did not finish ({}); the TC keeps retrying it", resp.result.msg)
            } else if status.is_rollbacking() || status == GlobalStatus::RollbackFailed {
                format!("rollback started; now {status}")
            } else {
                return Err(ActionError::Refused(format!(
                    "global transaction {xid} is now {status}: it left Begin before the rollback could start"
                )));
            };
            return Ok(ActionOutcome::new(xid, status, message));
        }
        let _guard = self.admin_claim(&entry)?;
        let mut s = self.lock_entry(&entry).await?;
        let status = s.status();
        let to = match target {
            ForceTarget::Commit => {
                if status == GlobalStatus::Begin {
                    return Err(ActionError::Refused(format!(
                        "global transaction {xid} is still open (Begin): only its TM may commit it; committing from \
                         here could commit work the application has not finished. Roll it back instead"
                    )));
                }
                if rollback_family(status) || rollback_failed(status) {
                    return Err(ActionError::Refused(format!(
                        "global transaction {xid} is {status}: its branches are rolling back or were rolled back; \
                         committing now would leave the data half committed and half rolled back. Finish the \
                         rollback instead (status=RollbackRetrying)"
                    )));
                }
                if status.is_committing() {
                    status
                } else if commit_failed(status) || status == GlobalStatus::StopCommitOrCommitRetry {
                    GlobalStatus::CommitRetrying
                } else {
                    return Err(ActionError::Refused(format!(
                        "global transaction {xid} is {status}: nothing to commit"
                    )));
                }
            }
            ForceTarget::Rollback => {
                if commit_family(status) || commit_failed(status) {
                    return Err(ActionError::Refused(format!(
                        "global transaction {xid} is {status}: its commit began, its row locks were released and \
                         branches may be committed; rolling back now could overwrite other transactions' changes. \
                         Finish the commit instead (status=CommitRetrying) or repair the data by hand"
                    )));
                }
                if !(rollback_family(status) || rollback_failed(status)) {
                    return Err(ActionError::Refused(format!(
                        "global transaction {xid} is {status}: nothing to roll back"
                    )));
                }
                if status == GlobalStatus::RollbackRetryTimeout && self.inner.cfg.rollback_retry_timeout_unlock {
                    self.admin_relock(&s.global.xid, &s.branches).await?;
                }
                self.inner.locks.mark_rollbacking(&s.global.xid).await?;
                match status {
                    s if s.is_rollbacking() => s,
                    GlobalStatus::TimeoutRollbackFailed => GlobalStatus::TimeoutRollbackRetrying,
                    _ => GlobalStatus::RollbackRetrying,
                }
            }
        };
        if to != status {
            self.transition(&entry, &mut s, to, vec![]).await?;
            warn!(xid, from = %status, to = %to, "operator: status changed");
        }
        drop(s);
        entry.failures.store(0, Ordering::Relaxed);
        entry.next_retry_ms.store(0, Ordering::Relaxed);
        let mut outcome = self.admin_round(&entry, target).await?;
        if to != status {
            outcome.message = format!("{status} -> {to}; {}", outcome.message);
        }
        Ok(outcome)
    }

    /// Re-takes the row locks of a rollback whose locks were released at its retry timeout
    /// (`rollback-retry-timeout-unlock-enable`), so the rollback runs protected again. Refused if
    /// another transaction took one of the rows meanwhile.
    async fn admin_relock(&self, xid: &str, branches: &[crate::store::BranchRecord]) -> Result<(), ActionError> {
        for b in branches.iter().filter(|b| b.branch_type == BranchType::AT) {
            let Some(key) = b.lock_key.as_deref() else {
                continue;
            };
            let rows = parse_lock_key(&b.resource_id, key);
            let owner = LockOwner { xid: xid.to_owned(), transaction_id: b.transaction_id, branch_id: b.branch_id };
            if let Err(e) = self.inner.locks.acquire(owner, &rows, LockOptions::default()).await {
                if let Err(le) = self.inner.locks.release_global(xid).await {
                    warn!(xid, error = %le, "could not release the row locks taken back for a refused rollback");
                }
                return Err(ActionError::Refused(format!(
                    "global transaction {xid} released its row locks at its retry timeout and another transaction \
                     now holds some of those rows ({e}); rolling back now could overwrite its changes. Repair the \
                     data by hand, then delete this transaction"
                )));
            }
        }
        Ok(())
    }

    /// One retrying phase-two round (as the recovery jobs run it) under the caller's driving
    /// claim; the status afterwards.
    async fn admin_round(&self, entry: &Arc<SessionEntry>, target: ForceTarget) -> Result<ActionOutcome, ActionError> {
        let xid = entry.xid.clone();
        match target {
            ForceTarget::Commit => {
                let (outcome, removed) = self.commit_branches(entry, true).await;
                let mut s = self.lock_entry(entry).await?;
                match outcome {
                    Outcome::Done | Outcome::OnlyAsyncLeft => {
                        self.end_success(entry, &mut s, GlobalStatus::Committed).await?;
                        Ok(ActionOutcome::new(&xid, GlobalStatus::Committed, "every branch committed"))
                    }
                    Outcome::Unretryable => {
                        self.end_failed(entry, &mut s, GlobalStatus::CommitFailed, removed).await?;
                        Ok(ActionOutcome::new(
                            &xid,
                            GlobalStatus::CommitFailed,
                            "a branch answered that its commit failed for good (PhaseTwo_CommitFailed_Unretryable)",
                        ))
                    }
                    Outcome::Retryable | Outcome::Failed(_) => {
                        self.persist_removed(removed).await?;
                        let left = s.branches.len();
                        Ok(ActionOutcome::new(
                            &xid,
                            s.status(),
                            format!("phase two not finished: {left} branch(es) did not commit yet"),
                        ))
                    }
                }
            }
            ForceTarget::Rollback => {
                let (outcome, removed) = self.rollback_branches(entry, true).await;
                let mut s = self.lock_entry(entry).await?;
                match self.finish_rollback(entry, &mut s, outcome, removed, true).await? {
                    Ok(end) if end.is_final() => {
                        let message = if end == GlobalStatus::Rollbacked || end == GlobalStatus::TimeoutRollbacked {
                            "every branch rolled back"
                        } else {
                            "a branch answered that its rollback failed for good \
                             (PhaseTwo_RollbackFailed_Unretryable)"
                        };
                        Ok(ActionOutcome::new(&xid, end, message))
                    }
                    _ => {
                        let left = s.branches.len();
                        Ok(ActionOutcome::new(
                            &xid,
                            s.status(),
                            format!("phase two not finished: {left} branch(es) did not roll back yet"),
                        ))
                    }
                }
            }
        }
    }

    /// `deleteGlobalSession` (`force = false`) and `forceDeleteGlobalSession` (`force = true`):
    /// forget a transaction the TC cannot finish. Its branches get no phase two.
    ///
    /// Never a transaction in Begin (roll it back instead). Without `force`, only a transaction
    /// the TC no longer retries (failed, or stopped) and that holds no row locks; `force` also
    /// takes retried ones and releases their row locks, and says so.
    pub async fn admin_delete(&self, xid: &str, force: bool) -> Result<ActionOutcome, ActionError> {
        let entry = self.admin_entry(xid)?;
        if entry.status() == GlobalStatus::Begin {
            return Err(ActionError::Refused(format!(
                "global transaction {xid} is still open (Begin); its TM may still commit or roll it back. Roll it \
                 back instead (changeGlobalStatus, status=RollbackRetrying)"
            )));
        }
        let _guard = self.admin_claim(&entry)?;
        let mut s = self.lock_entry(&entry).await?;
        let status = s.status();
        if status == GlobalStatus::Begin {
            return Err(ActionError::Refused(format!("global transaction {xid} is still open (Begin)")));
        }
        let retried = status.is_committing() || status.is_rollbacking();
        let filter = LockFilter { xid: Some(xid.to_owned()), ..LockFilter::default() };
        let locks = self.inner.locks.query(&filter).await?;
        if !force {
            if retried {
                return Err(ActionError::Refused(format!(
                    "global transaction {xid} is {status}: the TC is still retrying it. Stop it first \
                     (stopGlobalSession), or use forceDeleteGlobalSession"
                )));
            }
            if !locks.is_empty() {
                let mut tables: Vec<&str> = locks.iter().map(|l| l.table_name.as_str()).collect();
                tables.sort_unstable();
                tables.dedup();
                return Err(ActionError::Refused(format!(
                    "global transaction {xid} is {status} and holds {} row lock(s) on {} that protect data that was \
                     not rolled back. Repair that data by hand, then use forceDeleteGlobalSession to release them",
                    locks.len(),
                    tables.join(", ")
                )));
            }
        }
        let branches = s.branches.len();
        if status != GlobalStatus::Deleting {
            self.transition(&entry, &mut s, GlobalStatus::Deleting, vec![]).await?;
        }
        let released = self.inner.locks.release_global(xid).await?;
        self.inner
            .store
            .apply(vec![StoreOp::RemoveGlobal { xid: xid.to_owned() }])
            .await
            .map_err(super::TxError::from)?;
        for b in &s.branches {
            self.inner.quiet.remove(&b.branch_id);
        }
        s.branches.clear();
        self.forget(xid);
        drop(s);
        warn!(xid, %status, branches, released_locks = released, force, "operator: global transaction deleted");
        let mut message = format!("deleted (was {status})");
        if branches > 0 {
            message.push_str(&format!(
                "; {branches} branch(es) never finished phase two: their resources may need repair by hand"
            ));
        }
        if released > 0 {
            message.push_str(&format!("; released {released} row lock(s)"));
        }
        Ok(ActionOutcome::new(xid, GlobalStatus::Deleting, message))
    }
}
