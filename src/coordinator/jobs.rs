//! Recovery: reloading sessions at start-up and the periodic jobs (TC-BEHAVIOR §5).
//!
//! Seata runs four 1-second jobs (timeout check, retry rollbacking, retry committing, async
//! committing) plus the dead-session adoption of stuck Committing/Rollbacking sessions. Here one
//! scan per period does all of them: it reads each session's status mirror without taking its
//! mutex and hands due sessions to a bounded pool of phase-two drivers. A failing session backs off
//! (period × 2ⁿ, capped), so an RM that is gone costs one attempt a minute, not one a second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use seata_protocol::{BranchType, GlobalStatus};
use tracing::{error, info, warn};

use super::entry::SessionEntry;
use super::Coordinator;
use crate::lock::{parse_lock_key, LockOptions, LockOwner};
use crate::session::{is_discarded_at_restart, keeps_locks_when_failed, GlobalSession};
use crate::store::{StoreError, StoreOp};

/// Running totals, for metrics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    began: AtomicU64,
    committed: AtomicU64,
    rollbacked: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
}

impl Counters {
    pub(crate) fn began(&self) {
        self.began.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn ended(&self, status: GlobalStatus) {
        let c = match status {
            GlobalStatus::Committed => &self.committed,
            GlobalStatus::Rollbacked | GlobalStatus::TimeoutRollbacked => &self.rollbacked,
            _ => &self.failed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of the coordinator's totals since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryStats {
    /// Global transactions begun.
    pub began: u64,
    /// Ended Committed.
    pub committed: u64,
    /// Ended Rollbacked or TimeoutRollbacked.
    pub rollbacked: u64,
    /// Ended in a failure status.
    pub failed: u64,
    /// Phase-two retries scheduled.
    pub retries: u64,
}

impl Coordinator {
    /// Totals since start.
    pub fn stats(&self) -> RecoveryStats {
        let c = &self.inner.stats;
        RecoveryStats {
            began: c.began.load(Ordering::Relaxed),
            committed: c.committed.load(Ordering::Relaxed),
            rollbacked: c.rollbacked.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }

    /// Loads every stored session at start-up (TC-BEHAVIOR §5.6): drops the ones that are over,
    /// re-acquires the row locks of open and rolling-back sessions (and of failed rollbacks, whose
    /// data stays protected), and adopts sessions that were mid phase two. Returns how many
    /// sessions are live.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        if self.shared() {
            // Several nodes share the store: nothing is loaded up front. Sessions are read when
            // asked for, and the recovery rounds claim the ones that need work.
            info!("shared store: sessions are loaded on demand");
            return Ok(0);
        }
        let stored = self.inner.store.load_all().await?;
        let mut discard = Vec::new();
        for st in stored {
            let status = st.global.status;
            if is_discarded_at_restart(status) {
                discard.push(StoreOp::RemoveGlobal { xid: st.global.xid.clone() });
                continue;
            }
            let session = GlobalSession::from_stored(st);
            let xid = session.global.xid.clone();
            let relock = self.inner.locks.is_volatile()
                && (status == GlobalStatus::Begin
                    || status.is_rollbacking()
                    || status == GlobalStatus::StopRollbackOrRollbackRetry
                    || keeps_locks_when_failed(status, self.inner.cfg.rollback_retry_timeout_unlock));
            if relock {
                for b in session.branches.iter().filter(|b| b.branch_type == BranchType::AT) {
                    let Some(key) = b.lock_key.as_deref() else {
                        continue;
                    };
                    let rows = parse_lock_key(&b.resource_id, key);
                    let owner =
                        LockOwner { xid: xid.clone(), transaction_id: b.transaction_id, branch_id: b.branch_id };
                    if let Err(e) = self.inner.locks.acquire(owner, &rows, LockOptions::default()).await {
                        error!(xid = %xid, branch_id = b.branch_id, error = %e, "could not re-acquire row locks at start-up");
                    }
                }
                if status.is_rollbacking() || status.is_final() || status == GlobalStatus::StopRollbackOrRollbackRetry {
                    if let Err(e) = self.inner.locks.mark_rollbacking(&xid).await {
                        warn!(xid = %xid, error = %e, "could not mark locks as rolling back");
                    }
                }
            }
            let app = session.global.application_id.clone();
            let mut entry = SessionEntry::new(session);
            if self.admit_recovered(&app) {
                entry.counted_for = Some(app);
            }
            if matches!(status, GlobalStatus::Committing | GlobalStatus::Rollbacking) {
                entry.adopted.store(true, Ordering::Relaxed);
            }
            self.inner.sessions.insert(xid, Arc::new(entry));
        }
        if !discard.is_empty() {
            let n = discard.len();
            if let Err(e) = self.inner.store.apply(discard).await {
                warn!(error = %e, "could not delete finished sessions at start-up; they are ignored");
            } else {
                info!(count = n, "deleted finished sessions left in the store");
            }
        }
        let live = self.inner.sessions.len();
        info!(sessions = live, locks = self.inner.locks.count().unwrap_or(0), "sessions recovered");
        Ok(live)
    }

    /// One scan: time out expired Begin sessions and hand every session due for phase two to a
    /// driver. Returns how many sessions were handed over.
    pub async fn recovery_round(&self) -> usize {
        self.adopt_due().await;
        let now = self.now();
        let dead = i64::try_from(self.inner.cfg.dead_threshold.as_millis()).unwrap_or(i64::MAX);
        let mut due: Vec<Arc<SessionEntry>> = Vec::new();
        let mut expired: Vec<Arc<SessionEntry>> = Vec::new();
        for e in self.inner.sessions.iter() {
            let entry = e.value();
            let status = entry.status();
            let ready = entry.next_retry_ms.load(Ordering::Relaxed) <= now && !entry.is_driving();
            match status {
                GlobalStatus::Begin if now - entry.begin_time_ms > i64::from(entry.timeout_ms) => {
                    expired.push(Arc::clone(entry));
                }
                GlobalStatus::AsyncCommitting
                | GlobalStatus::CommitRetrying
                | GlobalStatus::TimeoutRollbacking
                | GlobalStatus::TimeoutRollbackRetrying
                | GlobalStatus::RollbackRetrying
                    if ready =>
                {
                    due.push(Arc::clone(entry))
                }
                GlobalStatus::Committing | GlobalStatus::Rollbacking
                    if ready && (entry.adopted.load(Ordering::Relaxed) || now - entry.begin_time_ms >= dead) =>
                {
                    due.push(Arc::clone(entry));
                }
                _ => {}
            }
        }
        for entry in expired {
            let Ok(mut s) = self.lock_entry(&entry).await else {
                continue;
            };
            if s.status() == GlobalStatus::Begin && s.is_timed_out(self.now()) {
                if let Err(e) = self.begin_timeout_rollback(&entry, &mut s).await {
                    drop(s);
                    if self.is_stale(&e) {
                        // Another node moved it first: take the store's view and go on from there.
                        if matches!(self.refresh(&entry).await, Ok(true)) {
                            due.push(entry);
                        }
                    } else {
                        warn!(xid = %entry.xid, error = %e, "timeout rollback could not start");
                    }
                    continue;
                }
                drop(s);
                due.push(entry);
            }
        }
        let n = due.len();
        for entry in due {
            self.spawn_drive_with(entry, true);
        }
        n
    }

    /// Sends the UndoLogDelete broadcast (TC-BEHAVIOR §3.11); returns how many resources got it.
    pub fn undo_log_delete(&self) -> usize {
        let days = if self.inner.cfg.undo_log_save_days <= 0 { 7 } else { self.inner.cfg.undo_log_save_days };
        let sent = self.inner.rms.undo_log_delete(days);
        info!(resources = sent, save_days = days, "undo log delete sent");
        sent
    }
}
