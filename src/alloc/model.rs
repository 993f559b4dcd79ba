//! The allocator as the loom models in `loom-tests/` drive it
//! (`crate::__loom::ClassSpans`): thread heaps and class spans built in
//! model memory, run through the shipped functions (`heap::model`).
//!
//! Owns nothing the allocator uses; compiled only under `cfg(loom)`. Must
//! never be a second implementation of a protocol: every operation here
//! calls the code that ships.

use super::heap::{model, Heap};
use super::span::Span;

/// The allocator's span protocols (`alloc/span.rs` INV-1..5,
/// `alloc/abandoned.rs` AB-1..3): thread heaps and class spans (class 0)
/// in model memory, whose header atomics are loom's, driven through the
/// shipped functions, with the execution's abandoned set.
///
/// Releasing a span writes a loom cell that every remote freer reads around
/// its header accesses; a thief's discard writes one that every `collect`
/// reads. Spans start owned by heap 0; the models' page source is empty, so
/// an allocation that finds nothing to reuse or adopt fails.
pub struct ClassSpans {
    heaps: Vec<*mut Heap>,
    spans: Vec<*mut Span>,
}

// SAFETY: the models share it between their threads and call each method
// only from the thread the protocol allows (a heap's owner, a freer, the
// sweeper, or anyone once the threads joined).
unsafe impl Send for ClassSpans {}
// SAFETY: as above.
unsafe impl Sync for ClassSpans {}

impl core::fmt::Debug for ClassSpans {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClassSpans").finish_non_exhaustive()
    }
}

/// A span's state kind: its owner allocates from it.
pub const ACTIVE: u32 = super::span::ACTIVE;
/// A span's state kind: full, parked on its owner's full list.
pub const PARKED: u32 = super::span::PARKED;
/// A span's state kind: emptied and stolen by a remote freer.
pub const STOLEN: u32 = super::span::STOLEN;

/// Where a span is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// On heap `h`'s current list.
    Current(usize),
    /// On heap `h`'s full list.
    Full(usize),
    /// On the abandoned list.
    Abandoned,
    /// On no list (released, or never listed).
    Nowhere,
}

/// A span as a model sees it after its threads joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanView {
    /// [`ACTIVE`], [`PARKED`] or [`STOLEN`].
    pub kind: u32,
    /// Blocks handed out and not freed back to the owner.
    pub used: u32,
    /// Blocks on the owner's free list (0 once discarded).
    pub free: u32,
    /// Blocks on the remote free list.
    pub remote: u32,
    /// Remote freers in flight.
    pub inflight: u32,
    /// Released (given back).
    pub released: bool,
    /// Stolen and its block pages discarded.
    pub discarded: bool,
    /// The owning heap's index, or `None` while abandoned.
    pub owner: Option<usize>,
    /// Where it is listed.
    pub listed: Listed,
}

impl ClassSpans {
    /// `heaps` heaps, and spans of `(capacity, live)` blocks each owned by
    /// heap 0 (the first `live` blocks handed out, the rest on the span's
    /// free list), on no list. Call inside the model (the headers hold loom
    /// objects).
    pub fn new(heaps: usize, spans: &[(u32, u32)]) -> Self {
        let heaps: Vec<_> = (0..heaps.max(1)).map(|_| model::new_heap()).collect();
        let spans = spans.iter().map(|&(capacity, live)| model::new_span(heaps[0], capacity, live)).collect();
        Self { heaps, spans }
    }

    /// Puts span `i` at the head of heap 0's current list (setup).
    pub fn make_current(&self, i: usize) {
        // SAFETY: setup, before the model's threads start; the span is on
        // no list (the model's duty).
        unsafe { model::make_current(self.heaps[0], self.spans[i]) }
    }

    /// A thread without a heap frees block `block` of span `i` (`free`'s
    /// remote branch).
    pub fn free_remote(&self, i: usize, block: usize) {
        // SAFETY: the model frees each live block once.
        unsafe { model::free_remote(self.spans[i], model::block(self.spans[i], block)) }
    }

