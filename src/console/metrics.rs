//! Prometheus metrics in the text exposition format, written by hand (no registry crate).
//!
//! Two kinds of series (docs/CONSOLE.md has the full list):
//!
//! * Seata's own `seata_transaction{role="tc",meter,status,applicationId,group[,statistic]}`
//!   (TC-BEHAVIOR §9.3), so existing Seata dashboards keep working: the `active` counter, the
//!   `committed`/`rollbacked` counters, the summaries (`count`, `total`, `tps`) and timers (`count`,
//!   `total`, `max`, `average`, in ms) of committed, rolled back and failed transactions, reset at
//!   every scrape as Seata's "compact" registry does (each endpoint has its own window, so the
//!   console port and the exporter port do not steal each other's samples), and `AfterCommitted` /
//!   `AfterRollbacked` counters of sessions ended in the store.
//! * Ours, `seata_tc_*`: request latency per message type, sessions by status, row locks held,
//!   store writes (batches, sizes, latency), connected TMs and RMs, phase-two retries.
//!
//! The hooks ([`Metrics::observe_request`], [`Metrics::observe_begin`],
//! [`Metrics::observe_global_end`], [`Metrics::instrument_store`]) cost a few atomic operations;
//! everything else is read from the coordinator, the transport and the store at scrape time.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use seata_protocol::message::{type_code, GlobalBeginResponse, GlobalEndResponse};
use seata_protocol::GlobalStatus;

use crate::coordinator::{ClientInfo, Coordinator};
use crate::store::{SessionStore, StoreError, StoreOp, StoredSession, WriteStats};
use crate::transport::Transport;

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 15] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Most (applicationId, group) label pairs kept; more are counted under `other`.
const MAX_LABEL_SETS: usize = 1000;

/// Most begin times kept for the timers (older ones are dropped first).
const MAX_BEGINS: usize = 200_000;

/// The message types with their own latency series; every other code is `Other`.
const MESSAGE_TYPES: [(i16, &str); 14] = [
    (type_code::GLOBAL_BEGIN, "GlobalBegin"),
    (type_code::BRANCH_COMMIT, "BranchCommit"),
    (type_code::BRANCH_ROLLBACK, "BranchRollback"),
    (type_code::GLOBAL_COMMIT, "GlobalCommit"),
    (type_code::GLOBAL_ROLLBACK, "GlobalRollback"),
    (type_code::BRANCH_REGISTER, "BranchRegister"),
    (type_code::BRANCH_STATUS_REPORT, "BranchReport"),
    (type_code::GLOBAL_STATUS, "GlobalStatus"),
    (type_code::GLOBAL_REPORT, "GlobalReport"),
    (type_code::GLOBAL_LOCK_QUERY, "GlobalLockQuery"),
    (type_code::SEATA_MERGE, "Merged"),
    (type_code::REG_CLT, "RegisterTM"),
    (type_code::REG_RM, "RegisterRM"),
    (type_code::HEARTBEAT_MSG, "Heartbeat"),
];

/// Which endpoint scrapes: each has its own window for Seata's reset-at-scrape summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scraper {
    /// `/metrics` on the console port.
    Console,
    /// The exporter on `seata.metrics.exporter-prometheus-port`.
    Exporter,
}

