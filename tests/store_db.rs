//! The db session store on real MySQL/MariaDB and PostgreSQL servers: the shared contract
//! suite, plus what only this backend can show (Seata-shaped rows, schema checks, JDBC URLs,
//! column widths, group commit, recovery from killed connections).
//!
//! Each test runs in a fresh database (`seata_t_<random>`) that it drops at the end; see
//! `seata_server::store::db::testing` for the servers used and when tests are skipped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seata_protocol::{BranchStatus, BranchType, GlobalStatus};
use seata_server::config::DbStoreSettings;
use seata_server::lock::{LockOwner, RowLock};
use seata_server::store::contract::{self, new_branch_id, new_xid, sample_branch, sample_global};
use seata_server::store::db::testing::{Backend, TestDb};
use seata_server::store::db::{schema, DbLockStore, DbOptions, DbPool, DbStore, Dialect, DistributedLocker};
use seata_server::store::{LockRequest, SessionStore, StoreError, StoreOp, StoredSession, WriteStats};

/// Runs `$body(backend)` as one test per backend.
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
    contract_suite,
    rows_are_seata_shaped,
    lock_key_is_not_stored,
    connects_with_a_jdbc_url,
    missing_table_is_named_and_created_when_asked,
    missing_column_is_named_and_never_altered,
    tables_from_the_shipped_script_are_accepted,
    custom_table_names,
    values_wider_than_the_columns_are_refused,
    transaction_name_is_truncated_to_the_column,
    unknown_codes_are_corrupt_and_nulls_are_tolerated,
    status_queries_page,
    concurrent_requests_share_commits,
    multi_row_writes_keep_per_request_answers,
    row_locks_commit_with_their_session_change,
    branch_counts_guard_status_changes,
    two_nodes_contend_for_row_locks,
    the_pool_recovers_after_connections_are_killed,
    acknowledged_writes_survive_killed_connections,
    session_time_zone_is_honoured,
    two_nodes_share_the_tables,
);

fn options() -> DbOptions {
    DbOptions { create_missing_tables: true, ..DbOptions::default() }
}

async fn open(db: &TestDb) -> DbStore {
    DbStore::connect(&db.settings(), options()).await.expect("open the db store")
}

/// Restores lock keys from memory: Seata's `branch_table` has no lock-key column, so the db store
/// loads branches with `lock_key: None`, while the contract compares whole records. Everything
/// else is read from the database. [`lock_key_is_not_stored`] checks the real behaviour.
struct LockKeysFromMemory {
    store: DbStore,
    keys: Mutex<HashMap<i64, Option<String>>>,
}

impl LockKeysFromMemory {
    fn restore(&self, session: &mut StoredSession) {
        let keys = self.keys.lock().expect("keys");
        for branch in &mut session.branches {
            assert_eq!(branch.lock_key, None, "the db store does not store lock keys");
            branch.lock_key = keys.get(&branch.branch_id).cloned().flatten();
        }
    }
}

#[async_trait::async_trait]
impl SessionStore for LockKeysFromMemory {
    async fn apply(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        self.store.apply(ops.clone()).await?;
        let mut keys = self.keys.lock().expect("keys");
        for op in ops {
            if let StoreOp::InsertBranch(b) = op {
                keys.insert(b.branch_id, b.lock_key);
            }
        }
        Ok(())
    }
    async fn load_all(&self) -> Result<Vec<StoredSession>, StoreError> {
        let mut all = self.store.load_all().await?;
        all.iter_mut().for_each(|s| self.restore(s));
        Ok(all)
    }
    async fn load(&self, xid: &str) -> Result<Option<StoredSession>, StoreError> {
        let mut session = self.store.load(xid).await?;
        if let Some(s) = session.as_mut() {
            self.restore(s);
        }
        Ok(session)
    }
    async fn close(&self) -> Result<(), StoreError> {
        self.store.close().await
    }
    fn write_stats(&self) -> Option<WriteStats> {
        self.store.write_stats()
    }
}

async fn contract_suite(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let store = LockKeysFromMemory { store: open(&db).await, keys: Mutex::new(HashMap::new()) };
    contract::run_all(&store).await;
    db.cleanup().await;
}

async fn rows_are_seata_shaped(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let store = open(&db).await;
    let xid = new_xid("shape");
    let global = sample_global(&xid);
    let at = sample_branch(&xid, new_branch_id());
    let mut tcc = sample_branch(&xid, new_branch_id());
    tcc.branch_type = BranchType::TCC;
    tcc.application_data = Some("{\"actionContext\":{}}".to_owned());
    store
        .apply(vec![
            StoreOp::InsertGlobal(global.clone()),
            StoreOp::InsertBranch(at.clone()),
            StoreOp::InsertBranch(tcc.clone()),
        ])
        .await
        .expect("insert");
    store
        .apply(vec![StoreOp::UpdateGlobalStatus {
            xid: xid.clone(),
            expected: Some(GlobalStatus::Begin),
            status: GlobalStatus::Committing,
        }])
        .await
        .expect("cas");
    store
        .apply(vec![StoreOp::UpdateBranch {
            xid: xid.clone(),
            branch_id: tcc.branch_id,
            status: BranchStatus::PhaseOne_Done,
            application_data: None,
        }])
        .await
        .expect("update branch");

    let t = |c: &str| db.text(c);
    let rows = db
        .query_strings(&format!(
            "SELECT xid, {}, {}, application_id, transaction_service_group, transaction_name, {}, {}, \
             application_data, {}, {} FROM global_table",
            t("transaction_id"),
            t("status"),
            t("timeout"),
            t("begin_time"),
            t("gmt_create"),
            t("gmt_modified")
        ))
        .await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let s = |i: usize| row[i].as_deref();
    assert_eq!(s(0), Some(xid.as_str()));
    assert_eq!(s(1), Some("4242"));
    assert_eq!(s(2), Some("2"), "status is the GlobalStatus code (Committing)");
    assert_eq!((s(3), s(4)), (Some("order-service"), Some("default_tx_group")));
    assert_eq!(s(5), Some("placeOrder(java.lang.String)"));
    assert_eq!((s(6), s(7)), (Some("60000"), Some("1700000000123")), "timeout in ms, begin_time in epoch ms");
    assert_eq!(s(8), Some("{\"k\":\"v\"}"));
    assert!(s(9).is_some() && s(10).is_some(), "gmt_create and gmt_modified are set: {row:?}");

    let rows = db
        .query_strings(&format!(
            "SELECT {}, xid, {}, resource_group_id, resource_id, branch_type, {}, client_id, application_data, \
             {}, {} FROM branch_table ORDER BY gmt_create, branch_id",
            t("branch_id"),
            t("transaction_id"),
            t("status"),
            t("gmt_create"),
            t("gmt_modified")
        ))
        .await;
    assert_eq!(rows.len(), 2);
    let (first, second) = (&rows[0], &rows[1]);
    assert_eq!(first[0], Some(at.branch_id.to_string()));
    assert_eq!(first[1].as_deref(), Some(xid.as_str()));
    assert_eq!(first[3], None, "resource_group_id is never set");
    assert_eq!(first[4].as_deref(), Some("jdbc:mysql://db:3306/orders"));
    assert_eq!((first[5].as_deref(), first[6].as_deref()), (Some("AT"), Some("1")), "type by name, status code");
    assert_eq!(first[7].as_deref(), Some("order-service:10.0.0.7:51234"));
    assert_eq!((second[5].as_deref(), second[6].as_deref()), (Some("TCC"), Some("2")));
    assert_eq!(second[8].as_deref(), Some("{\"actionContext\":{}}"));
    // A fraction of a second is kept (PostgreSQL prints it without trailing zeros, so 1 to 6 digits).
    let micros = |v: &Option<String>| v.as_deref().and_then(|v| v.split_once('.')).map(|(_, f)| f.len());
    assert!(matches!(micros(&first[9]), Some(1..=6)), "branch gmt_create has microseconds: {first:?}");
    assert!(first[10].is_some());

    store.close().await.expect("close");
    db.cleanup().await;
}

