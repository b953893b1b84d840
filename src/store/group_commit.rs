//! Group commit: many concurrent callers share one database transaction and one durable commit.
//!
//! One writer task owns the write connection (through a [`BatchExecutor`]). Callers hand it
//! `(ops, reply)` over a bounded channel, so a slow disk pushes back on them instead of growing a
//! queue. The writer takes the first request, then whatever else is already queued (up to
//! `max_batch`), and asks the executor to run them all in one transaction: one commit, one
//! fsync, however many callers. While that commit is on its way to disk new requests queue up
//! and form the next batch, so batches grow with load without any added delay.
//!
//! Each request succeeds or fails on its own (the executor runs it in a savepoint); if the commit
//! itself fails, every request of the batch gets that error. The writer never panics: a panic in
//! an executor is caught, its batch is answered with [`StoreError::WriterStopped`], and every
//! later call gets the same error instead of waiting forever.
//!
//! The writer is not tied to SQLite: a MySQL or PostgreSQL backend supplies its own executor
//! ("run these requests in one transaction") and reuses the queue, the batching, the replies
//! and the counters.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::{StoreError, StoreOp};

/// What one batch returns: one result per request, in order, or an error for the whole batch.
pub type BatchResult = Result<Vec<Result<(), StoreError>>, StoreError>;

/// Runs a batch of requests in one database transaction. Implemented by each backend.
#[async_trait::async_trait]
pub trait BatchExecutor: Send + 'static {
    /// Applies every request of `batch` in one transaction, each request all or none (a request
    /// that fails is rolled back alone and gets its own error), and commits durably.
    ///
    /// Returns one result per request, in order, or `Err` if the batch as a whole failed (the
    /// commit failed, the connection was lost): then nothing of it was written.
    async fn execute(&mut self, batch: &[Vec<StoreOp>]) -> BatchResult;

    /// Flushes and releases the connection; called once, when the writer stops.
    async fn close(&mut self) -> Result<(), StoreError>;
}

/// Sizes of the writer's queue and batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitOptions {
    /// Requests that may wait for the writer; callers beyond this wait to enqueue.
    pub queue_capacity: usize,
    /// Most requests in one batch (one transaction).
    pub max_batch: usize,
}

impl Default for GroupCommitOptions {
    fn default() -> Self {
        GroupCommitOptions { queue_capacity: 4096, max_batch: 256 }
    }
}

/// Counters of the writer, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteStats {
    /// Batches run (each is one transaction and one commit).
    pub batches: u64,
    /// Requests handled (successful or not).
    pub requests: u64,
    /// Requests in the last batch.
    pub last_batch_size: u64,
    /// Requests in the largest batch so far.
    pub max_batch_size: u64,
    /// Batches whose transaction as a whole failed.
    pub failed_batches: u64,
}

pub(crate) const OPEN: u8 = 0;
pub(crate) const CLOSED: u8 = 1;
pub(crate) const STOPPED: u8 = 2;

