//! The allocator as the loom models in `loom-tests/` drive it
//! (`crate::__loom::ClassSpans`): thread heaps and class spans built in
//! model memory, run through the shipped functions (`shipped` below).
//!
//! Owns nothing the allocator uses; compiled only under `cfg(loom)`. Must
//! never be a second implementation of a protocol: every operation here
//! calls the code that ships.

use super::heap::Heap;
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
    /// The count of the remote list's word (the blocks on it).
    pub pending: u32,
    /// Whether the remote list's word carries the parked flag.
    pub flagged: bool,
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
        let heaps: Vec<_> = (0..heaps.max(1)).map(|_| shipped::new_heap()).collect();
        let spans = spans.iter().map(|&(capacity, live)| shipped::new_span(heaps[0], capacity, live)).collect();
        Self { heaps, spans }
    }

    /// Puts span `i` at the head of heap 0's current list (setup).
    pub fn make_current(&self, i: usize) {
        // SAFETY: setup, before the model's threads start; the span is on
        // no list (the model's duty).
        unsafe { shipped::make_current(self.heaps[0], self.spans[i]) }
    }

    /// A thread without a heap frees block `block` of span `i` (`free`'s
    /// remote branch).
    pub fn free_remote(&self, i: usize, block: usize) {
        // SAFETY: the model frees each live block once.
        unsafe { shipped::free_remote(self.spans[i], shipped::block(self.spans[i], block)) }
    }

    /// Heap `h`'s thread frees block `block` of span `i` (`free`: the
    /// local path if `h` owns the span, else the remote one).
    pub fn free(&self, h: usize, i: usize, block: usize) {
        // SAFETY: the model frees each live block once, on `h`'s thread.
        unsafe { shipped::free_from(self.heaps[h], self.spans[i], shipped::block(self.spans[i], block)) }
    }

    /// Heap 0's owner makes span `i` current (`Heap::push_current`),
    /// which collects the displaced head and releases it if empty and
    /// quiescent.
    pub fn push_current(&self, i: usize) {
        // SAFETY: heap 0's thread only (the model's duty).
        unsafe { shipped::push_current(self.heaps[0], self.spans[i]) }
    }

    /// Heap 0's refill turn on span `i`, the head of its current list
    /// (`Heap::take_or_park`): the index of the block it handed out, or
    /// `None` if it parked the span.
    pub fn take_or_park(&self, i: usize) -> Option<usize> {
        // SAFETY: heap 0's thread only (the model's duty).
        let block = unsafe { shipped::take_or_park(self.heaps[0], self.spans[i]) };
        (!block.is_null()).then(|| shipped::block_index(self.spans[i], block))
    }

    /// Heap `h`'s `alloc_slow` prologue: rescues full spans if flagged.
    pub fn rescue_if_pending(&self, h: usize) -> bool {
        // SAFETY: heap `h`'s thread only (the model's duty).
        unsafe { shipped::rescue_if_pending(self.heaps[h]) }
    }

    /// Heap `h`'s `alloc_slow`: (span, block) it handed out, or `None`.
    pub fn alloc(&self, h: usize) -> Option<(usize, usize)> {
        // SAFETY: heap `h`'s thread only (the model's duty).
        let block = unsafe { shipped::alloc_slow(self.heaps[h]) };
        if block.is_null() {
            return None;
        }
        let i = self.spans.iter().position(|&s| shipped::contains(s, block)).expect("a block of no model span");
        Some((i, shipped::block_index(self.spans[i], block)))
    }

    /// Heap `h`'s thread exits: its spans are abandoned (`Heap::abandon`).
    pub fn exit(&self, h: usize) {
        // SAFETY: heap `h`'s thread only, after its last allocation (the
        // model's duty).
        unsafe { shipped::abandon(self.heaps[h]) }
    }

    /// The purge timer's sweep of the abandoned spans.
    pub fn sweep(&self) {
        shipped::sweep();
    }

    /// Span `i` as seen after the model's threads joined.
    pub fn view(&self, i: usize) -> SpanView {
        let span = self.spans[i];
        // SAFETY: the threads joined, or the caller owns the span (the
        // model's duty).
        let (kind, used, free, remote, inflight, released, discarded) = unsafe { shipped::observe(span) };
        // SAFETY: as above.
        let (pending, flagged) = unsafe { shipped::remote_word(span) };
        // SAFETY: as above.
        let owner_ptr = unsafe { shipped::owner(span) };
        let owner = self.heaps.iter().position(|&h| h == owner_ptr);
        let mut listed = if shipped::abandoned(span) { Listed::Abandoned } else { Listed::Nowhere };
        for (h, &heap) in self.heaps.iter().enumerate() {
            // SAFETY: as above.
            match unsafe { shipped::listed(heap, span) } {
                Some(true) => listed = Listed::Current(h),
                Some(false) => listed = Listed::Full(h),
                None => {}
            }
        }
        SpanView { kind, used, free, remote, inflight, pending, flagged, owner, released, discarded, listed }
    }
}