async fn lock_key_is_not_stored(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let store = open(&db).await;
    let xid = new_xid("nolockkey");
    let branch = sample_branch(&xid, new_branch_id());
    assert!(branch.lock_key.is_some());
    store
        .apply(vec![StoreOp::InsertGlobal(sample_global(&xid)), StoreOp::InsertBranch(branch.clone())])
        .await
        .expect("insert");
    let loaded = store.load(&xid).await.expect("load").expect("stored");
    assert_eq!(loaded.branches.len(), 1);
    assert_eq!(loaded.branches[0].lock_key, None);
    assert_eq!(loaded.branches[0], seata_server::store::BranchRecord { lock_key: None, ..branch });
    let all = store.load_all().await.expect("load_all");
    assert_eq!(all[0].branches[0].lock_key, None);
    store.close().await.expect("close");
    db.cleanup().await;
}

async fn connects_with_a_jdbc_url(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let settings = DbStoreSettings { url: db.jdbc_url(), ..db.settings() };
    let store = DbStore::connect(&settings, options()).await.expect("connect with a JDBC URL");
    assert!(store.pool().url().ends_with(&format!("/{}", db.name)), "{}", store.pool().url());
    assert!(!store.pool().url().contains("rewriteBatchedStatements"));
    let xid = new_xid("jdbc");
    store.apply(vec![StoreOp::InsertGlobal(sample_global(&xid))]).await.expect("insert");
    assert!(store.load(&xid).await.expect("load").is_some());
    store.close().await.expect("close");

    // A password never shows in the URL the store reports.
    let settings =
        DbStoreSettings { password: Some(seata_server::config::Secret::new("wrong-secret")), ..db.settings() };
    let err = DbStore::connect(&settings, options()).await.err();
    if let Some(e) = &err {
        assert!(!e.to_string().contains("wrong-secret"), "{e}");
    }
    db.cleanup().await;
}

async fn missing_table_is_named_and_created_when_asked(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let settings = db.settings();
    let err = DbStore::connect(&settings, DbOptions::default()).await.expect_err("no tables");
    let text = err.to_string();
    assert!(text.contains("table `global_table`") && text.contains("seata.store.db.global-table"), "{text}");
    assert!(text.contains("does not exist"), "{text}");

    // Create only some tables: the message names the first missing one.
    let store = DbStore::connect(&settings, options()).await.expect("created");
    store.close().await.expect("close");
    let pool = DbPool::connect(&settings, &DbOptions::default()).await.expect("pool");
    let err = pool.ensure_schema(false).await.expect_err("lock tables missing");
    assert!(err.to_string().contains("table `lock_table`"), "{err}");
    pool.ensure_schema(true).await.expect("create the rest");
    pool.ensure_schema(false).await.expect("all there now");
    let locker = DistributedLocker::open(pool.clone(), &DbOptions::default()).await.expect("open").expect("enabled");
    let seeded = locker.get("RetryRollbacking").await.expect("read").expect("seed row");
    assert_eq!((seeded.value.as_str(), seeded.expire_ms), (" ", 0));
    let sql = format!(
        "SELECT table_name FROM information_schema.tables WHERE table_name IN \
         ('global_table', 'branch_table', 'lock_table', 'distributed_lock') AND {}",
        this_database(&db)
    );
    let tables = db.query_strings(&sql).await;
    assert_eq!(tables.len(), 4, "{tables:?}");
    pool.close().await;
    db.cleanup().await;
}

/// Restricts an `information_schema` query to the test's own database (other tests run their own
/// databases on the same server at the same time).
fn this_database(db: &TestDb) -> &'static str {
    match db.dialect() {
        Dialect::MySql => "table_schema = DATABASE()",
        Dialect::Postgres => {
            "table_catalog = current_database() AND table_schema NOT IN ('information_schema', 'pg_catalog')"
        }
    }
}

async fn missing_column_is_named_and_never_altered(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    // A global_table without `application_data`.
    db.execute(
        "CREATE TABLE global_table (xid VARCHAR(128) NOT NULL PRIMARY KEY, transaction_id BIGINT, \
         status SMALLINT NOT NULL, application_id VARCHAR(32), transaction_service_group VARCHAR(32), \
         transaction_name VARCHAR(128), timeout INT, begin_time BIGINT, gmt_create TIMESTAMP NULL, \
         gmt_modified TIMESTAMP NULL)",
    )
    .await
    .expect("create a partial table");
    let err = DbStore::connect(&db.settings(), options()).await.expect_err("column missing");
    let text = err.to_string();
    assert!(text.contains("has no column `application_data`") && text.contains("global_table"), "{text}");
    let sql = format!(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'global_table' AND {}",
        this_database(&db)
    );
    let columns = db.query_strings(&sql).await;
    assert_eq!(columns.len(), 10, "the table was not altered: {columns:?}");
    db.cleanup().await;
}

