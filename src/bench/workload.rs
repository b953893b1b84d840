//! The transaction workload: workers playing a TM and an RM each, over real TCP.
//!
//! Worker `w` owns two connections, like one Java application: a TM connection (begin, commit,
//! rollback) and an RM connection (branch register; it answers BranchCommit/BranchRollback from the
//! TC). It loops: begin, register `branches` branches one after the other, then commit (or roll
//! back for `rollback_percent` of them). Lock keys come from the worker's own counter, so they
//! never conflict unless `hot_keys` draws them from a small shared key space.
//!
//! What is measured, and when:
//! * A transaction counts when its commit/rollback answer arrives inside the window
//!   (`warmup` .. `warmup + duration`); its RPC latencies are recorded then, so every figure covers
//!   the same transactions. Throughput is those transactions over the window.
//! * `tx`: from the transaction's start (its *intended* start with `rate`) to the commit answer.
//! * `branch_commit` / `branch_rollback`: from the GlobalCommit/GlobalRollback request leaving
//!   the TM to each BranchCommit/BranchRollback arriving at the RM (the TC→RM leg).
//! * `commit_to_branches` (AT commits): from the commit answer to the arrival of the last branch
//!   commit (0 if they all came first); `tx_complete`: start to that arrival.
//! * Closed loop by default: a slow answer delays the worker's next transaction, so a stall is
//!   seen once, not by every request that would have been sent meanwhile (coordinated omission).
//!   `rate` switches to an open loop: each worker follows a fixed schedule and latency counts from
//!   the scheduled start, so time spent behind schedule is included.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seata_protocol::message::{
    BranchEndResponse, BranchRegisterRequest, GlobalBeginRequest, GlobalEndRequest, ResultHead,
};
use seata_protocol::{BranchStatus, BranchType, ExceptionCode, GlobalStatus, Message};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::hist::Latency;
use super::proc::{self, Usage};
use super::report::Report;
use super::BenchError;
use crate::client::{ClientError, RpcClient, ServerRequest};

/// Application id the bench registers with.
pub const APPLICATION_ID: &str = "seata-bench";
/// Transaction service group the bench registers with.
pub const GROUP: &str = "default_tx_group";
/// Client version the bench registers as (a current Java client).
pub const CLIENT_VERSION: &str = "2.2.0";

/// Branch type of the generated transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxMode {
    /// AT: branches carry row-lock keys; commit is asynchronous on the TC.
    At,
    /// TCC: no lock keys; commit waits for every branch.
    Tcc,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Server address; several separated by commas (nodes sharing one database): worker `w`
    /// connects both its TM and its RM to the `w mod n`-th.
    pub addr: String,
    /// Workers; each has a TM and an RM connection and one transaction in flight.
    pub conns: usize,
    /// Measured window.
    pub duration: Duration,
    /// Load before the window, not measured.
    pub warmup: Duration,
    /// Branches per transaction; 0 means begin and commit only.
    pub branches: usize,
    /// AT or TCC.
    pub mode: TxMode,
    /// Percentage of transactions rolled back instead of committed.
    pub rollback_percent: f64,
    /// Draw AT primary keys from this many hot keys so transactions conflict.
    pub hot_keys: Option<u64>,
    /// Open loop: global transactions per second to start (all workers together).
    pub rate: Option<f64>,
    /// Only open this many transactions (begin + branches, no commit) and stop.
    pub open_only: Option<u64>,
    /// Global transaction timeout sent with GlobalBegin.
    pub tx_timeout: Duration,
    /// How long a call waits for its answer.
    pub rpc_timeout: Duration,
    /// Registrations retried after a lock conflict before the transaction is given up
    /// (Java's `client.rm.lock.retryTimes`).
    pub lock_retries: u32,
    /// Pause between those retries (`client.rm.lock.retryInterval`).
    pub lock_retry_interval: Duration,
    /// Also measure this process (the server) while the window runs.
    pub server_pid: Option<u32>,
    /// Print progress once a second on stderr.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            addr: "127.0.0.1:8091".into(),
            conns: 32,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            branches: 2,
            mode: TxMode::At,
            rollback_percent: 0.0,
            hot_keys: None,
            rate: None,
            open_only: None,
            tx_timeout: Duration::from_secs(60),
            rpc_timeout: Duration::from_secs(10),
            lock_retries: 30,
            lock_retry_interval: Duration::from_millis(10),
            server_pid: None,
            progress: false,
        }
    }
}