/// A cumulative latency histogram.
#[derive(Debug, Default)]
struct Histogram {
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

/// (status, applicationId, group) of a `seata_transaction` series.
type Key = (&'static str, String, String);

#[derive(Debug, Default, Clone, Copy)]
struct Timer {
    count: u64,
    total_ms: u64,
    max_ms: u64,
}

#[derive(Debug)]
struct Window {
    since: Instant,
    summaries: HashMap<Key, u64>,
    timers: HashMap<Key, Timer>,
}

impl Window {
    fn new() -> Self {
        Window { since: Instant::now(), summaries: HashMap::new(), timers: HashMap::new() }
    }
}

#[derive(Debug)]
struct TxMeters {
    counters: HashMap<Key, u64>,
    windows: [Window; 2],
    label_sets: HashMap<(String, String), ()>,
}

/// The metrics registry: latency histograms and Seata's transaction meters. Cheap to share
/// (`Arc`); every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    requests: Vec<Histogram>,
    store_writes: Histogram,
    tx: Mutex<TxMeters>,
    begins: crate::fasthash::DashMap<String, Instant>,
}

fn message_index(msg_type: i16) -> usize {
    MESSAGE_TYPES.iter().position(|(c, _)| *c == msg_type).unwrap_or(MESSAGE_TYPES.len())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One `seata_transaction` sample.
fn series(
    meter: &str,
    status: &str,
    app_group: Option<(&str, &str)>,
    statistic: Option<&str>,
    value: impl std::fmt::Display,
) -> String {
    let mut l = format!("seata_transaction{{role=\"tc\",meter=\"{meter}\",status=\"{status}\"");
    if let Some((app, group)) = app_group {
        let _ = write!(l, ",applicationId=\"{}\",group=\"{}\"", esc(app), esc(group));
    }
    if let Some(st) = statistic {
        let _ = write!(l, ",statistic=\"{st}\"");
    }
    let _ = write!(l, "}} {value}");
    l
}

/// Escapes a label value (backslash, quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics {
            started: Instant::now(),
            requests: (0..=MESSAGE_TYPES.len()).map(|_| Histogram::default()).collect(),
            store_writes: Histogram::default(),
            tx: Mutex::new(TxMeters {
                counters: HashMap::new(),
                windows: [Window::new(), Window::new()],
                label_sets: HashMap::new(),
            }),
            begins: crate::fasthash::dashmap(),
        })
    }

    fn tx(&self) -> MutexGuard<'_, TxMeters> {
        self.tx.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records how long the TC took to answer one request of body type `msg_type` (a
    /// `seata_protocol::message::type_code`), from the decoded frame to the answer handed to the
    /// writer. Also used for the TC's own phase-two requests (BranchCommit/BranchRollback, from
    /// send to answer).
    pub fn observe_request(&self, msg_type: i16, dur: Duration) {
        self.requests[message_index(msg_type)].observe(dur);
    }

    /// Records a GlobalBegin answer (for the transaction timers).
    pub fn observe_begin(&self, _client: &ClientInfo, resp: &GlobalBeginResponse) {
        if !resp.result.is_success() || resp.xid.is_empty() {
            return;
        }
        if self.begins.len() >= MAX_BEGINS {
            let cutoff = Instant::now().checked_sub(Duration::from_secs(600)).unwrap_or(self.started);
            self.begins.retain(|_, t| *t > cutoff);
            if self.begins.len() >= MAX_BEGINS {
                return;
            }
        }
        self.begins.insert(resp.xid.clone(), Instant::now());
    }

    /// Records the answer to a TM's GlobalCommit or GlobalRollback of `xid`: Seata's
    /// `committed` / `rollbacked` / `failed` / `2phaseTimeout` meters count the outcome the TM
    /// is told (a commit answered Committed includes AT commits finished in the background).
    pub fn observe_global_end(&self, client: &ClientInfo, xid: &str, resp: &GlobalEndResponse) {
        let status = match resp.global_status {
            GlobalStatus::Committed => "committed",
            GlobalStatus::Rollbacked | GlobalStatus::TimeoutRollbacked => "rollbacked",
            GlobalStatus::CommitFailed | GlobalStatus::RollbackFailed => "failed",
            GlobalStatus::TimeoutRollbackFailed | GlobalStatus::CommitRetryTimeout => "2phaseTimeout",
            _ => return,
        };
        let took = self.begins.remove(xid).map(|(_, t)| t.elapsed());
        let mut tx = self.tx();
        let pair = (client.application_id.clone(), client.transaction_service_group.clone());
        let (app, group) = if tx.label_sets.contains_key(&pair) || tx.label_sets.len() < MAX_LABEL_SETS {
            tx.label_sets.insert(pair.clone(), ());
            pair
        } else {
            ("other".to_owned(), "other".to_owned())
        };
        let key: Key = (status, app, group);
        if status == "committed" || status == "rollbacked" {
            *tx.counters.entry(key.clone()).or_default() += 1;
        }
        for w in tx.windows.iter_mut() {
            *w.summaries.entry(key.clone()).or_default() += 1;
            if let (Some(took), true) = (took, status != "2phaseTimeout") {
                let t = w.timers.entry(key.clone()).or_default();
                let ms = millis(took);
                t.count += 1;
                t.total_ms = t.total_ms.saturating_add(ms);
                t.max_ms = t.max_ms.max(ms);
            }
        }
    }

    /// Wraps a store so that the latency of every acknowledged write (queueing plus the batch's
    /// durable commit, what a request waits for) is recorded.
    pub fn instrument_store(self: &Arc<Self>, store: Arc<dyn SessionStore>) -> Arc<dyn SessionStore> {
        Arc::new(TimedStore { inner: store, metrics: Arc::clone(self) })
    }

    /// The exposition text: Seata's meters and ours.
    pub async fn render(&self, coordinator: &Coordinator, transport: &Transport, scraper: Scraper) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_seata(&mut out, coordinator, scraper).await;
        self.render_ours(&mut out, coordinator, transport);
        out
    }

    async fn render_seata(&self, out: &mut String, coordinator: &Coordinator, scraper: Scraper) {
        // Active: open sessions (not ended), by the TM's application and group.
        let mut active: HashMap<(String, String), u64> = HashMap::new();
        for entry in coordinator.sessions() {
            let status = entry.status();
            if status.is_final() || status == GlobalStatus::Deleting {
                continue;
            }
            let labels = match tokio::time::timeout(Duration::from_millis(50), entry.lock()).await {
                Ok(s) => (s.global.application_id.clone(), s.global.transaction_service_group.clone()),
                Err(_) => (String::new(), String::new()),
            };
            *active.entry(labels).or_default() += 1;
        }
        // Begin times of sessions that ended without a TM answer (timeouts) are dropped here.
        self.begins.retain(|xid, _| coordinator.session(xid).is_some());
        let _ = writeln!(
            out,
            "# HELP seata_transaction Seata TC transaction meters (role tc); summaries and timers cover the time \
             since this endpoint's previous scrape."
        );
        let _ = writeln!(out, "# TYPE seata_transaction untyped");
        let mut lines = Vec::new();
        for ((app, group), n) in &active {
            lines.push(series("counter", "active", Some((app, group)), None, n));
        }
        let (counters, window) = {
            let mut tx = self.tx();
            let idx = match scraper {
                Scraper::Console => 0,
                Scraper::Exporter => 1,
            };
            let window = std::mem::replace(&mut tx.windows[idx], Window::new());
            (tx.counters.clone(), window)
        };
        for ((status, app, group), n) in &counters {
            lines.push(series("counter", status, Some((app, group)), None, n));
        }
        let stats = coordinator.stats();
        lines.push(series("counter", "AfterCommitted", None, None, stats.committed));
        lines.push(series("counter", "AfterRollbacked", None, None, stats.rollbacked));
        let secs = window.since.elapsed().as_secs_f64().max(0.001);
        for ((status, app, group), n) in &window.summaries {
            let labels = Some((app.as_str(), group.as_str()));
            lines.push(series("summary", status, labels, Some("count"), n));
            lines.push(series("summary", status, labels, Some("total"), n));
            lines.push(series("summary", status, labels, Some("tps"), *n as f64 / secs));
        }
        for ((status, app, group), t) in &window.timers {
            let labels = Some((app.as_str(), group.as_str()));
            let avg = if t.count == 0 { 0.0 } else { t.total_ms as f64 / t.count as f64 };
            lines.push(series("timer", status, labels, Some("count"), t.count));
            lines.push(series("timer", status, labels, Some("total"), t.total_ms));
            lines.push(series("timer", status, labels, Some("max"), t.max_ms));
            lines.push(series("timer", status, labels, Some("average"), avg));
        }
        lines.sort();
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }

    fn render_ours(&self, out: &mut String, coordinator: &Coordinator, transport: &Transport) {
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
        };
        family(out, "seata_tc_request_duration_seconds", "histogram", "Time to answer a request, by message type.");
        for (i, h) in self.requests.iter().enumerate() {
            if h.count.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let name = MESSAGE_TYPES.get(i).map_or("Other", |(_, n)| n);
            h.render(out, "seata_tc_request_duration_seconds", &format!("message=\"{name}\""));
        }

        let mut by_status: HashMap<GlobalStatus, u64> = HashMap::new();
        for entry in coordinator.sessions() {
            *by_status.entry(entry.status()).or_default() += 1;
        }
        family(out, "seata_tc_sessions", "gauge", "Global sessions held by the TC, by status.");
        for status in GlobalStatus::ALL {
            if matches!(status, GlobalStatus::Finished | GlobalStatus::UnKnown) {
                continue;
            }
            let n = by_status.get(status).copied().unwrap_or(0);
            let _ = writeln!(out, "seata_tc_sessions{{status=\"{status}\"}} {n}");
        }

        if let Some(n) = coordinator.locks().count() {
            family(out, "seata_tc_locks_held", "gauge", "AT global row locks held.");
            let _ = writeln!(out, "seata_tc_locks_held {n}");
        }

        if let Some(w) = coordinator.store().write_stats() {
            family(out, "seata_tc_store_batches_total", "counter", "Store write batches (one durable commit each).");
            let _ = writeln!(out, "seata_tc_store_batches_total {}", w.batches);
            family(out, "seata_tc_store_write_requests_total", "counter", "Write requests handed to the store.");
            let _ = writeln!(out, "seata_tc_store_write_requests_total {}", w.requests);
            family(out, "seata_tc_store_failed_batches_total", "counter", "Store batches whose transaction failed.");
            let _ = writeln!(out, "seata_tc_store_failed_batches_total {}", w.failed_batches);
            family(out, "seata_tc_store_last_batch_size", "gauge", "Write requests in the last store batch.");
            let _ = writeln!(out, "seata_tc_store_last_batch_size {}", w.last_batch_size);
            family(out, "seata_tc_store_max_batch_size", "gauge", "Write requests in the largest store batch so far.");
            let _ = writeln!(out, "seata_tc_store_max_batch_size {}", w.max_batch_size);
        }
        if self.store_writes.count.load(Ordering::Relaxed) > 0 {
            family(
                out,
                "seata_tc_store_write_duration_seconds",
                "histogram",
                "Time from a write request to its durable commit.",
            );
            self.store_writes.render(out, "seata_tc_store_write_duration_seconds", "");
        }

        let (tms, rms) = transport.channels().role_counts();
        family(out, "seata_tc_connections", "gauge", "Registered client connections, by role.");
        let _ = writeln!(out, "seata_tc_connections{{role=\"tm\"}} {tms}");
        let _ = writeln!(out, "seata_tc_connections{{role=\"rm\"}} {rms}");
        family(out, "seata_tc_connections_open", "gauge", "Open client connections, registered or not.");
        let _ = writeln!(out, "seata_tc_connections_open {}", transport.channels().len());
        family(out, "seata_tc_phase2_in_flight", "gauge", "Phase-two requests waiting for an RM's answer.");
        let _ = writeln!(out, "seata_tc_phase2_in_flight {}", transport.pending_requests());

        let stats = coordinator.stats();
        family(
            out,
            "seata_tc_phase2_retries_total",
            "counter",
            "Phase-two rounds that did not finish and were rescheduled.",
        );
        let _ = writeln!(out, "seata_tc_phase2_retries_total {}", stats.retries);
        family(
            out,
            "seata_tc_transactions_total",
            "counter",
            "Global transactions begun and ended since start, by outcome.",
        );
        let _ = writeln!(out, "seata_tc_transactions_total{{outcome=\"began\"}} {}", stats.began);
        let _ = writeln!(out, "seata_tc_transactions_total{{outcome=\"committed\"}} {}", stats.committed);
        let _ = writeln!(out, "seata_tc_transactions_total{{outcome=\"rollbacked\"}} {}", stats.rollbacked);
        let _ = writeln!(out, "seata_tc_transactions_total{{outcome=\"failed\"}} {}", stats.failed);

        family(out, "seata_tc_uptime_seconds", "gauge", "Seconds since the metrics registry was created.");
        let _ = writeln!(out, "seata_tc_uptime_seconds {}", self.started.elapsed().as_secs());
        family(out, "seata_tc_build_info", "gauge", "Build information.");
        let _ = writeln!(out, "seata_tc_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    }
}