    /// Heap `h`'s thread frees block `block` of span `i` (`free`: the
    /// local path if `h` owns the span, else the remote one).
    pub fn free(&self, h: usize, i: usize, block: usize) {
        // SAFETY: the model frees each live block once, on `h`'s thread.
        unsafe { model::free_from(self.heaps[h], self.spans[i], model::block(self.spans[i], block)) }
    }

    /// Heap 0's owner makes span `i` current (`Heap::push_current`),
    /// which collects the displaced head and releases it if empty and
    /// quiescent.
    pub fn push_current(&self, i: usize) {
        // SAFETY: heap 0's thread only (the model's duty).
        unsafe { model::push_current(self.heaps[0], self.spans[i]) }
    }

    /// Heap 0's refill turn on span `i`, the head of its current list
    /// (`Heap::take_or_park`): the index of the block it handed out, or
    /// `None` if it parked the span.
    pub fn take_or_park(&self, i: usize) -> Option<usize> {
        // SAFETY: heap 0's thread only (the model's duty).
        let block = unsafe { model::take_or_park(self.heaps[0], self.spans[i]) };
        (!block.is_null()).then(|| model::block_index(self.spans[i], block))
    }

    /// Heap `h`'s `alloc_slow` prologue: rescues full spans if flagged.
    pub fn rescue_if_pending(&self, h: usize) -> bool {
        // SAFETY: heap `h`'s thread only (the model's duty).
        unsafe { model::rescue_if_pending(self.heaps[h]) }
    }

    /// Heap `h`'s `alloc_slow`: (span, block) it handed out, or `None`.
    pub fn alloc(&self, h: usize) -> Option<(usize, usize)> {
        // SAFETY: heap `h`'s thread only (the model's duty).
        let block = unsafe { model::alloc_slow(self.heaps[h]) };
        if block.is_null() {
            return None;
        }
        let i = self.spans.iter().position(|&s| model::contains(s, block)).expect("a block of no model span");
        Some((i, model::block_index(self.spans[i], block)))
    }

    /// Heap `h`'s thread exits: its spans are abandoned (`Heap::abandon`).
    pub fn exit(&self, h: usize) {
        // SAFETY: heap `h`'s thread only, after its last allocation (the
        // model's duty).
        unsafe { model::abandon(self.heaps[h]) }
    }

    /// The purge timer's sweep of the abandoned spans.
    pub fn sweep(&self) {
        model::sweep();
    }

    /// Span `i` as seen after the model's threads joined.
    pub fn view(&self, i: usize) -> SpanView {
        let span = self.spans[i];
        // SAFETY: the threads joined, or the caller owns the span (the
        // model's duty).
        let (kind, used, free, remote, inflight, released, discarded) = unsafe { model::observe(span) };
        // SAFETY: as above.
        let owner_ptr = unsafe { model::owner(span) };
        let owner = self.heaps.iter().position(|&h| h == owner_ptr);
        let mut listed = if model::abandoned(span) { Listed::Abandoned } else { Listed::Nowhere };
        for (h, &heap) in self.heaps.iter().enumerate() {
            // SAFETY: as above.
            match unsafe { model::listed(heap, span) } {
                Some(true) => listed = Listed::Current(h),
                Some(false) => listed = Listed::Full(h),
                None => {}
            }
        }
        SpanView { kind, used, free, remote, inflight, released, discarded, owner, listed }
    }
}

impl Drop for ClassSpans {
    fn drop(&mut self) {
        for &span in &self.spans {
            // SAFETY: nothing uses the spans any more.
            unsafe { model::drop_span(span) };
        }
        for &heap in &self.heaps {
            // SAFETY: nothing uses the heaps any more.
            unsafe { model::drop_heap(heap) };
        }
    }
}