impl Options {
    /// The scenario name used in reports.
    pub fn scenario(&self) -> &'static str {
        match (self.open_only, self.branches, self.mode) {
            (Some(_), _, _) => "open",
            (None, 0, _) => "protocol",
            (None, _, TxMode::At) => "at",
            (None, _, TxMode::Tcc) => "tcc",
        }
    }

    fn branch_type(&self) -> BranchType {
        match self.mode {
            TxMode::At => BranchType::AT,
            TxMode::Tcc => BranchType::TCC,
        }
    }

    /// The resource id of branch `b`.
    pub fn resource(&self, b: usize) -> String {
        match self.mode {
            TxMode::At => format!("jdbc:mysql://127.0.0.1:3306/bench_{b}"),
            TxMode::Tcc => format!("bench-tcc-action-{b}"),
        }
    }

    /// The address worker `worker` connects to.
    pub fn addr_for(&self, worker: usize) -> &str {
        let addrs: Vec<&str> = self.addr.split(',').map(str::trim).filter(|a| !a.is_empty()).collect();
        match addrs.len() {
            0 => self.addr.as_str(),
            n => addrs[worker % n],
        }
    }

    fn validate(&self) -> Result<(), BenchError> {
        if self.conns == 0 {
            return Err(BenchError::Options("--conns must be at least 1".into()));
        }
        if !(0.0..=100.0).contains(&self.rollback_percent) {
            return Err(BenchError::Options("--rollback-percent must be within 0..=100".into()));
        }
        if self.hot_keys == Some(0) {
            return Err(BenchError::Options("--hot-keys must be at least 1".into()));
        }
        if self.hot_keys.is_some() && self.mode != TxMode::At {
            return Err(BenchError::Options("--hot-keys needs --mode at (TCC branches hold no row locks)".into()));
        }
        if matches!(self.rate, Some(r) if r.is_nan() || r <= 0.0) {
            return Err(BenchError::Options("--rate must be positive".into()));
        }
        if i32::try_from(self.tx_timeout.as_millis()).is_err() {
            return Err(BenchError::Options("--tx-timeout is too long for the protocol (i32 ms)".into()));
        }
        Ok(())
    }
}

/// Counters every worker updates, read once a second by the progress printer.
#[derive(Default)]
struct Live {
    answered: AtomicU64,
    errors: AtomicU64,
    conflicts: AtomicU64,
    opened: AtomicU64,
    stop: AtomicBool,
}

/// The measured window, shared by all workers.
#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    to: Instant,
}

impl Window {
    fn contains(&self, t: Instant) -> bool {
        t >= self.from && t <= self.to
    }
}

/// A transaction whose phase two the RM is waiting for.
struct Track {
    commit: bool,
    started: Instant,
    sent: Instant,
    answered: Option<Instant>,
    measured: bool,
    /// Branches whose phase two has not arrived yet.
    pending: Vec<i64>,
    arrivals: Vec<Instant>,
}

/// Phase-two bookkeeping of one worker, shared by its TM side and its RM side. A std mutex:
/// held for a few map operations, never across an await.
#[derive(Default)]
struct Book {
    tracks: HashMap<String, Track>,
    branch_commit: Latency,
    branch_rollback: Latency,
    commit_to_branches: Latency,
    tx_complete: Latency,
    unmatched: u64,
    duplicates: u64,
}

