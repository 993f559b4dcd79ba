//! A class span: one page-heap span, aligned to its own size, holding
//! blocks of one size class, with its header in its first 128 bytes.
//!
//! Equation (after mimalloc's `types.h`), for a span owned by a live heap:
//! `used == handed_out - |thread_free|`, where `handed_out` counts blocks
//! not on `free` and below `bump`; `used == 0` with an empty `thread_free`
//! means every block is free and the span may go back to the page heap.
//!
//! Threads:
//! - owner-only fields (`free`, `used`, `bump`, `next`, `prev`) are touched
//!   only by the owning heap's thread, or by whoever holds the abandoned
//!   set's lock while `owner` is null (INV-1, abandoned.rs AB-1);
//! - `state` packs a kind and a park epoch. The kind moves ACTIVE → PARKED
//!   (owner, when the span is full and goes on its full list, publishing
//!   `used` in `parked_used` and bumping the epoch), PARKED → ACTIVE (owner,
//!   CAS) or PARKED → STOLEN (a remote thread that, after its own free,
//!   reads the parked word, then finds the flagged list's count equal to
//!   `parked_used` (INV-6), and CASes from exactly the word it read: a re-park in between changes the
//!   epoch and fails the CAS, so a stale count can never steal a span with
//!   live blocks). Exactly one CAS wins. A stolen span is empty: the thief
//!   gives its block pages back to the OS and the owner later unlinks and
//!   frees it without reading its lists. This is how memory freed remotely
//!   returns while its owner is idle (INV-4). Spans parked less than
//!   [`STEAL_AFTER_NS`] ago are left to their (evidently busy) owner;
//! - `thread_free` is a Treiber stack: any thread pushes, only the owner
//!   (or the lock holder of an abandoned span) takes it whole with a swap,
//!   so there is no ABA (INV-2). Its word packs the list's head with a
//!   flag, [`TF_PARKED`], and a count above the address bits. The owner
//!   sets the flag when it parks the span, by a CAS from the empty word
//!   only ([`Span::flag_parked`]); only a swap that takes the list clears
//!   it ([`Span::collect`]) (INV-6);
//! - `owner` equals a heap's [`Owner`] id only while that heap's thread owns
//!   the span (INV-3). The span knows no more of its heap than that id and
//!   the pending flag in it, which a remote freer raises.
//!
//! - INV-5: a remote freer that still reads or writes the header after its
//!   block is published (to tell the owner, or to steal the span) counts
//!   itself in `remote_inflight` before publishing and leaves after its
//!   last access. A span is given back to the page heap only when every
//!   block is free *and* no remote freer is in flight
//!   ([`Span::quiescent`]); otherwise it stays listed and is looked at
//!   again. Every other remote freer does nothing after its push: its one
//!   CAS is its last access, and what any release needs first (the owner's
//!   swap that takes its block, or a thief's read of the count its push
//!   raised) synchronises with it.
//! - INV-6: every push raises the word's count in the same CAS, and only
//!   the swap that takes the list resets it, so the count is exactly the
//!   list's length; on a flagged word (whose list was empty when the flag
//!   was set) it is the blocks freed remotely since the park. Only two pushes onto a flagged word need the header after
//!   it, and each knows it from the word it pushes onto: the first (count
//!   0), which tells the owner (the flag stays up until the owner collects,
//!   so no later push need), and one whose count may reach `parked_used`,
//!   which may steal the span (INV-4).
//!
//! Under `cfg(loom)` the header's atomics are loom's and the header carries
//! two model cells (`released`, `discarded`), so `loom-tests/`
//! (`remote_free`, `abandon`) checks INV-4, INV-5 and INV-6 on this code.
//!
//! Must never: allocate, take a lock other than the page heap's (which
//! [`Span::release`] takes), or panic (the global allocator runs it).

use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering::*;

#[cfg(not(loom))]
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64};

// Under loom the header's atomics are loom's, so the models in `loom-tests/`
// check the remote-free protocol on this very code.
#[cfg(loom)]
use crate::sync::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64};

