//! The schedule of the recovery jobs (TC-BEHAVIOR §5.1).
//!
//! What a round does lives in the coordinator ([`Coordinator::recovery_round`]: timeouts, async
//! commit, commit and rollback retries, adoption of abandoned sessions); this module only decides
//! when rounds and the undo-log broadcast run, and stops them at shutdown.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::coordinator::Coordinator;

/// Seata sends the first UndoLogDelete three minutes after start.
const UNDO_LOG_FIRST_DELAY: Duration = Duration::from_secs(180);

/// Runs the jobs until `stop` is cancelled: a recovery round every recovery period, the undo-log
/// delete broadcast after three minutes and then every delete period.
pub async fn run(coordinator: Coordinator, stop: CancellationToken) {
    let cfg = coordinator.config();
    let mut scan = tokio::time::interval(cfg.recovery_period.max(Duration::from_millis(1)));
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let first_undo = tokio::time::Instant::now() + UNDO_LOG_FIRST_DELAY;
    let mut undo = tokio::time::interval_at(first_undo, cfg.undo_log_delete_period.max(Duration::from_secs(1)));
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = scan.tick() => { coordinator.recovery_round().await; }
            _ = undo.tick() => { coordinator.undo_log_delete(); }
        }
    }
}
