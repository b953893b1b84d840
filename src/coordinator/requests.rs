//! Request handlers: what the TC answers to each TM and RM request (TC-BEHAVIOR §3, §2.8).

use std::sync::Arc;

use seata_protocol::message::{
    BranchRegisterRequest, BranchRegisterResponse, BranchReportRequest, BranchReportResponse, GlobalBeginRequest,
    GlobalBeginResponse, GlobalEndResponse, GlobalLockQueryResponse, GlobalReportRequest, ResultHead,
};
use seata_protocol::{BranchStatus, BranchType, GlobalStatus};
use tokio::sync::MutexGuard;
use tracing::{debug, info, warn};

use super::entry::SessionEntry;
use super::phase2::Outcome;
use super::{ClientInfo, Coordinator, TxError};
use crate::lock::{parse_lock_key_limited, LockError, LockOptions, LockOwner};
use crate::session::{is_success_end, keeps_locks_when_failed, transaction_id_of, xid_of, GlobalSession};
use crate::store::{BranchRecord, GlobalRecord, LockRequest, StoreError, StoreOp};

impl Coordinator {
    pub(super) async fn lock_entry<'a>(
        &self,
        entry: &'a SessionEntry,
    ) -> Result<MutexGuard<'a, GlobalSession>, TxError> {
        let guard = tokio::time::timeout(self.inner.cfg.session_lock_timeout, entry.lock())
            .await
            .map_err(|_| TxError::SessionBusy(entry.xid.clone()))?;
        if let Some(e) = entry.begin_failed() {
            // The begin was answered before its write failed: the transaction never existed.
            warn!(xid = %entry.xid, error = %e, "global transaction dropped: its begin was not stored");
            self.forget(&entry.xid);
            return Err(e.into());
        }
        Ok(guard)
    }

    /// Moves a session to `to` and releases its row locks: one store request when the store holds
    /// the locks, else the status first and the locks after it (a failed release leaves the
    /// rows until the session's end releases them all).
    pub(super) async fn transition_releasing(
        &self,
        entry: &SessionEntry,
        s: &mut GlobalSession,
        to: GlobalStatus,
    ) -> Result<(), TxError> {
        let xid = s.global.xid.clone();
        let mut ops = Vec::with_capacity(3);
        if self.shared() {
            // The branches this node knows must be all there are (see `commit`).
            let count = u32::try_from(s.branches.len()).unwrap_or(u32::MAX);
            ops.push(StoreOp::ExpectBranches { xid: xid.clone(), count });
        }
        if self.inner.locks_in_store {
            ops.push(StoreOp::ReleaseLocks { xid });
            return self.transition(entry, s, to, ops).await;
        }
        self.transition(entry, s, to, ops).await?;
        self.inner.locks.release_global(&xid).await?;
        Ok(())
    }

    /// Moves a session from Begin to a rollback status, its row locks marked "rolling back"
    /// first (TC-BEHAVIOR §2.1 notes), in one store request when the store holds the locks.
    pub(super) async fn transition_rollbacking(
        &self,
        entry: &SessionEntry,
        s: &mut GlobalSession,
        to: GlobalStatus,
    ) -> Result<(), TxError> {
        let xid = s.global.xid.clone();
        if self.inner.locks_in_store {
            return self.transition(entry, s, to, vec![StoreOp::MarkLocksRollbacking { xid }]).await;
        }
        self.inner.locks.mark_rollbacking(&xid).await?;
        self.transition(entry, s, to, vec![]).await
    }

    /// Writes `extra` plus the status change to the store, then changes it in memory.
    pub(super) async fn transition(
        &self,
        entry: &SessionEntry,
        s: &mut GlobalSession,
        to: GlobalStatus,
        mut extra: Vec<StoreOp>,
    ) -> Result<(), TxError> {
        extra.push(StoreOp::UpdateGlobalStatus { xid: s.global.xid.clone(), expected: Some(s.status()), status: to });
        self.inner.store.apply(extra).await?;
        entry.set_status(s, to);
        Ok(())
    }

    /// Ends a session with a success status: delete it (and its branches) from the store, release
    /// all its row locks, forget it (TC-BEHAVIOR §2.2; finished at once in every store mode).
    pub(super) async fn end_success(
        &self,
        entry: &SessionEntry,
        s: &mut GlobalSession,
        status: GlobalStatus,
    ) -> Result<(), TxError> {
        debug_assert!(is_success_end(status));
        let xid = s.global.xid.clone();
        if self.inner.locks_in_store {
            self.inner
                .store
                .apply(vec![StoreOp::ReleaseLocks { xid: xid.clone() }, StoreOp::RemoveGlobal { xid }])
                .await?;
        } else {
            // Locks first: if releasing them fails the session stays and the end is retried.
            self.inner.locks.release_global(&xid).await?;
            self.inner.store.apply(vec![StoreOp::RemoveGlobal { xid }]).await?;
        }
        entry.set_status(s, status);
        s.branches.clear();
        self.forget(&s.global.xid);
        self.inner.stats.ended(status);
        debug!(xid = %s.global.xid, status = %status, "global transaction finished");
        Ok(())
    }

    /// Ends a session with a failure status: it stays (stored and in memory) for an operator;
    /// AT locks stay held where the data needs protecting (TC-BEHAVIOR §2.3).
    pub(super) async fn end_failed(
        &self,
        entry: &SessionEntry,
        s: &mut GlobalSession,
        status: GlobalStatus,
        extra: Vec<StoreOp>,
    ) -> Result<(), TxError> {
        self.transition(entry, s, status, extra).await?;
        if !keeps_locks_when_failed(status, self.inner.cfg.rollback_retry_timeout_unlock) {
            self.inner.locks.release_global(&s.global.xid).await?;
        }
        self.inner.stats.ended(status);
        tracing::error!(xid = %s.global.xid, status = %status, "global transaction ended in a failure status: needs an operator");
        Ok(())
    }

    /// GlobalBegin: a new session in Begin, stored before the XID is answered.
    pub async fn begin(&self, client: &ClientInfo, req: GlobalBeginRequest) -> GlobalBeginResponse {
        let cfg = &self.inner.cfg;
        if !self.admit(&client.application_id) {
            warn!(application_id = %client.application_id, limit = cfg.max_sessions_per_application, "open transaction limit reached");
            let msg = format!(
                "TransactionException[application {} has {} open global transactions, the limit]",
                client.application_id, cfg.max_sessions_per_application
            );
            return GlobalBeginResponse {
                result: ResultHead::failed(seata_protocol::ExceptionCode::BeginFailed, msg),
                xid: String::new(),
                extra_data: String::new(),
            };
        }
        let transaction_id = self.inner.ids.next_id();
        let xid = xid_of(&cfg.host, cfg.port, transaction_id);
        let record = GlobalRecord {
            xid: xid.clone(),
            transaction_id,
            status: GlobalStatus::Begin,
            application_id: client.application_id.clone(),
            transaction_service_group: client.transaction_service_group.clone(),
            transaction_name: req.transaction_name,
            timeout_ms: req.timeout,
            begin_time_ms: self.now(),
            application_data: None,
        };
        // Answered once the row is queued, not once it is on disk (docs/STORE.md, "What an answer
        // promises"): nothing depends on it until a branch registers, and that write is awaited,
        // comes later in the same queue and fails if the global row is not stored.
        let write = match self.inner.store.apply_ordered(vec![StoreOp::InsertGlobal(record.clone())]).await {
            Ok(write) => write,
            Err(e) => {
                if let Some(mut n) = self.inner.open_per_app.get_mut(&client.application_id) {
                    *n = n.saturating_sub(1);
                }
                let e = TxError::from(e);
                warn!(error = %e, "global begin failed");
                return GlobalBeginResponse { result: e.result_head(), xid: String::new(), extra_data: String::new() };
            }
        };
        let mut entry = SessionEntry::new(GlobalSession::new(record)).with_begin_write(write);
        entry.counted_for = Some(client.application_id.clone());
        self.inner.sessions.insert(xid.clone(), Arc::new(entry));
        self.inner.stats.began();
        debug!(xid = %xid, timeout = req.timeout, "global transaction began");
        GlobalBeginResponse { result: ResultHead::success(), xid, extra_data: String::new() }
    }

    /// GlobalStatus: the stored status, or Finished for an unknown XID.
    pub async fn global_status(&self, xid: &str) -> GlobalEndResponse {
        if !self.shared() {
            return GlobalEndResponse::success(self.session(xid).map_or(GlobalStatus::Finished, |e| e.status()));
        }
        // Another node may have changed it: the store answers.
        match self.inner.store.load(xid).await {
            Ok(Some(s)) => GlobalEndResponse::success(s.global.status),
            Ok(None) => GlobalEndResponse::success(GlobalStatus::Finished),
            Err(e) => {
                GlobalEndResponse { result: TxError::from(e).result_head(), global_status: GlobalStatus::UnKnown }
            }
        }
    }

    /// Runs `op` on the session of `xid`; when a shared store says our copy was stale, re-reads
    /// it and runs `op` once more. `Ok(None)`: no such session.
    async fn with_session<T, F, Fut>(&self, xid: &str, op: F) -> Result<Option<T>, TxError>
    where
        F: Fn(Arc<SessionEntry>) -> Fut,
        Fut: std::future::Future<Output = Result<T, TxError>>,
    {
        let Some(entry) = self.find(xid).await? else { return Ok(None) };
        match op(Arc::clone(&entry)).await {
            Err(e) if self.is_stale(&e) => {
                debug!(xid, error = %e, "stale session; re-reading it from the store");
                if self.refresh(&entry).await? {
                    op(entry).await.map(Some)
                } else {
                    Ok(None)
                }
            }
            other => other.map(Some),
        }
    }

    /// The answer for a failed commit/rollback: the error plus the re-read status (§0.6).
    fn failed_end(&self, xid: &str, e: &TxError) -> GlobalEndResponse {
        let status = self.session(xid).map_or(GlobalStatus::Finished, |e| e.status());
        GlobalEndResponse { result: e.result_head(), global_status: status }
    }

    /// GlobalCommit (TC-BEHAVIOR §3.5, §2.4, §2.8).
    pub async fn commit(&self, xid: &str) -> GlobalEndResponse {
        let op = |e: Arc<SessionEntry>| async move {
            // The branch list decides phase two, and in a shared store other nodes may have
            // registered branches. Seata's db mode reads the branches first. Here the commit's
            // status change carries the number of branches this node knows and the store
            // refuses it when another number is stored; `with_session` then re-reads the session
            // and decides again. Read first only when no branch is known: such a commit ends the
            // session at once, with nothing to check it against.
            if self.shared() {
                let known = e.lock().await.branches.len();
                if known == 0 && !self.refresh(&e).await? {
                    return Ok(GlobalStatus::Finished);
                }
            }
            self.commit_inner(&e).await
        };
        match self.with_session(xid, op).await {
            Ok(Some(status)) => GlobalEndResponse::success(status),
            Ok(None) => GlobalEndResponse::success(GlobalStatus::Finished),
            Err(e) => {
                warn!(xid, error = %e, "global commit failed");
                self.failed_end(xid, &e)
            }
        }
    }

    async fn commit_inner(&self, entry: &Arc<SessionEntry>) -> Result<GlobalStatus, TxError> {
        let mut s = self.lock_entry(entry).await?;
        match s.status() {
            GlobalStatus::Begin => {}
            GlobalStatus::AsyncCommitting => return Ok(GlobalStatus::Committed),
            other => return Ok(other), // a repeat, or a concurrent operation: idempotent
        }
        // Deviation (TC-BEHAVIOR §11): the timeout is checked only in Begin, and the session is
        // moved to TimeoutRollbacking at once so the answer matches the stored state.
        if s.is_timed_out(self.now()) {
            self.begin_timeout_rollback(entry, &mut s).await?;
            drop(s);
            self.spawn_drive(Arc::clone(entry));
            return Ok(GlobalStatus::TimeoutRollbacking);
        }
        if s.branches.is_empty() {
            // Nothing to drive: end now (Seata goes through AsyncCommitting to the same end).
            s.active = false;
            self.end_success(entry, &mut s, GlobalStatus::Committed).await?;
            return Ok(GlobalStatus::Committed);
        }
        if s.can_be_committed_async() {
            self.transition_releasing(entry, &mut s, GlobalStatus::AsyncCommitting).await?;
            s.active = false;
            drop(s);
            self.spawn_drive(Arc::clone(entry));
            return Ok(GlobalStatus::Committed);
        }
        self.transition_releasing(entry, &mut s, GlobalStatus::Committing).await?;
        s.active = false;
        let Some(guard) = entry.try_drive() else {
            return Ok(GlobalStatus::Committing);
        };
        drop(s);
        let (outcome, removed) = self.commit_branches(entry, false).await;
        let mut s = self.lock_entry(entry).await?;
        let status = match outcome {
            Outcome::Done => {
                self.end_success(entry, &mut s, GlobalStatus::Committed).await?;
                GlobalStatus::Committed
            }
            Outcome::OnlyAsyncLeft => {
                self.transition(entry, &mut s, GlobalStatus::AsyncCommitting, removed).await?;
                drop(s);
                drop(guard);
                self.spawn_drive(Arc::clone(entry));
                return Ok(GlobalStatus::Committed);
            }
            Outcome::Retryable => {
                self.transition(entry, &mut s, GlobalStatus::CommitRetrying, removed).await?;
                GlobalStatus::CommitRetrying
            }
            Outcome::Unretryable => {
                self.end_failed(entry, &mut s, GlobalStatus::CommitFailed, removed).await?;
                GlobalStatus::CommitFailed
            }
            Outcome::Failed(msg) => {
                self.transition(entry, &mut s, GlobalStatus::CommitRetrying, removed).await?;
                return Err(TxError::Phase2(msg));
            }
        };
        Ok(status)
    }

    /// Begin → TimeoutRollbacking (T10): the locks become "rolling back" first.
    pub(super) async fn begin_timeout_rollback(
        &self,
        entry: &SessionEntry,
        s: &mut GlobalSession,
    ) -> Result<(), TxError> {
        self.transition_rollbacking(entry, s, GlobalStatus::TimeoutRollbacking).await?;
        s.active = false;
        info!(xid = %s.global.xid, "global transaction timed out; rolling back");
        Ok(())
    }

    /// GlobalRollback (TC-BEHAVIOR §3.6, §2.5).
    pub async fn rollback(&self, xid: &str) -> GlobalEndResponse {
        let op = |e: Arc<SessionEntry>| async move {
            if self.shared() && !self.refresh(&e).await? {
                return Ok(GlobalStatus::Finished);
            }
            self.rollback_inner(&e).await
        };
        match self.with_session(xid, op).await {
            Ok(Some(status)) => GlobalEndResponse::success(status),
            Ok(None) => GlobalEndResponse::success(GlobalStatus::Finished),
            Err(e) => {
                warn!(xid, error = %e, "global rollback failed");
                self.failed_end(xid, &e)
            }
        }
    }

    async fn rollback_inner(&self, entry: &Arc<SessionEntry>) -> Result<GlobalStatus, TxError> {
        let mut s = self.lock_entry(entry).await?;
        if s.status() != GlobalStatus::Begin {
            s.active = false;
            return Ok(s.status());
        }
        self.transition_rollbacking(entry, &mut s, GlobalStatus::Rollbacking).await?;
        s.active = false;
        let Some(guard) = entry.try_drive() else {
            return Ok(GlobalStatus::Rollbacking);
        };
        drop(s);
        let (outcome, removed) = self.rollback_branches(entry, false).await;
        let mut s = self.lock_entry(entry).await?;
        let status = self.finish_rollback(entry, &mut s, outcome, removed, false).await?;
        drop(guard);
        status
    }

    /// Applies a rollback outcome; `retrying` keeps the status on a retryable failure.
    pub(super) async fn finish_rollback(
        &self,
        entry: &SessionEntry,
        s: &mut GlobalSession,
        outcome: Outcome,
        removed: Vec<StoreOp>,
        retrying: bool,
    ) -> Result<Result<GlobalStatus, TxError>, TxError> {
        let timeout = s.status().is_timeout();
        let retry_status = if timeout { GlobalStatus::TimeoutRollbackRetrying } else { GlobalStatus::RollbackRetrying };
        Ok(match outcome {
            Outcome::Done | Outcome::OnlyAsyncLeft => {
                let end = if timeout { GlobalStatus::TimeoutRollbacked } else { GlobalStatus::Rollbacked };
                self.end_success(entry, s, end).await?;
                Ok(end)
            }
            Outcome::Unretryable => {
                let end = if timeout { GlobalStatus::TimeoutRollbackFailed } else { GlobalStatus::RollbackFailed };
                self.end_failed(entry, s, end, removed).await?;
                Ok(end)
            }
            Outcome::Retryable if retrying => {
                self.persist_removed(removed).await?;
                Ok(s.status())
            }
            Outcome::Retryable => {
                // Seata moves only a TM-driven rollback to *Retrying (T11); a timeout rollback
                // driven by the job keeps its status (T12).
                self.transition(entry, s, retry_status, removed).await?;
                Ok(retry_status)
            }
            Outcome::Failed(msg) => {
                if retrying {
                    self.persist_removed(removed).await?;
                } else {
                    self.transition(entry, s, retry_status, removed).await?;
                }
                Err(TxError::Phase2(msg))
            }
        })
    }

    pub(super) async fn persist_removed(&self, removed: Vec<StoreOp>) -> Result<(), TxError> {
        if !removed.is_empty() {
            self.inner.store.apply(removed).await?;
        }
        Ok(())
    }

    /// GlobalReport (TC-BEHAVIOR §3.8; the Saga engine reports its own outcome).
    pub async fn global_report(&self, req: GlobalReportRequest) -> GlobalEndResponse {
        let reported = req.global_status.unwrap_or(GlobalStatus::Finished);
        let entry = match self.find(&req.xid).await {
            Ok(Some(e)) => e,
            Ok(None) => return GlobalEndResponse::success(reported),
            Err(e) => return GlobalEndResponse { result: e.result_head(), global_status: reported },
        };
        let result: Result<GlobalStatus, TxError> = async {
            let mut s = self.lock_entry(&entry).await?;
            if !s.is_saga() || req.global_status.is_none() {
                return Ok(s.status());
            }
            match reported {
                GlobalStatus::Committed => {
                    self.end_success(&entry, &mut s, GlobalStatus::Committed).await?;
                    Ok(GlobalStatus::Committed)
                }
                GlobalStatus::Rollbacked | GlobalStatus::Finished => {
                    self.end_success(&entry, &mut s, GlobalStatus::Rollbacked).await?;
                    Ok(GlobalStatus::Rollbacked)
                }
                other => {
                    // Persisted verbatim; the retry jobs pick up the retrying states.
                    let other = if other == GlobalStatus::UnKnown { GlobalStatus::RollbackRetrying } else { other };
                    self.transition(&entry, &mut s, other, vec![]).await?;
                    s.active = false;
                    Ok(other)
                }
            }
        }
        .await;
        match result {
            Ok(status) => GlobalEndResponse::success(status),
            Err(e) => GlobalEndResponse { result: e.result_head(), global_status: entry.status() },
        }
    }

    /// BranchRegister (TC-BEHAVIOR §3.3): the branch, and for AT its row locks, all or nothing.
    pub async fn branch_register(&self, client: &ClientInfo, req: BranchRegisterRequest) -> BranchRegisterResponse {
        let xid = req.xid.clone();
        let result = self
            .with_session(&xid, |entry| {
                let req = req.clone();
                async move { self.branch_register_inner(client, &entry, req).await }
            })
            .await
            .and_then(|id| id.ok_or_else(|| TxError::GlobalNotFound(xid.clone())));
        match result {
            Ok(branch_id) => BranchRegisterResponse { result: ResultHead::success(), branch_id },
            Err(e) => {
                match &e {
                    TxError::Lock(_) => debug!(error = %e, "branch register: lock conflict"),
                    _ => warn!(error = %e, "branch register failed"),
                }
                BranchRegisterResponse { result: e.result_head(), branch_id: 0 }
            }
        }
    }

    async fn branch_register_inner(
        &self,
        client: &ClientInfo,
        entry: &SessionEntry,
        req: BranchRegisterRequest,
    ) -> Result<i64, TxError> {
        let data_len = req.application_data.len();
        if data_len > self.inner.cfg.application_data_limit {
            warn!(xid = %req.xid, len = data_len, "applicationData larger than the limit");
            if self.inner.cfg.application_data_limit_check {
                return Err(TxError::ApplicationDataTooLarge(data_len, self.inner.cfg.application_data_limit));
            }
        }
        let mut s = self.lock_entry(entry).await?;
        if req.branch_type != BranchType::SAGA {
            if !s.active {
                return Err(TxError::NotActive(req.xid, s.status()));
            }
            if s.status() != GlobalStatus::Begin {
                return Err(TxError::StatusInvalid(req.xid, s.status()));
            }
        }
        let branch_id = self.inner.ids.next_id();
        let transaction_id = s.global.transaction_id;
        let locked = req.branch_type == BranchType::AT && !req.lock_key.trim().is_empty();
        let mut ops = Vec::with_capacity(2);
        if locked {
            let rows =
                parse_lock_key_limited(&req.resource_id, &req.lock_key, self.inner.locks.max_rows_per_acquire())?;
            let opts = LockOptions::from_application_data(&req.application_data);
            let owner = LockOwner { xid: req.xid.clone(), transaction_id, branch_id };
            if self.inner.locks_in_store {
                // The lock rows and the branch row commit together (one durable write).
                ops.push(StoreOp::AcquireLocks(LockRequest { owner, rows, auto_commit: opts.auto_commit }));
            } else {
                self.inner.locks.acquire(owner, &rows, opts).await?;
            }
        }
        let separate_locks = locked && ops.is_empty();
        let record = BranchRecord {
            branch_id,
            xid: req.xid.clone(),
            transaction_id,
            resource_group_id: None,
            resource_id: req.resource_id,
            branch_type: req.branch_type,
            status: BranchStatus::Registered,
            client_id: client.client_id.clone(),
            application_data: non_empty(req.application_data),
            lock_key: non_empty(req.lock_key),
        };
        ops.push(StoreOp::InsertBranch(record.clone()));
        if let Err(e) = self.inner.store.apply(ops).await {
            if let StoreError::LockConflict(conflict) = e {
                return Err(LockError::Conflict(conflict).into());
            }
            if separate_locks {
                if let Err(le) = self.inner.locks.release_branch(&req.xid, branch_id).await {
                    warn!(xid = %req.xid, branch_id, error = %le, "could not release the locks of a failed registration");
                }
            }
            return Err(TxError::FailedToAddBranch(req.xid, e));
        }
        s.branches.push(record);
        debug!(xid = %s.global.xid, branch_id, "branch registered");
        Ok(branch_id)
    }

    /// BranchReport (TC-BEHAVIOR §3.4): new status and, when not empty, new application data.
    pub async fn branch_report(&self, req: BranchReportRequest) -> BranchReportResponse {
        let xid = req.xid.clone();
        let result = self
            .with_session(&xid, |entry| {
                let req = req.clone();
                async move { self.branch_report_inner(&entry, req).await }
            })
            .await
            .and_then(|r| r.ok_or_else(|| TxError::GlobalNotFound(xid.clone())));
        match result {
            Ok(()) => BranchReportResponse { result: ResultHead::success() },
            Err(e) => {
                warn!(xid = %req.xid, branch_id = req.branch_id, error = %e, "branch report failed");
                BranchReportResponse { result: e.result_head() }
            }
        }
    }

    async fn branch_report_inner(&self, entry: &SessionEntry, req: BranchReportRequest) -> Result<(), TxError> {
        {
            let mut s = self.lock_entry(entry).await?;
            if s.branch(req.branch_id).is_none() {
                return Err(TxError::BranchNotFound(req.xid.clone(), req.branch_id));
            }
            let data = non_empty(req.application_data);
            let op = StoreOp::UpdateBranch {
                xid: req.xid.clone(),
                branch_id: req.branch_id,
                status: req.status,
                application_data: data.clone(),
            };
            self.inner.store.apply(vec![op]).await?;
            if let Some(b) = s.branches.iter_mut().find(|b| b.branch_id == req.branch_id) {
                b.status = req.status;
                if data.is_some() {
                    b.application_data = data;
                }
            }
        }
        Ok(())
    }

    /// GlobalLockQuery (TC-BEHAVIOR §3.9): would these rows be lockable for `xid`? Never takes
    /// anything; any problem answers "not lockable".
    pub async fn lock_query(&self, req: BranchRegisterRequest) -> GlobalLockQueryResponse {
        let lockable = if req.branch_type != BranchType::AT || req.lock_key.trim().is_empty() {
            true
        } else {
            match parse_lock_key_limited(&req.resource_id, &req.lock_key, self.inner.locks.max_rows_per_acquire()) {
                Ok(rows) => {
                    let xid = (!req.xid.is_empty()).then_some(req.xid.as_str());
                    self.inner.locks.is_lockable(xid, &rows).await.unwrap_or_else(|e| {
                        warn!(error = %e, "lock query failed; answering not lockable");
                        false
                    })
                }
                Err(e) => {
                    warn!(error = %e, "lock query refused");
                    false
                }
            }
        };
        GlobalLockQueryResponse { result: ResultHead::success(), lockable }
    }

    /// The transaction id an XID names, for logs.
    pub fn transaction_id(xid: &str) -> Option<i64> {
        transaction_id_of(xid)
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}
