use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicI64;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng};
use seata_protocol::ExceptionCode;

use super::*;
use crate::lock::{parse_lock_key, row_key};

const RES: &str = "jdbc:mysql://db:3306/orders";

fn rows(lock_key: &str) -> Vec<RowLock> {
    parse_lock_key(RES, lock_key)
}

fn owner(xid: &str, branch_id: i64) -> LockOwner {
    LockOwner { xid: xid.to_owned(), transaction_id: 1000 + branch_id, branch_id }
}

const AUTO: LockOptions = LockOptions { auto_commit: true, skip_check_lock: false };
const MANUAL: LockOptions = LockOptions { auto_commit: false, skip_check_lock: false };

fn key(table: &str, pk: &str) -> String {
    row_key(RES, table, pk)
}

fn held_keys(table: &LockTable, xid: &str) -> BTreeSet<String> {
    table.locks_of(xid).into_iter().map(|l| l.row_key).collect()
}

fn conflict(result: Result<AcquireOutcome, LockError>) -> LockConflict {
    match result {
        Err(LockError::Conflict(c)) => c,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// No owner record may outlive its locks.
fn assert_no_stray_records(table: &LockTable) {
    let live: usize = table.inner.owners.iter().filter(|r| !lock(&r.value().index).branches.is_empty()).count();
    assert_eq!(live, table.inner.owners.len(), "empty owner records left");
}

#[test]
fn table_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<LockTable>();
    let a = LockTable::new();
    let b = a.clone();
    a.acquire(owner("x", 1), &rows("t:1"), AUTO).unwrap();
    assert_eq!(b.count(), 1);
}

#[test]
fn acquire_and_read_back() {
    let table = LockTable::new();
    let outcome = table.acquire(owner("x", 1), &rows("t:1,2;u:3"), AUTO).unwrap();
    assert_eq!(outcome, AcquireOutcome { acquired: 3, reentrant: 0 });
    assert_eq!(table.count(), 3);
    let info = table.holder(&key("u", "3")).unwrap();
    assert_eq!((info.xid.as_str(), info.transaction_id, info.branch_id), ("x", 1001, 1));
    assert_eq!((info.resource_id.as_str(), info.table_name.as_str(), info.pk.as_str()), (RES, "u", "3"));
    assert_eq!(info.row_key, key("u", "3"));
    assert!(table.holder(&key("u", "4")).is_none());
}

#[test]
fn empty_request_takes_nothing() {
    let table = LockTable::new();
    assert_eq!(table.acquire(owner("x", 1), &[], AUTO), Ok(AcquireOutcome::default()));
    assert!(table.inner.owners.is_empty());
}

#[test]
fn duplicates_in_one_request_are_taken_once() {
    let table = LockTable::new();
    let mut req = rows("t:1,2");
    req.extend(rows("t:2,1"));
    let outcome = table.acquire(owner("x", 1), &req, AUTO).unwrap();
    assert_eq!(outcome.acquired, 2);
    assert_eq!(table.count(), 2);
    assert_eq!(table.release_global("x"), 2);
}

#[test]
fn same_xid_is_reentrant_and_keeps_the_first_branch() {
    let table = LockTable::new();
    table.acquire(owner("x", 1), &rows("t:1,2"), AUTO).unwrap();
    let outcome = table.acquire(owner("x", 2), &rows("t:2,3"), AUTO).unwrap();
    assert_eq!(outcome, AcquireOutcome { acquired: 1, reentrant: 1 });
    assert_eq!(table.holder(&key("t", "2")).unwrap().branch_id, 1);
    assert_eq!(table.holder(&key("t", "3")).unwrap().branch_id, 2);

    // All already held: success, nothing written.
    let again = table.acquire(owner("x", 3), &rows("t:1,3"), AUTO).unwrap();
    assert_eq!(again, AcquireOutcome { acquired: 0, reentrant: 2 });
    assert_eq!(table.count(), 3);

    // Releasing branch 1 unlocks row 2 although branch 2 also covered it (Seata does the same).
    assert_eq!(table.release_branch("x", 1), 2);
    assert!(table.holder(&key("t", "2")).is_none());
    assert_eq!(held_keys(&table, "x"), BTreeSet::from([key("t", "3")]));
}

#[test]
fn conflict_is_all_or_nothing() {
    let table = LockTable::new();
    table.acquire(owner("a", 1), &rows("t:5"), AUTO).unwrap();
    let c = conflict(table.acquire(owner("b", 2), &rows("t:1,2,3,4,5,6;u:1"), AUTO));
    assert_eq!(c.row_key, key("t", "5"));
    assert_eq!((c.holder_xid.as_str(), c.holder_branch_id), ("a", 1));
    assert!(!c.fail_fast);
    assert_eq!(table.count(), 1);
    assert!(table.locks_of("b").is_empty());
    assert!(table.is_lockable(Some("c"), &rows("t:1,2,3,4,6;u:1")));
    assert_no_stray_records(&table);
}

#[test]
fn conflict_keeps_earlier_locks_of_the_same_xid() {
    let table = LockTable::new();
    table.acquire(owner("a", 1), &rows("t:9"), AUTO).unwrap();
    table.acquire(owner("b", 1), &rows("t:1"), AUTO).unwrap();
    conflict(table.acquire(owner("b", 2), &rows("t:2,9"), AUTO));
    assert_eq!(held_keys(&table, "b"), BTreeSet::from([key("t", "1")]));
    assert_eq!(table.count(), 2);
}

#[test]
fn first_conflict_in_request_order_is_reported() {
    let table = LockTable::new();
    table.acquire(owner("a", 1), &rows("t:3"), AUTO).unwrap();
    table.acquire(owner("c", 2), &rows("t:2"), AUTO).unwrap();
    let c = conflict(table.acquire(owner("b", 3), &rows("t:1,2,3"), AUTO));
    assert_eq!((c.row_key, c.holder_xid), (key("t", "2"), "c".to_owned()));
}

#[test]
fn fail_fast_needs_auto_commit_off_and_a_rolling_back_holder() {
    let table = LockTable::new();
    table.acquire(owner("a", 1), &rows("t:1"), AUTO).unwrap();

    // Holder not rolling back: plain conflict either way.
    assert!(!conflict(table.acquire(owner("b", 2), &rows("t:1"), MANUAL)).fail_fast);
    assert!(!conflict(table.acquire(owner("b", 2), &rows("t:1"), AUTO)).fail_fast);

    assert!(table.mark_rollbacking("a"));
    assert!(table.is_rollbacking("a"));
    // Rolling back, but the requester auto-commits: plain conflict.
    let c = conflict(table.acquire(owner("b", 2), &rows("t:1"), AUTO));
    assert!(!c.fail_fast);
    // Rolling back and autoCommit=false: fail-fast.
    let c = conflict(table.acquire(owner("b", 2), &rows("t:1"), MANUAL));
    assert!(c.fail_fast);
    assert_eq!(LockError::Conflict(c).code(), ExceptionCode::LockKeyConflictFailFast);
}

#[test]
fn any_rolling_back_holder_makes_it_fail_fast() {
    // Like Seata's database store (ORDER BY status DESC): a later conflicting row whose holder is
    // rolling back wins over an earlier one whose holder is not.
    let table = LockTable::new();
    table.acquire(owner("a", 1), &rows("t:1"), AUTO).unwrap();
    table.acquire(owner("r", 2), &rows("t:2"), AUTO).unwrap();
    table.mark_rollbacking("r");
    let c = conflict(table.acquire(owner("b", 3), &rows("t:1,2"), MANUAL));
    assert!(c.fail_fast);
    assert_eq!((c.row_key, c.holder_xid), (key("t", "2"), "r".to_owned()));
}

#[test]
fn rolling_back_flag_is_per_xid_and_ends_with_its_locks() {
    let table = LockTable::new();
    assert!(!table.mark_rollbacking("nobody"));
    table.acquire(owner("a", 1), &rows("t:1"), AUTO).unwrap();
    table.mark_rollbacking("a");
    // Rows taken after marking carry the flag too.
    table.acquire(owner("a", 2), &rows("t:2"), AUTO).unwrap();
    assert!(conflict(table.acquire(owner("b", 3), &rows("t:2"), MANUAL)).fail_fast);
    table.release_global("a");
    assert!(!table.is_rollbacking("a"));
    // A new life of the same xid starts unmarked.
    table.acquire(owner("a", 4), &rows("t:1"), AUTO).unwrap();
    assert!(!conflict(table.acquire(owner("b", 3), &rows("t:1"), MANUAL)).fail_fast);
}

#[test]
fn skip_check_lock_still_checks() {
    let table = LockTable::new();
    table.acquire(owner("a", 1), &rows("t:1"), AUTO).unwrap();
    let skip = LockOptions { auto_commit: true, skip_check_lock: true };
    conflict(table.acquire(owner("b", 2), &rows("t:1"), skip));
    assert_eq!(table.acquire(owner("a", 2), &rows("t:1,2"), skip), Ok(AcquireOutcome { acquired: 1, reentrant: 1 }));
}

#[test]
fn release_by_branch_versus_by_xid() {
    let table = LockTable::new();
    table.acquire(owner("x", 1), &rows("t:1,2"), AUTO).unwrap();
    table.acquire(owner("x", 2), &rows("t:3"), AUTO).unwrap();
    table.acquire(owner("y", 3), &rows("t:4"), AUTO).unwrap();

    assert_eq!(table.release_branch("x", 1), 2);
    assert_eq!(table.release_branch("x", 1), 0);
    assert_eq!(table.release_branch("x", 99), 0);
    assert_eq!(table.release_branch("nobody", 1), 0);
    assert_eq!(held_keys(&table, "x"), BTreeSet::from([key("t", "3")]));
    assert_eq!(table.count(), 2);

    table.acquire(owner("x", 4), &rows("t:5,6"), AUTO).unwrap();
    assert_eq!(table.release_global("x"), 3);
    assert_eq!(table.release_global("x"), 0);
    assert_eq!(table.count(), 1);
    assert_eq!(held_keys(&table, "y"), BTreeSet::from([key("t", "4")]));

    assert_eq!(table.release_branch("y", 3), 1);
    assert_eq!(table.count(), 0);
    assert!(table.inner.owners.is_empty());
}

#[test]
fn is_lockable_with_and_without_xid() {
    let table = LockTable::new();
    assert!(table.is_lockable(None, &rows("t:1")));
    assert!(table.is_lockable(Some("x"), &[]));
    table.acquire(owner("x", 1), &rows("t:1"), AUTO).unwrap();

    assert!(table.is_lockable(Some("x"), &rows("t:1,2")));
    assert!(!table.is_lockable(Some("y"), &rows("t:2,1")));
    assert!(table.is_lockable(Some("y"), &rows("t:2,3")));
    // A pure @GlobalLock caller has no xid: any held row conflicts.
    assert!(!table.is_lockable(None, &rows("t:1")));
    assert!(!table.is_lockable(Some(""), &rows("t:1")));
    assert!(table.is_lockable(None, &rows("t:2")));
    // Nothing was taken.
    assert_eq!(table.count(), 1);
}

#[test]
fn too_many_rows_is_refused_up_front() {
    let table = LockTable::with_config(LockTableConfig { max_rows_per_acquire: 3, shards: 4 });
    assert_eq!(table.max_rows_per_acquire(), 3);
    assert_eq!(
        table.acquire(owner("x", 1), &rows("t:1,2,3,4"), AUTO),
        Err(LockError::TooManyRows { requested: Some(4), limit: 3 })
    );
    assert_eq!(table.count(), 0);
    assert!(table.acquire(owner("x", 1), &rows("t:1,2,3"), AUTO).is_ok());
}

#[test]
fn a_single_shard_works() {
    let table = LockTable::with_config(LockTableConfig { max_rows_per_acquire: 100, shards: 0 });
    table.acquire(owner("x", 1), &rows("t:1,2,3"), AUTO).unwrap();
    conflict(table.acquire(owner("y", 2), &rows("t:4,3"), AUTO));
    assert_eq!(table.release_global("x"), 3);
}

#[test]
fn snapshot_filters_and_orders() {
    let table = LockTable::new();
    table.acquire(owner("x", 1), &rows("t:1,2;u:1"), AUTO).unwrap();
    thread::sleep(Duration::from_millis(2));
    table.acquire(owner("y", 2), &parse_lock_key("jdbc:other", "t:9"), AUTO).unwrap();

    let all = table.snapshot(&LockFilter::default());
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].xid, "y", "newest first");
    assert!(all[1..].windows(2).all(|w| w[0].row_key <= w[1].row_key));

    let by_table = table.snapshot(&LockFilter { table_name: Some("t".to_owned()), ..LockFilter::default() });
    assert_eq!(by_table.len(), 3);

    let by_xid_and_table = table.snapshot(&LockFilter {
        xid: Some("x".to_owned()),
        table_name: Some("t".to_owned()),
        ..LockFilter::default()
    });
    assert_eq!(by_xid_and_table.iter().map(|l| l.pk.as_str()).collect::<Vec<_>>(), ["1", "2"]);

    let exact = LockFilter {
        transaction_id: Some(1002),
        branch_id: Some(2),
        resource_id: Some("jdbc:other".to_owned()),
        pk: Some("9".to_owned()),
        ..LockFilter::default()
    };
    assert_eq!(table.snapshot(&exact).len(), 1);
    let none = LockFilter { xid: Some("nobody".to_owned()), ..LockFilter::default() };
    assert!(table.snapshot(&none).is_empty());
}

