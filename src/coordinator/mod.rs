//! The transaction coordinator: Seata's TC rules, typed request in, typed response out.
//!
//! No sockets and no SQL here: RMs are reached through [`ResourceManagers`] and durability
//! through [`SessionStore`]. Memory is the truth for live sessions; every state change is
//! written to the store *before* the answer that reports it (ARCHITECTURE.md, decisions 1 and 2).
//!
//! # Concurrency and lock order
//!
//! Each global session sits behind its own `tokio::sync::Mutex` ([`entry::SessionEntry`]):
//! transitions of one transaction are serialised, different transactions never wait on each other.
//! The mutex is held across store writes (so the answer and the stored state agree) but **never**
//! across a phase-two request to an RM: phase two snapshots the branches, releases the mutex, and
//! re-takes it per result. A per-session `driving` flag keeps the TM path and the recovery jobs
//! from driving the same session's phase two at once.
//!
//! Lock order: session mutex, then the row-lock table (whose shard locks are std mutexes taken
//! only inside non-async calls). The session map (`DashMap`) is never held across an `.await`:
//! entries are cloned out as `Arc`s first.

mod admin;
mod entry;
mod error;
mod jobs;
mod phase2;
mod requests;
mod rm;
mod shared;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

pub use entry::SessionEntry;
pub use error::TxError;
pub use jobs::RecoveryStats;
pub use rm::{BranchCall, Phase2, ResourceManagers, SendError};

use crate::lock::{LockStore, LockTable};
use crate::session::IdGenerator;
use crate::store::SessionStore;

/// Wall-clock milliseconds since the Unix epoch; replaceable in tests.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    })
}

/// The settings the coordinator acts on (Seata's `seata.server.*` keys, TC-BEHAVIOR §8.4).
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// The address written into XIDs: the IP clients reach this node by.
    pub host: String,
    /// The RPC port written into XIDs.
    pub port: u16,
    /// Snowflake worker id (`-n`).
    pub server_node: u16,
    /// `max-commit-retry-timeout`: give up retrying a commit this long after begin (None = never).
    pub max_commit_retry_timeout: Option<Duration>,
    /// `max-rollback-retry-timeout`.
    pub max_rollback_retry_timeout: Option<Duration>,
    /// `rollback-retry-timeout-unlock-enable`.
    pub rollback_retry_timeout_unlock: bool,
    /// `retry-dead-threshold`: adopt Committing/Rollbacking sessions this long after begin.
    pub dead_threshold: Duration,
    /// `xaer-nota-retry-timeout`.
    pub xaer_nota_retry_timeout: Duration,
    /// `application-data-limit` in bytes.
    pub application_data_limit: usize,
    /// `application-data-limit-check`.
    pub application_data_limit_check: bool,
    /// The recovery jobs' period (the smallest of Seata's four retry periods).
    pub recovery_period: Duration,
    /// The longest pause between two retries of one failing session (our bounded backoff).
    pub max_retry_backoff: Duration,
    /// `undo.log-save-days`.
    pub undo_log_save_days: i16,
    /// `undo.log-delete-period`.
    pub undo_log_delete_period: Duration,
    /// How long a request waits for a session another request holds (`FailedLockGlobalTransaction`).
    pub session_lock_timeout: Duration,
    /// Most sessions driven through phase two at once by the recovery jobs.
    pub max_concurrent_phase2: usize,
    /// Rows one page of a shared-store recovery scan reads (`store.db.queryLimit`).
    pub query_limit: usize,
    /// How long an RM may take to answer phase two (sizes the recovery claims).
    pub rpc_timeout: Duration,
    /// Most open global transactions one application may have on this node; more begins fail
    /// with BeginFailed (0: no limit).
    pub max_sessions_per_application: usize,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            host: "127.0.0.1".into(),
            port: 8091,
            server_node: 1,
            max_commit_retry_timeout: None,
            max_rollback_retry_timeout: None,
            rollback_retry_timeout_unlock: false,
            dead_threshold: Duration::from_millis(130_000),
            xaer_nota_retry_timeout: Duration::from_millis(60_000),
            application_data_limit: 64_000,
            application_data_limit_check: false,
            recovery_period: Duration::from_millis(1000),
            max_retry_backoff: Duration::from_secs(60),
            undo_log_save_days: 7,
            undo_log_delete_period: Duration::from_millis(86_400_000),
            session_lock_timeout: Duration::from_secs(2),
            max_concurrent_phase2: 256,
            query_limit: 1000,
            rpc_timeout: Duration::from_secs(15),
            max_sessions_per_application: 1_000_000,
        }
    }
}

/// Who sent a request: taken from the connection's registration, never from the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The registered application id.
    pub application_id: String,
    /// The registered transaction service group.
    pub transaction_service_group: String,
    /// `applicationId:ip:port` of the connection.
    pub client_id: String,
}

