//! The real `seata-server` binary as a child process (crash and signal tests, several nodes on
//! one database, database outages).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use seata_server::store::db::testing::{Backend, TestDb};

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Where the server keeps its sessions.
#[derive(Debug, Clone)]
pub enum Store {
    /// The embedded store in `<dir>/store`.
    File,
    /// `store.mode: db` (`create-missing-tables: true`).
    Db {
        /// `seata.store.db.db-type`: `mysql` or `postgresql`.
        db_type: &'static str,
        /// `seata.store.db.url`, e.g. `jdbc:mysql://127.0.0.1:3306/seata`.
        url: String,
        user: Option<String>,
        password: Option<String>,
        /// Further YAML lines indented under `db:` (e.g. `      max-wait: 1000\n`).
        extra: String,
    },
}

impl Store {
    /// The test database `db` (its JDBC URL, user and password), a pool of 1 to 8 connections.
    pub fn test_db(db: &TestDb) -> Store {
        let settings = db.settings();
        Store::Db {
            db_type: match db.backend {
                Backend::MySql => "mysql",
                Backend::Postgres => "postgresql",
            },
            url: db.jdbc_url(),
            user: settings.user.clone(),
            password: settings.password.as_ref().map(|p| p.expose().to_owned()),
            extra: "      min-conn: 1\n      max-conn: 8\n".to_owned(),
        }
    }

    fn yaml(&self, dir: &Path) -> String {
        match self {
            Store::File => format!("  store:\n    mode: file\n    file:\n      dir: {}\n", dir.join("store").display()),
            Store::Db { db_type, url, user, password, extra } => {
                let mut s = format!(
                    "  store:\n    mode: db\n    db:\n      db-type: {db_type}\n      url: \"{url}\"\n      create-missing-tables: true\n"
                );
                if let Some(user) = user {
                    s.push_str(&format!("      user: \"{user}\"\n"));
                }
                if let Some(password) = password {
                    s.push_str(&format!("      password: \"{password}\"\n"));
                }
                s.push_str(extra);
                s
            }
        }
    }
}

/// `seata.server.recovery` periods of 200 ms (YAML lines indented under `seata:`), so that
/// recovery after a crash or an outage is quick.
pub const FAST_RECOVERY: &str = "  server:\n    recovery:\n      committing-retry-period: 200\n      async-committing-retry-period: 200\n      rollbacking-retry-period: 200\n      timeout-retry-period: 200\n";

/// A server process, killed with SIGKILL when dropped so a failing test leaves nothing behind.
pub struct ServerProcess(Option<Child>);

impl ServerProcess {
    /// Starts the binary with its store under `dir`, RPC on `port`, its own console port, no
    /// metrics exporter (a fixed port would clash between tests), and `seata_extra` (YAML lines
    /// indented under `seata:`) added to the configuration.
    pub fn spawn(dir: &Path, port: u16, seata_extra: &str) -> ServerProcess {
        Self::spawn_on(dir, port, seata_extra, &Store::File)
    }

    /// As [`spawn`](Self::spawn), on `store`.
    pub fn spawn_on(dir: &Path, port: u16, seata_extra: &str, store: &Store) -> ServerProcess {
        Self::spawn_with(dir, port, &[], &format!("{seata_extra}{}", store.yaml(dir)))
    }

    /// Starts the binary in db mode on the test database `db` (`seata.store.mode: db`, its JDBC
    /// URL, user and password, missing tables created) as server node `node` (`-n`), RPC on
    /// `port`; `dir` holds the configuration file; `seata_extra` as for [`spawn`](Self::spawn).
    pub fn spawn_db(dir: &Path, port: u16, node: u16, db: &TestDb, seata_extra: &str) -> ServerProcess {
        let store = Store::test_db(db).yaml(dir);
        Self::spawn_with(dir, port, &["-n", &node.to_string()], &format!("{seata_extra}{store}"))
    }

    /// Starts the binary with `args` added to the command line and `seata` (YAML lines indented
    /// under `seata:`, the store included) as the rest of the configuration. The server's log is
    /// dropped, unless `SEATA_TEST_SERVER_LOG` names a level (`warn`, `info`, …): then it goes to
    /// the test's output.
    fn spawn_with(dir: &Path, port: u16, args: &[&str], seata: &str) -> ServerProcess {
        let conf = dir.join("application.yml");
        let text = format!("server:\n  port: {}\nseata:\n  metrics:\n    enabled: false\n{seata}", free_port());
        std::fs::write(&conf, text).unwrap();
        let log = std::env::var("SEATA_TEST_SERVER_LOG").ok().filter(|l| !l.is_empty());
        let child = Command::new(env!("CARGO_BIN_EXE_seata-server"))
            .args(["--config", conf.to_str().unwrap(), "-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .env("RUST_LOG", log.as_deref().unwrap_or("error"))
            .stdout(if log.is_some() { Stdio::inherit() } else { Stdio::null() })
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        ServerProcess(Some(child))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.0.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self) -> Option<ExitStatus> {
        self.0.take().and_then(|mut c| c.wait().ok())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until something accepts connections on `addr` (up to 10 s).
pub async fn wait_listening(addr: SocketAddr) {
    for _ in 0..1000 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("server did not start on {addr}");
}
