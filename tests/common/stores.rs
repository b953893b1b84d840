//! One store per test, chosen by the test: the embedded file store, or db mode on a throw-away
//! database of the real MariaDB or PostgreSQL. Scenario bodies take a [`StoreKind`] and are
//! instantiated once per kind by [`on_every_store!`](crate::on_every_store).

use std::sync::Arc;
use std::time::Duration;

use seata_server::app::NodeOptions;
use seata_server::lock::LockStore;
use seata_server::store::db::testing::{Backend, TestDb};
use seata_server::store::db::{DbLockStore, DbOptions, DbPool, DbStore};
use seata_server::store::SessionStore;
use tempfile::TempDir;

use super::{start_on, start_shared, TestServer};

/// Where a scenario keeps its sessions and locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded file store and the in-memory lock table.
    File,
    /// `store.mode: db` on MySQL / MariaDB.
    MySql,
    /// `store.mode: db` on PostgreSQL.
    Postgres,
}

/// A store that outlives the nodes started on it, so a scenario can restart a node.
pub struct Fixture {
    pub kind: StoreKind,
    dir: TempDir,
    db: Option<TestDb>,
}

impl Fixture {
    /// A fresh store of `kind`; `None` when the database server cannot be reached and the test
    /// is skipped (never with `CI=true`, see [`TestDb::create`]).
    pub async fn create(kind: StoreKind) -> Option<Fixture> {
        let dir = tempfile::tempdir().unwrap();
        let db = match kind {
            StoreKind::File => None,
            StoreKind::MySql => Some(TestDb::create(Backend::MySql).await?),
            StoreKind::Postgres => Some(TestDb::create(Backend::Postgres).await?),
        };
        Some(Fixture { kind, dir, db })
    }

    /// The test database (db kinds only).
    pub fn db(&self) -> Option<&TestDb> {
        self.db.as_ref()
    }

    /// Starts a node on this store with `tune` applied to its options.
    pub async fn start(&self, tune: impl FnOnce(&mut NodeOptions)) -> TestServer {
        match &self.db {
            None => start_on(self.dir.path(), tune).await,
            Some(db) => {
                let opts = DbOptions { create_missing_tables: true, ..DbOptions::default() };
                let pool = DbPool::connect(&db.settings(), &opts).await.expect("connect");
                // Wired as the server wires db mode (src/main.rs): the session store holds the locks.
                let locks = DbLockStore::open(pool.clone(), &opts).await.expect("db lock store");
                let store: Arc<dyn SessionStore> =
                    Arc::new(DbStore::open_with_locks(pool, opts.clone(), &locks).await.expect("db session store"));
                let locks: Arc<dyn LockStore> = Arc::new(locks);
                let server = start_shared(store, locks, tune).await;
                assert!(server.node.coordinator.locks_in_store(), "db mode writes locks with the sessions");
                server
            }
        }
    }

    /// Row locks held: the node's lock table in file mode, the rows of `lock_table` in db mode.
    pub async fn lock_count(&self, s: &TestServer) -> usize {
        match &self.db {
            None => s.node.coordinator.locks().count().expect("the in-memory lock table counts its rows"),
            Some(db) => table_rows(db, "lock_table").await,
        }
    }

    /// Waits (up to `secs`) until the store holds no sessions, branches or locks any more; in
    /// file mode only the lock table of `s` is checked. Returns what was left.
    pub async fn wait_empty(&self, s: &TestServer, secs: u64) -> Vec<(&'static str, usize)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = self.rows_left(s).await;
            if left.is_empty() || tokio::time::Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn rows_left(&self, s: &TestServer) -> Vec<(&'static str, usize)> {
        let mut left = Vec::new();
        match &self.db {
            None => {
                let n = self.lock_count(s).await;
                if n > 0 {
                    left.push(("locks", n));
                }
            }
            Some(db) => {
                for table in ["global_table", "branch_table", "lock_table"] {
                    let n = table_rows(db, table).await;
                    if n > 0 {
                        left.push((table, n));
                    }
                }
            }
        }
        left
    }

    /// Drops the test database.
    pub async fn cleanup(self) {
        if let Some(db) = self.db {
            db.cleanup().await;
        }
    }
}

/// `SELECT COUNT(*)` of `table` in the test database.
pub async fn table_rows(db: &TestDb, table: &str) -> usize {
    let sql = format!("SELECT {} FROM {table}", db.text("COUNT(*)"));
    db.query_strings(&sql).await[0][0].as_deref().unwrap_or("0").parse().unwrap()
}

/// Generates, for each scenario `fn name(kind: StoreKind)`, a module `name` with the tests
/// `file`, `mysql` and `postgres`.
#[macro_export]
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[tokio::test]
            async fn file() {
                super::$name(StoreKind::File).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql() {
                super::$name(StoreKind::MySql).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(StoreKind::Postgres).await
            }
        }
    )*};
}
