//! Load for the crash and outage tests: TMs and RMs run AT and TCC transactions against a TC
//! (commits, and one rollback in five) and keep a ledger of what the TC answered; afterwards
//! [`check`] proves that nothing acknowledged was lost:
//!
//! * acknowledged as committed (Committed, or a commit in progress): every acknowledged branch
//!   was committed at the RM, none rolled back;
//! * acknowledged as rolled back: every acknowledged branch was rolled back, none committed;
//! * anything else (the answer was an error or was lost): all of its branches went one way;
//! * every transaction ends, and no row lock is left held.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use seata_protocol::message::*;
use seata_protocol::{BranchType, GlobalStatus, Message};
use seata_server::client::{ClientError, RpcClient};

use super::*;

/// The TCC resource of the load.
pub const TCC: &str = "tcc-inventory";

/// One transaction the TM began.
#[derive(Debug, Default, Clone)]
pub struct Tx {
    /// The lock keys of its AT branches (`table:pk,pk`), acknowledged or not.
    pub lock_keys: Vec<String>,
    /// Acknowledged branch ids.
    pub branches: Vec<i64>,
}

/// What the TMs were told.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Every transaction whose begin was acknowledged.
    pub txs: HashMap<String, Tx>,
    /// Acknowledged as committed (or committing).
    pub committed: HashSet<String>,
    /// Acknowledged as rolled back (or rolling back).
    pub rolled_back: HashSet<String>,
    /// Failed requests by `request: cause` (an exception code, `timeout`, …).
    pub errors: BTreeMap<String, u64>,
    /// When each failure was answered, and how long after its request.
    pub error_times: Vec<(Instant, Duration)>,
    /// When each commit was acknowledged.
    pub commit_times: Vec<Instant>,
}

impl Ledger {
    fn error(&mut self, request: &str, cause: impl std::fmt::Display, sent: Instant) {
        *self.errors.entry(format!("{request}: {cause}")).or_default() += 1;
        self.error_times.push((Instant::now(), sent.elapsed()));
    }

    /// Failed requests in all.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Failed requests that were in flight at some time within `[from, to]` (answered after
    /// `from`, sent before `to`), and the longest wait for one of them.
    pub fn errors_between(&self, from: Instant, to: Instant) -> (usize, Duration) {
        let within: Vec<Duration> = self
            .error_times
            .iter()
            .filter(|(answered, waited)| *answered >= from && answered.checked_sub(*waited).is_some_and(|s| s <= to))
            .map(|(_, d)| *d)
            .collect();
        (within.len(), within.iter().max().copied().unwrap_or_default())
    }

    /// Commits acknowledged at or after `from`, and the first of them.
    pub fn commits_since(&self, from: Instant) -> (usize, Option<Instant>) {
        let after: Vec<&Instant> = self.commit_times.iter().filter(|t| **t >= from).collect();
        (after.len(), after.iter().min().map(|t| **t))
    }
}

/// What happened to a call.
enum Call<T> {
    Ok(T),
    /// The TC answered with a failure, or did not answer in time: go on.
    Failed,
    /// The connection is gone (the TC was killed): stop this worker.
    Gone,
}

/// Sends `msg` and sorts out the answer.
async fn call(client: &RpcClient, ledger: &Mutex<Ledger>, request: &str, msg: &Message) -> (Call<Message>, Instant) {
    let sent = Instant::now();
    let call = match client.call(msg).await {
        Ok(m) => Call::Ok(m),
        Err(ClientError::Timeout(_)) => {
            ledger.lock().unwrap().error(request, "no answer", sent);
            Call::Failed
        }
        Err(_) => Call::Gone,
    };
    (call, sent)
}
/// Statuses that decide for commit / for rollback, as a TM reads them.
fn decides_commit(s: GlobalStatus) -> bool {
    matches!(
        s,
        GlobalStatus::Committed
            | GlobalStatus::Committing
            | GlobalStatus::CommitRetrying
            | GlobalStatus::AsyncCommitting
    )
}

fn decides_rollback(s: GlobalStatus) -> bool {
    matches!(
        s,
        GlobalStatus::Rollbacked
            | GlobalStatus::Rollbacking
            | GlobalStatus::RollbackRetrying
            | GlobalStatus::TimeoutRollbacking
            | GlobalStatus::TimeoutRollbackRetrying
            | GlobalStatus::TimeoutRollbacked
    )
}

