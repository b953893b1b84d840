//! `seata-bench`: a load generator that plays Seata TMs and RMs over real TCP, and the loopback
//! ceiling it is judged against.
//!
//! ```text
//! seata-bench --addr 127.0.0.1:8091 --conns 32 --duration 10s --branches 2 --mode at
//! seata-bench echo --conns 32 --duration 10s            # in-process echo server
//! seata-bench echo-server --addr 127.0.0.1:9000         # or as its own process
//! seata-bench db-probe --url mysql://root@127.0.0.1:3306/seata_bench --shape seata|batched
//! bench/run.sh                                          # everything, into docs/PERFORMANCE.md
//! bench/run-db.sh                                       # db mode against the database's ceiling
//! ```
//!
//! * [`workload`]: the transaction loop (begin, N branch registers, commit or rollback; the RM
//!   answers phase two) and what each latency figure measures.
//! * [`echo`]: the loopback request/response ceiling with the same client and frames.
//! * [`dbprobe`]: the database's ceiling for db mode's rows, written as seata-server writes them
//!   or group-committed.
//! * [`hist`]: bounded-memory latency histograms; [`proc`]: CPU and system calls from `/proc`;
//!   [`report`]: the table and the JSON line.
//!
//! The binary (`src/bin/seata-bench.rs`) only parses flags and prints; `tests/bench_smoke.rs`
//! runs the same code against an in-process node.
//!
//! Results (`bench/run.sh`, 2026-11-22, 2 vCPU Xeon VM shared with other work, load 1.9–2.2,
//! client and server on the same machine, 32 connections, file mode): echo ceiling 169 000 round
//! trips/s; AT with 2 branches 2 350 tx/s, p99 46 ms; protocol only 2 800 tx/s; TCC with 2
//! branches 1 400 tx/s; idle RSS 8.6 MB; start-up 26 ms. Figures swing by a factor of two with the
//! machine's load; the full tables, the targets and where the time goes are in
//! `docs/PERFORMANCE.md`.

pub mod dbprobe;
pub mod echo;
pub mod hist;
pub mod proc;
pub mod report;
pub mod workload;

pub use report::Report;
pub use workload::{run, Options, TxMode};

/// Why a run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Bad option values.
    #[error("{0}")]
    Options(String),
    /// Connecting or registering failed.
    #[error("client: {0}")]
    Client(#[from] crate::client::ClientError),
    /// Socket setup failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The database of `db-probe` could not be used.
    #[error("database: {0}")]
    Db(String),
    /// A worker task panicked or was cancelled.
    #[error("worker task: {0}")]
    Task(String),
}
