//! `DiscardAlloc`: a strict mmap-backed global allocator that gives memory
//! back.
//!
//! Every byte comes from the page heap's mmap segments. Requests up to
//! 64 KiB (alignment up to 128) are served from size classes on class spans
//! through thread-local heaps; larger or more aligned ones get spans of their
//! own. Freed spans return to the page heap, which keeps a bounded retained
//! cache and gives the rest back with `MADV_DONTNEED`; a timer thread gives
//! the retained pages back after a short idle delay.
//!
//! # The reentrancy rules of the allocation path
//!
//! `alloc`, `dealloc` and `realloc`, and everything they call, must never:
//! - take a parking_lot lock (it allocates when contended; the only locks
//!   here are `sync::RawLock` spin locks with short critical sections);
//! - pin a crossbeam-epoch guard, or use `std::sync` types;
//! - allocate through the Rust heap (`Box`, `Vec`, `format!`), or panic;
//!   internal failures abort with a static message (`os::abort_with`), and
//!   an OS refusal returns null;
//! - spawn a `std::thread` (the purge timer is a raw pthread started where
//!   no allocator lock is held); the manager thread is never spawned here;
//! - use TLS that has a destructor, or a TLS access that is a call: the
//!   thread heap pointer is an initial-exec TLS slot on x86-64 Linux (one
//!   `fs`-relative load, also in the `LD_PRELOAD` library) and a
//!   destructor-free `Cell` elsewhere, and thread exit is seen through a
//!   pthread key destructor;
//! - stay inconsistent across `fork`: `pthread_atfork` handlers take every
//!   allocator lock before the fork and release them in both processes.

pub(crate) mod abandoned;
mod accounting;
mod direct;
mod heap;
#[cfg(loom)]
pub(crate) mod model;
mod purge;
mod remote;
mod size_class;
mod span;
mod thread;

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering::Relaxed;

use self::size_class::{class_for, class_of, span_bytes, CLASS_ALIGN_MAX, SMALL_MAX};
use self::span::Span;
use crate::page_heap::{self, Release};

/// Bytes of spans `DiscardAlloc` holds for strong allocations (0 when it is
/// not the global allocator and unused).
pub(crate) fn strong_bytes() -> usize {
    accounting::IN_USE.load(Relaxed)
}

/// Direct reclaims requested by allocating threads so far.
pub(crate) fn direct_reclaims() -> u64 {
    direct::REQUESTS.load(Relaxed)
}

/// Installs the direct-reclaim hook of the global manager.
pub(crate) fn install_direct_reclaim(process_limit: usize, wake_fd: i32) {
    direct::install(process_limit, wake_fd);
}

/// Marks the calling thread (the manager's) as never waiting for itself.
pub(crate) fn exempt_from_direct_reclaim() {
    direct::exempt_this_thread();
}

/// The manager finished a pass: release threads waiting in direct reclaim.
pub(crate) fn direct_reclaim_done() {
    direct::pass_done();
}

/// The global allocator: `#[global_allocator] static A: DiscardAlloc = DiscardAlloc::new();`
///
/// ```
/// use discardable::DiscardAlloc;
///
/// static A: DiscardAlloc = DiscardAlloc::new();
/// let layout = std::alloc::Layout::from_size_align(100, 8).unwrap();
/// // SAFETY: a non-zero-size layout; the block is freed with the same layout.
/// unsafe {
///     let p = std::alloc::GlobalAlloc::alloc(&A, layout);
///     assert!(!p.is_null());
///     std::alloc::GlobalAlloc::dealloc(&A, p, layout);
/// }
/// assert!(DiscardAlloc::stats().mapped > 0);
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct DiscardAlloc {
    _private: (),
}

/// The allocator's accounting, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AllocStats {
    /// Address space mapped by the page heap (shared with discardable
    /// memory).
    pub mapped: usize,
    /// Bytes of spans the allocator holds for strong allocations (class
    /// spans and large spans, whole).
    pub in_use: usize,
    /// Free pages the page heap still keeps committed (bounded; released
    /// by the timer after a short idle delay).
    pub retained: usize,
}