/// Many threads, each its own global transaction, acquire random overlapping row sets from a
/// small pool and release them by branch or by xid. A separate occupancy array, claimed right
/// after a successful acquire and freed right before release, catches any moment at which two
/// xids hold the same row. Each thread also checks its own locks against what it believes it
/// holds, which catches a partially applied conflicting acquire.
#[test]
fn concurrent_overlapping_acquires_keep_rows_exclusive() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 400;
    const POOL: usize = 24;

    let table = LockTable::with_config(LockTableConfig { max_rows_per_acquire: 100, shards: 8 });
    let occupancy: Arc<Vec<AtomicI64>> = Arc::new((0..POOL).map(|_| AtomicI64::new(0)).collect());
    let pool: Arc<Vec<RowLock>> = Arc::new((0..POOL).map(|i| RowLock::new(RES, "t", &i.to_string())).collect());
    // A long-lived holder that is rolling back, so conflicts and fail-fast answers happen even if
    // the workers never overlap in time (a single CPU).
    const PINNED: usize = 3;
    const PINNED_BY: i64 = -1;
    table.acquire(owner("pinned", 0), &pool[..PINNED], AUTO).unwrap();
    assert!(table.mark_rollbacking("pinned"));
    for slot in &occupancy[..PINNED] {
        slot.store(PINNED_BY, Ordering::SeqCst);
    }
    let (done_tx, done_rx) = mpsc::channel();

    for t in 0..THREADS {
        let table = table.clone();
        let occupancy = Arc::clone(&occupancy);
        let pool = Arc::clone(&pool);
        let done_tx = done_tx.clone();
        thread::spawn(move || {
            let me = i64::try_from(t).unwrap() + 1;
            let mut rng = StdRng::seed_from_u64(u64::try_from(t).unwrap());
            let mut successes = 0usize;
            let mut conflicts = 0usize;
            let mut fail_fasts = 0usize;
            for round in 0..ROUNDS {
                let xid = format!("xid-{t}-{round}");
                // branch -> rows it inserted
                let mut mine: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
                for branch in 0..3i64 {
                    if branch == 1 && round % 5 == 0 {
                        // Others (branch 1 runs with autoCommit=false) may now fail fast on us.
                        table.mark_rollbacking(&xid);
                    }
                    let picks: Vec<usize> = (0..rng.gen_range(1..=4)).map(|_| rng.gen_range(0..POOL)).collect();
                    let req: Vec<RowLock> = picks.iter().map(|&i| pool[i].clone()).collect();
                    let before: BTreeSet<usize> = mine.values().flatten().copied().collect();
                    let opts = if branch == 1 { MANUAL } else { AUTO };
                    match table.acquire(owner(&xid, branch), &req, opts) {
                        Ok(outcome) => {
                            successes += 1;
                            let fresh: BTreeSet<usize> =
                                picks.iter().copied().filter(|i| !before.contains(i)).collect();
                            assert_eq!(outcome.acquired, fresh.len());
                            for &i in &fresh {
                                let prev = occupancy[i].compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst);
                                assert_eq!(prev, Ok(0), "row {i} held twice");
                            }
                            mine.insert(branch, fresh.into_iter().collect());
                        }
                        Err(LockError::Conflict(c)) => {
                            conflicts += 1;
                            fail_fasts += usize::from(c.fail_fast);
                            assert_ne!(c.holder_xid, xid);
                            assert!(!c.fail_fast || !opts.auto_commit);
                        }
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                    let expected: BTreeSet<String> =
                        mine.values().flatten().map(|&i| pool[i].row_key().to_owned()).collect();
                    assert_eq!(held_keys(&table, &xid), expected);
                }
                thread::yield_now();
                let free = |rows: &[usize]| {
                    for &i in rows {
                        let prev = occupancy[i].compare_exchange(me, 0, Ordering::SeqCst, Ordering::SeqCst);
                        assert_eq!(prev, Ok(me), "row {i} not ours at release");
                    }
                };
                if round % 2 == 0 {
                    let all: Vec<usize> = mine.values().flatten().copied().collect();
                    free(&all);
                    assert_eq!(table.release_global(&xid), all.len());
                } else {
                    for (branch, rows) in &mine {
                        free(rows);
                        assert_eq!(table.release_branch(&xid, *branch), rows.len());
                    }
                }
                assert!(table.locks_of(&xid).is_empty());
            }
            let _ = done_tx.send((successes, conflicts, fail_fasts));
        });
    }
    drop(done_tx);

    let mut successes = 0;
    let mut conflicts = 0;
    let mut fail_fasts = 0;
    for _ in 0..THREADS {
        // A deadlock or a panicked thread shows up here instead of hanging the suite.
        let (s, c, f) = done_rx.recv_timeout(Duration::from_secs(120)).expect("a worker deadlocked or panicked");
        successes += s;
        conflicts += c;
        fail_fasts += f;
    }
    assert!(
        successes > 0 && conflicts > fail_fasts && fail_fasts > 0,
        "{successes} ok, {conflicts} conflicts, {fail_fasts} fail-fast"
    );
    assert_eq!(table.count(), PINNED);
    assert_eq!(table.release_global("pinned"), PINNED);
    for slot in &occupancy[..PINNED] {
        slot.store(0, Ordering::SeqCst);
    }
    assert_eq!(table.count(), 0);
    assert!(table.snapshot(&LockFilter::default()).is_empty());
    assert!(table.inner.owners.is_empty());
    assert!(occupancy.iter().all(|o| o.load(Ordering::SeqCst) == 0));
}

