//! A thin layer over the two sqlx drivers, so that every statement of the db backends is written
//! once: a [`Pool`] or [`Tx`] runs SQL text with [`Arg`]s and gives back [`Row`]s, whatever the
//! database. SQL is written with `?` placeholders; [`Dialect::sql`] turns them into `$1, $2, …`
//! for PostgreSQL.
//!
//! Lists ([`Arg::StrList`]) are bound as one array on PostgreSQL (use them
//! with `= ANY(?)` or `UNNEST(?)`) and as one parameter per element on MySQL (the SQL then needs
//! as many `?`; [`Dialect::in_list`] writes both forms).

use std::borrow::Cow;

use sqlx::mysql::{MySql, MySqlArguments, MySqlDatabaseError, MySqlPool, MySqlRow};
use sqlx::postgres::{PgArguments, PgPool, PgRow, Postgres};
use sqlx::query::Query;
use sqlx::{Row as _, Transaction};

use crate::store::StoreError;

/// Which SQL dialect a database speaks. MariaDB speaks [`Dialect::MySql`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// MySQL and MariaDB.
    MySql,
    /// PostgreSQL.
    Postgres,
}

impl Dialect {
    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::MySql => "MySQL",
            Dialect::Postgres => "PostgreSQL",
        }
    }

    /// `sql` with its `?` placeholders numbered `$1, $2, …` on PostgreSQL; unchanged on MySQL.
    /// The statements of this backend have no `?` inside literals.
    pub(crate) fn sql(self, sql: &str) -> String {
        match self {
            Dialect::MySql => sql.to_owned(),
            Dialect::Postgres => {
                let mut out = String::with_capacity(sql.len() + 16);
                let mut n = 0;
                for c in sql.chars() {
                    if c == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }

    /// The condition "`column` is one of `count` values bound as one list argument":
    /// `column = ANY(?)` on PostgreSQL; on MySQL `column IN (?, …)` in groups of at most 1000
    /// placeholders joined by `OR` (as Seata writes it).
    pub(crate) fn in_list(self, column: &str, count: usize) -> String {
        match self {
            Dialect::Postgres => format!("{column} = ANY(?)"),
            Dialect::MySql => {
                let groups: Vec<String> = (0..count.max(1))
                    .collect::<Vec<_>>()
                    .chunks(MAX_IN_SIZE)
                    .map(|chunk| format!("{column} IN ({})", vec!["?"; chunk.len()].join(", ")))
                    .collect();
                if groups.len() == 1 {
                    groups.into_iter().next().unwrap_or_default()
                } else {
                    format!("({})", groups.join(" OR "))
                }
            }
        }
    }

    /// The current time for a column of second precision (`DATETIME`, `TIMESTAMP(0)`).
    pub(crate) fn now(self) -> &'static str {
        match self {
            Dialect::MySql => "NOW()",
            // clock_timestamp(), not now(): now() is the start of the transaction, and one
            // transaction here carries many callers' requests.
            Dialect::Postgres => "clock_timestamp()",
        }
    }

    /// The current time for a column of microsecond precision (`DATETIME(6)`, `TIMESTAMP(6)`).
    pub(crate) fn now_micros(self) -> &'static str {
        match self {
            Dialect::MySql => "NOW(6)",
            Dialect::Postgres => "clock_timestamp()",
        }
    }

    /// Epoch milliseconds of a `DATETIME`/`TIMESTAMP` column, read in the session time zone the
    /// column was written in.
    pub(crate) fn epoch_millis(self, column: &str) -> String {
        match self {
            Dialect::MySql => format!("CAST(UNIX_TIMESTAMP({column}) * 1000 AS SIGNED)"),
            Dialect::Postgres => format!("CAST(EXTRACT(EPOCH FROM CAST({column} AS TIMESTAMPTZ)) * 1000 AS BIGINT)"),
        }
    }
}

/// Most placeholders in one `IN (…)` group on MySQL (Seata's `MAX_IN_SIZE`).
pub(crate) const MAX_IN_SIZE: usize = 1000;

