//! Abandoned spans: the class spans an exiting thread still had blocks on,
//! kept per class until another heap adopts them or the purge timer finds
//! them empty.
//!
//! Protocol (with span.rs INV-1..5):
//! - AB-1: an abandoned span has a null `owner`, and its owner-only fields
//!   are touched only by the holder of the set's lock. Its remote freers
//!   keep pushing onto `thread_free` meanwhile.
//! - AB-2: a span enters a list only from its exiting owner
//!   ([`Locked::abandon`], under the lock), which first takes a parked
//!   span back; it leaves either to an adopter, which sets `owner` under
//!   the lock, or to the page heap once it is empty and quiescent (span
//!   INV-5).
//! - AB-3: a stolen span (span INV-4) is never collected or adopted: its
//!   thief gave its block pages back to the OS, so its lists are gone. It
//!   is empty by construction and is released once its thief has left.
//!
//! Every walk of a list goes through [`settle`], the one place that decides
//! whether an abandoned span is stolen, live, or may go back; loom models
//! (`loom-tests/`, `abandon`) drive it through the shipped functions, and
//! `--cfg discardable_broken_adopt` breaks AB-3 there for the models to
//! reject.
//!
//! Must never: allocate, take a parking_lot lock, pin an epoch, or panic
//! (thread exit and allocation run it).

use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::Ordering::*;

use super::size_class::CLASSES;
use super::span::{self, Owner, Span};
use crate::sync::{SpinGuard, SpinLock};

/// The abandoned spans of every class, and their lock (AB-1).
pub(crate) struct Abandoned {
    lock: SpinLock,
    /// Per class: the head of a doubly linked list (null when empty).
    lists: UnsafeCell<[*mut Span; CLASSES]>,
}

// SAFETY: `lists` and the spans on them are touched only under `lock`
// (AB-1).
unsafe impl Sync for Abandoned {}

/// What [`settle`] found an abandoned span to be.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Settled {
    /// Empty (or stolen) and no remote freer in flight: release it.
    Release,
    /// Stolen, its thief still in flight: look again later (AB-3).
    Stolen,
    /// Live blocks, or a remote freer in flight: keep it (adoptable).
    Live,
}

/// Collects an abandoned span's remote frees, unless it was stolen, and
/// says whether it may go back to the page heap.
///
/// # Safety
///
/// The caller holds the set's lock and `span` is abandoned (AB-1), or is
/// being abandoned by its exiting owner under that lock.
unsafe fn settle(span: *mut Span) -> Settled {
    // SAFETY: the span's owner-only fields are ours under the lock (AB-1).
    unsafe {
        // Acquire pairs with the thief's AcqRel CAS: its discard is not
        // ours to undo, and we must not read the lists it gave away.
        let stolen = Span::kind(span, Acquire) == span::STOLEN;
        // The broken variant collects a stolen span too, reading block
        // pages its thief gave back to the OS (AB-3).
        if !stolen || cfg!(discardable_broken_adopt) {
            Span::collect(span);
        }
        let empty = stolen || (*span).used == 0;
        match (empty && Span::quiescent(span), stolen) {
            (true, _) => Settled::Release,
            (false, true) => Settled::Stolen,
            (false, false) => Settled::Live,
        }
    }
}