#[cfg(not(loom))]
use super::accounting;
use super::size_class::{block_size, span_bytes, CLASS_ALIGN_MAX};
#[cfg(not(loom))]
use crate::page_heap;

/// The flag bit of a `thread_free` word (INV-2, INV-6): set while the
/// span is parked (and, after the owner took it back, until it collects).
/// Blocks are 8-byte aligned, so the bit is never part of a block's
/// address.
pub(crate) const TF_PARKED: usize = 1;
/// Where a `thread_free` word's count (of the blocks on its list) starts:
/// above every user-space
/// address (47 bits on x86-64 Linux, 48 on AArch64 without a high mmap
/// hint; `new_span` refuses a span above).
pub(crate) const TF_COUNT_SHIFT: u32 = 48;
/// The address bits of a `thread_free` word.
const TF_ADDR: usize = ((1 << TF_COUNT_SHIFT) - 1) & !TF_PARKED;

static_assertions::const_assert_eq!(usize::BITS, 64);

/// The block list of a `thread_free` word, without its flag and count.
#[inline(always)]
pub(crate) fn untagged(word: *mut Block) -> *mut Block {
    word.map_addr(|a| a & TF_ADDR)
}

/// The count of a `thread_free` word (INV-6).
#[inline(always)]
pub(crate) fn word_count(word: *mut Block) -> u32 {
    (word.addr() >> TF_COUNT_SHIFT) as u32
}

/// Whether a span at `base` has an address that fits a `thread_free` word.
#[cfg(not(loom))]
#[inline]
pub(crate) fn fits_word(base: *mut u8, bytes: usize) -> bool {
    (base.addr() + bytes) >> TF_COUNT_SHIFT == 0
}

/// State kind: the owner allocates from it or may.
pub(crate) const ACTIVE: u32 = 0;
/// State kind: full, on the owner's full list.
pub(crate) const PARKED: u32 = 1;
/// State kind: emptied by remote frees while parked and taken by the thief.
pub(crate) const STOLEN: u32 = 2;
/// The kind bits of the state word; the rest is the park epoch.
pub(crate) const KIND: u32 = 3;
/// A span emptied by remote frees sooner than this after it was parked
/// belongs to a busy owner, which will take it back itself: stealing it
/// would only trade a refill for an `madvise` and page faults.
pub(crate) const STEAL_AFTER_NS: u64 = 20_000_000;

/// A span's owner as the span sees it: an id compared by address (INV-3),
/// and the owner's pending flag. A heap embeds one as its first field; its
/// address is the heap's id, and a remote freer reaches nothing of the heap
/// but this flag.
#[repr(C)]
pub(crate) struct Owner {
    /// Set by a remote free into one of the owner's full spans. (A loom
    /// atomic under loom, so the models see the remote freer's hand-over
    /// to the owner.)
    pub(crate) full_pending: AtomicBool,
}

impl Owner {
    /// An owner with nothing pending.
    pub(crate) fn new() -> Self {
        Self { full_pending: AtomicBool::new(false) }
    }
}

/// A free block: its first word links to the next.
#[repr(C)]
pub(crate) struct Block {
    pub(crate) next: *mut Block,
}

/// A zero-sized field that starts a new cache line in a `repr(C)` struct:
/// the fields after it begin at the next multiple of 64 bytes.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
pub(crate) struct LineStart;

