//! Phase two: sending BranchCommit/BranchRollback and interpreting the answers (TC-BEHAVIOR
//! §2.4, §2.5, §2.6), and the driver the TM path and the recovery jobs share.
//!
//! The session mutex is never held while an RM is asked: the branch list is snapshotted, each
//! answer is applied under the mutex. Branch removals are collected and written together with the
//! next status change (or the end of the session), so a two-branch AT commit costs one store
//! write, not three. A crash between an RM's answer and that write makes the TC send the same
//! phase two again after restart, which every RM treats as a repeat (as Seata does whenever a
//! removal fails).

use std::sync::Arc;
use std::time::{Duration, Instant};

use seata_protocol::{BranchStatus, BranchType, GlobalStatus};
use tracing::{debug, info, warn};

use super::entry::SessionEntry;
use super::rm::{BranchCall, Phase2, SendError};
use super::Coordinator;
use crate::session::branch_commits_async;
use crate::store::{BranchRecord, StoreOp};

/// How a phase-two round ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every branch finished.
    Done,
    /// TM path of a commit: the synchronous branches finished, AT branches remain for the
    /// background.
    OnlyAsyncLeft,
    /// A branch asked to be retried (or did not answer, during a job round).
    Retryable,
    /// A branch failed for good.
    Unretryable,
    /// TM path: a branch could not be reached; the TM gets a Failed answer.
    Failed(String),
}

/// How long to stay quiet about the same failing branch.
const QUIET_PERIOD: Duration = Duration::from_secs(60);

impl Coordinator {
    fn call_for(&self, b: &BranchRecord) -> BranchCall {
        BranchCall {
            xid: b.xid.clone(),
            branch_id: b.branch_id,
            branch_type: b.branch_type,
            resource_id: b.resource_id.clone(),
            client_id: b.client_id.clone(),
            application_data: b.application_data.clone().unwrap_or_default(),
        }
    }

    /// Logs a phase-two failure at most once a minute per branch.
    fn log_quietly(&self, branch_id: i64, xid: &str, phase: Phase2, err: &SendError) {
        let now = Instant::now();
        let loud = match self.inner.quiet.get(&branch_id).map(|t| *t) {
            Some(last) if now.duration_since(last) < QUIET_PERIOD => false,
            _ => {
                self.inner.quiet.insert(branch_id, now);
                true
            }
        };
        if loud {
            warn!(xid, branch_id, ?phase, error = %err, "phase two not delivered; will retry (logged once a minute)");
        } else {
            debug!(xid, branch_id, ?phase, error = %err, "phase two not delivered; will retry");
        }
    }

    /// XA: an RM that no longer knows the branch (XAER_NOTA) is taken as done once the
    /// transaction is old enough (TC-BEHAVIOR §2.4 step 5).
    fn xaer_nota_expired(&self, entry: &SessionEntry) -> bool {
        let timeout = i64::from(entry.timeout_ms);
        let nota = i64::try_from(self.inner.cfg.xaer_nota_retry_timeout.as_millis()).unwrap_or(i64::MAX);
        self.now() > entry.begin_time_ms.saturating_add(timeout).saturating_add(nota.max(timeout))
    }

    async fn remove_branch(
        &self,
        entry: &SessionEntry,
        b: &BranchRecord,
        release_locks: bool,
        removed: &mut Vec<StoreOp>,
    ) {
        let mut s = entry.lock().await;
        s.remove_branch(b.branch_id);
        if release_locks {
            // A failure leaves rows behind until the session's end releases every row of the xid.
            if let Err(e) = self.inner.locks.release_branch(&b.xid, b.branch_id).await {
                warn!(xid = %b.xid, branch_id = b.branch_id, error = %e, "could not release a branch's locks");
            }
        }
        self.inner.quiet.remove(&b.branch_id);
        removed.push(StoreOp::RemoveBranch { xid: b.xid.clone(), branch_id: b.branch_id });
    }

