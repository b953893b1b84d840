//! The behaviour every [`SessionStore`] backend must show, written once.
//!
//! Each check is a `pub async fn` taking `&dyn SessionStore`; it panics (like an `assert!`) when
//! the backend misbehaves, so it is meant to run from tests: `tests/store_file.rs` runs it on
//! the embedded store, and a MySQL or PostgreSQL backend runs the same functions on its database.
//! The checks use their own xids (prefixed with a per-run tag) and only look at those, so they
//! can share one store with each other and with other data. [`run_all`] runs them all and closes
//! the store at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use seata_protocol::{BranchStatus, BranchType, GlobalStatus};

use super::{BranchRecord, GlobalRecord, SessionStore, StoreError, StoreOp, StoredSession};

/// Runs every check, then [`close_refuses_later_calls`], which closes the store.
pub async fn run_all(store: &dyn SessionStore) {
    insert_and_load(store).await;
    registration_order_is_kept(store).await;
    every_code_round_trips(store).await;
    compare_and_set_succeeds(store).await;
    compare_and_set_conflict_changes_nothing(store).await;
    update_without_expected_status(store).await;
    request_is_all_or_nothing(store).await;
    failed_request_does_not_affect_concurrent_ones(store).await;
    update_branch_keeps_or_replaces_application_data(store).await;
    remove_branch(store).await;
    remove_global_removes_its_branches(store).await;
    duplicates_and_orphans_are_refused(store).await;
    oversized_fields_are_refused(store).await;
    load_all_returns_everything_in_begin_order(store).await;
    unknown_xid_loads_none(store).await;
    empty_request_succeeds(store).await;
    close_refuses_later_calls(store).await;
}

/// A fresh xid, unique within the process and across runs on a shared database.
pub fn new_xid(label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let run = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() % 1_000_000_000_000);
    format!("10.0.0.1:8091:{run}{n:06}-{label}")
}

/// A fresh branch id, unique within the process and across runs.
pub fn new_branch_id() -> i64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let run = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() % 1_000_000_000);
    i64::try_from(run * 1_000_000 + u128::from(n % 1_000_000)).unwrap_or(i64::MAX)
}

/// A global record in status Begin with all fields filled.
pub fn sample_global(xid: &str) -> GlobalRecord {
    GlobalRecord {
        xid: xid.to_owned(),
        transaction_id: 4_242,
        status: GlobalStatus::Begin,
        application_id: "order-service".to_owned(),
        transaction_service_group: "default_tx_group".to_owned(),
        transaction_name: "placeOrder(java.lang.String)".to_owned(),
        timeout_ms: 60_000,
        begin_time_ms: 1_700_000_000_123,
        application_data: Some("{\"k\":\"v\"}".to_owned()),
    }
}

/// A registered AT branch of `xid` with a lock key.
pub fn sample_branch(xid: &str, branch_id: i64) -> BranchRecord {
    BranchRecord {
        branch_id,
        xid: xid.to_owned(),
        transaction_id: 4_242,
        resource_group_id: None,
        resource_id: "jdbc:mysql://db:3306/orders".to_owned(),
        branch_type: BranchType::AT,
        status: BranchStatus::Registered,
        client_id: "order-service:10.0.0.7:51234".to_owned(),
        application_data: None,
        lock_key: Some(format!("orders:{branch_id},2;order_items:7")),
    }
}

async fn apply_ok(store: &dyn SessionStore, ops: Vec<StoreOp>) {
    if let Err(e) = store.apply(ops.clone()).await {
        panic!("apply {ops:?} failed: {e}");
    }
}

async fn load_some(store: &dyn SessionStore, xid: &str) -> StoredSession {
    match store.load(xid).await {
        Ok(Some(s)) => s,
        other => panic!("load {xid}: expected a session, got {other:?}"),
    }
}

async fn status_of(store: &dyn SessionStore, xid: &str) -> GlobalStatus {
    load_some(store, xid).await.global.status
}