/// Concurrent acquire and release on the *same* xid (which the coordinator serialises anyway)
/// must not leave locks that no release can reach.
#[test]
fn concurrent_release_and_acquire_of_one_xid_leave_nothing_behind() {
    let table = LockTable::new();
    let (done_tx, done_rx) = mpsc::channel();
    for t in 0..4i64 {
        let table = table.clone();
        let done_tx = done_tx.clone();
        thread::spawn(move || {
            for round in 0..2000i64 {
                let req = parse_lock_key(RES, &format!("t:{},{}", round % 5, t));
                let _ = table.acquire(owner("shared", t * 10_000 + round), &req, AUTO);
                if round % 3 == 0 {
                    table.release_global("shared");
                } else {
                    table.release_branch("shared", t * 10_000 + round - 1);
                }
            }
            let _ = done_tx.send(());
        });
    }
    drop(done_tx);
    for _ in 0..4 {
        done_rx.recv_timeout(Duration::from_secs(120)).expect("a worker deadlocked or panicked");
    }
    let indexed = table.locks_of("shared").len();
    assert_eq!(indexed, table.count(), "every held row is reachable by xid");
    assert_eq!(table.release_global("shared"), indexed);
    assert_eq!(table.count(), 0);
    assert!(table.inner.owners.is_empty());
}