impl Book {
    /// Records a finished track's figures (if measured) once both its answer and all its
    /// branches are in.
    fn settle(&mut self, xid: &str, async_commit: bool) {
        let done = matches!(self.tracks.get(xid), Some(t) if t.answered.is_some() && t.pending.is_empty());
        if !done {
            return;
        }
        let Some(t) = self.tracks.remove(xid) else { return };
        let Some(answered) = t.answered else { return };
        if !t.measured {
            return;
        }
        let h = if t.commit { &mut self.branch_commit } else { &mut self.branch_rollback };
        for a in &t.arrivals {
            h.record(a.saturating_duration_since(t.sent));
        }
        if t.commit && async_commit {
            let last = t.arrivals.iter().copied().max().unwrap_or(answered);
            self.commit_to_branches.record(last.saturating_duration_since(answered));
            self.tx_complete.record(last.max(answered).saturating_duration_since(t.started));
        }
    }
}

/// What one worker measured.
#[derive(Default)]
struct WorkerResult {
    hists: BTreeMap<&'static str, Latency>,
    errors: BTreeMap<String, u64>,
    committed: u64,
    rolled_back: u64,
    aborted: u64,
    conflicts: u64,
    completed: u64,
}

impl WorkerResult {
    fn error(&mut self, live: &Live, class: String) {
        live.errors.fetch_add(1, Ordering::Relaxed);
        *self.errors.entry(class).or_default() += 1;
    }
}

/// RPC latencies of one transaction, kept until we know whether it counts.
#[derive(Default)]
struct TxSamples {
    samples: Vec<(&'static str, Duration)>,
}

fn client_error(e: &ClientError) -> String {
    match e {
        ClientError::Io(_) => "client:io".into(),
        ClientError::Protocol(_) => "client:protocol".into(),
        ClientError::Closed => "client:closed".into(),
        ClientError::Timeout(_) => "client:timeout".into(),
        ClientError::Refused => "client:refused".into(),
    }
}

fn code_error(r: &ResultHead) -> String {
    format!("{:?}", r.exception_code)
}

/// One worker's connections.
struct Conns {
    tm: RpcClient,
    rm: RpcClient,
    rm_rx: mpsc::Receiver<ServerRequest>,
}

async fn connect(opts: &Options, worker: usize) -> Result<Conns, BenchError> {
    let addr = opts.addr_for(worker);
    let (mut tm, _) = RpcClient::connect(addr).await?;
    tm.set_timeout(opts.rpc_timeout);
    tm.register_tm(APPLICATION_ID, GROUP, CLIENT_VERSION).await?;
    let (mut rm, rm_rx) = RpcClient::connect(addr).await?;
    rm.set_timeout(opts.rpc_timeout);
    let resources: Vec<String> = (0..opts.branches.max(1)).map(|b| opts.resource(b)).collect();
    let refs: Vec<&str> = resources.iter().map(String::as_str).collect();
    rm.register_rm(APPLICATION_ID, GROUP, CLIENT_VERSION, &refs).await?;
    Ok(Conns { tm, rm, rm_rx })
}

/// The RM side: answers phase two at once and notes when each request arrived.
fn spawn_rm(
    mut rx: mpsc::Receiver<ServerRequest>,
    replier: crate::client::Replier,
    book: Arc<Mutex<Book>>,
    async_commit: bool,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(ServerRequest { frame, message }) = rx.recv().await {
            let now = Instant::now();
            let (req, commit) = match message {
                Message::BranchCommitRequest(r) => (r, true),
                Message::BranchRollbackRequest(r) => (r, false),
                _ => continue, // UndoLogDelete and anything else: nothing to do
            };
            {
                let mut b = book.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                match b.tracks.get_mut(&req.xid) {
                    Some(t) if t.commit == commit => match t.pending.iter().position(|&id| id == req.branch_id) {
                        Some(i) => {
                            t.pending.swap_remove(i);
                            t.arrivals.push(now);
                            b.settle(&req.xid, async_commit);
                        }
                        None => b.duplicates += 1,
                    },
                    _ => b.unmatched += 1,
                }
            }
            let resp = BranchEndResponse {
                result: ResultHead::success(),
                xid: req.xid,
                branch_id: req.branch_id,
                branch_status: if commit {
                    BranchStatus::PhaseTwo_Committed
                } else {
                    BranchStatus::PhaseTwo_Rollbacked
                },
            };
            let msg = if commit { Message::BranchCommitResponse(resp) } else { Message::BranchRollbackResponse(resp) };
            if replier.reply(&frame, &msg).await.is_err() {
                return;
            }
        }
    })
}