/// The header of a class span (INV-1..5 in the module docs).
///
/// Its fields sit in two cache lines by who writes them: the owner's
/// fields with the read-mostly ones every free reads, and the remote-free
/// list with its counters, which every remote free writes. Remote freers
/// then only read the line the owner writes on every allocation, never
/// take it. (With everything on one line, a producer/consumer workload
/// spent about 40 % of its time moving that line between cores; a third
/// line for the read-mostly fields made local frees touch two lines and
/// single-threaded churn 7-15 % slower.)
#[repr(C, align(128))]
pub(crate) struct Span {
    // Line 0: the owner's (INV-1), written on every allocation, and the
    // read-mostly fields every free reads.
    /// Owner-local free list.
    pub(crate) free: *mut Block,
    /// Blocks handed out and not freed back to the owner.
    pub(crate) used: u32,
    /// Index of the first never-used block.
    pub(crate) bump: u32,
    /// Neighbours in the owner's (or the abandoned) list.
    pub(crate) next: *mut Span,
    pub(crate) prev: *mut Span,
    /// The owning heap's id, or null while abandoned.
    pub(crate) owner: AtomicPtr<Owner>,
    /// Kind ([`ACTIVE`], [`PARKED`], [`STOLEN`]) in the low bits, park epoch
    /// above (INV-4).
    pub(crate) state: AtomicU32,
    /// Blocks that fit.
    pub(crate) capacity: u32,
    /// Block size in bytes.
    pub(crate) block_size: u32,
    /// Size class.
    pub(crate) class: u8,

    // Line 1: written by remote freers.
    pub(crate) _remote: LineStart,
    /// Blocks freed by other threads, with [`TF_PARKED`] in the low bit and
    /// the flagged list's count from bit [`TF_COUNT_SHIFT`] (INV-6).
    pub(crate) thread_free: AtomicPtr<Block>,
    /// Remote freers between their first and last access to this header
    /// (INV-5): the span is released only when this is zero.
    pub(crate) remote_inflight: AtomicU32,
    /// `used` when the span was parked (stable while parked; read by a
    /// thief).
    pub(crate) parked_used: AtomicU32,
    /// When the span was last parked (monotonic ns; read by a thief).
    pub(crate) parked_at: AtomicU64,
    /// Loom models only: written when the span is released (the model's
    /// stand-in for giving it back to the page heap). Every remote freer
    /// reads it around its accesses to the header, so loom rejects an access
    /// that is not ordered before the release (INV-5).
    #[cfg(loom)]
    pub(crate) released: crate::sync::UnsafeCell<bool>,
    /// Loom models only: written when a thief steals the span and discards
    /// its block pages; the owner's `collect` reads it, so loom rejects an
    /// owner that reads the lists of a stolen span.
    #[cfg(loom)]
    pub(crate) discarded: crate::sync::UnsafeCell<bool>,
}

/// Bytes before a span's first block: the header's slot (two cache lines).
#[cfg(not(loom))]
pub(crate) const HEADER_BYTES: usize = CLASS_ALIGN_MAX;
/// Under loom the header holds loom's atomics and cells, which are larger,
/// so the blocks start further in (still aligned to [`CLASS_ALIGN_MAX`]).
#[cfg(loom)]
pub(crate) const HEADER_BYTES: usize = core::mem::size_of::<Span>().next_multiple_of(CLASS_ALIGN_MAX);

#[cfg(not(loom))]
static_assertions::const_assert_eq!(core::mem::offset_of!(Span, thread_free), 64);
static_assertions::const_assert!(core::mem::size_of::<Span>() <= HEADER_BYTES);

/// The sentinel every heap's `current` slot points to when it has no span:
/// no free block, nothing to bump, so the fast path falls to the slow path
/// without a null check. Never written. (Not under loom, whose atomics have
/// no `const` constructor: there [`empty`] is a dangling address that the
/// modelled paths only compare against.)
#[cfg(not(loom))]
pub(crate) static EMPTY: SyncSpan = SyncSpan(Span {
    free: ptr::null_mut(),
    used: 0,
    bump: 0,
    next: ptr::null_mut(),
    prev: ptr::null_mut(),
    owner: AtomicPtr::new(ptr::null_mut()),
    state: AtomicU32::new(ACTIVE),
    capacity: 0,
    block_size: 0,
    class: 0,
    _remote: LineStart,
    thread_free: AtomicPtr::new(ptr::null_mut()),
    remote_inflight: AtomicU32::new(0),
    parked_used: AtomicU32::new(0),
    parked_at: AtomicU64::new(0),
});

