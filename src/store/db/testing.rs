//! Test support: a fresh, throw-away database per test on a real MySQL/MariaDB or PostgreSQL
//! server, so that db tests run in parallel without seeing each other's rows.
//!
//! The servers come from `SEATA_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`) and
//! `SEATA_TEST_POSTGRES_URL` (default `postgres://root@127.0.0.1:5432/test`); the database named
//! in them is not used. [`TestDb::create`] makes `seata_t_<random>` and returns settings pointing
//! at it; [`TestDb::cleanup`] (or, after a panic, `Drop`) drops it. When a server cannot be
//! reached the test is skipped with a message, unless `CI=true`, where it fails.

use std::time::Duration;

use sqlx::mysql::MySqlConnectOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::config::{DbStoreSettings, DbType};

use super::{DbUrl, Dialect};

/// A server to test against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// MySQL or MariaDB (`SEATA_TEST_MYSQL_URL`).
    MySql,
    /// PostgreSQL (`SEATA_TEST_POSTGRES_URL`).
    Postgres,
}

impl Backend {
    /// Both backends.
    pub const ALL: [Backend; 2] = [Backend::MySql, Backend::Postgres];

    fn env(self) -> (&'static str, &'static str) {
        match self {
            Backend::MySql => ("SEATA_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
            Backend::Postgres => ("SEATA_TEST_POSTGRES_URL", "postgres://root@127.0.0.1:5432/test"),
        }
    }

    /// The server URL (from the environment or the default).
    pub fn server_url(self) -> String {
        let (var, default) = self.env();
        std::env::var(var).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.to_owned())
    }
}

/// A database created for one test.
#[derive(Debug)]
pub struct TestDb {
    /// The server.
    pub backend: Backend,
    /// The database name, `seata_t_<random>`.
    pub name: String,
    server: DbUrl,
    dropped: bool,
}

impl TestDb {
    /// Creates a fresh database, or returns `None` (after printing why) when the server cannot
    /// be reached and `CI` is not `true`.
    ///
    /// # Panics
    /// When the server cannot be reached and `CI=true`, or the URL is invalid.
    pub async fn create(backend: Backend) -> Option<TestDb> {
        let url = backend.server_url();
        let server = DbUrl::parse(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
        let name = format!("seata_t_{:016x}", rand::random::<u64>());
        match admin(&server, &format!("CREATE DATABASE {name}")).await {
            Ok(()) => Some(TestDb { backend, name, server, dropped: false }),
            Err(e) => {
                let message = format!("{backend:?} server at {server} unavailable: {e}");
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("{message} (CI=true: db tests may not be skipped)");
                }
                eprintln!("SKIPPED: {message}");
                None
            }
        }
    }

    /// Settings for the fresh database: a plain URL with the server's user, a small pool.
    pub fn settings(&self) -> DbStoreSettings {
        let scheme = match self.backend {
            Backend::MySql => "mysql",
            Backend::Postgres => "postgres",
        };
        DbStoreSettings {
            db_type: self.db_type(),
            url: format!("{scheme}://{}:{}/{}", host(&self.server), self.server.port, self.name),
            user: self.server.user.clone(),
            password: self.server.password.clone(),
            min_conn: 1,
            max_conn: 8,
            max_wait: Duration::from_secs(10),
            ..DbStoreSettings::default()
        }
    }

    /// The same database as a JDBC URL (`jdbc:mysql://host:port/db?…`), as Seata users write it.
    pub fn jdbc_url(&self) -> String {
        match self.backend {
            Backend::MySql => format!(
                "jdbc:mysql://{}:{}/{}?rewriteBatchedStatements=true&useUnicode=true&characterEncoding=utf8",
                host(&self.server),
                self.server.port,
                self.name
            ),
            Backend::Postgres => {
                format!(
                    "jdbc:postgresql://{}:{}/{}?ApplicationName=seata-test",
                    host(&self.server),
                    self.server.port,
                    self.name
                )
            }
        }
    }

    /// `db-type` of the backend.
    pub fn db_type(&self) -> DbType {
        match self.backend {
            Backend::MySql => DbType::MySql,
            Backend::Postgres => DbType::PostgreSql,
        }
    }

