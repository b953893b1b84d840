//! The embedded file store: the shared contract suite, plus what only this backend can show
//! (reopening, group commit counters, corrupt rows, a full disk).

use std::sync::Arc;

use seata_protocol::GlobalStatus;
use seata_server::store::contract::{self, new_branch_id, new_xid, sample_branch, sample_global};
use seata_server::store::{FileStore, FileStoreOptions, SessionStore, StoreError, StoreLimits, StoreOp};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

async fn open(dir: &std::path::Path) -> FileStore {
    FileStore::open(dir, FileStoreOptions::default()).await.expect("open store")
}

/// Writes to the database behind the store's back, as a damaged or foreign file would look.
async fn tamper(dir: &std::path::Path, sql: &str) {
    let mut conn =
        SqliteConnectOptions::new().filename(dir.join(FileStore::DB_FILE_NAME)).connect().await.expect("connect");
    sqlx::raw_sql(sql).execute(&mut conn).await.expect("tamper");
    conn.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contract_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    contract::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contract_suite_behind_a_trait_object() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn SessionStore> = Arc::new(open(dir.path()).await);
    contract::run_all(store.as_ref()).await;
}

#[tokio::test]
async fn open_creates_the_directory_and_the_database_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nested = dir.path().join("sessionStore").join("8091");
    let store = open(&nested).await;
    assert_eq!(store.path(), nested.join(FileStore::DB_FILE_NAME));
    assert!(store.path().is_file());
    store.close().await.expect("close");
}

#[tokio::test]
async fn sessions_survive_close_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    let mut expected = Vec::new();
    for i in 0..10 {
        let xid = new_xid(&format!("reopen{i}"));
        let mut ops = vec![StoreOp::InsertGlobal(sample_global(&xid))];
        ops.extend((0..i % 3).map(|_| StoreOp::InsertBranch(sample_branch(&xid, new_branch_id()))));
        store.apply(ops).await.expect("apply");
        expected.push(xid);
    }
    store
        .apply(vec![StoreOp::UpdateGlobalStatus {
            xid: expected[3].clone(),
            expected: Some(GlobalStatus::Begin),
            status: GlobalStatus::RollbackRetrying,
        }])
        .await
        .expect("update");
    store.apply(vec![StoreOp::RemoveGlobal { xid: expected.remove(5) }]).await.expect("remove");
    let before = store.load_all().await.expect("load_all");
    store.close().await.expect("close");

    let reopened = open(dir.path()).await;
    let after = reopened.load_all().await.expect("load_all");
    assert_eq!(after, before);
    let xids: Vec<&str> = after.iter().map(|s| s.global.xid.as_str()).collect();
    assert_eq!(xids, expected.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(after[3].global.status, GlobalStatus::RollbackRetrying);
    reopened.close().await.expect("close");
}

#[tokio::test]
async fn dropping_without_close_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let xid = new_xid("dropped");
    {
        let store = open(dir.path()).await;
        store.apply(vec![StoreOp::InsertGlobal(sample_global(&xid))]).await.expect("apply");
    }
    let reopened = open(dir.path()).await;
    assert!(reopened.load(&xid).await.expect("load").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_requests_share_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(dir.path()).await);
    let xids: Vec<String> = (0..200).map(|i| new_xid(&format!("gc{i}"))).collect();
    let tasks: Vec<_> = xids
        .iter()
        .cloned()
        .map(|xid| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let branch = sample_branch(&xid, new_branch_id());
                store.apply(vec![StoreOp::InsertGlobal(sample_global(&xid)), StoreOp::InsertBranch(branch)]).await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("join").expect("apply");
    }
    let stats = store.stats();
    eprintln!("200 concurrent requests: {stats:?}");
    assert_eq!(stats.requests, 200);
    assert!(stats.batches < stats.requests, "no request shared a commit: {stats:?}");
    assert!(stats.max_batch_size > 1, "{stats:?}");
    assert_eq!(store.write_stats(), Some(stats));
    store.close().await.expect("close");

    let reopened = open(dir.path()).await;
    let all = reopened.load_all().await.expect("load_all");
    assert_eq!(all.len(), 200);
    for xid in &xids {
        let session = reopened.load(xid).await.expect("load").expect("stored");
        assert_eq!(session.branches.len(), 1);
    }
}