impl Abandoned {
    /// An empty set.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self { lock: SpinLock::new(), lists: UnsafeCell::new([ptr::null_mut(); CLASSES]) }
    }

    /// An empty set (under loom, inside a model execution).
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self { lock: SpinLock::new(), lists: UnsafeCell::new([ptr::null_mut(); CLASSES]) }
    }

    /// Takes the lock, to abandon an exiting heap's spans
    /// ([`Locked::abandon`]).
    pub(crate) fn lock(&self) -> Locked<'_> {
        Locked { set: self, _guard: self.lock.lock() }
    }

    /// Adopts an abandoned span of `class` with a free block (or room to
    /// bump one) for the heap whose id is `owner`, releasing empty ones on
    /// the way. Looks at no
    /// more than 16 spans, so an allocation never walks a long list.
    pub(crate) fn adopt(&self, class: usize, owner: *mut Owner) -> Option<*mut Span> {
        let _locked = self.lock.lock();
        // SAFETY: the lists and their spans are ours under the lock (AB-1).
        unsafe {
            let list = &mut (*self.lists.get())[class];
            let mut span = *list;
            let mut budget = 16;
            while !span.is_null() && budget > 0 {
                budget -= 1;
                let next = (*span).next;
                match settle(span) {
                    Settled::Release => {
                        span::unlink(list, span, ptr::null_mut());
                        Span::release(span);
                    }
                    // Only a span with a free block (or room to bump one):
                    // a full one would be parked on our full list at once,
                    // and the refill loop would come back for the next.
                    // The broken variant for the loom models adopts any
                    // live span.
                    Settled::Live
                        if cfg!(discardable_broken_adopt_full)
                            || !(*span).free.is_null()
                            || (*span).bump < (*span).capacity =>
                    {
                        span::unlink(list, span, ptr::null_mut());
                        // Release: the adopter's thread, which alone reads
                        // `owner` as "mine", is us; others see a
                        // foreign owner and free remotely (span INV-3).
                        (*span).owner.store(owner, Release);
                        return Some(span);
                    }
                    Settled::Stolen | Settled::Live => {}
                }
                span = next;
            }
        }
        None
    }

    /// Releases every abandoned span that became empty (the purge timer
    /// calls this).
    pub(crate) fn sweep(&self) {
        let _locked = self.lock.lock();
        // SAFETY: the lists and their spans are ours under the lock (AB-1).
        unsafe {
            for list in (*self.lists.get()).iter_mut() {
                let mut span = *list;
                while !span.is_null() {
                    let next = (*span).next;
                    if settle(span) == Settled::Release {
                        span::unlink(list, span, ptr::null_mut());
                        Span::release(span);
                    }
                    span = next;
                }
            }
        }
    }

    /// Takes the lock for `fork` (the prepare handler).
    pub(crate) fn lock_for_fork(&self) {
        self.lock.lock_for_fork();
    }

    /// Releases the lock after `fork`, in parent and child.
    ///
    /// # Safety
    ///
    /// [`Abandoned::lock_for_fork`] took it on this thread.
    pub(crate) unsafe fn unlock_after_fork(&self) {
        // SAFETY: caller.
        unsafe { self.lock.force_unlock() };
    }

    /// The spans on `class`'s list (loom models: after their threads
    /// joined).
    #[cfg(loom)]
    pub(crate) fn listed(&self, class: usize) -> Vec<*mut Span> {
        let _locked = self.lock.lock();
        let mut out = Vec::new();
        // SAFETY: under the lock (AB-1).
        unsafe {
            let mut span = (*self.lists.get())[class];
            while !span.is_null() {
                out.push(span);
                span = (*span).next;
            }
        }
        out
    }
}

/// The lock of an [`Abandoned`] set, held while an exiting heap abandons
/// its spans one by one.
pub(crate) struct Locked<'a> {
    set: &'a Abandoned,
    _guard: SpinGuard<'a>,
}

impl Locked<'_> {
    /// Abandons `span`, a span of an exiting heap taken off that heap's
    /// lists: it goes back to the page heap if it is empty and quiescent,
    /// else onto its class's list with a null owner (AB-2).
    ///
    /// # Safety
    ///
    /// The caller owned `span` as its exiting heap's thread, and `span` is
    /// on no list.
    pub(crate) unsafe fn abandon(&mut self, span: *mut Span) {
        // SAFETY: the span was ours and is now the lock holder's (AB-1).
        unsafe {
            // Release: whoever reads a null owner sees the span's fields
            // as we leave them. A remote freer that still reads our heap
            // only sets its (pooled, never unmapped) pending flag.
            (*span).owner.store(ptr::null_mut(), Release);
            // A parked span is taken back first; if its thief won, it is
            // STOLEN and `settle` leaves its lists alone.
            if Span::kind(span, Relaxed) == span::PARKED {
                Span::unpark(span);
            }
            match settle(span) {
                Settled::Release => Span::release(span),
                Settled::Stolen | Settled::Live => {
                    let lists = &mut *self.set.lists.get();
                    span::push_front(&mut lists[(*span).class as usize], span, ptr::null_mut());
                }
            }
        }
    }
}

/// The process's abandoned spans.
#[cfg(not(loom))]
static GLOBAL: Abandoned = Abandoned::new();

/// The process's abandoned spans.
#[cfg(not(loom))]
#[inline]
pub(crate) fn global() -> &'static Abandoned {
    &GLOBAL
}

#[cfg(loom)]
loom::lazy_static! {
    /// Under loom, one set per model execution.
    static ref GLOBAL: Abandoned = Abandoned::new();
}

/// Under loom, the execution's set (a model passes its own instead).
#[cfg(loom)]
pub(crate) fn global() -> &'static Abandoned {
    &GLOBAL
}