/// A global session and its branches read back field for field.
pub async fn insert_and_load(store: &dyn SessionStore) {
    let xid = new_xid("insert");
    let global = sample_global(&xid);
    let mut tcc = sample_branch(&xid, new_branch_id());
    tcc.branch_type = BranchType::TCC;
    tcc.lock_key = None;
    tcc.resource_group_id = Some("group-a".to_owned());
    tcc.application_data = Some("{\"actionContext\":{\"a\":1}}".to_owned());
    let at = sample_branch(&xid, new_branch_id());
    apply_ok(store, vec![StoreOp::InsertGlobal(global.clone()), StoreOp::InsertBranch(at.clone())]).await;
    apply_ok(store, vec![StoreOp::InsertBranch(tcc.clone())]).await;
    let loaded = load_some(store, &xid).await;
    assert_eq!(loaded.global, global);
    assert_eq!(loaded.branches, vec![at, tcc]);
}

/// Branches come back in the order they were inserted, not in branch id order.
pub async fn registration_order_is_kept(store: &dyn SessionStore) {
    let xid = new_xid("order");
    apply_ok(store, vec![StoreOp::InsertGlobal(sample_global(&xid))]).await;
    let mut fresh: Vec<i64> = (0..4).map(|_| new_branch_id()).collect();
    fresh.sort_unstable();
    let [a, b, c, d] = [fresh[0], fresh[1], fresh[2], fresh[3]];
    for id in [c, a, d, b] {
        apply_ok(store, vec![StoreOp::InsertBranch(sample_branch(&xid, id))]).await;
    }
    // Removing and adding again puts a branch last.
    apply_ok(store, vec![StoreOp::RemoveBranch { xid: xid.clone(), branch_id: a }]).await;
    apply_ok(store, vec![StoreOp::InsertBranch(sample_branch(&xid, a))]).await;
    let loaded: Vec<i64> = load_some(store, &xid).await.branches.iter().map(|b| b.branch_id).collect();
    assert_eq!(loaded, vec![c, d, b, a]);
}

/// Every global status, branch status and branch type is stored and read back unchanged, and
/// text is stored byte for byte.
pub async fn every_code_round_trips(store: &dyn SessionStore) {
    for &status in GlobalStatus::ALL {
        let xid = new_xid("gs");
        let mut global = sample_global(&xid);
        global.status = status;
        global.application_data = None;
        global.transaction_name = "naïve 事务 \u{1F600} 'quoted' \"x\"".to_owned();
        global.timeout_ms = i32::MAX;
        global.begin_time_ms = i64::MAX;
        apply_ok(store, vec![StoreOp::InsertGlobal(global.clone())]).await;
        assert_eq!(load_some(store, &xid).await.global, global);
    }
    let xid = new_xid("bs");
    apply_ok(store, vec![StoreOp::InsertGlobal(sample_global(&xid))]).await;
    let mut expected = Vec::new();
    for (i, &status) in BranchStatus::ALL.iter().enumerate() {
        let mut branch = sample_branch(&xid, new_branch_id());
        branch.status = status;
        branch.branch_type = BranchType::ALL[i % BranchType::ALL.len()];
        branch.transaction_id = -1;
        apply_ok(store, vec![StoreOp::InsertBranch(branch.clone())]).await;
        expected.push(branch);
    }
    assert_eq!(load_some(store, &xid).await.branches, expected);
}

/// A compare-and-set update with the right expected status changes the status.
pub async fn compare_and_set_succeeds(store: &dyn SessionStore) {
    let xid = new_xid("cas");
    apply_ok(store, vec![StoreOp::InsertGlobal(sample_global(&xid))]).await;
    apply_ok(
        store,
        vec![StoreOp::UpdateGlobalStatus {
            xid: xid.clone(),
            expected: Some(GlobalStatus::Begin),
            status: GlobalStatus::Committing,
        }],
    )
    .await;
    assert_eq!(status_of(store, &xid).await, GlobalStatus::Committing);
}