/// A database as an earlier version of the store wrote it (through sqlx, schema version 1) opens
/// and is read and written as before.
#[tokio::test]
async fn a_database_written_by_the_previous_writer_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let xid = "10.0.0.1:8091:42";
    let mut conn = SqliteConnectOptions::new()
        .filename(dir.path().join(FileStore::DB_FILE_NAME))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .connect()
        .await
        .expect("connect");
    sqlx::raw_sql(&format!(
        "CREATE TABLE global_table (
            seq INTEGER PRIMARY KEY, xid TEXT NOT NULL UNIQUE, transaction_id INTEGER NOT NULL,
            status INTEGER NOT NULL, application_id TEXT NOT NULL, transaction_service_group TEXT NOT NULL,
            transaction_name TEXT NOT NULL, timeout INTEGER NOT NULL, begin_time INTEGER NOT NULL,
            application_data TEXT, gmt_create INTEGER NOT NULL, gmt_modified INTEGER NOT NULL) STRICT;
        CREATE TABLE branch_table (
            seq INTEGER PRIMARY KEY, branch_id INTEGER NOT NULL UNIQUE, xid TEXT NOT NULL,
            transaction_id INTEGER NOT NULL, resource_group_id TEXT, resource_id TEXT NOT NULL,
            branch_type TEXT NOT NULL, status INTEGER NOT NULL, client_id TEXT NOT NULL,
            application_data TEXT, lock_key TEXT, gmt_create INTEGER NOT NULL,
            gmt_modified INTEGER NOT NULL) STRICT;
        CREATE INDEX idx_branch_xid ON branch_table (xid, seq);
        PRAGMA user_version = 1;
        INSERT INTO global_table VALUES (1, '{xid}', 42, 1, 'app', 'group', 'tx', 60000, 1700000000000,
            NULL, 1, 1);
        INSERT INTO branch_table VALUES (1, 7, '{xid}', 42, NULL, 'jdbc:mysql://db', 'AT', 1, 'app:1.2.3.4:5',
            NULL, 't:1', 1, 1);"
    ))
    .execute(&mut conn)
    .await
    .expect("write the old file");
    conn.close().await.expect("close");

    let store = open(dir.path()).await;
    let session = store.load(xid).await.expect("load").expect("stored");
    assert_eq!(session.global.status, GlobalStatus::Begin);
    assert_eq!(session.global.timeout_ms, 60_000);
    assert_eq!(session.branches.len(), 1);
    assert_eq!(session.branches[0].lock_key.as_deref(), Some("t:1"));
    store
        .apply(vec![StoreOp::UpdateGlobalStatus {
            xid: xid.to_owned(),
            expected: Some(GlobalStatus::Begin),
            status: GlobalStatus::Committing,
        }])
        .await
        .expect("update");
    let branch = new_branch_id();
    store.apply(vec![StoreOp::InsertBranch(sample_branch(xid, branch))]).await.expect("insert");
    let session = store.load(xid).await.expect("load").expect("stored");
    assert_eq!(session.global.status, GlobalStatus::Committing);
    assert_eq!(session.branches.iter().map(|b| b.branch_id).collect::<Vec<_>>(), vec![7, branch]);
    store.close().await.expect("close");
}

#[tokio::test]
async fn large_lock_keys_and_application_data_within_limits_are_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    let limits = StoreLimits::default();
    let xid = new_xid("big");
    let mut branch = sample_branch(&xid, new_branch_id());
    branch.lock_key = Some("k".repeat(limits.max_lock_key_len));
    branch.application_data = Some("d".repeat(limits.max_application_data_len));
    store
        .apply(vec![StoreOp::InsertGlobal(sample_global(&xid)), StoreOp::InsertBranch(branch.clone())])
        .await
        .expect("apply");
    let loaded = store.load(&xid).await.expect("load").expect("stored");
    assert_eq!(loaded.branches, vec![branch.clone()]);

    let mut too_big = sample_branch(&xid, new_branch_id());
    too_big.lock_key = Some("k".repeat(limits.max_lock_key_len + 1));
    let result = store.apply(vec![StoreOp::InsertBranch(too_big)]).await;
    assert!(matches!(result, Err(StoreError::TooLarge { field: "lock_key", .. })));
    store.close().await.expect("close");
}

