//! `store.mode: db`: sessions, row locks and job locks in MySQL, MariaDB or PostgreSQL, on
//! Seata's own tables, so that this server can share a database with Java seata-server nodes.
//!
//! * [`DbPool`]: the connection pool, from `seata.store.db.*` (JDBC or plain URL, user,
//!   password, pool sizes, table names).
//! * [`DbStore`]: the [`SessionStore`](crate::store::SessionStore) on `global_table` and
//!   `branch_table`, written through the shared group-commit writer.
//! * [`DbLockStore`]: the [`LockStore`](crate::lock::LockStore) on `lock_table`.
//! * [`DistributedLocker`]: Seata's `distributed_lock` protocol (job leadership between nodes).
//! * [`schema`]: the DDL and the start-up check of the tables.
//!
//! The design, the statements issued and the limits are in `docs/DB.md`.

pub(crate) mod conn;
mod distributed;
mod locks;
pub mod schema;
mod session;
pub mod testing;
mod url;

use std::sync::Arc;

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::ConnectOptions;

use crate::config::{DbStoreSettings, DbType};

use super::group_commit::GroupCommitOptions;
use super::{StoreError, StoreLimits};

pub use conn::Dialect;
pub use distributed::DistributedLocker;
pub use locks::DbLockStore;
pub use schema::{SeataTable, TableName, TableNames};
pub use session::DbStore;
pub use url::{DbUrl, TlsMode, UrlError};

use conn::{config_error, Pool};

/// Options of the db backends that are not Seata settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbOptions {
    /// Create the tables that do not exist (with Seata's DDL) instead of failing. Existing tables
    /// are never altered.
    pub create_missing_tables: bool,
    /// Size limits checked before writing (on top of the column widths).
    pub limits: StoreLimits,
    /// Writer queue and batch sizes.
    pub group_commit: GroupCommitOptions,
    /// How often a write batch, a row-lock acquisition or release that lost a deadlock, a
    /// serialization check or a lock wait is run again before giving up (an acquisition then
    /// answers a plain lock conflict, which the client retries; the others return the error).
    pub contention_retries: u32,
    /// Session time zone for `now()`. `None`: MySQL keeps the server's default (as the JDBC
    /// driver does); PostgreSQL uses this machine's time zone (as the JDBC driver sends the
    /// JVM's), found from `TZ`, `/etc/timezone` or `/etc/localtime`, else UTC.
    pub time_zone: Option<String>,
    /// Most row locks one acquire may ask for.
    pub max_rows_per_acquire: usize,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            create_missing_tables: false,
            limits: StoreLimits::default(),
            group_commit: GroupCommitOptions::default(),
            contention_retries: 3,
            time_zone: None,
            max_rows_per_acquire: crate::lock::DEFAULT_MAX_ROWS_PER_ACQUIRE,
        }
    }
}

/// A connection pool to the Seata database, cheap to clone and to share between the session
/// store, the lock store and the distributed locker.
#[derive(Clone)]
pub struct DbPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    pool: Pool,
    url: String,
    tables: TableNames,
    query_limit: u32,
}

impl std::fmt::Debug for DbPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbPool").field("url", &self.inner.url).field("dialect", &self.dialect()).finish()
    }
}

