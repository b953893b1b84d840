//! The in-memory global row-lock table.
//!
//! # Data structure
//!
//! * **Row shards**: `N` (default 64) `std::sync::Mutex<HashMap<row key, Held>>`; a row key lives
//!   in the shard chosen by hashing it. [`Held`] names the holder: its owner record, branch id, the
//!   row's parts and when it was taken.
//! * **Owner records**: a `DashMap<xid, Arc<Owner>>` with one record per xid that holds locks.
//!   An [`Owner`] has the xid's transaction id, the `rollbacking` flag (an `AtomicBool`, read
//!   without locking when another transaction conflicts with it) and, behind its own mutex, the
//!   index `branch id -> row keys that branch inserted`. Releasing a branch or a whole xid
//!   therefore touches only that xid's rows.
//!
//! # Lock order
//!
//! 1. the owner record's `index` mutex (at most one, the caller's own xid);
//! 2. row shards, in ascending shard number; acquire holds every shard it needs at once, release
//!    and queries take one shard at a time;
//! 3. a `DashMap` shard of `owners`, only to remove a retired record while holding (1).
//!
//! Nothing locks an owner record while holding a row shard or a `DashMap` guard: looking up an
//! owner clones the `Arc` out of the map and drops the guard before locking. Reading another
//! xid's `rollbacking` flag under a row shard is an atomic load. With one order and no cycles
//! there is no deadlock. Different transactions meet only on the row shards they both hash to,
//! for the few microseconds a check-and-insert takes.
//!
//! A std `Mutex` is the right lock here: every critical section is short, CPU-only and never
//! awaits, so an async mutex would only add overhead (mini-redis `src/db.rs` makes the same
//! choice). Callers on a tokio runtime may call these methods directly.
//!
//! # Owner-record life cycle
//!
//! A record is created by the first acquire of its xid and retired as soon as its index is empty
//! (after a failed first acquire, the last release by branch, or a release of the xid). Retiring
//! happens under the record's mutex: rows are removed first, then the `retired` mark is set and
//! the record leaves the map. A caller that looked the record up just before and then waited on
//! its mutex sees `retired` and looks the xid up again. So a row is never held by a record that
//! is no longer reachable from `owners`, and at most one live record exists per xid.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

use crate::fasthash::State as RandomState;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use super::{LockConflict, LockError, LockOptions, RowLock};

/// Default upper bound on the row locks one acquire call may ask for.
pub const DEFAULT_MAX_ROWS_PER_ACQUIRE: usize = 10_000;

/// Default number of row shards.
pub const DEFAULT_SHARDS: usize = 64;

/// Sizing of a [`LockTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockTableConfig {
    /// Most row locks one [`LockTable::acquire`] call may ask for; more is
    /// [`LockError::TooManyRows`].
    pub max_rows_per_acquire: usize,
    /// Number of independently locked row shards (0 is treated as 1).
    pub shards: usize,
}

impl Default for LockTableConfig {
    fn default() -> Self {
        LockTableConfig { max_rows_per_acquire: DEFAULT_MAX_ROWS_PER_ACQUIRE, shards: DEFAULT_SHARDS }
    }
}

/// Who takes a set of row locks: a branch of a global transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOwner {
    /// The global transaction id (XID).
    pub xid: String,
    /// The transaction id part of the XID.
    pub transaction_id: i64,
    /// The registering branch.
    pub branch_id: i64,
}

/// What a successful [`LockTable::acquire`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AcquireOutcome {
    /// Rows newly locked for this branch.
    pub acquired: usize,
    /// Rows the same xid already held (re-entrant; they keep their original branch).
    pub reentrant: usize,
}

/// One held row lock, as the console and queries see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// The holder's XID.
    pub xid: String,
    /// The holder's transaction id.
    pub transaction_id: i64,
    /// The branch that inserted the lock.
    pub branch_id: i64,
    /// The resource id.
    pub resource_id: String,
    /// The table name.
    pub table_name: String,
    /// The primary-key value.
    pub pk: String,
    /// `resourceId^^^tableName^^^pk`.
    pub row_key: String,
    /// When the lock was taken (the console's `gmtCreate`).
    pub acquired_at: SystemTime,
}

