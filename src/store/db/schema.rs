//! Seata's tables: their DDL (the same tables, columns, types and indexes as Seata's
//! `script/server/db/mysql.sql` and `postgresql.sql`), the start-up check that they exist with
//! every column, and their creation when asked.
//!
//! The DDL is rendered with the configured table names; rendered with the default names it is
//! exactly `conf/schema/mysql.sql` and `conf/schema/postgresql.sql` (a test keeps them equal).
//! Existing tables are never altered.

use std::collections::HashMap;
use std::fmt;

use crate::config::DbStoreSettings;
use crate::store::StoreError;

use super::conn::{config_error, store_error, Arg, Dialect, Pool};

/// One of Seata's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeataTable {
    /// `global_table`: one row per global transaction.
    Global,
    /// `branch_table`: one row per branch.
    Branch,
    /// `lock_table`: one row per AT row lock.
    Lock,
    /// `distributed_lock`: one row per job lock of the recovery jobs.
    DistributedLock,
}

impl SeataTable {
    /// Every table, in creation order.
    pub const ALL: [SeataTable; 4] =
        [SeataTable::Global, SeataTable::Branch, SeataTable::Lock, SeataTable::DistributedLock];

    /// The columns the server reads or writes.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            SeataTable::Global => &[
                "xid",
                "transaction_id",
                "status",
                "application_id",
                "transaction_service_group",
                "transaction_name",
                "timeout",
                "begin_time",
                "application_data",
                "gmt_create",
                "gmt_modified",
            ],
            SeataTable::Branch => &[
                "branch_id",
                "xid",
                "transaction_id",
                "resource_group_id",
                "resource_id",
                "branch_type",
                "status",
                "client_id",
                "application_data",
                "gmt_create",
                "gmt_modified",
            ],
            SeataTable::Lock => &[
                "row_key",
                "xid",
                "transaction_id",
                "branch_id",
                "resource_id",
                "table_name",
                "pk",
                "status",
                "gmt_create",
                "gmt_modified",
            ],
            SeataTable::DistributedLock => &["lock_key", "lock_value", "expire"],
        }
    }

    /// The setting that names the table.
    pub fn setting(self) -> &'static str {
        match self {
            SeataTable::Global => "seata.store.db.global-table",
            SeataTable::Branch => "seata.store.db.branch-table",
            SeataTable::Lock => "seata.store.db.lock-table",
            SeataTable::DistributedLock => "seata.store.db.distributed-lock-table",
        }
    }

    /// Seata's width of a text column, in characters (`VARCHAR(n)`, `CHAR(n)`).
    pub fn seata_width(self, column: &str) -> Option<usize> {
        let width = match (self, column) {
            (_, "xid") => 128,
            (SeataTable::Global, "application_id" | "transaction_service_group") => 32,
            (SeataTable::Global, "transaction_name") => 128,
            (SeataTable::Global | SeataTable::Branch, "application_data") => 2000,
            (SeataTable::Branch, "resource_group_id") => 32,
            (SeataTable::Branch | SeataTable::Lock, "resource_id") => 256,
            (SeataTable::Branch, "branch_type") => 8,
            (SeataTable::Branch, "client_id") => 64,
            (SeataTable::Lock, "row_key") => 128,
            (SeataTable::Lock, "table_name") => 32,
            (SeataTable::Lock, "pk") => 36,
            (SeataTable::DistributedLock, "lock_key" | "lock_value") => 20,
            _ => return None,
        };
        Some(width)
    }
}

/// A table name as configured: `name` or `schema.name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    schema: Option<String>,
    name: String,
}

impl TableName {
    /// Checks a configured name: one or two plain identifiers (letters, digits, `_`, `$`; not
    /// starting with a digit), joined by a dot. Anything else is refused, since the name is
    /// written into SQL text.
    pub fn parse(value: &str) -> Result<TableName, String> {
        let ident = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && !s.starts_with(|c: char| c.is_ascii_digit())
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        };
        let value = value.trim();
        let (schema, name) = match value.split_once('.') {
            Some((s, n)) => (Some(s), n),
            None => (None, value),
        };
        if !ident(name) || schema.is_some_and(|s| !ident(s)) {
            return Err(format!("`{value}` is not a plain table name (letters, digits, `_`, optionally `schema.`)"));
        }
        Ok(TableName { schema: schema.map(str::to_owned), name: name.to_owned() })
    }

    /// The unqualified name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schema (database on MySQL), when the name is qualified.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// A name for an index of this table (PostgreSQL index names are per schema, so they carry
    /// the table name, as in Seata's script).
    fn index(&self, suffix: &str) -> String {
        format!("idx_{}_{suffix}", self.name)
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The configured names of Seata's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// `global-table`.
    pub global: TableName,
    /// `branch-table`.
    pub branch: TableName,
    /// `lock-table`.
    pub lock: TableName,
    /// `distributed-lock-table`; `None` when disabled.
    pub distributed_lock: Option<TableName>,
}

