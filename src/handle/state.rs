//! The state word of a discardable allocation: the pin/discard protocol.
//!
//! One `AtomicU64` per allocation, in its header (strong memory):
//!
//! ```text
//!  63            48 47        34   33       32        31              0
//! +----------------+------------+---------+-----------+----------------+
//! | access counter |  reserved  | DROPPED | DISCARDED |   pin count    |
//! +----------------+------------+---------+-----------+----------------+
//! ```
//!
//! Invariants (DESIGN.md, "The pin/discard protocol"):
//! - INV-1: `DISCARDED` is set by [`State::try_discard`], only from a value
//!   with zero pins and neither flag, so a pinned allocation is never
//!   discarded; or, in lazy mode, by a reviver that found a page the kernel
//!   took (INV-6), while pinners that waited for it are counted but have
//!   not read the bytes.
//! - INV-2: once `DISCARDED` is set it is never cleared, and every later
//!   [`State::pin`] fails.
//! - INV-3: `try_discard` is a single compare-and-swap and `pin` a single
//!   `fetch_add` on the same word, so their modification order decides the
//!   race and exactly one side wins.
//! - INV-4: whoever takes the word from "alive" to `DISCARDED` or `DROPPED`
//!   (first) owns the allocation's bytes and frees them; the other side
//!   never touches them again.
//!
//! The hot path ([`State::pin`] and [`State::unpin`]) is one atomic
//! read-modify-write each: no lock, no system call, no epoch. Unpinning adds
//! `ACCESS_ONE - 1` in one `fetch_add`: the pin count drops and the access
//! counter (the top 16 bits, wrapping off the top) rises, which is how an
//! access is recorded without a lock. The manager compares the counter with
//! the value it saw at its previous scan.
//!
//! Lazy mode (DESIGN.md, "Reclaim modes") adds three flags, all set and
//! cleared by compare-and-swap or a single RMW:
//! - INV-5: `OFFERING` is taken only from "alive, unpinned, no flag" and
//!   is held while the offerer writes cookies and calls `MADV_FREE`; pins
//!   that arrive meanwhile stay counted and wait; the owner's drop waits.
//!   If `MADV_FREE` fails, the offerer swaps the cookies back as a reviver
//!   does (INV-6) and drops `OFFERING`; if it finds a page the kernel took
//!   (the call applied to part of the range first), it ends the offer as
//!   made (`OFFERED`) instead, so that the revival finds the page missing.
//! - INV-6: `OFFERED` means the pages were handed to the kernel; the first
//!   pinner that finds it takes `REVIVING` (one CAS, so two pinners never
//!   both revive), swaps the cookies back, and clears both flags, or, if
//!   the kernel took a page, sets `DISCARDED` and owns the bytes (INV-4).
//!   Other pinners wait while `REVIVING` is set.
//! - INV-7: a discarder may take an `OFFERED` allocation (no pin, no
//!   `REVIVING`): the kernel might have taken its pages anyway.
//!
//! Owned pins (a guard that outlives its handle, such as a cache's guard,
//! or a guard that was `mem::forget`-ten) add one flag:
//! - INV-8: an owner that marks `DROPPED` while pins are counted (and the
//!   bytes are not discarded) sets `ORPHANED` in the same CAS and gives up
//!   the bytes: nobody frees them while a pin lives. The manager's table,
//!   which alone frees headers, frees an orphan's bytes and header once it
//!   sees the pin count at zero; no pin can arrive after that (pins come
//!   from a live handle or from an existing pin).
//!
//! Must never: block, allocate, or touch the allocation's bytes.

use crate::sync::{AtomicU64, Ordering::*};

