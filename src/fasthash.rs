//! The hasher of the server's hot in-memory maps (sessions by XID, row locks, pending requests).
//!
//! `std`'s SipHash cost about 2 % of the server's instructions per transaction (callgrind, AT with
//! 2 branches). foldhash is several times cheaper and, seeded at random per map as here, keeps
//! the keys clients choose (XIDs they echo, lock keys) from being steered into one bucket.

/// The build-hasher for the maps below.
pub type State = foldhash::quality::RandomState;

/// A `HashMap` with [`State`].
pub type HashMap<K, V> = std::collections::HashMap<K, V, State>;

/// A `HashSet` with [`State`].
pub type HashSet<T> = std::collections::HashSet<T, State>;

/// A `DashMap` with [`State`].
pub type DashMap<K, V> = dashmap::DashMap<K, V, State>;

/// An empty [`DashMap`].
pub fn dashmap<K: Eq + std::hash::Hash, V>() -> DashMap<K, V> {
    dashmap::DashMap::with_hasher(State::default())
}
