//! Fault injection (`--cfg discardable_fault_injection`, for tests only): make the
//! next `n` calls of a kind of system call fail with a chosen `errno`, to
//! prove that fallible APIs return typed errors, the allocator returns
//! null, nothing panics across the allocator boundary, and nothing strong is
//! lost. Allocation-free: the allocator's path checks these counters.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// A kind of system call that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `mmap` (new segments and huge spans): `ENOMEM`.
    Map,
    /// `madvise` (`MADV_DONTNEED`, `MADV_FREE`): `EINVAL`.
    Advise,
    /// Reads of `/proc` and `/sys` files: `EACCES`.
    Read,
}

static PENDING: [AtomicUsize; 3] = [AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)];
/// Failures injected so far, per kind.
static HITS: [AtomicUsize; 3] = [AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)];

/// How many calls of `kind` were made to fail so far: a test waits on it to
/// know that the failing path ran, instead of sleeping and hoping.
pub fn hits(kind: Fault) -> usize {
    HITS[kind as usize].load(Relaxed)
}

/// Makes the next `n` calls of `kind` fail (replacing any pending count).
pub fn fail_next(kind: Fault, n: usize) {
    PENDING[kind as usize].store(n, Relaxed);
}

/// Cancels every pending failure.
pub fn reset() {
    for p in &PENDING {
        p.store(0, Relaxed);
    }
}

/// Whether this call of `kind` must fail (consumes one pending failure).
#[inline]
pub(crate) fn take(kind: Fault) -> bool {
    let hit = PENDING[kind as usize].fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1)).is_ok();
    if hit {
        HITS[kind as usize].fetch_add(1, Relaxed);
    }
    hit
}