/// An operation of the model-based property test.
#[derive(Debug, Clone)]
enum Op {
    Acquire { xid: usize, branch: i64, rows: Vec<usize>, auto_commit: bool },
    ReleaseBranch { xid: usize, branch: i64 },
    ReleaseGlobal { xid: usize },
    MarkRollbacking { xid: usize },
    IsLockable { xid: Option<usize>, rows: Vec<usize> },
}

fn op() -> impl Strategy<Value = Op> {
    let xid = 0..3usize;
    let branch = 0..4i64;
    let rows = proptest::collection::vec(0..8usize, 0..5);
    prop_oneof![
        4 => (xid.clone(), branch.clone(), rows.clone(), any::<bool>()).prop_map(
            |(xid, branch, rows, auto_commit)| Op::Acquire { xid, branch, rows, auto_commit }
        ),
        2 => (xid.clone(), branch).prop_map(|(xid, branch)| Op::ReleaseBranch { xid, branch }),
        1 => xid.clone().prop_map(|xid| Op::ReleaseGlobal { xid }),
        1 => xid.clone().prop_map(|xid| Op::MarkRollbacking { xid }),
        1 => (proptest::option::of(xid), rows).prop_map(|(xid, rows)| Op::IsLockable { xid, rows }),
    ]
}