#[tokio::test]
async fn configured_limits_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = FileStoreOptions {
        limits: StoreLimits { max_application_data_len: 10, ..StoreLimits::default() },
        ..FileStoreOptions::default()
    };
    let store = FileStore::open(dir.path(), options).await.expect("open");
    let xid = new_xid("limit");
    let mut global = sample_global(&xid);
    global.application_data = Some("01234567890".to_owned());
    let result = store.apply(vec![StoreOp::InsertGlobal(global)]).await;
    assert!(matches!(result, Err(StoreError::TooLarge { field: "application_data", len: 11, max: 10 })));
    assert!(store.load(&xid).await.expect("load").is_none());
    store.close().await.expect("close");
}

#[tokio::test]
async fn an_undecodable_row_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    let good = new_xid("good");
    let bad_status = new_xid("badstatus");
    let bad_type = new_xid("badtype");
    let branch = sample_branch(&bad_type, new_branch_id());
    store
        .apply(vec![
            StoreOp::InsertGlobal(sample_global(&good)),
            StoreOp::InsertGlobal(sample_global(&bad_status)),
            StoreOp::InsertGlobal(sample_global(&bad_type)),
            StoreOp::InsertBranch(branch.clone()),
        ])
        .await
        .expect("apply");
    tamper(dir.path(), &format!("UPDATE global_table SET status = 99 WHERE xid = '{bad_status}'")).await;
    tamper(dir.path(), &format!("UPDATE branch_table SET branch_type = 'MQ' WHERE branch_id = {}", branch.branch_id))
        .await;

    assert!(store.load(&good).await.expect("load").is_some());
    let err = store.load(&bad_status).await.expect_err("corrupt status");
    assert!(
        matches!(&err, StoreError::Corrupt { location, reason }
            if location.contains(&bad_status) && reason.contains("99")),
        "{err:?}"
    );
    let err = store.load(&bad_type).await.expect_err("corrupt type");
    assert!(matches!(&err, StoreError::Corrupt { reason, .. } if reason.contains("MQ")), "{err:?}");
    assert!(matches!(store.load_all().await, Err(StoreError::Corrupt { .. })));
    // A compare-and-set against the undecodable status fails that request only.
    let result = store
        .apply(vec![StoreOp::UpdateGlobalStatus {
            xid: bad_status.clone(),
            expected: Some(GlobalStatus::Begin),
            status: GlobalStatus::Committing,
        }])
        .await;
    assert!(matches!(result, Err(StoreError::Corrupt { .. })), "{result:?}");
    store.apply(vec![StoreOp::RemoveGlobal { xid: bad_status }]).await.expect("remove");
    store.apply(vec![StoreOp::RemoveGlobal { xid: bad_type }]).await.expect("remove");
    assert_eq!(store.load_all().await.expect("load_all").len(), 1);
    store.close().await.expect("close");
}

#[tokio::test]
async fn a_second_store_on_the_same_directory_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = open(dir.path()).await;
    let options =
        FileStoreOptions { busy_timeout: std::time::Duration::from_millis(100), ..FileStoreOptions::default() };
    match FileStore::open(dir.path(), options.clone()).await {
        Err(StoreError::Unavailable { context, .. }) => {
            assert!(context.contains("another server"), "{context}");
        }
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("two stores opened the same directory"),
    }
    first.close().await.expect("close");
    let second = FileStore::open(dir.path(), options).await.expect("reopen");
    second.close().await.expect("close");
}

#[tokio::test]
async fn a_database_from_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    open(dir.path()).await.close().await.expect("close");
    tamper(dir.path(), "PRAGMA user_version = 99").await;
    match FileStore::open(dir.path(), FileStoreOptions::default()).await {
        Err(StoreError::Corrupt { reason, .. }) => assert!(reason.contains("99"), "{reason}"),
        Err(other) => panic!("expected Corrupt, got {other:?}"),
        Ok(_) => panic!("a newer schema was opened"),
    }
}

#[tokio::test]
async fn an_unwritable_directory_is_unavailable_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    match FileStore::open(&file.join("store"), FileStoreOptions::default()).await {
        Err(StoreError::Unavailable { .. }) => {}
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("opened a store under a file"),
    }
}

