//! The allocator's process-wide accounting: bytes of spans it holds, and
//! whether memory went back to the page heap since the purge timer last
//! looked.
//!
//! Any thread touches these counters, with `Relaxed` operations only: they
//! are statistics and a hint, never a hand-over of memory. Must never:
//! allocate, lock, or panic (the allocation path updates them).

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

/// Bytes of spans the allocator holds (class spans and large spans).
pub(crate) static IN_USE: AtomicUsize = AtomicUsize::new(0);
/// Set when memory went back to the page heap, so the purge timer starts.
pub(crate) static NEED_PURGE: AtomicBool = AtomicBool::new(false);

/// Spans of `bytes` went back to the page heap: count them out and ask the
/// purge timer to look.
#[inline]
pub(crate) fn returned(bytes: usize) {
    IN_USE.fetch_sub(bytes, Relaxed);
    NEED_PURGE.store(true, Relaxed);
}
