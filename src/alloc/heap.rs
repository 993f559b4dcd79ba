//! Thread heaps: per-thread lists of class spans, their refill (from the
//! current spans, an adopted abandoned span, or a fresh one), parking full
//! spans and rescuing them, and abandoning a heap's spans at thread exit.
//! Which heap a thread uses, where heap structs come from, and thread exit
//! itself are `thread.rs`'s.
//!
//! Fast path (`Heap::alloc`): one TLS load (`thread.rs`), a load of the
//! class's current span, a list pop and a branch. Frees by the owning
//! thread push onto the span's local list; frees by any other thread (or by
//! a thread without a heap) push onto the span's atomic `thread_free` list
//! (`remote.rs`).
//!
//! At thread exit (`Heap::abandon`), fully free spans go back to the page
//! heap, the rest move to the abandoned set (`abandoned.rs`), from which
//! other heaps adopt them and the purge thread frees them once empty.
//!
//! Invariants (with span.rs INV-1..5 and abandoned.rs AB-1..3):
//! - INV-4: a heap's lists are touched only by its thread (or, for the
//!   fallback heap, under `thread.rs`'s `FALLBACK_LOCK`).
//!
//! Must never: allocate through the Rust heap, take a parking_lot lock, pin
//! an epoch, or panic (internal failures abort with a static message).

use core::ptr;
use core::sync::atomic::Ordering::*;

use super::abandoned::{self, Abandoned};
#[cfg(not(loom))]
use super::accounting;
use super::remote::{self, now_ns};
#[cfg(not(loom))]
use super::size_class::span_bytes;
use super::size_class::CLASSES;
use super::span::{self, Block, Owner, Span};
#[cfg(not(loom))]
use crate::{os, page_heap};

/// A thread's heap (INV-4).
#[repr(C)]
pub(crate) struct Heap {
    /// What its spans know of it (span INV-3): first, so that its address
    /// is the heap's, [`Heap::id`].
    pub(super) owner: Owner,
    /// Per class: the head of the list of spans with (possibly) free
    /// blocks, or the `EMPTY` sentinel.
    pub(super) current: [*mut Span; CLASSES],
    /// Per class: spans with nothing free when last looked at.
    pub(super) full: [*mut Span; CLASSES],
    /// Link in the pool's free list (`thread.rs`).
    pub(super) pool_next: *mut Heap,
}

/// Frees `ptr`, a block of the class span `span`, on the thread whose heap
/// is `heap` (null: it has none): onto the span's local list if the heap
/// owns it, else remotely.
///
/// # Safety
///
/// `ptr` must be a live block handed out from `span`; `heap` is the calling
/// thread's heap or null.
#[inline(always)]
pub(super) unsafe fn free_from(heap: *mut Heap, span: *mut Span, ptr: *mut u8) {
    let block = ptr.cast::<Block>();
    // SAFETY: the span outlives its live blocks; `owner == id(heap)` means we
    // own it (INV-3), so its owner-only fields are ours (INV-1).
    unsafe {
        if !heap.is_null() && ptr::eq((*span).owner.load(Relaxed), Heap::id(heap)) {
            (*block).next = (*span).free;
            (*span).free = block;
            (*span).used -= 1;
            if (*span).used == 0 || Span::kind(span, Relaxed) != span::ACTIVE {
                Heap::after_local_free(heap, span);
            }
            return;
        }
        remote::free_remote(span, block);
    }
}

// A span's owner id is its heap's address.
static_assertions::const_assert_eq!(core::mem::offset_of!(Heap, owner), 0);

impl Heap {
    /// The id the heap's spans know it by (span INV-3): the address of its
    /// `owner`, which is the heap's own.
    #[inline(always)]
    pub(crate) fn id(heap: *mut Heap) -> *mut Owner {
        heap.cast()
    }

    /// A heap with no spans.
    pub(super) fn new() -> Heap {
        Heap {
            owner: Owner::new(),
            current: [span::empty(); CLASSES],
            full: [ptr::null_mut(); CLASSES],
            pool_next: ptr::null_mut(),
        }
    }

    /// The fast path: pop a block of `class` from the current span, else
    /// refill.
    ///
    /// # Safety
    ///
    /// The caller owns `heap` (INV-4), and `class < CLASSES`.
    #[inline(always)]
    pub(super) unsafe fn alloc(heap: *mut Heap, class: usize) -> *mut u8 {
        // SAFETY: `current` holds a live span of ours or `EMPTY`, whose
        // `free` is null (caller owns `heap`); `class < CLASSES` (caller).
        unsafe {
            debug_assert!(class < CLASSES);
            // Unchecked (caller: `class < CLASSES`), so the fast path has
            // no bounds check and no panic branch.
            let span = *(*heap).current.get_unchecked(class);
            let block = (*span).free;
            if !block.is_null() {
                (*span).free = (*block).next;
                (*span).used += 1;
                return block.cast();
            }
            Heap::alloc_slow(heap, class)
        }
    }