impl DbPool {
    /// Connects with `seata.store.db.*`: parses the URL (JDBC or plain), takes user and password
    /// from the settings (else from the URL), sizes the pool from `min-conn`/`max-conn`, waits
    /// at most `max-wait` for a connection, and checks that the database answers.
    ///
    /// Fails with [`StoreError::Unavailable`] naming the cause: a bad URL or table name, a
    /// `db-type` that contradicts the URL, or a database that cannot be reached.
    pub async fn connect(settings: &DbStoreSettings, options: &DbOptions) -> Result<DbPool, StoreError> {
        let url = DbUrl::parse(&settings.url).map_err(|e| config_error("reading seata.store.db.url", e.to_string()))?;
        let expected = match settings.db_type {
            DbType::MySql | DbType::MariaDb => Dialect::MySql,
            DbType::PostgreSql => Dialect::Postgres,
        };
        if url.dialect != expected {
            return Err(config_error(
                "reading seata.store.db.url",
                format!(
                    "seata.store.db.db-type is {:?} but the URL {url} is a {} URL",
                    settings.db_type,
                    url.dialect.name()
                ),
            ));
        }
        let tables = TableNames::from_settings(settings)?;
        if !url.ignored_hosts.is_empty() {
            tracing::warn!(url = %url, ignored = ?url.ignored_hosts, "only the first host of the URL is used");
        }
        if !url.ignored_params.is_empty() {
            tracing::debug!(params = ?url.ignored_params, "JDBC URL parameters ignored");
        }
        let user = settings.user.clone().or_else(|| url.user.clone());
        let password = settings.password.clone().or_else(|| url.password.clone());
        let redacted = DbUrl { user: user.clone(), ..url.clone() }.redacted();
        let min = settings.min_conn.min(settings.max_conn.max(1));
        let max = settings.max_conn.max(1);
        let fail = |e| StoreError::unavailable("connecting to the database", e);
        let pool = match url.dialect {
            Dialect::MySql => {
                let mut connect = MySqlConnectOptions::new()
                    .host(&url.host)
                    .port(url.port)
                    .charset("utf8mb4")
                    .timezone(options.time_zone.clone())
                    .statement_cache_capacity(256)
                    .disable_statement_logging();
                if let Some(user) = &user {
                    connect = connect.username(user);
                }
                if let Some(password) = &password {
                    connect = connect.password(password.expose());
                }
                if let Some(db) = &url.database {
                    connect = connect.database(db);
                }
                if let Some(tls) = url.tls {
                    connect = connect.ssl_mode(match tls {
                        TlsMode::Disable => MySqlSslMode::Disabled,
                        TlsMode::Prefer => MySqlSslMode::Preferred,
                        TlsMode::Require => MySqlSslMode::Required,
                        TlsMode::VerifyCa => MySqlSslMode::VerifyCa,
                        TlsMode::VerifyFull => MySqlSslMode::VerifyIdentity,
                    });
                }
                let pool = MySqlPoolOptions::new()
                    .min_connections(min)
                    .max_connections(max)
                    .acquire_timeout(settings.max_wait)
                    .connect_with(connect)
                    .await
                    .map_err(fail)?;
                Pool::MySql(pool)
            }
            Dialect::Postgres => {
                let mut connect = PgConnectOptions::new()
                    .host(&url.host)
                    .port(url.port)
                    .application_name(url.application_name.as_deref().unwrap_or("seata-server"))
                    .statement_cache_capacity(256)
                    .disable_statement_logging();
                if let Some(user) = &user {
                    connect = connect.username(user);
                }
                if let Some(password) = &password {
                    connect = connect.password(password.expose());
                }
                if let Some(db) = &url.database {
                    connect = connect.database(db);
                }
                if let Some(schema) = &url.schema {
                    connect = connect.options([("search_path", schema.as_str())]);
                }
                if let Some(tls) = url.tls {
                    connect = connect.ssl_mode(match tls {
                        TlsMode::Disable => PgSslMode::Disable,
                        TlsMode::Prefer => PgSslMode::Prefer,
                        TlsMode::Require => PgSslMode::Require,
                        TlsMode::VerifyCa => PgSslMode::VerifyCa,
                        TlsMode::VerifyFull => PgSslMode::VerifyFull,
                    });
                }
                let zone = options.time_zone.clone().or_else(local_time_zone).filter(|z| valid_zone_name(z));
                let set_zone: Option<Arc<str>> = zone.map(|z| Arc::from(format!("SET TIME ZONE '{z}'")));
                let pool = PgPoolOptions::new()
                    .min_connections(min)
                    .max_connections(max)
                    .acquire_timeout(settings.max_wait)
                    .after_connect(move |conn, _meta| {
                        let set_zone = set_zone.clone();
                        Box::pin(async move {
                            if let Some(sql) = set_zone {
                                // An unknown zone is not fatal: the session stays on UTC.
                                if let Err(e) = sqlx::Executor::execute(&mut *conn, &*sql).await {
                                    tracing::warn!(error = %e, "could not set the session time zone");
                                }
                            }
                            Ok(())
                        })
                    })
                    .connect_with(connect)
                    .await
                    .map_err(fail)?;
                Pool::Postgres(pool)
            }
        };
        tracing::info!(url = %redacted, min_conn = min, max_conn = max, "connected to the {} database", url.dialect.name());
        Ok(DbPool { inner: Arc::new(PoolInner { pool, url: redacted, tables, query_limit: settings.query_limit }) })
    }

