//! A private MariaDB server for tests that kill and restart the database: its own data directory
//! (a temporary directory), its own port, started from the test and stopped when dropped. The
//! shared server the other db tests use is never touched.
//!
//! `mariadb-install-db` initialises the data directory (about 1.5 s); `mariadbd` then starts in a
//! fraction of a second with a small buffer pool and redo log, durable commits
//! (`innodb_flush_log_at_trx_commit=1`) and no binary log. [`PrivateMariaDb::kill9`] simulates a
//! crash or a power cut, [`PrivateMariaDb::start`] brings it back on the same data and port.
//!
//! Without `mariadbd` the test is skipped (with a `SKIPPED:` line), unless `CI=true`, where it
//! fails: `scripts/test.sh` installs `mariadb-server` when it is missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// A MariaDB server of one test.
pub struct PrivateMariaDb {
    dir: tempfile::TempDir,
    server: PathBuf,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> =
        std::env::split_paths(&path).chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from)).collect();
    names.iter().flat_map(|n| dirs.iter().map(move |d| d.join(n))).find(|p| p.is_file())
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Options shared by the initialisation and the server: small, quick, durable.
const SIZES: [&str; 2] = ["--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M"];

impl PrivateMariaDb {
    /// Initialises a data directory and starts the server on a free port. `None` (after printing
    /// why) when MariaDB is not installed and `CI` is not `true`.
    ///
    /// # Panics
    /// When MariaDB is missing and `CI=true`, or it fails to initialise or start.
    pub async fn create() -> Option<PrivateMariaDb> {
        let (Some(server), Some(install)) =
            (find(&["mariadbd", "mysqld"]), find(&["mariadb-install-db", "mysql_install_db"]))
        else {
            let message = "mariadbd / mariadb-install-db not found (install mariadb-server)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{message} (CI=true: db tests may not be skipped)");
            }
            eprintln!("SKIPPED: {message}");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let started = Instant::now();
        let mut init = Command::new(install);
        init.arg("--no-defaults")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .arg(format!("--tmpdir={}", dir.path().join("tmp").display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"])
            .args(SIZES);
        if running_as_root() {
            init.arg("--user=root");
        }
        let out = init.stdin(Stdio::null()).output().expect("running mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = super::process::free_port();
        let mut db = PrivateMariaDb { dir, server, port, child: None };
        db.start().await;
        eprintln!("private MariaDB on port {port}: initialised and started in {:?}", started.elapsed());
        Some(db)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn error_log(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }

    /// Starts the server on the data directory and port (after [`kill9`](Self::kill9) or
    /// [`stop`](Self::stop): crash recovery runs first) and waits until it accepts a login.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let dir = self.dir.path();
        let mut cmd = Command::new(&self.server);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data().display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--socket={}", dir.join("sock").display()))
            .arg(format!("--tmpdir={}", dir.join("tmp").display()))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .arg(format!("--log-error={}", self.error_log().display()))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=1",
                "--performance-schema=off",
                "--max-connections=500",
            ])
            .args(SIZES);
        if running_as_root() {
            cmd.arg("--user=root");
        }
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(conn) = self.connect(None).await {
                let _ = conn.close().await;
                return;
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                self.child = None;
                panic!("MariaDB did not start ({exited:?}):\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: the server dies at once, as in a crash or a power cut (committed transactions
    /// are in the redo log; nothing else is).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: a clean shutdown.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }

    /// True while the server process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The last lines of the server's error log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.error_log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    async fn connect(&self, database: Option<&str>) -> Result<sqlx::MySqlConnection, sqlx::Error> {
        let mut options =
            MySqlConnectOptions::new().host("127.0.0.1").port(self.port).username("root").disable_statement_logging();
        if let Some(db) = database {
            options = options.database(db);
        }
        tokio::time::timeout(Duration::from_secs(5), options.connect()).await.unwrap_or(Err(sqlx::Error::PoolTimedOut))
    }

    /// Runs statements as root (in `database` if given).
    ///
    /// # Panics
    /// When one fails.
    pub async fn execute(&self, database: Option<&str>, statements: &[&str]) {
        let mut conn = self.connect(database).await.expect("connecting to the private MariaDB");
        for s in statements {
            sqlx::Executor::execute(&mut conn, *s).await.unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        let _ = conn.close().await;
    }

    /// Creates `database` and a user with `password` that may use it (so the server logs in as
    /// an application would, with a password).
    pub async fn create_database(&self, database: &str, user: &str, password: &str) {
        self.execute(
            None,
            &[
                &format!("CREATE DATABASE {database}"),
                &format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"),
                &format!("GRANT ALL ON {database}.* TO '{user}'@'%'"),
            ],
        )
        .await;
    }

    /// `SELECT COUNT(*) FROM table` in `database`.
    pub async fn count(&self, database: &str, table: &str) -> i64 {
        let mut conn = self.connect(Some(database)).await.expect("connecting to the private MariaDB");
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("counting {table}: {e}"));
        let _ = conn.close().await;
        n
    }

    /// `jdbc:mysql://127.0.0.1:<port>/<database>`, as a Seata user writes it.
    pub fn jdbc_url(&self, database: &str) -> String {
        format!("jdbc:mysql://127.0.0.1:{}/{database}?rewriteBatchedStatements=true", self.port)
    }

    /// The data directory (for diagnostics).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        self.kill9();
    }
}
