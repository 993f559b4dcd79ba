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
//! - INV-1: `DISCARDED` is set only by [`State::try_discard`], and only from a
//!   value with zero pins and neither flag: a pinned allocation is never
//!   discarded.
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
//! Must never: block, allocate, or touch the allocation's bytes.

use crate::sync::{AtomicU64, Ordering::*};

const PIN_ONE: u64 = 1;
const PIN_MASK: u64 = (1 << 32) - 1;
/// Pins beyond this are refused with a panic before the count can overflow.
const PIN_MAX: u64 = 1 << 31;
const DISCARDED: u64 = 1 << 32;
const DROPPED: u64 = 1 << 33;
const ACCESS_SHIFT: u32 = 48;
const ACCESS_ONE: u64 = 1 << ACCESS_SHIFT;
/// Unpin and record one access in a single wrapping addition.
const UNPIN_AND_TOUCH: u64 = ACCESS_ONE - PIN_ONE;

/// A decoded snapshot of the state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(u64);

impl Snapshot {
    /// Live pins.
    #[inline]
    pub(crate) fn pins(self) -> u32 {
        (self.0 & PIN_MASK) as u32
    }

    /// Whether the allocation has been discarded (for good).
    #[inline]
    pub(crate) fn is_discarded(self) -> bool {
        self.0 & DISCARDED != 0
    }

    /// Whether the owning handle has been dropped.
    #[inline]
    pub(crate) fn is_dropped(self) -> bool {
        self.0 & DROPPED != 0
    }

    /// The access counter (wraps at 2^16).
    #[inline]
    pub(crate) fn accesses(self) -> u16 {
        (self.0 >> ACCESS_SHIFT) as u16
    }
}

/// What dropping the owner found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// The owner won: it must free the bytes (INV-4).
    OwnsBytes,
    /// A discarder won earlier and frees (or freed) the bytes.
    AlreadyDiscarded,
}

/// The atomic state word. See the module docs.
#[derive(Debug)]
pub(crate) struct State(AtomicU64);

impl State {
    /// A live, unpinned, never-accessed allocation.
    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Reads the word. `Acquire`, so that a reader that sees `DISCARDED` or
    /// `DROPPED` also sees what the winner did before setting it.
    #[inline]
    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.0.load(Acquire))
    }

    /// Tries to pin: `true` if the bytes are alive and now pinned.
    ///
    /// # Panics
    ///
    /// If 2^31 pins are live at once (a leak of guards), like `Arc`'s
    /// overflow check.
    #[inline]
    pub(crate) fn pin(&self) -> bool {
        // Acquire pairs with the Release of earlier unpins, so this pin sees
        // every write made under a `PinnedMut` before it (INV-1).
        let old = self.0.fetch_add(PIN_ONE, Acquire);
        if old & (DISCARDED | PIN_MAX) == 0 {
            return true;
        }
        self.unpin_cold(old)
    }

    #[cold]
    fn unpin_cold(&self, old: u64) -> bool {
        // Undo our increment; it never made the word look unpinned to a
        // discarder because DISCARDED (if set) makes every claim fail (INV-2).
        self.0.fetch_sub(PIN_ONE, Relaxed);
        assert!(old & PIN_MAX == 0, "discardable: too many live pins");
        false
    }

    /// Drops one pin and records an access.
    #[inline]
    pub(crate) fn unpin(&self) {
        // Release pairs with the Acquire of `try_discard`'s CAS: every read or
        // write made under this pin happens before the discarder frees the
        // bytes (INV-1).
        let old = self.0.fetch_add(UNPIN_AND_TOUCH, Release);
        debug_assert!(old & PIN_MASK != 0, "unpin without a pin");
    }

    /// Tries to take the allocation from "alive and unpinned" to
    /// `DISCARDED`. `true` means the caller won and now owns the bytes
    /// (INV-4): it must free them.
    pub(crate) fn try_discard(&self) -> bool {
        let mut cur = self.0.load(Relaxed);
        loop {
            if cur & (PIN_MASK | DISCARDED | DROPPED) != 0 {
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
            match self.0.compare_exchange_weak(cur, cur | DISCARDED, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Marks the owner dropped. The owner must hold no pin and must not
    /// touch the header after this call (the manager may free it at once).
    pub(crate) fn mark_dropped(&self) -> Dropped {
        // AcqRel: Acquire pairs with a discarder's claim, Release publishes the
        // owner's last writes before the manager retires the header.
        let old = self.0.fetch_or(DROPPED, AcqRel);
        debug_assert!(old & PIN_MASK == 0 && old & DROPPED == 0);
        if old & DISCARDED == 0 {
            Dropped::OwnsBytes
        } else {
            Dropped::AlreadyDiscarded
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

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