impl Default for TableNames {
    fn default() -> Self {
        let name = |n: &str| TableName { schema: None, name: n.to_owned() };
        TableNames {
            global: name("global_table"),
            branch: name("branch_table"),
            lock: name("lock_table"),
            distributed_lock: Some(name("distributed_lock")),
        }
    }
}

impl TableNames {
    /// The names from `seata.store.db.*`.
    pub fn from_settings(settings: &DbStoreSettings) -> Result<TableNames, StoreError> {
        let parse = |table: SeataTable, value: &str| {
            TableName::parse(value)
                .map_err(|e| config_error("reading the table names", format!("{}: {e}", table.setting())))
        };
        Ok(TableNames {
            global: parse(SeataTable::Global, &settings.global_table)?,
            branch: parse(SeataTable::Branch, &settings.branch_table)?,
            lock: parse(SeataTable::Lock, &settings.lock_table)?,
            distributed_lock: match settings.distributed_lock_table.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(name) => Some(parse(SeataTable::DistributedLock, name)?),
            },
        })
    }

    /// The configured name of `table`, `None` for a disabled distributed-lock table.
    pub fn get(&self, table: SeataTable) -> Option<&TableName> {
        match table {
            SeataTable::Global => Some(&self.global),
            SeataTable::Branch => Some(&self.branch),
            SeataTable::Lock => Some(&self.lock),
            SeataTable::DistributedLock => self.distributed_lock.as_ref(),
        }
    }
}

/// The keys seeded into `distributed_lock` (the other job keys are inserted on first use).
pub const DISTRIBUTED_LOCK_SEEDS: [&str; 4] =
    ["AsyncCommitting", "RetryCommitting", "RetryRollbacking", "TxTimeoutCheck"];

/// The statements that create `table` named `name` (and, for `distributed_lock`, seed it).
pub fn create_statements(dialect: Dialect, table: SeataTable, name: &TableName) -> Vec<String> {
    match dialect {
        Dialect::MySql => mysql_ddl(table, name),
        Dialect::Postgres => postgres_ddl(table, name),
    }
}

fn mysql_ddl(table: SeataTable, n: &TableName) -> Vec<String> {
    let body = match table {
        SeataTable::Global => {
            "    xid                       VARCHAR(128) NOT NULL,
    transaction_id            BIGINT,
    status                    TINYINT      NOT NULL,
    application_id            VARCHAR(32),
    transaction_service_group VARCHAR(32),
    transaction_name          VARCHAR(128),
    timeout                   INT,
    begin_time                BIGINT,
    application_data          VARCHAR(2000),
    gmt_create                DATETIME,
    gmt_modified              DATETIME,
    PRIMARY KEY (xid),
    KEY idx_status_gmt_modified (status, gmt_modified),
    KEY idx_transaction_id (transaction_id)"
        }
        SeataTable::Branch => {
            "    branch_id         BIGINT       NOT NULL,
    xid               VARCHAR(128) NOT NULL,
    transaction_id    BIGINT,
    resource_group_id VARCHAR(32),
    resource_id       VARCHAR(256),
    branch_type       VARCHAR(8),
    status            TINYINT,
    client_id         VARCHAR(64),
    application_data  VARCHAR(2000),
    gmt_create        DATETIME(6),
    gmt_modified      DATETIME(6),
    PRIMARY KEY (branch_id),
    KEY idx_xid (xid)"
        }
        SeataTable::Lock => {
            "    row_key        VARCHAR(128) NOT NULL,
    xid            VARCHAR(128),
    transaction_id BIGINT,
    branch_id      BIGINT       NOT NULL,
    resource_id    VARCHAR(256),
    table_name     VARCHAR(32),
    pk             VARCHAR(36),
    status         TINYINT      NOT NULL DEFAULT '0' COMMENT '0:locked ,1:rollbacking',
    gmt_create     DATETIME,
    gmt_modified   DATETIME,
    PRIMARY KEY (row_key),
    KEY idx_status (status),
    KEY idx_branch_id (branch_id),
    KEY idx_xid (xid)"
        }
        SeataTable::DistributedLock => {
            "    lock_key   CHAR(20)    NOT NULL,
    lock_value VARCHAR(20) NOT NULL,
    expire     BIGINT,
    PRIMARY KEY (lock_key)"
        }
    };
    let mut statements =
        vec![format!("CREATE TABLE IF NOT EXISTS {n}\n(\n{body}\n) ENGINE = InnoDB\n  DEFAULT CHARSET = utf8mb4")];
    if table == SeataTable::DistributedLock {
        statements.extend(
            DISTRIBUTED_LOCK_SEEDS
                .iter()
                .map(|key| format!("INSERT IGNORE INTO {n} (lock_key, lock_value, expire) VALUES ('{key}', ' ', 0)")),
        );
    }
    statements
}