async fn tables_from_the_shipped_script_are_accepted(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let script = schema::schema_script(db.dialect());
    db.execute(&script).await.expect("run the shipped script");
    let store = DbStore::connect(&db.settings(), DbOptions::default()).await.expect("tables exist");
    let xid = new_xid("script");
    store
        .apply(vec![StoreOp::InsertGlobal(sample_global(&xid)), StoreOp::InsertBranch(sample_branch(&xid, 7))])
        .await
        .expect("write");
    store.close().await.expect("close");
    let pool = DbPool::connect(&db.settings(), &DbOptions::default()).await.expect("pool");
    pool.ensure_schema(false).await.expect("lock and distributed-lock tables exist");
    pool.close().await;
    db.cleanup().await;
}

async fn custom_table_names(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let settings = DbStoreSettings {
        global_table: "tc_global".to_owned(),
        branch_table: "tc_branch".to_owned(),
        lock_table: "tc_lock".to_owned(),
        distributed_lock_table: Some("tc_job_lock".to_owned()),
        ..db.settings()
    };
    let store = DbStore::connect(&settings, options()).await.expect("open");
    store.pool().ensure_schema(true).await.expect("create the others");
    let xid = new_xid("custom");
    store.apply(vec![StoreOp::InsertGlobal(sample_global(&xid))]).await.expect("insert");
    let rows = db.query_strings("SELECT xid FROM tc_global").await;
    assert_eq!(rows, vec![vec![Some(xid)]]);
    assert_eq!(db.query_strings("SELECT lock_key FROM tc_job_lock").await.len(), 4);
    store.close().await.expect("close");
    db.cleanup().await;
}

async fn values_wider_than_the_columns_are_refused(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let store = open(&db).await;
    let xid = new_xid("wide");
    store.apply(vec![StoreOp::InsertGlobal(sample_global(&xid))]).await.expect("insert");
    let refused = |field: &'static str, max: usize| {
        move |result: Result<(), StoreError>| match result {
            Err(StoreError::TooLarge { field: f, max: m, .. }) if f == field && m == max => {}
            other => panic!("expected TooLarge for {field} (max {max}), got {other:?}"),
        }
    };
    let mut branch = sample_branch(&xid, new_branch_id());
    branch.client_id = "c".repeat(65);
    refused("client_id", 64)(store.apply(vec![StoreOp::InsertBranch(branch)]).await);
    let mut branch = sample_branch(&xid, new_branch_id());
    branch.resource_id = "r".repeat(257);
    refused("resource_id", 256)(store.apply(vec![StoreOp::InsertBranch(branch)]).await);
    let mut branch = sample_branch(&xid, new_branch_id());
    branch.application_data = Some("d".repeat(2001));
    refused("application_data", 2000)(store.apply(vec![StoreOp::InsertBranch(branch)]).await);
    let mut global = sample_global(&new_xid("wide2"));
    global.application_id = "a".repeat(33);
    refused("application_id", 32)(store.apply(vec![StoreOp::InsertGlobal(global)]).await);
    let mut global = sample_global(&new_xid("wide3"));
    global.transaction_service_group = "g".repeat(33);
    refused("transaction_service_group", 32)(store.apply(vec![StoreOp::InsertGlobal(global)]).await);
    let update = StoreOp::UpdateBranch {
        xid: xid.clone(),
        branch_id: 1,
        status: BranchStatus::PhaseOne_Done,
        application_data: Some("d".repeat(2001)),
    };
    refused("application_data", 2000)(store.apply(vec![update]).await);
    // At the limit, in characters (not bytes), everything is stored.
    let mut branch = sample_branch(&xid, new_branch_id());
    branch.client_id = "客".repeat(64);
    branch.application_data = Some("d".repeat(2000));
    store.apply(vec![StoreOp::InsertBranch(branch.clone())]).await.expect("at the limit");
    let loaded = store.load(&xid).await.expect("load").expect("stored");
    assert_eq!(loaded.branches[0].client_id, branch.client_id);
    assert_eq!(store.load_all().await.expect("all").len(), 1, "nothing else was written");
    store.close().await.expect("close");
    db.cleanup().await;
}

async fn transaction_name_is_truncated_to_the_column(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let store = open(&db).await;
    let xid = new_xid("name");
    let mut global = sample_global(&xid);
    global.transaction_name = format!("{}{}", "事".repeat(100), "x".repeat(100));
    store.apply(vec![StoreOp::InsertGlobal(global.clone())]).await.expect("insert");
    let loaded = store.load(&xid).await.expect("load").expect("stored");
    assert_eq!(loaded.global.transaction_name, format!("{}{}", "事".repeat(100), "x".repeat(28)));
    store.close().await.expect("close");
    db.cleanup().await;
}

