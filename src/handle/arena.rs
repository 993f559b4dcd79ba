//! The arena behind a set of handles: their byte store, the intake list
//! through which new headers reach the manager, the live counters, and the
//! wake hook the manager installed.
//!
//! The handle layer calls *down* into the store and *marks* things for the
//! manager (an intake push, a counter, a wake request); it never calls
//! manager code. The manager drains the intake under its table lock.
//!
//! Invariants:
//! - INV-1: a header on the intake list is fully initialised before the
//!   Release CAS that publishes it; the drainer's Acquire swap sees it.
//! - INV-2: only one thread drains at a time (the manager's table lock), and
//!   it takes the whole list with one swap, so there is no ABA.
//! - INV-3: `bytes` counts the cost of every allocation whose bytes have not
//!   been freed yet, exactly.
//!
//! Must never: block on the manager, or free a header (the table does).

use core::ptr::{self, NonNull};

use super::header::{Birth, Header};
use super::store::{Block, Store};
use crate::page_heap::{self, Release};
use crate::sync::{AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};

/// Counters kept exactly by the handle layer.
#[derive(Debug, Default)]
pub struct Counters {
    /// Cost of live (not freed) discardable bytes (INV-3).
    pub bytes: AtomicUsize,
    /// Live handles.
    pub live: AtomicUsize,
    /// Allocations registered so far.
    pub created: AtomicU64,
    /// Dropped handles whose headers the table has not swept yet.
    pub garbage: AtomicUsize,
    /// Allocations discarded so far.
    pub discarded_count: AtomicU64,
    /// Bytes those allocations cost.
    pub discarded_bytes: AtomicU64,
    /// Lazy mode: offers made (allocations handed to the kernel).
    pub offers: AtomicU64,
    /// Lazy mode: offered allocations re-pinned intact.
    pub revivals: AtomicU64,
    /// Lazy mode: offered allocations whose pages the kernel took.
    pub kernel_discards: AtomicU64,
}

/// The arena shared by a manager and all its handles.
#[derive(Debug)]
pub struct Arena {
    pub(crate) store: Store,
    intake: AtomicPtr<Header>,
    /// Counters kept exactly by the handle layer.
    pub counters: Counters,
    /// Above this many bytes a new allocation wakes the manager.
    pub(crate) limit: AtomicUsize,
    pub(crate) wake: std::sync::Arc<Wake>,
    /// Lazy reclaim mode: the manager offers cold spans with `MADV_FREE`.
    pub(crate) lazy: bool,
}

impl Arena {
    /// An empty arena that wakes the manager through `wake` above `limit`
    /// bytes.
    #[cfg_attr(not(loom), allow(dead_code))] // the loom models build arenas
    pub fn new(limit: usize, wake: std::sync::Arc<Wake>) -> Self {
        Self::with_mode(limit, wake, false)
    }

    /// An arena in managed (`lazy == false`) or lazy reclaim mode.
    pub(crate) fn with_mode(limit: usize, wake: std::sync::Arc<Wake>, lazy: bool) -> Self {
        Self::configured(limit, wake, lazy, false)
    }

    /// An arena in the given reclaim mode, locking its pages in memory when
    /// `lock_pages` is set.
    pub(crate) fn configured(limit: usize, wake: std::sync::Arc<Wake>, lazy: bool, lock_pages: bool) -> Self {
        Self {
            store: Store::with_locking(page_heap::global(), lock_pages),
            intake: AtomicPtr::new(ptr::null_mut()),
            counters: Counters::default(),
            limit: AtomicUsize::new(limit),
            wake,
            lazy,
        }
    }

    /// Creates the header for a freshly allocated block, counts it and
    /// publishes it to the manager.
    #[cfg_attr(not(loom), allow(dead_code))] // the loom models register bare blocks
    pub fn register(&self, block: Block) -> NonNull<Header> {
        self.register_as(block, Birth::default())
    }