fn postgres_ddl(table: SeataTable, n: &TableName) -> Vec<String> {
    let (body, indexes): (&str, &[(&str, &str)]) = match table {
        SeataTable::Global => (
            "    xid                       VARCHAR(128) NOT NULL,
    transaction_id            BIGINT,
    status                    SMALLINT     NOT NULL,
    application_id            VARCHAR(32),
    transaction_service_group VARCHAR(32),
    transaction_name          VARCHAR(128),
    timeout                   INT,
    begin_time                BIGINT,
    application_data          VARCHAR(2000),
    gmt_create                TIMESTAMP(0),
    gmt_modified              TIMESTAMP(0),
    CONSTRAINT pk_{name} PRIMARY KEY (xid)",
            &[("status_gmt_modified", "status, gmt_modified"), ("transaction_id", "transaction_id")],
        ),
        SeataTable::Branch => (
            "    branch_id         BIGINT       NOT NULL,
    xid               VARCHAR(128) NOT NULL,
    transaction_id    BIGINT,
    resource_group_id VARCHAR(32),
    resource_id       VARCHAR(256),
    branch_type       VARCHAR(8),
    status            SMALLINT,
    client_id         VARCHAR(64),
    application_data  VARCHAR(2000),
    gmt_create        TIMESTAMP(6),
    gmt_modified      TIMESTAMP(6),
    CONSTRAINT pk_{name} PRIMARY KEY (branch_id)",
            &[("xid", "xid")],
        ),
        SeataTable::Lock => (
            "    row_key        VARCHAR(128) NOT NULL,
    xid            VARCHAR(128),
    transaction_id BIGINT,
    branch_id      BIGINT       NOT NULL,
    resource_id    VARCHAR(256),
    table_name     VARCHAR(32),
    pk             VARCHAR(36),
    status         SMALLINT     NOT NULL DEFAULT 0,
    gmt_create     TIMESTAMP(0),
    gmt_modified   TIMESTAMP(0),
    CONSTRAINT pk_{name} PRIMARY KEY (row_key)",
            &[("branch_id", "branch_id"), ("xid", "xid"), ("status", "status")],
        ),
        SeataTable::DistributedLock => (
            "    lock_key   VARCHAR(20) NOT NULL,
    lock_value VARCHAR(20) NOT NULL,
    expire     BIGINT      NOT NULL,
    CONSTRAINT pk_{name}_table PRIMARY KEY (lock_key)",
            &[],
        ),
    };
    let body = body.replace("{name}", n.name());
    let mut statements = vec![format!("CREATE TABLE IF NOT EXISTS {n}\n(\n{body}\n)")];
    if table == SeataTable::Lock {
        statements.push(format!("COMMENT ON COLUMN {n}.status IS '0:locked ,1:rollbacking'"));
    }
    statements.extend(
        indexes
            .iter()
            .map(|(suffix, columns)| format!("CREATE INDEX IF NOT EXISTS {} ON {n} ({columns})", n.index(suffix))),
    );
    if table == SeataTable::DistributedLock {
        statements.extend(DISTRIBUTED_LOCK_SEEDS.iter().map(|key| {
            format!("INSERT INTO {n} (lock_key, lock_value, expire) VALUES ('{key}', ' ', 0) ON CONFLICT DO NOTHING")
        }));
    }
    statements
}