/// [`EMPTY`]'s wrapper, so the static may hold raw pointers.
#[cfg(not(loom))]
#[repr(transparent)]
pub(crate) struct SyncSpan(Span);

// SAFETY: `EMPTY` is never written: the slow path checks for it before any
// write (see `Heap::alloc_slow`).
#[cfg(not(loom))]
unsafe impl Sync for SyncSpan {}

/// The address of [`EMPTY`].
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn empty() -> *mut Span {
    ptr::addr_of!(EMPTY.0).cast_mut()
}

/// Under loom: a well-aligned address no span has, never dereferenced by
/// the modelled paths (the fast path, which reads it, is not modelled).
#[cfg(loom)]
pub(crate) fn empty() -> *mut Span {
    NonNull::<Span>::dangling().as_ptr()
}

impl Span {
    /// Initialises a fresh span at `base` (of `span_bytes(class)` bytes,
    /// aligned to that) for `owner`.
    ///
    /// # Safety
    ///
    /// `base` must be a fresh page-heap span of that size, owned by the caller.
    pub(crate) unsafe fn init(base: NonNull<u8>, class: usize, owner: *mut Owner) -> *mut Span {
        let span = base.as_ptr().cast::<Span>();
        let size = block_size(class);
        let capacity = (span_bytes(class) - HEADER_BYTES) / size;
        // SAFETY: the span is fresh and ours (caller), aligned for `Span`.
        unsafe {
            span.write(Span {
                free: ptr::null_mut(),
                used: 0,
                bump: 0,
                next: ptr::null_mut(),
                prev: ptr::null_mut(),
                owner: AtomicPtr::new(owner),
                state: AtomicU32::new(ACTIVE),
                capacity: capacity as u32,
                block_size: size as u32,
                class: class as u8,
                _remote: LineStart,
                thread_free: AtomicPtr::new(ptr::null_mut()),
                remote_inflight: AtomicU32::new(0),
                parked_used: AtomicU32::new(0),
                parked_at: AtomicU64::new(0),
                #[cfg(loom)]
                released: crate::sync::UnsafeCell::new(false),
                #[cfg(loom)]
                discarded: crate::sync::UnsafeCell::new(false),
            })
        };
        span
    }

    /// The span holding the block at `ptr` of a class whose spans are
    /// `span_bytes` long (address masking).
    #[inline(always)]
    pub(crate) fn of(ptr: *mut u8, span_bytes: usize) -> *mut Span {
        (ptr as usize & !(span_bytes - 1)) as *mut Span
    }

    /// The kind of the span's state word ([`ACTIVE`], [`PARKED`] or
    /// [`STOLEN`]).
    ///
    /// # Safety
    ///
    /// `span` is live.
    #[inline(always)]
    pub(crate) unsafe fn kind(span: *mut Span, order: core::sync::atomic::Ordering) -> u32 {
        // SAFETY: live span (caller).
        unsafe { (*span).state.load(order) & KIND }
    }

    /// Takes a parked span back for its owner: `true` if it is active
    /// again, `false` if a remote thread stole it (it is empty: release it
    /// once quiescent).
    ///
    /// # Safety
    ///
    /// The caller owns the span (INV-1).
    pub(crate) unsafe fn unpark(span: *mut Span) -> bool {
        // SAFETY: live span (caller); only the owner parks, so the word is
        // either the parked word it wrote or that word turned STOLEN.
        unsafe {
            let cur = (*span).state.load(Acquire);
            cur & KIND == PARKED && (*span).state.compare_exchange(cur, cur & !KIND, AcqRel, Acquire).is_ok()
        }
    }

    /// Hands out the first block of `free` (which must not be empty).
    ///
    /// # Safety
    ///
    /// The caller owns `span` (INV-1) and its `free` list is not empty.
    #[inline(always)]
    pub(crate) unsafe fn pop(span: *mut Span) -> *mut u8 {
        // SAFETY: owner-only fields of a live span; `free` holds a block
        // (caller).
        unsafe {
            let block = (*span).free;
            (*span).free = (*block).next;
            (*span).used += 1;
            block.cast()
        }
    }