async fn unknown_codes_are_corrupt_and_nulls_are_tolerated(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let store = open(&db).await;
    // A row as a Java node may leave it: nullable columns NULL, a status of a later version.
    db.execute("INSERT INTO global_table (xid, status) VALUES ('10.0.0.9:8091:1', 18)").await.expect("insert");
    let loaded = store.load("10.0.0.9:8091:1").await.expect("load").expect("stored");
    assert_eq!(loaded.global.status, GlobalStatus::Deleting);
    assert_eq!((loaded.global.timeout_ms, loaded.global.begin_time_ms), (0, 0));
    assert_eq!(loaded.global.application_id, "");

    db.execute("INSERT INTO global_table (xid, status, timeout, begin_time) VALUES ('10.0.0.9:8091:2', 99, 1, 1)")
        .await
        .expect("insert");
    match store.load("10.0.0.9:8091:2").await {
        Err(StoreError::Corrupt { location, reason }) => {
            assert!(location.contains("global_table") && location.contains("10.0.0.9:8091:2"), "{location}");
            assert!(reason.contains("99"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(store.load_all().await, Err(StoreError::Corrupt { .. })));
    let cas = store
        .apply(vec![StoreOp::UpdateGlobalStatus {
            xid: "10.0.0.9:8091:2".to_owned(),
            expected: Some(GlobalStatus::Begin),
            status: GlobalStatus::Committing,
        }])
        .await;
    assert!(matches!(cas, Err(StoreError::Corrupt { .. })), "{cas:?}");

    db.execute("DELETE FROM global_table WHERE status = 99").await.expect("delete");
    db.execute(
        "INSERT INTO branch_table (branch_id, xid, status, branch_type) VALUES (77, '10.0.0.9:8091:1', 1, 'XYZ')",
    )
    .await
    .expect("insert");
    match store.load("10.0.0.9:8091:1").await {
        Err(StoreError::Corrupt { location, reason }) => {
            assert!(location.contains("branch_table") && location.contains("77"), "{location}");
            assert!(reason.contains("XYZ"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    store.close().await.expect("close");
    db.cleanup().await;
}

async fn status_queries_page(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let store = open(&db).await;
    let mut retrying = Vec::new();
    for i in 0..7 {
        let xid = new_xid(&format!("page{i}"));
        let global = sample_global(&xid);
        let status = if i % 2 == 0 { GlobalStatus::CommitRetrying } else { GlobalStatus::Begin };
        let mut ops = vec![StoreOp::InsertGlobal(global)];
        ops.extend((0..i % 3).map(|_| StoreOp::InsertBranch(sample_branch(&xid, new_branch_id()))));
        ops.push(StoreOp::UpdateGlobalStatus { xid: xid.clone(), expected: None, status });
        store.apply(ops).await.expect("insert");
        if i % 2 == 0 {
            retrying.push(xid);
        }
    }
    let statuses = [GlobalStatus::CommitRetrying, GlobalStatus::RollbackRetrying];
    let mut seen = Vec::new();
    for page in 0..3 {
        let rows = store.query_globals(&statuses, 2, page * 2).await.expect("page");
        assert!(rows.len() <= 2);
        seen.extend(rows.into_iter().map(|g| g.xid));
    }
    seen.sort();
    let mut expected = retrying.clone();
    expected.sort();
    assert_eq!(seen, expected, "pages cover every row once");
    assert_eq!(store.query_globals(&[], 100, 0).await.expect("all").len(), 7);
    assert!(store.query_globals(&[GlobalStatus::Rollbacked], 10, 0).await.expect("none").is_empty());

    let sessions = store.load_by_status(&[GlobalStatus::CommitRetrying], 10).await.expect("with branches");
    assert_eq!(sessions.len(), 4);
    for session in &sessions {
        let direct = store.load(&session.global.xid).await.expect("load").expect("stored");
        assert_eq!(session, &direct);
    }
    assert_eq!(sessions.iter().map(|s| s.branches.len()).sum::<usize>(), 2 + 1, "i = 2 and 4 have branches");
    let one = store.load_global(&retrying[0]).await.expect("global").expect("stored");
    assert_eq!(one.status, GlobalStatus::CommitRetrying);
    assert!(store.load_global("nope").await.expect("global").is_none());
    assert_eq!(store.query_limit(), 1_000);
    store.close().await.expect("close");
    db.cleanup().await;
}

async fn concurrent_requests_share_commits(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let store = Arc::new(open(&db).await);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let xid = new_xid(&format!("gc{i}"));
                store
                    .apply(vec![
                        StoreOp::InsertGlobal(sample_global(&xid)),
                        StoreOp::InsertBranch(sample_branch(&xid, new_branch_id())),
                    ])
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("apply");
    }
    let stats = store.stats();
    assert_eq!(stats.requests, 200);
    assert!(stats.batches < 200 && stats.max_batch_size > 1, "requests were batched: {stats:?}");
    assert_eq!(stats.failed_batches, 0);
    assert_eq!(store.load_all().await.expect("all").len(), 200);
    store.close().await.expect("close");
    db.cleanup().await;
}

/// Runs `requests` concurrently (so that they share batches) and returns their answers in order.
async fn concurrently(store: &Arc<DbStore>, requests: Vec<Vec<StoreOp>>) -> Vec<Result<(), StoreError>> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|ops| {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.apply(ops).await })
        })
        .collect();
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    answers
}

async fn multi_row_writes_keep_per_request_answers(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let store = Arc::new(open(&db).await);
    let taken = new_xid("taken");
    store.apply(vec![StoreOp::InsertGlobal(sample_global(&taken))]).await.expect("insert");

    // Begins: one of them reuses a stored xid.
    let xids: Vec<String> = (0..96).map(|i| new_xid(&format!("mr{i}"))).collect();
    let mut requests: Vec<Vec<StoreOp>> = xids.iter().map(|x| vec![StoreOp::InsertGlobal(sample_global(x))]).collect();
    requests.insert(50, vec![StoreOp::InsertGlobal(sample_global(&taken))]);
    let answers = concurrently(&store, requests).await;
    let mut merged = store.merged_requests();
    assert!(merged > 0, "begins shared multi-row inserts");
    for (i, answer) in answers.iter().enumerate() {
        if i == 50 {
            assert!(matches!(answer, Err(StoreError::Duplicate { branch_id: None, .. })), "{answer:?}");
        } else {
            assert!(answer.is_ok(), "{i}: {answer:?}");
        }
    }

    // Branch registrations: one orphan, one duplicate branch id.
    let branches: Vec<_> = xids.iter().map(|x| sample_branch(x, new_branch_id())).collect();
    let mut requests: Vec<Vec<StoreOp>> = branches.iter().map(|b| vec![StoreOp::InsertBranch(b.clone())]).collect();
    requests.insert(30, vec![StoreOp::InsertBranch(sample_branch(&new_xid("orphan"), new_branch_id()))]);
    let first = sample_branch(&taken, new_branch_id());
    store.apply(vec![StoreOp::InsertBranch(first.clone())]).await.expect("insert");
    let mut dup = sample_branch(&xids[10], first.branch_id);
    dup.resource_id = "other".to_owned();
    requests.insert(70, vec![StoreOp::InsertBranch(dup)]);
    let answers = concurrently(&store, requests).await;
    assert!(store.merged_requests() > merged, "registrations shared multi-row inserts");
    merged = store.merged_requests();
    for (i, answer) in answers.iter().enumerate() {
        match i {
            30 => assert!(matches!(answer, Err(StoreError::NotFound { branch_id: None, .. })), "{answer:?}"),
            70 => assert!(matches!(answer, Err(StoreError::Duplicate { branch_id: Some(_), .. })), "{answer:?}"),
            _ => assert!(answer.is_ok(), "{i}: {answer:?}"),
        }
    }
    let loaded = store.load(&xids[10]).await.expect("load").expect("stored");
    assert_eq!(loaded.branches, vec![seata_server::store::BranchRecord { lock_key: None, ..branches[10].clone() }]);
    let loaded = store.load(&taken).await.expect("load").expect("stored");
    assert_eq!(loaded.branches.len(), 1);
    assert_eq!(loaded.branches[0].resource_id, first.resource_id, "the duplicate did not overwrite");

    // Compare-and-set status changes: one expects a stale status, one names no stored xid.
    let cas = |xid: &str, expected| {
        vec![StoreOp::UpdateGlobalStatus {
            xid: xid.to_owned(),
            expected: Some(expected),
            status: GlobalStatus::Committing,
        }]
    };
    let mut requests: Vec<Vec<StoreOp>> = xids.iter().map(|x| cas(x, GlobalStatus::Begin)).collect();
    requests.insert(20, cas(&taken, GlobalStatus::Rollbacking));
    requests.insert(60, cas(&new_xid("absent"), GlobalStatus::Begin));
    let answers = concurrently(&store, requests).await;
    assert!(store.merged_requests() > merged, "status changes shared multi-row updates");
    for (i, answer) in answers.iter().enumerate() {
        match i {
            20 => {
                assert!(matches!(answer, Err(StoreError::Conflict { actual: GlobalStatus::Begin, .. })), "{answer:?}")
            }
            60 => assert!(matches!(answer, Err(StoreError::NotFound { .. })), "{answer:?}"),
            _ => assert!(answer.is_ok(), "{i}: {answer:?}"),
        }
    }
    let statuses = store.query_globals(&[GlobalStatus::Committing], 1000, 0).await.expect("query");
    assert_eq!(statuses.len(), 96);
    assert_eq!(store.load_global(&taken).await.expect("load").map(|g| g.status), Some(GlobalStatus::Begin));

    // Removals: half the branches, then every global.
    let requests = branches
        .iter()
        .step_by(2)
        .map(|b| vec![StoreOp::RemoveBranch { xid: b.xid.clone(), branch_id: b.branch_id }])
        .collect();
    assert!(concurrently(&store, requests).await.iter().all(Result::is_ok));
    let all = store.load_all().await.expect("all");
    assert_eq!(all.iter().map(|s| s.branches.len()).sum::<usize>(), 48 + 1, "half of ours and the first");
    let requests = xids.iter().map(|x| vec![StoreOp::RemoveGlobal { xid: x.clone() }]).collect();
    assert!(concurrently(&store, requests).await.iter().all(Result::is_ok));
    let all = store.load_all().await.expect("all");
    assert_eq!(all.len(), 1, "only the first global is left");
    assert_eq!(db.query_strings("SELECT xid FROM branch_table").await, vec![vec![Some(taken.clone())]]);

    assert!(store.merged_requests() > 0, "some requests shared multi-row statements: {:?}", store.stats());
    eprintln!(
        "{backend:?}: {} of {} requests written by multi-row statements",
        store.merged_requests(),
        store.stats().requests
    );
    store.close().await.expect("close");
    db.cleanup().await;
}

/// A registration as the coordinator sends it when the store holds the locks.
fn register_locked(xid: &str, branch_id: i64, pks: &[&str], auto_commit: bool) -> Vec<StoreOp> {
    let rows = pks.iter().map(|pk| RowLock::new("jdbc:mysql://db:3306/orders", "orders", pk)).collect();
    let owner = LockOwner { xid: xid.to_owned(), transaction_id: 4_242, branch_id };
    vec![
        StoreOp::AcquireLocks(LockRequest { owner, rows, auto_commit }),
        StoreOp::InsertBranch(sample_branch(xid, branch_id)),
    ]
}

/// `(pk, xid, branch_id)` of every row of `lock_table`, by pk.
async fn lock_rows(db: &TestDb) -> Vec<(String, String, String)> {
    let sql = format!("SELECT pk, xid, {} FROM lock_table ORDER BY pk", db.text("branch_id"));
    db.query_strings(&sql)
        .await
        .into_iter()
        .map(|r| {
            let mut r = r.into_iter().map(Option::unwrap_or_default);
            (r.next().unwrap_or_default(), r.next().unwrap_or_default(), r.next().unwrap_or_default())
        })
        .collect()
}

/// db mode as the server wires it: the session store holds the row locks, so a registration's
/// lock rows and branch row, a commit's status and lock release, and an end's removal and lock
/// release are each one request. Checked with concurrent requests (shared batches, multi-row
/// statements) that collide, re-enter, fail fast, and with a stale status.
async fn row_locks_commit_with_their_session_change(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let pool = DbPool::connect(&db.settings(), &options()).await.expect("pool");
    let locks = DbLockStore::open(pool.clone(), &options()).await.expect("lock store");
    let store = Arc::new(DbStore::open_with_locks(pool.clone(), options(), &locks).await.expect("store"));
    assert!(store.holds_row_locks());

    let xids: Vec<String> = (0..72).map(|i| new_xid(&format!("lk{i}"))).collect();
    let begins = xids.iter().map(|x| vec![StoreOp::InsertGlobal(sample_global(x))]).collect();
    assert!(concurrently(&store, begins).await.iter().all(Result::is_ok));

    // 64 registrations on rows of their own ("a<i>", "b<i>"), and 8 more that each want a row
    // of one of the first 8 ("a<k>") plus one of their own ("c<k>"): of each pair exactly one wins.
    let branch_ids: Vec<i64> = xids.iter().map(|_| new_branch_id()).collect();
    let pk = |p: &str, i: usize| format!("{p}{i:03}");
    let mut requests = Vec::new();
    for i in 0..64 {
        requests.push(register_locked(&xids[i], branch_ids[i], &[&pk("a", i), &pk("b", i)], true));
    }
    for k in 0..8 {
        let i = 64 + k;
        requests.push(register_locked(&xids[i], branch_ids[i], &[&pk("a", k), &pk("c", k)], true));
    }
    let merged_before = store.merged_requests();
    let answers = concurrently(&store, requests).await;
    let rows = lock_rows(&db).await;
    let holder = |pk: &str| rows.iter().find(|r| r.0 == pk).map(|r| r.1.clone());
    for k in 0..8 {
        let (first, second) = (&answers[k], &answers[64 + k]);
        assert!(first.is_ok() != second.is_ok(), "row a{k}: exactly one wins: {first:?} / {second:?}");
        let loser = if first.is_ok() { 64 + k } else { k };
        let refused = if first.is_ok() { second } else { first };
        assert!(matches!(refused, Err(StoreError::LockConflict(c)) if !c.fail_fast), "{refused:?}");
        let winner = if first.is_ok() { k } else { 64 + k };
        assert_eq!(holder(&pk("a", k)), Some(xids[winner].clone()));
        // Nothing of the refused registration was written: no lock row, no branch row.
        let own = if loser < 64 { pk("b", loser) } else { pk("c", k) };
        assert_eq!(holder(&own), None, "the loser's other row was not kept");
        assert!(store.load(&xids[loser]).await.expect("load").expect("stored").branches.is_empty());
    }
    for i in 8..64 {
        assert!(answers[i].is_ok(), "{i}: {:?}", answers[i]);
        assert_eq!(store.load(&xids[i]).await.expect("load").expect("stored").branches.len(), 1);
        assert_eq!(holder(&pk("b", i)), Some(xids[i].clone()));
    }
    assert_eq!(rows.len(), 64 * 2, "two rows per winner: {rows:?}");
    assert!(store.merged_requests() > merged_before, "registrations shared multi-row statements");

    // Re-entrant: a second branch of xid 20 takes a row the transaction holds plus a new one.
    let second = new_branch_id();
    store.apply(register_locked(&xids[20], second, &[&pk("a", 20), &pk("d", 20)], true)).await.expect("re-entrant");
    let rows = lock_rows(&db).await;
    let row = |pk: &str| rows.iter().find(|r| r.0 == pk).cloned().expect("row");
    assert_eq!(row(&pk("a", 20)).2, branch_ids[20].to_string(), "a held row keeps its first branch");
    assert_eq!(row(&pk("d", 20)).2, second.to_string());

    // Fail-fast: xid 30 rolls back (its rows marked in the same request as the status).
    let rollback = vec![
        StoreOp::MarkLocksRollbacking { xid: xids[30].clone() },
        StoreOp::UpdateGlobalStatus {
            xid: xids[30].clone(),
            expected: Some(GlobalStatus::Begin),
            status: GlobalStatus::Rollbacking,
        },
    ];
    store.apply(rollback).await.expect("rollback");
    let late = new_xid("late");
    store.apply(vec![StoreOp::InsertGlobal(sample_global(&late))]).await.expect("begin");
    let answer = store.apply(register_locked(&late, new_branch_id(), &[&pk("a", 30)], false)).await;
    assert!(
        matches!(&answer, Err(StoreError::LockConflict(c)) if c.fail_fast && c.holder_xid == xids[30]),
        "{answer:?}"
    );
    let answer = store.apply(register_locked(&late, new_branch_id(), &[&pk("a", 30)], true)).await;
    assert!(matches!(&answer, Err(StoreError::LockConflict(c)) if !c.fail_fast), "{answer:?}");

    // Commits: status and lock release in one request; xid 30's commit expects a stale status
    // and keeps its locks.
    let commits = xids
        .iter()
        .map(|x| {
            vec![
                StoreOp::ReleaseLocks { xid: x.clone() },
                StoreOp::UpdateGlobalStatus {
                    xid: x.clone(),
                    expected: Some(GlobalStatus::Begin),
                    status: GlobalStatus::AsyncCommitting,
                },
            ]
        })
        .collect();
    let merged_before = store.merged_requests();
    let answers = concurrently(&store, commits).await;
    assert!(store.merged_requests() > merged_before, "commits shared multi-row statements");
    for (i, answer) in answers.iter().enumerate() {
        if i == 30 {
            assert!(
                matches!(answer, Err(StoreError::Conflict { actual: GlobalStatus::Rollbacking, .. })),
                "{answer:?}"
            );
        } else {
            assert!(answer.is_ok(), "{i}: {answer:?}");
        }
    }
    let rows = lock_rows(&db).await;
    assert!(!rows.is_empty() && rows.iter().all(|r| r.1 == xids[30]), "only xid 30 holds rows: {rows:?}");

    // Ends: removal and lock release in one request.
    let mut ends: Vec<Vec<StoreOp>> = xids
        .iter()
        .map(|x| vec![StoreOp::ReleaseLocks { xid: x.clone() }, StoreOp::RemoveGlobal { xid: x.clone() }])
        .collect();
    ends.push(vec![StoreOp::ReleaseLocks { xid: late.clone() }, StoreOp::RemoveGlobal { xid: late.clone() }]);
    let merged_before = store.merged_requests();
    assert!(concurrently(&store, ends).await.iter().all(Result::is_ok));
    assert!(store.merged_requests() > merged_before, "ends shared multi-row statements");
    assert!(lock_rows(&db).await.is_empty());
    assert!(store.load_all().await.expect("all").is_empty());

    // A store that does not hold the locks refuses lock operations and writes nothing.
    let plain = DbStore::open(pool.clone(), options()).await.expect("plain store");
    assert!(!plain.holds_row_locks());
    let x = new_xid("plain");
    plain.apply(vec![StoreOp::InsertGlobal(sample_global(&x))]).await.expect("begin");
    let answer = plain.apply(register_locked(&x, new_branch_id(), &["p1"], true)).await;
    assert!(matches!(answer, Err(StoreError::Unsupported { .. })), "{answer:?}");
    assert!(lock_rows(&db).await.is_empty());
    assert!(plain.load(&x).await.expect("load").expect("stored").branches.is_empty());
    plain.close().await.expect("close");

    eprintln!("{backend:?}: {:?}, {} merged", store.stats(), store.merged_requests());
    store.close().await.expect("close");
    pool.close().await;
    db.cleanup().await;
}

/// A status change that expects a number of stored branches (a commit by a node that did not
/// read the branches first) is refused with `BranchesChanged` when another number is stored,
/// alone or among many in one batch, and changes nothing then.
async fn branch_counts_guard_status_changes(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let store = Arc::new(open(&db).await);
    let xids: Vec<String> = (0..40).map(|i| new_xid(&format!("bc{i}"))).collect();
    for x in &xids {
        let ops = vec![
            StoreOp::InsertGlobal(sample_global(x)),
            StoreOp::InsertBranch(sample_branch(x, new_branch_id())),
            StoreOp::InsertBranch(sample_branch(x, new_branch_id())),
        ];
        store.apply(ops).await.expect("session with two branches");
    }
    let commit = |xid: &str, count| {
        vec![
            StoreOp::ExpectBranches { xid: xid.to_owned(), count },
            StoreOp::UpdateGlobalStatus {
                xid: xid.to_owned(),
                expected: Some(GlobalStatus::Begin),
                status: GlobalStatus::AsyncCommitting,
            },
        ]
    };
    // Every request but the 7th knows both branches.
    let requests = xids.iter().enumerate().map(|(i, x)| commit(x, if i == 7 { 1 } else { 2 })).collect();
    let answers = concurrently(&store, requests).await;
    for (i, answer) in answers.iter().enumerate() {
        if i == 7 {
            assert!(matches!(answer, Err(StoreError::BranchesChanged { expected: 1, actual: 2, .. })), "{answer:?}");
        } else {
            assert!(answer.is_ok(), "{i}: {answer:?}");
        }
    }
    assert_eq!(store.load_global(&xids[7]).await.expect("load").map(|g| g.status), Some(GlobalStatus::Begin));
    let committed = store.query_globals(&[GlobalStatus::AsyncCommitting], 100, 0).await.expect("query");
    assert_eq!(committed.len(), 39);
    // Alone, with the right count, it goes through.
    store.apply(commit(&xids[7], 2)).await.expect("right count");
    store.close().await.expect("close");
    db.cleanup().await;
}

/// Two nodes (two stores holding the locks, each with its own pool and writer) hand hot row locks
/// back and forth: registrations on 4 hot rows from 16 workers, commits that release them. No
/// row is ever held by two transactions (checked against a shared record of who holds what),
/// every refusal is a lock conflict, and the tables end empty.
async fn two_nodes_contend_for_row_locks(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let pool = DbPool::connect(&db.settings(), &options()).await.expect("pool");
        let locks = DbLockStore::open(pool.clone(), &options()).await.expect("lock store");
        nodes.push(Arc::new(DbStore::open_with_locks(pool, options(), &locks).await.expect("store")));
    }
    let held: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for worker in 0..16usize {
        let store = Arc::clone(&nodes[worker % 2]);
        let held = Arc::clone(&held);
        tasks.push(tokio::spawn(async move {
            let (mut won, mut lost) = (0, 0);
            for round in 0..12 {
                let xid = new_xid(&format!("hot{worker}-{round}"));
                store.apply(vec![StoreOp::InsertGlobal(sample_global(&xid))]).await?;
                let hot = format!("h{}", (worker + round) % 4);
                let own = format!("w{worker}-{round}");
                match store.apply(register_locked(&xid, new_branch_id(), &[&hot, &own], true)).await {
                    Ok(()) => {
                        won += 1;
                        assert!(held.lock().expect("held").insert(hot.clone()), "{hot} held twice");
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        held.lock().expect("held").remove(&hot);
                        let commit = vec![
                            StoreOp::ExpectBranches { xid: xid.clone(), count: 1 },
                            StoreOp::ReleaseLocks { xid: xid.clone() },
                            StoreOp::UpdateGlobalStatus {
                                xid: xid.clone(),
                                expected: Some(GlobalStatus::Begin),
                                status: GlobalStatus::AsyncCommitting,
                            },
                        ];
                        store.apply(commit).await?;
                    }
                    Err(StoreError::LockConflict(_)) => lost += 1,
                    Err(e) => return Err(e),
                }
                store.apply(vec![StoreOp::ReleaseLocks { xid: xid.clone() }, StoreOp::RemoveGlobal { xid }]).await?;
            }
            Ok::<(usize, usize), StoreError>((won, lost))
        }));
    }
    let (mut won, mut lost) = (0, 0);
    for task in tasks {
        let (w, l) = task.await.expect("task").expect("every request succeeds or meets a lock conflict");
        won += w;
        lost += l;
    }
    eprintln!("{backend:?}: {won} registrations won, {lost} refused");
    assert!(won > 0 && won + lost == 16 * 12);
    assert!(lock_rows(&db).await.is_empty());
    assert!(nodes[0].load_all().await.expect("all").is_empty());
    for node in &nodes {
        assert_eq!(node.stats().failed_batches, 0, "{:?}", node.stats());
        node.close().await.expect("close");
    }
    db.cleanup().await;
}

async fn the_pool_recovers_after_connections_are_killed(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let store = open(&db).await;
    let lock_store = seata_server::store::DbLockStore::open(store.pool().clone(), &options()).await.expect("locks");
    for round in 0..3 {
        let xid = new_xid(&format!("kill{round}"));
        store.apply(vec![StoreOp::InsertGlobal(sample_global(&xid))]).await.expect("before the kill");
        let killed = db.kill_connections().await.expect("kill");
        assert!(killed > 0, "the pool holds connections");
        // Every call works again by itself; at most the first one sees the lost connection.
        let mut failures = 0;
        let started = Instant::now();
        loop {
            let write = store
                .apply(vec![StoreOp::UpdateGlobalStatus {
                    xid: xid.clone(),
                    expected: None,
                    status: GlobalStatus::Committing,
                }])
                .await;
            match write {
                Ok(()) => break,
                Err(StoreError::Unavailable { .. }) if failures < 1 => failures += 1,
                Err(e) => panic!("round {round}: the store did not recover: {e}"),
            }
            assert!(started.elapsed() < Duration::from_secs(20));
        }
        let loaded = store.load(&xid).await.expect("read after the kill").expect("stored");
        assert_eq!(loaded.global.status, GlobalStatus::Committing);
        let rows = seata_server::lock::parse_lock_key("jdbc:mysql://db/x", &format!("t:{round}"));
        let owner = seata_server::lock::LockOwner { xid: xid.clone(), transaction_id: 1, branch_id: 1 };
        use seata_server::lock::LockStore as _;
        lock_store.acquire(owner, &rows, Default::default()).await.expect("lock store after the kill");
    }
    store.close().await.expect("close");
    lock_store.pool().close().await;
    db.cleanup().await;
}

async fn acknowledged_writes_survive_killed_connections(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let db = Arc::new(db);
    let store = Arc::new(open(&db).await);
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let (mut acked, mut refused) = (Vec::new(), 0);
                for i in 0..60 {
                    let xid = new_xid(&format!("k{w}-{i}"));
                    let ops = vec![
                        StoreOp::InsertGlobal(sample_global(&xid)),
                        StoreOp::InsertBranch(sample_branch(&xid, new_branch_id())),
                    ];
                    match store.apply(ops).await {
                        Ok(()) => acked.push(xid),
                        Err(e @ StoreError::Unavailable { .. }) => {
                            eprintln!("refused: {e}");
                            refused += 1;
                        }
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
                (acked, refused)
            })
        })
        .collect();
    let killer = {
        let db = Arc::clone(&db);
        tokio::spawn(async move {
            let mut killed = 0;
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_millis(40)).await;
                killed += db.kill_connections().await.expect("kill");
            }
            killed
        })
    };
    let (mut acked, mut refused) = (Vec::new(), 0);
    for w in writers {
        let (a, r) = w.await.expect("writer");
        acked.extend(a);
        refused += r;
    }
    let killed = killer.await.expect("killer");
    let stored: std::collections::HashSet<String> =
        store.load_all().await.expect("load_all").into_iter().map(|s| s.global.xid).collect();
    let lost: Vec<&String> = acked.iter().filter(|x| !stored.contains(*x)).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    eprintln!("{backend:?}: {killed} connections killed; {} writes acknowledged, {refused} refused", acked.len());
    store.apply(vec![StoreOp::InsertGlobal(sample_global(&new_xid("after")))]).await.expect("works afterwards");
    store.close().await.expect("close");
    drop(store);
    if let Ok(db) = Arc::try_unwrap(db) {
        db.cleanup().await;
    }
}