/// The whole schema script for `dialect` with the default table names: the text of
/// `conf/schema/mysql.sql` or `conf/schema/postgresql.sql`.
pub fn schema_script(dialect: Dialect) -> String {
    let names = TableNames::default();
    let mut out = format!(
        "-- Seata server tables for `store.mode: db` on {}.\n\
         -- The same tables, columns, types, indexes and seed rows as Seata's script/server/db/{}.sql,\n\
         -- so that this server and Java seata-server nodes can share one database.\n\
         -- Table names are the defaults of seata.store.db.*-table.\n",
        match dialect {
            Dialect::MySql => "MySQL / MariaDB",
            Dialect::Postgres => "PostgreSQL",
        },
        match dialect {
            Dialect::MySql => "mysql",
            Dialect::Postgres => "postgresql",
        },
    );
    for table in SeataTable::ALL {
        if let Some(name) = names.get(table) {
            out.push('\n');
            for statement in create_statements(dialect, table, name) {
                out.push_str(&statement);
                out.push_str(";\n");
            }
        }
    }
    out
}

/// What the start-up check found out about a table's columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableInfo {
    /// Width of each text column in characters, by column name (lower case). `None`: no limit
    /// that matters (e.g. `TEXT`).
    pub widths: HashMap<String, Option<usize>>,
    /// Fractional-second digits of each time column.
    pub precision: HashMap<String, i64>,
}

impl TableInfo {
    /// The width of a text column: as found in the database, Seata's width if the column was
    /// not examined.
    pub fn width(&self, table: SeataTable, column: &str) -> Option<usize> {
        match self.widths.get(column) {
            Some(width) => *width,
            None => table.seata_width(column),
        }
    }

    /// Seata's widths (for tables created by this server).
    pub fn seata(table: SeataTable) -> TableInfo {
        let widths = table.columns().iter().map(|c| ((*c).to_owned(), table.seata_width(c))).collect();
        TableInfo { widths, precision: HashMap::new() }
    }
}

/// Checks that each of `tables` exists with every column the server uses; creates the missing
/// tables when `create` is set. Returns what was found per table.
///
/// Errors name the table (with the setting that names it) or the missing column. An existing
/// table is never altered: a table that lacks a column is an error even with `create`.
pub(crate) async fn ensure(
    pool: &Pool,
    tables: &[(SeataTable, &TableName)],
    create: bool,
) -> Result<HashMap<SeataTable, TableInfo>, StoreError> {
    let dialect = pool.dialect();
    let mut found = HashMap::new();
    for &(table, name) in tables {
        let mut info = inspect(pool, name).await?;
        if info.is_none() && create {
            for statement in create_statements(dialect, table, name) {
                pool.execute(&statement, &[]).await.map_err(|e| store_error("creating a table", e))?;
            }
            tracing::info!(table = %name, "created a missing table");
            info = inspect(pool, name).await?;
        }
        let Some(info) = info else {
            return Err(config_error(
                "checking the database schema",
                format!(
                    "table `{name}` ({}) does not exist in the {} database; create it with \
                     conf/schema/{}.sql or let the server create missing tables",
                    table.setting(),
                    dialect.name(),
                    match dialect {
                        Dialect::MySql => "mysql",
                        Dialect::Postgres => "postgresql",
                    }
                ),
            ));
        };
        if let Some(missing) = table.columns().iter().find(|c| !info.widths.contains_key(**c)) {
            return Err(config_error(
                "checking the database schema",
                format!(
                    "table `{name}` ({}) has no column `{missing}`; it must have the columns of Seata's schema: {}",
                    table.setting(),
                    table.columns().join(", ")
                ),
            ));
        }
        if table == SeataTable::Branch && info.precision.get("gmt_create").is_some_and(|p| *p < 6) {
            tracing::warn!(
                table = %name,
                "gmt_create has no microseconds; branches registered within the same second are ordered by branch id"
            );
        }
        found.insert(table, info);
    }
    Ok(found)
}