/// One worker (a TM and an RM of [`APP`], with the resources [`DB`] and [`TCC`]): begin, an AT
/// branch, a second branch (AT or TCC), commit (or roll back one in five, and after a failed
/// registration, as a TM does when the business code fails), until `stop` or until its
/// connection is gone. Failures are counted and the worker goes on.
pub async fn worker(addr: SocketAddr, w: usize, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>, log: RmLog) {
    let Ok((tm, _)) = RpcClient::connect(addr).await else { return };
    if tm.register_tm(APP, GROUP, VERSION).await.is_err() {
        return;
    }
    // The RM that registers the branches answers their phase two, as a real application does.
    let Ok(rm) = rm_logged(addr, APP, &[DB, TCC], always_ok(), log).await else { return };
    let (tm, rm) = (Arc::new(tm), Arc::new(rm));
    let _heartbeat = Heartbeat::start(vec![Arc::clone(&tm), Arc::clone(&rm)]);
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let begin = Message::GlobalBeginRequest(GlobalBeginRequest { timeout: 3_000, transaction_name: "load".into() });
        let xid = match call(&tm, &ledger, "begin", &begin).await {
            (Call::Ok(Message::GlobalBeginResponse(b)), _) if b.result.is_success() => b.xid,
            (Call::Ok(Message::GlobalBeginResponse(b)), sent) => {
                ledger.lock().unwrap().error("begin", format!("{:?}", b.result.exception_code), sent);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            (Call::Failed, _) => continue,
            _ => return,
        };
        let lock_key = format!("t:{w}_{i}_a,{w}_{i}_b");
        let mut lock_keys = vec![lock_key.clone()];
        let second = if rand::thread_rng().gen_bool(0.5) {
            register_req(&xid, BranchType::TCC, TCC, "")
        } else {
            lock_keys.push(format!("t:{w}_{i}_c"));
            register_req(&xid, BranchType::AT, DB, &lock_keys[1])
        };
        ledger.lock().unwrap().txs.insert(xid.clone(), Tx { lock_keys, branches: Vec::new() });
        let mut failed = false;
        for req in [register_req(&xid, BranchType::AT, DB, &lock_key), second] {
            match call(&rm, &ledger, "branch register", &req).await {
                (Call::Ok(Message::BranchRegisterResponse(r)), _) if r.result.is_success() => {
                    ledger.lock().unwrap().txs.get_mut(&xid).unwrap().branches.push(r.branch_id);
                }
                (Call::Ok(Message::BranchRegisterResponse(r)), sent) => {
                    ledger.lock().unwrap().error("branch register", format!("{:?}", r.result.exception_code), sent);
                    failed = true;
                    break;
                }
                (Call::Failed, _) => {
                    failed = true;
                    break;
                }
                _ => return,
            }
        }
        let rollback = failed || rand::thread_rng().gen_ratio(1, 5);
        let (name, end) = if rollback {
            ("rollback", Message::GlobalRollbackRequest(GlobalEndRequest::new(&xid)))
        } else {
            ("commit", Message::GlobalCommitRequest(GlobalEndRequest::new(&xid)))
        };
        let (r, sent) = match call(&tm, &ledger, name, &end).await {
            (Call::Ok(Message::GlobalCommitResponse(r) | Message::GlobalRollbackResponse(r)), sent) => (r, sent),
            (Call::Failed, _) => continue,
            _ => return,
        };
        let mut l = ledger.lock().unwrap();
        if !r.result.is_success() {
            l.error(name, format!("{:?}", r.result.exception_code), sent);
        } else if decides_commit(r.global_status) {
            l.committed.insert(xid);
            l.commit_times.push(Instant::now());
        } else if decides_rollback(r.global_status) {
            l.rolled_back.insert(xid);
        }
        // Finished: the transaction is over but the answer does not say how (e.g. it timed
        // out and was rolled back before the rollback request came): checked as undecided.
    }
}

/// Pings the TC every 5 s on each connection, as Seata's clients do when they have sent nothing
/// for that long; without it the TC closes connections idle for 15 s, also while their requests
/// wait for a database that is down. Stops when dropped.
pub struct Heartbeat(tokio::task::JoinHandle<()>);