    /// Moves up to a page worth of never-used blocks onto `free`; returns
    /// whether any were added.
    ///
    /// # Safety
    ///
    /// The caller owns `span` (INV-1) and it is not [`EMPTY`].
    pub(crate) unsafe fn extend(span: *mut Span) -> bool {
        // SAFETY: owner-only fields of a live span (caller).
        unsafe {
            let (bump, cap, size) = ((*span).bump, (*span).capacity, (*span).block_size as usize);
            if bump >= cap {
                return false;
            }
            let n = ((4096 / size).max(1) as u32).min(cap - bump);
            let base = span.cast::<u8>().add(HEADER_BYTES);
            let mut head = (*span).free;
            for i in (bump..bump + n).rev() {
                let block = base.add(i as usize * size).cast::<Block>();
                (*block).next = head;
                head = block;
            }
            (*span).free = head;
            (*span).bump = bump + n;
        }
        true
    }

    /// Takes every remotely freed block onto `free`; returns how many.
    /// Clears [`TF_PARKED`] and the count with the list it takes (INV-6).
    ///
    /// # Safety
    ///
    /// The caller owns `span` (INV-1) and it is not [`EMPTY`].
    pub(crate) unsafe fn collect(span: *mut Span) -> u32 {
        // SAFETY: a read of the model's cell; loom checks it against a
        // thief's write (a stolen span's lists are not the owner's).
        #[cfg(loom)]
        unsafe {
            (*span).discarded.with(|d| assert!(!*d, "the owner collected a stolen span"))
        };
        // SAFETY: `thread_free` is an atomic; taking it whole is the
        // owner's right (INV-2). A null word (no block, no flag) needs no
        // swap, which would take the remote freers' cache line for nothing:
        // the load stands for a swap that finds null. (Not under loom, whose
        // partial-order reduction sees a load race only with stores, never
        // with a later CAS: with the load the models would explore no
        // interleaving of a push and the owner's look.) Acquire pairs with
        // the pushers' Release.
        let word = unsafe {
            #[cfg(not(loom))]
            if (*span).thread_free.load(Relaxed).is_null() {
                return 0;
            }
            (*span).thread_free.swap(ptr::null_mut(), Acquire)
        };
        let head = untagged(word);
        if head.is_null() {
            return 0;
        }
        let n = word_count(word);
        // SAFETY: blocks on the list were handed out from this span and
        // freed; the owner may now relink them (INV-1). The word's count is
        // the list's length (INV-6), so the list is taken whole without a
        // walk (each block's link a cache miss: the freer wrote it) unless
        // `free` must be spliced on behind it.
        unsafe {
            let local = (*span).free;
            if !local.is_null() {
                let mut tail = head;
                while !(*tail).next.is_null() {
                    tail = (*tail).next;
                }
                (*tail).next = local;
            }
            (*span).free = head;
            (*span).used -= n;
        }
        n
    }

    /// Whether remotely freed blocks wait on `thread_free`.
    ///
    /// # Safety
    ///
    /// `span` is live.
    #[inline]
    pub(crate) unsafe fn has_remote(span: *mut Span) -> bool {
        // SAFETY: an atomic load of a live header.
        !untagged(unsafe { (*span).thread_free.load(Relaxed) }).is_null()
    }

    /// Sets [`TF_PARKED`] on the owner's parking span if its remote list is
    /// empty; `false` if a remote free got in first (collect it instead).
    /// A remote free then lands either before (the CAS fails) or on the
    /// flagged word (the slow path, which sees the span parked): none is
    /// stranded on a parked span without its owner being told.
    ///
    /// # Safety
    ///
    /// The caller owns `span` (INV-1) and has just collected it.
    pub(crate) unsafe fn flag_parked(span: *mut Span) -> bool {
        // SAFETY: an atomic of a live header. Release: the slow-path freer
        // whose push reads this flag (Acquire) sees the parked state word
        // stored before it.
        unsafe {
            // The broken variant flags the word whatever it holds, so a
            // block pushed just before the park sits on a parked span whose
            // owner nobody tells.
            #[cfg(discardable_broken_park)]
            let empty = (*span).thread_free.load(Relaxed);
            #[cfg(not(discardable_broken_park))]
            let empty = ptr::null_mut::<Block>();
            // Count 0: the list is empty (INV-6).
            let flagged = empty.map_addr(|a| a | TF_PARKED);
            (*span).thread_free.compare_exchange(empty, flagged, AcqRel, Relaxed).is_ok()
        }
    }