    /// [`Self::register`], with the header born as `birth` says (pinned,
    /// with a discard sink).
    pub fn register_as(&self, block: Block, birth: Birth) -> NonNull<Header> {
        let header = NonNull::from(Box::leak(Box::new(Header::with(block.ptr, block.loc, block.cost, birth))));
        let kept = self.kept_bytes();
        let bytes = self.counters.bytes.fetch_add(block.cost, Relaxed) + block.cost + kept;
        self.counters.live.fetch_add(1, Relaxed);
        self.counters.created.fetch_add(1, Relaxed);
        self.push_intake(header);
        // In lazy mode a new span must reach the manager so it can be offered
        // once cold.
        if bytes > self.limit.load(Relaxed) || (self.lazy && block.loc == super::store::Loc::Span) {
            self.wake.request();
        }
        header
    }

    fn push_intake(&self, header: NonNull<Header>) {
        let mut head = self.intake.load(Relaxed);
        loop {
            // SAFETY: the header is not yet published, so we are its only user.
            unsafe { header.as_ref() }.intake_link().store(head, Relaxed);
            // Release publishes the initialised header (INV-1); the broken
            // variant for the loom models publishes it without.
            let publish = if cfg!(discardable_broken_intake) { Relaxed } else { Release };
            match self.intake.compare_exchange_weak(head, header.as_ptr(), publish, Relaxed) {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }

    /// Takes every published header, oldest first, and passes each to `f`.
    /// Only the manager's table calls this, under its lock (INV-2).
    pub(crate) fn drain_intake(&self, mut f: impl FnMut(NonNull<Header>)) {
        // Acquire pairs with the Release in `push_intake` (INV-1).
        let mut head = self.intake.swap(ptr::null_mut(), Acquire);
        // Reverse the LIFO chain in place so `f` sees creation order.
        let mut prev: *mut Header = ptr::null_mut();
        while let Some(h) = NonNull::new(head) {
            // SAFETY: headers on the intake are live: only the table frees
            // headers, and it has not seen these yet.
            let next = unsafe { h.as_ref() }.intake_link().swap(prev, Relaxed);
            prev = head;
            head = next;
        }
        while let Some(h) = NonNull::new(prev) {
            // SAFETY: as above.
            // The link's second role (lazy mode's saved words) starts null.
            prev = unsafe { h.as_ref() }.intake_link().swap(ptr::null_mut(), Relaxed);
            f(h);
        }
    }

    /// Bytes of discarded spans the store keeps mapped for reuse.
    #[inline]
    pub(crate) fn kept_bytes(&self) -> usize {
        self.store.kept_bytes.load(Relaxed)
    }

    /// What the arena holds against its limit: live discardable bytes and
    /// the spans kept for reuse.
    #[inline]
    pub(crate) fn held(&self) -> usize {
        // Kept first: spans move from `bytes` to `kept_bytes` (uncounted
        // first) and back (`kept_bytes` first), so this order never counts
        // one twice.
        let kept = self.kept_bytes();
        self.counters.bytes.load(Relaxed) + kept
    }

    /// Frees the bytes of discarded allocations whose discards the caller
    /// won (`State::try_discard`), emptying `blocks`: with `keep`, spans
    /// stay mapped for reuse while the store's pool has room; the rest give
    /// their pages back now, in as few `madvise` calls as adjacency allows.
    ///
    /// # Safety
    ///
    /// Each block is a copy of the header of an allocation of this arena
    /// whose discard the caller won (state INV-4), freed once.
    pub(crate) unsafe fn release_victims(&self, blocks: &mut Vec<Block>, keep: bool) {
        let (count, bytes) = (blocks.len(), blocks.iter().map(|b| b.cost).sum::<usize>());
        // Uncount first: a kept span moves from `bytes` to the store's
        // `kept_bytes`, and `held` (which reads `kept_bytes` first) must
        // never count it twice.
        self.counters.bytes.fetch_sub(bytes, Relaxed);
        // SAFETY: the caller won each discard, so it owns the bytes, which
        // came from this arena's store.
        unsafe { self.store.free_discarded(blocks, keep) };
        self.counters.discarded_count.fetch_add(count as u64, Relaxed);
        self.counters.discarded_bytes.fetch_add(bytes as u64, Relaxed);
    }

    /// Frees the bytes of an allocation whose discard the caller won
    /// (`State::try_discard` returned `true`), giving pages back at once.
    /// Returns the cost.
    pub fn release_discarded(&self, header: &Header) -> usize {
        let mut block = vec![header.block()];
        // SAFETY: the caller won the discard, so it owns the bytes (state
        // INV-4); `data`/`loc` come from this arena's store.
        unsafe { self.release_victims(&mut block, false) };
        header.cost()
    }

    /// Drops the owner of `header`: marks it dropped and frees the bytes if
    /// the owner still has them; with pins still held the bytes are left
    /// to the table (state INV-8). What `Discardable`'s `Drop` and a cache
    /// entry's removal both do.
    ///
    /// # Safety
    ///
    /// The caller owns the handle behind `header` (registered in this
    /// arena), drops it once, and never touches `header` afterwards except
    /// through a pin it still holds.
    pub unsafe fn drop_owner(&self, header: NonNull<Header>) -> super::state::Dropped {
        // Copy what we need first: after `mark_dropped` the manager may free
        // the header at any time (state INV-4, header.rs).
        // SAFETY: the header is alive until we mark it dropped.
        let h = unsafe { header.as_ref() };
        let block = h.block();
        self.note_dropping();
        let dropped = h.state.mark_dropped();
        if dropped == super::state::Dropped::OwnsBytes {
            // SAFETY: we won, so the bytes are ours, and no pin exists (it
            // would have orphaned them instead).
            unsafe { self.release_dropped(block) };
        }
        self.note_dropped();
        dropped
    }

    /// Lazy mode: an offered allocation came back intact; the manager may
    /// offer it again later.
    pub(crate) fn note_revived(&self) {
        self.counters.revivals.fetch_add(1, Relaxed);
        self.wake.request();
    }

    /// Lazy mode: a reviver found a page the kernel took; it won the bytes
    /// (state INV-6) and frees them.
    pub(crate) fn note_kernel_discard(&self, header: &Header) {
        self.counters.kernel_discards.fetch_add(1, Relaxed);
        self.release_discarded(header);
    }

    /// Frees the bytes of a dropped allocation whose owner won.
    ///
    /// # Safety
    ///
    /// The caller owns `block`'s bytes (it won `mark_dropped`) and never uses
    /// them again.
    pub unsafe fn release_dropped(&self, block: Block) {
        // Offered pages may still be pending MADV_FREE: give them back now
        // in lazy mode rather than reusing them.
        let release = if self.lazy { Release::Now } else { Release::Retain };
        // SAFETY: forwarded from the caller's contract.
        unsafe { self.store.free(block.ptr, block.loc, release) };
        self.counters.bytes.fetch_sub(block.cost, Relaxed);
    }

    /// Counts a header about to be marked dropped: before the mark, so a
    /// scan that retires it never subtracts an uncounted header.
    pub fn note_dropping(&self) {
        self.counters.garbage.fetch_add(1, Relaxed);
    }

    /// Counts one dropped handle; asks the manager to sweep when garbage
    /// headers pile up.
    pub fn note_dropped(&self) {
        self.counters.live.fetch_sub(1, Relaxed);
        if self.garbage_is_high() {
            self.wake.request();
        }
    }

    /// Whether dropped handles' headers waiting for the manager's scan
    /// pile up: at least 4096 of them, and more than half as many as live
    /// handles (so retiring them costs O(1) per handle amortized).
    pub(crate) fn garbage_is_high(&self) -> bool {
        let garbage = self.counters.garbage.load(Relaxed);
        garbage >= 4096 && garbage > self.counters.live.load(Relaxed) / 2
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // Every handle is gone (each holds the arena), so headers still on the
        // intake are dropped and unknown to the table: free them here.
        self.drain_intake(|h| {
            // SAFETY: the header is live (never drained); reading its state
            // word is always allowed.
            if unsafe { h.as_ref() }.state.load().pins() > 0 {
                // An owned guard outlives the arena and still reads it
                // (state INV-8): leak it, and its bytes, rather than free
                // them under the guard.
                return;
            }
            // SAFETY: created by `Box::leak` in `register`; no handle, guard,
            // table or reclaimer can reach it any more.
            drop(unsafe { Box::from_raw(h.as_ptr()) });
        });
        self.wake.shutdown();
    }
}

/// The wake hook: how handles, the arena's owner and the allocator (direct
/// reclaim) nudge the manager thread. An eventfd, so the manager can poll it
/// together with the kernel's pressure notifications, and so that waking it
/// never allocates or locks. `Default` has no eventfd (requests are only
/// flagged), for models that run no manager thread.
#[derive(Debug)]
pub struct Wake {
    pending: core::sync::atomic::AtomicBool,
    shutdown: core::sync::atomic::AtomicBool,
    /// The eventfd, or -1. Replaced only by [`Wake::renew`] in a forked child
    /// before its new manager thread starts.
    fd: core::sync::atomic::AtomicI32,
}

impl Default for Wake {
    fn default() -> Self {
        Self {
            pending: core::sync::atomic::AtomicBool::new(false),
            shutdown: core::sync::atomic::AtomicBool::new(false),
            fd: core::sync::atomic::AtomicI32::new(-1),
        }
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        let fd = *self.fd.get_mut();
        if fd >= 0 {
            // SAFETY: the eventfd is owned by this hook and closed once, here.
            drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
        }
    }
}

impl Wake {
    /// A wake hook backed by a fresh eventfd.
    pub(crate) fn new() -> Result<Self, crate::os::OsError> {
        let wake = Self::default();
        wake.fd
            .store(std::os::fd::IntoRawFd::into_raw_fd(crate::os::eventfd()?), core::sync::atomic::Ordering::Release);
        Ok(wake)
    }

    /// In a forked child: a fresh eventfd of its own (the inherited one is
    /// shared with the parent's manager). Call before the child's manager
    /// thread starts.
    pub(crate) fn renew(&self) -> Result<(), crate::os::OsError> {
        use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
        let fresh = crate::os::eventfd()?.into_raw_fd();
        let old = self.fd.swap(fresh, core::sync::atomic::Ordering::AcqRel);
        if old >= 0 {
            // SAFETY: the child's copy of the inherited eventfd is ours to
            // close; no thread of the child polls it (the parent's manager
            // thread does not exist here).
            drop(unsafe { OwnedFd::from_raw_fd(old) });
        }
        self.shutdown.store(false, core::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// The eventfd the manager polls (`None` for the flag-only default).
    pub(crate) fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        let fd = self.raw_fd();
        // SAFETY: the fd stays open while `self` lives; it is replaced only
        // by `renew`, before the thread that polls it exists.
        (fd >= 0).then(|| unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
    }

    /// The raw eventfd (-1 without one), for the allocator's direct reclaim.
    pub(crate) fn raw_fd(&self) -> i32 {
        self.fd.load(core::sync::atomic::Ordering::Acquire)
    }

    /// Asks the manager for a pass. Cheap when a request is already pending.
    pub(crate) fn request(&self) {
        // AcqRel: the manager's `take` clears the flag before it samples.
        if !self.pending.swap(true, core::sync::atomic::Ordering::AcqRel) {
            crate::os::eventfd_signal(self.raw_fd());
        }
    }

    /// Tells the manager thread to exit.
    pub(crate) fn shutdown(&self) {
        self.shutdown.store(true, core::sync::atomic::Ordering::Release);
        crate::os::eventfd_signal(self.raw_fd());
    }

    /// Whether [`Self::shutdown`] was called.
    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(core::sync::atomic::Ordering::Acquire)
    }

    /// Consumes the pending requests (the manager, after poll said the
    /// eventfd is readable, or before a pass).
    pub(crate) fn take(&self) {
        self.pending.store(false, core::sync::atomic::Ordering::Release);
        if let Some(fd) = self.fd() {
            let _ = crate::os::read_u64(fd);
        }
    }
}