impl Heartbeat {
    pub fn start(clients: Vec<Arc<RpcClient>>) -> Heartbeat {
        Heartbeat(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                for c in &clients {
                    let _ = c.ping().await;
                }
            }
        }))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An RM of the load's application and resources that stays connected (with heartbeats) and
/// records into `log`: it answers phase two when the workers are gone.
pub async fn steady_rm(addr: SocketAddr, log: &RmLog) -> (Arc<RpcClient>, Heartbeat) {
    let rm = Arc::new(rm_logged(addr, APP, &[DB, TCC], always_ok(), log.clone()).await.unwrap());
    let heartbeat = Heartbeat::start(vec![Arc::clone(&rm)]);
    (rm, heartbeat)
}

/// Starts `n` workers; they run until `stop` is set.
pub fn spawn_workers(
    addr: SocketAddr,
    n: usize,
    ledger: &Arc<Mutex<Ledger>>,
    stop: &Arc<AtomicBool>,
    log: &RmLog,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n).map(|w| tokio::spawn(worker(addr, w, Arc::clone(ledger), Arc::clone(stop), log.clone()))).collect()
}

/// Transactions checked by [`check`].
#[derive(Debug, Default)]
pub struct Summary {
    pub checked: usize,
    pub committed: usize,
    pub rolled_back: usize,
    pub undecided: usize,
    pub branches: usize,
    pub branch_commits: usize,
    pub branch_rollbacks: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} transactions checked ({} committed, {} rolled back, {} whose answer was an error or lost), {} branches ({} commits, {} rollbacks at the RM)",
            self.checked,
            self.committed,
            self.rolled_back,
            self.undecided,
            self.branches,
            self.branch_commits,
            self.branch_rollbacks
        )
    }
}

/// Waits (up to `secs`) for every transaction of the ledger to end on the TC at `addr` (an RM of
/// the application must be connected, recording into `log`), then checks the ledger against what
/// the RMs received and that no row lock is held.
///
/// # Panics
/// On anything lost or left behind.
pub async fn check(addr: SocketAddr, ledger: &Ledger, log: &RmLog, secs: u64) -> Summary {
    let tm = tm(addr).await;
    let deadline = Instant::now() + Duration::from_secs(secs);
    for xid in ledger.txs.keys() {
        let left = deadline.saturating_duration_since(Instant::now()).as_secs().max(1);
        assert!(wait_status(&tm, xid, GlobalStatus::Finished, left).await, "{xid} never finished");
    }
    let commits: HashSet<i64> = log.commits().into_iter().collect();
    let rollbacks: HashSet<i64> = log.rollbacks().into_iter().collect();
    let mut summary = Summary {
        committed: ledger.committed.len(),
        rolled_back: ledger.rolled_back.len(),
        branch_commits: commits.len(),
        branch_rollbacks: rollbacks.len(),
        ..Summary::default()
    };
    for (xid, tx) in &ledger.txs {
        let branches = &tx.branches;
        let committed = branches.iter().filter(|b| commits.contains(b)).count();
        let rolled = branches.iter().filter(|b| rollbacks.contains(b)).count();
        if ledger.committed.contains(xid) {
            assert_eq!((committed, rolled), (branches.len(), 0), "{xid} acknowledged committed: {branches:?}");
        } else if ledger.rolled_back.contains(xid) {
            assert_eq!((committed, rolled), (0, branches.len()), "{xid} acknowledged rolled back: {branches:?}");
        } else {
            summary.undecided += 1;
            assert!(committed == 0 || rolled == 0, "{xid}: branches went both ways: {branches:?}");
            assert_eq!(committed + rolled, branches.len(), "{xid}: a branch never got phase two: {branches:?}");
        }
        // No row lock is left: a pure @GlobalLock query finds the rows free.
        let q = Message::GlobalLockQueryRequest(BranchRegisterRequest {
            xid: String::new(),
            branch_type: BranchType::AT,
            resource_id: DB.into(),
            lock_key: tx.lock_keys.join(";"),
            application_data: String::new(),
        });
        let Message::GlobalLockQueryResponse(r) = tm.call(&q).await.unwrap() else { panic!() };
        assert!(r.lockable, "{:?} of {xid} still locked", tx.lock_keys);
        summary.checked += 1;
        summary.branches += branches.len();
    }
    summary
}
