//! What a process used, from `/proc` (Linux): CPU time, read/write system calls and context
//! switches, sampled before and after the measured window. Elsewhere the samples are empty and
//! the report says so.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`, 100 on every Linux ABI).
const USER_HZ: u64 = 100;

/// Cumulative counters of one process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcSample {
    /// User plus system CPU time of all its threads.
    pub cpu: Duration,
    /// Read-like system calls (`syscr` in `/proc/<pid>/io`).
    pub syscr: u64,
    /// Write-like system calls (`syscw`), fsync not included.
    pub syscw: u64,
    /// Voluntary context switches, summed over live threads.
    pub voluntary_switches: u64,
    /// Involuntary context switches (preemptions), summed over live threads.
    pub involuntary_switches: u64,
}

fn dir(pid: Option<u32>) -> PathBuf {
    match pid {
        Some(p) => PathBuf::from(format!("/proc/{p}")),
        None => PathBuf::from("/proc/self"),
    }
}

/// Samples the process `pid` (this process when `None`); `None` when `/proc` cannot tell.
pub fn sample(pid: Option<u32>) -> Option<ProcSample> {
    let d = dir(pid);
    let stat = std::fs::read_to_string(d.join("stat")).ok()?;
    let cpu = cpu_from_stat(&stat)?;
    let mut s = ProcSample { cpu, ..ProcSample::default() };
    if let Ok(io) = std::fs::read_to_string(d.join("io")) {
        s.syscr = field(&io, "syscr:").unwrap_or(0);
        s.syscw = field(&io, "syscw:").unwrap_or(0);
    }
    if let Ok(tasks) = std::fs::read_dir(d.join("task")) {
        for t in tasks.flatten() {
            if let Ok(st) = std::fs::read_to_string(t.path().join("status")) {
                s.voluntary_switches += field(&st, "voluntary_ctxt_switches:").unwrap_or(0);
                s.involuntary_switches += field(&st, "nonvoluntary_ctxt_switches:").unwrap_or(0);
            }
        }
    }
    Some(s)
}

/// utime + stime from a `/proc/<pid>/stat` line. The command name may hold spaces and
/// parentheses, so fields are counted from the last `)`.
fn cpu_from_stat(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    // After ")": state is field 3, utime field 14, stime field 15.
    let utime: u64 = f.nth(11)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_secs(ticks / USER_HZ) + Duration::from_millis((ticks % USER_HZ) * 1000 / USER_HZ))
}

fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().parse().ok())
}

/// The resident set size of `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let st = std::fs::read_to_string(dir(pid).join("status")).ok()?;
    st.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = s.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// What one process used during the measured window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Usage {
    /// CPU seconds used in the window.
    pub cpu_s: f64,
    /// Cores kept busy on average (`cpu_s` / window).
    pub cores: f64,
    /// CPU microseconds per completed unit (transaction or round trip).
    pub cpu_us_per_op: f64,
    /// Read-like plus write-like system calls per unit.
    pub syscalls_per_op: f64,
    /// Context switches (voluntary + involuntary) per unit.
    pub switches_per_op: f64,
}

impl Usage {
    /// The difference of two samples over `window`, per `ops` units.
    pub fn between(a: &ProcSample, b: &ProcSample, window: Duration, ops: u64) -> Usage {
        let cpu_s = b.cpu.saturating_sub(a.cpu).as_secs_f64();
        let per = |x: u64| if ops == 0 { 0.0 } else { round2(x as f64 / ops as f64) };
        let secs = window.as_secs_f64();
        Usage {
            cpu_s: round2(cpu_s),
            cores: if secs > 0.0 { round2(cpu_s / secs) } else { 0.0 },
            cpu_us_per_op: if ops == 0 { 0.0 } else { round2(cpu_s * 1e6 / ops as f64) },
            syscalls_per_op: per((b.syscr + b.syscw).saturating_sub(a.syscr + a.syscw)),
            switches_per_op: per((b.voluntary_switches + b.involuntary_switches)
                .saturating_sub(a.voluntary_switches + a.involuntary_switches)),
        }
    }
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_a_strange_command_name() {
        let line = "1234 (a) b (c) S 1 2 3 4 5 6 7 8 9 10 250 70 0 0 20 0 4 0 100 0 0";
        assert_eq!(cpu_from_stat(line), Some(Duration::from_millis(3200)));
    }

    #[test]
    fn this_process_can_be_sampled() {
        if cfg!(target_os = "linux") {
            let s = sample(None).expect("/proc/self");
            assert!(s.syscr + s.syscw > 0);
            assert!(rss_kib(None).unwrap_or(0) > 0);
            assert!(load_average().is_some());
        }
    }
}