/// One worker: the TM/RM pair, its counters and its random source.
struct Worker {
    id: usize,
    opts: Arc<Options>,
    live: Arc<Live>,
    window: Window,
    tm: RpcClient,
    rm: RpcClient,
    book: Arc<Mutex<Book>>,
    rng: StdRng,
    seq: u64,
    res: WorkerResult,
}

enum End {
    Commit,
    Rollback,
    Abort,
}

impl Worker {
    fn lock_key(&mut self, b: usize) -> String {
        if self.opts.mode != TxMode::At {
            return String::new();
        }
        match self.opts.hot_keys {
            Some(n) => format!("bench_t{b}:hot{}", self.rng.gen_range(0..n)),
            None => {
                self.seq += 1;
                format!("bench_t{b}:w{}r{}", self.id, self.seq)
            }
        }
    }

    async fn begin(&mut self, s: &mut TxSamples) -> Option<String> {
        let timeout = i32::try_from(self.opts.tx_timeout.as_millis()).unwrap_or(i32::MAX);
        let msg = Message::GlobalBeginRequest(GlobalBeginRequest { timeout, transaction_name: "bench".into() });
        let t = Instant::now();
        let r = self.tm.call(&msg).await;
        s.samples.push(("begin", t.elapsed()));
        match r {
            Ok(Message::GlobalBeginResponse(r)) if r.result.is_success() => Some(r.xid),
            Ok(Message::GlobalBeginResponse(r)) => {
                self.res.error(&self.live, code_error(&r.result));
                None
            }
            Ok(_) => {
                self.res.error(&self.live, "client:unexpected answer".into());
                None
            }
            Err(e) => {
                self.res.error(&self.live, client_error(&e));
                None
            }
        }
    }

    /// Registers branch `b`, retrying lock conflicts as a Java RM does. False: give the
    /// transaction up.
    async fn register(&mut self, xid: &str, b: usize, s: &mut TxSamples) -> Option<i64> {
        let lock_key = self.lock_key(b);
        let at = self.opts.mode == TxMode::At;
        let msg = Message::BranchRegisterRequest(BranchRegisterRequest {
            xid: xid.into(),
            branch_type: self.opts.branch_type(),
            resource_id: self.opts.resource(b),
            lock_key,
            application_data: if at { "{\"autoCommit\":false}".into() } else { String::new() },
        });
        let mut attempt = 0;
        loop {
            let t = Instant::now();
            let r = self.rm.call(&msg).await;
            s.samples.push(("register", t.elapsed()));
            match r {
                Ok(Message::BranchRegisterResponse(r)) if r.result.is_success() => return Some(r.branch_id),
                Ok(Message::BranchRegisterResponse(r))
                    if matches!(
                        r.result.exception_code,
                        ExceptionCode::LockKeyConflict | ExceptionCode::LockKeyConflictFailFast
                    ) =>
                {
                    self.res.conflicts += 1;
                    self.live.conflicts.fetch_add(1, Ordering::Relaxed);
                    if attempt >= self.opts.lock_retries
                        || r.result.exception_code == ExceptionCode::LockKeyConflictFailFast
                    {
                        return None;
                    }
                    attempt += 1;
                    tokio::time::sleep(self.opts.lock_retry_interval).await;
                }
                Ok(Message::BranchRegisterResponse(r)) => {
                    self.res.error(&self.live, code_error(&r.result));
                    return None;
                }
                Ok(_) => {
                    self.res.error(&self.live, "client:unexpected answer".into());
                    return None;
                }
                Err(e) => {
                    self.res.error(&self.live, client_error(&e));
                    return None;
                }
            }
        }
    }

