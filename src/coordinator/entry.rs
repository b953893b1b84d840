//! One live session: its state behind an async mutex, plus lock-free mirrors the jobs and the
//! console read without taking the mutex.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU8, Ordering};

use seata_protocol::GlobalStatus;
use tokio::sync::{Mutex, MutexGuard};

use crate::session::GlobalSession;
use crate::store::{PendingWrite, StoreError};

/// A live global session.
#[derive(Debug)]
pub struct SessionEntry {
    state: Mutex<GlobalSession>,
    /// Mirror of the stored status (always written under `state`).
    status: AtomicU8,
    /// Immutable copies for the timeout scan.
    pub(crate) xid: String,
    pub(crate) begin_time_ms: i64,
    pub(crate) timeout_ms: i32,
    /// Someone is driving phase two right now.
    driving: AtomicBool,
    /// Earliest time (epoch ms) the recovery jobs may retry it.
    pub(crate) next_retry_ms: AtomicI64,
    /// Consecutive failed retries (drives the backoff).
    pub(crate) failures: AtomicU32,
    /// Loaded at start-up in Committing/Rollbacking: nobody else drives it, adopt it at once.
    pub(crate) adopted: AtomicBool,
    /// The application whose open-session count this session is part of (begun on this node).
    pub(crate) counted_for: Option<String>,
    /// The session's first write while its outcome is unknown (see [`SessionEntry::begin_failed`]).
    begin_write: std::sync::Mutex<Option<PendingWrite>>,
}

impl SessionEntry {
    pub(crate) fn new(session: GlobalSession) -> Self {
        SessionEntry {
            status: AtomicU8::new(session.status().code()),
            xid: session.global.xid.clone(),
            begin_time_ms: session.global.begin_time_ms,
            timeout_ms: session.global.timeout_ms,
            state: Mutex::new(session),
            driving: AtomicBool::new(false),
            next_retry_ms: AtomicI64::new(0),
            failures: AtomicU32::new(0),
            adopted: AtomicBool::new(false),
            counted_for: None,
            begin_write: std::sync::Mutex::new(None),
        }
    }

    /// A session whose stored row is still being written by `write` (GlobalBegin answers before
    /// the disk has it).
    pub(crate) fn with_begin_write(mut self, write: PendingWrite) -> Self {
        self.begin_write = std::sync::Mutex::new(Some(write));
        self
    }

    /// The error if the session's first write failed: the session then does not exist in the
    /// store and must be forgotten. `None` while it is in flight or once it committed (any later
    /// write of the session is queued after it, so it cannot overtake it).
    pub(crate) fn begin_failed(&self) -> Option<StoreError> {
        let mut slot = self.begin_write.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let outcome = slot.as_mut()?.outcome()?;
        *slot = None;
        outcome.err()
    }

    /// The XID.
    pub fn xid(&self) -> &str {
        &self.xid
    }

    /// The current status, without taking the session mutex.
    pub fn status(&self) -> GlobalStatus {
        GlobalStatus::try_from(self.status.load(Ordering::Acquire)).unwrap_or(GlobalStatus::UnKnown)
    }

    /// Takes the session mutex.
    pub async fn lock(&self) -> MutexGuard<'_, GlobalSession> {
        self.state.lock().await
    }

    /// Sets the status in memory (the caller has written it to the store).
    pub(crate) fn set_status(&self, s: &mut GlobalSession, status: GlobalStatus) {
        s.global.status = status;
        self.status.store(status.code(), Ordering::Release);
    }

    /// Claims the right to drive phase two; `None` if someone else is driving.
    pub(crate) fn try_drive(&self) -> Option<DriveGuard<'_>> {
        self.driving
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| DriveGuard { entry: self })
    }

    /// True while phase two is being driven.
    pub fn is_driving(&self) -> bool {
        self.driving.load(Ordering::Acquire)
    }
}

/// Releases the driving claim when dropped.
pub(crate) struct DriveGuard<'a> {
    entry: &'a SessionEntry,
}

impl Drop for DriveGuard<'_> {
    fn drop(&mut self) {
        self.entry.driving.store(false, Ordering::Release);
    }
}