    /// The dialect of the backend.
    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::MySql => Dialect::MySql,
            Backend::Postgres => Dialect::Postgres,
        }
    }

    /// `expr` cast to text in this dialect, for [`query_strings`](Self::query_strings).
    pub fn text(&self, expr: &str) -> String {
        match self.backend {
            Backend::MySql => format!("CAST({expr} AS CHAR)"),
            Backend::Postgres => format!("CAST({expr} AS TEXT)"),
        }
    }

    /// Runs `sql` on the test database over a connection of its own and returns every column as
    /// text (cast the columns with [`text`](Self::text)).
    ///
    /// # Panics
    /// When the statement fails.
    pub async fn query_strings(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        use sqlx::Row as _;
        fn must<T>(result: Result<T, sqlx::Error>, sql: &str) -> T {
            result.unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
        match self.backend {
            Backend::MySql => {
                let mut conn = must(self.mysql().await, sql);
                let rows = must(sqlx::query(sql).fetch_all(&mut conn).await, sql);
                let _ = conn.close().await;
                rows.iter()
                    .map(|r| (0..r.len()).map(|i| must(r.try_get::<Option<String>, _>(i), sql)).collect())
                    .collect()
            }
            Backend::Postgres => {
                let mut conn = must(self.postgres().await, sql);
                let rows = must(sqlx::query(sql).fetch_all(&mut conn).await, sql);
                let _ = conn.close().await;
                rows.iter()
                    .map(|r| (0..r.len()).map(|i| must(r.try_get::<Option<String>, _>(i), sql)).collect())
                    .collect()
            }
        }
    }

    /// Runs statements (separated by `;` at line ends) on the test database over a connection
    /// of its own.
    pub async fn execute(&self, script: &str) -> Result<(), sqlx::Error> {
        let statements: Vec<&str> = script
            .split(";\n")
            .map(|s| s.trim().trim_end_matches(';'))
            .filter(|s| !s.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with("--")))
            .collect();
        match self.backend {
            Backend::MySql => {
                let mut conn = self.mysql().await?;
                for statement in statements {
                    sqlx::Executor::execute(&mut conn, statement).await?;
                }
                conn.close().await
            }
            Backend::Postgres => {
                let mut conn = self.postgres().await?;
                for statement in statements {
                    sqlx::Executor::execute(&mut conn, statement).await?;
                }
                conn.close().await
            }
        }
    }

    /// Kills every other connection to the test database (`KILL` / `pg_terminate_backend`), as a
    /// database restart or a network cut would; returns how many.
    pub async fn kill_connections(&self) -> Result<usize, sqlx::Error> {
        match self.backend {
            Backend::MySql => {
                let mut conn = self.mysql().await?;
                let ids: Vec<i64> = sqlx::query_scalar(
                    "SELECT CAST(id AS SIGNED) FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()",
                )
                .bind(&self.name)
                .fetch_all(&mut conn)
                .await?;
                for id in &ids {
                    // The connection may have ended meanwhile.
                    let _ = sqlx::Executor::execute(&mut conn, format!("KILL {id}").as_str()).await;
                }
                conn.close().await?;
                Ok(ids.len())
            }
            Backend::Postgres => {
                let mut conn = self.postgres().await?;
                let killed: Vec<bool> = sqlx::query_scalar(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&self.name)
                .fetch_all(&mut conn)
                .await?;
                conn.close().await?;
                Ok(killed.into_iter().filter(|k| *k).count())
            }
        }
    }

    async fn mysql(&self) -> Result<sqlx::MySqlConnection, sqlx::Error> {
        let mut options = MySqlConnectOptions::new()
            .host(&self.server.host)
            .port(self.server.port)
            .database(&self.name)
            .disable_statement_logging();
        if let Some(user) = &self.server.user {
            options = options.username(user);
        }
        if let Some(password) = &self.server.password {
            options = options.password(password.expose());
        }
        options.connect().await
    }

    async fn postgres(&self) -> Result<sqlx::PgConnection, sqlx::Error> {
        let mut options = PgConnectOptions::new()
            .host(&self.server.host)
            .port(self.server.port)
            .database(&self.name)
            .disable_statement_logging();
        if let Some(user) = &self.server.user {
            options = options.username(user);
        }
        if let Some(password) = &self.server.password {
            options = options.password(password.expose());
        }
        options.connect().await
    }

    /// Drops the database.
    pub async fn cleanup(mut self) {
        self.dropped = true;
        if let Err(e) = admin(&self.server, &drop_statement(self.backend, &self.name)).await {
            eprintln!("dropping test database {}: {e}", self.name);
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // A test panicked before cleanup: drop the database from a thread with its own runtime.
        let (server, sql) = (self.server.clone(), drop_statement(self.backend, &self.name));
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                let _ = runtime.block_on(admin(&server, &sql));
            }
        });
        let _ = done.join();
    }
}

fn host(url: &DbUrl) -> String {
    if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    }
}

fn drop_statement(backend: Backend, name: &str) -> String {
    match backend {
        Backend::MySql => format!("DROP DATABASE IF EXISTS {name}"),
        Backend::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    }
}

/// Runs one statement on the server's administrative database (none on MySQL, `postgres` on
/// PostgreSQL).
async fn admin(server: &DbUrl, sql: &str) -> Result<(), sqlx::Error> {
    let timeout = Duration::from_secs(5);
    let run = async {
        match server.dialect {
            Dialect::MySql => {
                let mut options =
                    MySqlConnectOptions::new().host(&server.host).port(server.port).disable_statement_logging();
                if let Some(user) = &server.user {
                    options = options.username(user);
                }
                if let Some(password) = &server.password {
                    options = options.password(password.expose());
                }
                let mut conn = options.connect().await?;
                sqlx::Executor::execute(&mut conn, sql).await?;
                conn.close().await
            }
            Dialect::Postgres => {
                let mut options = PgConnectOptions::new()
                    .host(&server.host)
                    .port(server.port)
                    .database("postgres")
                    .disable_statement_logging();
                if let Some(user) = &server.user {
                    options = options.username(user);
                }
                if let Some(password) = &server.password {
                    options = options.password(password.expose());
                }
                let mut conn = options.connect().await?;
                sqlx::Executor::execute(&mut conn, sql).await?;
                conn.close().await
            }
        }
    };
    tokio::time::timeout(timeout, run).await.unwrap_or(Err(sqlx::Error::PoolTimedOut))
}
