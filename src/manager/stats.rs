//! The manager's statistics snapshot.

/// Counters of a [`Manager`](crate::Manager), read with
/// [`Manager::stats`](crate::Manager::stats).
///
/// Bytes are what allocations cost the OS: whole pages for spans, the slot
/// size for small allocations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Discardable bytes held now.
    pub discardable_bytes: usize,
    /// Bytes pinned as of the manager's last scan (not kept on the hot path).
    pub pinned_bytes: usize,
    /// Allocations discarded so far (by the manager, `reclaim` or their
    /// owners' `discard`).
    pub discarded_count: u64,
    /// Bytes those allocations cost.
    pub discarded_bytes: u64,
    /// How far pins kept the discardable bytes above the limit at the
    /// manager's last pass (0 when the limit was met).
    pub over_limit_bytes: usize,
    /// The configured limit.
    pub limit: usize,
    /// Live handles.
    pub allocations: usize,
}