/// A compare-and-set update with a stale expected status fails with `Conflict` naming the stored
/// status, and changes nothing (not even the other ops of the same request).
pub async fn compare_and_set_conflict_changes_nothing(store: &dyn SessionStore) {
    let xid = new_xid("conflict");
    let branch = sample_branch(&xid, new_branch_id());
    apply_ok(store, vec![StoreOp::InsertGlobal(sample_global(&xid)), StoreOp::InsertBranch(branch.clone())]).await;
    let result = store
        .apply(vec![
            StoreOp::UpdateBranch {
                xid: xid.clone(),
                branch_id: branch.branch_id,
                status: BranchStatus::PhaseOne_Done,
                application_data: None,
            },
            StoreOp::UpdateGlobalStatus {
                xid: xid.clone(),
                expected: Some(GlobalStatus::Rollbacking),
                status: GlobalStatus::Rollbacked,
            },
        ])
        .await;
    match result {
        Err(StoreError::Conflict { xid: x, expected, actual }) => {
            assert_eq!(x, xid);
            assert_eq!(expected, GlobalStatus::Rollbacking);
            assert_eq!(actual, GlobalStatus::Begin);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    let loaded = load_some(store, &xid).await;
    assert_eq!(loaded.global.status, GlobalStatus::Begin);
    assert_eq!(loaded.branches, vec![branch]);
}

/// An update without an expected status always sets it; on an unknown xid it fails with
/// `NotFound`, with or without an expected status.
pub async fn update_without_expected_status(store: &dyn SessionStore) {
    let xid = new_xid("set");
    apply_ok(store, vec![StoreOp::InsertGlobal(sample_global(&xid))]).await;
    apply_ok(
        store,
        vec![StoreOp::UpdateGlobalStatus {
            xid: xid.clone(),
            expected: None,
            status: GlobalStatus::TimeoutRollbacking,
        }],
    )
    .await;
    assert_eq!(status_of(store, &xid).await, GlobalStatus::TimeoutRollbacking);
    for expected in [None, Some(GlobalStatus::Begin)] {
        let missing = new_xid("missing");
        let result = store
            .apply(vec![StoreOp::UpdateGlobalStatus {
                xid: missing.clone(),
                expected,
                status: GlobalStatus::Committing,
            }])
            .await;
        assert!(
            matches!(&result, Err(StoreError::NotFound { xid, branch_id: None }) if *xid == missing),
            "expected NotFound, got {result:?}"
        );
    }
}

/// A request whose last op fails leaves no trace of its earlier ops.
pub async fn request_is_all_or_nothing(store: &dyn SessionStore) {
    let xid = new_xid("atomic");
    let result = store
        .apply(vec![
            StoreOp::InsertGlobal(sample_global(&xid)),
            StoreOp::InsertBranch(sample_branch(&xid, new_branch_id())),
            StoreOp::UpdateBranch {
                xid: xid.clone(),
                branch_id: new_branch_id(),
                status: BranchStatus::PhaseOne_Done,
                application_data: None,
            },
        ])
        .await;
    assert!(
        matches!(result, Err(StoreError::NotFound { branch_id: Some(_), .. })),
        "expected NotFound for the branch, got {result:?}"
    );
    assert_eq!(store.load(&xid).await.ok(), Some(None));
}

/// Many concurrent requests, one of which fails its compare-and-set: only that one fails, and
/// every other one is stored. (Concurrent requests are what a group-commit writer batches.)
pub async fn failed_request_does_not_affect_concurrent_ones(store: &dyn SessionStore) {
    let victim = new_xid("victim");
    apply_ok(store, vec![StoreOp::InsertGlobal(sample_global(&victim))]).await;
    let others: Vec<String> = (0..32).map(|i| new_xid(&format!("batch{i}"))).collect();
    let bad = store.apply(vec![StoreOp::UpdateGlobalStatus {
        xid: victim.clone(),
        expected: Some(GlobalStatus::Committing),
        status: GlobalStatus::Committed,
    }]);
    let good = others.iter().map(|xid| {
        store.apply(vec![
            StoreOp::InsertGlobal(sample_global(xid)),
            StoreOp::InsertBranch(sample_branch(xid, new_branch_id())),
        ])
    });
    let (bad, good) = futures::join!(bad, futures::future::join_all(good));
    assert!(matches!(bad, Err(StoreError::Conflict { .. })), "expected Conflict, got {bad:?}");
    for (xid, result) in others.iter().zip(good) {
        assert!(result.is_ok(), "{xid}: {result:?}");
        assert_eq!(load_some(store, xid).await.branches.len(), 1);
    }
    assert_eq!(status_of(store, &victim).await, GlobalStatus::Begin);
}

/// `UpdateBranch` with `application_data: None` keeps the stored data; `Some` replaces it. An
/// unknown branch fails with `NotFound`.
pub async fn update_branch_keeps_or_replaces_application_data(store: &dyn SessionStore) {
    let xid = new_xid("branchdata");
    let mut branch = sample_branch(&xid, new_branch_id());
    branch.application_data = Some("first".to_owned());
    apply_ok(store, vec![StoreOp::InsertGlobal(sample_global(&xid)), StoreOp::InsertBranch(branch.clone())]).await;
    let update = |status, application_data| StoreOp::UpdateBranch {
        xid: xid.clone(),
        branch_id: branch.branch_id,
        status,
        application_data,
    };
    apply_ok(store, vec![update(BranchStatus::PhaseOne_Done, None)]).await;
    let stored = &load_some(store, &xid).await.branches[0];
    assert_eq!(stored.status, BranchStatus::PhaseOne_Done);
    assert_eq!(stored.application_data.as_deref(), Some("first"));
    assert_eq!(stored.lock_key, branch.lock_key);

    let second = Some("second".to_owned());
    apply_ok(store, vec![update(BranchStatus::PhaseOne_Failed, second)]).await;
    let stored = &load_some(store, &xid).await.branches[0];
    assert_eq!(stored.status, BranchStatus::PhaseOne_Failed);
    assert_eq!(stored.application_data.as_deref(), Some("second"));

    let wrong_xid = store
        .apply(vec![StoreOp::UpdateBranch {
            xid: new_xid("other"),
            branch_id: branch.branch_id,
            status: BranchStatus::PhaseOne_Done,
            application_data: None,
        }])
        .await;
    assert!(
        matches!(wrong_xid, Err(StoreError::NotFound { branch_id: Some(_), .. })),
        "a branch is addressed by xid and branch id, got {wrong_xid:?}"
    );
}

/// `RemoveBranch` deletes one branch; removing it again succeeds.
pub async fn remove_branch(store: &dyn SessionStore) {
    let xid = new_xid("rmbranch");
    let first = sample_branch(&xid, new_branch_id());
    let second = sample_branch(&xid, new_branch_id());
    apply_ok(
        store,
        vec![
            StoreOp::InsertGlobal(sample_global(&xid)),
            StoreOp::InsertBranch(first.clone()),
            StoreOp::InsertBranch(second.clone()),
        ],
    )
    .await;
    for _ in 0..2 {
        apply_ok(store, vec![StoreOp::RemoveBranch { xid: xid.clone(), branch_id: first.branch_id }]).await;
    }
    assert_eq!(load_some(store, &xid).await.branches, vec![second]);
}

/// `RemoveGlobal` deletes the global row and every branch row; removing it again succeeds, and
/// the xid can be used again afterwards without old branches showing up.
pub async fn remove_global_removes_its_branches(store: &dyn SessionStore) {
    let xid = new_xid("rmglobal");
    let branches: Vec<_> = (0..3).map(|_| sample_branch(&xid, new_branch_id())).collect();
    let mut ops = vec![StoreOp::InsertGlobal(sample_global(&xid))];
    ops.extend(branches.iter().cloned().map(StoreOp::InsertBranch));
    apply_ok(store, ops).await;
    for _ in 0..2 {
        apply_ok(store, vec![StoreOp::RemoveGlobal { xid: xid.clone() }]).await;
    }
    assert_eq!(store.load(&xid).await.ok(), Some(None));
    apply_ok(store, vec![StoreOp::InsertGlobal(sample_global(&xid))]).await;
    assert!(load_some(store, &xid).await.branches.is_empty());
    // The old branch ids are free again.
    apply_ok(store, vec![StoreOp::InsertBranch(branches[0].clone())]).await;
}

/// Inserting a stored xid or branch id fails with `Duplicate`; a branch of an unknown global
/// fails with `NotFound`. Nothing is changed.
pub async fn duplicates_and_orphans_are_refused(store: &dyn SessionStore) {
    let xid = new_xid("dup");
    let global = sample_global(&xid);
    let branch = sample_branch(&xid, new_branch_id());
    apply_ok(store, vec![StoreOp::InsertGlobal(global.clone()), StoreOp::InsertBranch(branch.clone())]).await;
    let mut changed = global.clone();
    changed.status = GlobalStatus::Committed;
    let result = store.apply(vec![StoreOp::InsertGlobal(changed)]).await;
    assert!(
        matches!(&result, Err(StoreError::Duplicate { branch_id: None, .. })),
        "expected Duplicate, got {result:?}"
    );
    let result = store.apply(vec![StoreOp::InsertBranch(branch.clone())]).await;
    assert!(
        matches!(&result, Err(StoreError::Duplicate { branch_id: Some(id), .. }) if *id == branch.branch_id),
        "expected Duplicate branch, got {result:?}"
    );
    let orphan = new_xid("orphan");
    let result = store.apply(vec![StoreOp::InsertBranch(sample_branch(&orphan, new_branch_id()))]).await;
    assert!(
        matches!(&result, Err(StoreError::NotFound { branch_id: None, xid }) if *xid == orphan),
        "expected NotFound for the global, got {result:?}"
    );
    assert_eq!(store.load(&orphan).await.ok(), Some(None));
    let loaded = load_some(store, &xid).await;
    assert_eq!(loaded.global, global);
    assert_eq!(loaded.branches, vec![branch]);
}

/// An xid longer than Seata's 128-byte column is refused with `TooLarge` and not stored.
pub async fn oversized_fields_are_refused(store: &dyn SessionStore) {
    let long = format!("{}-{}", new_xid("long"), "x".repeat(128));
    let result = store.apply(vec![StoreOp::InsertGlobal(sample_global(&long))]).await;
    assert!(matches!(result, Err(StoreError::TooLarge { field: "xid", .. })), "expected TooLarge, got {result:?}");
    assert_eq!(store.load(&long).await.ok(), Some(None));
}

/// `load_all` returns every stored session with its branches, in begin order.
pub async fn load_all_returns_everything_in_begin_order(store: &dyn SessionStore) {
    let xids: Vec<String> = (0..5).map(|i| new_xid(&format!("all{i}"))).collect();
    let mut expected = Vec::new();
    for (i, xid) in xids.iter().enumerate() {
        // Branches are registered while the transaction is in Begin (a shared store refuses them
        // later, except for SAGA), then the status moves on.
        let mut global = sample_global(xid);
        let branches: Vec<_> = (0..i).map(|_| sample_branch(xid, new_branch_id())).collect();
        let mut ops = vec![StoreOp::InsertGlobal(global.clone())];
        ops.extend(branches.iter().cloned().map(StoreOp::InsertBranch));
        global.status = GlobalStatus::ALL[i + 1];
        ops.push(StoreOp::UpdateGlobalStatus { xid: xid.clone(), expected: None, status: global.status });
        apply_ok(store, ops).await;
        expected.push(StoredSession { global, branches });
    }
    let all = match store.load_all().await {
        Ok(all) => all,
        Err(e) => panic!("load_all failed: {e}"),
    };
    let ours: Vec<StoredSession> = all.into_iter().filter(|s| xids.contains(&s.global.xid)).collect();
    assert_eq!(ours, expected);
}

/// Loading an xid that was never stored gives `None`.
pub async fn unknown_xid_loads_none(store: &dyn SessionStore) {
    let result = store.load(&new_xid("unknown")).await;
    assert!(matches!(result, Ok(None)), "expected None, got {result:?}");
    let result = store.load("not an xid at all").await;
    assert!(matches!(result, Ok(None)), "expected None, got {result:?}");
}

/// A request with no ops succeeds.
pub async fn empty_request_succeeds(store: &dyn SessionStore) {
    apply_ok(store, Vec::new()).await;
}

/// After `close`, every call fails with `Closed`; closing again succeeds. Closes the store.
pub async fn close_refuses_later_calls(store: &dyn SessionStore) {
    if let Err(e) = store.close().await {
        panic!("close failed: {e}");
    }
    let xid = new_xid("closed");
    let result = store.apply(vec![StoreOp::InsertGlobal(sample_global(&xid))]).await;
    assert!(matches!(result, Err(StoreError::Closed)), "apply: {result:?}");
    let result = store.apply(Vec::new()).await;
    assert!(matches!(result, Err(StoreError::Closed)), "empty apply: {result:?}");
    let result = store.load(&xid).await;
    assert!(matches!(result, Err(StoreError::Closed)), "load: {result:?}");
    let result = store.load_all().await;
    assert!(matches!(result, Err(StoreError::Closed)), "load_all: {result:?}");
    let result = store.close().await;
    assert!(result.is_ok(), "second close: {result:?}");
}