/// Exact-match filter for [`LockTable::snapshot`]; `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockFilter {
    /// Only locks of this XID.
    pub xid: Option<String>,
    /// Only locks of this transaction id.
    pub transaction_id: Option<i64>,
    /// Only locks inserted by this branch.
    pub branch_id: Option<i64>,
    /// Only locks on this resource.
    pub resource_id: Option<String>,
    /// Only locks on this table.
    pub table_name: Option<String>,
    /// Only locks on this primary-key value.
    pub pk: Option<String>,
}

impl LockFilter {
    fn matches(&self, info: &LockInfo) -> bool {
        self.xid.as_deref().is_none_or(|x| x == info.xid)
            && self.transaction_id.is_none_or(|t| t == info.transaction_id)
            && self.branch_id.is_none_or(|b| b == info.branch_id)
            && self.resource_id.as_deref().is_none_or(|r| r == info.resource_id)
            && self.table_name.as_deref().is_none_or(|t| t == info.table_name)
            && self.pk.as_deref().is_none_or(|p| p == info.pk)
    }
}

/// The AT global row-lock table: row key -> holding branch, all-or-nothing acquire, release by
/// branch or by xid, and the per-xid "rolling back" flag behind fail-fast answers.
///
/// Cheap to clone (one `Arc`); `Send + Sync`. See the module documentation for the structure and
/// the lock order, and `docs/LOCKS.md` for how it matches Seata.
#[derive(Clone)]
pub struct LockTable {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    owners: crate::fasthash::DashMap<Arc<str>, Arc<Owner>>,
    held: AtomicUsize,
    max_rows_per_acquire: usize,
}

#[derive(Default)]
struct Shard {
    rows: crate::fasthash::HashMap<Arc<str>, Held>,
}

/// A held row.
struct Held {
    owner: Arc<Owner>,
    branch_id: i64,
    row: RowLock,
    acquired_at: SystemTime,
}

/// Everything the table knows about one xid that holds locks.
struct Owner {
    xid: Arc<str>,
    transaction_id: i64,
    /// Set once the global transaction rolls back; makes conflicts fail-fast for clients that
    /// run with `autoCommit=false`.
    rollbacking: AtomicBool,
    index: Mutex<OwnerIndex>,
}

#[derive(Default)]
struct OwnerIndex {
    /// The record left `owners`; look the xid up again.
    retired: bool,
    /// Row keys by the branch that inserted them (re-entrant rows stay with the first branch).
    branches: HashMap<i64, Vec<Arc<str>>>,
}

/// Locks `m`, recovering the data if a thread panicked while holding it. No critical section here
/// panics short of allocation failure, and a lock table that stops answering would stall every
/// AT transaction.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Held {
    fn info(&self) -> LockInfo {
        LockInfo {
            xid: self.owner.xid.to_string(),
            transaction_id: self.owner.transaction_id,
            branch_id: self.branch_id,
            resource_id: self.row.resource_id().to_owned(),
            table_name: self.row.table_name().to_owned(),
            pk: self.row.pk().to_owned(),
            row_key: self.row.row_key().to_owned(),
            acquired_at: self.acquired_at,
        }
    }
}

/// Console order: newest first, then by row key.
fn sort_for_console(locks: &mut [LockInfo]) {
    locks.sort_by(|a, b| b.acquired_at.cmp(&a.acquired_at).then_with(|| a.row_key.cmp(&b.row_key)));
}

impl Default for LockTable {
    fn default() -> Self {
        LockTable::new()
    }
}

impl std::fmt::Debug for LockTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockTable")
            .field("held", &self.count())
            .field("shards", &self.inner.shards.len())
            .field("max_rows_per_acquire", &self.inner.max_rows_per_acquire)
            .finish()
    }
}

impl LockTable {
    /// An empty table with [`LockTableConfig::default`].
    pub fn new() -> Self {
        LockTable::with_config(LockTableConfig::default())
    }

    /// An empty table sized by `config`.
    pub fn with_config(config: LockTableConfig) -> Self {
        let shards = (0..config.shards.max(1)).map(|_| Mutex::new(Shard::default())).collect();
        LockTable {
            inner: Arc::new(Inner {
                shards,
                hasher: RandomState::default(),
                owners: crate::fasthash::dashmap(),
                held: AtomicUsize::new(0),
                max_rows_per_acquire: config.max_rows_per_acquire,
            }),
        }
    }

