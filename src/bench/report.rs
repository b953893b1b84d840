//! The result of a run: one JSON line for machines, a table for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::hist::Summary;
use super::proc::Usage;

/// Everything a run measured. Latencies are in microseconds; `latency_us` maps an RPC kind
/// (`tx`, `begin`, `register`, `commit`, `rollback`, `branch_commit`, ...) to its summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// `at`, `tcc`, `protocol` (no branches), `echo` or `open`.
    pub scenario: String,
    /// Worker connections (each a TM plus an RM connection; one connection for `echo`).
    pub conns: usize,
    /// Branches per global transaction.
    pub branches: usize,
    /// `closed loop` (each worker waits for its previous transaction) or `open loop at R tx/s`.
    pub load: String,
    /// Share of transactions rolled back on purpose, percent.
    pub rollback_percent: f64,
    /// Size of the hot key space, when transactions were made to conflict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hot_keys: Option<u64>,
    /// Warm-up before the measured window, seconds.
    pub warmup_s: f64,
    /// The measured window, seconds.
    pub window_s: f64,
    /// Global transactions (or, for `echo`, round trips) answered inside the window.
    pub completed: u64,
    /// Global transactions per second (absent for `echo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_per_s: Option<f64>,
    /// Round trips per second (`echo` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rt_per_s: Option<f64>,
    /// Whole-transaction (or round-trip) latency percentiles, copied flat for scripts.
    pub p50_us: u64,
    /// See `p50_us`.
    pub p99_us: u64,
    /// See `p50_us`.
    pub p999_us: u64,
    /// Transactions committed (answer Committed) inside the window.
    pub committed: u64,
    /// Transactions rolled back on purpose inside the window.
    pub rolled_back: u64,
    /// Transactions given up after lock conflicts (rolled back) inside the window.
    pub aborted: u64,
    /// Branch registrations refused with LockKeyConflict (each retry counts), whole run.
    pub conflicts: u64,
    /// Errors by exception code or client failure, whole run (conflicts not included).
    pub errors: BTreeMap<String, u64>,
    /// Sum of `errors`.
    pub errors_total: u64,
    /// Phase-two requests for a transaction the RM did not expect.
    pub phase2_unmatched: u64,
    /// Phase-two requests repeated for a branch that already had its answer.
    pub phase2_duplicates: u64,
    /// Branches whose phase two had not arrived when the run ended.
    pub phase2_missing: u64,
    /// Latency summaries by kind.
    pub latency_us: BTreeMap<String, Summary>,
    /// CPU and system calls of this process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<Usage>,
    /// CPU and system calls of the server (`--server-pid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<Usage>,
    /// Load average (1, 5, 15 min) when the window ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_avg: Option<[f64; 3]>,
    /// `db-probe`: SQL statements per transaction (`BEGIN` and `COMMIT` not counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statements_per_tx: Option<f64>,
    /// `db-probe`: commits per transaction (write statements in autocommit mode and `COMMIT`s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commits_per_tx: Option<f64>,
    /// `db-probe`: round trips to the database per transaction (statements, `BEGIN`, `COMMIT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round_trips_per_tx: Option<f64>,
    /// Request frame sizes in bytes (`echo`: the frames it cycles through).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub frame_bytes: Vec<usize>,
}

/// Order of the rows in the table; other kinds follow alphabetically.
const ORDER: [&str; 11] = [
    "tx",
    "tx_complete",
    "rt",
    "begin",
    "register",
    "commit",
    "rollback",
    "branch_commit",
    "commit_to_branches",
    "branch_rollback",
    "open",
];

impl Report {
    /// The report as one JSON line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as a table.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let what = match self.scenario.as_str() {
            "echo" => "echo (loopback ceiling)".to_string(),
            "protocol" => "protocol only (begin + commit)".to_string(),
            s => format!("{s}, {} branches", self.branches),
        };
        let _ = writeln!(
            o,
            "seata-bench: {what}, {} conns, {}, {:.1} s measured after {:.1} s warm-up",
            self.conns, self.load, self.window_s, self.warmup_s
        );
        if let Some(r) = self.rt_per_s {
            let _ = writeln!(o, "round trips/s {r:.0}   frames {:?} bytes", self.frame_bytes);
        }
        if let Some(t) = self.tx_per_s {
            let _ = writeln!(
                o,
                "tx/s {t:.0}   committed {}   rolled back {}   aborted {}   conflicts {}   errors {}",
                self.committed, self.rolled_back, self.aborted, self.conflicts, self.errors_total
            );
        }
        if let (Some(s), Some(c), Some(r)) = (self.statements_per_tx, self.commits_per_tx, self.round_trips_per_tx) {
            let _ = writeln!(o, "per transaction: {s:.2} statements, {c:.2} commits, {r:.2} round trips");
        }
        if !self.errors.is_empty() {
            let _ = writeln!(o, "errors: {:?}", self.errors);
        }
        if self.phase2_unmatched + self.phase2_duplicates + self.phase2_missing > 0 {
            let _ = writeln!(
                o,
                "phase two: {} unexpected, {} repeated, {} never arrived",
                self.phase2_unmatched, self.phase2_duplicates, self.phase2_missing
            );
        }
        let _ = writeln!(
            o,
            "{:<20}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
            "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        let ms = |us: u64| us as f64 / 1000.0;
        let mut kinds: Vec<&String> = self.latency_us.keys().collect();
        kinds.sort_by_key(|k| (ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()), (*k).clone()));
        for k in kinds {
            let s = &self.latency_us[k];
            let _ = writeln!(
                o,
                "{k:<20}{:>9}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}",
                s.count,
                ms(s.p50_us),
                ms(s.p90_us),
                ms(s.p99_us),
                ms(s.p999_us),
                ms(s.max_us)
            );
        }
        for (who, u) in [("client", &self.client), ("server", &self.server)] {
            if let Some(u) = u {
                let _ = writeln!(
                    o,
                    "{who} CPU {:.2} cores, {:.0} µs/op, {:.1} syscalls/op, {:.1} context switches/op",
                    u.cores, u.cpu_us_per_op, u.syscalls_per_op, u.switches_per_op
                );
            }
        }
        if let Some([a, b, c]) = self.load_avg {
            let _ = writeln!(o, "load average {a:.2} {b:.2} {c:.2}");
        }
        o
    }
}
