//! Several nodes on one store (db mode): memory is then a cache, the store is the arbiter.
//!
//! * A request for an XID this node does not hold loads the session from the store, so any node
//!   answers for any transaction.
//! * Every write is a compare-and-set (status) or conditional (branch insert); when the store says
//!   the cached state is stale (`Conflict`/`NotFound`) the session is re-read and the request
//!   decided again, once.
//! * Recovery work is claimed per transaction (a `distributed_lock` row keyed by the transaction
//!   id), so it spreads over the nodes instead of running on one; a node that dies leaves its
//!   claims to expire and another node finishes its transactions.

use std::sync::Arc;
use std::time::Duration;

use seata_protocol::GlobalStatus;
use tracing::{debug, warn};

use super::entry::SessionEntry;
use super::{Coordinator, TxError};
use crate::session::GlobalSession;
use crate::store::StoreError;

/// Pages of due sessions one recovery round reads from a shared store at most.
const MAX_SCAN_PAGES: usize = 10;

impl Coordinator {
    /// True when other nodes write the same store.
    pub(crate) fn shared(&self) -> bool {
        self.inner.store.is_shared()
    }

    /// This node's name in claims: `host:port`, cut to the 20 characters Seata's
    /// `distributed_lock.lock_value` holds.
    pub(crate) fn node_name(&self) -> String {
        let mut n = format!("{}:{}", self.inner.cfg.host, self.inner.cfg.port);
        n.truncate(20);
        n
    }

    /// The session of `xid`: from memory, or (shared store) from the store.
    pub(crate) async fn find(&self, xid: &str) -> Result<Option<Arc<SessionEntry>>, TxError> {
        if let Some(e) = self.session(xid) {
            return Ok(Some(e));
        }
        if !self.shared() || xid.is_empty() {
            return Ok(None);
        }
        let Some(stored) = self.inner.store.load(xid).await? else { return Ok(None) };
        let entry = Arc::new(SessionEntry::new(GlobalSession::from_stored(stored)));
        let entry = self.inner.sessions.entry(xid.to_owned()).or_insert(entry).value().clone();
        debug!(xid, "session loaded from the shared store");
        Ok(Some(entry))
    }

    /// Re-reads a session from the store after it told us our copy is stale. Returns false (and
    /// forgets the session) when it is gone.
    pub(crate) async fn refresh(&self, entry: &SessionEntry) -> Result<bool, TxError> {
        let fresh = self.inner.store.load(&entry.xid).await?;
        let mut s = entry.lock().await;
        match fresh {
            None => {
                entry.set_status(&mut s, GlobalStatus::Finished);
                s.branches.clear();
                self.forget(&entry.xid);
                Ok(false)
            }
            Some(stored) => {
                let active = s.active && stored.global.status == GlobalStatus::Begin;
                let status = stored.global.status;
                s.global = stored.global;
                s.branches = stored.branches;
                s.active = active;
                entry.set_status(&mut s, status);
                Ok(true)
            }
        }
    }

    /// Whether `e` says our cached copy is stale (and a re-read may help).
    pub(crate) fn is_stale(&self, e: &TxError) -> bool {
        let store_err = match e {
            TxError::Store(s) | TxError::FailedToAddBranch(_, s) => s,
            // Another node may have registered it.
            TxError::BranchNotFound(..) => return self.shared(),
            _ => return false,
        };
        self.shared()
            && matches!(
                store_err,
                StoreError::Conflict { .. } | StoreError::NotFound { .. } | StoreError::BranchesChanged { .. }
            )
    }

    /// Claims the recovery work of one transaction (shared stores; always granted otherwise).
    pub(crate) async fn claim(&self, entry: &SessionEntry) -> bool {
        if !self.shared() {
            return true;
        }
        let key = claim_key(entry);
        let ttl = self.claim_ttl();
        match self.inner.store.try_claim(&key, &self.node_name(), ttl).await {
            Ok(got) => got,
            Err(e) => {
                warn!(xid = %entry.xid, error = %e, "could not claim recovery work");
                false
            }
        }
    }

    /// Gives the claim back.
    pub(crate) async fn unclaim(&self, entry: &SessionEntry) {
        if self.shared() {
            if let Err(e) = self.inner.store.release_claim(&claim_key(entry), &self.node_name()).await {
                debug!(xid = %entry.xid, error = %e, "claim release failed; it expires by itself");
            }
        }
    }

    fn claim_ttl(&self) -> Duration {
        // Long enough for one phase-two round of a couple of branches.
        self.inner.cfg.rpc_timeout.saturating_mul(2)
    }

    /// Loads the sessions a shared store says are due (timed out, retrying, abandoned) that this
    /// node does not hold yet, and re-reads those it holds in another status than the store's,
    /// so the round can claim and drive them.
    pub(crate) async fn adopt_due(&self) {
        if !self.shared() {
            return;
        }
        let now = self.now();
        let dead = i64::try_from(self.inner.cfg.dead_threshold.as_millis()).unwrap_or(i64::MAX);
        // A node drives what it just committed or rolled back itself, without a claim; others
        // adopt such sessions only once that had time to finish.
        let grace = i64::try_from(self.claim_ttl().as_millis()).unwrap_or(i64::MAX);
        let page = self.inner.cfg.query_limit.max(1);
        for n in 0..MAX_SCAN_PAGES {
            let rows = match self.inner.store.scan_due(now, grace, dead, page, n * page).await {
                Ok(rows) => rows,
                Err(e) => {
                    warn!(error = %e, "recovery scan of the shared store failed");
                    return;
                }
            };
            let full = rows.len() == page;
            for g in rows {
                if let Some(entry) = self.session(&g.xid) {
                    // Our copy is stale when another node moved the session on (say, it began
                    // here and was committed on a node that cannot reach the RM): take the
                    // store's view, so this round drives it instead of waiting for its timeout.
                    if entry.status() != g.status && !entry.is_driving() {
                        if let Err(e) = self.refresh(&entry).await {
                            warn!(xid = %g.xid, error = %e, "could not re-read a session another node moved on");
                        }
                    }
                    continue;
                }
                if let Err(e) = self.find(&g.xid).await {
                    warn!(xid = %g.xid, error = %e, "could not load a due session");
                }
            }
            if !full {
                break;
            }
        }
    }
}

/// The transaction id as the `distributed_lock` key (CHAR(20) holds 19 digits).
fn claim_key(entry: &SessionEntry) -> String {
    crate::session::transaction_id_of(&entry.xid)
        .map_or_else(|| entry.xid.chars().take(20).collect(), |t| t.to_string())
}
