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
use std::time::Duration;

use super::header::Header;
use super::store::{Block, Store};
use crate::page_heap::{self, Release};
use crate::sync::{AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};

/// Counters kept exactly by the handle layer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Cost of live (not freed) discardable bytes (INV-3).
    pub(crate) bytes: AtomicUsize,
    /// Live handles.
    pub(crate) live: AtomicUsize,
    /// Dropped handles whose headers the table has not swept yet.
    pub(crate) garbage: AtomicUsize,
    /// Allocations discarded so far.
    pub(crate) discarded_count: AtomicU64,
    /// Bytes those allocations cost.
    pub(crate) discarded_bytes: AtomicU64,
}

/// The arena shared by a manager and all its handles.
#[derive(Debug)]
pub(crate) struct Arena {
    pub(crate) store: Store,
    intake: AtomicPtr<Header>,
    pub(crate) counters: Counters,
    /// Above this many bytes a new allocation wakes the manager.
    pub(crate) limit: AtomicUsize,
    pub(crate) wake: std::sync::Arc<Wake>,
}

impl Arena {
    /// An empty arena that wakes the manager through `wake` above `limit`
    /// bytes.
    pub(crate) fn new(limit: usize, wake: std::sync::Arc<Wake>) -> Self {
        Self {
            store: Store::new(page_heap::global()),
            intake: AtomicPtr::new(ptr::null_mut()),
            counters: Counters::default(),
            limit: AtomicUsize::new(limit),
            wake,
        }
    }

    /// Creates the header for a freshly allocated block, counts it and
    /// publishes it to the manager.
    pub(crate) fn register(&self, block: Block) -> NonNull<Header> {
        let header = NonNull::from(Box::leak(Box::new(Header::new(block.ptr, block.loc, block.cost))));
        let bytes = self.counters.bytes.fetch_add(block.cost, Relaxed) + block.cost;
        self.counters.live.fetch_add(1, Relaxed);
        self.push_intake(header);
        if bytes > self.limit.load(Relaxed) {
            self.wake.request();
        }
        header
    }

    fn push_intake(&self, header: NonNull<Header>) {
        let mut head = self.intake.load(Relaxed);
        loop {
            // SAFETY: the header is not yet published, so we are its only user.
            unsafe { header.as_ref() }.next.store(head, Relaxed);
            // Release publishes the initialised header (INV-1).
            match self.intake.compare_exchange_weak(head, header.as_ptr(), Release, Relaxed) {
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
            let next = unsafe { h.as_ref() }.next.swap(prev, Relaxed);
            prev = head;
            head = next;
        }
        while let Some(h) = NonNull::new(prev) {
            // SAFETY: as above.
            prev = unsafe { h.as_ref() }.next.load(Relaxed);
            f(h);
        }
    }

    /// Frees the bytes of an allocation whose discard the caller won
    /// (`State::try_discard` returned `true`), giving pages back at once.
    /// Returns the cost.
    pub(crate) fn release_discarded(&self, header: &Header) -> usize {
        // SAFETY: the caller won the discard, so it owns the bytes (state
        // INV-4); `data`/`loc` come from this arena's store.
        unsafe { self.store.free(header.data, header.loc, Release::Now) };
        self.counters.bytes.fetch_sub(header.cost, Relaxed);
        self.counters.discarded_count.fetch_add(1, Relaxed);
        self.counters.discarded_bytes.fetch_add(header.cost as u64, Relaxed);
        header.cost
    }

    /// Frees the bytes of a dropped allocation whose owner won.
    ///
    /// # Safety
    ///
    /// The caller owns `block`'s bytes (it won `mark_dropped`) and never uses
    /// them again.
    pub(crate) unsafe fn release_dropped(&self, block: Block) {
        // SAFETY: forwarded from the caller's contract.
        unsafe { self.store.free(block.ptr, block.loc, Release::Retain) };
        self.counters.bytes.fetch_sub(block.cost, Relaxed);
    }

    /// Counts one dropped handle; asks the manager to sweep when garbage
    /// headers pile up.
    pub(crate) fn note_dropped(&self) {
        let live = self.counters.live.fetch_sub(1, Relaxed) - 1;
        let garbage = self.counters.garbage.fetch_add(1, Relaxed) + 1;
        if garbage >= 4096 && garbage > live / 2 {
            self.wake.request();
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // Every handle is gone (each holds the arena), so headers still on the
        // intake are dropped and unknown to the table: free them here.
        self.drain_intake(|h| {
            // SAFETY: created by `Box::leak` in `register`; no handle, table or
            // reclaimer can reach it any more.
            drop(unsafe { Box::from_raw(h.as_ptr()) });
        });
        self.wake.shutdown();
    }
}

/// The wake hook: how handles and the arena's owner nudge the manager
/// thread. Uses parking_lot directly (it is not part of a loom model).
#[derive(Debug, Default)]
pub(crate) struct Wake {
    pending: core::sync::atomic::AtomicBool,
    flags: parking_lot::Mutex<WakeFlags>,
    cond: parking_lot::Condvar,
}

#[derive(Debug, Default)]
struct WakeFlags {
    requested: bool,
    shutdown: bool,
}

/// Why [`Wake::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woken {
    /// Someone asked for a pass.
    Requested,
    /// The timeout passed.
    Timeout,
    /// The arena is gone: the manager thread must exit.
    Shutdown,
}

impl Wake {
    /// Asks the manager for a pass. Cheap when a request is already pending.
    pub(crate) fn request(&self) {
        if !self.pending.swap(true, core::sync::atomic::Ordering::AcqRel) {
            self.flags.lock().requested = true;
            self.cond.notify_one();
        }
    }

    /// Tells the manager thread to exit.
    pub(crate) fn shutdown(&self) {
        self.flags.lock().shutdown = true;
        self.cond.notify_all();
    }

    /// Waits for a request, the shutdown or `timeout` (forever if `None`).
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> Woken {
        let mut flags = self.flags.lock();
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            if flags.shutdown {
                return Woken::Shutdown;
            }
            if core::mem::take(&mut flags.requested) {
                self.pending.store(false, core::sync::atomic::Ordering::Release);
                return Woken::Requested;
            }
            match deadline {
                None => self.cond.wait(&mut flags),
                Some(d) => {
                    if self.cond.wait_until(&mut flags, d).timed_out() {
                        return if flags.shutdown { Woken::Shutdown } else { Woken::Timeout };
                    }
                }
            }
        }
    }
}