const PIN_ONE: u64 = 1;
const PIN_MASK: u64 = (1 << 32) - 1;
/// Pins beyond this are refused with a panic before the count can overflow.
const PIN_MAX: u64 = 1 << 31;
const DISCARDED: u64 = 1 << 32;
const DROPPED: u64 = 1 << 33;
const OFFERING: u64 = 1 << 34;
const OFFERED: u64 = 1 << 35;
const REVIVING: u64 = 1 << 36;
/// The owner dropped while pinned; the last pin's release leaves the bytes
/// to the table (INV-8).
const ORPHANED: u64 = 1 << 37;
/// Any bit that sends `pin` off the fast path.
const SLOW: u64 = DISCARDED | PIN_MAX | OFFERING | OFFERED | REVIVING;
const ACCESS_SHIFT: u32 = 48;
const ACCESS_ONE: u64 = 1 << ACCESS_SHIFT;
/// Unpin and record one access in a single wrapping addition.
const UNPIN_AND_TOUCH: u64 = ACCESS_ONE - PIN_ONE;

/// A decoded snapshot of the state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot(u64);

impl Snapshot {
    /// Live pins.
    #[inline]
    pub fn pins(self) -> u32 {
        (self.0 & PIN_MASK) as u32
    }

    /// Whether the allocation has been discarded (for good).
    #[inline]
    pub fn is_discarded(self) -> bool {
        self.0 & DISCARDED != 0
    }

    /// Whether the owning handle has been dropped.
    #[inline]
    pub fn is_dropped(self) -> bool {
        self.0 & DROPPED != 0
    }

    /// Whether the owner dropped while pins were held, leaving the bytes to
    /// the table (INV-8).
    #[inline]
    pub fn is_orphaned(self) -> bool {
        self.0 & ORPHANED != 0
    }

    /// Whether the pages are offered to the kernel (lazy mode), or being.
    #[inline]
    pub fn is_offered(self) -> bool {
        self.0 & (OFFERING | OFFERED) != 0
    }

    /// The access counter (wraps at 2^16).
    #[inline]
    pub fn accesses(self) -> u16 {
        (self.0 >> ACCESS_SHIFT) as u16
    }
}

/// What dropping the owner found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// The owner won: it must free the bytes (INV-4).
    OwnsBytes,
    /// A discarder won earlier and frees (or freed) the bytes.
    AlreadyDiscarded,
    /// Pins were held: the bytes are orphaned, and the table frees them
    /// after the last unpin (INV-8).
    Orphaned,
}

/// The atomic state word. See the module docs.
#[derive(Debug)]
pub struct State(AtomicU64);

impl Default for State {
    /// [`State::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl State {
    /// A live, unpinned, never-accessed allocation.
    pub fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// A live allocation with one pin already counted: published pinned, so
    /// no discarder can take it before its creator reads it.
    pub fn new_pinned() -> Self {
        Self(AtomicU64::new(PIN_ONE))
    }

    /// Reads the word. `Acquire`, so that a reader that sees `DISCARDED` or
    /// `DROPPED` also sees what the winner did before setting it.
    #[inline]
    pub fn load(&self) -> Snapshot {
        Snapshot(self.0.load(Acquire))
    }

    /// Tries to pin: `true` if the bytes are alive and now pinned. Never
    /// revives an offered allocation: handles go through
    /// [`State::pin_fast`] and the header's slow path instead.
    ///
    /// # Panics
    ///
    /// If 2^31 pins are live at once (a leak of guards), like `Arc`'s
    /// overflow check.
    #[inline]
    #[cfg_attr(not(any(test, loom)), allow(dead_code))] // the models and unit tests pin bare words
    pub fn pin(&self) -> bool {
        self.pin_fast() || self.pin_cold()
    }

    /// One `fetch_add`: `true` if the allocation is now pinned and plain
    /// alive. On `false` the pin is still counted: the caller must finish
    /// with the slow path (which waits, revives, or undoes it).
    #[inline(always)]
    pub fn pin_fast(&self) -> bool {
        // Acquire pairs with the Release of earlier unpins, so this pin sees
        // every write made under a `PinnedMut` before it (INV-1).
        self.0.fetch_add(PIN_ONE, Acquire) & SLOW == 0
    }

