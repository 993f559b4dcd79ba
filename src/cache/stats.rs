//! [`CacheStats`] and [`RemovalCause`]: what a cache reports.
//!
//! Owns: the public shapes of the cache's counters. The counters themselves
//! live in the cache (relaxed atomics, exact once the cache is quiet).
//!
//! Must never: estimate a figure it can measure.

/// Why an entry left a cache, as its eviction listener hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// The manager discarded the value (memory pressure or a budget), or
    /// the cache dropped it to honour its capacity.
    Discarded,
    /// [`Cache::remove`](super::Cache::remove) took it out.
    Removed,
    /// An insert of the same key replaced it.
    Replaced,
    /// [`Cache::clear`](super::Cache::clear) took it out.
    Cleared,
}

/// A snapshot of a cache's counters ([`Cache::stats`](super::Cache::stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups that found a live value. Counted per shard without a locked
    /// instruction (the hit path stays cheap), so threads hitting one shard
    /// at the same instant may lose a count now and then.
    pub hits: u64,
    /// Lookups that found nothing (absent, or discarded); counted as `hits`.
    pub misses: u64,
    /// Values stored (by `insert` and the `get_or_insert_with` family),
    /// including those a full cache turned away at once (also counted in
    /// `discarded`).
    pub inserts: u64,
    /// Values that left because they were discarded: by the manager, or to
    /// honour the capacity (including new keys a full cache did not admit:
    /// it keeps a new key only if it was asked for more often, lately,
    /// than the entry it would push out).
    pub discarded: u64,
    /// Values that left through `remove`, `clear` or a replacing insert.
    pub removed: u64,
    /// Live entries now (those a `get` would find).
    pub entries: u64,
    /// Discardable bytes the cache's entries hold (their cost to the OS).
    pub bytes: u64,
    /// Strong bytes the cache uses now beyond its values: the shards' slot
    /// arrays, one allocation header per entry, and the entries' share of
    /// the manager's table and policy (the table's bytes per tracked
    /// allocation times the entries), all from their actual sizes. Entries
    /// the manager has not taken in yet (it does at its next pass) have no
    /// table share yet.
    pub overhead_bytes: u64,
    /// Entries whose value was discarded but whose key is still in the map
    /// (the discard notification has not been applied yet).
    pub dead_entries: u64,
    /// Panics the eviction listener raised (caught and counted).
    pub listener_panics: u64,
}