    /// Sends GlobalCommit or GlobalRollback; returns when the answer arrived, if it did.
    async fn end(&mut self, xid: String, end: &End, branches: Vec<i64>, started: Instant, s: &mut TxSamples) {
        let tracked = !branches.is_empty();
        let commit = matches!(end, End::Commit);
        let async_commit = commit && self.opts.mode == TxMode::At;
        let sent = Instant::now();
        if tracked {
            let track = Track {
                commit,
                started,
                sent,
                answered: None,
                measured: false,
                arrivals: Vec::with_capacity(branches.len()),
                pending: branches,
            };
            self.book.lock().unwrap_or_else(std::sync::PoisonError::into_inner).tracks.insert(xid.clone(), track);
        }
        let req = GlobalEndRequest::new(xid.as_str());
        let msg = if commit { Message::GlobalCommitRequest(req) } else { Message::GlobalRollbackRequest(req) };
        let r = self.tm.call(&msg).await;
        let answered = Instant::now();
        s.samples.push((if commit { "commit" } else { "rollback" }, answered - sent));
        let want = if commit { GlobalStatus::Committed } else { GlobalStatus::Rollbacked };
        let ok = match r {
            Ok(Message::GlobalCommitResponse(r) | Message::GlobalRollbackResponse(r)) => {
                if !r.result.is_success() {
                    self.res.error(&self.live, code_error(&r.result));
                    false
                } else if r.global_status != want {
                    self.res.error(&self.live, format!("status:{}", r.global_status));
                    false
                } else {
                    true
                }
            }
            Ok(_) => {
                self.res.error(&self.live, "client:unexpected answer".into());
                false
            }
            Err(e) => {
                self.res.error(&self.live, client_error(&e));
                false
            }
        };
        self.live.answered.fetch_add(1, Ordering::Relaxed);
        let measured = ok && self.window.contains(answered);
        if tracked {
            let mut b = self.book.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if ok {
                if let Some(t) = b.tracks.get_mut(&xid) {
                    t.answered = Some(answered);
                    t.measured = measured;
                }
                b.settle(&xid, async_commit);
            } else {
                b.tracks.remove(&xid);
            }
        }
        if !measured {
            return;
        }
        self.res.completed += 1;
        match end {
            End::Commit => self.res.committed += 1,
            End::Rollback => self.res.rolled_back += 1,
            End::Abort => self.res.aborted += 1,
        }
        for (k, d) in s.samples.drain(..) {
            self.res.hists.entry(k).or_default().record(d);
        }
        self.res.hists.entry("tx").or_default().record(answered.saturating_duration_since(started));
    }

    /// One global transaction from `started` (its scheduled start in an open loop).
    async fn transaction(&mut self, started: Instant) {
        let mut s = TxSamples::default();
        let Some(xid) = self.begin(&mut s).await else { return };
        let mut registered = Vec::with_capacity(self.opts.branches);
        let mut end = End::Commit;
        for b in 0..self.opts.branches {
            match self.register(&xid, b, &mut s).await {
                Some(id) => registered.push(id),
                None => {
                    end = End::Abort;
                    break;
                }
            }
        }
        if matches!(end, End::Commit) && self.rng.gen::<f64>() * 100.0 < self.opts.rollback_percent {
            end = End::Rollback;
        }
        self.end(xid, &end, registered, started, &mut s).await;
    }

    /// Hands back the result and the connections (kept open until phase two has drained).
    fn finish(self) -> (WorkerResult, [RpcClient; 2]) {
        (self.res, [self.tm, self.rm])
    }