/// The columns of table `name`, or `None` if there is no such table.
async fn inspect(pool: &Pool, name: &TableName) -> Result<Option<TableInfo>, StoreError> {
    let dialect = pool.dialect();
    let (schema_clause, table_name) = match dialect {
        // Unquoted names are folded to lower case by PostgreSQL.
        Dialect::Postgres => (
            if name.schema().is_some() { "table_schema = ?" } else { "table_schema = current_schema()" },
            name.name().to_ascii_lowercase(),
        ),
        Dialect::MySql => (
            if name.schema().is_some() { "table_schema = ?" } else { "table_schema = DATABASE()" },
            name.name().to_owned(),
        ),
    };
    let schema = match dialect {
        Dialect::Postgres => name.schema().map(str::to_ascii_lowercase),
        Dialect::MySql => name.schema().map(str::to_owned),
    };
    let sql = dialect.sql(&format!(
        "SELECT LOWER(column_name) AS cname, CAST(character_maximum_length AS {int}) AS width, \
         CAST(datetime_precision AS {int}) AS frac \
         FROM information_schema.columns WHERE {schema_clause} AND table_name = ?",
        int = match dialect {
            Dialect::MySql => "SIGNED",
            Dialect::Postgres => "BIGINT",
        }
    ));
    let mut args = Vec::with_capacity(2);
    if let Some(schema) = schema.as_deref() {
        args.push(Arg::Str(schema));
    }
    args.push(Arg::Str(&table_name));
    let rows = pool.fetch_all(&sql, &args).await.map_err(|e| store_error("checking the database schema", e))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut info = TableInfo::default();
    for row in &rows {
        let read = |e: sqlx::Error| store_error("checking the database schema", e);
        let column = row.text("cname").map_err(read)?.unwrap_or_default();
        let width = row.int("width").map_err(read)?.and_then(|w| usize::try_from(w).ok());
        if let Some(frac) = row.int("frac").map_err(read)? {
            info.precision.insert(column.clone(), frac);
        }
        info.widths.insert(column, width);
    }
    Ok(Some(info))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo test --lib regenerate_shipped_scripts -- --ignored` rewrites the shipped scripts
    /// after a change of the DDL.
    #[test]
    #[ignore]
    fn regenerate_shipped_scripts() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/schema");
        std::fs::write(dir.join("mysql.sql"), schema_script(Dialect::MySql)).expect("write mysql.sql");
        std::fs::write(dir.join("postgresql.sql"), schema_script(Dialect::Postgres)).expect("write postgresql.sql");
    }

    #[test]
    fn shipped_scripts_are_the_rendered_ddl() {
        assert_eq!(include_str!("../../../conf/schema/mysql.sql"), schema_script(Dialect::MySql));
        assert_eq!(include_str!("../../../conf/schema/postgresql.sql"), schema_script(Dialect::Postgres));
    }

    #[test]
    fn table_names_are_plain_identifiers() {
        assert_eq!(TableName::parse("global_table").map(|t| t.to_string()), Ok("global_table".to_owned()));
        let qualified = TableName::parse("seata.lock_table").expect("qualified");
        assert_eq!((qualified.schema(), qualified.name()), (Some("seata"), "lock_table"));
        for bad in ["", "a b", "t;drop table x", "1abc", "a.b.c", "`t`", "t-1", "s."] {
            assert!(TableName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn postgres_index_names_follow_the_table_name() {
        let name = TableName::parse("tc.my_locks").expect("name");
        let ddl = create_statements(Dialect::Postgres, SeataTable::Lock, &name).join(";\n");
        assert!(ddl.contains("CREATE TABLE IF NOT EXISTS tc.my_locks"));
        assert!(ddl.contains("CREATE INDEX IF NOT EXISTS idx_my_locks_branch_id ON tc.my_locks (branch_id)"));
        assert!(ddl.contains("CONSTRAINT pk_my_locks PRIMARY KEY (row_key)"));
    }

    #[test]
    fn every_column_has_a_seata_width_or_is_not_text() {
        for table in SeataTable::ALL {
            for column in table.columns() {
                let text = !matches!(
                    *column,
                    "transaction_id"
                        | "status"
                        | "timeout"
                        | "begin_time"
                        | "gmt_create"
                        | "gmt_modified"
                        | "branch_id"
                        | "expire"
                );
                assert_eq!(table.seata_width(column).is_some(), text, "{table:?}.{column}");
            }
        }
    }
}
