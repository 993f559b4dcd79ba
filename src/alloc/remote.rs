//! Remote frees: a block freed by a thread that does not own its span (or
//! by a thread without a heap) goes onto the span's atomic `thread_free`
//! list (span.rs INV-2). Almost always that push is the whole remote free:
//! one CAS on the span's remote cache line, the freer's last access (span
//! INV-5), whether the span is active or parked (a push onto a parked
//! span's flagged word raises its count in the same CAS, INV-6). Two pushes
//! onto a flagged word need the header after it, and take the slow path,
//! counted in flight so the owner never releases the span under them
//! (INV-5): the first since the park raises the owner's pending flag, and
//! one whose count reaches the blocks live at the park steals the span if
//! it was parked long enough (INV-4).
//!
//! Threads: any thread except the span's owner. Under `cfg(loom)` every
//! access to the header is checked against the span's release, and the
//! steal clock is a counter (`loom-tests/`, `remote_free`).
//!
//! Must never: allocate, lock, or panic (the global allocator runs it).

#[cfg(not(loom))]
use core::ptr::NonNull;
use core::sync::atomic::Ordering::*;

#[cfg(not(loom))]
use super::size_class::span_bytes;
use super::span::{self, Block, Span};
#[cfg(not(loom))]
use crate::os;
#[cfg(not(loom))]
use crate::page_heap;

/// The remote branch of `heap::free_from`: `block` of `span` freed by a thread
/// that does not own the span.
///
/// # Safety
///
/// `block` must be a live block handed out from `span`.
// Not inlined: the local free, which inlines into every entry point, stays
// small (the remote one is a cache miss or two anyway).
#[inline(never)]
pub(super) unsafe fn free_remote(span: *mut Span, block: *mut Block) {
    // SAFETY: the span outlives its live blocks, and stays unreleased until
    // our last access to its header (span INV-5).
    unsafe {
        #[cfg(loom)]
        touched(span);
        // The push is all, unless it is one that needs the header after it.
        if Span::try_push_quiet(span, block) {
            return;
        }
        free_remote_slow(span, block);
    }
}

/// The remote free that may need the header after its push (span INV-5, 6):
/// the first onto a flagged word, or one that may empty a parked span.
///
/// # Safety
///
/// As for [`free_remote`].
#[cold]
unsafe fn free_remote_slow(span: *mut Span, block: *mut Block) {
    // SAFETY: as in `free_remote`.
    unsafe {
        #[cfg(loom)]
        touched(span);
        // Counted in flight before the block is published, out after the
        // last access to the header: the owner never releases the span in
        // between (span INV-5).
        (*span).remote_inflight.fetch_add(1, SeqCst);
        let flagged = Span::push_remote(span, block);
        // The broken variant leaves right after publishing: the state load
        // and a steal then race with the span's release.
        #[cfg(discardable_broken_inflight)]
        (*span).remote_inflight.fetch_sub(1, Release);
        if flagged.is_some() {
            #[cfg(loom)]
            touched(span);
            // Acquire: our push read the owner's flag (Acquire), set after
            // the parked word; this load sees that word or a later one.
            let state = (*span).state.load(Acquire);
            #[cfg(loom)]
            touched(span);
            if state & span::KIND == span::PARKED {
                remote_free_to_parked(span, state);
            }
        }
        #[cfg(loom)]
        touched(span);
        #[cfg(not(discardable_broken_inflight))]
        (*span).remote_inflight.fetch_sub(1, Release);
    }
}

/// Loom models only: a remote freer's access to the header of `span`,
/// checked against the span's release (span INV-5).
///
/// # Safety
///
/// `span` points to a span header (the models never unmap one).
#[cfg(loom)]
unsafe fn touched(span: *mut Span) {
    // SAFETY: a read of the model's cell; loom checks it against the write
    // in `release`.
    unsafe { (*span).released.with(|r| assert!(!*r, "a remote freer touched a released span")) };
}

// Monotonic time in nanoseconds, at the kernel tick's resolution: it stamps
// every park (`Heap::park_full`, often on the refill path: a precise clock
// read there was 8 % of larson's time) and is compared only with
// `span::STEAL_AFTER_NS`, many ticks long. Under loom a counter that
// advances by `span::STEAL_AFTER_NS` per call (invisible to loom), so every
// steal is old enough.
#[cfg(not(loom))]
pub(super) use crate::os::coarse_now_ns as now_ns;
#[cfg(loom)]
pub(super) fn now_ns() -> u64 {
    static CLOCK: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
    CLOCK.fetch_add(span::STEAL_AFTER_NS, Relaxed) + span::STEAL_AFTER_NS
}

/// A remote free hit a parked span: steal it if the span is now empty and
/// was parked a while ago, and tell the owner either way.
///
/// # Safety
///
/// `span` is a live class span whose block we just pushed.
#[cold]
unsafe fn remote_free_to_parked(span: *mut Span, parked: u32) {
    // SAFETY: the span is live until released, which needs the owner to
    // see `full_pending` or STOLEN, both after this function's writes.
    unsafe {
        // `parked_used` and `parked_at` were written before the Release
        // store of `parked`, which our load of it acquired. The word is read
        // now, after that load, so it is the one the park flagged or a later
        // one (the owner's collect before the park is ordered before
        // `parked`): flagged, its count is exactly the blocks freed since
        // this park, or since a later one, but then the epoch in `parked`
        // no longer matches and the CAS fails (span INV-4, 6).
        let word = (*span).thread_free.load(Acquire);
        let empty = word.addr() & span::TF_PARKED != 0 && span::word_count(word) == (*span).parked_used.load(Acquire);
        #[cfg(loom)]
        touched(span);
        if empty
            && now_ns().saturating_sub((*span).parked_at.load(Relaxed)) >= span::STEAL_AFTER_NS
            && (*span).state.compare_exchange(parked, (parked & !span::KIND) | span::STOLEN, AcqRel, Relaxed).is_ok()
        {
            #[cfg(loom)]
            touched(span);
            // Every block is free (span INV-4): give the block pages back
            // now; the header page stays until the owner frees the span.
            #[cfg(not(loom))]
            {
                let page = page_heap::global().page_size();
                let bytes = span_bytes((*span).class as usize);
                let first = NonNull::new_unchecked(span.cast::<u8>().add(page));
                let _ = os::discard(first, bytes - page);
            }
            // The model's discard: a write the owner's `collect` checks.
            #[cfg(loom)]
            (*span).discarded.with_mut(|d| *d = true);
        }
        #[cfg(loom)]
        touched(span);
        let owner = (*span).owner.load(Acquire);
        if !owner.is_null() {
            // Heaps are never unmapped (pooled), so a stale owner is at worst
            // a spurious wake-up.
            (*owner).full_pending.store(true, Release);
        }
    }
}