/// State shared by a writer's handle and the writer (this task, or the embedded store's
/// thread). Atomics only: nothing is ever locked.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) state: AtomicU8,
    pub(crate) batches: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) last_batch_size: AtomicU64,
    pub(crate) max_batch_size: AtomicU64,
    pub(crate) failed_batches: AtomicU64,
    /// The last batch failed, or failed a request, for a reason of the store as a whole (I/O
    /// error, full disk): writes are not to be answered before they are known to have committed.
    pub(crate) degraded: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub(crate) fn refusal(&self) -> Option<StoreError> {
        match self.state.load(Ordering::Acquire) {
            OPEN => None,
            STOPPED => Some(StoreError::WriterStopped),
            _ => Some(StoreError::Closed),
        }
    }

    pub(crate) fn count_batch(&self, size: usize, failed: bool) {
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(size, Ordering::Relaxed);
        self.last_batch_size.store(size, Ordering::Relaxed);
        self.max_batch_size.fetch_max(size, Ordering::Relaxed);
        if failed {
            self.failed_batches.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub(crate) type Reply = oneshot::Sender<Result<(), StoreError>>;

/// Answers the callers of a batch of `size` requests from how running it ended (`Err`: it
/// panicked), counts it, and keeps `Shared::degraded` current. Returns false when the executor
/// panicked or returned the wrong number of results: the writer must then stop. Shared by this
/// writer task and the embedded store's writer thread.
pub(crate) fn settle(
    shared: &Shared,
    outcome: std::thread::Result<BatchResult>,
    size: usize,
    replies: &mut Vec<Reply>,
    started: Instant,
) -> bool {
    match outcome {
        Ok(Ok(results)) if results.len() == size => {
            shared.count_batch(size, false);
            let degraded = results.iter().any(|r| matches!(r, Err(StoreError::Unavailable { .. })));
            shared.degraded.store(degraded, Ordering::Release);
            for (reply, result) in replies.drain(..).zip(results) {
                let _ = reply.send(result);
            }
            tracing::debug!(
                requests = size,
                elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                "store batch committed"
            );
            return true;
        }
        Ok(Err(e)) => {
            shared.count_batch(size, true);
            shared.degraded.store(true, Ordering::Release);
            tracing::warn!(error = %e, requests = size, "store batch failed");
            for reply in replies.drain(..) {
                let _ = reply.send(Err(e.clone()));
            }
            return true;
        }
        Ok(Ok(results)) => tracing::error!(
            requests = size,
            results = results.len(),
            "store batch returned the wrong number of results; the writer stops"
        ),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            tracing::error!(requests = size, panic = message, "store writer panicked; it stops");
        }
    }
    shared.count_batch(size, true);
    for reply in replies.drain(..) {
        let _ = reply.send(Err(StoreError::WriterStopped));
    }
    false
}

pub(crate) enum Command {
    Apply { ops: Vec<StoreOp>, reply: Reply },
    Close { reply: Reply },
}

/// Handle to a writer task: submit requests, read counters, close.
pub struct GroupCommit {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    /// Taken by the first `close` to wait for the writer to finish. A tokio mutex because the
    /// wait happens while holding it, so a second `close` waits for the first one.
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl GroupCommit {
    /// Spawns the writer task on the current tokio runtime.
    pub fn spawn<E: BatchExecutor>(executor: E, options: GroupCommitOptions) -> Self {
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let shared = Arc::new(Shared::default());
        let writer = Writer { executor, rx, shared: Arc::clone(&shared), max_batch: options.max_batch.max(1) };
        let task = tokio::spawn(writer.run().instrument(tracing::info_span!("store_writer")));
        GroupCommit { tx, shared, task: tokio::sync::Mutex::new(Some(task)) }
    }

    /// Hands `ops` to the writer and waits until they are committed (or failed).
    pub async fn submit(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        self.ensure_open()?;
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Command::Apply { ops, reply }).await.is_err() {
            return Err(self.gone());
        }
        answer.await.unwrap_or_else(|_| Err(self.gone()))
    }

    /// `Ok` while requests are accepted; otherwise [`StoreError::Closed`] or
    /// [`StoreError::WriterStopped`].
    pub fn ensure_open(&self) -> Result<(), StoreError> {
        self.shared.refusal().map_or(Ok(()), Err)
    }

    /// Refuses new requests, lets the writer finish the queued ones, closes the executor and
    /// waits for the writer to end. Closing twice succeeds.
    pub async fn close(&self) -> Result<(), StoreError> {
        let mut task = self.task.lock().await;
        let Some(handle) = task.take() else {
            return Ok(());
        };
        // Refuse new submissions; a submission racing with this is answered `Closed` by the
        // writer, which drains its queue after the close command.
        let _ = self.shared.state.compare_exchange(OPEN, CLOSED, Ordering::AcqRel, Ordering::Acquire);
        let (reply, answer) = oneshot::channel();
        let result =
            if self.tx.send(Command::Close { reply }).await.is_ok() { answer.await.unwrap_or(Ok(())) } else { Ok(()) };
        if let Err(e) = handle.await {
            tracing::error!(error = %e, "store writer task failed");
        }
        result
    }

    /// The writer's counters.
    pub fn stats(&self) -> WriteStats {
        let s = &self.shared;
        WriteStats {
            batches: s.batches.load(Ordering::Relaxed),
            requests: s.requests.load(Ordering::Relaxed),
            last_batch_size: s.last_batch_size.load(Ordering::Relaxed),
            max_batch_size: s.max_batch_size.load(Ordering::Relaxed),
            failed_batches: s.failed_batches.load(Ordering::Relaxed),
        }
    }

    /// The error for a request the writer can no longer answer.
    fn gone(&self) -> StoreError {
        self.shared.refusal().unwrap_or(StoreError::WriterStopped)
    }
}

struct Writer<E> {
    executor: E,
    rx: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
    max_batch: usize,
}

impl<E: BatchExecutor> Writer<E> {
    async fn run(mut self) {
        let mut ops = Vec::with_capacity(self.max_batch);
        let mut replies: Vec<Reply> = Vec::with_capacity(self.max_batch);
        loop {
            let mut close = None;
            match self.rx.recv().await {
                Some(Command::Apply { ops: o, reply }) => {
                    ops.push(o);
                    replies.push(reply);
                }
                Some(Command::Close { reply }) => close = Some(reply),
                None => break,
            }
            while close.is_none() && ops.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(Command::Apply { ops: o, reply }) => {
                        ops.push(o);
                        replies.push(reply);
                    }
                    Ok(Command::Close { reply }) => close = Some(reply),
                    Err(_) => break,
                }
            }
            if !ops.is_empty() && !self.run_batch(&mut ops, &mut replies).await {
                self.stop(StoreError::WriterStopped, close).await;
                return;
            }
            if let Some(reply) = close {
                let result = self.executor.close().await;
                self.stop(StoreError::Closed, None).await;
                let _ = reply.send(result);
                return;
            }
        }
        // Every handle is gone without an explicit close: flush and end.
        if let Err(e) = self.executor.close().await {
            tracing::warn!(error = %e, "closing the store writer failed");
        }
    }

    /// Runs one batch and answers its callers. Returns false if the executor panicked or broke
    /// its contract; the writer must then stop.
    async fn run_batch(&mut self, ops: &mut Vec<Vec<StoreOp>>, replies: &mut Vec<Reply>) -> bool {
        let started = Instant::now();
        let outcome = AssertUnwindSafe(self.executor.execute(ops)).catch_unwind().await;
        let size = ops.len();
        ops.clear();
        settle(&self.shared, outcome, size, replies, started)
    }

    /// Marks the writer as ended and answers everything still queued with `error`; a pending
    /// close request is answered `Ok`.
    async fn stop(&mut self, error: StoreError, close: Option<Reply>) {
        let state = if matches!(error, StoreError::WriterStopped) { STOPPED } else { CLOSED };
        self.shared.state.store(state, Ordering::Release);
        if let Some(reply) = close {
            let _ = reply.send(Ok(()));
        }
        self.rx.close();
        while let Some(command) = self.rx.recv().await {
            match command {
                Command::Apply { reply, .. } => {
                    let _ = reply.send(Err(error.clone()));
                }
                Command::Close { reply } => {
                    let _ = reply.send(Ok(()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Records batch sizes; fails requests whose first op removes xid "bad"; panics on "panic";
    /// fails whole batches containing "down".
    struct Fake {
        sizes: Arc<std::sync::Mutex<Vec<usize>>>,
        closed: Arc<AtomicUsize>,
    }

    fn op(xid: &str) -> Vec<StoreOp> {
        vec![StoreOp::RemoveGlobal { xid: xid.to_owned() }]
    }

    #[async_trait::async_trait]
    impl BatchExecutor for Fake {
        async fn execute(&mut self, batch: &[Vec<StoreOp>]) -> BatchResult {
            // Let other tasks queue more requests, as a real fsync would.
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            if let Ok(mut sizes) = self.sizes.lock() {
                sizes.push(batch.len());
            }
            let xids = || batch.iter().flat_map(|r| r.iter().map(StoreOp::xid));
            if xids().any(|x| x == "panic") {
                panic!("executor bug");
            }
            if xids().any(|x| x == "down") {
                return Err(StoreError::unavailable("committing", sqlx::Error::PoolClosed));
            }
            Ok(batch
                .iter()
                .map(|r| match r.first().map(StoreOp::xid) {
                    Some("bad") => Err(StoreError::NotFound { xid: "bad".into(), branch_id: None }),
                    _ => Ok(()),
                })
                .collect())
        }

        async fn close(&mut self) -> Result<(), StoreError> {
            self.closed.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn spawn(max_batch: usize) -> (Arc<GroupCommit>, Arc<std::sync::Mutex<Vec<usize>>>, Arc<AtomicUsize>) {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let closed = Arc::new(AtomicUsize::new(0));
        let fake = Fake { sizes: Arc::clone(&sizes), closed: Arc::clone(&closed) };
        let options = GroupCommitOptions { queue_capacity: 16, max_batch };
        (Arc::new(GroupCommit::spawn(fake, options)), sizes, closed)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_requests_share_batches_up_to_the_cap() {
        let (gc, sizes, _) = spawn(8);
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let gc = Arc::clone(&gc);
                tokio::spawn(async move { gc.submit(op(&format!("x{i}"))).await })
            })
            .collect();
        for t in tasks {
            assert!(t.await.expect("task").is_ok());
        }
        let stats = gc.stats();
        assert_eq!(stats.requests, 100);
        assert!(stats.batches < 100, "{stats:?}");
        assert!(stats.max_batch_size <= 8, "{stats:?}");
        let sizes = sizes.lock().expect("sizes").clone();
        assert_eq!(sizes.iter().sum::<usize>(), 100);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failed_request_does_not_fail_its_batch() {
        let (gc, _, _) = spawn(64);
        let bad = {
            let gc = Arc::clone(&gc);
            tokio::spawn(async move { gc.submit(op("bad")).await })
        };
        let good: Vec<_> = (0..20)
            .map(|i| {
                let gc = Arc::clone(&gc);
                tokio::spawn(async move { gc.submit(op(&format!("g{i}"))).await })
            })
            .collect();
        assert!(matches!(bad.await.expect("task"), Err(StoreError::NotFound { .. })));
        for t in good {
            assert!(t.await.expect("task").is_ok());
        }
    }

    #[tokio::test]
    async fn a_failed_commit_fails_the_batch_and_the_writer_goes_on() {
        let (gc, _, _) = spawn(64);
        let err = gc.submit(op("down")).await;
        assert!(matches!(err, Err(StoreError::Unavailable { .. })));
        assert!(gc.submit(op("ok")).await.is_ok());
        assert_eq!(gc.stats().failed_batches, 1);
    }

    #[tokio::test]
    async fn a_panicking_executor_stops_the_writer_without_hanging_callers() {
        let (gc, _, closed) = spawn(64);
        assert!(matches!(gc.submit(op("panic")).await, Err(StoreError::WriterStopped)));
        assert!(matches!(gc.submit(op("ok")).await, Err(StoreError::WriterStopped)));
        assert!(matches!(gc.ensure_open(), Err(StoreError::WriterStopped)));
        assert!(gc.close().await.is_ok());
        assert_eq!(closed.load(Ordering::SeqCst), 0, "a broken executor is not reused");
    }

    #[tokio::test]
    async fn close_flushes_then_refuses() {
        let (gc, sizes, closed) = spawn(64);
        assert!(gc.submit(op("a")).await.is_ok());
        assert!(gc.close().await.is_ok());
        assert!(gc.close().await.is_ok());
        assert_eq!(closed.load(Ordering::SeqCst), 1);
        assert!(matches!(gc.submit(op("b")).await, Err(StoreError::Closed)));
        assert_eq!(sizes.lock().expect("sizes").iter().sum::<usize>(), 1);
    }

    #[tokio::test]
    async fn dropping_the_handle_closes_the_executor() {
        let (gc, _, closed) = spawn(64);
        assert!(gc.submit(op("a")).await.is_ok());
        drop(gc);
        for _ in 0..100 {
            if closed.load(Ordering::SeqCst) == 1 {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("executor not closed after the handle was dropped");
    }
}