    /// Makes `span` the current span of `class`. The span it displaces is
    /// released if it has become empty, so an empty span never hides behind
    /// the head where nothing would look at it again.
    ///
    /// # Safety
    ///
    /// The caller owns `heap` and `span`, which is on no list.
    pub(super) unsafe fn push_current(heap: *mut Heap, class: usize, span: *mut Span) {
        // SAFETY: owner of heap and its spans (INV-1, 4).
        unsafe {
            let old = (*heap).current[class];
            if old != span::empty() {
                Span::collect(old);
                if (*old).used == 0 && Span::quiescent(old) {
                    span::unlink(&mut (*heap).current[class], old, span::empty());
                    Span::release(old);
                }
            }
            span::push_front(&mut (*heap).current[class], span, span::empty());
        }
    }

    /// Refills `class` and allocates from it: from the current spans,
    /// else from an adopted abandoned span, else from a fresh one.
    ///
    /// # Safety
    ///
    /// The caller owns `heap` (INV-4).
    #[cold]
    pub(super) unsafe fn alloc_slow(heap: *mut Heap, class: usize) -> *mut u8 {
        // SAFETY: the caller owns `heap` and thereby its spans (INV-1, 4).
        unsafe {
            Heap::rescue_if_pending(heap);
            loop {
                let span = (*heap).current[class];
                if span == span::empty() {
                    let adopted = abandoned::global().adopt(class, Heap::id(heap));
                    let Some(span) = adopted.or_else(|| new_span(class, heap)) else {
                        return ptr::null_mut();
                    };
                    Heap::push_current(heap, class, span);
                    continue;
                }
                let block = Heap::take_or_park(heap, span);
                if !block.is_null() {
                    return block;
                }
            }
        }
    }

    /// One turn of the refill loop on `span`, the head of `current`: a
    /// block from its free list, its remote frees or its never-used tail;
    /// with none left, it parks the span (`park_full`) and returns null.
    ///
    /// # Safety
    ///
    /// The caller owns `heap`; `span` heads one of its current lists.
    pub(super) unsafe fn take_or_park(heap: *mut Heap, span: *mut Span) -> *mut u8 {
        // SAFETY: owner of heap and span (INV-1, 4); `free` is not empty
        // once `collect` took a block or `extend` added some.
        unsafe {
            if (*span).free.is_null() && Span::collect(span) == 0 && !Span::extend(span) {
                Heap::park_full(heap, span);
                return ptr::null_mut();
            }
            Span::pop(span)
        }
    }

    /// Moves an exhausted span from `current` to the full list.
    ///
    /// # Safety
    ///
    /// The caller owns `heap`; `span` is the head of `current[class]`.
    unsafe fn park_full(heap: *mut Heap, span: *mut Span) {
        // SAFETY: owner of heap and span (INV-1, 4).
        unsafe {
            let class = (*span).class as usize;
            span::unlink(&mut (*heap).current[class], span, span::empty());
            (*span).parked_used.store((*span).used, Relaxed);
            (*span).parked_at.store(now_ns(), Relaxed);
            // A new epoch: a thief holding an older parked word fails its CAS.
            let epoch = ((*span).state.load(Relaxed) & !span::KIND).wrapping_add(span::KIND + 1);
            // Release: a freer that sees the flag set below sees this word
            // (and `parked_used`, `parked_at`) too.
            (*span).state.store(epoch | span::PARKED, Release);
            // Flag `thread_free`, only while it is empty: a remote free lands
            // either before (collect it) or on the flagged word, whose
            // freers see the span parked and tell us (span INV-6).
            if Span::flag_parked(span) {
                span::push_front(&mut (*heap).full[class], span, ptr::null_mut());
            } else if Span::unpark(span) {
                Span::collect(span);
                Heap::push_current(heap, class, span);
            } else if Span::quiescent(span) {
                Span::release(span); // stolen: empty
            } else {
                // Stolen, but the thief is still at it: look again later.
                span::push_front(&mut (*heap).full[class], span, ptr::null_mut());
                (*heap).owner.full_pending.store(true, Relaxed);
            }
        }
    }

    /// The start of [`Heap::alloc_slow`]: rescue full spans if a remote
    /// free flagged them. Returns whether it did.
    ///
    /// # Safety
    ///
    /// The caller owns `heap`.
    pub(super) unsafe fn rescue_if_pending(heap: *mut Heap) -> bool {
        // SAFETY: caller.
        unsafe {
            if (*heap).owner.full_pending.swap(false, Acquire) {
                Heap::rescue_full(heap);
                return true;
            }
        }
        false
    }

