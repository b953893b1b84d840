//! Request handling under arbitrary sequences of requests (used by the `coordinator` fuzz target
//! and a property test): one coordinator over an in-memory store, fake RMs whose answers come
//! from the input, a clock the input moves, and Seata's invariants checked after every step.
//!
//! Invariants:
//! * the status a session shows without its mutex equals the status under it, and equals the
//!   stored status (acknowledged means stored);
//! * an ended session is gone from memory and from the store; a live one is in both;
//! * every held row lock belongs to a live session that may hold locks: Begin, a rollback in
//!   progress, or a failed rollback (never a committing or committed one: locks go at commit
//!   start);
//! * nothing panics.

use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use seata_protocol::message::{BranchRegisterRequest, BranchReportRequest, GlobalBeginRequest};
use seata_protocol::{BranchStatus, BranchType, GlobalStatus};

use crate::coordinator::{BranchCall, ClientInfo, Coordinator, CoordinatorConfig, Phase2, ResourceManagers, SendError};
use crate::lock::{LockFilter, LockStore, LockTable};
use crate::store::memory::MemoryStore;
use crate::store::SessionStore;

/// RMs whose answer is set by the input.
struct ScriptedRms {
    mode: AtomicU8,
}

#[async_trait::async_trait]
impl ResourceManagers for ScriptedRms {
    async fn send_phase2(&self, phase: Phase2, call: BranchCall) -> Result<BranchStatus, SendError> {
        let ok =
            if phase == Phase2::Commit { BranchStatus::PhaseTwo_Committed } else { BranchStatus::PhaseTwo_Rollbacked };
        match self.mode.load(Ordering::Relaxed) % 5 {
            0 | 1 => Ok(ok),
            2 => Ok(if phase == Phase2::Commit {
                BranchStatus::PhaseTwo_CommitFailed_Retryable
            } else {
                BranchStatus::PhaseTwo_RollbackFailed_Retryable
            }),
            3 => Ok(if phase == Phase2::Commit {
                BranchStatus::PhaseTwo_CommitFailed_Unretryable
            } else {
                BranchStatus::PhaseTwo_RollbackFailed_Unretryable
            }),
            _ => Err(SendError::NoChannel { resource_id: call.resource_id, client_id: call.client_id }),
        }
    }

    fn undo_log_delete(&self, _save_days: i16) -> usize {
        0
    }
}

/// Runs the operations encoded in `data` and checks the invariants after each; panics on a
/// violation (which the fuzzer reports).
pub fn run(data: &[u8]) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_time().build() else { return };
    rt.block_on(run_async(data));
}