/// A full disk (simulated by a size cap) fails writes with `Unavailable` and its cause; data
/// already stored stays readable, and writes succeed again once space is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_is_unavailable_and_the_store_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = FileStoreOptions { max_size_bytes: Some(512 * 1024), ..FileStoreOptions::default() };
    let store = Arc::new(FileStore::open(dir.path(), options).await.expect("open"));
    let small: Vec<String> = (0..8).map(|i| new_xid(&format!("small{i}"))).collect();
    let inserts = small.iter().map(|xid| StoreOp::InsertGlobal(sample_global(xid)));
    store.apply(inserts.collect()).await.expect("apply");
    let mut stored = Vec::new();
    let full = loop {
        let xid = new_xid(&format!("fill{}", stored.len()));
        let mut global = sample_global(&xid);
        global.application_data = Some("x".repeat(60_000));
        match store.apply(vec![StoreOp::InsertGlobal(global)]).await {
            Ok(()) => stored.push(xid),
            Err(e) => break e,
        }
        assert!(stored.len() < 100, "the size cap was not enforced");
    };
    assert!(matches!(full, StoreError::Unavailable { .. }), "{full:?}");
    let text = format!("{full} {:?}", std::error::Error::source(&full));
    assert!(text.contains("full"), "the cause is named: {text}");
    assert!(!stored.is_empty());

    // Requests that need no new space (small rows are updated in place) still succeed, also
    // when they share a commit with one that fails for lack of space.
    let big = {
        let store = Arc::clone(&store);
        let mut global = sample_global(&new_xid("big"));
        global.application_data = Some("y".repeat(60_000));
        async move { store.apply(vec![StoreOp::InsertGlobal(global)]).await }
    };
    let updates = futures::future::join_all(small.iter().map(|xid| {
        store.apply(vec![StoreOp::UpdateGlobalStatus {
            xid: xid.clone(),
            expected: Some(GlobalStatus::Begin),
            status: GlobalStatus::Committing,
        }])
    }));
    let (big, updates) = futures::join!(big, updates);
    assert!(matches!(big, Err(StoreError::Unavailable { .. })), "{big:?}");
    for result in updates {
        assert!(result.is_ok(), "{result:?}");
    }
    let all = store.load_all().await.expect("still readable");
    assert_eq!(all.len(), small.len() + stored.len());
    for session in all.iter().filter(|s| small.contains(&s.global.xid)) {
        assert_eq!(session.global.status, GlobalStatus::Committing);
    }

    for xid in stored.drain(..stored.len() / 2) {
        store.apply(vec![StoreOp::RemoveGlobal { xid }]).await.expect("removing frees space");
    }
    let after = new_xid("after");
    let mut global = sample_global(&after);
    global.application_data = Some("z".repeat(60_000));
    store.apply(vec![StoreOp::InsertGlobal(global)]).await.expect("writes succeed again");
    assert!(store.load(&after).await.expect("load").is_some());
    store.close().await.expect("close");
}

/// Throughput of the writer against the number of concurrent callers. Run with
/// `cargo test --release -p seata-server --test store_file -- --ignored --nocapture`;
/// the figures go to `docs/STORE.md`.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
#[ignore = "measurement, not a check"]
async fn measure_group_commit_throughput() {
    for callers in [1_u64, 16, 64, 256, 1024] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(open(dir.path()).await);
        let per_caller = (4_000 / callers).max(8);
        let started = std::time::Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|c| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    for n in 0..per_caller {
                        let xid = format!("10.0.0.1:8091:{c}-{n}");
                        let branch_id = i64::try_from(c * 1_000_000 + n).expect("id");
                        store
                            .apply(vec![
                                StoreOp::InsertGlobal(sample_global(&xid)),
                                StoreOp::InsertBranch(sample_branch(&xid, branch_id)),
                            ])
                            .await
                            .expect("apply");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("join");
        }
        let elapsed = started.elapsed();
        let stats = store.stats();
        let requests = callers * per_caller;
        eprintln!(
            "callers={callers:5} requests={requests:6} batches={:6} mean_batch={:6.1} \
             max_batch={:4} requests_per_s={:8.0}",
            stats.batches,
            requests as f64 / stats.batches as f64,
            stats.max_batch_size,
            requests as f64 / elapsed.as_secs_f64()
        );
        store.close().await.expect("close");
    }
}