    /// The slow path of [`State::pin`] without revival: waits out
    /// `OFFERING`/`REVIVING`, fails on `DISCARDED` or `OFFERED`.
    #[cold]
    fn pin_cold(&self) -> bool {
        let mut round = 0;
        loop {
            let cur = self.0.load(Acquire);
            if cur & (OFFERING | REVIVING) != 0 && cur & DISCARDED == 0 {
                crate::sync::spin_wait(round);
                round += 1;
                continue;
            }
            if cur & (DISCARDED | OFFERED | PIN_MAX) == 0 {
                return true;
            }
            self.undo_pin(cur);
            return false;
        }
    }

    /// Removes a pin counted by a failed [`State::pin_fast`].
    ///
    /// # Panics
    ///
    /// If the count overflowed (see [`State::pin`]).
    #[cold]
    pub fn undo_pin(&self, seen: u64) {
        // Our increment never made the word look unpinned to a discarder, and
        // DISCARDED (if set) makes every claim fail (INV-2).
        self.0.fetch_sub(PIN_ONE, Relaxed);
        assert!(seen & PIN_MAX == 0, "discardable: too many live pins");
    }

    /// The raw word, for the lazy-mode slow path.
    #[inline]
    pub(crate) fn raw(&self) -> u64 {
        self.0.load(Acquire)
    }

    /// Drops one pin and records an access.
    #[inline]
    pub fn unpin(&self) {
        // Release pairs with the Acquire of `try_discard`'s CAS: every read or
        // write made under this pin happens before the discarder frees the
        // bytes (INV-1). The broken variant for the loom models unpins
        // Relaxed, so a discarder may free the bytes under the last read.
        let order = if cfg!(discardable_broken_unpin) { Relaxed } else { Release };
        let old = self.0.fetch_add(UNPIN_AND_TOUCH, order);
        debug_assert!(old & PIN_MASK != 0, "unpin without a pin");
    }