    /// The most row locks one acquire may ask for (use it with
    /// [`parse_lock_key_limited`](super::parse_lock_key_limited)).
    pub fn max_rows_per_acquire(&self) -> usize {
        self.inner.max_rows_per_acquire
    }

    /// Takes `rows` for `owner`, all or nothing, never waiting for another transaction.
    ///
    /// Rows already held by the same xid are re-entrant: not taken again, they keep their original
    /// branch. A row held by another xid is a conflict; nothing taken by this call stays held.
    /// The conflict is fail-fast when `opts.auto_commit` is false and a conflicting holder is
    /// marked rolling back (the first such row in request order is reported; otherwise the first
    /// conflicting row). `opts.skip_check_lock` is not used: checking costs nothing in memory.
    /// Duplicate rows are taken once. More than [`max_rows_per_acquire`](Self::max_rows_per_acquire)
    /// rows (counted before de-duplication) is [`LockError::TooManyRows`].
    pub fn acquire(&self, owner: LockOwner, rows: &[RowLock], opts: LockOptions) -> Result<AcquireOutcome, LockError> {
        let limit = self.inner.max_rows_per_acquire;
        if rows.len() > limit {
            return Err(LockError::TooManyRows { requested: Some(rows.len()), limit });
        }
        if rows.is_empty() {
            return Ok(AcquireOutcome::default());
        }
        let LockOwner { xid, transaction_id, branch_id } = owner;
        self.with_owner_or_insert(&xid, transaction_id, |record, index| {
            self.acquire_owned(record, index, branch_id, rows, opts)
        })
        .map_err(LockError::Conflict)
    }

    /// Releases the rows `branch_id` of `xid` inserted; returns how many. Rows the branch covered
    /// only re-entrantly belong to an earlier branch and stay held (as in Seata).
    pub fn release_branch(&self, xid: &str, branch_id: i64) -> usize {
        self.with_owner(xid, |record, index| match index.branches.remove(&branch_id) {
            Some(keys) => self.remove_rows(record, &keys, Some(branch_id)),
            None => 0,
        })
        .unwrap_or(0)
    }

    /// Releases every row of `xid` (and forgets its rolling-back flag); returns how many.
    pub fn release_global(&self, xid: &str) -> usize {
        self.with_owner(xid, |record, index| {
            let keys: Vec<Arc<str>> = index.branches.drain().flat_map(|(_, k)| k).collect();
            self.remove_rows(record, &keys, None)
        })
        .unwrap_or(0)
    }

    /// Marks `xid`'s locks as held by a transaction that is rolling back, so conflicting
    /// `autoCommit=false` branches get a fail-fast answer. The flag belongs to the xid (rows it
    /// takes later carry it too) and lasts until its last lock is released. Returns false when
    /// `xid` holds no locks (nothing to mark); at restart, re-acquire first, then mark.
    pub fn mark_rollbacking(&self, xid: &str) -> bool {
        self.with_owner(xid, |record, _| {
            record.rollbacking.store(true, Ordering::Release);
        })
        .is_some()
    }

    /// Whether `xid` holds locks and is marked rolling back.
    pub fn is_rollbacking(&self, xid: &str) -> bool {
        self.inner.owners.get(xid).is_some_and(|r| r.value().rollbacking.load(Ordering::Acquire))
    }

    /// GlobalLockQuery: false if any of `rows` is held by an xid other than `xid`. With no xid (a
    /// pure `@GlobalLock` caller) any held row conflicts; an empty xid behaves the same. Takes
    /// nothing; rows are looked at one by one, so the answer is a hint, as in Seata.
    pub fn is_lockable(&self, xid: Option<&str>, rows: &[RowLock]) -> bool {
        rows.iter().all(|row| {
            let shard = lock(self.shard(row.row_key()));
            shard.rows.get(row.row_key()).is_none_or(|held| xid.is_some_and(|x| *held.owner.xid == *x))
        })
    }

    /// The holder of one row key, if any.
    pub fn holder(&self, row_key: &str) -> Option<LockInfo> {
        lock(self.shard(row_key)).rows.get(row_key).map(Held::info)
    }