impl DiscardAlloc {
    /// The allocator. `const`, so it can initialise a `static`.
    pub const fn new() -> Self {
        Self { _private: () }
    }

    /// A snapshot of the accounting.
    pub fn stats() -> AllocStats {
        let heap = page_heap::global().stats();
        AllocStats { mapped: heap.mapped, in_use: accounting::IN_USE.load(Relaxed), retained: heap.retained }
    }

    /// Serves `size` bytes aligned to `align` (any power of two below the
    /// segment size); null if the OS refuses.
    #[inline]
    fn allocate(size: usize, align: usize, zeroed: bool) -> *mut u8 {
        if size <= SMALL_MAX && align <= CLASS_ALIGN_MAX {
            let class = if align <= 8 { class_of(size) } else { class_for(size, align) };
            // SAFETY: `class_of` and `class_for` map `1..=SMALL_MAX` (with
            // an alignment up to `CLASS_ALIGN_MAX`) into `0..CLASSES`
            // (size_class.rs, tested exhaustively there).
            let p = unsafe { thread::alloc(class) };
            if zeroed && !p.is_null() {
                // SAFETY: a fresh block of at least `size` bytes.
                unsafe { p.write_bytes(0, size) };
            }
            return p;
        }
        Self::allocate_large(size, align, zeroed)
    }

    #[cold]
    fn allocate_large(size: usize, align: usize, zeroed: bool) -> *mut u8 {
        let heap = page_heap::global();
        let page = heap.page_size();
        let pages = size.div_ceil(page).max(1);
        match heap.alloc_span_aligned(pages, align.max(page), zeroed) {
            Ok(p) => {
                accounting::IN_USE.fetch_add(pages * page, Relaxed);
                direct::after_growth();
                p.as_ptr()
            }
            Err(_) => ptr::null_mut(),
        }
    }

    /// Frees a block whose class span is `span`, or a large span.
    ///
    /// # Safety
    ///
    /// `p` must be live and served by this allocator as `small` says.
    #[inline]
    unsafe fn release(p: *mut u8, small: Option<*mut Span>) {
        match small {
            // SAFETY: forwarded: `p` is a live block of `span`.
            Some(span) => unsafe { thread::free(span, p) },
            None => {
                // SAFETY: forwarded: `p` is the start of a live large span.
                let bytes = unsafe { page_heap::global().free_span(NonNull::new_unchecked(p), Release::Retain) };
                accounting::returned(bytes);
            }
        }
        purge::maybe_start();
    }

    /// The class span of a small Rust allocation (by its layout), if small.
    #[inline(always)]
    fn span_by_layout(p: *mut u8, layout: Layout) -> Option<*mut Span> {
        let (size, align) = (layout.size(), layout.align());
        if size <= SMALL_MAX && align <= CLASS_ALIGN_MAX {
            let class = if align <= 8 { class_of(size) } else { class_for(size, align) };
            Some(Span::of(p, span_bytes(class)))
        } else {
            None
        }
    }

    /// The class span of any live pointer from this allocator (no layout:
    /// the C entry points), by the page heap's span tags.
    ///
    /// # Safety
    ///
    /// `p` must be a live allocation of this allocator.
    #[inline]
    unsafe fn span_by_address(p: *mut u8) -> Option<*mut Span> {
        // SAFETY: `p` is live (caller), so it lies in a live span.
        unsafe { page_heap::global().tagged_span_of(NonNull::new_unchecked(p)) }.map(|s| s.as_ptr().cast())
    }

    /// Usable size of a live allocation `p` (the C `malloc_usable_size`).
    ///
    /// # Safety
    ///
    /// `p` must be a live allocation of this allocator.
    pub unsafe fn usable_size(p: *mut u8) -> usize {
        // SAFETY: forwarded from the caller.
        match unsafe { Self::span_by_address(p) } {
            // SAFETY: a live class span's header is initialised.
            Some(span) => unsafe { (*span).block_size as usize },
            // SAFETY: `p` is the start of a live large span (caller).
            None => unsafe { page_heap::global().span_bytes(NonNull::new_unchecked(p)) },
        }
    }

