//! A store that keeps everything in memory: not durable, for tests. Several coordinators can
//! share one (`shared`), which makes it a stand-in for a database that several TC nodes use: the
//! same compare-and-set rules and the same claim protocol, without a database.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use seata_protocol::{BranchType, GlobalStatus};

use super::{BranchRecord, SessionStore, StoreError, StoreLimits, StoreOp, StoredSession};

#[derive(Debug, Default)]
struct State {
    /// xid → (insertion sequence, session).
    sessions: HashMap<String, (u64, StoredSession)>,
    seq: u64,
    /// claim key → (owner, expiry epoch ms).
    claims: BTreeMap<String, (String, i64)>,
}

/// An in-memory [`SessionStore`]. Each handle from [`MemoryStore::connect`] sees the same data
/// and closes on its own, like one node's connection pool to a shared database.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    closed: AtomicBool,
    shared: bool,
    limits: StoreLimits,
}

fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(i64::MAX)
}

impl MemoryStore {
    /// A store for one node.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// A store that tells the coordinator it is shared with other nodes.
    pub fn shared() -> Self {
        MemoryStore { shared: true, ..MemoryStore::default() }
    }

    /// Another handle on the same data (another node of a cluster).
    pub fn connect(&self) -> MemoryStore {
        MemoryStore {
            state: Arc::clone(&self.state),
            closed: AtomicBool::new(false),
            shared: self.shared,
            limits: self.limits,
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        Ok(self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

fn apply_one(st: &mut State, op: StoreOp, shared: bool) -> Result<(), StoreError> {
    let missing = |xid: &str, branch_id| StoreError::NotFound { xid: xid.to_owned(), branch_id };
    match op {
        StoreOp::InsertGlobal(g) => {
            if st.sessions.contains_key(&g.xid) {
                return Err(StoreError::Duplicate { xid: g.xid, branch_id: None });
            }
            st.seq += 1;
            let seq = st.seq;
            st.sessions.insert(g.xid.clone(), (seq, StoredSession { global: g, branches: Vec::new() }));
        }
        StoreOp::UpdateGlobalStatus { xid, expected, status } => {
            let (_, s) = st.sessions.get_mut(&xid).ok_or_else(|| missing(&xid, None))?;
            if let Some(expected) = expected {
                if s.global.status != expected {
                    return Err(StoreError::Conflict { xid, expected, actual: s.global.status });
                }
            }
            s.global.status = status;
        }
        StoreOp::RemoveGlobal { xid } => {
            st.sessions.remove(&xid);
        }
        StoreOp::InsertBranch(b) => insert_branch(st, b, shared)?,
        StoreOp::UpdateBranch { xid, branch_id, status, application_data } => {
            let (_, s) = st.sessions.get_mut(&xid).ok_or_else(|| missing(&xid, Some(branch_id)))?;
            let b = s
                .branches
                .iter_mut()
                .find(|b| b.branch_id == branch_id)
                .ok_or_else(|| missing(&xid, Some(branch_id)))?;
            b.status = status;
            if application_data.is_some() {
                b.application_data = application_data;
            }
        }
        StoreOp::RemoveBranch { xid, branch_id } => {
            if let Some((_, s)) = st.sessions.get_mut(&xid) {
                s.branches.retain(|b| b.branch_id != branch_id);
            }
        }
        StoreOp::ExpectBranches { xid, count } => {
            let actual = st.sessions.get(&xid).map_or(0, |(_, s)| s.branches.len());
            if actual != count as usize {
                let actual = u64::try_from(actual).unwrap_or(u64::MAX);
                return Err(StoreError::BranchesChanged { xid, expected: count, actual });
            }
        }
        StoreOp::AcquireLocks(_) | StoreOp::ReleaseLocks { .. } | StoreOp::MarkLocksRollbacking { .. } => {
            return Err(StoreError::Unsupported { what: "row locks" });
        }
    }
    Ok(())
}

/// Shared stores insert a branch only while its transaction is in Begin (SAGA branches in any
/// status), so a node with a stale copy cannot add a branch after another node's commit.
fn insert_branch(st: &mut State, b: BranchRecord, shared: bool) -> Result<(), StoreError> {
    let dup = st.sessions.values().any(|(_, s)| s.branches.iter().any(|x| x.branch_id == b.branch_id));
    if dup {
        return Err(StoreError::Duplicate { xid: b.xid, branch_id: Some(b.branch_id) });
    }
    let (_, s) =
        st.sessions.get_mut(&b.xid).ok_or_else(|| StoreError::NotFound { xid: b.xid.clone(), branch_id: None })?;
    if shared && s.global.status != GlobalStatus::Begin && b.branch_type != BranchType::SAGA {
        return Err(StoreError::Conflict { xid: b.xid, expected: GlobalStatus::Begin, actual: s.global.status });
    }
    s.branches.push(b);
    Ok(())
}

#[async_trait::async_trait]
impl SessionStore for MemoryStore {
    async fn apply(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        self.limits.check(&ops)?;
        let mut st = self.lock()?;
        // All or nothing: apply to a copy of the touched sessions, then publish.
        let backup: Vec<(String, Option<(u64, StoredSession)>)> =
            ops.iter().map(|op| (op.xid().to_owned(), st.sessions.get(op.xid()).cloned())).collect();
        let seq = st.seq;
        for op in ops {
            if let Err(e) = apply_one(&mut st, op, self.shared) {
                for (xid, old) in backup.into_iter().rev() {
                    match old {
                        Some(v) => st.sessions.insert(xid, v),
                        None => st.sessions.remove(&xid),
                    };
                }
                st.seq = seq;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn load_all(&self) -> Result<Vec<StoredSession>, StoreError> {
        let st = self.lock()?;
        let mut all: Vec<_> = st.sessions.values().cloned().collect();
        all.sort_by_key(|(seq, _)| *seq);
        Ok(all.into_iter().map(|(_, s)| s).collect())
    }

    async fn load(&self, xid: &str) -> Result<Option<StoredSession>, StoreError> {
        let st = self.lock()?;
        Ok(st.sessions.get(xid).map(|(_, s)| s.clone()))
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }

    fn is_shared(&self) -> bool {
        self.shared
    }

    async fn try_claim(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut st = self.lock()?;
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        match st.claims.get(key) {
            Some((holder, expire)) if *expire >= now && holder != owner => Ok(false),
            _ => {
                st.claims.insert(key.to_owned(), (owner.to_owned(), now.saturating_add(ttl)));
                Ok(true)
            }
        }
    }

    async fn release_claim(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let mut st = self.lock()?;
        if st.claims.get(key).is_some_and(|(holder, _)| holder == owner) {
            st.claims.remove(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_store_contract() {
        crate::store::contract::run_all(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn claims_are_exclusive_until_they_expire() {
        let s = MemoryStore::shared();
        assert!(s.try_claim("42", "a", Duration::from_secs(10)).await.unwrap());
        assert!(!s.try_claim("42", "b", Duration::from_secs(10)).await.unwrap());
        assert!(s.try_claim("42", "a", Duration::from_secs(10)).await.unwrap(), "re-entrant for its owner");
        s.release_claim("42", "b").await.unwrap();
        assert!(!s.try_claim("42", "b", Duration::from_secs(10)).await.unwrap());
        s.release_claim("42", "a").await.unwrap();
        assert!(s.try_claim("42", "b", Duration::from_millis(0)).await.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(s.try_claim("42", "a", Duration::from_secs(1)).await.unwrap(), "expired claims are taken over");
    }
}