    /// One commit round in registration order. `retrying` is false on the TM path, where AT
    /// branches are left for the background and the first failure stops the round.
    pub(crate) async fn commit_branches(&self, entry: &SessionEntry, retrying: bool) -> (Outcome, Vec<StoreOp>) {
        let (branches, saga) = {
            let s = entry.lock().await;
            (s.branches.clone(), s.is_saga())
        };
        let mut removed = Vec::new();
        if saga {
            return (self.saga_phase2(entry, Phase2::Commit).await, removed);
        }
        let mut failed_delivery = None;
        for b in &branches {
            if !retrying && branch_commits_async(b) {
                continue;
            }
            if b.status == BranchStatus::PhaseOne_Failed
                || (b.branch_type == BranchType::XA && b.status == BranchStatus::PhaseOne_RDONLY)
            {
                self.remove_branch(entry, b, false, &mut removed).await;
                continue;
            }
            match self.inner.rms.send_phase2(Phase2::Commit, self.call_for(b)).await {
                Ok(status) => {
                    let status = if status == BranchStatus::PhaseTwo_CommitFailed_XAER_NOTA_Retryable
                        && self.xaer_nota_expired(entry)
                    {
                        BranchStatus::PhaseTwo_Committed
                    } else {
                        status
                    };
                    match status {
                        BranchStatus::PhaseTwo_Committed => {
                            self.remove_branch(entry, b, false, &mut removed).await;
                            debug!(xid = %b.xid, branch_id = b.branch_id, "branch committed");
                        }
                        BranchStatus::PhaseTwo_CommitFailed_Unretryable => {
                            warn!(xid = %b.xid, branch_id = b.branch_id, "branch commit failed for good");
                            return (Outcome::Unretryable, removed);
                        }
                        other => {
                            debug!(xid = %b.xid, branch_id = b.branch_id, status = %other, "branch commit to retry");
                            if !retrying {
                                return (Outcome::Retryable, removed);
                            }
                            failed_delivery.get_or_insert_with(|| format!("branch {} answered {other}", b.branch_id));
                        }
                    }
                }
                Err(e) => {
                    self.log_quietly(b.branch_id, &b.xid, Phase2::Commit, &e);
                    if !retrying {
                        return (Outcome::Failed(e.to_string()), removed);
                    }
                    failed_delivery.get_or_insert_with(|| e.to_string());
                }
            }
        }
        let s = entry.lock().await;
        let outcome = if s.branches.is_empty() {
            Outcome::Done
        } else if !retrying && s.can_be_committed_async() {
            Outcome::OnlyAsyncLeft
        } else {
            Outcome::Retryable
        };
        (outcome, removed)
    }

    /// One rollback round in reverse registration order; stops at the first branch that does not
    /// roll back (the earlier-registered ones wait for the next round).
    pub(crate) async fn rollback_branches(&self, entry: &SessionEntry, retrying: bool) -> (Outcome, Vec<StoreOp>) {
        let (branches, saga) = {
            let s = entry.lock().await;
            (s.branches.clone(), s.is_saga())
        };
        let mut removed = Vec::new();
        if saga {
            return (self.saga_phase2(entry, Phase2::Rollback).await, removed);
        }
        for b in branches.iter().rev() {
            if b.status == BranchStatus::PhaseOne_Failed {
                self.remove_branch(entry, b, true, &mut removed).await;
                continue;
            }
            match self.inner.rms.send_phase2(Phase2::Rollback, self.call_for(b)).await {
                Ok(status) => {
                    let status = if status == BranchStatus::PhaseTwo_RollbackFailed_XAER_NOTA_Retryable
                        && self.xaer_nota_expired(entry)
                    {
                        BranchStatus::PhaseTwo_Rollbacked
                    } else {
                        status
                    };
                    match status {
                        BranchStatus::PhaseTwo_Rollbacked => {
                            self.remove_branch(entry, b, true, &mut removed).await;
                            debug!(xid = %b.xid, branch_id = b.branch_id, "branch rolled back");
                        }
                        BranchStatus::PhaseTwo_RollbackFailed_Unretryable => {
                            warn!(xid = %b.xid, branch_id = b.branch_id, "branch rollback failed for good");
                            return (Outcome::Unretryable, removed);
                        }
                        other => {
                            debug!(xid = %b.xid, branch_id = b.branch_id, status = %other, "branch rollback to retry");
                            return (Outcome::Retryable, removed);
                        }
                    }
                }
                Err(e) => {
                    self.log_quietly(b.branch_id, &b.xid, Phase2::Rollback, &e);
                    let outcome = if retrying { Outcome::Retryable } else { Outcome::Failed(e.to_string()) };
                    return (outcome, removed);
                }
            }
        }
        (Outcome::Done, removed)
    }

