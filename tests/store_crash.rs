//! "Acknowledged means durable", tested with a real crash: a child process writes sessions as
//! fast as it can and prints every acknowledged one; it is killed with SIGKILL mid-stream, and
//! every session it reported must be in the store afterwards.
//!
//! The child is this test binary run again with [`CHILD_DIR`] set: the test
//! `child_writes_until_killed` does nothing unless that variable names a store directory.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use seata_protocol::GlobalStatus;
use seata_server::store::contract::{sample_branch, sample_global};
use seata_server::store::{FileStore, FileStoreOptions, SessionStore, StoreOp};

/// Environment variable that turns `child_writes_until_killed` into the writing child.
const CHILD_DIR: &str = "SEATA_STORE_CRASH_CHILD_DIR";
/// Writers in the child.
const WRITERS: u64 = 16;
/// Acknowledgements the parent waits for before killing the child.
const KILL_AFTER: usize = 2_000;
/// The child gives up on its own after this, should the parent be gone.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().expect("runtime")
}

fn xid(writer: u64, n: u64) -> String {
    format!("127.0.0.1:8091:{writer}{n:09}")
}

fn branch_id(writer: u64, n: u64) -> i64 {
    i64::try_from(writer * 1_000_000_000 + n).expect("branch id")
}

/// Each writer inserts a session (global + branch in one request), prints `ADD <xid>`, then
/// moves every other session to Committing and prints `SET <xid>`.
async fn write_until_killed(dir: &Path) {
    let store = Arc::new(FileStore::open(dir, FileStoreOptions::default()).await.expect("open"));
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut n = 0;
                while started.elapsed() < CHILD_LIFETIME {
                    let xid = xid(writer, n);
                    let ops = vec![
                        StoreOp::InsertGlobal(sample_global(&xid)),
                        StoreOp::InsertBranch(sample_branch(&xid, branch_id(writer, n))),
                    ];
                    store.apply(ops).await.expect("apply");
                    ack("ADD", &xid);
                    if n % 2 == 0 {
                        let ops = vec![StoreOp::UpdateGlobalStatus {
                            xid: xid.clone(),
                            expected: Some(GlobalStatus::Begin),
                            status: GlobalStatus::Committing,
                        }];
                        store.apply(ops).await.expect("apply");
                        ack("SET", &xid);
                    }
                    n += 1;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
}

fn ack(what: &str, xid: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{what} {xid}").expect("stdout");
    out.flush().expect("stdout");
}

#[test]
fn child_writes_until_killed() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        runtime().block_on(write_until_killed(Path::new(&dir)));
    }
}

#[cfg(unix)]
#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["child_writes_until_killed", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut added = Vec::new();
    let mut set = Vec::new();
    let mut killed = false;
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).expect("read") == 0 {
            break;
        }
        // A line cut short by the kill was never completely acknowledged.
        let Some(complete) = line.strip_suffix('\n') else {
            break;
        };
        if let Some(xid) = complete.strip_prefix("ADD ") {
            added.push(xid.to_owned());
        } else if let Some(xid) = complete.strip_prefix("SET ") {
            set.push(xid.to_owned());
        }
        if !killed && added.len() >= KILL_AFTER {
            // std's kill sends SIGKILL on Unix: no destructor, no flush, no close.
            child.kill().expect("kill");
            killed = true;
        }
    }
    let status = child.wait().expect("wait");
    assert!(killed, "the child ended by itself: {status}");
    assert!(added.len() >= KILL_AFTER);

    runtime().block_on(async {
        let store = FileStore::open(dir.path(), FileStoreOptions::default()).await.expect("reopen");
        let stored = store.load_all().await.expect("load_all");
        let by_xid: std::collections::HashMap<&str, _> = stored.iter().map(|s| (s.global.xid.as_str(), s)).collect();
        for xid in &added {
            assert!(by_xid.contains_key(xid.as_str()), "acknowledged {xid} lost");
        }
        for xid in &set {
            let session = by_xid.get(xid.as_str()).expect("stored");
            assert_eq!(session.global.status, GlobalStatus::Committing, "{xid}");
        }
        // Requests are atomic: no global without its branch survived the crash.
        for session in &stored {
            assert_eq!(session.branches.len(), 1, "{}", session.global.xid);
        }
        eprintln!(
            "killed after {} acknowledged inserts and {} updates; {} sessions stored",
            added.len(),
            set.len(),
            stored.len()
        );
        store.close().await.expect("close");
    });
}