    /// Tries to take the allocation from "alive and unpinned" to
    /// `DISCARDED`. `true` means the caller won and now owns the bytes
    /// (INV-4): it must free them.
    #[cfg_attr(discardable_broken, allow(unused_mut))] // the broken variant never retries
    pub fn try_discard(&self) -> bool {
        let mut cur = self.0.load(Relaxed);
        loop {
            if cur & (PIN_MASK | DISCARDED | DROPPED | OFFERING | REVIVING) != 0 {
                return false;
            }
            #[cfg(discardable_broken)]
            {
                // Deliberately broken variant for the loom models: a check
                // then a separate store, so a pin can slip in between.
                crate::sync::spin_wait(0);
                self.0.fetch_or(DISCARDED, Acquire);
                return true;
            }
            // Acquire pairs with `unpin`'s Release (INV-1); one CAS decides
            // the race with `pin` (INV-3). A failed CAS (the access counter
            // moved, or a pin came in) re-reads and re-checks.
            #[cfg(not(discardable_broken))]
            match self.0.compare_exchange_weak(cur, (cur | DISCARDED) & !OFFERED, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Marks the owner dropped. The owner must not touch the header after
    /// this call (the manager may free it at once). Pins may still be held
    /// (owned guards, or a forgotten one): then the bytes are orphaned
    /// (INV-8). Waits while an offer is being made (INV-5).
    pub fn mark_dropped(&self) -> Dropped {
        let mut round = 0;
        let mut cur = self.0.load(Relaxed);
        loop {
            if cur & OFFERING != 0 {
                crate::sync::spin_wait(round);
                round += 1;
                cur = self.0.load(Relaxed);
                continue;
            }
            let orphan = cur & PIN_MASK != 0 && cur & DISCARDED == 0;
            let new = cur | DROPPED | if orphan { ORPHANED } else { 0 };
            // AcqRel: Acquire pairs with a discarder's claim (and an offer's
            // end), Release publishes the owner's last writes before the
            // manager retires the header.
            match self.0.compare_exchange_weak(cur, new, AcqRel, Relaxed) {
                Ok(old) => {
                    debug_assert!(old & DROPPED == 0, "dropped twice");
                    return if old & DISCARDED != 0 {
                        Dropped::AlreadyDiscarded
                    } else if orphan {
                        Dropped::Orphaned
                    } else {
                        Dropped::OwnsBytes
                    };
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Lazy mode: takes "alive, unpinned, no flag" to `OFFERING` (INV-5).
    pub(crate) fn try_begin_offer(&self) -> bool {
        let mut cur = self.0.load(Relaxed);
        loop {
            if cur & (PIN_MASK | DISCARDED | DROPPED | OFFERING | OFFERED | REVIVING) != 0 {
                return false;
            }
            // Acquire pairs with the last unpin: the offerer reads the first
            // words after every write made under a pin.
            match self.0.compare_exchange_weak(cur, cur | OFFERING, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Lazy mode: ends an offer: `OFFERING` becomes `OFFERED` (`offered`:
    /// the pages, or some of them, are the kernel's to take, INV-5) or is
    /// simply dropped (the offer failed and every page is intact). Pins that
    /// arrived meanwhile stay counted.
    pub(crate) fn end_offer(&self, offered: bool) {
        // Release publishes the saved words and cookies to the reviver, the
        // restored words to a pinner that waited out a failed offer, and the
        // offerer's last touch of the pages to the owner's drop, which waits
        // for this (INV-5). The broken variant for the loom models ends the
        // offer Relaxed, so none of them is ordered after the offer.
        let order = if cfg!(discardable_broken_end_offer) { Relaxed } else { Release };
        let flip = if offered { OFFERING | OFFERED } else { OFFERING };
        self.0.fetch_xor(flip, order);
    }

    /// Lazy mode: with our pin counted, tries to take `OFFERED` to
    /// `OFFERED | REVIVING` (INV-6). `Err(word)` tells what was seen.
    pub(crate) fn try_begin_revive(&self, seen: u64) -> Result<(), u64> {
        if seen & (OFFERED | REVIVING | OFFERING | DISCARDED) != OFFERED {
            return Err(seen);
        }
        #[cfg(discardable_broken_lazy)]
        {
            // Deliberately broken variant for the loom models: the check
            // above was a plain load; REVIVING is then set by a separate
            // RMW, so two pinners can both believe they revive.
            crate::sync::spin_wait(0);
            self.0.fetch_or(REVIVING, Acquire);
            return Ok(());
        }
        // Acquire pairs with `end_offer`'s Release: the saved words.
        #[cfg(not(discardable_broken_lazy))]
        self.0.compare_exchange(seen, seen | REVIVING, Acquire, Relaxed).map(drop)
    }

    /// Lazy mode: the reviver restored every page: the allocation is plain
    /// alive again, with the reviver's pin.
    pub(crate) fn revived(&self) {
        self.0.fetch_and(!(OFFERED | REVIVING), Release);
    }

    /// Lazy mode: the reviver found a page the kernel took: the allocation
    /// is discarded for good, the reviver's pin is removed, and the reviver
    /// owns the bytes (INV-4, INV-6).
    pub(crate) fn revive_failed(&self) {
        // From OFFERED | REVIVING | pins: set DISCARDED, clear both flags and
        // our pin, in one RMW (the flags are known set, the pin counted).
        self.0.fetch_add(DISCARDED.wrapping_sub(OFFERED).wrapping_sub(REVIVING).wrapping_sub(PIN_ONE), AcqRel);
    }

    /// Whether `word` says "wait": an offer or a revival is in progress.
    pub(crate) fn busy(word: u64) -> bool {
        word & (OFFERING | REVIVING) != 0 && word & DISCARDED == 0
    }

    /// Whether `word` is plain alive and pinnable (no lazy flag).
    pub(crate) fn settled(word: u64) -> bool {
        word & (DISCARDED | OFFERING | OFFERED | REVIVING) == 0
    }

    /// Whether `word` carries more pins than allowed (see [`State::pin`]).
    pub(crate) fn overflowing(word: u64) -> bool {
        word & PIN_MAX != 0
    }

    /// Whether `word` is discarded.
    pub(crate) fn gone(word: u64) -> bool {
        word & DISCARDED != 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn offer_and_revive_flags() {
        let s = State::new();
        assert!(s.try_begin_offer());
        assert!(!s.try_discard(), "no discard while offering");
        assert!(!s.pin_fast(), "pins wait while offering");
        s.end_offer(true);
        assert!(s.load().is_offered());
        let seen = s.raw();
        assert_eq!(s.try_begin_revive(seen), Ok(()));
        assert!(s.try_begin_revive(s.raw()).is_err(), "one reviver at a time");
        s.revived();
        assert_eq!(s.load().pins(), 1);
        assert!(!s.load().is_offered());
        s.unpin();
        // Offered again; this time the kernel took a page.
        assert!(s.try_begin_offer());
        s.end_offer(true);
        assert!(!s.pin_fast());
        assert_eq!(s.try_begin_revive(s.raw()), Ok(()));
        s.revive_failed();
        let snap = s.load();
        assert!(snap.is_discarded() && !snap.is_offered() && snap.pins() == 0);
        assert!(!s.pin());
    }

    #[test]
    fn offered_allocations_may_be_discarded() {
        let s = State::new();
        assert!(s.try_begin_offer());
        s.end_offer(true);
        assert!(s.try_discard());
        assert!(s.load().is_discarded() && !s.load().is_offered());
    }

    #[test]
    fn pin_unpin_counts_and_records_access() {
        let s = State::new();
        assert!(s.pin());
        assert!(s.pin());
        assert_eq!(s.load().pins(), 2);
        s.unpin();
        s.unpin();
        let snap = s.load();
        assert_eq!(snap.pins(), 0);
        assert_eq!(snap.accesses(), 2);
        assert!(!snap.is_discarded());
    }

    #[test]
    fn pinned_is_never_discarded_and_discarded_stays_so() {
        let s = State::new();
        assert!(s.pin());
        assert!(!s.try_discard());
        s.unpin();
        assert!(s.try_discard());
        assert!(!s.try_discard(), "exactly one discarder wins");
        assert!(!s.pin());
        assert!(!s.pin());
        assert_eq!(s.load().pins(), 0, "failed pins leave no trace");
        assert_eq!(s.mark_dropped(), Dropped::AlreadyDiscarded);
    }

    #[test]
    fn dropping_while_pinned_orphans_the_bytes() {
        let s = State::new();
        assert!(s.pin());
        assert_eq!(s.mark_dropped(), Dropped::Orphaned);
        let snap = s.load();
        assert!(snap.is_dropped() && snap.is_orphaned() && !snap.is_discarded());
        assert!(!s.try_discard(), "an orphan is never discarded");
        s.unpin();
        assert_eq!(s.load().pins(), 0);
        assert!(s.load().is_orphaned(), "the table frees an orphan");
    }

    #[test]
    fn a_new_pinned_word_is_pinned_once() {
        let s = State::new_pinned();
        assert!(!s.try_discard());
        s.unpin();
        assert!(s.try_discard());
    }

    #[test]
    fn drop_wins_against_later_discard() {
        let s = State::new();
        assert_eq!(s.mark_dropped(), Dropped::OwnsBytes);
        assert!(!s.try_discard());
        assert!(s.load().is_dropped());
    }

    #[test]
    fn access_counter_wraps_without_touching_flags() {
        let s = State::new();
        for _ in 0..(1 << 16) + 3 {
            assert!(s.pin());
            s.unpin();
        }
        let snap = s.load();
        assert_eq!(snap.accesses(), 3);
        assert_eq!(snap.pins(), 0);
        assert!(!snap.is_discarded() && !snap.is_dropped());
    }
}