    /// SAGA phase two: one request for the whole transaction, branch id -1, resource
    /// `applicationId#transactionServiceGroup`, the current status name as data (`SagaCore`).
    async fn saga_phase2(&self, entry: &SessionEntry, phase: Phase2) -> Outcome {
        let call = {
            let s = entry.lock().await;
            BranchCall {
                xid: s.global.xid.clone(),
                branch_id: -1,
                branch_type: BranchType::SAGA,
                resource_id: format!("{}#{}", s.global.application_id, s.global.transaction_service_group),
                client_id: String::new(),
                application_data: s.status().name().to_owned(),
            }
        };
        match (phase, self.inner.rms.send_phase2(phase, call.clone()).await) {
            (Phase2::Commit, Ok(BranchStatus::PhaseTwo_Committed))
            | (Phase2::Rollback, Ok(BranchStatus::PhaseTwo_Rollbacked)) => Outcome::Done,
            (Phase2::Commit, Ok(BranchStatus::PhaseTwo_CommitFailed_Unretryable))
            | (Phase2::Rollback, Ok(BranchStatus::PhaseTwo_RollbackFailed_Unretryable)) => Outcome::Unretryable,
            (_, Ok(_)) => Outcome::Retryable,
            (_, Err(e)) => {
                self.log_quietly(-1, &call.xid, phase, &e);
                Outcome::Retryable
            }
        }
    }

    /// Drives `entry` in the background right away: the TM path (AT async commit, a timeout
    /// found at commit) on a session this node just moved, so no claim is needed (other nodes
    /// adopt such sessions only after a grace period, see `adopt_due`).
    pub(crate) fn spawn_drive(&self, entry: Arc<SessionEntry>) {
        self.spawn_drive_with(entry, false);
    }

    /// Drives `entry` in the background; `claim`: first claim it in a shared store (recovery).
    pub(crate) fn spawn_drive_with(&self, entry: Arc<SessionEntry>, claim: bool) {
        let this = self.clone();
        // Boxed for the same reason as the request handlers (transport/connection.rs).
        self.inner.tasks.spawn(Box::pin(async move {
            let Ok(_permit) = Arc::clone(&this.inner.phase2_slots).acquire_owned().await else {
                return;
            };
            if claim {
                this.drive(&entry).await;
            } else if let Some(_guard) = entry.try_drive() {
                this.drive_claimed(&entry, false).await;
            }
        }));
    }

    /// One recovery round for a session, chosen by its status: the retrying (`retrying=true`)
    /// phase two of TC-BEHAVIOR §2.4/§2.5 with the retry-timeout checks of §5.1.
    pub(crate) async fn drive(&self, entry: &Arc<SessionEntry>) {
        let Some(_guard) = entry.try_drive() else {
            return;
        };
        if !self.claim(entry).await {
            return; // another node is driving it
        }
        self.drive_claimed(entry, true).await;
        self.unclaim(entry).await;
    }

