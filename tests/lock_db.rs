//! The db lock store (`lock_table`) and the distributed locker (`distributed_lock`) on real
//! MySQL/MariaDB and PostgreSQL servers.
//!
//! The same semantic checks run on the in-memory `LockTable` and on `DbLockStore`, through the
//! `LockStore` trait, so the two stores are shown to answer alike. Each db test runs in a fresh
//! database; see `seata_server::store::db::testing`.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use seata_server::config::DbStoreSettings;
use seata_server::lock::{
    parse_lock_key, AcquireOutcome, LockConflict, LockError, LockFilter, LockOptions, LockOwner, LockStore, LockTable,
    RowLock,
};
use seata_server::store::db::testing::{Backend, TestDb};
use seata_server::store::db::{DbLockStore, DbOptions, DbPool, DistributedLocker};
use seata_server::store::StoreError;

const RES: &str = "jdbc:mysql://db:3306/orders";
const AUTO: LockOptions = LockOptions { auto_commit: true, skip_check_lock: false };
const MANUAL: LockOptions = LockOptions { auto_commit: false, skip_check_lock: false };

/// Runs `$name(backend)` as one test per backend.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn mysql() {
                super::$name(seata_server::store::db::testing::Backend::MySql).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$name(seata_server::store::db::testing::Backend::Postgres).await;
            }
        }
    )*};
}

on_both!(
    same_semantics_as_the_memory_table,
    concurrent_acquirers_never_both_win,
    distinct_rows_never_conflict_under_load,
    lost_deadlocks_are_retried,
    rows_are_seata_shaped,
    values_wider_than_the_columns_are_refused,
    large_requests_are_chunked,
    query_orders_newest_first_and_pages,
    closed_pool_is_a_store_error,
    distributed_lock_acquire_expire_release,
    distributed_lock_has_one_winner,
);

fn rows(lock_key: &str) -> Vec<RowLock> {
    parse_lock_key(RES, lock_key)
}

/// The owner of a branch; the transaction id follows the xid, as in Seata.
fn owner(xid: &str, branch_id: i64) -> LockOwner {
    let transaction_id = xid.bytes().map(i64::from).sum();
    LockOwner { xid: xid.to_owned(), transaction_id, branch_id }
}

fn key(table: &str, pk: &str) -> String {
    seata_server::lock::row_key(RES, table, pk)
}