    /// Whether no remote freer is between its first and last access to the
    /// header (INV-5). With every block free, the span may then be released.
    ///
    /// # Safety
    ///
    /// `span` is live.
    #[inline]
    pub(crate) unsafe fn quiescent(span: *mut Span) -> bool {
        // SAFETY: the span is live (caller). SeqCst pairs with the freers'
        // SeqCst increment before their push (which our collect observed) and
        // Release decrement after their last access: reading 0 orders all of
        // their accesses before ours.
        unsafe { (*span).remote_inflight.load(SeqCst) == 0 }
    }

    /// The remote free's fast path: pushes `block` onto `thread_free` unless
    /// the push would be one that needs the header afterwards (INV-5, 6):
    /// the first onto a flagged word, or one whose count may reach
    /// `parked_used`. Returns whether it pushed.
    ///
    /// # Safety
    ///
    /// `block` must be a block of `span` handed out and not yet freed.
    #[inline(always)]
    pub(crate) unsafe fn try_push_quiet(span: *mut Span, block: *mut Block) -> bool {
        // SAFETY: the span outlives its handed-out blocks; `thread_free` is
        // an atomic; `block` is ours to relink until the CAS publishes it.
        unsafe {
            // Acquire: a flagged word's `parked_used` is the park's (only a
            // guess is made of it here; a stale one costs a missed steal at
            // worst, never a wrong one).
            let mut word = (*span).thread_free.load(Acquire);
            loop {
                let count = word_count(word);
                let flag = word.addr() & TF_PARKED;
                if flag != 0 && (count == 0 || count + 1 >= (*span).parked_used.load(Relaxed)) {
                    return false;
                }
                let new = block.map_addr(|a| a | flag | ((count as usize + 1) << TF_COUNT_SHIFT));
                (*block).next = untagged(word);
                // Release: whoever takes the block (the owner's swap) or
                // reads the count it raised (a thief) sees its contents and
                // every access of ours before (INV-5). The broken variant
                // for the loom models pushes Relaxed, so the owner may
                // release the span under the freer's last access.
                let publish = if cfg!(discardable_broken_quiet) { Relaxed } else { Release };
                match (*span).thread_free.compare_exchange_weak(word, new, publish, Acquire) {
                    Ok(_) => return true,
                    Err(actual) => word = actual,
                }
            }
        }
    }

    /// Pushes `block` onto the span's remote free list whatever its word
    /// (the slow path, counted in flight), raising the word's count
    /// (INV-6). Onto a flagged word it returns whether the list was empty
    /// (the first push since the park); onto an unflagged word, `None`.
    ///
    /// # Safety
    ///
    /// `block` must be a block of `span` handed out and not yet freed.
    #[inline]
    pub(crate) unsafe fn push_remote(span: *mut Span, block: *mut Block) -> Option<bool> {
        // SAFETY: as in `try_push_quiet`.
        unsafe {
            let mut word = (*span).thread_free.load(Relaxed);
            loop {
                let flagged = word.addr() & TF_PARKED != 0;
                let tag = (word.addr() & TF_PARKED) | ((word_count(word) as usize + 1) << TF_COUNT_SHIFT);
                (*block).next = untagged(word);
                // AcqRel: Release as in the fast path; Acquire pairs with
                // the owner's `flag_parked`, so a flagged push sees the
                // parked state word.
                match (*span).thread_free.compare_exchange_weak(word, block.map_addr(|a| a | tag), AcqRel, Relaxed) {
                    Ok(_) => return flagged.then(|| untagged(word).is_null()),
                    Err(actual) => word = actual,
                }
            }
        }
    }