impl Drop for ClassSpans {
    fn drop(&mut self) {
        for &span in &self.spans {
            // SAFETY: nothing uses the spans any more.
            unsafe { shipped::drop_span(span) };
        }
        for &heap in &self.heaps {
            // SAFETY: nothing uses the heaps any more.
            unsafe { shipped::drop_heap(heap) };
        }
    }
}

/// The protocols' entry points for [`ClassSpans`]: a heap and class spans
/// built in model memory, driven through the shipped functions without TLS.
mod shipped {
    use core::ptr::NonNull;
    use core::sync::atomic::Ordering::*;

    use super::super::abandoned;
    use super::super::heap::{self, Heap};
    use super::super::remote;
    use super::super::size_class::span_bytes;
    use super::super::span::{self, Block, Span};

    /// A fresh heap with no spans, in a `Box` the caller frees with
    /// [`drop_heap`].
    pub(crate) fn new_heap() -> *mut Heap {
        Box::into_raw(Box::new(Heap::new()))
    }

    /// Frees a heap from [`new_heap`].
    ///
    /// # Safety
    ///
    /// `heap` came from [`new_heap`] and is used no more.
    pub(crate) unsafe fn drop_heap(heap: *mut Heap) {
        // SAFETY: caller.
        drop(unsafe { Box::from_raw(heap) });
    }

