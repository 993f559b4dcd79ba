//! The manager's statistics snapshot.

use super::builder::ThreadPriority;
use crate::pressure::Signal;

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
    /// Strong bytes: what [`DiscardAlloc`](crate::DiscardAlloc) holds for
    /// ordinary allocations (0 when it is not the global allocator).
    pub strong_bytes: usize,
    /// Reclaim passes triggered by the manager's own limit.
    pub limit_reclaims: u64,
    /// Reclaim passes triggered by each pressure signal, indexed in the
    /// order of [`Stats::reclaims`]'s argument; read it through that method.
    pub signal_reclaims: [u64; 5],
    /// Direct reclaims: allocating threads that crossed the process limit
    /// and waited for the manager.
    pub direct_reclaims: u64,
    /// Lazy mode: allocations handed to the kernel with `MADV_FREE`.
    pub offers: u64,
    /// Lazy mode: offered allocations re-pinned intact.
    pub revivals: u64,
    /// Lazy mode: offered allocations whose pages the kernel took (also
    /// counted in `discarded_count`).
    pub kernel_discards: u64,
    /// `lock_pages`: discardable bytes locked in memory now.
    pub locked_bytes: usize,
    /// `lock_pages`: `mlock` calls the OS refused (`RLIMIT_MEMLOCK`); those
    /// pages stay swappable.
    pub lock_refusals: u64,
    /// Panics caught on the manager thread. Each one aborted a pass (its
    /// message went to the panic hook, stderr by default); the thread
    /// recovered with a fresh look at the pressure signals and kept
    /// enforcing the limit. Non-zero means a bug worth reporting.
    pub manager_panics: u64,
    /// Passes the manager thread has completed (each wake-up, timer or
    /// notification it acted on). Tests wait on it instead of on wall time.
    pub passes: u64,
    /// CPU time reclaim has cost, in nanoseconds: every pass, on every
    /// thread that ran one (the manager thread, [`Manager::reclaim`]
    /// callers, constructors making room).
    ///
    /// [`Manager::reclaim`]: crate::Manager::reclaim
    pub reclaim_cpu_ns: u64,
    /// Passes run by constructors that made room for their allocation
    /// because it would have taken the discardable bytes past the limit by
    /// more than the slack (1 % of the limit, at most 4 MiB) before the
    /// manager thread got to it.
    pub room_reclaims: u64,
    /// Bytes of discarded spans kept mapped for reuse by the next
    /// allocations (counted against the limit, at most 1 % of it or 4 MiB;
    /// given back to the OS under memory pressure).
    pub kept_bytes: usize,
    /// `madvise(MADV_DONTNEED)` calls made to give this manager's
    /// discardable pages back (discarded spans, emptied slot pages, the
    /// kept spans), to see what giving pages back costs.
    pub madvise_calls: u64,
    /// The scheduling priority the manager thread got (what
    /// [`ManagerBuilder::priority`](crate::ManagerBuilder::priority) asked
    /// for, or less where the OS refused); `None` before the thread started.
    pub thread_priority: Option<ThreadPriority>,
    /// Group members ([`ManagerBuilder::group`](crate::ManagerBuilder::group)):
    /// passes in which the group's registry could not be used (it could not
    /// be opened, was truncated, corrupt, of another version, full, or
    /// written by a hostile process) and the manager acted alone. Zero
    /// for a manager outside any group.
    pub group_faults: u64,
}

impl Stats {
    /// Reclaim passes that `signal` triggered.
    pub fn reclaims(&self, signal: Signal) -> u64 {
        self.signal_reclaims[signal.index()]
    }
}