    /// Gives a span with no live block back to the page heap.
    ///
    /// # Safety
    ///
    /// The caller owns `span`, it is on no list, and none of its blocks is live.
    #[cfg(not(loom))]
    pub(crate) unsafe fn release(span: *mut Span) {
        // SAFETY: the caller owns the span and its memory is unused.
        let bytes = unsafe {
            let bytes = span_bytes((*span).class as usize);
            let base = NonNull::new_unchecked(span.cast::<u8>());
            page_heap::global().tag(base, bytes, false);
            page_heap::global().free_span(base, page_heap::Release::Retain);
            bytes
        };
        accounting::returned(bytes);
    }

    /// Under loom: the model's release, a write to the span's `released` cell
    /// that loom checks against every remote freer's access (INV-5). The
    /// memory stays the model's.
    ///
    /// # Safety
    ///
    /// As for the real `release`.
    #[cfg(loom)]
    pub(crate) unsafe fn release(span: *mut Span) {
        // SAFETY: the model's cell; loom checks this write against the remote
        // freers' reads.
        unsafe {
            (*span).released.with_mut(|r| {
                assert!(!*r, "a span was released twice");
                *r = true;
            })
        };
    }
}

/// Unlinks `span` from the doubly linked list whose head is `*head` (a
/// heap's list, whose empty value is `empty_head`, or an abandoned list,
/// whose empty value is null).
///
/// # Safety
///
/// The caller owns the list (heap INV-4, abandoned AB-1) and `span` is on
/// it.
pub(crate) unsafe fn unlink(head: *mut *mut Span, span: *mut Span, empty_head: *mut Span) {
    // SAFETY: list members are live spans owned by the caller.
    unsafe {
        let (prev, next) = ((*span).prev, (*span).next);
        if prev.is_null() {
            *head = if next.is_null() { empty_head } else { next };
        } else {
            (*prev).next = next;
        }
        if !next.is_null() {
            (*next).prev = prev;
        }
        (*span).prev = ptr::null_mut();
        (*span).next = ptr::null_mut();
    }
}

/// Pushes `span` at the front of the list whose head is `*head`.
///
/// # Safety
///
/// The caller owns the list and `span`, which is on no list.
pub(crate) unsafe fn push_front(head: *mut *mut Span, span: *mut Span, empty_head: *mut Span) {
    // SAFETY: as for `unlink`.
    unsafe {
        let old = *head;
        (*span).prev = ptr::null_mut();
        (*span).next = if old == empty_head { ptr::null_mut() } else { old };
        if old != empty_head {
            (*old).prev = span;
        }
        *head = span;
    }
}

/// Puts `span` second on the list whose head is `*head` (first if the
/// list is empty).
///
/// # Safety
///
/// As for [`push_front`].
pub(crate) unsafe fn insert_second(head: *mut *mut Span, span: *mut Span, empty_head: *mut Span) {
    // SAFETY: as for `unlink`.
    unsafe {
        let first = *head;
        if first == empty_head {
            push_front(head, span, empty_head);
            return;
        }
        let next = (*first).next;
        (*span).prev = first;
        (*span).next = next;
        if !next.is_null() {
            (*next).prev = span;
        }
        (*first).next = span;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::size_class::CLASSES;
    use super::*;

    #[test]
    fn spans_fit_blocks() {
        for c in 0..CLASSES {
            let span = span_bytes(c);
            assert!(span.is_power_of_two() && span % (64 << 10) == 0);
            assert!((span - HEADER_BYTES) / block_size(c) >= 7, "class {c}");
            // A `thread_free` word counts up to every block (INV-6).
            assert!((span - HEADER_BYTES) / block_size(c) < 1 << (usize::BITS - TF_COUNT_SHIFT), "class {c}");
        }
    }
}