/// Two stores (two server nodes) write interleaved transactions to the same tables at once;
/// deadlocks between their batches are retried, and every request gets its own answer.
async fn two_nodes_share_the_tables(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let nodes = [Arc::new(open(&db).await), Arc::new(open(&db).await)];
    let mut tasks = Vec::new();
    for worker in 0..32 {
        let store = Arc::clone(&nodes[worker % 2]);
        tasks.push(tokio::spawn(async move {
            for round in 0..8 {
                let xid = new_xid(&format!("node{worker}-{round}"));
                store.apply(vec![StoreOp::InsertGlobal(sample_global(&xid))]).await?;
                for _ in 0..3 {
                    store.apply(vec![StoreOp::InsertBranch(sample_branch(&xid, new_branch_id()))]).await?;
                }
                let cas = StoreOp::UpdateGlobalStatus {
                    xid: xid.clone(),
                    expected: Some(GlobalStatus::Begin),
                    status: GlobalStatus::AsyncCommitting,
                };
                store.apply(vec![cas]).await?;
                store.apply(vec![StoreOp::RemoveGlobal { xid }]).await?;
            }
            Ok::<(), StoreError>(())
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("every request succeeds");
    }
    assert!(nodes[0].load_all().await.expect("all").is_empty());
    assert!(db.query_strings("SELECT xid FROM branch_table").await.is_empty());
    for node in &nodes {
        assert_eq!(node.stats().failed_batches, 0);
        node.close().await.expect("close");
    }
    db.cleanup().await;
}

/// `gmt_*` columns hold the database clock in the session time zone, like Java's `now()`.
async fn session_time_zone_is_honoured(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else { return };
    let (zone, diff) = match backend {
        // MariaDB may have no named zones loaded; offsets always work.
        Backend::MySql => ("+08:00", "TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), gmt_create)"),
        Backend::Postgres => (
            "Asia/Shanghai",
            "CAST(EXTRACT(EPOCH FROM (gmt_create - CAST(now() AT TIME ZONE 'UTC' AS TIMESTAMP))) AS BIGINT)",
        ),
    };
    let options = DbOptions { time_zone: Some(zone.to_owned()), ..options() };
    let store = DbStore::connect(&db.settings(), options).await.expect("open");
    let xid = new_xid("tz");
    store.apply(vec![StoreOp::InsertGlobal(sample_global(&xid))]).await.expect("insert");
    let rows = db.query_strings(&format!("SELECT {} FROM global_table", db.text(diff))).await;
    let seconds: i64 = rows[0][0].as_deref().and_then(|v| v.parse().ok()).expect("a number");
    assert!((seconds - 8 * 3600).abs() < 60, "gmt_create is UTC+8: {seconds} s ahead of UTC");
    store.close().await.expect("close");
    db.cleanup().await;
}

/// Writes per second on a real server, one request at a time versus 64 concurrent callers
/// sharing commits. Run with `cargo test --test store_db throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn throughput() {
    for backend in Backend::ALL {
        let Some(db) = TestDb::create(backend).await else { continue };
        let store = Arc::new(open(&db).await);
        let n = 2_000;
        let started = Instant::now();
        for i in 0..n / 4 {
            let xid = new_xid(&format!("seq{i}"));
            store.apply(vec![StoreOp::InsertGlobal(sample_global(&xid))]).await.expect("apply");
        }
        let sequential = f64::from(n / 4) / started.elapsed().as_secs_f64();
        let before = store.stats();
        let started = Instant::now();
        let workers: Vec<_> = (0..64)
            .map(|w| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    for i in 0..n / 64 {
                        let xid = new_xid(&format!("par{w}-{i}"));
                        store.apply(vec![StoreOp::InsertGlobal(sample_global(&xid))]).await.expect("apply");
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.expect("worker");
        }
        let concurrent = f64::from(n / 64 * 64) / started.elapsed().as_secs_f64();
        let after = store.stats();
        let batches = after.batches - before.batches;
        // Requests of two operations (begin + first branch): one savepoint each, no multi-row.
        let started = Instant::now();
        let workers: Vec<_> = (0..64)
            .map(|w| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    for i in 0..n / 64 {
                        let xid = new_xid(&format!("two{w}-{i}"));
                        let ops = vec![
                            StoreOp::InsertGlobal(sample_global(&xid)),
                            StoreOp::InsertBranch(sample_branch(&xid, new_branch_id())),
                        ];
                        store.apply(ops).await.expect("apply");
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.expect("worker");
        }
        let two_ops = f64::from(n / 64 * 64) / started.elapsed().as_secs_f64();
        println!(
            "{backend:?}: one at a time {sequential:.0} writes/s; 64 callers {concurrent:.0} writes/s \
             ({} requests in {batches} commits, largest batch {}); 64 callers, 2-op requests {two_ops:.0} requests/s",
            after.requests - before.requests,
            after.max_batch_size
        );
        store.close().await.expect("close");
        db.cleanup().await;
    }
}