    /// Brings full spans that received remote frees back to `current`.
    ///
    /// # Safety
    ///
    /// The caller owns `heap`.
    unsafe fn rescue_full(heap: *mut Heap) {
        // SAFETY: owner of heap and its spans (INV-1, 4).
        unsafe {
            for class in 0..CLASSES {
                let mut span = (*heap).full[class];
                while !span.is_null() {
                    let next = (*span).next;
                    let stolen = Span::kind(span, Acquire) == span::STOLEN;
                    if stolen || Span::has_remote(span) {
                        if stolen || !Span::unpark(span) {
                            // Stolen: empty; release once the thief is done.
                            if Span::quiescent(span) {
                                span::unlink(&mut (*heap).full[class], span, ptr::null_mut());
                                Span::release(span);
                            } else {
                                (*heap).owner.full_pending.store(true, Relaxed);
                            }
                        } else {
                            span::unlink(&mut (*heap).full[class], span, ptr::null_mut());
                            Span::collect(span);
                            if (*span).used == 0 && Span::quiescent(span) {
                                Span::release(span);
                            } else {
                                Heap::push_current(heap, class, span);
                            }
                        }
                    }
                    span = next;
                }
            }
        }
    }

    /// After a local free that emptied a span or hit a full one.
    ///
    /// # Safety
    ///
    /// The caller owns `heap` and `span`.
    #[cold]
    unsafe fn after_local_free(heap: *mut Heap, span: *mut Span) {
        // SAFETY: owner of heap and span (INV-1, 4).
        unsafe {
            let class = (*span).class as usize;
            if Span::kind(span, Relaxed) != span::ACTIVE {
                span::unlink(&mut (*heap).full[class], span, ptr::null_mut());
                // The block just freed was live, so the span cannot have been
                // emptied and stolen (span INV-4).
                let active = Span::unpark(span);
                debug_assert!(active, "a span with a live block was stolen");
                // Second in line, uncollected: the current head keeps
                // serving, and this span, with one free block, is not
                // parked again by the next allocation. Its word keeps the
                // flag until its next collect (span INV-6); remote frees
                // meanwhile take the slow path.
                span::insert_second(&mut (*heap).current[class], span, span::empty());
            }
            if (*span).used == 0 && (*heap).current[class] != span {
                Span::collect(span);
                if (*span).used == 0 && Span::quiescent(span) {
                    span::unlink(&mut (*heap).current[class], span, span::empty());
                    Span::release(span);
                }
            }
        }
    }

    /// Abandons every span of an exiting thread's heap to `set`.
    ///
    /// # Safety
    ///
    /// The caller owned `heap` and nobody uses it any more.
    pub(super) unsafe fn abandon(heap: *mut Heap, set: &Abandoned) {
        let mut locked = set.lock();
        // SAFETY: the heap and its spans were ours (caller); each span is
        // handed to the set, and the lists are reset after the walk.
        unsafe {
            for class in 0..CLASSES {
                for list in [(*heap).current[class], (*heap).full[class]] {
                    let mut span = list;
                    while !span.is_null() && span != span::empty() {
                        let next = (*span).next;
                        locked.abandon(span);
                        span = next;
                    }
                }
                (*heap).current[class] = span::empty();
                (*heap).full[class] = ptr::null_mut();
            }
        }
    }
}

/// Maps a fresh span for `class` owned by `heap`.
#[cfg(not(loom))]
fn new_span(class: usize, heap: *mut Heap) -> Option<*mut Span> {
    let bytes = span_bytes(class);
    let heap_pages = page_heap::global();
    let base = heap_pages.alloc_span_aligned(bytes / heap_pages.page_size(), bytes, false).ok()?;
    if !span::fits_word(base.as_ptr(), bytes) {
        // Above the address bits of a `thread_free` word (span INV-6): only
        // a kernel that maps user memory above 2^48 unasked would give one.
        os::abort_with("discardable: a span above the 48-bit address space\n");
    }
    // SAFETY: `base` is a fresh span of `bytes`, aligned to `bytes`, ours.
    let span = unsafe {
        heap_pages.tag(base, bytes, true);
        accounting::IN_USE.fetch_add(bytes, Relaxed);
        Span::init(base, class, Heap::id(heap))
    };
    super::direct::after_growth();
    Some(span)
}

/// Under loom the page source is empty: the models build their spans up
/// front, so a refill that finds nothing to adopt fails as if the OS
/// refused memory.
#[cfg(loom)]
fn new_span(_class: usize, _heap: *mut Heap) -> Option<*mut Span> {
    None
}