/// The coordinator: cheap to clone, shared by every connection and job.
#[derive(Clone)]
pub struct Coordinator {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: CoordinatorConfig,
    store: Arc<dyn SessionStore>,
    locks: Arc<dyn LockStore>,
    /// The session store keeps the row locks too (db mode): lock changes go into the same store
    /// request as the session change they belong to, one durable write for both.
    locks_in_store: bool,
    rms: Arc<dyn ResourceManagers>,
    sessions: crate::fasthash::DashMap<String, Arc<SessionEntry>>,
    ids: IdGenerator,
    clock: Clock,
    tasks: TaskTracker,
    phase2_slots: Arc<tokio::sync::Semaphore>,
    /// Open sessions begun on this node, per application id (the per-application limit).
    open_per_app: crate::fasthash::DashMap<String, usize>,
    /// Last time a phase-two failure of a branch was logged, to log it at most once a minute.
    quiet: crate::fasthash::DashMap<i64, std::time::Instant>,
    stats: jobs::Counters,
}

impl Coordinator {
    /// A coordinator over `store`, reaching RMs through `rms`.
    pub fn new(cfg: CoordinatorConfig, store: Arc<dyn SessionStore>, rms: Arc<dyn ResourceManagers>) -> Self {
        Self::with_parts(cfg, store, Arc::new(LockTable::new()), rms, system_clock())
    }

    /// A coordinator with every part given: session store, lock store, RMs and clock.
    pub fn with_parts(
        cfg: CoordinatorConfig,
        store: Arc<dyn SessionStore>,
        locks: Arc<dyn LockStore>,
        rms: Arc<dyn ResourceManagers>,
        clock: Clock,
    ) -> Self {
        let slots = Arc::new(tokio::sync::Semaphore::new(cfg.max_concurrent_phase2.max(1)));
        let locks_in_store = store.holds_row_locks() && !locks.is_volatile();
        Coordinator {
            inner: Arc::new(Inner {
                ids: IdGenerator::new(cfg.server_node),
                cfg,
                store,
                locks,
                locks_in_store,
                rms,
                sessions: crate::fasthash::dashmap(),
                clock,
                tasks: TaskTracker::new(),
                phase2_slots: slots,
                quiet: crate::fasthash::dashmap(),
                open_per_app: crate::fasthash::dashmap(),
                stats: jobs::Counters::default(),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.inner.cfg
    }

    /// The AT row-lock store (read by the console).
    pub fn locks(&self) -> &Arc<dyn LockStore> {
        &self.inner.locks
    }

    /// True when row-lock changes are written by the session store, in the same request as the
    /// session change they belong to (db mode with sessions and locks in one database).
    pub fn locks_in_store(&self) -> bool {
        self.inner.locks_in_store
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.inner.store
    }

    /// Every live session entry (the console and metrics read them).
    pub fn sessions(&self) -> Vec<Arc<SessionEntry>> {
        self.inner.sessions.iter().map(|e| Arc::clone(e.value())).collect()
    }

    /// The live session of `xid`.
    pub fn session(&self, xid: &str) -> Option<Arc<SessionEntry>> {
        self.inner.sessions.get(xid).map(|e| Arc::clone(e.value()))
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.inner.sessions.len()
    }

    /// Forgets a live session (it ended, was deleted, or is gone from a shared store).
    pub(crate) fn forget(&self, xid: &str) {
        if let Some((_, entry)) = self.inner.sessions.remove(xid) {
            if let Some(app) = entry.counted_for.as_deref() {
                if let Some(mut n) = self.inner.open_per_app.get_mut(app) {
                    *n = n.saturating_sub(1);
                }
                self.inner.open_per_app.remove_if(app, |_, n| *n == 0);
            }
        }
    }

    /// Counts a new session against its application's limit; false when the limit is reached.
    fn admit(&self, application_id: &str) -> bool {
        let limit = self.inner.cfg.max_sessions_per_application;
        let mut n = self.inner.open_per_app.entry(application_id.to_owned()).or_insert(0);
        if limit > 0 && *n >= limit {
            return false;
        }
        *n += 1;
        true
    }

    /// Counts a session reloaded at start-up (never refused: it exists already).
    fn admit_recovered(&self, application_id: &str) -> bool {
        *self.inner.open_per_app.entry(application_id.to_owned()).or_insert(0) += 1;
        true
    }

    fn now(&self) -> i64 {
        (self.inner.clock)()
    }

    /// Waits for the phase-two work started in the background (used at shutdown).
    pub async fn drain(&self, deadline: Duration) -> bool {
        self.inner.tasks.close();
        let done = tokio::time::timeout(deadline, self.inner.tasks.wait()).await.is_ok();
        self.inner.tasks.reopen();
        done
    }
}