    /// The dialect of the database.
    pub fn dialect(&self) -> Dialect {
        self.inner.pool.dialect()
    }

    /// The URL, without the password.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The configured table names.
    pub fn tables(&self) -> &TableNames {
        &self.inner.tables
    }

    /// `query-limit`: rows per status query of the recovery jobs.
    pub fn query_limit(&self) -> u32 {
        self.inner.query_limit
    }

    /// Connections currently open.
    pub fn connections(&self) -> u32 {
        self.inner.pool.size()
    }

    /// Checks (and, with `create`, creates) the tables of this server: global, branch and lock
    /// tables, and the distributed-lock table when one is configured.
    pub async fn ensure_schema(&self, create: bool) -> Result<(), StoreError> {
        let names = self.tables();
        let tables: Vec<(SeataTable, &TableName)> =
            SeataTable::ALL.iter().filter_map(|&t| names.get(t).map(|n| (t, n))).collect();
        schema::ensure(self.raw(), &tables, create).await.map(drop)
    }

    /// Closes every connection; later calls on anything using this pool fail with
    /// [`StoreError::Closed`].
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    pub(crate) fn raw(&self) -> &Pool {
        &self.inner.pool
    }
}

/// This machine's time zone name (`Europe/Berlin`), as the JVM would find it.
fn local_time_zone() -> Option<String> {
    let from_path = |p: &str| p.split_once("zoneinfo/").map(|(_, z)| z.to_owned());
    if let Ok(tz) = std::env::var("TZ") {
        let tz = tz.trim_start_matches(':');
        if !tz.is_empty() {
            return Some(from_path(tz).unwrap_or_else(|| tz.to_owned()));
        }
    }
    if let Ok(text) = std::fs::read_to_string("/etc/timezone") {
        let name = text.trim();
        if !name.is_empty() {
            return Some(name.to_owned());
        }
    }
    let target = std::fs::read_link("/etc/localtime").ok()?;
    from_path(&target.to_string_lossy())
}

fn valid_zone_name(zone: &str) -> bool {
    !zone.is_empty()
        && zone.len() <= 64
        && zone.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '+' | '-' | ':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_names_are_checked_before_use_in_sql() {
        assert!(valid_zone_name("Europe/Berlin"));
        assert!(valid_zone_name("UTC"));
        assert!(valid_zone_name("Etc/GMT+8"));
        assert!(!valid_zone_name("UTC'; DROP TABLE x; --"));
        assert!(!valid_zone_name(""));
    }

    #[tokio::test]
    async fn bad_settings_fail_before_connecting() {
        let mut settings = DbStoreSettings { url: "jdbc:oracle:thin:@h:1521:x".to_owned(), ..Default::default() };
        let err = DbPool::connect(&settings, &DbOptions::default()).await.expect_err("oracle refused");
        assert!(err.to_string().contains("unsupported database"), "{err}");

        settings.url = "jdbc:mysql://127.0.0.1:1/seata".to_owned();
        settings.db_type = DbType::PostgreSql;
        let err = DbPool::connect(&settings, &DbOptions::default()).await.expect_err("mismatch refused");
        assert!(err.to_string().contains("db-type"), "{err}");

        settings.db_type = DbType::MySql;
        settings.lock_table = "lock_table; DROP TABLE x".to_owned();
        let err = DbPool::connect(&settings, &DbOptions::default()).await.expect_err("bad table name refused");
        assert!(err.to_string().contains("seata.store.db.lock-table"), "{err}");
    }
}