    async fn run(mut self) -> (WorkerResult, [RpcClient; 2]) {
        let opts = Arc::clone(&self.opts);
        let interval = opts.rate.map(|r| Duration::from_secs_f64(opts.conns as f64 / r));
        // Spread the workers' schedules over one interval.
        let mut next = match interval {
            Some(iv) => Instant::now() + iv.mul_f64(self.id as f64 / opts.conns as f64),
            None => Instant::now(),
        };
        loop {
            if self.live.stop.load(Ordering::Relaxed) || Instant::now() >= self.window.to {
                break;
            }
            let started = match interval {
                Some(iv) => {
                    let t = next;
                    next += iv;
                    tokio::time::sleep_until(t.into()).await;
                    t
                }
                None => Instant::now(),
            };
            if started >= self.window.to {
                break;
            }
            self.transaction(started).await;
        }
        self.finish()
    }

    /// Open-only: begin and register until `total` transactions are open, never end them.
    async fn open(mut self, total: u64) -> (WorkerResult, [RpcClient; 2]) {
        while self.live.opened.fetch_add(1, Ordering::Relaxed) < total {
            let started = Instant::now();
            let mut s = TxSamples::default();
            let Some(xid) = self.begin(&mut s).await else { continue };
            let mut ok = true;
            for b in 0..self.opts.branches {
                if self.register(&xid, b, &mut s).await.is_none() {
                    ok = false;
                    break;
                }
            }
            self.live.answered.fetch_add(1, Ordering::Relaxed);
            if ok {
                self.res.completed += 1;
                for (k, d) in s.samples.drain(..) {
                    self.res.hists.entry(k).or_default().record(d);
                }
                self.res.hists.entry("open").or_default().record(started.elapsed());
            }
        }
        self.finish()
    }
}

fn spawn_progress(live: Arc<Live>, start: Instant, warmup: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at((start + Duration::from_secs(1)).into(), Duration::from_secs(1));
        let mut last = 0;
        while !live.stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let now = live.answered.load(Ordering::Relaxed);
            let t = start.elapsed();
            let phase = if t < warmup { "warm-up" } else { "measuring" };
            let line = format!(
                "[{:>4.0}s] {phase:<9} {:>7} tx/s  errors {}  conflicts {}\n",
                t.as_secs_f64(),
                now - last,
                live.errors.load(Ordering::Relaxed),
                live.conflicts.load(Ordering::Relaxed)
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
            last = now;
        }
    })
}