/// A value bound to a placeholder.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    I16(i16),
    I32(i32),
    I64(i64),
    Str(&'a str),
    OptStr(Option<&'a str>),
    /// A list of texts: one array on PostgreSQL, one placeholder per element on MySQL.
    StrList(&'a [&'a str]),
    /// A list of numbers: one array on PostgreSQL, one placeholder per element on MySQL.
    I64List(&'a [i64]),
}

fn mysql_query<'q>(sql: &'q str, args: &[Arg<'q>]) -> Query<'q, MySql, MySqlArguments> {
    let mut q = sqlx::query(sql);
    for arg in args {
        q = match *arg {
            Arg::I16(v) => q.bind(v),
            Arg::I32(v) => q.bind(v),
            Arg::I64(v) => q.bind(v),
            Arg::Str(v) => q.bind(v),
            Arg::OptStr(v) => q.bind(v),
            Arg::StrList(list) => list.iter().fold(q, |q, v| q.bind(*v)),
            Arg::I64List(list) => list.iter().fold(q, |q, v| q.bind(*v)),
        };
    }
    q
}

fn pg_query<'q>(sql: &'q str, args: &[Arg<'q>]) -> Query<'q, Postgres, PgArguments> {
    let mut q = sqlx::query(sql);
    for arg in args {
        q = match *arg {
            Arg::I16(v) => q.bind(v),
            Arg::I32(v) => q.bind(v),
            Arg::I64(v) => q.bind(v),
            Arg::Str(v) => q.bind(v),
            Arg::OptStr(v) => q.bind(v),
            Arg::StrList(list) => q.bind(list),
            Arg::I64List(list) => q.bind(list),
        };
    }
    q
}

/// A connection pool of either database.
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    MySql(MySqlPool),
    Postgres(PgPool),
}

impl Pool {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Pool::MySql(_) => Dialect::MySql,
            Pool::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs one statement in autocommit mode; returns the rows it matched.
    pub(crate) async fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64, sqlx::Error> {
        match self {
            Pool::MySql(p) => mysql_query(sql, args).execute(p).await.map(|r| r.rows_affected()),
            Pool::Postgres(p) => pg_query(sql, args).execute(p).await.map(|r| r.rows_affected()),
        }
    }

    /// Runs one query in autocommit mode.
    pub(crate) async fn fetch_all(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, sqlx::Error> {
        match self {
            Pool::MySql(p) => Ok(mysql_query(sql, args).fetch_all(p).await?.into_iter().map(Row::MySql).collect()),
            Pool::Postgres(p) => Ok(pg_query(sql, args).fetch_all(p).await?.into_iter().map(Row::Postgres).collect()),
        }
    }

    /// Takes a connection and starts a transaction with `BEGIN` (or `statement`). Dropping the
    /// [`Tx`] without committing rolls it back before the connection is used again.
    pub(crate) async fn begin(&self, statement: Option<&'static str>) -> Result<Tx, sqlx::Error> {
        match (self, statement) {
            (Pool::MySql(p), None) => p.begin().await.map(Tx::MySql),
            (Pool::MySql(p), Some(s)) => p.begin_with(s).await.map(Tx::MySql),
            (Pool::Postgres(p), None) => p.begin().await.map(Tx::Postgres),
            (Pool::Postgres(p), Some(s)) => p.begin_with(s).await.map(Tx::Postgres),
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Pool::MySql(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Pool::MySql(p) => p.is_closed(),
            Pool::Postgres(p) => p.is_closed(),
        }
    }

    /// Connections open (idle or in use).
    pub(crate) fn size(&self) -> u32 {
        match self {
            Pool::MySql(p) => p.size(),
            Pool::Postgres(p) => p.size(),
        }
    }
}

/// An open transaction on a pooled connection.
pub(crate) enum Tx {
    MySql(Transaction<'static, MySql>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub(crate) async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, sqlx::Error> {
        match self {
            Tx::MySql(t) => mysql_query(sql, args).execute(&mut **t).await.map(|r| r.rows_affected()),
            Tx::Postgres(t) => pg_query(sql, args).execute(&mut **t).await.map(|r| r.rows_affected()),
        }
    }

    pub(crate) async fn fetch_all(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, sqlx::Error> {
        match self {
            Tx::MySql(t) => Ok(mysql_query(sql, args).fetch_all(&mut **t).await?.into_iter().map(Row::MySql).collect()),
            Tx::Postgres(t) => {
                Ok(pg_query(sql, args).fetch_all(&mut **t).await?.into_iter().map(Row::Postgres).collect())
            }
        }
    }

    /// Runs a statement without arguments through the simple (text) protocol: `SAVEPOINT` and
    /// friends, which MySQL does not accept as prepared statements.
    pub(crate) async fn raw(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        // `Executor::execute` returns a boxed future, which keeps the callers' futures `Send`.
        match self {
            Tx::MySql(t) => sqlx::Executor::execute(&mut **t, sql).await.map(drop),
            Tx::Postgres(t) => sqlx::Executor::execute(&mut **t, sql).await.map(drop),
        }
    }

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::MySql(t) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::MySql(t) => t.rollback().await,
            Tx::Postgres(t) => t.rollback().await,
        }
    }
}

/// A result row of either database.
pub(crate) enum Row {
    MySql(MySqlRow),
    Postgres(PgRow),
}

impl Row {
    /// An integer column of any width (`TINYINT` … `BIGINT`, `SMALLINT` … `INT8`), or `None`
    /// for `NULL`.
    pub(crate) fn int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        match self {
            Row::MySql(r) => r.try_get::<Option<i64>, _>(column),
            Row::Postgres(r) => r
                .try_get::<Option<i64>, _>(column)
                .or_else(|_| r.try_get::<Option<i32>, _>(column).map(|v| v.map(i64::from)))
                .or_else(|_| r.try_get::<Option<i16>, _>(column).map(|v| v.map(i64::from))),
        }
    }

    /// A text column, or `None` for `NULL`.
    pub(crate) fn text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        match self {
            Row::MySql(r) => r.try_get::<Option<String>, _>(column),
            Row::Postgres(r) => r.try_get::<Option<String>, _>(column),
        }
    }
}

/// What kind of failure a database error is, as far as the backends care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// A primary key or unique index refused the row (MySQL 1062, PostgreSQL 23505).
    Duplicate,
    /// The transaction lost a deadlock or a serialization check, or waited too long for a row
    /// lock (MySQL 1213, 1205; PostgreSQL 40001, 40P01, 55P03); running it again may succeed.
    Contention,
    /// The connection is gone or could not be had (I/O error, server shutdown, killed
    /// connection, pool timeout).
    Connection,
    /// The pool was closed.
    Closed,
    /// Anything else (a bad statement, a value the column refuses, …).
    Other,
}