    /// One round under the driving guard; `reread`: take the store's view first (shared stores).
    async fn drive_claimed(&self, entry: &Arc<SessionEntry>, reread: bool) {
        if reread && self.shared() {
            // Drive what the store holds, not what this node last saw.
            match self.refresh(entry).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    warn!(xid = %entry.xid, error = %e, "could not re-read a session before recovery");
                    self.back_off(entry);
                    return;
                }
            }
        }
        let status = entry.status();
        let result = if status.is_committing() || status == GlobalStatus::Committed {
            self.drive_commit(entry).await
        } else if status.is_rollbacking() {
            self.drive_rollback(entry).await
        } else {
            return;
        };
        match result {
            Ok(true) => {
                entry.failures.store(0, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(false) => self.back_off(entry),
            Err(e) => {
                warn!(xid = %entry.xid, error = %e, "recovery round failed");
                self.back_off(entry);
            }
        }
    }

    fn back_off(&self, entry: &SessionEntry) {
        use std::sync::atomic::Ordering;
        let n = entry.failures.fetch_add(1, Ordering::Relaxed).min(16);
        let period = self.inner.cfg.recovery_period;
        let delay = period.saturating_mul(1u32 << n.min(10)).min(self.inner.cfg.max_retry_backoff);
        let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        entry.next_retry_ms.store(self.now().saturating_add(ms), Ordering::Relaxed);
        self.inner.stats.retried();
    }

    fn retry_timed_out(&self, entry: &SessionEntry, limit: Option<Duration>) -> bool {
        limit.is_some_and(|l| {
            let l = i64::try_from(l.as_millis()).unwrap_or(i64::MAX);
            self.now() - entry.begin_time_ms > l
        })
    }

    /// Returns Ok(true) when the session reached an end (or a state needing no retry).
    async fn drive_commit(&self, entry: &Arc<SessionEntry>) -> Result<bool, super::TxError> {
        let status = entry.status();
        if status != GlobalStatus::AsyncCommitting
            && self.retry_timed_out(entry, self.inner.cfg.max_commit_retry_timeout)
        {
            let mut s = self.lock_entry(entry).await?;
            if s.status() == status {
                self.end_failed(entry, &mut s, GlobalStatus::CommitRetryTimeout, vec![]).await?;
            }
            return Ok(true);
        }
        let (outcome, removed) = self.commit_branches(entry, true).await;
        let mut s = self.lock_entry(entry).await?;
        match outcome {
            Outcome::Done | Outcome::OnlyAsyncLeft => {
                self.end_success(entry, &mut s, GlobalStatus::Committed).await?;
                Ok(true)
            }
            Outcome::Unretryable => {
                self.end_failed(entry, &mut s, GlobalStatus::CommitFailed, removed).await?;
                Ok(true)
            }
            Outcome::Retryable | Outcome::Failed(_) => {
                self.persist_removed(removed).await?;
                Ok(false)
            }
        }
    }

    async fn drive_rollback(&self, entry: &Arc<SessionEntry>) -> Result<bool, super::TxError> {
        let status = entry.status();
        if self.retry_timed_out(entry, self.inner.cfg.max_rollback_retry_timeout) {
            let mut s = self.lock_entry(entry).await?;
            if s.status() == status {
                self.end_failed(entry, &mut s, GlobalStatus::RollbackRetryTimeout, vec![]).await?;
            }
            return Ok(true);
        }
        let (outcome, removed) = self.rollback_branches(entry, true).await;
        let mut s = self.lock_entry(entry).await?;
        let finished = matches!(outcome, Outcome::Done | Outcome::OnlyAsyncLeft | Outcome::Unretryable);
        match self.finish_rollback(entry, &mut s, outcome, removed, true).await? {
            Ok(end) => {
                if finished {
                    info!(xid = %entry.xid, status = %end, "rollback finished by recovery");
                }
                Ok(finished)
            }
            Err(_) => Ok(false),
        }
    }
}