/// Runs the workload described by `opts` against a running server.
pub async fn run(opts: Options) -> Result<Report, BenchError> {
    opts.validate()?;
    let opts = Arc::new(opts);
    let async_commit = opts.mode == TxMode::At;
    // Every connection is up and registered before the clock starts.
    let conns = futures::future::try_join_all((0..opts.conns).map(|w| connect(&opts, w))).await?;
    let live = Arc::new(Live::default());
    let start = Instant::now();
    let (warmup, duration) = if opts.open_only.is_some() {
        (Duration::ZERO, Duration::from_secs(24 * 3600))
    } else {
        (opts.warmup, opts.duration)
    };
    let window = Window { from: start + warmup, to: start + warmup + duration };
    let progress = opts.progress.then(|| spawn_progress(Arc::clone(&live), start, warmup));

    let mut rms = Vec::new();
    let mut workers = Vec::new();
    let mut books = Vec::new();
    for (id, c) in conns.into_iter().enumerate() {
        let book = Arc::new(Mutex::new(Book::default()));
        rms.push(spawn_rm(c.rm_rx, c.rm.replier(), Arc::clone(&book), async_commit));
        books.push(Arc::clone(&book));
        let w = Worker {
            id,
            opts: Arc::clone(&opts),
            live: Arc::clone(&live),
            window,
            tm: c.tm,
            rm: c.rm,
            book,
            rng: StdRng::seed_from_u64(id as u64),
            seq: 0,
            res: WorkerResult::default(),
        };
        workers.push(tokio::spawn(async move {
            match w.opts.open_only {
                Some(n) => w.open(n).await,
                None => w.run().await,
            }
        }));
    }

    // Sample both processes at the window's edges (open-only: around the whole run).
    let pid = opts.server_pid;
    let sample_both = move || (proc::sample(None), pid.and_then(|p| proc::sample(Some(p))), Instant::now());
    let (client_a, server_a, sampled_from) = if opts.open_only.is_some() {
        sample_both()
    } else {
        tokio::time::sleep_until(window.from.into()).await;
        sample_both()
    };
    let mut late = None;
    if opts.open_only.is_none() {
        tokio::time::sleep_until(window.to.into()).await;
        late = Some(sample_both());
    }
    let mut results = Vec::new();
    let mut clients = Vec::new();
    for w in workers {
        let (r, c) = w.await.map_err(|e| BenchError::Task(e.to_string()))?;
        results.push(r);
        clients.push(c);
    }
    let (client_b, server_b, sampled_to) = late.unwrap_or_else(sample_both);
    let load_avg = proc::load_average();

    live.stop.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        p.abort();
    }
    // Let the last asynchronous branch commits arrive before the connections close.
    let drain_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < drain_until
        && books.iter().any(|b| !b.lock().unwrap_or_else(std::sync::PoisonError::into_inner).tracks.is_empty())
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let mut report = Report {
        scenario: opts.scenario().into(),
        conns: opts.conns,
        branches: opts.branches,
        load: match opts.rate {
            Some(r) => format!("open loop at {r} tx/s"),
            None => "closed loop".into(),
        },
        rollback_percent: opts.rollback_percent,
        hot_keys: opts.hot_keys,
        warmup_s: warmup.as_secs_f64(),
        ..Report::default()
    };
    let mut hists: BTreeMap<String, Latency> = BTreeMap::new();
    for r in &results {
        for (k, h) in &r.hists {
            hists.entry((*k).to_string()).or_default().merge(h);
        }
        for (k, n) in &r.errors {
            *report.errors.entry(k.clone()).or_default() += n;
        }
        report.committed += r.committed;
        report.rolled_back += r.rolled_back;
        report.aborted += r.aborted;
        report.conflicts += r.conflicts;
        report.completed += r.completed;
    }
    for b in &books {
        let b = b.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (k, h) in [
            ("branch_commit", &b.branch_commit),
            ("branch_rollback", &b.branch_rollback),
            ("commit_to_branches", &b.commit_to_branches),
            ("tx_complete", &b.tx_complete),
        ] {
            if h.count() > 0 {
                hists.entry(k.to_string()).or_default().merge(h);
            }
        }
        report.phase2_unmatched += b.unmatched;
        report.phase2_duplicates += b.duplicates;
        report.phase2_missing += b.tracks.values().map(|t| t.pending.len() as u64).sum::<u64>();
        if opts.progress && report.phase2_missing < 5 {
            for (xid, t) in b.tracks.iter().take(1) {
                let line = format!("phase two never arrived: xid {xid}, branches {:?}\n", t.pending);
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
    // Close the connections; the RM tasks end with them.
    drop(clients);
    drop(books);
    for rm in rms {
        rm.abort();
    }
    let window_len = sampled_to - sampled_from;
    report.window_s = proc::round2(window_len.as_secs_f64());
    report.errors_total = report.errors.values().sum();
    let rate = report.completed as f64 / window_len.as_secs_f64().max(1e-9);
    report.tx_per_s = Some(proc::round2(rate));
    let main = if opts.open_only.is_some() { "open" } else { "tx" };
    if let Some(h) = hists.get(main) {
        let s = h.summary();
        (report.p50_us, report.p99_us, report.p999_us) = (s.p50_us, s.p99_us, s.p999_us);
    }
    report.latency_us = hists.into_iter().map(|(k, h)| (k, h.summary())).collect();
    if let (Some(a), Some(b)) = (client_a, client_b) {
        report.client = Some(Usage::between(&a, &b, window_len, report.completed));
    }
    if let (Some(a), Some(b)) = (server_a, server_b) {
        report.server = Some(Usage::between(&a, &b, window_len, report.completed));
    }
    report.load_avg = load_avg;
    Ok(report)
}