    /// Every lock held by `xid`, newest first.
    pub fn locks_of(&self, xid: &str) -> Vec<LockInfo> {
        let mut locks = self
            .with_owner(xid, |record, index| {
                let keys: Vec<&Arc<str>> = index.branches.values().flatten().collect();
                let mut locks = Vec::with_capacity(keys.len());
                self.for_each_by_shard(keys, |shard, key| {
                    if let Some(held) = shard.rows.get(&**key) {
                        if Arc::ptr_eq(&held.owner, record) {
                            locks.push(held.info());
                        }
                    }
                });
                locks
            })
            .unwrap_or_default();
        sort_for_console(&mut locks);
        locks
    }

    /// Number of row locks held.
    pub fn count(&self) -> usize {
        self.inner.held.load(Ordering::Relaxed)
    }

    /// The locks matching `filter`, newest first (console `globalLock/query`). With an xid in the
    /// filter only that xid's rows are visited; otherwise every shard is, one at a time, so the
    /// result is not an atomic picture of the whole table.
    pub fn snapshot(&self, filter: &LockFilter) -> Vec<LockInfo> {
        let mut locks: Vec<LockInfo> = if let Some(xid) = &filter.xid {
            self.locks_of(xid).into_iter().filter(|info| filter.matches(info)).collect()
        } else {
            let mut locks = Vec::new();
            for shard in self.inner.shards.iter() {
                let shard = lock(shard);
                locks.extend(shard.rows.values().map(Held::info).filter(|info| filter.matches(info)));
            }
            locks
        };
        sort_for_console(&mut locks);
        locks
    }

    fn shard_index(&self, row_key: &str) -> usize {
        let hash = self.inner.hasher.hash_one(row_key);
        let shards = u64::try_from(self.inner.shards.len()).unwrap_or(1).max(1);
        usize::try_from(hash % shards).unwrap_or(0)
    }

    fn shard(&self, row_key: &str) -> &Mutex<Shard> {
        &self.inner.shards[self.shard_index(row_key)]
    }

    /// Runs `f` on the live owner record of `xid` with its index locked; `None` if `xid` holds no
    /// locks.
    fn with_owner<R, F>(&self, xid: &str, mut f: F) -> Option<R>
    where
        F: FnOnce(&Arc<Owner>, &mut OwnerIndex) -> R,
    {
        loop {
            // Clone the Arc out so no map guard is held while locking the record.
            let record = self.inner.owners.get(xid).map(|r| Arc::clone(r.value()))?;
            match self.try_locked(xid, record, f) {
                Ok(result) => return Some(result),
                Err(back) => f = back,
            }
        }
    }

    /// [`with_owner`](Self::with_owner), creating the record (with `transaction_id`) if absent.
    fn with_owner_or_insert<R, F>(&self, xid: &str, transaction_id: i64, mut f: F) -> R
    where
        F: FnOnce(&Arc<Owner>, &mut OwnerIndex) -> R,
    {
        let owners = &self.inner.owners;
        loop {
            let record = match owners.get(xid).map(|r| Arc::clone(r.value())) {
                Some(record) => record,
                None => {
                    let fresh = || {
                        Arc::new(Owner {
                            xid: Arc::from(xid),
                            transaction_id,
                            rollbacking: AtomicBool::new(false),
                            index: Mutex::new(OwnerIndex::default()),
                        })
                    };
                    Arc::clone(owners.entry(Arc::from(xid)).or_insert_with(fresh).value())
                }
            };
            match self.try_locked(xid, record, f) {
                Ok(result) => return result,
                Err(back) => f = back,
            }
        }
    }

    /// Locks `record`'s index and runs `f`, then retires the record if its index is empty. Gives
    /// `f` back if the record was retired meanwhile (the caller looks the xid up again).
    fn try_locked<R, F>(&self, xid: &str, record: Arc<Owner>, f: F) -> Result<R, F>
    where
        F: FnOnce(&Arc<Owner>, &mut OwnerIndex) -> R,
    {
        let mut index = lock(&record.index);
        if index.retired {
            return Err(f);
        }
        let result = f(&record, &mut index);
        if index.branches.is_empty() {
            index.retired = true;
            self.inner.owners.remove_if(xid, |_, live| Arc::ptr_eq(live, &record));
        }
        Ok(result)
    }

