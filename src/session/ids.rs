//! Transaction and branch ids: Seata's snowflake layout (`common/util/IdWorker.java`), and XIDs.
//!
//! ```text
//! bit 63 = 0 | bits 62..53 worker id (0..1023) | bits 52..12 ms since 2020-05-02T16:00Z | bits 11..0 sequence
//! ```
//!
//! As in Seata, "timestamp·4096 + sequence" is one counter that starts at the current time and
//! is incremented per id, so ids are unique and increasing within a process even when more than
//! 4 096 are drawn in one millisecond, and a restart starts past every id drawn before (unless the
//! previous run drew ids faster than 4 096 per millisecond for a long time). The worker id keeps
//! nodes apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seata's id epoch: 2020-05-02T16:00:00Z in epoch milliseconds.
const EPOCH_MS: u64 = 1_588_435_200_000;
const LOW_BITS: u32 = 53;
const LOW_MASK: u64 = (1 << LOW_BITS) - 1;

/// A process-wide id generator for one worker id.
#[derive(Debug)]
pub struct IdGenerator {
    worker: u64,
    counter: AtomicU64,
}

impl IdGenerator {
    /// A generator for `worker_id` (only its low 10 bits are used).
    pub fn new(worker_id: u16) -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let since = u64::try_from(now).unwrap_or(u64::MAX).saturating_sub(EPOCH_MS);
        IdGenerator { worker: u64::from(worker_id & 0x3ff), counter: AtomicU64::new((since << 12) & LOW_MASK) }
    }

    /// The next id: positive and unique for this worker.
    pub fn next_id(&self) -> i64 {
        let low = self.counter.fetch_add(1, Ordering::Relaxed).wrapping_add(1) & LOW_MASK;
        // 10 worker bits above 53 low bits: bit 63 stays 0, so the value fits an i64.
        i64::try_from((self.worker << LOW_BITS) | low).unwrap_or(i64::MAX)
    }
}

/// `ip:port:transactionId`, the XID format clients parse (`XID.java`).
pub fn xid_of(host: &str, port: u16, transaction_id: i64) -> String {
    use std::fmt::Write as _;
    // Sized once: `format!` grows the string several times for these ~35 bytes.
    let mut xid = String::with_capacity(host.len() + 27);
    xid.push_str(host);
    let _ = write!(xid, ":{port}:{transaction_id}");
    xid
}

/// The transaction id of an XID: the text after its last `:` (`XID.getTransactionId`).
pub fn transaction_id_of(xid: &str) -> Option<i64> {
    xid.rsplit_once(':').and_then(|(_, id)| id.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_increasing_and_carry_the_worker() {
        let g = IdGenerator::new(1023);
        let a = g.next_id();
        let b = g.next_id();
        assert!(b > a && a > 0);
        assert_eq!(a >> 53, 1023);
        let h = IdGenerator::new(5);
        assert_ne!(h.next_id() >> 53, g.next_id() >> 53);
    }

    #[test]
    fn xids_round_trip() {
        let x = xid_of("192.168.1.10", 8091, 2_612_341_069_705_662_465);
        assert_eq!(x, "192.168.1.10:8091:2612341069705662465");
        assert_eq!(transaction_id_of(&x), Some(2_612_341_069_705_662_465));
        assert_eq!(transaction_id_of("not-an-xid"), None);
    }
}