/// The obvious single-threaded model: row -> (xid, branch), plus the set of rolling-back xids.
#[derive(Default)]
struct Model {
    rows: BTreeMap<usize, (usize, i64)>,
    rollbacking: BTreeSet<usize>,
}

impl Model {
    fn forget_if_empty(&mut self, xid: usize) {
        if !self.rows.values().any(|&(x, _)| x == xid) {
            self.rollbacking.remove(&xid);
        }
    }
}

proptest! {
    #[test]
    fn behaves_like_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let table = LockTable::with_config(LockTableConfig { max_rows_per_acquire: 100, shards: 3 });
        let pool: Vec<RowLock> = (0..8).map(|i| RowLock::new(RES, "t", &i.to_string())).collect();
        let xid_name = |x: usize| format!("xid-{x}");
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Acquire { xid, branch, rows, auto_commit } => {
                    let req: Vec<RowLock> = rows.iter().map(|&i| pool[i].clone()).collect();
                    let opts = LockOptions { auto_commit, skip_check_lock: false };
                    let got = table.acquire(owner(&xid_name(xid), branch), &req, opts);
                    // Model: distinct rows in order; conflicts are rows held by another xid.
                    let mut seen = BTreeSet::new();
                    let distinct: Vec<usize> = rows.into_iter().filter(|r| seen.insert(*r)).collect();
                    let foreign: Vec<(usize, usize, i64)> = distinct.iter()
                        .filter_map(|r| model.rows.get(r).filter(|(x, _)| *x != xid).map(|&(x, b)| (*r, x, b)))
                        .collect();
                    let decisive = foreign.iter()
                        .find(|(_, x, _)| !auto_commit && model.rollbacking.contains(x))
                        .map(|f| (*f, true))
                        .or_else(|| foreign.first().map(|f| (*f, false)));
                    match decisive {
                        Some(((row, holder, holder_branch), fail_fast)) => {
                            let c = match got {
                                Err(LockError::Conflict(c)) => c,
                                other => return Err(TestCaseError::fail(format!("expected conflict, got {other:?}"))),
                            };
                            prop_assert_eq!(c.row_key, pool[row].row_key().to_owned());
                            prop_assert_eq!(c.holder_xid, xid_name(holder));
                            prop_assert_eq!(c.holder_branch_id, holder_branch);
                            prop_assert_eq!(c.fail_fast, fail_fast);
                        }
                        None => {
                            let fresh: Vec<usize> = distinct.iter().copied().filter(|r| !model.rows.contains_key(r)).collect();
                            prop_assert_eq!(got, Ok(AcquireOutcome {
                                acquired: fresh.len(),
                                reentrant: distinct.len() - fresh.len(),
                            }));
                            for r in fresh {
                                model.rows.insert(r, (xid, branch));
                            }
                        }
                    }
                }
                Op::ReleaseBranch { xid, branch } => {
                    let before = model.rows.len();
                    model.rows.retain(|_, &mut (x, b)| !(x == xid && b == branch));
                    prop_assert_eq!(table.release_branch(&xid_name(xid), branch), before - model.rows.len());
                    model.forget_if_empty(xid);
                }
                Op::ReleaseGlobal { xid } => {
                    let before = model.rows.len();
                    model.rows.retain(|_, &mut (x, _)| x != xid);
                    prop_assert_eq!(table.release_global(&xid_name(xid)), before - model.rows.len());
                    model.rollbacking.remove(&xid);
                }
                Op::MarkRollbacking { xid } => {
                    let holds = model.rows.values().any(|&(x, _)| x == xid);
                    if holds {
                        model.rollbacking.insert(xid);
                    }
                    prop_assert_eq!(table.mark_rollbacking(&xid_name(xid)), holds);
                }
                Op::IsLockable { xid, rows } => {
                    let req: Vec<RowLock> = rows.iter().map(|&i| pool[i].clone()).collect();
                    let expected = rows.iter().all(|r| model.rows.get(r).is_none_or(|&(x, _)| Some(x) == xid));
                    let name = xid.map(xid_name);
                    prop_assert_eq!(table.is_lockable(name.as_deref(), &req), expected);
                }
            }
            // Whole-table agreement after every step.
            prop_assert_eq!(table.count(), model.rows.len());
            for (i, row) in pool.iter().enumerate() {
                let got = table.holder(row.row_key()).map(|h| (h.xid, h.branch_id));
                let want = model.rows.get(&i).map(|&(x, b)| (xid_name(x), b));
                prop_assert_eq!(got, want);
            }
            for x in 0..3 {
                prop_assert_eq!(table.is_rollbacking(&xid_name(x)), model.rollbacking.contains(&x));
            }
            assert_no_stray_records(&table);
        }
    }
}