    /// A span of class 0 owned by `heap`, in model memory, holding
    /// `capacity` blocks of which `live` are handed out (the first `live`;
    /// the rest are on its free list); not on any list.
    pub(crate) fn new_span(heap: *mut Heap, capacity: u32, live: u32) -> *mut Span {
        let bytes = span_bytes(0);
        let layout = std::alloc::Layout::from_size_align(bytes, bytes).expect("span layout");
        // SAFETY: a non-zero size.
        let base = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) }).expect("loom model: out of memory");
        // SAFETY: fresh memory of the class's span size and alignment.
        let span = unsafe { Span::init(base, 0, Heap::id(heap)) };
        // SAFETY: the span is ours; `extend` hands out the first `capacity`
        // blocks onto `free`, then we take the first `live` off it.
        unsafe {
            (*span).capacity = capacity;
            Span::extend(span);
            for _ in 0..live {
                let block = (*span).free;
                (*span).free = (*block).next;
                (*span).used += 1;
            }
        }
        span
    }

    /// Frees a span from [`new_span`] (its memory; loom's objects in it
    /// belong to the execution).
    ///
    /// # Safety
    ///
    /// `span` came from [`new_span`] and is used no more.
    pub(crate) unsafe fn drop_span(span: *mut Span) {
        let bytes = span_bytes(0);
        let layout = std::alloc::Layout::from_size_align(bytes, bytes).expect("span layout");
        // SAFETY: allocated in `new_span` with this layout.
        unsafe { std::alloc::dealloc(span.cast(), layout) };
    }

    /// The `i`th block of `span`.
    pub(crate) fn block(span: *mut Span, i: usize) -> *mut Block {
        // SAFETY: in bounds of the span (the model's spans are class 0).
        unsafe { span.cast::<u8>().add(span::HEADER_BYTES + i * (*span).block_size as usize).cast() }
    }

    /// The index of `block` in `span`.
    pub(crate) fn block_index(span: *mut Span, block: *mut Block) -> usize {
        // SAFETY: the span's header is live (model memory).
        let size = unsafe { (*span).block_size } as usize;
        (block as usize - span as usize - span::HEADER_BYTES) / size
    }

    /// Whether `block` lies in `span`.
    pub(crate) fn contains(span: *mut Span, block: *mut Block) -> bool {
        (span as usize..span as usize + span_bytes(0)).contains(&(block as usize))
    }

    /// The span's owner (null while abandoned).
    ///
    /// # Safety
    ///
    /// `span` came from [`new_span`].
    pub(crate) unsafe fn owner(span: *mut Span) -> *mut Heap {
        // SAFETY: caller; an atomic load.
        unsafe { (*span).owner.load(Acquire).cast() }
    }

    /// Makes `span` the head of `heap`'s current list of class 0.
    ///
    /// # Safety
    ///
    /// The caller owns `heap` and `span`, which is on no list.
    pub(crate) unsafe fn make_current(heap: *mut Heap, span: *mut Span) {
        // SAFETY: caller.
        unsafe { span::push_front(&mut (*heap).current[0], span, span::empty()) };
    }

    /// `free`'s remote branch (a thread that does not own the span).
    ///
    /// # Safety
    ///
    /// `block` is a live block of `span`, freed once.
    pub(crate) unsafe fn free_remote(span: *mut Span, block: *mut Block) {
        // SAFETY: caller.
        unsafe { remote::free_remote(span, block) };
    }

    /// `Heap::push_current`: the owner makes `span` current, collecting
    /// the displaced head and releasing it if it is empty and quiescent.
    ///
    /// # Safety
    ///
    /// The caller owns `heap` and `span`, which is on no list.
    pub(crate) unsafe fn push_current(heap: *mut Heap, span: *mut Span) {
        // SAFETY: caller.
        unsafe { Heap::push_current(heap, 0, span) };
    }

    /// One turn of `Heap::alloc_slow`'s loop on `span`, the head of the
    /// current list of class 0 (`Heap::take_or_park`): a block, or null
    /// after parking the span.
    ///
    /// # Safety
    ///
    /// The caller owns `heap`; `span` heads its current list of class 0.
    pub(crate) unsafe fn take_or_park(heap: *mut Heap, span: *mut Span) -> *mut Block {
        // SAFETY: caller.
        unsafe { Heap::take_or_park(heap, span).cast() }
    }

    /// `Heap::alloc_slow` for class 0: rescue, refill from the current
    /// spans, else adopt an abandoned span (the models' page source is
    /// empty, so null when there is none).
    ///
    /// # Safety
    ///
    /// The caller owns `heap`.
    pub(crate) unsafe fn alloc_slow(heap: *mut Heap) -> *mut Block {
        // SAFETY: caller.
        unsafe { Heap::alloc_slow(heap, 0).cast() }
    }

    /// `free` by the thread owning `heap` (null: a thread without one).
    ///
    /// # Safety
    ///
    /// `block` is a live block of `span`, freed once; `heap` is the calling
    /// thread's in the model.
    pub(crate) unsafe fn free_from(heap: *mut Heap, span: *mut Span, block: *mut Block) {
        // SAFETY: caller.
        unsafe { heap::free_from(heap, span, block.cast()) };
    }

    /// The thread exit of `heap`'s thread: its spans go to the execution's
    /// abandoned set (`Heap::abandon`).
    ///
    /// # Safety
    ///
    /// The caller owns `heap` and uses it no more (until it allocates
    /// again, as a pooled heap would be reused).
    pub(crate) unsafe fn abandon(heap: *mut Heap) {
        // SAFETY: caller.
        unsafe { Heap::abandon(heap, abandoned::global()) };
    }

    /// The purge timer's sweep of the execution's abandoned set.
    pub(crate) fn sweep() {
        abandoned::global().sweep();
    }

    /// Whether `span` is on the abandoned list of class 0.
    pub(crate) fn abandoned(span: *mut Span) -> bool {
        abandoned::global().listed(0).contains(&span)
    }

    /// The start of `Heap::alloc_slow`: rescue full spans if a remote
    /// free flagged them. Returns whether it did.
    ///
    /// # Safety
    ///
    /// The caller owns `heap`.
    pub(crate) unsafe fn rescue_if_pending(heap: *mut Heap) -> bool {
        // SAFETY: caller.
        unsafe { Heap::rescue_if_pending(heap) }
    }

    /// Whether `span` is on `heap`'s current (`Some(true)`) or full
    /// (`Some(false)`) list of class 0, or on neither.
    ///
    /// # Safety
    ///
    /// The caller owns `heap`.
    pub(crate) unsafe fn listed(heap: *mut Heap, span: *mut Span) -> Option<bool> {
        // SAFETY: caller: the lists are ours.
        unsafe {
            for (head, current) in [((*heap).current[0], true), ((*heap).full[0], false)] {
                let mut s = head;
                while !s.is_null() && s != span::empty() {
                    if s == span {
                        return Some(current);
                    }
                    s = (*s).next;
                }
            }
        }
        None
    }

    /// The remote list word's count and whether the word is flagged.
    ///
    /// # Safety
    ///
    /// `span` came from [`new_span`].
    pub(crate) unsafe fn remote_word(span: *mut Span) -> (u32, bool) {
        // SAFETY: caller; atomic loads.
        unsafe {
            let word = (*span).thread_free.load(Acquire);
            (span::word_count(word), word.addr() & span::TF_PARKED != 0)
        }
    }

    /// What a model checks of a span after its threads joined: (kind,
    /// `used`, blocks on `free`, blocks on `thread_free`, `remote_inflight`,
    /// released, discarded).
    ///
    /// # Safety
    ///
    /// `span` came from [`new_span`]; the caller is its owner (remote
    /// freers may still run: their accesses are atomic) or the only thread.
    pub(crate) unsafe fn observe(span: *mut Span) -> (u32, u32, u32, u32, u32, bool, bool) {
        let count = |mut b: *mut Block| {
            let mut n = 0;
            while !b.is_null() {
                n += 1;
                // SAFETY: blocks of a quiescent span's lists.
                b = unsafe { (*b).next };
            }
            n
        };
        // SAFETY: caller; the cells are read through loom.
        unsafe {
            (
                (*span).state.load(Acquire) & span::KIND,
                (*span).used,
                if (*span).discarded.with(|d| *d) { 0 } else { count((*span).free) },
                count(span::untagged((*span).thread_free.load(Acquire))),
                (*span).remote_inflight.load(Acquire),
                (*span).released.with(|r| *r),
                (*span).discarded.with(|d| *d),
            )
        }
    }
}