impl Failure {
    pub(crate) fn of(error: &sqlx::Error) -> Failure {
        match error {
            sqlx::Error::PoolClosed => Failure::Closed,
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::WorkerCrashed => Failure::Connection,
            sqlx::Error::Database(db) => {
                if let Some(my) = db.try_downcast_ref::<MySqlDatabaseError>() {
                    return match my.number() {
                        1062 => Failure::Duplicate,
                        1205 | 1213 => Failure::Contention,
                        // server shutdown, connection killed (MariaDB), gone away, lost.
                        1053 | 1927 | 2006 | 2013 => Failure::Connection,
                        _ => Failure::Other,
                    };
                }
                match db.code().as_deref() {
                    Some("23505") => Failure::Duplicate,
                    Some("40001" | "40P01" | "55P03") => Failure::Contention,
                    Some(code) if code.starts_with("08") || code.starts_with("57P") => Failure::Connection,
                    _ => Failure::Other,
                }
            }
            _ => Failure::Other,
        }
    }
}

/// A database error as a [`StoreError`]: [`StoreError::Closed`] once the pool is closed,
/// [`StoreError::Unavailable`] otherwise.
pub(crate) fn store_error(context: &'static str, error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::PoolClosed => StoreError::Closed,
        e => StoreError::unavailable(context, e),
    }
}

/// A configuration problem (bad URL, missing table) as a [`StoreError`].
pub(crate) fn config_error(context: &'static str, message: impl Into<Cow<'static, str>>) -> StoreError {
    let message: String = message.into().into_owned();
    StoreError::unavailable(context, sqlx::Error::Configuration(message.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        let sql = "UPDATE t SET a = ?, b = ? WHERE c = ?";
        assert_eq!(Dialect::MySql.sql(sql), sql);
        assert_eq!(Dialect::Postgres.sql(sql), "UPDATE t SET a = $1, b = $2 WHERE c = $3");
    }

    #[test]
    fn in_lists_are_chunked_on_mysql() {
        assert_eq!(Dialect::MySql.in_list("k", 2), "k IN (?, ?)");
        assert_eq!(Dialect::Postgres.in_list("k", 2), "k = ANY(?)");
        let long = Dialect::MySql.in_list("k", 2001);
        assert_eq!(long.matches(" OR ").count(), 2);
        assert_eq!(long.matches('?').count(), 2001);
        assert!(long.starts_with("(k IN (") && long.ends_with("?))"));
    }
}
