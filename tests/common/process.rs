//! The real `seata-server` binary as a child process (crash and signal tests, several nodes on
//! one database).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use seata_server::store::db::testing::{Backend, TestDb};

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server process, killed with SIGKILL when dropped so a failing test leaves nothing behind.
pub struct ServerProcess(Option<Child>);

impl ServerProcess {
    /// Starts the binary with its store under `dir`, RPC on `port`, its own console port, no
    /// metrics exporter (a fixed port would clash between tests), and `seata_extra` (YAML lines
    /// indented under `seata:`) added to the configuration.
    pub fn spawn(dir: &Path, port: u16, seata_extra: &str) -> ServerProcess {
        let store = format!("  store:\n    mode: file\n    file:\n      dir: {}\n", dir.join("store").display());
        Self::spawn_with(dir, port, &[], &format!("{seata_extra}{store}"))
    }

    /// Starts the binary in db mode on the test database `db` (`seata.store.mode: db`, its JDBC
    /// URL, user and password, missing tables created) as server node `node` (`-n`), RPC on
    /// `port`; `dir` holds the configuration file; `seata_extra` as for [`spawn`](Self::spawn).
    pub fn spawn_db(dir: &Path, port: u16, node: u16, db: &TestDb, seata_extra: &str) -> ServerProcess {
        let settings = db.settings();
        let db_type = match db.backend {
            Backend::MySql => "mysql",
            Backend::Postgres => "postgresql",
        };
        let mut store = format!(
            "  store:\n    mode: db\n    db:\n      db-type: {db_type}\n      url: \"{}\"\n      create-missing-tables: true\n      min-conn: 1\n      max-conn: 8\n",
            db.jdbc_url()
        );
        if let Some(user) = &settings.user {
            store.push_str(&format!("      user: \"{user}\"\n"));
        }
        if let Some(password) = &settings.password {
            store.push_str(&format!("      password: \"{}\"\n", password.expose()));
        }
        Self::spawn_with(dir, port, &["-n", &node.to_string()], &format!("{seata_extra}{store}"))
    }

    /// Starts the binary with `args` added to the command line and `seata` (YAML lines indented
    /// under `seata:`, the store included) as the rest of the configuration.
    fn spawn_with(dir: &Path, port: u16, args: &[&str], seata: &str) -> ServerProcess {
        let conf = dir.join("application.yml");
        let text = format!("server:\n  port: {}\nseata:\n  metrics:\n    enabled: false\n{seata}", free_port());
        std::fs::write(&conf, text).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_seata-server"))
            .args(["--config", conf.to_str().unwrap(), "-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        ServerProcess(Some(child))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
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
