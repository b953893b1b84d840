//! `seata-bench`: flags in, report out. The work is in `seata_server::bench`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use seata_server::bench::{self, Options, Report, TxMode};
use tokio::net::TcpListener;

/// Load generator for a Seata transaction coordinator: TMs and RMs over real TCP.
///
/// Without a subcommand it runs transactions against --addr and prints a table and a JSON line
/// (only the JSON line with --json). Progress goes to stderr once a second.
#[derive(Parser, Debug)]
#[command(name = "seata-bench", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Loopback ceiling: the same client and frames against a server that answers at once.
    Echo(EchoArgs),
    /// Serve echo connections (for `seata-bench echo --addr` from another process).
    EchoServer {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9091")]
        addr: String,
    },
    /// The database's ceiling for db mode: writes the rows of AT transactions straight into
    /// Seata's tables, as seata-server does (`--shape seata`) or group-committed (`--shape
    /// batched`). Creates the tables if missing.
    DbProbe(DbProbeArgs),
}

#[derive(Args, Debug)]
struct DbProbeArgs {
    /// The database: mysql://user:pass@host:port/db, postgres://…, or a JDBC URL.
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306/seata_bench")]
    url: String,
    /// seata: one autocommit statement at a time, as seata-server; batched: every worker's
    /// pending step in one transaction of multi-row statements.
    #[arg(long, value_enum, default_value_t = ProbeShape::Seata)]
    shape: ProbeShape,
    /// Workers, one transaction in flight each.
    #[arg(long, default_value_t = 32)]
    conns: usize,
    /// Measured window (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Load before the measured window.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Branches (one row lock each) per transaction.
    #[arg(long, default_value_t = 2)]
    branches: usize,
    /// Batched: writer tasks (one connection each).
    #[arg(long, default_value_t = 1)]
    writers: usize,
    /// Batched: most steps per database transaction.
    #[arg(long, default_value_t = 256)]
    max_batch: usize,
    /// Print only the JSON line.
    #[arg(long)]
    json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum ProbeShape {
    Seata,
    Batched,
}

#[derive(Args, Debug)]
struct Common {
    /// Workers: each one TM and one RM connection (echo: one connection), one request in flight.
    #[arg(long, default_value_t = 32)]
    conns: usize,
    /// Measured window (e.g. 10s, 500ms, 1m; a bare number is seconds).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Load before the measured window.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Branches per global transaction; 0 = protocol only (begin and commit).
    #[arg(long, default_value_t = 2)]
    branches: usize,
    /// Branch type.
    #[arg(long, value_enum, default_value_t = Mode::At)]
    mode: Mode,
    /// How long a call waits for its answer.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    rpc_timeout: Duration,
    /// Also report CPU and system calls of this process (the server) over the window.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print only the JSON line.
    #[arg(long)]
    json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The TC's address; several separated by commas (nodes on one database): the workers are
    /// spread over them, each with its TM and RM on the same node.
    #[arg(long, default_value = "127.0.0.1:8091")]
    addr: String,
    #[command(flatten)]
    common: Common,
    /// Percentage of transactions rolled back instead of committed.
    #[arg(long, default_value_t = 0.0)]
    rollback_percent: f64,
    /// Draw AT primary keys from this many hot keys so transactions conflict (retried like a
    /// Java RM, then rolled back).
    #[arg(long)]
    hot_keys: Option<u64>,
    /// Open loop: start this many global transactions per second in total (latency then counts
    /// from the scheduled start). Default: closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Only open this many global transactions (begin + branches, no commit), then exit.
    #[arg(long)]
    open_only: Option<u64>,
    /// Global transaction timeout sent with GlobalBegin.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    tx_timeout: Duration,
    /// Registrations retried after a lock conflict (Java client.rm.lock.retryTimes).
    #[arg(long, default_value_t = 30)]
    lock_retries: u32,
    /// Pause between those retries (Java client.rm.lock.retryInterval).
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    lock_retry_interval: Duration,
}

#[derive(Args, Debug)]
struct EchoArgs {
    /// An echo server to use (`seata-bench echo-server`); default: one in this process.
    #[arg(long)]
    addr: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Mode {
    At,
    Tcc,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("not a duration: {s:?} (try 10s, 500ms, 1m)"))?;
    Duration::try_from_secs_f64(v * scale).map_err(|e| format!("{s:?}: {e}"))
}

fn options(c: &Common, addr: String) -> Options {
    Options {
        addr,
        conns: c.conns,
        duration: c.duration,
        warmup: c.warmup,
        branches: c.branches,
        mode: match c.mode {
            Mode::At => TxMode::At,
            Mode::Tcc => TxMode::Tcc,
        },
        rpc_timeout: c.rpc_timeout,
        server_pid: c.server_pid,
        progress: !c.quiet,
        ..Options::default()
    }
}

fn print(report: &Report, json: bool) {
    let mut out = std::io::stdout().lock();
    if !json {
        let _ = out.write_all(report.table().as_bytes());
    }
    let _ = writeln!(out, "{}", report.to_json());
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = match &cli.cmd {
        Some(Cmd::Echo(e)) => e.common.threads,
        Some(Cmd::DbProbe(p)) => p.threads,
        _ => cli.run.common.threads,
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("seata-bench: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.cmd {
            Some(Cmd::EchoServer { addr }) => {
                let listener = TcpListener::bind(&addr).await?;
                eprintln!("seata-bench: echo server listening on {}", listener.local_addr()?);
                bench::echo::serve(listener, async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await;
                Ok(None)
            }
            Some(Cmd::DbProbe(p)) => {
                let opts = bench::dbprobe::ProbeOptions {
                    url: p.url,
                    conns: p.conns,
                    duration: p.duration,
                    warmup: p.warmup,
                    branches: p.branches,
                    shape: match p.shape {
                        ProbeShape::Seata => bench::dbprobe::Shape::Seata,
                        ProbeShape::Batched => bench::dbprobe::Shape::Batched,
                    },
                    writers: p.writers,
                    max_batch: p.max_batch,
                    progress: !p.quiet,
                };
                bench::dbprobe::run(opts).await.map(|r| Some((r, p.json)))
            }
            Some(Cmd::Echo(e)) => {
                let external = e.addr.is_some();
                let opts = options(&e.common, e.addr.unwrap_or_default());
                bench::echo::run(opts, external).await.map(|r| Some((r, e.common.json)))
            }
            None => {
                let a = cli.run;
                let mut opts = options(&a.common, a.addr);
                opts.rollback_percent = a.rollback_percent;
                opts.hot_keys = a.hot_keys;
                opts.rate = a.rate;
                opts.open_only = a.open_only;
                opts.tx_timeout = a.tx_timeout;
                opts.lock_retries = a.lock_retries;
                opts.lock_retry_interval = a.lock_retry_interval;
                bench::run(opts).await.map(|r| Some((r, a.common.json)))
            }
        }
    });
    match result {
        Ok(Some((report, json))) => {
            print(&report, json);
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seata-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn flags_parse() {
        Cli::command_for_test().debug_assert();
        let c = Cli::try_parse_from(["seata-bench", "--conns", "4", "--mode", "tcc", "--json"]).unwrap();
        assert!(c.cmd.is_none() && c.run.common.json && c.run.common.conns == 4);
        let c = Cli::try_parse_from(["seata-bench", "echo", "--conns", "8"]).unwrap();
        assert!(matches!(c.cmd, Some(Cmd::Echo(EchoArgs { addr: None, .. }))));
        let c = Cli::try_parse_from(["seata-bench", "db-probe", "--shape", "batched", "--conns", "8"]).unwrap();
        assert!(matches!(c.cmd, Some(Cmd::DbProbe(DbProbeArgs { shape: ProbeShape::Batched, conns: 8, .. }))));
    }

    impl Cli {
        fn command_for_test() -> clap::Command {
            <Cli as clap::CommandFactory>::command()
        }
    }
}