async fn run_async(data: &[u8]) {
    let store = Arc::new(MemoryStore::new());
    let locks = Arc::new(LockTable::new());
    let rms = Arc::new(ScriptedRms { mode: AtomicU8::new(0) });
    let now = Arc::new(AtomicI64::new(1_700_000_000_000));
    let clock_now = Arc::clone(&now);
    let cfg = CoordinatorConfig {
        recovery_period: Duration::from_millis(1),
        max_retry_backoff: Duration::from_millis(1),
        max_commit_retry_timeout: Some(Duration::from_secs(600)),
        max_rollback_retry_timeout: Some(Duration::from_secs(600)),
        ..CoordinatorConfig::default()
    };
    let coord = Coordinator::with_parts(
        cfg,
        Arc::clone(&store) as Arc<dyn SessionStore>,
        Arc::clone(&locks) as Arc<dyn LockStore>,
        Arc::clone(&rms) as Arc<dyn ResourceManagers>,
        Arc::new(move || clock_now.load(Ordering::Relaxed)),
    );
    let client = ClientInfo {
        application_id: "app".into(),
        transaction_service_group: "g".into(),
        client_id: "app:127.0.0.1:1".into(),
    };
    let mut xids: Vec<String> = Vec::new();
    let mut branches: Vec<(String, i64)> = Vec::new();
    let mut steps = 0usize;
    for op in data.chunks_exact(3).take(200) {
        steps += 1;
        let (kind, a, b) = (op[0] % 10, usize::from(op[1]), op[2]);
        let xid = if xids.is_empty() { "127.0.0.1:8091:1".to_owned() } else { xids[a % xids.len()].clone() };
        match kind {
            0 => {
                let timeout = if b % 2 == 0 { 60_000 } else { i32::from(b) * 10 };
                let r = coord.begin(&client, GlobalBeginRequest { timeout, transaction_name: "t".into() }).await;
                if r.result.is_success() {
                    xids.push(r.xid);
                }
            }
            1 | 2 => {
                let (branch_type, lock_key) = if kind == 1 {
                    (BranchType::AT, format!("t:{};t:{}", b % 8, (b / 8) % 8))
                } else {
                    (BranchType::TCC, String::new())
                };
                let req = BranchRegisterRequest {
                    xid: xid.clone(),
                    branch_type,
                    resource_id: "db".into(),
                    lock_key,
                    application_data: if b % 3 == 0 { "{\"autoCommit\":false}".into() } else { String::new() },
                };
                let r = coord.branch_register(&client, req).await;
                if r.result.is_success() {
                    branches.push((xid, r.branch_id));
                }
            }
            3 => drop(coord.commit(&xid).await),
            4 => drop(coord.rollback(&xid).await),
            5 => drop(coord.global_status(&xid).await),
            6 => {
                if let Some((x, id)) = branches.get(a % branches.len().max(1)).cloned() {
                    let status = BranchStatus::try_from(b % 14).unwrap_or(BranchStatus::PhaseOne_Done);
                    let req = BranchReportRequest {
                        xid: x,
                        branch_id: id,
                        status,
                        resource_id: String::new(),
                        application_data: String::new(),
                        branch_type: BranchType::AT,
                    };
                    drop(coord.branch_report(req).await);
                }
            }
            7 => {
                let req = BranchRegisterRequest {
                    xid: if b % 2 == 0 { xid } else { String::new() },
                    branch_type: BranchType::AT,
                    resource_id: "db".into(),
                    lock_key: format!("t:{}", b % 8),
                    application_data: String::new(),
                };
                drop(coord.lock_query(req).await);
            }
            8 => {
                now.fetch_add(i64::from(b) * 100, Ordering::Relaxed);
                coord.recovery_round().await;
            }
            _ => rms.mode.store(b, Ordering::Relaxed),
        }
        // Let background phase two finish before looking.
        coord.drain(Duration::from_secs(5)).await;
        check(&coord, store.as_ref(), locks.as_ref()).await;
    }
    tracing::debug!(steps, sessions = xids.len(), branches = branches.len(), "fuzz run");
    if std::env::var_os("SEATA_FUZZ_TRACE").is_some() {
        eprintln!("steps={steps} sessions={} branches={}", xids.len(), branches.len());
    }
}

async fn check(coord: &Coordinator, store: &MemoryStore, locks: &LockTable) {
    for entry in coord.sessions() {
        let s = entry.lock().await;
        assert_eq!(entry.status(), s.status(), "status mirror of {}", s.global.xid);
        let stored = store.load(&s.global.xid).await.ok().flatten();
        let stored = stored.unwrap_or_else(|| panic!("live session {} ({}) is not stored", s.global.xid, s.status()));
        assert_eq!(stored.global.status, s.status(), "stored status of {}", s.global.xid);
    }
    for stored in store.load_all().await.unwrap_or_default() {
        assert!(coord.session(&stored.global.xid).is_some(), "stored session {} is not live", stored.global.xid);
    }
    for lock in locks.snapshot(&LockFilter::default()) {
        let entry =
            coord.session(&lock.xid).unwrap_or_else(|| panic!("lock {} held by an ended session", lock.row_key));
        let status = entry.status();
        let may_hold = status == GlobalStatus::Begin
            || status.is_rollbacking()
            || matches!(
                status,
                GlobalStatus::RollbackFailed
                    | GlobalStatus::TimeoutRollbackFailed
                    | GlobalStatus::RollbackRetryTimeout
                    | GlobalStatus::StopRollbackOrRollbackRetry
            );
        assert!(may_hold, "lock {} held by {} in {status}", lock.row_key, lock.xid);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_scripted_sequence_runs_every_operation() {
        // begin ×2, AT register, TCC register, RM retryable, commit, RM ok, time passes + recovery,
        // rollback, report, lock query, status, begin with a short timeout, recovery later.
        let ops = [
            0, 0, 0, 0, 0, 0, 1, 0, 9, 2, 1, 0, 9, 0, 2, 3, 0, 0, 9, 0, 0, 8, 0, 50, 4, 1, 0, 6, 0, 3, 7, 0, 4, 5, 0,
            0, 0, 0, 3, 8, 0, 255,
        ];
        super::run(&ops);
    }
}