    /// The check-and-insert, with the owner's index locked.
    fn acquire_owned(
        &self,
        record: &Arc<Owner>,
        index: &mut OwnerIndex,
        branch_id: i64,
        rows: &[RowLock],
        opts: LockOptions,
    ) -> Result<AcquireOutcome, LockConflict> {
        // De-duplicate (first occurrence wins) and find each row's shard.
        let mut seen: HashSet<&str> = HashSet::with_capacity(rows.len());
        let wanted: Vec<(&RowLock, usize)> = rows
            .iter()
            .filter(|row| seen.insert(row.row_key()))
            .map(|row| (row, self.shard_index(row.row_key())))
            .collect();
        let mut shard_ids: Vec<usize> = wanted.iter().map(|&(_, id)| id).collect();
        shard_ids.sort_unstable();
        shard_ids.dedup();

        // Lock every shard involved, in ascending order, and keep them all until done: the check
        // and the insert are one atomic step with respect to other transactions.
        let mut guards: Vec<MutexGuard<'_, Shard>> = shard_ids.iter().map(|&id| lock(&self.inner.shards[id])).collect();
        let slot = |id: usize| shard_ids.binary_search(&id).unwrap_or(0);

        let mut fresh: Vec<(&RowLock, usize)> = Vec::new();
        let mut reentrant = 0;
        let mut conflict: Option<LockConflict> = None;
        for &(row, id) in &wanted {
            let pos = slot(id);
            match guards[pos].rows.get(row.row_key()) {
                None => fresh.push((row, pos)),
                Some(held) if Arc::ptr_eq(&held.owner, record) => reentrant += 1,
                Some(held) => {
                    debug_assert!(held.owner.xid != record.xid, "two live records for one xid");
                    let fail_fast = !opts.auto_commit && held.owner.rollbacking.load(Ordering::Acquire);
                    if conflict.is_none() || fail_fast {
                        conflict = Some(LockConflict {
                            row_key: row.row_key().to_owned(),
                            holder_xid: held.owner.xid.to_string(),
                            holder_branch_id: held.branch_id,
                            fail_fast,
                        });
                    }
                    // Without autoCommit=false nothing can become fail-fast: the first conflict
                    // decides. With it, keep looking for a holder that is rolling back.
                    if fail_fast || opts.auto_commit {
                        break;
                    }
                }
            }
        }
        if let Some(conflict) = conflict {
            return Err(conflict);
        }

        let acquired = fresh.len();
        if acquired > 0 {
            let now = SystemTime::now();
            let keys = index.branches.entry(branch_id).or_default();
            keys.reserve(acquired);
            for (row, pos) in fresh {
                let key = Arc::clone(row.shared_key());
                guards[pos].rows.insert(
                    Arc::clone(&key),
                    Held { owner: Arc::clone(record), branch_id, row: row.clone(), acquired_at: now },
                );
                keys.push(key);
            }
            self.inner.held.fetch_add(acquired, Ordering::Relaxed);
        }
        drop(guards);
        Ok(AcquireOutcome { acquired, reentrant })
    }

    /// Removes those of `keys` that `record` holds (and that `branch` inserted, if given), one
    /// shard at a time; returns how many.
    fn remove_rows(&self, record: &Arc<Owner>, keys: &[Arc<str>], branch: Option<i64>) -> usize {
        let mut removed = 0;
        self.for_each_by_shard(keys.iter().collect(), |shard, key| {
            let ours = shard
                .rows
                .get(&**key)
                .is_some_and(|held| Arc::ptr_eq(&held.owner, record) && branch.is_none_or(|b| held.branch_id == b));
            if ours && shard.rows.remove(&**key).is_some() {
                removed += 1;
            }
        });
        self.inner.held.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// Calls `f` for every key with its shard locked, visiting shards in ascending order and
    /// locking each once.
    fn for_each_by_shard(&self, keys: Vec<&Arc<str>>, mut f: impl FnMut(&mut Shard, &Arc<str>)) {
        let mut by_shard: Vec<(usize, &Arc<str>)> = keys.into_iter().map(|key| (self.shard_index(key), key)).collect();
        by_shard.sort_unstable_by_key(|&(id, _)| id);
        for group in by_shard.chunk_by(|a, b| a.0 == b.0) {
            let Some(&(id, _)) = group.first() else {
                continue;
            };
            let mut shard = lock(&self.inner.shards[id]);
            for &(_, key) in group {
                f(&mut shard, key);
            }
        }
    }
}

#[cfg(test)]
mod tests;