/// A store that times `apply`.
struct TimedStore {
    inner: Arc<dyn SessionStore>,
    metrics: Arc<Metrics>,
}

#[async_trait::async_trait]
impl SessionStore for TimedStore {
    async fn apply(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.apply(ops).await;
        self.metrics.store_writes.observe(t.elapsed());
        r
    }
    // Not timed: it returns before the write, so its time is not a write latency.
    async fn apply_ordered(&self, ops: Vec<StoreOp>) -> Result<crate::store::PendingWrite, StoreError> {
        self.inner.apply_ordered(ops).await
    }
    async fn load_all(&self) -> Result<Vec<StoredSession>, StoreError> {
        self.inner.load_all().await
    }
    async fn load(&self, xid: &str) -> Result<Option<StoredSession>, StoreError> {
        self.inner.load(xid).await
    }
    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
    fn write_stats(&self) -> Option<WriteStats> {
        self.inner.write_stats()
    }
    // Everything else is forwarded too: a default method here would silently change what the
    // wrapped store is (a shared database would look like a single-node store).
    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }
    fn holds_row_locks(&self) -> bool {
        self.inner.holds_row_locks()
    }
    async fn scan_due(
        &self,
        now_ms: i64,
        grace_ms: i64,
        dead_ms: i64,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<crate::store::GlobalRecord>, StoreError> {
        self.inner.scan_due(now_ms, grace_ms, dead_ms, limit, offset).await
    }
    async fn try_claim(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.inner.try_claim(key, owner, ttl).await
    }
    async fn release_claim(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        self.inner.release_claim(key, owner).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(20));
        let mut out = String::new();
        h.render(&mut out, "x", "m=\"a\"");
        assert!(out.contains("x_bucket{m=\"a\",le=\"0.0001\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{m=\"a\",le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{m=\"a\",le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{m=\"a\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count{m=\"a\"} 3\n"), "{out}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn unknown_message_types_share_one_series() {
        assert_eq!(message_index(type_code::GLOBAL_BEGIN), 0);
        assert_eq!(message_index(9999), MESSAGE_TYPES.len());
    }
}