    /// Starts the purge timer now (the `LD_PRELOAD` library calls this at
    /// load time, outside every allocator lock). Idempotent.
    pub fn start_purge_timer() {
        purge::start();
    }

    /// `malloc`-style allocation (alignment 16) for the C entry points.
    #[inline]
    pub fn c_alloc(size: usize, align: usize, zeroed: bool) -> *mut u8 {
        Self::allocate(size.max(1), align.max(16), zeroed)
    }

    /// `free`-style release for the C entry points; null is ignored.
    ///
    /// # Safety
    ///
    /// `p` must be null or a live allocation of this allocator.
    #[inline]
    pub unsafe fn c_free(p: *mut u8) {
        if p.is_null() {
            return;
        }
        // SAFETY: forwarded from the caller.
        unsafe { Self::release(p, Self::span_by_address(p)) }
    }

    /// `realloc`-style resize for the C entry points.
    ///
    /// # Safety
    ///
    /// `p` must be null or a live allocation of this allocator.
    pub unsafe fn c_realloc(p: *mut u8, new_size: usize) -> *mut u8 {
        if p.is_null() {
            return Self::c_alloc(new_size, 16, false);
        }
        // SAFETY: forwarded from the caller.
        let old = unsafe { Self::usable_size(p) };
        if new_size <= old && new_size * 2 > old {
            return p;
        }
        let q = Self::c_alloc(new_size, 16, false);
        if !q.is_null() {
            // SAFETY: both live, distinct, each at least `min` bytes.
            unsafe {
                ptr::copy_nonoverlapping(p, q, old.min(new_size));
                Self::c_free(p);
            }
        }
        q
    }
}

// SAFETY: `alloc` returns null or a block of at least `layout.size()` bytes
// aligned to `layout.align()` that no other live allocation overlaps (class
// blocks are disjoint slices of class spans; large spans are disjoint page
// runs); `dealloc` finds the same span from the same layout.
unsafe impl GlobalAlloc for DiscardAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::allocate(layout.size(), layout.align(), false)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::allocate(layout.size(), layout.align(), true)
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: `p` was allocated by us with `layout` (GlobalAlloc contract).
        unsafe { Self::release(p, Self::span_by_layout(p, layout)) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        let old_span = Self::span_by_layout(p, layout);
        let new_small = new_size <= SMALL_MAX && align <= CLASS_ALIGN_MAX;
        match old_span {
            // SAFETY: a live class span's header is initialised.
            Some(span) if new_small && new_size <= unsafe { (*span).block_size } as usize => {
                let class = if align <= 8 { class_of(new_size) } else { class_for(new_size, align) };
                // SAFETY: as above.
                if class == unsafe { (*span).class } as usize {
                    return p;
                }
            }
            None if !new_small => {
                let heap = page_heap::global();
                let page = heap.page_size();
                // SAFETY: `p` is the start of our live large span.
                let old_bytes = unsafe { heap.span_bytes(NonNull::new_unchecked(p)) };
                let new_pages = new_size.div_ceil(page);
                if new_pages * page <= old_bytes && new_pages * page * 2 > old_bytes {
                    return p;
                }
                // SAFETY: as above; growing keeps the start and contents.
                if new_pages * page > old_bytes && unsafe { heap.try_grow(NonNull::new_unchecked(p), new_pages) } {
                    accounting::IN_USE.fetch_add(new_pages * page - old_bytes, Relaxed);
                    direct::after_growth();
                    return p;
                }
            }
            _ => {}
        }
        let q = Self::allocate(new_size, align, false);
        if !q.is_null() {
            // SAFETY: both blocks are live, distinct and at least
            // `min(old, new)` bytes long; `p` is freed with its layout.
            unsafe {
                ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                Self::release(p, old_span);
            }
        }
        q
    }
}