fn conflict(result: Result<AcquireOutcome, LockError>) -> LockConflict {
    match result {
        Err(LockError::Conflict(c)) => c,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

async fn held(store: &dyn LockStore, xid: &str) -> BTreeSet<String> {
    let filter = LockFilter { xid: Some(xid.to_owned()), ..LockFilter::default() };
    store.query(&filter).await.expect("query").into_iter().map(|l| l.row_key).collect()
}

async fn holder_branch(store: &dyn LockStore, row_key: &str) -> Option<(String, i64)> {
    let all = store.query(&LockFilter::default()).await.expect("query");
    all.into_iter().find(|l| l.row_key == row_key).map(|l| (l.xid, l.branch_id))
}

fn options() -> DbOptions {
    DbOptions { create_missing_tables: true, ..DbOptions::default() }
}

async fn open(db: &TestDb) -> DbLockStore {
    DbLockStore::connect(&db.settings(), &options()).await.expect("open the db lock store")
}

/// Every rule of the in-memory table, checked through the trait.
async fn semantics(store: &dyn LockStore) {
    // Acquire and read back.
    let outcome = store.acquire(owner("x", 1), &rows("t1:1,2;u1:3"), AUTO).await.expect("acquire");
    assert_eq!(outcome, AcquireOutcome { acquired: 3, reentrant: 0 });
    let filter = LockFilter { table_name: Some("u1".to_owned()), ..LockFilter::default() };
    let found = store.query(&filter).await.expect("query");
    assert_eq!(found.len(), 1);
    let info = &found[0];
    assert_eq!((info.xid.as_str(), info.transaction_id, info.branch_id), ("x", 120, 1));
    assert_eq!((info.resource_id.as_str(), info.table_name.as_str(), info.pk.as_str()), (RES, "u1", "3"));
    assert_eq!(info.row_key, key("u1", "3"));

    // An empty request takes nothing; duplicates in a request are taken once.
    assert_eq!(store.acquire(owner("x", 1), &[], AUTO).await, Ok(AcquireOutcome::default()));
    let mut dup = rows("t2:1,2");
    dup.extend(rows("t2:2,1"));
    assert_eq!(store.acquire(owner("d", 1), &dup, AUTO).await.expect("dup").acquired, 2);
    assert_eq!(store.release_global("d").await, Ok(2));

    // Re-entrant per xid; re-entrant rows keep their first branch.
    store.acquire(owner("x", 2), &rows("t3:1,2"), AUTO).await.expect("branch 2");
    let outcome = store.acquire(owner("x", 3), &rows("t3:2,3"), AUTO).await.expect("branch 3");
    assert_eq!(outcome, AcquireOutcome { acquired: 1, reentrant: 1 });
    assert_eq!(store.release_branch("x", 3).await, Ok(1));
    assert_eq!(holder_branch(store, &key("t3", "2")).await, Some(("x".to_owned(), 2)));
    let outcome = store.acquire(owner("x", 3), &rows("t3:1,2"), AUTO).await.expect("all re-entrant");
    assert_eq!(outcome, AcquireOutcome { acquired: 0, reentrant: 2 });

    // A conflict takes nothing, and keeps what the requester held before.
    store.acquire(owner("y", 1), &rows("t4:9"), AUTO).await.expect("y");
    let c = conflict(store.acquire(owner("y", 2), &rows("t4:10;t3:1"), AUTO).await);
    assert_eq!(
        (c.row_key.as_str(), c.holder_xid.as_str(), c.holder_branch_id, c.fail_fast),
        (&*key("t3", "1"), "x", 2, false)
    );
    assert_eq!(held(store, "y").await, BTreeSet::from([key("t4", "9")]));

    // Fail-fast needs autoCommit=false and a holder that is rolling back.
    assert!(!conflict(store.acquire(owner("y", 3), &rows("t3:1"), MANUAL).await).fail_fast);
    store.mark_rollbacking("x").await.expect("mark");
    assert!(!conflict(store.acquire(owner("y", 3), &rows("t3:1"), AUTO).await).fail_fast);
    assert!(conflict(store.acquire(owner("y", 3), &rows("t3:1"), MANUAL).await).fail_fast);
    // Any rolling-back holder makes it fail-fast, wherever it is in the request.
    let c = conflict(store.acquire(owner("z", 1), &rows("t4:9;t3:1"), MANUAL).await);
    assert!(c.fail_fast && c.row_key == key("t3", "1") && c.holder_xid == "x", "{c:?}");
    // skipCheckLock: own rows stay re-entrant, others' rows still conflict (and fail fast).
    let skip = LockOptions { auto_commit: false, skip_check_lock: true };
    let outcome = store.acquire(owner("x", 4), &rows("t3:1;t3:4"), skip).await.expect("skip, own rows");
    assert_eq!(outcome, AcquireOutcome { acquired: 1, reentrant: 1 });
    assert!(conflict(store.acquire(owner("z", 1), &rows("t3:1"), skip).await).fail_fast);
    assert_eq!(store.acquire(owner("z", 1), &rows("t9:1"), skip).await.expect("skip, free").acquired, 1);

    // GlobalLockQuery.
    assert_eq!(store.is_lockable(Some("x"), &rows("t3:1,2;t9:2")).await, Ok(true));
    assert_eq!(store.is_lockable(Some("y"), &rows("t3:1")).await, Ok(false));
    assert_eq!(store.is_lockable(None, &rows("t3:1")).await, Ok(false));
    assert_eq!(store.is_lockable(Some(""), &rows("t3:1")).await, Ok(false));
    assert_eq!(store.is_lockable(None, &rows("free:1")).await, Ok(true));
    assert_eq!(store.is_lockable(None, &[]).await, Ok(true));

    // Release by branch, then by xid.
    assert_eq!(held(store, "x").await.len(), 6);
    assert_eq!(store.release_branch("x", 2).await, Ok(2));
    assert_eq!(store.release_branch("x", 2).await, Ok(0));
    assert_eq!(store.release_global("x").await, Ok(4));
    assert!(held(store, "x").await.is_empty());
    assert_eq!(store.acquire(owner("y", 3), &rows("t3:1"), MANUAL).await.expect("free now").acquired, 1);

    // Filters.
    let by = |f: LockFilter| async move { store.query(&f).await.expect("query").len() };
    assert_eq!(by(LockFilter { branch_id: Some(3), ..LockFilter::default() }).await, 1);
    assert_eq!(by(LockFilter { transaction_id: Some(121), ..LockFilter::default() }).await, 2);
    assert_eq!(by(LockFilter { pk: Some("9".to_owned()), ..LockFilter::default() }).await, 1);
    assert_eq!(by(LockFilter { resource_id: Some(RES.to_owned()), ..LockFilter::default() }).await, 3);
    assert_eq!(by(LockFilter { resource_id: Some("other".to_owned()), ..LockFilter::default() }).await, 0);

    // Too many rows is refused up front.
    let limit = store.max_rows_per_acquire();
    let many: Vec<RowLock> = (0..=limit).map(|i| RowLock::new(RES, "big", &i.to_string())).collect();
    assert_eq!(
        store.acquire(owner("w", 1), &many, AUTO).await,
        Err(LockError::TooManyRows { requested: Some(limit + 1), limit })
    );
    for xid in ["y", "z"] {
        store.release_global(xid).await.expect("release");
    }
    assert!(store.query(&LockFilter::default()).await.expect("query").is_empty());
}

#[tokio::test]
async fn semantics_of_the_memory_table() {
    semantics(&LockTable::new()).await;
}

async fn same_semantics_as_the_memory_table(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let store = open(&db).await;
    assert!(!store.is_volatile());
    assert_eq!(store.count(), None);
    semantics(&store).await;
    store.pool().close().await;
    db.cleanup().await;
}

/// Many tasks race for overlapping rows; a shared map records who won what, and no row may ever
/// have two winners at once. Every winner must see all its rows held by itself.
async fn race(store: Arc<dyn LockStore>, tasks: usize, rounds: usize) -> usize {
    let claims: Arc<Mutex<HashMap<String, String>>> = Arc::new(Mutex::new(HashMap::new()));
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = Arc::clone(&store);
            let claims = Arc::clone(&claims);
            tokio::spawn(async move {
                let pool: Vec<String> = (0..20).map(|i| i.to_string()).collect();
                let mut wins = 0;
                for round in 0..rounds {
                    let xid = format!("race-{t}-{round}");
                    let picked: Vec<String> = pool.choose_multiple(&mut rand::thread_rng(), 4).cloned().collect();
                    let wanted: Vec<RowLock> = picked.iter().map(|pk| RowLock::new(RES, "race", pk)).collect();
                    let opts = if round % 3 == 0 { LockOptions { skip_check_lock: true, ..AUTO } } else { AUTO };
                    match store.acquire(owner(&xid, 1), &wanted, opts).await {
                        Ok(outcome) => {
                            assert_eq!(outcome.acquired, 4);
                            wins += 1;
                            {
                                let mut claims = claims.lock().expect("claims");
                                for row in &wanted {
                                    if let Some(other) = claims.insert(row.row_key().to_owned(), xid.clone()) {
                                        panic!("{} won by {xid} while {other} holds it", row.row_key());
                                    }
                                }
                            }
                            let mine = held(store.as_ref(), &xid).await;
                            assert_eq!(mine.len(), 4, "{xid} holds all it won: {mine:?}");
                            {
                                let mut claims = claims.lock().expect("claims");
                                for row in &wanted {
                                    claims.remove(row.row_key());
                                }
                            }
                            assert_eq!(store.release_global(&xid).await, Ok(4));
                        }
                        Err(LockError::Conflict(c)) => assert!(!c.fail_fast),
                        Err(e) => panic!("{xid}: {e:?}"),
                    }
                    // Nothing of a lost request stays behind.
                    assert!(held(store.as_ref(), &xid).await.is_empty());
                }
                wins
            })
        })
        .collect();
    let mut wins = 0;
    for h in handles {
        wins += h.await.expect("task");
    }
    assert!(store.query(&LockFilter::default()).await.expect("query").is_empty());
    wins
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_table_race() {
    let wins = race(Arc::new(LockTable::new()), 8, 40).await;
    assert!(wins > 0);
}

async fn concurrent_acquirers_never_both_win(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let store = open(&db).await;
    let pool = store.pool().clone();
    let wins = race(Arc::new(store), 8, 25).await;
    assert!(wins > 0, "someone won");
    pool.close().await;
    db.cleanup().await;
}

/// Acquires and releases of distinct rows by many callers at once, branch ids increasing as
/// Seata's id generator makes them: no spurious conflict, no error (MySQL's gap-lock deadlocks
/// between inserts and deletes on `idx_branch_id` are retried).
async fn distinct_rows_never_conflict_under_load(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let store = Arc::new(open(&db).await);
    let next_branch = Arc::new(std::sync::atomic::AtomicI64::new(1));
    let tasks: Vec<_> = (0..48)
        .map(|t| {
            let store = Arc::clone(&store);
            let next_branch = Arc::clone(&next_branch);
            tokio::spawn(async move {
                for i in 0..15 {
                    let xid = format!("load-{t}-{i}");
                    let branch_id = next_branch.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let wanted = rows(&format!("load:{t}_{i}_a,{t}_{i}_b;other:{t}_{i}"));
                    let outcome = store.acquire(owner(&xid, branch_id), &wanted, AUTO).await;
                    assert_eq!(outcome.map(|o| o.acquired), Ok(3), "{xid}");
                    if i % 2 == 0 {
                        store.mark_rollbacking(&xid).await.expect("mark");
                        assert_eq!(store.release_branch(&xid, branch_id).await, Ok(3));
                    } else {
                        assert_eq!(store.release_global(&xid).await, Ok(3));
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    assert!(store.query(&LockFilter::default()).await.expect("query").is_empty());
    store.pool().close().await;
    db.cleanup().await;
}

/// Every caller uses branch id 1 (which Seata never does), so the deletes by `branch_id` take
/// overlapping gap locks on MySQL and deadlock with each other's inserts; each acquisition and
/// release must still succeed, through retries. (Without retries this fails about one run in
/// three on MariaDB 10.11.)
async fn lost_deadlocks_are_retried(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let options = DbOptions { contention_retries: 8, ..options() };
    let store = Arc::new(DbLockStore::connect(&db.settings(), &options).await.expect("open"));
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..20 {
                    let xid = format!("dl-{t}-{i}");
                    let wanted = rows(&format!("dl:{t}_{i}_a,{t}_{i}_b"));
                    let outcome = store.acquire(owner(&xid, 1), &wanted, AUTO).await;
                    assert_eq!(outcome.map(|o| o.acquired), Ok(2), "{xid}");
                    store.release_branch(&xid, 1).await.expect("release");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    assert!(store.query(&LockFilter::default()).await.expect("query").is_empty());
    store.pool().close().await;
    db.cleanup().await;
}

async fn rows_are_seata_shaped(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let store = open(&db).await;
    let xid = "10.0.0.1:8091:4242";
    let owner = LockOwner { xid: xid.to_owned(), transaction_id: 4242, branch_id: 77 };
    store.acquire(owner, &rows("orders:1_a;order_items:7"), AUTO).await.expect("acquire");
    let t = |c: &str| db.text(c);
    let sql = format!(
        "SELECT row_key, xid, {}, {}, resource_id, table_name, pk, {}, {}, {} FROM lock_table",
        t("transaction_id"),
        t("branch_id"),
        t("status"),
        t("gmt_create"),
        t("gmt_modified")
    );
    let found = db.query_strings(&sql).await;
    assert_eq!(found.len(), 2);
    let row = found.iter().find(|r| r[5].as_deref() == Some("orders")).expect("the orders row");
    assert_eq!(row[0].as_deref(), Some(&*key("orders", "1_a")));
    assert_eq!(row[1].as_deref(), Some(xid));
    assert_eq!((row[2].as_deref(), row[3].as_deref()), (Some("4242"), Some("77")));
    assert_eq!((row[4].as_deref(), row[5].as_deref(), row[6].as_deref()), (Some(RES), Some("orders"), Some("1_a")));
    assert_eq!(row[7].as_deref(), Some("0"), "status 0 = locked");
    assert!(row[8].is_some() && row[9].is_some(), "{row:?}");
    store.mark_rollbacking(xid).await.expect("mark");
    let statuses = db.query_strings(&format!("SELECT {} FROM lock_table", t("status"))).await;
    assert_eq!(statuses, vec![vec![Some("1".to_owned())]; 2], "status 1 = rollbacking");
    assert_eq!(store.release_branch(xid, 77).await, Ok(2));
    assert!(db.query_strings("SELECT row_key FROM lock_table").await.is_empty());
    store.pool().close().await;
    db.cleanup().await;
}

async fn values_wider_than_the_columns_are_refused(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let store = open(&db).await;
    let refused = |field: &'static str, max: usize| {
        move |result: Result<AcquireOutcome, LockError>| match result {
            Err(LockError::Store(StoreError::TooLarge { field: f, max: m, .. })) if f == field && m == max => {}
            other => panic!("expected TooLarge for {field}, got {other:?}"),
        }
    };
    let pk37 = "p".repeat(37);
    refused("pk", 36)(store.acquire(owner("x", 1), &[RowLock::new(RES, "t", &pk37)], AUTO).await);
    let table33 = "t".repeat(33);
    refused("table_name", 32)(store.acquire(owner("x", 1), &[RowLock::new(RES, &table33, "1")], AUTO).await);
    let resource = format!("jdbc:mysql://{}/db", "h".repeat(110));
    refused("row_key", 128)(store.acquire(owner("x", 1), &[RowLock::new(&resource, "t", "1")], AUTO).await);
    refused("xid", 128)(store.acquire(owner(&"x".repeat(129), 1), &rows("t:1"), AUTO).await);
    // Nothing was written; at the limits everything is.
    assert!(store.query(&LockFilter::default()).await.expect("query").is_empty());
    let pk36 = "键".repeat(36);
    let row = RowLock::new(RES, &"t".repeat(32), &pk36);
    assert_eq!(store.acquire(owner("x", 1), &[row], AUTO).await.expect("at the limits").acquired, 1);
    store.pool().close().await;
    db.cleanup().await;
}

async fn large_requests_are_chunked(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let store = open(&db).await;
    let many: Vec<RowLock> = (0..2_500).map(|i| RowLock::new(RES, "big", &i.to_string())).collect();
    let started = Instant::now();
    assert_eq!(store.acquire(owner("x", 1), &many, AUTO).await.expect("acquire").acquired, 2_500);
    let took = started.elapsed();
    let again = store.acquire(owner("x", 2), &many, AUTO).await.expect("re-entrant");
    assert_eq!(again, AcquireOutcome { acquired: 0, reentrant: 2_500 });
    let c = conflict(store.acquire(owner("y", 1), &many[2_499..], AUTO).await);
    assert_eq!(c.row_key, key("big", "2499"));
    assert_eq!(store.is_lockable(Some("x"), &many).await, Ok(true));
    assert_eq!(store.release_global("x").await, Ok(2_500));
    eprintln!("{backend:?}: 2500 row locks acquired in {took:?}");
    store.pool().close().await;
    db.cleanup().await;
}

async fn query_orders_newest_first_and_pages(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let store = open(&db).await;
    store.acquire(owner("old", 1), &rows("q:2,1"), AUTO).await.expect("old");
    // gmt_create has second precision.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    store.acquire(owner("new", 1), &rows("q:4,3"), AUTO).await.expect("new");
    let all: Vec<String> =
        store.query(&LockFilter::default()).await.expect("query").into_iter().map(|l| l.pk).collect();
    assert_eq!(all, vec!["3", "4", "1", "2"], "newest first, then by row key");
    let page: Vec<String> =
        store.query_page(&LockFilter::default(), 2, 1).await.expect("page").into_iter().map(|l| l.pk).collect();
    assert_eq!(page, vec!["4", "1"]);
    let info = store.holder(&key("q", "1")).await.expect("holder").expect("held");
    assert_eq!(info.xid, "old");
    let age = std::time::SystemTime::now().duration_since(info.acquired_at).unwrap_or_default();
    assert!(age < Duration::from_secs(60), "acquired_at is the row's gmt_create: {age:?}");
    store.pool().close().await;
    db.cleanup().await;
}

async fn closed_pool_is_a_store_error(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let store = open(&db).await;
    store.pool().close().await;
    let result = store.acquire(owner("x", 1), &rows("t:1"), AUTO).await;
    assert!(matches!(result, Err(LockError::Store(StoreError::Closed))), "{result:?}");
    assert!(matches!(store.release_global("x").await, Err(LockError::Store(StoreError::Closed))));
    db.cleanup().await;
}

async fn locker(db: &TestDb) -> (DbPool, DistributedLocker) {
    let pool = DbPool::connect(&db.settings(), &options()).await.expect("pool");
    let locker = DistributedLocker::open(pool.clone(), &options()).await.expect("open").expect("configured");
    (pool, locker)
}

async fn distributed_lock_acquire_expire_release(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let (pool, locker) = locker(&db).await;
    let ttl = Duration::from_secs(30);
    let (a, b) = ("10.0.0.1:8091", "10.0.0.2:8091");

    // A key that is not seeded is inserted on first use.
    assert_eq!(locker.get("UndologDelete").await.expect("get"), None);
    assert_eq!(locker.acquire("UndologDelete", a, ttl).await.ok(), Some(true));
    let row = locker.get("UndologDelete").await.expect("get").expect("inserted");
    assert_eq!(row.value, a);
    let now = seata_now();
    assert!(row.expire_ms > now + 25_000 && row.expire_ms <= now + 30_000, "{row:?}");
    // Held: nobody acquires it, not even the holder (as in Seata).
    assert_eq!(locker.acquire("UndologDelete", b, ttl).await.ok(), Some(false));
    assert_eq!(locker.acquire("UndologDelete", a, ttl).await.ok(), Some(false));
    // Another node's release leaves it; the holder's frees it.
    assert_eq!(locker.release("UndologDelete", b).await.ok(), Some(false));
    assert_eq!(locker.get("UndologDelete").await.expect("get").map(|r| r.value), Some(a.to_owned()));
    assert_eq!(locker.release("UndologDelete", a).await.ok(), Some(true));
    let row = locker.get("UndologDelete").await.expect("get").expect("row stays");
    assert_eq!((row.value.as_str(), row.expire_ms), (" ", 0));
    assert_eq!(locker.acquire("UndologDelete", b, ttl).await.ok(), Some(true));

    // A seeded key is taken by update; an expired hold is taken over.
    assert_eq!(locker.acquire("RetryCommitting", a, Duration::from_millis(300)).await.ok(), Some(true));
    assert_eq!(locker.acquire("RetryCommitting", b, ttl).await.ok(), Some(false));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(locker.acquire("RetryCommitting", b, ttl).await.ok(), Some(true));
    // An expired hold may be released by anyone.
    assert_eq!(locker.acquire("TxTimeoutCheck", a, Duration::from_millis(1)).await.ok(), Some(true));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(locker.release("TxTimeoutCheck", b).await.ok(), Some(true));

    // Renewal extends only the holder's unexpired lock.
    assert_eq!(locker.renew("RetryCommitting", b, Duration::from_secs(60)).await.ok(), Some(true));
    assert!(locker.get("RetryCommitting").await.expect("get").expect("row").expire_ms > seata_now() + 50_000);
    assert_eq!(locker.renew("RetryCommitting", a, ttl).await.ok(), Some(false));

    // Unknown keys, and values wider than the columns.
    assert_eq!(locker.release("NoSuchJob", a).await.ok(), Some(false));
    let long = "k".repeat(21);
    assert!(matches!(locker.acquire(&long, a, ttl).await, Err(StoreError::TooLarge { field: "lock_key", .. })));
    assert!(matches!(
        locker.acquire("Job", "255.255.255.255:65535", ttl).await,
        Err(StoreError::TooLarge { field: "lock_value", .. })
    ));

    // A blank table name disables the protocol.
    let settings = DbStoreSettings { distributed_lock_table: Some(" ".to_owned()), ..db.settings() };
    let disabled = DbPool::connect(&settings, &options()).await.expect("pool");
    assert!(DistributedLocker::open(disabled.clone(), &options()).await.expect("open").is_none());
    disabled.close().await;
    pool.close().await;
    db.cleanup().await;
}

async fn distributed_lock_has_one_winner(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let (pool, locker) = locker(&db).await;
    for key in ["Committing", "AsyncCommitting"] {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let locker = locker.clone();
                tokio::spawn(
                    async move { locker.acquire(key, &format!("10.0.0.{i}:8091"), Duration::from_secs(30)).await },
                )
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            if t.await.expect("task").expect("no database error") {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "{key}: exactly one node wins (new key: insert race; seeded key: update race)");
    }
    pool.close().await;
    db.cleanup().await;
}

fn seata_now() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Row-lock acquisitions per second on a real server (64 callers, 2 rows each, released by
/// branch afterwards). Run with `cargo test --test lock_db lock_throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn lock_throughput() {
    for backend in Backend::ALL {
        let Some(db) = TestDb::create(backend).await else { continue };
        let store = Arc::new(open(&db).await);
        let per_task = 40;
        let next_branch = Arc::new(std::sync::atomic::AtomicI64::new(1));
        let started = Instant::now();
        let tasks: Vec<_> = (0..64)
            .map(|t| {
                let store = Arc::clone(&store);
                let next_branch = Arc::clone(&next_branch);
                tokio::spawn(async move {
                    for i in 0..per_task {
                        let xid = format!("tp-{t}-{i}");
                        let branch_id = next_branch.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let wanted = rows(&format!("tp:{t}_{i}_a,{t}_{i}_b"));
                        store.acquire(owner(&xid, branch_id), &wanted, AUTO).await.expect("acquire");
                        store.release_branch(&xid, branch_id).await.expect("release");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        let rate = f64::from(64 * per_task) / started.elapsed().as_secs_f64();
        println!("{backend:?}: {rate:.0} acquire+release pairs/s (64 callers, 2 rows each)");
        store.pool().close().await;
        db.cleanup().await;
    }
}
